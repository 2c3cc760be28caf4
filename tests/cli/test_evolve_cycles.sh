#!/usr/bin/env bash
# test_evolve_cycles.sh — iterated evolution (issue 13) end to end on the real model, small samples:
#   * cycle 1: 300 restaurant lines as the served traffic (20% held out by the cycle), candidates plan-10,
#     plan-20 and the deeper plan-l4 (6 -> 4 layers), 4-bit embedding rows; gates on the held-out traffic
#     (cosine >= 0.96, recall@10 against the passages >= 0.5), STS-B and bytes, no latency gate (too noisy to
#     decide a selection on a loaded machine). Asserts WHICH candidate is selected: plan-20, the smallest
#     that passes (plan-10 passes too, but is bigger; plan-l4 is smaller but fails the traffic cosine without
#     distillation). The split is disjoint and complete; the gates name the data they used; the student keeps
#     its F32 master;
#   * `seslm plan` on the INT8 student without its master (the exit-139 crash of issue 13): exit 0;
#   * cycle 2 on the selected student (its own telemetry): runs end to end (exit 0 or 1), plans from the
#     student's master, validates against the parent AND the root model, and the new student's lineage shows
#     two generations descending from the root.
#   bash tests/cli/test_evolve_cycles.sh <path to seslm> <model dir> <repo root>
. "$(dirname "$0")/lib.sh"
cli_test_init test_evolve_cycles "$@"

head -300 "$ROOT/data/traffic/restaurant8k_600.txt" >"$TMP/traffic.txt"
"$SESLM" record --model "$MODEL" --input "$TMP/traffic.txt" --out "$TMP/tel" --threads 2 --node t >/dev/null 2>"$TMP/rec.err" ||
    fail "record: $(head -c 300 "$TMP/rec.err")"
# the small sandbox data (tests/cli/validate_small.yaml) with the traffic samples and this test's gates
sed "s|@ROOT@|$ROOT|g" "$ROOT/tests/cli/validate_small.yaml" | awk '/^gates:/ { exit } { print }' |
    sed 's/^  queries: 20.*/  queries: 20\n  traffic: 60\n  traffic_queries: 20/' >"$TMP/gates.yaml"
cat >>"$TMP/gates.yaml" <<'YAML'
gates:
  weight_bytes:
    max_ratio: 0.70
  stsb_spearman:
    max_drop: 0.05
  traffic_cosine_mean:
    min: 0.96
  traffic_recall_agreement:
    min: 0.5
YAML
grep -q '^  traffic: 60' "$TMP/gates.yaml" || fail "could not add the traffic samples to the test's gates"
policy() { # $1 model, $2 telemetry, $3 out, $4 candidates, $5 layer candidates
    cat <<YAML
version: 1
targets: [0.10, 0.20]
drop_layers: [1, 2]
cap: 0.40
protected_layers: [first, last]
min_heads: 4
min_ffn: 384
score:
  method: activation
  calib_lines: 16
evolve:
  model: $1
  telemetry: $2
  out: $3
  calibration: $TMP/traffic.txt
  calibration_lines: 300
  candidates: $4
  layer_candidates: $5
  embeddings: int4
  exact_rows: 200
  gates: $TMP/gates.yaml
  threads: 2
YAML
}

# ---- cycle 1 -------------------------------------------------------------------------------------
ok
policy "$MODEL" "$TMP/tel" "$TMP/run1" "[0.10, 0.20]" "[4, 3]" >"$TMP/evolve1.yaml"
timeout 900 "$SESLM" evolve --config "$TMP/evolve1.yaml" >"$TMP/run1.out" 2>"$TMP/run1.err"
rc=$?
[ $rc -eq 0 ] || fail "cycle 1: exit $rc: $(tail -c 800 "$TMP/run1.err")"
grep -q "plan-l3: no such plan" "$TMP/run1.err" || fail "cycle 1: plan-l3 (over the cap on 6 layers) was not reported missing"
python3 - "$TMP/run1" "$TMP/traffic.txt" <<'PY' || fail "cycle 1: verdict / split / report"
import json, os, sys
run, traffic = sys.argv[1], sys.argv[2]
bad = []
v = json.load(open(run + "/verdict.json"))
names = [c["candidate"] for c in v["candidates"]]
if names != ["plan-10", "plan-20", "plan-l4"]:
    bad.append("candidates %s" % names)
