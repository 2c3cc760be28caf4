#!/usr/bin/env bash
# test_embed_pq.sh — word-embedding rows below 4 bits on the real model (issue 13): `seslm recompile
# --embeddings pq4` (seen ids 4-bit, unseen ids product-quantized, exact rows and positions INT8) against
# today's 4-bit table (exact rows and positions F32), nothing pruned, F32 linear weights:
#   * the report counts the three kinds of rows; the PQ rows' mean reconstruction cosine is above 0.9 and
#     below the 4-bit rows' of the same ids (PQ is the coarser code);
#   * model.safetensors shrinks by more than 2.5 MB against the 4-bit table;
#   * on 100 held-out restaurant lines (never in the telemetry) the student embeds as the parent does
#     (mean cosine >= 0.985; 4-bit >= 0.99), the fast and the plain-C backends agree, the 4-bit student still loads;
#   * config.json names the layout; `seslm export --format onnx` accepts the student; `seslm plan` takes it
#     as a parent (widened rows); a bad --embeddings value is a usage error;
#   * with --calibration, the calibration text's ids keep 4-bit rows too (read back from model.safetensors).
#   bash tests/cli/test_embed_pq.sh <path to seslm> <model dir> <repo root>
. "$(dirname "$0")/lib.sh"
cli_test_init test_embed_pq "$@"

head -200 "$ROOT/data/traffic/restaurant8k_600.txt" >"$TMP/traffic.txt"
head -100 "$ROOT/data/eval/restaurant8k_heldout.txt" >"$TMP/held.txt"
"$SESLM" record --model "$MODEL" --input "$TMP/traffic.txt" --out "$TMP/tel" --threads 2 --node t >/dev/null 2>"$TMP/rec.err" ||
    fail "record: $(head -c 300 "$TMP/rec.err")"
python3 -c 'import json; print(json.dumps({"format":"seslm-plan","version":1,"method":"none","layers":[{"layer":l} for l in range(6)]}))' >"$TMP/none.json"
for v in int4 pq4; do
    extra=()
    [ "$v" = int4 ] && extra=(--exact-dtype f32 --position-dtype f32)
    ok
    timeout 600 "$SESLM" recompile --model "$MODEL" --plan "$TMP/none.json" --out "$TMP/$v" --quantize none --embeddings "$v" \
        "${extra[@]}" --telemetry "$TMP/tel" --exact-rows 300 --no-master --threads 2 >"$TMP/$v.json" 2>"$TMP/$v.err" ||
        fail "recompile --embeddings $v: $(tail -c 400 "$TMP/$v.err")"
done
ok
python3 - "$TMP" <<'PY' || fail "pq4 report / sizes / config"
import json, os, sys
t = sys.argv[1]
r4, rp = (json.load(open(os.path.join(t, v + ".json"))) for v in ("int4", "pq4"))
bad = []
if not (rp["embeddings"] == "pq4" and rp["exact_dtype"] == "int8" and rp["position_dtype"] == "int8"):
    bad.append("options %s" % {k: rp[k] for k in ("embeddings", "exact_dtype", "position_dtype")})
if not (rp["exact_rows"] >= 300 and rp["q4_rows"] > 100 and rp["pq_rows"] > 25000 and
        rp["exact_rows"] + rp["q4_rows"] + rp["pq_rows"] == 30522):
    bad.append("rows: %d exact, %d 4-bit, %d PQ" % (rp["exact_rows"], rp["q4_rows"], rp["pq_rows"]))
if not (0.9 < rp["pq_row_cos"] < rp["pq_row_cos_int4"] < 1.0):
    bad.append("row cosines: PQ %.4f, 4-bit %.4f" % (rp["pq_row_cos"], rp["pq_row_cos_int4"]))
b4, bp = (os.path.getsize(os.path.join(t, v, "model.safetensors")) for v in ("int4", "pq4"))
if not bp < b4 - 2_500_000:
    bad.append("bytes: pq4 %d, int4 %d" % (bp, b4))
q = json.load(open(os.path.join(t, "pq4", "config.json")))["seslm_quantization"]
if q["word_embeddings"] != "int4-per-row-seen+pq4-rare-rows+exact-frequent-rows" or q["position_embeddings"] != "int8-per-row" \
        or q["word_embeddings_exact_dtype"] != "int8-per-row":
    bad.append("config: %s" % q)
print("pq4: %d -> %d bytes, PQ row cos %.4f (4-bit %.4f)" % (b4, bp, rp["pq_row_cos"], rp["pq_row_cos_int4"]))
if bad:
    print("; ".join(bad), file=sys.stderr)
    sys.exit(1)
PY
for m in parent int4 pq4; do
    d=$TMP/$m
    [ $m = parent ] && d=$MODEL
    ok
    "$SESLM" embed --model "$d" --input "$TMP/held.txt" --threads 2 >"$TMP/$m.emb" 2>"$TMP/e.err" || fail "embed $m: $(tail -c 300 "$TMP/e.err")"
