#!/usr/bin/env bash
# test_otlp.sh — the serving node's OpenTelemetry export (--otlp-endpoint, runtime/serve/otlp.c) against a
# small OTLP/HTTP receiver built on the published OTLP protobuf definitions (tests/otlp/receiver.py:
# opentelemetry-proto's ExportTraceServiceRequest parses each body strictly; ids, times and integer
# encodings checked as the OTLP JSON encoding requires):
#   * off by default: no exporter and no seslm_otlp_* metrics without the option; a bad URL exits 1;
#   * one span per embedding request, with the model id of /healthz, texts, tokens equal to the response's
#     n_tokens, queue and compute seconds (>= 0, compute > 0, their sum within the span), resource
#     service.name / host.name; the spans queued at SIGTERM are sent before the node exits;
#   * a collector that never answers: requests are not slowed (each well under the export timeout); a
#     burst overflows the bounded queue, which drops and counts spans in /metrics, every request 200.
#
#   bash tests/cli/test_otlp.sh <path to seslm> <model dir> <repo root>
set -u
. "$(dirname "$0")/lib.sh"
cli_test_init test_otlp "$@" -- curl

if ! bash "$ROOT/tests/otlp/setup_venv.sh" >"$TMP/venv.log" 2>&1; then
    fail "cannot set up tests/otlp/.venv (opentelemetry-proto): $(tail -c 600 "$TMP/venv.log")"
    cli_test_done
    exit 1
fi
RPID=
start_receiver() { # start_receiver OUT [--hang]: RPORT
    "$ROOT/tests/otlp/.venv/bin/python" "$ROOT/tests/otlp/receiver.py" "$@" >"$TMP/recv.port" 2>"$TMP/recv.err" &
    RPID=$!
    for _ in $(seq 1 100); do [ -s "$TMP/recv.port" ] && break; sleep 0.05; done
    RPORT=$(head -1 "$TMP/recv.port")
    [ -n "$RPORT" ] || { echo "test_otlp: the receiver did not start: $(cat "$TMP/recv.err")" >&2; exit 1; }
}
stop_receiver() { kill "$RPID" 2>/dev/null; wait "$RPID" 2>/dev/null; RPID=; }
start_node() {
    local log=$1
    shift
    "$SESLM" serve --model "$MODEL" --port 0 --threads 1 "$@" >"$log" 2>&1 &
    PID=$!
    local port=
    for _ in $(seq 1 600); do
        port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
        [ -n "$port" ] && break
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$port" ] || { echo "test_otlp: the node did not start:" >&2; cat "$log" >&2; exit 1; }
    URL=http://127.0.0.1:$port
}
stop_node() {
    kill -TERM "$PID"
    wait "$PID"
    local rc=$?
    PID=
    ok; [ "$rc" -eq 0 ] || fail "the node exited $rc after SIGTERM"
}
trap 'stop_receiver; cli_test_cleanup' EXIT

expect 1 'must start with http' "a bad endpoint" -- serve --model "$MODEL" --port 0 --otlp-endpoint "ftp://x"
expect 2 '' "a zero queue" -- serve --model "$MODEL" --port 0 --otlp-endpoint "http://127.0.0.1:1" --otlp-queue 0

# ---- off by default ---------------------------------------------------------------------------------
start_node "$TMP/off.log"
curl -s -o /dev/null -d '{"text":"nothing is exported"}' "$URL/v1/embed"
ok; ! curl -s "$URL/metrics" | grep -q seslm_otlp || fail "seslm_otlp metrics without --otlp-endpoint"
stop_node
ok; ! grep -qi otlp "$TMP/off.log" || fail "an exporter started without --otlp-endpoint"

# ---- spans, checked field by field --------------------------------------------------------------------
start_receiver "$TMP/spans.jsonl"
start_node "$TMP/on.log" --node otlp-node --otlp-endpoint "http://127.0.0.1:$RPORT/"
model=$(curl -s "$URL/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["model"])')
: >"$TMP/responses.jsonl"
for t in '{"text":"one short text"}' '{"texts":["two texts here","and the second one, a little longer than the first"]}' \
         '{"texts":["three","texts","in one request"]}'; do
    curl -s -d "$t" "$URL/v1/embed" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"n": len(d["embeddings"]), "n_tokens": d["n_tokens"]}))' >>"$TMP/responses.jsonl"
