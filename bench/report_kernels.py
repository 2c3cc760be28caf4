#!/usr/bin/env python3
"""report_kernels.py — bench/out/kernels.jsonl (build/bench/bench_kernels) as a Markdown table: per linear
shape of MiniLM and rows M, dense F32 (panel kernel), dense INT8 (VNNI) and 2:4 sparse F32, medians in ms
with GFLOP/s (2 M N K / time; the 2:4 product counted as the dense one it replaces)."""
import json
import sys
from collections import defaultdict

rows = defaultdict(dict)
for line in open(sys.argv[1] if len(sys.argv) > 1 else "bench/out/kernels.jsonl"):
    d = json.loads(line)
    key = (d["shape"], d["M"], d["N"], d["K"], d["threads"])
    rows[key][d["dense"]] = d
print("| layer (N x K) | M rows | dense F32 ms (GFLOP/s) | INT8 VNNI ms (GOP/s) | 2:4 sparse F32 ms (GFLOP/s eq.) | INT8 / F32 | 2:4 / F32 |")
print("|---|---|---|---|---|---|---|")
for (shape, M, N, K, t), d in rows.items():
    f, q = d.get("f32"), d.get("int8")
    if not f or not q:
        continue
    sp = (f["sparse24_f32_ms"] + q["sparse24_f32_ms"]) / 2  # timed twice (once beside each dense kind)
    gf = 2.0 * M * N * K / 1e6
    print("| %s (%d x %d) | %d | %.4f (%.0f) | %.4f (%.0f) | %.4f (%.0f) | **%.2f** | %.2f |" % (
        shape, N, K, M, f["dense_ms"], gf / f["dense_ms"], q["dense_ms"], gf / q["dense_ms"], sp, gf / sp,
        q["dense_ms"] / f["dense_ms"], sp / f["dense_ms"]))
