"""quantize_int8.py — the public-tool INT8 peer: ONNX Runtime's dynamic quantization of the fused graph
(INT8 weights per output channel, activations quantized at run time: what `optimum-cli onnxruntime
quantize --avx512_vnni` and ORT's own docs recommend for BERT-family encoders on CPU).

    bench/ort/.venv/bin/python bench/ort/quantize_int8.py MODEL_DIR   -> MODEL_DIR/onnx/model_int8.onnx
    bench/ort/.venv/bin/python bench/ort/quantize_int8.py MODEL_DIR --embed FILE OUT.jsonl
                                   (embeddings of FILE's lines, one {"embedding": [...]} per line)
"""
import json
import sys
from pathlib import Path

import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ort_peer import OrtEncoder  # noqa: E402


def main():
    model_dir = Path(sys.argv[1])
    src, dst = model_dir / "onnx" / "model_fused.onnx", model_dir / "onnx" / "model_int8.onnx"
    if not dst.exists() or dst.stat().st_mtime < src.stat().st_mtime:
        tmp = dst.with_suffix(".tmp.onnx")
        # the fused graph holds com.microsoft ops that shape inference cannot type: float is the default
        quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8, per_channel=True, reduce_range=False,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        tmp.replace(dst)
    if len(sys.argv) >= 5 and sys.argv[2] == "--embed":
        enc = OrtEncoder(model_dir, threads=2, max_len=256, onnx_path=dst)
        lines = [x.rstrip("\n") for x in open(sys.argv[3]) if x.strip()]
        with open(sys.argv[4], "w") as f:
            for i in range(0, len(lines), 32):
                for v in enc.encode(lines[i:i + 32]):
                    f.write(json.dumps({"embedding": [float(x) for x in v]}) + "\n")
    print(dst)


if __name__ == "__main__":
    main()
