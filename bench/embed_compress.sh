#!/usr/bin/env bash
# embed_compress.sh — issue 13's embedding compression below 4 bits, measured (bench/RESULTS.md section 15):
#   A. the embedding table alone: the parent with nothing pruned and F32 linear weights, its word table
#      4-bit (exact rows F32 / INT8, positions F32 / INT8) or with product-quantized rare rows (pq8 / pq4);
#   B. the students of the default cycle's plans (plan-20/30/40 and the 4-layer plan-l4 from `seslm plan`
#      on the main job's traffic, as bench/evolve_cycles.sh builds them: least-squares reconstruction on the
#      calibration sample, INT8 linear weights), before (4-bit rows, exact rows and positions F32) and after
#      (the new default: configs/evolve.yaml evolve.embeddings); the same recompile, only the word table differs.
# Quality: bench/embed_compress.py (held-out restaurant cosine, STS-B sentences cosine, STS-B dev Spearman).
#
#   bench/embed_compress.sh OUT [A|B|AB]      (from the repository root)
set -eu
OUT=${1:?usage: bench/embed_compress.sh OUT [A|B|AB]}
PARTS=${2:-AB}
SESLM=${SESLM:-build/seslm}
MODEL=${MODEL:-models/all-MiniLM-L6-v2}
THREADS=${THREADS:-2}
AFTER=${AFTER:-pq8}
mkdir -p "$OUT"
cat data/traffic/restaurant8k_600.txt data/traffic/wiki_600.txt >"$OUT/served.txt"
# the cycle's calibration part: every 5th line held out (evolve.heldout_fraction 0.2)
awk 'NR % 5 != 0' "$OUT/served.txt" >"$OUT/calib.txt"
[ -d "$OUT/tel" ] || "$SESLM" record --model "$MODEL" --input "$OUT/served.txt" --out "$OUT/tel" --threads "$THREADS" --node bench >/dev/null
empty_plan() { # $1 layers -> a plan that removes nothing
    python3 -c 'import json,sys; n=int(sys.argv[1]); print(json.dumps({"format":"seslm-plan","version":1,"method":"none","layers":[{"layer":l} for l in range(n)]}))' "$1"
}
rc() { # $1 out dir, rest: recompile options
    local o=$1
    shift
    [ -d "$o" ] || "$SESLM" recompile --telemetry "$OUT/tel" --exact-rows 1000 --threads "$THREADS" --out "$o" "$@" >"$o.json" 2>"$o.err" ||
        { echo "recompile $o failed: $(tail -c 400 "$o.err")" >&2; exit 1; }
}
L=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["num_hidden_layers"])' "$MODEL/config.json")
empty_plan "$L" >"$OUT/empty.json"
MODELS=()
if [[ $PARTS == *A* ]]; then
    base=(--model "$MODEL" --plan "$OUT/empty.json" --quantize none --no-master)
    rc "$OUT/A-int4" "${base[@]}" --embeddings int4 --exact-dtype f32 --position-dtype f32
    rc "$OUT/A-int4-e8" "${base[@]}" --embeddings int4 --exact-dtype int8 --position-dtype f32
    rc "$OUT/A-int4-e8-p8" "${base[@]}" --embeddings int4 --exact-dtype int8 --position-dtype int8
    rc "$OUT/A-pq4" "${base[@]}" --embeddings pq4 --exact-dtype int8 --position-dtype int8
    rc "$OUT/A-pq8" "${base[@]}" --embeddings pq8 --exact-dtype int8 --position-dtype int8
    for v in int4 int4-e8 int4-e8-p8 pq4 pq8; do MODELS+=("A-$v=$OUT/A-$v"); done
fi
if [[ $PARTS == *B* ]]; then
    [ -d "$OUT/plans" ] || "$SESLM" plan --model "$MODEL" --telemetry "$OUT/tel" --config configs/evolve.yaml --calib "$OUT/calib.txt" \
        --out "$OUT/plans" --threads "$THREADS" --quiet >/dev/null
    for p in plan-20 plan-30 plan-40 plan-l4; do
        rc "$OUT/B-$p-before" --model "$MODEL" --plan "$OUT/plans/$p.json" --calibration "$OUT/calib.txt" --calibration-lines 1200 \
            --quantize int8 --embeddings int4 --exact-dtype f32 --position-dtype f32
        rc "$OUT/B-$p-after" --model "$MODEL" --plan "$OUT/plans/$p.json" --calibration "$OUT/calib.txt" --calibration-lines 1200 \
            --quantize int8 --embeddings "$AFTER" --no-master
        MODELS+=("B-$p-before=$OUT/B-$p-before" "B-$p-after=$OUT/B-$p-after")
    done
fi
python3 bench/embed_compress.py --seslm "$SESLM" --parent "$MODEL" --threads "$THREADS" --json "$OUT/results.json" "${MODELS[@]}"
