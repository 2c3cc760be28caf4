/* test_backward_cuda.c — the CUDA backward ops (kernels/cuda/backward.cu) against the plain-C reference
 * (kernels/cpu/ref_backward.c) on random inputs: linear (cuBLAS), layernorm, GELU, attention over a
 * ragged batch with a head mask (0 and fractional factors), mean pooling, L2 normalisation, embedding
 * gather with repeated ids. Gradients accumulate, so every device gradient starts from the same random
 * base as the reference's (an element a kernel forgets keeps its base and fails); NaN never passes.
 * Without a GPU (or a CUDA build) it prints "skipped: no GPU" and exits 77. */
#include "backend.h"
#include "seslm.h"
#include "test.h"
#ifdef SESLM_HAVE_CUDA
#include "cuda/cuda_kernels.h"
#endif

#include <stdint.h>

#ifdef SESLM_HAVE_CUDA
static uint64_t rng = 0x3C6EF372FE94F82Bull;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / (1 << 24))) * 2.0f - 1.0f;
}
static float *rnd(size_t n, float s) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = frand() * s;
    return p;
}
static void *dev(const void *h, size_t bytes) {
    void *d = seslm_cuda_alloc(bytes ? bytes : 4);
    if (d && bytes) seslm_cuda_upload(d, h, bytes);
    return d;
}
static int same(const char *what, const float *d_got, const float *want, size_t n, double atol, double rtol) {
    float *got = malloc((n ? n : 1) * sizeof *got);
    int rc = seslm_cuda_download(got, d_got, n * sizeof(float));
    size_t bad = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        if (!(isfinite(got[i]) && fabs((double)got[i] - want[i]) <= atol + rtol * fabs(want[i]))) {
            if (bad < 3) fprintf(stderr, "  %s[%zu]: got %.8g want %.8g\n", what, i, got[i], want[i]);
            bad++;
        }
    free(got);
    CHECK_MSG(rc == 0 && bad == 0, "%s: %zu of %zu differ (download rc %d: %s)", what, bad, n, rc, rc ? seslm_last_error() : "");
    return bad == 0;
}

static void t_linear(const seslm_backend *ref, int M, int N, int K) {
    float *x = rnd((size_t)M * K, 1), *w = rnd((size_t)N * K, 0.2f), *dy = rnd((size_t)M * N, 1);
    float *dx = rnd((size_t)M * K, 1), *dw = rnd((size_t)N * K, 1), *db = rnd(N, 1);
    float *Dx = dev(x, (size_t)M * K * 4), *Dw = dev(w, (size_t)N * K * 4), *Ddy = dev(dy, (size_t)M * N * 4);
    float *Ddx = dev(dx, (size_t)M * K * 4), *Ddw = dev(dw, (size_t)N * K * 4), *Ddb = dev(db, (size_t)N * 4);
    seslm_cuda_linear_backward(Ddx, Ddw, Ddb, Ddy, Dx, Dw, M, N, K);
    ref->linear_backward(dx, dw, db, dy, x, w, M, N, K);
    same("linear dx", Ddx, dx, (size_t)M * K, 1e-4 * sqrt(N), 1e-4);
    same("linear dw", Ddw, dw, (size_t)N * K, 1e-4 * sqrt(M), 1e-4);
    same("linear db", Ddb, db, N, 1e-4 * sqrt(M), 1e-4);
    seslm_cuda_free(Dx), seslm_cuda_free(Dw), seslm_cuda_free(Ddy), seslm_cuda_free(Ddx), seslm_cuda_free(Ddw), seslm_cuda_free(Ddb);
    free(x), free(w), free(dy), free(dx), free(dw), free(db);
}

