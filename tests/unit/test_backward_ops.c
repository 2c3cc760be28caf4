/* test_backward_ops.c — the backward ops of backend.h.
 *
 * 1. Gradient checks: for each op, L = sum(out * R) with R fixed random; the reference backward (with
 *    dout = R) against central finite differences of the reference forward, element by element, on small
 *    shapes (ragged batches, head masks including 0 and fractional factors, an all-pruned-heads case).
 *    The forward runs in F32, L is summed in double; eps 1e-3 gives an FD error around 1e-4, hence the
 *    tolerance 2e-3 + 2e-3 |g|.
 * 2. The fast CPU backward against the reference on model-sized shapes. Gradients accumulate (+=), so
 *    every gradient buffer starts from the same random base in both (an element the fast op forgets to
 *    write keeps its base and differs); scratch is poisoned with NaN; NaN never passes. */
#include "backend.h"
#include "test.h"

#include <stdint.h>

static uint64_t rng = 0xD1B54A32D192ED03ull;
static float frand(void) { // uniform in [-1, 1)
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / (1 << 24))) * 2.0f - 1.0f;
}
static float *rand_buf(size_t n, float scale) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = frand() * scale;
    return p;
}
static float *copy_buf(const float *a, size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    memcpy(p, a, n * sizeof *p);
    return p;
}
static float *zero_buf(size_t n) { return calloc(n ? n : 1, sizeof(float)); }
static float *nan_buf(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

static int close_enough(const char *what, const float *got, const float *ref, size_t n, double atol, double rtol) {
    size_t bad = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        int ok = isfinite(got[i]) && isfinite(ref[i]) && d <= atol + rtol * fabs(ref[i]);
        if (!ok) {
            if (bad < 3) fprintf(stderr, "  %s[%zu]: got %.9g want %.9g\n", what, i, got[i], ref[i]);
            bad++;
        }
        if (!isfinite(d)) worst = INFINITY;
        else if (d > worst) worst = d;
    }
    if (bad) fprintf(stderr, "  %s: %zu of %zu elements off (worst %.3g)\n", what, bad, n, worst);
    return bad == 0;
}

static const seslm_backend *ref, *fast;

// ---- finite differences --------------------------------------------------------------------------

typedef double (*loss_fn)(void *ctx); // runs the reference forward, returns sum(out * R)

/* Central differences of L with respect to every element of p (n), against the analytic gradient g. */
static int fd_check(const char *what, loss_fn f, void *ctx, float *p, const float *g, size_t n) {
    const float eps = 1e-3f;
    float *num = malloc(n * sizeof *num);
    for (size_t i = 0; i < n; i++) {
        const float keep = p[i];
        p[i] = keep + eps;
        const double lp = f(ctx);
        p[i] = keep - eps;
        const double lm = f(ctx);
        p[i] = keep;
        num[i] = (float)((lp - lm) / (2.0 * eps));
    }
    int ok = close_enough(what, g, num, n, 2e-3, 2e-3);
    CHECK_MSG(ok, "%s: analytic gradient differs from finite differences", what);
    free(num);
    return ok;
}

static double dot_r(const float *y, const float *r, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)y[i] * r[i];
    return s;
}

// linear
typedef struct { float *x, *w, *b, *y, *r; int M, N, K; } lin_ctx;
static double lin_loss(void *c) {
    lin_ctx *t = c;
    seslm_weight W = {.w = t->w, .N = t->N, .K = t->K};
    ref->linear(t->y, t->x, &W, t->b, t->M);
    return dot_r(t->y, t->r, (size_t)t->M * t->N);
}
static void fd_linear(int M, int N, int K) {
    lin_ctx t = {rand_buf((size_t)M * K, 1), rand_buf((size_t)N * K, 0.5f), rand_buf(N, 1), zero_buf((size_t)M * N),
                 rand_buf((size_t)M * N, 1), M, N, K};
    float *dx = zero_buf((size_t)M * K), *dw = zero_buf((size_t)N * K), *db = zero_buf(N);
    ref->linear_backward(dx, dw, db, t.r, t.x, t.w, M, N, K);
    fd_check("linear dx", lin_loss, &t, t.x, dx, (size_t)M * K);
    fd_check("linear dw", lin_loss, &t, t.w, dw, (size_t)N * K);
    fd_check("linear db", lin_loss, &t, t.b, db, N);
    free(t.x), free(t.w), free(t.b), free(t.y), free(t.r), free(dx), free(dw), free(db);
}

