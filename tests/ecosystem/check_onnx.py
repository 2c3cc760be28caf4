#!/usr/bin/env python3
"""An exported model (seslm export --format onnx) run by onnxruntime against `seslm embed`.

Usage: check_onnx.py SESLM MODEL_DIR ONNX_DIR TEXTS_FILE [int8|int8mm|int8-token|int8mm-token]
onnx.checker validates the file; the inputs are `seslm tokenize`'s ids as one padded batch.
FP32 models: every row's cosine to `seslm embed` >= 0.999 (onnxruntime's default optimisations).
INT8 students: SE-SLM quantizes activations per token at run time and the graph does the same (Round/Clip);
a value sitting on a rounding boundary may round the other way in another summation order. int8 (FP32
weights, activations fake-quantized, float products) and int8mm (--int8: MatMulInteger on the stored INT8
weights, exact int32 sums, dequantized with one rounding as SE-SLM's kernels): students whose INT8 layers keep
each token's largest element in float (recompile's default, kernels/quant.h top1), where such a flip moves
a row by a step of the row's own scale: every row's cosine >= 0.999. int8-token / int8mm-token: students
quantized per token alone (recompile --act-quant token, the students before 2026-12-05), where [CLS]'s
massive channel sets a coarse step and a flip moves the row visibly (SE-SLM's own cpu and cpu-ref backends
differ by as much: the script prints that peer): mean >= 0.999, worst >= 0.99 / 0.995.
Exit 1 on failure.
"""
import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort

seslm, model, d, texts_file = sys.argv[1:5]
onnx.checker.check_model(d + "/model.onnx", full_check=True)
run = lambda *a: subprocess.run([seslm, *a, "--model", model, "--input", texts_file], capture_output=True, text=True,
                                check=True).stdout.splitlines()
toks = [json.loads(l)["input_ids"] for l in run("tokenize")]
ref = np.array([json.loads(l)["embedding"] for l in run("embed")])
S = max(map(len, toks))
ids = np.zeros((len(toks), S), np.int64)
mask = np.zeros_like(ids)
for i, t in enumerate(toks):
    ids[i, :len(t)] = t
    mask[i, :len(t)] = 1
kind = sys.argv[5] if len(sys.argv) > 5 else "fp32"
token = kind.endswith("-token")
kind = kind.removesuffix("-token")
int8 = kind in ("int8", "int8mm")


def run_ort(level):
    so = ort.SessionOptions()
    so.graph_optimization_level = level
    sess = ort.InferenceSession(d + "/model.onnx", so, providers=["CPUExecutionProvider"])
    out = sess.run(["sentence_embedding"], {"input_ids": ids, "attention_mask": mask})[0]
    cos = (out * ref).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref, axis=1)
    return out, cos


G = ort.GraphOptimizationLevel
out, cos = run_ort(G.ORT_ENABLE_BASIC if kind == "int8" else G.ORT_ENABLE_ALL)
print(f"onnxruntime {ort.__version__}: {len(toks)} texts, mean cosine {cos.mean():.6f}, worst {cos.min():.6f}, "
      f"max abs {np.abs(out - ref).max():.2e}")
if int8:
    _, cos_all = run_ort(G.ORT_ENABLE_ALL)
    peer = np.array([json.loads(l)["embedding"] for l in run("embed", "--backend", "cpu-ref")])
    pc = (peer * ref).sum(1) / np.linalg.norm(peer, axis=1) / np.linalg.norm(ref, axis=1)
    print(f"  with ENABLE_ALL: mean {cos_all.mean():.6f}, worst {cos_all.min():.6f}; "
          f"peer seslm cpu-ref vs cpu: mean {pc.mean():.6f}, worst {pc.min():.6f}")
    good = cos.mean() >= 0.999 and cos.min() >= ((0.995 if kind == "int8mm" else 0.99) if token else 0.999)
else:
    good = cos.min() >= 0.999
sys.exit(0 if np.isfinite(out).all() and good else 1)
