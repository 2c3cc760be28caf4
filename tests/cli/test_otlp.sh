#!/usr/bin/env bash
# test_otlp.sh — the serving node's OpenTelemetry export (--otlp-endpoint, runtime/serve/otlp.c and
# otlp_metrics.c) against a small OTLP/HTTP receiver built on the published OTLP protobuf definitions
# (tests/otlp/receiver.py: opentelemetry-proto's ExportTraceServiceRequest / ExportMetricsServiceRequest
# parse each body strictly; ids, times and integer encodings checked as the OTLP JSON encoding requires):
#   * off by default: no exporter and no seslm_otlp_* metrics without the option; a bad URL exits 1;
#   * one span per embedding request, with the model id of /healthz, texts, tokens equal to the response's
#     n_tokens, queue and compute seconds (>= 0, compute > 0, their sum within the span), resource
#     service.name / host.name; the spans queued at SIGTERM are sent before the node exits;
#   * one span per forward batch (seslm.batch, INTERNAL), linked to the request spans it served (ids
#     match; each request linked once; its texts and tokens the sum of theirs), within their time;
#   * metrics (--otlp-metrics-interval 1): cumulative monotonic Sums that never decrease from one export
#     to the next, the final one (at shutdown) equal to what /metrics said just before for the embedding
#     counters, close and not below it for those the scrape itself moves; none with interval 0;
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
    rm -f "$TMP/recv.port" # not the previous receiver's port: the redirection below may not have run yet
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
start_node "$TMP/on.log" --node otlp-node --otlp-endpoint "http://127.0.0.1:$RPORT/" --otlp-metrics-interval 1 \
    --batch-wait-us 200000
model=$(curl -s "$URL/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["model"])')
: >"$TMP/responses.jsonl"
summary() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"n": len(d["embeddings"]), "n_tokens": d["n_tokens"]}))'; }
for t in '{"text":"one short text"}' '{"texts":["two texts here","and the second one, a little longer than the first"]}' \
         '{"texts":["three","texts","in one request"]}'; do
    curl -s -d "$t" "$URL/v1/embed" | summary >>"$TMP/responses.jsonl"
done
# then 8 at once: batches that serve several requests (how many share one depends on the timing)
pids=()
for i in $(seq 1 8); do
    curl -s -o "$TMP/conc.$i" -d "{\"texts\":[\"concurrent request $i\",\"its second text, number $i\"]}" "$URL/v1/embed" &
    pids+=($!)
done
wait "${pids[@]}"
for i in $(seq 1 8); do summary <"$TMP/conc.$i" >>"$TMP/responses.jsonl"; done
sleep 2.5 # two metric exports at least after the last request
curl -s "$URL/metrics" >"$TMP/scrape.txt"
stop_node # the queued spans are sent at shutdown, then the metrics once more
stop_receiver
ok; [ ! -s "$TMP/spans.jsonl.errors" ] || fail "the receiver refused requests: $(head -c 600 "$TMP/spans.jsonl.errors")"
python3 - "$TMP/spans.jsonl" "$TMP/responses.jsonl" "$model" <<'PY' || fail "spans (above)"
import json, sys
every = [json.loads(l) for l in open(sys.argv[1])]
spans = [s for s in every if s["span"]["name"] == "seslm.embed"]
resp = [json.loads(l) for l in open(sys.argv[2])]
model = sys.argv[3]
assert len(spans) == len(resp) == 11, f"{len(spans)} request spans for {len(resp)} requests"
spans.sort(key=lambda s: int(s["span"]["startTimeUnixNano"]))
assert sum(s["span"]["attrs"]["seslm.texts"] for s in spans) == sum(r["n"] for r in resp)
assert sum(s["span"]["attrs"]["seslm.tokens"] for s in spans) == sum(r["n_tokens"] for r in resp)
for s in spans:
    sp, a = s["span"], s["span"]["attrs"]
    assert s["resource"]["service.name"] == "seslm-serve" and s["resource"]["host.name"] == "otlp-node", s["resource"]
    assert a["seslm.model.id"] == model, (a["seslm.model.id"], model)
    q, c = a["seslm.queue_seconds"], a["seslm.compute_seconds"]
    dur = (int(sp["endTimeUnixNano"]) - int(sp["startTimeUnixNano"])) * 1e-9
    assert q >= 0 and c > 0 and q + c <= dur + 1e-3, (q, c, dur)
    assert a["seslm.ok"] is True and sp["status"]["code"] == 1 and sp["kind"] == 2, sp
