#!/usr/bin/env bash
# test_fleet_s3.sh — fleet telemetry through an S3-compatible store (docs/fleet.md), end to end on the
# real model against the S3 server of ci/s3-start.sh (moto, an S3 emulator, with request signatures
# checked; skipped, exit 77, when SESLM_TEST_S3_ENDPOINT is unset; fails then if SESLM_REQUIRE_S3=1):
#   * usage: --telemetry-upload without --telemetry-dir, or --telemetry-dir s3://..., exit 2;
#   * node A serves with --telemetry-upload while its bucket does not exist yet: its dumps are written
#     locally, the uploads fail and are counted in /metrics, nothing is lost; once the bucket exists the
#     retries upload every dump to PREFIX/<date>/<node>/<file>, byte-identical, each marked uploaded;
#     at SIGTERM the last window is written and uploaded too;
#   * node B runs with the store unreachable (dead endpoint): it exits 0 keeping its dumps (no marker);
#     restarted with the store up, it uploads them at start;
#   * a corrupted copy and a duplicate (the same dump under another key) are put in the bucket: ingest
#     --telemetry s3://... reports the corrupt one by its s3:// URL and goes on, counts the duplicate
#     once, and merges exactly what a local ingest of both nodes' directories merges (same totals);
#     drift reads s3:// too; an empty prefix exits 3; a dead endpoint exits 3 with a clear message;
#     evolve --telemetry s3://... hands the URL to its ingest stage.
#
#   bash tests/cli/test_fleet_s3.sh <path to seslm> <model dir> <repo root>
set -u
. "$(dirname "$0")/lib.sh"
cli_test_init test_fleet_s3 "$@" -- curl cmp
[ -n "${SESLM_TEST_S3_ENDPOINT:-}" ] ||
    cli_skip SESLM_REQUIRE_S3 "SESLM_TEST_S3_ENDPOINT is not set (eval \"\$(ci/s3-start.sh)\")"

export SESLM_S3_ENDPOINT=$SESLM_TEST_S3_ENDPOINT AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=${SESLM_TEST_S3_ACCESS_KEY_ID:-testing} AWS_SECRET_ACCESS_KEY=${SESLM_TEST_S3_SECRET_ACCESS_KEY:-testing}
bucket=seslm-fleet-$$-$(date +%s)
s3curl() { curl -sS -o "$TMP/curl.out" -w '%{http_code}' --aws-sigv4 aws:amz:us-east-1:s3 \
    -u "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"; }
# the keys under a prefix, one a line (ListObjectsV2, parsed with the standard library)
s3keys() {
    [ "$(s3curl "$SESLM_S3_ENDPOINT/$bucket?list-type=2&prefix=$1")" = 200 ] || { echo "LIST failed: $(cat "$TMP/curl.out")" >&2; return 1; }
    python3 -c 'import sys, xml.etree.ElementTree as E
for k in E.parse(sys.argv[1]).getroot().iter():
    if k.tag.endswith("}Key") or k.tag == "Key": print(k.text)' "$TMP/curl.out"
}

# ---- usage -------------------------------------------------------------------------------------------
expect 2 'needs --telemetry-dir' "upload without a spool" -- serve --model "$MODEL" --port 0 --telemetry-upload "s3://$bucket/tel"
expect 2 'telemetry-upload' "s3:// as the telemetry dir" -- serve --model "$MODEL" --port 0 --telemetry-dir "s3://$bucket/tel"