// layernorm (z = x + r is the op's input; the test feeds z directly)
typedef struct { float *z, *g, *beta, *y, *r; int M, C; } ln_ctx;
static double ln_loss(void *c) {
    ln_ctx *t = c;
    memcpy(t->y, t->z, (size_t)t->M * t->C * sizeof(float));
    ref->add_layernorm(t->y, NULL, t->g, t->beta, t->M, t->C, 1e-12f);
    return dot_r(t->y, t->r, (size_t)t->M * t->C);
}
static void fd_layernorm(int M, int C) {
    ln_ctx t = {rand_buf((size_t)M * C, 2), rand_buf(C, 1), rand_buf(C, 1), zero_buf((size_t)M * C),
                rand_buf((size_t)M * C, 1), M, C};
    for (int c = 0; c < C; c++) t.z[c] += 3.0f; // a row with a large mean
    float *dz = zero_buf((size_t)M * C), *dg = zero_buf(C), *dbeta = zero_buf(C);
    ref->layernorm_backward(dz, dg, dbeta, t.r, t.z, t.g, M, C, 1e-12f);
    fd_check("layernorm dz", ln_loss, &t, t.z, dz, (size_t)M * C);
    fd_check("layernorm dg", ln_loss, &t, t.g, dg, C);
    fd_check("layernorm dbeta", ln_loss, &t, t.beta, dbeta, C);
    free(t.z), free(t.g), free(t.beta), free(t.y), free(t.r), free(dz), free(dg), free(dbeta);
}

// gelu
typedef struct { float *x, *y, *r; size_t n; } gelu_ctx;
static double gelu_loss(void *c) {
    gelu_ctx *t = c;
    memcpy(t->y, t->x, t->n * sizeof(float));
    ref->gelu(t->y, t->n);
    return dot_r(t->y, t->r, t->n);
}
static void fd_gelu(size_t n) {
    gelu_ctx t = {rand_buf(n, 4), zero_buf(n), rand_buf(n, 1), n};
    float *dx = zero_buf(n);
    ref->gelu_backward(dx, t.x, t.r, n);
    fd_check("gelu dx", gelu_loss, &t, t.x, dx, n);
    free(t.x), free(t.y), free(t.r), free(dx);
}

// attention with a head mask applied to its output, as the encoder does
typedef struct { float *qkv, *out, *r, *scratch; const int *off, *len; const float *hm; int B, H, D, ntok; } att_ctx;
static double att_loss(void *c) {
    att_ctx *t = c;
    ref->attention(t->out, t->qkv, t->off, t->len, t->B, t->H, t->D, t->scratch, 4096, NULL);
    if (t->hm)
        for (int m = 0; m < t->ntok; m++)
            for (int h = 0; h < t->H; h++)
                for (int d = 0; d < t->D; d++) t->out[(size_t)m * t->H * t->D + h * t->D + d] *= t->hm[h];
    return dot_r(t->out, t->r, (size_t)t->ntok * t->H * t->D);
}
static void fd_attention(const int *len, int B, int H, int D, const float *hm) {
    int off[16], ntok = 0;
    for (int b = 0; b < B; b++) off[b] = ntok, ntok += len[b];
    const size_t nq = (size_t)ntok * 3 * H * D, no = (size_t)ntok * H * D;
    att_ctx t = {rand_buf(nq, 1.5f), zero_buf(no), rand_buf(no, 1), zero_buf(4096), off, len, hm, B, H, D, ntok};
    float *dqkv = zero_buf(nq);
    ref->attention_backward(dqkv, t.r, t.qkv, off, len, B, H, D, hm, t.scratch, 4096);
    char what[64];
    snprintf(what, sizeof what, "attention dqkv (B=%d H=%d D=%d%s)", B, H, D, hm ? ", masked" : "");
    fd_check(what, att_loss, &t, t.qkv, dqkv, nq);
    free(t.qkv), free(t.out), free(t.r), free(t.scratch), free(dqkv);
}

