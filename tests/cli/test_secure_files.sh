#!/usr/bin/env bash
# test_secure_files.sh — security at rest, end to end on the real model:
#   * `seslm encrypt --generate-key` writes a 0600 key file outside the model and an encrypted copy
#     without model.safetensors; `seslm embed` on it with the key ($SESLM_MODEL_KEY_FILE or
#     $SESLM_MODEL_KEY) prints exactly the plaintext model's embeddings;
#   * an edited vocab.txt, or an added added_tokens.json, beside the encrypted weights: exit 1 (authenticated);
#   * without a key, with a wrong key, with one byte of the ciphertext changed, truncated: exit 1 with a
#     clear message; a key file inside the model directory and an existing output are refused;
#   * a key is never generated inside any model directory (or below one); a key file others may read is
#     refused unless SESLM_INSECURE_SECRET_FILES=1;
#   * telemetry dumps (`seslm record`) are owner-only (0600).
#
#   bash tests/cli/test_secure_files.sh <path to seslm> <model dir> <repo root>
set -u
. "$(dirname "$0")/lib.sh"
cli_test_init test_secure_files "$@"
unset SESLM_MODEL_KEY SESLM_MODEL_KEY_FILE

ENC=$TMP/enc
expect 0 '"key_id"' "encrypt" -- encrypt --key-file "$TMP/model.key" --generate-key "$MODEL" "$ENC"
ok
[ "$(stat -c %a "$TMP/model.key")" = 600 ] || fail "key file mode $(stat -c %a "$TMP/model.key")"
ok
[ -f "$ENC/model.safetensors.enc" ] && [ ! -e "$ENC/model.safetensors" ] || fail "encrypted dir: $(ls "$ENC")"
ok
grep -q "word_embeddings" "$ENC/model.safetensors.enc" && fail "tensor names readable in the encrypted file"
ls -d "$TMP"/enc.tmp.* >/dev/null 2>&1 && fail "encrypt left a temporary directory"

printf 'a first sentence\nthe second one is longer than the first\n' >"$TMP/in.txt"
"$SESLM" embed --model "$MODEL" --threads 1 --input "$TMP/in.txt" >"$TMP/plain.jsonl" 2>"$TMP/err" || fail "embed plain: $(cat "$TMP/err")"
ok
SESLM_MODEL_KEY_FILE=$TMP/model.key "$SESLM" embed --model "$ENC" --threads 1 --input "$TMP/in.txt" >"$TMP/enc.jsonl" 2>"$TMP/err" ||
    fail "embed encrypted: $(cat "$TMP/err")"
cmp -s "$TMP/plain.jsonl" "$TMP/enc.jsonl" || fail "embeddings of the encrypted model differ from the plaintext model's"
ok
SESLM_MODEL_KEY=$(head -c 64 "$TMP/model.key") "$SESLM" embed --model "$ENC" --threads 1 --input "$TMP/in.txt" >"$TMP/enc2.jsonl" 2>"$TMP/err" ||
    fail "embed with SESLM_MODEL_KEY: $(cat "$TMP/err")"
cmp -s "$TMP/plain.jsonl" "$TMP/enc2.jsonl" || fail "embeddings with SESLM_MODEL_KEY differ"

