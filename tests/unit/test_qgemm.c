/* test_qgemm.c — INT8 products: the fast kernels (AVX-512 VNNI and AVX2 where the CPU has them, and the portable C
 * kernel) against the plain-C reference, int32 sums bit for bit, on shapes that hit every edge of the
 * 4-row x 64-column tiles; outputs poisoned first so an unwritten element fails. Then the fused
 * dequantization (float, abs + rel tolerance, NaN never passes), the quantizers, and both backends'
 * INT8 linear op against an explicit reconstruction. */
#include "backend.h"
#include "quant.h"
#include "test.h"

#include <stdint.h>

static uint64_t rng = 0x243F6A8885A308D3ull;
static uint32_t urand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}
static float frand(void) { return (float)(urand() >> 8) * (1.0f / (1 << 24)) * 2.0f - 1.0f; }

/* Values in [lo, hi]; extremes forced at a few places so saturation-prone sums are exercised. */
static int8_t *rand_i8(size_t n, int lo, int hi) {
    int8_t *p = malloc(n + 1);
    for (size_t i = 0; i < n; i++) p[i] = (int8_t)(lo + (int)(urand() % (uint32_t)(hi - lo + 1)));
    for (size_t i = 0; i < n; i += 7) p[i] = (int8_t)((i / 7) % 2 ? hi : lo);
    return p;
}

static void check_exact(int M, int N, int K, const char *isa, int lo, int hi) {
    const int lda = (K + 3) & ~3;
    int8_t *qa = rand_i8((size_t)M * K, -127, 127), *qw = rand_i8((size_t)N * K, lo, hi);
    int8_t *qa_pad = calloc((size_t)M * lda + 1, 1);
    for (int m = 0; m < M; m++) memcpy(qa_pad + (size_t)m * lda, qa + (size_t)m * K, (size_t)K);
    int32_t *want = malloc((size_t)M * N * sizeof *want), *got = malloc((size_t)M * N * sizeof *got), *cs = NULL;
    for (size_t i = 0; i < (size_t)M * N; i++) got[i] = 0x7f7f7f7f; // poison
    seslm_qgemm_ref(want, qa, qw, M, N, K);
    int8_t *qp = seslm_qweight_pack(qw, N, K, &cs);
    CHECK(qp && cs);
    seslm_qgemm_fast(got, NULL, qa_pad, lda, NULL, qp, cs, NULL, NULL, M, N, K, isa);
    size_t bad = 0;
    for (size_t i = 0; i < (size_t)M * N; i++) bad += got[i] != want[i];
    CHECK_MSG(bad == 0, "%s M=%d N=%d K=%d w in [%d,%d]: %zu of %d int32 sums differ (first: got %d want %d)", isa, M,
              N, K, lo, hi, bad, M * N, got[0], want[0]);
    free(qa), free(qw), free(qa_pad), free(want), free(got), free(qp), free(cs);
}

// fused dequantization: y = acc * sa * sw + b against the same formula in double
static void check_dequant(int M, int N, int K, const char *isa) {
    const int lda = (K + 3) & ~3;
    int8_t *qa = rand_i8((size_t)M * lda, -127, 127), *qw = rand_i8((size_t)N * K, -127, 127);
    for (int m = 0; m < M; m++) memset(qa + (size_t)m * lda + K, 0, (size_t)(lda - K));
    float *sa = malloc((size_t)M * sizeof *sa), *sw = malloc((size_t)N * sizeof *sw), *b = malloc((size_t)N * sizeof *b);
    for (int m = 0; m < M; m++) sa[m] = 0.01f + 0.02f * (frand() + 1.0f);
    for (int n = 0; n < N; n++) sw[n] = 0.001f + 0.002f * (frand() + 1.0f), b[n] = frand();
    int32_t *acc = malloc((size_t)M * N * sizeof *acc), *cs = NULL;
    int8_t *qa_k = malloc((size_t)M * K + 1);
    for (int m = 0; m < M; m++) memcpy(qa_k + (size_t)m * K, qa + (size_t)m * lda, (size_t)K);
    seslm_qgemm_ref(acc, qa_k, qw, M, N, K);
    int8_t *qp = seslm_qweight_pack(qw, N, K, &cs);
    float *y = malloc((size_t)M * N * sizeof *y);
    for (size_t i = 0; i < (size_t)M * N; i++) y[i] = NAN;
    seslm_qgemm_fast(NULL, y, qa, lda, sa, qp, cs, sw, b, M, N, K, isa);
    size_t bad = 0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            const double want = (double)acc[(size_t)m * N + n] * sa[m] * sw[n] + b[n];
            const float g = y[(size_t)m * N + n];
            bad += !(isfinite(g) && fabs(g - want) <= 1e-5 + 1e-5 * fabs(want));
        }
    CHECK_MSG(bad == 0, "%s dequant M=%d N=%d K=%d: %zu elements off", isa, M, N, K, bad);
    free(qa), free(qw), free(sa), free(sw), free(b), free(acc), free(cs), free(qa_k), free(qp), free(y);
}

