#!/usr/bin/env bash
# student.sh — the evolved student against its parent, side by side in one run: stored bytes, latency at
# batch 1 and 32 (short real sentences and 128-token inputs), and quality on held-out domain text.
#
#   bench/student.sh [--threads N] [--rounds R] [--quick] [--plan 10|20|30]
#
# 1. telemetry from the first 400 lines of data/traffic/restaurant8k_600.txt (seslm record), plans
#    (seslm plan), the student (seslm recompile: reconstruction on the same 400 lines, INT8, compressed
#    embeddings) — everything under bench/out/student/;
# 2. per round and configuration, bench_embed on the parent then on the student (same inputs, threads,
#    repeats), rounds interleaved;
# 3. quality: mean / 5th-percentile cosine student vs parent on the last 200 lines (never calibrated on),
#    and on data/traffic/clinc150_600.txt (another domain);
# 4. bench/report_student.py prints the Markdown tables for bench/RESULTS.md.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
threads=2 rounds=3 quick=0 plan=20
while [ $# -gt 0 ]; do
    case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --quick) quick=1; shift ;;
    --plan) plan="$2"; shift 2 ;;
    -h|--help) sed -n 2,15p "$0"; exit 0 ;;
    *) echo "student.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
model=models/all-MiniLM-L6-v2
[ -x build/bench/bench_embed ] || { cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j"$(nproc)"; }
data/fetch_model.sh "$model" >/dev/null
out=bench/out/student
rm -rf "$out"
mkdir -p "$out"
head -400 data/traffic/restaurant8k_600.txt >"$out/calib.txt"
tail -200 data/traffic/restaurant8k_600.txt >"$out/heldout.txt"
echo "== telemetry, plans, student (plan-$plan)" >&2
build/seslm record --model "$model" --input "$out/calib.txt" --out "$out/telemetry" --node bench >/dev/null
build/seslm plan --model "$model" --telemetry "$out/telemetry" --config configs/evolve.yaml --calib "$out/calib.txt" \
    --calib-lines 64 --out "$out/plans" --quiet >/dev/null
build/seslm recompile --model "$model" --plan "$out/plans/plan-$plan.json" --calibration "$out/calib.txt" \
    --telemetry "$out/telemetry" --out "$out/model" >"$out/recompile.json"
student="$out/model"

res="$out/latency.jsonl"
: >"$res"
configs=("short short 1 0 300 20" "short short 32 0 40 3" "long128 long128 1 128 100 5" "long128 long128 32 128 10 1")
[ "$quick" = 1 ] && configs=("short short 1 0 50 5" "short short 32 0 10 2" "long128 long128 1 128 20 2" "long128 long128 32 128 3 1")
for r in $(seq 1 "$rounds"); do
    for c in "${configs[@]}"; do
        read -r name inputs batch maxlen repeats warmup <<<"$c"
        for who in parent student; do
            m=$model; [ $who = student ] && m=$student
            echo "round $r/$rounds: $name batch $batch $who" >&2
            build/bench/bench_embed --model "$m" --inputs "data/bench/$inputs.txt" --batch "$batch" --max-len "$maxlen" \
                --threads "$threads" --repeats "$repeats" --warmup "$warmup" |
                sed "s/^{/{\"round\":$r,\"config\":\"$name\",\"who\":\"$who\",/" >>"$res"
        done
    done
done

echo "== quality" >&2
for set in heldout clinc; do
    f="$out/heldout.txt"; [ $set = clinc ] && f=data/traffic/clinc150_600.txt
    build/seslm embed --model "$model" --input "$f" --threads "$threads" >"$out/$set-parent.jsonl"
    build/seslm embed --model "$student" --input "$f" --threads "$threads" >"$out/$set-student.jsonl"
done
python3 bench/report_student.py "$out" --threads "$threads" --model "$model"
