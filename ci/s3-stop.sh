#!/usr/bin/env bash
# s3-stop.sh — stop the server of ci/s3-start.sh ($SESLM_TEST_S3_PID) and remove its directory.
set -uo pipefail
pid=${SESLM_TEST_S3_PID:?s3-stop: SESLM_TEST_S3_PID is not set}
kill "$pid" 2>/dev/null && for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -KILL "$pid" 2>/dev/null
[ -n "${SESLM_TEST_S3_DIR:-}" ] && rm -rf "$SESLM_TEST_S3_DIR"
exit 0
