#!/usr/bin/env bash
# test_decoder_evolve.sh — the decoder's evolution commands (issue 17 item 5) on SmolLM2-135M-Instruct
# (data/fetch_decoder.sh; without it the test FAILS):
#   seslm perplexity         help, usage and bad input; the parent's negative log-likelihood on 100 held-out
#                            lines equals llama.cpp's (tests/fixtures/decoder/ppl_wiki100.json, made by
#                            tests/oracle/decoder/make_ppl_fixture.py) within 0.5%, token counts identical;
#   seslm recompile-decoder  telemetry recorded with seslm generate; a student with FFN neurons, a KV group
#                            and rare vocabulary cut and W_o / W_down refitted on calibration text: the
#                            summary's shapes, the plan, the student loads, generates and is scored;
#   seslm validate-decoder   the student judged against its parent (fails the perplexity gate, as any 25%
#                            cut without training does here), the parent against itself passes.
#
#   bash tests/cli/test_decoder_evolve.sh <path to seslm> <model dir> <repo root>
set -u
. "$(dirname "$0")/lib.sh"
cli_test_init test_decoder_evolve "$@"

GGUF=$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf
TINY=$ROOT/tests/fuzz/corpus_gguf/tiny_llama.gguf
if [ ! -f "$GGUF" ]; then
    echo "test_decoder_evolve: no decoder model at $GGUF: run data/fetch_decoder.sh first" >&2
    exit 1
fi
export OMP_NUM_THREADS=2 SESLM_PROGRESS=0
WIKI=$ROOT/data/eval/wiki_passages.txt

# ---- help, usage, bad input
expect 0 "usage: seslm perplexity" "perplexity --help" -- perplexity --help
expect 0 "usage: seslm recompile-decoder" "recompile-decoder --help" -- recompile-decoder --help
expect 0 "usage: seslm validate-decoder" "validate-decoder --help" -- validate-decoder --help
expect 2 "--input FILE is required" "perplexity without input" -- perplexity --model "$TINY"
expect 2 "--ctx must be" "perplexity ctx too small" -- perplexity --model "$TINY" --input "$WIKI" --ctx 1
expect 1 "cannot read" "perplexity of a missing file" -- perplexity --model "$TINY" --input "$TMP/none.txt"
expect 1 "cannot load|cannot open" "perplexity of a missing model" -- perplexity --model "$TMP/none.gguf" --input "$WIKI"
printf 'fine text\ncaf\xc3 broken\n' >"$TMP/bad.txt"
expect 1 "UTF-8" "perplexity of invalid UTF-8" -- perplexity --model "$TINY" --input "$TMP/bad.txt"
: >"$TMP/empty.txt"
expect 1 "no tokens|empty" "perplexity of an empty file" -- perplexity --model "$TINY" --input "$TMP/empty.txt"
expect 2 "are required" "recompile-decoder without telemetry" -- recompile-decoder --model "$GGUF" --out "$TMP/x.gguf"
expect 2 "needs --calibration" "drop layers without calibration" -- recompile-decoder --model "$GGUF" --telemetry "$TMP" --out "$TMP/x.gguf" --drop-layers 1
expect 2 "--ffn-keep must be" "ffn-keep out of range" -- recompile-decoder --model "$GGUF" --telemetry "$TMP" --out "$TMP/x.gguf" --ffn-keep 2
expect 2 "comma-separated list" "a bad --drop list" -- recompile-decoder --model "$GGUF" --telemetry "$TMP" --out "$TMP/x.gguf" --drop 3,x
expect 2 "not both" "--drop with --drop-layers" -- recompile-decoder --model "$GGUF" --telemetry "$TMP" --out "$TMP/x.gguf" --drop 3 --drop-layers 1 --calibration "$WIKI"
expect 2 "--heal-steps needs --calibration" "healing without calibration" -- recompile-decoder --model "$GGUF" --telemetry "$TMP" --out "$TMP/x.gguf" --drop 3 --heal-steps 5
expect 1 "telemetry" "recompile-decoder with no dumps" -- recompile-decoder --model "$GGUF" --telemetry "$TMP/nodumps" --out "$TMP/x.gguf"
expect 2 "are required" "validate-decoder without candidate" -- validate-decoder --parent "$GGUF" --heldout "$WIKI"

