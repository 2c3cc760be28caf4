#!/usr/bin/env bash
# latency_pairs.sh — batch-32 latency of candidates against their parent as the validation sandbox measures
# it (issue 13's bar: <= 0.25x): `seslm validate` with only the latency runs (150 timed pairs, parent and
# candidate back to back, short queries of data/bench/short.txt, 2 threads), for one or more builds of
# seslm, rounds interleaved so every build sees the same machine. Prints one line per run: the median of the
# paired wall-time ratios, the min/min ratio, the CPU-time ratio and both p50s (ms).
#
#   bench/latency_pairs.sh ROUNDS PARENT "CANDIDATE..." SESLM...     (from the repository root)
set -eu
R=${1:?usage: bench/latency_pairs.sh ROUNDS PARENT "CANDIDATE..." SESLM...}
P=${2:?parent}
CANDS=${3:?candidates}
shift 3
[ $# -gt 0 ] || set -- build/seslm
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
failed=0
cat >"$T/lat.yaml" <<YAML
samples:
  stsb_pairs: 0
  intent_train: 0
  domain: 0
  domain_intent: 0
  heldout: 0
  passages: 0
  queries: 0
latency:
  warmup: 10
  repeats_b1: 0
  repeats_b32: ${REPEATS:-150}
run:
  measure_memory: false
gates:
  latency_b32_p50:
    max_ratio: 0.25
YAML
for r in $(seq "$R"); do
    for c in $CANDS; do
        for b in "$@"; do
            rm -rf "$T/out"
            "$b" validate --parent "$P" --candidate "$c" --config "$T/lat.yaml" --threads "${THREADS:-2}" --json \
                --quiet --out "$T/out" >/dev/null 2>"$T/err" || true
            if [ ! -f "$T/out/report.md" ]; then
                echo "round $r $c $b: failed: $(tail -1 "$T/err")"
                failed=$((failed + 1))
                continue
            fi
            echo "round $r $(basename "$(dirname "$(dirname "$c")")")/$(basename "$c") $b $(grep -o 'batch 32: wall-time ratio median [0-9.]*\|min / min [0-9.]*\|CPU-time ratio median [0-9.]*\|parent [0-9.]*, candidate [0-9.]*' "$T/out/report.md" | tr '\n' ' ')"
        done
    done
done
[ "$failed" -eq 0 ] || { echo "latency_pairs.sh: $failed run(s) failed" >&2; exit 1; }
