// layernorm.cu — fused residual add + LayerNorm: x = LN(x + r) * g + beta, one warp per row.
// The row is read once to add the residual (written back), then twice more from L1/L2 for the two-pass
// variance (mean first, then the squared deviations: as ref.c, no E[x^2] - mean^2 cancellation).
#include "cuda_common.cuh"

__global__ void add_layernorm_kernel(float *x, const float *r, const float *g, const float *beta, int M, int C,
                                     float eps) {
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= M) return; // whole warps leave together: the shuffles below stay full-warp
    float *xr = x + (size_t)row * C;
    const float *rr = r ? r + (size_t)row * C : NULL;
    float s = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float v = xr[c];
        if (rr) v += rr[c], xr[c] = v;
        s += v;
    }
    const float mean = warp_sum(s) / (float)C;
    float q = 0.0f;
    for (int c = lane; c < C; c += 32) {
        const float d = xr[c] - mean;
        q += d * d;
    }
    const float rstd = rsqrtf(warp_sum(q) / (float)C + eps);
    for (int c = lane; c < C; c += 32) xr[c] = (xr[c] - mean) * rstd * g[c] + beta[c];
}

extern "C" void seslm_cuda_add_layernorm(float *x, const float *r, const float *g, const float *beta, int M, int C,
                                         float eps) {
    if (M <= 0) return;
    add_layernorm_kernel<<<cu_blocks((size_t)M, 8), 256, 0, cu_stream()>>>(x, r, g, beta, M, C, eps);
    cudaCheckLaunch("add_layernorm_kernel");
}
