#!/usr/bin/env bash
# test_cli.sh — the seslm command line: help, usage errors (exit 2), bad files and bad input (exit 1,
# a message naming the problem), and well-formed output on the real model.
#
#   bash tests/cli/test_cli.sh <path to seslm> <model dir> <repo root>
#
# ctest runs it with the model of SESLM_MODEL_DIR; without the model the test FAILS (it does not skip).
set -u

SESLM=${1:?usage: test_cli.sh SESLM MODEL_DIR REPO_ROOT}
MODEL=${2:?usage: test_cli.sh SESLM MODEL_DIR REPO_ROOT}
ROOT=${3:-.}

if [ ! -f "$MODEL/model.safetensors" ] || [ ! -f "$MODEL/config.json" ]; then
    echo "test_cli: no model at $MODEL: run data/fetch_model.sh (from $ROOT) first" >&2
    exit 1
fi
if [ ! -x "$SESLM" ]; then
    echo "test_cli: $SESLM is not an executable" >&2
    exit 1
fi
if ! command -v python3 >/dev/null; then
    echo "test_cli: python3 is needed to check the JSON output" >&2
    exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/seslm_cli.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
export SESLM_MODEL_DIR=$MODEL
OUT=$TMP/stdout
ERR=$TMP/stderr
checks=0
fails=0

fail() {
    fails=$((fails + 1))
    echo "FAIL: $*" >&2
}

# expect RC DESC CMD...: runs CMD (stdin from /dev/null unless redirected by the caller), checks its
# exit status; stdout and stderr stay in $OUT and $ERR for the checks that follow.
expect() {
    local want=$1 desc=$2
    shift 2
    "$@" >"$OUT" 2>"$ERR"
    local rc=$?
    checks=$((checks + 1))
    if [ "$rc" -ne "$want" ]; then
        fail "$desc: exit status $rc, expected $want; stderr: $(head -c 400 "$ERR")"
        return 1
    fi
    return 0
}

# out_has / err_has TEXT DESC: fixed-string search in the last command's stdout / stderr
out_has() {
    checks=$((checks + 1))
    grep -qF -- "$1" "$OUT" || fail "$2: stdout lacks '$1': $(head -c 300 "$OUT")"
}
err_has() {
    checks=$((checks + 1))
    grep -qF -- "$1" "$ERR" || fail "$2: stderr lacks '$1': $(head -c 400 "$ERR")"
}
out_empty() {
    checks=$((checks + 1))
    [ ! -s "$OUT" ] || fail "$1: unexpected stdout: $(head -c 200 "$OUT")"
}

# py DESC SCRIPT [ARGS...]: a python3 check over files; a non-zero exit (assert) is a failure
py() {
    local desc=$1 script=$2
    shift 2
    checks=$((checks + 1))
    local msg
    if ! msg=$(python3 -c "$script" "$@" 2>&1); then
        fail "$desc: $msg"
    fi
}

# ---- help ----------------------------------------------------------------------------------------
for h in --help -h help; do
    expect 0 "seslm $h" "$SESLM" "$h" && out_has "usage:" "seslm $h"
done
expect 2 "seslm without a command" "$SESLM" && err_has "usage:" "seslm without a command"
for cmd in embed similarity tokenize info; do
    # help needs no model
    expect 0 "seslm $cmd --help" env SESLM_MODEL_DIR="$TMP/none" "$SESLM" "$cmd" --help &&
        out_has "usage: seslm $cmd" "seslm $cmd --help"
    expect 0 "seslm $cmd -h" "$SESLM" "$cmd" -h && out_has "usage:" "seslm $cmd -h"
done

# ---- usage errors: exit 2, a message on stderr, nothing on stdout ---------------------------------
expect 2 "unknown command" "$SESLM" frobnicate && err_has "unknown command 'frobnicate'" "unknown command"
for cmd in embed similarity tokenize; do
    expect 2 "$cmd unknown flag" "$SESLM" "$cmd" --frobnicate hello && err_has "--frobnicate" "$cmd unknown flag"
    out_empty "$cmd unknown flag"
    expect 2 "$cmd without input" "$SESLM" "$cmd" && err_has "no input" "$cmd without input"
    expect 2 "$cmd --model without a value" "$SESLM" "$cmd" hello --model && err_has "--model needs a value" "$cmd --model"
    expect 2 "$cmd TEXT and --input" "$SESLM" "$cmd" --input /dev/null hello && err_has "not both" "$cmd TEXT and --input"
