#!/usr/bin/env bash
# test_check_layers.sh - the layer check passes on the tree and fails on a copy with an upward include
set -euo pipefail
root="$1"
python3 "$root/ci/check_layers.py" "$root"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
cp -r "$root/kernels" "$root/runtime" "$root/pipeline" "$tmp/"
mkdir -p "$tmp/ci" && cp "$root/ci/check_layers.py" "$tmp/ci/"
echo '#include "serve.h"' >> "$tmp/runtime/core/util.c"      # core reaching up into serve
if python3 "$tmp/ci/check_layers.py" "$tmp" > "$tmp/out.txt"; then
    echo "FAIL: an upward include was not reported"; exit 1
fi
grep -q "runtime/core/util.c (core) includes runtime/serve/include/seslm/serve.h (serve)" "$tmp/out.txt" || { cat "$tmp/out.txt"; exit 1; }
# a public (installed) header that includes a private one
sed -i 's/^#include "seslm.h"$/#include "seslm.h"\n#include "serve_internal.h"/' "$tmp/runtime/serve/include/seslm/serve.h"
python3 "$tmp/ci/check_layers.py" "$tmp" > "$tmp/out2.txt" && { echo "FAIL: a public header including a private one passed"; exit 1; }
grep -q "serve.h (public) includes runtime/serve/serve_internal.h (private" "$tmp/out2.txt" || { cat "$tmp/out2.txt"; exit 1; }
# kernels/backend.c no longer includes the CUDA backend (it is loaded with dlopen)
if grep -q "cuda_kernels.h" "$root/kernels/backend.c"; then echo "FAIL: the core includes the CUDA backend"; exit 1; fi
echo "ok: layer check passes on the tree, reports an upward include and a private header in a public one"
