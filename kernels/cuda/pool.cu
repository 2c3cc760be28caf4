// pool.cu — mean pooling of each sequence's rows and L2 normalisation, one block per sequence.
// Threads own columns (coalesced row reads); sums in double as ref.c; the squared norm is reduced
// across the block in shared memory.
#include "cuda_common.cuh"

#define POOL_T 128

__global__ void __launch_bounds__(POOL_T) pool_kernel(float *out, const float *x, const int *off, const int *len,
                                                      int C, int normalize) {
    __shared__ double part[POOL_T];
    const int b = blockIdx.x, L = len[b], o = off[b];
    float *orow = out + (size_t)b * C;
    double nrm = 0.0;
    for (int c = threadIdx.x; c < C; c += POOL_T) {
        double s = 0.0;
        for (int p = 0; p < L; p++) s += x[(size_t)(o + p) * C + c];
        const float mean = (float)(s / L);
        orow[c] = mean;
        nrm += (double)mean * mean;
    }
    if (!normalize) return;
    part[threadIdx.x] = nrm;
    __syncthreads();
    for (int k = POOL_T / 2; k > 0; k >>= 1) {
        if ((int)threadIdx.x < k) part[threadIdx.x] += part[threadIdx.x + k];
        __syncthreads();
    }
    const double inv = 1.0 / fmax(sqrt(part[0]), 1e-12);
    for (int c = threadIdx.x; c < C; c += POOL_T) orow[c] = (float)(orow[c] * inv);
}

extern "C" void seslm_cuda_pool(float *out, const float *x, const int *off, const int *len, int B, int C,
                                int normalize) {
    if (B <= 0) return;
    pool_kernel<<<(unsigned)B, POOL_T, 0, cu_stream()>>>(out, x, off, len, C, normalize);
    cudaCheckLaunch("pool_kernel");
}
