#!/usr/bin/env python3
"""make_lr_fixture.py — scikit-learn's multinomial LogisticRegression fits that pipeline/validate/validate_lr.c
is checked against (tests/unit/test_validate_lr.c).

    python3 -m venv .venv-val && .venv-val/bin/pip install scikit-learn
    .venv-val/bin/python tests/validate/make_lr_fixture.py > tests/fixtures/validate/lr_sklearn.json

Two real data sets shipped with scikit-learn: iris (150 x 4, 3 classes, C = 10) and the first 400
rows of digits (64 pixel features / 16, 10 classes, C = 1). Each fit is converged tightly (tol 1e-10),
so the stored coefficients are the optimum of the convex objective, not a solver's stopping point.
"""
import json
import sys

import numpy as np
import sklearn
from sklearn.datasets import load_digits, load_iris
from sklearn.linear_model import LogisticRegression


def case(name, X, y, C):
    m = LogisticRegression(C=C, solver="lbfgs", tol=1e-10, max_iter=100000).fit(X, y)
    return {
        "name": name,
        "C": C,
        "n": int(X.shape[0]),
        "d": int(X.shape[1]),
        "K": int(len(m.classes_)),
        "X": [[float("%.9g" % v) for v in row] for row in X],
        "y": [int(v) for v in y],
        "coef": [[float(v) for v in row] for row in m.coef_],
        "intercept": [float(v) for v in m.intercept_],
        "proba": [[float(v) for v in row] for row in m.predict_proba(X)],
        "predict": [int(v) for v in m.predict(X)],
    }


iris = load_iris()
digits = load_digits()
Xi = np.array([[float("%.9g" % v) for v in r] for r in iris.data])
Xd = digits.data[:400] / 16.0
out = {
    "generator": "scikit-learn %s LogisticRegression(solver='lbfgs', tol=1e-10), numpy %s" % (sklearn.__version__, np.__version__),
    "cases": [case("iris", Xi, iris.target, 10.0), case("digits400", Xd, digits.target[:400], 1.0)],
}
json.dump(out, sys.stdout)
sys.stdout.write("\n")
