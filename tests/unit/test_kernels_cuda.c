/* test_kernels_cuda.c — every CUDA kernel against the plain-C reference backend (kernels/cpu/ref.c) on
 * random inputs of several shapes, ragged batches included, with device outputs poisoned (NaN / 0xff
 * bytes) before every launch so that an unwritten element fails; FP32 kernels within an abs + rel
 * tolerance, the INT8 products bit-exact (int32 sums and dequantized outputs); then the "cuda" backend's
 * whole forward pass on tiny models (F32, pruned per-layer widths, INT8 + compressed embeddings, head
 * and neuron masks) against cpu-ref: cosine >= 0.9999 for every sequence.
 *
 * Without a visible GPU: checks that the cuda backend is refused with a clear error, then prints
 * "skipped: no GPU" and exits 77 (ctest reports it as skipped). Label "gpu" (file name ends in _cuda). */
#include "backend.h"
#include "model_internal.h"
#include "plan.h"
#include "quant.h"
#include "recompile.h"
#include "seslm.h"
#include "test.h"
#include "tiny_model.h"
#ifdef SESLM_HAVE_CUDA
#include "cuda/cuda_kernels.h"
#endif

#include <stdint.h>

static const seslm_backend *ref;
static char *g_root;

// ---- no-GPU path (every build) -------------------------------------------------------------------

static void check_refused_without_gpu(void) {
    CHECK(seslm_backend_get("cuda") == NULL && seslm_backend_get("cuda-fp16") == NULL);
    tm_model tm;
    tm_init(&tm, 3);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/nogpu", g_root);
    mkdir(dir, 0755);
    CHECK(tm_write(&tm, dir, NULL));
    tm_free(&tm);
    seslm_model *m = NULL;
    CHECK(seslm_model_load(&m, dir) == SESLM_OK);
    if (!m) return;
    seslm_encoder *e = NULL;
    seslm_encoder_opts o = {.backend = "cuda", .max_batch = 4};
    CHECK(seslm_encoder_new(&e, m, &o) == SESLM_ERR_ARG && e == NULL);
    const char *want = seslm_built_with_cuda() ? "no CUDA device visible" : "no CUDA support";
    CHECK_MSG(strstr(seslm_last_error(), want) != NULL, "error was: %s", seslm_last_error());
    seslm_model_free(m);
}

#ifdef SESLM_HAVE_CUDA

// ---- helpers ---------------------------------------------------------------------------------------

static void *dup_dev(const void *h, size_t bytes) {
    void *d = seslm_cuda_alloc(bytes);
    CHECK_MSG(d != NULL, "%s", seslm_last_error());
    if (d && h) CHECK(seslm_cuda_upload(d, h, bytes) == 0);
    return d;
}

static float *rand_vec(size_t n, float scale) {
    float *v = malloc((n + 1) * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = tm_rand_sym() * scale;
    return v;
}

// a device float buffer full of NaN
static float *poisoned_dev(size_t n) {
    float *h = malloc((n + 1) * sizeof *h);
    for (size_t i = 0; i <= n; i++) h[i] = NAN;
    float *d = dup_dev(h, (n + 1) * sizeof *h);
    free(h);
    return d;
}

// fetches n floats from the device (after the queued kernels) and compares with want; returns max err
static double compare_dev(const char *what, const float *dev, const float *want, size_t n, double atol, double rtol) {
    float *got = malloc((n + 1) * sizeof *got);
    int rc = seslm_cuda_download(got, dev, n * sizeof *got);
    CHECK_MSG(rc == 0, "%s: %s", what, seslm_last_error());
    double worst = 0;
    size_t bad = 0, first = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const double d = fabs((double)got[i] - want[i]);
        const int ok = d <= atol + rtol * fabs((double)want[i]); // NaN fails
        if (!ok && !bad++) first = i;
        if (d > worst || d != d) worst = d;
    }
    CHECK_MSG(bad == 0, "%s: %zu of %zu elements off (first at %zu: got %.9g want %.9g), max err %.3g", what, bad, n,
              first, rc == 0 ? got[first] : 0.0, want[first], worst);
    free(got);
    return worst;
}

// random ragged batch description
typedef struct {
    int B, ntok, maxlen;
    int off[64], len[64];
} ragged;

static ragged make_ragged(const int *lens, int B) {
    ragged r = {.B = B};
    for (int b = 0; b < B; b++) {
        r.off[b] = r.ntok;
        r.len[b] = lens[b];
        r.ntok += lens[b];
        r.maxlen = lens[b] > r.maxlen ? lens[b] : r.maxlen;
    }
    return r;
}

// ---- kernels ---------------------------------------------------------------------------------------