done
head -5 "$TMP/held.txt" >"$TMP/held5.txt"
ok
"$SESLM" embed --model "$TMP/pq4" --input "$TMP/held5.txt" --threads 1 --backend cpu-ref >"$TMP/ref.emb" 2>"$TMP/e.err" ||
    fail "embed cpu-ref: $(tail -c 300 "$TMP/e.err")"
ok
python3 - "$TMP" <<'PY' || fail "pq4 student embeddings"
import json, math, os, sys
t = sys.argv[1]
def load(n):
    return [json.loads(l)["embedding"] for l in open(os.path.join(t, n + ".emb"))]
def cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
p, e4, ep, ref = load("parent"), load("int4"), load("pq4"), load("ref")
c4 = sum(cos(a, b) for a, b in zip(p, e4)) / len(p)
cp = sum(cos(a, b) for a, b in zip(p, ep)) / len(p)
d = max(abs(x - y) for a, b in zip(ep, ref) for x, y in zip(a, b))
print("held-out cosine to the parent: int4 %.5f, pq4 %.5f; cpu vs cpu-ref max diff %.2g" % (c4, cp, d))
if len(p) != 100 or cp < 0.985 or c4 < 0.99 or d > 1e-4:
    sys.exit(1)
PY
expect 0 "" "export --format onnx of the pq4 student" -- export --model "$TMP/pq4" --format onnx --out "$TMP/pq4.onnx"
"$SESLM" record --model "$TMP/pq4" --input "$TMP/traffic.txt" --out "$TMP/tel4" --threads 2 --node t >/dev/null 2>"$TMP/rec.err" ||
    fail "record on the pq4 student: $(head -c 300 "$TMP/rec.err")"
expect 0 "" "plan on the pq4 student (widened rows)" -- plan --model "$TMP/pq4" --telemetry "$TMP/tel4" --config "$ROOT/configs/evolve.yaml" \
    --calib "$TMP/traffic.txt" --calib-lines 16 --out "$TMP/plans" --threads 2 --quiet
# the calibration text is served traffic too: its ids keep 4-bit rows even where the telemetry never showed them
sed -n 201,260p "$ROOT/data/traffic/restaurant8k_600.txt" >"$TMP/cal.txt"
ok
timeout 600 "$SESLM" recompile --model "$MODEL" --plan "$TMP/none.json" --out "$TMP/pq4c" --quantize none --embeddings pq4 \
    --telemetry "$TMP/tel" --exact-rows 300 --calibration "$TMP/cal.txt" --calibration-lines 60 --no-master --threads 2 \
    >"$TMP/pq4c.json" 2>"$TMP/pq4c.err" || fail "recompile --embeddings pq4 --calibration: $(tail -c 400 "$TMP/pq4c.err")"
"$SESLM" tokenize --model "$MODEL" --input "$TMP/cal.txt" >"$TMP/cal.ids" 2>"$TMP/tok.err" || fail "tokenize: $(tail -c 300 "$TMP/tok.err")"
python3 - "$TMP" <<'PY' || fail "calibration ids as 4-bit rows"
import json, os, struct, sys
t = sys.argv[1]
def ids4(d):  # the 4-bit rows' ids from model.safetensors
    with open(os.path.join(t, d, "model.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        e = h["embeddings.word_embeddings.weight_ids"]
        assert e["dtype"] == "I32", e
        f.seek(8 + n + e["data_offsets"][0])
        raw = f.read(e["data_offsets"][1] - e["data_offsets"][0])
        return set(struct.unpack("<%di" % (len(raw) // 4), raw))
plain, withcal = ids4("pq4"), ids4("pq4c")
cal = set(i for l in open(os.path.join(t, "cal.ids")) for i in json.loads(l)["input_ids"])
rp, rc = (json.load(open(os.path.join(t, v + ".json"))) for v in ("pq4", "pq4c"))
new = withcal - plain
print("4-bit rows: %d from the telemetry, %d with the calibration text's ids (%d new, %d calibration ids)" %
      (len(plain), len(withcal), len(new), len(cal)))
bad = []
if not plain <= withcal: bad.append("telemetry ids lost their 4-bit rows")
if not new or not new <= cal: bad.append("new 4-bit ids %s are not calibration ids" % sorted(new - cal)[:10])
if rc["q4_rows"] != len(withcal) or rc["pq_rows"] != rp["pq_rows"] - len(new): bad.append("report rows %s" % rc)
if bad:
    print("; ".join(bad), file=sys.stderr)
    sys.exit(1)
PY
expect 2 "pq3" "bad --embeddings" -- recompile --model "$MODEL" --plan "$TMP/none.json" --out "$TMP/bad" --embeddings pq3
cli_test_done