# start_node LOG ARGS...: starts seslm serve in the background (PID), waits for its port (URL)
start_node() {
    local log=$1
    shift
    "$SESLM" serve --model "$MODEL" --port 0 --threads 1 --window-seconds 1 --upload-retry-seconds 1 "$@" >"$log" 2>&1 &
    PID=$!
    local port=
    for _ in $(seq 1 600); do
        port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
        [ -n "$port" ] && break
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$port" ] || { echo "test_fleet_s3: the node did not start:" >&2; cat "$log" >&2; exit 1; }
    URL=http://127.0.0.1:$port
}
stop_node() { # SIGTERM, wait; the exit status must be 0
    kill -TERM "$PID"
    wait "$PID"
    local rc=$?
    PID=
    ok; [ "$rc" -eq 0 ] || fail "the node exited $rc after SIGTERM"
}
traffic() { # traffic N TAG: N embed requests of 3 texts, a little apart (several 1-second windows)
    for i in $(seq 1 "$1"); do
        curl -s -o /dev/null -H 'Content-Type: application/json' \
            -d "{\"texts\":[\"$2 request $i about the weather\",\"a second $2 text number $i\",\"order $i of pasta\"]}" "$URL/v1/embed"
        sleep 0.3
    done
}
metric() { curl -s "$URL/metrics" | grep -F -- "$1 " | grep -v '^#' | awk '{print $NF}' | head -1; }
ndumps() { ls "$1" 2>/dev/null | grep -c '\.h5$'; }
nmarked() { ls -A "$1" 2>/dev/null | grep -c '^\..*\.h5\.uploaded$'; }

# ---- node A: the bucket does not exist yet ------------------------------------------------------------
mkdir -p "$TMP/spool-a" "$TMP/spool-b"
start_node "$TMP/a.log" --telemetry-dir "$TMP/spool-a" --node node-a --telemetry-upload "s3://$bucket/tel"
traffic 8 alpha
for _ in $(seq 1 300); do [ "$(metric 'seslm_telemetry_uploads_total{result="failure"}')" ] && [ "$(metric 'seslm_telemetry_uploads_total{result="failure"}')" -ge 1 ] && break; sleep 0.1; done
ok; [ "$(metric 'seslm_telemetry_uploads_total{result="failure"}')" -ge 1 ] 2>/dev/null || fail "no failed upload counted while the bucket is missing: $(curl -s "$URL/metrics" | grep upload)"
# (a window closes only once the previous one is on disk: on a loaded machine a slow write holds the
# second rotation back past the end of the traffic, so wait for it rather than count at once)
for _ in $(seq 1 300); do [ "$(ndumps "$TMP/spool-a")" -ge 2 ] && break; sleep 0.1; done
ok; [ "$(ndumps "$TMP/spool-a")" -ge 2 ] || fail "node A wrote $(ndumps "$TMP/spool-a") dumps, expected >= 2"
ok; [ "$(nmarked "$TMP/spool-a")" -eq 0 ] || fail "a dump is marked uploaded while the bucket is missing"
ok; grep -q 'kept locally, retried later' "$TMP/a.log" || fail "the failed upload is not logged: $(tail -3 "$TMP/a.log")"
ok; [ "$(metric seslm_telemetry_upload_pending)" -ge 1 ] 2>/dev/null || fail "upload_pending is not >= 1"
# the store comes up: the retries upload everything
ok; [ "$(s3curl -X PUT "$SESLM_S3_ENDPOINT/$bucket")" = 200 ] || fail "create bucket $bucket: $(cat "$TMP/curl.out")"
# (the retry timer has backed off by now; the next dump written wakes the uploader at once, and it
# uploads every pending dump, oldest first)
sleep 1.1
traffic 2 gamma
for _ in $(seq 1 300); do
    [ "$(nmarked "$TMP/spool-a")" -ge "$(ndumps "$TMP/spool-a")" ] && break
    sleep 0.1