static void test_embed(void) {
    const int V = 50, C = 48, P = 40;
    const int lens[] = {5, 1, 17, 32, 40};
    ragged r = make_ragged(lens, 5);
    int32_t ids[256];
    for (int t = 0; t < r.ntok; t++) ids[t] = (int32_t)(tm_rand_u32() % V);
    float *word = rand_vec((size_t)V * C, 1.0f), *pos = rand_vec((size_t)P * C, 0.3f), *type = rand_vec(2 * C, 0.2f);
    // compressed table: INT8 rows + scales, every third id exact
    int8_t *q = malloc((size_t)V * C);
    float *sc = malloc(V * sizeof *sc);
    int32_t slot[50];
    int E = 0;
    seslm_quantize_weight(q, sc, word, V, C);
    for (int v = 0; v < V; v++) slot[v] = v % 3 == 0 ? E++ : -1;
    float *exact = malloc((size_t)(E + 1) * C * sizeof *exact);
    for (int v = 0; v < V; v++)
        if (slot[v] >= 0) memcpy(exact + (size_t)slot[v] * C, word + (size_t)v * C, C * sizeof(float));
    float *want = malloc((size_t)r.ntok * C * sizeof *want);
    int32_t *d_ids = dup_dev(ids, r.ntok * sizeof(int32_t));
    int *d_off = dup_dev(r.off, r.B * sizeof(int)), *d_len = dup_dev(r.len, r.B * sizeof(int));
    float *d_pos = dup_dev(pos, (size_t)P * C * 4), *d_type = dup_dev(type, 2 * C * 4);
    // the third layout: ids v % 3 == 1 keep 4-bit rows (compacted, row_slot), v % 3 == 2 are product-quantized
    // (8-column sub-vectors, random codebook and codes)
    enum { PD = 8 };
    uint8_t *q4all = malloc((size_t)V * C / 2), *q4 = malloc((size_t)V * C / 2), *codes = malloc((size_t)V * (C / PD));
    float *sc4all = malloc(V * sizeof *sc4all), *sc4 = malloc(V * sizeof *sc4), *book = rand_vec((size_t)C * 256, 0.5f);
    int32_t row_slot[50];
    int nq4 = 0, npq = 0;
    seslm_quantize_rows4(q4all, sc4all, word, V, C);
    for (int v = 0; v < V; v++) {
        if (v % 3 == 1) {
            memcpy(q4 + (size_t)nq4 * C / 2, q4all + (size_t)v * C / 2, C / 2);
            sc4[nq4] = sc4all[v];
            row_slot[v] = nq4++;
        } else if (v % 3 == 2) {
            for (int s = 0; s < C / PD; s++) codes[(size_t)npq * (C / PD) + s] = (uint8_t)(tm_rand_u32() & 255);
            row_slot[v] = -1 - npq++;
        } else {
            row_slot[v] = 0; // exact: never read
        }
    }
    for (int compressed = 0; compressed < 3; compressed++) {
        seslm_embedding h = {0}, d = {0};
        if (!compressed) {
            h.f32 = word;
            d.f32 = dup_dev(word, (size_t)V * C * 4);
        } else if (compressed == 2) {
            h.q4 = q4, h.scale = sc4, h.exact_slot = slot, h.exact = exact, h.row_slot = row_slot, h.pq_codes = codes;
            h.pq_book = book, h.pq_dim = PD, h.n_rows = nq4, h.n_pq = npq;
            d = h;
            d.q4 = dup_dev(q4, (size_t)nq4 * C / 2), d.scale = dup_dev(sc4, nq4 * 4), d.exact_slot = dup_dev(slot, V * 4);
            d.exact = dup_dev(exact, (size_t)E * C * 4), d.row_slot = dup_dev(row_slot, V * 4);
            d.pq_codes = dup_dev(codes, (size_t)npq * (C / PD)), d.pq_book = dup_dev(book, (size_t)C * 256 * 4);
        } else {
            h.q = q, h.scale = sc, h.exact_slot = slot, h.exact = exact;
            d.q = dup_dev(q, (size_t)V * C), d.scale = dup_dev(sc, V * 4), d.exact_slot = dup_dev(slot, V * 4);
            d.exact = dup_dev(exact, (size_t)E * C * 4);
        }
        ref->embed(want, ids, r.off, r.len, r.B, &h, pos, type, C);
        float *out = poisoned_dev((size_t)r.ntok * C);
        seslm_cuda_embed(out, d_ids, d_off, d_len, r.B, &d, d_pos, d_type, C);
        compare_dev(compressed == 2 ? "embed (4-bit + product-quantized rows)" : compressed ? "embed (compressed rows)" : "embed (F32)",
                    out, want, (size_t)r.ntok * C, 0, 0);
        seslm_cuda_free(out);
        seslm_cuda_free((void *)d.q4), seslm_cuda_free((void *)d.row_slot), seslm_cuda_free((void *)d.pq_codes);
        seslm_cuda_free((void *)d.pq_book);
        seslm_cuda_free((void *)d.f32), seslm_cuda_free((void *)d.q), seslm_cuda_free((void *)d.scale);
        seslm_cuda_free((void *)d.exact_slot), seslm_cuda_free((void *)d.exact);
    }
    seslm_cuda_free(d_ids), seslm_cuda_free(d_off), seslm_cuda_free(d_len), seslm_cuda_free(d_pos),
        seslm_cuda_free(d_type);
    free(word), free(pos), free(type), free(q), free(sc), free(exact), free(want);
    free(q4all), free(q4), free(codes), free(sc4all), free(sc4), free(book);
}

static void test_layernorm(void) {
    const int shapes[][2] = {{1, 16}, {7, 48}, {130, 384}, {33, 100}};
    for (int s = 0; s < 4; s++)
        for (int with_r = 0; with_r < 2; with_r++) {
            const int M = shapes[s][0], C = shapes[s][1];
            const size_t n = (size_t)M * C;
            float *x = rand_vec(n, 3.0f), *r = rand_vec(n, 1.0f), *g = rand_vec(C, 1.0f), *b = rand_vec(C, 0.5f);
            for (size_t i = 0; i < n; i++) x[i] += 0.5f; // a non-zero mean
            float *dx = dup_dev(x, n * 4), *dr = dup_dev(r, n * 4), *dg = dup_dev(g, C * 4), *db = dup_dev(b, C * 4);
            ref->add_layernorm(x, with_r ? r : NULL, g, b, M, C, 1e-12f);
            seslm_cuda_add_layernorm(dx, with_r ? dr : NULL, dg, db, M, C, 1e-12f);
            char what[64];
            snprintf(what, sizeof what, "add_layernorm %dx%d r=%d", M, C, with_r);
            compare_dev(what, dx, x, n, 2e-5, 2e-5);
            seslm_cuda_free(dx), seslm_cuda_free(dr), seslm_cuda_free(dg), seslm_cuda_free(db);
            free(x), free(r), free(g), free(b);
        }
}