for s, r in zip(spans[:3], resp[:3]): # the sequential requests, in order
    a = s["span"]["attrs"]
    assert a["seslm.texts"] == r["n"], (a, r)
    assert a["seslm.tokens"] == r["n_tokens"], f"span says {a['seslm.tokens']} tokens, the response {r['n_tokens']}"
print("ok: 3 spans match their requests:", [(s["span"]["attrs"]["seslm.texts"], s["span"]["attrs"]["seslm.tokens"]) for s in spans[:3]])
seen = set()
for s in every:
    sp = s["span"]
    assert (sp["traceId"], sp["spanId"]) not in seen, "ids repeat"
    seen.add((sp["traceId"], sp["spanId"]))
    assert s["resource"]["host.name"] == "otlp-node", s["resource"]

# the batch spans: each links the request spans it ran texts of; every request linked exactly once
# (each fits one pass); a batch's texts and tokens are those of its requests; within their time
req = {(s["span"]["traceId"], s["span"]["spanId"]): s["span"] for s in spans}
batches = [s["span"] for s in every if s["span"]["name"] == "seslm.batch"]
assert len(batches) + len(spans) == len(every), "a span neither seslm.embed nor seslm.batch"
linked = {}
for b in batches:
    a = b["attrs"]
    assert b["kind"] == 1 and b["status"]["code"] == 1 and a["seslm.ok"] is True, b
    assert a["seslm.model.id"] == model, a
    assert b["links"] and a["seslm.requests"] == len(b["links"]), b
    assert b["traceId"] not in {k[0] for k in req}, "a batch span in a request's trace"
    mine = []
    for l in b["links"]:
        k = (l["traceId"], l["spanId"])
        assert k in req, f"a link to no request span: {k}"
        assert k not in linked, f"request {k} linked twice"
        linked[k] = b
        mine.append(req[k])
    assert a["seslm.texts"] == sum(r["attrs"]["seslm.texts"] for r in mine), (a, [r["attrs"] for r in mine])
    assert a["seslm.tokens"] == sum(r["attrs"]["seslm.tokens"] for r in mine), (a, [r["attrs"] for r in mine])
    assert 0 < a["seslm.max_text_tokens"] <= a["seslm.tokens"], a
    c = a["seslm.compute_seconds"]
    dur = (int(b["endTimeUnixNano"]) - int(b["startTimeUnixNano"])) * 1e-9
    assert c > 0 and abs(c - dur) < 1e-3, (c, dur)
    for r in mine:
        assert int(r["startTimeUnixNano"]) - 10**6 <= int(b["startTimeUnixNano"]) and \
            int(b["endTimeUnixNano"]) <= int(r["endTimeUnixNano"]) + 10**6, "a batch outside a request it served"
        assert r["attrs"]["seslm.compute_seconds"] >= c - 1e-3, (r["attrs"], c)
assert set(linked) == set(req), f"{len(req) - len(linked)} request span(s) no batch links"
for s in spans[:3]: # alone in the node: a batch of its own
    b = linked[(s["span"]["traceId"], s["span"]["spanId"])]
    assert b["attrs"]["seslm.requests"] == 1 and b["attrs"]["seslm.texts"] == s["span"]["attrs"]["seslm.texts"], b
print(f"ok: {len(batches)} batch spans link all {len(req)} request spans; requests per batch:",
      sorted(b["attrs"]["seslm.requests"] for b in batches))
PY
python3 - "$TMP/spans.jsonl.metrics" "$TMP/scrape.txt" "$TMP/responses.jsonl" "$model" <<'PY' || fail "metrics (above)"
import json, re, sys
exports = sorted((json.loads(l) for l in open(sys.argv[1])),
                 key=lambda e: max(p["time"] for m in e["metrics"].values() for p in m["points"]))
scrape = {}
for line in open(sys.argv[2]):
    m = re.fullmatch(r'([a-z_]+)(?:\{(.*)\})? (\S+)\n', line)
    if m and not line.startswith("#"):
        labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(2) or "")))
        scrape[(m.group(1), labels)] = float(m.group(3))
resp = [json.loads(l) for l in open(sys.argv[3])]
model = sys.argv[4]
assert len(exports) >= 3, f"{len(exports)} metric exports (interval 1 s, ~3 s up, one more at shutdown)"

def series(e):
    out = {}
    for name, m in e["metrics"].items():
        for p in m["points"]:
            key = (name, tuple(sorted(p["attrs"].items())))
            out[key] = (m["type"], p["start"], p["value"] if "value" in p else p["count"])
    return out

for e in exports:
    assert e["resource"]["service.name"] == "seslm-serve" and e["resource"]["host.name"] == "otlp-node", e["resource"]
    assert e["resource"]["service.instance.id"] == "otlp-node", e["resource"]
