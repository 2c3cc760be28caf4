#!/usr/bin/env python3
"""make_decoder_fixtures.py - oracle outputs of llama.cpp (llama-cpp-python, pinned in requirements.txt)
on SmolLM2-135M-Instruct.Q4_1.gguf, for tests/unit/test_decoder_oracle.c.

usage: tests/oracle/decoder/make_decoder_fixtures.py MODEL.gguf OUT_DIR
  (tests/oracle/decoder/make_decoder_fixtures.sh makes the venv and runs it)

Writes to OUT_DIR (tests/fixtures/decoder/):
  tokens.json    [{"text", "special", "ids"}]: llama.cpp's tokenizer (no BOS; special = parse control
                 tokens written in the text) on varied text: Unicode, code, whitespace runs, numbers
  greedy.json    {"llama_cpp": version, "prompts": [{"text", "special", "prompt_ids", "greedy_ids",
                 "steps": [{"top": [[id, logit] x 20]}]}]}: greedy continuations (argmax, 40 tokens
                 or to the end-of-sequence token) and the top-20 logits of the first 4 steps
  logits_<i>.f32 the full first-step logits (vocabulary size float32, little-endian) of prompt i
Everything runs with 2 threads and a batch of 512 (one prompt batch), deterministic.
"""
import json, os, struct, sys

import llama_cpp
from llama_cpp import Llama

model, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
llm = Llama(model_path=model, n_ctx=1024, n_batch=512, n_threads=2, n_threads_batch=2, logits_all=True,
            verbose=False, seed=0)

TEXTS = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    " leading space and trailing space ",
    "don't, can't, I'LL, we've, she'd, they're, it's",
    "Numbers: 1234567890, 3.14159, 1,000,000 and 42nd place; year 2024.",
    "multiple    spaces   here\tand\ttabs\n\nnew lines\n\n\n   indented",
    "    \n\t  \r\n",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "int main(void) { printf(\"%d\\n\", a[i] >> 2 && x != y); return 0; }",
    "Café, naïve, résumé, Zürich, São Paulo, Ångström",
    "日本語のテキストと中文文本，한국어 텍스트",
    "Emoji: 😀🎉👍🏽 and symbols ©®™ ± × ÷ → ∞ ≈ ≠",
    "Русский текст и ελληνικά γράμματα",
    "مرحبا بالعالم",
    "e\u0301 combining accent, \u00a0no-break space, zero\u200bwidth",
    "URL: https://example.com/path?q=1&r=2#frag and email a.b@c.org",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "!!!??? ... --- *** ((()))",
    "UPPERCASE lowercase MiXeD CamelCaseWords snake_case_words",
    "control\x04bytes\x07here",
    "१२३ Devanagari digits ٣٤٥ Arabic-Indic",
    "a" * 40 + " " + "ab" * 20,
]

toks = []
for t in TEXTS:
    for special in ([False, True] if "<|" in t else [False]):
        ids = llm.tokenize(t.encode("utf-8"), add_bos=False, special=special)
        toks.append({"text": t, "special": special, "ids": ids})
with open(os.path.join(out, "tokens.json"), "w", encoding="utf-8") as f:
    json.dump(toks, f, ensure_ascii=False, indent=0)

def chat(user):
    return ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n")

PROMPTS = [
    (chat("What is the capital of France?"), True),
    (chat("Write a Python function that reverses a string."), True),
    (chat("Explain photosynthesis in two sentences."), True),
    ("The history of the Roman Empire begins", False),
    ("Once upon a time, in a small village", False),
    (chat("List three primary colors."), True),
]
EOS = llm.token_eos()
prompts = []
for i, (text, special) in enumerate(PROMPTS):
    ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)
    llm.reset()
    llm.eval(ids)
    steps, greedy = [], []
    for step in range(40):
        logits = llm.scores[llm.n_tokens - 1]
        if step == 0 and i < 4:
            with open(os.path.join(out, f"logits_{i}.f32"), "wb") as f:
                f.write(struct.pack("<%df" % len(logits), *[float(v) for v in logits]))
        if step < 4:
            top = sorted(range(len(logits)), key=lambda j: -logits[j])[:20]
            steps.append({"top": [[j, round(float(logits[j]), 5)] for j in top]})
        nxt = int(max(range(len(logits)), key=lambda j: logits[j]))
        greedy.append(nxt)
        if nxt == EOS:
            break
        llm.eval([nxt])
    prompts.append({"text": text, "special": special, "prompt_ids": ids, "greedy_ids": greedy, "steps": steps})
    print(f"prompt {i}: {len(ids)} tokens -> {len(greedy)} greedy tokens", file=sys.stderr)

with open(os.path.join(out, "greedy.json"), "w", encoding="utf-8") as f:
    json.dump({"llama_cpp": llama_cpp.__version__, "n_vocab": llm.n_vocab(), "prompts": prompts}, f,
              ensure_ascii=False, indent=0)
print("make_decoder_fixtures: wrote", out, file=sys.stderr)