static void test_gelu(void) {
    const int M = 37, N = 1536;
    const size_t n = (size_t)M * N;
    float *x = rand_vec(n, 6.0f), *b = rand_vec(N, 1.0f), *want = malloc(n * 4);
    float *dx = dup_dev(x, n * 4), *db = dup_dev(b, N * 4);
    memcpy(want, x, n * 4);
    ref->gelu(want, n);
    seslm_cuda_gelu(dx, n);
    compare_dev("gelu", dx, want, n, 1e-6, 1e-5);
    for (size_t i = 0; i < n; i++) want[i] = x[i] + b[i % N];
    ref->gelu(want, n);
    seslm_cuda_upload(dx, x, n * 4);
    seslm_cuda_gelu_bias(dx, db, M, N);
    compare_dev("gelu_bias", dx, want, n, 1e-6, 1e-5);
    seslm_cuda_free(dx), seslm_cuda_free(db);
    free(x), free(b), free(want);
}

// host: y (M, G*W) column group g *= mask[g], as the encoder's mask_columns
static void host_mask(float *y, int M, int G, int W, const float *mask) {
    for (int m = 0; m < M; m++)
        for (int g = 0; g < G; g++)
            for (int i = 0; i < W; i++) {
                float *v = y + (size_t)m * G * W + (size_t)g * W + i;
                *v = mask[g] == 0.0f ? 0.0f : *v * mask[g];
            }
}

static void test_attention_case(const int *lens, int B, int H, int D, int masked) {
    ragged r = make_ragged(lens, B);
    const int HD = H * D;
    const size_t nq = (size_t)r.ntok * 3 * HD, no = (size_t)r.ntok * HD;
    float *qkv = rand_vec(nq, 2.0f), *want = malloc(no * 4);
    size_t sf = seslm_attention_scratch_floats(r.maxlen, D, 1);
    float *scratch = malloc(sf * 4);
    ref->attention(want, qkv, r.off, r.len, B, H, D, scratch, sf, NULL);
    float mask[64];
    for (int h = 0; h < H; h++) mask[h] = h % 3 == 1 ? 0.0f : h % 3 == 2 ? 0.5f : 1.0f;
    if (masked) host_mask(want, r.ntok, H, D, mask);
    float *dq = dup_dev(qkv, nq * 4), *dout = poisoned_dev(no), *dmask = dup_dev(mask, H * 4);
    int *doff = dup_dev(r.off, B * 4), *dlen = dup_dev(r.len, B * 4);
    seslm_cuda_attention(dout, dq, doff, dlen, B, H, D, masked ? dmask : NULL);
    char what[96];
    snprintf(what, sizeof what, "attention B=%d H=%d D=%d max_len=%d masked=%d", B, H, D, r.maxlen, masked);
    compare_dev(what, dout, want, no, 1e-5, 1e-4);
    seslm_cuda_free(dq), seslm_cuda_free(dout), seslm_cuda_free(dmask), seslm_cuda_free(doff), seslm_cuda_free(dlen);
    free(qkv), free(want), free(scratch);
}

static void test_attention(void) {
    const int one[] = {1}, mixed[] = {3, 64, 65, 17, 1, 128}, long_[] = {128, 1, 200, 256}, tiny[] = {2, 9, 31, 4};
    for (int masked = 0; masked < 2; masked++) {
        test_attention_case(one, 1, 12, 32, masked);
        test_attention_case(mixed, 6, 12, 32, masked);
        test_attention_case(long_, 4, 12, 32, masked);
        test_attention_case(tiny, 4, 4, 4, masked);   // the tiny model's heads
        test_attention_case(mixed, 6, 2, 64, masked); // the D <= 64 instantiation
        test_attention_case(tiny, 4, 3, 20, masked);  // D not a power of two
    }
}

static void test_pool(void) {
    const int lens[] = {1, 7, 128, 33};
    ragged r = make_ragged(lens, 4);
    const int C = 384;
    float *x = rand_vec((size_t)r.ntok * C, 1.0f), want[4 * 384];
    float *dx = dup_dev(x, (size_t)r.ntok * C * 4);
    int *doff = dup_dev(r.off, 16), *dlen = dup_dev(r.len, 16);
    for (int norm = 0; norm < 2; norm++) {
        ref->pool(want, x, r.off, r.len, 4, C, norm);
        float *dout = poisoned_dev(4 * C);
        seslm_cuda_pool(dout, dx, doff, dlen, 4, C, norm);
        compare_dev(norm ? "pool + L2" : "pool", dout, want, 4 * C, 1e-7, 1e-6);
        seslm_cuda_free(dout);
    }
    seslm_cuda_free(dx), seslm_cuda_free(doff), seslm_cuda_free(dlen);
    free(x);
}

static void test_rows(void) {
    const int M = 19, G = 12, W = 32;
    float *y = rand_vec((size_t)M * G * W, 1.0f), mask[12], *row = rand_vec(G * W, 1.0f);
    for (int g = 0; g < G; g++) mask[g] = g % 4 == 0 ? 0.0f : g % 4 == 1 ? 0.25f : 1.0f;
    float *dy = dup_dev(y, (size_t)M * G * W * 4), *dm = dup_dev(mask, G * 4), *dr = dup_dev(row, G * W * 4);
    host_mask(y, M, G, W, mask);
    seslm_cuda_scale_columns(dy, M, G, W, dm);
    compare_dev("scale_columns", dy, y, (size_t)M * G * W, 0, 0);
    for (int m = 0; m < M; m++) memcpy(y + (size_t)m * G * W, row, G * W * 4);
    seslm_cuda_fill_rows(dy, dr, M, G * W);
    compare_dev("fill_rows", dy, y, (size_t)M * G * W, 0, 0);
    seslm_cuda_free(dy), seslm_cuda_free(dm), seslm_cuda_free(dr);
    free(y), free(row);
}

