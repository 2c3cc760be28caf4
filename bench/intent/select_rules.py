#!/usr/bin/env python3
"""select_rules.py — scores rules for choosing C on the lines of select_dev.py (development accuracy only).

    python3 bench/intent/select_rules.py dev.jsonl
"""
import json
import sys
from collections import defaultdict

import numpy as np

GRID = [0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000]
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]


def smooth(v):
    v = np.asarray(v, float)
    out = np.empty_like(v)
    for g in range(len(v)):
        js = [(j, 2 if j == g else 1) for j in (g - 1, g, g + 1) if 0 <= j < len(v)]
        out[g] = sum(w * v[j] for j, w in js) / sum(w for _, w in js)
    return out


def current(r):
    acc, nll = smooth(np.mean(r["correct"], 1)), smooth(r["nll"])
    best = 0
    for g in range(1, len(GRID)):
        if acc[g] > acc[best] + 1e-12 or (abs(acc[g] - acc[best]) <= 1e-12 and nll[g] < nll[best]):
            best = g
    return best


def paired_se(r, z, smoothed_best=True, curve="smooth", max_down=99):
    c = np.array(r["correct"])  # (G, n), mean over repeats
    n = c.shape[1]
    best = current(r) if smoothed_best else int(np.argmax(c.mean(1)))
    if curve == "smooth":  # compare smoothed per-example correctness (the neighbours' average)
        cs = np.array([smooth(c[:, i]) for i in range(n)]).T
    else:
        cs = c
    for g in range(max(0, best - max_down), best + 1):
        d = cs[best] - cs[g]
        if d.mean() <= z * d.std(ddof=1) / np.sqrt(n) + 1e-12:
            return g
    return best


def unpaired_se(r, z):
    acc = smooth(np.mean(r["correct"], 1))
    best = current(r)
    n = len(r["correct"][0])
    se = np.sqrt(acc[best] * (1 - acc[best]) / n)
    for g in range(best + 1):
        if acc[g] >= acc[best] - z * se - 1e-12:
            return g
    return best


def min_nll(r):
    return int(np.argmin(smooth(r["nll"])))


def lrcv_like(r):
    return int(np.argmax(np.mean(r["correct"], 1)))


rules = {"current": current, "lrcv-like argmax": lrcv_like, "min oof nll": min_nll,
         "paired 1se": lambda r: paired_se(r, 1.0), "paired 0.5se": lambda r: paired_se(r, 0.5),
         "paired 1se raw": lambda r: paired_se(r, 1.0, curve="raw"),
         "paired 1se <=1 step": lambda r: paired_se(r, 1.0, max_down=1),
         "paired 1se <=2 steps": lambda r: paired_se(r, 1.0, max_down=2),
         "paired 0.5se <=2 steps": lambda r: paired_se(r, 0.5, max_down=2),
         "paired 1se raw <=1 step": lambda r: paired_se(r, 1.0, curve="raw", max_down=1),
         "unpaired 1se": lambda r: unpaired_se(r, 1.0), "unpaired 0.5se": lambda r: unpaired_se(r, 0.5)}
res = defaultdict(list)
picks = defaultdict(list)
for r in rows:
    top = max(r["dev_acc"])
    for name, rule in rules.items():
        g = rule(r)
        res[(r["dataset"], r["k"], name)].append(100 * (top - r["dev_acc"][g]))
        picks[(r["dataset"], r["k"], name)].append(GRID[g])
        if name == "current":
            res[(r["dataset"], r["k"], "current+avg3")].append(100 * (top - r["dev_avg3"][g]))
            picks[(r["dataset"], r["k"], "current+avg3")].append(GRID[g])
names = list(rules) + ["current+avg3"]
cells = sorted({(r["dataset"], r["k"]) for r in rows})
print("regret on the development set (points; best C of the grid minus the pick), mean over seeds; picks\n")
print("| rule | " + " | ".join(f"{d} {k}" for d, k in cells) + " | mean |")
print("|---|" + "---|" * (len(cells) + 1))
for nm in names:
    v = [np.mean(res[(d, k, nm)]) for d, k in cells]
    print(f"| {nm} | " + " | ".join(f"{x:.2f} {picks[(d, k, nm)]}" for x, (d, k) in zip(v, cells)) + f" | {np.mean(v):.3f} |")