prev = {}
for e in exports: # cumulative: same start, never down (histograms: their count)
    for k, (typ, start, v) in series(e).items():
        if typ != "gauge" and k in prev:
            assert prev[k][1] == start and v >= prev[k][2], (k, prev[k], (typ, start, v))
    prev.update(series(e))
final = series(exports[-1])
def fin(name, **a):
    return final[(name, tuple(sorted(a.items())))]
for name, typ in [("seslm_http_requests_total", "sum"), ("seslm_embed_tokens_total", "sum"),
                  ("seslm_http_request_duration_seconds", "histogram"), ("seslm_model_info", "gauge"),
                  ("seslm_otlp_spans_total", "sum"), ("seslm_batch_duration_seconds", "histogram"),
                  ("seslm_intent_in_scope", "histogram")]:
    assert exports[-1]["metrics"][name]["type"] == typ, (name, exports[-1]["metrics"][name]["type"])
# nothing embedded between the scrape and the final export: the same values
same = [("seslm_embed_requests_total", {"model": model}), ("seslm_embed_texts_total", {"model": model}),
        ("seslm_embed_tokens_total", {"model": model}), ("seslm_http_requests_total", {"path": "/v1/embed", "code": "200"}),
        ("seslm_model_reloads_total", {"result": "success"})]
for name, a in same:
    got, want = fin(name, **a)[2], scrape[(name, tuple(sorted(a.items())))]
    assert got == want, f"{name}{a}: OTLP {got}, /metrics {want}"
assert fin("seslm_http_request_duration_seconds", path="/v1/embed")[2] == \
    scrape[("seslm_http_request_duration_seconds_count", (("path", "/v1/embed"),))] == len(resp)
assert fin("seslm_embed_texts_total", model=model)[2] == sum(r["n"] for r in resp)
# no intent head on this node: the in-scope histogram is exported empty, as /metrics shows it
assert fin("seslm_intent_in_scope")[2] == scrape[("seslm_intent_in_scope_count", ())] == 0
assert fin("seslm_embed_tokens_total", model=model)[2] == sum(r["n_tokens"] for r in resp)
# what the scrape itself moves (it is counted once answered), or the exporter since: not below it, close
n_spans = sum(1 for _ in open(sys.argv[1].replace(".metrics", "")))
for name, a, slack in [("seslm_http_requests_total", {"path": "/metrics", "code": "200"}, 1),
                       ("seslm_otlp_spans_total", {"result": "exported"}, n_spans),
                       ("seslm_otlp_metric_exports_total", {"result": "exported"}, 1)]:
    got, want = fin(name, **a)[2], scrape.get((name, tuple(sorted(a.items()))), 0) # the first scrape: not yet listed
    assert want <= got <= want + slack, f"{name}{a}: OTLP {got}, /metrics {want}"
assert fin("seslm_otlp_spans_total", result="dropped")[2] == 0
info = [k[1] for k in final if k[0] == "seslm_model_info"]
assert len(info) == 1 and dict(info[0])["model"] == model and final[("seslm_model_info", info[0])][2] == 1, info
assert exports[-1]["metrics"]["seslm_model_info"]["unit"] == "", "a unit on an info gauge (Prometheus: _ratio)"
print(f"ok: {len(exports)} metric exports, monotone; the final one matches /metrics:",
      {n: fin(n, **a)[2] for n, a in same[:3]})
PY

# ---- metrics off with --otlp-metrics-interval 0: the spans still go ------------------------------------
start_receiver "$TMP/m0.jsonl"
start_node "$TMP/m0.log" --otlp-endpoint "http://127.0.0.1:$RPORT" --otlp-metrics-interval 0
curl -s -o /dev/null -d '{"text":"no metrics for this one"}' "$URL/v1/embed"
sleep 1.5
exports=$(curl -s "$URL/metrics" | grep '^seslm_otlp_metric_exports_total{result="exported"}' | awk '{print $NF}')
stop_node
stop_receiver
ok; [ "$exports" = "0" ] || fail "metric exports with interval 0: '$exports'"
ok; [ ! -e "$TMP/m0.jsonl.metrics" ] || fail "the receiver got metrics with --otlp-metrics-interval 0"
ok; [ "$(wc -l <"$TMP/m0.jsonl" 2>/dev/null)" -eq 2 ] || fail "interval 0: expected 2 spans (request + batch), got $(wc -l <"$TMP/m0.jsonl" 2>/dev/null); $(tail -c 400 "$TMP/m0.log")"
ok; ! grep -q "OTLP metrics" "$TMP/m0.log" || fail "the node announced a metrics export with interval 0"

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
