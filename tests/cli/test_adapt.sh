#!/usr/bin/env bash
# test_adapt.sh — `seslm adapt` end to end on the real model (issue 18 §2-3):
#   * usage errors exit 2 (no arguments, unknown option, bad --rank, --base-head-layers beyond the model,
#     refused before any training); bad feedback exits 2 with a clear message (missing file, a TSV without
#     text / label columns, a single intent, too few examples);
#   * an adapter that hurts general quality (no anchoring, a high learning rate) is REJECTED by the gate:
#     exit 1, verdict.json says which gate failed and on which data;
#   * an adapter that helps — feedback on the 14 CLINC150 intents the base model confuses most — passes every
#     gate at its defaults (gain and McNemar p, STS-B, retrieval), helps a head on CLINC150's test rows of
#     those intents, and is promoted to a serving node under load (promote --notify) and rolled back, with no
#     failed request and each answer from the model then live; the adapted model carries its intent head
#     (intent_head.safetensors) and the node's /v1/intent answers come from it while the adapter is live,
#     from the node's own head again after the rollback;
#   * with the anchoring loss and relaxed thresholds the gate ACCEPTS: exit 0; the merged model loads
#     and embeds, has the base's shapes, tokenizer files byte-identical, lineage in config.json; the
#     adapter file holds rank-r A / B tensors; the merged model registers with the base as its parent;
#   * --config (configs/adapt.yaml's keys): bad / empty / unknown keys exit 2 naming the line; flags override
#     the file;
#   * an INT8 student (seslm recompile of a hand-written plan, with its F32 master) adapted through --config:
#     the output is INT8 with the base's tensor names, dtypes, shapes and order, every tensor the adapters do
#     not touch byte-identical (compressed word rows included), a merged F32 master that config.json names
#     (so seslm recompile of the output starts from it), a SHA256SUMS that checks; it embeds and the gate ran.
#
#   bash tests/cli/test_adapt.sh <path to seslm> <model dir> <repo root>
set -u

. "$(dirname "$0")/lib.sh"
cli_test_init test_adapt "$@"
D=(--data-dir "$ROOT/data/eval")
G="$ROOT/data/traffic/wiki_600.txt"
py() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

# feedback: 6 SNIPS intents x 4 examples (1 held out per intent)
snips_feedback "$TMP/fb.tsv" header
printf 'text\tintent\nhello\tgreet\nhi\tgreet\nbye\tgreet\nyo\tgreet\n' >"$TMP/one.tsv"
printf 'sentence\tlabel\nhello\tgreet\n' >"$TMP/nohdr.tsv"
printf '{"text": "hi", "intent": "a"}\n{"text": "yo", "intent": "b"}\n' >"$TMP/two.jsonl"

expect 2 "required" "no arguments" -- adapt
expect 2 "unknown option" "unknown option" -- adapt --model "$MODEL" --feedback "$TMP/fb.tsv" --out "$TMP/x" --bogus 1
expect 2 "--rank must be an integer in 1..256" "bad rank" -- adapt --model "$MODEL" --feedback "$TMP/fb.tsv" --out "$TMP/x" --rank 0
expect 2 "cannot open" "missing feedback" -- adapt --model "$MODEL" --feedback "$TMP/none.tsv" --out "$TMP/x"
expect 2 "must name a \"text\" and a \"label\"" "TSV without columns" -- adapt --model "$MODEL" --feedback "$TMP/nohdr.tsv" --out "$TMP/x"
expect 2 "at least 4" "too few examples" -- adapt --model "$MODEL" --feedback "$TMP/two.jsonl" --out "$TMP/x"
expect 2 "2 intents" "a single intent" -- adapt --model "$MODEL" --feedback "$TMP/one.tsv" --out "$TMP/x" "${D[@]}" --general "$G" --quiet
# a node head on more layers than the base has: refused before any adapter is trained (nothing written)
expect 2 "--base-head-layers 7: the base model" "--base-head-layers beyond the model" -- adapt --model "$MODEL" \
    --feedback "$TMP/fb.tsv" --out "$TMP/deep" "${D[@]}" --general "$G" --base-head-layers 7 --quiet
[ ! -e "$TMP/deep" ] && ok || fail "--base-head-layers 7 must be refused before the output directory is made"

# ---- rejected: no anchoring, an aggressive learning rate --------------------------------------------------
"$SESLM" adapt --model "$MODEL" --feedback "$TMP/fb.tsv" --out "$TMP/bad" "${D[@]}" --general - --lr 0.02 --steps 30 --pairs 6 \
    --rank 8 --threads 2 --quiet >"$TMP/bad.out" 2>"$TMP/bad.err"
