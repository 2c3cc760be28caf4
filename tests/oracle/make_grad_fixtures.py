#!/usr/bin/env python3
"""End-to-end gradient fixtures for the distillation engine (issue 13), from PyTorch autograd.

Usage: tests/oracle/.venv/bin/python tests/oracle/make_grad_fixtures.py MODEL_DIR OUT_DIR
  (venv: tests/oracle/setup_venv.sh; pinned torch 2.15.0, transformers 5.24.0, numpy 2.4.6)

For a few short sentences, the sentence embedding of all-MiniLM-L6-v2 as sentence-transformers computes
it (BertModel -> mean pooling over the attention mask -> L2 normalisation) and the scalar loss
L = sum(emb * R) with R fixed random (seed 13). Autograd's dL/dparam is stored for a small set of slices
(rows of several tensors of different kinds: word-embedding rows of ids in the batch, positions, LayerNorm,
Q / K / V / attention output / FFN weights and biases, several layers) so the fixture stays small.

Writes OUT_DIR/minilm_grads.txt (manifest) and OUT_DIR/minilm_grads.bin (float32 little-endian):
  sentences N
  ids n id id ...                    (N lines, the HF tokenizer's ids)
  r OFFSET COUNT                     (N x C, float offsets into the .bin)
  emb OFFSET COUNT                   (N x C, the normalised embeddings)
  loss VALUE
  grad NAME ROW0 NROWS NCOLS OFFSET  (rows ROW0.. of NAME, NCOLS 1 for a vector slice)
"""
import sys
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

SENTENCES = [
    "How do I reset my password?",
    "The cat sat on the mat.",
    "Book a table for two at an Italian restaurant tonight",
]
SLICES = [  # (tensor, first row, rows); vectors take (name, first, count)
    ("embeddings.position_embeddings.weight", 0, 3),
    ("embeddings.token_type_embeddings.weight", 0, 1),
    ("embeddings.LayerNorm.weight", 0, 384),
    ("embeddings.LayerNorm.bias", 0, 384),
    ("encoder.layer.0.attention.self.query.weight", 0, 2),
    ("encoder.layer.0.attention.self.query.bias", 0, 384),
    ("encoder.layer.2.attention.self.key.weight", 100, 2),
    ("encoder.layer.3.attention.self.value.weight", 37, 2),
    ("encoder.layer.3.attention.self.value.bias", 0, 384),
    ("encoder.layer.5.attention.output.dense.weight", 0, 2),
    ("encoder.layer.1.attention.output.LayerNorm.weight", 0, 384),
    ("encoder.layer.4.intermediate.dense.weight", 10, 2),
    ("encoder.layer.4.intermediate.dense.bias", 0, 1536),
    ("encoder.layer.1.output.dense.weight", 0, 1),
    ("encoder.layer.0.output.dense.bias", 0, 384),
    ("encoder.layer.5.output.LayerNorm.weight", 0, 384),
    ("encoder.layer.5.output.LayerNorm.bias", 0, 384),
]


def main():
    model_dir, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(13)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    model.eval()  # dropout off; gradients still flow
    enc = tok(SENTENCES, padding=True, truncation=True, max_length=256, return_tensors="pt")
    out = model(**enc).last_hidden_state  # (N, S, C)
    mask = enc["attention_mask"].unsqueeze(-1).float()
    pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    emb = torch.nn.functional.normalize(pooled, p=2, dim=1)
    rng = np.random.default_rng(13)
    r = torch.from_numpy(rng.standard_normal(emb.shape).astype(np.float32))
    loss = (emb * r).sum()
    loss.backward()
    params = dict(model.named_parameters())
    blobs, lines, off = [], [], 0

    def put(a):
        nonlocal off
        a = np.ascontiguousarray(a, dtype="<f4").ravel()
        blobs.append(a.tobytes())
        o = off
        off += a.size
        return o, a.size

    lines.append(f"sentences {len(SENTENCES)}")
    for i in range(len(SENTENCES)):
        ids = [int(t) for t, m in zip(enc["input_ids"][i], enc["attention_mask"][i]) if m]
        lines.append("ids %d %s" % (len(ids), " ".join(map(str, ids))))
    o, n = put(r.numpy())
    lines.append(f"r {o} {n}")
    o, n = put(emb.detach().numpy())
    lines.append(f"emb {o} {n}")
    lines.append(f"loss {loss.item():.9g}")
    # word-embedding rows of three ids of the batch (sparse row gradients), one of them repeated
    word_ids = sorted({int(enc["input_ids"][0][1]), int(enc["input_ids"][1][2]), int(enc["input_ids"][2][3])})
    slices = [("embeddings.word_embeddings.weight", i, 1) for i in word_ids] + SLICES
    for name, r0, nr in slices:
        g = params[name].grad
        if g.dim() == 2:
            o, n = put(g[r0:r0 + nr].numpy())
            lines.append(f"grad {name} {r0} {nr} {g.shape[1]} {o}")
        else:
            o, n = put(g[r0:r0 + nr].numpy())
            lines.append(f"grad {name} {r0} {nr} 1 {o}")
    (out_dir / "minilm_grads.txt").write_text("\n".join(lines) + "\n")
    (out_dir / "minilm_grads.bin").write_bytes(b"".join(blobs))
    print(f"wrote {len(slices)} slices, {off} floats, loss {loss.item():.6g}")


if __name__ == "__main__":
    main()
