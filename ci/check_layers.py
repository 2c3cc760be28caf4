#!/usr/bin/env python3
"""check_layers.py - no file of a lower layer includes a header of a higher one (ARCHITECTURE.md "Layers").

Every source folder belongs to one layer; a public header (an include/ folder: installed) includes only
other public headers; an #include "x.h" is resolved to the folder that holds x.h
(bare names are unique across the tree; the check fails if one is not) and must belong to the file's
own layer or to a layer it may depend on. Exit 0 clean, 1 with one line per violation.
usage: ci/check_layers.py [ROOT]
"""
import os, re, sys

root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))

# folder (relative, longest prefix wins) -> layer
LAYER_OF = {
    "kernels": "core", "kernels/cpu": "core", "kernels/cuda": "cuda",
    "runtime/include": "core", "runtime/core": "core", "runtime/decoder": "core", "runtime/telemetry": "core",
    "runtime/telemetry/hdf5": "telemetry_hdf5",
    "runtime/objstore": "objstore", "runtime/assist": "assist", "runtime/serve": "serve", "runtime/cli": "program",
    "pipeline": "evolve", "pipeline/registry": "registry",
}
# layer -> layers it may include (itself implied)
MAY_USE = {
    "core": set(), "cuda": {"core"}, "telemetry_hdf5": {"core"}, "objstore": {"core"}, "assist": {"core"},
    "serve": {"core", "assist", "telemetry_hdf5", "objstore"}, "evolve": {"core", "telemetry_hdf5"}, "registry": {"core", "objstore"},
    "program": {"core", "cuda", "telemetry_hdf5", "objstore", "assist", "serve", "evolve", "registry"},
}
# known exceptions, each with the reason it is still there (none: the CUDA backend is a plugin the core
# dlopens, kernels/cuda_plugin.c)
ALLOWED = {}

def is_public(rel):
    """Installed headers: runtime/include/ and every <layer>/include/."""
    return rel.startswith("runtime/include/") or "/include/" in rel

def layer_of(rel):
    best = None
    for folder, layer in LAYER_OF.items():
        if rel == folder or rel.startswith(folder + "/"):
            if best is None or len(folder) > len(best[0]):
                best = (folder, layer)
    return best[1] if best else None

headers, sources = {}, []
for top in ("kernels", "runtime", "pipeline"):
    for d, _, files in os.walk(os.path.join(root, top)):
        for f in files:
            rel = os.path.relpath(os.path.join(d, f), root)
            if f.endswith((".h", ".cuh")):
                headers.setdefault(f, []).append(rel)
            if f.endswith((".c", ".h", ".cu", ".cuh")):
                sources.append(rel)

bad = []
for name, where in sorted(headers.items()):
    if len(where) > 1:
        bad.append(f"header name {name} is not unique: {', '.join(where)}")
inc = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
for rel in sorted(sources):
    mine = layer_of(os.path.dirname(rel))
    if mine is None:
        bad.append(f"{rel}: folder has no layer in ci/check_layers.py")
        continue
    text = open(os.path.join(root, rel), encoding="utf-8", errors="replace").read()
    for h in inc.findall(text):
        base = os.path.basename(h)
        if base not in headers:
            continue  # a system or generated header
        target = layer_of(os.path.dirname(headers[base][0]))
        if is_public(rel) and not is_public(headers[base][0]):
            bad.append(f"{rel} (public) includes {headers[base][0]} (private: not installed)")
        if target == mine or target in MAY_USE[mine] or (rel, base) in ALLOWED:
            continue
        bad.append(f"{rel} ({mine}) includes {headers[base][0]} ({target})")

for line in bad:
    print("check_layers:", line)
print(f"check_layers: {len(sources)} files, {len(bad)} violation(s)")
sys.exit(1 if bad else 0)
