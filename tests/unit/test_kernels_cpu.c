/* test_kernels_cpu.c — every op of the fast CPU backend against the plain-C reference, on random
 * inputs of several shapes including ragged batches. Outputs are poisoned with NaN before each call so
 * an unwritten element fails; NaN never passes the comparison. FP32 tolerance: |a-b| <= atol + rtol*|b|. */
#include "backend.h"
#include "test.h"
#include "../kernels/cpu/mathfun.h"

#include <stdint.h>
#ifdef SESLM_HAVE_OPENBLAS_TEST
#include <cblas.h>
#endif

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void) { // uniform in [-1, 1)
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / (1 << 24))) * 2.0f - 1.0f;
}
static float *rand_buf(size_t n, float scale) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = frand() * scale;
    return p;
}
static float *poison_buf(size_t n) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

/* Compares n floats; returns 1 when every element is finite and within atol + rtol*|ref|. */
static int close_enough(const char *what, const float *got, const float *ref, size_t n, float atol, float rtol) {
    size_t bad = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        int ok = isfinite(got[i]) && isfinite(ref[i]) && d <= atol + rtol * fabs(ref[i]);
        if (!ok) {
            if (bad < 3) fprintf(stderr, "  %s[%zu]: got %.9g want %.9g\n", what, i, got[i], ref[i]);
            bad++;
        }
        if (d > worst || !isfinite(d)) worst = isfinite(d) ? d : INFINITY;
    }
    if (bad) fprintf(stderr, "  %s: %zu of %zu elements off (worst %.3g)\n", what, bad, n, worst);
    return bad == 0;
}

static const seslm_backend *ref, *fast;

// ---- ops -----------------------------------------------------------------------------------------

static void test_linear(int M, int N, int K, int with_bias) {
    float *x = rand_buf((size_t)M * K, 1), *w = rand_buf((size_t)N * K, 0.5f), *b = with_bias ? rand_buf(N, 1) : NULL;
    float *y0 = poison_buf((size_t)M * N), *y1 = poison_buf((size_t)M * N), *wp = seslm_weight_pack32(w, N, K);
    size_t misplaced = 0; // the packed layout, element by element, and zero padding past N
    for (int n = 0; n < (N + 31) / 32 * 32; n++)
        for (int k = 0; k < K; k++)
            misplaced += wp[((size_t)(n / 32) * K + k) * 32 + n % 32] != (n < N ? w[(size_t)n * K + k] : 0.0f);
    CHECK_MSG(misplaced == 0, "pack32 N=%d K=%d: %zu elements misplaced", N, K, misplaced);
    seslm_weight W = {.w = w, .wp = NULL, .N = N, .K = K}, Wt = {.w = w, .wp = wp, .N = N, .K = K};
    ref->linear(y0, x, &W, b, M);
    fast->linear(y1, x, &W, b, M); // BLAS on W as stored
    CHECK_MSG(close_enough("linear", y1, y0, (size_t)M * N, 1e-4f, 1e-4f), "M=%d N=%d K=%d bias=%d", M, N, K,
              with_bias);
    for (size_t i = 0; i < (size_t)M * N; i++) y1[i] = NAN;
    fast->linear(y1, x, &Wt, b, M); // small-batch kernel on the packed panels (M <= 32), else BLAS
    CHECK_MSG(close_enough("linear packed", y1, y0, (size_t)M * N, 1e-4f, 1e-4f), "M=%d N=%d K=%d bias=%d", M, N, K,
              with_bias);
    // fused linear + GELU (GELU on each finished panel) against the reference's two ops
    ref->gelu(y0, (size_t)M * N);
    for (int packed = 0; packed < 2; packed++) {
        for (size_t i = 0; i < (size_t)M * N; i++) y1[i] = NAN;
        fast->linear_gelu(y1, x, packed ? &Wt : &W, b, M);
        CHECK_MSG(close_enough("linear_gelu", y1, y0, (size_t)M * N, 1e-4f, 1e-4f), "M=%d N=%d K=%d bias=%d packed=%d",
                  M, N, K, with_bias, packed);
    }
    free(wp);
    free(x), free(w), free(b), free(y0), free(y1);
}