static void t_layernorm_gelu(const seslm_backend *ref, int M, int C) {
    float *z = rnd((size_t)M * C, 3), *g = rnd(C, 1), *dy = rnd((size_t)M * C, 1);
    float *dz = rnd((size_t)M * C, 1), *dg = rnd(C, 1), *dbt = rnd(C, 1);
    float *Dz = dev(z, (size_t)M * C * 4), *Dg = dev(g, C * 4), *Ddy = dev(dy, (size_t)M * C * 4);
    float *Ddz = dev(dz, (size_t)M * C * 4), *Ddg = dev(dg, C * 4), *Ddb = dev(dbt, C * 4);
    seslm_cuda_layernorm_backward(Ddz, Ddg, Ddb, Ddy, Dz, Dg, M, C, 1e-12f);
    ref->layernorm_backward(dz, dg, dbt, dy, z, g, M, C, 1e-12f);
    same("layernorm dz", Ddz, dz, (size_t)M * C, 1e-4, 1e-4);
    same("layernorm dg", Ddg, dg, C, 1e-4 * sqrt(M), 1e-4);
    same("layernorm dbeta", Ddb, dbt, C, 1e-4 * sqrt(M), 1e-4);
    // GELU over the same buffers
    float *gx = rnd((size_t)M * C, 5);
    float *Dgx = dev(gx, (size_t)M * C * 4);
    seslm_cuda_gelu_backward(Ddz, Dgx, Ddy, (size_t)M * C);
    ref->gelu_backward(dz, gx, dy, (size_t)M * C);
    same("gelu dx", Ddz, dz, (size_t)M * C, 1e-4, 1e-4);
    seslm_cuda_free(Dz), seslm_cuda_free(Dg), seslm_cuda_free(Ddy), seslm_cuda_free(Ddz), seslm_cuda_free(Ddg);
    seslm_cuda_free(Ddb), seslm_cuda_free(Dgx);
    free(z), free(g), free(dy), free(dz), free(dg), free(dbt), free(gx);
}

static void t_attention(const seslm_backend *ref, const int *len, int B, int H, int D, const float *hm) {
    int off[16], ntok = 0, maxL = 0;
    for (int b = 0; b < B; b++) off[b] = ntok, ntok += len[b], maxL = len[b] > maxL ? len[b] : maxL;
    const size_t nq = (size_t)ntok * 3 * H * D, no = (size_t)ntok * H * D;
    float *qkv = rnd(nq, 2), *dout = rnd(no, 1), *d = rnd(nq, 1);
    // the scratch the reference asks for (it was (maxL + 64) floats while 2 maxL + 64 were promised: the
    // 128-token case wrote past it and the test crashed on its first GPU run)
    const size_t nscr = seslm_attention_backward_scratch_floats(maxL, D, 1);
    float *scr = malloc(nscr * sizeof *scr);
    float *Dq = dev(qkv, nq * 4), *Do = dev(dout, no * 4), *Dd = dev(d, nq * 4), *Dh = hm ? dev(hm, (size_t)H * 4) : NULL;
    int *Doff = dev(off, (size_t)B * 4), *Dlen = dev(len, (size_t)B * 4);
    seslm_cuda_attention_backward(Dd, Do, Dq, Doff, Dlen, B, H, D, Dh, ntok);
    ref->attention_backward(d, dout, qkv, off, len, B, H, D, hm, scr, nscr);
    same(hm ? "attention dqkv (masked)" : "attention dqkv", Dd, d, nq, 1e-4, 1e-3);
    seslm_cuda_free(Dq), seslm_cuda_free(Do), seslm_cuda_free(Dd), seslm_cuda_free(Dh), seslm_cuda_free(Doff), seslm_cuda_free(Dlen);
    free(qkv), free(dout), free(d), free(scr);
}

