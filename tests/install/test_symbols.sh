#!/usr/bin/env bash
# test_symbols.sh — every seslm shared library exports only seslm_* names (cmake/seslm.map): no internal
# helper of one layer (a kernel, a store statement, a serve handler) is part of the ABI, and no name can
# clash with the application's or another library's. Checks each library built (libseslm.so.X and
# libseslm-<layer>.so.X, libseslm-cuda.so.X when built) with `nm -D --defined-only`, and that the names
# the Python package calls through ctypes are among the exports.
#   bash tests/install/test_symbols.sh <build dir or installed lib dir>
set -uo pipefail
BUILD="${1:?usage: test_symbols.sh BUILD_DIR}"
command -v nm >/dev/null || { echo "test_symbols: nm (binutils) is needed" >&2; exit 1; }
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
fail=0
n_libs=0
shopt -s nullglob
for lib in "$BUILD"/libseslm.so.*.*.* "$BUILD"/libseslm-*.so.*.*.*; do
    [[ -L $lib ]] && continue
    n_libs=$((n_libs + 1))
    if ! nm -D --defined-only "$lib" >"$tmp/symbols.txt" 2>"$tmp/symbols.err"; then
        echo "FAIL: nm -D $lib: $(cat "$tmp/symbols.err")"; fail=1; continue
    fi
    # "ADDRESS TYPE NAME"; version nodes (type A) are not functions or data
    awk 'NF == 3 && $2 != "A" { print $3 }' "$tmp/symbols.txt" | sed 's/@.*//' | sort -u >"$tmp/symbols.names"
    n=$(wc -l <"$tmp/symbols.names")
    bad=$(grep -v '^seslm_' "$tmp/symbols.names" | head -20 | tr '\n' ' ')
    n_bad=$(grep -cv '^seslm_' "$tmp/symbols.names")
    if [[ $n -eq 0 ]]; then
        echo "FAIL: $(basename "$lib") exports nothing"; fail=1
    elif [[ $n_bad -ne 0 ]]; then
        echo "FAIL: $(basename "$lib") exports $n_bad names outside seslm_*: $bad"; fail=1
    else
        echo "ok: $(basename "$lib"): $n exported names, all seslm_*"
    fi
    if [[ $(basename "$lib") == libseslm.so.* ]]; then
        # the core's public API as python/seslm (ctypes) and tests/install/embed_hello.c call it
        for f in seslm_model_load seslm_model_free seslm_model_get_config seslm_encoder_new seslm_encoder_free \
                 seslm_encoder_embed_texts seslm_encoder_features_texts seslm_last_error seslm_version; do
            grep -qx "$f" "$tmp/symbols.names" || { echo "FAIL: libseslm does not export $f"; fail=1; }
        done
        # and an internal helper is not exported (under its own name or any other)
        for f in st_open util_read_file model_drop_resident_pages encoder_device_run; do
            grep -qx "$f" "$tmp/symbols.names" && { echo "FAIL: libseslm exports the internal $f"; fail=1; }
        done
    fi
done
if [[ $n_libs -lt 6 ]]; then
    echo "FAIL: found $n_libs seslm shared libraries in $BUILD (want the core and its 5 layers)"; fail=1
fi
[[ $fail -eq 0 ]] && echo "ok: $n_libs shared libraries export only seslm_* names"
exit $fail
