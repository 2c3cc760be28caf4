/* qblock.h — ggml's block-quantized tensor formats (as stored in GGUF files) and their dot products.
 *
 * Weights come in blocks of 32 values along a row (K):
 *   Q4_0  { f16 d; u8 qs[16]; }            x = (q - 8) * d          18 bytes / 32 values
 *   Q4_1  { f16 d, m; u8 qs[16]; }         x = q * d + m            20 bytes
 *   Q8_0  { f16 d; i8 qs[32]; }            x = q * d                34 bytes
 * A 4-bit block keeps value j (j < 16) in the low nibble of qs[j] and value j + 16 in its high nibble.
 * F16 and F32 rows are plain arrays.
 *
 * Activations are quantized per block of 32 at run time (as llama.cpp's CPU backend does), so a product
 * is integer sums per block scaled once:
 *   Q4_0 / Q8_0 weights  x  Q8_0 activations: sum_b d_w d_x sum_j qw qx
 *   Q4_1 weights         x  Q8_1 activations { f16 d, s = d * sum_j qx; i8 qs[32] }:
 *                                             sum_b (d_w d_x sum_j qw qx + m_w s_x)
 * Every dot has a plain-C reference (qb_dot_ref) and a fast version (qb_dot: AVX-512 / AVX2 when the
 * CPU has them, else the reference); tests/unit/test_qblock.c checks one against the other. */
#ifndef SESLM_QBLOCK_H
#define SESLM_QBLOCK_H

/* The decoder (runtime/decoder) and the tests call these across the library boundary. The shared libraries export only seslm_* names
 * (cmake/seslm.map), so these are compiled under the prefixed names. */
#define qb_f16_to_f32 seslm_qb_f16_to_f32
#define qb_f32_to_f16 seslm_qb_f32_to_f16
#define qb_type_name seslm_qb_type_name
#define qb_row_bytes seslm_qb_row_bytes
#define qb_vec_dot_type seslm_qb_vec_dot_type
#define qb_dequantize_row seslm_qb_dequantize_row
#define qb_quantize_row seslm_qb_quantize_row
#define qb_quantize_weight_row seslm_qb_quantize_weight_row
#define qb_dot_ref seslm_qb_dot_ref
#define qb_dot seslm_qb_dot
#define qb_dot_f16 seslm_qb_dot_f16
#define qb_axpy_f16 seslm_qb_axpy_f16
#define qb_f32_to_f16_row seslm_qb_f32_to_f16_row
#define qb_isa seslm_qb_isa
#define qb_force_isa seslm_qb_force_isa
#define qb_matmul seslm_qb_matmul
#define qb_matmul_n seslm_qb_matmul_n

#include <stddef.h>
#include <stdint.h>

#define QB_BLOCK 32

typedef enum { // ggml's type numbers, as written in GGUF tensor infos
    QB_F32 = 0,
    QB_F16 = 1,
    QB_Q4_0 = 2,
    QB_Q4_1 = 3,
    QB_Q8_0 = 8,
    QB_Q8_1 = 9, // activations only
} qb_type;

typedef struct {
    uint16_t d;
    uint8_t qs[16];
} qb_q4_0;
typedef struct {
    uint16_t d, m;
    uint8_t qs[16];
} qb_q4_1;
typedef struct {
    uint16_t d;
    int8_t qs[32];
} qb_q8_0;
typedef struct {
    uint16_t d, s;
    int8_t qs[32];
} qb_q8_1;

float qb_f16_to_f32(uint16_t h);
uint16_t qb_f32_to_f16(float f); // round to nearest even, overflow to inf, NaN kept

/* Name ("Q4_1"), or NULL for a type this runtime does not read. */
const char *qb_type_name(int type);
/* Bytes of a row of k values (k a multiple of 32 for block types), 0 for an unknown type or bad k. */
size_t qb_row_bytes(int type, int64_t k);
/* The activation format a weight type multiplies with: Q8_0, Q8_1, or F32 (F16 / F32 weights). */
int qb_vec_dot_type(int type);

/* Row of k values of `type` to floats. */
void qb_dequantize_row(int type, const void *src, float *dst, int k);
/* Floats to activation blocks (type QB_Q8_0 or QB_Q8_1; k a multiple of 32). */
void qb_quantize_row(int type, const float *x, void *dst, int k);
/* Floats to a weight row of `type` (F32, F16, Q4_0, Q4_1, Q8_0) as ggml's reference quantizers write it.
 * -1 for another type or k not a multiple of 32 for a block type. */
int qb_quantize_weight_row(int type, const float *x, void *dst, int k);

/* sum_j w[j] x[j] for one weight row of `type` and the activations in qb_vec_dot_type(type) format. */
float qb_dot_ref(int type, const void *w, const void *x, int k);
float qb_dot(int type, const void *w, const void *x, int k);
/* Attention over an F16 KV cache: sum_j k[j] q[j], and y[j] += a v[j] (reference when ref). */
float qb_dot_f16(const uint16_t *k, const float *q, int n, int ref);
void qb_axpy_f16(float *y, float a, const uint16_t *v, int n, int ref);
/* F32 row to F16 (round to nearest even). */
void qb_f32_to_f16_row(uint16_t *dst, const float *src, int n);

/* The instruction set qb_dot uses here: "avx512", "avx2" or "c". */
const char *qb_isa(void);
/* Tests and benchmarks: use "c", "avx2" or "avx512" from now on (NULL: the best again). -1 when this
 * CPU cannot run it. The environment variable SESLM_QB_ISA sets the same at start-up. */
int qb_force_isa(const char *name);

/* y (M, N) = x (M, K) . W^T, W (N, K) of `type` with row stride qb_row_bytes(type, K). The activations
 * are quantized once per call; chunks of 16 rows of W are spread over the CPU backends' thread pool
 * (pool.h), and each weight row meets all M tokens while it is in cache. `ref` selects the reference dot.
 * Returns 0, or -1 when out of memory. */
int qb_matmul(float *y, const float *x, const void *W, int type, int M, int N, int K, int ref);

/* n products of the same x (M, K): ys[i] (M, Ns[i]) = x . Ws[i]^T (Q, K and V; gate and up). When every
 * type shares its activation format, x is quantized once and the row chunks of all n matrices are one
 * parallel job (one wake-up of the pool instead of n); otherwise it is n calls of qb_matmul. */
int qb_matmul_n(int n, float *const *ys, const float *x, const void *const *Ws, const int *types, const int *Ns, int M,
                int K, int ref);

#endif
