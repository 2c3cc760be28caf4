#!/usr/bin/env bash
# bundle.sh — packs what a session with a lent GPU carries to the device machine, into ONE compressed
# file, build-gpu-carry/gpu.tar.xz (about 55 MB with the model; the carry limit is 64 MiB including the
# working tree). The device machine has nvcc, CUDA and PyTorch but not this project's C dependencies
# (utf8proc, cJSON, libyaml, HDF5, libmicrohttpd, OpenBLAS, ...) and no network, so the binaries are
# built HERE (nvcc compiles sm_80 + sm_90 without a GPU) and travel with the shared libraries they
# need that are not part of glibc / libstdc++ / CUDA, plus the model rewritten in F16 (model_f16.py).
#
#   bench/gpu/bundle.sh [BUILD_DIR [MODEL_DIR [STUDENT_DIR]]]   (defaults: build/, models/all-MiniLM-L6-v2)
#   MODEL_DIR "none" leaves the parent out (with an INT8 student: the parent in F16 and the student do not fit
#   together; run_device.sh's "int8" mode needs only the student)
#
# On the device machine:  mkdir -p /tmp/g && tar -xJf build-gpu-carry/gpu.tar.xz -C /tmp/g
#   -> /tmp/g/bin/{seslm,bench_gpu,test_*_cuda,...}, /tmp/g/lib/*.so*, /tmp/g/model/<name>/, /tmp/g/student/
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
b=${1:-$root/build}
model=${2:-$root/models/all-MiniLM-L6-v2}
student=${3:-}
stage=$root/build-gpu
out=$root/build-gpu-carry
rm -rf "$stage" "$out"
mkdir -p "$stage/bin" "$stage/lib" "$stage/model" "$out"
for exe in tests/test_kernels_cuda tests/test_cuda_device tests/test_nccl_cuda tests/test_backward_cuda tests/test_qblock_cuda bench/bench_gpu seslm; do
  [ -x "$b/$exe" ] || { echo "bundle.sh: $b/$exe missing: build first" >&2; exit 1; }
  cp "$b/$exe" "$stage/bin/"
done
ldd "$stage"/bin/* | awk '/=> \// {print $3}' | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so* | libm.so* | libpthread* | libdl.so* | librt.so* | libresolv* | libgcc_s* | libstdc++* | ld-linux* | \
      libcuda.so* | libcudart* | libcublas* | libnccl*) continue ;;
  esac
  cp -L "$lib" "$stage/lib/"
done
# OpenBLAS (35 MB; Debian's libblas / liblapack are OpenBLAS's too) would not fit the carry: a plain
# stand-in with the names our libraries import (bench/gpu/blas_shim.c; the device's CPU only embeds a few
# reference sentences and never solves a least-squares system)
if [ -f "$stage/lib/libopenblas.so.0" ]; then
  rm -f "$stage"/lib/{libopenblas.so.0,libblas.so.3,liblapack.so.3,liblapacke.so.3,libtmglib.so.3,libgfortran.so.5,libquadmath.so.0}
  for so in libopenblas.so.0 liblapacke.so.3; do
    cc -O2 -shared -fPIC -Wl,-soname,$so -o "$stage/lib/$so" "$root/bench/gpu/blas_shim.c"
  done
fi
[ "$model" = none ] || python3 "$root/bench/gpu/model_f16.py" "$model" "$stage/model/$(basename "$model")"
[ -n "$student" ] && cp -r "$student" "$stage/student"
tar -C "$stage" -cf - . | xz -T2 -1 >"$out/gpu.tar.xz"
bytes=$(stat -c %s "$out/gpu.tar.xz")
echo "bundle.sh: $out/gpu.tar.xz: $((bytes / 1048576)) MiB"
if [ "$bytes" -gt $((60 * 1048576)) ]; then
  echo "bundle.sh: over 60 MiB: with the working tree it will not fit one carry (64 MiB); leave out the student" >&2
  exit 1
fi
