#!/usr/bin/env bash
# Regenerate tests/fixtures/features/ (the last k layers' features, seslm_encoder_features_texts) with the
# pinned transformers of tests/oracle/.venv. Usage: tests/oracle/make_feature_fixtures.sh [MODEL_DIR]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
MODEL_DIR="${1:-$REPO/models/all-MiniLM-L6-v2}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
[[ -f "$MODEL_DIR/model.safetensors" ]] || { echo "no model at $MODEL_DIR" >&2; exit 1; }
"$HERE/setup_venv.sh"
"$HERE/.venv/bin/python" "$HERE/make_feature_fixtures.py" "$MODEL_DIR" "$REPO/tests/fixtures/oracle" "$REPO/tests/fixtures/features"