# ---- served prompts in the layer choice (the tiny model: fast): the plan splits each layer's cost into its text and
# answer parts, which sum to it; a prompt that is not UTF-8 is refused by number, nothing written
"$SESLM" generate --model "$TINY" --prompt "hello world" --max-tokens 4 --telemetry-dir "$TMP/ttel" >/dev/null 2>&1 ||
    fail "telemetry of the tiny model"
printf 'hello world\nthe world said\\nhello\n' >"$TMP/prompts.txt"
printf 'hello world\nbad \xff byte\n' >"$TMP/badprompts.txt"
expect 1 "served prompt 2: invalid UTF-8" "an invalid served prompt" -- recompile-decoder --model "$TINY" --telemetry "$TMP/ttel" \
    --out "$TMP/tp.gguf" --drop-layers 1 --calibration "$WIKI" --calibration-lines 4 --prompts "$TMP/badprompts.txt"
[ ! -e "$TMP/tp.gguf" ] || fail "a refused prompt file left a student behind"
ok
"$SESLM" recompile-decoder --model "$TINY" --telemetry "$TMP/ttel" --out "$TMP/tp.gguf" --drop-layers 1 --calibration "$WIKI" \
    --calibration-lines 4 --prompts "$TMP/prompts.txt" --heal-steps 0 >"$TMP/tp.json" 2>"$TMP/tp.err" || fail "layer choice with prompts: $(cat "$TMP/tp.err")"
grep -q "answers to 2 served prompts" "$TMP/tp.err" || fail "the layer choice did not answer the 2 prompts: $(cat "$TMP/tp.err")"
python3 - "$TMP/tp.gguf.plan.json" >"$TMP/tp.out" 2>&1 <<'PY' || fail "plan with prompts: $(cat "$TMP/tp.out")"
import json, sys
ls = json.load(open(sys.argv[1]))["layers"]
cost = [l["loss_if_dropped"] for l in ls]
for l in ls:
    assert abs(l["loss_if_dropped"] - l["text_loss_if_dropped"] - l["answer_loss_if_dropped"]) < 1e-9, l
assert any(l["answer_loss_if_dropped"] != 0 for l in ls)
assert [l["dropped"] for l in ls].index(True) == cost.index(min(cost)), cost
PY

# ---- perplexity against llama.cpp
ok
"$SESLM" perplexity --model "$GGUF" --input "$WIKI" --lines 100 >"$TMP/ppl.json" 2>"$TMP/ppl.err" || fail "perplexity: $(cat "$TMP/ppl.err")"
python3 - "$TMP/ppl.json" "$ROOT/tests/fixtures/decoder/ppl_wiki100.json" >"$TMP/cmp.out" 2>&1 <<'PY' || fail "perplexity vs llama.cpp: $(cat "$TMP/cmp.out")"
import json, math, sys
ours, ref = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert ours["documents"] == ref["lines"] == 100, (ours["documents"], ref["lines"])
assert ours["tokens"] == ref["tokens"], ("token counts differ", ours["tokens"], ref["tokens"])
rel = abs(ours["nll"] - ref["nll"]) / ref["nll"]
assert rel <= 0.005, ("nll", ours["nll"], ref["nll"], rel)
assert abs(ours["ppl"] - math.exp(ours["nll"] / ours["tokens"])) < 1e-6 * ours["ppl"]
assert 0.5 < ours["bits_per_byte"] < 5 and ours["bytes"] > ours["tokens"]
print("nll", ours["nll"], "llama.cpp", ref["nll"], "rel", rel)
PY

