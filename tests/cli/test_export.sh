#!/usr/bin/env bash
# test_export.sh — `seslm export --format onnx` runs in onnxruntime (pinned, tests/ecosystem/.venv) with
# the vectors of `seslm embed` (tests/ecosystem/check_onnx.py: cosine >= 0.999 per text for FP32 models and for
# INT8 students as recompile makes them (each token's largest element kept in float: kernels/quant.h top1);
# students quantized per token alone (--act-quant token) mean >= 0.999 and worst >= 0.99 (FP32 weights) /
# 0.995 (--int8), as SE-SLM's own two backends differ on their rounding boundaries):
#   * the parent all-MiniLM-L6-v2 (FP32);
#   * a real pruned student (seslm record -> plan -> recompile, INT8 weights, per-layer head counts and FFN
#     widths), exported FP32 (dequantised) and --int8 (MatMulInteger on the student's own INT8 weights), and
#     the same plan with --act-quant token;
#   * a cls-pooling variant (pooling inside the graph); an unsupported pooling mode is refused.
# Usage: test_export.sh SESLM MODEL_DIR REPO_ROOT. FAILS without the package index (venv).
. "$(dirname "$0")/lib.sh"
cli_test_init test_export "$@"

if ! bash "$ROOT/tests/ecosystem/setup_venv.sh" >"$TMP/venv.log" 2>&1; then
    fail "cannot set up tests/ecosystem/.venv: $(tail -c 600 "$TMP/venv.log")"
    cli_test_done
    exit 1
fi
PY="$ROOT/tests/ecosystem/.venv/bin/python"
head -n 48 "$ROOT/data/bench/short.txt" >"$TMP/texts.txt"
printf '\n%s\n' "$("$PY" -c "print(' '.join(['long'] * 300))")" >>"$TMP/texts.txt" # empty + truncated

onnx_check() { # DESC MODEL OUT KIND(fp32|int8) [export flags...]
    local desc=$1 model=$2 out=$3 kind=$4
    shift 4
    ok
    if ! "$SESLM" export --model "$model" --format onnx --out "$out" "$@" 2>"$TMP/x.err"; then
        fail "$desc: export failed: $(tail -c 400 "$TMP/x.err")"
        return
    fi
    if "$PY" "$ROOT/tests/ecosystem/check_onnx.py" "$SESLM" "$model" "$out" "$TMP/texts.txt" "$kind" >"$TMP/o.out" 2>&1; then
        echo "$desc: $(tail -2 "$TMP/o.out" | tr '\n' ' ')"
    else
        fail "$desc: $(tail -c 800 "$TMP/o.out")"
    fi
}

onnx_check "parent FP32" "$MODEL" "$TMP/parent.onnx" fp32

# a real student: telemetry -> plan -> recompile (INT8, pruned per layer)
"$SESLM" record --model "$MODEL" --input "$ROOT/data/bench/short.txt" --out "$TMP/tel" --threads 1 >/dev/null 2>"$TMP/rec.err" ||
    fail "record: $(tail -c 300 "$TMP/rec.err")"
timeout 300 "$SESLM" plan --model "$MODEL" --telemetry "$TMP/tel" --config "$ROOT/configs/evolve.yaml" \
    --calib "$ROOT/data/bench/short.txt" --calib-lines 16 --out "$TMP/plans" --threads 1 --quiet >/dev/null 2>"$TMP/plan.err" ||
    fail "plan: $(tail -c 300 "$TMP/plan.err")"
STU=$TMP/student
timeout 300 "$SESLM" recompile --model "$MODEL" --plan "$TMP/plans/plan-20.json" --out "$STU" --quantize int8 \
    --embeddings f32 --config "$ROOT/configs/evolve.yaml" >/dev/null 2>"$TMP/rc.err" || fail "recompile: $(tail -c 300 "$TMP/rc.err")"
ok
"$PY" - "$STU/config.json" <<'PY' || fail "the student is not non-uniform INT8 / not marked seslm_bert"
import json, sys
c = json.load(open(sys.argv[1]))
L = c["seslm_layers"]
assert len({(l["num_attention_heads"], l["intermediate_size"]) for l in L}) > 1 or L[0]["num_attention_heads"] < 12, L
assert c["model_type"] == "seslm_bert" and c["architectures"] == ["SeslmBertModel"], c.get("model_type")
PY
onnx_check "student, FP32 weights" "$STU" "$TMP/student.onnx" int8
onnx_check "student, INT8 weights (MatMulInteger)" "$STU" "$TMP/student_int8.onnx" int8mm --int8
ok
grep -q '"int8-dynamic-per-token-symmetric-top1-float"' "$STU/config.json" ||
    fail "recompile's default student does not keep each token's largest element in float"
# a student quantized per token alone (as before 2026-12-05): still exported, as the runtime computes it
STT=$TMP/student_token
timeout 300 "$SESLM" recompile --model "$MODEL" --plan "$TMP/plans/plan-20.json" --out "$STT" --quantize int8 \
    --act-quant token --embeddings f32 --config "$ROOT/configs/evolve.yaml" >/dev/null 2>"$TMP/rct.err" ||
    fail "recompile --act-quant token: $(tail -c 300 "$TMP/rct.err")"
onnx_check "student per token, FP32 weights" "$STT" "$TMP/student_tok.onnx" int8-token
onnx_check "student per token, INT8 weights (MatMulInteger)" "$STT" "$TMP/student_tok_int8.onnx" int8mm-token --int8
# the same plan with a compressed word table: seen ids 4-bit, rare ids product-quantized, exact rows and
# positions INT8 (the export reads the rows as the kernels do)
STP=$TMP/student_pq8
timeout 600 "$SESLM" recompile --model "$MODEL" --plan "$TMP/plans/plan-20.json" --out "$STP" --quantize int8 \
    --embeddings pq8 --telemetry "$TMP/tel" --config "$ROOT/configs/evolve.yaml" >/dev/null 2>"$TMP/rcp.err" ||
    fail "recompile pq8: $(tail -c 300 "$TMP/rcp.err")"
onnx_check "student, pq8 word rows" "$STP" "$TMP/student_pq8.onnx" int8
ok
"$PY" - "$TMP/student_int8.onnx/model.onnx" <<'PY' || fail "the --int8 export has no MatMulInteger on INT8 weights"
import sys, onnx
m = onnx.load(sys.argv[1])
assert sum(n.op_type == "MatMulInteger" for n in m.graph.node) >= 6
assert any(t.data_type == onnx.TensorProto.INT8 for t in m.graph.initializer)
PY

# pooling inside the graph: cls; an unsupported mode is refused
CLS=$TMP/cls-model
mkdir -p "$CLS/1_Pooling"
for f in "$MODEL"/*; do [ "$(basename "$f")" = 1_Pooling ] || ln -s "$f" "$CLS/"; done
printf '{"embedding_dimension": 384, "pooling_mode": "cls"}\n' >"$CLS/1_Pooling/config.json"
onnx_check "cls pooling" "$CLS" "$TMP/cls.onnx" fp32
printf '{"embedding_dimension": 384, "pooling_mode": "lasttoken"}\n' >"$CLS/1_Pooling/config.json"
ok
if "$SESLM" export --model "$CLS" --format onnx --out "$TMP/lt.onnx" 2>"$TMP/lt.err"; then
    fail "lasttoken export was not refused"
else
    grep -q "lasttoken" "$TMP/lt.err" || fail "refusal does not name the mode: $(cat "$TMP/lt.err")"
fi
cli_test_done
