#!/usr/bin/env python3
"""make_eval_data.py — regenerate the evaluation subsets of data/eval/ from the shared data sets.

    python3 data/eval/make_eval_data.py [/work/shared/data]

Standard library only. Deterministic: every selection is a fixed stride, no random numbers, so
re-running it reproduces the committed files byte for byte. NOTICE.md says what each file holds.
"""
import csv
import json
import os
import sys

SRC = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data"
OUT = os.path.dirname(os.path.abspath(__file__))


def clean(s):
    return " ".join(s.replace("\t", " ").split())


def write_tsv(name, rows):
    with open(os.path.join(OUT, name), "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write("\t".join(r) + "\n")
    print(f"{name}: {len(rows)} rows")


def write_lines(name, lines):
    with open(os.path.join(OUT, name), "w", encoding="utf-8", newline="\n") as f:
        for x in lines:
            f.write(x + "\n")
    print(f"{name}: {len(lines)} lines")


def per_label(pairs, k):
    """The first k examples of every label, in file order."""
    seen, out = {}, []
    for text, label in pairs:
        if seen.get(label, 0) < k:
            seen[label] = seen.get(label, 0) + 1
            out.append((clean(text), label))
    return out


# STS-B dev (all 1500 pairs): sentence1, sentence2, gold score 0-5
with open(os.path.join(SRC, "stsb/stsb-en-dev.csv"), encoding="utf-8", newline="") as f:
    rows = [(clean(a), clean(b), "%.3f" % float(s)) for a, b, s in csv.reader(f)]
write_tsv("stsb_dev.tsv", rows)

# CLINC150 (in-scope intents only): 20 train + 10 test utterances per intent
clinc = json.load(open(os.path.join(SRC, "clinc150/data_full.json"), encoding="utf-8"))
write_tsv("clinc150_train.tsv", per_label(clinc["train"], 20))
write_tsv("clinc150_test.tsv", per_label(clinc["test"], 10))

# SNIPS: 150 train utterances per intent (of the derived train file) + the 700 validate utterances
def tsv(path):
    with open(path, encoding="utf-8") as f:
        rows = [tuple(line.rstrip("\n").split("\t")) for line in f if line.strip()]
    return [r for r in rows if r != ("text", "label")]  # the derived files start with a header

write_tsv("snips_train.tsv", per_label(tsv(os.path.join(SRC, "snips/snips_train_full_derived.tsv")), 150))
write_tsv("snips_test.tsv", per_label(tsv(os.path.join(SRC, "snips/snips_validate_derived.tsv")), 100))

# held-out restaurant traffic: lines never in data/traffic/restaurant8k_600.txt (which took every 19th)
with open(os.path.join(SRC, "restaurant8k/restaurant8k_utterances_derived.txt"), encoding="utf-8") as f:
    rest = [clean(x) for x in f]
used = set(open(os.path.join(OUT, "../traffic/restaurant8k_600.txt"), encoding="utf-8").read().splitlines())
held = [x for i, x in enumerate(rest) if i % 11 == 5 and x and x not in used][:800]
write_lines("restaurant8k_heldout.txt", held)

# grounding: 2000 Wikipedia passages and 200 queries, disjoint from each other and from wiki_600
with open(os.path.join(SRC, "wiki_sents/all_wiki_sents.txt"), encoding="utf-8") as f:
    wiki = [clean(x) for x in f]
used = set(open(os.path.join(OUT, "../traffic/wiki_600.txt"), encoding="utf-8").read().splitlines())
passages = [x for i, x in enumerate(wiki) if i % 7 == 3 and x and x not in used][:2000]
pset = set(passages)
queries = [x for i, x in enumerate(wiki) if i % 61 == 30 and x and x not in used and x not in pset][:200]
write_lines("wiki_passages.txt", passages)
write_lines("wiki_queries.txt", queries)
