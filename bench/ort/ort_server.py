#!/usr/bin/env python3
"""A minimal HTTP embedding server around ONNX Runtime: the serving peer of bench/serve_load.sh.

Usage: ort_server.py MODEL_DIR --port P [--threads N] [--graph fused|plain]

POST /v1/embed {"texts": [...]} -> {"embeddings": [[...], ...], "n_tokens": N}; GET /healthz.
One thread per connection (http.server.ThreadingHTTPServer); each request tokenizes its own texts (HF
tokenizers, padded to its longest) and calls session.run, which releases the GIL, so concurrent requests
run concurrently on ORT's intra-op pool (intra_op_num_threads=N). No cross-request batching: that is what
"minimal" means here, and it is stated beside the figures in bench/RESULTS.md.
"""
import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from ort_peer import OrtEncoder  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--graph", choices=["fused", "plain"], default="fused")
    a = ap.parse_args()
    onnx = Path(a.model_dir) / "onnx" / ("model_fused.onnx" if a.graph == "fused" else "model.onnx")
    enc = OrtEncoder(a.model_dir, threads=a.threads, onnx_path=onnx)
    enc.encode(["warm up"])

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def do_GET(self):
            self.reply(200 if self.path == "/healthz" else 404, {"status": "ok"})

        def do_POST(self):
            if self.path != "/v1/embed":
                return self.reply(404, {"error": "not found"})
            try:
                n = int(self.headers.get("Content-Length", "0"))
                req = json.loads(self.rfile.read(n))
                texts = req["texts"] if "texts" in req else [req["text"]]
                if not texts or not all(isinstance(t, str) for t in texts):
                    raise ValueError("texts must be a non-empty list of strings")
            except Exception as e:  # noqa: BLE001 - any bad body is a 400
                return self.reply(400, {"error": str(e)})
            ids, am = enc.tokenize(texts)
            emb = enc.run(ids, am)
            self.reply(200, {"embeddings": emb.tolist(), "n_tokens": int(am.sum())})

    class Server(ThreadingHTTPServer):
        request_queue_size = 256  # listen backlog: the default 5 drops SYNs at 64 concurrent clients

    srv = Server(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    print(f"ort_server: listening on 127.0.0.1:{a.port}", file=sys.stderr, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
