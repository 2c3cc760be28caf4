#!/usr/bin/env python3
"""evolve_table.py RUN_DIR... -- the rows of bench/RESULTS.md section 12 from bench/evolve_cycles.sh's runs:
every candidate of each cycle with its metrics against its parent (and the root, second cycle) as measured in
its validation run, the recompile (+ distillation) wall time and which candidate the cycle selected."""
import json, os, sys

def m(v, k, f="candidate"):
    x = v["metrics"].get(k, {})
    return x.get(f)

def row(d, cyc, name, v, rv, sel, secs):
    p = lambda k: m(v, k, "parent")
    c = lambda k: m(v, k)
    ratio = lambda k: (c(k) / p(k)) if c(k) is not None and p(k) else float("nan")
    drop = lambda k: 100 * (p(k) - c(k)) if c(k) is not None and p(k) is not None else float("nan")
    fb = m(v, "feedback_intent_accuracy")
    cells = [os.path.basename(d.rstrip("/")), cyc, name + (" **selected**" if sel == name else ""),
             "pass" if v["pass"] and (rv is None or rv["pass"]) else "fail (%s)" % ", ".join(
                 g["metric"] + ("@root" if r else "") for r, vv in ((0, v), (1, rv)) if vv for g in vv["gates"] if not g["pass"]),
             "%.3f" % ratio("weight_bytes"), "%.3f" % ratio("latency_b1_p50"), "%.3f" % ratio("latency_b32_p50"),
             "%.4f" % c("traffic_cosine_mean"), "%.3f" % c("traffic_recall_agreement"), "%.4f" % c("cosine_mean"),
             "%+.2f" % -drop("stsb_spearman"), "%+.2f" % -drop("clinc150_accuracy"),
             "%+.2f" % -drop("feedback_intent_accuracy") if fb is not None else "-",
             "%+.2f" % -(100 * (rv["metrics"]["stsb_spearman"]["parent"] - rv["metrics"]["stsb_spearman"]["candidate"])) if rv else "-",
             "%.0f" % secs if secs is not None else "-"]
    print("| " + " | ".join(cells) + " |")

for d in sys.argv[1:]:
    for cyc in ("cycle1", "cycle2"):
        run = os.path.join(d, cyc)
        if not os.path.exists(os.path.join(run, "verdict.json")):
            continue
        ev = json.load(open(os.path.join(run, "verdict.json")))
        for c in ev["candidates"]:
            n = c["candidate"]
            vp = os.path.join(run, "05-validate", n, "verdict.json")
            rp = os.path.join(run, "06-validate-root", n, "verdict.json")
            if not os.path.exists(vp):
                continue
            st = os.path.join(run, "stages", "04-recompile-%s.json" % n)
            secs = json.load(open(st))["seconds"] if os.path.exists(st) else None
            row(d, cyc, n, json.load(open(vp)), json.load(open(rp)) if os.path.exists(rp) else None, ev.get("selected"), secs)