// INT8: quantization identical to quant.c, products bit-exact against seslm_qgemm_ref
static void test_qgemm(void) {
    const int shapes[][3] = {{1, 384, 384}, {37, 1536, 384}, {130, 77, 1536},
                             {64, 64, 32},  {5, 24, 16},     {200, 384, 1000}};
    for (int s = 0; s < 6; s++) {
        const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], Kp = seslm_cuda_kpad(K);
        float *x = rand_vec((size_t)M * K, 4.0f), *w = rand_vec((size_t)N * K, 0.2f), *b = rand_vec(N, 0.5f);
        if (M > 1)
            for (int k = 0; k < K; k++) x[(size_t)K + k] = 0.0f; // a zero row: scale 0
        if (M > 2) x[(size_t)2 * K + 1] = NAN;                   // a poisoned row: zeros, scale NaN
        int8_t *qa = malloc((size_t)M * K + 1), *qw = malloc((size_t)N * K + 1);
        float *sa = malloc(M * 4), *sw = malloc(N * 4);
        seslm_quantize_rows(qa, sa, x, M, K, K);
        seslm_quantize_weight(qw, sw, w, N, K);
        int32_t *acc = malloc((size_t)M * N * 4);
        seslm_qgemm_ref(acc, qa, qw, M, N, K);
        float *want = malloc((size_t)M * N * 4);
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++)
                want[(size_t)m * N + n] = (float)acc[(size_t)m * N + n] * (sa[m] * sw[n]) + b[n];
        // device: quantize x (padded to Kp), weights padded to Kp
        int8_t *qwp = calloc((size_t)N * Kp, 1), *qa_got = malloc((size_t)M * Kp);
        for (int n = 0; n < N; n++) memcpy(qwp + (size_t)n * Kp, qw + (size_t)n * K, K);
        float *dx = dup_dev(x, (size_t)M * K * 4), *dsw = dup_dev(sw, N * 4), *db = dup_dev(b, N * 4);
        int8_t *dqw = dup_dev(qwp, (size_t)N * Kp), *dqa = dup_dev(NULL, (size_t)M * Kp);
        float *dsa = poisoned_dev(M);
        seslm_cuda_memset(dqa, 0x5a, (size_t)M * Kp);
        seslm_cuda_quantize_rows(dqa, dsa, dx, M, K, Kp);
        float *sa_got = malloc(M * 4);
        CHECK(seslm_cuda_download(qa_got, dqa, (size_t)M * Kp) == 0 && seslm_cuda_download(sa_got, dsa, M * 4) == 0);
        int qbad = 0;
        for (int m = 0; m < M; m++) {
            qbad += !(memcmp(&sa_got[m], &sa[m], 4) == 0 || (isnan(sa_got[m]) && isnan(sa[m])));
            for (int k = 0; k < Kp; k++) qbad += qa_got[(size_t)m * Kp + k] != (k < K ? qa[(size_t)m * K + k] : 0);
        }
        CHECK_MSG(qbad == 0, "quantize_rows %dx%d: %d values differ from seslm_quantize_rows", M, K, qbad);
        int32_t *dacc = dup_dev(NULL, (size_t)M * N * 4), *acc_got = malloc((size_t)M * N * 4);
        // the cuBLAS INT8 baseline computes the same int32 sums (where cuBLAS takes the shape at all:
        // a refusal is the baseline's limit, printed, not a failure of ours)
        seslm_cuda_memset(dacc, 0xff, (size_t)M * N * 4);
        seslm_cuda_qgemm_cublas(dacc, dqa, dqw, M, N, Kp);
        if (seslm_cuda_download(acc_got, dacc, (size_t)M * N * 4) != 0)
            printf("note: cuBLAS INT8 %dx%dx%d not run: %s\n", M, N, Kp, seslm_last_error());
        else
            CHECK_MSG(memcmp(acc_got, acc, (size_t)M * N * 4) == 0, "qgemm cuBLAS %dx%dx%d: int32 sums differ", M, N,
                      K);
        // kind 2: cuBLAS INT8 + our epilogue (the backend's path where N % 4 == 0): the same dequantized bits
        for (int kind = 0; kind < 3; kind++) {
            if (kind == 2 && N % 4) continue;
            char what[96];
            snprintf(what, sizeof what, "qgemm %s %dx%dx%d", kind == 2 ? "cublas+epilogue" : kind ? "simple" : "mma", M, N, K);
            if (kind < 2) {
                seslm_cuda_memset(dacc, 0xff, (size_t)M * N * 4);
                if (kind)
                    seslm_cuda_qgemm_simple(dacc, NULL, dqa, dsa, dqw, dsw, NULL, M, N, Kp);
                else
                    seslm_cuda_qgemm(dacc, NULL, dqa, dsa, dqw, dsw, NULL, M, N, Kp);
                CHECK_MSG(seslm_cuda_download(acc_got, dacc, (size_t)M * N * 4) == 0, "%s: %s", what, seslm_last_error());
                CHECK_MSG(memcmp(acc_got, acc, (size_t)M * N * 4) == 0, "%s: int32 sums differ from seslm_qgemm_ref", what);
            }
            float *dy = poisoned_dev((size_t)M * N);
            if (kind == 2) {
                seslm_cuda_memset(dacc, 0xff, (size_t)M * N * 4);
                seslm_cuda_qgemm_cublas_dq(dacc, dy, dqa, dsa, dqw, dsw, db, M, N, Kp);
            } else if (kind)
                seslm_cuda_qgemm_simple(NULL, dy, dqa, dsa, dqw, dsw, db, M, N, Kp);
            else
                seslm_cuda_qgemm(NULL, dy, dqa, dsa, dqw, dsw, db, M, N, Kp);
            // the NaN row stays NaN on both sides; compare the others bit for bit
            float *got = malloc((size_t)M * N * 4);
            CHECK(seslm_cuda_download(got, dy, (size_t)M * N * 4) == 0);
            int bad = 0;
            for (size_t i = 0; i < (size_t)M * N; i++)
                bad += !(memcmp(&got[i], &want[i], 4) == 0 || (isnan(got[i]) && isnan(want[i])));
            CHECK_MSG(bad == 0, "%s: %d dequantized outputs differ from the reference formula", what, bad);
            free(got);
            seslm_cuda_free(dy);
        }
        seslm_cuda_free(dx), seslm_cuda_free(dsw), seslm_cuda_free(db), seslm_cuda_free(dqw), seslm_cuda_free(dqa);
        seslm_cuda_free(dsa), seslm_cuda_free(dacc);
        free(x), free(w), free(b), free(qa), free(qw), free(sa), free(sw), free(acc), free(want), free(qwp),
            free(qa_got);
        free(sa_got), free(acc_got);
    }
    // Kp not a multiple of 32 is refused with a recorded error, not a fault
    seslm_cuda_qgemm(NULL, NULL, NULL, NULL, NULL, NULL, NULL, 4, 4, 20);
    CHECK(seslm_cuda_sync() != 0 && strstr(seslm_last_error(), "multiple of 32"));
}

