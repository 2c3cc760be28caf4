#!/usr/bin/env bash
# test_export_hf.sh — `seslm export --format hf` loads in stock sentence-transformers (pinned,
# tests/oracle/.venv) with the vectors of `seslm embed` (tests/ecosystem/check_hf.py: cosine >= 0.999 on every
# text for FP32 models and for INT8 students as recompile makes them (each token's largest element in float);
# INT8 students quantized per token alone (--act-quant token): mean >= 0.999, worst >= 0.995 as SE-SLM's own
# backends differ; 50 texts incl. an empty and a truncated one):
#   * the parent all-MiniLM-L6-v2: a standard BertModel folder, loaded without trust_remote_code;
#   * a real pruned FP32 student and the same plan as INT8 students, top1 and per token alone (seslm record ->
#     plan -> recompile):
#     model_type seslm_bert + modeling_seslm.py, refused without trust_remote_code, loaded with it;
#   * the students' own folders (config.json with per-layer shapes, INT8 tensors) are refused by stock
#     AutoConfig / AutoModel / BertModel rather than misread.
# Usage: test_export_hf.sh SESLM MODEL_DIR REPO_ROOT. FAILS without the package index (venv, ~4 GB once).
. "$(dirname "$0")/lib.sh"
cli_test_init test_export_hf "$@"

if ! bash "$ROOT/tests/oracle/setup_venv.sh" >"$TMP/venv.log" 2>&1; then
    fail "cannot set up tests/oracle/.venv: $(tail -c 600 "$TMP/venv.log")"
    expect 2 "not supported" "an unknown format" -- export --model "$MODEL" --format tflite --out "$TMP/x"
expect 1 "" "a missing model" -- export --model "$TMP/nomodel" --format hf --out "$TMP/x"
cli_test_done
    exit 1
fi
PY="$ROOT/tests/oracle/.venv/bin/python"
export HF_HOME="$TMP/hf" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
head -n 48 "$ROOT/data/bench/short.txt" >"$TMP/texts.txt"
printf '\n%s\n' "$("$PY" -c "print(' '.join(['long'] * 300))")" >>"$TMP/texts.txt" # empty + truncated

hf_check() { # DESC MODEL OUT KIND(standard|custom)
    local desc=$1 model=$2 out=$3 kind=$4
    ok
    if ! "$SESLM" export --model "$model" --format hf --out "$out" 2>"$TMP/x.err"; then
        fail "$desc: export failed: $(tail -c 400 "$TMP/x.err")"
        return
    fi
    if "$PY" "$ROOT/tests/ecosystem/check_hf.py" "$SESLM" "$model" "$out" "$TMP/texts.txt" "$kind" >"$TMP/o.out" 2>"$TMP/o.err"; then
        echo "$desc: $(grep -v '^  without' "$TMP/o.out" | tr '\n' ' ')"
    else
        fail "$desc: $(tail -c 800 "$TMP/o.out") $(tail -c 600 "$TMP/o.err")"
    fi
}

hf_check "parent FP32" "$MODEL" "$TMP/parent.hf" standard

# real students: telemetry -> plan -> recompile (pruned per layer), FP32 and INT8
"$SESLM" record --model "$MODEL" --input "$ROOT/data/bench/short.txt" --out "$TMP/tel" --threads 1 >/dev/null 2>"$TMP/rec.err" ||
    fail "record: $(tail -c 300 "$TMP/rec.err")"
timeout 300 "$SESLM" plan --model "$MODEL" --telemetry "$TMP/tel" --config "$ROOT/configs/evolve.yaml" \
    --calib "$ROOT/data/bench/short.txt" --calib-lines 16 --out "$TMP/plans" --threads 1 --quiet >/dev/null 2>"$TMP/plan.err" ||
    fail "plan: $(tail -c 300 "$TMP/plan.err")"
timeout 300 "$SESLM" recompile --model "$MODEL" --plan "$TMP/plans/plan-20.json" --out "$TMP/stu_f32" --quantize none \
    --embeddings f32 --config "$ROOT/configs/evolve.yaml" >/dev/null 2>"$TMP/rc.err" || fail "recompile f32: $(tail -c 300 "$TMP/rc.err")"
timeout 300 "$SESLM" recompile --model "$MODEL" --plan "$TMP/plans/plan-20.json" --out "$TMP/stu_int8" --quantize int8 \
    --embeddings f32 --config "$ROOT/configs/evolve.yaml" >/dev/null 2>"$TMP/rc.err" || fail "recompile int8: $(tail -c 300 "$TMP/rc.err")"
hf_check "pruned FP32 student" "$TMP/stu_f32" "$TMP/stu_f32.hf" custom
hf_check "pruned INT8 student" "$TMP/stu_int8" "$TMP/stu_int8.hf" custom
grep -Eq '"seslm_int8_top1":[[:space:]]*true' "$TMP/stu_int8.hf/config.json" ||
    fail "the INT8 export's config.json does not say its layers keep each token's largest element in float"
timeout 300 "$SESLM" recompile --model "$MODEL" --plan "$TMP/plans/plan-20.json" --out "$TMP/stu_tok" --quantize int8 \
    --act-quant token --embeddings f32 --config "$ROOT/configs/evolve.yaml" >/dev/null 2>"$TMP/rc.err" ||
    fail "recompile int8 per token: $(tail -c 300 "$TMP/rc.err")"
hf_check "pruned INT8 student, per token alone" "$TMP/stu_tok" "$TMP/stu_tok.hf" custom
ok
"$PY" - "$TMP/stu_int8.hf" <<'PY' || fail "the INT8 export does not keep INT8 weights with scales"
import json, sys
from safetensors import safe_open
d = sys.argv[1]
c = json.load(open(d + "/config.json"))
assert any(l["int8"] for l in c["seslm_layers"]) and len({l["num_attention_heads"] for l in c["seslm_layers"]}) >= 1
with safe_open(d + "/model.safetensors", "np") as f:
    keys = set(f.keys())
    q = [k for k in keys if k.endswith(".weight") and str(f.get_slice(k).get_dtype()) == "I8"]
    assert q and all(k + "_scale" in keys for k in q), (len(q), sorted(keys)[:8])
PY

# a student's own folder is never silently misread by a stock loader
ok
"$PY" - "$TMP/stu_int8" "$TMP/stu_f32" >"$TMP/own.out" 2>&1 <<'PY' || fail "a student's own folder: $(tail -c 800 "$TMP/own.out")"
import sys, transformers
from transformers import AutoConfig, AutoModel, BertModel
transformers.logging.set_verbosity_error()
for d in sys.argv[1:]:
    for what, load in (("AutoConfig", lambda: AutoConfig.from_pretrained(d)), ("AutoModel", lambda: AutoModel.from_pretrained(d)),
                       ("BertModel", lambda: BertModel.from_pretrained(d))):
        try:
            load()
        except Exception as e:
            print(f"{d}: {what} refused: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
            continue
        sys.exit(f"{d}: {what} loaded a student's own folder")
PY
expect 2 "not supported" "an unknown format" -- export --model "$MODEL" --format tflite --out "$TMP/x"
expect 1 "" "a missing model" -- export --model "$TMP/nomodel" --format hf --out "$TMP/x"
cli_test_done
