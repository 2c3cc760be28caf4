#!/usr/bin/env bash
# pool_bench.sh — the thread pool (kernels/cpu/pool.c) against the OpenMP build it replaced and ONNX
# Runtime, 1 and 2 threads, on the machine as found and with a CPU hog on every core (issue 19 §2).
#
#   bench/pool_bench.sh --base-build DIR [--rounds R] [--out FILE]
#
# --base-build: a build directory of the OpenMP version (e.g. `git archive a7911e2` built elsewhere);
# its bench/bench_embed is run beside ours. Per round and condition, every (build, threads, config) runs
# back to back, so all see the same machine state. The hog is one `yes > /dev/null` per core, started
# before and stopped after each condition's runs (by PID). JSON lines go to --out (default
# bench/out/pool.jsonl); bench/report_pool.py makes the table.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
base="" rounds=3 out=bench/out/pool.jsonl
while [ $# -gt 0 ]; do
    case "$1" in
    --base-build) base="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *) echo "pool_bench.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ -x "$base/bench/bench_embed" ] || { echo "pool_bench.sh: --base-build DIR with bench/bench_embed is required" >&2; exit 2; }
model=models/all-MiniLM-L6-v2
ort_py=bench/ort/.venv/bin/python
ort_model=${ORT_MODEL_DIR:-$model}
mkdir -p "$(dirname "$out")"
: > "$out"
hogs=()
stop_hogs() { for p in "${hogs[@]}"; do kill "$p" 2>/dev/null || true; done; hogs=(); }
trap stop_hogs EXIT
# name inputs batch max_len repeats warmup
configs=("short short 1 0 200 20" "short32 short 32 0 20 2" "long128 long128 1 128 30 3")
for r in $(seq 1 "$rounds"); do
    for cond in found hog; do
        if [ "$cond" = hog ]; then
            for _ in $(seq 1 "$(nproc)"); do yes > /dev/null & hogs+=($!); done
            sleep 0.5
        fi
        load=$(cut -d' ' -f1 /proc/loadavg)
        for c in "${configs[@]}"; do
            read -r name inputs batch maxlen repeats warmup <<<"$c"
            for t in 1 2; do
                for b in pool openmp; do
                    bin=build/bench/bench_embed
                    [ "$b" = openmp ] && bin="$base/bench/bench_embed"
                    echo "round $r $cond $name threads $t $b" >&2
                    "$bin" --model "$model" --inputs "data/bench/$inputs.txt" --batch "$batch" --max-len "$maxlen" \
                        --threads "$t" --repeats "$repeats" --warmup "$warmup" |
                        sed "s/^{/{\"round\":$r,\"cond\":\"$cond\",\"load1\":$load,\"build\":\"$b\",\"config\":\"$name\",/" >> "$out"
                done
                if [ -x "$ort_py" ]; then
                    echo "round $r $cond $name threads $t onnxruntime" >&2
                    "$ort_py" bench/ort/ort_bench.py "$ort_model" --threads "$t" --batch "$batch" --inputs "$inputs" \
                        --repeats "$repeats" --warmup "$warmup" --json 2>/dev/null | tail -1 |
                        sed "s/^{/{\"round\":$r,\"cond\":\"$cond\",\"load1\":$load,\"build\":\"onnxruntime\",\"config\":\"$name\",/" >> "$out"
                fi
            done
        done
        stop_hogs
    done
done
echo "wrote $out" >&2
