#!/usr/bin/env bash
# test_plan.sh — `seslm plan` end to end on the real model (about 30 s at --threads 1):
#   * `seslm record` 200 lines of data/bench/short.txt into a temporary directory (two dumps, which
#     `seslm plan` sums: the profile counts 200 sequences);
#   * `seslm plan` with configs/evolve.yaml (score method set to measured, 16 calibration lines) writes profile.json, scores.json and
#     >= 3 candidate plans, each valid JSON, within the policy (<= 40% of the prunable parameters, of the
#     heads and of the neurons; the policy's protected layers untouched; >= min_heads / min_ffn per layer), with
#     the embedding id space unchanged and deviations 1 - mean cos and 1 - p5 cos in (0, 1]; one plan per
#     target of the policy, each removing floor(r * heads) heads and floor(r * neurons) neurons, its
#     removed share of the prunable parameters within 0.02 below its target r;
#   * the summary table has one row per candidate;
#   * a policy with cap 0.5 is rejected (exit 1, naming the rule); missing options exit 2.
#
#   bash tests/cli/test_plan.sh <path to seslm> <model dir> <repo root>
set -u
. "$(dirname "$0")/lib.sh"
cli_test_init test_plan "$@"

head -200 "$ROOT/data/bench/short.txt" >"$TMP/in.txt"
"$SESLM" record --model "$MODEL" --input "$TMP/in.txt" --out "$TMP/tel" --window 120 --threads 1 --node plantest >/dev/null 2>"$TMP/rec.err" ||
    fail "record: $(head -c 300 "$TMP/rec.err")"

# the shipped policy, with the measured score method (the expensive path; the activation score runs too)
sed 's/^  method: .*/  method: measured/' "$ROOT/configs/evolve.yaml" >"$TMP/evolve.yaml"
grep -q '^  method: measured' "$TMP/evolve.yaml" || fail "could not set score.method in a copy of configs/evolve.yaml"
timeout 300 "$SESLM" plan --model "$MODEL" --telemetry "$TMP/tel" --config "$TMP/evolve.yaml" \
    --calib "$ROOT/data/bench/short.txt" --calib-lines 16 --out "$TMP/out" --threads 1 >"$TMP/plan.out" 2>"$TMP/plan.err"
rc=$?
[ "$rc" -eq 0 ] || fail "plan: exit $rc: $(tail -c 500 "$TMP/plan.err")"
grep -q "calibration texts" "$TMP/plan.err" || fail "plan: no progress on stderr"
rows=$(grep -c '^plan-[0-9]' "$TMP/plan.out")
[ "$rows" -ge 3 ] || fail "plan: summary has $rows candidate rows: $(cat "$TMP/plan.out")"

python3 - "$TMP/out" "$TMP/evolve.yaml" <<'PY' || fail "plan files do not satisfy the policy"
import glob, json, math, sys
out, cfg_path = sys.argv[1], sys.argv[2]
bad = []
prof = json.load(open(out + "/profile.json"))
if prof["sequences"] != 200:
    bad.append("profile.json: %s sequences, expected 200 (two dumps summed)" % prof["sequences"])
scores = json.load(open(out + "/scores.json"))
assert "measured" in scores["methods"] and "activation" in scores["methods"], "scores.json lacks a method"
plans = sorted(glob.glob(out + "/plan-[0-9]*.json"))
# the policy's protected layers (read from the file, not restated here): indices, first, last
import re as _re
prot = None
for line in open(cfg_path):
    mp = _re.match(r"^protected_layers:\s*\[([^\]]*)\]", line)
    if mp:
        prot = set({"first": 0, "last": 5}.get(x.strip(), None) if x.strip() in ("first", "last") else int(x)
                   for x in mp.group(1).split(",") if x.strip())
if prot is None:
    bad.append("no protected_layers list in the policy")
    prot = set()
# deeper students: configs/evolve.yaml drops 1 and 2 whole layers (plan-l5, plan-l4), never a protected one
for n_kept in (5, 4):
    d = json.load(open(out + "/plan-l%d.json" % n_kept))
    drop = d["drop_layers"]
    if len(drop) != 6 - n_kept or prot & set(drop) or d["layers_after"] != n_kept:
        bad.append("plan-l%d: drop_layers %s, layers_after %s" % (n_kept, drop, d["layers_after"]))
    if not (0 < d["predicted"]["prunable_removed_ratio"] <= 0.4):
        bad.append("plan-l%d: ratio %g" % (n_kept, d["predicted"]["prunable_removed_ratio"]))
    for l in d["layers"]:
        if l.get("drop") != (l["layer"] in drop) and not (l.get("drop") is None and l["layer"] not in drop):
            bad.append("plan-l%d: layer %d drop flag" % (n_kept, l["layer"]))
if glob.glob(out + "/plan-l3.json"):
    bad.append("plan-l3 written: dropping 3 of 6 layers is over the 40% cap")
targets = []
if len(plans) < 3:
    bad.append("only %d plans" % len(plans))
