#!/usr/bin/env bash
# Run the ORT peer matrix: batch {1,32} x inputs {short,long128} x graph {fused,plain}, threads N.
# Usage: bench/ort/run_peer.sh [MODEL_DIR] [THREADS]   -> one JSON object per line on stdout
# On a shared machine each configuration first waits (up to QUIET_WAIT_S, default 180 s) until
# no other process uses more than 15% CPU; what it saw goes to stderr. QUIET_WAIT_S=0 skips that.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
MODEL_DIR="${1:-$REPO/models/all-MiniLM-L6-v2}"
T="${2:-2}"
PY="$HERE/.venv/bin/python"
WAIT="${QUIET_WAIT_S:-180}"

busy() { # other processes above 15% CPU over one second
  top -b -n 2 -d 1 | awk '/^top -/{n++} n==2 && $1 ~ /^[0-9]+$/ && $9+0 > 15 && $12 != "top" {print $12}' | tr '\n' ' '
}
run() {
  local b="" t0=$SECONDS
  if (( WAIT > 0 )); then
    while b="$(busy)"; [[ -n "$b" ]] && (( SECONDS - t0 < WAIT )); do sleep 3; done
    echo "# $* : busy before: ${b:-none}" >&2
  fi
  "$PY" "$HERE/ort_bench.py" "$MODEL_DIR" --threads "$T" --json "$@"
  if (( WAIT > 0 )); then echo "#   busy after: $(busy)" >&2; fi
}
for graph in fused plain; do
  run --graph $graph --batch 1  --inputs short   --repeats 300 --warmup 20
  run --graph $graph --batch 32 --inputs short   --repeats 40  --warmup 3
  run --graph $graph --batch 1  --inputs long128 --repeats 100 --warmup 5
  run --graph $graph --batch 32 --inputs long128 --repeats 10  --warmup 1
done
