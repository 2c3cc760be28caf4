#!/usr/bin/env python3
"""grounded_qa.py - the grounded QA set (data/grounded/) answered by the same SmolLM2 GGUF in llama.cpp
(llama-cpp-python, tests/oracle/decoder/requirements.txt) with the very prompts our node built, against
our decoder's raw answers and the node's answers after the hallucination check.

Input: the per-question log `seslm validate --decoder GGUF --out DIR` writes (DIR/grounded_candidate.jsonl:
question, expected answer, retrieved passages, the ChatML prompt, our raw answer, the node's verdict).
llama.cpp gets each prompt as it is (control tokens parsed), greedy, the same max tokens.

Rates (answerable / unanswerable as data/grounded/qa.tsv says):
  found     answerable questions whose answer contains the expected text (case-blind; alternatives '|')
  declined  unanswerable questions declined: for a raw model answer, it says it cannot answer (the phrases
            of runtime/assist/grounded_check.c seslm_ground_is_decline, copied below); for the node, its
            verdict is abstain or clarify
Prints a Markdown table and the per-question answers.

usage: .venv-oracle-decoder/bin/python bench/grounded_qa.py --model models/SmolLM2-135M-Instruct.Q4_1.gguf
                                       --log DIR/grounded_candidate.jsonl [--max-tokens 48] [--threads 2]
"""
import argparse, json, time

import numpy as np

from llama_cpp import Llama
import llama_cpp

# runtime/assist/grounded_check.c, seslm_ground_is_decline (keep in step)
DECLINE = ["don't know", "do not know", "don\u2019t know", "not mentioned", "no information",
           "not enough information", "does not say", "doesn't say", "does not mention", "doesn't mention",
           "does not provide", "doesn't provide", "not provided", "cannot answer", "can't answer",
           "cannot be answered", "not specified", "not stated", "no mention", "does not contain",
           "doesn't contain", "is not given", "not in the context", "cannot determine", "can't determine",
           "unable to answer", "unable to determine", "no answer"]


def declines(t):
    t = t.lower()
    return not t.strip() or any(p in t for p in DECLINE)


def found(t, expected):
    return any(e and e.lower() in t.lower() for e in expected.split("|"))


ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--log", required=True)
ap.add_argument("--max-tokens", type=int, default=48)
ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()

rows = [json.loads(l) for l in open(a.log, encoding="utf-8") if l.strip()]
llm = Llama(model_path=a.model, n_ctx=2048, n_batch=512, n_threads=a.threads, n_threads_batch=a.threads, logits_all=True,
            verbose=False)
vocab = llm._model.vocab

same = 0
t_llama = 0.0
for r in rows:
    r["llama"] = None
    if not r["prompt"]:  # no passage retrieved: the node abstained without asking the decoder
        continue
    ids = llm.tokenize(r["prompt"].encode(), add_bos=False, special=True)
    llm.reset()
    t0 = time.perf_counter()
    out = []
    llm.eval(ids)
    while len(out) < a.max_tokens:  # greedy, as decoder_peer.py: argmax of the last logits
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        # ours stops at the end-of-sequence token or any control token (runtime/decoder/generate.c)
        if llama_cpp.llama_vocab_is_eog(vocab, tok) or llama_cpp.llama_vocab_is_control(vocab, tok):
            break
        out.append(tok)
        if len(out) < a.max_tokens:
            llm.eval([tok])
    t_llama += time.perf_counter() - t0
    r["llama"] = llm.detokenize(out).decode("utf-8", errors="replace")
    same += r["llama"] == r["raw"]

ans = [r for r in rows if r["expected"]]
una = [r for r in rows if not r["expected"]]
asked = [r for r in rows if r["prompt"]]


def rate(k, n):
    return f"{k}/{n} ({100.0 * k / n:.0f}%)" if n else "-"


print(f"questions: {len(rows)} ({len(ans)} answerable, {len(una)} not; {len(asked)} with passages retrieved); "
      f"max {a.max_tokens} tokens, greedy, {a.threads} threads; llama-cpp-python {llama_cpp.__version__}")
print(f"identical raw answers, ours vs llama.cpp: {same}/{len(asked)}; llama.cpp generation {t_llama:.1f} s in all\n")
print("| answers by | answer found (answerable) | declined (unanswerable) | hallucinated (answered wrongly, all) |")
print("|---|---|---|---|")
for name, text_of, declined_of in (
        ("llama.cpp, raw model", lambda r: r["llama"] or "", lambda r: declines(r["llama"] or "")),
        ("seslm decoder, raw model", lambda r: r["raw"], lambda r: declines(r["raw"])),
        ("seslm node (decoder + hallucination check)", lambda r: r["raw"] if r["verdict"] == "answer" else "",
         lambda r: r["verdict"] != "answer")):
    f = sum(found(text_of(r), r["expected"]) for r in ans)
    d = sum(declined_of(r) for r in una)
    h = sum((not declined_of(r)) and not found(text_of(r), r["expected"]) for r in ans) + (len(una) - d)
    print(f"| {name} | {rate(f, len(ans))} | {rate(d, len(una))} | {rate(h, len(rows))} |")
print("\n| id | expected | llama.cpp | seslm raw | node verdict (support) |\n|---|---|---|---|---|")
for r in rows:
    cut = lambda t: (t or "").replace("|", "/").replace("\n", " ")[:70]
    print(f"| {r['id']} | {r['expected'] or '-'} | {cut(r['llama'])} | {cut(r['raw'])} | {r['verdict']} "
          f"({r['support']:.2f}) |")
