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
grep -q "runtime/core/util.c (core) includes runtime/serve/serve.h (serve)" "$tmp/out.txt" || { cat "$tmp/out.txt"; exit 1; }
echo "ok: layer check passes on the tree and reports an upward include"
