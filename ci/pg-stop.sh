#!/usr/bin/env bash
# pg-stop.sh — stop the cluster of ci/pg-start.sh ($SESLM_TEST_PG_DIR) and remove its directory.
set -uo pipefail
dir=${SESLM_TEST_PG_DIR:?pg-stop: SESLM_TEST_PG_DIR is not set}
bindir=${SESLM_TEST_PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin | tail -1)}
run=()
[ "$(id -u)" -eq 0 ] && run=(runuser -u postgres --)
"${run[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1
rm -rf "$dir"