rc=$?
[ "$rc" = 1 ] && ok || fail "a harmful adapter must be rejected with exit 1 (got $rc): $(tail -3 "$TMP/bad.err")"
grep -q REJECTED "$TMP/bad.err" && ok || fail "no REJECTED line"
[ "$(py "$TMP/bad/verdict.json" 'd["accepted"]')" = False ] && ok || fail "verdict.json accepted a harmful adapter"
v=$(py "$TMP/bad/verdict.json" '[g["gate"] for g in d["gates"] if not g["pass"]]')
case "$v" in *stsb_spearman_drop*|*retrieval_recall10_agreement*) ok ;; *) fail "general-quality gates did not catch it: $v" ;; esac
[ "$(py "$TMP/bad/verdict.json" '[g["data"] for g in d["gates"] if g["gate"]=="stsb_spearman_drop"][0].endswith("stsb_dev.tsv")')" = True ] &&
    ok || fail "the verdict must say which data the STS-B gate used"

# the held-out gain's test: McNemar's exact one-sided p of the rows the two models disagree on (recomputed here),
# and the gain gate passes only with the gain AND p <= max_p (default 0.05)
mcnemar_check() { # VERDICT MIN_GAIN MAX_P
    python3 - "$@" <<'PY'
import json, math, sys
v, min_gain, max_p = json.load(open(sys.argv[1])), float(sys.argv[2]), float(sys.argv[3])
t = v["heldout_gain_test"]
w, l = t["wins"], t["losses"]
p = sum(math.comb(w + l, k) for k in range(w, w + l + 1)) / 2 ** (w + l) if w > 0 else 1.0
assert abs(t["p_value"] - p) <= 1e-9 * p, (t, p)
assert t["max_p"] == max_p and t["pass"] == (max_p >= 1 or p <= max_p), t
g = [g for g in v["gates"] if g["gate"] == "heldout_feedback_accuracy_gain"][0]
assert g["pass"] == (g["value"] >= min_gain and t["pass"]), (g, t)
PY
}
mcnemar_check "$TMP/bad/verdict.json" 1 0.05 && ok || fail "the held-out gain's McNemar test in the rejected verdict"

# ---- accepted: anchored, gentle, thresholds relaxed for a tiny held-out set -------------------------------
# (--pairs 4 < 6 intents: each batch is an intent and 3 of its nearest, the default --negatives near)
"$SESLM" adapt --model "$MODEL" --feedback "$TMP/fb.tsv" --out "$TMP/good" "${D[@]}" --general "$G" --steps 12 --pairs 4 --rank 4 --threads 2 \
    --folds 0 --min-gain -100 --max-p 1 --max-stsb-drop 3 --min-retrieval 0.5 --quiet >"$TMP/good.out" 2>"$TMP/good.err"
rc=$?
[ "$rc" = 0 ] && ok || fail "an anchored adapter under relaxed gates must be accepted (exit $rc): $(tail -3 "$TMP/good.err")"
[ "$(py "$TMP/good/verdict.json" 'd["accepted"]')" = True ] && ok || fail "verdict.json does not accept it"
mcnemar_check "$TMP/good/verdict.json" -100 1 && ok || fail "--max-p 1 must turn the McNemar test off"
cmp -s "$MODEL/vocab.txt" "$TMP/good/model/vocab.txt" && ok || fail "vocab.txt must be byte-identical"
[ "$(py "$TMP/good/model/config.json" 'd["seslm_lineage"]["adapter"]["method"]')" = lora-setfit ] && ok || fail "no adapter lineage"
[ "$(py "$TMP/good/model/config.json" 'd["seslm_lineage"]["adapter"]["rank"]')" = 4 ] && ok || fail "lineage rank"
"$SESLM" embed --model "$TMP/good/model" "set my alarm" >"$TMP/e.jsonl" 2>"$TMP/e.err" && ok || fail "the merged model does not embed"
python3 - "$TMP/e.jsonl" <<'PY' && ok || fail "merged model embedding"
import json, math, sys
e = json.loads(open(sys.argv[1]).readline())["embedding"]
assert len(e) == 384 and abs(math.sqrt(sum(x * x for x in e)) - 1) < 1e-3, len(e)
PY
python3 - "$TMP/good/adapter.safetensors" <<'PY' && ok || fail "adapter file"
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
assert h["__metadata__"]["format"] == "seslm-lora" and h["__metadata__"]["rank"] == "4", h["__metadata__"]
assert h["layers.0.qkv.lora_A"]["shape"] == [4, 384] and h["layers.5.ff2.lora_B"]["shape"] == [384, 4], h
assert len([k for k in h if k != "__metadata__"]) == 6 * 4 * 2
PY
[ "$(py "$TMP/good/verdict.json" 'd["heldout"]["method"], d["heldout"]["examples"], d["training"]["examples"]')" = "holdout 6 18" ] &&
    ok || fail "one split: 1 of 4 per intent held out, the adapter trained on the other 18: $(py "$TMP/good/verdict.json" 'd["heldout"]')"

