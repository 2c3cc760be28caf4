#!/usr/bin/env bash
# test_intent.sh — `seslm intent train|predict|learn` end to end on the real model:
#   * usage errors exit 2, unreadable files exit 1, a malformed line exits 2, each with a message naming the line;
#   * JSON lines (a node's feedback log) and TSV in any column order train the same head, byte for byte;
#   * train on 10 SNIPS examples per intent (data/intent/snips_train50.tsv) writes a head that predicts
#     held-out SNIPS texts well (one JSON line each, probabilities summing to 1);
#   * the head's input is the last 3 layers' features by default (recorded in the head file, 1152-d), and
#     predict and learn compute what the head records; --feature-layers 1 gives an embedding head, which
#     is less accurate on the same held-out texts;
#   * learn adds a new intent online and the head file is rewritten; an unknown intent with
#     --no-new-intents is refused and leaves the file byte-identical; --threshold 1 gives out of scope.
#   * a head reading more layers than the model has exits 1 naming both (predict, learn), not as a usage error.
#
#   bash tests/cli/test_intent.sh <path to seslm> <model dir> <repo root>
set -u

. "$(dirname "$0")/lib.sh"
cli_test_init test_intent "$@"

TRAIN=$TMP/train.tsv
awk -F'\t' 'NR == 1 || n[$2]++ < 10' "$ROOT/data/intent/snips_train50.tsv" >"$TRAIN"
awk -F'\t' 'NR > 1 && n[$2]++ < 5 { print $1 > "'"$TMP"'/test.txt"; print $2 > "'"$TMP"'/test.labels" }' \
    "$ROOT/data/intent/snips_test700.tsv"
HEAD=$TMP/head.safetensors

# ---- usage and input errors ----------------------------------------------------------------------------
expect 0 "usage: seslm intent train" "help" -- intent --help
expect 2 "usage" "no subcommand" -- intent
expect 2 "unknown subcommand" "bad subcommand" -- intent fly
expect 2 "needs --data" "train without data" -- intent train --model "$MODEL" --out "$HEAD"
expect 1 "cannot open" "missing TSV" -- intent train --model "$MODEL" --data "$TMP/nope.tsv" --out "$HEAD"
printf 'sentence\tintent\nhello\tgreet\n' >"$TMP/bad1.tsv"
expect 2 "must name a \"text\" and a \"label\"" "header without text/label" -- intent train --model "$MODEL" --data "$TMP/bad1.tsv" --out "$HEAD"
printf 'text\tlabel\nhello\tgreet\n\tbye\n' >"$TMP/bad2.tsv"
expect 2 "bad2.tsv:3: the text is empty" "empty text" -- intent train --model "$MODEL" --data "$TMP/bad2.tsv" --out "$HEAD"
printf 'text\tlabel\nhello\tgreet\nhi\tgreet\n' >"$TMP/bad3.tsv"
expect 2 "at least 2 classes" "one class" -- intent train --model "$MODEL" --data "$TMP/bad3.tsv" --out "$HEAD"
expect 2 "--hidden must be" "bad hidden" -- intent train --model "$MODEL" --data "$TRAIN" --out "$HEAD" --hidden 12,x
expect 2 "unknown option" "unknown train option" -- intent train --model "$MODEL" --data "$TRAIN" --out "$HEAD" --bogus 1
[ -e "$HEAD" ] && fail "a failed train must not leave a head file"

# ---- train -------------------------------------------------------------------------------------------
expect 0 '"intents":7.*"in_scope_reference":70,"feature_layers":3.*"early_weight":0.7\}' "train" -- intent train --model "$MODEL" --data "$TRAIN" --out "$HEAD" --seed 3
[ -s "$HEAD" ] || fail "train wrote no head"
ok
python3 - "$HEAD" <<'EOF' || fail "the head file does not record its 3 layers"
import json, struct, sys
b = open(sys.argv[1], "rb").read()
meta = json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]])["__metadata__"]
assert meta["feature_layers"] == "3" and meta["input_dim"] == "1152", meta
EOF
# the same examples as a serving node's --feedback-log writes them (JSON lines), and as TSV with the columns in
# another order beside an extra one: the same head, byte for byte
python3 - "$TRAIN" "$TMP/train.jsonl" "$TMP/rev.tsv" "$TMP/part1.tsv" "$TMP/part2.jsonl" <<'EOF'
import json, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
def log(path, rows):
    with open(path, "w") as f:
        for t, l in rows:
            f.write(json.dumps({"text": t, "intent": l, "time": "2026-12-07T10:00:00Z", "model": "0" * 64}) + "\n")
