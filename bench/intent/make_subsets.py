#!/usr/bin/env python3
"""make_subsets.py — regenerate data/intent/*.tsv from /work/shared/data (see data/intent/NOTICE.md).

    python3 bench/intent/make_subsets.py [SHARED_DATA_DIR] [OUT_DIR]
"""
import json
import os
import sys
from collections import defaultdict

src = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data"
out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "..", "data", "intent")


def write(name, rows):
    with open(os.path.join(out, name), "w") as f:
        f.write("text\tlabel\n")
        for t, l in rows:
            f.write(f"{t.replace(chr(9), ' ').strip()}\t{l}\n")


def first_per_label(rows, k):
    by = defaultdict(list)
    for t, l in rows:
        by[l].append((t, l))
    return [r for l in sorted(by) for r in by[l][:k]]


d = json.load(open(os.path.join(src, "clinc150", "data_full.json")))
write("clinc150_train50.tsv", first_per_label(d["train"], 50))
write("clinc150_test10.tsv", first_per_label(d["test"], 10))
write("clinc150_oos_test300.tsv", [(t, "oos") for t, _ in d["oos_test"][:300]])
write("clinc150_val3.tsv", first_per_label(d["val"], 3))
write("clinc150_oos_val100.tsv", [(t, "oos") for t, _ in d["oos_val"]])


def tsv(path):
    with open(path) as f:
        return [tuple(l.rstrip("\n").split("\t")) for l in f][1:]


write("snips_train50.tsv", first_per_label(tsv(os.path.join(src, "snips", "snips_train_full_derived.tsv")), 50))
write("snips_test700.tsv", tsv(os.path.join(src, "snips", "snips_validate_derived.tsv")))


# CLINC150 domains: a third label set (10 domains of 15 intents each, from domains.json), held out from the
# tuning of the intent head. Round-robin over each domain's intents so every intent is represented.
def per_domain(rows, k):
    doms = json.load(open(os.path.join(src, "clinc150", "domains.json")))
    by_intent = defaultdict(list)
    for t, l in rows:
        by_intent[l].append(t)
    out_rows = []
    for dom in sorted(doms):
        intents = sorted(doms[dom])
        picked, i = [], 0
        while len(picked) < k and any(by_intent[x] for x in intents):
            it = intents[i % len(intents)]
            j = i // len(intents)
            if j < len(by_intent[it]):
                picked.append((by_intent[it][j], dom))
            i += 1
            if i > 100 * k:
                break
        out_rows += picked
    return out_rows


write("clinc150_domains_train50.tsv", per_domain(d["train"], 50))
write("clinc150_domains_test300.tsv", per_domain(d["test"], 30))
# all 4,500 test rows by domain (450 each): the benchmark's domain test. On 300 rows one cell's difference between
# two heads moves by 1-2 points with the test rows alone (bench/RESULTS.md 13); 4,500 make it 4x steadier.
write("clinc150_domains_test4500.tsv", per_domain(d["test"], 450))
