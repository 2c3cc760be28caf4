#!/usr/bin/env python3
"""check_dump.py — check telemetry dumps against docs/telemetry.md with h5py (independent of the C reader).

The schema table of docs/telemetry.md is parsed and every documented group, dataset and attribute
must exist with the documented dtype, shape and storage; nothing undocumented may be present. Then
the documented relations between the numbers are checked (sums, denominators, the count-min sketch's
hash function against the heavy hitters, the file name), and --expect KEY=VALUE pins root attributes.

    check_dump.py --doc docs/telemetry.md [--model-dir DIR] [--expect n_sequences=100 ...] FILE...

Exit status 0 when every file passes, 1 otherwise.
"""
import argparse
import datetime
import hashlib
import os
import re
import sys

import h5py
import numpy as np

DTYPES = {
    "int32": np.dtype("<i4"),
    "int64": np.dtype("<i8"),
    "uint32": np.dtype("<u4"),
    "uint64": np.dtype("<u8"),
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
}
M64 = (1 << 64) - 1


def parse_schema(doc_path):
    """Rows of the schema table: (path, kind, dtype, shape, storage)."""
    rows = []
    with open(doc_path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("| `/"):
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) != 7 or cells[1] not in ("group", "attribute", "dataset"):
                continue
            path = cells[0].strip("`")
            rows.append((path, cells[1], cells[2], cells[3], cells[4]))
    if len(rows) < 40:
        raise SystemExit(f"check_dump: only {len(rows)} schema rows found in {doc_path}")
    return rows


class Checker:
    def __init__(self, path):
        self.path = path
        self.fails = []
        self.checks = 0

    def check(self, cond, msg):
        self.checks += 1
        if not cond:
            self.fails.append(msg)
        return cond


def attr_info(obj, name):
    aid = obj.attrs.get_id(name)
    return aid.dtype, aid.shape


def dtype_ok(dt, want):
    if want == "string":
        return dt.kind == "S" and h5py.check_string_dtype(dt) is not None
    return dt == DTYPES[want]


def resolve_dim(expr, group, root, free):
    total = 0
    for term in expr.split("+"):
        term = term.strip()
        if re.fullmatch(r"\d+", term):
            total += int(term)
        elif re.fullmatch(r"[A-Z]", term):
            return ("free", term)
        elif term in group.attrs:
            total += int(group.attrs[term])
        elif term in root.attrs:
            total += int(root.attrs[term])
        else:
            raise KeyError(f"shape term '{term}' names no attribute")
    return ("fixed", total)


def mix64(x):
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & M64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def check_structure(c, f, rows):
    n_layers = int(f.attrs["n_layers"]) if "n_layers" in f.attrs else 0
    documented = set()
    free_by_group = {}
    for path, kind, dtype, shape, storage in rows:
        paths = [path.replace("<i>", str(i)) for i in range(n_layers)] if "<i>" in path else [path]
        for p in paths:
            parent, _, name = p.rpartition("/")
            parent = parent or "/"
            documented.add((kind, p))
            if kind == "group":
                c.check(p in f and isinstance(f[p], h5py.Group), f"group {p} missing")
                continue
            if not c.check(parent in f and isinstance(f[parent], h5py.Group), f"group {parent} (of {p}) missing"):
                continue
            g = f[parent]
            if kind == "attribute":
                if not c.check(name in g.attrs, f"attribute {p} missing"):
                    continue
                dt, shp = attr_info(g, name)
                c.check(dtype_ok(dt, dtype), f"attribute {p}: dtype {dt}, documented {dtype}")
                c.check(shape == "scalar" and shp == (), f"attribute {p}: shape {shp}, documented {shape}")
                continue
            if not c.check(name in g and isinstance(g[name], h5py.Dataset), f"dataset {p} missing"):
                continue
            d = g[name]
            c.check(dtype_ok(d.dtype, dtype), f"dataset {p}: dtype {d.dtype}, documented {dtype}")
            dims = [x.strip() for x in shape.strip("()").split(",") if x.strip()]
            if not c.check(len(dims) == d.ndim, f"dataset {p}: {d.ndim} dimensions, documented {shape}"):
                continue
            free = free_by_group.setdefault(parent, {})
            for axis, expr in enumerate(dims):
                how, val = resolve_dim(expr, g, f, free)
                if how == "free":
                    if val in free:
                        c.check(d.shape[axis] == free[val], f"dataset {p}: axis {axis} is {d.shape[axis]}, "
                                f"but {val} = {free[val]} elsewhere in {parent}")
                    else:
                        free[val] = d.shape[axis]
                else:
                    c.check(d.shape[axis] == val, f"dataset {p}: axis {axis} is {d.shape[axis]}, documented "
                            f"{expr} = {val}")
            c.check(d.chunks is not None and d.fletcher32, f"dataset {p}: not chunked with Fletcher-32")
            if storage == "z":
                c.check(d.compression == "gzip" and d.shuffle, f"dataset {p}: not shuffled + deflated")
    # nothing undocumented
    def visit(name, obj):
        p = "/" + name
        kind = "group" if isinstance(obj, h5py.Group) else "dataset"
        c.check((kind, p) in documented, f"undocumented {kind} {p}")
        for a in obj.attrs:
            c.check(("attribute", f"{p}/{a}") in documented, f"undocumented attribute {p}/{a}")
    for a in f.attrs:
        c.check(("attribute", f"/{a}") in documented, f"undocumented attribute /{a}")
    f.visititems(visit)