// FP32 / FP16 linear (cuBLAS baseline) and the backend's linear on F32 and INT8 weights, with the
// pruned (non-multiple-of-anything) widths of a neuron-compacted FFN
static void test_linear(void) {
    const seslm_backend *cu = seslm_backend_get("cuda");
    CHECK(cu != NULL && cu->dev_alloc && cu->weight_upload);
    if (!cu) return;
    const int shapes[][3] = {{1, 384, 384},   {37, 1152, 384}, {130, 384, 1536},
                             {61, 1011, 384}, {61, 384, 1011}, {3, 5, 7}};
    for (int s = 0; s < 6; s++) {
        const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *x = rand_vec((size_t)M * K, 1.0f), *w = rand_vec((size_t)N * K, 0.1f), *b = rand_vec(N, 0.5f);
        float *want = malloc((size_t)M * N * 4);
        seslm_weight hw = {.w = w, .N = N, .K = K}, dw;
        ref->linear(want, x, &hw, b, M);
        float *dx = dup_dev(x, (size_t)M * K * 4), *db = dup_dev(b, N * 4), *dy = poisoned_dev((size_t)M * N);
        char what[96];
        CHECK(cu->weight_upload(&dw, &hw) == 0);
        cu->linear(dy, dx, &dw, db, M);
        snprintf(what, sizeof what, "linear f32 (cuBLAS) %dx%dx%d", M, N, K);
        compare_dev(what, dy, want, (size_t)M * N, 1e-4, 1e-4);
        // the FFN input layer's fused form: gelu(x W^T + b)
        float *want_g = malloc((size_t)M * N * 4);
        memcpy(want_g, want, (size_t)M * N * 4);
        ref->gelu(want_g, (size_t)M * N);
        float *dyg = poisoned_dev((size_t)M * N);
        CHECK(cu->linear_gelu != NULL);
        if (cu->linear_gelu) cu->linear_gelu(dyg, dx, &dw, db, M);
        snprintf(what, sizeof what, "linear_gelu f32 %dx%dx%d", M, N, K);
        compare_dev(what, dyg, want_g, (size_t)M * N, 1e-4, 1e-4);
        seslm_cuda_free(dyg);
        free(want_g);
        cu->weight_free(&dw);
        // FP16 weights and activations: error relative to the output's scale
        uint16_t *w16 = malloc((size_t)N * K * 2);
        for (size_t i = 0; i < (size_t)N * K; i++) w16[i] = tm_f32_to_f16(w[i]);
        void *dw16 = dup_dev(w16, (size_t)N * K * 2);
        float *dy2 = poisoned_dev((size_t)M * N);
        seslm_cuda_linear_f16(dy2, dx, dw16, db, M, N, K);
        snprintf(what, sizeof what, "linear f16 (cuBLAS) %dx%dx%d", M, N, K);
        compare_dev(what, dy2, want, (size_t)M * N, 2e-2, 1e-2);
        seslm_cuda_free(dw16), seslm_cuda_free(dy2);
        free(w16);
        // INT8 weights through the backend (quantize + mma + fused dequantization) vs cpu-ref's INT8 linear
        int8_t *q = malloc((size_t)N * K);
        float *qs = malloc(N * 4);
        seslm_quantize_weight(q, qs, w, N, K);
        seslm_weight hq = {.q = q, .qscale = qs, .N = N, .K = K};
        ref->linear(want, x, &hq, b, M);
        CHECK(cu->weight_upload(&dw, &hq) == 0);
        seslm_cuda_free(dy);
        dy = poisoned_dev((size_t)M * N);
        cu->linear(dy, dx, &dw, db, M);
        snprintf(what, sizeof what, "linear int8 (backend) %dx%dx%d", M, N, K);
        compare_dev(what, dy, want, (size_t)M * N, 0, 0); // bit for bit: same int8 values, same rounding
        cu->weight_free(&dw);
        seslm_cuda_free(dx), seslm_cuda_free(db), seslm_cuda_free(dy);
        free(x), free(w), free(b), free(want), free(q), free(qs);
    }
}

