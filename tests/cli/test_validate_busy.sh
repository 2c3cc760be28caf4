#!/usr/bin/env bash
# test_validate_busy.sh — the timing gates of `seslm validate` do not flip on a busy machine (issue 14,
# finding 9). The parent against itself has a true latency ratio of 1, so on a latency-only config
#   latency_b1_p50  max_ratio 2.00  must pass,
#   latency_b32_p50 max_ratio 0.50  must fail,
# measured once on the machine as it is and once beside a CPU hog (one busy process per core, killed
# after). A run may say "inconclusive" (a busy machine cannot decide a close call) but never the wrong
# verdict, so no verdict flips between the runs; wide margins (x2) so that at least one gate is decided in
# the first run even on a machine at load 30 (the test would prove nothing otherwise); the exit status is 1
# while a gate surely fails. With 5 and 2 timed pairs (too few to bound a
# median) both gates are inconclusive: verdict "inconclusive", exit 3, JUnit <skipped>.
#
#   bash tests/cli/test_validate_busy.sh <path to seslm> <model dir> <repo root>
set -u
shopt -s extglob
. "$(dirname "$0")/lib.sh"
cli_test_init test_validate_busy "$@"
cd "$ROOT" || exit 1

{
    echo "data:"
    echo "  latency: $ROOT/data/bench/short.txt"
    echo "samples:"
    for k in stsb_pairs heldout intent_train intent_test domain domain_intent passages queries; do echo "  $k: 0"; done
    echo "latency:"
    echo "  warmup: 3"
    echo "  repeats_b1: 60"
    echo "  repeats_b32: 20"
    echo "run:"
    echo "  threads: 1"
    echo "  measure_memory: false"
    echo "gates:"
    echo "  latency_b1_p50:"
    echo "    max_ratio: 2.00"
    echo "  latency_b32_p50:"
    echo "    max_ratio: 0.50"
} >"$TMP/lat.yaml"
sed 's/repeats_b1: 60/repeats_b1: 5/; s/repeats_b32: 20/repeats_b32: 2/' "$TMP/lat.yaml" >"$TMP/edge.yaml"

run() { # run NAME CONFIG: validate the parent against itself; leaves $TMP/NAME/verdict.json, prints rc
    timeout 300 "$SESLM" validate --parent "$MODEL" --candidate "$MODEL" --config "$2" --out "$TMP/$1" \
        --quiet >/dev/null 2>"$TMP/$1.err"
    echo $?
}
verdicts() { # the gate outcomes of a run: metric=pass|fail|inconclusive ...
    python3 -c '
import json, sys
v = json.load(open(sys.argv[1]))
print(" ".join("%s=%s" % (g["metric"], "inconclusive" if g["inconclusive"] else "pass" if g["pass"] else "fail")
               for g in v["gates"]))' "$TMP/$1/verdict.json"
}

rc_q=$(run quiet "$TMP/lat.yaml")
vq=$(verdicts quiet)
ok
case "$vq" in
latency_b1_p50=pass\ latency_b32_p50=@(fail|inconclusive) | latency_b1_p50=inconclusive\ latency_b32_p50=fail) ;;
*) fail "first run: a wrong verdict, or nothing decided: $vq" ;;
esac
ok
case "$vq" in
*=fail*) [ "$rc_q" = 1 ] ;;
*) [ "$rc_q" = 3 ] ;;
esac || fail "first run: exit $rc_q for $vq: $(tail -c 300 "$TMP/quiet.err")"

# the same beside a CPU hog: one busy loop per core, bounded
hogs=()
for _ in $(seq 1 "$(nproc)"); do
    timeout 300 sh -c 'while :; do :; done' &
    hogs+=($!)
done
rc_b=$(run busy "$TMP/lat.yaml")
rc_e=$(run edge "$TMP/edge.yaml")
for h in "${hogs[@]}"; do kill "$h" 2>/dev/null; done
wait "${hogs[@]}" 2>/dev/null
vb=$(verdicts busy)
ve=$(verdicts edge)
echo "quiet: $vq (exit $rc_q); busy: $vb (exit $rc_b); 5 + 2 pairs, busy: $ve (exit $rc_e)"
ok
case "$vb" in
latency_b1_p50=@(pass|inconclusive)\ latency_b32_p50=@(fail|inconclusive)) ;;
*) fail "busy run flipped a verdict: $vb (quiet: $vq)" ;;
esac
ok
[ "$rc_b" = 1 ] || [ "$rc_b" = 3 ] || fail "busy run: exit $rc_b: $(tail -c 300 "$TMP/busy.err")"
ok
[ "$ve" = "latency_b1_p50=inconclusive latency_b32_p50=inconclusive" ] && [ "$rc_e" = 3 ] ||
    fail "5 + 2 pairs decided something: $ve (exit $rc_e, want 3)"
ok
grep -qE '"verdict":[[:space:]]*"inconclusive"' "$TMP/edge/verdict.json" && grep -q '<skipped message=' "$TMP/edge/junit.xml" &&
    grep -q '^# Validation: INCONCLUSIVE' "$TMP/edge/report.md" || fail "inconclusive outputs: $(head -c 300 "$TMP/edge/report.md")"
ok
python3 - "$TMP/busy/verdict.json" <<'PY' || fail "busy verdict.json"
import json, sys
v = json.load(open(sys.argv[1]))
bad = []
if v["verdict"] not in ("fail", "inconclusive") or v["pass"]:
    bad.append("verdict %s pass %s" % (v["verdict"], v["pass"]))
b1 = v["latency_spread_ms"]["batch1"]
for k in ("pair_ratio_median", "pair_cpu_ratio_median", "min_over_min_ratio", "parent_cpu_p50", "candidate_cpu_p50"):
    if not isinstance(b1.get(k), (int, float)) or not b1[k] > 0:
        bad.append("batch1 %s = %s" % (k, b1.get(k)))
for g in v["gates"]:
    lo, hi = g["interval"]
    if lo is not None and hi is not None and not lo <= g["observed"] <= hi:
        bad.append("%s: observed %s outside %s..%s" % (g["metric"], g["observed"], lo, hi))
for b in bad:
    print("FAIL:", b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
cli_test_done