done
: >"$TMP/empty.txt"
expect 2 "embed empty input file" "$SESLM" embed --input "$TMP/empty.txt" && err_has "no input" "embed empty input file"
expect 2 "info unknown flag" "$SESLM" info --frobnicate && err_has "--frobnicate" "info unknown flag"
out_empty "info unknown flag"
for cmd in embed similarity; do
    for bad in 0 99999 -1 4097 12abc "" 1e3; do
        expect 2 "$cmd --batch '$bad'" "$SESLM" "$cmd" --batch "$bad" hello && err_has "--batch must be an integer in 1..4096" "$cmd --batch '$bad'"
        out_empty "$cmd --batch '$bad'"
    done
    expect 2 "$cmd --batch without value" "$SESLM" "$cmd" hello --batch && err_has "--batch" "$cmd --batch"
    for bad in abc -1 1025 2x; do
        expect 2 "$cmd --threads '$bad'" "$SESLM" "$cmd" --threads "$bad" hello && err_has "--threads must be an integer" "$cmd --threads '$bad'"
    done
done

# ---- missing or broken model: exit 1, the path in the message --------------------------------------
for cmd in embed similarity tokenize; do
    expect 1 "$cmd missing model" "$SESLM" "$cmd" --model "$TMP/no_such_model" hello && err_has "$TMP/no_such_model" "$cmd missing model"
    out_empty "$cmd missing model"