// ---- the whole forward pass ------------------------------------------------------------------------

// cuda (FP32: cosine >= 0.9999) or cuda-fp16 (>= 0.999) against cpu-ref, per sequence
static void forward_compare_on(const char *backend, double min_cos, const char *what, const seslm_model *m,
                               int with_masks) {
    const seslm_model_config *c = seslm_model_get_config(m);
    seslm_encoder *er = NULL, *eg = NULL;
    seslm_encoder_opts o_ref = {.backend = "cpu-ref", .max_batch = 8}, o_gpu = {.backend = backend, .max_batch = 8};
    CHECK_MSG(seslm_encoder_new(&er, m, &o_ref) == SESLM_OK, "%s", seslm_last_error());
    CHECK_MSG(seslm_encoder_new(&eg, m, &o_gpu) == SESLM_OK, "%s: %s encoder: %s", what, backend, seslm_last_error());
    if (!er || !eg) {
        seslm_encoder_free(er), seslm_encoder_free(eg);
        return;
    }
    if (with_masks) {
        static float hm[TM_MAX_LAYERS][64], nm[TM_MAX_LAYERS][64];
        const float *hp[TM_MAX_LAYERS], *np[TM_MAX_LAYERS];
        for (int l = 0; l < c->n_layers; l++) {
            for (int h = 0; h < c->layers[l].n_heads; h++) hm[l][h] = h == 1 ? 0.0f : h == 2 ? 0.5f : 1.0f;
            for (int f = 0; f < c->layers[l].ffn_dim; f++) nm[l][f] = f % 5 == 0 ? 0.0f : 1.0f;
            hp[l] = hm[l], np[l] = nm[l];
        }
        CHECK(seslm_encoder_set_masks(er, hp, np) == SESLM_OK);
        CHECK_MSG(seslm_encoder_set_masks(eg, hp, np) == SESLM_OK, "%s", seslm_last_error());
    }
    const int V = c->vocab_size;
    for (int it = 0; it < 6; it++) {
        int32_t ids[8][32];
        const int32_t *rows[8];
        int lens[8], B = 1 + (int)(tm_rand_u32() % 8);
        for (int b = 0; b < B; b++) {
            lens[b] = 1 + (int)(tm_rand_u32() % 32);
            for (int i = 0; i < lens[b]; i++) ids[b][i] = (int32_t)(tm_rand_u32() % (uint32_t)V);
            rows[b] = ids[b];
        }
        float a[8 * 64], g[8 * 64];
        for (int i = 0; i < 8 * 64; i++) g[i] = NAN;
        CHECK(seslm_encoder_forward_ids(er, rows, lens, B, a) == SESLM_OK);
        CHECK_MSG(seslm_encoder_forward_ids(eg, rows, lens, B, g) == SESLM_OK, "%s: %s", what, seslm_last_error());
        for (int b = 0; b < B; b++) {
            double dot = 0, na = 0, ng = 0;
            for (int k = 0; k < c->hidden; k++) {
                dot += (double)a[b * c->hidden + k] * g[b * c->hidden + k];
                na += (double)a[b * c->hidden + k] * a[b * c->hidden + k];
                ng += (double)g[b * c->hidden + k] * g[b * c->hidden + k];
            }
            const double cosv = dot / sqrt(na * ng);
            CHECK_MSG(cosv >= min_cos, "%s on %s: batch %d sequence %d (len %d): cosine %.6f", what, backend, it, b,
                      lens[b], cosv);
        }
        // the intent head's input: features of every layer (the device pass brings the earlier ones back),
        // each layer's block against the reference
        const int K = c->n_layers, KC = K * c->hidden;
        static float fa[8 * 64 * TM_MAX_LAYERS], fg[8 * 64 * TM_MAX_LAYERS];
        for (int i = 0; i < B * KC; i++) fg[i] = NAN;
        CHECK(seslm_encoder_features_ids(er, rows, lens, B, K, fa) == SESLM_OK);
        CHECK_MSG(seslm_encoder_features_ids(eg, rows, lens, B, K, fg) == SESLM_OK, "%s: features: %s", what,
                  seslm_last_error());
        for (int b = 0; b < B; b++)
            for (int j = 0; j < K; j++) {
                const float *x = fa + (size_t)b * KC + (size_t)j * c->hidden, *y = fg + (size_t)b * KC + (size_t)j * c->hidden;
                double dot = 0, nx = 0, ny = 0;
                for (int k = 0; k < c->hidden; k++) dot += (double)x[k] * y[k], nx += (double)x[k] * x[k], ny += (double)y[k] * y[k];
                const double cosv = dot / sqrt(nx * ny);
                CHECK_MSG(cosv >= min_cos, "%s on %s: features of layer %d, batch %d sequence %d: cosine %.6f", what,
                          backend, j, it, b, cosv);
            }
    }
    seslm_encoder_free(er), seslm_encoder_free(eg);
}

static void forward_compare(const char *what, const seslm_model *m, int with_masks) {
    forward_compare_on("cuda", 0.9999, what, m, with_masks);
    forward_compare_on("cuda-fp16", 0.999, what, m, with_masks);
}