by = {c["candidate"]: c for c in v["candidates"]}
if v["selected"] != "plan-20":
    bad.append("selected %s, expected plan-20 (the smallest passing); %s" % (
        v["selected"], [(c["candidate"], c["pass"], c.get("gates_failed")) for c in v["candidates"]]))
if not (by["plan-10"]["pass"] and by["plan-20"]["pass"] and not by["plan-l4"]["pass"]):
    bad.append("pass flags %s" % [(n, by[n]["pass"]) for n in names])
if not any("traffic_cosine_mean" in g for g in by["plan-l4"].get("gates_failed", [])):
    bad.append("plan-l4 did not fail on the held-out traffic cosine: %s" % by["plan-l4"].get("gates_failed"))
wb = lambda n: by[n]["weight_bytes"]["candidate"]
if not wb("plan-l4") < wb("plan-20") < wb("plan-10"):
    bad.append("bytes not ordered: %s" % [wb(n) for n in names])
# the split: disjoint, complete, every 5th line held out
lines = [l for l in open(traffic).read().split("\n") if l]
cal = [l for l in open(run + "/00-split/calibration.txt").read().split("\n") if l]
held = [l for l in open(run + "/00-split/heldout.txt").read().split("\n") if l]
if len(held) != len(lines) // 5 or len(cal) + len(held) != len(lines) or sorted(cal + held) != sorted(lines):
    bad.append("split %d + %d of %d lines" % (len(cal), len(held), len(lines)))
if held and held[0] != lines[4]:
    bad.append("the first held-out line is not line 5")
# which data each gate used
pv = json.load(open(run + "/05-validate/plan-20/verdict.json"))
g = {x["metric"]: x for x in pv["gates"]}
if "00-split/heldout.txt" not in g["traffic_cosine_mean"]["data"] or "stsb" not in g["stsb_spearman"]["data"]:
    bad.append("gate data: %s / %s" % (g["traffic_cosine_mean"]["data"], g["stsb_spearman"]["data"]))
if "no KB configured" not in g["traffic_recall_agreement"]["data"]:
    bad.append("traffic recall data: %s" % g["traffic_recall_agreement"]["data"])
if "heldout.txt" not in open(run + "/05-validate/plan-20/report.md").read():
    bad.append("report.md does not name the held-out traffic")
# the student: INT8 + 4-bit rows, with its F32 master
cfg = json.load(open(run + "/04-recompile/plan-20/config.json"))
if cfg["seslm_quantization"]["word_embeddings"] != "int4-per-row+exact-frequent-rows" or "seslm_master" not in cfg:
    bad.append("student config %s" % {k: cfg.get(k) for k in ("seslm_quantization", "seslm_master")})
if not os.path.isfile(run + "/04-recompile/plan-20/master/model.safetensors"):
    bad.append("no master/")
if cfg["seslm_lineage"]["generation"] != 1:
    bad.append("generation %s" % cfg["seslm_lineage"]["generation"])
l4 = json.load(open(run + "/04-recompile/plan-l4/config.json"))
if l4["num_hidden_layers"] != 4 or len(l4["seslm_layers"]) != 4 or len(l4["seslm_lineage"]["layers_removed"]) != 2:
    bad.append("plan-l4 student: %d layers" % l4["num_hidden_layers"])
