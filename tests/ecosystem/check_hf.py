#!/usr/bin/env python3
"""An exported Hugging Face folder (seslm export --format hf) loaded by stock sentence-transformers against
`seslm embed` on the same texts.

Usage: check_hf.py SESLM MODEL_DIR HF_DIR TEXTS_FILE standard|custom
standard: config.json is a plain BertModel (model_type bert, no modeling file) and loads WITHOUT
trust_remote_code. custom: model_type seslm_bert; without trust_remote_code transformers refuses it, with it
SentenceTransformer loads modeling_seslm.py. Criterion: every text's cosine to `seslm embed` >= 0.999 (and
finite). For INT8 layers the script also prints SE-SLM's own peer (cpu-ref backend vs the default cpu one).
Runs with tests/oracle/.venv (pinned sentence-transformers, transformers, torch). Exit 1 on failure.
"""
import json
import os
import subprocess
import sys

import numpy as np
import torch
import transformers
import sentence_transformers
from sentence_transformers import SentenceTransformer

seslm, model, d, texts_file, kind = sys.argv[1:6]
torch.set_num_threads(1)
texts = open(texts_file, encoding="utf-8").read().split("\n")
if texts and texts[-1] == "":
    texts.pop()


def embed(*extra):
    out = subprocess.run([seslm, "embed", "--model", model, "--input", texts_file, *extra], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    return np.array([json.loads(l)["embedding"] for l in out])


def cos(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


ref = embed()
assert ref.shape[0] == len(texts), (ref.shape, len(texts))
cfg = json.load(open(os.path.join(d, "config.json")))
has_py = os.path.exists(os.path.join(d, "modeling_seslm.py"))
bad = []
if kind == "standard":
    if cfg["model_type"] != "bert" or cfg["architectures"] != ["BertModel"] or has_py:
        bad.append(f"expected a standard BertModel folder: model_type {cfg['model_type']}, modeling file {has_py}")
    st = SentenceTransformer(d, device="cpu")
    if type(st[0].auto_model).__name__ != "BertModel":
        bad.append(f"loaded as {type(st[0].auto_model).__name__}, not BertModel")
else:
    if cfg["model_type"] != "seslm_bert" or not has_py:
        bad.append(f"expected model_type seslm_bert with modeling_seslm.py: {cfg['model_type']}, {has_py}")
    try:  # without trust_remote_code a stock loader must refuse, never build a BertModel from it
        transformers.AutoModel.from_pretrained(d)
        bad.append("AutoModel loaded the custom folder without trust_remote_code")
    except Exception as e:
        print(f"  without trust_remote_code: refused ({type(e).__name__})")
    st = SentenceTransformer(d, device="cpu", trust_remote_code=True)
    if type(st[0].auto_model).__name__ != "SeslmBertModel":
        bad.append(f"loaded as {type(st[0].auto_model).__name__}, not SeslmBertModel")
out = st.encode(texts, batch_size=16, convert_to_numpy=True)
c = cos(out, ref)
print(f"sentence-transformers {sentence_transformers.__version__} (transformers {transformers.__version__}, torch "
      f"{torch.__version__}): {len(texts)} texts, mean cosine {c.mean():.6f}, worst {c.min():.6f}, "
      f"max abs {np.abs(out - ref).max():.2e}")
int8 = any(l.get("int8") for l in cfg.get("seslm_layers", []))
if int8:
    pc = cos(embed("--backend", "cpu-ref"), ref)
    pc2 = cos(out, embed("--backend", "cpu-ref"))
    print(f"  peer seslm cpu-ref vs cpu: mean {pc.mean():.6f}, worst {pc.min():.6f}; "
          f"sentence-transformers vs cpu-ref: mean {pc2.mean():.6f}, worst {pc2.min():.6f}")
if not np.isfinite(out).all():
    bad.append("non-finite output")
# INT8 students quantized per token alone (before 2026-12-05) flip on rounding boundaries of [CLS]'s coarse step
# (docs/ecosystem.md): worst 0.995; recompile's default (each token's largest element in float) as FP32
top1 = bool(cfg.get("seslm_int8_top1"))
floor = 0.995 if int8 and not top1 else 0.999
if c.min() < floor or (int8 and c.mean() < 0.999):
    bad.append(f"mean cosine {c.mean():.6f}, worst {c.min():.6f} < {floor} (text {int(c.argmin())}: "
               f"{texts[int(c.argmin())][:60]!r})")
for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
