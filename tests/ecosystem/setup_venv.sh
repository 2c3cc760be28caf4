#!/usr/bin/env bash
# setup_venv.sh — create tests/ecosystem/.venv with the official clients (openai, huggingface_hub), the
# OpenAPI validator and onnxruntime, every package pinned (requirements.txt + constraints.txt).
# Idempotent: does nothing when the venv matches. ~200 MB download, ~30 s here. Needs python3-venv and
# the package index.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
PY="${PYTHON:-python3}"
STAMP="$VENV/.stamp"
WANT="$(cat "$HERE/requirements.txt" "$HERE/constraints.txt" | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] && "$VENV/bin/python" -c "import openai, huggingface_hub, onnxruntime" 2>/dev/null; then
  exit 0
fi
echo "setting up $VENV (openai, huggingface_hub, openapi-spec-validator, onnxruntime) ..." >&2
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q -r "$HERE/requirements.txt" -c "$HERE/constraints.txt"
"$VENV/bin/python" -c "import openai, huggingface_hub, onnxruntime, openapi_spec_validator"
echo "$WANT" > "$STAMP"