for x in bad:
    print("  " + x, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
STUDENT="$TMP/run1/04-recompile/plan-20"

# ---- plan on an INT8 student without its master (issue 13: exit 139) ------------------------------
ok
"$SESLM" record --model "$STUDENT" --input "$TMP/traffic.txt" --out "$TMP/tel2" --threads 2 --node t >/dev/null 2>"$TMP/rec2.err" ||
    fail "record on the student: $(head -c 300 "$TMP/rec2.err")"
cp -r "$STUDENT" "$TMP/nomaster" && rm -rf "$TMP/nomaster/master"
# a student written before masters existed: its SHA256SUMS never listed master/ (the integrity check of
# every load path would rightly refuse a directory whose listed files are gone)
[ -f "$TMP/nomaster/SHA256SUMS" ] && sed -i '/  master\//d' "$TMP/nomaster/SHA256SUMS"
"$SESLM" plan --model "$TMP/nomaster" --telemetry "$TMP/tel2" --config "$TMP/evolve1.yaml" --calib "$TMP/traffic.txt" \
    --out "$TMP/plan-nm" --threads 2 >"$TMP/plan-nm.out" 2>"$TMP/plan-nm.err"
rc=$?
[ $rc -eq 0 ] || fail "plan on an INT8 student without master: exit $rc: $(tail -c 400 "$TMP/plan-nm.err")"
grep -q "int8 widened to f32" "$TMP/plan-nm.err" || fail "plan did not say it widened the INT8 student"
[ -s "$TMP/plan-nm/plan-10.json" ] || fail "no plan-10 for the INT8 student"

# ---- cycle 2 on the selected student ---------------------------------------------------------------
ok
policy "$STUDENT" "$TMP/tel2" "$TMP/run2" "[0.10]" "[]" >"$TMP/evolve2.yaml"
timeout 900 "$SESLM" evolve --config "$TMP/evolve2.yaml" >"$TMP/run2.out" 2>"$TMP/run2.err"
rc=$?
[ $rc -le 1 ] || fail "cycle 2: exit $rc: $(tail -c 800 "$TMP/run2.err")"
grep -q "validated against both" "$TMP/run2.err" || fail "cycle 2 did not find the root model"
for f in stages/03-plan.json stages/05-validate-plan-10.json stages/06-validate-root-plan-10.json \
    05-validate/plan-10/verdict.json 06-validate-root/plan-10/verdict.json verdict.json; do
    [ -s "$TMP/run2/$f" ] || fail "cycle 2: no $f"
done
python3 - "$TMP/run2" "$MODEL" "$STUDENT" "$rc" <<'PY' || fail "cycle 2: lineage / root validation"
import json, os, sys
run, model, student, rc = sys.argv[1], os.path.realpath(sys.argv[2]), os.path.realpath(sys.argv[3]), int(sys.argv[4])
bad = []
v = json.load(open(run + "/verdict.json"))
if os.path.realpath(v["root"]) != model:
    bad.append("root %s" % v["root"])
c = v["candidates"][0]
if "pass_vs_root" not in c or c["pass"] != (c["pass_vs_parent"] and c["pass_vs_root"]) or (rc == 0) != c["pass"]:
    bad.append("candidate %s with exit %d" % (c, rc))
rv = json.load(open(run + "/06-validate-root/plan-10/verdict.json"))
if os.path.realpath(rv["parent"]["dir"]) != model:
    bad.append("root verdict's parent %s" % rv["parent"]["dir"])
lin = json.load(open(run + "/04-recompile/plan-10/config.json"))["seslm_lineage"]
if lin["generation"] != 2 or lin["parent"]["generation"] != 1 or "parent" in lin["parent"]:
    bad.append("generations: %s / %s" % (lin.get("generation"), lin.get("parent", {}).get("generation")))
if os.path.realpath(lin["root_dir"]) != model or os.path.realpath(lin["parent"]["root_dir"]) != model:
    bad.append("root_dir %s" % lin["root_dir"])
if os.path.realpath(lin["parent_dir"]) != student or lin["parent_weights"] != "f32 master":
    bad.append("parent %s (%s)" % (lin["parent_dir"], lin["parent_weights"]))
if lin["root_weights_sha256"] != lin["parent"]["parent_weights_sha256"]:
    bad.append("root sha")
for x in bad:
    print("  " + x, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
grep -q "plan: .*(f32 master)" "$TMP/run2.err" || fail "cycle 2 did not plan from the student's F32 master"

cli_test_done
