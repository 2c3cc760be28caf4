#!/usr/bin/env python3
"""load_test.py — drives a running `seslm serve` through blue-green reloads under load (stdlib only).

    python3 tests/serve/load_test.py --url http://127.0.0.1:PORT \
        --model-a DIR_A --model-b DIR_B --broken DIR_BROKEN [--clients 4] [--max-seconds 30]

Client threads (one keep-alive connection each) POST /v1/embed in a loop while this process reloads
the server through POST /admin/reload, alternating between DIR_B and DIR_A, with one reload from the
BROKEN directory in the middle. Before each reload every client completes at least two requests on the
model then serving, so each client sees every model generation. Checks:

  * zero failed requests: every /v1/embed answers 200 with one 384-float row per text;
  * with --oracle DIR (tests/fixtures/oracle: sentence-transformers' own embeddings of its inputs), the
    texts come from there and every returned row must equal the reference (cosine >= 0.99999, max abs
    error <= 1e-4, the tolerance of test_model_oracle) across every reload, not only in count and width;
  * the good reloads answer 200 naming the new and the previous id ("<basename>@<sha12>"); the broken
    one answers 4xx/5xx with an error and the old model keeps serving (same id before and after);
  * per client, the model ids of its responses (in completion order) change exactly at the reloads:
    the list of transitions equals the list of successful reloads, in order, and a request that
    started after a reload answered and ended before the next one began names that reload's model.

Traffic goes to the given loopback URL only; the run stops by itself (--max-seconds, default 30).
Exit status 0 when every check passes, 1 otherwise.
"""
import argparse
import http.client
import json
import os
import sys
import threading
import time
import math
import struct
import urllib.parse

TEXTS = [
    "A man is eating food.",
    "The quick brown fox jumps over the lazy dog.",
    "how do i transfer money to my savings account",
    "Un homme mange de la nourriture.",
    "Le café est délicieux ☕ and so is the 蛋糕.",
    "",
    "short",
    "Blue-green deployments swap the live model without dropping requests.",
]


def model_id_prefix(d):
    return os.path.basename(os.path.normpath(d)) + "@"


