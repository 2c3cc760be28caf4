#!/usr/bin/env python3
"""make_general.py — data/general/wiki_general_4000.txt: general text that distillation replays so a student
does not forget what the served domain never shows (docs/distill.md). 4,000 Wikipedia sentences from
../shared/data/wiki_sents (CC BY 3.0, LICENSE-CC-BY-3.0.txt; text from Wikipedia, CC BY-SA; SOURCE-wiki_sents.txt), disjoint from
every evaluation / traffic file built from the same source (data/traffic/wiki_600.txt,
data/eval/wiki_passages.txt, data/eval/wiki_queries.txt): odd-numbered lines with at least 6 words, the first 4,000.

    python3 data/general/make_general.py [SHARED_DATA_DIR]
"""
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "../../../shared/data")
used = set()
for p in ("../traffic/wiki_600.txt", "../eval/wiki_passages.txt", "../eval/wiki_queries.txt"):
    with open(os.path.join(here, p), encoding="utf-8") as f:
        used.update(x.strip() for x in f)
with open(os.path.join(src, "wiki_sents/all_wiki_sents.txt"), encoding="utf-8") as f:
    wiki = [" ".join(x.split()) for x in f]
out = [x for i, x in enumerate(wiki) if i % 2 == 1 and len(x.split()) >= 6 and x not in used][:4000]
assert len(out) == 4000, len(out)
with open(os.path.join(here, "wiki_general_4000.txt"), "w", encoding="utf-8") as f:
    f.write("\n".join(out) + "\n")
print("wrote", len(out), "lines")
