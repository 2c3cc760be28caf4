#!/usr/bin/env python3
"""Peer for bench/RESULTS.md section 12: one distillation step of all-MiniLM-L6-v2 in PyTorch (CPU).

Usage: tests/oracle/.venv/bin/python bench/distill/torch_step.py MODEL_DIR CALIBRATION_TXT [THREADS] [STEPS]

The same work as one `seslm distill` step with the unpruned model as the student: a batch of 32
calibration sentences (truncated to 64 tokens, padded to the batch's longest as transformers needs),
forward, mean pooling, L2 normalisation, loss 1 - cos to fixed targets, backward, AdamW update (the
embeddings frozen as ours). Prints the median seconds per step after 2 warm-up steps.
"""
import statistics
import sys
import time

import torch
from transformers import AutoModel, AutoTokenizer


def main():
    model_dir, cal = sys.argv[1], sys.argv[2]
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    steps = int(sys.argv[4]) if len(sys.argv) > 4 else 8
    torch.set_num_threads(threads)
    torch.manual_seed(13)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, dtype=torch.float32)
    model.train()
    for n, p in model.named_parameters():
        if "word_embeddings" in n or "position_embeddings" in n or "token_type" in n:
            p.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-4, weight_decay=0.01)
    lines = [l.strip() for l in open(cal, encoding="utf-8") if l.strip()]
    times = []
    for s in range(steps + 2):
        batch = lines[(s * 32) % len(lines):(s * 32) % len(lines) + 32]
        enc = tok(batch, padding=True, truncation=True, max_length=64, return_tensors="pt")
        target = torch.nn.functional.normalize(torch.randn(len(batch), 384), dim=1)
        t0 = time.perf_counter()
        out = model(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).float()
        emb = torch.nn.functional.normalize((out * m).sum(1) / m.sum(1), dim=1)
        loss = (1 - (emb * target).sum(1)).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if s >= 2:
            times.append(time.perf_counter() - t0)
    print(f"torch {torch.__version__}: {statistics.median(times):.3f} s/step median over {len(times)} "
          f"(min {min(times):.3f}, max {max(times):.3f}), batch 32, {threads} threads")


if __name__ == "__main__":
    main()