# ---- telemetry of served traffic, then a student
mkdir -p "$TMP/tel"
for i in 0 1 2 3 4 5; do
    ctx=$(sed -n "$((5 * i + 1)),$((5 * i + 5))p" "$WIKI")
    printf 'Answer ONLY using the context below.\n\nContext:\n%s\n\nQuestion: Summarize the context.' "$ctx" >"$TMP/p.txt"
    "$SESLM" generate --model "$GGUF" --chat --input "$TMP/p.txt" --max-tokens 16 --telemetry-dir "$TMP/tel" --node t$i >/dev/null 2>>"$TMP/gen.err" ||
        fail "generate with telemetry: $(tail -c 300 "$TMP/gen.err")"
done
sed -n 301,450p "$WIKI" >"$TMP/calib.txt"
sed -n 1001,1030p "$WIKI" >"$TMP/heldout.txt"
ok
"$SESLM" recompile-decoder --model "$GGUF" --telemetry "$TMP/tel" --out "$TMP/s.gguf" --ffn-keep 0.75 --kv-keep 2 \
    --vocab-general 16384 --calibration "$TMP/calib.txt" >"$TMP/rc.json" 2>"$TMP/rc.err" || fail "recompile-decoder: $(tail -c 500 "$TMP/rc.err")"
expect 2 "exists" "recompile-decoder over an existing output" -- recompile-decoder --model "$GGUF" --telemetry "$TMP/tel" --out "$TMP/s.gguf"
ok
# every layer's matrices at Q4_0 (SmolLM2's are Q4_1): 18 bytes per 32 weights instead of 20, the text scored about
# as well (bench/RESULTS.md 17: +4% perplexity on 300 held-out lines)
expect 2 "--layer-type must be one of" "a layer type this cannot write" -- recompile-decoder --model "$GGUF" --telemetry "$TMP/tel" \
    --out "$TMP/q40.gguf" --layer-type q2_k
"$SESLM" recompile-decoder --model "$GGUF" --telemetry "$TMP/tel" --out "$TMP/q40.gguf" --layer-type q4_0 >"$TMP/q40.json" 2>"$TMP/q40.err" ||
    fail "recompile-decoder --layer-type q4_0: $(tail -c 300 "$TMP/q40.err")"
"$SESLM" perplexity --model "$GGUF" --input "$TMP/heldout.txt" >"$TMP/pp.json" 2>/dev/null &&
    "$SESLM" perplexity --model "$TMP/q40.gguf" --input "$TMP/heldout.txt" >"$TMP/pq.json" 2>/dev/null || fail "perplexity of the Q4_0 student"
python3 - "$TMP/q40.json" "$TMP/pp.json" "$TMP/pq.json" >"$TMP/q40.out" 2>&1 <<'PY' || fail "layers at Q4_0: $(cat "$TMP/q40.out")"
import json, sys
s, p, q = (json.load(open(f)) for f in sys.argv[1:4])
assert s["layers"] == [30, 30] and 0.92 < s["bytes_ratio"] < 0.94, s      # the layers are 69% of the file
assert q["tokens"] == p["tokens"] and q["nll"] != p["nll"] and q["ppl"] < 1.15 * p["ppl"], (p, q)  # changed, and little
print("ok")
PY
rm -f "$TMP/q40.gguf" "$TMP/q40.gguf.plan.json"
ok
python3 - "$TMP/rc.json" "$TMP/s.gguf.plan.json" >"$TMP/rc.out" 2>&1 <<'PY' || fail "recompile-decoder summary / plan: $(cat "$TMP/rc.out")"
import json, sys
s, p = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert s["layers"] == [30, 30] and s["heads"] == [9, 6] and s["kv_heads"] == [3, 2] and s["ffn"] == [1536, 1152], s
assert 16384 < s["vocab"][1] < 49152, s["vocab"]
assert 0.5 < s["bytes_ratio"] < 0.8 and s["bytes"][1] < s["bytes"][0], s
assert s["telemetry"].endswith("(6 dumps summed)"), s["telemetry"]
assert p["kind"] == "decoder" and len(p["layers"]) == 30 and p["vocab_keep"] == s["vocab"][1]
for l in p["layers"]:
    n = l["ffn_neurons"]
    assert len(n) == 1152 and n == sorted(set(n)) and 0 <= n[0] and n[-1] < 1536
    assert len(l["kv_groups"]) == 2 and all(0 <= g < 3 for g in l["kv_groups"])
    assert l["ffn_out_rel_err"] <= l["ffn_out_rel_err_plain"] + 1e-9, l   # a refit that loses to plain slicing is not kept
    assert l["attn_out_rel_err"] <= l["attn_out_rel_err_plain"] + 1e-9, l