log(sys.argv[2], rows)
with open(sys.argv[4], "w") as f: # the first half as the training set, the rest as a node's feedback log
    f.write("text\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows[:35]))
log(sys.argv[5], rows[35:])
with open(sys.argv[3], "w") as f:
    f.write("label\tid\ttext\n")
    for i, (t, l) in enumerate(rows):
        f.write(f"{l}\t{i}\t{t}\n")
EOF
for form in train.jsonl rev.tsv; do
    expect 0 '"examples":70,"intents":7' "train from $form" -- intent train --model "$MODEL" --data "$TMP/$form" --out "$TMP/$form.head" --seed 3
    ok
    cmp -s "$HEAD" "$TMP/$form.head" || fail "the head trained from $form differs from the TSV's"
done
expect 0 '"examples":70,"intents":7' "train from two files" -- intent train --model "$MODEL" --data "$TMP/part1.tsv" --data "$TMP/part2.jsonl" --out "$TMP/parts.head" --seed 3
ok
cmp -s "$HEAD" "$TMP/parts.head" || fail "the head trained from a TSV and a feedback log (--data twice) differs from the TSV's"
printf 'text\tlabel\nhello\tgreet\nhi\tgreet \n' >"$TMP/bad4.tsv"
expect 2 'bad4.tsv:3: intent label "greet " starts or ends with white space' "label with a trailing space" -- intent train --model "$MODEL" --data "$TMP/bad4.tsv" --out "$TMP/h0"
expect 2 "--feature-layers" "feature layers 0" -- intent train --model "$MODEL" --data "$TRAIN" --out "$TMP/h0" --feature-layers 0
expect 2 "the model has 6 layers" "more feature layers than the model has" -- intent train --model "$MODEL" --data "$TRAIN" --out "$TMP/h0" --feature-layers 7
expect 0 '"feature_layers":1.*"early_weight":1\}' "train on the embeddings" -- intent train --model "$MODEL" --data "$TRAIN" --out "$TMP/head1.safetensors" --seed 3 --feature-layers 1
expect 0 '"feature_layers":3.*"early_weight":1\}' "equal blocks" -- intent train --model "$MODEL" --data "$TRAIN" --out "$TMP/head_eq.safetensors" --seed 3 --early-weight 1
expect 2 "--early-weight must be" "early weight 0" -- intent train --model "$MODEL" --data "$TRAIN" --out "$TMP/h0" --early-weight 0
[ -e "$TMP/h0" ] && fail "a refused train must not leave a head file"
expect 1 "cannot open" "predict with a missing head" -- intent predict --model "$MODEL" --head "$TMP/none" hello
head -c 100 "$HEAD" >"$TMP/trunc.safetensors"
expect 1 "" "predict with a truncated head" -- intent predict --model "$MODEL" --head "$TMP/trunc.safetensors" hello
expect 2 "needs --head" "predict without head" -- intent predict --model "$MODEL" hello
expect 2 "invalid UTF-8" "predict invalid UTF-8" -- intent predict --model "$MODEL" --head "$HEAD" "$(printf 'ok \xff')"

# a head that reads more layers than the model has (trained on the parent, run on a 3-layer student): exit 1 with
# what the head reads, not a usage error (no flag was given); embed --feature-layers 4 there is one (exit 2)
expect 0 '"feature_layers":4' "train on 4 layers" -- intent train --model "$MODEL" --data "$TRAIN" --out "$TMP/head4.safetensors" --seed 3 --feature-layers 4
# two cycles of the layer cap (2 of 6 layers, then 1 of 4) on the unquantized parent: layers 1, 2, then 1 dropped
drop_plan() { # drop_plan MODEL_DIR LAYER... > plan
    python3 -c '
import hashlib, json, sys
d, drop = sys.argv[1], {int(x) for x in sys.argv[2:]}
n = json.load(open(d + "/config.json"))["num_hidden_layers"]
sha = hashlib.sha256(open(d + "/model.safetensors", "rb").read()).hexdigest()
print(json.dumps({"format": "seslm-plan", "version": 1, "model_sha256": sha, "layers": [
    {"layer": i, "remove_heads": [], "remove_neurons": [], "drop": i in drop} for i in range(n)]}))' "$@"
}
drop_plan "$MODEL" 1 2 >"$TMP/p4.json" && "$SESLM" recompile --plan "$TMP/p4.json" --out "$TMP/l4" --model "$MODEL" \
    --quantize none --embeddings f32 >/dev/null 2>"$TMP/rc.err" &&
    drop_plan "$TMP/l4" 1 >"$TMP/p3.json" && "$SESLM" recompile --plan "$TMP/p3.json" --out "$TMP/l3" --model "$TMP/l4" \
    --quantize none --embeddings f32 >/dev/null 2>>"$TMP/rc.err" || fail "3-layer student: $(head -c 300 "$TMP/rc.err")"
expect 1 "the head reads the last 4 layers; the model .*/l3 has 3 layers" "predict: head deeper than the model" -- intent predict --model "$TMP/l3" --head "$TMP/head4.safetensors" hello
expect 1 "the head reads the last 4 layers" "learn: head deeper than the model" -- intent learn --model "$TMP/l3" --head "$TMP/head4.safetensors" --text "bake a cake" --label Cooking
expect 0 '"intent":' "the 4-layer head on the 4-layer student" -- intent predict --model "$TMP/l4" --head "$TMP/head4.safetensors" hello
expect 2 "--feature-layers 4: the model .*/l3 has 3 layers" "embed --feature-layers beyond a student's layers" -- embed --model "$TMP/l3" --feature-layers 4 hello

# ---- predict: held-out SNIPS texts, one JSON line each --------------------------------------------------
ok
"$SESLM" intent predict --model "$MODEL" --head "$HEAD" --input "$TMP/test.txt" >"$TMP/pred.jsonl" 2>"$TMP/pred.err" ||
    fail "predict: $(cat "$TMP/pred.err")"
python3 - "$TMP/pred.jsonl" "$TMP/test.labels" <<'EOF' || fail "predict output"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
gold = [l.strip() for l in open(sys.argv[2])]
assert len(rows) == len(gold) == 35, (len(rows), len(gold))
right = 0
for i, (r, g) in enumerate(zip(rows, gold)):
    assert r["index"] == i
    p = r["probabilities"]
    assert len(p) == 7 and abs(sum(p.values()) - 1) < 1e-4, p
    assert r["top"] == max(p, key=p.get) and abs(r["confidence"] - p[r["top"]]) < 1e-6
    assert r["out_of_scope"] is False and r["intent"] == r["top"]
    assert 0 < r["in_scope"] <= 1, r
    right += r["intent"] == g
assert right >= 28, f"only {right} of 35 held-out SNIPS texts right"
print(f"predict: {right}/35 right")
EOF
# the embedding head on all 700 SNIPS test texts: fewer right than the 3-layer head
ok
tail -n +2 "$ROOT/data/intent/snips_test700.tsv" | cut -f1 >"$TMP/all.txt"
tail -n +2 "$ROOT/data/intent/snips_test700.tsv" | cut -f2 >"$TMP/all.labels"
for h in head head1; do
    "$SESLM" intent predict --model "$MODEL" --head "$TMP/$h.safetensors" --input "$TMP/all.txt" >"$TMP/$h.all.jsonl" 2>"$TMP/all.err" ||
        fail "predict with $h: $(cat "$TMP/all.err")"
done
python3 - "$TMP/head.all.jsonl" "$TMP/head1.all.jsonl" "$TMP/all.labels" <<'EOF' || fail "3-layer head vs embedding head"
import json, sys
gold = [l.strip() for l in open(sys.argv[3])]
acc = [sum(json.loads(l)["top"] == g for l, g in zip(open(f), gold)) for f in sys.argv[1:3]]
print(f"SNIPS test, 10 shots: last 3 layers {acc[0]}/700, embedding {acc[1]}/700")
assert acc[0] > acc[1], acc
EOF
expect 0 '"intent":null.*"out_of_scope":true' "threshold 1: out of scope" -- intent predict --model "$MODEL" --head "$HEAD" --threshold 1 "banana"

# ---- the in-scope p-value: texts no SNIPS intent covers rank below the held-out SNIPS texts ------------
ok
printf '%s\n' "what is the boiling point of mercury in kelvin" "how do I file my tax return as a freelancer" \
    "my car makes a rattling noise when it brakes" "translate good morning into japanese" \
    "which vaccines does a puppy need" "reset the password of my bank account" >"$TMP/oos.txt"
"$SESLM" intent predict --model "$MODEL" --head "$HEAD" --min-in-scope 0.05 --input "$TMP/oos.txt" >"$TMP/oos.jsonl" 2>"$TMP/oos.err" ||
    fail "predict oos: $(cat "$TMP/oos.err")"
"$SESLM" intent predict --model "$MODEL" --head "$HEAD" --min-in-scope 0.05 --input "$TMP/test.txt" >"$TMP/ins.jsonl" 2>"$TMP/ins.err" ||
    fail "predict in scope: $(cat "$TMP/ins.err")"
python3 - "$TMP/ins.jsonl" "$TMP/oos.jsonl" <<'EOF' || fail "in-scope p-values"
import json, sys
ins = [json.loads(l) for l in open(sys.argv[1])]
oos = [json.loads(l) for l in open(sys.argv[2])]
for r in ins + oos:  # min_in_scope decides out_of_scope (the confidence threshold is 0)
    assert 0 < r["in_scope"] <= 1 and r["out_of_scope"] == (r["in_scope"] < 0.05), r
    assert (r["intent"] is None) == r["out_of_scope"], r
a = sum(1 for i in ins for o in oos if i["in_scope"] > o["in_scope"]) / (len(ins) * len(oos))
rej_in = sum(r["out_of_scope"] for r in ins)
rej_oos = sum(r["out_of_scope"] for r in oos)
print(f"in_scope AUROC {a:.3f}; rejected at 0.05: {rej_in}/{len(ins)} in scope, {rej_oos}/{len(oos)} out of scope")
assert a >= 0.85, a
assert rej_in <= 4 and rej_oos >= 3, (rej_in, rej_oos)
EOF
expect 2 "--min-in-scope" "min-in-scope out of range" -- intent predict --model "$MODEL" --head "$HEAD" --min-in-scope 2 hello

# ---- learn -------------------------------------------------------------------------------------------
expect 0 '"new_intents":1,"intents":8' "learn a new intent" -- intent learn --model "$MODEL" --head "$HEAD" --text "set an alarm for seven tomorrow morning" --label SetAlarm
expect 0 '"intent":"SetAlarm"' "the learned example is predicted" -- intent predict --model "$MODEL" --head "$HEAD" "set an alarm for seven tomorrow morning"
expect 0 '"intent":"PlayMusic"' "old intents still predicted" -- intent predict --model "$MODEL" --head "$HEAD" "play the latest album by radiohead"
sum=$(sha256sum <"$HEAD")
expect 2 "unknown intent 'Cooking'" "unknown intent refused" -- intent learn --model "$MODEL" --head "$HEAD" --no-new-intents --text "bake a cake" --label Cooking
[ "$(sha256sum <"$HEAD")" = "$sum" ] || fail "a refused learn changed the head file"
expect 2 "pairs of --text" "text without label" -- intent learn --model "$MODEL" --head "$HEAD" --text "bake a cake"
expect 0 '"new_intents":0' "learn a known intent" -- intent learn --model "$MODEL" --head "$HEAD" --no-new-intents --text "what is the forecast for oslo" --label GetWeather
ls "$TMP"/.*.tmp* "$TMP"/*.tmp* >/dev/null 2>&1 && fail "a temporary file was left beside the head"

cli_test_done
