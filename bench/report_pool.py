#!/usr/bin/env python3
"""Tables for bench/RESULTS.md from bench/pool_bench.sh and bench/serve_load.sh output.

  report_pool.py pool bench/out/pool.jsonl
  report_pool.py serve bench/out/serve_load.jsonl
  report_pool.py precision bench/out/precision.jsonl

pool: per condition (found / hog), config and build, sentences/s at 1 and 2 threads as median (min..max)
over rounds, the 2-thread / 1-thread ratio of the medians, and the load average seen at the start.
serve: per concurrency and peer, requests/s and p50 / p99 latency as medians (min..max) over rounds.
precision: per config and thread count, sentences/s of fp32 / bf16 / int8 as median (min..max) over rounds,
and each one's ratio to fp32 computed per round (same machine state) then the median (min..max) of those.
"""
import json
import statistics
import sys
from collections import defaultdict


def fmt(xs, nd=1):
    m = statistics.median(xs)
    return f"{m:.{nd}f} ({min(xs):.{nd}f}..{max(xs):.{nd}f})"


def pool(path):
    runs = defaultdict(list)
    loads = defaultdict(list)
    for line in open(path):
        d = json.loads(line)
        runs[(d["cond"], d["config"], d["build"], d["threads"])].append(d["sentences_per_s"])
        loads[d["cond"]].append(d["load1"])
    print("| condition (1-min load avg) | inputs, batch | build | sent/s, 1 thread | sent/s, 2 threads | 2T / 1T |")
    print("|---|---|---|---|---|---|")
    names = {"short": "short, 1", "short32": "short, 32", "long128": "128 tok, 1"}
    for cond in ("found", "hog"):
        ld = loads[cond]
        for cfg in ("short", "short32", "long128"):
            for build in ("pool", "openmp", "onnxruntime"):
                a, b = runs.get((cond, cfg, build, 1)), runs.get((cond, cfg, build, 2))
                if not a or not b:
                    continue
                ratio = statistics.median(b) / statistics.median(a)
                label = "as found" if cond == "found" else "+ 1 hog per core"
                bold = "**" if build == "pool" else ""
                print(f"| {label} ({min(ld):.0f}..{max(ld):.0f}) | {names[cfg]} | {build} | {fmt(a)} | {fmt(b)} | "
                      f"{bold}{ratio:.2f}{bold} |")


def serve(path):
    runs = defaultdict(lambda: defaultdict(list))
    for line in open(path):
        d = json.loads(line)
        k = (d["clients"], d["label"])
        for f in ("requests_per_s", "p50_ms", "p99_ms", "errors", "load1"):
            runs[k][f].append(d[f])
    print("| clients | server | requests/s | p50 ms | p99 ms | errors | load avg | req/s ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for c in sorted({k[0] for k in runs}):
        peer = runs.get((c, "onnxruntime"))
        for who in ("seslm", "onnxruntime"):
            r = runs.get((c, who))
            if not r:
                continue
            ratio = ""
            if who == "seslm" and peer:
                ratio = f"**{statistics.median(r['requests_per_s']) / statistics.median(peer['requests_per_s']):.2f}x**"
            print(f"| {c} | {who} | {fmt(r['requests_per_s'])} | {fmt(r['p50_ms'])} | {fmt(r['p99_ms'])} | "
                  f"{sum(r['errors'])} | {min(r['load1']):.0f}..{max(r['load1']):.0f} | {ratio} |")


def precision(path):
    runs = defaultdict(dict)
    for line in open(path):
        d = json.loads(line)
        runs[(d["config"], d["threads"], d["round"])][d["precision"]] = d
    names = {"long128x32": "128 tok, batch 32", "long128x1": "128 tok, batch 1", "short1": "short, batch 1",
             "short32": "short, batch 32"}
    print("| inputs | threads | fp32 sent/s | bf16 sent/s | int8 (at load) sent/s | bf16 / fp32 (per round) | "
          "int8 / fp32 |")
    print("|---|---|---|---|---|---|---|")
    for cfg in names:
        for t in (1, 2):
            rs = [v for (c, th, _), v in sorted(runs.items()) if c == cfg and th == t]
            if not rs:
                continue
            col = {p: [r[p]["sentences_per_s"] for r in rs if p in r] for p in ("fp32", "bf16", "int8")}
            rb = [r["bf16"]["sentences_per_s"] / r["fp32"]["sentences_per_s"] for r in rs if "bf16" in r and "fp32" in r]
            ri = [r["int8"]["sentences_per_s"] / r["fp32"]["sentences_per_s"] for r in rs if "int8" in r and "fp32" in r]
            print(f"| {names[cfg]} | {t} | {fmt(col['fp32'])} | {fmt(col['bf16'])} | {fmt(col['int8'])} | "
                  f"**{fmt(rb, 2)}** | {fmt(ri, 2)} |")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("pool", "serve", "precision"):
        print(__doc__)
        sys.exit(2)
    {"pool": pool, "serve": serve, "precision": precision}[sys.argv[1]](sys.argv[2])