print("ok")
PY
ok
"$SESLM" generate --model "$TMP/s.gguf" --chat --prompt "What is the capital of France?" --max-tokens 8 >"$TMP/gen.out" 2>"$TMP/gen.err" ||
    fail "the student does not generate: $(tail -c 300 "$TMP/gen.err")"
[ -s "$TMP/gen.out" ] || fail "the student generated nothing"
ok
"$SESLM" perplexity --model "$TMP/s.gguf" --input "$TMP/heldout.txt" >"$TMP/sppl.json" 2>"$TMP/sppl.err" || fail "student perplexity: $(cat "$TMP/sppl.err")"
grep -qE '"vocab": [0-9]+,' "$TMP/sppl.json" && ! grep -q '"vocab": 49152' "$TMP/sppl.json" || fail "student perplexity: $(cat "$TMP/sppl.json")"

# ---- the gates
ok
"$SESLM" validate-decoder --parent "$GGUF" --candidate "$TMP/s.gguf" --heldout "$TMP/heldout.txt" --rounds 1 --tokens 16 \
    --no-grounded --out "$TMP/v.json" >"$TMP/v.out" 2>"$TMP/v.err"
rc=$?
[ "$rc" -eq 1 ] || fail "validate-decoder of the cut student: exit $rc, expected 1 (perplexity gate): $(tail -c 400 "$TMP/v.err")"
python3 - "$TMP/v.json" >"$TMP/vj.out" 2>&1 <<'PY' || fail "validate-decoder verdict: $(cat "$TMP/vj.out")"
import json, sys
v = json.load(open(sys.argv[1]))
g = {x["name"]: x for x in v["gates"]}
assert v["verdict"] == "fail" and set(g) == {"heldout_ppl_increase", "bytes_ratio", "decode_latency_ratio"}, v
assert g["heldout_ppl_increase"]["value"] > 0.05 and not g["heldout_ppl_increase"]["pass"], g
assert g["bytes_ratio"]["pass"] and g["bytes_ratio"]["value"] < 0.8
assert g["heldout_ppl_increase"]["candidate"]["tokens"] >= g["heldout_ppl_increase"]["parent"]["tokens"]
print("ok")
PY
expect 0 '"verdict": "pass"' "validate-decoder of the parent against itself" -- validate-decoder --parent "$GGUF" --candidate "$GGUF" \
    --heldout "$TMP/heldout.txt" --lines 10 --rounds 1 --tokens 8 --no-grounded --max-bytes-ratio 1 --max-latency-ratio 3
# the grounded gate's answers, per question and model (--grounded-log): two questions of the QA set, the parent
# against itself, so both files hold the same verdicts
head -n 3 "$ROOT/data/grounded/qa.tsv" >"$TMP/qa2.tsv"
ok
"$SESLM" validate-decoder --parent "$GGUF" --candidate "$GGUF" --heldout "$TMP/heldout.txt" --lines 4 --rounds 1 --tokens 8 \
    --max-bytes-ratio 1 --max-latency-ratio 3 --encoder "$MODEL" --qa "$TMP/qa2.tsv" --passages "$ROOT/data/grounded/passages.txt" \
    --grounded-log "$TMP/gl" >"$TMP/gl.json" 2>"$TMP/gl.err" || fail "validate-decoder --grounded-log: $(tail -c 400 "$TMP/gl.err")"