for p in plans:
    d = json.load(open(p))
    L = d["layers"]
    n = len(L)
    heads = sum(len(l["remove_heads"]) for l in L)
    neurons = sum(len(l["remove_neurons"]) for l in L)
    for l in L:
        if l["layer"] in prot and (l["remove_heads"] or l["remove_neurons"]):
            bad.append("%s: protected layer %d pruned" % (p, l["layer"]))
        if 12 - len(l["remove_heads"]) < 4 or 1536 - len(l["remove_neurons"]) < 384:
            bad.append("%s: layer %d below the minimum" % (p, l["layer"]))
    if heads > 0.4 * 12 * n or neurons > 0.4 * 1536 * n:
        bad.append("%s: more than 40%% of a unit kind" % p)
    pr = d["predicted"]
    if not (0 < pr["prunable_removed_ratio"] <= 0.4):
        bad.append("%s: prunable_removed_ratio %g" % (p, pr["prunable_removed_ratio"]))
    # each plan meets its own target: floor(r * 12 n) heads and floor(r * 1536 n) neurons (docs/pruning.md),
    # so the removed share of the prunable parameters is the target less at most one head's rounding
    r = d["target"]
    if heads != math.floor(r * 12 * n + 1e-9) or neurons != math.floor(r * 1536 * n + 1e-9):
        bad.append("%s: target %g: %d heads, %d neurons (want %d, %d)" % (p, r, heads, neurons,
                   math.floor(r * 12 * n + 1e-9), math.floor(r * 1536 * n + 1e-9)))
    if not (r - 0.02 <= pr["prunable_removed_ratio"] <= r + 1e-9):
        bad.append("%s: target %g but removed ratio %g" % (p, r, pr["prunable_removed_ratio"]))
    targets.append(r)
    if not (pr["params"] < pr["params_parent"] and pr["flops_per_token"] < pr["flops_per_token_parent"]):
        bad.append("%s: predictions do not shrink" % p)
    if d["embeddings"] != {"id_space": "unchanged"}:
        bad.append("%s: embeddings changed" % p)
    m = d["measured"]
    for dev in (1 - m["mean_cos"], 1 - m["p5_cos"], m["mean_deviation"]):
        if not (0 < dev <= 1):
            bad.append("%s: deviation %g outside (0, 1]" % (p, dev))
# configs/evolve.yaml's top-level targets: one plan each (read from the file, not restated here)
want = None
for line in open(cfg_path):
    mt = _re.match(r"^targets:\s*\[([^\]]*)\]", line)
    if mt:
        want = sorted(float(x) for x in mt.group(1).split(","))
if want is None or sorted(round(t, 6) for t in targets) != [round(t, 6) for t in want]:
    bad.append("plan targets %s, configs/evolve.yaml has %s" % (sorted(targets), want))
for b in bad:
    print(b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY

# a failed plan leaves no output: not in a new --out (not even the directory), and an existing --out as it was
: >"$TMP/empty.txt"
printf '  \n\t\n\n' >"$TMP/blank.txt"
for calib in "$TMP/empty.txt" "$TMP/blank.txt" "$TMP/missing.txt"; do
    "$SESLM" plan --model "$MODEL" --telemetry "$TMP/tel" --config "$ROOT/configs/evolve.yaml" --calib "$calib" \
        --out "$TMP/o4" --threads 1 --quiet >/dev/null 2>"$TMP/c.err"
    rc=$?
    [ "$rc" -eq 1 ] || fail "plan with calibration $(basename "$calib"): exit $rc, expected 1"
    [ ! -e "$TMP/o4" ] || fail "plan with calibration $(basename "$calib") left $(ls -A "$TMP/o4")"
    [ "$calib" = "$TMP/missing.txt" ] || grep -q "no line with text" "$TMP/c.err" || fail "calibration $(basename "$calib"): $(cat "$TMP/c.err")"
    (cd "$TMP/out" && sha256sum profile.json scores.json plan-*.json) >"$TMP/before.sum"
    "$SESLM" plan --model "$MODEL" --telemetry "$TMP/tel" --config "$ROOT/configs/evolve.yaml" --calib "$calib" \
        --out "$TMP/out" --threads 1 --quiet >/dev/null 2>"$TMP/c.err"
    rc=$?
    [ "$rc" -eq 1 ] || fail "plan into an existing --out with calibration $(basename "$calib"): exit $rc"
    (cd "$TMP/out" && sha256sum --quiet -c "$TMP/before.sum") || fail "a failed plan changed the existing --out"
    ls -A "$TMP/out" | grep -q '^\.plan\.tmp' && fail "a failed plan left a temporary directory in --out"
done
# an empty (0-byte) config is an error, not the built-in defaults
: >"$TMP/empty.yaml"
"$SESLM" plan --model "$MODEL" --telemetry "$TMP/tel" --config "$TMP/empty.yaml" --calib "$TMP/in.txt" --out "$TMP/o5" \
    >/dev/null 2>"$TMP/c.err"
rc=$?
[ "$rc" -eq 1 ] && grep -q "is empty" "$TMP/c.err" || fail "0-byte config: exit $rc: $(cat "$TMP/c.err")"
[ ! -e "$TMP/o5" ] || fail "0-byte config left $TMP/o5"

# a policy above the hard cap is rejected
printf 'cap: 0.5\ntargets: [0.1]\n' >"$TMP/bad.yaml"
"$SESLM" plan --model "$MODEL" --telemetry "$TMP/tel" --config "$TMP/bad.yaml" --calib "$TMP/in.txt" --out "$TMP/o2" \
    >/dev/null 2>"$TMP/bad.err"
rc=$?
[ "$rc" -eq 1 ] || fail "cap 0.5: exit $rc, expected 1"
grep -q "hard limit" "$TMP/bad.err" || fail "cap 0.5: message lacks the rule: $(cat "$TMP/bad.err")"
"$SESLM" plan --model "$MODEL" --config "$TMP/bad.yaml" >/dev/null 2>&1
rc=$?
[ "$rc" -eq 2 ] || fail "missing options: exit $rc, expected 2"

if [ "$fails" -ne 0 ]; then
    echo "test_plan: $fails failure(s)" >&2
    exit 1
fi
echo "test_plan: ok"
