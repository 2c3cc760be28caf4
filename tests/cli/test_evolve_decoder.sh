#!/usr/bin/env bash
# test_evolve_decoder.sh — `seslm evolve` on a GGUF decoder (SmolLM2-135M-Instruct; data/fetch_decoder.sh, without
# it the test FAILS): the served text split into calibration and held-out parts, two candidates (1 and 2 layers
# dropped, with healing; the layer choice measured once, by the 2-layer one) recompiled and validated against the parent with a bytes bar only the second meets, the
# smaller passing one selected (verdict.json, report.md), the selected model.gguf loads; a rerun of the finished run
# reports it again without work; bad configurations exit 2. Small sizes (a few calibration lines, 3 healing
# steps, one latency round): this checks the orchestration; bench/RESULTS.md 17 measures the cycle's results.
#
#   bash tests/cli/test_evolve_decoder.sh <path to seslm> <model dir> <repo root>
set -u
. "$(dirname "$0")/lib.sh"
cli_test_init test_evolve_decoder "$@"

GGUF=$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$GGUF" ]; then
    echo "test_evolve_decoder: no decoder model at $GGUF: run data/fetch_decoder.sh first" >&2
    exit 1
fi
export OMP_NUM_THREADS=2 SESLM_PROGRESS=0
WIKI=$ROOT/data/eval/wiki_passages.txt

# served traffic: a few generations recorded by the node
mkdir -p "$TMP/tel"
for i in 0 1 2; do
    "$SESLM" generate --model "$GGUF" --chat --prompt "$(sed -n "$((i + 1))p" "$WIKI") Summarize." --max-tokens 8 \
        --telemetry-dir "$TMP/tel" --node t$i >/dev/null 2>>"$TMP/gen.err" || fail "generate with telemetry: $(tail -c 300 "$TMP/gen.err")"
done
sed -n 301,316p "$WIKI" >"$TMP/traffic.txt" # 12 calibration + 4 held-out lines
config() { # config FILE [KEY: VALUE of evolve.decoder]...
    local f=$1
    shift
    cat >"$f" <<YAML
version: 1
evolve:
  model: $GGUF
  telemetry: $TMP/tel
  out: $TMP/run
  calibration: $TMP/traffic.txt
  calibration_lines: 12
  heldout_fraction: 0.25
  threads: 2
  decoder:
    drop_layers: [1, 2]
    heal_steps: 3
    max_ppl_increase: 1.0
    max_latency_ratio: 5
    rounds: 1
    heldout_lines: 4
    grounded: false
YAML
    for kv in "$@"; do echo "    $kv" >>"$f"; done
}
config "$TMP/ok.yaml" "max_bytes_ratio: 0.97" "embd_type: keep"
ok
"$SESLM" evolve --config "$TMP/ok.yaml" >"$TMP/ev.out" 2>"$TMP/ev.err"
rc=$?
[ "$rc" -eq 0 ] || fail "evolve of the decoder: exit $rc: $(tail -c 800 "$TMP/ev.err")"
python3 - "$TMP/run/verdict.json" "$TMP/run/00-split" >"$TMP/v.out" 2>&1 <<'PY' || fail "the decoder cycle's verdict: $(cat "$TMP/v.out")"
import json, os, sys
v = json.load(open(sys.argv[1]))
assert v["schema"] == "seslm-evolve-decoder-verdict/1" and v["kind"] == "decoder", v
c = {x["candidate"]: x for x in v["candidates"]}
assert set(c) == {"d1", "d2"}, c
assert c["d1"]["drop_layers"] == 1 and c["d2"]["drop_layers"] == 2
assert c["d2"]["bytes_ratio"] < c["d1"]["bytes_ratio"] < 1.0, c
assert not c["d1"]["pass"] and c["d1"]["failed"] == ["bytes_ratio"], c["d1"]   # 0.977 > 0.97
assert c["d2"]["pass"] and c["d2"]["failed"] == [] and c["d2"]["bytes_ratio"] <= 0.97, c["d2"]
assert v["selected"] == "d2" and v["deploy_model_dir"].endswith("04-recompile/d2"), v
assert os.path.getsize(c["d2"]["model"]) > 0
# the layer choice is measured once (by d2, the candidate dropping most); d1 gets the first layer of its order
p2 = json.load(open(c["d2"]["model"] + ".plan.json"))
p1 = json.load(open(c["d1"]["model"] + ".plan.json"))
assert len(p2["drop_order"]) == 2 and "drop_order" not in p1, (p2.get("drop_order"), p1.get("drop_order"))
assert [l["parent_layer"] for l in p1["layers"] if l["dropped"]] == p2["drop_order"][:1], p1
assert sorted(l["parent_layer"] for l in p2["layers"] if l["dropped"]) == sorted(p2["drop_order"])
lines = lambda p: sum(1 for l in open(os.path.join(sys.argv[2], p)) if l.strip())
assert lines("calibration.txt") == 12 and lines("heldout.txt") == 4
print("ok")
PY
grep -q "| d2 | \*\*pass\*\* |" "$TMP/ev.out" || fail "the report: $(cat "$TMP/ev.out")"
ok
"$SESLM" perplexity --model "$TMP/run/04-recompile/d2/model.gguf" --input "$TMP/run/00-split/heldout.txt" >"$TMP/p.json" 2>"$TMP/p.err" &&
    grep -q '"documents": 4' "$TMP/p.json" || fail "the selected student does not score: $(cat "$TMP/p.err")"