python3 - "$TMP/gl.json" "$TMP/gl.parent.jsonl" "$TMP/gl.candidate.jsonl" >"$TMP/gl.out" 2>&1 <<'PY' || fail "--grounded-log: $(cat "$TMP/gl.out")"
import json, sys
v = json.load(open(sys.argv[1]))
g = {x["name"]: x for x in v["gates"]}["grounded_qa"]
assert g["questions"] == 2 and g["pass"], g
p = [json.loads(l) for l in open(sys.argv[2])]
c = [json.loads(l) for l in open(sys.argv[3])]
assert [x["id"] for x in p] == ["a01", "u01"] == [x["id"] for x in c], (p, c)
assert [x["verdict"] for x in p] == [x["verdict"] for x in c], (p, c)
assert sum(x["hallucinated"] for x in p) == v["gates"][-1]["parent"]["hallucinated"], (p, v)  # the counts are the lines'
assert sum(x["found"] for x in p) == v["gates"][-1]["parent"]["found"], (p, v)
print("ok")
PY
expect 2 "cannot write" "validate-decoder with an unwritable --grounded-log" -- validate-decoder --parent "$GGUF" --candidate "$GGUF" \
    --heldout "$TMP/heldout.txt" --lines 4 --rounds 1 --tokens 8 --encoder "$MODEL" --qa "$TMP/qa2.tsv" \
    --passages "$ROOT/data/grounded/passages.txt" --grounded-log "$TMP/no/such/dir/gl"
# ---- the registry treats a decoder student as a version with lineage: promote, roll back
export SESLM_REGISTRY=$TMP/reg/registry.db SESLM_STORE=$TMP/reg/store SESLM_POLICY=$ROOT/configs/governance.yaml
mkdir -p "$TMP/reg/p" "$TMP/reg/s"
cp "$GGUF" "$TMP/reg/p/model.gguf"
ok
"$SESLM" recompile-decoder --model "$GGUF" --telemetry "$TMP/tel" --out "$TMP/reg/s/model.gguf" --drop 17 \
    --plan-out "$TMP/reg/plan.json" >"$TMP/rd.json" 2>"$TMP/rd.err" || fail "recompile-decoder --drop 17: $(tail -c 300 "$TMP/rd.err")"
grep -q '"layers": \[30, 29\]' "$TMP/rd.json" || fail "--drop 17: $(cat "$TMP/rd.json")"
# healing: layer 16, before the dropped 17, trained to stand in for it (a few steps: this checks the plumbing; the
# gain is measured in bench/RESULTS.md 17)
ok
"$SESLM" recompile-decoder --model "$GGUF" --telemetry "$TMP/tel" --out "$TMP/h.gguf" --drop 17 --calibration "$TMP/calib.txt" \
    --heal-steps 6 --heal-tokens 1024 >"$TMP/rh.json" 2>"$TMP/rh.err" || fail "recompile-decoder --heal-steps: $(tail -c 300 "$TMP/rh.err")"
python3 - "$TMP/rh.json" "$TMP/h.gguf.plan.json" >"$TMP/rh.out" 2>&1 <<'PY' || fail "healing summary / plan: $(cat "$TMP/rh.out") $(tail -c 600 "$TMP/rh.err")"
import json, math, sys
s, p = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert s["layers"] == [30, 29] and s["healed"][1] == 1, s
h = p["layers"][16]["heal"]
assert all(math.isfinite(h[k]) and h[k] > 0 for k in ("held_out_mse_start", "held_out_mse_trained", "held_out_mse_stored")), h
assert h["held_out_mse_trained"] <= h["held_out_mse_start"], h          # the best evaluated weights, the start included
assert h["kept"] == (h["held_out_mse_stored"] < h["held_out_mse_start"]) and s["healed"][0] == int(h["kept"]), (h, s)
assert "heal" not in p["layers"][15] and "heal" not in p["layers"][17]
print("ok")
PY
grep -q "heal step 6/6" "$TMP/rh.err" || fail "no healing progress lines: $(tail -c 300 "$TMP/rh.err")"
rm -f "$TMP/h.gguf"
# end-to-end distillation of that student (a few steps: the plumbing; the gain is measured in bench/RESULTS.md 17)
expect 0 "usage: seslm distill-decoder" "distill-decoder --help" -- distill-decoder --help
expect 2 "are required" "distill-decoder without a student" -- distill-decoder --parent "$GGUF" --calibration "$TMP/calib.txt" --out "$TMP/d.gguf"
expect 2 "--text-share must be" "distill-decoder with a text share of 1" -- distill-decoder --parent "$GGUF" --student "$TMP/x.gguf" \
    --calibration "$TMP/calib.txt" --out "$TMP/d.gguf" --text-share 1
