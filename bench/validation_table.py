#!/usr/bin/env python3
"""validation_table.py — the Markdown table of bench/RESULTS.md's validation section from verdict.json
files of `seslm validate` (standard library only).

    python3 bench/validation_table.py bench/out/validate/*/verdict.json
"""
import json
import os
import sys

ROWS = [  # metric, label, format
    ("stsb_spearman", "STS-B Spearman", "%.4f"),
    ("clinc150_accuracy", "CLINC150 accuracy", "%.4f"),
    ("snips_accuracy", "SNIPS accuracy", "%.4f"),
    ("domain_intent_accuracy", "domain intent accuracy", "%.4f"),
    ("cosine_mean", "cosine vs parent, mean (held-out)", "%.4f"),
    ("cosine_p5", "cosine vs parent, p5 (held-out)", "%.4f"),
    ("domain_cosine_mean", "cosine vs parent, mean (domain)", "%.4f"),
    ("recall_agreement", "recall@10 agreement, mean", "%.4f"),
    ("recall_agreement_min", "recall@10 agreement, worst query", "%.2f"),
    ("latency_b1_p50", "latency batch 1 p50 (ms)", "%.2f"),
    ("latency_b1_p95", "latency batch 1 p95 (ms)", "%.2f"),
    ("latency_b32_p50", "latency batch 32 p50 (ms)", "%.1f"),
    ("latency_b32_p95", "latency batch 32 p95 (ms)", "%.1f"),
    ("weight_bytes", "weight bytes (MB)", "%.1f"),
    ("peak_rss_bytes", "peak RSS (MB)", "%.1f"),
]


def fmt(v, f, metric):
    if v is None:
        return "-"
    if metric.endswith("bytes"):
        v = v / 1e6
    return f % v


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    vs = []
    for p in sys.argv[1:]:
        try:
            vs.append(json.load(open(p)))
        except (OSError, ValueError) as e:
            print("validation_table.py: %s: %s" % (p, e), file=sys.stderr)
            return 2
    names = [os.path.basename(os.path.normpath(v["candidate"]["dir"])) for v in vs]
    print("| metric | parent | " + " | ".join("%s (ratio / delta)" % n for n in names) + " |")
    print("|---|---|" + "---|" * len(vs))
    for metric, label, f in ROWS:
        m0 = vs[0]["metrics"][metric]
        cells = []
        for v in vs:
            m = v["metrics"][metric]
            if not m["measured"]:
                cells.append("-")
                continue
            extra = ("x%.3f" % m["ratio"]) if (metric.startswith("latency") or metric.endswith("bytes")) else \
                ("%+.4f" % m["delta"])
            cells.append("%s (%s)" % (fmt(m["candidate"], f, metric), extra))
        print("| %s | %s | %s |" % (label, fmt(m0["parent"], f, metric) if m0["measured"] else "-", " | ".join(cells)))
    print("| gates passed | | " + " | ".join("%d / %d%s" % (v["gates_total"] - v["gates_failed"], v["gates_total"],
                                                           " PASS" if v["pass"] else "") for v in vs) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
