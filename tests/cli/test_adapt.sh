#!/usr/bin/env bash
# test_adapt.sh — `seslm adapt` end to end on the real model (issue 18 §2-3):
#   * usage errors exit 2 (no arguments, unknown option, bad --rank); bad feedback exits 2 with a clear
#     message (missing file, a TSV without text / label columns, a single intent, too few examples);
#   * an adapter that hurts general quality (no anchoring, a high learning rate) is REJECTED by the gate:
#     exit 1, verdict.json says which gate failed and on which data;
#   * with the anchoring loss and relaxed thresholds the gate ACCEPTS: exit 0; the merged model loads
#     and embeds, has the base's shapes, tokenizer files byte-identical, lineage in config.json; the
#     adapter file holds rank-r A / B tensors; the merged model registers with the base as its parent.
#
#   bash tests/cli/test_adapt.sh <path to seslm> <model dir> <repo root>
set -u

. "$(dirname "$0")/lib.sh"
cli_test_init test_adapt "$@"
D=(--data-dir "$ROOT/data/eval")
G="$ROOT/data/traffic/wiki_600.txt"
py() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

# feedback: 6 SNIPS intents x 4 examples (1 held out per intent)
python3 - "$ROOT/data/intent/snips_train50.tsv" "$TMP/fb.tsv" <<'PY'
import collections, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
by = collections.defaultdict(list)
for t, l in rows:
    by[l].append(t)
with open(sys.argv[2], "w") as f:
    f.write("text\tlabel\n")
    for l in sorted(by)[:6]:
        for t in by[l][:4]:
            f.write(f"{t}\t{l}\n")
PY
printf 'text\tintent\nhello\tgreet\nhi\tgreet\nbye\tgreet\nyo\tgreet\n' >"$TMP/one.tsv"
printf 'sentence\tlabel\nhello\tgreet\n' >"$TMP/nohdr.tsv"
printf '{"text": "hi", "intent": "a"}\n{"text": "yo", "intent": "b"}\n' >"$TMP/two.jsonl"

expect 2 "required" "no arguments" -- adapt
expect 2 "unknown option" "unknown option" -- adapt --model "$MODEL" --feedback "$TMP/fb.tsv" --out "$TMP/x" --bogus 1
expect 2 "--rank must be an integer in 1..256" "bad rank" -- adapt --model "$MODEL" --feedback "$TMP/fb.tsv" --out "$TMP/x" --rank 0
expect 2 "cannot open" "missing feedback" -- adapt --model "$MODEL" --feedback "$TMP/none.tsv" --out "$TMP/x"
expect 2 "must name a \"text\" and a \"label\"" "TSV without columns" -- adapt --model "$MODEL" --feedback "$TMP/nohdr.tsv" --out "$TMP/x"
expect 2 "at least 4" "too few examples" -- adapt --model "$MODEL" --feedback "$TMP/two.jsonl" --out "$TMP/x"
expect 2 "2 intents" "a single intent" -- adapt --model "$MODEL" --feedback "$TMP/one.tsv" --out "$TMP/x" "${D[@]}" --general "$G" --quiet

# ---- rejected: no anchoring, an aggressive learning rate --------------------------------------------------
"$SESLM" adapt --model "$MODEL" --feedback "$TMP/fb.tsv" --out "$TMP/bad" "${D[@]}" --general - --lr 0.02 --steps 30 --pairs 6 \
    --rank 8 --threads 2 --quiet >"$TMP/bad.out" 2>"$TMP/bad.err"
rc=$?
[ "$rc" = 1 ] && ok || fail "a harmful adapter must be rejected with exit 1 (got $rc): $(tail -3 "$TMP/bad.err")"
grep -q REJECTED "$TMP/bad.err" && ok || fail "no REJECTED line"
[ "$(py "$TMP/bad/verdict.json" 'd["accepted"]')" = False ] && ok || fail "verdict.json accepted a harmful adapter"
v=$(py "$TMP/bad/verdict.json" '[g["gate"] for g in d["gates"] if not g["pass"]]')
case "$v" in *stsb_spearman_drop*|*retrieval_recall10_agreement*) ok ;; *) fail "general-quality gates did not catch it: $v" ;; esac
[ "$(py "$TMP/bad/verdict.json" '[g["data"] for g in d["gates"] if g["gate"]=="stsb_spearman_drop"][0].endswith("stsb_dev.tsv")')" = True ] &&
    ok || fail "the verdict must say which data the STS-B gate used"

# ---- accepted: anchored, gentle, thresholds relaxed for a tiny held-out set -------------------------------
"$SESLM" adapt --model "$MODEL" --feedback "$TMP/fb.tsv" --out "$TMP/good" "${D[@]}" --general "$G" --steps 12 --pairs 6 --rank 4 --threads 2 \
    --min-gain -100 --max-stsb-drop 3 --min-retrieval 0.5 --quiet >"$TMP/good.out" 2>"$TMP/good.err"
rc=$?
[ "$rc" = 0 ] && ok || fail "an anchored adapter under relaxed gates must be accepted (exit $rc): $(tail -3 "$TMP/good.err")"
[ "$(py "$TMP/good/verdict.json" 'd["accepted"]')" = True ] && ok || fail "verdict.json does not accept it"
cmp -s "$MODEL/vocab.txt" "$TMP/good/model/vocab.txt" && ok || fail "vocab.txt must be byte-identical"
[ "$(py "$TMP/good/model/config.json" 'd["seslm_lineage"]["adapter"]["method"]')" = lora-setfit ] && ok || fail "no adapter lineage"
[ "$(py "$TMP/good/model/config.json" 'd["seslm_lineage"]["adapter"]["rank"]')" = 4 ] && ok || fail "lineage rank"
"$SESLM" embed --model "$TMP/good/model" "set my alarm" >"$TMP/e.jsonl" 2>"$TMP/e.err" && ok || fail "the merged model does not embed"
python3 - "$TMP/e.jsonl" <<'PY' && ok || fail "merged model embedding"
import json, math, sys
e = json.loads(open(sys.argv[1]).readline())["embedding"]
assert len(e) == 384 and abs(math.sqrt(sum(x * x for x in e)) - 1) < 1e-3, len(e)
PY
python3 - "$TMP/good/adapter.safetensors" <<'PY' && ok || fail "adapter file"
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
assert h["__metadata__"]["format"] == "seslm-lora" and h["__metadata__"]["rank"] == "4", h["__metadata__"]
assert h["layers.0.qkv.lora_A"]["shape"] == [4, 384] and h["layers.5.ff2.lora_B"]["shape"] == [384, 4], h
assert len([k for k in h if k != "__metadata__"]) == 6 * 4 * 2
PY
# the merged model is a registry version like any other, with the base as its parent
export SESLM_REGISTRY="$TMP/registry.db" SESLM_STORE="$TMP/store"
"$SESLM" registry register "$MODEL" >"$TMP/r1" 2>&1 && ok || fail "register base: $(cat "$TMP/r1")"
"$SESLM" registry register "$TMP/good/model" >"$TMP/r2" 2>&1 && ok || fail "register adapted: $(cat "$TMP/r2")"
"$SESLM" registry show 2 >"$TMP/show" 2>&1 && ok || fail "registry show: $(cat "$TMP/show")"
[ "$(py "$TMP/show" 'd.get("parent")')" = 1 ] && ok || fail "the adapted version's parent must be the base (found from config.json): $(cat "$TMP/show")"

cli_test_done