static void test_layernorm(int M, int C, int with_res) {
    float *x0 = rand_buf((size_t)M * C, 3), *r = with_res ? rand_buf((size_t)M * C, 1) : NULL;
    float *g = rand_buf(C, 1), *bt = rand_buf(C, 1);
    float *x1 = malloc((size_t)M * C * sizeof *x1);
    memcpy(x1, x0, (size_t)M * C * sizeof *x1);
    ref->add_layernorm(x0, r, g, bt, M, C, 1e-12f);
    fast->add_layernorm(x1, r, g, bt, M, C, 1e-12f);
    CHECK_MSG(close_enough("layernorm", x1, x0, (size_t)M * C, 1e-5f, 1e-5f), "M=%d C=%d", M, C);
    free(x0), free(x1), free(r), free(g), free(bt);
}

static void test_gelu(size_t n) {
    float *a = rand_buf(n, 6), *b = malloc(n * sizeof *b);
    memcpy(b, a, n * sizeof *b);
    ref->gelu(a, n);
    fast->gelu(b, n);
    CHECK_MSG(close_enough("gelu", b, a, n, 2e-6f, 1e-6f), "n=%zu", n);
    free(a), free(b);
}

static void test_attention(const int *lens, int B, int H, int D) {
    int off[64], ntok = 0, maxL = 0;
    for (int b = 0; b < B; b++) {
        off[b] = ntok;
        ntok += lens[b];
        maxL = lens[b] > maxL ? lens[b] : maxL;
    }
    const int HD = H * D;
    float *qkv = rand_buf((size_t)ntok * 3 * HD, 2);
    float *o0 = poison_buf((size_t)ntok * HD), *o1 = poison_buf((size_t)ntok * HD);
    size_t sf = seslm_attention_scratch_floats(maxL, D, 64);
    float *sc = malloc(sf * sizeof *sc);
    ref->attention(o0, qkv, off, lens, B, H, D, sc, sf, NULL);
    fast->attention(o1, qkv, off, lens, B, H, D, sc, sf, NULL);
    CHECK_MSG(close_enough("attention", o1, o0, (size_t)ntok * HD, 1e-5f, 1e-4f), "B=%d H=%d D=%d", B, H, D);
    // telemetry on: same output, and per (sequence, head) entropy / max-weight sums that agree
    float *s0 = poison_buf((size_t)2 * B * H), *s1 = poison_buf((size_t)2 * B * H), *o2 = poison_buf((size_t)ntok * HD);
    ref->attention(o0, qkv, off, lens, B, H, D, sc, sf, s0);
    fast->attention(o2, qkv, off, lens, B, H, D, sc, sf, s1);
    CHECK(close_enough("attention+stats", o2, o1, (size_t)ntok * HD, 0, 0));
    CHECK_MSG(close_enough("attention stats", s1, s0, (size_t)2 * B * H, 1e-4f, 1e-4f), "B=%d H=%d D=%d", B, H, D);
    for (int b = 0; b < B; b++) // bounds that hold for any distribution over len keys
        for (int h = 0; h < H; h++) {
            float ent = s0[2 * (b * H + h)] / lens[b], pmax = s0[2 * (b * H + h) + 1] / lens[b];
            CHECK_MSG(ent >= -1e-6f && ent <= logf((float)lens[b]) + 1e-5f, "mean entropy %g for len %d", ent, lens[b]);
            CHECK_MSG(pmax >= 1.0f / lens[b] - 1e-6f && pmax <= 1.0f + 1e-6f, "mean max weight %g", pmax);
        }
    free(s0), free(s1), free(o2);
    free(qkv), free(o0), free(o1), free(sc);
}

