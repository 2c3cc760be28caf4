#!/usr/bin/env python3
"""soak.py — mixed traffic against a running `seslm serve` for a bounded time (standard library only).

  python3 tests/serve/soak.py --port P --pid PID --seconds S [--clients 4] [--reload-every 20]
      [--feedback-labels a,b,...] [--telemetry-dir D] [--json OUT]

Clients loop over: POST /v1/embed (1..8 texts), POST /v1/intent and /v1/feedback (with --feedback-labels),
GET /healthz and /metrics; one more client posts /admin/reload every --reload-every seconds. The server's
RSS (/proc/PID/status VmRSS) is sampled every second. Checks (exit 1 when one fails):
  * no failed request (every answer 200; a connection error counts as a failure);
  * RSS after warm-up (the first 20% of the run) grows by at most --max-growth-mb, judged on its floor
    (the minimum of each window of two reload periods: reloads hold two models for a moment): with 6 windows
    or more, the floor's least-squares slope extrapolated over the run and last-minus-first median of 3
    windows; in a shorter run, the lowest RSS of the last two windows minus that of the first;
  * with --telemetry-dir, at least one window dump was written during the run.
  * malloc's bytes in use (seslm_heap_bytes, when the server exports it) grow by at most
    --max-heap-growth-mb after warm-up (last-minus-first median of 3 window minima): a leak shows here
    even when RSS hides it;
Prints the figures: requests by kind, failures, p50 / p99 latency per kind, RSS over time, and malloc's
bytes in use / free every 5 s (seslm_heap_bytes on /metrics: a leak grows in_use, fragmentation free)."""
import argparse, http.client, json, os, random, sys, threading, time

TEXTS = [l.strip() for l in open(os.path.join(os.path.dirname(__file__), "../../data/bench/short.txt")) if l.strip()]


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def heap_mb(port):
    """malloc's bytes in use and free (seslm_heap_bytes on /metrics), in MB; None when not exported."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
    except (OSError, UnicodeDecodeError):
        return None
    v = {}
    for line in text.splitlines():
        if line.startswith("seslm_heap_bytes{state="):
            v[line.split('"')[1]] = float(line.split()[-1]) / 2**20
    return (v["in_use"], v["free"]) if "in_use" in v and "free" in v else None


def window_min(samples, win):
    """[(window start, min value)] of (seconds, value) samples, in windows of win seconds."""
    out = []
    for s0, v in samples:
        k = int((s0 - samples[0][0]) // win)
        while k >= len(out):
            out.append((samples[0][0] + len(out) * win, float("inf")))
        out[k] = (out[k][0], min(out[k][1], v))
    return [w for w in out if w[1] != float("inf")]


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else float("nan")


def slope(xs, ys):
    if len(xs) < 2:
        return 0.0
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / max(1e-9, sum((x - mx) ** 2 for x in xs))


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
    ap.add_argument("--max-heap-growth-mb", type=float, default=8)
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
    samples, heap = [], []  # (seconds, RSS MB); (seconds, malloc in use MB, malloc free MB)
    next_heap = 0.0
    while time.monotonic() - t_start < a.seconds:
        t = time.monotonic() - t_start
        samples.append((t, rss_mb(a.pid)))
        if t >= next_heap:
            h = heap_mb(a.port)
            if h:
                heap.append((t,) + h)
            next_heap = t + 5.0
        time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(120)
    samples.append((time.monotonic() - t_start, rss_mb(a.pid)))

    # After warm-up (the first 20%), RSS is judged by its floor: the minimum of each window of two reload
    # periods. A reload holds two models for a moment (peaks of +100 MB on a busy machine, lasting as long as
    # the reload takes), so single samples and their least-squares slope follow where the reloads fell,
    # not growth; the floor is what the process keeps between them.
    warm = [s for s in samples if s[0] >= 0.2 * a.seconds]
    win = max(10.0, 2 * a.reload_every)
    floors = window_min(warm, win)  # (window start, min MB)
    ftail = floors[:-1] if len(floors) > 3 else floors  # the last window may be short
    first3 = median([f[1] for f in ftail[:3]])
    last3 = median([f[1] for f in ftail[-3:]])
    fslope = slope([f[0] for f in ftail], [f[1] for f in ftail])
    xs, ys = [s[0] for s in warm], [s[1] for s in warm]
    hwarm = [h for h in heap if h[0] >= 0.2 * a.seconds]
    n_total = sum(len(v) for v in lat.values())
    figures = {
        "seconds": round(time.monotonic() - t_start, 1),
        "requests": n_total,
        "failed": len(fails),
        "by_kind": {k: {"n": len(v), "p50_ms": round(pct(v, 0.5), 2), "p99_ms": round(pct(v, 0.99), 2)}
                    for k, v in sorted(lat.items())},
        "p99_ms_all": round(pct([x for v in lat.values() for x in v], 0.99), 2),
        "rss_mb": {"start": round(samples[0][1], 1), "max": round(max(s[1] for s in samples), 1),
                   "floor_after_warmup_median3": round(first3, 1), "floor_end_median3": round(last3, 1),
                   "floor_slope_mb_per_hour": round(fslope * 3600, 2), "floor_window_s": win,
                   "samples_slope_mb_per_hour": round(slope(xs, ys) * 3600, 2)},
        "rss_timeline_mb": [round(s[1], 1) for s in samples[:: max(1, len(samples) // 30)]],
        "rss_floor_timeline_mb": [round(f[1], 1) for f in floors[:: max(1, len(floors) // 30)]],
    }
    heap_growth = None
    if len(hwarm) >= 2:
        hf = window_min([(h[0], h[1]) for h in hwarm], win)
        hf = hf[:-1] if len(hf) > 3 else hf
        heap_growth = median([f[1] for f in hf[-3:]]) - median([f[1] for f in hf[:3]])
        figures["heap_mb"] = {
            "in_use_floor_growth": round(heap_growth, 2),
            "in_use_after_warmup": round(hwarm[0][1], 1), "in_use_end": round(hwarm[-1][1], 1),
            "in_use_slope_mb_per_hour": round(slope([h[0] for h in hwarm], [h[1] for h in hwarm]) * 3600, 2),
            "free_after_warmup": round(hwarm[0][2], 1), "free_end": round(hwarm[-1][2], 1)}
        figures["heap_in_use_timeline_mb"] = [round(h[1], 1) for h in heap[:: max(1, len(heap) // 30)]]
    bad = list(fails[:10])
    if len(ftail) >= 6:
        growth = max(last3 - first3, fslope * (ftail[-1][0] - ftail[0][0]))
    else:
        # A short run (CI's 90 s: 3 full windows after warm-up) has too few floors for a slope: one window in which
        # a reload on a busy machine kept RSS up for most of its 20 s read as +17 MB extrapolated, with malloc's
        # bytes in use flat. Judged instead on where RSS comes back down to: the lowest sample of the last two
        # windows (the short last one included) against the lowest of the first. A creep keeps that low point up.
        growth = min(f[1] for f in floors[-2:]) - floors[0][1]
    if growth > a.max_growth_mb:
        bad.append(f"RSS floor grew {growth:.1f} MB after warm-up (limit {a.max_growth_mb})")
    if heap_growth is not None and heap_growth > a.max_heap_growth_mb:
        bad.append(f"malloc's bytes in use grew {heap_growth:.1f} MB after warm-up (limit {a.max_heap_growth_mb}): a leak")
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