// mean pooling, then optionally L2 normalisation
typedef struct { float *x, *out, *r; const int *off, *len; int B, C, normalize; } pool_ctx;
static double pool_loss(void *c) {
    pool_ctx *t = c;
    ref->pool(t->out, t->x, t->off, t->len, t->B, t->C, t->normalize);
    return dot_r(t->out, t->r, (size_t)t->B * t->C);
}
static void fd_pool(void) {
    const int len[3] = {1, 5, 3}, off[3] = {0, 1, 6}, B = 3, C = 6, ntok = 9;
    pool_ctx t = {rand_buf((size_t)ntok * C, 1), zero_buf((size_t)B * C), rand_buf((size_t)B * C, 1), off, len, B, C, 0};
    float *dx = zero_buf((size_t)ntok * C);
    ref->pool_backward(dx, t.r, off, len, B, C);
    fd_check("pool dx", pool_loss, &t, t.x, dx, (size_t)ntok * C);
    // the normalised pool: dmean = l2norm_backward(dout, mean), then pool_backward
    float *mean = zero_buf((size_t)B * C), *dmean = zero_buf((size_t)B * C);
    ref->pool(mean, t.x, off, len, B, C, 0);
    ref->l2norm_backward(dmean, t.r, mean, B, C);
    memset(dx, 0, (size_t)ntok * C * sizeof *dx);
    ref->pool_backward(dx, dmean, off, len, B, C);
    t.normalize = 1;
    fd_check("pool + l2norm dx", pool_loss, &t, t.x, dx, (size_t)ntok * C);
    free(t.x), free(t.out), free(t.r), free(dx), free(mean), free(dmean);
}

// embedding gather: word rows (sparse), positions, token type
typedef struct { float *word, *pos, *type, *x, *r; const int32_t *ids; const int *off, *len; int B, C, V, ntok; } emb_ctx;
static double emb_loss(void *c) {
    emb_ctx *t = c;
    seslm_embedding e = {.f32 = t->word};
    ref->embed(t->x, t->ids, t->off, t->len, t->B, &e, t->pos, t->type, t->C);
    return dot_r(t->x, t->r, (size_t)t->ntok * t->C);
}
static void fd_embed(void) {
    const int32_t ids[7] = {3, 1, 3, 0, 5, 3, 2}; // id 3 three times: its row sums three gradients
    const int off[2] = {0, 4}, len[2] = {4, 3}, B = 2, C = 5, V = 7, P = 6, ntok = 7;
    emb_ctx t = {rand_buf((size_t)V * C, 1), rand_buf((size_t)P * C, 1), rand_buf(C, 1), zero_buf((size_t)ntok * C),
                 rand_buf((size_t)ntok * C, 1), ids, off, len, B, C, V, ntok};
    float *dw = zero_buf((size_t)V * C), *dp = zero_buf((size_t)P * C), *dt = zero_buf(C);
    ref->embed_backward(dw, dp, dt, t.r, ids, off, len, B, C);
    fd_check("embed dword", emb_loss, &t, t.word, dw, (size_t)V * C);
    fd_check("embed dpos", emb_loss, &t, t.pos, dp, (size_t)P * C);
    fd_check("embed dtype", emb_loss, &t, t.type, dt, C);
    CHECK_MSG(dw[4 * C] == 0.0f && dw[6 * C + 2] == 0.0f, "rows of ids not in the batch must get no gradient");
    free(t.word), free(t.pos), free(t.type), free(t.x), free(t.r), free(dw), free(dp), free(dt);
}

// ---- fast vs reference ---------------------------------------------------------------------------

static void cmp_linear(int M, int N, int K) {
    float *x = rand_buf((size_t)M * K, 1), *w = rand_buf((size_t)N * K, 0.2f), *dy = rand_buf((size_t)M * N, 1);
    float *dx0 = rand_buf((size_t)M * K, 1), *dw0 = rand_buf((size_t)N * K, 1), *db0 = rand_buf(N, 1);
    float *dx1 = copy_buf(dx0, (size_t)M * K), *dw1 = copy_buf(dw0, (size_t)N * K), *db1 = copy_buf(db0, N);
    ref->linear_backward(dx0, dw0, db0, dy, x, w, M, N, K);
    fast->linear_backward(dx1, dw1, db1, dy, x, w, M, N, K);
    char what[64];
    snprintf(what, sizeof what, "linear M=%d N=%d K=%d", M, N, K);
    CHECK_MSG(close_enough("dx", dx1, dx0, (size_t)M * K, 1e-4 * sqrt(N), 1e-4), "%s dx", what);
    CHECK_MSG(close_enough("dw", dw1, dw0, (size_t)N * K, 1e-4 * sqrt(M), 1e-4), "%s dw", what);
    CHECK_MSG(close_enough("db", db1, db0, N, 1e-4 * sqrt(M), 1e-4), "%s db", what);
    free(x), free(w), free(dy), free(dx0), free(dw0), free(db0), free(dx1), free(dw1), free(db1);
}