static void test_embed_pool(const int *lens, int B, int C, int V) {
    int off[64], ntok = 0;
    for (int b = 0; b < B; b++) {
        off[b] = ntok;
        ntok += lens[b];
    }
    int32_t *ids = malloc((size_t)ntok * sizeof *ids);
    for (int t = 0; t < ntok; t++) ids[t] = (int32_t)((frand() + 1) * 0.5f * (V - 1));
    float *word = rand_buf((size_t)V * C, 1), *pos = rand_buf((size_t)512 * C, 1), *type = rand_buf(C, 1);
    float *x0 = poison_buf((size_t)ntok * C), *x1 = poison_buf((size_t)ntok * C);
    const seslm_embedding wt = {.f32 = word};
    ref->embed(x0, ids, off, lens, B, &wt, pos, type, C);
    fast->embed(x1, ids, off, lens, B, &wt, pos, type, C);
    CHECK(close_enough("embed", x1, x0, (size_t)ntok * C, 0, 0));
    for (int norm = 0; norm <= 1; norm++) {
        float *p0 = poison_buf((size_t)B * C), *p1 = poison_buf((size_t)B * C);
        ref->pool(p0, x0, off, lens, B, C, norm);
        fast->pool(p1, x0, off, lens, B, C, norm);
        CHECK_MSG(close_enough("pool", p1, p0, (size_t)B * C, 1e-6f, 1e-5f), "normalize=%d", norm);
        if (norm) { // unit length, independently of either backend
            for (int b = 0; b < B; b++) {
                double s = 0;
                for (int c = 0; c < C; c++) s += (double)p1[b * C + c] * p1[b * C + c];
                CHECK_MSG(fabs(s - 1.0) < 1e-5, "row %d norm^2 %.8f", b, s);
            }
        }
        free(p0), free(p1);
    }
    free(ids), free(word), free(pos), free(type), free(x0), free(x1);
}

static void test_col_stats(int M, int N) {
    float *x = rand_buf((size_t)M * N, 2);
    double *sq0 = calloc(N, sizeof(double)), *ab0 = calloc(N, sizeof(double)), *sq1 = calloc(N, sizeof(double)),
           *ab1 = calloc(N, sizeof(double));
    uint64_t *p0 = calloc(N, sizeof(uint64_t)), *p1 = calloc(N, sizeof(uint64_t));
    for (int rep = 0; rep < 2; rep++) { // accumulates: the second call doubles every sum
        ref->col_stats(x, M, N, sq0, ab0, p0);
        fast->col_stats(x, M, N, sq1, ab1, p1);
    }
    int bad = 0;
    for (int n = 0; n < N; n++) {
        double want_sq = 0, want_ab = 0;
        uint64_t want_pos = 0;
        for (int m = 0; m < M; m++) {
            double v = x[(size_t)m * N + n];
            want_sq += 2 * v * v, want_ab += 2 * fabs(v), want_pos += 2 * (v > 0);
        }
        // the reference sums in double; the fast one in float chunks of 64 rows (1e-6 relative)
        bad += fabs(sq1[n] - want_sq) > 1e-6 * (1 + want_sq) || fabs(ab1[n] - want_ab) > 1e-6 * (1 + want_ab) ||
               p1[n] != want_pos || fabs(sq0[n] - want_sq) > 1e-9 * (1 + want_sq) || p0[n] != want_pos;
    }
    CHECK_MSG(bad == 0, "col_stats M=%d N=%d: %d columns off", M, N, bad);
    double *h0 = calloc(N, sizeof(double)), *h1 = calloc(N, sizeof(double));
    int H = N % 4 == 0 ? 4 : 1, D = N / H;
    ref->head_norms(x, M, H, D, h0);
    fast->head_norms(x, M, H, D, h1);
    for (int h = 0; h < H; h++) CHECK_MSG(fabs(h1[h] - h0[h]) <= 1e-5 * h0[h] && h0[h] > 0, "head_norms h=%d %g vs %g", h, h1[h], h0[h]);
    free(x), free(sq0), free(ab0), free(sq1), free(ab1), free(p0), free(p1), free(h0), free(h1);
}

