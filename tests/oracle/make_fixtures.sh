#!/usr/bin/env bash
# Regenerate the oracle fixtures in tests/fixtures/oracle/.
# Usage: tests/oracle/make_fixtures.sh [MODEL_DIR]
#   MODEL_DIR defaults to models/all-MiniLM-L6-v2 (relative to the repo root).
#   SHARED_DATA (default: <repo>/../shared/data) is only used to rebuild inputs.jsonl;
#   when it is absent the committed inputs.jsonl is reused.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
MODEL_DIR="${1:-$REPO/models/all-MiniLM-L6-v2}"
OUT="$REPO/tests/fixtures/oracle"
SHARED_DATA="${SHARED_DATA:-$REPO/../shared/data}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

[[ -f "$MODEL_DIR/model.safetensors" ]] || { echo "no model at $MODEL_DIR" >&2; exit 1; }
"$HERE/setup_venv.sh"
mkdir -p "$OUT"
if [[ -d "$SHARED_DATA/wiki_sents" ]]; then
  python3 "$HERE/inputs.py" "$SHARED_DATA" "$OUT/inputs.jsonl"
else
  echo "no $SHARED_DATA: reusing committed $OUT/inputs.jsonl" >&2
fi
"$HERE/.venv/bin/python" "$HERE/make_fixtures.py" "$MODEL_DIR" "$OUT"