# ---- the cross-fitted gate (the default, 3 folds): every example predicted once by a model that never saw it ----
"$SESLM" adapt --model "$MODEL" --feedback "$TMP/fb.tsv" --out "$TMP/cf" "${D[@]}" --general "$G" --steps 12 --pairs 4 --rank 4 --threads 2 \
    --min-gain -100 --max-p 1 --max-stsb-drop 3 --min-retrieval 0.5 >"$TMP/cf.out" 2>"$TMP/cf.err"
rc=$?
[ "$rc" = 0 ] && ok || fail "a cross-fitted gate under relaxed thresholds must accept (exit $rc): $(tail -3 "$TMP/cf.err")"
# 6 intents x 4 examples dealt to 3 folds, the deal running on across intents: 8 rows in every fold
[ "$(grep -c "gate fold [123]/3: training on 16 examples, 8 held out" "$TMP/cf.err")" = 3 ] && ok ||
    fail "the folds must be even, with a progress line each: $(grep 'gate fold' "$TMP/cf.err")"
[ ! -e "$TMP/cf/crossfit" ] && ok || fail "the fold models must be deleted once measured"
python3 - "$TMP/cf/verdict.json" "$TMP/cf/model/config.json" <<'PY' && ok || fail "the cross-fitted verdict"
import json, sys
v, c = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
h, t = v["heldout"], v["heldout_gain_test"]
assert h == {"method": "crossfit", "folds": 3, "examples": 24}, h     # every one of the 24 rows held out once
# the base side read as `seslm intent train` would fit its head (the last 3 layers), the adapted side its embedding
assert v["head_inputs"] == {"base_feature_layers": 3, "adapted_feature_layers": 1}, v["head_inputs"]
assert v["intent_head"]["feature_layers"] == 1, v["intent_head"]
assert v["training"]["examples"] == 24, v["training"]                 # the adapter that ships saw all of them
a = c["seslm_lineage"]["adapter"]
assert a["gate"] == "crossfit" and a["folds"] == 3 and a["examples_train"] == 24 and a["examples_holdout"] == 24, a
g = [g for g in v["gates"] if g["gate"] == "heldout_feedback_accuracy_gain"][0]
for x in (g["base"], g["adapted"]):                                   # accuracies over the 24 rows
    assert abs(x * 24 / 100 - round(x * 24 / 100)) < 1e-6, g
assert abs((g["adapted"] - g["base"]) * 24 / 100 - (t["wins"] - t["losses"])) < 1e-6, (g, t)
assert t["wins"] + t["losses"] <= 24, t
PY
printf 'text\tlabel\nplay some jazz\tmusic\nput on a song\tmusic\nwill it rain\tweather\nhow cold is it\tweather\n' >"$TMP/four.tsv"
expect 2 "too few examples to cross-fit the gate on 3 folds" "4 examples cannot be cross-fitted" -- adapt --model "$MODEL" \
    --feedback "$TMP/four.tsv" --out "$TMP/four" "${D[@]}" --general "$G" --steps 2 --pairs 2 --rank 2 --quiet
[ ! -e "$TMP/four/model" ] && [ ! -e "$TMP/four/adapter.safetensors" ] && ok ||
    fail "a run that ends without a verdict must take back the adapter it wrote (--out stays usable)"
expect 2 "--folds must be 0" "--folds 1" -- adapt --model "$MODEL" --feedback "$TMP/fb.tsv" --out "$TMP/x" --folds 1
expect 2 "--folds must be an integer in 0..20" "--folds 21" -- adapt --model "$MODEL" --feedback "$TMP/fb.tsv" --out "$TMP/x" --folds 21

# the merged model is a registry version like any other, with the base as its parent
export SESLM_REGISTRY="$TMP/registry.db" SESLM_STORE="$TMP/store"
"$SESLM" registry register "$MODEL" >"$TMP/r1" 2>&1 && ok || fail "register base: $(cat "$TMP/r1")"
"$SESLM" registry register "$TMP/good/model" >"$TMP/r2" 2>&1 && ok || fail "register adapted: $(cat "$TMP/r2")"
"$SESLM" registry show 2 >"$TMP/show" 2>&1 && ok || fail "registry show: $(cat "$TMP/show")"
[ "$(py "$TMP/show" 'd.get("parent")')" = 1 ] && ok || fail "the adapted version's parent must be the base (found from config.json): $(cat "$TMP/show")"

