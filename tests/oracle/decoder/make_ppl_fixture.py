#!/usr/bin/env python3
"""make_ppl_fixture.py - llama.cpp's (llama-cpp-python) negative log-likelihood of text, scored as
`seslm perplexity` scores it, for tests/cli/test_decoder_evolve.sh.

usage: tests/oracle/decoder/make_ppl_fixture.py MODEL.gguf TEXT_FILE N_LINES OUT.json
  (tests/oracle/decoder/make_decoder_fixtures.sh makes the venv)

Each of the first N_LINES non-empty lines is one document: the ids [<|endoftext|>] + tokenize(line), every
token after the first predicted from the ones before it (float64 log-softmax of llama.cpp's logits).
Writes {"llama_cpp", "model", "text", "lines", "tokens", "nll", "docs": [{"tokens", "nll"}]}.
"""
import json, sys

import numpy as np
import llama_cpp
from llama_cpp import Llama

model, text, n_lines, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
llm = Llama(model_path=model, n_ctx=512, n_batch=512, n_threads=2, n_threads_batch=2, logits_all=True,
            verbose=False, seed=0)
start = llm.tokenize(b"<|endoftext|>", add_bos=False, special=True)
assert len(start) == 1, start
lines = [l.rstrip("\n") for l in open(text, encoding="utf-8") if l.strip()][:n_lines]
docs, tot_nll, tot_tok = [], 0.0, 0
for line in lines:
    ids = start + llm.tokenize(line.encode("utf-8"), add_bos=False, special=False)
    llm.reset()
    llm.eval(ids[:-1])
    nll = 0.0
    for i in range(len(ids) - 1):
        z = np.asarray(llm.scores[i], dtype=np.float64)
        m = z.max()
        nll += float(np.log(np.exp(z - m).sum()) - (z[ids[i + 1]] - m))
    docs.append({"tokens": len(ids) - 1, "nll": nll})
    tot_nll += nll
    tot_tok += len(ids) - 1
json.dump({"llama_cpp": llama_cpp.__version__, "model": model.split("/")[-1], "text": text, "lines": len(lines),
           "tokens": tot_tok, "nll": tot_nll, "docs": docs}, open(out, "w"), indent=0)
print(f"{len(lines)} docs, {tot_tok} tokens, nll {tot_nll:.4f}, ppl {np.exp(tot_nll / tot_tok):.4f}")
