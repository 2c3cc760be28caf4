#!/usr/bin/env bash
# test_generate.sh — `seslm generate` and `seslm chat`: help, usage errors (exit 2), bad model files and
# bad prompts (exit 1 with a message naming the problem), and real generation on SmolLM2-135M-Instruct
# (data/fetch_decoder.sh; without it the test FAILS): greedy output is deterministic and equals the
# streamed text, stop strings cut it, a seed makes sampling repeatable, chat answers each line; the run's
# telemetry dump (--telemetry-dir) read back with h5py.
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

# --special: an already formatted prompt; its control tokens are tokens, not text (without the flag the same
# bytes are text, and the model answers something else)
ok
printf '<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n' >"$TMP/fmt.txt"
"$SESLM" generate --model "$GGUF" --input "$TMP/fmt.txt" --special --max-tokens 24 >"$TMP/s.out" 2>"$TMP/s.err" ||
    fail "generate --special failed: $(cat "$TMP/s.err")"
ok
grep -q "4" "$TMP/s.out" && ! grep -q "im_start\|im_end" "$TMP/s.out" || fail "the --special answer: $(cat "$TMP/s.out")"
ok
"$SESLM" generate --model "$GGUF" --input "$TMP/fmt.txt" --max-tokens 24 >"$TMP/s2.out" 2>/dev/null || fail "generate of the text"
! cmp -s "$TMP/s.out" "$TMP/s2.out" || fail "--special changed nothing: $(cat "$TMP/s.out")"
expect 2 "give one of them" "--chat with --special" -- generate --model "$GGUF" --prompt a --chat --special

# chat: two lines, two replies (each followed by an empty line), exit 0 at end of input
ok
printf 'Hi!\nWhat is the capital of France?\n' | "$SESLM" chat --model "$GGUF" --max-tokens 24 >"$TMP/chat.out" 2>"$TMP/chat.err" ||
    fail "chat failed: $(cat "$TMP/chat.err")"
ok
grep -q "Paris" "$TMP/chat.out" || fail "chat's second reply lacks Paris: $(cat "$TMP/chat.out")"
ok
printf 'ok\n\xff\n' | "$SESLM" chat --model "$GGUF" --max-tokens 4 >/dev/null 2>"$TMP/chat2.err"
[ $? -eq 1 ] && grep -q "invalid UTF-8" "$TMP/chat2.err" || fail "chat with an invalid line: $(cat "$TMP/chat2.err")"

# telemetry of the decoder (issue 17 item 5): one HDF5 dump of the run; the text is the same as without it
expect 2 "give both" "--node without --telemetry-dir" -- generate --model "$GGUF" --prompt a --node n1
expect 2 "--node" "bad node id" -- generate --model "$GGUF" --prompt a --telemetry-dir "$TMP/tel" --node "bad id!"
: >"$TMP/afile"
expect 1 "not a directory" "--telemetry-dir is a file" -- generate --model "$GGUF" --prompt a --telemetry-dir "$TMP/afile"
ok
"$SESLM" generate --model "$GGUF" --prompt "The capital of France is" --max-tokens 16 --stats --telemetry-dir "$TMP/tel" \
    --node t1 >"$TMP/t.out" 2>"$TMP/t.err" || fail "generate with telemetry failed: $(cat "$TMP/t.err")"
ok
cmp -s "$TMP/t.out" "$TMP/g1.out" || fail "telemetry changed the text: $(cat "$TMP/t.out") vs $(cat "$TMP/g1.out")"
ok
set -- "$TMP"/tel/t1-*.h5
[ $# -eq 1 ] && [ -s "$1" ] && grep -q "telemetry dump $1" "$TMP/t.err" || fail "no dump t1-*.h5: $(ls "$TMP/tel") / $(cat "$TMP/t.err")"
DUMP=$1
ok
if bash "$ROOT/tests/telemetry/setup_venv.sh" >"$TMP/venv.log" 2>&1; then
    stats=$(grep '^{' "$TMP/t.err")
    "$ROOT/tests/telemetry/.venv/bin/python" - "$DUMP" "$stats" "$(sha256sum "$GGUF" | cut -d' ' -f1)" >"$TMP/h5.out" 2>&1 <<'PY' ||
import json, math, sys
import h5py, numpy as np
f, st, sha = h5py.File(sys.argv[1], "r"), json.loads(sys.argv[2]), sys.argv[3]
A = f.attrs
n_tok = st["prompt_tokens"] + st["generated_tokens"] - 1  # the last token sampled is not decoded
bad = []
def need(c, what):
    if not c: bad.append(what)
need(A["n_layers"] == 30 and A["hidden"] == 576 and A["vocab_size"] == 49152, "shape attributes")
need(A["model_sha256"].decode() == sha, "model_sha256 is not the GGUF file's SHA-256")
need(A["node_id"] == b"t1" and A["n_requests"] == 1, "node / requests")
need(A["n_tokens"] == n_tok and f["tokens/counts"][:].sum() == n_tok, f"n_tokens {A['n_tokens']} != {n_tok}")
need(A["n_batches"] == st["generated_tokens"], "one batch per decode call")
need(len(f["layers"]) == 30, "30 layer groups")
for l in range(30):
    g = f["layers"][str(l)]
    need(g.attrs["ffn_tokens"] == n_tok and g.attrs["query_tokens"] == n_tok and g.attrs["exec_count"] == A["n_batches"],
         f"layer {l} counters")
    need(g["ffn_sq_sum"].shape == (1536,) and g["head_out_norm_sum"].shape == (9,), f"layer {l} shapes")
    for k in g:
        need(np.all(np.isfinite(g[k][:])), f"layer {l} {k} not finite")
    need(g["ffn_pos_count"][:].max() <= n_tok and g["ffn_sq_sum"][:].sum() > 0, f"layer {l} neuron activity")
    need(np.all(g["head_out_norm_sum"][:] > 0) and np.all(g["in_sq_qkv"][:] >= 0), f"layer {l} heads")
    H = g["head_entropy_sum"][:] / n_tok
    W = g["head_max_weight_sum"][:] / n_tok
    # a query at position p attends p + 1 keys: entropy in [0, log(n_tok)], largest weight in [1 / n_tok, 1]
    need(np.all(H >= -1e-6) and np.all(H <= math.log(n_tok) + 1e-6) and np.all(W > 0) and np.all(W <= 1 + 1e-6),
         f"layer {l} attention statistics")
print("decoder dump:", "bad: " + "; ".join(bad[:5]) if bad else f"ok ({n_tok} tokens, 30 layers)")
sys.exit(1 if bad else 0)
PY
        fail "decoder dump: $(cat "$TMP/h5.out")"
    cat "$TMP/h5.out"
else
    fail "cannot set up tests/telemetry/.venv (h5py): $(tail -c 500 "$TMP/venv.log")"
fi

cli_test_done