// the vectorised quantizer gives the portable one's bytes and scales exactly (ties included)
static void check_quantizer_paths(int M, int K) {
    const int ldq = (K + 3) & ~3;
    float *x = malloc((size_t)M * K * sizeof *x), s0[64], s1[64];
    int8_t *a = malloc((size_t)M * ldq + 1), *b = malloc((size_t)M * ldq + 1);
    for (size_t i = 0; i < (size_t)M * K; i++) x[i] = frand() * 4;
    for (int m = 0; m < M; m++) {
        x[(size_t)m * K] = 127.0f / 16; // with another element at -127/16 ... (scale 1/16):
        if (K > 2) x[(size_t)m * K + 1] = 2.5f / 16, x[(size_t)m * K + 2] = -0.5f / 16; // exact ties
        if (m % 3 == 1) for (int k = 0; k < K; k++) x[(size_t)m * K + k] = k % 2 ? 127.0f / 16 : -127.0f / 16;
    }
    if (M > 2) memset(x + 2 * (size_t)K, 0, (size_t)K * sizeof *x); // a zero row
    seslm_quantize_rows(a, s0, x, M, K, ldq);
    seslm_quantize_rows_portable(b, s1, x, M, K, ldq);
    CHECK_MSG(memcmp(a, b, (size_t)M * ldq) == 0 && memcmp(s0, s1, (size_t)M * sizeof *s0) == 0,
              "quantize_rows M=%d K=%d: vectorised and portable differ", M, K);
    free(x), free(a), free(b);
}

static void check_quantizers(void) {
    // ties round to even, the largest |x| maps to +-127, a zero row gets scale 0 and zeros
    const float x[2][6] = {{127.0f, -127.0f, 0.5f, 1.5f, 2.5f, -0.5f}, {0, 0, 0, 0, 0, 0}};
    int8_t q[2][8];
    float s[2];
    memset(q, 0x55, sizeof q);
    seslm_quantize_rows(&q[0][0], s, &x[0][0], 2, 6, 8);
    CHECK(s[0] == 1.0f && s[1] == 0.0f);
    CHECK(q[0][0] == 127 && q[0][1] == -127 && q[0][2] == 0 && q[0][3] == 2 && q[0][4] == 2 && q[0][5] == 0);
    CHECK(q[0][6] == 0 && q[0][7] == 0); // padding zeroed
    for (int k = 0; k < 8; k++) CHECK(q[1][k] == 0);
    // a row with a NaN is poisoned (scale NaN), never silently finite
    const float xn[3] = {1.0f, NAN, 2.0f};
    int8_t qn[4];
    float sn;
    seslm_quantize_rows(qn, &sn, xn, 1, 3, 4);
    CHECK(isnan(sn));
    // weights: dequantized values within half a step of the originals
    enum { N = 5, K = 33 };
    float w[N * K], sw[N];
    int8_t qw[N * K];
    for (int i = 0; i < N * K; i++) w[i] = frand() * (1 + i % 3);
    float worst = seslm_quantize_weight(qw, sw, w, N, K);
    CHECK(worst <= 0.5f / 127.0f + 1e-6f);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) CHECK(fabsf(qw[n * K + k] * sw[n] - w[n * K + k]) <= 0.5f * sw[n] * 1.0001f);
}