# ---- helps: feedback on the intents the base model confuses, every default gate ------------------------------
# CLINC150's most confused pairs under a logistic regression on the base embeddings ("what is your name" /
# "change your name", a list / its update, ...): 14 intents x 50 training rows (the default cross-fitted gate:
# each row predicted by an adapter trained on the other two thirds; the adapter that ships saw all 700).
# The adapter must pass every gate at its defaults (gain >= 1 point AND McNemar p <= 0.05, STS-B, retrieval),
# help on CLINC150's test rows of those intents (never seen by it), then go live on a serving node under load
# and be rolled back, with no failed request.
CONF='change_ai_name|change_user_name|user_name|what_is_your_name|shopping_list|shopping_list_update|todo_list'
CONF="$CONF|todo_list_update|pto_balance|pto_used|meeting_schedule|schedule_meeting|calendar|calendar_update"
{ printf 'text\tlabel\n'; grep -E "	($CONF)\$" "$ROOT/data/intent/clinc150_train50.tsv"; } >"$TMP/conf.tsv"
{ printf 'text\tlabel\n'; grep -E "	($CONF)\$" "$ROOT/data/intent/clinc150_test10.tsv"; } >"$TMP/conf_test.tsv"
[ "$(wc -l <"$TMP/conf.tsv")" = 701 ] && [ "$(wc -l <"$TMP/conf_test.tsv")" = 141 ] && ok || fail "confused-intents subsets"
# the node below serves an embedding head (--feature-layers 1), so the gate measures the base as it serves it
# (--base-head-layers 1). Against a 3-layer head on the base (the default) this adapter's cross-fitted gain is
# +1.4 points, p > 0.05: rejected, though on the 140 test rows it gets 131 right against the 3-layer head's 121
# (bench/RESULTS.md 13)
"$SESLM" adapt --model "$MODEL" --feedback "$TMP/conf.tsv" --out "$TMP/helps" "${D[@]}" --general "$G" --threads 2 \
    --base-head-layers 1 --quiet >"$TMP/helps.out" 2>"$TMP/helps.err"
rc=$?
[ "$rc" = 0 ] && ok || fail "an adapter on confused intents must pass the default gates (exit $rc): $(tail -3 "$TMP/helps.err")"
mcnemar_check "$TMP/helps/verdict.json" 1 0.05 && ok || fail "the helpful adapter's McNemar test"
[ "$(py "$TMP/helps/model/config.json" 'd["seslm_lineage"]["adapter"]["negatives"]')" = near ] && ok ||
    fail "the lineage must name the in-batch negatives (default near)"
python3 - "$TMP/helps/verdict.json" <<'PY' && ok || fail "the helpful adapter's verdict"
import json, sys
v = json.load(open(sys.argv[1]))
g = {x["gate"]: x for x in v["gates"]}
assert v["accepted"] and all(x["pass"] for x in v["gates"]), v["gates"]
assert v["head_inputs"] == {"base_feature_layers": 1, "adapted_feature_layers": 1}, v["head_inputs"]
t = v["heldout_gain_test"]
assert t["wins"] > t["losses"] and t["p_value"] <= 0.05, t
assert g["stsb_spearman_drop"]["threshold"] == 1 and g["retrieval_recall10_agreement"]["threshold"] == 0.8, g
ih = v["intent_head"]
assert ih["path"].endswith("/model/intent_head.safetensors") and ih["examples"] == 700, ih
assert v["heldout"] == {"method": "crossfit", "folds": 3, "examples": 700} and v["training"]["examples"] == 700, v["heldout"]
a = g["heldout_feedback_accuracy_gain"]
print("test_adapt: the helpful adapter's gate: %+.2f points (%d wins / %d losses, McNemar p %.2g), STS-B drop %.2f, "
      "retrieval agreement %.3f" % (a["value"], t["wins"], t["losses"], t["p_value"], g["stsb_spearman_drop"]["value"],
                                    g["retrieval_recall10_agreement"]["value"]), file=sys.stderr)
