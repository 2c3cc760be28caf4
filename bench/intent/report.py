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
for r in lat:
    print(f"\n**latency ({r['dataset']}, {r['threads']} threads)**: embedding one text p50 {r['embed_ms_p50']:.2f} ms "
          f"(p90 {r['embed_ms_p90']:.2f}); batch-32 throughput {r['embed_texts_per_s_batch32']:.0f} texts/s; "
          f"online update p50 {r['update_ms_p50']:.2f} ms, p90 {r['update_ms_p90']:.2f}, max {r['update_ms_max']:.2f} "
          f"({r['updates']} updates, median {r['update_steps_p50']:.0f} Adam steps, "
          f"{100 * r['learned_after_update']:.1f}% predicted right right after); adding a new intent p50 "
          f"{r['new_intent_update_ms_p50']:.2f} ms; {r['classes_at_updates']} intents at the end")
