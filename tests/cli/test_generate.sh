#!/usr/bin/env bash
# test_generate.sh — `seslm generate` and `seslm chat`: help, usage errors (exit 2), bad model files and
# bad prompts (exit 1 with a message naming the problem), and real generation on SmolLM2-135M-Instruct
# (data/fetch_decoder.sh; without it the test FAILS): greedy output is deterministic and equals the
# streamed text, stop strings cut it, a seed makes sampling repeatable, chat answers each line.
#
#   bash tests/cli/test_generate.sh <path to seslm> <model dir> <repo root>
set -u
. "$(dirname "$0")/lib.sh"
cli_test_init test_generate "$@"

GGUF=$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf
TINY=$ROOT/tests/fuzz/corpus_gguf/tiny_llama.gguf
if [ ! -f "$GGUF" ]; then
    echo "test_generate: no decoder model at $GGUF: run data/fetch_decoder.sh first" >&2
    exit 1
fi
export OMP_NUM_THREADS=2

# help and usage
expect 0 "usage: seslm generate" "generate --help" -- generate --help
expect 0 "usage: seslm chat" "chat --help" -- chat --help
expect 2 "exactly one of --prompt" "no prompt" -- generate --model "$TINY"
expect 2 "exactly one of --prompt" "two prompts" -- generate --model "$TINY" --prompt a --input /dev/null
expect 2 "--temperature must be" "negative temperature" -- generate --model "$TINY" --prompt a --temperature -1
expect 2 "--top-p must be" "top-p 0" -- generate --model "$TINY" --prompt a --top-p 0
expect 2 "--max-tokens must be" "max-tokens not a number" -- generate --model "$TINY" --prompt a --max-tokens x
expect 2 "unknown option" "unknown option" -- generate --model "$TINY" --prompt a --bogus
expect 2 "backend must be" "bad backend" -- generate --model "$TINY" --prompt a --backend gpu

# bad files and bad input
expect 1 "cannot open" "missing model" -- generate --model "$TMP/none.gguf" --prompt a
printf 'GGUF\3\0\0\0' >"$TMP/short.gguf"
expect 1 "truncated GGUF" "truncated model" -- generate --model "$TMP/short.gguf" --prompt a
head -c 4096 /dev/urandom >"$TMP/random.gguf"
expect 1 "not a GGUF file" "random bytes" -- generate --model "$TMP/random.gguf" --prompt a
expect 1 "outside the file" "tensor past the end" -- generate --model "$ROOT/tests/fuzz/corpus_gguf/bad_offset.gguf" --prompt a
expect 1 "cannot open|No such file" "missing input file" -- generate --model "$TINY" --input "$TMP/none.txt"
printf 'caf\xc3 bad' >"$TMP/bad.txt"
expect 1 "invalid UTF-8 at byte 3" "invalid UTF-8 prompt file" -- generate --model "$TINY" --input "$TMP/bad.txt"
expect 1 "invalid UTF-8" "invalid UTF-8 prompt" -- generate --model "$TINY" --prompt $'\xff\xfe'
expect 1 "context has room" "prompt longer than the context" -- generate --model "$TINY" --ctx 16 --prompt "$(printf 'word %.0s' $(seq 40))"

# real model: greedy is deterministic; the streamed stdout is the whole text
ok
"$SESLM" generate --model "$GGUF" --prompt "The capital of France is" --max-tokens 16 --stats \
    >"$TMP/g1.out" 2>"$TMP/g1.err" || fail "greedy generate failed: $(cat "$TMP/g1.err")"
"$SESLM" generate --model "$GGUF" --prompt "The capital of France is" --max-tokens 16 \
    >"$TMP/g2.out" 2>/dev/null || fail "second greedy generate failed"
ok
cmp -s "$TMP/g1.out" "$TMP/g2.out" || fail "greedy output differs between runs"
ok
grep -q "Paris" "$TMP/g1.out" || fail "greedy continuation lacks 'Paris': $(cat "$TMP/g1.out")"
ok
python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); assert d["prompt_tokens"]==5 and d["generated_tokens"]>=1 and d["gen_tok_per_s"]>=0, d' \
    "$TMP/g1.err" || fail "--stats JSON: $(cat "$TMP/g1.err")"
# the reference kernels give the same greedy text
ok
"$SESLM" generate --model "$GGUF" --prompt "The capital of France is" --max-tokens 8 --backend cpu-ref >"$TMP/r.out" 2>/dev/null ||
    fail "cpu-ref generate failed"
[ "$(head -c 20 "$TMP/r.out")" = "$(head -c 20 "$TMP/g1.out")" ] || fail "cpu-ref text differs: $(cat "$TMP/r.out") vs $(cat "$TMP/g1.out")"

# a stop string cuts the text before it
ok
"$SESLM" generate --model "$GGUF" --prompt "The capital of France is" --max-tokens 16 --stop "." >"$TMP/s.out" 2>/dev/null ||
    fail "generate with --stop failed"
! grep -q '\.' "$TMP/s.out" || fail "stop string '.' still in the output: $(cat "$TMP/s.out")"
ok
[ -n "$(tr -d ' \n' <"$TMP/s.out")" ] || fail "nothing before the stop string"

# sampling: the same seed repeats, another seed (almost surely) differs
for seed in 1 1 2; do
    "$SESLM" generate --model "$GGUF" --prompt "Once upon a time" --max-tokens 24 --temperature 1.0 --top-p 0.95 \
        --seed $seed >"$TMP/t_$seed.$RANDOM.out" 2>/dev/null || fail "sampling with seed $seed failed"
done
ok
set -- "$TMP"/t_1.*.out
cmp -s "$1" "$2" || fail "the same seed gave different text"

# --input - and --chat
ok
echo "What is 2+2?" | "$SESLM" generate --model "$GGUF" --input - --chat --max-tokens 24 >"$TMP/c.out" 2>"$TMP/c.err" ||
    fail "chat-wrapped generate failed: $(cat "$TMP/c.err")"
ok
grep -q "4" "$TMP/c.out" || fail "the chat answer lacks 4: $(cat "$TMP/c.out")"

# chat: two lines, two replies (each followed by an empty line), exit 0 at end of input
ok
printf 'Hi!\nWhat is the capital of France?\n' | "$SESLM" chat --model "$GGUF" --max-tokens 24 >"$TMP/chat.out" 2>"$TMP/chat.err" ||
    fail "chat failed: $(cat "$TMP/chat.err")"
ok
grep -q "Paris" "$TMP/chat.out" || fail "chat's second reply lacks Paris: $(cat "$TMP/chat.out")"
ok
printf 'ok\n\xff\n' | "$SESLM" chat --model "$GGUF" --max-tokens 4 >/dev/null 2>"$TMP/chat2.err"
[ $? -eq 1 ] && grep -q "invalid UTF-8" "$TMP/chat2.err" || fail "chat with an invalid line: $(cat "$TMP/chat2.err")"

cli_test_done
