#!/usr/bin/env python3
"""conformal_check.py — are new rows exchangeable with the training examples? (bench/RESULTS.md 13, "Checked again")

    python3 bench/intent/conformal_check.py OUT NAME TRAIN.tsv NEW.tsv [--dim D] [--C 10]
        OUT, NAME   bench_intent's --out and --name: reads OUT/NAME_train.f32 and OUT/NAME_test.f32 (the features
                    of TRAIN.tsv and of the --test file, row-major float32, D wide; D = 384 x --feature-layers)
        TRAIN.tsv   the examples (text TAB label, a header), as given to bench_intent --train
        NEW.tsv     the new rows, as given to bench_intent --test

An exact split-conformal check, independent of SE-SLM's head: scikit-learn's LogisticRegression is fitted on 3 of
5 stratified folds of the examples; the reference is its score (max logit over the RMS norm of the weight rows, as
the head's in_scope) on a fourth fold. Printed: the share of the fifth fold, and of the new rows, scoring below the
reference's 5 % quantile. Exchangeable rows give about 5 %; more on the new rows means they are shifted from the
examples, and no in-scope p-value can hold its level on them. Needs numpy and scikit-learn; writes nothing.
"""
import sys
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression

warnings.filterwarnings("ignore")
args = [a for a in sys.argv[1:] if not a.startswith("--")]
opt = dict(a.lstrip("-").split("=", 1) if "=" in a else (a.lstrip("-"), "") for a in sys.argv[1:] if a.startswith("--"))
if len(args) != 4 or "help" in opt:
    print(__doc__)
    sys.exit(0 if "help" in opt else 2)
out, name, train_tsv, new_tsv = args
D, C = int(opt.get("dim", 1152)), float(opt.get("C", 10))


def labels(path):
    return np.array([line.rstrip("\n").split("\t")[1] for line in open(path, encoding="utf-8")][1:])


X = np.fromfile(f"{out}/{name}_train.f32", dtype=np.float32).reshape(-1, D)
T = np.fromfile(f"{out}/{name}_test.f32", dtype=np.float32).reshape(-1, D)
y = labels(train_tsv)
assert len(X) == len(y) and len(T) == len(labels(new_tsv)), "the features do not match the TSVs (--dim?)"
rng = np.random.default_rng(0)
fold = np.zeros(len(y), int)
for c in np.unique(y):
    ii = np.where(y == c)[0]
    rng.shuffle(ii)
    fold[ii] = np.arange(len(ii)) % 5


def score(m, Z):
    return m.decision_function(Z).max(1) / np.sqrt((m.coef_ ** 2).sum(1).mean())


m = LogisticRegression(C=C, max_iter=2000).fit(X[fold >= 2], y[fold >= 2])
q = np.quantile(score(m, X[fold == 0]), 0.05)
print("below the reference's 5 %% quantile: a held-out fold of the examples %.3f, the new rows %.3f"
      % ((score(m, X[fold == 1]) < q).mean(), (score(m, T) < q).mean()))