expect 1 'no model key' "no key" -- embed --model "$ENC" "x"
export SESLM_MODEL_KEY=0000000000000000000000000000000000000000000000000000000000000001
expect 1 'wrong key' "wrong key" -- embed --model "$ENC" "x"
unset SESLM_MODEL_KEY
export SESLM_MODEL_KEY_FILE=$TMP/model.key
cp "$ENC/model.safetensors.enc" "$TMP/orig.enc"
python3 - "$ENC/model.safetensors.enc" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x04
open(p, "wb").write(bytes(b))
PY
expect 1 'authentication failed in chunk' "one byte changed" -- embed --model "$ENC" "x"
head -c 50000000 "$TMP/orig.enc" >"$ENC/model.safetensors.enc"
expect 1 'truncated' "truncated" -- embed --model "$ENC" "x"
cp "$TMP/orig.enc" "$ENC/model.safetensors.enc"
expect 0 '"embedding"' "restored" -- embed --model "$ENC" "x"
# the tokenizer and config files in clear are authenticated with the weights
cp "$ENC/vocab.txt" "$TMP/vocab.orig"
sed -i 's/^hello$/hullo/' "$ENC/vocab.txt"
cmp -s "$ENC/vocab.txt" "$TMP/vocab.orig" && fail "could not edit vocab.txt"
expect 1 'changed, added or removed after encryption' "edited vocab.txt of an encrypted model" -- embed --model "$ENC" "hello"
cp "$TMP/vocab.orig" "$ENC/vocab.txt"
echo '{"hullo": 30522}' >"$ENC/added_tokens.json"
expect 1 'changed, added or removed after encryption' "added_tokens.json added to an encrypted model" -- embed --model "$ENC" "hello"
rm -f "$ENC/added_tokens.json"
expect 0 '"embedding"' "restored again" -- embed --model "$ENC" "x"
unset SESLM_MODEL_KEY_FILE

mkdir -p "$TMP/m2"
for f in config.json model.safetensors vocab.txt tokenizer_config.json; do ln -s "$MODEL/$f" "$TMP/m2/$f"; done
"$SESLM" encrypt --key-file "$TMP/m2/k" --generate-key "$TMP/m2" "$TMP/enc3" >/dev/null 2>"$TMP/err"
rc=$?
ok
[ "$rc" -eq 1 ] && [ ! -e "$TMP/enc3" ] && [ ! -e "$TMP/m2/k" ] && grep -q "inside the model directory" "$TMP/err" || fail "a key file inside the model was accepted: $(cat "$TMP/err")"
# nor into another model's directory (here the encrypted copy), nor anywhere below one
expect 1 'inside the model directory' "key into another model's directory" -- encrypt --key-file "$ENC/k" --generate-key "$MODEL" "$TMP/enc4"
expect 1 'inside the model directory' "key below a model directory" -- encrypt --key-file "$ENC/1_Pooling/k" --generate-key "$MODEL" "$TMP/enc4"
ok
[ ! -e "$ENC/k" ] && [ ! -e "$ENC/1_Pooling/k" ] && [ ! -e "$TMP/enc4" ] || fail "a refused --generate-key left files"
# a key file others may read is refused (with the override documented in the message)
chmod 644 "$TMP/model.key"
SESLM_MODEL_KEY_FILE=$TMP/model.key "$SESLM" embed --model "$ENC" "x" >/dev/null 2>"$TMP/err"
rc=$?
ok
[ "$rc" = 1 ] && grep -q 'chmod 600' "$TMP/err" && grep -q SESLM_INSECURE_SECRET_FILES "$TMP/err" || fail "a 0644 key: exit $rc $(cat "$TMP/err")"
ok
SESLM_INSECURE_SECRET_FILES=1 SESLM_MODEL_KEY_FILE=$TMP/model.key "$SESLM" embed --model "$ENC" "x" >/dev/null 2>"$TMP/err" ||
    fail "the override: $(cat "$TMP/err")"
chmod 600 "$TMP/model.key"
expect 1 'already exists' "existing output" -- encrypt --key-file "$TMP/model.key" "$MODEL" "$ENC"
expect 2 'required' "missing OUT_DIR" -- encrypt --key-file "$TMP/model.key" "$MODEL"
expect 0 'usage: seslm encrypt' "--help" -- encrypt --help

# telemetry dumps are owner-only
"$SESLM" record --model "$MODEL" --input "$TMP/in.txt" --out "$TMP/tel" --threads 1 >/dev/null 2>"$TMP/err" || fail "record: $(cat "$TMP/err")"
n=0
for f in "$TMP"/tel/*.h5; do
    [ -e "$f" ] || continue
    n=$((n + 1))
    ok
    [ "$(stat -c %a "$f")" = 600 ] || fail "$f has mode $(stat -c %a "$f")"
done
ok
[ "$n" -ge 1 ] || fail "record wrote no dump"

cli_test_done
