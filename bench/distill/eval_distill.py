#!/usr/bin/env python3
"""Quality of distilled students (docs/distill.md), with the seslm CLI and the standard library only.

Usage: bench/distill/eval_distill.py SESLM PARENT_DIR HELDOUT_TXT STSB_TSV MODEL_DIR...

For each model: mean cosine of its embeddings to the parent's on HELDOUT_TXT (text never used for
calibration or distillation), and STS-B Spearman (cosine of each pair against the gold score, ties
ranked by their mean as scipy.stats.spearmanr does). Prints one JSON line per model.
"""
import json
import math
import subprocess
import sys
import tempfile


def embed(seslm, model, lines):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(lines) + "\n")
        path = f.name
    out = subprocess.run([seslm, "embed", "--model", model, "--input", path, "--threads", "2", "--batch", "64"],
                         check=True, capture_output=True, text=True).stdout
    vecs = [None] * len(lines)
    for line in out.splitlines():
        d = json.loads(line)
        vecs[d["index"]] = d["embedding"]
    return vecs


def cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def ranks(v):
    order = sorted(range(len(v)), key=lambda i: v[i])
    r = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2.0 + 1
        i = j + 1
    return r


def pearson(x, y):
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    return sxy / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))


def main():
    seslm, parent, heldout, stsb = sys.argv[1:5]
    held = [l.rstrip("\n") for l in open(heldout, encoding="utf-8") if l.strip()]
    pairs = [l.rstrip("\n").split("\t") for l in open(stsb, encoding="utf-8") if l.strip()]
    s1, s2, gold = [p[0] for p in pairs], [p[1] for p in pairs], [float(p[2]) for p in pairs]
    ref = embed(seslm, parent, held)
    for model in sys.argv[5:]:
        e = embed(seslm, model, held)
        c = [cos(a, b) for a, b in zip(e, ref)]
        c.sort()
        a, b = embed(seslm, model, s1), embed(seslm, model, s2)
        sp = pearson(ranks([cos(x, y) for x, y in zip(a, b)]), ranks(gold))
        print(json.dumps({"model": model, "heldout_cos_mean": round(sum(c) / len(c), 4),
                          "heldout_cos_p5": round(c[int(0.05 * len(c))], 4), "stsb_spearman": round(100 * sp, 2),
                          "heldout_n": len(held), "stsb_pairs": len(pairs)}), flush=True)


if __name__ == "__main__":
    main()
