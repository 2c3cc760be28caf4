#!/usr/bin/env python3
"""embed_compress.py — quality and size of compressed word-embedding tables against the parent (issue 13).

For each model directory: bytes of model.safetensors (validate's weight_bytes), the mean cosine of its
sentence embeddings to the parent's on held-out restaurant text (data/eval/restaurant8k_heldout.txt, all
800 lines) and on general text (the 3000 STS-B dev sentences: many rare tokens), and the STS-B dev Spearman
(1500 pairs: cosine of the two sentences' embeddings against the gold score, ties ranked by their mean as
scipy.stats.spearmanr does; validate's stsb_spearman is the same computation). Embeddings come from
`seslm embed` (the served code path); the parent's are computed once per run. Standard library only.

  python3 bench/embed_compress.py --seslm build/seslm --parent models/all-MiniLM-L6-v2 \
      NAME=DIR [NAME=DIR ...] [--threads 2] [--json OUT.json]
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile


def embed(seslm, model, path, threads):
    out = subprocess.run([seslm, "embed", "--model", model, "--input", path, "--threads", str(threads), "--batch", "64"],
                         check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    rows.sort(key=lambda r: r["index"])
    return [r["embedding"] for r in rows]


def cos(a, b):
    ab = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return ab / (na * nb) if na > 0 and nb > 0 else 0.0


def ranks(v):
    order = sorted(range(len(v)), key=lambda i: v[i])
    r = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return r


def spearman(x, y):
    rx, ry = ranks(x), ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    return sxy / math.sqrt(sxx * syy)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seslm", default="build/seslm")
    ap.add_argument("--parent", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--stsb", default="data/eval/stsb_dev.tsv")
    ap.add_argument("--heldout", default="data/eval/restaurant8k_heldout.txt")
    ap.add_argument("--json")
    ap.add_argument("models", nargs="+", help="NAME=DIR")
    a = ap.parse_args()
    pairs = []
    with open(a.stsb, encoding="utf-8") as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) == 3:
                pairs.append((p[0], p[1], float(p[2])))
    with open(a.heldout, encoding="utf-8") as f:
        held = [l.rstrip("\n") for l in f if l.strip()]
    tmp = tempfile.mkdtemp(prefix="embed_compress.")
    sp, hp = os.path.join(tmp, "stsb.txt"), os.path.join(tmp, "held.txt")
    with open(sp, "w", encoding="utf-8") as f:
        for s1, s2, _ in pairs:
            f.write(s1 + "\n" + s2 + "\n")
    with open(hp, "w", encoding="utf-8") as f:
        f.write("\n".join(held) + "\n")

    def measure(d):
        s = embed(a.seslm, d, sp, a.threads)
        h = embed(a.seslm, d, hp, a.threads)
        return s, h

    ps, ph = measure(a.parent)
    gold = [g for _, _, g in pairs]

    def row(name, d, s, h):
        sim = [cos(s[2 * i], s[2 * i + 1]) for i in range(len(pairs))]
        r = {"name": name, "dir": d, "bytes": os.path.getsize(os.path.join(d, "model.safetensors")),
             "stsb_spearman": spearman(sim, gold),
             "heldout_cos": sum(cos(x, y) for x, y in zip(h, ph)) / len(ph),
             "stsb_sent_cos": sum(cos(x, y) for x, y in zip(s, ps)) / len(ps)}
        r["heldout_cos_min"] = min(cos(x, y) for x, y in zip(h, ph))
        r["stsb_sent_cos_min"] = min(cos(x, y) for x, y in zip(s, ps))
        return r

    parent = row("parent", a.parent, ps, ph)
    res = [parent]
    print("| model | bytes | × parent | held-out restaurant cos (min) | STS-B sentences cos (min) | STS-B Spearman | Δ points |")
    print("|---|---|---|---|---|---|---|")

    def show(r):
        print("| %s | %.2f MB | %.4f | %.4f (%.3f) | %.4f (%.3f) | %.4f | %+.2f |" % (
            r["name"], r["bytes"] / 1e6, r["bytes"] / parent["bytes"], r["heldout_cos"], r["heldout_cos_min"],
            r["stsb_sent_cos"], r["stsb_sent_cos_min"], r["stsb_spearman"], 100 * (r["stsb_spearman"] - parent["stsb_spearman"])))
        sys.stdout.flush()

    show(parent)
    for m in a.models:
        name, d = m.split("=", 1)
        s, h = measure(d)
        r = row(name, d, s, h)
        res.append(r)
        show(r)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    for p in (sp, hp):
        os.unlink(p)
    os.rmdir(tmp)


if __name__ == "__main__":
    main()
