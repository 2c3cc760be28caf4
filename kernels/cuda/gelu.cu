// gelu.cu — erf GELU in place, and GELU fused with the bias of the preceding linear layer (one pass
// over the FFN activations instead of two). Grid-stride loops; memory-bound.
#include "cuda_common.cuh"

__device__ __forceinline__ float gelu_erf(float v) { return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)); }

__global__ void gelu_kernel(float *x, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = gelu_erf(x[i]);
}

__global__ void gelu_bias_kernel(float *x, const float *b, int M, int N) {
    const size_t n = (size_t)M * N;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = gelu_erf(b ? x[i] + b[i % N] : x[i]);
}

static unsigned gelu_grid(size_t n) {
    const unsigned g = cu_blocks(n, 256);
    return g < 4096 ? (g ? g : 1) : 4096;
}

extern "C" void seslm_cuda_gelu(float *x, size_t n) {
    if (!n) return;
    gelu_kernel<<<gelu_grid(n), 256, 0, cu_stream()>>>(x, n);
    cudaCheckLaunch("gelu_kernel");
}

extern "C" void seslm_cuda_gelu_bias(float *x, const float *b, int M, int N) {
    if (M <= 0 || N <= 0) return;
    gelu_bias_kernel<<<gelu_grid((size_t)M * N), 256, 0, cu_stream()>>>(x, b, M, N);
    cudaCheckLaunch("gelu_bias_kernel");
}
