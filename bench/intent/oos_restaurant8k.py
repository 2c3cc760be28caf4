#!/usr/bin/env python3
"""oos_restaurant8k.py — the intent head and its in-scope p-value on a label set nobody tuned on.

Restaurant-8k (../shared/data/restaurant8k, CC BY 4.0; not copied into data/) labels slot spans, not intents:
utterances with exactly one slot become a 5-label set (date, first_name, last_name, people, time). The head is
trained with `seslm intent train` (every default) on 20 random training utterances per label (seed 7), then
`seslm intent predict --min-in-scope 0.05` answers the test split's single-slot utterances (in scope) and
CLINC150's 300 oos test rows (out of scope). Prints accuracy, the AUROC of confidence and of in_scope, the
share of each side rejected at 0.05, and what the head training selected (its `selection`).

    python3 bench/intent/oos_restaurant8k.py SESLM MODEL_DIR [RESTAURANT8K_DIR]
"""
import json
import os
import random
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def rows(path):
    out = []
    for d in json.load(open(path, encoding="utf-8")):
        slots = {l["slot"] for l in d.get("labels", [])}
        t = d["userInput"]["text"].replace("\t", " ").replace("\n", " ").strip()
        if len(slots) == 1 and t:
            out.append((t, slots.pop()))
    return out


def main():
    if len(sys.argv) < 3 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help") else 2
    seslm, model = sys.argv[1], sys.argv[2]
    src = sys.argv[3] if len(sys.argv) > 3 else os.path.join(HERE, "..", "..", "..", "shared", "data", "restaurant8k")
    train, test = rows(os.path.join(src, "train_0.json")), rows(os.path.join(src, "test.json"))
    random.seed(7)
    random.shuffle(train)
    n, sub = {}, []
    for t, l in train:
        if n.get(l, 0) < 20:
            n[l] = n.get(l, 0) + 1
            sub.append((t, l))
    test = [r for r in test if r[1] in n]
    with open(os.path.join(HERE, "..", "..", "data", "intent", "clinc150_oos_test300.tsv"), encoding="utf-8") as f:
        oos_texts = [l.split("\t")[0] for l in f.read().splitlines()[1:]]
    with tempfile.TemporaryDirectory() as tmp:
        p = lambda name: os.path.join(tmp, name)
        with open(p("train.tsv"), "w", encoding="utf-8") as f:
            f.write("text\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in sub))
        with open(p("in.txt"), "w", encoding="utf-8") as f:
            f.write("".join(t + "\n" for t, _ in test))
        with open(p("oos.txt"), "w", encoding="utf-8") as f:
            f.write("".join(t + "\n" for t in oos_texts))
        trained = json.loads(subprocess.run([seslm, "intent", "train", "--model", model, "--data", p("train.tsv"),
                                             "--out", p("head"), "--threads", "1"], check=True, capture_output=True,
                                            text=True).stdout)

        def predict(name):
            out = subprocess.run([seslm, "intent", "predict", "--model", model, "--head", p("head"), "--min-in-scope",
                                  "0.05", "--threads", "1", "--input", p(name)], check=True, capture_output=True,
                                 text=True).stdout
            return [json.loads(l) for l in out.splitlines()]
        ins, oos = predict("in.txt"), predict("oos.txt")
    acc = sum(r["top"] == l for r, (_, l) in zip(ins, test)) / len(ins)

    def auroc(k):
        return sum((i[k] > o[k]) + 0.5 * (i[k] == o[k]) for i in ins for o in oos) / (len(ins) * len(oos))
    print(json.dumps({"labels": n, "n_in": len(ins), "n_oos": len(oos), "accuracy": round(acc, 4),
                      "auroc_confidence": round(auroc("confidence"), 4), "auroc_in_scope": round(auroc("in_scope"), 4),
                      "rejected_in_05": round(sum(r["out_of_scope"] for r in ins) / len(ins), 4),
                      "rejected_oos_05": round(sum(r["out_of_scope"] for r in oos) / len(oos), 4),
                      "feature_layers": trained["feature_layers"], "selection": trained.get("selection")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
