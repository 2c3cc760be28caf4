#!/usr/bin/env bash
# test_install.sh — `cmake --install` into a temporary prefix, then use only what was installed:
#   1. a small C program built with `pkg-config --cflags --libs seslm` embeds a text with the real model;
#      ldd shows it pulls in no HTTP, SQL, curl or HDF5 library (and not the CUDA runtime);
#   2. its vector equals `seslm embed` of the installed program (RUNPATH $ORIGIN/../lib, no LD_LIBRARY_PATH);
#      the installed libraries export only seslm_* names (test_symbols.sh);
#   3. every layer's library has its SONAME and .pc file, and links (pkg-config --libs) on its own;
#   4. find_package(seslm) in a CMake project links seslm::core;
#   5. the man page renders without warnings, the bash completion file is there;
#   6. pip install ./python finds the installed core and gives the vectors of seslm embed;
#   7. a wheel with the core bundled (python/bundle_core.sh) works without pkg-config or the prefix.
# usage: test_install.sh BUILD_DIR MODEL_DIR SOURCE_DIR [sanitize]   (exit 77: skipped)
set -euo pipefail
build="$1"; model="$2"; src="$3"; sanitize="${4:-}"
if [[ -n "$sanitize" && "$sanitize" != OFF ]]; then
    echo "skipped: sanitizer build (an uninstrumented program cannot load the instrumented libraries)"; exit 77
