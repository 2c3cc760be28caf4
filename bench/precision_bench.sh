#!/usr/bin/env bash
# precision_bench.sh — FP32 vs BF16 (vs INT8 converted at load) of the same parent, interleaved in one run
# (issue 19 §1). Per round, every (config, threads, precision) runs back to back.
#
#   bench/precision_bench.sh [--rounds R] [--out FILE] [--bin DIR]
#
# --bin: a directory holding bench_embed (default build/bench; copy it elsewhere to keep rebuilding while
# this runs). JSON lines to --out (default bench/out/precision.jsonl).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rounds=3 out=bench/out/precision.jsonl bin=build/bench
while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    -h|--help) sed -n 2,9p "$0"; exit 0 ;;
    *) echo "precision_bench.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
model=models/all-MiniLM-L6-v2
mkdir -p "$(dirname "$out")"
: > "$out"
# name inputs batch max_len repeats warmup threads
configs=("long128x32 long128 32 128 4 1 1" "long128x32 long128 32 128 4 1 2" "long128x1 long128 1 128 30 3 2"
         "short1 short 1 0 200 20 2" "short32 short 32 0 20 2 2")
for r in $(seq 1 "$rounds"); do
    for c in "${configs[@]}"; do
        read -r name inputs batch maxlen repeats warmup threads <<<"$c"
        for p in fp32 bf16 int8; do
            load=$(cut -d' ' -f1 /proc/loadavg)
            echo "round $r: $name threads $threads $p" >&2
            "$bin/bench_embed" --model "$model" --inputs "data/bench/$inputs.txt" --batch "$batch" --max-len "$maxlen" \
                --threads "$threads" --repeats "$repeats" --warmup "$warmup" --precision "$p" |
                sed "s/^{/{\"round\":$r,\"config\":\"$name\",\"load1\":$load,/" >> "$out"
        done
    done
done
echo "wrote $out" >&2