done
expect 1 "info missing model" "$SESLM" info --model "$TMP/no_such_model" && err_has "$TMP/no_such_model" "info missing model"
# a copy of the model with a truncated weight file / a config that does not match / no vocab
mkdir -p "$TMP/broken"
for f in "$MODEL"/*.json "$MODEL"/vocab.txt; do ln -s "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" "$TMP/broken/"; done
head -c 100000 "$MODEL/model.safetensors" >"$TMP/broken/model.safetensors"
for cmd in embed similarity; do
    expect 1 "$cmd truncated weights" "$SESLM" "$cmd" --model "$TMP/broken" hello &&
        err_has "$TMP/broken/model.safetensors" "$cmd truncated weights" && err_has "truncated" "$cmd truncated weights"
done
expect 1 "info truncated weights" "$SESLM" info --model "$TMP/broken" && err_has "model.safetensors" "info truncated weights"
: >"$TMP/broken/model.safetensors"
expect 1 "embed empty weights" "$SESLM" embed --model "$TMP/broken" hello && err_has "too short" "embed empty weights"
rm "$TMP/broken/model.safetensors"
ln -s "$(cd "$MODEL" && pwd)/model.safetensors" "$TMP/broken/model.safetensors"
rm "$TMP/broken/config.json"
sed 's/"hidden_size": *384/"hidden_size": 192/' "$MODEL/config.json" >"$TMP/broken/config.json"
expect 1 "embed config mismatch" "$SESLM" embed --model "$TMP/broken" hello &&
    err_has "embeddings.word_embeddings.weight" "embed config mismatch" && err_has "[30522, 384]" "embed config mismatch" &&
    err_has "[30522, 192]" "embed config mismatch"
rm "$TMP/broken/config.json" "$TMP/broken/vocab.txt"
ln -s "$(cd "$MODEL" && pwd)/config.json" "$TMP/broken/config.json"
# provenance: --version names the version and commit; --json is one JSON object
expect 0 "--version" "$SESLM" --version && grep -q "^seslm [0-9][0-9.]* (commit " "$OUT" || fail "--version: $(cat "$OUT")"
expect 0 "--version --json" "$SESLM" --version --json &&
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"] and d["commit"] and d["compiler"]' "$OUT" ||
    fail "--version --json: $(cat "$OUT")"
# tokenizer.json alone is enough (the same ids: tests/unit/test_pooling_oracle.c checks all oracle inputs)
expect 0 "tokenize with tokenizer.json only" "$SESLM" tokenize --model "$TMP/broken" "Hello world"
rm -f "$TMP/broken/tokenizer.json"
expect 1 "embed without vocab.txt" "$SESLM" embed --model "$TMP/broken" hello && err_has "vocab.txt" "embed without vocab.txt"
expect 1 "tokenize without vocab.txt" "$SESLM" tokenize --model "$TMP/broken" hello && err_has "tokenizer.json" "tokenize without vocab.txt"

# ---- bad input files: exit 1, the input named ------------------------------------------------------
printf 'first line\nsecond line\nthird \xff\xfe line\nfourth line\n' >"$TMP/bad_utf8.txt"
for cmd in embed similarity tokenize; do
    for batch in "" "--batch 2"; do
        [ "$cmd" = tokenize ] && [ -n "$batch" ] && continue
        # shellcheck disable=SC2086
        expect 1 "$cmd invalid UTF-8 $batch" "$SESLM" "$cmd" $batch --input "$TMP/bad_utf8.txt" &&
            err_has "line 3 of $TMP/bad_utf8.txt" "$cmd invalid UTF-8 $batch" && err_has "UTF-8" "$cmd invalid UTF-8 $batch"
    done
done
expect 1 "embed invalid UTF-8 argument" "$SESLM" embed hello "$(printf 'ok \xc3\x28')" && err_has "input 1" "embed invalid UTF-8 argument"
out_empty "embed invalid UTF-8 argument"
expect 1 "embed invalid UTF-8 on stdin" "$SESLM" embed --input - <"$TMP/bad_utf8.txt" && err_has "line 3 of standard input" "stdin"
for cmd in embed similarity tokenize; do
    expect 1 "$cmd missing input file" "$SESLM" "$cmd" --input "$TMP/no_such_input.txt" && err_has "$TMP/no_such_input.txt" "$cmd missing input file"
    expect 1 "$cmd input is a directory" "$SESLM" "$cmd" --input "$TMP" && err_has "$TMP" "$cmd input is a directory"
done

# ---- embed: one JSON line per input, 384 numbers, unit norm -----------------------------------------
printf 'hello world\n\n   \n\tTabs and CRLF\r\nA somewhat longer sentence, with punctuation!\n' >"$TMP/mixed.txt"
expect 0 "embed empty and blank lines" "$SESLM" embed --input "$TMP/mixed.txt" && cp "$OUT" "$TMP/mixed.jsonl"
py "embed output" '
import json, math, sys
lines = open(sys.argv[1]).read().split("\n")
assert lines[-1] == "", "output does not end with a newline"
lines = lines[:-1]
assert len(lines) == 5, "%d lines for 5 inputs" % len(lines)
for i, l in enumerate(lines):
    o = json.loads(l)
    assert o["index"] == i, o["index"]
    e = o["embedding"]
    assert len(e) == 384 and all(isinstance(x, float) and math.isfinite(x) for x in e), "line %d" % i
    n = math.sqrt(sum(x * x for x in e))
    assert abs(n - 1) < 1e-4, "line %d: norm %f" % (i, n)
# the empty and the whitespace-only line are both [CLS] [SEP]
assert max(abs(a - b) for a, b in zip(json.loads(lines[1])["embedding"], json.loads(lines[2])["embedding"])) < 1e-6
' "$TMP/mixed.jsonl"
expect 0 "embed empty argument" "$SESLM" embed "" && py "embed empty argument" '
import json, sys
o = [json.loads(l) for l in open(sys.argv[1])]
assert len(o) == 1 and len(o[0]["embedding"]) == 384
' "$OUT"

# --feature-layers K: the head's input, K blocks of 384 each of norm 1/sqrt(K); the last block is the embedding
# (this model pools the last layer as its sentence-transformers pipeline does) scaled by 1/sqrt(K)
expect 0 "embed --feature-layers 3" "$SESLM" embed --feature-layers 3 "book a table for two" "what is my balance"
cp "$OUT" "$TMP/feat3.jsonl"
expect 0 "embed the same texts" "$SESLM" embed "book a table for two" "what is my balance"
py "embed --feature-layers 3 blocks" '
import json, math, sys
f = [json.loads(l) for l in open(sys.argv[1])]
e = [json.loads(l) for l in open(sys.argv[2])]
assert len(f) == 2 and all("embedding" not in o for o in f)
for a, b in zip(f, e):
    x = a["features"]
    assert len(x) == 3 * 384 and all(math.isfinite(v) for v in x)
    for j in range(3):
        n2 = sum(v * v for v in x[384 * j:384 * (j + 1)])
        assert abs(n2 - 1 / 3) < 1e-4, (j, n2)
    d = max(abs(u * math.sqrt(3) - v) for u, v in zip(x[768:], b["embedding"]))
    assert d < 1e-5, d
    assert max(abs(u - v) for u, v in zip(x[:384], x[768:])) > 1e-3  # an earlier layer is not the last one
' "$TMP/feat3.jsonl" "$OUT"
expect 2 "embed --feature-layers beyond the model's 6 layers" "$SESLM" embed --feature-layers 7 "hi"
err_has "has 6 layers" "embed --feature-layers 7"
expect 2 "embed --feature-layers 0" "$SESLM" embed --feature-layers 0 "hi"

# the same text alone and inside batches of mixed lengths (and through standard input)
TARGET="The quick brown fox jumps over the lazy dog."
{
    echo "short"
    echo "a considerably longer line of text that needs many more word pieces than the target sentence does, to pad it"
    echo ""
    echo "two words"
    echo "$TARGET"
    echo "x"
    echo "yet another line of a middling length"
} >"$TMP/batch.txt"
expect 0 "embed alone" "$SESLM" embed "$TARGET" && cp "$OUT" "$TMP/alone.jsonl"
expect 0 "embed --batch 4" "$SESLM" embed --batch 4 --input "$TMP/batch.txt" && cp "$OUT" "$TMP/b4.jsonl"
expect 0 "embed --batch 3 --threads 1 stdin" "$SESLM" embed --batch 3 --threads 1 --input - <"$TMP/batch.txt" && cp "$OUT" "$TMP/b3.jsonl"
expect 0 "embed --batch 1" "$SESLM" embed --batch 1 --input "$TMP/batch.txt" && cp "$OUT" "$TMP/b1.jsonl"
py "batch invariance" '
import json, sys
alone = json.loads(open(sys.argv[1]).readline())["embedding"]
runs = [[json.loads(l)["embedding"] for l in open(p)] for p in sys.argv[2:]]
for p, r in zip(sys.argv[2:], runs):
    assert len(r) == 7, "%s: %d lines" % (p, len(r))
    d = max(abs(a - b) for a, b in zip(alone, r[4]))
    assert d <= 1e-5, "%s: target alone vs in batch differ by %g" % (p, d)
for i in range(7):
    d = max(max(abs(a - b) for a, b in zip(runs[0][i], r[i])) for r in runs[1:])
    assert d <= 1e-5, "line %d differs across batch sizes by %g" % (i, d)
' "$TMP/alone.jsonl" "$TMP/b4.jsonl" "$TMP/b3.jsonl" "$TMP/b1.jsonl"

# --precision: bf16 close to fp32 (cosine >= 0.9999) but not identical; a bad value is a usage error
expect 0 "embed --precision bf16" "$SESLM" embed --precision bf16 --batch 4 --input "$TMP/batch.txt" && cp "$OUT" "$TMP/bf16.jsonl"
py "bf16 vs fp32" '
import json, math, sys
f = [json.loads(l)["embedding"] for l in open(sys.argv[1])]
b = [json.loads(l)["embedding"] for l in open(sys.argv[2])]
assert len(f) == len(b) == 7
for x, y in zip(f, b):
    c = sum(p * q for p, q in zip(x, y)) / math.sqrt(sum(p * p for p in x) * sum(q * q for q in y))
    assert c >= 0.9999, "bf16 cosine %.7f" % c
assert any(x != y for x, y in zip(f, b)), "bf16 output identical to fp32: the precision was not applied"
' "$TMP/b4.jsonl" "$TMP/bf16.jsonl"
expect 2 "embed --precision fp16" "$SESLM" embed --precision fp16 hello && err_has "--precision must be fp32, bf16 or int8" "embed --precision fp16"

# ---- tokenize ------------------------------------------------------------------------------------
expect 0 "tokenize hello world" "$SESLM" tokenize "hello world" && py "tokenize hello world" '
import json, sys
o = [json.loads(l) for l in open(sys.argv[1])]
assert len(o) == 1 and o[0]["input_ids"] == [101, 7592, 2088, 102], o
assert o[0]["attention_mask"] == [1, 1, 1, 1]
' "$OUT"
expect 0 "tokenize empty" "$SESLM" tokenize "" && out_has '"input_ids":[101,102]' "tokenize empty"

# ---- info ------------------------------------------------------------------------------------------
expect 0 "info --json" "$SESLM" info --json && py "info --json" '
import json, sys
o = json.loads(open(sys.argv[1]).read())
assert o["params"] == 22565376, o["params"]
assert o["hidden"] == 384 and o["layers"] == 6 and o["vocab_size"] == 30522, o
assert len(o["per_layer"]) == 6 and all(l == {"heads": 12, "ffn_dim": 1536} for l in o["per_layer"])
assert sum(g["params"] for g in o["groups"]) == o["params"]
assert len(o["weights_sha256"]) == 64
' "$OUT"
expect 0 "info" "$SESLM" info && out_has "22565376" "info" && out_has "total" "info"

# ---- similarity ------------------------------------------------------------------------------------
expect 0 "similarity --json" "$SESLM" similarity --json "A man is eating food." "A man is eating a meal." \
    "The stock market fell." 'quote " and backslash \ and tab	here' && py "similarity --json" '
import json, sys
o = json.loads(open(sys.argv[1]).read())
t, c = o["texts"], o["cosine"]
assert t[3] == "quote \" and backslash \\ and tab\there", t[3]
n = len(t)
assert n == 4 and len(c) == n and all(len(r) == n for r in c)
for i in range(n):
    assert abs(c[i][i] - 1) <= 1e-5, c[i][i]
    for j in range(n):
        assert abs(c[i][j] - c[j][i]) <= 1e-6 and -1 <= c[i][j] <= 1 + 1e-6
assert c[0][1] > c[0][2] + 0.3, c  # paraphrases closer than an unrelated sentence
' "$OUT"
expect 0 "similarity table" "$SESLM" similarity "one" "two" && out_has "cosine similarity" "similarity table"

echo "test_cli: $((checks - fails)) of $checks checks passed"
[ "$fails" -eq 0 ]