// One (batch, tokens) shape again and again with different splits and ids: the first pass runs as is,
// the second is recorded as a CUDA graph, the rest replay it (the kernels read lengths and ids from
// device memory, so one graph serves every split). Masks set in between drop the recorded graphs.
static void test_graph_replay(const seslm_model *m) {
    const seslm_model_config *c = seslm_model_get_config(m);
    seslm_encoder *er = NULL, *eg = NULL;
    seslm_encoder_opts o_ref = {.backend = "cpu-ref", .max_batch = 3}, o_gpu = {.backend = "cuda", .max_batch = 3};
    CHECK(seslm_encoder_new(&er, m, &o_ref) == SESLM_OK);
    CHECK_MSG(seslm_encoder_new(&eg, m, &o_gpu) == SESLM_OK, "%s", seslm_last_error());
    if (!er || !eg) {
        seslm_encoder_free(er), seslm_encoder_free(eg);
        return;
    }
    static const int splits[][3] = {{10, 10, 10}, {1, 20, 9}, {28, 1, 1}, {5, 5, 20}, {3, 26, 1}, {9, 9, 12}};
    for (int it = 0; it < 6; it++) {
        if (it == 4) { // masks: the recorded graph (without masks) must not be replayed
            static float hm[TM_MAX_LAYERS][64];
            const float *hp[TM_MAX_LAYERS];
            for (int l = 0; l < c->n_layers; l++) {
                for (int h = 0; h < c->layers[l].n_heads; h++) hm[l][h] = h == 0 ? 0.0f : 1.0f;
                hp[l] = hm[l];
            }
            CHECK(seslm_encoder_set_masks(er, hp, NULL) == SESLM_OK);
            CHECK(seslm_encoder_set_masks(eg, hp, NULL) == SESLM_OK);
        }
        int32_t ids[3][32];
        const int32_t *rows[3];
        for (int b = 0; b < 3; b++) {
            for (int i = 0; i < splits[it][b]; i++) ids[b][i] = (int32_t)(tm_rand_u32() % (uint32_t)c->vocab_size);
            rows[b] = ids[b];
        }
        float a[3 * 64], g[3 * 64];
        for (int i = 0; i < 3 * 64; i++) g[i] = NAN;
        CHECK(seslm_encoder_forward_ids(er, rows, splits[it], 3, a) == SESLM_OK);
        CHECK_MSG(seslm_encoder_forward_ids(eg, rows, splits[it], 3, g) == SESLM_OK, "%s", seslm_last_error());
        for (int b = 0; b < 3; b++) {
            double dot = 0, na = 0, ng = 0;
            for (int k = 0; k < c->hidden; k++) {
                dot += (double)a[b * c->hidden + k] * g[b * c->hidden + k];
                na += (double)a[b * c->hidden + k] * a[b * c->hidden + k];
                ng += (double)g[b * c->hidden + k] * g[b * c->hidden + k];
            }
            CHECK_MSG(dot / sqrt(na * ng) >= 0.9999, "graph replay pass %d sequence %d: cosine %.6f", it, b,
                      dot / sqrt(na * ng));
        }
    }
    seslm_encoder_free(er), seslm_encoder_free(eg);
}

static seslm_model *recompile_q8(const seslm_model *parent) {
    char path[4096], out[4096];
    snprintf(path, sizeof path, "%s/plan.json", g_root);
    FILE *f = fopen(path, "w");
    if (!f) return NULL;
    fprintf(f, "{\"format\": \"seslm-plan\", \"version\": 1, \"method\": \"test\", \"layers\": "
               "[{\"layer\": 0, \"remove_heads\": [1], \"remove_neurons\": [0, 3]},"
               " {\"layer\": 1, \"remove_heads\": [], \"remove_neurons\": [5]}]}\n");
    fclose(f);
    seslm_plan pl;
    CHECK_MSG(seslm_plan_read_json(&pl, seslm_model_get_config(parent), path) == SESLM_OK, "%s", seslm_last_error());
    const int V = seslm_model_get_config(parent)->vocab_size;
    uint64_t *counts = calloc((size_t)V, sizeof *counts);
    for (int i = 0; i < V; i++) counts[i] = (uint64_t)(i * 7 % 13);
    seslm_recompile_opts q8 = {
        .ridge = 1e-3, .quantize_int8 = 1, .compress_embeddings = 1, .token_counts = counts, .n_exact = 7};
    snprintf(out, sizeof out, "%s/int8", g_root);
    seslm_status st = seslm_recompile_run(parent, &pl, &q8, out, NULL);
    seslm_plan_free(&pl);
    free(counts);
    CHECK_MSG(st == SESLM_OK, "recompile: %s", seslm_last_error());
    seslm_model *m = NULL;
    if (st == SESLM_OK) CHECK_MSG(seslm_model_load(&m, out) == SESLM_OK, "%s", seslm_last_error());
    return m;
}

static seslm_model *write_load(const tm_model *tm, const char *sub) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", g_root, sub);
    mkdir(dir, 0755);
    CHECK(tm_write(tm, dir, NULL));
    seslm_model *m = NULL;
    CHECK_MSG(seslm_model_load(&m, dir) == SESLM_OK, "%s", seslm_last_error());
    return m;
}

static void test_forward(void) {
    tm_model full, p1, p2;
    tm_init(&full, 41);
    seslm_model *m = write_load(&full, "full");
    if (m) {
        forward_compare("tiny F32", m, 0);
        forward_compare("tiny F32 + masks", m, 1);
        test_graph_replay(m);
        seslm_model *q = recompile_q8(m);
        if (q) forward_compare("tiny INT8 + compressed embeddings", q, 0);
        seslm_model_free(q);
    }
    seslm_model_free(m);
    // per-layer widths: a neuron-compacted FFN and fewer heads in layer 0, no heads at all in layer 1
    tm_prune(&p1, &full, 0, 3, 11);
    tm_prune(&p2, &p1, 1, 0, 5);
    m = write_load(&p2, "pruned");
    if (m) forward_compare("tiny pruned (3 heads / 11 neurons, 0 heads / 5 neurons)", m, 0);
    seslm_model_free(m);
    tm_free(&full), tm_free(&p1), tm_free(&p2);
}

