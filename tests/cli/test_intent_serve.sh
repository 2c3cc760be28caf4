#!/usr/bin/env bash
# test_intent_serve.sh — POST /v1/intent and /v1/feedback of `seslm serve --intent-head` on the real model:
#   * /v1/intent answers the same intent as `seslm intent predict`;
#   * malformed JSON, unknown fields, missing or non-string fields, an unknown intent (when adding is
#     off) and a GET each get a 4xx with a JSON {"error": ...}, and the head file is untouched by them;
#   * a feedback example is learned (predicted right afterwards), and survives a restart;
#   * 16 concurrent feedback requests all succeed and none is lost (the head's learned-example counter,
#     persisted with it, counts every one of them across the restart);
#   * with --intent-allow-new 1 a new intent is added; past --intent-max-intents one is refused (409);
#   * --feedback-log: every learned example (and only those) is appended as a JSON line with its text, intent,
#     time and model, the 16 concurrent ones included, each line whole; a partial last line left by a crash is
#     cut off at start; a reload opens the path again (rotation: move the log aside, reload); --feedback-log
#     without a head exits 2;
#   * feedback needs the feedback token (401 without, or with a wrong one); a server started with neither a
#     token nor --feedback-open 1 refuses feedback (403); a world-readable token file is refused at start;
#   * labels that must never become intents are refused with 400 even where new intents are allowed:
#     invalid UTF-8, an embedded \u0000, only white space, over 128 bytes; and strict JSON: raw control
#     bytes in a string, a NUL before the body, a lone surrogate escape (the head file is untouched);
#   * the head follows the model: a reload to a model carrying its own head (intent_head.safetensors) swaps
#     heads, the reload back restores the node's own, a restart picks the head kept for the model, a head for
#     another model refuses the reload, and intent requests during ten reloads all succeed;
#   * the telemetry dump written at shutdown carries the predicted-intent counts (/intents), those made under a
#     head swapped out since the last dump included (by label).
#
#   bash tests/cli/test_intent_serve.sh <path to seslm> <model dir> <repo root>
set -u

. "$(dirname "$0")/lib.sh"
cli_test_init test_intent_serve "$@" -- curl

TRAIN=$TMP/train.tsv
awk -F'\t' 'NR == 1 || n[$2]++ < 10' "$ROOT/data/intent/snips_train50.tsv" >"$TRAIN"
HEAD=$TMP/head.safetensors
"$SESLM" intent train --model "$MODEL" --data "$TRAIN" --out "$HEAD" --seed 1 >/dev/null 2>"$TMP/train.err" ||
    { echo "train failed: $(cat "$TMP/train.err")" >&2; exit 1; }
mkdir -p "$TMP/tel"
FBTOK=fb-token-$$
echo "$FBTOK" >"$TMP/fbtoken"
chmod 600 "$TMP/fbtoken"

LOG=$TMP/server.log
start() { # start [extra serve args...]
    : >"$LOG"
    "$SESLM" serve --model "$MODEL" --port 0 --intent-head "$HEAD" --telemetry-dir "$TMP/tel" --node itest \
        --window-seconds 3600 "$@" >"$LOG" 2>&1 &
    PID=$!
    PORT=
    for _ in $(seq 1 600); do
        PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$LOG" | head -1)
        [ -n "$PORT" ] && break
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$PORT" ]; then
        echo "test_intent_serve: the server did not start:" >&2
        cat "$LOG" >&2
        exit 1
    fi
    URL=http://127.0.0.1:$PORT
}
stop() {
    kill -TERM "$PID"
    wait "$PID"
    local rc=$?
    ok
    [ "$rc" = 0 ] || fail "server exit $rc after SIGTERM: $(tail -3 "$LOG")"
    PID=
}
post() { # post PATH JSON -> body in $TMP/resp, prints the code (with the feedback token)
    curl -s -o "$TMP/resp" -w '%{http_code}' -X POST -H 'Content-Type: application/json' -H "Authorization: Bearer $FBTOK" \
        --data-binary "$2" "$URL$1"
}
bad() { # bad CODE DESC PATH JSON [PATTERN]
    ok
    local got
    got=$(post "$3" "$4")
    [ "$got" = "$1" ] || { fail "$2: HTTP $got, expected $1: $(head -c 300 "$TMP/resp")"; return; }
    python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; assert isinstance(e,str) and e' "$TMP/resp" ||
        fail "$2: no JSON error: $(head -c 300 "$TMP/resp")"
    [ -z "${5:-}" ] || grep -q -- "$5" "$TMP/resp" || fail "$2: error lacks /$5/: $(cat "$TMP/resp")"
}
field() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print(json.dumps(v) if not isinstance(v,str) else v)' "$TMP/resp" "$1"; }