PY
# on CLINC150's test rows of those intents: the default head of each model (base: its last 3 layers; adapted:
# its embedding) on the same 700 rows
cut -f1 "$TMP/conf_test.tsv" | tail -n +2 >"$TMP/conf_test.txt"
for m in base:"$MODEL" adapted:"$TMP/helps/model"; do
    "$SESLM" intent train --model "${m#*:}" --data "$TMP/conf.tsv" --out "$TMP/head_${m%%:*}" --threads 2 >/dev/null 2>&1 &&
        "$SESLM" intent predict --model "${m#*:}" --head "$TMP/head_${m%%:*}" --input "$TMP/conf_test.txt" --threads 2 \
            >"$TMP/pred_${m%%:*}.jsonl" 2>"$TMP/pred.err" && ok || fail "intent head on the ${m%%:*} model: $(cat "$TMP/pred.err")"
done
python3 - "$TMP/conf_test.tsv" "$TMP/pred_base.jsonl" "$TMP/pred_adapted.jsonl" <<'PY' && ok || fail "the adapter does not help on test rows"
import json, sys
gold = [l.rstrip("\n").split("\t")[1] for l in open(sys.argv[1])][1:]
right = [sum(json.loads(l)["top"] == y for l, y in zip(open(f), gold)) for f in sys.argv[2:]]
print("test_adapt: confused intents, CLINC150 test rows right: base %d, adapted %d of %d" % (*right, len(gold)))
assert right[1] >= right[0] + 4, right  # measured: 123 -> 131 (scikit-learn's LR, C = 10: 120 -> 130)
PY
# live on a serving node under load, then rolled back: no request fails, each answer from the model promoted
export SESLM_REGISTRY="$TMP/live.db" SESLM_STORE="$TMP/store-live"
"$SESLM" registry register "$MODEL" >"$TMP/l1" 2>&1 && ok || fail "register base: $(cat "$TMP/l1")"
"$SESLM" registry register "$TMP/helps/model" >"$TMP/l2" 2>&1 && ok || fail "register adapted: $(cat "$TMP/l2")"
SHA_B=$(py "$TMP/l1" 'd["sha256"]') SHA_A=$(py "$TMP/l2" 'd["sha256"]')
export SESLM_POLICY=$ROOT/configs/governance.yaml SESLM_ACTOR=ci-bot # live needs an approval
expect 0 '"approved":1' "approve the base" -- approve 1 --by alice --reason base
expect 0 '"version":1' "promote the base" -- promote 1 --reason base
expect 0 '"approved":2' "approve the adapter" -- approve 2 --by alice --reason "adapt gate passed"
echo "adapt-token-$$" >"$TMP/token" && chmod 600 "$TMP/token"
"$SESLM" embed --model "$MODEL" "add milk to my shopping list" >"$TMP/vb.jsonl" 2>/dev/null &&
    "$SESLM" embed --model "$TMP/helps/model" "add milk to my shopping list" >"$TMP/va.jsonl" 2>/dev/null && ok ||
    fail "embedding with the base / the adapted model"
served_is() { # REFERENCE_JSONL: the node's vector for the text equals the reference model's (1e-5)
    curl -s "$URL/v1/embed" -d '{"texts":["add milk to my shopping list"]}' >"$TMP/vs.json"
    python3 - "$TMP/vs.json" "$1" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["embeddings"][0]
r = json.loads(open(sys.argv[2]).readline())["embedding"]
assert max(abs(a - b) for a, b in zip(s, r)) < 1e-5, "the node does not serve that model"
PY
}
# the node also serves an intent head fitted on the base's embeddings; the adapted model carries its own
# (OUT/model/intent_head.safetensors, fitted on all the feedback with the adapted embeddings)
[ -f "$TMP/helps/model/intent_head.safetensors" ] && ok || fail "the adapted model carries no intent head"
"$SESLM" intent train --model "$MODEL" --data "$TMP/conf.tsv" --out "$TMP/node_head" --threads 2 --feature-layers 1 >/dev/null 2>&1 ||
    fail "node head"
# the node's head reads the base's embedding (as the gate measured it); `intent train`'s default on the base reads
# its last 3 layers; the adapted model's heads read its embedding (what its adapter was trained on; `intent
# train` picks that from the lineage)
python3 - "$TMP/node_head" "$TMP/helps/model/intent_head.safetensors" "$TMP/head_adapted" "$TMP/head_base" <<'PY' && ok ||
import json, struct, sys
def meta(p):
    b = open(p, "rb").read()
    return json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]])["__metadata__"]
got = [(meta(p)["feature_layers"], meta(p)["input_dim"]) for p in sys.argv[1:]]
assert got == [("1", "384"), ("1", "384"), ("1", "384"), ("3", "1152")], got
PY
    fail "the heads' inputs (base: 3 layers, adapted: the embedding)"
