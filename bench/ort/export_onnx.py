#!/usr/bin/env python3
"""Export all-MiniLM-L6-v2 to ONNX with mean pooling + L2 normalisation in the graph.

Usage: export_onnx.py MODEL_DIR [OUT_ONNX]   (default OUT_ONNX: MODEL_DIR/onnx/model.onnx)
Runs in the tests/oracle venv (needs torch + transformers). Inputs of the graph:
input_ids, attention_mask, token_type_ids (int64, [batch, seq], both axes dynamic);
output: sentence_embedding (float32, [batch, 384]), the same thing
SentenceTransformer.encode returns (Transformer -> Pooling(mean) -> Normalize).
"""
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
from transformers import AutoModel


class SentenceEncoder(torch.nn.Module):
    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask, token_type_ids):
        tok = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                        token_type_ids=token_type_ids).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(tok.dtype)
        # sentence-transformers Pooling: sum(tok*m) / clamp(sum(m), 1e-9)
        pooled = (tok * m).sum(1) / m.sum(1).clamp(min=1e-9)
        # sentence-transformers Normalize: F.normalize(p=2, eps=1e-12)
        return torch.nn.functional.normalize(pooled, p=2.0, dim=1)


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    model_dir = Path(sys.argv[1])
    out = Path(sys.argv[2]) if len(sys.argv) == 3 else model_dir / "onnx" / "model.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    bert = AutoModel.from_pretrained(str(model_dir), local_files_only=True, attn_implementation="eager")
    model = SentenceEncoder(bert).eval()
    ids = torch.tensor([[101, 7592, 2088, 999, 102], [101, 7592, 102, 0, 0]], dtype=torch.int64)
    am = (ids != 0).to(torch.int64)
    tt = torch.zeros_like(ids)
    with torch.no_grad():
        torch.onnx.export(
            model, (ids, am, tt), str(out),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["sentence_embedding"],
            dynamic_axes={"input_ids": {0: "batch", 1: "seq"},
                          "attention_mask": {0: "batch", 1: "seq"},
                          "token_type_ids": {0: "batch", 1: "seq"},
                          "sentence_embedding": {0: "batch"}},
            opset_version=17, do_constant_folding=True, dynamo=False,
        )
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB), torch {torch.__version__}")


if __name__ == "__main__":
    main()
