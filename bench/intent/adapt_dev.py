#!/usr/bin/env python3
"""adapt_dev.py — how an adapted model's embeddings were judged off the test split (bench/RESULTS.md 13,
"Where the 50-shot LoRA target sits").

    python3 bench/intent/adapt_dev.py SESLM SHOTS.tsv MODEL[,MODEL...] [--self-train=0.5] [--all-labels]
                                      [--feature-layers=K]
        SESLM      the seslm binary (its `embed` gives the embeddings)
        SHOTS.tsv  the labelled rows an adapter was trained on (text TAB label, a header), e.g. a k-shot
                   subset of data/intent/clinc150_train50.tsv
        MODEL      model directories to compare on the same rows (the base and adapted models)

For each model, scikit-learn's LogisticRegression (C = 10 and 100) is fitted on the embeddings of SHOTS.tsv
and scored on:
  - dev: the 7,500 CLINC150 training rows outside clinc150_train50.tsv (rows 51-100 of each intent in
    ../shared/data/clinc150/data_full.json), never used to fit anything;
  - test: data/intent/clinc150_test10.tsv (reported, never used to choose).
--self-train=T: the dev rows stand in for unlabelled served traffic. Half of them (a seeded split) are
labelled by the LR itself, those at confidence >= T join the training rows, and the refitted LR is scored on
the other half and on test.
--feature-layers=K: the LR reads the last K layers' features (`seslm embed --feature-layers K`, what an
intent head trained with --feature-layers K reads) instead of the embedding.
--all-labels: LR fitted on the shots and all 7,500 dev rows with their true labels, scored on test (what the
embeddings allow with twice the labels at 50 shots).
Needs numpy and scikit-learn; writes nothing but its report (stdout).
"""
import json
import os
import subprocess
import sys
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

warnings.filterwarnings("ignore", category=ConvergenceWarning)
args = [a for a in sys.argv[1:] if not a.startswith("--")]
opt = {a.split("=")[0]: (a.split("=") + [""])[1] for a in sys.argv[1:] if a.startswith("--")}
if len(args) != 3 or "--help" in opt:
    print(__doc__)
    sys.exit(0 if "--help" in opt else 2)
seslm, shots_path, models = args[0], args[1], args[2].split(",")
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
full_path = os.path.join(root, "..", "shared", "data", "clinc150", "data_full.json")


def tsv(path):
    rows = [line.rstrip("\n").split("\t") for line in open(path, encoding="utf-8")][1:]
    return [r[0] for r in rows], np.array([r[1] for r in rows])


def dev_rows():
    seen, texts, labels = {}, [], []
    for text, label in json.load(open(full_path))["train"]:
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 50:  # clinc150_train50.tsv holds the first 50 of each intent
            texts.append(text), labels.append(label)
    return texts, np.array(labels)


def embed(model, texts):
    k = int(opt.get("--feature-layers") or 1)
    out = subprocess.run([seslm, "embed", "--model", model, "--input", "-", "--threads", "2", "--feature-layers", str(k)], input="\n".join(texts) + "\n",
                         capture_output=True, text=True, check=True).stdout
    X = np.array([json.loads(line)["features" if k > 1 else "embedding"] for line in out.splitlines() if line.strip()])
    assert len(X) == len(texts), (model, len(X), len(texts))
    return X


def lr(C, X, y):
    return LogisticRegression(C=C, max_iter=3000).fit(X, y)


ta, ya = tsv(shots_path)
td, yd = dev_rows()
tt, yt = tsv(os.path.join(root, "data", "intent", "clinc150_test10.tsv"))
half = np.random.default_rng(0).permutation(len(yd))
pool, held = half[: len(yd) // 2], half[len(yd) // 2:]
for model in models:
    Xa, Xd, Xt = embed(model, ta), embed(model, td), embed(model, tt)
    line = [os.path.basename(os.path.normpath(model)) or model]
    for C in (10, 100):
        m = lr(C, Xa, ya)
        line.append("C=%g dev %.2f test %.2f" % (C, 100 * m.score(Xd, yd), 100 * m.score(Xt, yt)))
    if "--self-train" in opt:
        t = float(opt["--self-train"] or 0.5)
        m = lr(10, Xa, ya)
        pr = m.predict_proba(Xd[pool])
        keep = pr.max(1) >= t
        lab = m.classes_[pr.argmax(1)][keep]
        m2 = lr(10, np.vstack([Xa, Xd[pool][keep]]), np.concatenate([ya, lab]))
        line.append("self-train T=%g: %d pseudo-labels (%.1f%% right), dev half %.2f -> %.2f, test %.2f -> %.2f" % (
            t, keep.sum(), 100 * (lab == yd[pool][keep]).mean(), 100 * m.score(Xd[held], yd[held]),
            100 * m2.score(Xd[held], yd[held]), 100 * m.score(Xt, yt), 100 * m2.score(Xt, yt)))
    if "--all-labels" in opt:
        m = lr(10, np.vstack([Xa, Xd]), np.concatenate([ya, yd]))
        line.append("all labels (C=10): test %.2f" % (100 * m.score(Xt, yt)))
    print(" | ".join(line), flush=True)
