#!/usr/bin/env bash
# setup_venv.sh — create tests/otlp/.venv with opentelemetry-proto + protobuf for receiver.py (idempotent:
# does nothing when the venv matches requirements.txt). Needs python3-venv and the package index.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
PY="${PYTHON:-python3}"
STAMP="$VENV/.stamp"
WANT="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
CHECK="from opentelemetry.proto.collector.trace.v1 import trace_service_pb2; from google.protobuf import json_format"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] && "$VENV/bin/python" -c "$CHECK" 2>/dev/null; then
  exit 0
fi
echo "setting up $VENV (opentelemetry-proto, protobuf) ..." >&2
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q -r "$HERE/requirements.txt"
"$VENV/bin/python" -c "$CHECK"
echo "$WANT" > "$STAMP"
