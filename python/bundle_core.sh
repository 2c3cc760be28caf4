#!/usr/bin/env bash
# bundle_core.sh — copy the installed core (libseslm.so.X, found through pkg-config) into
# python/seslm/_lib/ so that `pip wheel ./python` makes a wheel that carries it. The core's own
# dependencies (OpenBLAS, utf8proc, cJSON, libyaml, OpenSSL) stay system libraries.
# usage: PKG_CONFIG_PATH=PREFIX/lib/pkgconfig python/bundle_core.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
libdir="$(pkg-config --variable=libdir seslm)"
so="$(readlink -f "$libdir/libseslm.so")"
soname="$(readelf -d "$so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')"
mkdir -p "$here/seslm/_lib"
cp "$so" "$here/seslm/_lib/$soname"
echo "bundled $soname"
