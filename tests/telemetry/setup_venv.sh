#!/usr/bin/env bash
# setup_venv.sh — create tests/telemetry/.venv with h5py + numpy for check_dump.py (idempotent: does
# nothing when the venv matches requirements.txt). Needs python3-venv and the package index.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
PY="${PYTHON:-python3}"
STAMP="$VENV/.stamp"
WANT="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] && "$VENV/bin/python" -c "import h5py, numpy" 2>/dev/null; then
  exit 0
fi
echo "setting up $VENV (h5py, numpy) ..." >&2
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q -r "$HERE/requirements.txt"
"$VENV/bin/python" -c "import h5py, numpy"
echo "$WANT" > "$STAMP"
