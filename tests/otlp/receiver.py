#!/usr/bin/env python3
"""receiver.py — a small OTLP/HTTP receiver for tests/cli/test_otlp.sh, built on the published OTLP
protobuf definitions (opentelemetry-proto, tests/otlp/requirements.txt; tests/otlp/setup_venv.sh).

Accepts POST /v1/traces and POST /v1/metrics with Content-Type application/json, the OTLP JSON encoding
of ExportTraceServiceRequest / ExportMetricsServiceRequest
(https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding):
  * the body is parsed into the official message by protobuf's JSON parser, which refuses unknown
    fields, wrong types and bad enum values;
  * what OTLP JSON does differently from the proto3 JSON mapping is checked on the raw JSON: traceId and
    spanId (of spans and of their links) are hex strings (32 / 16 characters, not all zero; proto3 would
    take base64), and 64-bit integers (times, intValue, asInt, count, bucketCounts) are decimal strings;
  * metrics: every Sum is CUMULATIVE and monotonic (the node exports counters only as Sums), every
    Histogram CUMULATIVE with bounds + 1 bucket counts that add up to its count, every point has a time
    and (Sum, Histogram) a start time not after it.
Appends one JSON line per span to OUT: {"resource": {...}, "scope": ..., "span": {..., "attrs": {key:
value}, "links": [{"traceId", "spanId"}]}}, and one per metrics request to OUT.metrics: {"resource":
{...}, "metrics": {name: {"type": "sum"|"gauge"|"histogram", "unit", "points": [{"attrs", "start",
"time", "value" (sum, gauge) or "count", "sum", "buckets", "bounds" (histogram)}]}}}, the values read
from the protobuf message. A malformed request is answered 400 and written to OUT.errors. --hang: accept
connections and never answer (a collector that hangs). Prints the bound port on stdout.

usage: receiver.py OUT [--hang]   (writes OUT, OUT.metrics, OUT.errors)
"""
import json, re, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

out_path = sys.argv[1]
hang = "--hang" in sys.argv[2:]
lock = threading.Lock()


def pvalue(v):
    """An OTLP AnyValue message as a Python value."""
    k = v.WhichOneof("value")
    assert k in ("string_value", "bool_value", "int_value", "double_value"), k
    return getattr(v, k)


def hex_ids(x):
    assert re.fullmatch(r"[0-9a-f]{32}", x["traceId"]) and x["traceId"] != "0" * 32, x["traceId"]
    assert re.fullmatch(r"[0-9a-f]{16}", x["spanId"]) and x["spanId"] != "0" * 16, x["spanId"]


def u64str(v):
    assert isinstance(v, str) and re.fullmatch(r"\d+", v), v


def raw_checks(doc):
    """What the OTLP JSON encoding requires beyond proto3's JSON mapping (on the raw document)."""
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                hex_ids(sp)
                for link in sp.get("links", []):
                    hex_ids(link)
                for k in ("startTimeUnixNano", "endTimeUnixNano"):
                    assert isinstance(sp[k], str) and re.fullmatch(r"\d+", sp[k]), (k, sp[k])
                for a in sp["attributes"]:
                    if "intValue" in a["value"]:
                        assert isinstance(a["value"]["intValue"], str), a


def check(body):
    doc = json.loads(body)
    raw_checks(doc)
    req = json_format.Parse(body, ExportTraceServiceRequest())  # strict: unknown fields are errors
    spans = []
    for rs, rsj in zip(req.resource_spans, doc["resourceSpans"]):
        res = {a.key: pvalue(a.value) for a in rs.resource.attributes}
        for ss, ssj in zip(rs.scope_spans, rsj["scopeSpans"]):
            for sp, spj in zip(ss.spans, ssj["spans"]):
                assert 0 < sp.start_time_unix_nano <= sp.end_time_unix_nano, (sp.start_time_unix_nano, sp.end_time_unix_nano)
                spans.append({"resource": res, "scope": {"name": ss.scope.name, "version": ss.scope.version},
                              "span": {"traceId": spj["traceId"], "spanId": spj["spanId"], "name": sp.name,
                                       "kind": sp.kind, "startTimeUnixNano": str(sp.start_time_unix_nano),
                                       "endTimeUnixNano": str(sp.end_time_unix_nano),
                                       "status": {"code": sp.status.code},
                                       "attrs": {a.key: pvalue(a.value) for a in sp.attributes},
                                       "links": [{"traceId": lj["traceId"], "spanId": lj["spanId"]}
                                                 for lj in spj.get("links", [])]}})
                assert len(sp.links) == len(spj.get("links", [])), "links"
    return spans