expect 1 "cannot load|No such file|cannot open" "distill-decoder of a missing student" -- distill-decoder --parent "$GGUF" \
    --student "$TMP/none.gguf" --calibration "$TMP/calib.txt" --out "$TMP/d.gguf"
expect 1 "differ" "distill-decoder of a student with another vocabulary" -- distill-decoder --parent "$GGUF" --student "$TMP/s.gguf" \
    --calibration "$TMP/calib.txt" --out "$TMP/d.gguf" --steps 1
ok
"$SESLM" distill-decoder --parent "$GGUF" --student "$TMP/reg/s/model.gguf" --calibration "$TMP/calib.txt" --out "$TMP/d.gguf" \
    --steps 4 --tokens 256 --seq 32 --lr 1e-4 >"$TMP/dd.json" 2>"$TMP/dd.err" || fail "distill-decoder: $(tail -c 400 "$TMP/dd.err")"
python3 - "$TMP/dd.json" "$TMP/d.gguf" >"$TMP/dd.out" 2>&1 <<'PY' || fail "distill-decoder summary: $(cat "$TMP/dd.out") $(tail -c 600 "$TMP/dd.err")"
import json, math, os, sys
s = json.load(open(sys.argv[1]))
assert s["steps"] == 4 and s["train_tokens"] > 0 and s["val_tokens"] > 0, s
assert all(math.isfinite(s[k]) and s[k] >= 0 for k in ("held_out_loss_start", "held_out_loss_trained", "held_out_loss_stored")), s
assert s["held_out_loss_trained"] <= s["held_out_loss_start"] and s["held_out_loss_stored"] == s["held_out_loss_trained"], s
assert s["kept"] == (s["held_out_loss_stored"] < s["held_out_loss_start"]) and s["kept"] == os.path.exists(sys.argv[2]), s
print("ok")
PY
grep -q "step 4/4" "$TMP/dd.err" || fail "no distillation progress lines: $(tail -c 300 "$TMP/dd.err")"
# served chat prompts beside the text (grounded prompts of bench/decoder/grounded_prompts.py): each answered by the
# parent and kept whole, so the run trains on more tokens than the text alone
expect 1 "cannot read" "distill-decoder with a missing prompts file" -- distill-decoder --parent "$GGUF" \
    --student "$TMP/reg/s/model.gguf" --calibration "$TMP/calib.txt" --out "$TMP/dp.gguf" --prompts "$TMP/none.txt"
python3 "$ROOT/bench/decoder/grounded_prompts.py" --passages "$WIKI" --prompts 12 >"$TMP/prompts.txt" ||
    fail "grounded_prompts.py"
[ "$(wc -l <"$TMP/prompts.txt")" -eq 12 ] && grep -q 'Answer ONLY using the context' "$TMP/prompts.txt" ||
    fail "grounded_prompts.py wrote $(wc -l <"$TMP/prompts.txt") prompts"
