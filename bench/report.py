#!/usr/bin/env python3
"""report.py — summarise bench/out/embed.jsonl (from bench/run.sh) as a Markdown table.

For each configuration and peer: median over rounds of sentences/s, p50 and p95 latency, and the
spread (min..max over rounds) of sentences/s; then the ratio SE-SLM / ONNX Runtime of the medians.
"""
import argparse
import json
import platform
import statistics
import subprocess
from collections import defaultdict


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("jsonl")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    rows = [json.loads(l) for l in open(a.jsonl) if l.strip()]
    by = defaultdict(list)
    for r in rows:
        by[(r["config"], r["batch"], r["peer"])].append(r)
    order = [("short", 1), ("short", 32), ("long128", 1), ("long128", 32)]
    rounds = max(r["round"] for r in rows)
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    ort_ver = next((r.get("version") for r in rows if r["peer"] == "onnxruntime"), "?")
    print(f"Machine: {cpu_model()}, {nproc} cores; threads {a.threads}; {rounds} rounds, peers interleaved; "
          f"onnxruntime {ort_ver} (fused fp32 graph incl. pooling).\n")
    print("| inputs | batch | peer | sentences/s (median, min..max) | p50 ms | p95 ms | ratio vs ORT (sent/s) |")
    print("|---|---|---|---|---|---|---|")
    for cfg, b in order:
        med = {}
        for peer in ("seslm", "onnxruntime"):
            rs = by.get((cfg, b, peer), [])
            if not rs:
                continue
            sps = [r["sentences_per_s"] for r in rs]
            med[peer] = statistics.median(sps)
            p50 = statistics.median(r["p50_ms"] for r in rs)
            p95 = statistics.median(r["p95_ms"] for r in rs)
            ratio = f"**{med['seslm'] / med['onnxruntime']:.2f}x**" if peer == "onnxruntime" and "seslm" in med else ""
            print(f"| {cfg} | {b} | {peer} | {med[peer]:.1f} ({min(sps):.1f}..{max(sps):.1f}) | {p50:.2f} | {p95:.2f} | {ratio} |")


if __name__ == "__main__":
    main()