static void cmp_layernorm(int M, int C) {
    float *z = rand_buf((size_t)M * C, 3), *g = rand_buf(C, 1), *dy = rand_buf((size_t)M * C, 1);
    float *dz0 = rand_buf((size_t)M * C, 1), *dg0 = rand_buf(C, 1), *db0 = rand_buf(C, 1);
    float *dz1 = copy_buf(dz0, (size_t)M * C), *dg1 = copy_buf(dg0, C), *db1 = copy_buf(db0, C);
    ref->layernorm_backward(dz0, dg0, db0, dy, z, g, M, C, 1e-12f);
    fast->layernorm_backward(dz1, dg1, db1, dy, z, g, M, C, 1e-12f);
    CHECK_MSG(close_enough("ln dz", dz1, dz0, (size_t)M * C, 1e-4, 1e-4), "layernorm M=%d C=%d dz", M, C);
    CHECK_MSG(close_enough("ln dg", dg1, dg0, C, 1e-4 * sqrt(M), 1e-4), "layernorm dg");
    CHECK_MSG(close_enough("ln dbeta", db1, db0, C, 1e-4 * sqrt(M), 1e-4), "layernorm dbeta");
    free(z), free(g), free(dy), free(dz0), free(dg0), free(db0), free(dz1), free(dg1), free(db1);
}

static void cmp_gelu(size_t n) {
    float *x = rand_buf(n, 6), *dy = rand_buf(n, 1), *d0 = rand_buf(n, 1), *d1 = copy_buf(d0, n);
    ref->gelu_backward(d0, x, dy, n);
    fast->gelu_backward(d1, x, dy, n);
    CHECK_MSG(close_enough("gelu", d1, d0, n, 1e-6, 1e-5), "gelu n=%zu", n);
    free(x), free(dy), free(d0), free(d1);
}

static void cmp_attention(const int *len, int B, int H, int D, const float *hm) {
    int off[16], ntok = 0, maxL = 0;
    for (int b = 0; b < B; b++) off[b] = ntok, ntok += len[b], maxL = len[b] > maxL ? len[b] : maxL;
    const size_t nq = (size_t)ntok * 3 * H * D, no = (size_t)ntok * H * D;
    const size_t ns = seslm_attention_backward_scratch_floats(maxL, D, 8);
    float *qkv = rand_buf(nq, 2), *dout = rand_buf(no, 1), *d0 = rand_buf(nq, 1), *d1 = copy_buf(d0, nq);
    float *s0 = nan_buf(ns), *s1 = nan_buf(ns);
    ref->attention_backward(d0, dout, qkv, off, len, B, H, D, hm, s0, ns);
    fast->attention_backward(d1, dout, qkv, off, len, B, H, D, hm, s1, ns);
    CHECK_MSG(close_enough("attention dqkv", d1, d0, nq, 1e-4, 1e-4), "attention B=%d H=%d D=%d%s", B, H, D,
              hm ? " masked" : "");
    free(qkv), free(dout), free(d0), free(d1), free(s0), free(s1);
}

static void cmp_pool_l2(void) {
    const int len[4] = {1, 30, 7, 64}, B = 4, C = 384;
    int off[4], ntok = 0;
    for (int b = 0; b < B; b++) off[b] = ntok, ntok += len[b];
    float *dout = rand_buf((size_t)B * C, 1), *x = rand_buf((size_t)B * C, 1);
    float *d0 = rand_buf((size_t)ntok * C, 1), *d1 = copy_buf(d0, (size_t)ntok * C);
    ref->pool_backward(d0, dout, off, len, B, C);
    fast->pool_backward(d1, dout, off, len, B, C);
    CHECK_MSG(close_enough("pool", d1, d0, (size_t)ntok * C, 1e-6, 1e-6), "pool_backward");
    float *e0 = rand_buf((size_t)B * C, 1), *e1 = copy_buf(e0, (size_t)B * C);
    ref->l2norm_backward(e0, dout, x, B, C);
    fast->l2norm_backward(e1, dout, x, B, C);
    CHECK_MSG(close_enough("l2norm", e1, e0, (size_t)B * C, 1e-6, 1e-5), "l2norm_backward");
    free(dout), free(x), free(d0), free(d1), free(e0), free(e1);
}

