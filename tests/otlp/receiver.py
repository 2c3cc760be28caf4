#!/usr/bin/env python3
"""receiver.py — a small OTLP/HTTP receiver for tests/cli/test_otlp.sh, built on the published OTLP
protobuf definitions (opentelemetry-proto, tests/otlp/requirements.txt; tests/otlp/setup_venv.sh).

Accepts POST /v1/traces with Content-Type application/json, the OTLP JSON encoding of
ExportTraceServiceRequest (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding):
  * the body is parsed into the official ExportTraceServiceRequest message by protobuf's JSON parser,
    which refuses unknown fields, wrong types and bad enum values;
  * what OTLP JSON does differently from the proto3 JSON mapping is checked on the raw JSON: traceId and
    spanId are hex strings (32 / 16 characters, not all zero; proto3 would take base64), and 64-bit
    integers (times, intValue) are decimal strings;
and appends one JSON line per span to OUT: {"resource": {...}, "scope": ..., "span": {..., "attrs":
{key: value}}}, the values read from the protobuf message. A malformed request is answered 400 and
written to OUT.errors. --hang: accept connections and never answer (a collector that hangs).
Prints the bound port on stdout.

usage: receiver.py OUT [--hang]
"""
import json, re, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

out_path = sys.argv[1]
hang = "--hang" in sys.argv[2:]
lock = threading.Lock()


def pvalue(v):
    """An OTLP AnyValue message as a Python value."""
    k = v.WhichOneof("value")
    assert k in ("string_value", "bool_value", "int_value", "double_value"), k
    return getattr(v, k)


def raw_checks(doc):
    """What the OTLP JSON encoding requires beyond proto3's JSON mapping (on the raw document)."""
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                assert re.fullmatch(r"[0-9a-f]{32}", sp["traceId"]) and sp["traceId"] != "0" * 32, sp["traceId"]
                assert re.fullmatch(r"[0-9a-f]{16}", sp["spanId"]) and sp["spanId"] != "0" * 16, sp["spanId"]
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
                                       "attrs": {a.key: pvalue(a.value) for a in sp.attributes}}})
    return spans


class H(BaseHTTPRequestHandler):
    def do_POST(self):
        if hang:
            time.sleep(3600)
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            assert self.path == "/v1/traces", self.path
            assert self.headers.get("Content-Type", "").startswith("application/json"), self.headers.get("Content-Type")
            spans = check(body)
        except Exception as e:  # noqa: BLE001 - report anything malformed
            with lock, open(out_path + ".errors", "a") as f:
                f.write(f"{e!r}: {body[:300]!r}\n")
            self.send_response(400)
            self.end_headers()
            return
        with lock, open(out_path, "a") as f:
            for s in spans:
                f.write(json.dumps(s) + "\n")
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