static void t_pool_l2_embed(const seslm_backend *ref) {
    const int B = 3, C = 384, V = 50, P = 70, len[3] = {5, 64, 1}, off[3] = {0, 5, 69}, ntok = 70;
    int32_t ids[70];
    for (int t = 0; t < ntok; t++) ids[t] = (int32_t)((t * 7) % 11); // repeated ids
    float *dout = rnd((size_t)B * C, 1), *x = rnd((size_t)B * C, 1), *dx = rnd((size_t)ntok * C, 1), *dl = rnd((size_t)B * C, 1);
    float *Ddout = dev(dout, (size_t)B * C * 4), *Dx = dev(x, (size_t)B * C * 4), *Ddx = dev(dx, (size_t)ntok * C * 4);
    float *Ddl = dev(dl, (size_t)B * C * 4);
    int *Doff = dev(off, B * 4), *Dlen = dev(len, B * 4);
    seslm_cuda_pool_backward(Ddx, Ddout, Doff, Dlen, B, C);
    ref->pool_backward(dx, dout, off, len, B, C);
    same("pool dx", Ddx, dx, (size_t)ntok * C, 1e-6, 1e-5);
    seslm_cuda_l2norm_backward(Ddl, Ddout, Dx, B, C);
    ref->l2norm_backward(dl, dout, x, B, C);
    same("l2norm dx", Ddl, dl, (size_t)B * C, 1e-5, 1e-4);
    float *g = rnd((size_t)ntok * C, 1), *dw = rnd((size_t)V * C, 1), *dp = rnd((size_t)P * C, 1), *dt = rnd(C, 1);
    float *Dg = dev(g, (size_t)ntok * C * 4), *Ddw = dev(dw, (size_t)V * C * 4), *Ddp = dev(dp, (size_t)P * C * 4), *Ddt = dev(dt, C * 4);
    int32_t *Dids = dev(ids, ntok * 4);
    seslm_cuda_embed_backward(Ddw, Ddp, Ddt, Dg, Dids, Doff, Dlen, B, C, ntok);
    ref->embed_backward(dw, dp, dt, g, ids, off, len, B, C);
    same("embed dword", Ddw, dw, (size_t)V * C, 1e-4, 1e-4);
    same("embed dpos", Ddp, dp, (size_t)P * C, 1e-4, 1e-4);
    same("embed dtype", Ddt, dt, C, 1e-3, 1e-4);
    seslm_cuda_free(Ddout), seslm_cuda_free(Dx), seslm_cuda_free(Ddx), seslm_cuda_free(Ddl), seslm_cuda_free(Doff);
    seslm_cuda_free(Dlen), seslm_cuda_free(Dg), seslm_cuda_free(Ddw), seslm_cuda_free(Ddp), seslm_cuda_free(Ddt), seslm_cuda_free(Dids);
    free(dout), free(x), free(dx), free(dl), free(g), free(dw), free(dp), free(dt);
}
#endif

int main(void) {
#ifndef SESLM_HAVE_CUDA
    TEST_SKIP("no GPU (this build has no CUDA)");
#else
    if (seslm_gpu_count() <= 0) TEST_SKIP("no GPU");
    const seslm_backend *ref = seslm_backend_cpu_ref();
    t_linear(ref, 1, 384, 384);
    t_linear(ref, 77, 1152, 384);
    t_linear(ref, 200, 384, 922);
    t_layernorm_gelu(ref, 1, 384);
    t_layernorm_gelu(ref, 333, 384);
    const int la[4] = {1, 17, 64, 33}, lb[2] = {128, 3};
    const float hm[12] = {1, 0, 1, 1, 0.5f, 1, 1, 1, 0, 1, 1, 1};
    t_attention(ref, la, 4, 12, 32, NULL);
    t_attention(ref, la, 4, 12, 32, hm);
    t_attention(ref, lb, 2, 7, 32, NULL);
    t_attention(ref, la, 4, 3, 5, NULL);
    t_attention(ref, lb, 2, 2, 64, NULL);
    t_pool_l2_embed(ref);
    CHECK(seslm_cuda_sync() == 0);
    return test_report("test_backward_cuda");
#endif
}
