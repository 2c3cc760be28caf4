#!/usr/bin/env bash
# Create tests/oracle/.venv with the pinned reference stack (sentence-transformers,
# transformers, tokenizers, torch from PyPI, onnx/onnxscript for the one-off ONNX export).
# Idempotent: does nothing when the venv already matches requirements.txt + constraints.txt.
# Cost on the 2-core dev machine: ~1m40s, ~4 GB download, 5.8 GB on disk
# (torch from PyPI pulls the nvidia-* CUDA wheels; they are needed for `import torch`
# even on CPU, see README.md).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
PY="${PYTHON:-python3}"
STAMP="$VENV/.stamp"
WANT="$(cat "$HERE/requirements.txt" "$HERE/constraints.txt" | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  exit 0
fi
echo "setting up $VENV (torch + sentence-transformers, ~4 GB download) ..." >&2
start=$(date +%s)
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q -r "$HERE/requirements.txt" -c "$HERE/constraints.txt"
echo "$WANT" > "$STAMP"
echo "venv ready in $(( $(date +%s) - start ))s, $(du -sh "$VENV" | cut -f1)" >&2
