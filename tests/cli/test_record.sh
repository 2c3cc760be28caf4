#!/usr/bin/env bash
# test_record.sh — `seslm record` and `seslm inspect` end to end on the real model:
#   * usage errors exit 2, unusable inputs / outputs exit 1, with a message;
#   * 300 lines with --window 100 write exactly 3 dumps named <node>-<start>-<seq>.h5 and nothing else;
#     `seslm inspect` accepts them (100 sequences each, tokens adding up to `seslm tokenize`), h5dump -H
#     reads them, and tests/telemetry/check_dump.py (h5py, in tests/telemetry/.venv) checks each
#     against every group / dataset / attribute / dtype / shape documented in docs/telemetry.md and
#     the documented relations (sums, sketch hash, model SHA-256 = sha256sum of model.safetensors);
#   * invalid UTF-8 lines are skipped with their line numbers and counted in n_rejected (--strict
#     stops instead); standard input works;
#   * inspect rejects a truncated file, random bytes and a wrong model hash (naming both hashes);
#   * SIGTERM writes the partial window and exits 143; SIGKILL at any moment leaves only whole dumps
#     under final names (tests/telemetry/kill9_record.sh).
#
#   bash tests/cli/test_record.sh <path to seslm> <model dir> <repo root>
#
# Without the model, python3 or the package index (for the h5py venv) the test FAILS: run
# data/fetch_model.sh and ci/install-deps.sh first.
set -u

. "$(dirname "$0")/lib.sh"
cli_test_init test_record "$@"

# json FILE EXPR: evaluates a Python expression over the JSON lines of FILE (a list `d`), prints it
json() { python3 -c "import json,sys; d=[json.loads(l) for l in open(sys.argv[1])]; print($2)" "$1"; }

cp "$ROOT/data/bench/short.txt" "$TMP/short.txt"
head -300 "$TMP/short.txt" >"$TMP/in300.txt"

# ---- usage (2) and unusable input / output (1) --------------------------------------------------
expect 0 "usage: seslm record" "record --help" -- record --help
expect 0 "usage: seslm inspect" "inspect --help" -- inspect --help
expect 2 "--input FILE and --out DIR are required" "no arguments" -- record
expect 2 "--window must be an integer" "window 0" -- record --input "$TMP/in300.txt" --out "$TMP/o" --window 0
expect 2 "--batch must be an integer" "batch x" -- record --input "$TMP/in300.txt" --out "$TMP/o" --batch x
expect 2 "invalid node id 'a/b'" "bad node id" -- record --input "$TMP/in300.txt" --out "$TMP/o" --node a/b
expect 2 "unknown option '--bogus'" "unknown option" -- record --bogus
expect 1 "cannot open .*nope.txt" "missing input" -- record --model "$MODEL" --input "$TMP/nope.txt" --out "$TMP/o"
touch "$TMP/afile"
expect 1 "is not a directory" "out is a file" -- record --model "$MODEL" --input "$TMP/in300.txt" --out "$TMP/afile"
expect 1 "cannot create the output directory" "out parent missing" -- record --model "$MODEL" --input "$TMP/in300.txt" --out "$TMP/x/y/z"
expect 1 "" "bad model dir" -- record --model "$TMP/nomodel" --input "$TMP/in300.txt" --out "$TMP/o"
expect 2 "no FILE given" "inspect without files" -- inspect

# ---- 300 lines, windows of 100: 3 dumps ----------------------------------------------------------
D="$TMP/d300"
ok
timeout 300 "$SESLM" record --model "$MODEL" --input "$TMP/in300.txt" --out "$D" --window 100 --node ci-node \
    --threads 1 >"$TMP/paths" 2>"$TMP/rec.err" || fail "record 300 lines: exit $? ($(head -c 300 "$TMP/rec.err"))"