// both backends' linear op on INT8 weights against quantize -> exact sums -> dequantize written out here
static void check_backend_linear(int M, int N, int K) {
    float *x = malloc((size_t)M * K * sizeof *x), *w = malloc((size_t)N * K * sizeof *w), *b = malloc((size_t)N * sizeof *b);
    for (size_t i = 0; i < (size_t)M * K; i++) x[i] = frand() * 3;
    for (size_t i = 0; i < (size_t)N * K; i++) w[i] = frand() * 0.1f;
    for (int n = 0; n < N; n++) b[n] = frand();
    int8_t *qw = malloc((size_t)N * K), *qa = malloc((size_t)M * K);
    float *sw = malloc((size_t)N * sizeof *sw), *sa = malloc((size_t)M * sizeof *sa);
    seslm_quantize_weight(qw, sw, w, N, K);
    seslm_quantize_rows(qa, sa, x, M, K, K);
    int32_t *acc = malloc((size_t)M * N * sizeof *acc);
    seslm_qgemm_ref(acc, qa, qw, M, N, K);
    seslm_weight W = {.N = N, .K = K, .q = qw, .qscale = sw};
    seslm_weight Wp = W;
    Wp.qp = seslm_qweight_pack(qw, N, K, &Wp.qsum);
    const seslm_backend *bes[2] = {seslm_backend_cpu_ref(), seslm_backend_cpu_fast()};
    float *y = malloc((size_t)M * N * sizeof *y);
    for (int i = 0; i < 3; i++) {
        const seslm_backend *be = bes[i ? 1 : 0];
        for (size_t j = 0; j < (size_t)M * N; j++) y[j] = NAN;
        be->linear(y, x, i == 2 ? &Wp : &W, b, M);
        size_t bad = 0;
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                const double want = (double)acc[(size_t)m * N + n] * sa[m] * sw[n] + b[n];
                bad += !(isfinite(y[(size_t)m * N + n]) && fabs(y[(size_t)m * N + n] - want) <= 1e-5 + 1e-5 * fabs(want));
            }
        CHECK_MSG(bad == 0, "%s linear (%s) M=%d N=%d K=%d: %zu elements off", be->name, i == 2 ? "packed" : "plain",
                  M, N, K, bad);
        if (!be->linear_gelu) continue;
        // fused GELU (on each finished tile): the same sums, then 0.5 v (1 + erf(v / sqrt 2)) in double
        for (size_t j = 0; j < (size_t)M * N; j++) y[j] = NAN;
        be->linear_gelu(y, x, i == 2 ? &Wp : &W, b, M);
        bad = 0;
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                const double v = (double)acc[(size_t)m * N + n] * sa[m] * sw[n] + b[n];
                const double want = 0.5 * v * (1.0 + erf(v * 0.70710678118654752));
                bad += !(isfinite(y[(size_t)m * N + n]) && fabs(y[(size_t)m * N + n] - want) <= 1e-5 + 1e-5 * fabs(want));
            }
        CHECK_MSG(bad == 0, "%s linear_gelu (%s) M=%d N=%d K=%d: %zu elements off", be->name,
                  i == 2 ? "packed" : "plain", M, N, K, bad);
    }
    free(x), free(w), free(b), free(qw), free(qa), free(sw), free(sa), free(acc), free(y), free(Wp.qp), free(Wp.qsum);
}

