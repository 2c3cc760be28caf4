/* sparsity.c — dense vs 2:4 sparse product timing (sparsity.h). */
#include "sparsity.h"

#include "backend.h"
#include "quant.h"
#include "sparse24.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void summarize(double *v, int n, double *median, double *spread) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    *median = v[n / 2];
    *spread = *median > 0 ? (v[(n * 9) / 10 < n ? (n * 9) / 10 : n - 1] - v[n / 10]) / *median : 0;
}

seslm_status seslm_sparse24_benchmark(seslm_sparse24_timing *t, int M, int N, int K, int dense_int8, int repeats) {
    if (M <= 0 || N <= 0 || K <= 0 || K % 4) return seslm_fail(SESLM_ERR_ARG, "2:4 benchmark: bad shape %dx%dx%d", M, N, K);
    if (repeats < 3) repeats = 3;
    memset(t, 0, sizeof *t);
    t->M = M, t->N = N, t->K = K, t->dense = dense_int8 ? "int8" : "f32";
    const seslm_backend *be = seslm_backend_cpu_fast();
    float *w = malloc((size_t)N * K * sizeof *w), *x = malloc((size_t)M * K * sizeof *x), *y = malloc((size_t)M * N * sizeof *y);
    float *b = calloc((size_t)N, sizeof *b), *vals = malloc((size_t)N * K / 2 * sizeof *vals), *sc = malloc((size_t)N * sizeof *sc);
    uint8_t *idx = malloc((size_t)N * K / 4 + 1);
    int8_t *q = malloc((size_t)N * K);
    double *td = malloc((size_t)repeats * sizeof *td), *ts = malloc((size_t)repeats * sizeof *ts);
    seslm_weight W = {.N = N, .K = K};
    void *sp = NULL;
    seslm_status st = SESLM_OK;
    if (!w || !x || !y || !b || !vals || !sc || !idx || !q || !td || !ts) {
        st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        goto done;
    }
    uint64_t r = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < (size_t)N * K; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        w[i] = (float)(r >> 40) / (float)(1 << 24) - 0.5f;
    }
    for (size_t i = 0; i < (size_t)M * K; i++) x[i] = w[i % ((size_t)N * K)];
    seslm_sparse24_compress(vals, idx, w, NULL, N, K);
    sp = seslm_sparse24_pack(vals, idx, N, K);
    if (dense_int8) {
        seslm_quantize_weight(q, sc, w, N, K);
        W.q = q, W.qscale = sc;
        W.qp = seslm_qweight_pack(q, N, K, &W.qsum);
    } else {
        W.w = w;
        W.wp = seslm_weight_pack32(w, N, K);
    }
    if (!sp || (dense_int8 ? !W.qp : !W.wp)) {
        st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < 2; i++) { // warm-up
        be->linear(y, x, &W, b, M);
        seslm_sparse24_linear_fast(y, x, sp, b, M, N, K);
    }
    for (int i = 0; i < repeats; i++) { // interleaved: both see the same machine state
        double t0 = now_ms();
        be->linear(y, x, &W, b, M);
        double t1 = now_ms();
        seslm_sparse24_linear_fast(y, x, sp, b, M, N, K);
        double t2 = now_ms();
        td[i] = t1 - t0, ts[i] = t2 - t1;
    }
    summarize(td, repeats, &t->dense_ms, &t->dense_spread);
    summarize(ts, repeats, &t->sparse_ms, &t->sparse_spread);
done:
    free(w), free(x), free(y), free(b), free(vals), free(sc), free(idx), free(q), free(td), free(ts), free(sp);
    free(W.wp), free(W.qp), free(W.qsum);
    return st;
}
