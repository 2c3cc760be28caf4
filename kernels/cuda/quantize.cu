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

// seslm_quantize_rows_top1 (quant.h): the row's first largest |x| (index t, value top) stays float, the rest is
// quantized with the second largest |x| as the maximum, q[t] = 0. One warp per row: the maximum, the lowest
// index holding it, the maximum with t masked out, then the rounding (each product rounded on its own, as
// the C reference).
__global__ void quantize_rows_top1_kernel(int8_t *q, float *scale, int32_t *top_idx, float *top_val, const float *x,
                                          int M, int K, int ldq) {
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= M) return;
    const float *r = x + (size_t)row * K;
    int8_t *o = q + (size_t)row * ldq;
    float a1 = 0.0f;
    int bad = 0;
    for (int k = lane; k < K; k += 32) {
        a1 = fmaxf(a1, fabsf(r[k]));
        bad |= !isfinite(r[k]);
    }
    a1 = warp_max(a1);
    bad = __any_sync(0xffffffffu, bad);
    if (!(a1 > 0.0f) || bad) {
        for (int k = lane; k < ldq; k += 32) o[k] = 0;
        if (lane == 0) scale[row] = bad ? NAN : 0.0f, top_idx[row] = 0, top_val[row] = 0.0f;
        return;
    }
    int t = K;
    for (int k = lane; k < K; k += 32)
        if (fabsf(r[k]) == a1 && k < t) t = k;
    for (int off = 16; off > 0; off >>= 1) t = min(t, __shfl_xor_sync(0xffffffffu, t, off));
    float a2 = 0.0f;
    for (int k = lane; k < K; k += 32)
        if (k != t) a2 = fmaxf(a2, fabsf(r[k]));
    a2 = warp_max(a2);
    if (lane == 0) top_idx[row] = t, top_val[row] = r[t];
    if (!(a2 > 0.0f)) {
        for (int k = lane; k < ldq; k += 32) o[k] = 0;
        if (lane == 0) scale[row] = 0.0f;
        return;
    }
    const float inv = __fdiv_rn(127.0f, a2);
    for (int k = lane; k < ldq; k += 32) {
        int8_t v = 0;
        if (k < K && k != t) v = (int8_t)fminf(fmaxf(rintf(__fmul_rn(r[k], inv)), -127.0f), 127.0f);
        o[k] = v;
    }
    if (lane == 0) scale[row] = __fdiv_rn(a2, 127.0f);
}

extern "C" void seslm_cuda_quantize_rows_top1(int8_t *q, float *scale, int32_t *top_idx, float *top_val,
                                              const float *x, int M, int K, int ldq) {
    if (M <= 0) return;
    quantize_rows_top1_kernel<<<cu_blocks((size_t)M, 8), 256, 0, cu_stream()>>>(q, scale, top_idx, top_val, x, M, K,
                                                                               ldq);
    cudaCheckLaunch("quantize_rows_top1_kernel");
}

// y (M, N) += top_val[m] * (sw[n] * qw[n, top_idx[m]]), qw (N, ldw): one thread per output, rounded as
// seslm_q8_add_top1_ref (no fused multiply-add).
__global__ void add_top1_kernel(float *y, const int32_t *top_idx, const float *top_val, const int8_t *qw, int ldw,
                                const float *sw, int M, int N) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)M * N) return;
    const int m = (int)(i / N), n = (int)(i % N);
    const float tv = top_val[m];
    if (tv == 0.0f) return;
    y[i] = __fadd_rn(y[i], __fmul_rn(tv, __fmul_rn(sw[n], (float)qw[(size_t)n * ldw + top_idx[m]])));
}

extern "C" void seslm_cuda_add_top1(float *y, const int32_t *top_idx, const float *top_val, const int8_t *qw, int ldw,
                                    const float *sw, int M, int N) {
    if (M <= 0 || N <= 0) return;
    add_top1_kernel<<<cu_blocks((size_t)M * N, 256), 256, 0, cu_stream()>>>(y, top_idx, top_val, qw, ldw, sw, M, N);
    cudaCheckLaunch("add_top1_kernel");
}
