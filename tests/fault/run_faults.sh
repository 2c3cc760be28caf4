#!/usr/bin/env bash
# run_faults.sh — fault injection in the manner of SQLite's (issue 14): for each command that stores
# something — record (telemetry dumps), ingest (the merged dump), recompile (a student directory),
# registry register (store + database), promote (database) — run it once to count its write points
# (write / pwrite / writev on regular files, fsync / fdatasync, rename, malloc), then again with the N-th
# of them failing (EIO, ENOSPC, a short write, ENOMEM) or with SIGKILL right there, and check after every
# run that nothing stored is lost or half-written:
#   * a final-named output is whole (dumps pass `seslm inspect`, a student loads with `seslm info`), and
#     exists only if the command succeeded or was killed after finishing it; a failure exits 1 with a
#     message, never 0, never a crash (a signal other than the injected SIGKILL);
#   * the registry keeps every version registered before, its audit chain verifies, every version it
#     lists can be fetched with its content hash checked, and an alias points at an old or a new version.
# (malloc faults only for recompile, register and promote: HDF5 itself does not survive them.)
# Points are sampled evenly when there are more than SESLM_FAULT_SAMPLES (default 8) per scenario and
# mode, so CI stays within minutes; SESLM_FAULT_SAMPLES=0 walks every point.
#
#   bash tests/fault/run_faults.sh <seslm> <libseslm_fault_shim.so> <make_tiny_model> <repo root>
set -u
SESLM=${1:?usage: run_faults.sh SESLM SHIM MAKE_TINY_MODEL REPO_ROOT}
SHIM=${2:?}
MKTINY=${3:?}
ROOT=${4:?}
SAMPLES=${SESLM_FAULT_SAMPLES:-8}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/seslm_faults.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
runs=0
fails=0
fail() {
    fails=$((fails + 1))
    echo "FAIL: $*" >&2
}

# ---- fixtures: two tiny models, a text file, a telemetry directory, a plan, a registry ------------
"$MKTINY" "$TMP/tiny" 1 && "$MKTINY" "$TMP/tiny2" 2 || { echo "run_faults: make_tiny_model failed" >&2; exit 1; }
for _ in $(seq 30); do printf 'the cat sat on the mat\nhello world\na dog\n'; done >"$TMP/in.txt"
"$SESLM" record --model "$TMP/tiny" --input "$TMP/in.txt" --out "$TMP/tel" --window 30 --node f --threads 1 \
    >/dev/null 2>"$TMP/rec.err" || { echo "run_faults: record: $(cat "$TMP/rec.err")" >&2; exit 1; }
