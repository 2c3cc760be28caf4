#!/usr/bin/env bash
# test_distill.sh — `seslm distill` end to end on the real model:
#   * usage errors exit 2 (no arguments, unknown option, bad --steps / --loss / --device);
#   * bad input exits 1 with a clear message: missing student, an INT8 student (refused: quantize after
#     distilling), an empty calibration file, an output directory that already holds a model;
#   * a real short run on a pruned FP32 student (heads and neurons cut from 4 layers by a hand-written
#     plan, sliced by `seslm recompile --quantize none --embeddings f32`): exit 0, the held-out cosine
#     to the parent improves, the output loads and embeds, its lineage records the distillation;
#   * --time-budget: the steps are cut to fit and the run ends on time with a complete model;
#   * kill -9 during a run (after its first checkpoint), then the same command again: it resumes, and
#     the final weights are byte-identical to an uninterrupted run's.
#
#   bash tests/cli/test_distill.sh <path to seslm> <model dir> <repo root>
set -u

. "$(dirname "$0")/lib.sh"
cli_test_init test_distill "$@"
TRAFFIC="$ROOT/data/traffic"
py() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

# ---- a pruned student -----------------------------------------------------------------------------
python3 - "$TMP/plan.json" <<'PY'
import json, sys
layers = []
for l in range(6):
    pruned = 1 <= l <= 4
    layers.append({"layer": l,
                   "remove_heads": list(range(2, 2 + 5)) if pruned else [],
                   "remove_neurons": list(range(0, 1536, 3))[:600] if pruned else []})
json.dump({"format": "seslm-plan", "version": 1, "method": "test", "target": 0.3, "layers": layers}, open(sys.argv[1], "w"))
PY
timeout 900 "$SESLM" recompile --model "$MODEL" --plan "$TMP/plan.json" --out "$TMP/student" --quantize none \
    --embeddings f32 >/dev/null 2>"$TMP/rc.err" || { echo "recompile failed: $(cat "$TMP/rc.err")" >&2; exit 1; }
timeout 900 "$SESLM" recompile --model "$MODEL" --plan "$TMP/plan.json" --out "$TMP/student-int8" \
    >/dev/null 2>"$TMP/rc.err" || { echo "recompile int8 failed: $(cat "$TMP/rc.err")" >&2; exit 1; }
paste -d '\n' "$TRAFFIC/restaurant8k_600.txt" "$TRAFFIC/clinc150_600.txt" | awk 'NF && n++ < 240' >"$TMP/cal.txt"
: >"$TMP/empty.txt"

# ---- usage and bad input --------------------------------------------------------------------------
expect 0 "usage: seslm distill" "--help" -- distill --help
expect 2 "required" "no arguments" -- distill
expect 2 "unknown option" "unknown option" -- distill --student "$TMP/student" --calibration "$TMP/cal.txt" --out "$TMP/o" --frobnicate
expect 2 "--steps" "steps 0" -- distill --student "$TMP/student" --calibration "$TMP/cal.txt" --out "$TMP/o" --steps 0
expect 2 "--loss" "bad loss weights" -- distill --student "$TMP/student" --calibration "$TMP/cal.txt" --out "$TMP/o" --loss 1,2
expect 2 "--augment" "augment above 1" -- distill --student "$TMP/student" --calibration "$TMP/cal.txt" --out "$TMP/o" --augment 1.5
expect 2 "--int8-aware" "int8-aware above 1" -- distill --student "$TMP/student" --calibration "$TMP/cal.txt" --out "$TMP/o" --int8-aware 1.5
expect 2 "--device" "bad device" -- distill --student "$TMP/student" --calibration "$TMP/cal.txt" --out "$TMP/o" --device tpu
expect 1 "student" "missing student" -- distill --parent "$MODEL" --student "$TMP/nope" --calibration "$TMP/cal.txt" --out "$TMP/o"
expect 1 "INT8.*(afterwards|after distilling)" "INT8 student" -- distill --parent "$MODEL" --student "$TMP/student-int8" --calibration "$TMP/cal.txt" --out "$TMP/o"
expect 1 "no non-empty lines|usable sentences|no line with text" "empty calibration" -- distill --parent "$MODEL" --student "$TMP/student" --calibration "$TMP/empty.txt" --out "$TMP/o"
expect 1 "cannot|No such" "missing calibration" -- distill --parent "$MODEL" --student "$TMP/student" --calibration "$TMP/none.txt" --out "$TMP/o"
expect 1 "holds a model" "existing output model" -- distill --parent "$MODEL" --student "$TMP/student" --calibration "$TMP/cal.txt" --out "$TMP/student"
[ ! -e "$TMP/o" ] || fail "a refused run left $TMP/o behind"
ok

