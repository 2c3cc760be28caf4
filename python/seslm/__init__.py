"""seslm - sentence embeddings from the SE-SLM core library (libseslm), through ctypes.

    import seslm
    model = seslm.Model("models/all-MiniLM-L6-v2")
    vectors = model.encode(["first text", "second text"])  # numpy.ndarray (2, hidden), float32

The vectors are those of `seslm embed` (the same C library does the work).
"""
import ctypes
import ctypes.util
import os
import shutil
import subprocess

import numpy as np

__all__ = ["Model", "SeslmError", "library_path", "__version__"]
__version__ = "0.1.0"
_SONAME = "libseslm.so.0.1"  # the core's SONAME for this version (CMake: SESLM_SOVERSION)


class SeslmError(RuntimeError):
    """A failure reported by libseslm (its seslm_last_error message)."""


def _candidates():
    env = os.environ.get("SESLM_LIBRARY")
    if env:
        yield env
        return
    bundled = os.path.join(os.path.dirname(__file__), "_lib", _SONAME)
    if os.path.exists(bundled):
        yield bundled
    yield _SONAME  # the dynamic loader's search path (ldconfig, LD_LIBRARY_PATH)
    if shutil.which("pkg-config"):
        try:
            libdir = subprocess.run(["pkg-config", "--variable=libdir", "seslm"], capture_output=True,
                                    text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            libdir = ""
        if libdir:
            yield os.path.join(libdir, _SONAME)


def _load():
    errors = []
    for path in _candidates():
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            errors.append(f"{path}: {e}")
    raise ImportError("seslm: cannot load the core library libseslm (install it with `cmake --install`, set "
                      "PKG_CONFIG_PATH or SESLM_LIBRARY):\n  " + "\n  ".join(errors))


_lib, library_path = _load()


class _EncoderOpts(ctypes.Structure):  # seslm_encoder_opts (seslm.h)
    _fields_ = [("backend", ctypes.c_char_p), ("n_threads", ctypes.c_int), ("max_batch", ctypes.c_int),
                ("max_seq_len", ctypes.c_int), ("precision", ctypes.c_char_p)]


class _ModelConfig(ctypes.Structure):  # seslm_model_config (seslm.h), the leading fields
    _fields_ = [("vocab_size", ctypes.c_int), ("hidden", ctypes.c_int), ("n_layers", ctypes.c_int),
                ("head_dim", ctypes.c_int), ("max_position", ctypes.c_int), ("type_vocab_size", ctypes.c_int),
                ("max_seq_len", ctypes.c_int)]


_vp = ctypes.c_void_p
_lib.seslm_last_error.restype = ctypes.c_char_p
_lib.seslm_last_error.argtypes = []
_lib.seslm_model_load.restype = ctypes.c_int
_lib.seslm_model_load.argtypes = [ctypes.POINTER(_vp), ctypes.c_char_p]
_lib.seslm_model_free.restype = None
_lib.seslm_model_free.argtypes = [_vp]
_lib.seslm_model_get_config.restype = ctypes.POINTER(_ModelConfig)
_lib.seslm_model_get_config.argtypes = [_vp]
_lib.seslm_encoder_new.restype = ctypes.c_int
_lib.seslm_encoder_new.argtypes = [ctypes.POINTER(_vp), _vp, ctypes.POINTER(_EncoderOpts)]
_lib.seslm_encoder_free.restype = None
_lib.seslm_encoder_free.argtypes = [_vp]
_lib.seslm_encoder_embed_texts.restype = ctypes.c_int
_lib.seslm_encoder_embed_texts.argtypes = [_vp, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_size_t),
                                           ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
_lib.seslm_encoder_features_texts.restype = ctypes.c_int
_lib.seslm_encoder_features_texts.argtypes = [_vp, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_size_t),
                                              ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]


def _check(status, what):
    if status != 0:
        raise SeslmError(f"{what}: {_lib.seslm_last_error().decode('utf-8', 'replace')}")


class Model:
    """A model directory (config.json, vocab.txt, model.safetensors) loaded with its encoder.

    backend: "cpu" (default) or "cpu-ref"; "cuda" / "cuda-fp16" when libseslm-cuda and a GPU are there.
    threads: 0 = all cores. batch: texts per forward pass.
    """

    def __init__(self, model_dir, backend="cpu", threads=0, batch=32):
        self._model = _vp()
        self._encoder = _vp()
        if not isinstance(batch, int) or batch < 1:
            raise ValueError("batch must be a positive integer")
        _check(_lib.seslm_model_load(ctypes.byref(self._model), os.fsencode(model_dir)), f"loading {model_dir}")
        self._backend = backend.encode()  # kept alive: the encoder may keep the pointer
        opts = _EncoderOpts(self._backend, threads, batch, 0)
        try:
            _check(_lib.seslm_encoder_new(ctypes.byref(self._encoder), self._model, ctypes.byref(opts)), "encoder")
        except SeslmError:
            self.close()
            raise
        self.batch = batch
        cfg = _lib.seslm_model_get_config(self._model).contents
        self.dim, self.n_layers = cfg.hidden, cfg.n_layers

    def _run(self, what, texts, width, call):
        if isinstance(texts, (str, bytes)):
            raise TypeError(f"{what} takes a list of str (wrap one text in a list)")
        if not self._encoder:
            raise SeslmError("the model is closed")
        data = [t.encode("utf-8") if isinstance(t, str) else None for t in texts]
        if any(d is None for d in data):
            raise TypeError(f"{what}: every text must be a str")
        out = np.empty((len(data), width), dtype=np.float32)
        for start in range(0, len(data), self.batch):
            chunk = data[start:start + self.batch]
            n = len(chunk)
            ptrs = (ctypes.c_char_p * n)(*chunk)
            lens = (ctypes.c_size_t * n)(*[len(d) for d in chunk])
            rows = out[start:start + n]
            _check(call(ptrs, lens, n, rows.ctypes.data_as(ctypes.POINTER(ctypes.c_float))),
                   f"encoding text {start}..{start + n - 1}")
        return out

    def encode(self, texts):
        """Embeds a list of str; returns a float32 array (len(texts), dim), one row per text, in order."""
        return self._run("encode", texts, self.dim,
                         lambda p, l, n, o: _lib.seslm_encoder_embed_texts(self._encoder, p, l, n, o))

    def features(self, texts, layers=3):
        """Features for a classifier of your own: a float32 array (len(texts), layers * dim) holding, for each
        of the last `layers` layers, its output pooled as the model pools and L2-normalised, all divided by
        sqrt(layers) (unit rows; the last block is the embedding / sqrt(layers)). A linear classifier on the
        last 3 layers of all-MiniLM-L6-v2 is 0.5-2 points more accurate than on the embedding for fine-grained
        intents (seslm's bench/RESULTS.md 13). layers 1..n_layers; CPU backends for layers > 1."""
        if not isinstance(layers, int) or isinstance(layers, bool) or not 1 <= layers <= self.n_layers:
            raise ValueError(f"layers must be an integer in 1..{self.n_layers}")
        return self._run("features", texts, layers * self.dim,
                         lambda p, l, n, o: _lib.seslm_encoder_features_texts(self._encoder, p, l, n, layers, o))

    def close(self):
        if self._encoder:
            _lib.seslm_encoder_free(self._encoder)
            self._encoder = _vp()
        if self._model:
            _lib.seslm_model_free(self._model)
            self._model = _vp()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
