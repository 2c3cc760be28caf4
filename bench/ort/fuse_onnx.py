#!/usr/bin/env python3
"""Fuse the exported BERT graph with ONNX Runtime's transformer optimizer (fp32, no quantisation).

Usage: fuse_onnx.py IN_ONNX OUT_ONNX
Produces EmbedLayerNormalization + 6 Attention + 12 SkipLayerNormalization + BiasGelu, the
same fusions optimum's ORT optimisation levels apply; pooling/normalise ops stay as they are.
This is the graph a user tuning ORT for BERT on CPU would run, so it is the default peer.
"""
import sys

from onnxruntime.transformers import optimizer


def main():
    src, dst = sys.argv[1], sys.argv[2]
    m = optimizer.optimize_model(src, model_type="bert", num_heads=12, hidden_size=384, opt_level=0)
    stats = {k: v for k, v in m.get_fused_operator_statistics().items() if v}
    if stats.get("Attention", 0) != 6:
        sys.exit(f"fusion incomplete: {stats}")
    m.save_model_to_file(dst)
    print(f"wrote {dst}: {stats}")


if __name__ == "__main__":
    main()
