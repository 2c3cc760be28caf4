#!/usr/bin/env python3
"""make_streams.py — the feedback streams of bench_intent --stream (bench/RESULTS.md 13, "Online learning that
keeps the fit"): labelled rows from outside each pool, as a serving node's feedback would arrive.

    python3 bench/intent/make_streams.py SHARED_DATA_DIR OUT_DIR

OUT_DIR/clinc150_stream10.tsv: CLINC150 training rows 51-60 of each intent (file order; the pool,
data/intent/clinc150_train50.tsv, is rows 1-50). OUT_DIR/snips_stream20.tsv: SNIPS training rows 51-70 of each
intent (the pool, snips_train50.tsv, is rows 1-50). Not shipped in data/ (made from ../shared/data on demand).

OUT_DIR/clinc150_dom_<G>_{pool,stream,stream20,test}.tsv: smaller CLINC150 label sets for the same measure, one per
domain (15 intents each, domains.json) and two halves (halfA: the first 5 domains in domains.json's order, 75
intents; halfB: the other 5): the pool is training rows 1-50 of each intent, the stream rows 51-60 (stream20: rows
51-70), the test all 30 test rows of each intent (bench/RESULTS.md 13, "The per-intent factor on label sets it was
not chosen on").
"""
import json
import os
import sys
from collections import defaultdict

if len(sys.argv) != 3:
    sys.exit(__doc__)
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)


def write(name, rows):
    with open(os.path.join(out, name), "w") as f:
        f.write("text\tlabel\n")
        for t, l in rows:
            f.write(f"{t.replace(chr(9), ' ').strip()}\t{l}\n")


def rows_per_label(rows, lo, hi, order=None):
    by = defaultdict(list)
    for t, l in rows:
        by[l].append((t, l))
    return [r for l in (order or by) for r in by[l][lo:hi]]


d = json.load(open(os.path.join(src, "clinc150", "data_full.json")))
write("clinc150_stream10.tsv", rows_per_label(d["train"], 50, 60))
with open(os.path.join(src, "snips", "snips_train_full_derived.tsv")) as f:
    lines = [l.rstrip("\n").split("\t") for l in f]
ti, li = lines[0].index("text"), lines[0].index("label")
write("snips_stream20.tsv", rows_per_label([(r[ti], r[li]) for r in lines[1:]], 50, 70))

dom = json.load(open(os.path.join(src, "clinc150", "domains.json")))
names = list(dom)
groups = dict(dom)
groups["halfA"] = [i for n in names[:5] for i in dom[n]]
groups["halfB"] = [i for n in names[5:] for i in dom[n]]
for g, intents in groups.items():
    order = sorted(intents)
    write(f"clinc150_dom_{g}_pool.tsv", rows_per_label(d["train"], 0, 50, order))
    write(f"clinc150_dom_{g}_stream.tsv", rows_per_label(d["train"], 50, 60, order))
    write(f"clinc150_dom_{g}_stream20.tsv", rows_per_label(d["train"], 50, 70, order))
    write(f"clinc150_dom_{g}_test.tsv", rows_per_label(d["test"], 0, 30, order))
