// attention.cu — fused multi-head self-attention for short sequences and small heads (MiniLM: D = 32,
// <= 512 tokens) over the packed ragged layout of backend.h. No score matrix ever reaches global memory.
//
// Grid (B, H, QSPLIT), 64 threads: a block owns one (sequence, head) and query tiles z, z + QSPLIT, ...
// of 64 queries; one thread = one query row, its q and output accumulator in registers (DM floats each,
// DM a compile-time bound on D so the arrays stay in registers). Keys and values stream through shared
// memory in tiles of 64 (all threads read the same key: a broadcast, no bank conflicts); the softmax is
// online (running max m, running sum l; the accumulator is rescaled only when the max grows, checked per
// chunk of 8 keys). The padding mask is exact by construction: keys come only from the query's own
// sequence. A head whose mask factor is 0 loads nothing and writes zeros.
#include "cuda_common.cuh"

#include <math.h>
#include <stdint.h>

#define ATT_QT 64    // queries per tile (= threads per block)
#define ATT_KT 64    // keys per shared-memory tile
#define ATT_CH 8     // keys per online-softmax step
#define ATT_QSPLIT 4 // query tiles in flight per (sequence, head): fills the GPU at batch 1

// EXACT: D == DM, the unrolled loops carry no d < D guards and read shared rows as float4 (MiniLM's D = 32
// and BERT-base's D = 64 take this path)
template <int DM, bool EXACT>
__global__ void __launch_bounds__(ATT_QT) attention_kernel(float *out, const float *qkv, const int *off,
                                                           const int *len, int H, int D, const float *head_mask,
                                                           float scale) {
    // 16-byte aligned rows: the EXACT path reads them as float4 (one LDS.128 per 4 FMAs: with a scalar
    // load per FMA the kernel was bound by shared-memory issue, 12 TFLOP/s on the H200)
    __shared__ __align__(16) float Ks[ATT_KT][DM];
    __shared__ __align__(16) float Vs[ATT_KT][DM];
    const int b = blockIdx.x, h = blockIdx.y, L = len[b], o = off[b];
    const int HD = H * D, S = 3 * HD;
    const float hm = head_mask ? head_mask[h] : 1.0f;
    for (int q0 = blockIdx.z * ATT_QT; q0 < L; q0 += gridDim.z * ATT_QT) { // uniform across the block
        const int i = q0 + threadIdx.x;
        const bool active = i < L;
        float *orow = out + (size_t)(o + (active ? i : 0)) * HD + h * D;
        if (hm == 0.0f) { // pruned head: no work, exact zeros
            if (active)
                for (int d = 0; d < D; d++) orow[d] = 0.0f;
            continue;
        }
        float q[DM], acc[DM];
        const float *qrow = qkv + (size_t)(o + (active ? i : 0)) * S + h * D;
#pragma unroll
        for (int d = 0; d < DM; d++) {
            q[d] = (active && (EXACT || d < D)) ? qrow[d] * scale : 0.0f;
            acc[d] = 0.0f;
        }
        float m = -INFINITY, l = 0.0f;
        for (int k0 = 0; k0 < L; k0 += ATT_KT) {
            const int nk = min(ATT_KT, L - k0);
            __syncthreads(); // the previous tile is no longer read
            if (EXACT && (D & 3) == 0 && (HD & 3) == 0 && ((uintptr_t)qkv & 15) == 0) { // float4 copies (rows are 16-byte aligned)
                const int D4 = D / 4;
                for (int e = threadIdx.x; e < nk * D4; e += blockDim.x) {
                    const int j = e / D4, d4 = e - j * D4;
                    const float4 *kr = reinterpret_cast<const float4 *>(qkv + (size_t)(o + k0 + j) * S + HD + h * D);
                    reinterpret_cast<float4 *>(Ks[j])[d4] = kr[d4];
                    reinterpret_cast<float4 *>(Vs[j])[d4] = kr[HD / 4 + d4];
                }
            } else {
                for (int e = threadIdx.x; e < nk * D; e += blockDim.x) {
                    const int j = e / D, d = e - j * D;
                    const float *kr = qkv + (size_t)(o + k0 + j) * S + HD + h * D;
                    Ks[j][d] = kr[d];
                    Vs[j][d] = kr[HD + d];
                }
            }
            __syncthreads();
            if (!active) continue;
            for (int j0 = 0; j0 < nk; j0 += ATT_CH) {
                float s[ATT_CH];
                float mx = m;
#pragma unroll
                for (int c = 0; c < ATT_CH; c++) {
                    const int j = j0 + c;
                    float v = -INFINITY;
                    if (j < nk) {
                        v = 0.0f;
                        if (EXACT) {
#pragma unroll
                            for (int d = 0; d < DM; d += 4) {
                                const float4 k4 = *reinterpret_cast<const float4 *>(&Ks[j][d]);
                                v = fmaf(q[d], k4.x, v);
                                v = fmaf(q[d + 1], k4.y, v);
                                v = fmaf(q[d + 2], k4.z, v);
                                v = fmaf(q[d + 3], k4.w, v);
                            }
                        } else {
#pragma unroll
                            for (int d = 0; d < DM; d++)
                                if (d < D) v = fmaf(q[d], Ks[j][d], v);
                        }
                    }
                    s[c] = v;
                    mx = fmaxf(mx, v);
                }
                if (mx > m) { // the running max grew: rescale what was summed so far
                    const float corr = expf(m - mx); // m = -inf at the start: 0, and l, acc are 0
                    l *= corr;
#pragma unroll
                    for (int d = 0; d < DM; d++) acc[d] *= corr;
                    m = mx;
                }
#pragma unroll
                for (int c = 0; c < ATT_CH; c++) {
                    const int j = j0 + c;
                    if (j >= nk) continue; // keys past the tile: stale shared memory, never read
                    const float p = expf(s[c] - m);
                    l += p;
                    if (EXACT) {
#pragma unroll
                        for (int d = 0; d < DM; d += 4) {
                            const float4 v4 = *reinterpret_cast<const float4 *>(&Vs[j][d]);
                            acc[d] = fmaf(p, v4.x, acc[d]);
                            acc[d + 1] = fmaf(p, v4.y, acc[d + 1]);
                            acc[d + 2] = fmaf(p, v4.z, acc[d + 2]);
                            acc[d + 3] = fmaf(p, v4.w, acc[d + 3]);
                        }
                    } else {
#pragma unroll
                        for (int d = 0; d < DM; d++)
                            if (d < D) acc[d] = fmaf(p, Vs[j][d], acc[d]);
                    }
                }
            }
        }
        if (active) {
            const float inv = hm / l;
#pragma unroll
            for (int d = 0; d < DM; d++)
                if (EXACT || d < D) orow[d] = acc[d] * inv;
        }
    }
}

extern "C" void seslm_cuda_attention(float *out, const float *qkv, const int *off, const int *len, int B, int H, int D,
                                     const float *head_mask) {
    if (B <= 0 || H <= 0) return;
    const dim3 grid((unsigned)B, (unsigned)H, ATT_QSPLIT);
    const float scale = 1.0f / sqrtf((float)D);
    if (D == 32) attention_kernel<32, true><<<grid, ATT_QT, 0, cu_stream()>>>(out, qkv, off, len, H, D, head_mask, scale);
    else if (D < 32) attention_kernel<32, false><<<grid, ATT_QT, 0, cu_stream()>>>(out, qkv, off, len, H, D, head_mask, scale);
    else if (D == 64) attention_kernel<64, true><<<grid, ATT_QT, 0, cu_stream()>>>(out, qkv, off, len, H, D, head_mask, scale);
    else if (D <= 64) attention_kernel<64, false><<<grid, ATT_QT, 0, cu_stream()>>>(out, qkv, off, len, H, D, head_mask, scale);
    else {
        seslm_cuda_note(cudaErrorInvalidValue, "seslm_cuda_attention: head_dim > 64 is not supported", __FILE__,
                        __LINE__);
        return;
    }
    cudaCheckLaunch("attention_kernel");
}