# a rerun of the finished run: reported again, nothing recomputed
expect 0 "Selected: d2" "rerun of a finished decoder run" -- evolve --config "$TMP/ok.yaml"
ok
grep -q "finished run; nothing to do" "$TMP/e.err" && ! grep -q "running" "$TMP/e.err" || fail "the rerun did work again: $(head -c 400 "$TMP/e.err")"
# distillation on served prompts inside the cycle: evolve.decoder.distill_prompts reaches recompile-decoder (the
# prompts, each answered by the parent, add their tokens to the text's), and the layer choice scores the parent's
# answers to the first choice_prompts of them (the plan's answer_loss_if_dropped)
python3 "$ROOT/bench/decoder/grounded_prompts.py" --passages "$WIKI" --prompts 3 >"$TMP/prompts.txt" || fail "grounded_prompts.py"
config "$TMP/dp.yaml" "max_bytes_ratio: 0.99" "embd_type: keep" "distill_steps: 4" "distill_minutes: 0.00001" "distill_prompts: $TMP/prompts.txt" \
    "distill_answer_tokens: 4" "choice_prompts: 1" "distill_text_share: 0.5" "layer_type: q4_0"
sed -i "s|out: $TMP/run\$|out: $TMP/run_dp|; s|drop_layers: \[1, 2\]|drop_layers: [1]|" "$TMP/dp.yaml"
ok
"$SESLM" evolve --config "$TMP/dp.yaml" >"$TMP/dp.out" 2>"$TMP/dp.err"
rc=$?
[ "$rc" -le 1 ] || fail "evolve with served prompts: exit $rc: $(tail -c 600 "$TMP/dp.err")"
python3 - "$TMP/run_dp/04-recompile/d1.json" >"$TMP/dp.chk" 2>&1 <<'PY' || fail "the cycle's distillation on prompts: $(cat "$TMP/dp.chk")"
import json, sys
r = json.load(open(sys.argv[1]))
d = r["distill"]
# layer_type q4_0: one layer of 30 dropped (0.977 of the bytes alone), the other 29 at 18 bytes per 32 weights, not 20
assert 0.89 < r["bytes_ratio"] < 0.92, r
# 12 calibration lines of ~15 tokens alone give ~200 tokens; 3 prompts of ~180 tokens more than double that;
# distill_minutes (0.6 ms) cut the 4 steps to the 3 before the pace is measured
assert d["steps"] == 3 and d["budget_cut"] is True and d["train_tokens"] + d["val_tokens"] > 400, d
# the run's answer cache: the layer choice answered the first prompt (24 tokens), the distillation (4) took it from there
assert d["answers_cached"] >= 1 and d["answers_cached"] + d["answers_computed"] == 3, d
# distill_text_share 0.5: half the step's tokens from the text lines (as they come, ~a fifth: the prompts are long)
f = d["seen_text"] / (d["seen_text"] + d["seen_prompts"])
assert 0.35 < f < 0.65, d
print("ok")
PY
grep -q "answers to 1 served prompts" "$TMP/dp.err" || fail "the cycle's layer choice did not answer the served prompt"
[ -s "$TMP/run_dp/answers.cache" ] && head -c 8 "$TMP/run_dp/answers.cache" | grep -q SESLMANS || fail "the cycle wrote no answer cache"
python3 - "$TMP/run_dp/04-recompile/d1/model.gguf.plan.json" >"$TMP/dpp.chk" 2>&1 <<'PY' || fail "the cycle's plan with prompts: $(cat "$TMP/dpp.chk")"
import json, sys
ls = json.load(open(sys.argv[1]))["layers"]
assert all("answer_loss_if_dropped" in l for l in ls) and any(l["answer_loss_if_dropped"] > 0 for l in ls), ls[0]
PY
config "$TMP/bad6.yaml" "distill_minutes: -1"
expect 2 "evolve.decoder.distill_minutes" "a negative time budget" -- evolve --config "$TMP/bad6.yaml"
config "$TMP/bad4.yaml" "distill_seq: 5000"
expect 2 "evolve.decoder.distill_seq" "a sequence length out of range" -- evolve --config "$TMP/bad4.yaml"
# bad configurations
config "$TMP/bad1.yaml" "embd_type: q2_k"
expect 2 "evolve.decoder.embd_type" "an unknown table type" -- evolve --config "$TMP/bad1.yaml"
config "$TMP/bad5.yaml" "layer_type: q3_k"
expect 2 "evolve.decoder.layer_type" "an unknown layer type" -- evolve --config "$TMP/bad5.yaml"
config "$TMP/bad2.yaml" "frobnicate: 1"
expect 2 "frobnicate" "an unknown key" -- evolve --config "$TMP/bad2.yaml"
config "$TMP/bad3.yaml"
expect 2 "does not exist" "a missing decoder" -- evolve --config "$TMP/bad3.yaml" --model "$TMP/none.gguf" --out "$TMP/run3"
cli_test_done
