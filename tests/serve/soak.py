#!/usr/bin/env python3
"""soak.py — mixed traffic against a running `seslm serve` for a bounded time (standard library only).

  python3 tests/serve/soak.py --port P --pid PID --seconds S [--clients 4] [--reload-every 20]
      [--feedback-labels a,b,...] [--telemetry-dir D] [--json OUT]

Clients loop over: POST /v1/embed (1..8 texts), POST /v1/intent and /v1/feedback (with --feedback-labels),
GET /healthz and /metrics; one more client posts /admin/reload every --reload-every seconds. The server's
RSS (/proc/PID/status VmRSS) is sampled every second. Checks (exit 1 when one fails):
  * no failed request (every answer 200; a connection error counts as a failure);
  * RSS after warm-up (the first 20% of the run) grows by at most --max-growth-mb (least-squares slope
    over the run extrapolated, and last-minus-first median of 5 samples);
  * with --telemetry-dir, at least one window dump was written during the run.
Prints the figures: requests by kind, failures, p50 / p99 latency per kind, RSS over time."""
import argparse, http.client, json, os, random, sys, threading, time

TEXTS = [l.strip() for l in open(os.path.join(os.path.dirname(__file__), "../../data/bench/short.txt")) if l.strip()]


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))] if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--reload-every", type=float, default=20)
    ap.add_argument("--feedback-labels", default="")
    ap.add_argument("--telemetry-dir")
    ap.add_argument("--max-growth-mb", type=float, default=16)
    ap.add_argument("--feedback-token", default="", help="sent as Authorization: Bearer on /v1/feedback")
    ap.add_argument("--json")
    a = ap.parse_args()
    labels = [l for l in a.feedback_labels.split(",") if l]
    stop = threading.Event()
    lock = threading.Lock()
    lat, fails, codes = {}, [], {}

    def call(kind, method, path, body=None):
        t0 = time.perf_counter()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if kind == "feedback" and a.feedback_token:
            headers["Authorization"] = "Bearer " + a.feedback_token
        try:
            c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=60)
            c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
            r = c.getresponse()
            data = r.read()
            c.close()
            code = r.status
        except OSError as e:
            code, data = 0, str(e).encode()
        ms = (time.perf_counter() - t0) * 1e3
        with lock:
            lat.setdefault(kind, []).append(ms)
            codes[(kind, code)] = codes.get((kind, code), 0) + 1
            if code != 200:
                fails.append(f"{kind}: {code} {data[:200]!r}")
        return code, data

    def client(seed):
        rng = random.Random(seed)
        while not stop.is_set():
            k = rng.random()
            if k < 0.55:
                n = rng.randint(1, 8)
                code, data = call("embed", "POST", "/v1/embed", {"texts": rng.sample(TEXTS, n)})
                if code == 200:
                    d = json.loads(data)
                    if len(d["embeddings"]) != n or any(len(v) != d["dim"] for v in d["embeddings"]):
                        with lock:
                            fails.append("embed: wrong shape")
            elif k < 0.7 and labels:
                call("intent", "POST", "/v1/intent", {"text": rng.choice(TEXTS)})
            elif k < 0.75 and labels:
                call("feedback", "POST", "/v1/feedback", {"text": rng.choice(TEXTS), "intent": rng.choice(labels)})
            elif k < 0.9:
                call("healthz", "GET", "/healthz")
            else:
                call("metrics", "GET", "/metrics")

    def reloader():
        while not stop.wait(a.reload_every):
            call("reload", "POST", "/admin/reload", {})

    t_start = time.monotonic()
    dumps0 = set(os.listdir(a.telemetry_dir)) if a.telemetry_dir else set()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(a.clients)]
    threads.append(threading.Thread(target=reloader, daemon=True))
    for t in threads:
        t.start()
    samples = []  # (seconds, MB)
    while time.monotonic() - t_start < a.seconds:
        samples.append((time.monotonic() - t_start, rss_mb(a.pid)))
        time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(120)
    samples.append((time.monotonic() - t_start, rss_mb(a.pid)))

    warm = [s for s in samples if s[0] >= 0.2 * a.seconds]
    xs, ys = [s[0] for s in warm], [s[1] for s in warm]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / max(1e-9, sum((x - mx) ** 2 for x in xs))
    first5, last5 = sorted(ys[:5])[len(ys[:5]) // 2], sorted(ys[-5:])[len(ys[-5:]) // 2]
    n_total = sum(len(v) for v in lat.values())
    figures = {
        "seconds": round(time.monotonic() - t_start, 1),
        "requests": n_total,
        "failed": len(fails),
        "by_kind": {k: {"n": len(v), "p50_ms": round(pct(v, 0.5), 2), "p99_ms": round(pct(v, 0.99), 2)}
                    for k, v in sorted(lat.items())},
        "p99_ms_all": round(pct([x for v in lat.values() for x in v], 0.99), 2),
        "rss_mb": {"start": round(samples[0][1], 1), "after_warmup_median5": round(first5, 1),
                   "end_median5": round(last5, 1), "max": round(max(s[1] for s in samples), 1),
                   "slope_mb_per_hour_after_warmup": round(slope * 3600, 2)},
        "rss_timeline_mb": [round(s[1], 1) for s in samples[:: max(1, len(samples) // 30)]],
    }
    bad = list(fails[:10])
    growth = max(last5 - first5, slope * (a.seconds * 0.8))
    if growth > a.max_growth_mb:
        bad.append(f"RSS grew {growth:.1f} MB after warm-up (limit {a.max_growth_mb})")
    if a.telemetry_dir:
        new = set(os.listdir(a.telemetry_dir)) - dumps0
        figures["dumps_written"] = len(new)
        if not new:
            bad.append("no telemetry dump was written during the run")
    print(json.dumps(figures, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(figures, f, indent=1)
    for b in bad:
        print("FAIL:", b, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
