#!/usr/bin/env bash
# Create tests/oracle/.venv with the pinned reference stack (sentence-transformers,
# transformers, tokenizers, torch from PyPI, onnx/onnxscript for the one-off ONNX export).
# Idempotent: does nothing when the venv already matches requirements.txt + constraints.txt.
#
# Disk matters (CI once ran out of space here): torch from PyPI is a CUDA build whose pip
# dependencies (nvidia-* wheels, triton) take 4.6 GB, although the reference runs on the CPU only.
# So the pinned set is installed with --no-deps, without triton and without the nvidia wheels whose
# libraries a machine with the CUDA toolkit already has (cudart, cuBLAS, cuDNN, cuFFT, cuSPARSE,
# NVRTC); the few it usually lacks or has too old (NCCL, cuSPARSELt, cuFile, NVSHMEM) are kept.
# `import torch` is then checked; where it fails (no CUDA toolkit, another version) the full
# dependency set is installed instead. Lean: ~2.5 GB on disk, ~1 min; full: 5.8 GB, ~4 GB download.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
PY="${PYTHON:-python3}"
STAMP="$VENV/.stamp"
WANT="$(cat "$HERE/requirements.txt" "$HERE/constraints.txt" | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  exit 0
fi
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
echo "setting up $VENV (torch + sentence-transformers) ..." >&2
start=$(date +%s)
rm -rf "$VENV"
"$PY" -m venv "$VENV"
lean="$VENV/lean-requirements.txt"
grep -vE '^(nvidia-|triton==|cuda-toolkit==)' "$HERE/constraints.txt" > "$lean"
grep -E '^(nvidia-nccl-|nvidia-cusparselt-|nvidia-cufile|nvidia-nvshmem-)' "$HERE/constraints.txt" >> "$lean"
"$VENV/bin/pip" install -q --no-deps -r "$lean"
if ! "$VENV/bin/python" -c 'import torch, sentence_transformers, transformers, onnx' 2>"$VENV/lean-import.log"; then
  echo "torch does not load against this machine's CUDA libraries ($(tail -n 1 "$VENV/lean-import.log"));" \
       "installing its full dependency set (~4 GB download)" >&2
  "$VENV/bin/pip" install -q -r "$HERE/requirements.txt" -c "$HERE/constraints.txt"
  "$VENV/bin/python" -c 'import torch, sentence_transformers, transformers, onnx'
fi
echo "$WANT" > "$STAMP"
echo "venv ready in $(( $(date +%s) - start ))s, $(du -sh "$VENV" | cut -f1)" >&2