# ---- a real short run -----------------------------------------------------------------------------
run_args=(distill --parent "$MODEL" --student "$TMP/student" --calibration "$TMP/cal.txt" --steps 30 --batch 8
          --lr 3e-4 --threads 2 --holdout 0.2 --max-tokens 32 --time-budget 0)
ok
SESLM_PROGRESS_SECONDS=1 timeout 900 "$SESLM" "${run_args[@]}" --out "$TMP/d1" >"$TMP/d1.json" 2>"$TMP/d1.err" ||
    fail "distill run: exit $? ($(tail -c 400 "$TMP/d1.err"))"
if [ -s "$TMP/d1.json" ]; then
    before=$(py "$TMP/d1.json" 'd["holdout_cos_before"]')
    after=$(py "$TMP/d1.json" 'd["holdout_cos_after"]')
    echo "held-out cosine to the parent: $before -> $after"
    ok
    python3 -c "import sys; b, a = map(float, sys.argv[1:]); sys.exit(0 if a > b + 0.002 else 1)" "$before" "$after" ||
        fail "distillation did not improve the held-out cosine ($before -> $after)"
    ok
    # the peak learning rate is --lr scaled by the starting gap (default --lr-gap 0.05), in [0.1, 1] x --lr
    lrp=$(py "$TMP/d1.json" 'd["lr_peak"]')
    python3 -c "import sys; b, p = map(float, sys.argv[1:]); f = min(1, max(0.1, (1 - b) / 0.05)); sys.exit(0 if abs(p - 3e-4 * f) <= 1e-3 * 3e-4 * f else 1)" "$before" "$lrp" ||
        fail "peak lr $lrp is not 3e-4 scaled by the starting gap of $before"
    [ "$(py "$TMP/d1/config.json" 'd["seslm_lineage"]["distillation"]["lr"]')" = "$(py "$TMP/d1.json" 'd["lr_peak"]')" ] ||
        python3 -c "import sys; sys.exit(0 if abs(float(sys.argv[1]) - float(sys.argv[2])) < 1e-9 else 1)" \
            "$(py "$TMP/d1/config.json" 'd["seslm_lineage"]["distillation"]["lr"]')" "$lrp" || fail "lineage lr differs from lr_peak"
    ok
    # progress in a log (progress.h): plain periodic lines (here every second) with an ETA, no carriage return
    [ "$(grep -c '^distill: [0-9]*/30 steps.*ETA' "$TMP/d1.err")" -ge 2 ] || fail "no periodic progress lines with an ETA: $(head -c 600 "$TMP/d1.err")"
    ok
    if grep -q $'\r' "$TMP/d1.err"; then fail "distill wrote a carriage return into a log"; fi
    ok
    [ "$(py "$TMP/d1/config.json" 'd["seslm_lineage"]["distillation"]["steps"]')" = 30 ] ||
        fail "config.json lineage lacks the distillation"
    ok
    [ "$(py "$TMP/d1/config.json" 'd["seslm_lineage"]["distillation"]["augment"]')" = 0.5 ] ||
        fail "config.json lineage lacks the augmentation share (default 0.5)"
    ok
    [ ! -e "$TMP/d1/.ckpt" ] || fail "the spent checkpoint was not removed"
    ok
    timeout 60 "$SESLM" embed --model "$TMP/d1" "a table for two" >"$TMP/emb.json" 2>"$TMP/emb.err" &&
        [ "$(py "$TMP/emb.json" 'len(d["embedding"])')" = 384 ] || fail "the distilled student does not embed"
