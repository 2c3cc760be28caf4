#!/usr/bin/env bash
# test_validate.sh — `seslm validate` and ci/gate.sh end to end on the real model, with small samples
# (tests/cli/validate_small.yaml) so that each run takes seconds:
#   * the parent against itself (through ci/gate.sh): every quality gate passes with exact values
#     (cosine 1, recall agreement 1, drops 0), the weight-bytes gate fails (ratio 1.0 > 0.70), so the
#     exit status is 1 and passes through gate.sh; verdict.json, report.md and the JUnit XML (parsed
#     with xml.etree) agree with each other;
#   * a heavily pruned student (seslm plan + recompile of plan-30, no recovery), checked on the
#     embedding-agreement gates only: cosine and recall@10 fall, the cosine gate fails, exit 1;
#   * bad input: missing options / directories, a config with an unknown key (file:line), a missing
#     data file, a malformed TSV row (file:line), a model directory without weights: exit 2 with a
#     message naming the culprit, and no outputs written.
#
#   bash tests/cli/test_validate.sh <path to seslm> <model dir> <repo root>
set -u
. "$(dirname "$0")/lib.sh"
cli_test_init test_validate "$@"
cd "$ROOT" || exit 1

CFG=$TMP/small.yaml
sed "s|@ROOT@|$ROOT|g" "$ROOT/tests/cli/validate_small.yaml" >"$CFG"
# the self-validation also measures the node's labelled feedback, given as a serving node's --feedback-log writes it
# (JSON lines): 24 rows of 6 intents, every 4th a test row
snips_feedback "$TMP/fb.jsonl" jsonl
python3 - "$CFG" "$TMP/self.yaml" "$TMP/fb.jsonl" <<'PY'
import sys
s = open(sys.argv[1]).read()
s = s.replace("\ndata:\n", "\ndata:\n  feedback: %s\n" % sys.argv[3], 1)
s = s.replace("\nsamples:\n", "\nsamples:\n  feedback: 24\n  feedback_min: 8\n", 1)
open(sys.argv[2], "w").write(s)
PY

# ---- parent vs itself, through the CI gate script
timeout 300 "$ROOT/ci/gate.sh" --seslm "$SESLM" --parent "$MODEL" --candidate "$MODEL" --config "$TMP/self.yaml" \
    --out "$TMP/self" --junit "$TMP/ci/self-junit.xml" --threads 2 >"$TMP/self.md" 2>"$TMP/self.err"
rc=$?
ok
[ "$rc" -eq 1 ] || fail "self-validation: exit $rc, expected 1 (weight bytes ratio 1.0): $(tail -c 500 "$TMP/self.err")"
for f in verdict.json report.md junit.xml; do
    ok
    [ -s "$TMP/self/$f" ] || fail "self-validation wrote no $f"
