#!/usr/bin/env bash
# test_recompile.sh — `seslm recompile` end to end on the real model (a few seconds at --threads 1):
#   * `seslm record` 100 lines of data/bench/short.txt, `seslm plan` (configs/evolve.yaml, 16
#     calibration lines) -> plan-20.json;
#   * `seslm recompile` (with the policy check) prints a JSON summary whose parameters / bytes match
#     the plan's prediction and whose per-layer heads / FFN widths are the parent's minus the plan's;
#   * `seslm info --json` on the student: fewer parameters, the same per-layer structure, a weights
#     hash different from the parent's; config.json keeps the original global sizes and has a lineage;
#   * `seslm embed` works on the student, and on the 16 calibration lines the mean cosine between the
#     student's and the parent's embeddings is the plan's measured mean_cos (the student IS the masked
#     parent: weight inheritance);
#   * the tokenizer / sentence-transformers files are cmp-identical;
#   * recompiling into the same directory again, a plan with an out-of-range head, a plan of another
#     model and a missing model all exit 1; missing options exit 2; --help exits 0.
#
#   bash tests/cli/test_recompile.sh <path to seslm> <model dir> <repo root>
set -u
. "$(dirname "$0")/lib.sh"
cli_test_init test_recompile "$@"

head -100 "$ROOT/data/bench/short.txt" >"$TMP/in.txt"
"$SESLM" record --model "$MODEL" --input "$TMP/in.txt" --out "$TMP/tel" --threads 1 >/dev/null 2>"$TMP/rec.err" ||
    fail "record: $(head -c 300 "$TMP/rec.err")"
timeout 120 "$SESLM" plan --model "$MODEL" --telemetry "$TMP/tel" --config "$ROOT/configs/evolve.yaml" \
    --calib "$ROOT/data/bench/short.txt" --calib-lines 16 --out "$TMP/plans" --threads 1 --quiet >/dev/null 2>"$TMP/plan.err" ||
    fail "plan: $(tail -c 500 "$TMP/plan.err")"
PLAN=$TMP/plans/plan-20.json
[ -f "$PLAN" ] || { fail "no plan-20.json"; cli_test_done; exit 1; }

STU=$TMP/student
expect 0 '"params_ratio"' "recompile plan-20" -- recompile --model "$MODEL" --plan "$PLAN" --out "$STU" --quantize none --embeddings f32 \
    --config "$ROOT/configs/evolve.yaml"
cp "$TMP/e.out" "$TMP/summary.json"
[ -f "$STU/model.safetensors" ] || fail "recompile: no student model.safetensors"
ok # the student's manifest, checked by coreutils: every file listed, every hash right
(cd "$STU" && sha256sum --quiet -c SHA256SUMS && [ "$(wc -l <SHA256SUMS)" = "$(find . -type f ! -name SHA256SUMS | wc -l)" ]) ||
    fail "the student's SHA256SUMS does not check"
ls -d "$TMP"/student.tmp.* >/dev/null 2>&1 && fail "recompile left a temporary directory"
"$SESLM" info --model "$MODEL" --json >"$TMP/info_parent.json" 2>"$TMP/info.err" || fail "info parent: $(cat "$TMP/info.err")"
"$SESLM" info --model "$STU" --json >"$TMP/info_student.json" 2>"$TMP/info.err" || fail "info student: $(cat "$TMP/info.err")"

# the calibration lines of seslm plan: the first 16 non-empty lines
grep -v '^$' "$ROOT/data/bench/short.txt" | head -16 >"$TMP/calib.txt"
"$SESLM" embed --model "$MODEL" --threads 1 --input "$TMP/calib.txt" >"$TMP/emb_parent.jsonl" 2>"$TMP/emb.err" ||
    fail "embed parent: $(head -c 300 "$TMP/emb.err")"
"$SESLM" embed --model "$STU" --threads 1 --input "$TMP/calib.txt" >"$TMP/emb_student.jsonl" 2>"$TMP/emb.err" ||
    fail "embed student: $(head -c 300 "$TMP/emb.err")"
expect 0 '"embedding"' "embed texts with the student" -- embed --model "$STU" --threads 1 "hello world" "a second text" \
    "the student model runs"
[ "$(wc -l <"$TMP/e.out")" -eq 3 ] || fail "embed student: $(wc -l <"$TMP/e.out") lines for 3 texts"