// the fused pair (layer norm that also quantizes its rows, then the product from those bytes) against the
// unfused ops: bit for bit, with and without GELU, and the row padding zeroed
static void check_fused_q8(int M, int N, int C) {
    const seslm_backend *fast = seslm_backend_cpu_fast();
    if (!fast->add_layernorm_q8 || !fast->linear_q8in) {
        CHECK_MSG(0, "the fast backend has no fused INT8 ops");
        return;
    }
    const int ldq = (C + 3) & ~3;
    float *x0 = malloc((size_t)M * C * sizeof *x0), *x1 = malloc((size_t)M * C * sizeof *x1);
    float *r = malloc((size_t)M * C * sizeof *r), *g = malloc((size_t)C * sizeof *g), *bt = malloc((size_t)C * sizeof *bt);
    float *w = malloc((size_t)N * C * sizeof *w), *b = malloc((size_t)N * sizeof *b), *sw = malloc((size_t)N * sizeof *sw);
    for (size_t i = 0; i < (size_t)M * C; i++) x0[i] = x1[i] = frand() * 2, r[i] = frand();
    for (int c = 0; c < C; c++) g[c] = 1 + frand() * 0.5f, bt[c] = frand() * 0.1f;
    for (size_t i = 0; i < (size_t)N * C; i++) w[i] = frand() * 0.1f;
    for (int n = 0; n < N; n++) b[n] = frand();
    int8_t *qw = malloc((size_t)N * C), *q = malloc((size_t)M * ldq);
    float *s = malloc((size_t)M * sizeof *s);
    memset(q, 0x55, (size_t)M * ldq); // poison: padding must come back zero
    for (int m = 0; m < M; m++) s[m] = NAN;
    seslm_quantize_weight(qw, sw, w, N, C);
    seslm_weight W = {.N = N, .K = C, .q = qw, .qscale = sw};
    W.qp = seslm_qweight_pack(qw, N, C, &W.qsum);
    fast->add_layernorm(x0, r, g, bt, M, C, 1e-12f);
    fast->add_layernorm_q8(x1, r, g, bt, M, C, 1e-12f, q, s, ldq);
    CHECK_MSG(memcmp(x0, x1, (size_t)M * C * sizeof *x0) == 0, "add_layernorm_q8 M=%d C=%d: normalised rows differ", M, C);
    int8_t *q0 = malloc((size_t)M * ldq);
    float *s0 = malloc((size_t)M * sizeof *s0);
    seslm_quantize_rows(q0, s0, x0, M, C, ldq);
    CHECK_MSG(memcmp(q, q0, (size_t)M * ldq) == 0 && memcmp(s, s0, (size_t)M * sizeof *s) == 0,
              "add_layernorm_q8 M=%d C=%d: quantized rows differ from seslm_quantize_rows", M, C);
    if (M >= 3) { // a NaN and an infinity in the input: those rows' scales NaN and bytes 0, as unfused
        float *xa = malloc((size_t)M * C * sizeof *xa), *xb = malloc((size_t)M * C * sizeof *xb);
        int8_t *qa = malloc((size_t)M * ldq), *qb = malloc((size_t)M * ldq);
        float *sa = malloc((size_t)M * sizeof *sa), *sb = malloc((size_t)M * sizeof *sb);
        for (size_t i = 0; i < (size_t)M * C; i++) xa[i] = xb[i] = frand();
        xa[C + C / 2] = xb[C + C / 2] = NAN;
        xa[2 * C + 1] = xb[2 * C + 1] = INFINITY;
        memset(qb, 0x55, (size_t)M * ldq);
        fast->add_layernorm(xa, r, g, bt, M, C, 1e-12f);
        seslm_quantize_rows(qa, sa, xa, M, C, ldq);
        fast->add_layernorm_q8(xb, r, g, bt, M, C, 1e-12f, qb, sb, ldq);
        CHECK_MSG(memcmp(qa, qb, (size_t)M * ldq) == 0 && isnan(sb[1]) && isnan(sb[2]) && sb[0] == sa[0],
                  "add_layernorm_q8 M=%d C=%d: non-finite rows differ from the unfused pair", M, C);
        free(xa), free(xb), free(qa), free(qb), free(sa), free(sb);
    }
    float *y0 = malloc((size_t)M * N * sizeof *y0), *y1 = malloc((size_t)M * N * sizeof *y1);
    for (int gelu = 0; gelu < 2; gelu++) {
        for (size_t i = 0; i < (size_t)M * N; i++) y1[i] = NAN;
        if (gelu) fast->linear_gelu(y0, x0, &W, b, M);
        else fast->linear(y0, x0, &W, b, M);
        fast->linear_q8in(y1, q, s, ldq, &W, b, M, gelu);
        CHECK_MSG(memcmp(y0, y1, (size_t)M * N * sizeof *y0) == 0, "linear_q8in M=%d N=%d C=%d gelu=%d: differs", M, N, C,
                  gelu);
        if (!gelu) continue;
        // GELU inside the tiles' registers = the product, then the element-wise GELU pass, bit for bit
        fast->linear(y1, x0, &W, b, M);
        fast->gelu(y1, (size_t)M * N);
        CHECK_MSG(memcmp(y0, y1, (size_t)M * N * sizeof *y0) == 0, "linear_gelu M=%d N=%d C=%d: differs from linear + gelu",
                  M, N, C);
    }
    // GELU output quantized by the tiles for the next product: y, bytes and scales as the unfused pair; then
    // a NaN bias column poisons every row (scales NaN, bytes 0 in both)
    const int ldn = (N + 3) & ~3;
    int8_t *qy0 = malloc((size_t)M * ldn), *qy1 = malloc((size_t)M * ldn);
    float *sy0 = malloc((size_t)M * sizeof *sy0), *sy1 = malloc((size_t)M * sizeof *sy1);
    for (int pass = 0; pass < 2; pass++) {
        if (pass) b[N / 2] = NAN;
        fast->linear_q8in(y0, q, s, ldq, &W, b, M, 1);
        seslm_quantize_rows(qy0, sy0, y0, M, N, ldn);
        for (size_t i = 0; i < (size_t)M * N; i++) y1[i] = NAN;
        memset(qy1, 0x55, (size_t)M * ldn);
        for (int m = 0; m < M; m++) sy1[m] = -1.0f;
        fast->linear_gelu_q8out(y1, qy1, sy1, ldn, q, s, ldq, &W, b, M);
        CHECK_MSG(memcmp(y0, y1, (size_t)M * N * sizeof *y0) == 0, "linear_gelu_q8out M=%d N=%d pass %d: y differs", M, N,
                  pass);
        CHECK_MSG(memcmp(qy0, qy1, (size_t)M * ldn) == 0 && memcmp(sy0, sy1, (size_t)M * sizeof *sy0) == 0,
                  "linear_gelu_q8out M=%d N=%d pass %d: quantized rows differ from seslm_quantize_rows", M, N, pass);
        if (pass) CHECK_MSG(isnan(sy1[0]) && isnan(sy1[M - 1]), "a NaN row must get a NaN scale");
    }
    free(qy0), free(qy1), free(sy0), free(sy1);
    free(x0), free(x1), free(r), free(g), free(bt), free(w), free(b), free(sw), free(qw), free(q), free(s), free(q0);
    free(s0), free(y0), free(y1), free(W.qp), free(W.qsum);
}

