#!/usr/bin/env bash
# test_store_s3.sh — `registry register` into an S3-compatible store and `registry fetch` back, end to
# end on the real model, against the S3 server of ci/s3-start.sh (moto, an S3 emulator, with request
# signatures checked; skipped, exit 77, when SESLM_TEST_S3_ENDPOINT is unset; fails then if SESLM_REQUIRE_S3=1):
#   * SESLM_STORE=s3://BUCKET/PREFIX: register uploads the model, records the s3:// location; again is
#     idempotent; `fetch` materialises it, files cmp-identical, and the fetched model's embeddings equal
#     the original's exactly;
#   * an object changed in the bucket (behind the store's back) is refused on fetch (exit 1), nothing
#     written; a wrong secret key (403) and a dead endpoint give clear errors (exit 1);
#   * `fetch` from the local store works the same way and refuses a tampered local artifact;
#   * usage errors (no --out, an existing --out, an unknown version) exit 2.
#
#   bash tests/cli/test_store_s3.sh <path to seslm> <model dir> <repo root>
set -u
. "$(dirname "$0")/lib.sh"
cli_test_init test_store_s3 "$@" -- curl cmp
[ -n "${SESLM_TEST_S3_ENDPOINT:-}" ] ||
    cli_skip SESLM_REQUIRE_S3 "SESLM_TEST_S3_ENDPOINT is not set (eval \"\$(ci/s3-start.sh)\")"

mkdir -p "$TMP/m1"
for f in config.json model.safetensors vocab.txt tokenizer_config.json special_tokens_map.json \
    sentence_bert_config.json modules.json; do
    [ -f "$MODEL/$f" ] && { ln "$MODEL/$f" "$TMP/m1/$f" 2>/dev/null || cp "$MODEL/$f" "$TMP/m1/$f"; }
done
[ -d "$MODEL/1_Pooling" ] && cp -r "$MODEL/1_Pooling" "$TMP/m1/"

export SESLM_S3_ENDPOINT=$SESLM_TEST_S3_ENDPOINT AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=${SESLM_TEST_S3_ACCESS_KEY_ID:-testing} AWS_SECRET_ACCESS_KEY=${SESLM_TEST_S3_SECRET_ACCESS_KEY:-testing}
bucket=seslm-cli-$$-$(date +%s)
s3curl() { curl -sS -o "$TMP/curl.out" -w '%{http_code}' --aws-sigv4 aws:amz:us-east-1:s3 \
    -u "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"; }
ok; [ "$(s3curl -X PUT "$SESLM_S3_ENDPOINT/$bucket")" = 200 ] || fail "create bucket $bucket: $(cat "$TMP/curl.out")"

export SESLM_REGISTRY=sqlite:$TMP/reg.db SESLM_STORE=s3://$bucket/models SESLM_ACTOR=ci-bot
expect 0 '"existed":false' "register into S3" -- registry register "$TMP/m1" --note s3
SHA=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sha256"])' "$TMP/e.out")
ok; grep -q "\"location\":\"s3://$bucket/models/sha256/$SHA\"" "$TMP/e.out" || fail "location is not the s3:// URL: $(cat "$TMP/e.out")"
ok; [ "$(s3curl -I "$SESLM_S3_ENDPOINT/$bucket/models/sha256/$SHA.manifest.json")" = 200 ] || fail "no manifest object"
expect 0 '"existed":true' "register into S3 again" -- registry register "$TMP/m1"

expect 0 '"from":"s3://' "fetch from S3" -- registry fetch 1 --out "$TMP/got"
for f in $(cd "$TMP/m1" && find . -type f); do
    ok; cmp -s "$TMP/m1/$f" "$TMP/got/$f" || fail "fetched $f differs"