def raw_metric_checks(doc):
    """64-bit integers of the metrics as decimal strings (OTLP JSON), on the raw document."""
    for rm in doc["resourceMetrics"]:
        for sm in rm["scopeMetrics"]:
            for m in sm["metrics"]:
                kind = next(k for k in ("sum", "gauge", "histogram") if k in m)
                for p in m[kind].get("dataPoints", []):
                    u64str(p["timeUnixNano"])
                    if kind != "gauge":
                        u64str(p["startTimeUnixNano"])
                    if kind == "histogram":
                        u64str(p["count"])
                        for c in p["bucketCounts"]:
                            u64str(c)
                    else:
                        u64str(p["asInt"])


def point(p, kind):
    d = {"attrs": {a.key: pvalue(a.value) for a in p.attributes}, "time": p.time_unix_nano,
         "start": p.start_time_unix_nano}
    assert p.time_unix_nano > 0 and (kind == "gauge" or 0 < p.start_time_unix_nano <= p.time_unix_nano), d
    if kind == "histogram":
        assert len(p.bucket_counts) == len(p.explicit_bounds) + 1, (len(p.bucket_counts), len(p.explicit_bounds))
        assert sum(p.bucket_counts) == p.count, (list(p.bucket_counts), p.count)
        assert list(p.explicit_bounds) == sorted(set(p.explicit_bounds)), list(p.explicit_bounds)
        d.update(count=p.count, sum=p.sum, buckets=list(p.bucket_counts), bounds=list(p.explicit_bounds))
    else:
        d["value"] = getattr(p, p.WhichOneof("value"))
    return d


def check_metrics(body):
    doc = json.loads(body)
    raw_metric_checks(doc)
    req = json_format.Parse(body, ExportMetricsServiceRequest())  # strict: unknown fields are errors
    assert len(req.resource_metrics) == 1, len(req.resource_metrics)
    rm = req.resource_metrics[0]
    out = {"resource": {a.key: pvalue(a.value) for a in rm.resource.attributes}, "metrics": {}}
    for sm in rm.scope_metrics:
        for m in sm.metrics:
            kind = m.WhichOneof("data")
            assert kind in ("sum", "gauge", "histogram"), kind
            data = getattr(m, kind)
            if kind == "sum":
                assert data.is_monotonic and data.aggregation_temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE, m.name
            if kind == "histogram":
                assert data.aggregation_temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE, m.name
            assert m.name not in out["metrics"], f"{m.name} twice"
            out["metrics"][m.name] = {"type": kind, "unit": m.unit, "points": [point(p, kind) for p in data.data_points]}
    return out


class H(BaseHTTPRequestHandler):
    def do_POST(self):
        if hang:
            time.sleep(3600)
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            assert self.path in ("/v1/traces", "/v1/metrics"), self.path
            assert self.headers.get("Content-Type", "").startswith("application/json"), self.headers.get("Content-Type")
            if self.path == "/v1/metrics":
                lines, path = [check_metrics(body)], out_path + ".metrics"
            else:
                lines, path = check(body), out_path
        except Exception as e:  # noqa: BLE001 - report anything malformed
            with lock, open(out_path + ".errors", "a") as f:
                f.write(f"{e!r}: {body[:300]!r}\n")
            self.send_response(400)
            self.end_headers()
            return
        with lock, open(path, "a") as f:
            for line in lines:
                f.write(json.dumps(line) + "\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *a):
        pass


srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.daemon_threads = True
print(srv.server_address[1], flush=True)
srv.serve_forever()
