/* sparsity.h — whether 2:4 structured sparsity pays on this machine: the sparse product (sparse24.h)
 * timed against the dense product the student would otherwise run (F32 panels, or INT8), same shape,
 * same thread count, interleaved, median of repeats. recompile keeps 2:4 only where it is faster at the
 * batch size of use, and otherwise writes dense weights and says why. */
#ifndef SESLM_SPARSITY_H
#define SESLM_SPARSITY_H

#include "seslm.h"

typedef struct {
    int M, N, K;          // rows of activations (batch x tokens), outputs, inputs
    const char *dense;    // "f32" or "int8"
    double dense_ms, sparse_ms; // medians
    double dense_spread, sparse_spread; // (p90 - p10) / median
} seslm_sparse24_timing;

/* Times both products on random data (repeats >= 3; threads as the fast backend is set). */
seslm_status seslm_sparse24_benchmark(seslm_sparse24_timing *t, int M, int N, int K, int dense_int8, int repeats);

#endif