// quant.h top1: the device quantizer gives the C one's bytes, scales, indices and values bit for bit (a massive
// channel per row, a tie, a zero row, a poisoned row), and the top terms are added as seslm_q8_add_top1_ref
static void test_quantize_top1(void) {
    const int M = 70, K = 384, N = 1536, Kp = seslm_cuda_kpad(K);
    float *x = rand_vec((size_t)M * K, 1.0f), *w = rand_vec((size_t)N * K, 0.2f);
    for (int m = 0; m < M; m++) x[(size_t)m * K + (m * 13) % K] = m % 2 ? -50.0f : 70.0f;
    x[(size_t)3 * K + 5] = -x[(size_t)3 * K + (3 * 13) % K]; // two equal |max|: the first index wins
    for (int k = 0; k < K; k++) x[(size_t)4 * K + k] = 0.0f;
    x[(size_t)5 * K + 9] = NAN;
    int8_t *q = malloc((size_t)M * Kp), *qg = malloc((size_t)M * Kp), *qw = malloc((size_t)N * K), *qwp = calloc((size_t)N * Kp, 1);
    float *s = malloc(M * 4), *sg = malloc(M * 4), *tv = malloc(M * 4), *tvg = malloc(M * 4), *sw = malloc(N * 4);
    int32_t *ti = malloc(M * 4), *tig = malloc(M * 4);
    seslm_quantize_rows_top1(q, s, ti, tv, x, M, K, Kp);
    seslm_quantize_weight(qw, sw, w, N, K);
    for (int n = 0; n < N; n++) memcpy(qwp + (size_t)n * Kp, qw + (size_t)n * K, K);
    float *dx = dup_dev(x, (size_t)M * K * 4), *dsa = poisoned_dev(M), *dtv = poisoned_dev(M), *dsw = dup_dev(sw, N * 4);
    int8_t *dq = dup_dev(NULL, (size_t)M * Kp), *dqw = dup_dev(qwp, (size_t)N * Kp);
    int32_t *dti = dup_dev(NULL, M * 4);
    seslm_cuda_memset(dq, 0x5a, (size_t)M * Kp);
    seslm_cuda_quantize_rows_top1(dq, dsa, dti, dtv, dx, M, K, Kp);
    CHECK(seslm_cuda_download(qg, dq, (size_t)M * Kp) == 0 && seslm_cuda_download(sg, dsa, M * 4) == 0 &&
          seslm_cuda_download(tig, dti, M * 4) == 0 && seslm_cuda_download(tvg, dtv, M * 4) == 0);
    int bad = memcmp(q, qg, (size_t)M * Kp) != 0;
    for (int m = 0; m < M; m++)
        bad += !(memcmp(&s[m], &sg[m], 4) == 0 || (isnan(s[m]) && isnan(sg[m]))) || tv[m] != tvg[m] || (tv[m] != 0 && ti[m] != tig[m]);
    CHECK_MSG(bad == 0, "quantize_rows_top1 %dx%d: %d rows differ from seslm_quantize_rows_top1", M, K, bad);
    float *y = rand_vec((size_t)M * N, 1.0f), *yg = malloc((size_t)M * N * 4), *dy = dup_dev(y, (size_t)M * N * 4);
    for (int m = 0; m < M; m++) tv[m] = isnan(tv[m]) ? 0.0f : tv[m];
    seslm_q8_add_top1_ref(y, N, ti, tv, qw, K, sw, M, N);
    seslm_cuda_add_top1(dy, dti, dtv, dqw, Kp, dsw, M, N);
    CHECK(seslm_cuda_download(yg, dy, (size_t)M * N * 4) == 0);
    CHECK_MSG(memcmp(y, yg, (size_t)M * N * 4) == 0, "add_top1 %dx%d: differs from seslm_q8_add_top1_ref", M, N);
    seslm_cuda_free(dx), seslm_cuda_free(dsa), seslm_cuda_free(dtv), seslm_cuda_free(dsw), seslm_cuda_free(dq);
    seslm_cuda_free(dqw), seslm_cuda_free(dti), seslm_cuda_free(dy);
    free(x), free(w), free(q), free(qg), free(qw), free(qwp), free(s), free(sg), free(tv), free(tvg), free(sw), free(ti);
    free(tig), free(y), free(yg);
}

#endif // SESLM_HAVE_CUDA

int main(void) {
    ref = seslm_backend_cpu_ref();
    g_root = tm_mkdtemp("kernels_cuda");
    if (seslm_gpu_count() <= 0) {
        check_refused_without_gpu();
        tm_rmtree(g_root);
        free(g_root);
        if (t_failures) return test_report("test_kernels_cuda");
        TEST_SKIP_UNLESS("SESLM_REQUIRE_GPU", "no GPU (the cuda backend was refused with a clear error: %d checks passed)", t_checks);
    }
#ifdef SESLM_HAVE_CUDA
    tm_seed(20261125);
    test_embed();
    test_layernorm();
    test_gelu();
    test_attention();
    test_pool();
    test_rows();
    test_qgemm();
    test_quantize_top1();
    test_linear();
    test_forward();
#endif
    tm_rmtree(g_root);
    free(g_root);
    return test_report("test_kernels_cuda");
}
