#!/usr/bin/env bash
# s3-start.sh — start a throwaway S3-compatible server for the S3 store tests and print its settings.
#
#   eval "$(ci/s3-start.sh)"     # exports SESLM_TEST_S3_ENDPOINT, SESLM_TEST_S3_PID, SESLM_TEST_S3_DIR, ...
#   ci/s3-stop.sh                # stops it and removes its directory
#
# The server is moto (https://github.com/getmoto/moto) in server mode: an S3 *emulator* written in
# Python, installed from PyPI into .venv-s3/ in the repository (git-ignored) on first use. It listens on
# 127.0.0.1:$SESLM_TEST_S3_PORT (default: the first free port of 29000-29009) only and keeps objects in memory. It runs with request
# authentication ON (INITIAL_NO_AUTH_ACTION_COUNT=3: the three bootstrap calls below are the only
# unauthenticated ones): an IAM user allowed s3:* is created and its keys exported, and from then on the
# server verifies every request's AWS SigV4 signature and refuses a wrong key with 403. Prints `export`
# lines on stdout; progress goes to stderr.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv-s3"
if [ ! -x "$venv/bin/moto_server" ]; then
    echo "s3-start: installing moto[server] into $venv" >&2
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q 'moto[server]==5.2.5' >&2
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/seslm-s3.XXXXXX")
# the port: $SESLM_TEST_S3_PORT, else the first free one of 29000-29009 — below Linux's ephemeral range
# (32768-60999), so no client socket of a test running beside it holds it by chance (59000 did, once)
ports=${SESLM_TEST_S3_PORT:-$(seq 29000 29009)}
pid=
for port in $ports; do
    INITIAL_NO_AUTH_ACTION_COUNT=3 "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$dir/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$port/moto-api/" 2>/dev/null; then break 2; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then break; fi # up but slow: the check below waits no longer
    if grep -q "in use" "$dir/server.log"; then
        echo "s3-start: port $port is in use, trying the next" >&2
        pid=
        continue
    fi
    cat "$dir/server.log" >&2
    echo "s3-start: moto_server exited" >&2
    exit 1
done
[ -n "$pid" ] || { echo "s3-start: no free port among $ports" >&2; exit 1; }
curl -fsS -o /dev/null "http://127.0.0.1:$port/moto-api/" || { cat "$dir/server.log" >&2; kill "$pid"; exit 1; }
keys=$("$venv/bin/python" - "http://127.0.0.1:$port" <<'PY'
import json, sys
import boto3
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="seslm-ci")
key = iam.create_access_key(UserName="seslm-ci")["AccessKey"]
iam.put_user_policy(UserName="seslm-ci", PolicyName="s3-all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
print(key["AccessKeyId"], key["SecretAccessKey"])
PY
) || { cat "$dir/server.log" >&2; kill "$pid"; exit 1; }
read -r ak sk <<<"$keys"
echo "s3-start: moto $("$venv/bin/pip" show moto 2>/dev/null | awk '/^Version/{print $2}') on 127.0.0.1:$port (pid $pid)" >&2
echo "export SESLM_TEST_S3_ENDPOINT='http://127.0.0.1:$port'"
echo "export SESLM_TEST_S3_ACCESS_KEY_ID='$ak'"
echo "export SESLM_TEST_S3_SECRET_ACCESS_KEY='$sk'"
echo "export SESLM_TEST_S3_PID='$pid'"
echo "export SESLM_TEST_S3_DIR='$dir'"