def check_values(c, f, model_sha, expect):
    A = {k: f.attrs[k] for k in f.attrs}
    c.check(int(A["schema_version"]) == 1, "schema_version != 1")
    c.check(A["format"] == b"seslm-telemetry", f"format {A['format']!r}")
    sha = A["model_sha256"].decode()
    c.check(re.fullmatch(r"[0-9a-f]{64}", sha) is not None, f"model_sha256 {sha!r} is not 64 hex digits")
    if model_sha:
        c.check(sha == model_sha, f"model_sha256 {sha} != sha256 of model.safetensors {model_sha}")
    n_tokens, n_seq, n_batches = int(A["n_tokens"]), int(A["n_sequences"]), int(A["n_batches"])
    c.check(int(A["window_end_ns"]) >= int(A["window_start_ns"]) > 1_500_000_000 * 10**9, "window times")
    for key, want in expect.items():
        got = A[key].decode() if isinstance(A[key], bytes) else int(A[key])
        c.check(str(got) == want, f"attribute {key} = {got}, expected {want}")

    # file name: <node>-<YYYYMMDDTHHMMSS.mmmZ>-<seq>.h5
    ns = int(A["window_start_ns"])
    t = datetime.datetime.fromtimestamp(ns // 10**9, datetime.timezone.utc)
    want_name = f"{A['node_id'].decode()}-{t:%Y%m%dT%H%M%S}.{ns // 10**6 % 1000:03d}Z-{int(A['dump_seq']):06d}.h5"
    c.check(os.path.basename(c.path) == want_name, f"file name {os.path.basename(c.path)}, expected {want_name}")

    counts = f["tokens/counts"][:]
    c.check(int(counts.sum()) == n_tokens, f"token counts sum {counts.sum()} != n_tokens {n_tokens}")
    hist = f["tokens/seq_len_hist"][:]
    c.check(int(hist.sum()) == n_seq, f"seq_len_hist sums to {hist.sum()} != n_sequences {n_seq}")
    c.check(int((hist * np.arange(len(hist), dtype=np.uint64)).sum()) == n_tokens, "seq_len_hist x length != n_tokens")

    tp = f["token_pairs"]
    total = int(tp.attrs["pairs_total"])
    c.check(total == n_tokens - n_seq, f"pairs_total {total} != n_tokens - n_sequences")
    cms = tp["cms"][:]
    if cms.size and cms.max() < 2**32 - 1:
        c.check(all(int(s) == total for s in cms.sum(axis=1, dtype=np.uint64)), "a sketch row does not sum to pairs_total")
    first, second, count = tp["first"][:], tp["second"][:], tp["count"][:]
    V = int(A["vocab_size"])
    c.check(bool(np.all(first < V)) and bool(np.all(second < V)), "pair token id out of range")
    c.check(bool(np.all(np.diff(count.astype(np.int64)) <= 0)), "heavy hitters not sorted by count")
    c.check(int(count.sum()) <= total and (len(count) == 0 or int(count.min()) >= 1), "heavy hitter counts")
    seed, width, depth = int(tp.attrs["cms_seed"]), int(tp.attrs["cms_width"]), int(tp.attrs["cms_depth"])
    bad = 0
    for a, b, n in zip(first.tolist(), second.tolist(), count.tolist()):
        key = (a << 32) | b
        est = min(int(cms[r, mix64(key ^ ((seed + 0x9E3779B97F4A7C15 * (r + 1)) & M64)) % width]) for r in range(depth))
        bad += est < n
    c.check(bad == 0, f"{bad} heavy hitters have a sketch estimate (documented hash) below their count")

    n_layers = int(A["n_layers"])
    for i in range(n_layers):
        L = f[f"layers/{i}"]
        H, Adim, F = int(L.attrs["n_heads"]), int(L.attrs["attn_dim"]), int(L.attrs["ffn_dim"])
        c.check(H == 0 and Adim == 0 or H > 0 and Adim % H == 0, f"layer {i}: attn_dim {Adim} vs n_heads {H}")
        c.check(int(L.attrs["exec_count"]) == n_batches, f"layer {i}: exec_count != n_batches")
        c.check(int(L.attrs["query_tokens"]) == (n_tokens if H else 0), f"layer {i}: query_tokens")
        c.check(int(L.attrs["ffn_tokens"]) == (n_tokens if F else 0), f"layer {i}: ffn_tokens")
        q = max(int(L.attrs["query_tokens"]), 1)
        ent = L["head_entropy_sum"][:] / q
        c.check(bool(np.all((ent >= 0) & (ent <= np.log(max(int(A["max_seq_len"]), 1)) + 1e-6))), f"layer {i}: entropy")
        mw = L["head_max_weight_sum"][:] / q
        c.check(bool(np.all((mw > 0) & (mw <= 1 + 1e-6))) or n_tokens == 0, f"layer {i}: max weight outside (0, 1]")
        c.check(bool(np.all(L["ffn_pos_count"][:] <= int(L.attrs["ffn_tokens"]))), f"layer {i}: ffn_pos_count")
        for name in ("ffn_abs_sum", "ffn_sq_sum", "in_sq_qkv", "in_sq_attn_out", "in_sq_ffn_in", "head_out_norm_sum"):
            x = L[name][:]
            c.check(bool(np.all(np.isfinite(x) & (x >= 0))), f"layer {i}: {name} negative or not finite")

    lat, bs, bt = f["batches/latency_ns"][:], f["batches/batch_size"][:], f["batches/n_tokens"][:]
    c.check(len(lat) <= n_batches and bool(np.all(lat > 0)), "batch log")
    if len(lat) == n_batches:
        c.check(int(bs.sum()) == n_seq and int(bt.sum()) == n_tokens, "batch log sums != n_sequences / n_tokens")
    c.check(int(f["memory"].attrs["peak_rss_bytes"]) > 0 or n_batches == 0, "peak_rss_bytes")

    E = f["embeddings"]
    res = E["reservoir"][:]
    seen = int(E.attrs["reservoir_seen"])
    c.check(seen == n_seq, f"reservoir_seen {seen} != n_sequences {n_seq}")
    c.check(res.shape[0] <= seen and (res.shape[0] == seen or res.shape[0] > 0), "reservoir rows")
    if res.size:
        norms = np.linalg.norm(res.astype(np.float64), axis=1)
        c.check(bool(np.all(np.abs(norms - 1) < 1e-3)), "reservoir rows are not unit vectors (the model L2-normalises)")

    labels, icounts = f["intents/labels"], f["intents/counts"]
    c.check(labels.shape == icounts.shape, "intents: labels and counts differ in length")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--doc", required=True)
    ap.add_argument("--model-dir")
    ap.add_argument("--expect", action="append", default=[], help="KEY=VALUE of a root attribute")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    rows = parse_schema(args.doc)
    model_sha = None
    if args.model_dir:
        h = hashlib.sha256()
        with open(os.path.join(args.model_dir, "model.safetensors"), "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        model_sha = h.hexdigest()
    expect = dict(e.split("=", 1) for e in args.expect)
    rc = 0
    for path in args.files:
        c = Checker(path)
        try:
            with h5py.File(path, "r") as f:
                check_structure(c, f, rows)
                if not c.fails:
                    check_values(c, f, model_sha, expect)
        except Exception as e:  # a file h5py cannot read, or a value the checks cannot parse
            c.check(False, f"{type(e).__name__}: {e}")
        if c.fails:
            rc = 1
            for msg in c.fails:
                print(f"FAIL {path}: {msg}", file=sys.stderr)
        else:
            print(f"ok {path}: {len(rows)} schema rows, {c.checks} checks")
    return rc


if __name__ == "__main__":
    sys.exit(main())