# questions as users ask them by default (a student distilled on cloze prompts learnt their framing); the rules
python3 - "$ROOT/bench/decoder" "$TMP/prompts.txt" >"$TMP/gp.out" 2>&1 <<'PY' || fail "grounded_prompts.py questions: $(cat "$TMP/gp.out")"
import random, re, sys
sys.path.insert(0, sys.argv[1])
import grounded_prompts as g
qs = re.findall(r"Question: ([^<]*)<\|im_end\|>", open(sys.argv[2]).read())
assert len(qs) == 12 and all(q[0].isupper() and q.endswith("?") and "completes this" not in q for q in qs), qs
cases = {"cedar breaks national monument was established in 1933": {"When was cedar breaks national monument established?"},
         "carr was born in columbus ohio": {"Where was carr born?"},
         "kozunak is a fruitcake usually prepared for easter": {"What is kozunak?"},
         "poland joined the european union in may 2004": {"Who joined the european union in may 2004?"},
         "singapore became an independent nation in 1965": {"Who became an independent nation in 1965?",
                                                            "In what year singapore became an independent nation?"},
         "the path ran northwest through cambria county": {"What ran northwest through cambria county?"},
         "virtually all the antiquities of safed were destroyed by earthquakes": {None},
         "therefore the whole set is actually simpler": {None}, "he went home": {None}}
for sent, want in cases.items():
    for seed in range(4):
        got = g.natural_question(sent, random.Random(seed))
        assert got in want, (sent, got)
print("ok")
PY
python3 "$ROOT/bench/decoder/grounded_prompts.py" --passages "$WIKI" --prompts 6 --style cloze | grep -q 'what completes this\|What does the context say' ||
    fail "grounded_prompts.py --style cloze"
ok
"$SESLM" distill-decoder --parent "$GGUF" --student "$TMP/reg/s/model.gguf" --calibration "$TMP/calib.txt" --out "$TMP/dp.gguf" \
    --prompts "$TMP/prompts.txt" --answer-tokens 8 --steps 2 --tokens 512 --seq 256 --lr 1e-4 --text-share 0.5 \
    --answers-cache "$TMP/answers.cache" >"$TMP/dp.json" 2>"$TMP/dp.err" || fail "distill-decoder --prompts: $(tail -c 400 "$TMP/dp.err")"
# the same run again: the parent's answers come from the cache file, the sequences are the same
"$SESLM" distill-decoder --parent "$GGUF" --student "$TMP/reg/s/model.gguf" --calibration "$TMP/calib.txt" --out "$TMP/dp2.gguf" \
    --prompts "$TMP/prompts.txt" --answer-tokens 8 --steps 2 --tokens 512 --seq 256 --lr 1e-4 --text-share 0.5 \
    --answers-cache "$TMP/answers.cache" >"$TMP/dp2.json" 2>"$TMP/dp2.err" || fail "distill-decoder --answers-cache: $(tail -c 400 "$TMP/dp2.err")"
python3 - "$TMP/dp.json" "$TMP/dp2.json" >"$TMP/dp2.out" 2>&1 <<'PY' || fail "distill-decoder --answers-cache: $(cat "$TMP/dp2.out")"
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert a["answers_cached"] == 0 and a["answers_computed"] == 12 and b["answers_cached"] == 12 and b["answers_computed"] == 0, (a, b)
assert a["train_tokens"] == b["train_tokens"] and a["held_out_loss_start"] == b["held_out_loss_start"], (a, b)
print("ok")
PY
ok
python3 - "$TMP/dd.json" "$TMP/dp.json" >"$TMP/dp.out" 2>&1 <<'PY' || fail "distill-decoder --prompts summary: $(cat "$TMP/dp.out")"
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert b["steps"] == 2 and b["train_tokens"] + b["val_tokens"] > a["train_tokens"] + a["val_tokens"] + 12 * 100, (a, b)
# --text-share 0.5: the selection is the mean of the text's and the prompts' held-out losses, both reported
t, p = b["held_out_text"], b["held_out_prompts"]
assert t > 0 and p > 0 and t != p and abs(b["held_out_loss_trained"] - 0.5 * (t + p)) <= 1e-4 * b["held_out_loss_trained"], b
assert "held_out_text" not in a, a  # text alone: no parts
assert a["budget_cut"] is False and b["budget_cut"] is False and a["train_seconds"] > 0, (a, b)
print("ok")
PY
# a time budget (a nightly window): 40 steps do not fit in 0.6 ms, so the schedule ends at the third step, evaluated
"$SESLM" distill-decoder --parent "$GGUF" --student "$TMP/reg/s/model.gguf" --calibration "$TMP/calib.txt" --out "$TMP/db.gguf" \
    --steps 40 --tokens 256 --seq 32 --lr 1e-4 --max-minutes 0.00001 >"$TMP/db.json" 2>"$TMP/db.err" ||
    fail "distill-decoder --max-minutes: $(tail -c 400 "$TMP/db.err")"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["steps"] == 3 and s["budget_cut"] is True, s' "$TMP/db.json" &&
    grep -q "the schedule now ends at step 3" "$TMP/db.err" && grep -q "step 3/3" "$TMP/db.err" ||
    fail "distill-decoder --max-minutes: $(cat "$TMP/db.json") $(tail -c 600 "$TMP/db.err")"