/* seslm_qgemm_fast_gelu on one kernel: y as the post-function path with the backend's GELU, and rowmax the
 * bits of each row's max |y|, found by scanning. */
static void check_qgemm_gelu(int M, int N, int K, const char *isa) {
    const seslm_backend *fast = seslm_backend_cpu_fast();
    const int lda = (K + 3) & ~3;
    int8_t *qa = rand_i8((size_t)M * lda, -127, 127), *qw = rand_i8((size_t)N * K, -127, 127);
    float *sa = malloc((size_t)M * sizeof *sa), *sw = malloc((size_t)N * sizeof *sw), *b = malloc((size_t)N * sizeof *b);
    for (int m = 0; m < M; m++) sa[m] = 1e-4f * (1 + (float)(urand() % 100));
    for (int n = 0; n < N; n++) sw[n] = 1e-3f * (1 + (float)(urand() % 100)), b[n] = frand();
    int32_t *cs = NULL;
    int8_t *qp = seslm_qweight_pack(qw, N, K, &cs);
    float *y0 = malloc((size_t)M * N * sizeof *y0), *y1 = malloc((size_t)M * N * sizeof *y1);
    uint32_t *mx = malloc((size_t)M * sizeof *mx);
    for (size_t i = 0; i < (size_t)M * N; i++) y1[i] = NAN;
    for (int m = 0; m < M; m++) mx[m] = 0xdeadbeefu; // poison: the call must reset it
    seslm_qgemm_fast_post(NULL, y0, qa, lda, sa, qp, cs, sw, b, M, N, K, isa, fast->gelu);
    seslm_qgemm_fast_gelu(y1, mx, qa, lda, sa, qp, cs, sw, b, M, N, K, isa, fast->gelu);
    CHECK_MSG(memcmp(y0, y1, (size_t)M * N * sizeof *y0) == 0, "qgemm_fast_gelu %s M=%d N=%d K=%d: y differs", isa, M, N, K);
    int bad = 0;
    for (int m = 0; m < M; m++) {
        float want = 0;
        for (int n = 0; n < N; n++) want = fabsf(y0[(size_t)m * N + n]) > want ? fabsf(y0[(size_t)m * N + n]) : want;
        float got;
        memcpy(&got, mx + m, 4);
        bad += got != want;
    }
    CHECK_MSG(bad == 0, "qgemm_fast_gelu %s M=%d N=%d K=%d: %d row maxima wrong", isa, M, N, K, bad);
    free(qa), free(qw), free(sa), free(sw), free(b), free(cs), free(qp), free(y0), free(y1), free(mx);
}

// ---- each token's largest element kept in float (quant.h seslm_quantize_rows_top1) ----------------------