usage_rc() { # a bad --intent-head fails start-up with exit 1 and a message
    ok
    timeout 60 "$SESLM" serve --model "$MODEL" --port 0 "$@" >"$TMP/u.out" 2>"$TMP/u.err" </dev/null
    local rc=$?
    [ "$rc" = 1 ] && grep -q "intent head" "$TMP/u.err" || fail "bad head: exit $rc: $(head -c 300 "$TMP/u.err")"
}
usage_rc --intent-head "$TMP/no-such-head"
head -c 200 "$HEAD" >"$TMP/trunc.safetensors"
usage_rc --intent-head "$TMP/trunc.safetensors"

# the feedback log: a whole line from before and a partial one (a crash mid-write, never acknowledged)
printf '{"text":"a line from before the crash","intent":"PlayMusic"}\n{"text":"cut off mid-wri' >"$TMP/fb.log"
ok
timeout 60 "$SESLM" serve --model "$MODEL" --port 0 --feedback-log "$TMP/x.log" >"$TMP/u.out" 2>"$TMP/u.err" </dev/null
rc=$?
[ "$rc" = 2 ] && grep -q "needs --intent-head" "$TMP/u.err" && [ ! -e "$TMP/x.log" ] ||
    fail "--feedback-log without a head: exit $rc: $(head -c 300 "$TMP/u.err")"