ok
expect 2 "max-minutes" "distill-decoder with a time budget of 0" -- distill-decoder --parent "$GGUF" --student "$TMP/reg/s/model.gguf" \
    --calibration "$TMP/calib.txt" --out "$TMP/db.gguf" --max-minutes 0
if [ -f "$TMP/d.gguf" ]; then
    expect 0 '"ppl"' "the distilled student is scored" -- perplexity --model "$TMP/d.gguf" --input "$TMP/heldout.txt"
fi
expect 0 '"version":1' "register the parent decoder" -- registry register "$TMP/reg/p"
expect 0 '"version":2.*"parent":1.*"kind":"decoder".*"n_layers":29' "register the student (parent found by the weights' hash)" -- \
    registry register "$TMP/reg/s" --plan "$TMP/reg/plan.json"
expect 0 '"version":2.*"version":1' "lineage of the student" -- registry lineage 2
expect 0 '' "approve the parent" -- approve 1 --by alice --reason "decoder parent"
expect 0 '"version":1' "promote the parent" -- promote 1 --by alice --reason "first release"
expect 0 '' "approve the student" -- approve 2 --by alice --reason "decoder student"
# a serving node on the parent decoder follows the promotion and the rollback (--notify: POST /admin/reload with the
# version's stored directory, which holds model.gguf)
LOG=$TMP/server.log
cli_serve_start "$LOG" --model "$MODEL" --decoder "$GGUF" --threads 1
[ -n "$PORT" ] || fail "the serving node did not start: $(tail -c 400 "$LOG")"
served() { # the decoder that answers a chat completion
    curl -s -X POST --data-binary '{"messages":[{"role":"user","content":"Hi"}],"temperature":0,"max_tokens":2}' \
        "$URL/v1/chat/completions" | python3 -c 'import json,sys; print(json.load(sys.stdin)["model"])'
}
ok
[ "$(served)" = "SmolLM2-135M-Instruct.Q4_1" ] || fail "the node's decoder before the promotion: $(served)"
expect 0 '"version":2' "promote the student, notifying the node" -- promote 2 --by alice --reason "nightly decoder" --notify "$URL"
SHA2=$("$SESLM" registry show 2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["sha256"])')
ok
[ -n "$SHA2" ] && [ "$(served)" = "$SHA2" ] || fail "the node did not reload the promoted decoder: $(served) (v2 $SHA2) $(tail -c 400 "$LOG")"
expect 0 '"version":1' "roll back to the parent, notifying the node" -- rollback --by alice --reason "test" --notify "$URL"
SHA1=$("$SESLM" registry show 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["sha256"])')
ok
[ "$(served)" = "$SHA1" ] || fail "the node did not reload the parent on the rollback: $(served) (v1 $SHA1)"
kill "$PID"; wait "$PID" 2>/dev/null
cli_test_done
