#!/usr/bin/env bash
# int8_peer.sh — our INT8 models against the public tool's INT8: ONNX Runtime dynamic quantization of the
# same model (bench/ort/quantize_int8.py: INT8 weights per channel, run-time activation quantization, the
# fused graph; VNNI through MLAS), in one run, rounds interleaved:
#   ort-int8      ORT 1.32 quantize_dynamic of the fused graph
#   seslm-int8    seslm recompile with nothing pruned: INT8 weights + compressed embeddings only
#   seslm-student the plan-20 student of bench/student.sh (pruned + reconstructed + INT8), when present
# plus quality: mean cosine of each to the FP32 parent on the held-out lines of bench/student.sh.
#   bench/int8_peer.sh [--threads N] [--rounds R]     (run bench/student.sh first for the student)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
threads=2 rounds=3
while [ $# -gt 0 ]; do
    case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    -h|--help) sed -n 2,10p "$0"; exit 0 ;;
    *) echo "int8_peer.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
model=models/all-MiniLM-L6-v2
st=bench/out/student
[ -d "$st/model" ] || { echo "int8_peer.sh: run bench/student.sh first" >&2; exit 1; }
bench/ort/setup.sh "$model" >&2
out=bench/out/int8
rm -rf "$out"
mkdir -p "$out"
python3 - "$st/plans/plan-10.json" "$out/plan-0.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
for l in p["layers"]:
    l["remove_heads"], l["remove_neurons"] = [], []
json.dump(p, open(sys.argv[2], "w"))
PY
build/seslm recompile --model "$model" --plan "$out/plan-0.json" --telemetry "$st/telemetry" --out "$out/int8-only" >/dev/null
bench/ort/.venv/bin/python bench/ort/quantize_int8.py "$model" --embed "$st/heldout.txt" "$out/heldout-ort-int8.jsonl" 2>/dev/null >/dev/null
build/seslm embed --model "$out/int8-only" --input "$st/heldout.txt" --threads "$threads" >"$out/heldout-seslm-int8.jsonl"
res=$out/latency.jsonl
: >"$res"
for r in $(seq 1 "$rounds"); do
    for c in "short 1 0 300 20" "short 32 0 40 3" "long128 1 128 100 5" "long128 32 128 10 1"; do
        read -r inputs batch maxlen repeats warmup <<<"$c"
        echo "round $r/$rounds: $inputs batch $batch" >&2
        bench/ort/.venv/bin/python bench/ort/ort_bench.py "$model" --threads "$threads" --batch "$batch" --inputs "$inputs" \
            --repeats "$repeats" --warmup "$warmup" --onnx "$model/onnx/model_int8.onnx" --json |
            sed "s/^{/{\"round\":$r,\"config\":\"$inputs\",\"who\":\"ort-int8\",/" >>"$res"
        for who in seslm-int8 seslm-student; do
            m=$out/int8-only; [ $who = seslm-student ] && m=$st/model
            build/bench/bench_embed --model "$m" --inputs "data/bench/$inputs.txt" --batch "$batch" --max-len "$maxlen" \
                --threads "$threads" --repeats "$repeats" --warmup "$warmup" |
                sed "s/^{/{\"round\":$r,\"config\":\"$inputs\",\"who\":\"$who\",/" >>"$res"
        done
    done
done
python3 - "$out" "$st" "$model" <<'PY'
import json, math, os, statistics, sys
from collections import defaultdict
out, st, model = sys.argv[1:4]
def cos(a, b):
    A = [json.loads(x)["embedding"] for x in open(a)]
    B = [json.loads(x)["embedding"] for x in open(b)]
    c = [sum(x * y for x, y in zip(u, v)) / math.sqrt(sum(x * x for x in u) * sum(y * y for y in v)) for u, v in zip(A, B)]
    return sum(c) / len(c), sorted(c)[len(c) // 20]
par = st + "/heldout-parent.jsonl"
q = {"ort-int8": cos(par, out + "/heldout-ort-int8.jsonl"), "seslm-int8": cos(par, out + "/heldout-seslm-int8.jsonl"),
     "seslm-student": cos(par, st + "/heldout-student.jsonl")}
size = {"ort-int8": os.path.getsize(model + "/onnx/model_int8.onnx"),
        "seslm-int8": os.path.getsize(out + "/int8-only/model.safetensors"),
        "seslm-student": os.path.getsize(st + "/model/model.safetensors")}
lat = defaultdict(lambda: defaultdict(list))
for line in open(out + "/latency.jsonl"):
    d = json.loads(line)
    lat[(d["config"], d["batch"])][d["who"]].append(d["p50_ms"])
who = ["ort-int8", "seslm-int8", "seslm-student"]
print("| model | file bytes | mean cos to FP32 parent (held-out) | 5th pct |")
print("|---|---|---|---|")
for w in who:
    print("| %s | %d | %.4f | %.4f |" % (w, size[w], q[w][0], q[w][1]))
print()
print("| inputs | batch | ort-int8 p50 ms | seslm-int8 p50 ms | seslm-student p50 ms | ort-int8 / seslm-int8 | ort-int8 / seslm-student |")
print("|---|---|---|---|---|---|---|")
for (cfg, b), d in sorted(lat.items(), key=lambda kv: (kv[0][0] != "short", kv[0][1])):
    m = {w: statistics.median(d[w]) for w in who}
    print("| %s | %d | %.3f (%.3f..%.3f) | %.3f (%.3f..%.3f) | %.3f (%.3f..%.3f) | **%.2fx** | **%.2fx** |" % (
        cfg, b, m["ort-int8"], min(d["ort-int8"]), max(d["ort-int8"]), m["seslm-int8"], min(d["seslm-int8"]),
        max(d["seslm-int8"]), m["seslm-student"], min(d["seslm-student"]), max(d["seslm-student"]),
        m["ort-int8"] / m["seslm-int8"], m["ort-int8"] / m["seslm-student"]))
PY
