#!/usr/bin/env python3
"""report.py — markdown tables from bench/out/intent/results.jsonl (bench/intent/run.sh).

    python3 bench/intent/report.py bench/out/intent/results.jsonl
"""
import json
import statistics as st
import sys
from collections import defaultdict

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
runs = defaultdict(list)
lat = []
for r in rows:
    if r.get("latency"):
        lat.append(r)
    else:
        runs[(r["dataset"], r["impl"], r["k"])].append(r)

SEED = {5: 82, 10: 88, 20: 94, 50: 97}
impls = sorted({k[1] for k in runs}, key=lambda s: (not s.startswith("seslm"), s))
ks = sorted({k[2] for k in runs})


def cell(v):
    v = [100 * x for x in v]
    if len(v) == 1:
        return f"{v[0]:.1f}"
    return f"{st.mean(v):.1f} ± {st.stdev(v):.1f} ({min(v):.1f}–{max(v):.1f})"


for ds in ["snips", "clinc150"]:
    if not any(k[0] == ds for k in runs):
        continue
    n = {k[2]: runs[k][0]["n_train"] for k in runs if k[0] == ds}
    print(f"\n**{ds}** — test accuracy %, mean ± stdev (min–max) over seeds ({len(runs[(ds, impls[0], ks[0])])} seeds)\n")
    print("| examples per intent | seed's claim | " + " | ".join(impls) + " |")
    print("|---|---|" + "---|" * len(impls))
    for k in ks:
        cells = [cell([r["accuracy"] for r in runs[(ds, i, k)]]) if (ds, i, k) in runs else "—" for i in impls]
        print(f"| {k} ({n.get(k, '?')} train) | {SEED.get(k, '—')} | " + " | ".join(cells) + " |")
    fit = {i: st.median([r["fit_seconds"] for k in ks for r in runs.get((ds, i, k), [])] or [0]) for i in impls}
    print("\nmedian fit seconds: " + ", ".join(f"{i} {fit[i]:.2f}" for i in impls))
    if any("oos_auroc" in r for k in ks for r in runs.get((ds, impls[0], k), [])):
        print(f"\n**{ds} out-of-scope** (threshold on max probability chosen on val; in-scope accuracy counts a "
              "correct intent above the threshold), %, mean ± stdev over seeds\n")
        print("| examples per intent | impl | AUROC | in-scope accuracy | oos recall |")
        print("|---|---|---|---|---|")
        for k in ks:
            for i in impls:
                rs = runs.get((ds, i, k), [])
                if rs and "oos_auroc" in rs[0]:
                    print(f"| {k} | {i} | {cell([r['oos_auroc'] for r in rs])} | "
                          f"{cell([r['inscope_accuracy'] for r in rs])} | {cell([r['oos_recall'] for r in rs])} |")
        if any("in_scope_auroc" in r for k in ks for r in runs.get((ds, impls[0], k), [])):
            print(f"\n**{ds} out-of-scope by the in-scope p-value** (conformal, scaled max logit; the same heads): AUROC; "
                  "threshold chosen on val as above; and at the fixed level min_in_scope = 0.05 (no oos rows needed): "
                  "the share of in-scope test rows rejected (at most ~5 % by construction) and of oos rows rejected, %\n")
            print("| examples per intent | impl | AUROC | in-scope accuracy (val threshold) | oos recall (val threshold) "
                  "| in-scope rejected at 0.05 | oos recall at 0.05 |")
            print("|---|---|---|---|---|---|---|")
            for k in ks:
                for i in impls:
                    rs = [r for r in runs.get((ds, i, k), []) if "in_scope_auroc" in r]
                    if rs and "in_scope_inscope_accuracy" in rs[0]:
                        print(f"| {k} | {i} | {cell([r['in_scope_auroc'] for r in rs])} | "
                              f"{cell([r['in_scope_inscope_accuracy'] for r in rs])} | "
                              f"{cell([r['in_scope_oos_recall'] for r in rs])} | "
                              f"{cell([r['in_scope_reject_inscope_05'] for r in rs])} | "
                              f"{cell([r['in_scope_oos_recall_05'] for r in rs])} |")
for r in lat:
    print(f"\n**latency ({r['dataset']}, {r['threads']} threads)**: embedding one text p50 {r['embed_ms_p50']:.2f} ms "
          f"(p90 {r['embed_ms_p90']:.2f}); batch-32 throughput {r['embed_texts_per_s_batch32']:.0f} texts/s; "
          f"online update p50 {r['update_ms_p50']:.2f} ms, p90 {r['update_ms_p90']:.2f}, max {r['update_ms_max']:.2f} "
          f"({r['updates']} updates, median {r['update_steps_p50']:.0f} Adam steps, "
          f"{100 * r['learned_after_update']:.1f}% predicted right right after); adding a new intent p50 "
          f"{r['new_intent_update_ms_p50']:.2f} ms; {r['classes_at_updates']} intents at the end")

# The default head against scikit-learn on every (data set, k) cell: bench/RESULTS.md §13's table.
NAMES = {"snips": "SNIPS (7 intents, 700 test)", "clinc150": "CLINC150 (150 intents, 1500 test)",
         "clinc150_domains": "CLINC150 domains (10 labels, 300 test; held out)"}
PEERS = ["sklearn-logreg-C1", "sklearn-logreg-C10", "sklearn-logreg-cv"]
if any(k[1] == "seslm-auto" for k in runs) and any(k[1] == "sklearn-logreg-cv" for k in runs):
    print("\n**default head vs scikit-learn, mean test accuracy % over seeds** (C chosen per seed; Δ = auto − LR with C by CV)\n")
    print("| data | k | seslm auto | sklearn LR C=1 | sklearn LR C=10 | sklearn LR, C by CV | Δ | auto's C per seed |")
    print("|---|---|---|---|---|---|---|---|")
    wins = 0
    cells = 0
    for ds in NAMES:
        for k in ks:
            if (ds, "seslm-auto", k) not in runs:
                continue
            mean = {i: 100 * st.mean(r["accuracy"] for r in runs[(ds, i, k)]) for i in ["seslm-auto"] + PEERS if (ds, i, k) in runs}
            d = mean["seslm-auto"] - mean.get("sklearn-logreg-cv", float("nan"))
            d = 0.0 if abs(d) < 1e-3 else d  # the same number of right answers (accuracies are printed to 6 digits)
            cells += 1
            wins += d >= -1e-9
            cs = ", ".join(f"{r['C']:g}" + (" (MLP)" if r.get("mlp") else "") for r in runs[(ds, "seslm-auto", k)])
            print(f"| {NAMES[ds] if k == ks[0] else ''} | {k} | {mean['seslm-auto']:.2f} | "
                  + " | ".join(f"{mean[p]:.2f}" if p in mean else "—" for p in PEERS) + f" | {d:+.2f} | {cs} |")
    print(f"\nthe default head is >= the cross-validated logistic regression in {wins} of {cells} cells")
