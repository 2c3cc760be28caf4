#!/usr/bin/env python3
"""select_dev.py — how the intent head's rule for choosing C (runtime/assist/intent_select.c) was designed,
without looking at any test split.

    python3 bench/intent/select_dev.py OUT DATASET[,DATASET...] [--shots 5,10,20,40] [--seeds 101,102,103]

Uses only the training pools (OUT/NAME_train.f32 from bench_intent, rows of data/intent/NAME_train50.tsv;
for clinc150 also its validation split): k examples per intent are drawn with seeds that the benchmark does
not use (101..), the rest of the pool is the development set. For each draw it records, for every C of the
head's grid, the out-of-fold correctness of every training example (stratified k-fold, repeated as the C
code repeats it) and the development accuracy of the head fitted on all k shots (scikit-learn's
LogisticRegression: the same objective as runtime/core/logreg.c). Then it scores selection rules by their
regret: the best development accuracy on the grid minus the one of the C the rule picked.
"""
import json
import sys
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

warnings.filterwarnings("ignore", category=ConvergenceWarning)
GRID = [0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000]
args = [a for a in sys.argv[1:] if not a.startswith("--")]
opt = {a.split("=")[0]: a.split("=")[1] for a in sys.argv[1:] if a.startswith("--") and "=" in a}
out, names = args[0], args[1].split(",")
shots = [int(s) for s in opt.get("--shots", "5,10,20,40").split(",")]
seeds = [int(s) for s in opt.get("--seeds", "101,102,103").split(",")]


def labels(path):
    with open(path) as f:
        return [l.rstrip("\n").split("\t")[1] for l in f][1:]


def folds_of(y, k, rng):
    fold = np.empty(len(y), int)
    nxt = {}
    for i in rng.permutation(len(y)):
        fold[i] = nxt.get(y[i], 0) % k
        nxt[y[i]] = nxt.get(y[i], 0) + 1
    return fold


def fit_path(X, y, max_iter):
    """Warm-started fits along the grid; yields (g, model)."""
    m = LogisticRegression(C=GRID[0], max_iter=max_iter, tol=1e-4, warm_start=True)
    for g, c in enumerate(GRID):
        m.set_params(C=c)
        m.fit(X, y)
        yield g, m


for name in names:
    yl = np.array(labels(f"data/intent/{name}_train50.tsv"))
    X = np.fromfile(f"{out}/{name}_train.f32", dtype=np.float32).reshape(len(yl), -1)
    Xextra, yextra = None, None
    if name == "clinc150":
        yextra = np.array(labels("data/intent/clinc150_val3.tsv"))
        Xextra = np.fromfile(f"{out}/clinc150_val.f32", dtype=np.float32).reshape(len(yextra), -1)
    for k in shots:
        for seed in seeds:
            rng = np.random.default_rng(seed * 1000 + k)
            order = rng.permutation(len(yl))
            cnt, tr = {}, []
            for i in order:
                if cnt.get(yl[i], 0) < k:
                    tr.append(i)
                    cnt[yl[i]] = cnt.get(yl[i], 0) + 1
            tr = np.array(sorted(tr))
            dev = np.setdiff1d(np.arange(len(yl)), tr)
            Xd, yd = X[dev], yl[dev]
            if Xextra is not None:
                Xd, yd = np.r_[Xd, Xextra], np.r_[yd, yextra]
            Xt, yt = X[tr], yl[tr]
            n = len(tr)
            kf = min(5, k)
            repeats = 1 if n >= 2000 else 2 if n >= 700 else 3 if n >= 300 else 5
            correct = np.zeros((repeats, len(GRID), n), np.int8)
            nll = np.zeros((repeats, len(GRID), n))
            for r in range(repeats):
                fold = folds_of(yt, kf, rng)
                for f in range(kf):
                    te, trn = fold == f, fold != f
                    for g, m in fit_path(Xt[trn], yt[trn], 300):
                        p = m.predict_proba(Xt[te])
                        cls = list(m.classes_)
                        yi = np.array([cls.index(c) for c in yt[te]])
                        correct[r, g, te] = p.argmax(1) == yi
                        nll[r, g, te] = -np.log(np.maximum(p[np.arange(len(yi)), yi], 1e-300))
            dev_acc, dev_avg3 = [], []
            coefs = []
            for g, m in fit_path(Xt, yt, 500):
                dev_acc.append(float(np.mean(m.predict(Xd) == yd)))
                coefs.append((m.coef_.copy(), m.intercept_.copy(), m.classes_))
            for g in range(len(GRID)):  # the head averaged with its neighbours on the grid
                js = [j for j in (g - 1, g, g + 1) if 0 <= j < len(GRID)]
                W = sum(coefs[j][0] for j in js) / len(js)
                b = sum(coefs[j][1] for j in js) / len(js)
                dev_avg3.append(float(np.mean(coefs[g][2][(Xd @ W.T + b).argmax(1)] == yd)))
            print(json.dumps({"dataset": name, "k": k, "seed": seed, "n": n, "n_dev": len(yd), "repeats": repeats,
                              "folds": kf, "correct": correct.mean(0).tolist(), "nll": nll.mean(0).mean(1).tolist(),
                              "dev_acc": dev_acc, "dev_avg3": dev_avg3}), flush=True)