[ "$(wc -l <"$TMP/paths")" -eq 3 ] || fail "record printed $(wc -l <"$TMP/paths") paths, expected 3"
[ "$(ls -A "$D" | wc -l)" -eq 3 ] || fail "the out dir holds $(ls -A "$D" | tr '\n' ' '), expected 3 dumps"
n=0
for f in "$D"/*.h5; do
    n=$((n + 1))
    ok
    [[ "$(basename "$f")" =~ ^ci-node-[0-9]{8}T[0-9]{6}\.[0-9]{3}Z-00000$n\.h5$ ]] || fail "dump name $(basename "$f")"
    grep -qxF "$f" "$TMP/paths" || fail "$f was not printed"
done
ok
"$SESLM" inspect --model "$MODEL" "$D"/*.h5 >"$TMP/insp.json" 2>"$TMP/insp.err" || fail "inspect: $(head -c 300 "$TMP/insp.err")"
got=$(json "$TMP/insp.json" "[(x['ok'], x['dump_seq'], x['n_sequences'], x['n_requests'], x['n_rejected'], x['node_id'], x['model_id']) for x in d]")
want="[(True, 1, 100, 100, 0, 'ci-node', 'all-MiniLM-L6-v2'), (True, 2, 100, 100, 0, 'ci-node', 'all-MiniLM-L6-v2'), (True, 3, 100, 100, 0, 'ci-node', 'all-MiniLM-L6-v2')]"
[ "$got" = "$want" ] || fail "inspect summary: $got"
# a second run into the same directory continues the node's sequence (another node starts at 1)
ok
head -5 "$TMP/in300.txt" >"$TMP/in5.txt"
"$SESLM" record --model "$MODEL" --input "$TMP/in5.txt" --out "$D" --node ci-node --threads 1 >"$TMP/p4" 2>&1 &&
    "$SESLM" record --model "$MODEL" --input "$TMP/in5.txt" --out "$D" --node ci-node2 --threads 1 >>"$TMP/p4" 2>&1 ||
    fail "second record into $D: $(cat "$TMP/p4")"
grep -qE '/ci-node-[0-9T.]+Z-000004\.h5$' "$TMP/p4" && grep -qE '/ci-node2-[0-9T.]+Z-000001\.h5$' "$TMP/p4" ||
    fail "sequence numbers of later runs: $(cat "$TMP/p4")"
rm -f $(cat "$TMP/p4")
# tokens of the three windows = tokens of `seslm tokenize` over the same lines
ok
"$SESLM" tokenize --model "$MODEL" --input "$TMP/in300.txt" >"$TMP/tok.json" 2>/dev/null || fail "tokenize failed"
tok=$(json "$TMP/tok.json" "sum(len(x['input_ids']) for x in d)")
rec=$(json "$TMP/insp.json" "sum(x['n_tokens'] for x in d)")
[ "$tok" = "$rec" ] && [ "$tok" -gt 300 ] || fail "dumps hold $rec tokens, tokenize gives $tok"
sha=$(sha256sum "$MODEL/model.safetensors" | cut -d' ' -f1)
[ "$(json "$TMP/insp.json" "set(x['model_sha256'] for x in d)")" = "{'$sha'}" ] || fail "model sha256 differs from sha256sum"
top=$(json "$TMP/insp.json" "d[0]['top_tokens'][0]['token']")
case "$top" in "[CLS]" | "[SEP]") ;; *) fail "most frequent token of a window is '$top', expected [CLS] or [SEP]" ;; esac
if command -v h5dump >/dev/null; then
    for f in "$D"/*.h5; do
        ok
        h5dump -H "$f" >"$TMP/h5dump.txt" 2>&1 || fail "h5dump -H $f: $(head -c 300 "$TMP/h5dump.txt")"
        grep -q 'DATASET "reservoir"' "$TMP/h5dump.txt" || fail "h5dump -H $f shows no reservoir"
    done
else
    echo "note: h5dump not installed (hdf5-tools); skipping the h5dump check" >&2
fi

# ---- h5py: every documented object, dtype, shape and relation -------------------------------------
ok
if bash "$ROOT/tests/telemetry/setup_venv.sh" >"$TMP/venv.log" 2>&1; then
    PYH5="$ROOT/tests/telemetry/.venv/bin/python"
    "$PYH5" "$ROOT/tests/telemetry/check_dump.py" --doc "$ROOT/docs/telemetry.md" --model-dir "$MODEL" \
        --expect n_sequences=100 --expect n_requests=100 --expect n_rejected=0 --expect node_id=ci-node \
        --expect model_id=all-MiniLM-L6-v2 "$D"/*.h5 >"$TMP/check.out" 2>&1 ||
        fail "check_dump.py: $(head -c 2000 "$TMP/check.out")"
    cat "$TMP/check.out"
else
    PYH5=
    fail "cannot set up tests/telemetry/.venv (h5py): $(tail -c 500 "$TMP/venv.log")"
fi

# ---- invalid UTF-8 lines: skipped, counted, line numbers named; --strict stops -------------------
printf 'hello world\n\xff\xfe broken\ngood morning\n\xc3\x28 bad continuation\n\nlast line' >"$TMP/utf8.txt"
ok
"$SESLM" record --model "$MODEL" --input "$TMP/utf8.txt" --out "$TMP/du" --node u --threads 1 >"$TMP/u.paths" 2>"$TMP/u.err" ||
    fail "record with invalid lines: exit $?"
grep -q "utf8.txt:2: not valid UTF-8, skipped" "$TMP/u.err" || fail "no warning for line 2: $(cat "$TMP/u.err")"
grep -q "utf8.txt:4: not valid UTF-8, skipped" "$TMP/u.err" || fail "no warning for line 4: $(cat "$TMP/u.err")"
grep -q "2 of 6 lines were not valid UTF-8" "$TMP/u.err" || fail "no summary of the skipped lines: $(cat "$TMP/u.err")"
"$SESLM" inspect "$TMP"/du/*.h5 >"$TMP/u.json" 2>&1 || fail "inspect of the UTF-8 dump failed"
got=$(json "$TMP/u.json" "[(x['n_rejected'], x['n_sequences'], x['n_requests']) for x in d]")
[ "$got" = "[(2, 4, 4)]" ] || fail "UTF-8 dump: (n_rejected, n_sequences, n_requests) = $got, expected [(2, 4, 4)]"
if [ -n "$PYH5" ]; then
    ok
    "$PYH5" "$ROOT/tests/telemetry/check_dump.py" --doc "$ROOT/docs/telemetry.md" --model-dir "$MODEL" \
        --expect n_rejected=2 --expect n_sequences=4 "$TMP"/du/*.h5 >"$TMP/check2.out" 2>&1 ||
        fail "check_dump.py (UTF-8 dump): $(head -c 2000 "$TMP/check2.out")"
fi
expect 1 "utf8.txt:2: .*UTF-8" "--strict" -- record --model "$MODEL" --input "$TMP/utf8.txt" --out "$TMP/ds" --strict --threads 1
# standard input, and an empty input (no dump)
ok
printf 'from stdin\nsecond\n' | "$SESLM" record --model "$MODEL" --input - --out "$TMP/dstdin" --node s --threads 1 \
    >"$TMP/s.paths" 2>"$TMP/s.err" || fail "record from stdin: exit $?"
[ "$(ls "$TMP"/dstdin/*.h5 2>/dev/null | wc -l)" -eq 1 ] || fail "record from stdin wrote no dump"
: >"$TMP/empty.txt"
expect 0 "no input, no dump written" "empty input" -- record --model "$MODEL" --input "$TMP/empty.txt" --out "$TMP/dempty"
[ -z "$(ls -A "$TMP/dempty")" ] || fail "empty input wrote $(ls -A "$TMP/dempty")"

# ---- inspect rejects broken and foreign files ----------------------------------------------------
first=$(head -1 "$TMP/paths")
head -c 100000 "$first" >"$TMP/truncated.h5"
expect 1 "truncated.h5" "inspect a truncated dump" -- inspect "$TMP/truncated.h5"
grep -q '"ok":false' "$TMP/e.out" || fail "inspect of a truncated dump printed no {\"ok\": false}"
head -c 5000 /dev/urandom >"$TMP/random.h5"
expect 1 "random.h5: not an HDF5 file" "inspect random bytes" -- inspect "$TMP/random.h5"
other=0000000000000000000000000000000000000000000000000000000000000000
expect 1 "$sha, expected $other" "inspect with a wrong model hash" -- inspect --sha256 "$other" "$first"
expect 0 '"ok":true' "inspect with the right model hash" -- inspect --sha256 "$sha" "$first"
expect 1 "" "inspect: one good file, one bad" -- inspect "$first" "$TMP/truncated.h5"
[ "$(grep -c '"ok":true' "$TMP/e.out")" -eq 1 ] || fail "inspect did not summarise the good file next to a bad one"

# ---- SIGTERM: the partial window is written, exit 143 ---------------------------------------------
for _ in 1 2 3 4 5 6 7 8; do cat "$TMP/short.txt"; done >"$TMP/long.txt"
ok
"$SESLM" record --model "$MODEL" --input "$TMP/long.txt" --out "$TMP/dterm" --window 50 --node t --threads 1 \
    >"$TMP/t.paths" 2>"$TMP/t.err" &
PID=$!
# handshake, not a fixed sleep: SIGTERM once the first window's dump is written (its path printed)
for _ in $(seq 1 1200); do
    [ -s "$TMP/t.paths" ] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.05
done
[ -s "$TMP/t.paths" ] || fail "record wrote no first dump within 60 s: $(tail -c 300 "$TMP/t.err")"
kill -TERM "$PID"
wait "$PID"
rc=$?
PID=
[ "$rc" -eq 143 ] || fail "record after SIGTERM: exit $rc, expected 143 ($(tail -c 300 "$TMP/t.err"))"
grep -q "interrupted by signal 15" "$TMP/t.err" || fail "no interruption message: $(tail -c 300 "$TMP/t.err")"
[ -z "$(ls -A "$TMP/dterm" | grep -v '\.h5$')" ] || fail "SIGTERM left $(ls -A "$TMP/dterm")"
nt=$(ls "$TMP"/dterm/*.h5 2>/dev/null | wc -l)
[ "$nt" -ge 1 ] && [ "$nt" -eq "$(wc -l <"$TMP/t.paths")" ] || fail "SIGTERM: $nt dumps, $(wc -l <"$TMP/t.paths") printed"
if [ "$nt" -ge 1 ]; then
    "$SESLM" inspect "$TMP"/dterm/*.h5 >"$TMP/t.json" 2>&1 || fail "inspect after SIGTERM failed"
    got=$(json "$TMP/t.json" "all(x['n_sequences'] + x['n_rejected'] == 50 for x in d[:-1]) and 0 < d[-1]['n_sequences'] <= 50")
    [ "$got" = "True" ] || fail "SIGTERM: windows are not 50 lines each with a partial last one"
fi

# ---- progress in a log (stderr not a terminal): plain periodic lines with rate and ETA, never a '\r' --------
ok
SESLM_PROGRESS_SECONDS=0.05 timeout 300 "$SESLM" record --model "$MODEL" --input "$TMP/in300.txt" --out "$TMP/dprog" \
    --window 100 --threads 1 --progress >/dev/null 2>"$TMP/prog.err" || fail "record --progress: exit $?"
lines=$(grep -c '^seslm record [0-9]*/300 inputs' "$TMP/prog.err")
[ "$lines" -ge 2 ] || fail "record --progress in a log: $lines progress lines, expected periodic ones: $(head -c 400 "$TMP/prog.err")"
grep -q 'ETA' "$TMP/prog.err" || fail "record --progress: no line with an ETA: $(head -c 400 "$TMP/prog.err")"
grep -q '300/300 inputs (100%).*3 dumps, 0 rejected' "$TMP/prog.err" || fail "record --progress: no final line: $(tail -c 300 "$TMP/prog.err")"
if grep -q $'\r' "$TMP/prog.err"; then fail "record --progress wrote a carriage return into a log"; fi

# ---- SIGKILL at any moment: only whole dumps under final names ------------------------------------
ok
bash "$ROOT/tests/telemetry/kill9_record.sh" "$SESLM" "$MODEL" "$TMP/k9" "$ROOT" || fail "kill -9 test"

cli_test_done
