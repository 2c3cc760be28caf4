#!/usr/bin/env bash
# serve_load.sh — serving throughput under concurrent clients: `seslm serve` beside ONNX Runtime behind a
# minimal HTTP server (bench/ort/ort_server.py), same machine, same cores, same run (issue 19 §3).
#
#   bench/serve_load.sh [--rounds R] [--threads N] [--out FILE] [--serve-args "..."] [--seslm BIN]
#
# Starts both servers on loopback (ports 18431 / 18432; stopped by PID at exit), then per round and per
# concurrency (1, 8, 64 clients) runs build/bench/serve_load against each, alternating which goes first.
# Requests: one short real sentence each (data/bench/short.txt), a fresh connection per request. Bounded:
# 200 / 400 / 640 requests per run. JSON lines to --out (default bench/out/serve_load.jsonl).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rounds=2 threads=2 out=bench/out/serve_load.jsonl serve_args="" seslm=build/seslm
while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --serve-args) serve_args="$2"; shift 2 ;;
    --seslm) seslm="$2"; shift 2 ;;
    -h|--help) sed -n 2,11p "$0"; exit 0 ;;
    *) echo "serve_load.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
model=models/all-MiniLM-L6-v2
ort_model=${ORT_MODEL_DIR:-$model}
[ -x build/bench/serve_load ] && [ -x "$seslm" ] || { echo "serve_load.sh: build first (cmake --build build)" >&2; exit 1; }
[ -x bench/ort/.venv/bin/python ] || { echo "serve_load.sh: run bench/ort/setup.sh first" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
: > "$out"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
# shellcheck disable=SC2086
"$seslm" serve --model "$model" --port 18431 --threads "$threads" $serve_args 2>/tmp/serve_load_seslm.log &
pids+=($!)
bench/ort/.venv/bin/python bench/ort/ort_server.py "$ort_model" --port 18432 --threads "$threads" 2>/tmp/serve_load_ort.log &
pids+=($!)
for port in 18431 18432; do
    for _ in $(seq 1 120); do
        curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
        sleep 0.5
    done
done
for r in $(seq 1 "$rounds"); do
    for spec in "1 200" "8 400" "64 640"; do
        read -r clients total <<<"$spec"
        order="seslm onnxruntime"
        [ $(( (r + clients) % 2 )) = 1 ] && order="onnxruntime seslm"
        for who in $order; do
            port=18431
            [ "$who" = onnxruntime ] && port=18432
            load=$(cut -d' ' -f1 /proc/loadavg)
            echo "round $r: $who, $clients clients" >&2
            build/bench/serve_load --port "$port" --clients "$clients" --total "$total" --warmup 2 --label "$who" |
                sed "s/^{/{\"round\":$r,\"threads\":$threads,\"load1\":$load,/" >> "$out" || true
        done
    done
done
echo "wrote $out" >&2
