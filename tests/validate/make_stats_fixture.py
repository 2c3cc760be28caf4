#!/usr/bin/env python3
"""make_stats_fixture.py — reference values from SciPy / NumPy for pipeline/validate/validate_stats.c
(tests/unit/test_validate_stats.c): Spearman correlations with and without ties, average ranks and
percentiles; McNemar's exact one-sided test (scipy.stats.binomtest, alternative="greater").

    .venv-val/bin/python tests/validate/make_stats_fixture.py > tests/fixtures/validate/stats_scipy.json

Inputs are made here from a fixed seed; the expected values come from scipy.stats.spearmanr,
scipy.stats.rankdata(method="average") and numpy.percentile (linear), which nobody here wrote.
"""
import json
import sys

import numpy as np
import scipy
from scipy.stats import binomtest, rankdata, spearmanr

rng = np.random.default_rng(20261125)
cases = []


def add(name, x, y):
    x = [float(v) for v in x]
    y = [float(v) for v in y]
    cases.append({"name": name, "x": x, "y": y, "spearman": float(spearmanr(x, y).statistic),
                  "rank_x": [float(v) for v in rankdata(x, method="average")],
                  "p5_x": float(np.percentile(x, 5)), "p50_x": float(np.percentile(x, 50)),
                  "p95_x": float(np.percentile(x, 95))})


add("no_ties", rng.normal(size=50), rng.normal(size=50))
# STS-B-like: gold scores on a 0.2 grid (many ties) against noisy cosines
gold = np.round(rng.uniform(0, 5, size=300) * 5) / 5
add("gold_ties", rng.normal(size=300) * 0.3 + gold / 5, gold)
# heavy ties on both sides (integers 0..3)
add("both_ties", rng.integers(0, 4, size=40), rng.integers(0, 4, size=40))
add("all_tied_but_one", [1, 1, 1, 1, 2], [3, 1, 4, 1, 5])
add("reversed_with_ties", [1, 2, 2, 3, 4, 4, 4, 5], [8, 7, 7, 6, 5, 5, 4, 3])
# (wins, losses): the adapt gate's held-out examples the two models disagree on
mcnemar = [{"wins": w, "losses": l, "p": float(binomtest(w, w + l, 0.5, alternative="greater").pvalue)}
           for w, l in [(1, 0), (4, 0), (5, 0), (6, 2), (10, 3), (10, 10), (3, 10), (0, 5), (20, 8), (40, 20),
                        (150, 120), (1000, 900), (2, 1)]]
json.dump({"generator": "scipy %s, numpy %s" % (scipy.__version__, np.__version__), "cases": cases,
           "mcnemar": mcnemar}, sys.stdout)
sys.stdout.write("\n")
