#!/usr/bin/env bash
# test_drift.sh — `seslm ingest` and `seslm drift` end to end on the real model and the corpora of
# data/traffic/ (each `seslm record` runs with --threads 1: the CI machine is small and shared):
#   * usage errors exit 2 (also an invalid --config, naming file:line: key);
#   * ingest of 3 wiki dumps: one merged dump (node "merged", totals = sums, inspect accepts it), JSON
#     summary; a corrupt dump and a temporary file beside them: the corrupt one skipped and named,
#     exit 0; an empty directory / missing directory: exit 3; --out existing: exit 1;
#   * drift wiki (600 lines) vs restaurant first half (300): exit 1, "drift": true, every embedding and
#     vocabulary check fired; restaurant first half vs second half: exit 0, "drift": false;
#   * a corrupt dump in the current directory is skipped and reported, the verdict unchanged;
#   * an empty or missing directory, or a directory of only corrupt dumps: exit 3 (broken, not drift).
#
#   bash tests/cli/test_drift.sh <path to seslm> <model dir> <repo root>
set -u

. "$(dirname "$0")/lib.sh"
cli_test_init test_drift "$@"
TRAFFIC="$ROOT/data/traffic"

# py FILE EXPR: evaluates EXPR over the JSON object in FILE (`d`), prints it
py() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

# ---- recordings -----------------------------------------------------------------------------------
head -300 "$TRAFFIC/restaurant8k_600.txt" >"$TMP/restA.txt"
tail -n +301 "$TRAFFIC/restaurant8k_600.txt" >"$TMP/restB.txt"
rec() { # rec INPUT DIR NODE WINDOW
    ok
    timeout 120 "$SESLM" record --model "$MODEL" --input "$1" --out "$2" --node "$3" --window "$4" --threads 1 \
        >/dev/null 2>"$TMP/rec.err" || fail "record $1: exit $? ($(head -c 300 "$TMP/rec.err"))"
}
rec "$TRAFFIC/wiki_600.txt" "$TMP/wiki" wiki 200
rec "$TMP/restA.txt" "$TMP/restA" rest-a 150
rec "$TMP/restB.txt" "$TMP/restB" rest-b 150
[ "$(ls "$TMP"/wiki/*.h5 | wc -l)" -eq 3 ] || fail "wiki: expected 3 dumps"

