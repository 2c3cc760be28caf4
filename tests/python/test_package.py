#!/usr/bin/env python3
"""test_package.py - the installed Python package (`pip install ./python`) gives the vectors of `seslm embed`.

usage: test_package.py SESLM_EXE MODEL_DIR
Texts cover ASCII, accents and CJK, an empty string, a text longer than the model's 256 tokens, and more
texts than one batch (the package splits them). The CLI's JSON floats are the reference; the package
and the CLI run the same library, so they must agree to the CLI's printed precision.
"""
import json
import subprocess
import sys

import numpy as np
import seslm

exe, model_dir = sys.argv[1], sys.argv[2]
texts = ["The installed library embeds this sentence.", "Déjà vu, naïve café", "自然语言处理", "",
         "word " * 400] + [f"sentence number {i} about topic {i % 3}" for i in range(40)]

m = seslm.Model(model_dir, batch=16)
got = m.encode(texts)
assert isinstance(got, np.ndarray) and got.dtype == np.float32 and got.shape == (len(texts), 384), got.shape
assert np.isfinite(got).all()

with open("texts.txt", "w", encoding="utf-8") as f:
    f.write("\n".join(texts[:3] + ["word " * 400] + texts[5:]) + "\n")  # (the CLI skips no line; "" is sent alone)
out = subprocess.run([exe, "embed", "--model", model_dir, "--input", "texts.txt"], check=True,
                     capture_output=True, text=True).stdout.splitlines()
cli_texts = texts[:3] + ["word " * 400] + texts[5:]
want = np.array([json.loads(l)["embedding"] for l in out], dtype=np.float64)
assert want.shape == (len(cli_texts), 384), want.shape
idx = [0, 1, 2, 4] + list(range(5, len(texts)))
d = np.abs(got[idx].astype(np.float64) - want).max()
assert d < 1e-6, f"package and seslm embed differ by {d}"
one = subprocess.run([exe, "embed", "--model", model_dir, ""], capture_output=True, text=True)
if one.returncode == 0 and one.stdout.strip():
    e = np.array(json.loads(one.stdout.splitlines()[0])["embedding"])
    assert np.abs(got[3] - e).max() < 1e-6, "empty text differs"
# batch size does not change a vector; a second model object agrees
assert np.abs(seslm.Model(model_dir, batch=1).encode(texts[:4]) - got[:4]).max() < 1e-6
assert m.encode([]).shape == (0, 384)
# features of the last 3 layers: unit rows whose last block is the embedding / sqrt(3) (the values themselves
# are checked against transformers by tests/unit/test_features_oracle.c)
f = m.features(texts, layers=3)
assert f.shape == (len(texts), 3 * 384) and f.dtype == np.float32 and np.isfinite(f).all(), f.shape
assert np.abs(np.linalg.norm(f, axis=1) - 1).max() < 1e-5
assert np.abs(f[:, 768:] * np.sqrt(3) - got).max() < 1e-5
assert np.abs(m.features(texts[:5], layers=1) - got[:5]).max() < 1e-6
for bad in (0, 7, 2.5):
    try:
        m.features(texts[:1], layers=bad)
        raise AssertionError(f"layers={bad} was accepted")
    except ValueError:
        pass

# errors are exceptions with the library's message, not crashes
try:
    seslm.Model("/nonexistent/model")
    raise AssertionError("a missing model loaded")
except seslm.SeslmError as e:
    assert "nonexistent" in str(e), str(e)
try:
    m.encode("not a list")
    raise AssertionError("a bare str was accepted")
except TypeError:
    pass
m.close()
try:
    m.encode(["x"])
    raise AssertionError("a closed model encoded")
except seslm.SeslmError:
    pass
print(f"ok: seslm.Model(...).encode == seslm embed on {len(texts)} texts (max |diff| {d:.2g}); library {seslm.library_path}")