fi
[[ -f "$model/model.safetensors" ]] || { echo "skipped: no model at $model (data/fetch_model.sh)"; exit 77; }
command -v pkg-config >/dev/null || { echo "FAIL: pkg-config missing"; exit 1; }
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"
cmake --install "$build" --prefix "$prefix" > "$tmp/install.log"
libdir=""
for d in lib lib64 lib/*-linux-gnu; do [[ -f "$prefix/$d/pkgconfig/seslm.pc" ]] && { libdir="$d"; break; }; done
[[ -n "$libdir" ]] || { echo "FAIL: no seslm.pc installed"; cat "$tmp/install.log"; exit 1; }
export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig"

# 1. the C program, against the installed core only
cc -std=c11 -Wall -Werror -o "$tmp/embed_hello" "$src/tests/install/embed_hello.c" \
   $(pkg-config --cflags --libs seslm) -Wl,-rpath,"$(pkg-config --variable=libdir seslm)"
"$tmp/embed_hello" "$model" "The installed library embeds this sentence." > "$tmp/c.txt"
ldd "$tmp/embed_hello" > "$tmp/ldd.txt"
core="$(awk '$1 ~ /^libseslm\.so/ {print $3}' "$tmp/ldd.txt")"
[[ -n "$core" && "$(readlink -f "$core")" == "$(readlink -f "$prefix/$libdir")"/libseslm.so.* ]] ||
    { echo "FAIL: not linked to the installed core"; cat "$tmp/ldd.txt"; exit 1; }
if grep -E 'not found|libcurl|libmicrohttpd|libnghttp|libpq|libsqlite|libmysql|libhdf5|libssl|libcudart|libcublas|libseslm-' "$tmp/ldd.txt"; then
    echo "FAIL: the core pulls in a library of another layer (above)"; exit 1
fi
echo "ok: core-only program links with pkg-config and needs $(wc -l < "$tmp/ldd.txt") libraries, none of HTTP/SQL/curl/HDF5/CUDA"

# 1b. the same program linked against the static core (libseslm.a + pkg-config --static: Libs.private is complete)
static_libs="$(pkg-config --static --libs seslm | sed 's/-lseslm /-Wl,-Bstatic -lseslm -Wl,-Bdynamic /')"
cc -std=c11 -Wall -Werror -o "$tmp/embed_hello_static" "$src/tests/install/embed_hello.c" $(pkg-config --cflags seslm) $static_libs
ldd "$tmp/embed_hello_static" > "$tmp/ldd_static.txt"
if grep -q libseslm "$tmp/ldd_static.txt"; then echo "FAIL: the static link still needs libseslm.so"; exit 1; fi
"$tmp/embed_hello_static" "$model" "The installed library embeds this sentence." | cmp - "$tmp/c.txt"
echo "ok: the same program linked statically (pkg-config --static) prints the same vector"

# 2. the same vector as the installed program
env -u LD_LIBRARY_PATH "$prefix/bin/seslm" embed --model "$model" "The installed library embeds this sentence." > "$tmp/cli.json"
python3 - "$tmp/c.txt" "$tmp/cli.json" <<'PY'
import json, sys
c = [float(x) for x in open(sys.argv[1]).read().split()]
cli = json.loads(open(sys.argv[2]).readline())["embedding"]
assert len(c) == len(cli) == 384, (len(c), len(cli))
d = max(abs(a - b) for a, b in zip(c, cli))
assert d < 1e-6, f"C program and seslm embed differ by {d}"
assert abs(sum(a * a for a in c) - 1) < 1e-4, "not L2-normalised"
print(f"ok: C program == installed seslm embed (max |diff| {d:.2g})")
PY

# 2b. the installed libraries export only seslm_* names (the library_symbols test checks the build tree)
bash "$src/tests/install/test_symbols.sh" "$prefix/$libdir" > "$tmp/symbols.txt" ||
    { echo "FAIL: installed libraries export names outside seslm_*"; cat "$tmp/symbols.txt"; exit 1; }
echo "ok: the installed libraries export only seslm_* names"

# 3. every layer: SONAME, .pc, and a link of its own
for lib in seslm seslm-telemetry-hdf5 seslm-objstore seslm-assist seslm-serve seslm-evolve seslm-registry; do
    so="$(ls "$prefix/$libdir/lib$lib.so".*.* | head -1)"
    soname="$(readelf -d "$so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')"
    [[ "$soname" =~ ^lib$lib\.so\.[0-9] ]] || { echo "FAIL: $so has SONAME '$soname'"; exit 1; }
    [[ -e "$prefix/$libdir/$soname" && -e "$prefix/$libdir/lib$lib.a" ]] || { echo "FAIL: $soname or lib$lib.a missing"; exit 1; }
    echo 'int main(void) { return 0; }' > "$tmp/empty.c"
    cc -o "$tmp/empty" "$tmp/empty.c" $(pkg-config --cflags --libs "$lib") -Wl,--no-as-needed || { echo "FAIL: pkg-config $lib"; exit 1; }
done
grep -q libmicrohttpd <(ldd "$prefix/$libdir/libseslm-serve.so") || { echo "FAIL: serve without libmicrohttpd?"; exit 1; }
echo "ok: 7 layers installed with SONAME, static archive and pkg-config file"
for h in seslm.h seslm/serve.h seslm/registry.h seslm/s3_client.h seslm/store_s3.h seslm/intent.h seslm/plan.h seslm/telemetry_hdf5.h; do
    printf '#include <%s>\nint main(void) { return 0; }\n' "$h" > "$tmp/h.c"
    cc -std=c11 -Wall -Werror -c -o "$tmp/h.o" "$tmp/h.c" $(pkg-config --cflags seslm) || { echo "FAIL: installed $h does not compile alone"; exit 1; }
done
echo "ok: public headers compile on their own from the installed tree"

# 4. find_package(seslm)
mkdir -p "$tmp/cm"
cat > "$tmp/cm/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.20)
project(hello C)
find_package(seslm 0.1 REQUIRED)
add_executable(embed_hello $src/tests/install/embed_hello.c)
target_link_libraries(embed_hello PRIVATE seslm::core)
CM
cmake -S "$tmp/cm" -B "$tmp/cm/build" -DCMAKE_PREFIX_PATH="$prefix" > "$tmp/cm.log" 2>&1 || { cat "$tmp/cm.log"; exit 1; }
cmake --build "$tmp/cm/build" > "$tmp/cm.log" 2>&1 || { cat "$tmp/cm.log"; exit 1; }
"$tmp/cm/build/embed_hello" "$model" "The installed library embeds this sentence." | cmp - "$tmp/c.txt"
echo "ok: find_package(seslm) + seslm::core builds the same program"

# 5. man page and completion
man="$prefix/share/man/man1/seslm.1"
[[ -f "$man" ]] || { echo "FAIL: no man page"; exit 1; }
warn="$(groff -man -Tutf8 -ww -z "$man" 2>&1)"; [[ -z "$warn" ]] || { echo "FAIL: man page warnings: $warn"; exit 1; }
[[ -f "$prefix/share/bash-completion/completions/seslm" ]] || { echo "FAIL: no bash completion"; exit 1; }
echo "ok: man page and bash completion installed"

# 6. the Python package (ctypes, pure Python): pip install ./python into a fresh venv, finds the installed
#    core through pkg-config, and gives the vectors of the installed seslm embed
venv="$build/venv-python-package"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "import numpy" 2>/dev/null; then
    python3 -m venv "$venv" > /dev/null
    "$venv/bin/pip" install -q -r "$src/tests/python/requirements.txt" || { echo "skipped: cannot install numpy/setuptools (package index?)"; exit 77; }
fi
cp -r "$src/python" "$tmp/python" # (a copy: pip writes build/ and egg-info next to the sources)
rm -rf "$tmp/python/seslm/_lib"
"$venv/bin/pip" uninstall -q -y seslm > /dev/null 2>&1 || true
"$venv/bin/pip" install -q --no-build-isolation --no-deps "$tmp/python"
(cd "$tmp" && env -u LD_LIBRARY_PATH "$venv/bin/python" "$src/tests/python/test_package.py" "$prefix/bin/seslm" "$model")
"$venv/bin/python" -c "import seslm; assert seslm.library_path.startswith('$prefix'), seslm.library_path"

# 7. a wheel that carries the core: built from a copy with the core bundled, installed into a second venv,
#    and loaded with neither pkg-config nor the install prefix reachable
cp -r "$src/python" "$tmp/wheelsrc"
rm -rf "$tmp/wheelsrc/seslm/_lib"
PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig" bash "$tmp/wheelsrc/bundle_core.sh" > /dev/null
"$venv/bin/pip" wheel -q --no-build-isolation --no-deps -w "$tmp/dist" "$tmp/wheelsrc" > /dev/null
whl="$(ls "$tmp/dist"/seslm-*.whl)"
"$venv/bin/python" -m zipfile -l "$whl" > "$tmp/wheel.txt" # (a file: grep -q would close the pipe early)
grep -q "seslm/_lib/libseslm.so" "$tmp/wheel.txt" || { echo "FAIL: the wheel lacks the core"; cat "$tmp/wheel.txt"; exit 1; }
"$venv/bin/pip" uninstall -q -y seslm > /dev/null
"$venv/bin/pip" install -q --no-deps "$whl"
mv "$prefix" "$tmp/moved-prefix" # the installed tree is gone: only the wheel's copy can be loaded
(cd "$tmp" && env -u LD_LIBRARY_PATH PKG_CONFIG_PATH=/nonexistent "$venv/bin/python" - "$model" "$tmp/c.txt" <<'PY'
import sys, numpy as np, seslm
assert "/_lib/" in seslm.library_path, seslm.library_path
v = seslm.Model(sys.argv[1]).encode(["The installed library embeds this sentence."])[0]
ref = np.array([float(x) for x in open(sys.argv[2]).read().split()], dtype=np.float32)
assert np.array_equal(v, ref), float(np.abs(v - ref).max())
print("ok: a wheel with the core bundled loads it (" + seslm.library_path.split("site-packages/")[-1] + ") and gives the same vector")
PY
)
"$venv/bin/pip" uninstall -q -y seslm > /dev/null
