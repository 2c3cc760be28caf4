// cuda_device.cu — CUDA device discovery for the runtime: how many GPUs are visible and what they are.
// The CUDA kernels of the encoder (attention, masked heads, sparse FFN, INT8 GEMM) build on this file;
// it compiles whenever nvcc is present, with or without a GPU on the build machine.
#include <cuda_runtime.h>
#include <stdio.h>

extern "C" {

// Number of visible CUDA devices; 0 when there is no GPU or no driver (never an error).
int seslm_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); // clear the sticky "no device" / "no driver" error
        return 0;
    }
    return n;
}

// One line describing device i ("NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB"), or -1 if it is not there.
int seslm_cuda_device_describe(int i, char *buf, int cap) {
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    snprintf(buf, (size_t)cap, "%s, sm_%d%d, %.1f GiB", p.name, p.major, p.minor,
             (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    return 0;
}

} // extern "C"
