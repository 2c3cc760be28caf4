#!/usr/bin/env python3
"""Check the ONNX peer against the sentence-transformers oracle fixtures.

Usage: verify_onnx.py MODEL_DIR FIXTURE_DIR [ONNX]   (default ONNX: MODEL_DIR/onnx/model.onnx)
Checks (1) the `tokenizers` ids equal ids.jsonl, (2) every embedding row, run in batches of
16 in file order (mixed lengths, so padding is exercised) and in the batch_cases groups,
has cosine >= 0.99999 with embeddings.f32. Exits non-zero on failure.
"""
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ort_peer import OrtEncoder  # noqa: E402

COS_MIN = 0.99999


def main():
    model_dir, fx = Path(sys.argv[1]), Path(sys.argv[2])
    inputs = [json.loads(l) for l in open(fx / "inputs.jsonl", encoding="utf-8")]
    ids_ref = [json.loads(l) for l in open(fx / "ids.jsonl", encoding="utf-8")]
    man = json.load(open(fx / "manifest.json"))
    ref = np.fromfile(fx / "embeddings.f32", dtype="<f4").reshape(man["count"], man["dim"])
    texts = [r["text"] for r in inputs]
    onnx_path = sys.argv[3] if len(sys.argv) > 3 else None
    enc = OrtEncoder(model_dir, threads=2, max_len=man["max_seq_length"], onnx_path=onnx_path)

    bad_ids = [r["id"] for r, e in zip(ids_ref, enc.tok.encode_batch(texts))
               if [i for i, m in zip(e.ids, e.attention_mask) if m] != r["input_ids"]]

    got = np.concatenate([enc.encode(texts[i:i + 16]) for i in range(0, len(texts), 16)])
    cos = np.sum(got.astype(np.float64) * ref, 1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
    maxabs = float(np.abs(got - ref).max())

    cases = json.load(open(fx / "batch_cases.json"))["cases"]
    case_cos = []
    for c in cases:
        e = enc.encode([texts[i] for i in c["ids"]])
        r = ref[c["ids"]]
        case_cos.append(float((np.sum(e * r, 1) / (np.linalg.norm(e, axis=1) * np.linalg.norm(r, axis=1))).min()))

    ok = not bad_ids and cos.min() >= COS_MIN and min(case_cos) >= COS_MIN
    print(f"verify_onnx {Path(onnx_path or 'model.onnx').name}: {len(texts)} inputs, id mismatches {len(bad_ids)} {bad_ids[:10]}, "
          f"min cosine {cos.min():.9f} (row {int(cos.argmin())}), max |diff| {maxabs:.3g}, "
          f"batch_cases min cosine {min(case_cos):.9f} -> {'OK' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