"$SESLM" intent predict --model "$TMP/helps/model" --head "$TMP/helps/model/intent_head.safetensors" --input "$TMP/conf_test.txt" \
    --threads 2 >"$TMP/pa.jsonl" 2>"$TMP/pa.err" && ! grep -q warning "$TMP/pa.err" && ok ||
    fail "the adapted model's own head: $(cat "$TMP/pa.err")"
"$SESLM" intent predict --model "$MODEL" --head "$TMP/node_head" --input "$TMP/conf_test.txt" --threads 2 >"$TMP/pb.jsonl" \
    2>/dev/null || fail "the node head's predictions"
served_intents() { # REFERENCE_JSONL: the node's /v1/intent answers to the test texts equal the reference's tops
    python3 - "$URL" "$TMP/conf_test.txt" "$1" <<'PY'
import json, sys, urllib.request
url, texts, ref = sys.argv[1], open(sys.argv[2]).read().splitlines(), [json.loads(l)["top"] for l in open(sys.argv[3])]
got = []
for t in texts:
    r = urllib.request.urlopen(urllib.request.Request(url + "/v1/intent", data=json.dumps({"text": t}).encode()))
    got.append(json.load(r)["top"])
diff = sum(a != b for a, b in zip(got, ref))
assert len(got) == len(ref) and diff == 0, "%d of %d answers differ from the reference head" % (diff, len(ref))
PY
}
cli_serve_start "$TMP/serve.log" --model "$MODEL" --threads 1 --admin-token-file "$TMP/token" --intent-head "$TMP/node_head"
if [ -z "$PORT" ]; then
    fail "the server did not start: $(cat "$TMP/serve.log")"
else
    cli_load_start /v1/embed '{"texts":["remind me to buy eggs","what is my name"]}'
    served_is "$TMP/vb.jsonl" && ok || fail "before the promotion the node must serve the base"
    expect 0 '"version":2' "promote the adapter --notify" -- promote 2 --notify "$URL" --admin-token-file "$TMP/token" --reason adapter
    curl -s "$URL/healthz" | grep -q "\"$SHA_A@" && ok || fail "after promote the node serves $(curl -s "$URL/healthz")"
    served_is "$TMP/va.jsonl" && ok || fail "after the promotion the node must serve the adapted model"
    served_intents "$TMP/pa.jsonl" && ok || fail "after the promotion the node must answer with the adapted model's head"
    ls "$TMP"/node_head.* >/dev/null 2>&1 && ok || fail "the base's head was not kept beside the node's head file"
    expect 0 '"version":1' "roll the adapter back --notify" -- rollback --notify "$URL" --admin-token-file "$TMP/token" --reason drill
    curl -s "$URL/healthz" | grep -q "\"$SHA_B@" && ok || fail "after rollback the node serves $(curl -s "$URL/healthz")"
    served_is "$TMP/vb.jsonl" && ok || fail "after the rollback the node must serve the base again"
    served_intents "$TMP/pb.jsonl" && ok || fail "after the rollback the node must answer with its own head again"
    [ "$(ls "$TMP"/node_head.* | wc -l)" = 2 ] && ok || fail "both heads must be kept: $(ls "$TMP"/node_head.*)"
    grep -q "intent head for model" "$TMP/serve.log" && ok || fail "the node did not report the head swaps"
    cli_load_stop
    n_req=$LOAD_N n_fail=$LOAD_FAILED
    [ "$n_req" -gt 5 ] && [ "$n_fail" -eq 0 ] && ok || fail "client during promote / rollback: $n_fail of $n_req requests failed"
    echo "test_adapt: $n_req requests during the adapter's promotion and rollback, $n_fail failed"
    kill -TERM "$PID" 2>/dev/null
    wait "$PID" 2>/dev/null
    PID=
fi
export SESLM_REGISTRY="$TMP/registry.db" SESLM_STORE="$TMP/store"
unset SESLM_POLICY SESLM_ACTOR

# ---- the supervised objective: a cosine classifier over the intents trained with the adapters ---------------
# (on an adapted model whose own head has out-of-scope thresholds: the new head keeps them)
cp -r "$TMP/good/model" "$TMP/base2"
"$SESLM" intent train --model "$TMP/base2" --data "$TMP/fb.tsv" --out "$TMP/base2/intent_head.safetensors" \
    --oos-threshold 0.2 --min-in-scope 0.07 >"$TMP/b2.out" 2>"$TMP/b2.err" && ok || fail "a head for base2: $(cat "$TMP/b2.err")"
