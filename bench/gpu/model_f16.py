#!/usr/bin/env python3
"""model_f16.py — a copy of a sentence-transformers model directory with model.safetensors rewritten in
F16 (half the bytes: all-MiniLM-L6-v2 goes from 91 MB to 46 MB), small enough to carry to the device
machine, which cannot download. Plain Python (struct's 'e' format), no numpy needed. Both sides of the
GPU benchmark then read the same F16-rounded weights (seslm converts them to F32 at load).

    python3 bench/gpu/model_f16.py models/all-MiniLM-L6-v2 build-gpu-model/all-MiniLM-L6-v2
"""
import json
import os
import shutil
import struct
import sys

SMALL = ["config.json", "config_sentence_transformers.json", "modules.json", "sentence_bert_config.json",
         "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"]


def convert(src, dst):
    with open(src, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        meta = header.pop("__metadata__", None)
        out_header, blobs, off = {}, [], 0
        for name, t in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
            a, b = t["data_offsets"]
            f.seek(base + a)
            raw = f.read(b - a)
            if t["dtype"] == "F32":
                vals = struct.unpack("<%df" % (len(raw) // 4), raw)
                raw = struct.pack("<%de" % len(vals), *vals)  # round to nearest even; overflow raises
                dtype = "F16"
            else:
                dtype = t["dtype"]
            out_header[name] = {"dtype": dtype, "shape": t["shape"], "data_offsets": [off, off + len(raw)]}
            blobs.append(raw)
            off += len(raw)
    if meta is not None:
        out_header["__metadata__"] = meta
    hj = json.dumps(out_header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)  # data section 8-byte aligned, as safetensors writers do
    tmp = dst + ".tmp"
    with open(tmp, "wb") as g:
        g.write(struct.pack("<Q", len(hj)))
        g.write(hj)
        for raw in blobs:
            g.write(raw)
        g.flush()
        os.fsync(g.fileno())
    os.replace(tmp, dst)


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    src, dst = sys.argv[1], sys.argv[2]
    os.makedirs(dst, exist_ok=True)
    for name in SMALL:
        if os.path.exists(os.path.join(src, name)):
            shutil.copy(os.path.join(src, name), os.path.join(dst, name))
    for sub in os.listdir(src):  # 1_Pooling, 2_Normalize
        if sub[:1].isdigit() and os.path.isdir(os.path.join(src, sub)):
            shutil.copytree(os.path.join(src, sub), os.path.join(dst, sub), dirs_exist_ok=True)
    convert(os.path.join(src, "model.safetensors"), os.path.join(dst, "model.safetensors"))
    print("wrote", dst, os.path.getsize(os.path.join(dst, "model.safetensors")), "bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