static void cmp_embed(void) {
    const int B = 3, C = 384, V = 100, P = 64, len[3] = {5, 64, 1}, off[3] = {0, 5, 69};
    const int ntok = 70;
    int32_t ids[70];
    for (int t = 0; t < ntok; t++) ids[t] = (int32_t)((t * 37) % V);
    float *dx = rand_buf((size_t)ntok * C, 1);
    float *w0 = rand_buf((size_t)V * C, 1), *p0 = rand_buf((size_t)P * C, 1), *t0 = rand_buf(C, 1);
    float *w1 = copy_buf(w0, (size_t)V * C), *p1 = copy_buf(p0, (size_t)P * C), *t1 = copy_buf(t0, C);
    ref->embed_backward(w0, p0, t0, dx, ids, off, len, B, C);
    fast->embed_backward(w1, p1, t1, dx, ids, off, len, B, C);
    CHECK(close_enough("embed dword", w1, w0, (size_t)V * C, 1e-5, 1e-5));
    CHECK(close_enough("embed dpos", p1, p0, (size_t)P * C, 1e-5, 1e-5));
    CHECK(close_enough("embed dtype", t1, t0, C, 1e-4, 1e-5));
    free(dx), free(w0), free(p0), free(t0), free(w1), free(p1), free(t1);
}

/* A head with mask 0 leaves its slice of dqkv untouched in both backends; the other heads are not. */
static void masked_head_untouched(const seslm_backend *be) {
    const int len[2] = {6, 3}, off[2] = {0, 6}, B = 2, H = 3, D = 4, ntok = 9;
    const float hm[3] = {1, 0, 1};
    const size_t nq = (size_t)ntok * 3 * H * D, ns = seslm_attention_backward_scratch_floats(6, D, 8);
    float *qkv = rand_buf(nq, 1), *dout = rand_buf((size_t)ntok * H * D, 1), *d = zero_buf(nq), *s = nan_buf(ns);
    be->attention_backward(d, dout, qkv, off, len, B, H, D, hm, s, ns);
    int pruned_touched = 0, kept_touched = 0;
    for (int t = 0; t < ntok; t++)
        for (int part = 0; part < 3; part++)
            for (int h = 0; h < H; h++)
                for (int k = 0; k < D; k++) {
                    const float v = d[(size_t)t * 3 * H * D + part * H * D + h * D + k];
                    if (h == 1) pruned_touched |= v != 0.0f;
                    else kept_touched |= v != 0.0f;
                }
    CHECK_MSG(!pruned_touched && kept_touched, "%s: a head with mask 0 must get no gradient, the others some", be->name);
    free(qkv), free(dout), free(d), free(s);
}

int main(void) {
    ref = seslm_backend_cpu_ref();
    fast = seslm_backend_cpu_fast();
    fast->set_threads(2);
    CHECK(ref->linear_backward && fast->linear_backward && ref->attention_backward && fast->attention_backward);

    fd_linear(3, 4, 5);
    fd_linear(1, 7, 2);
    fd_layernorm(3, 8);
    fd_gelu(64);
    fd_embed();
    fd_pool();
    const int l1[3] = {1, 4, 6}, l2[1] = {5};
    const float hm_frac[2] = {1.0f, 0.5f}, hm_zero[3] = {0.0f, 1.0f, 0.25f};
    fd_attention(l1, 3, 2, 4, NULL);
    fd_attention(l1, 3, 2, 4, hm_frac);
    fd_attention(l2, 1, 3, 2, hm_zero);

    cmp_linear(1, 384, 384);
    cmp_linear(37, 70, 33);
    cmp_linear(200, 1536, 384);
    cmp_linear(200, 384, 922); // a pruned FFN width
    cmp_layernorm(1, 384);
    cmp_layernorm(101, 384);
    cmp_gelu(1000);
    cmp_gelu(300001);
    const int la[4] = {1, 17, 64, 33}, lb[2] = {128, 3};
    const float hm12[12] = {1, 0, 1, 1, 0.5f, 1, 1, 1, 0, 1, 1, 1};
    cmp_attention(la, 4, 12, 32, NULL);
    cmp_attention(la, 4, 12, 32, hm12);
    cmp_attention(lb, 2, 7, 32, NULL); // a pruned layer's head count
    cmp_attention(la, 4, 3, 5, NULL);
    cmp_pool_l2();
    cmp_embed();
    masked_head_untouched(ref);
    masked_head_untouched(fast);
    return test_report("test_backward_ops");
}