fi

# ---- augmented views change what is trained (same seed, --augment 0: other weights; both deterministic)
ok
timeout 900 "$SESLM" "${run_args[@]}" --steps 6 --holdout 0 --augment 0 --quiet --out "$TMP/na" >/dev/null 2>"$TMP/na.err" ||
    fail "--augment 0 run: exit $? ($(tail -c 300 "$TMP/na.err"))"
timeout 900 "$SESLM" "${run_args[@]}" --steps 6 --holdout 0 --augment 1 --general "$ROOT/data/general/wiki_general_4000.txt" --quiet \
    --out "$TMP/a1" >/dev/null 2>"$TMP/a1.err" || fail "--augment 1 --general run: exit $? ($(tail -c 300 "$TMP/a1.err"))"
timeout 900 "$SESLM" "${run_args[@]}" --steps 6 --holdout 0 --augment 1 --general "$ROOT/data/general/wiki_general_4000.txt" --quiet \
    --out "$TMP/a2" >/dev/null 2>"$TMP/a2.err" || fail "second --augment 1 run: exit $? ($(tail -c 300 "$TMP/a2.err"))"
ok
! cmp -s "$TMP/na/model.safetensors" "$TMP/a1/model.safetensors" || fail "--augment 1 trained the same weights as --augment 0"
ok
cmp -s "$TMP/a1/model.safetensors" "$TMP/a2/model.safetensors" || fail "two augmented runs with one seed differ"

# ---- the INT8-aware phase: the held-out cosine is the INT8-rounded student's (per token alone: lower than
# the F32 one of the same sentences; with each token's largest element in float, the default: another value,
# nearer the F32 one), the last steps train through the rounding (other weights), the lineage says so
ok
timeout 900 "$SESLM" "${run_args[@]}" --steps 12 --int8-aware 0.5 --act-quant token --quiet --out "$TMP/q8" >"$TMP/q8.json" 2>"$TMP/q8.err" ||
    fail "--int8-aware run: exit $? ($(tail -c 300 "$TMP/q8.err"))"
timeout 900 "$SESLM" "${run_args[@]}" --steps 1 --int8-aware 1 --quiet --out "$TMP/t1" >"$TMP/t1.json" 2>"$TMP/t1.err" ||
    fail "--int8-aware top1 run: exit $? ($(tail -c 300 "$TMP/t1.err"))"
timeout 900 "$SESLM" "${run_args[@]}" --steps 12 --quiet --out "$TMP/f32" >"$TMP/f32.json" 2>"$TMP/f32.err" ||
    fail "12-step F32 run: exit $? ($(tail -c 300 "$TMP/f32.err"))"
ok
if [ -s "$TMP/q8.json" ] && [ -s "$TMP/f32.json" ]; then
    qb=$(py "$TMP/q8.json" 'd["holdout_cos_before"]'); fb=$(py "$TMP/f32.json" 'd["holdout_cos_before"]')
    echo "held-out cosine before, INT8-rounded vs F32: $qb vs $fb"
    python3 -c "import sys; q, f = map(float, sys.argv[1:]); sys.exit(0 if 0.5 < q < f - 1e-4 else 1)" "$qb" "$fb" ||
        fail "the INT8-aware run did not measure the INT8-rounded student ($qb vs F32 $fb)"
    tb=$(py "$TMP/t1.json" 'd["holdout_cos_before"]')
    echo "held-out cosine before, top1 INT8-rounded: $tb"
    python3 -c "import sys; q, t, f = map(float, sys.argv[1:]); sys.exit(0 if t != f and abs(t - f) < f - q else 1)" "$qb" "$tb" "$fb" ||
        fail "the top1 INT8-aware run did not measure its own rounding ($tb; per token $qb, F32 $fb)"
    ok
    [ "$(py "$TMP/q8/config.json" 'd["seslm_lineage"]["distillation"]["int8_aware"]')" = 0.5 ] ||
        fail "config.json lineage lacks the INT8-aware share"
    ok
    if [ "$(py "$TMP/q8.json" 'd["best_step"]')" -gt 6 ]; then # parameters from the INT8-aware half
        ! cmp -s "$TMP/q8/model.safetensors" "$TMP/f32/model.safetensors" || fail "the INT8-aware phase trained the same weights"
    fi
