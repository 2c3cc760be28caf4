#!/usr/bin/env python3
"""ONNX Runtime peer benchmark for all-MiniLM-L6-v2 sentence embeddings (CPU).

Usage:
  ort_bench.py [MODEL_DIR] --threads N --batch B --inputs {short,long128} [--sentences FILE]
               [--repeats R] [--warmup W] [--graph {fused,plain} | --onnx PATH] [--json]

MODEL_DIR defaults to models/all-MiniLM-L6-v2; the graph is MODEL_DIR/onnx/model_fused.onnx
(default) or model.onnx (--graph plain), both made by bench/ort/setup.sh.

Inputs (one sentence per line in --sentences FILE):
  short    real short utterances, default data/bench/short.txt; truncation at 256 (never hit)
  long128  default data/bench/long128.txt (>=150 words each); every input is truncated to
           exactly 128 tokens (checked). Without the file, inputs are built from
           --wiki FILE (default ../shared/data/wiki_sents/all_wiki_sents.txt) the same way.

Each timed call encodes one batch of B consecutive inputs (cycling through the file):
tokenize (tokenizers, pad to longest) + ORT run (graph includes mean pooling + L2 norm).
Latency = that whole call; model_only_* = the session.run part alone.
Session: intra_op_num_threads=N, inter_op_num_threads=1, ORT_SEQUENTIAL, ORT_ENABLE_ALL.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
from ort_peer import OrtEncoder  # noqa: E402


def load_inputs(args):
    if args.inputs == "short":
        path = Path(args.sentences or REPO / "data/bench/short.txt")
        return [l.rstrip("\n") for l in open(path, encoding="utf-8") if l.strip()], str(path)
    path = Path(args.sentences or REPO / "data/bench/long128.txt")
    if path.exists():
        return [l.rstrip("\n") for l in open(path, encoding="utf-8") if l.strip()], str(path)
    wiki = Path(args.wiki)
    lines = [l.strip() for l in open(wiki, encoding="utf-8") if l.strip()]
    out, cur = [], []
    for l in lines:
        cur.append(l)
        if sum(len(s.split()) for s in cur) >= 150:
            out.append(" ".join(cur))
            cur = []
        if len(out) == 256:
            break
    return out, f"built from {wiki}"


def pct(a, q):
    return float(np.percentile(np.asarray(a), q))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir", nargs="?", default=str(REPO / "models/all-MiniLM-L6-v2"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--inputs", choices=["short", "long128"], default="short")
    ap.add_argument("--sentences", help="one input per line")
    ap.add_argument("--wiki", default=str(REPO.parent / "shared/data/wiki_sents/all_wiki_sents.txt"))
    ap.add_argument("--repeats", type=int, default=50, help="timed batch calls")
    ap.add_argument("--warmup", type=int, default=5, help="untimed batch calls first")
    ap.add_argument("--graph", choices=["fused", "plain"], default="fused")
    ap.add_argument("--onnx", help="explicit .onnx path (overrides --graph)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()

    model_dir = Path(args.model_dir)
    onnx_path = Path(args.onnx) if args.onnx else \
        model_dir / "onnx" / ("model_fused.onnx" if args.graph == "fused" else "model.onnx")
    max_len = 128 if args.inputs == "long128" else 256
    enc = OrtEncoder(model_dir, threads=args.threads, max_len=max_len, onnx_path=onnx_path)
    texts, source = load_inputs(args)
    if args.inputs == "long128":
        lens = [len(e.ids) for e in enc.tok.encode_batch(texts)]
        short_ones = [i for i, n in enumerate(lens) if n != 128]
        if short_ones:
            sys.exit(f"long128: inputs {short_ones[:10]} do not reach 128 tokens")

    B = args.batch
    def batch(k):
        s = (k * B) % len(texts)
        return [texts[(s + j) % len(texts)] for j in range(B)]

    for k in range(args.warmup):
        enc.encode(batch(k))

    total, model_only, ntok, npad = [], [], [], []
    for k in range(args.warmup, args.warmup + args.repeats):
        b = batch(k)
        t0 = time.perf_counter()
        ids, am = enc.tokenize(b)
        t1 = time.perf_counter()
        out = enc.run(ids, am)
        t2 = time.perf_counter()
        assert out.shape == (B, 384)
        total.append((t2 - t0) * 1e3)
        model_only.append((t2 - t1) * 1e3)
        ntok.append(int(am.sum()) / B)
        npad.append(ids.shape[1])

    res = {
        "peer": "onnxruntime",
        "version": ort.__version__,
        "threads": args.threads,
        "batch": B,
        "inputs": args.inputs,
        "sentences_per_s": B * len(total) / (sum(total) / 1e3),
        "p50_ms": pct(total, 50),
        "p95_ms": pct(total, 95),
        "min_ms": min(total),
        "max_ms": max(total),
        "repeats": args.repeats,
        "warmup": args.warmup,
        "model_only_sentences_per_s": B * len(model_only) / (sum(model_only) / 1e3),
        "model_only_p50_ms": pct(model_only, 50),
        "model_only_p95_ms": pct(model_only, 95),
        "model_only_min_ms": min(model_only),
        "mean_tokens_per_input": float(np.mean(ntok)),
        "mean_padded_seq_len": float(np.mean(npad)),
        "graph": onnx_path.name,
        "source": source,
        "latency_scope": "per batch call: tokenize + session.run (graph includes mean pooling + L2 normalise)",
    }
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:28s} {v:.3f}" if isinstance(v, float) else f"{k:28s} {v}")


if __name__ == "__main__":
    main()
