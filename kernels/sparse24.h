/* sparse24.h — 2:4 structured sparsity of a linear layer's weights: in every group of 4 consecutive inputs
 * (k = 4g .. 4g+3) of every output row, exactly 2 weights are kept. Stored form (what model.safetensors holds):
 *
 *   values (N, K/2) F32   the kept weights of each row, group by group, lower position first
 *   index  (N, K/4) U8    per group: bits 0-1 = position of the first kept weight, bits 2-3 = the second (>)
 *
 * K must be a multiple of 4. The fast kernel reads a panel layout built once at load: per 16 output rows
 * and group, the two kept values of each row (2 x 16 floats) and their lane selectors into a 16-input
 * chunk of x (2 x 16 bytes) — AVX-512 vpermps gathers the inputs, so a row's product costs 2 FMAs per
 * group instead of 4, at the price of 2 permutes (bench/bench_sparse24.c measures whether that pays). */
#ifndef SESLM_SPARSE24_H
#define SESLM_SPARSE24_H

#include <stddef.h>
#include <stdint.h>

/* Keeps, per group of 4, the two weights with the largest score (|w| when score is NULL; e.g. Wanda's
 * |w| * ||x_k||). Returns the fraction of the squared weight mass kept. */
double seslm_sparse24_compress(float *values, uint8_t *index, const float *w, const float *score, int N, int K);

/* The dense (N, K) matrix with zeros where weights were dropped. */
void seslm_sparse24_expand(float *w, const float *values, const uint8_t *index, int N, int K);

/* 1 when every index byte is well formed (two distinct positions, ascending, high bits clear). */
int seslm_sparse24_valid(const uint8_t *index, size_t n);

/* Reference: y (M, N) = x (M, K) . W^T + b, W given in the stored form; double accumulation. */
void seslm_sparse24_linear_ref(float *y, const float *x, const float *values, const uint8_t *index, const float *b,
                               int M, int N, int K);

/* Panel layout for the fast kernel (malloc'd, free()); NULL when out of memory. */
void *seslm_sparse24_pack(const float *values, const uint8_t *index, int N, int K);

/* Fast product on the packed panels (AVX-512 when present, else portable C). Threads: the pool (pool.h). */
void seslm_sparse24_linear_fast(float *y, const float *x, const void *packed, const float *b, int M, int N, int K);

#endif
