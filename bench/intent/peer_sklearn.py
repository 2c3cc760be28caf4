#!/usr/bin/env python3
"""peer_sklearn.py — the scikit-learn peers of the intent benchmark, on exactly the embeddings and
training rows that bench_intent used (OUT/NAME_*.f32 and OUT/NAME_splits.txt, written by our C tool).

    python3 bench/intent/peer_sklearn.py OUT NAME TRAIN_TSV TEST_TSV [OOS_TSV VAL_TSV VAL_OOS_TSV] [--mlp]

Peers: LogisticRegression (lbfgs, multinomial) at C=1 (the default) and C=10, LogisticRegressionCV (C chosen
by stratified 5-fold cross-validation, fewer folds below 5 shots), and with --mlp the seed's own
recipe MLPClassifier(hidden_layer_sizes=(128, 64)). Prints one JSON line per (peer, k, seed) in the same
shape as bench_intent's lines; the out-of-scope threshold is chosen on the validation split by the same
rule (maximise in-scope accuracy + oos recall).
"""
import json
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold
from sklearn.metrics import roc_auc_score
from sklearn.neural_network import MLPClassifier

warnings.filterwarnings("ignore", category=ConvergenceWarning)
args = [a for a in sys.argv[1:] if not a.startswith("--")]
use_mlp = "--mlp" in sys.argv
out, name, train_tsv, test_tsv = args[:4]
oos_tsv, val_tsv, voos_tsv = (args[4:7] + [None] * 3)[:3]


def labels(path):
    with open(path) as f:
        return [l.rstrip("\n").split("\t")[1] for l in f][1:]


def emb(split, n):
    x = np.fromfile(f"{out}/{name}_{split}.f32", dtype=np.float32)
    return x.reshape(n, -1)


ytr, yte = labels(train_tsv), labels(test_tsv)
Xtr, Xte = emb("train", len(ytr)), emb("test", len(yte))
ytr, yte = np.array(ytr), np.array(yte)
if oos_tsv:
    Xoos = emb("oos", len(labels(oos_tsv)))
    yval = np.array(labels(val_tsv))
    Xval, Xvoos = emb("val", len(yval)), emb("val_oos", len(labels(voos_tsv)))


def logreg_cv(seed, k):
    """C chosen by stratified k-fold cross-validation (scikit-learn's default grid of 10 Cs, 1e-4..1e4)."""
    return LogisticRegressionCV(Cs=10, cv=StratifiedKFold(n_splits=min(5, k), shuffle=True, random_state=seed),
                                max_iter=3000)


peers = [("sklearn-logreg-C1", lambda s, k: LogisticRegression(C=1.0, max_iter=3000)),
         ("sklearn-logreg-C10", lambda s, k: LogisticRegression(C=10.0, max_iter=3000)),
         ("sklearn-logreg-cv", logreg_cv)]
if use_mlp:
    peers.append(("sklearn-mlp-128-64", lambda s, k: MLPClassifier(hidden_layer_sizes=(128, 64), max_iter=200, random_state=s)))

with open(f"{out}/{name}_splits.txt") as f:
    splits = [list(map(int, l.split())) for l in f if l.strip()]

for peer, make in peers:
    for row in splits:
        k, seed, idx = row[0], row[1], row[2:]
        clf = make(seed, k)
        t0 = time.perf_counter()
        clf.fit(Xtr[idx], ytr[idx])
        fit_s = time.perf_counter() - t0
        pred = clf.predict(Xte)
        r = {"dataset": name, "impl": peer, "k": k, "seed": seed, "n_train": len(idx),
             "accuracy": float(np.mean(pred == yte)), "fit_seconds": round(fit_s, 3)}
        if oos_tsv:
            conf_in = clf.predict_proba(Xte).max(1)
            conf_oos = clf.predict_proba(Xoos).max(1)
            r["oos_auroc"] = float(roc_auc_score(np.r_[np.ones(len(conf_in)), np.zeros(len(conf_oos))],
                                                 np.r_[conf_in, conf_oos]))
            cv = clf.predict_proba(Xval).max(1)
            okv = clf.predict(Xval) == yval
            cvo = clf.predict_proba(Xvoos).max(1)
            best, thr = -1, 0
            for t in np.r_[cv, cvo]:
                sc = np.mean(okv & (cv >= t)) + np.mean(cvo < t)
                if sc > best:
                    best, thr = sc, t
            r["oos_threshold"] = float(thr)
            r["inscope_accuracy"] = float(np.mean((pred == yte) & (conf_in >= thr)))
            r["oos_recall"] = float(np.mean(conf_oos < thr))
        print(json.dumps(r), flush=True)