# ---- usage -----------------------------------------------------------------------------------------
# ---- a dump with a metadata checksum error beside good ones: skipped and reported, the same window
# twice (a copy under another name) merged once, and HDF5 left clean (no "infinite loop closing library") ----
mkdir -p "$TMP/mixed"
cp "$TMP"/restB/*.h5 "$TMP/mixed/"
first=$(ls "$TMP"/restB/*.h5 | head -1)
base=$(basename "$first")
cp "$first" "$TMP/mixed/rest-c${base#rest-b}" # the same window under another node's name
python3 - "$first" "$TMP/mixed/rest-d${base#rest-b}" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
i = b.find(b"OHDR", 100)  # an object header after the root's: its checksum no longer matches
b[i + 6] ^= 0x01
open(sys.argv[2], "wb").write(bytes(b))
PY
for cmd in "ingest --model $MODEL --telemetry $TMP/mixed --out $TMP/mixed.h5" "drift --model $MODEL --reference $TMP/restA --current $TMP/mixed"; do
    ok
    # shellcheck disable=SC2086
    "$SESLM" $cmd >"$TMP/mixed.out" 2>"$TMP/mixed.err"
    rc=$?
    [ "$rc" -le 1 ] || fail "$cmd: exit $rc: $(head -c 300 "$TMP/mixed.err")"
    grep -q "infinite loop" "$TMP/mixed.err" && fail "$cmd: HDF5 objects left at exit: $(head -c 300 "$TMP/mixed.err")"
    grep -q "rest-d.*checksum" "$TMP/mixed.err" || fail "$cmd: the corrupt dump is not reported: $(head -c 300 "$TMP/mixed.err")"
    grep -q "rest-c.*duplicate of" "$TMP/mixed.err" || fail "$cmd: the copy is not reported as a duplicate: $(head -c 300 "$TMP/mixed.err")"
done
python3 - "$TMP/mixed.h5" "$TMP/restB" "$SESLM" "$MODEL" <<'PY' || fail "ingest of the mixed directory did not count each window once"
import json, subprocess, sys
merged = json.loads(subprocess.run([sys.argv[3], "inspect", sys.argv[1]], capture_output=True, text=True, check=True).stdout)
clean = json.loads(subprocess.run([sys.argv[3], "ingest", "--model", sys.argv[4], "--telemetry", sys.argv[2], "--out", sys.argv[1] + ".clean.h5"],
                                  capture_output=True, text=True, check=True).stdout)
got, want = merged["n_sequences"], clean["totals"]["n_sequences"]
print("mixed: %d sequences, clean: %d" % (got, want), file=sys.stderr)
sys.exit(0 if got == want else 1)
PY

expect 0 "usage: seslm drift" "drift --help" -- drift --help
expect 0 "usage: seslm ingest" "ingest --help" -- ingest --help
expect 2 "--reference and --current are required" "drift without arguments" -- drift
expect 2 "unknown option '--bogus'" "drift unknown option" -- drift --bogus
expect 2 "--out FILE and at least one" "ingest without --out" -- ingest --telemetry "$TMP/wiki"
printf 'vocabulary:\n  js_excess_max: 2\n' >"$TMP/bad.yaml"
expect 2 "bad.yaml:2: vocabulary.js_excess_max: expected a number in \[0, 1\], got '2'" "invalid config" -- \
    drift --reference "$TMP/restA" --current "$TMP/restB" --config "$TMP/bad.yaml"
printf 'vocabulary:\n  js_maxx: 0.2\n' >"$TMP/bad2.yaml"
expect 2 "bad2.yaml:2: vocabulary.js_maxx: unknown key" "unknown config key" -- \
    drift --reference "$TMP/restA" --current "$TMP/restB" --config "$TMP/bad2.yaml"

# ---- ingest ------------------------------------------------------------------------------------------
expect 0 '"files_read":3' "ingest wiki" -- ingest --telemetry "$TMP/wiki" --model "$MODEL" --out "$TMP/merged.h5"
cp "$TMP/e.out" "$TMP/ingest.json"
ok
[ "$(py "$TMP/ingest.json" "(d['ok'], d['files_skipped'], d['totals']['n_sequences'], d['totals']['n_requests'], d['totals']['reservoir_rows'])")" = "(True, 0, 600, 600, 600)" ] ||
    fail "ingest summary: $(cat "$TMP/ingest.json")"
ok
"$SESLM" inspect --model "$MODEL" "$TMP/merged.h5" >"$TMP/insp.json" 2>&1 || fail "inspect merged: $(head -c 300 "$TMP/insp.json")"
"$SESLM" inspect --model "$MODEL" "$TMP"/wiki/*.h5 >"$TMP/insp3.json" 2>&1
got=$(python3 -c "
import json
m=json.loads(open('$TMP/insp.json').readline()); p=[json.loads(l) for l in open('$TMP/insp3.json')]
print(m['node_id'], m['n_tokens']==sum(x['n_tokens'] for x in p), m['n_batches']==sum(x['n_batches'] for x in p),
      m['window_start_ns']==min(x['window_start_ns'] for x in p), m['window_end_ns']==max(x['window_end_ns'] for x in p))")
[ "$got" = "merged True True True True" ] || fail "merged dump vs its inputs: $got"
expect 1 "exists" "ingest onto an existing file" -- ingest --telemetry "$TMP/wiki" --model "$MODEL" --out "$TMP/merged.h5"
# a corrupt dump and a temporary file beside good ones
cp -r "$TMP/restB" "$TMP/restBc"
head -c 20000 "$(ls "$TMP"/restB/*.h5 | head -1)" >"$TMP/restBc/zz-20260101T000000.000Z-000009.h5"
echo junk >"$TMP/restBc/.rest-b-x.h5.tmp.1"
expect 0 "skipped .*zz-20260101T000000.000Z-000009.h5" "ingest with a corrupt dump" -- \
    ingest --telemetry "$TMP/restBc" --model "$MODEL" --out "$TMP/mergedB.h5"
ok
[ "$(py "$TMP/e.out" "(d['files_read'], d['files_skipped'], d['totals']['n_sequences'])")" = "(2, 1, 300)" ] ||
    fail "ingest with a corrupt dump: $(cat "$TMP/e.out")"
mkdir "$TMP/empty"
expect 3 "no readable dump" "ingest of an empty directory" -- ingest --telemetry "$TMP/empty" --model "$MODEL" --out "$TMP/m2.h5"
expect 3 "cannot list" "ingest of a missing directory" -- ingest --telemetry "$TMP/nope" --model "$MODEL" --out "$TMP/m3.h5"

# ---- drift -------------------------------------------------------------------------------------------
expect 1 '"drift":true' "wiki vs restaurant" -- drift --reference "$TMP/wiki" --current "$TMP/restA" \
    --config "$ROOT/configs/drift.yaml" --model "$MODEL"
cp "$TMP/e.out" "$TMP/wr.json"
ok
got=$(py "$TMP/wr.json" "[d['checks'][k]['fired'] for k in ('embedding_mmd','embedding_frechet_diag','vocabulary_js','unseen_token_rate')] + [d['checks']['intent_js']['status'], d['checks']['intent_js'].get('note')]")
[ "$got" = "[True, True, True, True, 'skipped', 'not recorded']" ] || fail "wiki vs restaurant checks: $got"
echo "wiki vs restaurant: $(py "$TMP/wr.json" "{k: [round(v.get(x, -1), 4) for x in ('value', 'observed', 'expected_without_drift')] for k, v in d['checks'].items()}") p=$(py "$TMP/wr.json" "d['checks']['embedding_mmd']['p_value']")"
expect 0 '"drift":false' "restaurant half A vs half B" -- drift --reference "$TMP/restA" --current "$TMP/restB" \
    --config "$ROOT/configs/drift.yaml" --model "$MODEL"
cp "$TMP/e.out" "$TMP/ab.json"
ok
[ "$(py "$TMP/ab.json" "[v['status'] for v in d['checks'].values()]")" = "['ok', 'ok', 'ok', 'ok', 'skipped']" ] ||
    fail "half vs half checks: $(cat "$TMP/ab.json")"
echo "restaurant A vs B: $(py "$TMP/ab.json" "{k: [round(v.get(x, -1), 4) for x in ('value', 'observed', 'expected_without_drift')] for k, v in d['checks'].items()}") p=$(py "$TMP/ab.json" "d['checks']['embedding_mmd']['p_value']")"
# without --model / --config: the reference sets the hash, built-in thresholds; same verdict
expect 0 '"drift":false' "half vs half, defaults" -- drift --reference "$TMP/restA" --current "$TMP/restB"
# a corrupt dump in the current side: skipped and reported, verdict unchanged
expect 0 '"drift":false' "current with a corrupt dump" -- drift --reference "$TMP/restA" --current "$TMP/restBc"
ok
[ "$(py "$TMP/e.out" "(d['current']['files_read'], d['current']['files_skipped'])")" = "(2, 1)" ] ||
    fail "corrupt dump not reported: $(head -c 500 "$TMP/e.out")"
grep -q "skipped .*zz-20260101" "$TMP/e.err" || fail "no warning for the corrupt dump: $(cat "$TMP/e.err")"
# broken inputs: distinct exit code 3
expect 3 "no readable dump in .*empty" "empty current directory" -- drift --reference "$TMP/restA" --current "$TMP/empty"
expect 3 "cannot read .*nope" "missing reference directory" -- drift --reference "$TMP/nope" --current "$TMP/restB"
mkdir "$TMP/onlybad"
cp "$TMP/restBc/zz-20260101T000000.000Z-000009.h5" "$TMP/onlybad/"
expect 3 "no readable dump" "directory of corrupt dumps" -- drift --reference "$TMP/restA" --current "$TMP/onlybad"
expect 3 "" "bad --model" -- drift --reference "$TMP/restA" --current "$TMP/restB" --model "$TMP/nomodel"

cli_test_done
