/* quant.h — INT8 linear layers: weights quantized per output channel (symmetric, scale = max|w| / 127),
 * activations quantized per token at run time (symmetric, scale = max|x| / 127), products accumulated in
 * int32 and dequantized once:
 *
 *     y[m, n] = (sum_k qa[m, k] * qw[n, k]) * sa[m] * sw[n] + b[n]
 *
 * The int32 sums are exact in every implementation (|sum| <= 127 * 127 * K < 2^31 for K < 133 000), so
 * the fast kernels are tested bit for bit against seslm_qgemm_ref. The fast kernel uses AVX-512 VNNI
 * (vpdpbusd: u8 x s8), so activations enter it shifted to u8 (qa + 128) and the shift is taken back with
 * a precomputed 128 * sum_k qw[n, k] per column; without VNNI a portable C kernel reads the same layout. */
#ifndef SESLM_QUANT_H
#define SESLM_QUANT_H

#include <stddef.h>
#include <stdint.h>

/* Per-token quantization of x (M, K) into q (M, ldq) (ldq >= K; columns K..ldq-1 are set to 0) and
 * scale (M). Round to nearest, ties to even; a zero row gets scale 0. Shared by every CPU backend so
 * that both feed identical int8 values to their products. */
void seslm_quantize_rows(int8_t *q, float *scale, const float *x, int M, int K, int ldq);
/* The portable implementation alone (AVX-512 is used by seslm_quantize_rows when present): for tests,
 * which check both give identical bytes and scales. */
void seslm_quantize_rows_portable(int8_t *q, float *scale, const float *x, int M, int K, int ldq);

/* Per-token quantization with each token's largest element kept in float (a student's config.json
 * "linear_activations": "int8-dynamic-per-token-symmetric-top1-float"; seslm_weight.act_top1). BERT-family
 * encoders carry massive activations: on MiniLM's [CLS] row one channel is ~100x the others, so with
 * max|x| / 127 as the step the rest of that row rounds to 0 or +-1, and a value a float rounding away from a
 * .5 boundary moves the sentence vector (bench/RESULTS.md 20). Here t = the first k of max_k |x[m, k]|,
 * top_idx[m] = t, top_val[m] = x[m, t], q[m, t] = 0, and the other elements are quantized as
 * seslm_quantize_rows does with the second largest |x| as the maximum (scale = that / 127). The product then
 * adds top_val[m] * (sw[n] * qw[n, t]) to the dequantized sums (seslm_q8_add_top1_ref, seslm_qgemm_fast_top1):
 * one more multiply-add per output. A row holding a NaN or an infinity: scale NaN (as seslm_quantize_rows),
 * top_val 0; a zero row: scale 0, top_val 0. */
void seslm_quantize_rows_top1(int8_t *q, float *scale, int32_t *top_idx, float *top_val, const float *x, int M, int K,
                              int ldq);
/* The portable implementation alone (AVX2 is used by seslm_quantize_rows_top1 when present): for tests. */
void seslm_quantize_rows_top1_portable(int8_t *q, float *scale, int32_t *top_idx, float *top_val, const float *x, int M,
                                       int K, int ldq);
/* y (M, ldy) += top_val[m] * (sw[n] * qw[n * ldw + top_idx[m]]) for n < N, qw the unpacked INT8 weights;
 * rows with top_val 0 are left as they are. */
void seslm_q8_add_top1_ref(float *y, int ldy, const int32_t *top_idx, const float *top_val, const int8_t *qw, int ldw,
                           const float *sw, int M, int N);

/* Per-output-channel quantization of w (N, K): q (N, K), scale (N). Returns the largest absolute
 * rounding error relative to the channel's max |w| (for reports). */
float seslm_quantize_weight(int8_t *q, float *scale, const float *w, int N, int K);

/* Per-row 4-bit quantization of w (N, K), K even (the word table below INT8): symmetric, scale = max|w| / 7,
 * values round-to-nearest-even in [-7, 7] packed two per byte into q4 (N, K/2) as backend.h's
 * seslm_embedding describes. Returns the largest absolute rounding error relative to the row's max |w|
 * (<= 1/14 by construction). */