done
ok; [ "$(cd "$TMP/got" && find . -type f | wc -l)" = "$(cd "$TMP/m1" && find . -type f | wc -l)" ] || fail "fetched file count differs"
# the fetched model embeds exactly as the original
printf 'A man is playing a guitar.\nThe new movie is awesome.\nS3 stores objects.\n' >"$TMP/in.txt"
ok; "$SESLM" embed --model "$TMP/m1" --input "$TMP/in.txt" >"$TMP/emb1.jsonl" 2>"$TMP/emb.err" || fail "embed original: $(cat "$TMP/emb.err")"
ok; "$SESLM" embed --model "$TMP/got" --input "$TMP/in.txt" >"$TMP/emb2.jsonl" 2>"$TMP/emb.err" || fail "embed fetched: $(cat "$TMP/emb.err")"
ok; [ -s "$TMP/emb1.jsonl" ] && [ "$(wc -l <"$TMP/emb1.jsonl")" -eq 3 ] && cmp -s "$TMP/emb1.jsonl" "$TMP/emb2.jsonl" ||
    fail "embeddings of the fetched model differ from the original's"

# usage errors
expect 2 'needs --out' "fetch without --out" -- registry fetch 1
expect 2 'exists already' "fetch into an existing directory" -- registry fetch 1 --out "$TMP/got"
expect 2 '' "fetch an unknown version" -- registry fetch 9 --out "$TMP/none"

# a wrong secret key: the server refuses the signature
AWS_SECRET_ACCESS_KEY=wrong-secret-key expect 1 '403' "fetch with a wrong secret key" -- registry fetch 1 --out "$TMP/wrongkey"
if [ -n "${SESLM_TEST_S3_SECRET_ACCESS_KEY:-}" ]; then
    ok; grep -q 'AWS_SECRET_ACCESS_KEY' "$TMP/e.err" || fail "403 message does not say what to check: $(cat "$TMP/e.err")"
fi
ok; ! grep -q 'wrong-secret-key' "$TMP/e.err" "$TMP/e.out" || fail "the secret key appears in the output"
ok; [ ! -e "$TMP/wrongkey" ] || fail "a refused fetch left its directory"

# an object tampered with in the bucket (same size, one byte changed) is refused, nothing written
python3 - "$TMP/m1/config.json" "$TMP/evil.json" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read()); b[10] ^= 0x20; open(sys.argv[2], "wb").write(b)
PY
ok; [ "$(s3curl -T "$TMP/evil.json" "$SESLM_S3_ENDPOINT/$bucket/models/sha256/$SHA/config.json")" = 200 ] || fail "tamper PUT"
expect 1 'tampered' "fetch a tampered model" -- registry fetch 1 --out "$TMP/bad"
ok; [ ! -e "$TMP/bad" ] && [ -z "$(ls -A "$TMP" | grep '^\.seslm-fetch')" ] || fail "a refused fetch left files"

# a dead endpoint
SESLM_S3_ENDPOINT=http://127.0.0.1:1 expect 1 'is the endpoint http://127.0.0.1:1 up' "register with a dead endpoint" -- \
    registry register "$TMP/m1" --registry "sqlite:$TMP/reg-dead.db"
SESLM_S3_ENDPOINT= expect 1 'SESLM_S3_ENDPOINT is not set' "register with no endpoint set" -- \
    registry register "$TMP/m1" --registry "sqlite:$TMP/reg-dead.db"
ok; [ "$("$SESLM" registry list --registry "sqlite:$TMP/reg-dead.db" | grep -c '"version"')" = 0 ] ||
    fail "a failed S3 registration recorded a version"

# the local store: fetch works the same way and refuses a changed artifact
expect 0 '"existed":false' "register into the local store" -- registry register "$TMP/m1" --registry "sqlite:$TMP/reg-local.db" \
    --store "$TMP/store"
expect 0 '"from":"/' "fetch from the local store" -- registry fetch 1 --registry "sqlite:$TMP/reg-local.db" --out "$TMP/got-local"
for f in $(cd "$TMP/m1" && find . -type f); do
    ok; cmp -s "$TMP/m1/$f" "$TMP/got-local/$f" || fail "fetched (local) $f differs"
done
chmod u+w "$TMP/store/sha256/$SHA/config.json" && cp "$TMP/evil.json" "$TMP/store/sha256/$SHA/config.json"
expect 1 'tampered' "fetch a tampered local artifact" -- registry fetch 1 --registry "sqlite:$TMP/reg-local.db" --out "$TMP/bad-local"
ok; [ ! -e "$TMP/bad-local" ] || fail "a refused local fetch left its directory"

cli_test_done
