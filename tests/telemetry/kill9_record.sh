#!/usr/bin/env bash
# kill9_record.sh — `seslm record` killed with SIGKILL at several moments (small windows, so that many
# kills land while a dump is being written) must leave only whole dumps under final names: every
# *.h5 passes `seslm inspect`, every path the process printed exists, and anything else in the output
# directory is a hidden temporary file of the killed process (".<name>.h5.tmp.<pid>"), which readers
# and the ingest ignore.
#
#   bash tests/telemetry/kill9_record.sh <seslm> <model dir> <work dir> <repo root>
set -u
SESLM=${1:?usage: kill9_record.sh SESLM MODEL_DIR WORK_DIR REPO_ROOT}
MODEL=${2:?}
WORK=${3:?}
ROOT=${4:?}
mkdir -p "$WORK"
for _ in $(seq 40); do cat "$ROOT/data/bench/short.txt"; done >"$WORK/long.txt"

fails=0
finals=0
temps=0
fail() {
    fails=$((fails + 1))
    echo "FAIL (kill -9): $*" >&2
}
for delay in 0.6 1.1 1.7 2.3 2.9; do
    out="$WORK/k9_$delay"
    mkdir -p "$out"
    "$SESLM" record --model "$MODEL" --input "$WORK/long.txt" --out "$out" --window 7 --threads 1 --node k9 \
        >"$out.paths" 2>"$out.err" &
    pid=$!
    sleep "$delay"
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rc=$?
    [ "$rc" -eq 137 ] || fail "delay $delay: record exited with $rc before the kill: $(tail -3 "$out.err")"
    n=0
    for f in "$out"/*.h5; do
        [ -e "$f" ] || continue
        n=$((n + 1))
    done
    if [ "$n" -gt 0 ]; then
        "$SESLM" inspect "$out"/*.h5 >"$out.json" 2>"$out.inspect_err" ||
            fail "delay $delay: a final file does not read: $(head -3 "$out.inspect_err")"
        [ "$(grep -c '"ok":true' "$out.json")" -eq "$n" ] || fail "delay $delay: inspect did not accept all $n files"
    fi
    while IFS= read -r p; do
        [ -f "$p" ] || fail "delay $delay: printed path $p does not exist"
    done <"$out.paths"
    for f in "$out"/* "$out"/.*; do
        name=$(basename "$f")
        case "$name" in
        . | .. | '*' | '.*') ;;
        .*.h5.tmp."$pid") temps=$((temps + 1)) ;;
        .*) fail "delay $delay: unexpected hidden file $name" ;;
        *.h5) ;;
        *) fail "delay $delay: unexpected file $name" ;;
        esac
    done
    finals=$((finals + n))
done
[ "$finals" -gt 0 ] || fail "no dump was written before any of the kills"
echo "kill -9: $finals whole dumps, $temps temporary files left by killed writers, $fails failures"
[ "$fails" -eq 0 ]