// The vectorisable exp / erf of mathfun.h against libm in double precision.
static void test_mathfun(void) {
    double worst_erf = 0, worst_exp = 0;
    for (float x = -9.0f; x < 9.0f; x += 1.0e-3f) worst_erf = fmax(worst_erf, fabs(seslm_erff(x) - erf(x)));
    for (float x = -87.0f; x < 88.0f; x += 1.0e-2f) worst_exp = fmax(worst_exp, fabs(seslm_expf(x) - exp(x)) / exp(x));
    CHECK_MSG(worst_erf < 1e-6, "erf max abs error %.3g", worst_erf);
    CHECK_MSG(worst_exp < 1e-6, "exp max rel error %.3g", worst_exp);
    CHECK(seslm_expf(-1000.0f) >= 0.0f && seslm_expf(-1000.0f) < 1e-37f);
    CHECK(seslm_erff(100.0f) == 1.0f && seslm_erff(-100.0f) == -1.0f);
}

int main(void) {
    ref = seslm_backend_get("cpu-ref");
    fast = seslm_backend_get("cpu");
    CHECK(ref && fast && ref != fast);
    CHECK(seslm_backend_get("no-such-backend") == NULL);
    for (int op = 0; op < SESLM_OP_COUNT; op++) CHECK(fast->supports_op((seslm_op)op));
    fast->set_threads(2);
#ifdef SESLM_HAVE_OPENBLAS_TEST
    // 2 = OpenMP build: one thread pool with our loops (see CMakeLists.txt); 1 = pthreads build
    CHECK_MSG(openblas_get_parallel() == 2, "OpenBLAS threading model %d at run time; expected the OpenMP build",
              openblas_get_parallel());
#endif
    test_mathfun();

    static const int shapes[][3] = {{1, 1, 1},      {1, 384, 384},  {7, 1152, 384}, {33, 1536, 384},
                                    {13, 384, 1536}, {64, 384, 200}, {3, 5, 7},      {32, 100, 64},
                                    {5, 70, 33},     {4, 32, 1},     {31, 96, 384}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        test_linear(shapes[i][0], shapes[i][1], shapes[i][2], 1);
        test_linear(shapes[i][0], shapes[i][1], shapes[i][2], 0);
    }
    test_layernorm(1, 384, 1);
    test_layernorm(37, 384, 0);
    test_layernorm(41, 384, 1); // MiniLM's width: the register path, with the residual
    test_layernorm(5, 17, 1);
    test_gelu(1);
    test_gelu(4096 * 5 + 3);

    static const int l1[] = {1}, l2[] = {5, 1, 17, 256, 2}, l3[] = {12, 12, 12, 12};
    static const int l4[] = {16, 8, 9, 15, 3, 2}; // the short-sequence path's sizes (L <= 16) and block edges
    static const int l5[] = {17, 24, 31, 32, 33, 20, 29}; // two key blocks (L <= 32), and the first past them
    test_attention(l1, 1, 12, 32);
    test_attention(l4, 6, 4, 32);
    test_attention(l5, 7, 3, 32);
    test_attention(l2, 5, 12, 32);
    test_attention(l3, 4, 3, 32);
    test_attention(l2, 5, 2, 7); // head dim not a multiple of the vector width
    test_embed_pool(l2, 5, 384, 100);
    test_col_stats(1, 1);
    test_col_stats(37, 1536);
    test_col_stats(300, 384);
    test_col_stats(5, 130);
    test_embed_pool(l1, 1, 16, 3);
    return test_report("test_kernels_cpu");
}