cp -r "$TMP/base2" "$TMP/base3" && head -c 100 "$TMP/base2/intent_head.safetensors" >"$TMP/base3/intent_head.safetensors"
expect 2 "base model's intent head" "a damaged base head fails before training" -- adapt --model "$TMP/base3" \
    --feedback "$TMP/fb.tsv" --out "$TMP/x3" "${D[@]}" --general "$G" --quiet
if [ -e "$TMP/x3" ]; then fail "a damaged base head must leave no --out"; else ok; fi
"$SESLM" adapt --model "$TMP/base2" --feedback "$TMP/fb.tsv" --out "$TMP/soft" "${D[@]}" --general "$G" --objective softmax \
    --steps 30 --pairs 6 --rank 4 --threads 2 --min-gain -100 --max-p 1 --max-stsb-drop 3 --min-retrieval 0.5 --quiet \
    >"$TMP/soft.out" 2>"$TMP/soft.err"
rc=$?
[ "$rc" = 0 ] && ok || fail "softmax objective under relaxed gates (exit $rc): $(tail -3 "$TMP/soft.err")"
[ "$(py "$TMP/soft/model/config.json" 'd["seslm_lineage"]["adapter"]["objective"]')" = softmax ] && ok || fail "lineage objective"
python3 - "$TMP/soft/verdict.json" <<'PY' && ok || fail "the softmax objective's loss did not fall"
import json, sys
t = json.load(open(sys.argv[1]))["training"]
assert t["steps"] == 30 and t["loss_last"] < 0.9 * t["loss_first"], t
PY
python3 - "$TMP/soft/model/intent_head.safetensors" <<'PY' && ok || fail "the adapted head must keep the base head's out-of-scope thresholds"
import json, struct, sys
b = open(sys.argv[1], "rb").read()
h = json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]])
m = h["__metadata__"]
assert abs(float(m["oos_threshold"]) - 0.2) < 1e-6 and abs(float(m["min_in_scope"]) - 0.07) < 1e-6, m
assert "oos.scores" in h and h["oos.scores"]["shape"][0] > 0, h.get("oos.scores")
PY

# ---- --config: the nightly job's file ------------------------------------------------------------------
printf 'version: 1\nrank: 0\n' >"$TMP/c1.yaml"
expect 2 "c1.yaml:2: rank" "config: rank out of range" -- adapt --config "$TMP/c1.yaml"
printf 'version: 1\nrnak: 4\n' >"$TMP/c2.yaml"
expect 2 "c2.yaml:2: rnak: unknown key" "config: unknown key" -- adapt --config "$TMP/c2.yaml"
printf 'version: 1\nfeedback: ""\n' >"$TMP/c3.yaml"
expect 2 "feedback: empty value" "config: empty value" -- adapt --config "$TMP/c3.yaml"
: >"$TMP/c4.yaml"
expect 2 "empty" "config: empty file" -- adapt --config "$TMP/c4.yaml"
expect 2 "cannot open" "config: missing feedback" -- adapt --config "$ROOT/configs/adapt.yaml" --feedback "$TMP/none.tsv"
printf 'version: 1\ngates:\n  max_p: 2\n' >"$TMP/c5.yaml"
expect 2 "c5.yaml:3: gates.max_p" "config: max_p out of range" -- adapt --config "$TMP/c5.yaml"
printf 'version: 1\nobjective: triplet\n' >"$TMP/c6.yaml"
expect 2 "expected inbatch, pairs or softmax" "config: unknown objective" -- adapt --config "$TMP/c6.yaml"
printf 'version: 1\nnegatives: far\n' >"$TMP/c7.yaml"
expect 2 "c7.yaml:2: negatives: expected near or random" "config: unknown negatives" -- adapt --config "$TMP/c7.yaml"
expect 2 "--negatives" "--negatives bogus" -- adapt --model "$MODEL" --feedback "$TMP/fb.tsv" --out "$TMP/x" --negatives far
printf 'version: 1\nfolds: 1\n' >"$TMP/c8.yaml"
expect 2 "c8.yaml:2: folds: 0" "config: folds 1" -- adapt --config "$TMP/c8.yaml"
expect 2 "--max-p" "--max-p out of range" -- adapt --model "$MODEL" --feedback "$TMP/fb.tsv" --out "$TMP/x" --max-p 1.5

# ---- an INT8 student (what recompile / evolve deploy), adapted through --config -------------------------
python3 - "$TMP/plan.json" <<'PY'
import json, sys
layers = [{"layer": l, "remove_heads": [2, 3] if 1 <= l <= 4 else [],
           "remove_neurons": list(range(0, 1536, 4))[:300] if 1 <= l <= 4 else []} for l in range(6)]
