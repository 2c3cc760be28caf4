#!/usr/bin/env bash
# Set up the ONNX Runtime benchmark peer.
# Usage: bench/ort/setup.sh [MODEL_DIR]     (default MODEL_DIR: models/all-MiniLM-L6-v2)
#  1. bench/ort/.venv: onnxruntime (CPU) + numpy + tokenizers (~60 MB, seconds).
#  2. MODEL_DIR/onnx/model.onnx: exported once (never committed) with tests/oracle/.venv
#     (torch; set up by tests/oracle/setup_venv.sh when missing: ~4 GB download, ~2 min).
#     The graph includes mean pooling + L2 normalisation.
#  3. MODEL_DIR/onnx/model_fused.onnx: the same graph after ONNX Runtime's transformer optimizer
#     (Attention/SkipLayerNorm/BiasGelu fusions, fp32): the default graph of ort_bench.py.
#  4. Verifies both graphs against tests/fixtures/oracle (cosine >= 0.99999 on every row).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
MODEL_DIR="${1:-$REPO/models/all-MiniLM-L6-v2}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
[[ -f "$MODEL_DIR/model.safetensors" ]] || { echo "no model at $MODEL_DIR (run data/fetch_model.sh)" >&2; exit 1; }

VENV="$HERE/.venv"
WANT="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [[ ! -f "$VENV/.stamp" || "$(cat "$VENV/.stamp")" != "$WANT" ]]; then
  rm -rf "$VENV"
  "${PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/pip" install -q -r "$HERE/requirements.txt"
  echo "$WANT" > "$VENV/.stamp"
fi

ONNX="$MODEL_DIR/onnx/model.onnx"
if [[ ! -f "$ONNX" ]]; then
  "$REPO/tests/oracle/setup_venv.sh"
  "$REPO/tests/oracle/.venv/bin/python" "$HERE/export_onnx.py" "$MODEL_DIR" "$ONNX" 2>&1 \
    | grep -v -e Warning -e 'torch.onnx.export(' -e 'padding_length' -e 'opset9.index' -e 'Loading weights' || true
fi
FUSED="$MODEL_DIR/onnx/model_fused.onnx"
if [[ ! -f "$FUSED" || "$FUSED" -ot "$ONNX" ]]; then
  "$VENV/bin/python" "$HERE/fuse_onnx.py" "$ONNX" "$FUSED"
fi
for g in "$ONNX" "$FUSED"; do
  "$VENV/bin/python" "$HERE/verify_onnx.py" "$MODEL_DIR" "$REPO/tests/fixtures/oracle" "$g"
done
