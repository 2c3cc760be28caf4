// rows.cu — two small helpers of the forward pass on device buffers: broadcast a bias row (a layer whose
// heads or neurons were all pruned contributes only its bias) and scale column groups by a mask
// (structural masks: a factor per head's D columns, or per FFN neuron).
#include "cuda_common.cuh"

__global__ void fill_rows_kernel(float *y, const float *row, int M, int N) {
    const size_t n = (size_t)M * N;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] = row[i % N];
}

__global__ void scale_columns_kernel(float *y, int M, int G, int W, const float *mask) {
    const size_t n = (size_t)M * G * W;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float k = mask[(i / W) % G];
        if (k == 0.0f) y[i] = 0.0f; // exact zeros, even where y held a NaN or an infinity
        else if (k != 1.0f) y[i] *= k;
    }
}

static unsigned grid_for(size_t n) {
    const unsigned g = cu_blocks(n, 256);
    return g < 4096 ? (g ? g : 1) : 4096;
}

extern "C" void seslm_cuda_fill_rows(float *y, const float *row, int M, int N) {
    if (M <= 0 || N <= 0) return;
    fill_rows_kernel<<<grid_for((size_t)M * N), 256, 0, cu_stream()>>>(y, row, M, N);
    cudaCheckLaunch("fill_rows_kernel");
}

extern "C" void seslm_cuda_scale_columns(float *y, int M, int G, int W, const float *mask) {
    if (M <= 0 || G <= 0 || W <= 0) return;
    scale_columns_kernel<<<grid_for((size_t)M * G * W), 256, 0, cu_stream()>>>(y, M, G, W, mask);
    cudaCheckLaunch("scale_columns_kernel");
}