python3 - "$TMP" "$PLAN" "$MODEL" "$STU" <<'PY' || fail "student does not match the plan / parent"
import json, math, sys
tmp, plan_path, parent_dir, stu = sys.argv[1:5]
plan = json.load(open(plan_path))
summ = json.load(open(tmp + "/summary.json"))
ip = json.load(open(tmp + "/info_parent.json"))
ist = json.load(open(tmp + "/info_student.json"))
bad = []
pr = plan["predicted"]
if ist["params"] >= ip["params"]:
    bad.append("student has %d params, parent %d" % (ist["params"], ip["params"]))
if summ["params"] != pr["params"] or summ["params_parent"] != pr["params_parent"] or summ["params"] != ist["params"]:
    bad.append("params: summary %d/%d, plan %d/%d, info %d" % (summ["params"], summ["params_parent"], pr["params"],
               pr["params_parent"], ist["params"]))
if summ["bytes"] != pr["bytes"] or summ["bytes"] != ist["bytes"]:
    bad.append("bytes: summary %d, plan %d, info %d" % (summ["bytes"], pr["bytes"], ist["bytes"]))
if not summ["file_bytes"] < summ["file_bytes_parent"]:
    bad.append("student file is not smaller")
if ist["weights_sha256"] == ip["weights_sha256"]:
    bad.append("student weights hash equals the parent's")
for l, (pl, sl, sm, pp) in enumerate(zip(plan["layers"], ist["per_layer"], summ["layers"], ip["per_layer"])):
    want_h = pp["heads"] - len(pl["remove_heads"])
    want_f = pp["ffn_dim"] - len(pl["remove_neurons"])
    if (sl["heads"], sl["ffn_dim"]) != (want_h, want_f) or (sm["heads"], sm["ffn"]) != (want_h, want_f):
        bad.append("layer %d: info %s, summary %s, expected %d heads / %d ffn" % (l, sl, sm, want_h, want_f))
if sum(len(l["remove_heads"]) for l in plan["layers"]) == 0 or sum(len(l["remove_neurons"]) for l in plan["layers"]) == 0:
    bad.append("plan-20 removes no heads or no neurons")
cfg = json.load(open(stu + "/config.json"))
pcfg = json.load(open(parent_dir + "/config.json"))
for k in ("num_attention_heads", "intermediate_size", "hidden_size", "num_hidden_layers", "vocab_size"):
    if cfg[k] != pcfg[k]:
        bad.append("config.json %s changed: %s -> %s" % (k, pcfg[k], cfg[k]))
if cfg.get("attention_head_size") != pcfg["hidden_size"] // pcfg["num_attention_heads"]:
    bad.append("attention_head_size %s" % cfg.get("attention_head_size"))
lin = cfg.get("seslm_lineage", {})
if lin.get("parent_weights_sha256") != ip["weights_sha256"] or lin.get("plan") != "plan-20.json":
    bad.append("lineage %s" % lin)
# weight inheritance: the mean cosine student vs parent is what the plan measured with masks
def load(p):
    return [json.loads(x)["embedding"] for x in open(p)]
a, b = load(tmp + "/emb_parent.jsonl"), load(tmp + "/emb_student.jsonl")
if len(a) != 16 or len(b) != 16:
    bad.append("embeddings: %d / %d of 16" % (len(a), len(b)))
else:
    cos = [sum(x * y for x, y in zip(u, v)) / math.sqrt(sum(x * x for x in u) * sum(y * y for y in v)) for u, v in zip(a, b)]
    mean = sum(cos) / len(cos)
    want = plan["measured"]["mean_cos"]
    if abs(mean - want) > 2e-4:
        bad.append("mean cos student vs parent %.6f, plan measured %.6f" % (mean, want))
    if mean > 0.9999:
        bad.append("student embeddings equal the parent's (mean cos %.6f)" % mean)
for x in bad:
    print("  " + x, file=sys.stderr)
sys.exit(1 if bad else 0)
PY

for f in vocab.txt tokenizer.json tokenizer_config.json special_tokens_map.json sentence_bert_config.json modules.json \
    1_Pooling/config.json config_sentence_transformers.json; do
    ok
    if [ -f "$MODEL/$f" ]; then
        cmp -s "$MODEL/$f" "$STU/$f" || fail "$f differs from the parent's"
    else
        [ ! -e "$STU/$f" ] || fail "$f appeared in the student"
    fi
done

