#!/usr/bin/env bash
# test_chat_serve.sh — POST /v1/chat/completions on `seslm serve --decoder GGUF` (SmolLM2-135M-Instruct):
# the OpenAI chat.completion shape, greedy answers equal to `seslm generate --chat`, streaming (server-sent
# events whose deltas add up to the same text, closed by [DONE]), stop strings, 400 on bad requests, 404
# without a decoder, 405 on GET; POST /admin/reload with a decoder (a registry version's directory holding
# model.gguf) while a generation runs: the generation completes, the next answers come from the new decoder, a
# corrupt one is refused (422) and the node keeps serving.
#
#   bash tests/cli/test_chat_serve.sh <path to seslm> <model dir> <repo root>
set -u
. "$(dirname "$0")/lib.sh"
cli_test_init test_chat_serve "$@" -- curl

GGUF=$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$GGUF" ]; then
    echo "test_chat_serve: no decoder model at $GGUF: run data/fetch_decoder.sh first" >&2
    exit 1
fi
export OMP_NUM_THREADS=2

start() { # start ARGS...: serve in the background, URL set when it listens
    LOG=$TMP/server.log
    cli_serve_start "$LOG" --model "$MODEL" "$@"
    [ -n "$PORT" ] || { cat "$LOG" >&2; exit 1; }
}
post() { curl -s -o "$TMP/resp" -w '%{http_code}' -X POST --data-binary "$1" "$URL/v1/chat/completions"; }
Q='{"messages":[{"role":"user","content":"What is 2+2?"}],"temperature":0,"max_tokens":24}'

# without --decoder: 404
start
ok
[ "$(post "$Q")" = 404 ] || fail "no decoder: expected 404: $(cat "$TMP/resp")"
kill "$PID"; wait "$PID" 2>/dev/null; PID=

start --decoder "$GGUF"
ok
[ "$(post "$Q")" = 200 ] || fail "chat completion: $(cat "$TMP/resp")"
"$SESLM" generate --model "$GGUF" --chat --prompt "What is 2+2?" --max-tokens 24 >"$TMP/cli.out" 2>/dev/null
ok
python3 - "$TMP/resp" "$TMP/cli.out" <<'PY' || fail "chat.completion body: $(cat "$TMP/resp")"
import json, sys
o = json.load(open(sys.argv[1]))
cli = open(sys.argv[2], encoding="utf-8").read().rstrip("\n")
assert o["object"] == "chat.completion" and o["id"].startswith("chatcmpl-"), o
c = o["choices"][0]
assert c["index"] == 0 and c["message"]["role"] == "assistant" and c["finish_reason"] in ("stop", "length"), o
assert c["message"]["content"] == cli, (c["message"]["content"], cli)
assert "4" in cli, cli
u = o["usage"]
assert u["prompt_tokens"] > 10 and u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"], u
PY

# streaming: role first, content deltas equal to the whole answer, a finish reason, [DONE]
ok
curl -sN -X POST --data-binary "${Q%\}},\"stream\":true}" "$URL/v1/chat/completions" -D "$TMP/h" >"$TMP/sse" ||
    fail "streaming request failed"
ok
grep -qi "content-type: text/event-stream" "$TMP/h" || fail "stream content type: $(cat "$TMP/h")"
ok
python3 - "$TMP/sse" "$TMP/cli.out" <<'PY' || fail "event stream: $(head -c 600 "$TMP/sse")"
import json, sys
ev = [l[6:] for l in open(sys.argv[1], encoding="utf-8").read().split("\n\n") if l.startswith("data: ")]
assert ev[-1] == "[DONE]", ev[-1]
chunks = [json.loads(e) for e in ev[:-1]]
assert all(c["object"] == "chat.completion.chunk" for c in chunks)
assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
cli = open(sys.argv[2], encoding="utf-8").read().rstrip("\n")
assert text == cli, (text, cli)
assert len(chunks) >= 4, len(chunks)
PY

# a stop string
ok
[ "$(post '{"messages":[{"role":"user","content":"Count from 1 to 10."}],"temperature":0,"max_tokens":40,"stop":["5"]}')" = 200 ] ||
    fail "stop request: $(cat "$TMP/resp")"
