#!/usr/bin/env python3
"""oos_leave_out.py — out-of-scope detection on label sets with no out-of-scope data of their own.

For SNIPS (7 intents) and CLINC150's 10 domains, some labels are held out: the head is trained (`seslm intent
train`, every default) on the first k training rows of the other labels, and the test rows of the held-out labels
are its out-of-scope inputs. Reports, per split, the AUROC of `in_scope` and of `confidence` (in-scope test rows
against held-out ones) and, at min_in_scope = 0.05, the share of in-scope test rows rejected (nominally about 5 %)
and of held-out rows rejected. Nothing is tuned on the held-out rows.

    python3 bench/intent/oos_leave_out.py SESLM MODEL_DIR [--shots 10,50] > out.jsonl
    (then the markdown table: python3 bench/intent/oos_leave_out.py --report out.jsonl)
"""
import json
import os
import statistics as st
import subprocess
import sys
import tempfile

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data", "intent")
SETS = {  # name: (train, test, groups of labels held out together)
    "snips": ("snips_train50.tsv", "snips_test700.tsv", 2),
    "clinc150_domains": ("clinc150_domains_train50.tsv", "clinc150_domains_test300.tsv", 2),
}


def rows(path):
    with open(path, encoding="utf-8") as f:
        head = f.readline().rstrip("\n").split("\t")
        ti, li = head.index("text"), head.index("label")
        return [(r[ti], r[li]) for r in (l.rstrip("\n").split("\t") for l in f) if len(r) > max(ti, li)]


def auroc(pos, neg):
    s = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return s / (len(pos) * len(neg))


def run(seslm, model, name, k, held, tmp):
    tr_file, te_file, _ = SETS[name]
    train = [r for r in rows(os.path.join(DATA, tr_file)) if r[1] not in held]
    seen, sub = {}, []
    for t, l in train:  # the first k rows of each kept label
        if seen.get(l, 0) < k:
            seen[l] = seen.get(l, 0) + 1
            sub.append((t, l))
    test = rows(os.path.join(DATA, te_file))
    trp, tep, head = os.path.join(tmp, "train.tsv"), os.path.join(tmp, "test.txt"), os.path.join(tmp, "head.safetensors")
    with open(trp, "w", encoding="utf-8") as f:
        f.write("text\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in sub))
    with open(tep, "w", encoding="utf-8") as f:
        f.write("".join(t + "\n" for t, _ in test))
    subprocess.run([seslm, "intent", "train", "--model", model, "--data", trp, "--out", head, "--threads", "2"],
                   check=True, stdout=subprocess.DEVNULL)
    out = subprocess.run([seslm, "intent", "predict", "--model", model, "--head", head, "--min-in-scope", "0.05",
                          "--threads", "2", "--input", tep], check=True, capture_output=True, text=True).stdout
    pred = [json.loads(l) for l in out.splitlines()]
    ins = [p for p, (_, l) in zip(pred, test) if l not in held]
    oos = [p for p, (_, l) in zip(pred, test) if l in held]
    right = sum(p["top"] == l for p, (_, l) in zip(pred, test) if l not in held)
    return {"dataset": name, "k": k, "held_out": sorted(held), "n_train": len(sub), "n_in": len(ins), "n_oos": len(oos),
            "accuracy": right / len(ins),
            "auroc_in_scope": auroc([p["in_scope"] for p in ins], [p["in_scope"] for p in oos]),
            "auroc_confidence": auroc([p["confidence"] for p in ins], [p["confidence"] for p in oos]),
            "rejected_in_05": sum(p["out_of_scope"] for p in ins) / len(ins),
            "rejected_oos_05": sum(p["out_of_scope"] for p in oos) / len(oos)}


def report(path):
    rs = [json.loads(l) for l in open(path) if l.strip()]
    print("| data | k | splits | accuracy (kept labels) | AUROC: confidence | AUROC: in_scope | in-scope rejected at 0.05 "
          "| held-out rejected at 0.05 |")
    print("|---|---|---|---|---|---|---|---|")
    for name in SETS:
        for k in sorted({r["k"] for r in rs if r["dataset"] == name}):
            g = [r for r in rs if r["dataset"] == name and r["k"] == k]

            def c(key):
                v = [100 * r[key] for r in g]
                return f"{st.mean(v):.1f} ({min(v):.1f}-{max(v):.1f})"
            print(f"| {name} | {k} | {len(g)} | {c('accuracy')} | {c('auroc_confidence')} | {c('auroc_in_scope')} | "
                  f"{c('rejected_in_05')} | {c('rejected_oos_05')} |")


def main():
    if len(sys.argv) >= 2 and sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "--report":
        report(sys.argv[2])
        return 0
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    seslm, model = sys.argv[1], sys.argv[2]
    shots = [10, 50]
    if len(sys.argv) == 5 and sys.argv[3] == "--shots":
        shots = [int(x) for x in sys.argv[4].split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        for name, (tr_file, _, g) in SETS.items():
            labels = sorted({l for _, l in rows(os.path.join(DATA, tr_file))})
            groups = [labels[i:i + g] for i in range(0, len(labels), g)]
            groups = [x if len(x) == g else x + labels[:g - len(x)] for x in groups]  # the last one wraps around
            for k in shots:
                for held in groups:
                    print(json.dumps(run(seslm, model, name, k, set(held), tmp)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
