#!/usr/bin/env bash
# run_device.sh — everything a session with a lent GPU runs, in ONE device call (README.md: the lease is
# about 15 minutes in all, so one prepared script, each step under its own time limit, logs under $OUT).
#
#   run carry ["build-gpu-carry"], command: bash bench/gpu/run_device.sh [tests|bench|all|sanitize|nographs]...
#
# Order: correctness first (every `_cuda` test, then `seslm embed --device cuda` on the real model); a
# failing kernel test is rerun under compute-sanitizer (memcheck) to localise it; then the per-kernel
# timings and the end-to-end comparison with PyTorch fp16 in the same call. The last lines printed are
# a summary table (the tool returns the tail of the output).
set -u
modes=${*:-all}
OUT=${OUT:-/tmp/out}
mkdir -p /tmp/g "$OUT"
tar -xJf build-gpu-carry/gpu.tar.xz -C /tmp/g || { echo "run_device: no bundle (bench/gpu/bundle.sh)"; exit 1; }
nccl=$(python3 -c "import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__))" 2>/dev/null)/lib
cublas=$(python3 -c "import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__))" 2>/dev/null)/lib
export LD_LIBRARY_PATH=/tmp/g/lib:/usr/local/cuda/lib64:$nccl:$cublas:${LD_LIBRARY_PATH:-}
M=/tmp/g/model/all-MiniLM-L6-v2
nvidia-smi -L
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader
summary=()
for what in $modes; do
step() { # step NAME LIMIT CMD... : runs CMD with a time limit, log in $OUT/NAME.log, one summary row
    local name=$1 limit=$2
    shift 2
    local t0=$(date +%s.%N)
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    local dt=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)")
    echo "== $name: exit $rc (${dt}s)"
    tail -n 25 "$OUT/$name.log"
    summary+=("$(printf '%-28s exit %-4s %6ss' "$name" "$rc" "$dt")")
    return $rc
}
if [ "$what" = tests ] || [ "$what" = all ]; then
    step test_cuda_device 60 /tmp/g/bin/test_cuda_device
    for t in test_kernels_cuda test_backward_cuda test_qblock_cuda; do
        step $t 180 /tmp/g/bin/$t
        rc=$?
        if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
            step "${t}_memcheck" 240 compute-sanitizer --tool memcheck --print-limit 20 /tmp/g/bin/$t
        fi
    done
    step test_nccl_cuda 60 /tmp/g/bin/test_nccl_cuda
    SESLM_REQUIRE_GPU=1 step test_embed_cuda 120 bash tests/cli/test_embed_cuda.sh /tmp/g/bin/seslm "$M" .
fi
if [ "$what" = sanitize ]; then # memcheck and racecheck over the kernel tests (slow: minutes)
    for t in test_kernels_cuda test_backward_cuda; do
        step "${t}_memcheck" 90 compute-sanitizer --tool memcheck --error-exitcode 9 --print-limit 20 /tmp/g/bin/$t
        step "${t}_racecheck" 90 compute-sanitizer --tool racecheck --error-exitcode 9 --print-limit 20 /tmp/g/bin/$t
    done
fi
if [ "$what" = int8 ]; then # an INT8 student (bundle.sh none build/ STUDENT): the kernels' checks, then its
    # end-to-end speed with cuBLAS INT8 + our epilogue (the default) against our mma.sync kernel, and its parity
    # with the CPU backend
    S=/tmp/g/student
    step test_kernels_cuda 180 /tmp/g/bin/test_kernels_cuda
    step bench_kernels 150 /tmp/g/bin/bench_gpu kernels --tokens 32768 --seq 128
    cp "$OUT/bench_kernels.log" "$OUT/kernels.jsonl"
    for gemm in auto cublas mma; do
        SESLM_CUDA_INT8_GEMM=$gemm step "e2e_student_$gemm" 150 /tmp/g/bin/bench_gpu e2e --backend cuda --model "$S" --batches 1,32,256 --seq 128
        SESLM_CUDA_INT8_GEMM=$gemm step "e2e_student_fp16_$gemm" 150 /tmp/g/bin/bench_gpu e2e --backend cuda-fp16 --model "$S" --batches 1,32,256 --seq 128
    done
    SESLM_EMBED_CUDA_MIN_COS=0.999 SESLM_REQUIRE_GPU=1 step test_embed_cuda_student 120 bash tests/cli/test_embed_cuda.sh /tmp/g/bin/seslm "$S" .
fi
if [ "$what" = nographs ]; then # the end-to-end timings without CUDA graph replay, to see what replay buys
    for be in cuda cuda-fp16; do
        SESLM_CUDA_GRAPHS=0 step "e2e_${be}_nographs" 150 /tmp/g/bin/bench_gpu e2e --backend $be --model "$M" --batches 1,32,256 --seq 128
    done
fi
if [ "$what" = bench ] || [ "$what" = all ]; then
    step bench_kernels 150 /tmp/g/bin/bench_gpu kernels --tokens 32768 --seq 128
    cp "$OUT/bench_kernels.log" "$OUT/kernels.jsonl"
    for be in cuda cuda-fp16; do
        st=()
        [ -d /tmp/g/student ] && st=(--student /tmp/g/student)
        step "e2e_$be" 150 /tmp/g/bin/bench_gpu e2e --backend $be --model "$M" "${st[@]}" --batches 1,32,256 --seq 128
    done
    PYTHONUNBUFFERED=1 step e2e_torch 200 python3 bench/gpu/st_peer.py --model "$M" --batches 1,32,256 --seq 128 --dtype both
fi
done
echo
echo "== summary"
printf '%s\n' "${summary[@]}"
