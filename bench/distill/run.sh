#!/usr/bin/env bash
# run.sh — bench/RESULTS.md section 12: distillation of plan-20/30/40 students and the loss comparison.
#
#   bash bench/distill/run.sh WORKDIR [STEPS]
#
# 1. telemetry of the restaurant + CLINC150 traffic, plans 20/30/40% (activation scores, the policy of
#    configs/evolve.yaml with targets 0.2/0.3/0.4), FP32 students with least-squares reconstruction on the
#    calibration sample (1,200 lines: the main job's traffic interleaved, as ci/setup.sh);
# 2. `seslm distill` of each student (STEPS steps, default 150, batch 32, lr 3e-4, default losses);
# 3. the loss combinations on the 40% student (80 steps each);
# 4. bench/distill/eval_distill.py: mean cosine to the parent on data/eval/restaurant8k_heldout.txt (never
#    calibrated or distilled on) and STS-B dev Spearman, for every student before and after.
set -euo pipefail
W=${1:?usage: run.sh WORKDIR [STEPS]}
STEPS=${2:-150}
S=./build/seslm
mkdir -p "$W"
paste -d '\n' data/traffic/restaurant8k_600.txt data/traffic/clinc150_600.txt data/traffic/wiki_600.txt |
    awk 'NF && n++ < 1200' >"$W/calibration.txt"
mkdir -p "$W/tel"
$S record --input data/traffic/restaurant8k_600.txt --out "$W/tel-r" --node r --window 300 --threads 2
$S record --input data/traffic/clinc150_600.txt --out "$W/tel-c" --node c --window 300 --threads 2
cp "$W"/tel-r/*.h5 "$W"/tel-c/*.h5 "$W/tel/"
$S ingest --telemetry "$W/tel" --out "$W/merged.h5" --model models/all-MiniLM-L6-v2 >/dev/null
sed 's/^targets: \[0.10, 0.20, 0.30\]/targets: [0.20, 0.30, 0.40]/' configs/evolve.yaml >"$W/evolve40.yaml"
$S plan --telemetry "$W/merged.h5" --config "$W/evolve40.yaml" --calib "$W/calibration.txt" --out "$W/plan" --quiet
for p in 20 30 40; do
    [ -d "$W/s$p" ] || $S recompile --plan "$W/plan/plan-$p.json" --out "$W/s$p" --calibration "$W/calibration.txt" \
        --quantize none --embeddings f32 >/dev/null
    [ -d "$W/d$p" ] || /usr/bin/time -f "%e s wall, %U s user, %S s sys" $S distill --student "$W/s$p" \
        --calibration "$W/calibration.txt" --out "$W/d$p" --steps "$STEPS" --lr 3e-4 --threads 2 --time-budget 0 \
        >"$W/d$p.json"
done
for spec in cos:1,0,0,0,0 cosmse:1,1,0,0,0 cossim:1,1,1,0,0 attn:1,1,1,1,0 hid:1,1,1,0,1; do
    n=${spec%%:*}
    [ -d "$W/x-$n" ] || $S distill --student "$W/s40" --calibration "$W/calibration.txt" --out "$W/x-$n" --steps 80 \
        --lr 3e-4 --threads 2 --loss "${spec#*:}" --time-budget 0 --quiet >"$W/x-$n.json"
done
python3 bench/distill/eval_distill.py $S models/all-MiniLM-L6-v2 data/eval/restaurant8k_heldout.txt \
    data/eval/stsb_dev.tsv models/all-MiniLM-L6-v2 "$W"/s20 "$W"/d20 "$W"/s30 "$W"/d30 "$W"/s40 "$W"/d40 "$W"/x-*