done
ok; [ "$(nmarked "$TMP/spool-a")" -eq "$(ndumps "$TMP/spool-a")" ] || fail "after the bucket appeared: $(nmarked "$TMP/spool-a") of $(ndumps "$TMP/spool-a") dumps uploaded"
stop_node
ok; [ "$(nmarked "$TMP/spool-a")" -eq "$(ndumps "$TMP/spool-a")" ] || fail "the window written at SIGTERM was not uploaded: $(tail -5 "$TMP/a.log")"
today=$(date -u +%Y-%m-%d)
s3keys "tel/" >"$TMP/keys-a.txt"
ok; [ "$(wc -l <"$TMP/keys-a.txt")" -eq "$(ndumps "$TMP/spool-a")" ] || fail "$(wc -l <"$TMP/keys-a.txt") objects for $(ndumps "$TMP/spool-a") dumps: $(cat "$TMP/keys-a.txt")"
for f in "$TMP"/spool-a/*.h5; do
    b=$(basename "$f")
    key=$(grep -F "/node-a/$b" "$TMP/keys-a.txt")
    ok; [[ "$key" =~ ^tel/[0-9]{4}-[0-9]{2}-[0-9]{2}/node-a/$b$ ]] || { fail "object key of $b: '$key'"; continue; }
    ok; [ "$(s3curl "$SESLM_S3_ENDPOINT/$bucket/$key")" = 200 ] && cmp -s "$TMP/curl.out" "$f" || fail "the object $key differs from $f"
done
ok; grep -q "^tel/$today/node-a/" "$TMP/keys-a.txt" || grep -q "^tel/$(date -u -d '-1 min' +%Y-%m-%d)/node-a/" "$TMP/keys-a.txt" ||
    fail "keys are not under today's date $today: $(head -2 "$TMP/keys-a.txt")"

# ---- node B: the store is unreachable; restarted with it up, it uploads what it kept ---------------------
SESLM_S3_ENDPOINT=http://127.0.0.1:1 start_node "$TMP/b1.log" --telemetry-dir "$TMP/spool-b" --node node-b --telemetry-upload "s3://$bucket/tel"
traffic 6 beta
stop_node
nb=$(ndumps "$TMP/spool-b")
ok; [ "$nb" -ge 2 ] || fail "node B wrote $nb dumps"
ok; [ "$(nmarked "$TMP/spool-b")" -eq 0 ] || fail "node B marked a dump uploaded with the store down"
ok; grep -q 'not uploaded yet; kept in' "$TMP/b1.log" || fail "node B does not say it kept its dumps: $(tail -3 "$TMP/b1.log")"
start_node "$TMP/b2.log" --telemetry-dir "$TMP/spool-b" --node node-b --telemetry-upload "s3://$bucket/tel"
for _ in $(seq 1 200); do [ "$(nmarked "$TMP/spool-b")" -ge "$nb" ] && break; sleep 0.1; done
ok; [ "$(nmarked "$TMP/spool-b")" -ge "$nb" ] || fail "restarted node B uploaded $(nmarked "$TMP/spool-b") of its $nb kept dumps"
stop_node # (idle: it may write no new dump)
ok; [ "$(s3keys "tel/$today/node-b/" | wc -l)" -eq "$(ndumps "$TMP/spool-b")" ] ||
    [ "$(s3keys "tel/" | grep -c /node-b/)" -eq "$(ndumps "$TMP/spool-b")" ] || fail "node B's objects do not match its dumps"

# ---- a corrupt object and a duplicate in the bucket; ingest from s3:// ------------------------------------
first=$(ls "$TMP"/spool-a/*.h5 | head -1)
fb=$(basename "$first")
dkey=$(grep -F "/node-a/$fb" "$TMP/keys-a.txt")
day=$(echo "$dkey" | cut -d/ -f2)
python3 - "$first" "$TMP/corrupt.h5" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
i = b.find(b"OHDR", 100)  # an object header after the root's: its checksum no longer matches
b[i + 6] ^= 0x01
open(sys.argv[2], "wb").write(bytes(b))
PY
ok; [ "$(s3curl -T "$TMP/corrupt.h5" "$SESLM_S3_ENDPOINT/$bucket/tel/$day/node-x/node-x${fb#node-a}")" = 200 ] || fail "PUT corrupt"
ok; [ "$(s3curl -T "$first" "$SESLM_S3_ENDPOINT/$bucket/tel/$day/node-c/node-c${fb#node-a}")" = 200 ] || fail "PUT duplicate"
# objects that are no dumps are ignored
printf 'x' >"$TMP/note.txt"
ok; [ "$(s3curl -T "$TMP/note.txt" "$SESLM_S3_ENDPOINT/$bucket/tel/$day/README.txt")" = 200 ] || fail "PUT note"

expect 0 '' "ingest from s3://" -- ingest --model "$MODEL" --telemetry "s3://$bucket/tel" --out "$TMP/s3.h5"
cp "$TMP/e.out" "$TMP/s3.json"
cp "$TMP/e.err" "$TMP/s3.err"
ok; grep -q "skipped s3://$bucket/tel/$day/node-x/node-x.*checksum" "$TMP/s3.err" || fail "the corrupt object is not reported by its URL: $(head -c 600 "$TMP/s3.err")"
ok; grep -q "s3://$bucket/tel/$day/node-c/node-c.* is a duplicate of s3://$bucket/tel/$day/node-a/$fb" "$TMP/s3.err" ||
    fail "the duplicate is not reported: $(head -c 600 "$TMP/s3.err")"
ok; ! grep -q 'seslm-s3-telemetry' "$TMP/s3.err" "$TMP/s3.json" || fail "a temporary path leaks into the report"
expect 0 '' "ingest the two local spools" -- ingest --model "$MODEL" --telemetry "$TMP/spool-a" --telemetry "$TMP/spool-b" --out "$TMP/local.h5"
cp "$TMP/e.out" "$TMP/local.json"
python3 - "$TMP/s3.json" "$TMP/local.json" <<'PY' || fail "ingest from s3:// and the local ingest differ (above)"
import json, sys
s3, loc = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
def strip(d):  # what was merged, without the paths
    return {k: d.get(k) for k in ("files_read", "model_sha256", "totals")}
a, b = strip(s3), strip(loc)
assert a == b, "\n s3:    %s\n local: %s" % (a, b)
assert s3["files_skipped"] == 1 and s3["files_duplicate"] == 1, (s3["skipped"], s3["duplicates"])
assert loc["files_skipped"] == 0 and loc["files_duplicate"] == 0, (loc["skipped"], loc["duplicates"])
print("ok: s3 ingest == local ingest:", a["files_read"], "dumps,", a["totals"])
PY
# the merged dumps themselves: the same counters
expect 0 '' "inspect merged (s3)" -- inspect "$TMP/s3.h5"
cp "$TMP/e.out" "$TMP/i1.txt"
expect 0 '' "inspect merged (local)" -- inspect "$TMP/local.h5"
python3 - "$TMP/i1.txt" "$TMP/e.out" <<'PY' || fail "the merged dumps differ (above)"
import json, sys
a, b = (json.loads(open(p).readline()) for p in sys.argv[1:3])
a.pop("path"), b.pop("path")
assert a == b, {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}
PY

# drift between two s3:// sides (the same traffic: runs, and reads both)
expect 0 '"drift":false' "drift s3:// vs s3://" -- drift --model "$MODEL" --reference "s3://$bucket/tel/$day/node-a" --current "s3://$bucket/tel/$day/node-a"
# nothing there, a dead store, a missing bucket
expect 3 'no readable dump' "ingest an empty prefix" -- ingest --model "$MODEL" --telemetry "s3://$bucket/nothing" --out "$TMP/none.h5"
SESLM_S3_ENDPOINT=http://127.0.0.1:1 expect 3 'is the endpoint http://127.0.0.1:1 up' "ingest from a dead store" -- \
    ingest --model "$MODEL" --telemetry "s3://$bucket/tel" --out "$TMP/dead.h5"
expect 3 'bucket does not exist' "ingest from a missing bucket" -- ingest --model "$MODEL" --telemetry "s3://no-such-bucket-$$/tel" --out "$TMP/nob.h5"
ok; [ ! -e "$TMP/dead.h5" ] && [ ! -e "$TMP/none.h5" ] || fail "a failed ingest wrote its output"
# evolve passes s3:// on to its 01-ingest stage (an empty prefix: that stage lists the store and fails)
expect 3 '0 dump\(s\) under s3://'"$bucket"'/nothing' "evolve --telemetry s3://" -- evolve --config "$ROOT/configs/evolve.yaml" \
    --model "$MODEL" --telemetry "s3://$bucket/nothing" --calibration "$ROOT/data/traffic/restaurant8k_600.txt" \
    --gates "$ROOT/configs/gates.yaml" --out "$TMP/evolve"
ok; grep -q 'stage 01-ingest failed (exit 3)' "$TMP/e.err" || fail "evolve did not fail in 01-ingest: $(head -c 400 "$TMP/e.err")"

cli_test_done
