#!/usr/bin/env bash
# evolve_cycles.sh — issue 13's benchmark: one default-policy `seslm evolve` cycle per domain, every
# candidate (plan-10/20/30/40, the 4-layer plan-l4), then a second cycle on the 4-layer student for the
# 3-layer plan-l3; with or without distillation. Quality, bytes and latency of each candidate are measured
# against its parent in the same validation run (bench/evolve_gates.yaml: configs/gates.yaml's data and
# gates, smaller samples so a cycle fits on a shared 2-core machine). Writes OUT/<domain>-<mode>/ and
# prints the table rows of bench/RESULTS.md section 12 (bench/evolve_table.py).
#
#   bench/evolve_cycles.sh OUT [main|snips] [nodistill|distill STEPS]     (from the repository root)
#
# Environment: CANDIDATES (default "[0.10, 0.20, 0.30, 0.40]"), LAYERS (default "[4]"), DISTILL_TIME (seconds
# per candidate, default 0: exactly STEPS steps, so quality does not depend on the machine's load; the
# default policy's 170 s gives ~1,000 steps on an idle 2-core machine), DISTILL_GENERAL (default the
# policy's data/general/wiki_general_4000.txt), DISTILL_INT8_AWARE (default the policy's 0.3), EMBEDDINGS (default
# the policy's pq4).
set -eu
OUT=${1:?usage: bench/evolve_cycles.sh OUT [main|snips] [nodistill|distill STEPS]}
DOMAIN=${2:-main}
MODE=${3:-nodistill}
STEPS=${4:-0}
SESLM=${SESLM:-build/seslm}
MODEL=${MODEL:-models/all-MiniLM-L6-v2}
THREADS=${THREADS:-2}
D="$OUT/$DOMAIN-$MODE"
mkdir -p "$D"
case "$DOMAIN" in
main) # the README's job: restaurant queries + Wikipedia passages (the KB's kind of text) served
    cat data/traffic/restaurant8k_600.txt data/traffic/wiki_600.txt >"$D/calib.txt"
    cp "$D/calib.txt" "$D/served.txt"
    FEEDBACK="" ;;
snips) # a node serving SNIPS intents: 4000 recorded, 1200 more as the calibration sample, 800 labelled feedback
    cp data/traffic/snips_traffic_4000.txt "$D/served.txt"
    cp data/traffic/snips_calib_1200.txt "$D/calib.txt"
    FEEDBACK=data/traffic/snips_feedback_800.tsv ;;
*) echo "unknown domain $DOMAIN" >&2; exit 2 ;;
esac
[ -d "$D/tel" ] || "$SESLM" record --model "$MODEL" --input "$D/served.txt" --out "$D/tel" --threads "$THREADS" --node bench >/dev/null
policy() { # $1 model $2 telemetry $3 out $4 candidates $5 layer candidates
    sed -n '/^evolve:/q;p' configs/evolve.yaml
    cat <<YAML
evolve:
  model: $1
  telemetry: $2
  out: $3
  calibration: $D/calib.txt
  calibration_lines: 1200
  heldout_fraction: 0.2
  candidates: $4
  layer_candidates: $5
  quantize: int8
  embeddings: ${EMBEDDINGS:-pq4}
  exact_rows: 1000
  gates: bench/evolve_gates.yaml
  feedback: "$FEEDBACK"
  threads: $THREADS
  select: weight_bytes
  distill:
    steps: $STEPS
    batch: 32
    time_s: ${DISTILL_TIME:-0}
    general: ${DISTILL_GENERAL:-data/general/wiki_general_4000.txt}
    int8_aware: ${DISTILL_INT8_AWARE:-0.3}
YAML
}
policy "$MODEL" "$D/tel" "$D/cycle1" "${CANDIDATES:-[0.10, 0.20, 0.30, 0.40]}" "${LAYERS:-[4]}" >"$D/evolve1.yaml"
/usr/bin/time -f "%e s wall" -o "$D/cycle1.time" "$SESLM" evolve --config "$D/evolve1.yaml" >"$D/cycle1.out" 2>"$D/cycle1.err" || true
S4="$D/cycle1/04-recompile/plan-l4"
if [ -d "$S4" ]; then # the next cycle from the 4-layer student: 4 -> 3 layers
    [ -d "$D/tel4" ] || "$SESLM" record --model "$S4" --input "$D/served.txt" --out "$D/tel4" --threads "$THREADS" --node bench >/dev/null
    policy "$S4" "$D/tel4" "$D/cycle2" "[0.10]" "[3]" >"$D/evolve2.yaml"
    /usr/bin/time -f "%e s wall" -o "$D/cycle2.time" "$SESLM" evolve --config "$D/evolve2.yaml" >"$D/cycle2.out" 2>"$D/cycle2.err" || true
fi
python3 bench/evolve_table.py "$D"
