#!/usr/bin/env bash
# test_serve_slow.sh — `seslm serve` under hostile clients (issue 14, finding 2): 1,000 slowloris
# connections from 50 loopback addresses; /healthz must answer (p95 within 100 ms) and /v1/embed work
# while they are open; the header deadline then cuts them, although they never go idle; one address gets
# no more than --max-connections-per-ip; a trickled body is cut at the body deadline; stderr gets a
# bounded number of lines however many connections were cut (tests/serve/slow_clients.py does the work).
#
#   bash tests/cli/test_serve_slow.sh <path to seslm> <model dir> <repo root>
set -u

. "$(dirname "$0")/lib.sh"
cli_test_init test_serve_slow "$@" -- curl

# the server's file-descriptor limit must fit 1,000 connections (it raises its soft limit to the hard one)
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt 2400 ]; then
    echo "test_serve_slow: the hard descriptor limit (ulimit -Hn $(ulimit -Hn)) is below 2400" >&2
    exit 1
fi
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true

LOG=$TMP/server.log
"$SESLM" serve --model "$MODEL" --port 0 --max-connections 2000 --max-connections-per-ip 40 \
    --header-timeout 8 --body-timeout 3 --workers 4 >"$LOG" 2>&1 &
PID=$!
PORT=
for _ in $(seq 1 600); do
    PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$LOG" | head -1)
    [ -n "$PORT" ] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$PORT" ]; then
    echo "test_serve_slow: the server did not start:" >&2
    cat "$LOG" >&2
    exit 1
fi

ok
python3 "$ROOT/tests/serve/slow_clients.py" --port "$PORT" --slow 1000 --addresses 50 --per-ip 40 \
    --header-timeout 8 --body-timeout 3 --max-ms "${SESLM_SLOW_MAX_MS:-100}" --json "$TMP/figures.json" ||
    fail "slow clients: see above"
cp "$TMP/figures.json" "${SESLM_SLOW_FIGURES:-/dev/null}" 2>/dev/null || true

ok
kill -0 "$PID" 2>/dev/null || fail "the server died: $(tail -5 "$LOG")"
# > 1,000 connections were cut: the log must not have a line for each
lines=$(wc -l <"$LOG")
ok
[ "$lines" -le 40 ] || fail "the server wrote $lines log lines for cut connections (rate limit?): $(head -5 "$LOG")"

kill -TERM "$PID"
wait "$PID"
rc=$?
PID=
ok
[ "$rc" = 0 ] || fail "SIGTERM: exit $rc: $(tail -5 "$LOG")"
cli_test_done
