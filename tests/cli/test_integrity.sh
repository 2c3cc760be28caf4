#!/usr/bin/env bash
# test_integrity.sh — a tampered stored model never goes live (issue 14 finding 1), on the real model:
#   * two versions registered; v1 live and served from the store; one byte flipped in v2's stored
#     model.safetensors;
#   * `promote 2 --notify` exits 1 naming the tampering, the alias stays on v1, the audit log's last row
#     is a notify with "reloaded": false and the reason, and the node still serves v1;
#   * POST /admin/reload of the tampered directory: 422, still v1; `serve` started on it exits 1;
#     `registry fetch` refuses it;
#   * a file added to the served store directory, then SIGHUP: the reload is refused, v1 still answers
#     with the same embedding as before;
#   * without tampering, promote --notify reloads (so the refusals above are the check, not a broken path).
#
#   bash tests/cli/test_integrity.sh <path to seslm> <model dir> <repo root>
set -u
. "$(dirname "$0")/lib.sh"
cli_test_init test_integrity "$@" -- curl

mkdir -p "$TMP/m1"
for f in config.json model.safetensors vocab.txt tokenizer_config.json special_tokens_map.json \
    sentence_bert_config.json modules.json; do
    [ -f "$MODEL/$f" ] && { ln "$MODEL/$f" "$TMP/m1/$f" 2>/dev/null || cp "$MODEL/$f" "$TMP/m1/$f"; }
done
[ -d "$MODEL/1_Pooling" ] && cp -r "$MODEL/1_Pooling" "$TMP/m1/"
mkdir -p "$TMP/m2" "$TMP/m3"
cp -r "$TMP/m1/." "$TMP/m2/"
cp -r "$TMP/m1/." "$TMP/m3/"
echo "second version" >"$TMP/m2/NOTE.txt"
echo "third version" >"$TMP/m3/NOTE.txt"

export SESLM_REGISTRY=sqlite:$TMP/registry.db SESLM_STORE=$TMP/store SESLM_POLICY=$ROOT/configs/governance.yaml SESLM_ACTOR=ci
sha_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sha256"])' "$1"; }
expect 0 '"existed":false' "register m1" -- registry register "$TMP/m1"
SHA1=$(sha_of "$TMP/e.out")
expect 0 '"existed":false' "register m2" -- registry register "$TMP/m2"
SHA2=$(sha_of "$TMP/e.out")
expect 0 '"existed":false' "register m3" -- registry register "$TMP/m3"
SHA3=$(sha_of "$TMP/e.out")
for v in 1 2 3; do expect 0 '"approved"' "approve $v" -- approve $v --by alice --reason test; done
expect 0 '"version":1' "promote 1" -- promote 1 --reason first
S1=$TMP/store/sha256/$SHA1 S2=$TMP/store/sha256/$SHA2

# the stored weights of v2: one byte flipped in the middle of the tensor data
python3 - "$S2/model.safetensors" <<'PY'
import sys
p = sys.argv[1]
with open(p, "r+b") as f:
    f.seek(40_000_000)
    b = f.read(1)
    f.seek(40_000_000)
    f.write(bytes([b[0] ^ 0x10]))
PY

echo "token-$$-integrity" >"$TMP/token"
chmod 600 "$TMP/token"
LOG=$TMP/server.log
"$SESLM" serve --model "$S1" --port 0 --threads 1 --admin-token-file "$TMP/token" >"$LOG" 2>&1 &
PID=$!
PORT=
for _ in $(seq 1 600); do
    PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$LOG" | head -1)
    [ -n "$PORT" ] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$PORT" ]; then
    fail "the server did not start: $(cat "$LOG")"
else
    URL=http://127.0.0.1:$PORT
    embed() { curl -s "$URL/v1/embed" -d '{"texts":["the integrity of stored models"]}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["embeddings"][0][:8])'; }
    ok
    E0=$(embed)
    [ -n "$E0" ] || fail "no embedding from the node"

    expect 1 'tampered' "promote --notify of a tampered artifact" -- promote 2 --notify "$URL" --admin-token-file "$TMP/token" --reason nightly
    expect 0 '"aliases":\["live"\]' "v1 stays live in the registry" -- registry show 1
    expect 0 '"action":"notify".*"reloaded":false.*tampered' "refusal audited (reloaded: false, reason)" -- audit log --limit 1
    ok
    curl -s "$URL/healthz" | grep -q "\"$SHA1@" || fail "after the refused promotion the node serves $(curl -s "$URL/healthz")"
    ok
    [ "$(embed)" = "$E0" ] || fail "the node's embedding changed"

    # the node checks on its own too: a direct reload of the tampered directory
    ok
    code=$(curl -s -o "$TMP/r.json" -w '%{http_code}' -H "Authorization: Bearer $(cat "$TMP/token")" -X POST "$URL/admin/reload" \
        -d "{\"model\":\"$S2\"}")
    [ "$code" = 422 ] && grep -q 'registered hash' "$TMP/r.json" || fail "reload of a tampered directory: HTTP $code $(cat "$TMP/r.json")"
    ok
    curl -s "$URL/healthz" | grep -q "\"$SHA1@" || fail "after the refused reload the node serves $(curl -s "$URL/healthz")"

    # SIGHUP reloads the current directory: a file slipped into it is refused, v1 keeps serving
    echo "planted" >"$S1/tokenizer.json"
    n0=$(grep -c 'SIGHUP reload failed' "$LOG")
    kill -HUP "$PID"
    for _ in $(seq 1 300); do
        [ "$(grep -c 'SIGHUP reload failed' "$LOG")" -gt "$n0" ] && break
        sleep 0.1
    done
    ok
    grep -q 'SIGHUP reload failed.*registered hash' "$LOG" || fail "SIGHUP with a planted file: $(tail -3 "$LOG")"
    ok
    [ "$(embed)" = "$E0" ] || fail "after the refused SIGHUP reload the embedding changed"
    rm -f "$S1/tokenizer.json"

    # an untampered version goes live through the same path
    expect 0 '"version":3' "promote 3 --notify (untampered)" -- promote 3 --notify "$URL" --admin-token-file "$TMP/token"
    ok
    curl -s "$URL/healthz" | grep -q "\"$SHA3@" || fail "after promote 3 the node serves $(curl -s "$URL/healthz")"
    kill -TERM "$PID" 2>/dev/null
    wait "$PID" 2>/dev/null
    PID=
fi

# a node never starts on it, and fetch refuses it
expect 1 'registered hash' "serve on the tampered directory" -- serve --model "$S2" --port 0 --threads 1
expect 1 'tampered' "registry fetch of the tampered version" -- registry fetch 2 --out "$TMP/fetched"
ok
[ ! -e "$TMP/fetched" ] || fail "a refused fetch left $TMP/fetched"
# promote without --notify refuses too (no alias points at it), and says so in the audit log
expect 1 'tampered' "promote of a tampered artifact" -- promote 2 --alias canary
expect 0 '"action":"refuse"' "refusal audited" -- audit log --limit 1

cli_test_done
