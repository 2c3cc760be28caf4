// quantize.cu — per-token INT8 quantization of activations, one warp per row, producing exactly the
// values of seslm_quantize_rows (quant.c): scale = amax / 127, q = round-half-even(x * (127 / amax))
// clamped to +-127, a zero row gives scale 0, a row with a NaN or an infinity gives zeros and scale NaN.
// Every product and quotient is rounded on its own (__fmul_rn / __fdiv_rn: no fused multiply-add), as
// the C reference computes them, so the int8 values feeding the GEMM are identical on both sides.
#include "cuda_common.cuh"

#include <math.h>

__global__ void quantize_rows_kernel(int8_t *q, float *scale, const float *x, int M, int K, int ldq) {
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= M) return;
    const float *r = x + (size_t)row * K;
    int8_t *o = q + (size_t)row * ldq;
    float amax = 0.0f;
    int bad = 0;
    for (int k = lane; k < K; k += 32) {
        const float v = r[k];
        amax = fmaxf(amax, fabsf(v));
        bad |= !isfinite(v);
    }
    amax = warp_max(amax);
    bad = __any_sync(0xffffffffu, bad);
    if (!(amax > 0.0f) || bad) {
        for (int k = lane; k < ldq; k += 32) o[k] = 0;
        if (lane == 0) scale[row] = bad ? NAN : 0.0f;
        return;
    }
    const float inv = __fdiv_rn(127.0f, amax);
    for (int k = lane; k < ldq; k += 32) {
        int8_t v = 0;
        if (k < K) v = (int8_t)fminf(fmaxf(rintf(__fmul_rn(r[k], inv)), -127.0f), 127.0f);
        o[k] = v;
    }
    if (lane == 0) scale[row] = __fdiv_rn(amax, 127.0f);
}

extern "C" void seslm_cuda_quantize_rows(int8_t *q, float *scale, const float *x, int M, int K, int ldq) {
    if (M <= 0) return;
    quantize_rows_kernel<<<cu_blocks((size_t)M, 8), 256, 0, cu_stream()>>>(q, scale, x, M, K, ldq);
    cudaCheckLaunch("quantize_rows_kernel");
}
