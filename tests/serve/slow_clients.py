#!/usr/bin/env python3
"""slow_clients.py — hostile clients against a running `seslm serve` (standard library only).

  python3 tests/serve/slow_clients.py --port P [--slow 1000] [--addresses 50] [--probes 60]
      [--max-ms 100] [--header-timeout S] [--body-timeout S] [--per-ip N] [--json OUT]

1. Opens --slow connections spread over --addresses loopback source addresses (127.0.0.2, ...; all of
   127/8 is loopback on Linux), each sending an unfinished request and one more header line every second
   (slowloris). Checks the server holds them all open (its /metrics gauge).
2. While they are open: --probes GET /healthz on fresh connections (wall time from connect to the whole
   answer) and one POST /v1/embed; every probe must answer 200 and the 95th percentile must be within
   --max-ms.
3. Header deadline: the trickling connections are shut down by the server within --header-timeout (+2 s)
   of their opening, although they never went idle.
4. Per-address limit: --per-ip + 16 connections from one address; exactly --per-ip stay open.
5. Body deadline: full headers, then a body trickled one byte a second: shut down within --body-timeout.
Exit 0 when every check holds; prints the figures (and writes them as JSON with --json)."""
import argparse, http.client, json, resource, socket, sys, threading, time


def metric(port, name):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            if "{" not in name and "{" in line.split(" ")[0] and not line.startswith(name + " "):
                continue
            return float(line.rsplit(" ", 1)[1])
    raise SystemExit(f"slow_clients: /metrics has no {name}")


def is_closed(sock):
    """1 when the server has closed (EOF or reset), 0 while it is open with nothing to read."""
    try:
        sock.setblocking(False)
        data = sock.recv(4096, socket.MSG_PEEK)
        return 1 if data == b"" else 0  # data: an answer (a 4xx/5xx); counts as open until closed
    except BlockingIOError:
        return 0
    except OSError:
        return 1


def healthz_ms(port):
    t0 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/healthz")
    r = c.getresponse()
    r.read()
    c.close()
    return r.status, (time.perf_counter() - t0) * 1e3


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))]


