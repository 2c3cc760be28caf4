/* bf16.h — BF16 linear layers: weights converted to bfloat16 at load, activations rounded to bfloat16
 * per call, products of bfloat16 pairs accumulated in FP32 (what AVX-512 BF16's vdpbf16ps computes):
 *
 *     y[m, n] = b[n] + sum_k bf16(x[m, k]) * bf16(w[n, k])        (FP32 accumulator)
 *
 * Every product of two bfloat16 values is exact in FP32 (8-bit significands), so each accumulation step is
 * one FP32 rounding. The reference (seslm_bf16_linear_ref) accumulates in the instruction's order: per
 * pair of k, the odd element then the even one, each a fused multiply-add. The portable fast kernel
 * keeps that order (bit-exact to the reference); the AVX-512 kernel is tested against it with a stated
 * tolerance (tests/unit/test_bf16.c), since the hardware flushes denormals.
 * Layer norm, softmax, GELU and the residual stream stay FP32. */
#ifndef SESLM_BF16_H
#define SESLM_BF16_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* FP32 -> BF16, round to nearest even; NaN stays a (quiet) NaN; FP32 denormals become signed zero
 * (the hardware treats denormal inputs as zero). */
static inline uint16_t seslm_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); // NaN
    if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000);     // zero / denormal
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float seslm_bf16_to_f32(uint16_t h) {
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* dst (n) = bf16(src) */
void seslm_bf16_from_f32(uint16_t *dst, const float *src, size_t n);

/* Activations: x (M, K) -> xb (M, lda), lda even >= K, columns K..lda-1 zero. */
void seslm_bf16_convert_rows(uint16_t *xb, const float *x, int M, int K, int lda);

/* Panel layout of w (N, K) for the fast kernels: 32 output columns per panel, k in pairs:
 * wp[((p * Kp + g) * 32 + j) * 2 + i] = w[32 p + j][2 g + i], Kp = ceil(K / 2), zero-padded.
 * malloc'd (free()); NULL on out of memory. */
uint16_t *seslm_bf16_pack(const uint16_t *w, int N, int K);

/* Reference: y (M, N) = bf16(x) (M, K) . w (N, K)^T + b (N) (b may be NULL), plain loops. */
void seslm_bf16_linear_ref(float *y, const float *x, const uint16_t *w, const float *b, int M, int N, int K);

/* Fast: on the packed weights; threads over panels (pool.h). `isa` forces a kernel ("avx512bf16", "avx2", "c")
 * or picks the best (NULL). Returns -1 (y all NaN) when the activation scratch cannot be allocated. */
int seslm_bf16_linear_fast(float *y, const float *x, const uint16_t *wp, const float *b, int M, int N, int K,
                           const char *isa);

/* The kernel seslm_bf16_linear_fast picks on this CPU: "avx512bf16", "avx2" or "c". */
const char *seslm_bf16_isa(void);

#endif