// hand-worked rows: the outlier split off, the rest on the second largest's step; the first of two equal
// maxima; a row that is its maximum alone; zero and poisoned rows
static void check_top1_quantizer(void) {
    const float x[5][4] = {{0.5f, -40.0f, 1.0f, -0.25f}, {3.0f, -3.0f, 1.0f, 0.0f}, {0.0f, 0.0f, 5.0f, 0.0f},
                           {0.0f, 0.0f, 0.0f, 0.0f}, {1.0f, NAN, 2.0f, 0.0f}};
    int8_t q[5][8];
    float s[5], tv[5];
    int32_t ti[5];
    memset(q, 0x55, sizeof q); // poison: every byte must be written, the padding included
    seslm_quantize_rows_top1(&q[0][0], s, ti, tv, &x[0][0], 5, 4, 8);
    // row 0: t = 1 (top -40), amax 1: 0.5 * 127 = 63.5 -> 64 (half to even), 127, -31.75 -> -32
    const int8_t w0[8] = {64, 0, 127, -32, 0, 0, 0, 0}, w1[8] = {0, -127, 42, 0, 0, 0, 0, 0};
    CHECK(ti[0] == 1 && tv[0] == -40.0f && s[0] == 1.0f / 127.0f && memcmp(q[0], w0, 8) == 0);
    // row 1: |3| twice: the first is t; the other sets the step (3 / 127)
    CHECK_MSG(ti[1] == 0 && tv[1] == 3.0f && s[1] == 3.0f / 127.0f && memcmp(q[1], w1, 8) == 0,
              "tie: t %d, q %d %d %d", ti[1], q[1][0], q[1][1], q[1][2]);
    CHECK(ti[2] == 2 && tv[2] == 5.0f && s[2] == 0.0f); // the row is its top alone: nothing left to quantize
    CHECK(tv[3] == 0.0f && s[3] == 0.0f);
    CHECK(isnan(s[4]) && tv[4] == 0.0f); // poisoned: the product's scale is NaN, never a finite number
    for (int m = 2; m < 5; m++)
        for (int k = 0; k < 8; k++) CHECK_MSG(q[m][k] == 0, "row %d byte %d not zero", m, k);
}

// the vectorised top1 quantizer gives the portable one's bytes, scales, indices and values exactly: random rows,
// rows with a massive channel anywhere (the vector body, the tail), ties for the maximum, zero rows
static void check_top1_paths(int M, int K) {
    const int ldq = ((K + 3) & ~3) + 4; // padding past K: zeroed
    float *x = malloc((size_t)M * K * sizeof *x), *s0 = malloc(M * sizeof *s0), *s1 = malloc(M * sizeof *s1);
    float *v0 = malloc(M * sizeof *v0), *v1 = malloc(M * sizeof *v1);
    int32_t *i0 = malloc(M * sizeof *i0), *i1 = malloc(M * sizeof *i1);
    int8_t *a = malloc((size_t)M * ldq + 1), *b = malloc((size_t)M * ldq + 1);
    for (size_t i = 0; i < (size_t)M * K; i++) x[i] = frand() * 4;
    for (int m = 0; m < M; m++) {
        float *r = x + (size_t)m * K;
        if (m % 4 == 1) r[(m * 5) % K] = 90.0f;                          // massive
        if (m % 4 == 2) r[K - 1] = -90.0f, r[(m * 3) % K] = 90.0f;       // a tie (the earlier wins)
        if (m % 4 == 3) r[m % K] = (float)(m % 5) - 2.0f, r[K / 2] = 2.0f; // small ties
        if (m == M - 1 && M > 2) memset(r, 0, (size_t)K * sizeof *r);
    }
    memset(a, 0x33, (size_t)M * ldq), memset(b, 0x44, (size_t)M * ldq);
    seslm_quantize_rows_top1(a, s0, i0, v0, x, M, K, ldq);
    seslm_quantize_rows_top1_portable(b, s1, i1, v1, x, M, K, ldq);
    CHECK_MSG(memcmp(a, b, (size_t)M * ldq) == 0 && memcmp(s0, s1, M * sizeof *s0) == 0 &&
                  memcmp(i0, i1, M * sizeof *i0) == 0 && memcmp(v0, v1, M * sizeof *v0) == 0,
              "quantize_rows_top1 M=%d K=%d: vectorised and portable differ", M, K);
    free(x), free(s0), free(s1), free(v0), free(v1), free(i0), free(i1), free(a), free(b);
}

