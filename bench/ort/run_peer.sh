#!/usr/bin/env bash
# Run the ORT peer matrix: batch {1,32} x inputs {short,long128} x graph {fused,plain}, threads N.
# Usage: bench/ort/run_peer.sh [MODEL_DIR] [THREADS]   -> one JSON object per line on stdout
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
MODEL_DIR="${1:-$REPO/models/all-MiniLM-L6-v2}"
T="${2:-2}"
PY="$HERE/.venv/bin/python"
for graph in fused plain; do
  "$PY" "$HERE/ort_bench.py" "$MODEL_DIR" --graph $graph --threads "$T" --batch 1  --inputs short   --repeats 300 --warmup 20 --json
  "$PY" "$HERE/ort_bench.py" "$MODEL_DIR" --graph $graph --threads "$T" --batch 32 --inputs short   --repeats 40  --warmup 3  --json
  "$PY" "$HERE/ort_bench.py" "$MODEL_DIR" --graph $graph --threads "$T" --batch 1  --inputs long128 --repeats 100 --warmup 5  --json
  "$PY" "$HERE/ort_bench.py" "$MODEL_DIR" --graph $graph --threads "$T" --batch 32 --inputs long128 --repeats 10  --warmup 1  --json
done