# refusals
sum_before=$(cksum <"$STU/model.safetensors")
expect 1 'already exists' "recompile into an existing directory" -- recompile --model "$MODEL" --plan "$PLAN" --out "$STU"
[ "$(cksum <"$STU/model.safetensors")" = "$sum_before" ] || fail "the existing student was modified"
python3 - "$PLAN" "$TMP/bad.json" "$TMP/other.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
p["layers"][2]["remove_heads"] = [0, 12]
json.dump(p, open(sys.argv[2], "w"))
p = json.load(open(sys.argv[1]))
p["model_sha256"] = "0" * 64
json.dump(p, open(sys.argv[3], "w"))
PY
expect 1 'does not exist' "plan with an out-of-range head" -- recompile --model "$MODEL" --plan "$TMP/bad.json" --out "$TMP/s2"
python3 - "$PLAN" "$TMP/protected.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
p["layers"][0]["remove_heads"] = [0, 1]  # layer 0 is protected by the policy below
json.dump(p, open(sys.argv[2], "w"))
PY
sed 's/^protected_layers: .*/protected_layers: [first, last]/' "$ROOT/configs/evolve.yaml" >"$TMP/protect.yaml"
expect 1 'protected' "plan that breaks the policy (a protected layer)" -- recompile --model "$MODEL" \
    --plan "$TMP/protected.json" --out "$TMP/s9" --config "$TMP/protect.yaml"
[ ! -e "$TMP/s9" ] || fail "a plan that breaks the policy left $TMP/s9"
[ ! -e "$TMP/s2" ] || fail "a bad plan left $TMP/s2"
expect 1 'another model' "plan of another model" -- recompile --model "$MODEL" --plan "$TMP/other.json" --out "$TMP/s3"
expect 1 '' "missing model" -- recompile --model "$TMP/nomodel" --plan "$PLAN" --out "$TMP/s4"
expect 1 '' "missing plan" -- recompile --model "$MODEL" --plan "$TMP/noplan.json" --out "$TMP/s5"
expect 2 'required' "no --out" -- recompile --model "$MODEL" --plan "$PLAN"
expect 2 'unknown option' "unknown option" -- recompile --bogus 1
expect 0 'usage: seslm recompile' "--help" -- recompile --help
expect 2 '--quantize must be one of int8[|]none' "bad --quantize" -- recompile --model "$MODEL" --plan "$PLAN" --out "$TMP/s6" --quantize int4
expect 2 'ridge' "bad --ridge" -- recompile --model "$MODEL" --plan "$PLAN" --out "$TMP/s7" --ridge -1
printf '\n\n' >"$TMP/empty_calib.txt"
expect 1 'no line with text' "empty calibration file" -- recompile --model "$MODEL" --plan "$PLAN" --out "$TMP/s8" \
    --calibration "$TMP/empty_calib.txt"
printf '   \n\t\n \t \n' >"$TMP/blank_calib.txt"
expect 1 'no line with text' "calibration file of blank lines" -- recompile --model "$MODEL" --plan "$PLAN" --out "$TMP/s8" \
    --calibration "$TMP/blank_calib.txt"
# without --config the built-in policy still applies: a layer stripped of every head is refused
python3 - "$PLAN" "$TMP/noheads.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
p["layers"][2]["remove_heads"] = list(range(12))
json.dump(p, open(sys.argv[2], "w"))
PY
expect 1 'keeps 0 heads, below min_heads' "plan keeping 0 heads, no --config" -- recompile --model "$MODEL" \
    --plan "$TMP/noheads.json" --out "$TMP/s10"
ok
[ ! -e "$TMP/s10" ] || fail "a plan keeping 0 heads left $TMP/s10"
ls -d "$TMP"/s?.tmp.* >/dev/null 2>&1 && fail "a failed recompile left a temporary directory"
[ ! -e "$TMP/s8" ] || fail "a failed recompile left $TMP/s8"

# the full recipe: reconstruction on calibration text (lines 101-400 of short.txt), INT8, compressed
# embeddings with exact rows from the telemetry; judged on held-out lines (1-48, never calibrated on)
sed -n 101,400p "$ROOT/data/bench/short.txt" >"$TMP/calib64.txt"
head -48 "$ROOT/data/bench/short.txt" >"$TMP/heldout.txt"
Q8=$TMP/student-q8
expect 0 '"reconstruction":"least-squares"' "recompile plan-20 with reconstruction + INT8" -- recompile --model "$MODEL" \
    --plan "$PLAN" --out "$Q8" --calibration "$TMP/calib64.txt" --telemetry "$TMP/tel" --exact-rows 300 --threads 1
