#!/usr/bin/env bash
# run.sh — SE-SLM vs ONNX Runtime, same model, same inputs, same thread count, in one run.
#
#   bench/run.sh [--threads N] [--rounds R] [--quick] [--only embed|telemetry]
#
# For each configuration (short real sentences / 128-token inputs, batch 1 / 32) and each round, runs
# build/bench/bench_embed then the ORT peer (bench/ort/ort_bench.py, fused graph) back to back, so
# both see the same machine state; rounds interleave to spread drift over both. Raw JSON lines go to
# bench/out/embed.jsonl; bench/report.py turns them into the tables of bench/RESULTS.md.
# Then the telemetry overhead: the same binary with telemetry off and on, batch 32, interleaved
# (bench/out/telemetry.jsonl).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
threads=2 rounds=3 quick=0 only=""
while [ $# -gt 0 ]; do
    case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --quick) quick=1; shift ;;
    --only) only="$2"; shift 2 ;;
    -h|--help) sed -n 2,10p "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
model=models/all-MiniLM-L6-v2
[ -x build/bench/bench_embed ] || { cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j"$(nproc)"; }
data/fetch_model.sh "$model" >/dev/null
bench/ort/setup.sh "$model" >&2
mkdir -p bench/out
if [ "$only" != telemetry ]; then
out=bench/out/embed.jsonl
: > "$out"

# name inputs batch max_len repeats warmup
configs=(
    "short short 1 0 300 20"
    "short short 32 0 40 3"
    "long128 long128 1 128 100 5"
    "long128 long128 32 128 10 1"
)
[ "$quick" = 1 ] && configs=("short short 1 0 50 5" "short short 32 0 10 2" "long128 long128 1 128 20 2" "long128 long128 32 128 3 1")

for r in $(seq 1 "$rounds"); do
    for c in "${configs[@]}"; do
        read -r name inputs batch maxlen repeats warmup <<<"$c"
        echo "round $r/$rounds: $name batch $batch" >&2
        build/bench/bench_embed --model "$model" --inputs "data/bench/$inputs.txt" --batch "$batch" \
            --max-len "$maxlen" --threads "$threads" --repeats "$repeats" --warmup "$warmup" |
            sed "s/^{/{\"round\":$r,\"config\":\"$name\",/" >> "$out"
        bench/ort/.venv/bin/python bench/ort/ort_bench.py "$model" --threads "$threads" --batch "$batch" \
            --inputs "$inputs" --repeats "$repeats" --warmup "$warmup" --json |
            sed "s/^{/{\"round\":$r,\"config\":\"$name\",/" >> "$out"
    done
done
python3 bench/report.py "$out" --threads "$threads"
fi

if [ "$only" != embed ]; then
tout=bench/out/telemetry.jsonl
: > "$tout"
treps=40; [ "$quick" = 1 ] && treps=10
for r in $(seq 1 $((rounds * 2))); do
    for c in "short short 0" "long128 long128 128"; do
        read -r name inputs maxlen <<<"$c"
        for tel in off on; do
            echo "telemetry round $r: $name batch 32 telemetry $tel" >&2
            build/bench/bench_embed --model "$model" --inputs "data/bench/$inputs.txt" --batch 32 \
                --max-len "$maxlen" --threads "$threads" --repeats "$treps" --warmup 3 --telemetry "$tel" |
                sed "s/^{/{\"round\":$r,\"config\":\"$name\",/" >> "$tout"
        done
    done
done
python3 bench/report.py "$tout" --threads "$threads" --telemetry
fi
