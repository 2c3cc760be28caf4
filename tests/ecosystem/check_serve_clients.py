#!/usr/bin/env python3
"""The official clients against a running `seslm serve`: the vectors must be `seslm embed`'s.

Usage: check_serve_clients.py URL REFERENCE.jsonl LONG_TEXT_FILE
  REFERENCE.jsonl: `seslm embed` output for TEXTS below, then for the long text (last line).
Checks (each failure is printed; exit 1 if any):
  openai:          models.list(); embeddings.create() with the client's default (base64) and with
                   encoding_format="float"; usage tokens; an over-long input -> BadRequestError
                   (context_length_exceeded), and with extra_body truncate -> the truncated vector
  huggingface_hub: InferenceClient(base_url).feature_extraction() single and batched; over-long -> 413,
                   truncate=True -> the truncated vector; normalize=False on a normalising model -> 422
  KServe v2:       live / ready / model metadata / infer (plain HTTP: the protocol is JSON over REST)
  OpenAPI:         /openapi.json is a valid OpenAPI 3 document (openapi-spec-validator) listing every path
"""
import json
import sys
import urllib.error
import urllib.request

import numpy as np
import openai
import huggingface_hub
from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError
from openapi_spec_validator import validate

TEXTS = ["The quick brown fox jumps over the lazy dog.", "Héllo wörld — ünïcode", "", "数据 科学 ist toll 🙂",
         "How do I reset my password?"]
failures = 0


def check(cond, what):
    global failures
    print(("ok   " if cond else "FAIL ") + what)
    failures += 0 if cond else 1


def close(a, b, what):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return check(False, f"{what}: shape {a.shape} vs {b.shape}")
    cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    err = float(np.abs(a - b).max())
    # the same forward pass; only the batch composition may differ (summation order): 1e-5
    check(bool(cos.min() >= 0.99999) and err <= 1e-5, f"{what}: worst cosine {cos.min():.8f}, max abs {err:.2e}")


def http(url, body=None):
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def main():
    url, ref_path, long_path = sys.argv[1], sys.argv[2], sys.argv[3]
    ref = [json.loads(l)["embedding"] for l in open(ref_path)]
    ref_long = np.asarray(ref.pop())
    ref = np.asarray(ref)
    long_text = open(long_path, encoding="utf-8").read()
    print(f"openai {openai.__version__}, huggingface_hub {huggingface_hub.__version__}")

    # ---- OpenAI
    oc = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    models = [m.id for m in oc.models.list()]
    check(len(models) == 1, f"openai models.list() -> {models}")
    mid = models[0]
    r = oc.embeddings.create(model=mid, input=TEXTS)  # the client asks for base64 and decodes it
    close([d.embedding for d in r.data], ref, "openai embeddings.create (base64)")
    check([d.index for d in r.data] == list(range(len(TEXTS))), "openai: indices in order")
    check(r.usage.prompt_tokens > len(TEXTS) * 2 and r.usage.total_tokens == r.usage.prompt_tokens,
          f"openai: usage {r.usage.prompt_tokens} tokens")
    r = oc.embeddings.create(model=mid.split("@")[0], input=TEXTS[0], encoding_format="float")
    close([r.data[0].embedding], ref[:1], "openai embeddings.create (float, model by name)")
    try:
        oc.embeddings.create(model=mid, input=[TEXTS[0], long_text])
        check(False, "openai: over-long input accepted")
    except openai.BadRequestError as e:
        check(e.status_code == 400 and "context_length_exceeded" in str(e.body), f"openai: over-long input -> 400 {e.body}")
    r = oc.embeddings.create(model=mid, input=long_text, extra_body={"truncate": True})
    close([r.data[0].embedding], [ref_long], "openai: over-long input with truncate")
    try:
        oc.embeddings.create(model="no-such-model", input="x")
        check(False, "openai: unknown model accepted")
    except openai.NotFoundError:
        check(True, "openai: unknown model -> 404")

    # ---- TEI through huggingface_hub
    hc = InferenceClient(base_url=url)
    close(hc.feature_extraction(TEXTS[0]), ref[:1], "huggingface_hub feature_extraction (one text)")
    close(np.concatenate([hc.feature_extraction(t) for t in TEXTS]), ref, "huggingface_hub feature_extraction (each text)")
    try:
        hc.feature_extraction(long_text)
        check(False, "huggingface_hub: over-long input accepted")
    except HfHubHTTPError as e:
        check(e.response.status_code == 413, f"huggingface_hub: over-long input -> {e.response.status_code}")
    close(hc.feature_extraction(long_text, truncate=True), [ref_long], "huggingface_hub: over-long input, truncate=True")
    try:
        hc.feature_extraction(TEXTS[0], normalize=False)
        check(False, "huggingface_hub: normalize=False silently ignored")
    except HfHubHTTPError as e:
        check(e.response.status_code == 422, f"huggingface_hub: normalize=False refused ({e.response.status_code})")
    code, batch = http(url + "/embed", {"inputs": TEXTS})
    close(batch, ref, f"TEI POST /embed batch ({code})")
    code, info = http(url + "/info")
    check(code == 200 and info["model_id"] == mid and info["max_input_length"] == 256, f"TEI /info {code}")
    code, _ = http(url + "/health")
    check(code == 200, f"TEI /health {code}")

    # ---- KServe v2
    code, live = http(url + "/v2/health/live")
    check(code == 200 and live == {"live": True}, f"KServe live {code} {live}")
    code, ready = http(url + "/v2/health/ready")
    check(code == 200 and ready == {"ready": True}, f"KServe ready {code} {ready}")
    code, meta = http(url + "/v2/models/" + mid.split("@")[0])
    check(code == 200 and meta["outputs"][0]["shape"] == [-1, 384], f"KServe model metadata {code}")
    code, out = http(url + f"/v2/models/{mid.split('@')[0]}/infer",
                     {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(TEXTS)], "data": TEXTS}]})
    o = out["outputs"][0] if code == 200 else {"shape": None, "data": []}
    check(code == 200 and o["shape"] == [len(TEXTS), 384], f"KServe infer {code}")
    if code == 200:
        close(np.asarray(o["data"]).reshape(o["shape"]), ref, "KServe infer vectors")
    code, _ = http(url + "/v2/models/other/infer", {"inputs": []})
    check(code == 404, f"KServe unknown model -> {code}")

    # ---- OpenAPI
    code, doc = http(url + "/openapi.json")
    try:
        validate(doc)
        valid = True
    except Exception as e:  # the validator's own exception types
        print(e)
        valid = False
    check(code == 200 and valid, "openapi.json is a valid OpenAPI 3 document")
    for p in ("/v1/embed", "/v1/embeddings", "/v1/models", "/embed", "/info", "/health", "/v2/health/live",
              "/v2/health/ready", "/v2/models/{model}/infer", "/openapi.json"):
        check(p in doc.get("paths", {}), f"openapi.json documents {p}")
    print(f"{failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