done
ls "$TMP"/self/*.tmp.* >/dev/null 2>&1 && fail "temporary files left in the output directory"
cmp -s "$TMP/self/junit.xml" "$TMP/ci/self-junit.xml" || fail "gate.sh --junit is not the validation's junit.xml"
grep -q '^# Validation: FAIL' "$TMP/self.md" || fail "report on stdout: $(head -3 "$TMP/self.md")"
python3 - "$TMP/self" <<'PY' || fail "self-validation verdict"
import json, sys, xml.etree.ElementTree as ET
d = sys.argv[1]
v = json.load(open(d + "/verdict.json"))
bad = []
quality = {"cosine_mean", "domain_cosine_mean", "stsb_spearman", "clinc150_accuracy", "snips_accuracy",
           "domain_intent_accuracy", "recall_agreement"}
seen = set()
for g in v["gates"]:
    m = g["metric"]
    seen.add(m)
    if m in quality and not g["pass"]:
        bad.append("quality gate failed against itself: %s" % g["message"])
    if m == "weight_bytes" and (g["pass"] or abs(g["observed"] - 1.0) > 1e-12):
        bad.append("weight_bytes gate: %s" % g)
if not quality <= seen:
    bad.append("gates missing: %s" % (quality - seen))
ms = v["metrics"]
for m in ("cosine_mean", "cosine_p5", "domain_cosine_mean", "recall_agreement", "recall_agreement_min"):
    if not ms[m]["measured"] or abs(ms[m]["candidate"] - 1.0) > 1e-5:
        bad.append("%s against itself = %s" % (m, ms[m]))
for m in ("stsb_spearman", "clinc150_accuracy", "snips_accuracy", "domain_intent_accuracy", "feedback_intent_accuracy"):
    if not ms[m]["measured"] or ms[m]["parent"] != ms[m]["candidate"]:
        bad.append("%s differs against itself: %s" % (m, ms[m]))
# the numbers are real measurements: a real model is far better than chance here
if not ms["stsb_spearman"]["parent"] > 0.7: bad.append("STS-B Spearman %s" % ms["stsb_spearman"])
if not ms["snips_accuracy"]["parent"] > 0.8: bad.append("SNIPS accuracy %s" % ms["snips_accuracy"])
if not ms["clinc150_accuracy"]["parent"] > 0.5: bad.append("CLINC150 accuracy %s" % ms["clinc150_accuracy"])
if not ms["feedback_intent_accuracy"]["parent"] > 0.5: bad.append("feedback accuracy %s" % ms["feedback_intent_accuracy"])
for m in ("latency_b1_p50", "latency_b32_p95", "peak_rss_bytes", "weight_bytes"):
    if not ms[m]["measured"] or not ms[m]["parent"] > 0:
        bad.append("%s not measured: %s" % (m, ms[m]))
if not 20e6 < ms["peak_rss_bytes"]["parent"] < 2e9: bad.append("peak RSS %s" % ms["peak_rss_bytes"])
if not ms["latency_b32_p50"]["parent"] > ms["latency_b1_p50"]["parent"]: bad.append("batch 32 not slower than 1")
# JUnit: well-formed, one testcase per gate, failures as in the verdict
root = ET.parse(d + "/junit.xml").getroot()
cases = root.findall(".//testcase")
fails = [c for c in cases if c.find("failure") is not None]
if len(cases) != v["gates_total"] or len(fails) != v["gates_failed"] or int(root.get("failures")) != len(fails):
    bad.append("junit: %d cases / %d failures, verdict %d / %d" % (len(cases), len(fails), v["gates_total"], v["gates_failed"]))
if not any("weight_bytes" in c.get("name") for c in fails):
    bad.append("junit: the weight_bytes failure is missing")
md = open(d + "/report.md").read()
if "| **FAIL** | `weight_bytes max_ratio 0.7`" not in md or "stsb_spearman" not in md:
    bad.append("report.md lacks the gate table")
for x in bad:
    print("  " + x, file=sys.stderr)
sys.exit(1 if bad else 0)
PY

# ---- a heavily pruned student: quality gates fail
head -60 "$ROOT/data/bench/short.txt" >"$TMP/in.txt"
"$SESLM" record --model "$MODEL" --input "$TMP/in.txt" --out "$TMP/tel" --threads 2 >/dev/null 2>"$TMP/rec.err" ||
    fail "record: $(head -c 300 "$TMP/rec.err")"
timeout 120 "$SESLM" plan --model "$MODEL" --telemetry "$TMP/tel" --config "$ROOT/configs/evolve.yaml" \
    --calib "$ROOT/data/bench/short.txt" --calib-lines 8 --out "$TMP/plans" --threads 2 --quiet >/dev/null 2>"$TMP/plan.err" ||
    fail "plan: $(tail -c 300 "$TMP/plan.err")"
"$SESLM" recompile --model "$MODEL" --plan "$TMP/plans/plan-30.json" --out "$TMP/student" >/dev/null 2>"$TMP/rc.err" ||
    fail "recompile: $(head -c 300 "$TMP/rc.err")"
# only the embedding-agreement checks (the sanitizer build's forward pass is slow), but with real gates
python3 - "$CFG" "$TMP/pruned.yaml" <<'PY'
import re, sys
s = open(sys.argv[1]).read()
for k in ("stsb_pairs", "intent_train", "intent_test", "domain_intent"):
    s = re.sub(r"(\n  %s:) \d+" % k, r"\1 0", s)
s = s[:s.index("\ngates:")] + "\ngates:\n  cosine_mean:\n    min: 0.95\n  recall_agreement:\n    min: 0.80\n"
open(sys.argv[2], "w").write(s)
PY
ok
timeout 300 "$SESLM" validate --parent "$MODEL" --candidate "$TMP/student" --config "$TMP/pruned.yaml" --out "$TMP/pruned" \
    --threads 2 --quiet >"$TMP/pruned.md" 2>"$TMP/pruned.err"
rc=$?
[ "$rc" -eq 1 ] || fail "pruned student: exit $rc, expected 1: $(tail -c 500 "$TMP/pruned.err")"
grep -q '^# Validation: FAIL' "$TMP/pruned.md" || fail "pruned student: report $(head -c 200 "$TMP/pruned.md")"
python3 - "$TMP/pruned/verdict.json" <<'PY' || fail "pruned-student verdict"
import json, sys
v = json.load(open(sys.argv[1]))
g = {x["metric"]: x for x in v["gates"]}
ms = v["metrics"]
bad = []
if v["pass"] or g["cosine_mean"]["pass"]:
    bad.append("cosine gate passed: %s" % g["cosine_mean"]["message"])
if not ms["cosine_mean"]["candidate"] < 0.95: bad.append("cosine %s" % ms["cosine_mean"])
if not ms["recall_agreement"]["candidate"] < 1.0: bad.append("recall agreement %s" % ms["recall_agreement"])
if not ms["weight_bytes"]["candidate"] < ms["weight_bytes"]["parent"]: bad.append("student not smaller")
if v["candidate"]["params"] >= v["parent"]["params"]: bad.append("params")
for x in bad:
    print("  " + x, file=sys.stderr)
sys.exit(1 if bad else 0)
PY

# ---- bad input: exit 2, a message naming the problem, no outputs
expect 2 'required' "no --candidate" -- validate --parent "$MODEL"
expect 2 'not a model directory' "missing candidate dir" -- validate --parent "$MODEL" --candidate "$TMP/none"
touch "$TMP/afile"
expect 2 'not a directory' "--out is a file" -- validate --parent "$MODEL" --candidate "$MODEL" --out "$TMP/afile"
expect 2 'unknown option' "unknown option" -- validate --parent "$MODEL" --candidate "$MODEL" --bogus
expect 2 'integer' "bad --threads" -- validate --parent "$MODEL" --candidate "$MODEL" --threads x
printf 'samples:\n  stsb_pairs: 10\n  querys: 5\n' >"$TMP/typo.yaml"
expect 2 'typo.yaml:3: samples.querys: unknown key' "config typo" -- validate --parent "$MODEL" --candidate "$MODEL" \
    --config "$TMP/typo.yaml" --out "$TMP/o1"
sed "s|$ROOT/data/eval/snips_test.tsv|$TMP/nope.tsv|" "$CFG" >"$TMP/nope.yaml"
expect 2 'nope.tsv' "missing data file" -- validate --parent "$MODEL" --candidate "$MODEL" --config "$TMP/nope.yaml" \
    --out "$TMP/o2" --quiet
sed -i "s|$ROOT/data/eval/stsb_dev.tsv|$TMP/bad.tsv|" "$CFG"
printf 'a\tb\t1.0\nonly one field\n' >"$TMP/bad.tsv"
expect 2 'bad.tsv:2: expected 3 tab-separated fields' "malformed TSV" -- validate --parent "$MODEL" --candidate "$MODEL" \
    --config "$CFG" --out "$TMP/o3" --quiet
mkdir -p "$TMP/noweights" && cp "$MODEL/config.json" "$MODEL/vocab.txt" "$TMP/noweights/"
sed -i "s|$TMP/bad.tsv|$ROOT/data/eval/stsb_dev.tsv|" "$CFG"
expect 2 'noweights' "model without weights" -- validate --parent "$MODEL" --candidate "$TMP/noweights" --config "$CFG" \
    --out "$TMP/o4" --quiet
for o in o1 o2 o3 o4; do
    ok
    [ ! -e "$TMP/$o" ] || fail "a failed validation wrote $TMP/$o"
done
expect 0 'usage: seslm validate' "--help" -- validate --help
ok
"$ROOT/ci/gate.sh" --help >/dev/null || fail "gate.sh --help"
ok
"$ROOT/ci/gate.sh" --parent "$MODEL" >/dev/null 2>&1
[ $? -eq 2 ] || fail "gate.sh without --candidate must exit 2"

cli_test_done