// the fast product of top1 activations (packed weights, every kernel, with and without GELU) and both
// backends' linear op on act_top1 weights, against the reference written out: quantize_rows_top1 ->
// exact sums -> dequantize -> + x_t * (s_w * w[:, t]), in double; inputs with a massive channel per row
static void check_top1_linear(int M, int N, int K, const char *isa) {
    float *x = malloc((size_t)M * K * sizeof *x), *w = malloc((size_t)N * K * sizeof *w), *b = malloc((size_t)N * sizeof *b);
    for (size_t i = 0; i < (size_t)M * K; i++) x[i] = frand();
    for (int m = 0; m < M; m++) x[(size_t)m * K + (m * 7) % K] = (m % 2 ? -60.0f : 45.0f) * (1.0f + frand() * 0.1f);
    for (size_t i = 0; i < (size_t)N * K; i++) w[i] = frand() * 0.1f;
    for (int n = 0; n < N; n++) b[n] = frand();
    const int lda = (K + 3) & ~3;
    int8_t *qw = malloc((size_t)N * K), *qa = malloc((size_t)M * lda + 1), *qk = malloc((size_t)M * K + 1);
    float *sw = malloc((size_t)N * sizeof *sw), *sa = malloc((size_t)M * sizeof *sa), *tv = malloc((size_t)M * sizeof *tv);
    int32_t *ti = malloc((size_t)M * sizeof *ti), *acc = malloc((size_t)M * N * sizeof *acc);
    seslm_quantize_weight(qw, sw, w, N, K);
    seslm_quantize_rows_top1(qa, sa, ti, tv, x, M, K, lda);
    for (int m = 0; m < M; m++) {
        CHECK(ti[m] == (m * 7) % K && tv[m] == x[(size_t)m * K + ti[m]] && qa[(size_t)m * lda + ti[m]] == 0);
        memcpy(qk + (size_t)m * K, qa + (size_t)m * lda, (size_t)K);
    }
    seslm_qgemm_ref(acc, qk, qw, M, N, K);
    double *want = malloc((size_t)M * N * sizeof *want);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++)
            want[(size_t)m * N + n] = (double)acc[(size_t)m * N + n] * sa[m] * sw[n] + b[n] +
                                      (double)tv[m] * sw[n] * qw[(size_t)n * K + ti[m]];
    seslm_weight W = {.N = N, .K = K, .q = qw, .qscale = sw, .act_top1 = 1};
    seslm_weight Wp = W;
    Wp.qp = seslm_qweight_pack(qw, N, K, &Wp.qsum);
    float *y = malloc((size_t)M * N * sizeof *y);
    for (int gelu = 0; gelu < 2; gelu++) { // the kernel: top terms on each tile, then GELU
        for (size_t j = 0; j < (size_t)M * N; j++) y[j] = NAN;
        seslm_qgemm_fast_top1(y, qa, lda, sa, ti, tv, Wp.qp, Wp.qsum, sw, b, M, N, K, isa,
                              gelu ? seslm_backend_cpu_fast()->gelu : NULL);
        size_t bad = 0;
        for (size_t j = 0; j < (size_t)M * N; j++) {
            const double v = want[j], e = gelu ? 0.5 * v * (1.0 + erf(v * 0.70710678118654752)) : v;
            bad += !(isfinite(y[j]) && fabs(y[j] - e) <= 1e-5 + 1e-5 * fabs(e));
        }
        CHECK_MSG(bad == 0, "%s qgemm_fast_top1%s M=%d N=%d K=%d: %zu elements off", isa, gelu ? " + gelu" : "", M, N,
                  K, bad);
    }
    const seslm_backend *bes[2] = {seslm_backend_cpu_ref(), seslm_backend_cpu_fast()};
    for (int i = 0; i < 3; i++) {
        const seslm_backend *be = bes[i ? 1 : 0];
        for (size_t j = 0; j < (size_t)M * N; j++) y[j] = NAN;
        be->linear(y, x, i == 2 ? &Wp : &W, b, M);
        size_t bad = 0;
        for (size_t j = 0; j < (size_t)M * N; j++) bad += !(isfinite(y[j]) && fabs(y[j] - want[j]) <= 1e-5 + 1e-5 * fabs(want[j]));
        CHECK_MSG(bad == 0, "%s linear top1 (%s) M=%d N=%d K=%d: %zu elements off", be->name, i == 2 ? "packed" : "plain",
                  M, N, K, bad);
    }
    // the point of it: with the massive channel split off, the rest of each row keeps its resolution
    double err_top1 = 0, err_tok = 0;
    int8_t *qt = malloc((size_t)M * K + 1);
    float *st = malloc((size_t)M * sizeof *st);
    seslm_quantize_rows(qt, st, x, M, K, K);
    for (int m = 0; m < M; m++)
        for (int k = 0; k < K; k++) {
            const double v = x[(size_t)m * K + k];
            const double a = k == ti[m] ? tv[m] : qa[(size_t)m * lda + k] * (double)sa[m];
            err_top1 += (a - v) * (a - v), err_tok += (qt[(size_t)m * K + k] * (double)st[m] - v) * (qt[(size_t)m * K + k] * (double)st[m] - v);
        }
    CHECK_MSG(K < 8 || err_top1 * 100 < err_tok, "top1 rounding error %.3g not far below per token's %.3g", err_top1, err_tok);
    free(qt), free(st);
    free(x), free(w), free(b), free(qw), free(qa), free(qk), free(sw), free(sa), free(tv), free(ti), free(acc), free(want);
    free(y), free(Wp.qp), free(Wp.qsum);
}