cp "$TMP/e.out" "$TMP/summary_q8.json"
for f in arch_diff.json arch_diff.md arch_diff.svg; do [ -s "$Q8/$f" ] || fail "no $f in the student"; done
for f in vocab.txt tokenizer_config.json; do cmp -s "$MODEL/$f" "$Q8/$f" || fail "$f differs from the parent's"; done
"$SESLM" embed --model "$MODEL" --threads 1 --input "$TMP/heldout.txt" >"$TMP/h_parent.jsonl" 2>/dev/null || fail "embed parent"
"$SESLM" embed --model "$STU" --threads 1 --input "$TMP/heldout.txt" >"$TMP/h_sliced.jsonl" 2>/dev/null || fail "embed sliced"
"$SESLM" embed --model "$Q8" --threads 1 --input "$TMP/heldout.txt" >"$TMP/h_q8.jsonl" 2>"$TMP/emb.err" ||
    fail "embed INT8 student: $(head -c 300 "$TMP/emb.err")"
python3 - "$TMP" "$Q8" <<'PY' || fail "the INT8 student is not what the recipe promises"
import json, math, struct, sys, xml.etree.ElementTree as ET
tmp, q8 = sys.argv[1:3]
bad = []
s = json.load(open(tmp + "/summary_q8.json"))
if not s["bytes_ratio"] < 0.35:
    bad.append("bytes ratio %.3f (INT8 + compressed embeddings should be < 0.35)" % s["bytes_ratio"])
if not 4 <= s["exact_rows"] <= 300:
    bad.append("exact rows %d" % s["exact_rows"])
for l in s["layers"]:
    e = l["ffn_out_rel_err"]
    if l["ffn"] < l["ffn_parent"] and not e["refit"] < e["sliced"]:
        bad.append("layer %d: refit error %.4f not below sliced %.4f" % (l["layer"], e["refit"], e["sliced"]))
# the safetensors header: INT8 weights with scales, compressed embeddings
raw = open(q8 + "/model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
for name in ("encoder.layer.1.intermediate.dense.weight", "encoder.layer.0.attention.self.query.weight",
             "embeddings.word_embeddings.weight"):
    if hdr.get(name, {}).get("dtype") != "I8" or name + "_scale" not in hdr:
        bad.append("%s is not INT8 with a scale: %s" % (name, hdr.get(name)))
if hdr.get("embeddings.word_embeddings.exact_ids", {}).get("dtype") != "I32":
    bad.append("no exact_ids")
cfg = json.load(open(q8 + "/config.json"))
if cfg.get("seslm_quantization", {}).get("linear_weights") != "int8-per-output-channel-symmetric":
    bad.append("config.json seslm_quantization %s" % cfg.get("seslm_quantization"))
if cfg.get("seslm_lineage", {}).get("reconstruction") != "least-squares":
    bad.append("lineage %s" % cfg.get("seslm_lineage"))
a = json.load(open(q8 + "/arch_diff.json"))
if abs(a["total"]["bytes"] - s["bytes"]) > 0 or not a["total"]["flops"] < a["total"]["flops_parent"]:
    bad.append("arch_diff totals %s vs summary bytes %d" % (a["total"], s["bytes"]))
ET.parse(q8 + "/arch_diff.svg")
def load(p):
    return [json.loads(x)["embedding"] for x in open(p)]
def mean_cos(a, b):
    c = [sum(x * y for x, y in zip(u, v)) / math.sqrt(sum(x * x for x in u) * sum(y * y for y in v)) for u, v in zip(a, b)]
    return sum(c) / len(c)
p, sl, q = load(tmp + "/h_parent.jsonl"), load(tmp + "/h_sliced.jsonl"), load(tmp + "/h_q8.jsonl")
cs, cq = mean_cos(p, sl), mean_cos(p, q)
print("held-out mean cos to the parent: sliced %.4f, reconstructed + INT8 %.4f" % (cs, cq))
if not (cq > cs and cq > 0.93):
    bad.append("reconstructed INT8 student mean cos %.4f, sliced %.4f" % (cq, cs))
for x in bad:
    print("  " + x, file=sys.stderr)
sys.exit(1 if bad else 0)
PY

cli_test_done
