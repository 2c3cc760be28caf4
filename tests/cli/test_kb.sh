#!/usr/bin/env bash
# test_kb.sh — `seslm kb build|query` and POST /v1/retrieve on the real model with the 600 Wikipedia
# sentences of data/traffic/wiki_600.txt as the knowledge base:
#   * a passage used as its own query is found first with similarity 1 and answered;
#   * an off-topic query is refused (answer false, a reason, no passages);
#   * the server answers as the CLI does; malformed / unknown-field / bad-k requests get 400;
#   * a passages file edited after the build is refused at load.
#
#   bash tests/cli/test_kb.sh <path to seslm> <model dir> <repo root>
set -u

. "$(dirname "$0")/lib.sh"
cli_test_init test_kb "$@" -- curl

P=$ROOT/data/traffic/wiki_600.txt
KB=$TMP/kb
expect 0 "usage: seslm kb build" "help" -- kb --help
expect 2 "needs --passages" "build without passages" -- kb build --model "$MODEL" --out "$KB"
expect 1 "cannot open" "missing passages" -- kb build --model "$MODEL" --passages "$TMP/none.txt" --out "$KB"
: >"$TMP/empty.txt"
expect 2 "no passages" "empty passages" -- kb build --model "$MODEL" --passages "$TMP/empty.txt" --out "$KB"
expect 0 '"passages":600' "build" -- kb build --model "$MODEL" --passages "$P" --out "$KB"
[ -s "$KB/index.safetensors" ] && [ -s "$KB/passages.txt" ] || fail "build wrote no index"
expect 2 "needs --kb" "query without kb" -- kb query --model "$MODEL" hello
expect 2 "invalid UTF-8" "query invalid UTF-8" -- kb query --model "$MODEL" --kb "$KB" "$(printf 'ok \xff')"
expect 2 "--threshold must be" "bad threshold" -- kb query --model "$MODEL" --kb "$KB" --threshold 3 hello

Q1=$(sed -n 42p "$P")
ok
"$SESLM" kb query --model "$MODEL" --kb "$KB" -k 3 "$Q1" "how do i reset the pin of my bank card" >"$TMP/q.jsonl" 2>"$TMP/q.err" ||
    fail "query: $(cat "$TMP/q.err")"
ok
python3 - "$TMP/q.jsonl" <<'EOF' || fail "query output"
import json, sys
a, b = [json.loads(l) for l in open(sys.argv[1])]
assert a["answer"] is True and a["passages"][0]["passage"] == 41 and abs(a["passages"][0]["score"] - 1) < 1e-4, a
assert all(p["score"] >= a["threshold"] for p in a["passages"]) and len(a["passages"]) <= 3
assert b["answer"] is False and b["passages"] == [] and "below the threshold" in b["reason"] and b["best_score"] < 0.5, b
EOF

# ---- serving ---------------------------------------------------------------------------------------
LOG=$TMP/server.log
"$SESLM" serve --model "$MODEL" --port 0 --kb "$KB" --kb-threshold 0.5 >"$LOG" 2>&1 &
PID=$!
PORT=
for _ in $(seq 1 600); do
    PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$LOG" | head -1)
    [ -n "$PORT" ] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
done
[ -n "$PORT" ] || { cat "$LOG" >&2; exit 1; }
URL=http://127.0.0.1:$PORT
post() { curl -s -o "$TMP/resp" -w '%{http_code}' -X POST --data-binary "$1" "$URL/v1/retrieve"; }
ok
[ "$(post "$(python3 -c 'import json,sys; print(json.dumps({"query": sys.argv[1], "k": 2}))' "$Q1")")" = 200 ] || fail "/v1/retrieve: $(cat "$TMP/resp")"
python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); assert o["answer"] and o["passages"][0]["passage"]==41 and len(o["passages"])<=2, o' "$TMP/resp" || fail "retrieve answer: $(cat "$TMP/resp")"
ok
[ "$(post '{"query": "how do i reset the pin of my bank card"}')" = 200 ] || fail "/v1/retrieve off-topic: $(cat "$TMP/resp")"
python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); assert o["answer"] is False and o["passages"]==[] and o["reason"], o' "$TMP/resp" || fail "refusal: $(cat "$TMP/resp")"
for body in '{"query": ' '{"query": "x", "top": 3}' '{"query": "x", "k": 0}' '{"query": "x", "k": 2.5}' '{"k": 3}' '[]' ''; do
    ok
    code=$(post "$body")
    [ "$code" = 400 ] && grep -q '"error"' "$TMP/resp" || fail "bad request '$body': $code $(cat "$TMP/resp")"
done
kill -TERM "$PID"
wait "$PID" || fail "server exit after SIGTERM"
PID=

echo "a passage added by hand" >>"$KB/passages.txt"
expect 1 "does not belong" "edited passages refused" -- kb query --model "$MODEL" --kb "$KB" hello
cli_test_done
