#!/usr/bin/env bash
# test_serve.sh — `seslm serve` end to end on the real model, over loopback only:
#   * /v1/embed answers equal `seslm embed` for the same texts (1e-5), alone and from concurrent clients;
#   * every bad input gets its 4xx with a JSON {"error": ...}, and the server stays up;
#   * /metrics passes `promtool check metrics` and has the expected series;
#   * SIGHUP and POST /admin/reload swap models; tests/serve/load_test.py drives 5 good reloads and a
#     broken one under load (zero failed requests, ids switch exactly at the reloads);
#   * SIGTERM drains, writes the final telemetry dump and exits 0.
#
#   bash tests/cli/test_serve.sh <path to seslm> <model dir> <repo root>
#
# Without the model (or curl, python3, promtool) the test FAILS: run data/fetch_model.sh and
# ci/install-deps.sh first.
set -u

. "$(dirname "$0")/lib.sh"
cli_test_init test_serve "$@" -- curl promtool

# ---- model directories: the real one, a symlink farm of it under another name, a broken copy -----
mkdir -p "$TMP/models/minilm-b" "$TMP/models/minilm-broken" "$TMP/tel"
for f in "$MODEL"/*; do
    ln -s "$f" "$TMP/models/minilm-b/"
    [ "$(basename "$f")" = model.safetensors ] || ln -s "$f" "$TMP/models/minilm-broken/"
done
head -c 1000000 "$MODEL/model.safetensors" >"$TMP/models/minilm-broken/model.safetensors"

# ---- usage errors (2) and start-up failures (1) ----------------------------------------------------
usage() { # usage RC DESC ARGS...
    local want=$1 desc=$2
    shift 2
    ok
    timeout 60 "$SESLM" serve "$@" >"$TMP/u.out" 2>"$TMP/u.err" </dev/null
    local rc=$?
    [ "$rc" = "$want" ] && grep -q "seslm serve:" "$TMP/u.err" ||
        fail "$desc: exit $rc (want $want): $(head -c 300 "$TMP/u.err")"
}
usage 2 "unknown option" --model "$MODEL" --bogus 1
usage 2 "bad port" --model "$MODEL" --port 70000
usage 2 "missing value" --model "$MODEL" --port
usage 2 "bad precision" --model "$MODEL" --port 0 --precision fp16
usage 2 "bad token budget" --model "$MODEL" --port 0 --max-batch-tokens 0
usage 1 "missing model" --model "$TMP/no-such-model" --port 0
usage 1 "broken model" --model "$TMP/models/minilm-broken" --port 0
usage 1 "bad node id" --model "$MODEL" --port 0 --node "../etc" --telemetry-dir "$TMP/tel"
usage 1 "missing telemetry dir" --model "$MODEL" --port 0 --telemetry-dir "$TMP/no-such-dir"

# ---- start -----------------------------------------------------------------------------------------
LOG=$TMP/server.log
"$SESLM" serve --model "$MODEL" --port 0 --telemetry-dir "$TMP/tel" --node test-node --max-texts 64 \
    --window-seconds 3600 --drain-seconds 300 >"$LOG" 2>&1 &
PID=$!
PORT=
for _ in $(seq 1 600); do # up to 60 s (sanitizer builds load slowly)
    PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$LOG" | head -1)
    [ -n "$PORT" ] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$PORT" ]; then
    echo "test_serve: the server did not start:" >&2
    cat "$LOG" >&2
    exit 1
fi
URL=http://127.0.0.1:$PORT
code=$(curl -s -o "$TMP/h.json" -w '%{http_code}' "$URL/healthz")
ok
[ "$code" = 200 ] && grep -q '"status":"ok"' "$TMP/h.json" || fail "/healthz: $code $(cat "$TMP/h.json")"
ID_A=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["model"])' "$TMP/h.json")
case "$ID_A" in
"$(basename "$MODEL")@"????????????) ok ;;
*) fail "model id '$ID_A' is not <basename>@<12 hex>" ;;
esac

alive() {
    ok
    kill -0 "$PID" 2>/dev/null || fail "the server died after: $1; log: $(tail -5 "$LOG")"
}

# ---- parity with `seslm embed` ---------------------------------------------------------------------
cat >"$TMP/texts.txt" <<'EOF'
A man is eating food.
The quick brown fox jumps over the lazy dog.
Un homme mange de la nourriture.
Le café est délicieux ☕ — naïve façade, 蛋糕 and ελληνικά.
quote " and backslash \ and tab	here

short
EOF
python3 -c 'print(" ".join(["a long sentence that goes past the truncation limit"] * 60))' >>"$TMP/texts.txt"
ok
"$SESLM" embed --model "$MODEL" --input "$TMP/texts.txt" >"$TMP/cli.jsonl" 2>"$TMP/cli.err" ||
    fail "seslm embed failed: $(cat "$TMP/cli.err")"
ok
python3 - "$URL" "$TMP/texts.txt" "$TMP/cli.jsonl" "$ID_A" <<'EOF' || fail "embed parity (see above)"
import http.client, json, sys, threading, urllib.parse
url, texts_path, cli_path, model_id = sys.argv[1:5]
u = urllib.parse.urlparse(url)
texts = open(texts_path, encoding="utf-8").read().split("\n")[:-1]
want = [json.loads(l)["embedding"] for l in open(cli_path)]
assert len(want) == len(texts), (len(want), len(texts))
def post(obj):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    c.request("POST", "/v1/embed", body=json.dumps(obj), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    body = r.read()
    c.close()
    assert r.status == 200, (r.status, body[:300])
    o = json.loads(body)
    assert o["model"] == model_id and o["dim"] == 384, (o["model"], o["dim"])
    return o["embeddings"]
def close(a, b, what):
    err = max(abs(x - y) for x, y in zip(a, b))
    assert len(a) == len(b) == 384 and err <= 1e-5, "%s: max |diff| %g" % (what, err)
got = post({"texts": texts})                     # all in one request
for i, (g, w) in enumerate(zip(got, want)):
    close(g, w, "texts[%d] in one request" % i)
close(post({"text": texts[0]})[0], want[0], "{\"text\": ...}")
errors = []                                       # one text per request, all at once: batched together
def one(i):
    try:
        close(post({"texts": [texts[i]]})[0], want[i], "concurrent request %d" % i)
    except Exception as e:
        errors.append(repr(e))
ts = [threading.Thread(target=one, args=(i % len(texts),)) for i in range(24)]
[t.start() for t in ts]
[t.join() for t in ts]
assert not errors, errors
print("test_serve: parity with seslm embed on %d texts (one request, single text, 24 concurrent)" % len(texts))
EOF

# ---- bad input: code + JSON error, server alive -----------------------------------------------------
# bad CODE DESC CURL-ARGS...: the answer must have status CODE and a JSON body with an "error" string
bad() {
    local want=$1 desc=$2
    shift 2
    ok
    local got
    got=$(curl -s -o "$TMP/resp" -w '%{http_code}' "$@")
    if [ "$got" != "$want" ]; then
        fail "$desc: HTTP $got, expected $want: $(head -c 300 "$TMP/resp")"
        return 1
    fi
    ok
    python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); assert isinstance(o["error"], str) and o["error"]' \
        "$TMP/resp" 2>/dev/null || fail "$desc: body is not {\"error\": \"...\"}: $(head -c 300 "$TMP/resp")"
    return 0
}
E="$URL/v1/embed"
bad 400 "invalid JSON" -X POST "$E" -d '{"texts": ["a", '
bad 400 "trailing data" -X POST "$E" -d '{"texts": ["a"]} {}'
bad 400 "empty body" -X POST "$E" -H 'Content-Type: application/json' --data-binary ''
bad 400 "not an object" -X POST "$E" -d '["a", "b"]'
bad 400 "texts not an array" -X POST "$E" -d '{"texts": "a"}'
if bad 400 "texts[1] not a string" -X POST "$E" -d '{"texts": ["a", 1]}'; then
    grep -q 'texts\[1\]' "$TMP/resp" || fail "the error does not name texts[1]: $(cat "$TMP/resp")"
fi
bad 400 "text not a string" -X POST "$E" -d '{"text": 5}'
bad 400 "text and texts" -X POST "$E" -d '{"text": "a", "texts": ["b"]}'
bad 400 "missing field" -X POST "$E" -d '{"input": ["a"]}'
bad 400 "empty list" -X POST "$E" -d '{"texts": []}'
bad 400 "deep nesting" -X POST "$E" --data-binary "$(python3 -c 'print("[" * 5000 + "]" * 5000)')"
# strict JSON (RFC 8259): a raw control byte inside a string, a NUL before the body, \u0000, a lone surrogate
bad 400 "raw control byte in a string" -X POST "$E" --data-binary "$(printf '{"texts": ["a\001b"]}')"
printf '\000{"texts": ["a"]}' >"$TMP/nul.json"
bad 400 "NUL before the body" -X POST "$E" --data-binary @"$TMP/nul.json"
bad 400 "escaped NUL" -X POST "$E" -d '{"texts": ["a\u0000b"]}'
bad 400 "lone surrogate" -X POST "$E" -d '{"texts": ["a\udc00b"]}'
printf '{"texts": ["fine", "bad \xff\xfe bytes"]}' >"$TMP/utf8.json"
if bad 400 "invalid UTF-8" -X POST "$E" --data-binary @"$TMP/utf8.json"; then
    grep -q 'texts\[1\]' "$TMP/resp" || fail "the UTF-8 error does not name texts[1]: $(cat "$TMP/resp")"
fi
python3 -c 'import json; print(json.dumps({"texts": ["t"] * 65}))' >"$TMP/many.json"
bad 413 "too many texts" -X POST "$E" --data-binary @"$TMP/many.json"
python3 -c 'import json; print(json.dumps({"texts": ["x" * (2 << 20)]}))' >"$TMP/big.json"
bad 413 "body too large" -X POST "$E" --data-binary @"$TMP/big.json"
bad 413 "chunked body too large" -X POST "$E" -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/big.json"
bad 405 "GET /v1/embed" "$E"
bad 405 "POST /healthz" -X POST "$URL/healthz" -d '{}'
bad 405 "DELETE /metrics" -X DELETE "$URL/metrics"
bad 405 "GET /admin/reload" "$URL/admin/reload"
bad 404 "unknown path" "$URL/v2/nothing"
bad 404 "unknown path with a body" -X POST "$URL/v1/no-such-endpoint" -d '{"texts": ["a"]}'
bad 400 "reload with bad JSON" -X POST "$URL/admin/reload" -d '{"model": '
bad 400 "reload with a non-string model" -X POST "$URL/admin/reload" -d '{"model": 3}'
bad 422 "reload from a missing dir" -X POST "$URL/admin/reload" -d "{\"model\": \"$TMP/models/none\"}"
alive "the bad inputs"
code=$(curl -s -o "$TMP/h.json" -w '%{http_code}' "$URL/healthz")
ok
[ "$code" = 200 ] && grep -qF "\"$ID_A\"" "$TMP/h.json" || fail "/healthz after bad input: $code $(cat "$TMP/h.json")"

# ---- /metrics ---------------------------------------------------------------------------------------
metric() { # metric NAME_WITH_LABELS: its value, or empty
    curl -s "$URL/metrics" | grep -v '^#' | grep -F -- "$1 " | head -1 | awk '{print $NF}'
}
curl -s -o "$TMP/metrics.txt" "$URL/metrics"
ok
promtool check metrics <"$TMP/metrics.txt" >"$TMP/promtool.out" 2>&1 || fail "promtool check metrics: $(cat "$TMP/promtool.out")"
for series in "seslm_model_info{model=\"$ID_A\"" 'seslm_http_requests_total{path="/v1/embed",code="413"}' \
    'seslm_http_requests_total{path="/v1/embed",code="400"}' 'seslm_http_request_duration_seconds_bucket{path="/v1/embed",le="+Inf"}' \
    "seslm_embed_texts_total{model=\"$ID_A\"}" "seslm_embed_tokens_total{model=\"$ID_A\"}" \
    "seslm_batch_size_bucket{model=\"$ID_A\",le=\"1\"}" 'process_resident_memory_bytes' \
    'seslm_model_reloads_total{result="failure"} 1' 'seslm_model_reloads_total{result="success"} 0' 'seslm_build_info{version="'; do
    ok
    grep -qF -- "$series" "$TMP/metrics.txt" || fail "/metrics lacks $series"
done
ok
rss=$(grep '^process_resident_memory_bytes ' "$TMP/metrics.txt" | awk '{print $2}')
[ "${rss:-0}" -gt 10000000 ] || fail "process_resident_memory_bytes is '$rss'"

# ---- SIGHUP: reload the current directory -----------------------------------------------------------
kill -HUP "$PID"
for _ in $(seq 1 300); do
    [ "$(metric 'seslm_model_reloads_total{result="success"}')" = 1 ] && break
    sleep 0.1
done
ok
[ "$(metric 'seslm_model_reloads_total{result="success"}')" = 1 ] || fail "SIGHUP did not reload: $(tail -3 "$LOG")"
alive "SIGHUP"

# ---- blue-green reloads under load --------------------------------------------------------------------
ok
python3 "$ROOT/tests/serve/load_test.py" --url "$URL" --model-a "$MODEL" --model-b "$TMP/models/minilm-b" \
    --broken "$TMP/models/minilm-broken" --clients 4 --max-seconds 30 || fail "load_test.py"
alive "the load test"
curl -s -o "$TMP/metrics2.txt" "$URL/metrics"
ok
promtool check metrics <"$TMP/metrics2.txt" >"$TMP/promtool.out" 2>&1 || fail "promtool after reloads: $(cat "$TMP/promtool.out")"
ok
grep -qF 'seslm_telemetry_dumps_total{result="failure"} 0' "$TMP/metrics2.txt" ||
    fail "telemetry dumps failed: $(grep 'telemetry dump failed' "$LOG" | head -3)"

# ---- SIGTERM: drain (a request in flight completes), final dump, exit 0 -------------------------------
before=$(ls "$TMP/tel" | grep -c '^test-node-.*\.\(h5\|json\)$')
python3 -c 'import json; print(json.dumps({"texts": [" ".join(["word%d" % i for i in range(200)])] * 4}))' >"$TMP/slow.json"
curl -s -o "$TMP/slow.out" -w '%{http_code}' -X POST "$E" --data-binary @"$TMP/slow.json" >"$TMP/slow.code" &
CURL=$!
seen=0
for _ in $(seq 1 500); do # until that request is in (in flight: it and the /metrics request itself)
    if [ "$(metric seslm_http_requests_in_flight)" -ge 2 ] 2>/dev/null; then
        seen=1
        break
    fi
    sleep 0.01
done
kill -TERM "$PID"
ok
[ "$seen" = 1 ] || fail "the slow request was never seen in flight"
wait "$CURL"
ok
[ "$(cat "$TMP/slow.code")" = 200 ] && grep -q '"embeddings"' "$TMP/slow.out" ||
    fail "the request in flight at SIGTERM did not complete: $(cat "$TMP/slow.code") $(head -c 200 "$TMP/slow.out")"
rc=
for _ in $(seq 1 600); do
    if ! kill -0 "$PID" 2>/dev/null; then
        wait "$PID"
        rc=$?
        break
    fi
    sleep 0.1
done
ok
[ "$rc" = 0 ] || fail "SIGTERM: exit status '${rc:-still running}'; log: $(tail -5 "$LOG")"
PID=
after=$(ls "$TMP/tel" | grep -c '^test-node-.*\.\(h5\|json\)$')
ok
[ "$after" -eq $((before + 1)) ] || fail "SIGTERM wrote $((after - before)) final dumps (expected 1): $(ls "$TMP/tel")"
ok
[ -z "$(ls -A "$TMP/tel" | grep '^\.')" ] || fail "temporary files left in the telemetry dir: $(ls -A "$TMP/tel")"
ok
grep -q "stopped" "$LOG" || fail "no 'stopped' line in the log"

# ---- the dumps are valid and account for every text embedded and every input refused ----------------
if ls "$TMP/tel"/*.h5 >/dev/null 2>&1 && "$SESLM" inspect --help >/dev/null 2>&1; then
    ok
    "$SESLM" inspect --model "$MODEL" --top 1 "$TMP/tel"/*.h5 >"$TMP/inspect.jsonl" 2>"$TMP/inspect.err" ||
        fail "seslm inspect rejects a dump: $(head -c 300 "$TMP/inspect.err")"
    ok
    python3 - "$TMP/inspect.jsonl" "$TMP/metrics2.txt" "$(basename "$MODEL")" <<'PY' || fail "telemetry dumps vs /metrics (see above)"
import json, re, sys
dumps = [json.loads(l) for l in open(sys.argv[1])]
texts = sum(float(m.group(1)) for m in re.finditer(r'^seslm_embed_texts_total\{[^}]*\} (\S+)$', open(sys.argv[2]).read(), re.M))
seqs = sum(d["n_sequences"] for d in dumps)
rejected = sum(d["n_rejected"] for d in dumps)
ids = {d["model_id"].split("@")[0] for d in dumps}
assert all(d["ok"] and d["node_id"] == "test-node" for d in dumps), dumps
assert seqs == texts + 4, "dumps hold %d sequences; /metrics counted %d texts + 4 in flight at SIGTERM" % (seqs, texts)
assert rejected == 1, "dumps count %d refused inputs, expected 1 (the invalid UTF-8 one)" % rejected
assert ids == {sys.argv[3], "minilm-b"}, ids
print("test_serve: %d dumps hold all %d sequences and the 1 refused input" % (len(dumps), seqs))
PY
fi

echo "test_serve: $((checks - fails)) of $checks checks passed"
[ "$fails" -eq 0 ]
