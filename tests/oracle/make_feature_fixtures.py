#!/usr/bin/env python3
"""Reference features of the last k layers (seslm_encoder_features_texts) from Hugging Face transformers.

Usage: make_feature_fixtures.py MODEL_DIR ORACLE_DIR OUT_DIR

For 64 of the oracle inputs (ORACLE_DIR/inputs.jsonl: every 6th, so short, long, truncated, CJK and
control-character texts are all among them) and k = 3: transformers' BertModel with output_hidden_states,
one sequence at a time (no padding), truncation at 256 tokens as the embedding pipeline truncates; for
each of the last k layers the mean of its output over the tokens, L2-normalised, times 1 / sqrt(k),
concatenated. Writes OUT_DIR/features_k3.f32 (64 x 3 x 384 float32 LE, row-major), OUT_DIR/ids.json
(the oracle input ids used) and OUT_DIR/manifest.json.
"""
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch
import transformers
from transformers import AutoModel, AutoTokenizer

K, STEP, COUNT, MAX_LEN = 3, 6, 64, 256


def main():
    model_dir, oracle_dir, out_dir = sys.argv[1:4]
    inputs = [json.loads(line) for line in open(os.path.join(oracle_dir, "inputs.jsonl"), encoding="utf-8")]
    picked = [r for r in inputs if r["id"] % STEP == 0][:COUNT]
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    torch.set_num_threads(2)
    rows = []
    with torch.no_grad():
        for r in picked:
            b = tok([r["text"]], truncation=True, max_length=MAX_LEN, return_tensors="pt")
            hs = model(**b, output_hidden_states=True).hidden_states  # (n_layers + 1) x (1, T, C)
            blocks = []
            for h in hs[-K:]:
                p = h[0].mean(0)
                blocks.append(p / max(p.norm().item(), 1e-12) / np.sqrt(K))
            rows.append(torch.cat(blocks).numpy().astype("<f4"))
    os.makedirs(out_dir, exist_ok=True)
    np.stack(rows).tofile(os.path.join(out_dir, "features_k3.f32"))
    json.dump([r["id"] for r in picked], open(os.path.join(out_dir, "ids.json"), "w"))
    json.dump({"k": K, "count": len(rows), "dim": int(rows[0].shape[0]), "dtype": "float32 little-endian, row-major",
               "inputs": "tests/fixtures/oracle/inputs.bin, the ids in ids.json",
               "reference": "transformers %s BertModel hidden_states, torch %s, mean over tokens, L2-normalised per layer, "
                            "times 1/sqrt(k)" % (transformers.__version__, torch.__version__),
               "max_seq_length": MAX_LEN},
              open(os.path.join(out_dir, "manifest.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
