#!/usr/bin/env bash
# test_adapt.sh — `seslm adapt` end to end on the real model (issue 18 §2-3):
#   * usage errors exit 2 (no arguments, unknown option, bad --rank); bad feedback exits 2 with a clear
#     message (missing file, a TSV without text / label columns, a single intent, too few examples);
#   * an adapter that hurts general quality (no anchoring, a high learning rate) is REJECTED by the gate:
#     exit 1, verdict.json says which gate failed and on which data;
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
"$SESLM" adapt --model "$MODEL" --feedback "$TMP/fb.tsv" --out "$TMP/good" "${D[@]}" --general "$G" --steps 12 --pairs 6 --rank 4 --threads 2 \
    --min-gain -100 --max-p 1 --max-stsb-drop 3 --min-retrieval 0.5 --quiet >"$TMP/good.out" 2>"$TMP/good.err"
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
# the merged model is a registry version like any other, with the base as its parent
export SESLM_REGISTRY="$TMP/registry.db" SESLM_STORE="$TMP/store"
"$SESLM" registry register "$MODEL" >"$TMP/r1" 2>&1 && ok || fail "register base: $(cat "$TMP/r1")"
"$SESLM" registry register "$TMP/good/model" >"$TMP/r2" 2>&1 && ok || fail "register adapted: $(cat "$TMP/r2")"
"$SESLM" registry show 2 >"$TMP/show" 2>&1 && ok || fail "registry show: $(cat "$TMP/show")"
[ "$(py "$TMP/show" 'd.get("parent")')" = 1 ] && ok || fail "the adapted version's parent must be the base (found from config.json): $(cat "$TMP/show")"

# ---- the supervised objective: a cosine classifier over the intents trained with the adapters ---------------
"$SESLM" adapt --model "$MODEL" --feedback "$TMP/fb.tsv" --out "$TMP/soft" "${D[@]}" --general "$G" --objective softmax \
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
