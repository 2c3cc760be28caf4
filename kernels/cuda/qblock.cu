// qblock.cu — the decoder's block-quantized matrix-vector products on the GPU (kernels/qblock.h formats):
//     y[m, n] = sum_b  d_w d_x sum_j qw qx  (+ m_w s_x for Q4_1)     W (N, K) in Q4_0 / Q4_1 / Q8_0 blocks,
//                                                                   x (M, K) in Q8_0 / Q8_1 blocks
// and the activation quantizer that feeds them (round half to even, as the CPU's, so both feed the same
// integers). One warp per (token, output row): lanes stride over the row's blocks, each block's 32
// products as 8 __dp4a of 4 bytes, then a warp sum. Checked against qb_matmul's reference by
// tests/unit/test_qblock_cuda.c where a GPU is present.
#include "cuda_common.cuh"

#include "qblock.h"

#include <cuda_fp16.h>

__device__ __forceinline__ float h2f_dev(uint16_t h) { return __half2float(__ushort_as_half(h)); }

__device__ __forceinline__ int load_i32(const uint8_t *p) { // blocks are 2-byte aligned only
    return (int)((uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24));
}

// one block: sum_j qw[j] qx[j] with the 4-bit values as bytes 0..15 (offset applied by the caller)
__device__ __forceinline__ int dot_nibbles(const uint8_t *qs, const int8_t *qx) {
    int s = 0;
#pragma unroll
    for (int j = 0; j < 16; j += 4) {
        int w = load_i32(qs + j);
        s = __dp4a(w & 0x0F0F0F0F, load_i32((const uint8_t *)qx + j), s);
        s = __dp4a((w >> 4) & 0x0F0F0F0F, load_i32((const uint8_t *)qx + 16 + j), s);
    }
    return s;
}

__device__ __forceinline__ int sum_bytes(const int8_t *qx) {
    int s = 0;
#pragma unroll
    for (int j = 0; j < 32; j += 4) s = __dp4a(0x01010101, load_i32((const uint8_t *)qx + j), s);
    return s;
}

__global__ void qb_matvec_kernel(float *y, const uint8_t *W, int type, const uint8_t *X, int M, int N, int K) {
    int warp = (int)((blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5), lane = threadIdx.x & 31;
    if (warp >= M * N) return;
    int m = warp / N, n = warp % N, nb = K / QB_BLOCK;
    float acc = 0.0f;
    if (type == QB_Q4_1) {
        const qb_q4_1 *w = (const qb_q4_1 *)W + (size_t)n * nb;
        const qb_q8_1 *x = (const qb_q8_1 *)X + (size_t)m * nb;
        for (int b = lane; b < nb; b += 32)
            acc += (float)dot_nibbles(w[b].qs, x[b].qs) * h2f_dev(w[b].d) * h2f_dev(x[b].d) +
                   h2f_dev(w[b].m) * h2f_dev(x[b].s);
    } else if (type == QB_Q4_0) {
        const qb_q4_0 *w = (const qb_q4_0 *)W + (size_t)n * nb;
        const qb_q8_0 *x = (const qb_q8_0 *)X + (size_t)m * nb;
        for (int b = lane; b < nb; b += 32) // (q - 8) x = q x - 8 x
            acc += (float)(dot_nibbles(w[b].qs, x[b].qs) - 8 * sum_bytes(x[b].qs)) * h2f_dev(w[b].d) * h2f_dev(x[b].d);
    } else if (type == QB_Q8_0) {
        const qb_q8_0 *w = (const qb_q8_0 *)W + (size_t)n * nb;
        const qb_q8_0 *x = (const qb_q8_0 *)X + (size_t)m * nb;
        for (int b = lane; b < nb; b += 32) {
            int s = 0;
#pragma unroll
            for (int j = 0; j < 32; j += 4)
                s = __dp4a(load_i32((const uint8_t *)w[b].qs + j), load_i32((const uint8_t *)x[b].qs + j), s);
            acc += (float)s * h2f_dev(w[b].d) * h2f_dev(x[b].d);
        }
    }
    acc = warp_sum(acc);
    if (lane == 0) y[(size_t)m * N + n] = acc;
}

// one thread per block of 32 activations
__global__ void qb_quantize_kernel(uint8_t *X, const float *x, int type, int M, int K) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x, nb = (size_t)M * (K / QB_BLOCK);
    if (i >= nb) return;
    const float *v = x + i * QB_BLOCK;
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(v[j]));
    float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int8_t q[32];
    int sum = 0;
    for (int j = 0; j < 32; j++) {
        q[j] = (int8_t)rintf(v[j] * id);
        sum += q[j];
    }
    if (type == QB_Q8_1) {
        qb_q8_1 *b = (qb_q8_1 *)X + i;
        b->d = __half_as_ushort(__float2half_rn(d));
        b->s = __half_as_ushort(__float2half_rn((float)sum * d));
        for (int j = 0; j < 32; j++) b->qs[j] = q[j];
    } else {
        qb_q8_0 *b = (qb_q8_0 *)X + i;
        b->d = __half_as_ushort(__float2half_rn(d));
        for (int j = 0; j < 32; j++) b->qs[j] = q[j];
    }
}

extern "C" void seslm_cuda_qb_quantize(void *xq, const float *x, int type, int M, int K) {
    size_t nb = (size_t)M * (K / QB_BLOCK);
    if (!nb) return;
    qb_quantize_kernel<<<cu_blocks(nb, 128), 128, 0, cu_stream()>>>((uint8_t *)xq, x, type, M, K);
    cudaCheckLaunch("qb_quantize_kernel");
}

extern "C" void seslm_cuda_qb_matvec(float *y, const void *W, int type, const void *xq, int M, int N, int K) {
    size_t threads = (size_t)M * N * 32;
    if (!threads) return;
    qb_matvec_kernel<<<cu_blocks(threads, 256), 256, 0, cu_stream()>>>(y, (const uint8_t *)W, type,
                                                                        (const uint8_t *)xq, M, N, K);
    cudaCheckLaunch("qb_matvec_kernel");
}