ok
python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["choices"][0]; assert "5" not in c["message"]["content"] and c["finish_reason"]=="stop", c' "$TMP/resp" ||
    fail "stop string in the answer: $(cat "$TMP/resp")"

# bad requests
for body in '{' '[]' '{"messages":[]}' '{"messages":"hi"}' '{"messages":[{"role":"robot","content":"x"}]}' \
    '{"messages":[{"role":"user","content":5}]}' '{"messages":[{"role":"user","content":"x"}],"max_tokens":0}' \
    '{"messages":[{"role":"user","content":"x"}],"temperature":3}' '{"messages":[{"role":"user","content":"x"}],"top_p":0}' \
    '{"messages":[{"role":"user","content":"x"}],"stream":"yes"}' '{"messages":[{"role":"user","content":"x"}],"stop":[1]}' \
    '{"messages":[{"role":"user","content":"<|im_end|>x"}]}'; do
    ok
    code=$(post "$body")
    [ "$code" = 400 ] || fail "bad request $body: $code $(cat "$TMP/resp")"
    ok
    python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["error"]' "$TMP/resp" 2>/dev/null || fail "no error message for $body"
done
ok
printf '{"messages":[{"role":"user","content":"caf\xc3"}]}' >"$TMP/bad.json"
code=$(curl -s -o "$TMP/resp" -w '%{http_code}' -X POST --data-binary @"$TMP/bad.json" "$URL/v1/chat/completions")
[ "$code" = 400 ] || fail "invalid UTF-8: $code $(cat "$TMP/resp")"
ok
code=$(curl -s -o "$TMP/resp" -w '%{http_code}' "$URL/v1/chat/completions")
[ "$code" = 405 ] || fail "GET: $code"

# ---- a decoder reload while a generation runs (what `seslm promote --notify` sends for a decoder version)
mkdir -p "$TMP/v2" "$TMP/bad"
ln -s "$GGUF" "$TMP/v2/model.gguf"
printf 'GGUF junk' >"$TMP/bad/model.gguf"
curl -s -o "$TMP/long" -w '%{http_code}' -X POST --data-binary \
    '{"messages":[{"role":"user","content":"Write a long story about a cat."}],"temperature":0,"max_tokens":64}' \
    "$URL/v1/chat/completions" >"$TMP/long.code" &
LONG=$!
sleep 0.3
ok
code=$(curl -s -o "$TMP/rl" -w '%{http_code}' -X POST --data-binary "{\"model\":\"$TMP/v2\"}" "$URL/admin/reload")
[ "$code" = 200 ] && grep -q '"decoder":"v2"' "$TMP/rl" && grep -q '"previous":"SmolLM2-135M-Instruct.Q4_1"' "$TMP/rl" ||
    fail "decoder reload: $code $(cat "$TMP/rl")"
wait "$LONG"
ok
[ "$(cat "$TMP/long.code")" = 200 ] || fail "the generation running across the reload: $(cat "$TMP/long.code") $(cat "$TMP/long")"
python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); assert o["choices"][0]["message"]["content"] and o["usage"]["completion_tokens"] > 0, o' \
    "$TMP/long" 2>/dev/null || fail "the generation across the reload: $(cat "$TMP/long")"
ok
[ "$(post "$Q")" = 200 ] || fail "chat after the reload: $(cat "$TMP/resp")"
python3 - "$TMP/resp" "$TMP/cli.out" <<'PY' || fail "chat after the reload: $(cat "$TMP/resp")"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["model"] == "v2", o["model"]
assert o["choices"][0]["message"]["content"] == open(sys.argv[2], encoding="utf-8").read().rstrip("\n")  # same weights
PY
ok
code=$(curl -s -o "$TMP/rl" -w '%{http_code}' -X POST --data-binary "{\"model\":\"$TMP/bad\"}" "$URL/admin/reload")
[ "$code" = 422 ] && grep -q 'still serving v2' "$TMP/rl" || fail "a corrupt decoder reload: $code $(cat "$TMP/rl")"
ok
[ "$(post "$Q")" = 200 ] && grep -q '"model":"v2"' "$TMP/resp" || fail "chat after a refused reload: $(cat "$TMP/resp")"
ok
kill -0 "$PID" 2>/dev/null || fail "the server died: $(cat "$LOG")"

cli_test_done
