#!/usr/bin/env python3
"""st_peer.py — the PyTorch / sentence-transformers peer for bench_gpu e2e, on the same GPU.

Times what bench_gpu e2e times: B sequences of exactly SEQ token ids ([CLS] random word pieces [SEP],
no padding), the transformer forward, mean pooling over the attention mask and L2 normalisation,
then the pooled (B, 384) embeddings copied to the host. Tokenization is excluded on both sides.
Timing: host clock around each call after torch.cuda.synchronize() (the .cpu() copy waits too), warm-up
calls first, median / min / max over the repeats; one JSON line per (dtype, batch), like bench_gpu.

    python3 bench/gpu/st_peer.py --model models/all-MiniLM-L6-v2 --batches 1,32,256 --seq 128 --dtype fp16

Before timing it checks its fp16 embeddings against its own fp32 ones (cosine >= 0.999); correctness of
the C side is the job of the ctest suite (test_kernels_cuda) and of bench_gpu's own checks.
"""
import argparse
import json
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/all-MiniLM-L6-v2")
    ap.add_argument("--batches", default="1,32,256")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--dtype", default="fp16", choices=["fp16", "fp32", "both"])
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    if not torch.cuda.is_available():
        print("skipped: no GPU visible to PyTorch")
        return 77
    dev = torch.device("cuda")
    batches = [int(b) for b in args.batches.split(",")]
    gen = torch.Generator().manual_seed(args.seed)
    st32 = SentenceTransformer(args.model, device="cuda").eval()
    vocab = st32[0].auto_model.config.vocab_size

    def make_ids(B):
        ids = torch.randint(1000, vocab, (B, args.seq), generator=gen)
        ids[:, 0] = 101   # [CLS]
        ids[:, -1] = 102  # [SEP]
        return ids

    def embed(model, ids, mask):
        # the sentence-transformers pipeline (Transformer -> Pooling(mean) -> Normalize), on tensors
        feats = model({"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)})
        return feats["sentence_embedding"].float().cpu()

    dtypes = ["fp16", "fp32"] if args.dtype == "both" else [args.dtype]
    models = {}
    for dt in dtypes:
        if dt == "fp16":
            st16 = SentenceTransformer(args.model, device="cuda").eval().half()
            models[dt] = st16
        else:
            models[dt] = st32

    gpu = torch.cuda.get_device_name(0)
    print(json.dumps({"bench": "device", "gpu": gpu, "torch": torch.__version__,
                      "sentence_transformers": __import__("sentence_transformers").__version__}))
    with torch.inference_mode():
        # sanity: fp16 against fp32 on one batch
        if "fp16" in models:
            ids = make_ids(8).to(dev)
            mask = torch.ones_like(ids)
            a, b = embed(st32, ids, mask), embed(models["fp16"], ids, mask)
            cos = torch.nn.functional.cosine_similarity(a, b).min().item()
            if cos < 0.999:
                print(f"st_peer: fp16 vs fp32 cosine {cos:.5f} < 0.999", file=sys.stderr)
                return 1
        for dt, model in models.items():
            for B in batches:
                ids = make_ids(B).to(dev)
                mask = torch.ones_like(ids)
                times = []
                for k in range(args.warmup + args.repeats):
                    torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    out = embed(model, ids, mask)  # .cpu() waits for the device
                    t1 = time.perf_counter()
                    if k >= args.warmup:
                        times.append((t1 - t0) * 1e3)
                assert out.shape == (B, 384) and torch.isfinite(out).all()
                med = statistics.median(times)
                print(json.dumps({"bench": "e2e", "model": f"sentence-transformers {dt}", "batch": B, "seq": args.seq,
                                  "repeats": args.repeats, "ms_median": round(med, 4), "ms_min": round(min(times), 4),
                                  "ms_max": round(max(times), 4), "sentences_per_s": round(B / (med / 1e3), 1)}),
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