class Client(threading.Thread):
    def __init__(self, idx, host, port, deadline, stop):
        super().__init__(daemon=True)
        self.idx, self.host, self.port, self.deadline, self.stop = idx, host, port, deadline, stop
        self.records = []  # (t_start, t_end, model id)
        self.failures = []
        self.lock = threading.Lock()
        self.count = 0

    def done_since(self, t):
        with self.lock:
            return sum(1 for r in self.records if r[0] > t)

    def run(self):
        conn = None
        k = self.idx
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            n = 1 + (k % 3)
            picks = [(k + j) % len(TEXTS) for j in range(n)]
            texts = [TEXTS[i] for i in picks]
            k += 1
            body = json.dumps({"texts": texts})
            t0 = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                conn.request("POST", "/v1/embed", body=body, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                t1 = time.monotonic()
                if resp.status != 200:
                    self.failures.append("HTTP %d: %s" % (resp.status, data[:200]))
                    continue
                o = json.loads(data)
                emb = o["embeddings"]
                if o["dim"] != 384 or len(emb) != n or any(len(r) != 384 for r in emb):
                    self.failures.append("malformed answer: dim %s, %d rows" % (o.get("dim"), len(emb)))
                    continue
                if REFERENCE:
                    for row, i in zip(emb, picks):
                        ref = REFERENCE[i]
                        dot = sum(a * b for a, b in zip(row, ref))
                        cos = dot / math.sqrt(sum(a * a for a in row) * sum(b * b for b in ref))
                        err = max(abs(a - b) for a, b in zip(row, ref))
                        if not (cos >= 0.99999 and err <= 1e-4):
                            self.failures.append("%s: text %r: cosine %.7f, max abs error %.2g against the reference"
                                                 % (o["model"], TEXTS[i][:40], cos, err))
                if resp.getheader("X-Seslm-Model") != o["model"]:
                    self.failures.append("header X-Seslm-Model %r != body model %r" % (resp.getheader("X-Seslm-Model"), o["model"]))
                with self.lock:
                    self.records.append((t0, t1, o["model"]))
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except Exception as e:  # a failed request: the server must not drop any
                self.failures.append("%s: %s" % (type(e).__name__, e))
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()


def post(host, port, path, obj, timeout=120):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", path, body=json.dumps(obj), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def get_json(host, port, path):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def compress(ids):
    out = []
    for i in ids:
        if not out or out[-1] != i:
            out.append(i)
    return out


REFERENCE = []


def load_oracle(d, count=24):
    """The first `count` short inputs of the oracle fixture with their reference embeddings."""
    man = json.load(open(os.path.join(d, "manifest.json")))
    dim = man["dim"]
    raw = open(os.path.join(d, "embeddings.f32"), "rb").read()
    rows = []
    for line in open(os.path.join(d, "inputs.jsonl"), encoding="utf-8"):
        o = json.loads(line)
        if len(o["text"]) > 200:  # keep the requests light
            continue
        vec = struct.unpack_from("<%df" % dim, raw, o["id"] * dim * 4)
        rows.append((o["text"], list(vec)))
        if len(rows) == count:
            break
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--model-a", required=True, help="the directory the server is serving now")
    ap.add_argument("--model-b", required=True, help="a second model directory (another basename)")
    ap.add_argument("--broken", required=True, help="a directory that fails to load")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--max-seconds", type=float, default=30)
    ap.add_argument("--per-generation", type=int, default=2, help="requests each client completes per model")
    ap.add_argument("--oracle", help="tests/fixtures/oracle: embed its texts and compare with its embeddings")
    a = ap.parse_args()
    if a.oracle:
        global TEXTS
        rows = load_oracle(a.oracle)
        TEXTS = [t for t, _ in rows]
        REFERENCE.extend(v for _, v in rows)

    u = urllib.parse.urlparse(a.url)
    host, port = u.hostname, u.port
    if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
        print("load_test: refusing a non-loopback target %s" % host, file=sys.stderr)
        return 1
    start = time.monotonic()
    deadline = start + a.max_seconds
    problems = []

    st, h = get_json(host, port, "/healthz")
    if st != 200 or not h["model"].startswith(model_id_prefix(a.model_a)):
        print("load_test: the server must be serving %s first; /healthz says %s %s" % (a.model_a, st, h), file=sys.stderr)
        return 1
    current = h["model"]

    stop = threading.Event()
    clients = [Client(i, host, port, deadline, stop) for i in range(a.clients)]
    for c in clients:
        c.start()

    def wait_progress(since):
        while time.monotonic() < deadline:
            if all(c.done_since(since) >= a.per_generation for c in clients):
                return True
            if all(not c.is_alive() for c in clients):
                return False
            time.sleep(0.005)
        return False

    plan = [a.model_b, a.model_a, a.broken, a.model_b, a.model_a, a.model_b]
    reloads = []  # (t_send, t_recv, previous id, new id) of the successful ones
    since = time.monotonic()
    for d in plan:
        if not wait_progress(since):
            problems.append("clients made no progress before the reload to %s (time limit or all clients died)" % d)
            break
        t_send = time.monotonic()
        status, body = post(host, port, "/admin/reload", {"model": d})
        t_recv = time.monotonic()
        try:
            o = json.loads(body)
        except ValueError:
            problems.append("reload to %s: answer is not JSON: %r" % (d, body[:200]))
            break
        if d == a.broken:
            if status < 400 or "error" not in o:
                problems.append("reload from the broken dir answered %d %s; expected 4xx/5xx with an error" % (status, o))
            st, h = get_json(host, port, "/healthz")
            if st != 200 or h["model"] != current:
                problems.append("after the failed reload /healthz says %s %s; expected %s" % (st, h, current))
            print("load_test: reload from %s failed as it should: %d %s" % (d, status, o.get("error", "")[:160]))
        else:
            if status != 200 or not o.get("model", "").startswith(model_id_prefix(d)) or o.get("previous") != current:
                problems.append("reload to %s answered %d %s (previous should be %s)" % (d, status, o, current))
                break
            reloads.append((t_send, t_recv, current, o["model"]))
            print("load_test: reload %d: %s -> %s in %.3f s" % (len(reloads), current, o["model"], t_recv - t_send))
            current = o["model"]
        since = t_recv
    if not problems and not wait_progress(since):
        problems.append("clients made no progress after the last reload")
    stop.set()
    for c in clients:
        c.join(timeout=60)

    # ---- checks ------------------------------------------------------------------------------------
    expected = [(r[2], r[3]) for r in reloads]
    if len(reloads) < 5:
        problems.append("only %d successful reloads (at least 5 planned)" % len(reloads))
    total = 0
    for c in clients:
        total += len(c.records)
        for f in c.failures[:5]:
            problems.append("client %d: failed request: %s" % (c.idx, f))
        if len(c.failures) > 5:
            problems.append("client %d: %d more failed requests" % (c.idx, len(c.failures) - 5))
        recs = sorted(c.records, key=lambda r: r[1])
        seq = compress([r[2] for r in recs])
        got = list(zip(seq, seq[1:]))
        if got != expected:
            problems.append("client %d: model id transitions %s != the reloads %s" % (c.idx, got, expected))
        # a request entirely between reload k's answer and reload k+1's start ran on reload k's model
        for t0, t1, mid in recs:
            for k, r in enumerate(reloads):
                nxt = reloads[k + 1][0] if k + 1 < len(reloads) else float("inf")
                if t0 > r[1] and t1 < nxt and mid != r[3]:
                    problems.append("client %d: a request after reload %d answered by %s, not %s" % (c.idx, k + 1, mid, r[3]))
    lat = sorted(r[1] - r[0] for c in clients for r in c.records)
    if lat:
        p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
        print("load_test: %d requests from %d clients in %.1f s, latency p50 %.1f ms, p99 %.1f ms"
              % (total, len(clients), time.monotonic() - start, p(0.5), p(0.99)))
    for p_ in problems:
        print("load_test: FAIL: %s" % p_, file=sys.stderr)
    if problems:
        return 1
    print("load_test: %d reloads (+1 failed) seen exactly once by every client; zero failed requests" % len(reloads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