float seslm_quantize_rows4(uint8_t *q4, float *scale, const float *w, int N, int K);

/* VNNI layout of q (N, K): panels of 16 output channels, K in groups of 4:
 * qp[((p * Kg + g) * 16 + j) * 4 + i] = q[16 p + j][4 g + i], Kg = ceil(K / 4), zero-padded.
 * *colsum_out (ceil(N/16) * 16) gets 128 * sum_k q[n][k]. Both malloc'd; NULL on out of memory. */
int8_t *seslm_qweight_pack(const int8_t *q, int N, int K, int32_t **colsum_out);
size_t seslm_qweight_packed_bytes(int N, int K);

/* Reference: acc (M, N) = qa (M, K) . qw (N, K)^T in int32. */
void seslm_qgemm_ref(int32_t *acc, const int8_t *qa, const int8_t *qw, int M, int N, int K);

/* Fast: qa (M, lda) with lda a multiple of 4 >= K, on the packed weights. When acc is not NULL the
 * int32 sums are stored there (M, N); otherwise y (M, N) = dequantized sums * sa[m] * sw[n] + b[n]
 * (b may be NULL). `isa` forces a kernel ("avx512vnni", "avx2", "c") or picks the best (NULL). Threads: the pool (pool.h). */
void seslm_qgemm_fast(int32_t *acc, float *y, const int8_t *qa, int lda, const float *sa, const int8_t *qp,
                      const int32_t *colsum, const float *sw, const float *b, int M, int N, int K, const char *isa);

/* As seslm_qgemm_fast (y only), then post(row segment, n) on each finished segment of y while it is still
 * in cache (a fused activation: GELU on the first FFN product). post must work element by element. */
typedef void (*seslm_rows_post)(float *y, size_t n);
void seslm_qgemm_fast_post(int32_t *acc, float *y, const int8_t *qa, int lda, const float *sa, const int8_t *qp,
                           const int32_t *colsum, const float *sw, const float *b, int M, int N, int K,
                           const char *isa, seslm_rows_post post);

/* The first FFN product of an INT8 layer, fused deeper than a post function can: y = GELU(dequantized sums
 * * sa[m] * sw[n] + b[n]), and when rowmax is not NULL, rowmax[m] = the bits of max_n |y[m, n]| (a NaN or an
 * infinity in the row gives bits >= 0x7f800000), so the next product's per-token quantization
 * (seslm_quantize_rows_amax) needs no pass over y to find its scale. On AVX-512 VNNI the GELU and the maximum
 * run on the tile's registers before they are stored (the same GELU instructions as the fast backend's
 * element-wise pass, so the same bits); the portable kernel applies gelu_portable, a row function, to each
 * finished tile and scans it. */
void seslm_qgemm_fast_gelu(float *y, uint32_t *rowmax, const int8_t *qa, int lda, const float *sa, const int8_t *qp,
                           const int32_t *colsum, const float *sw, const float *b, int M, int N, int K,
                           const char *isa, seslm_rows_post gelu_portable);

/* seslm_qgemm_fast_post for activations from seslm_quantize_rows_top1: each tile's y gets its rows' top
 * term (qw[n, t] read from the packed panels) before post runs on it. */
void seslm_qgemm_fast_top1(float *y, const int8_t *qa, int lda, const float *sa, const int32_t *top_idx,
                           const float *top_val, const int8_t *qp, const int32_t *colsum, const float *sw, const float *b,
                           int M, int N, int K, const char *isa, seslm_rows_post post);

/* seslm_quantize_rows with each row's max |x| already known (absmax_bits[m], as seslm_qgemm_fast_gelu gives
 * it): the same bytes and scales, one pass over x instead of two. */
void seslm_quantize_rows_amax(int8_t *q, float *scale, const float *x, int M, int K, int ldq,
                              const uint32_t *absmax_bits);

/* The kernel seslm_qgemm_fast picks on this CPU: "avx512vnni", "avx2" or "c". */
const char *seslm_qgemm_isa(void);

/* Grow-on-demand per-thread scratch for quantized activations (freed at thread exit). NULL when out of
 * memory. The forward pass allocates only when a batch is larger than any before on that thread. */
void *seslm_quant_scratch(size_t bytes);

#endif