start --feedback-token-file "$TMP/fbtoken" --feedback-log "$TMP/fb.log"
ok
grep -q "cut off a partial last line of 24 bytes" "$LOG" || fail "no word of the partial line cut off: $(head -c 300 "$LOG")"
# ---- /v1/intent agrees with the CLI ---------------------------------------------------------------
T1="play the new album by daft punk on spotify"
ok
[ "$(post /v1/intent "{\"text\": \"$T1\"}")" = 200 ] || fail "/v1/intent: $(cat "$TMP/resp")"
got=$(field intent)
want=$("$SESLM" intent predict --model "$MODEL" --head "$HEAD" "$T1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["intent"])')
ok
[ "$got" = "$want" ] && [ "$got" = PlayMusic ] || fail "/v1/intent said '$got', the CLI '$want' (expected PlayMusic)"
got=$(field in_scope)
want=$("$SESLM" intent predict --model "$MODEL" --head "$HEAD" "$T1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["in_scope"])')
ok
python3 -c 'import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); assert 0 < a <= 1 and abs(a - b) < 1e-6' "$got" "$want" ||
    fail "/v1/intent in_scope '$got', the CLI's '$want'"
python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); p=o["probabilities"]; assert len(p)==7 and abs(sum(p.values())-1)<1e-4 and o["top"]==max(p,key=p.get)' "$TMP/resp" || fail "probabilities"
# the in-scope p-values land in /metrics: a histogram of every prediction so far (T1, then 3 texts unlike any
# SNIPS intent), each in the bucket of the in_scope its answer carried, and the unlike texts lower than T1
ps="$got"
for t in "what is the boiling point of mercury in kelvin" "my car makes a rattling noise when it brakes" \
    "which vaccines does a puppy need"; do
    [ "$(post /v1/intent "{\"text\": \"$t\"}")" = 200 ] || fail "/v1/intent: $(cat "$TMP/resp")"
    ps="$ps $(field in_scope)"
done
ok
curl -s "$URL/metrics" >"$TMP/metrics.txt" || fail "GET /metrics"
python3 - "$TMP/metrics.txt" $ps <<'PY' || fail "seslm_intent_in_scope histogram"
import re, sys
text, p = open(sys.argv[1]).read(), [float(v) for v in sys.argv[2:]]
b = {m.group(1): int(m.group(2)) for m in re.finditer(r'^seslm_intent_in_scope_bucket\{le="([^"]+)"\} (\d+)$', text, re.M)}
count = int(re.search(r"^seslm_intent_in_scope_count (\d+)$", text, re.M).group(1))
s = float(re.search(r"^seslm_intent_in_scope_sum (\S+)$", text, re.M).group(1))
assert list(b) == ["0.01", "0.05", "0.1", "0.25", "0.5", "1", "+Inf"], b
assert b["+Inf"] == count == 4, (b, count)  # T1 and the 3 texts above
for le, n in b.items():  # every answer counted where its in_scope falls
    assert n == sum(v <= float(le) for v in p), (le, n, p)
assert abs(s - sum(p)) < 1e-4, (s, p)
assert sum(v < p[0] for v in p[1:]) >= 2, p  # the unlike texts mostly look less in scope than T1
print("seslm_intent_in_scope:", b, "answers' in_scope:", p)
PY
# /v1/embed and /v1/intent at once: the batcher runs embeddings and the head's 3-layer features in passes of
# their own kind, and each answer is the one its text gets alone
"$SESLM" embed --model "$MODEL" "$T1" >"$TMP/e1.jsonl" 2>/dev/null || fail "embed $T1"
ok
pids=""
for i in 1 2 3 4 5 6 7 8; do
    curl -s -m 60 -o "$TMP/mix_e$i" "$URL/v1/embed" -d "{\"texts\": [\"$T1\"]}" &
    pids="$pids $!"
    curl -s -m 60 -o "$TMP/mix_i$i" -X POST -H "Authorization: Bearer $FBTOK" "$URL/v1/intent" -d "{\"text\": \"$T1\"}" &
    pids="$pids $!"
done
wait $pids # (not a bare wait: the server is a child of this shell too)
python3 - "$TMP" "$want" <<'PY' || fail "mixed /v1/embed and /v1/intent answers"
import json, sys
d, p_in = sys.argv[1], float(sys.argv[2])
ref = json.loads(open(d + "/e1.jsonl").readline())["embedding"]
for i in range(1, 9):
    e = json.load(open(f"{d}/mix_e{i}"))["embeddings"][0]
    assert len(e) == 384 and max(abs(a - b) for a, b in zip(e, ref)) < 1e-5, f"embed {i}"
    r = json.load(open(f"{d}/mix_i{i}"))
    assert r["intent"] == "PlayMusic" and abs(r["in_scope"] - p_in) < 1e-6, (i, r)
PY
if command -v promtool >/dev/null; then
    ok
    promtool check metrics <"$TMP/metrics.txt" >"$TMP/promtool.out" 2>&1 || fail "promtool: $(cat "$TMP/promtool.out")"
fi

# ---- bad requests -------------------------------------------------------------------------------------
sum0=$(sha256sum <"$HEAD")
bad 400 "malformed JSON" /v1/feedback '{"text": "hi", "intent": ' "invalid JSON"
bad 400 "not an object" /v1/intent '["hello"]' "JSON object"
bad 400 "unknown field" /v1/feedback '{"text": "hi", "intent": "PlayMusic", "extra": 1}' "unknown field"
bad 400 "missing intent" /v1/feedback '{"text": "hi"}' "missing field"
bad 400 "non-string text" /v1/intent '{"text": 5}' "non-empty string"
bad 400 "empty body" /v1/intent '' "empty body"
bad 400 "unknown intent" /v1/feedback '{"text": "wake me at 7", "intent": "SetAlarm"}' "unknown intent"
bad 400 "invalid UTF-8" /v1/intent "$(printf '{"text": "\xff\xfe"}')" "UTF-8"
# feedback needs the token
ok
code=$(curl -s -o "$TMP/resp" -w '%{http_code}' "$URL/v1/feedback" -d '{"text": "hi", "intent": "PlayMusic"}')
[ "$code" = 401 ] && grep -q 'feedback token' "$TMP/resp" || fail "feedback without a token: HTTP $code $(cat "$TMP/resp")"
ok
code=$(curl -s -o "$TMP/resp" -w '%{http_code}' -H "Authorization: Bearer x$FBTOK" "$URL/v1/feedback" -d '{"text": "hi", "intent": "PlayMusic"}')
[ "$code" = 401 ] || fail "feedback with a wrong token: HTTP $code $(cat "$TMP/resp")"
ok
code=$(curl -s -o "$TMP/resp" -w '%{http_code}' "$URL/v1/intent" -d '{"text": "play some jazz"}')
[ "$code" = 200 ] || fail "/v1/intent needs no token: HTTP $code"
ok
code=$(curl -s -o "$TMP/resp" -w '%{http_code}' "$URL/v1/intent")
[ "$code" = 405 ] || fail "GET /v1/intent: $code"
ok
[ "$(sha256sum <"$HEAD")" = "$sum0" ] || fail "a refused request changed the head file"

# ---- feedback: learn an example the head gets wrong ------------------------------------------------------
T2="could you tell me if the rain will stop before my movie starts"
post /v1/intent "{\"text\": \"$T2\"}" >/dev/null
top=$(field top)
L2=RateBook
[ "$top" = RateBook ] && L2=AddToPlaylist
ok
[ "$(post /v1/feedback "{\"text\": \"$T2\", \"intent\": \"$L2\"}")" = 200 ] || fail "/v1/feedback: $(cat "$TMP/resp")"
[ "$(field new_intent)" = false ] || fail "feedback on a known intent said new_intent"
n0=$(field examples_learned)
post /v1/intent "{\"text\": \"$T2\"}" >/dev/null
ok
[ "$(field intent)" = "$L2" ] || fail "after feedback '$T2' is '$(field intent)', not $L2"

# ---- concurrent feedback: none lost -------------------------------------------------------------------
ok
FBTOK=$FBTOK python3 - "$URL" <<'EOF' || fail "concurrent feedback"
import http.client, json, os, sys, threading, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
labels = ["GetWeather", "PlayMusic", "BookRestaurant", "RateBook"]
errors, done = [], []
def one(i):
    try:
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        body = json.dumps({"text": f"feedback example number {i} about {labels[i % 4].lower()}", "intent": labels[i % 4]})
        c.request("POST", "/v1/feedback", body=body, headers={"Content-Type": "application/json", "Authorization": "Bearer " + os.environ["FBTOK"]})
        r = c.getresponse()
        o = json.loads(r.read())
        assert r.status == 200 and o["learned"] is True, (r.status, o)
        done.append(o["examples_learned"])
    except Exception as e:
        errors.append(repr(e))
ts = [threading.Thread(target=one, args=(i,)) for i in range(16)]
[t.start() for t in ts]
[t.join() for t in ts]
assert not errors, errors
assert sorted(done) == list(range(min(done), min(done) + 16)), sorted(done)  # each update saw all before it
print("test_intent_serve: 16 concurrent feedback requests, counters", min(done), "..", max(done))
EOF
post /v1/intent '{"text": "what will the weather be like in oslo"}' >/dev/null
# rotation: the log moved aside, a reload (the same model) opens a new file at the path
mv "$TMP/fb.log" "$TMP/fb.log.1"
code=$(curl -s -o "$TMP/rl" -w '%{http_code}' "$URL/admin/reload" -d "{\"model\": \"$MODEL\"}")
ok
[ "$code" = 200 ] || fail "reload: HTTP $code $(cat "$TMP/rl")"
[ "$(post /v1/feedback '{"text": "after the rotation", "intent": "PlayMusic"}')" = 200 ] || fail "feedback: $(cat "$TMP/resp")"
ok
[ "$(wc -l <"$TMP/fb.log" 2>/dev/null)" = 1 ] && grep -q '"text":"after the rotation"' "$TMP/fb.log" &&
    ! grep -q "after the rotation" "$TMP/fb.log.1" || fail "after a move and a reload, feedback must go to a new file at the path"
stop
ok
python3 - "$TMP/fb.log.1" "$T2" "$L2" <<'EOF' || fail "the feedback log"
import json, re, sys
raw = open(sys.argv[1], "rb").read()
assert raw.endswith(b"\n"), raw[-80:]
rows = [json.loads(l) for l in raw.decode().splitlines()]     # every line whole JSON
assert rows[0] == {"text": "a line from before the crash", "intent": "PlayMusic"}, rows[0]
new = rows[1:]
assert len(new) == 17, len(new)                                # T2 and the 16 concurrent; no refused request
assert (new[0]["text"], new[0]["intent"]) == (sys.argv[2], sys.argv[3]), new[0]
labels = ["GetWeather", "PlayMusic", "BookRestaurant", "RateBook"]
want = {(f"feedback example number {i} about {labels[i % 4].lower()}", labels[i % 4]) for i in range(16)}
assert {(r["text"], r["intent"]) for r in new[1:]} == want
for r in new:
    assert set(r) == {"text", "intent", "time", "model"}, r
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["time"]) and re.fullmatch(r"[0-9a-f]{64}", r["model"]), r
EOF

# ---- restart: the learned examples are still there --------------------------------------------------------
start --intent-allow-new 1 --feedback-open 1 --intent-max-intents 8
# labels that must never become intents, though new intents are allowed here; strict JSON
sum1=$(sha256sum <"$HEAD")
bad 400 "label: invalid UTF-8" /v1/feedback "$(printf '{"text": "hello there", "intent": "Bad\xffLabel"}')" "UTF-8"
bad 400 "label: embedded NUL" /v1/feedback '{"text": "hello there", "intent": "Play\u0000Music"}' "NUL"
bad 400 "label: only white space" /v1/feedback '{"text": "hello there", "intent": "   "}' "white space"
bad 400 "label: leading white space" /v1/feedback '{"text": "hello there", "intent": " PlayMusic"}' "white space"
bad 400 "label: tab only" /v1/feedback '{"text": "hello there", "intent": "\t"}' "control character"
bad 400 "label: 129 bytes" /v1/feedback "{\"text\": \"hello there\", \"intent\": \"$(printf 'a%.0s' $(seq 1 129))\"}" "1..128 bytes"
bad 400 "label: C1 control" /v1/feedback '{"text": "hello there", "intent": "Play\u0085Music"}' "control character"
bad 400 "raw control byte in a string" /v1/feedback "$(printf '{"text": "hel\001lo", "intent": "PlayMusic"}')" "control byte"
bad 400 "lone surrogate" /v1/feedback '{"text": "x\ud800y", "intent": "PlayMusic"}' "surrogate"
bad 400 "raw tab in a string" /v1/intent "$(printf '{"text": "a\tb"}')" "control byte"
printf '\000{"text": "hello there", "intent": "PlayMusic"}' >"$TMP/nul.json"
ok
code=$(curl -s -o "$TMP/resp" -w '%{http_code}' --data-binary @"$TMP/nul.json" "$URL/v1/feedback")
[ "$code" = 400 ] && grep -q 'control byte 0x00' "$TMP/resp" || fail "NUL before the body: HTTP $code $(cat "$TMP/resp")"
ok
[ "$(sha256sum <"$HEAD")" = "$sum1" ] || fail "a refused label changed the head file"
post /v1/intent "{\"text\": \"$T2\"}" >/dev/null
ok
[ "$(field intent)" = "$L2" ] || fail "after restart '$T2' is '$(field intent)', not $L2"
ok
[ "$(post /v1/feedback '{"text": "wake me up at seven tomorrow", "intent": "SetAlarm"}')" = 200 ] || fail "new intent: $(cat "$TMP/resp")"
[ "$(field new_intent)" = true ] && [ "$(field intents)" = 8 ] || fail "new intent not added: $(cat "$TMP/resp")"
ok
[ "$(field examples_learned)" = $((n0 + 18)) ] || fail "examples learned after restart: $(field examples_learned), expected $((n0 + 18)): 16 concurrent, 1 after the rotation, this one (an update was lost?)"
post /v1/intent '{"text": "wake me up at seven tomorrow"}' >/dev/null
ok
[ "$(field intent)" = SetAlarm ] || fail "the new intent is not predicted: $(cat "$TMP/resp")"
# the head now holds --intent-max-intents 8: another new intent is refused (409) and changes nothing; known ones learn
sum2=$(sha256sum <"$HEAD")
code=$(post /v1/feedback '{"text": "switch the kitchen lights on", "intent": "LightsOn"}')
[ "$code" = 409 ] && grep -q 'intent-max-intents 8' "$TMP/resp" || fail "a 9th intent past the limit: HTTP $code $(cat "$TMP/resp")"
ok
[ "$(sha256sum <"$HEAD")" = "$sum2" ] || fail "a refused new intent changed the head file"
ok
[ "$(post /v1/feedback '{"text": "set an alarm for six thirty", "intent": "SetAlarm"}')" = 200 ] && [ "$(field intents)" = 8 ] \
  || fail "a known intent at the limit: $(cat "$TMP/resp")"
ok
stop

# ---- feedback closed by default; a world-readable token file is refused ----------------------------------
start
ok
code=$(curl -s -o "$TMP/resp" -w '%{http_code}' "$URL/v1/feedback" -d '{"text": "hi", "intent": "PlayMusic"}')
[ "$code" = 403 ] && grep -q 'closed' "$TMP/resp" || fail "feedback on a server with no token: HTTP $code $(cat "$TMP/resp")"
stop
chmod 644 "$TMP/fbtoken"
ok
timeout 60 "$SESLM" serve --model "$MODEL" --port 0 --intent-head "$HEAD" --feedback-token-file "$TMP/fbtoken" \
    >"$TMP/u.out" 2>"$TMP/u.err" </dev/null
rc=$?
[ "$rc" = 1 ] && grep -q 'chmod 600' "$TMP/u.err" || fail "world-readable token file: exit $rc: $(cat "$TMP/u.err")"
chmod 600 "$TMP/fbtoken"

# ---- the head follows the model across reloads --------------------------------------------------------------
# M2: the model with one weight changed (another weights hash), carrying its own head (intent_head.safetensors,
# as seslm adapt writes it) whose labels end in _v2, so an answer tells which head gave it. A reload to M2 swaps
# the heads (the node's own kept as HEAD.<base sha>); the reload back restores it; a restart on M2 with the
# node's head file picks the kept head for M2; a head for another model in a model's directory refuses the
# reload (the node keeps serving); a client asking for intents throughout sees no failure.
M2=$TMP/m2 M3=$TMP/m3
mkdir -p "$M2"
for f in "$MODEL"/*; do [ -f "$f" ] && ln -s "$f" "$M2/$(basename "$f")"; done
[ -d "$MODEL/1_Pooling" ] && cp -r "$MODEL/1_Pooling" "$M2/"
rm "$M2/model.safetensors" && cp "$MODEL/model.safetensors" "$M2/model.safetensors"
nudge() { # FILE: one bias element a hair larger (another weights hash, the same answers)
    python3 - "$1" <<'PY'
import json, struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
t = h["encoder.layer.5.output.dense.bias"]
o = 8 + n + t["data_offsets"][0]
struct.pack_into("<f", b, o, struct.unpack_from("<f", b, o)[0] + 1e-3)
open(sys.argv[1], "wb").write(bytes(b))
PY
}
nudge "$M2/model.safetensors"
awk -F'\t' 'BEGIN{OFS="\t"} NR > 1 {$2 = $2 "_v2"} 1' "$TRAIN" >"$TMP/train_v2.tsv"
# M2's head reads the embedding, the node's own head the last 3 layers: every swap below changes the head's
# input too, and the batcher's passes change kind with it
"$SESLM" intent train --model "$M2" --data "$TMP/train_v2.tsv" --out "$M2/intent_head.safetensors" --seed 1 \
    --feature-layers 1 >/dev/null 2>&1 && ok || fail "a head for M2"
cp -r "$M2" "$M3" && nudge "$M3/model.safetensors" && cp "$HEAD" "$M3/intent_head.safetensors" # the base's head, not M3's
NODE=$TMP/node_head.safetensors
cp "$HEAD" "$NODE"
intent_of() { curl -s "$URL/v1/intent" -d '{"text": "play some jazz by miles davis"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["top"])'; }
reload() { curl -s -o "$TMP/rl" -w '%{http_code}' "$URL/admin/reload" -d "{\"model\": \"$1\"}"; }
mkdir -p "$TMP/tel_follow"
cli_serve_start "$TMP/follow.log" --model "$MODEL" --intent-head "$NODE" --threads 1 --telemetry-dir "$TMP/tel_follow"
if [ -z "$PORT" ]; then
    fail "serve with a head did not start: $(cat "$TMP/follow.log")"
else
    cli_load_start /v1/intent '{"text": "what is the weather in paris"}'
    ok; [ "$(intent_of)" = PlayMusic ] || fail "before any reload: $(intent_of)"
    ok; [ "$(reload "$M2")" = 200 ] || fail "reload to M2: $(cat "$TMP/rl")"
    ok; [ "$(intent_of)" = PlayMusic_v2 ] || fail "after the reload to M2 the node must answer with M2's head: $(intent_of)"
    ok; [ "$(ls "$NODE".* 2>/dev/null | wc -l)" = 1 ] || fail "the node's head was not kept: $(ls "$TMP")"
    ok; [ "$(reload "$MODEL")" = 200 ] || fail "reload back: $(cat "$TMP/rl")"
    ok; [ "$(intent_of)" = PlayMusic ] || fail "after the reload back the node must answer with its own head: $(intent_of)"
    for _ in 1 2 3; do # swaps back and forth under load
        [ "$(reload "$M2")" = 200 ] && [ "$(reload "$MODEL")" = 200 ] || fail "repeated reloads: $(cat "$TMP/rl")"
    done
    ok; [ "$(reload "$M3")" = 422 ] && grep -q "trained on model" "$TMP/rl" || fail "a head for another model: $(cat "$TMP/rl")"
    ok; [ "$(intent_of)" = PlayMusic ] || fail "after a refused reload the node must keep its model and head: $(intent_of)"
    ok; [ "$(reload "$M2")" = 200 ] || fail "reload to M2 again: $(cat "$TMP/rl")"
    cli_load_stop
    n_req=$LOAD_N n_fail=$LOAD_FAILED
    ok; [ "$n_req" -gt 5 ] && [ "$n_fail" -eq 0 ] || fail "intents during 10 reloads: $n_fail of $n_req failed"
    echo "test_intent_serve: $n_req intent requests during 10 reloads, $n_fail failed"
    kill -TERM "$PID" && wait "$PID"
    PID=
    # the window's predictions survive the head swaps, by label: over the node's dumps (one per retired model and
    # the shutdown's), the intent counts add up to every prediction made (the load's and intent_of's 4)
    ok; "$SESLM" inspect "$TMP"/tel_follow/* >"$TMP/inspect_f.json" 2>"$TMP/inspect.err" &&
        python3 - "$TMP/inspect_f.json" $((n_req + 4)) <<'PY' || fail "intent counts across 10 head swaps: $(cat "$TMP/inspect.err")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
total, by = 0, {}
for d in lines:
    for k, v in d["intent_counts"].items():
        total, by[k] = total + v, by.get(k, 0) + v
assert total == int(sys.argv[2]), (total, sys.argv[2], by)
assert by.get("PlayMusic", 0) >= 3 and by.get("PlayMusic_v2", 0) >= 1, by  # both heads' labels
PY
    # the node's head file now holds M2's head; a restart on the base picks the kept base head
    cli_serve_start "$TMP/follow2.log" --model "$MODEL" --intent-head "$NODE" --threads 1
    ok; [ -n "$PORT" ] && [ "$(intent_of)" = PlayMusic ] || fail "a restart on the base must pick its kept head: $(cat "$TMP/follow2.log")"
    kill -TERM "$PID" && wait "$PID"
    PID=
fi

# ---- a device backend serves the default head (the last 3 layers' features) ------------------------------
# cpu-devsim runs the encoder's device code path (the earlier layers brought back to the host and pooled) with
# the reference ops: a node on it starts with the 3-layer head (a GPU node used to refuse it) and answers as the
# CLI does on the CPU, label and confidence
ok
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["feature_layers"] == 3, d' \
    <("$SESLM" intent train --model "$MODEL" --data "$TRAIN" --out "$TMP/head3.safetensors" --seed 1) ||
    fail "the default head is on 3 layers"
cli_serve_start "$TMP/devsim.log" --model "$MODEL" --intent-head "$TMP/head3.safetensors" --backend cpu-devsim --threads 1
if [ -z "$PORT" ]; then
    fail "a node on the device code path refused the 3-layer head: $(cat "$TMP/devsim.log")"
else
    for t in "$T1" "will it rain in paris tomorrow" "book a table for four at an italian place"; do
        ok
        curl -s -o "$TMP/resp" "$URL/v1/intent" -d "{\"text\": \"$t\"}"
        "$SESLM" intent predict --model "$MODEL" --head "$TMP/head3.safetensors" "$t" >"$TMP/cli.json"
        python3 - "$TMP/resp" "$TMP/cli.json" <<'PY' || fail "device code path vs CPU on '$t': $(cat "$TMP/resp")"
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert a["intent"] == b["intent"] and abs(a["confidence"] - b["confidence"]) < 1e-4, (a, b)
PY
    done
    kill -TERM "$PID" && wait "$PID"
    PID=
fi

# ---- telemetry: the dumps carry the predicted-intent counts ----------------------------------------------
ok
n=0
for d in "$TMP"/tel/*; do
    "$SESLM" inspect "$d" >"$TMP/inspect.json" 2>"$TMP/inspect.err" || fail "inspect $d: $(cat "$TMP/inspect.err")"
    k=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline()).get("intents", 0))' "$TMP/inspect.json")
    n=$((n + k))
done
[ "$n" -ge 2 ] || fail "the telemetry dumps record $n intents (expected the predicted ones)"

cli_test_done
