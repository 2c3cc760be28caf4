#!/usr/bin/env bash
# regenerate.sh — reruns the CPU benchmarks and rewrites the generated blocks of bench/RESULTS.md in one
# command (bench/fill_results.py: only the tables between "<!-- generated: NAME -->" markers change; the
# prose around them states the conditions of the run that is committed, so re-read it after a rerun).
#
#   bench/regenerate.sh [--quick] [--only embed,telemetry,student,kernels,int8]
#
#   embed, telemetry  bench/run.sh: SE-SLM vs ONNX Runtime (sets up the ORT venv), telemetry on/off
#   student           bench/student.sh: the evolved student vs its parent
#   kernels           build/bench/bench_kernels: F32 / INT8 / 2:4 linear layers
#   int8              bench/int8_peer.sh: our INT8 models vs ONNX Runtime's dynamic INT8 (after student)
# The other sections have their own commands, named in RESULTS.md: bench/registry_bench.sh (4),
# bench/validate_candidates.sh (5), bench/gpu/README.md (6, needs a GPU), bench/intent/run.sh (7).
# Run on a quiet machine: every figure is a ratio against a peer measured in the same run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
quick=0 only="embed,telemetry,student,kernels,int8"
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) quick=1; shift ;;
    --only) only="$2"; shift 2 ;;
    -h|--help) sed -n 2,13p "$0"; exit 0 ;;
    *) echo "regenerate.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
want() { case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
[ -x build/bench/bench_kernels ] || { cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j"$(nproc)"; }
out=bench/out/results
rm -rf "$out"
mkdir -p "$out"
q=(); [ "$quick" = 1 ] && q=(--quick --rounds 1)
if want embed || want telemetry; then
    o=embed; want embed || o=telemetry
    want embed && want telemetry && o=""
    bench/run.sh "${q[@]}" ${o:+--only "$o"} >&2
    want embed && python3 bench/report.py bench/out/embed.jsonl --threads 2 >"$out/embed.md"
    want telemetry && python3 bench/report.py bench/out/telemetry.jsonl --threads 2 --telemetry >"$out/telemetry.md"
fi
if want student; then
    bench/student.sh "${q[@]}" >"$out/student.md"
fi
if want kernels; then
    reps=30; [ "$quick" = 1 ] && reps=5
    build/bench/bench_kernels --threads 1 --repeats "$reps" >bench/out/kernels.jsonl
    python3 bench/report_kernels.py bench/out/kernels.jsonl >"$out/kernels.md"
fi
if want int8; then
    r=3; [ "$quick" = 1 ] && r=1
    bench/int8_peer.sh --rounds "$r" >"$out/int8.md"
fi
python3 bench/fill_results.py bench/RESULTS.md "$out"