fi

# ---- a time budget: the schedule is cut to fit, the run ends on time with a complete model ---------
ok
t0=$(date +%s)
timeout 900 "$SESLM" distill --parent "$MODEL" --student "$TMP/student" --calibration "$TMP/cal.txt" --steps 100000 \
    --batch 8 --threads 2 --max-tokens 32 --time-budget 15 --quiet --out "$TMP/tb" >"$TMP/tb.json" 2>"$TMP/tb.err" ||
    fail "time-budget run: exit $? ($(tail -c 300 "$TMP/tb.err"))"
t1=$(date +%s)
ok
[ -f "$TMP/tb/model.safetensors" ] && [ "$(py "$TMP/tb.json" 'd["steps"] < 100000')" = True ] 2>/dev/null ||
    fail "time budget: no model or the steps were not cut ($(cat "$TMP/tb.json"))"
ok
# 15 s of budget (it includes the parent's targets); the held-out pass and the output come after it, and
# the machine may be shared: a loose bound that still catches a run ignoring its budget (100000 steps)
[ $((t1 - t0)) -le 150 ] || fail "time budget 15 s: the run took $((t1 - t0)) s"

# ---- kill -9 and resume: bit-identical ------------------------------------------------------------
res_args=(distill --parent "$MODEL" --student "$TMP/student" --calibration "$TMP/cal.txt" --steps 16 --batch 8
          --lr 3e-4 --threads 2 --holdout 0.2 --max-tokens 32 --checkpoint-every 4 --time-budget 0 --quiet)
ok
timeout 900 "$SESLM" "${res_args[@]}" --out "$TMP/straight" >"$TMP/s.json" 2>"$TMP/s.err" ||
    fail "uninterrupted run: exit $? ($(tail -c 300 "$TMP/s.err"))"
"$SESLM" "${res_args[@]}" --out "$TMP/killed" >/dev/null 2>"$TMP/k.err" &
PID=$!
for _ in $(seq 1 600); do
    [ -f "$TMP/killed/.ckpt/state.bin" ] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.05
done
killed=0
if kill -KILL "$PID" 2>/dev/null; then killed=1; fi
wait "$PID" 2>/dev/null
PID=
ok
[ "$killed" = 1 ] && [ -f "$TMP/killed/.ckpt/state.bin" ] && [ ! -f "$TMP/killed/model.safetensors" ] ||
    fail "could not kill the run after its first checkpoint (killed=$killed)"
ok
timeout 900 "$SESLM" "${res_args[@]}" --out "$TMP/killed" >"$TMP/r.json" 2>"$TMP/r.err" ||
    fail "resumed run: exit $? ($(tail -c 300 "$TMP/r.err"))"
ok
[ "$(py "$TMP/r.json" 'd["resumed_from"] > 0')" = True ] 2>/dev/null || fail "the second run did not resume ($(cat "$TMP/r.json"))"
ok
cmp -s "$TMP/straight/model.safetensors" "$TMP/killed/model.safetensors" ||
    fail "resumed weights differ from the uninterrupted run's"
# a checkpoint of another run is refused, not silently used or overwritten
mkdir -p "$TMP/other/.ckpt" && cp "$TMP/straight/model.safetensors" "$TMP/other/.ckpt/state.bin"
expect 1 "checkpoint" "foreign checkpoint" -- "${res_args[@]}" --out "$TMP/other"

cli_test_done
