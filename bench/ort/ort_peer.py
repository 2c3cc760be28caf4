"""ONNX Runtime sentence-embedding peer: tokenizers (tokenizer.json) -> ORT graph -> embeddings.

The graph (export_onnx.py) already does mean pooling + L2 normalisation, so encode() is the
whole sentence-embedding job, like SentenceTransformer.encode.
"""
import os
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


class OrtEncoder:
    def __init__(self, model_dir, threads=1, max_len=256, onnx_path=None):
        model_dir = Path(model_dir)
        self.tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # tokenizer.json ships Fixed(128) padding and 128 truncation: replace them with what
        # sentence-transformers does (truncate at max_seq_length, pad to the longest in the batch).
        self.tok.enable_truncation(max_len)
        self.tok.enable_padding(pad_id=0, pad_token="[PAD]")
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sess = ort.InferenceSession(str(onnx_path or model_dir / "onnx" / "model.onnx"), so,
                                         providers=["CPUExecutionProvider"])

    def tokenize(self, texts):
        enc = self.tok.encode_batch(list(texts))
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        am = np.array([e.attention_mask for e in enc], dtype=np.int64)
        return ids, am

    def run(self, ids, am):
        return self.sess.run(None, {"input_ids": ids, "attention_mask": am,
                                    "token_type_ids": np.zeros_like(ids)})[0]

    def encode(self, texts):
        return self.run(*self.tokenize(texts))