def wait_for(pred, seconds, what):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    print(f"FAIL: {what} (waited {seconds} s)", file=sys.stderr)
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--slow", type=int, default=1000)
    ap.add_argument("--addresses", type=int, default=50)
    ap.add_argument("--probes", type=int, default=60)
    ap.add_argument("--max-ms", type=float, default=100.0)
    ap.add_argument("--header-timeout", type=float, required=True)
    ap.add_argument("--body-timeout", type=float, required=True)
    ap.add_argument("--per-ip", type=int, required=True)
    ap.add_argument("--json")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = a.slow + a.per_ip + 256
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    fails = []
    figures = {}

    # baseline: /healthz with nothing else open (the peer of the figure under attack)
    base = [healthz_ms(a.port)[1] for _ in range(a.probes)]
    figures["healthz_ms_quiet"] = {"p50": pct(base, 0.5), "p95": pct(base, 0.95), "max": max(base)}

    # 1. the slow connections
    slow, stop = [], threading.Event()
    t_open = time.monotonic()
    for i in range(a.slow):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((f"127.0.0.{2 + i % a.addresses}", 0))
        s.connect(("127.0.0.1", a.port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        slow.append(s)
    figures["open_seconds"] = time.monotonic() - t_open

    def trickle():
        while not stop.wait(1.0):
            for s in slow:
                try:
                    s.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    pass
    th = threading.Thread(target=trickle, daemon=True)
    th.start()
    if not wait_for(lambda: metric(a.port, "seslm_http_connections_open") >= a.slow, 10,
                    f"the server holds {a.slow} slow connections open"):
        fails.append("slow connections not all open")
    figures["open_at_probe"] = metric(a.port, "seslm_http_connections_open")

    # 2. probes while they are open
    lat, codes = [], []
    for _ in range(a.probes):
        code, ms = healthz_ms(a.port)
        codes.append(code)
        lat.append(ms)
        time.sleep(0.01)
    c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=30)
    t0 = time.perf_counter()
    c.request("POST", "/v1/embed", body=json.dumps({"texts": ["a slow client does not stop this"]}),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    emb = json.loads(r.read())
    figures["embed_ms_under_attack"] = (time.perf_counter() - t0) * 1e3
    c.close()
    still = a.slow - sum(is_closed(s) for s in slow)
    figures["healthz_ms_under_attack"] = {"n": len(lat), "p50": pct(lat, 0.5), "p95": pct(lat, 0.95), "max": max(lat),
                                          "slow_open_during_probes": still}
    if any(code != 200 for code in codes):
        fails.append(f"/healthz answered {sorted(set(codes))} under attack")
    if pct(lat, 0.95) > a.max_ms:
        fails.append(f"/healthz p95 {pct(lat, 0.95):.1f} ms > {a.max_ms} ms under attack")
    if r.status != 200 or len(emb.get("embeddings", [[]])[0]) != emb.get("dim"):
        fails.append(f"/v1/embed under attack: {r.status}")
    if still < a.slow:
        fails.append(f"only {still} of {a.slow} slow connections were open during the probes (a deadline too short?)")

    # 3. header deadline: every trickling connection is shut down, although none went idle
    t_dead = t_open + a.header_timeout + 2.0
    ok = wait_for(lambda: all(is_closed(s) for s in slow), max(1.0, t_dead - time.monotonic()) + 3.0,
                  f"every slow connection shut down by the header deadline ({a.header_timeout} s)")
    figures["header_deadline_closed"] = sum(is_closed(s) for s in slow)
    figures["header_deadline_seconds_after_open"] = time.monotonic() - t_open
    if not ok:
        fails.append("header deadline")
    stop.set()
    th.join()
    for s in slow:
        s.close()
    figures["timed_out_headers"] = metric(a.port, 'seslm_http_connections_timed_out_total{phase="headers"}')
    if figures["timed_out_headers"] < a.slow:
        fails.append(f"timed_out_total{{phase=headers}} = {figures['timed_out_headers']} < {a.slow}")

    # 4. per-address limit
    one = []
    for _ in range(a.per_ip + 16):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.250", 0))
        s.connect(("127.0.0.1", a.port))
        one.append(s)
    wait_for(lambda: sum(is_closed(s) for s in one) >= 16, 5, "connections over the per-address limit refused")
    time.sleep(0.3)  # nothing more may close
    n_open = len(one) - sum(is_closed(s) for s in one)
    figures["per_ip_open"] = n_open
    if n_open != a.per_ip:
        fails.append(f"{n_open} connections from one address stayed open; the limit is {a.per_ip}")
    code, _ = healthz_ms(a.port)
    if code != 200:
        fails.append(f"/healthz answered {code} with one address at its limit")
    for s in one:
        s.close()

    # 5. body deadline
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(("127.0.0.1", a.port))
    s.sendall(b"POST /v1/embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
    t0 = time.monotonic()
    closed_after = None
    while time.monotonic() - t0 < a.body_timeout + 5:
        try:
            s.sendall(b" ")
        except OSError:
            closed_after = time.monotonic() - t0
            break
        if is_closed(s):
            closed_after = time.monotonic() - t0
            break
        s.setblocking(True)
        time.sleep(0.5)
    s.close()
    figures["body_deadline_closed_after_s"] = closed_after
    if closed_after is None or closed_after > a.body_timeout + 2:
        fails.append(f"a body trickled one byte per 0.5 s was not cut at the body deadline ({closed_after})")
    if metric(a.port, 'seslm_http_connections_timed_out_total{phase="body"}') < 1:
        fails.append("timed_out_total{phase=body} did not count it")

    print(json.dumps(figures, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(figures, f, indent=1)
    for f in fails:
        print("FAIL:", f, file=sys.stderr)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