SHA=$(python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$TMP/tiny/model.safetensors")
python3 - "$TMP/plan.json" "$SHA" <<'PY'
import json, sys
# layer 0 protected; layer 1 loses one head and 4 neurons (the tiny model: 2 layers, 4 heads, FFN 24)
json.dump({"format": "seslm-plan", "version": 1, "model_sha256": sys.argv[2], "method": "activation", "target": 0.1,
           "layers": [{"layer": 0, "remove_heads": [], "remove_neurons": []},
                      {"layer": 1, "remove_heads": [2], "remove_neurons": [1, 5, 9, 13]}],
           "embeddings": {"id_space": "unchanged"}}, open(sys.argv[1], "w"))
PY
# the tiny model has 2 layers: a policy that protects only the first lets the plan prune the second
printf 'version: 1\ntargets: [0.10]\ncap: 0.40\nprotected_layers: [0]\nmin_heads: 1\nmin_ffn: 1\n' >"$TMP/policy.yaml"
mkdir -p "$TMP/reg0"
REG0=$TMP/reg0/registry.db
"$SESLM" registry register "$TMP/tiny" --registry "$REG0" --store "$TMP/reg0/store" --by ci >/dev/null 2>"$TMP/r.err" ||
    { echo "run_faults: register: $(cat "$TMP/r.err")" >&2; exit 1; }
if ! { "$SESLM" approve 1 --by ci --reason base --registry "$REG0" >/dev/null 2>"$TMP/p.err" &&
    "$SESLM" promote 1 --registry "$REG0" --by ci --reason base >/dev/null 2>>"$TMP/p.err"; }; then
    echo "run_faults: promote: $(cat "$TMP/p.err")" >&2
    exit 1
fi
cp -a "$TMP/reg0" "$TMP/reg1"
"$SESLM" registry register "$TMP/tiny2" --registry "$TMP/reg1/registry.db" --store "$TMP/reg1/store" --by ci >/dev/null 2>&1 &&
    "$SESLM" approve 2 --by ci --reason faults --registry "$TMP/reg1/registry.db" >/dev/null 2>&1 ||
    { echo "run_faults: registry fixture failed" >&2; exit 1; }

# ---- the scenarios: set-up, the command under test, the check --------------------------------------
W=$TMP/w # the work directory of one run
setup() {
    rm -rf "$W" && mkdir -p "$W"
    case $1 in
    register) cp -a "$TMP/reg0/." "$W/" ;;
    promote) cp -a "$TMP/reg1/." "$W/" ;;
    esac
}
cmd() { # the command of scenario $1 (its argv), run in $W
    case $1 in
    record) echo record --model "$TMP/tiny" --input "$TMP/in.txt" --out "$W/out" --window 30 --node f --threads 1 ;;
    ingest) echo ingest --telemetry "$TMP/tel" --model "$TMP/tiny" --out "$W/merged.h5" ;;
    recompile) echo recompile --model "$TMP/tiny" --plan "$TMP/plan.json" --config "$TMP/policy.yaml" --out "$W/student" --threads 1 ;;
    register) echo registry register "$TMP/tiny2" --registry "$W/registry.db" --store "$W/store" --by ci ;;
    promote) echo promote 2 --registry "$W/registry.db" --by ci --reason fault ;;
    esac
}
registry_ok() { # the registry in $W: audit chain, every listed version fetchable, v1 kept
    local what=$1 want_max=$2
    "$SESLM" audit verify --registry "$W/registry.db" >/dev/null 2>"$W/a.err" || fail "$what: audit verify: $(head -c 300 "$W/a.err")"
    "$SESLM" registry list --registry "$W/registry.db" >"$W/list.json" 2>"$W/l.err" || fail "$what: registry list: $(head -c 300 "$W/l.err")"
    local versions
    versions=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
vs = d["versions"] if isinstance(d, dict) else d
print(" ".join(str(v["version"]) for v in vs))' "$W/list.json" 2>/dev/null)
    case " $versions " in *" 1 "*) ;; *) fail "$what: version 1 lost (list: $versions)" ;; esac
    for v in $versions; do
        [ "$v" -le "$want_max" ] || fail "$what: unexpected version $v"
        rm -rf "$W/fetch"
        "$SESLM" registry fetch "$v" --out "$W/fetch" --registry "$W/registry.db" --store "$W/store" >/dev/null 2>"$W/f.err" ||
            fail "$what: version $v is listed but cannot be fetched: $(head -c 300 "$W/f.err")"
    done
    echo "$versions"
}
check() { # check SCENARIO RC DESC
    local s=$1 rc=$2 what="$1 $3"
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ] && [ "$rc" -ne 137 ]; then
        fail "$what: exit $rc (a crash?): $(tail -c 300 "$W/err")"
    fi
    if [ "$rc" -eq 1 ] && [ ! -s "$W/err" ]; then fail "$what: exit 1 without a message"; fi
    case $s in
    record)
        local n=0
        for f in "$W"/out/*.h5; do
            [ -e "$f" ] || continue
            n=$((n + 1))
            "$SESLM" inspect "$f" >/dev/null 2>"$W/i.err" || fail "$what: a final dump does not read: $(head -c 300 "$W/i.err")"
        done
        [ "$rc" -ne 0 ] || [ "$n" -eq 3 ] || fail "$what: exit 0 with $n of 3 dumps"
        for f in "$W"/out/*; do
            [ -e "$f" ] || continue
            case $(basename "$f") in *.h5) ;; *) fail "$what: stray file $(basename "$f")" ;; esac
        done ;;
    ingest)
        if [ -e "$W/merged.h5" ]; then
            "$SESLM" inspect "$W/merged.h5" >/dev/null 2>"$W/i.err" || fail "$what: the merged dump does not read: $(head -c 300 "$W/i.err")"
        else
            [ "$rc" -ne 0 ] || fail "$what: exit 0 without the merged dump"
        fi ;;
    recompile)
        if [ -e "$W/student" ]; then
            "$SESLM" info --model "$W/student" >/dev/null 2>"$W/i.err" || fail "$what: the student does not load: $(head -c 300 "$W/i.err")"
        else
            [ "$rc" -ne 0 ] || fail "$what: exit 0 without the student"
        fi ;;
    register)
        local vs
        vs=$(registry_ok "$what" 2)
        [ "$rc" -ne 0 ] || case " $vs " in *" 2 "*) ;; *) fail "$what: exit 0 but version 2 not listed ($vs)" ;; esac ;;
    promote)
        registry_ok "$what" 2 >/dev/null
        local live
        live=$("$SESLM" registry show live --registry "$W/registry.db" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])' 2>/dev/null)
        case "$live" in
        1) [ "$rc" -ne 0 ] || fail "$what: exit 0 but live is still 1" ;;
        2) ;;
        *) fail "$what: live is '$live'" ;;
        esac ;;
    esac
}

points() { # points N: the sampled 1-based points of N
    local n=$1
    if [ "$SAMPLES" -le 0 ] || [ "$n" -le "$SAMPLES" ]; then
        seq 1 "$n"
    else
        python3 -c 'import sys; n, k = int(sys.argv[1]), int(sys.argv[2]); print("\n".join(str(x) for x in sorted({1 + (i * (n - 1)) // (k - 1) for i in range(k)})))' "$n" "$SAMPLES"
    fi
}

for s in record ingest recompile register promote; do
    kinds="write,fsync,rename malloc"
    # HDF5 1.10 does not survive a failed allocation (exit(-1) in H5I_register, a crash in its package
    # initialisation when a strdup fails): the commands that read or write dumps get no malloc faults
    case $s in record | ingest) kinds="write,fsync,rename" ;; esac
    for ops in $kinds; do
        setup "$s"
        # shellcheck disable=SC2046
        SESLM_FAULT_OPS=$ops SESLM_FAULT_COUNT=$TMP/count LD_PRELOAD=$SHIM "$SESLM" $(cmd "$s") >"$W/out.txt" 2>"$W/err"
        rc=$?
        [ "$rc" -eq 0 ] || { fail "$s: fails without a fault: $(tail -c 300 "$W/err")"; continue; }
        check "$s" 0 "(no fault)"
        n=$(cat "$TMP/count" 2>/dev/null || echo 0)
        modes="eio enospc short kill"
        [ "$ops" = malloc ] && modes="enomem"
        echo "run_faults: $s: $n $ops points; modes: $modes"
        [ "$n" -gt 0 ] || { fail "$s: no $ops point counted"; continue; }
        for mode in $modes; do
            for at in $(points "$n"); do
                setup "$s"
                # shellcheck disable=SC2046
                SESLM_FAULT_OPS=$ops SESLM_FAULT_AT=$at SESLM_FAULT_MODE=$mode LD_PRELOAD=$SHIM timeout 60 "$SESLM" $(cmd "$s") \
                    >"$W/out.txt" 2>"$W/err"
                rc=$?
                runs=$((runs + 1))
                check "$s" "$rc" "($ops #$at of $n, $mode: exit $rc)"
            done
        done
    done
done
echo "run_faults: $runs fault runs, $fails failures"
[ "$fails" -eq 0 ]