json.dump({"format": "seslm-plan", "version": 1, "method": "test", "target": 0.2, "layers": layers}, open(sys.argv[1], "w"))
PY
"$SESLM" recompile --model "$MODEL" --plan "$TMP/plan.json" --out "$TMP/q8" --threads 2 >/dev/null 2>"$TMP/q8.err" &&
    ok || fail "recompile an INT8 student: $(tail -3 "$TMP/q8.err")"
cat >"$TMP/adapt.yaml" <<YAML
version: 1
model: $TMP/q8
feedback: $TMP/fb.tsv
out: $TMP/q8-adapted
data_dir: $ROOT/data/eval
general: $G
rank: 2          # overridden by --rank 4 below
steps: 12
pairs: 6
threads: 2
gates:
  min_gain: -100
  max_p: 1
  max_stsb_drop: 3
  min_retrieval: 0.5
YAML
"$SESLM" adapt --config "$TMP/adapt.yaml" --rank 4 --quiet >"$TMP/q.out" 2>"$TMP/q.err"
rc=$?
[ "$rc" = 0 ] && ok || fail "adapting the INT8 student must be accepted under relaxed gates (exit $rc): $(tail -3 "$TMP/q.err")"
Q=$TMP/q8-adapted
python3 - "$TMP/q8" "$Q" <<'PY' && ok || fail "the adapted INT8 student is not in the base's format"
import json, struct, sys, hashlib
base, out = sys.argv[1], sys.argv[2]
def st(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    h.pop("__metadata__", None)
    return h, b, 8 + n
hb, bb, ob = st(base + "/model.safetensors")
ha, ba, oa = st(out + "/model/model.safetensors")
assert list(hb) == list(ha), "tensor names / order differ"
proj = ("query.weight", "key.weight", "value.weight", "dense.weight")
changed = 0
for k, v in hb.items():
    w = ha[k]
    assert (w["dtype"], w["shape"]) == (v["dtype"], v["shape"]), k
    x = bb[ob + v["data_offsets"][0]:ob + v["data_offsets"][1]]
    y = ba[oa + w["data_offsets"][0]:oa + w["data_offsets"][1]]
    touched = k.startswith("encoder.layer.") and (k.endswith(proj) or k.endswith(tuple(p + "_scale" for p in proj)))
    if touched:
        changed += x != y
    else:
        assert x == y, "a tensor the adapters do not touch changed: " + k
assert hb["encoder.layer.1.intermediate.dense.weight"]["dtype"] == "I8", "the base is not INT8?"
assert hb["embeddings.word_embeddings.weight"]["dtype"] == "I8", "the base's word rows are not compressed?"
assert changed >= 60, "only %d projection tensors changed" % changed
c = json.load(open(out + "/model/config.json"))
assert c["seslm_quantization"]["linear_weights"].startswith("int8"), c.get("seslm_quantization")
ad = c["seslm_lineage"]["adapter"]
assert ad["base_format"] == "int8" and ad["trained_on"] == "f32 master" and ad["rank"] == 4, ad
m = hashlib.sha256(open(out + "/model/master/model.safetensors", "rb").read()).hexdigest()
assert c["seslm_master"]["weights_sha256"] == m, "config.json does not name the merged master"
v = json.load(open(out + "/verdict.json"))
assert v["accepted"] and v["format"] == "int8" and len(v["gates"]) == 4, v
assert all(isinstance(g["value"], (int, float)) for g in v["gates"]), v["gates"]
PY
(cd "$Q/model" && sha256sum --quiet -c SHA256SUMS) && ok || fail "the adapted student's SHA256SUMS does not check"
"$SESLM" embed --model "$Q/model" "set my alarm" >"$TMP/qe.jsonl" 2>"$TMP/qe.err" && ok || fail "the adapted INT8 student does not embed: $(cat "$TMP/qe.err")"
# the next cycle starts from the merged master
python3 - "$TMP/plan0.json" <<'PY'
import json, sys
json.dump({"format": "seslm-plan", "version": 1, "method": "test", "layers": [{"layer": l} for l in range(6)]}, open(sys.argv[1], "w"))
PY
"$SESLM" recompile --model "$Q/model" --plan "$TMP/plan0.json" --out "$TMP/gen2" >/dev/null 2>"$TMP/g2.err" && ok ||
    fail "recompile from the adapted student: $(tail -3 "$TMP/g2.err")"
[ "$(py "$TMP/gen2/config.json" 'd["seslm_lineage"]["parent_weights"]')" = "f32 master" ] && ok || fail "the next cycle did not start from the merged master"

cli_test_done
