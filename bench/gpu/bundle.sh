#!/usr/bin/env bash
# bundle.sh — assembles build-gpu/ for a session with a lent GPU: the device machine has nvcc, CUDA and
# PyTorch but not this project's C dependencies (utf8proc, cJSON, libyaml, HDF5, OpenBLAS, ...), and
# cannot install them. So the binaries are built HERE (nvcc compiles sm_80 + sm_90 without a GPU) and
# carried with the shared libraries they need that are not part of glibc / libstdc++ / CUDA.
#   bench/gpu/bundle.sh [BUILD_DIR]     (default build/; run after cmake --build)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
b=${1:-$root/build}
out=$root/build-gpu
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib"
for exe in tests/test_kernels_cuda tests/test_cuda_device tests/test_nccl_cuda bench/bench_gpu seslm; do
  [ -x "$b/$exe" ] || { echo "bundle.sh: $b/$exe missing: build first" >&2; exit 1; }
  cp "$b/$exe" "$out/bin/"
done
ldd "$out"/bin/* | awk '/=> \// {print $3}' | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so* | libm.so* | libpthread* | libdl.so* | librt.so* | libresolv* | libgcc_s* | libstdc++* | ld-linux* | libcuda.so* | libcudart* | libcublas*) continue ;;
  esac
  cp -L "$lib" "$out/lib/"
done
du -sh "$out"
