# lib.sh — shared set-up and checks of the CLI end-to-end tests (sourced, not run).
#
#   . "$(dirname "$0")/lib.sh"
#   cli_test_init NAME "$@" [-- TOOL...]   # SESLM, MODEL (absolute), ROOT (absolute), TMP; FAILS without
#                                          # the model or a needed tool (never skips)
#   fail MSG / ok / expect RC GREP DESC -- ARGS...
#   cli_skip REQUIRE_VAR MSG               # exit 77 (skipped), or 1 when $REQUIRE_VAR is 1
#   cli_test_done                          # prints the tally, returns non-zero on any failure
# A background process whose pid is in PID is killed on exit, and TMP is removed.

cli_test_init() {
    TEST_NAME=$1
    shift
    SESLM=${1:?usage: $TEST_NAME.sh SESLM MODEL_DIR REPO_ROOT}
    MODEL=${2:?usage: $TEST_NAME.sh SESLM MODEL_DIR REPO_ROOT}
    ROOT=$(cd "${3:-.}" && pwd)
    shift 3 2>/dev/null || shift $#
    [ "${1:-}" = "--" ] && shift
    if [ ! -f "$MODEL/model.safetensors" ] || [ ! -f "$MODEL/config.json" ]; then
        echo "$TEST_NAME: no model at $MODEL: run data/fetch_model.sh (from $ROOT) first" >&2
        exit 1
    fi
    for tool in python3 "$@"; do
        if ! command -v "$tool" >/dev/null; then
            echo "$TEST_NAME: $tool is needed (ci/install-deps.sh installs it)" >&2
            exit 1
        fi
    done
    MODEL=$(cd "$MODEL" && pwd)
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/seslm_$TEST_NAME.XXXXXX")
    PID=
    trap cli_test_cleanup EXIT
    checks=0
    fails=0
}

cli_test_cleanup() {
    if [ -n "${PID:-}" ] && kill -0 "$PID" 2>/dev/null; then kill -KILL "$PID" 2>/dev/null; fi
    if [ -n "${LOAD_PID:-}" ]; then kill "$LOAD_PID" 2>/dev/null; fi # a load client left running by a failed test
    rm -rf "$TMP"
}

fail() {
    fails=$((fails + 1))
    echo "FAIL: $*" >&2
}

ok() { checks=$((checks + 1)); }

# cli_serve_start LOG ARGS...: `seslm serve --port 0 ARGS...` in the background, its output in LOG; sets PID, PORT and
# URL once it listens (PORT empty when it died or did not listen within 60 s)
cli_serve_start() {
    local log=$1
    shift
    "$SESLM" serve --port 0 "$@" >"$log" 2>&1 &
    PID=$!
    PORT=
    for _ in $(seq 1 600); do
        PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
        [ -n "$PORT" ] && break
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    URL=http://127.0.0.1:$PORT
}

# cli_load_start PATH BODY: a client POSTing BODY to $URL$PATH without pause until cli_load_stop (a node under load
# while it reloads, is promoted or rolled back)
cli_load_start() {
    rm -f "$TMP/load.stop" "$TMP/load.n" "$TMP/load.result"
    ( n=0; f=0; while [ ! -e "$TMP/load.stop" ]; do
        c=$(curl -s -o /dev/null -w '%{http_code}' "$URL$1" -d "$2")
        n=$((n + 1)); [ "$c" = 200 ] || f=$((f + 1)); echo "$n" >"$TMP/load.n"
    done; echo "$n $f" >"$TMP/load.result" ) &
    LOAD_PID=$!
}

# cli_load_stop: a handshake, not a fixed sleep — the client completes 3 more requests (on the model now serving),
# then stops; sets LOAD_N (requests) and LOAD_FAILED (answers other than 200). The client rewrites load.n as it
# goes: a read can find it empty, which counts as 0.
cli_load_stop() {
    local n0 nc
    n0=$(cat "$TMP/load.n" 2>/dev/null)
    for _ in $(seq 1 600); do
        nc=$(cat "$TMP/load.n" 2>/dev/null)
        [ "${nc:-0}" -ge $((${n0:-0} + 3)) ] && break
        sleep 0.1
    done
    touch "$TMP/load.stop"
    wait "$LOAD_PID"
    LOAD_PID=
    read -r LOAD_N LOAD_FAILED <"$TMP/load.result"
}

# expect RC GREP DESC -- ARGS...: `seslm ARGS` exits RC and its stderr or stdout matches GREP
expect() {
    local want=$1 pattern=$2 desc=$3
    shift 4
    ok
    timeout 120 "$SESLM" "$@" >"$TMP/e.out" 2>"$TMP/e.err" </dev/null
    local rc=$?
    [ "$rc" -eq "$want" ] || fail "$desc: exit $rc, expected $want ($(head -c 300 "$TMP/e.err"))"
    if [ -n "$pattern" ]; then
        grep -qE -- "$pattern" "$TMP/e.err" "$TMP/e.out" || fail "$desc: output lacks /$pattern/: $(head -c 300 "$TMP/e.err")"
    fi
}

# cli_skip REQUIRE_VAR MSG: the test cannot run (or ran only in part) here: exit 77 (ctest "skipped",
# never "passed"), or 1 when REQUIRE_VAR is 1 (ci/test.sh sets SESLM_REQUIRE_PG, _S3, _MODEL; _GPU on a
# machine with one). Checks that failed before it still fail the test.
cli_skip() {
    local req=$1
    shift
    if [ "${fails:-0}" -gt 0 ]; then
        echo "$TEST_NAME: ${checks:-0} checks, $fails failures (and: $*)" >&2
        exit 1
    fi
    if [ "${!req:-}" = 1 ]; then
        echo "$TEST_NAME: FAILED: $req=1 but $*" >&2
        exit 1
    fi
    echo "$TEST_NAME: skipped: $*"
    exit 77
}

cli_test_done() {
    echo "$TEST_NAME: $checks checks, $fails failures"
    [ "$fails" -eq 0 ]
}

# snips_feedback OUT [header|jsonl]: labelled feedback of 6 SNIPS intents x 4 examples (data/intent/snips_train50.tsv),
# text TAB label per line; with "header", a first line naming the columns (text, label); with "jsonl", JSON lines as a
# serving node's --feedback-log writes them ({"text", "intent", "time", "model"})
snips_feedback() {
    python3 - "$ROOT/data/intent/snips_train50.tsv" "$1" "${2:-}" <<'PY'
import collections, json, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
by = collections.defaultdict(list)
for t, l in rows:
    by[l].append(t)
with open(sys.argv[2], "w") as f:
    if sys.argv[3] == "header":
        f.write("text\tlabel\n")
    for l in sorted(by)[:6]:
        for t in by[l][:4]:
            if sys.argv[3] == "jsonl":
                f.write(json.dumps({"text": t, "intent": l, "time": "2026-12-07T10:00:00Z", "model": "0" * 64}) + "\n")
            else:
                f.write(f"{t}\t{l}\n")
PY
}
