#!/usr/bin/env python3
"""Pooling-mode, prompt and tokenizer.json-only fixtures, computed by sentence-transformers.

Usage: make_pooling_fixtures.py MODEL_DIR ORACLE_DIR OUT_DIR

Every case is a model folder built from the real all-MiniLM-L6-v2 weights (symlinked) with its own
modules.json, 1_Pooling/config.json and config_sentence_transformers.json. For each case OUT_DIR/<case>/
holds those three files (what the C test copies over the real model) and embeddings.f32 (raw float32 LE,
N x 384, row i = input SUBSET[i], SentenceTransformer.encode(batch_size=16), so padded batches of mixed
lengths go through the masks). Cases with prompts also hold embeddings_<prompt>.f32 for
encode(prompt_name=<prompt>). manifest.json lists the subset of oracle inputs, versions and cases.
Also checked (the script fails otherwise): a folder with tokenizer.json but no vocab.txt gives the ids of
ORACLE_DIR/ids.jsonl and the embeddings of ORACLE_DIR/embeddings.f32 (to 1e-6).
"""
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import sentence_transformers
import torch
import transformers
from sentence_transformers import SentenceTransformer

BATCH = 16
DIM = 384
MODS = lambda norm: [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
] + ([{"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}] if norm else [])
LEGACY = lambda mode: {"word_embedding_dimension": DIM, **{k: k == mode for k in (
    "pooling_mode_cls_token", "pooling_mode_mean_tokens", "pooling_mode_max_tokens",
    "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")}}
PROMPTS = {"prompts": {"query": "query: ", "passage": "Represent this passage for retrieval: "},
           "default_prompt_name": "query"}

# name: (modules.json normalize?, pooling config, config_sentence_transformers.json or None)
CASES = {
    "mean_raw": (False, {"embedding_dimension": DIM, "pooling_mode": "mean"}, None),
    "cls": (False, LEGACY("pooling_mode_cls_token"), None),
    "max": (False, LEGACY("pooling_mode_max_tokens"), None),
    "mean_sqrt_len": (False, LEGACY("pooling_mode_mean_sqrt_len_tokens"), None),
    "weightedmean": (False, {"embedding_dimension": DIM, "pooling_mode": "weightedmean"}, None),
    "lasttoken": (False, LEGACY("pooling_mode_lasttoken"), None),
    "max_normalized": (True, {"embedding_dimension": DIM, "pooling_mode": ["max"]}, None),
    "prompt_mean": (True, LEGACY("pooling_mode_mean_tokens"), PROMPTS),
    "prompt_excluded_mean": (True, {**LEGACY("pooling_mode_mean_tokens"), "include_prompt": False}, PROMPTS),
    "prompt_excluded_cls": (False, {"embedding_dimension": DIM, "pooling_mode": "cls", "include_prompt": False}, PROMPTS),
    "prompt_excluded_weightedmean": (False, {"embedding_dimension": DIM, "pooling_mode": "weightedmean",
                                             "include_prompt": False}, PROMPTS),
}


def build(model_dir: Path, root: Path, name, norm, pool, stcfg, drop=()):
    d = root / name
    d.mkdir()
    for f in model_dir.iterdir():
        if f.name in ("modules.json", "1_Pooling", "config_sentence_transformers.json", "2_Normalize") or f.name in drop:
            continue
        os.symlink(f.resolve(), d / f.name)
    (d / "1_Pooling").mkdir()
    (d / "1_Pooling" / "config.json").write_text(json.dumps(pool, indent=2) + "\n")
    (d / "modules.json").write_text(json.dumps(MODS(norm), indent=2) + "\n")
    if stcfg is not None:
        (d / "config_sentence_transformers.json").write_text(json.dumps(stcfg, indent=2) + "\n")
    return d


def main():
    model_dir, oracle, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    torch.manual_seed(0)
    inputs = [json.loads(l) for l in (oracle / "inputs.jsonl").read_text(encoding="utf-8").split("\n") if l]
    manifest_o = json.loads((oracle / "manifest.json").read_text())
    truncated = sorted(int(k) for k in manifest_o["token_length_stats"]["truncated_inputs_full_length"])
    subset = sorted(set(range(0, len(inputs), 8)) | set(truncated[:4]))
    texts = [inputs[i]["text"] for i in subset]
    ref_all = np.fromfile(oracle / "embeddings.f32", dtype="<f4").reshape(len(inputs), DIM)
    ref_ids = [json.loads(l)["input_ids"] for l in (oracle / "ids.jsonl").read_text(encoding="utf-8").split("\n") if l]
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # tokenizer.json only: the same ids and embeddings as the full folder
        tj = build(model_dir, tmp, "tokenizer_json_only", True, LEGACY("pooling_mode_mean_tokens"), None,
                   drop=("vocab.txt",))
        m = SentenceTransformer(str(tj), device="cpu")
        tokzr = m.tokenizer
        bad = [i for i, r in enumerate(inputs)
               if tokzr(r["text"], truncation=True, max_length=256)["input_ids"] != ref_ids[i]]
        emb = m.encode([r["text"] for r in inputs], batch_size=BATCH, convert_to_numpy=True)
        err = float(np.abs(emb - ref_all).max())
        if bad or err > 1e-6:
            sys.exit(f"tokenizer.json-only folder differs from the oracle: ids of {bad[:10]}, max abs {err}")
        report["tokenizer_json_only"] = {"ids_equal": len(inputs), "max_abs_vs_oracle": err}
        for name, (norm, pool, stcfg) in CASES.items():
            d = build(model_dir, tmp, name, norm, pool, stcfg)
            m = SentenceTransformer(str(d), device="cpu")
            o = out / name
            (o / "1_Pooling").mkdir(parents=True)
            for f in ("modules.json", "1_Pooling/config.json", "config_sentence_transformers.json"):
                if (d / f).exists():
                    shutil.copy(d / f, o / f)
            e = m.encode(texts, batch_size=BATCH, convert_to_numpy=True).astype("<f4")
            assert e.shape == (len(texts), DIM) and np.isfinite(e).all(), name
            e.tofile(o / "embeddings.f32")
            info = {"pooling": pool, "normalize": norm, "norm_range": [float(np.linalg.norm(e, axis=1).min()),
                                                                      float(np.linalg.norm(e, axis=1).max())]}
            if stcfg:
                for p in stcfg["prompts"]:
                    ep = m.encode(texts, batch_size=BATCH, convert_to_numpy=True, prompt_name=p).astype("<f4")
                    ep.tofile(o / f"embeddings_{p}.f32")
                info["default_vs_query_max_abs"] = float(np.abs(
                    e - np.fromfile(o / "embeddings_query.f32", dtype="<f4").reshape(e.shape)).max())
            report[name] = info
    manifest = {
        "subset": subset, "count": len(subset), "dim": DIM, "dtype": "float32 LE", "batch_size": BATCH,
        "cases": report,
        "versions": {"sentence_transformers": sentence_transformers.__version__,
                     "transformers": transformers.__version__, "torch": torch.__version__,
                     "numpy": np.__version__},
        "command": "tests/oracle/make_pooling_fixtures.sh [MODEL_DIR]",
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
