#!/usr/bin/env bash
# test_serve_apis.sh — `seslm serve` speaks the APIs clients already call: the official openai and
# huggingface_hub clients (pinned, tests/ecosystem/.venv) and KServe v2 over HTTP get the vectors of
# `seslm embed` (tests/ecosystem/check_serve_clients.py); over-long inputs are refused unless truncation
# is asked for; /openapi.json validates.
# Usage: test_serve_apis.sh SESLM MODEL_DIR REPO_ROOT. FAILS without the package index (venv).
. "$(dirname "$0")/lib.sh"
cli_test_init test_serve_apis "$@" -- curl

if ! bash "$ROOT/tests/ecosystem/setup_venv.sh" >"$TMP/venv.log" 2>&1; then
    fail "cannot set up tests/ecosystem/.venv: $(tail -c 600 "$TMP/venv.log")"
    cli_test_done
    exit 1
fi
PY="$ROOT/tests/ecosystem/.venv/bin/python"

# the reference: seslm embed, one process, no server
cat >"$TMP/texts.txt" <<'TXT'
The quick brown fox jumps over the lazy dog.
Héllo wörld — ünïcode

数据 科学 ist toll 🙂
How do I reset my password?
TXT
"$PY" -c "print(' '.join(['tokenization'] * 200), end='')" >"$TMP/long.txt"
cat "$TMP/long.txt" >>"$TMP/texts.txt"
ok
"$SESLM" embed --model "$MODEL" --input "$TMP/texts.txt" >"$TMP/ref.jsonl" || fail "seslm embed failed"

LOG=$TMP/server.log
"$SESLM" serve --model "$MODEL" --port 0 --drain-seconds 60 >"$LOG" 2>&1 &
PID=$!
PORT=
for _ in $(seq 1 600); do
    PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$LOG" | head -1)
    [ -n "$PORT" ] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
done
[ -n "$PORT" ] || { cat "$LOG" >&2; fail "the server did not start"; cli_test_done; exit 1; }
URL=http://127.0.0.1:$PORT

ok
if ! timeout 300 "$PY" "$ROOT/tests/ecosystem/check_serve_clients.py" "$URL" "$TMP/ref.jsonl" "$TMP/long.txt" >"$TMP/clients.log" 2>&1; then
    fail "client checks: $(grep -v '^ok' "$TMP/clients.log" | tail -c 3000)"
fi
grep -c '^ok' "$TMP/clients.log" | sed 's/^/client checks passed: /'

kill -TERM "$PID"
wait "$PID" 2>/dev/null
wait 2>/dev/null
PID=
cli_test_done