int main(void) {
    const int Ms[] = {1, 3, 4, 5, 12, 33}, Ns[] = {1, 15, 16, 17, 40, 64, 65, 100, 384}, Ks[] = {1, 3, 4, 5, 32, 384, 1536};
    seslm_backend_cpu_fast()->set_threads(2); // the pooled paths (tiles, quantized rows) on two threads
    // every kernel this CPU can run: the best one's list is a prefix-ordered chain (VNNI CPUs have AVX2)
    const char *isas[3] = {"c", "avx2", "avx512vnni"}, *best = seslm_qgemm_isa();
    const int nisa = strcmp(best, "avx512vnni") == 0 ? 3 : strcmp(best, "avx2") == 0 ? 2 : 1;
    printf("note: INT8 kernels checked: %s%s%s\n", isas[0], nisa > 1 ? ", avx2" : "", nisa > 2 ? ", avx512vnni" : "");
    for (int i = 0; i < nisa; i++)
        for (size_t a = 0; a < sizeof Ms / sizeof *Ms; a++)
            for (size_t bn = 0; bn < sizeof Ns / sizeof *Ns; bn++)
                for (size_t c = 0; c < sizeof Ks / sizeof *Ks; c++) check_exact(Ms[a], Ns[bn], Ks[c], isas[i], -127, 127);
    for (int i = 0; i < nisa; i++) {
        check_exact(7, 40, 1536, isas[i], -128, 127); // -128 weights: the full int8 range stays exact
        check_exact(5, 33, 1536, isas[i], -128, -128);
        check_exact(64, 1152, 384, isas[i], -127, 127); // the model's fused QKV shape
        check_dequant(13, 1536, 384, isas[i]);
        check_dequant(2, 17, 5, isas[i]);
        check_qgemm_gelu(1, 17, 8, isas[i]);
        check_qgemm_gelu(37, 1229, 384, isas[i]); // pooled tiles, a pruned FFN width (1-panel edge block)
        check_qgemm_gelu(13, 100, 64, isas[i]);   // a 3-panel edge block
        check_qgemm_gelu(23, 200, 96, isas[i]);   // row-edge tiles of 5, per-thread row maxima merged
        check_qgemm_gelu(64, 1229, 384, isas[i]); // 4 row edge; enough work for both threads
    }
    for (int i = 0; i < nisa; i++) {
        check_top1_linear(1, 17, 8, isas[i]);
        check_top1_linear(37, 1229, 384, isas[i]); // pooled tiles, edge panels
        check_top1_linear(70, 384, 1536, isas[i]); // quantized over the pool's threads
    }
    check_top1_quantizer();
    check_top1_paths(9, 384);
    check_top1_paths(12, 37);
    check_top1_paths(5, 1);
    check_top1_paths(3, 7);
    check_top1_paths(64, 1536);
    check_quantizers();
    check_quantizer_paths(5, 384);
    check_quantizer_paths(7, 37);
    check_quantizer_paths(3, 1);
    check_quantizer_paths(64, 1536);
    check_backend_linear(1, 16, 4);
    check_backend_linear(130, 70, 37); // activations quantized over the pool's threads (M >= 64), edge tiles
    check_fused_q8(5, 40, 33);
    check_fused_q8(130, 1215, 384); // pooled rows, a pruned FFN width (edge panels)
    check_backend_linear(9, 70, 37);
    check_backend_linear(40, 384, 1536);
    return test_report("test_qgemm");
}
