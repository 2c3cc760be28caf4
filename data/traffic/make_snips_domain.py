#!/usr/bin/env python3
"""make_snips_domain.py -- the second domain of issue 13's evolution benchmark: SNIPS user queries as a
node's served traffic, calibration sample and labelled feedback. Nothing here was tuned on SNIPS.

Reads /work/shared/data/snips/snips_train_full_derived.tsv (SNIPS NLU benchmark 2017-06, CC0 1.0,
https://github.com/sonos/nlu-benchmark commit b86ac7f1; "text<TAB>label", whitespace-normalised), drops the
rows shipped in data/eval/snips_{train,test}.tsv (the sandbox's SNIPS accuracy check), takes every other row
of the rest in file order (the 7 intents interleaved by a fixed stride), and writes, disjoint:
  snips_traffic_4000.txt      4000 queries: what the node served (seslm record -> telemetry)
  snips_calib_1200.txt        1200 more: the cycle's calibration sample (it holds 20% of them out)
  snips_feedback_800.tsv      800 more, "text<TAB>label" with a header: the labelled feedback the node kept
Usage: python3 data/traffic/make_snips_domain.py [SRC_TSV]   (run from the repository root)
"""
import sys

src = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/snips/snips_train_full_derived.tsv"
rows = [l.rstrip("\n").split("\t") for l in open(src, encoding="utf-8")][1:]
shipped = set()
for f in ("data/eval/snips_train.tsv", "data/eval/snips_test.tsv"):
    for l in open(f, encoding="utf-8"):
        shipped.add(l.split("\t")[0].strip())
rows = [r for r in rows if len(r) == 2 and r[0].strip() and r[0].strip() not in shipped]
# a fixed interleave of the per-intent blocks: row i of the (intent-ordered) file goes to slot
# (i * 7919) mod n, so every slice holds every intent
n = len(rows)
order = sorted(range(n), key=lambda i: (i * 7919) % n)
rows = [rows[i] for i in order][::2]
traffic, calib, fb = rows[:4000], rows[4000:5200], rows[5200:6000]
assert len(fb) == 800, len(rows)
with open("data/traffic/snips_traffic_4000.txt", "w", encoding="utf-8") as f:
    f.writelines(r[0] + "\n" for r in traffic)
with open("data/traffic/snips_calib_1200.txt", "w", encoding="utf-8") as f:
    f.writelines(r[0] + "\n" for r in calib)
with open("data/traffic/snips_feedback_800.tsv", "w", encoding="utf-8") as f:
    f.write("text\tlabel\n")
    f.writelines(r[0] + "\t" + r[1] + "\n" for r in fb)
print("traffic %d, calibration %d, feedback %d of %d rows" % (len(traffic), len(calib), len(fb), n))
