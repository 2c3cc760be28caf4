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
    ap.add_argument("--telemetry", action="store_true", help="summarise a telemetry on/off run")
    a = ap.parse_args()
    rows = [json.loads(l) for l in open(a.jsonl) if l.strip()]
    if a.telemetry:
        return telemetry_table(rows, a.threads)
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


def telemetry_table(rows, threads):
    """Overhead of telemetry at batch 32: per round the on/off ratio of p50 latency (the two runs are
    back to back), then the median and spread of those ratios."""
    rounds = max(r["round"] for r in rows)
    print(f"Machine: {cpu_model()}; threads {threads}; batch 32; {rounds} rounds, off/on back to back.\n")
    print("| inputs | p50 ms off (median) | p50 ms on (median) | overhead: median of per-round on/off - 1 | min..max |")
    print("|---|---|---|---|---|")
    for cfg in ("short", "long128"):
        pairs = defaultdict(dict)
        for r in rows:
            if r["config"] == cfg:
                pairs[r["round"]]["on" if r["telemetry"] else "off"] = r["p50_ms"]
        ratios = [p["on"] / p["off"] - 1 for p in pairs.values() if "on" in p and "off" in p]
        if not ratios:
            continue
        off = statistics.median(p["off"] for p in pairs.values())
        on = statistics.median(p["on"] for p in pairs.values())
        print(f"| {cfg} | {off:.2f} | {on:.2f} | **{100 * statistics.median(ratios):+.1f}%** | "
              f"{100 * min(ratios):+.1f}%..{100 * max(ratios):+.1f}% |")


if __name__ == "__main__":
    main()
