#!/usr/bin/env bash
# pg-start.sh — start a throwaway PostgreSQL cluster for the registry tests and print its DSN.
#
#   eval "$(ci/pg-start.sh)"     # exports SESLM_TEST_PG_DSN and SESLM_TEST_PG_DIR
#   ci/pg-stop.sh                # stops it and removes the directory (or: pg_ctl -D "$SESLM_TEST_PG_DIR/data" stop)
#
# The cluster lives in a mktemp directory, listens on a unix socket in that directory only (no TCP, so it
# cannot clash with another cluster or be reached from outside), on port $SESLM_TEST_PG_PORT (default
# 54329; the port only names the socket). Run as root (CI) it runs the server as the `postgres` user,
# which initdb requires. Prints `export` lines on stdout; progress goes to stderr.
set -euo pipefail
bindir=${PG_BINDIR:-}
if [ -z "$bindir" ]; then
    for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && bindir=$d; done
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    echo "pg-start: no initdb found (apt-get install postgresql, or set PG_BINDIR)" >&2
    exit 1
fi
port=${SESLM_TEST_PG_PORT:-54329}
dir=$(mktemp -d "${TMPDIR:-/tmp}/seslm-pg.XXXXXX")
chmod 755 "$dir"
run=()
user=$(id -un)
if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || { echo "pg-start: running as root needs the postgres user" >&2; exit 1; }
    chown postgres "$dir"
    run=(runuser -u postgres --)
    user=postgres
fi
"${run[@]}" "$bindir/initdb" -D "$dir/data" -U "$user" --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
"${run[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-k $dir -c listen_addresses='' -p $port -c fsync=off -c max_connections=100" start >&2 ||
    { cat "$dir/server.log" >&2; exit 1; }
"$bindir/psql" -h "$dir" -p "$port" -U "$user" -d postgres -qAt -c "CREATE DATABASE seslm" >&2
echo "pg-start: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on socket $dir port $port" >&2
echo "export SESLM_TEST_PG_DSN='host=$dir port=$port user=$user dbname=seslm'"
echo "export SESLM_TEST_PG_DIR='$dir'"
echo "export SESLM_TEST_PG_BINDIR='$bindir'"