done
stop_node # the queued spans are sent at shutdown
stop_receiver
ok; [ ! -s "$TMP/spans.jsonl.errors" ] || fail "the receiver refused requests: $(head -c 600 "$TMP/spans.jsonl.errors")"
python3 - "$TMP/spans.jsonl" "$TMP/responses.jsonl" "$model" <<'PY' || fail "spans (above)"
import json, sys
spans = [json.loads(l) for l in open(sys.argv[1])]
resp = [json.loads(l) for l in open(sys.argv[2])]
model = sys.argv[3]
assert len(spans) == len(resp) == 3, f"{len(spans)} spans for {len(resp)} requests"
seen = set()
for s, r in zip(sorted(spans, key=lambda s: int(s["span"]["startTimeUnixNano"])), resp):
    sp, a = s["span"], s["span"]["attrs"]
    assert s["resource"]["service.name"] == "seslm-serve" and s["resource"]["host.name"] == "otlp-node", s["resource"]
    assert a["seslm.model.id"] == model, (a["seslm.model.id"], model)
    assert a["seslm.texts"] == r["n"], (a, r)
    assert a["seslm.tokens"] == r["n_tokens"], f"span says {a['seslm.tokens']} tokens, the response {r['n_tokens']}"
    q, c = a["seslm.queue_seconds"], a["seslm.compute_seconds"]
    dur = (int(sp["endTimeUnixNano"]) - int(sp["startTimeUnixNano"])) * 1e-9
    assert q >= 0 and c > 0 and q + c <= dur + 1e-3, (q, c, dur)
    assert a["seslm.ok"] is True and sp["status"]["code"] == 1 and sp["kind"] == 2, sp
    assert (sp["traceId"], sp["spanId"]) not in seen, "ids repeat"
    seen.add((sp["traceId"], sp["spanId"]))
print("ok: 3 spans match their requests:", [(s["span"]["attrs"]["seslm.texts"], s["span"]["attrs"]["seslm.tokens"]) for s in spans])
PY

# ---- a collector that never answers: requests unaffected, the queue drops and counts -------------------
start_receiver "$TMP/hang.jsonl" --hang
start_node "$TMP/hang.log" --otlp-endpoint "http://127.0.0.1:$RPORT" --otlp-queue 4
slow=0
for i in $(seq 1 10); do # one at a time: each as fast as without an exporter (the first span hangs it)
    t=$(curl -s -o /dev/null -w '%{time_total}' -d "{\"text\":\"request $i to a node whose collector hangs\"}" "$URL/v1/embed")
    python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < 2.0 else 1)" "$t" || slow=$((slow + 1))
done
ok; [ "$slow" -eq 0 ] || fail "$slow of 10 requests took >= 2 s with a hanging collector"
# a burst of 40 while the exporter waits on the collector: the queue (4) overflows, the rest is dropped
pids=()
for i in $(seq 1 40); do
    curl -s -o "$TMP/burst.$i" -w '%{http_code}\n' -d "{\"text\":\"burst request $i\"}" "$URL/v1/embed" >>"$TMP/burst.codes" &
    pids+=($!)
done
wait "${pids[@]}" # (not the node's or the receiver's)
ok; [ "$(grep -c '^200$' "$TMP/burst.codes")" -eq 40 ] || fail "burst: $(sort "$TMP/burst.codes" | uniq -c | tr '\n' ' ')"
dropped=$(curl -s "$URL/metrics" | grep '^seslm_otlp_spans_total{result="dropped"}' | awk '{print $NF}')
ok; [ "${dropped:-0}" -ge 10 ] || fail "dropped spans: '${dropped:-}', expected >= 10 (queue of 4, a burst of 40, collector hung)"
stop_node
stop_receiver
cli_test_done
