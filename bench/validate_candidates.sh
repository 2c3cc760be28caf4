#!/usr/bin/env bash
# validate_candidates.sh — the validation figures of bench/RESULTS.md in one command: runs
# `seslm validate` on each candidate against the parent (both measured in the same run: quality,
# interleaved latency with warm-ups and repeats, memory), then prints the Markdown table
# (bench/validation_table.py) and writes the trade-off plot (bench/plot_validation.py).
#
#   bench/validate_candidates.sh [--parent DIR] [--config FILE] [--out DIR] [--threads N] CANDIDATE_DIR...
#
# Outputs: OUT/<candidate name>/{verdict.json,report.md,junit.xml}, OUT/tradeoff.svg, OUT/table.md
# (OUT defaults to bench/out/validate). Run from the repository root after building.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
parent=$root/models/all-MiniLM-L6-v2 config=$root/configs/gates.yaml out=$root/bench/out/validate threads=
cands=()
while [ $# -gt 0 ]; do
    case "$1" in
    -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --parent) parent=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -*) echo "validate_candidates.sh: unknown option $1" >&2; exit 2 ;;
    *) cands+=("$1"); shift ;;
    esac
done
[ ${#cands[@]} -gt 0 ] || { echo "validate_candidates.sh: no candidate directory (--help)" >&2; exit 2; }
mkdir -p "$out"
verdicts=()
for c in "${cands[@]}"; do
    name=$(basename "$c")
    echo "== $name" >&2
    args=(validate --parent "$parent" --candidate "$c" --config "$config" --out "$out/$name" --quiet)
    [ -n "$threads" ] && args+=(--threads "$threads")
    rc=0
    "$root/build/seslm" "${args[@]}" >/dev/null || rc=$?
    [ "$rc" -le 1 ] || { echo "validate_candidates.sh: seslm validate failed on $c (exit $rc)" >&2; exit 2; }
    echo "   exit $rc ($([ "$rc" = 0 ] && echo pass || echo 'a gate failed'))" >&2
    verdicts+=("$out/$name/verdict.json")
done
python3 "$root/bench/validation_table.py" "${verdicts[@]}" | tee "$out/table.md"
python3 "$root/bench/plot_validation.py" "${verdicts[@]}" -o "$out/tradeoff.svg" >&2
