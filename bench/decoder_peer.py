#!/usr/bin/env python3
"""decoder_peer.py - decode and prompt-processing speed of `seslm generate` against llama.cpp
(llama-cpp-python, tests/oracle/decoder/requirements.txt) on the same GGUF file, same prompt tokens,
same thread count, batch 1, greedy; rounds interleaved (ours, llama.cpp, ours, ...) so that load on the
machine hits both alike. Prints a Markdown table of medians with (min..max).

usage: bench/decoder_peer.py --seslm build/seslm --model models/SmolLM2-135M-Instruct.Q4_1.gguf
                             [--threads 2] [--rounds 5] [--gen 64]
(run it with the oracle venv's python: .venv-oracle-decoder/bin/python)
"""
import argparse, json, os, statistics, subprocess, sys, time

import numpy as np
from llama_cpp import Llama
import llama_cpp

ap = argparse.ArgumentParser()
ap.add_argument("--seslm", required=True)
ap.add_argument("--model", required=True)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--rounds", type=int, default=5)
ap.add_argument("--gen", type=int, default=64)
a = ap.parse_args()

PROMPT = ("The history of the Roman Empire spans more than a thousand years, from the founding of the city "
          "of Rome to the fall of Constantinople. During this time, Rome grew from a small settlement on the "
          "banks of the Tiber into a vast empire that stretched from Britain to Egypt. Its legions built roads, "
          "aqueducts and fortifications, and its laws and language shaped the institutions of Europe for "
          "centuries. Historians usually divide this long period into three parts: the Kingdom, the Republic "
          "and the Empire. In this essay we look at")

llm = Llama(model_path=a.model, n_ctx=1024, n_batch=512, n_threads=a.threads, n_threads_batch=a.threads,
            verbose=False)
ids = llm.tokenize(PROMPT.encode(), add_bos=False, special=False)

def run_llama():  # (tok/s wall, tok/s wall, tok per CPU-second, tok per CPU-second)
    llm.reset()
    t0, c0 = time.perf_counter(), time.process_time()
    llm.eval(ids)
    t1, c1 = time.perf_counter(), time.process_time()
    tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    n = 0
    t2, c2 = time.perf_counter(), time.process_time()
    for _ in range(a.gen - 1):
        llm.eval([tok])
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        n += 1
    t3, c3 = time.perf_counter(), time.process_time()
    return len(ids) / (t1 - t0), n / (t3 - t2), len(ids) / (c1 - c0), n / (c3 - c2)

def run_ours():
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    p = subprocess.run([a.seslm, "generate", "--model", a.model, "--prompt", PROMPT, "--max-tokens", str(a.gen),
                        "--threads", str(a.threads), "--stats", "--ctx", "1024"], capture_output=True, text=True,
                       env=env, check=True)
    st = json.loads(p.stderr.strip().splitlines()[-1])
    assert st["prompt_tokens"] == len(ids), (st, len(ids))
    n = st["generated_tokens"] - 1
    return (st["prompt_tok_per_s"], st["gen_tok_per_s"], st["prompt_tokens"] / (st["prompt_cpu_ms"] / 1e3),
            n / (st["gen_cpu_ms"] / 1e3))

run_llama(); run_ours()  # warm-up (page cache, first-touch)
res = {"seslm": [], "llama.cpp": []}
for r in range(a.rounds):
    res["seslm"].append(run_ours())
    res["llama.cpp"].append(run_llama())
    print(f"round {r}: seslm {res['seslm'][-1]}, llama.cpp {res['llama.cpp'][-1]}", file=sys.stderr)

def fmt(v):
    return f"{statistics.median(v):.1f} ({min(v):.1f}..{max(v):.1f})"

print(f"llama-cpp-python {llama_cpp.__version__}; prompt {len(ids)} tokens, {a.gen} generated, {a.threads} threads, "
      f"{a.rounds} interleaved rounds")
print("| runtime | prompt tok/s (wall) | decode tok/s (wall) | prompt tok per CPU-s | decode tok per CPU-s |")
print("|---|---|---|---|---|")
for k, v in res.items():
    print(f"| {k} | " + " | ".join(fmt([x[i] for x in v]) for i in range(4)) + " |")
r = [statistics.median([x[i] for x in res["seslm"]]) / statistics.median([x[i] for x in res["llama.cpp"]]) for i in range(4)]
print("| seslm / llama.cpp | " + " | ".join(f"**{x:.2f}x**" for x in r) + " |")
