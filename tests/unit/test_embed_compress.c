/* test_embed_compress.c — embedding compression below 4 bits (issue 13): product-quantized rare rows,
 * INT8 exact rows, INT8 position / token-type tables.
 *   * seslm_pq_train against a brute-force reference written here: every code is the nearest centroid of
 *     its sub-vector (in double; float rounding allowed), at most 256 distinct training rows are reproduced exactly,
 *     clustered data is recovered to its noise level, Lloyd iterations do not raise the error, the result does
 *     not depend on the thread count and is the same on a second run (fixed seed);
 *   * the writer + loader on the tiny random model (tests/tiny_model.h): --embeddings pq8 with telemetry
 *     counts: exact ids INT8 within half a step of the parent, seen ids 4-bit within half a step, unseen
 *     ids product-quantized (fewer than 256 of them: reproduced exactly), positions INT8 within half a
 *     step; cpu and cpu-ref backends agree; widening reads the same rows; the ONNX export accepts it;
 *     without telemetry every non-exact id is product-quantized;
 *   * malformed files are refused with a message: codes of the wrong row count, codes without weight_ids,
 *     weight_ids overlapping the exact ids, a non-finite codebook entry. */
#include "embed_pq.h"
#include "export_onnx.h"
#include "pool.h"
#include "recompile.h"
#include "safetensors.h"
#include "safetensors_write.h"
#include "test.h"
#include "tiny_model.h"

#include "model_internal.h"

static char *g_root;

static const char *const texts[] = {"the lazy fox is good.", "hello cat", "brown dog sat on a mat?", "world",
                                    "quick quick brown", "it sat on the mat"};
enum { NT = 6 };

// ---- the product quantizer against a brute-force reference ----------------------------------------

static double sqdist(const float *x, const float *c, int d) {
    double s = 0;
    for (int j = 0; j < d; j++) s += ((double)x[j] - c[j]) * ((double)x[j] - c[j]);
    return s;
}

/* 1 when centroid `code` of sub-space book cen (256, d) is a nearest one to x (d), by a brute-force search
 * in double; the kernel sums in float, so a centroid within float rounding of the best also counts. */
static int is_nearest(const float *x, const float *cen, int d, int code) {
    double best = sqdist(x, cen, d);
    for (int k = 1; k < SESLM_PQ_K; k++) best = fmin(best, sqdist(x, cen + (size_t)k * d, d));
    return sqdist(x, cen + (size_t)code * d, d) <= best * (1 + 1e-5) + 1e-12;
}

static double recon_mse(const float *rows, const uint8_t *codes, const float *book, int N, int C, int d) {
    const int S = C / d;
    double e = 0;
    for (int r = 0; r < N; r++)
        for (int s = 0; s < S; s++)
            for (int j = 0; j < d; j++) {
                const double t = rows[(size_t)r * C + s * d + j] - book[((size_t)s * SESLM_PQ_K + codes[(size_t)r * S + s]) * d + j];
                e += t * t;
            }
    return e / ((double)N * C);
}

static void test_pq_kernel(void) {
    enum { N = 3000, C = 16, D = 4, S = C / D };
    float *rows = malloc((size_t)N * C * sizeof *rows), *book = malloc((size_t)S * SESLM_PQ_K * D * sizeof *book);
    float *book2 = malloc((size_t)S * SESLM_PQ_K * D * sizeof *book2), *centers = malloc((size_t)S * 200 * D * sizeof *centers);
    uint8_t *codes = malloc((size_t)N * S), *codes2 = malloc((size_t)N * S);
    if (!rows || !book || !book2 || !centers || !codes || !codes2) {
        CHECK(0);
        goto out;
    }
    // clustered data: 200 centres per sub-space, noise 1e-3 around them
    tm_seed(41);
    for (int i = 0; i < S * 200 * D; i++) centers[i] = tm_rand_sym();
    for (int r = 0; r < N; r++)
        for (int s = 0; s < S; s++) {
            const int k = (int)(tm_rand_u32() % 200);
            for (int j = 0; j < D; j++) rows[(size_t)r * C + s * D + j] = centers[((size_t)s * 200 + k) * D + j] + 1e-3f * tm_rand_sym();
        }
    memset(codes, 0xEE, (size_t)N * S);
    double mse = -1;
    CHECK_MSG(seslm_pq_train(book, codes, rows, N, C, D, 12, 0, 7, &mse) == SESLM_OK, "%s", seslm_last_error());
    // every code is the nearest centroid (the reference search is written here)
    int bad = 0;
    for (int r = 0; r < N; r++)
        for (int s = 0; s < S; s++) {
            bad += !is_nearest(rows + (size_t)r * C + s * D, book + (size_t)s * SESLM_PQ_K * D, D, codes[(size_t)r * S + s]);
        }
    CHECK_MSG(bad == 0, "%d codes are not the nearest centroid", bad);
    const double m12 = recon_mse(rows, codes, book, N, C, D);
    CHECK_MSG(fabs(m12 - mse) <= 1e-6 * (1 + m12), "reported mse %g, measured %g", mse, m12);
    // 256 centroids for 200 clusters: the error is the noise level (uniform in +-1e-3: variance 3.3e-7)
    CHECK_MSG(m12 < 2e-6, "clustered data: mse %g", m12);
    // Lloyd iterations do not make the k-means++ start worse
    CHECK(seslm_pq_train(book2, codes2, rows, N, C, D, 0, 0, 7, &mse) == SESLM_OK);
    CHECK_MSG(mse >= m12 * 0.9999, "no iterations: mse %g, 12 iterations: %g", mse, m12);
    // determinism: same seed, other thread counts -> the same bytes
    for (int th = 1; th <= 2; th++) {
        seslm_pool_set_threads(th);
        memset(codes2, 0, (size_t)N * S);
        CHECK(seslm_pq_train(book2, codes2, rows, N, C, D, 12, 0, 7, NULL) == SESLM_OK);
        CHECK_MSG(memcmp(book, book2, (size_t)S * SESLM_PQ_K * D * sizeof *book) == 0 && memcmp(codes, codes2, (size_t)N * S) == 0,
                  "%d threads: another codebook", th);
    }
    seslm_pool_set_threads(0);
    // a training sample (max_train) still encodes every row with its nearest centroid
    CHECK(seslm_pq_train(book2, codes2, rows, N, C, D, 12, 1000, 7, &mse) == SESLM_OK);
    bad = 0;
    for (int r = 0; r < N; r++)
        for (int s = 0; s < S; s++) {
            bad += !is_nearest(rows + (size_t)r * C + s * D, book2 + (size_t)s * SESLM_PQ_K * D, D, codes2[(size_t)r * S + s]);
        }
    CHECK_MSG(bad == 0 && mse < 1e-3, "sampled training: %d codes not nearest, mse %g", bad, mse);
    // at most 256 rows: reproduced exactly
    CHECK(seslm_pq_train(book2, codes2, rows, 100, C, D, 12, 0, 7, &mse) == SESLM_OK);
    CHECK_MSG(mse == 0.0 && recon_mse(rows, codes2, book2, 100, C, D) == 0.0, "100 rows: mse %g", mse);
    // bad sizes
    CHECK(seslm_pq_train(book2, codes2, rows, N, C, 5, 12, 0, 7, NULL) == SESLM_ERR_ARG);
    CHECK(seslm_pq_train(book2, codes2, rows, 0, C, D, 12, 0, 7, NULL) == SESLM_ERR_ARG);
out:
    free(rows), free(book), free(book2), free(centers), free(codes), free(codes2);
}

// ---- writer + loader on the tiny model ---------------------------------------------------------

static void embed(const seslm_model *m, const char *backend, float *out) {
    seslm_encoder *e = NULL;
    seslm_encoder_opts o = {.backend = backend, .n_threads = 1, .max_batch = NT};
    CHECK_MSG(seslm_encoder_new(&e, m, &o) == SESLM_OK, "%s", seslm_last_error());
    if (!e) return;
    CHECK(seslm_encoder_embed_texts(e, texts, NULL, NT, out) == SESLM_OK);
    seslm_encoder_free(e);
}

static seslm_status compress(const seslm_model *parent, const char *name, const seslm_recompile_opts *o, seslm_recompile_stats *rs) {
    const int L = seslm_model_get_config(parent)->n_layers;
    seslm_plan pl;
    memset(&pl, 0, sizeof pl);
    int nz[8] = {0}, *nn[8] = {0};
    pl.n_layers = L, pl.n_remove_heads = nz, pl.n_remove_neurons = nz, pl.remove_heads = nn, pl.remove_neurons = nn;
    char out[4096];
    snprintf(out, sizeof out, "%s/%s", g_root, name);
    return seslm_recompile_run(parent, &pl, o, out, rs);
}

static seslm_model *load(const char *name) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", g_root, name);
    seslm_model *m = NULL;
    CHECK_MSG(seslm_model_load(&m, dir) == SESLM_OK, "load %s: %s", name, seslm_last_error());
    return m;
}

static float row_amax(const float *r, int C) {
    float a = 0;
    for (int c = 0; c < C; c++) a = fmaxf(a, fabsf(r[c]));
    return a;
}

static void test_pq_model(const seslm_model *parent) {
    const seslm_model_config *pc = seslm_model_get_config(parent);
    const int C = pc->hidden, V = pc->vocab_size, P = pc->max_position;
    uint64_t *counts = calloc((size_t)V, sizeof *counts);
    for (int i = 0; i < V; i++) counts[i] = i % 3 == 0 ? 0 : (uint64_t)(i * 5 % 11); // a third of the ids unseen
    seslm_recompile_opts o = {.ridge = 1e-3, .compress_embeddings = SESLM_EMB_PQ8, .token_counts = counts, .n_exact = 6,
                              .exact_int8 = 1, .position_int8 = 1};
    seslm_recompile_stats rs;
    memset(&rs, 0, sizeof rs);
    CHECK_MSG(compress(parent, "pq8", &o, &rs) == SESLM_OK, "%s", seslm_last_error());
    seslm_model *q = load("pq8");
    if (!q) goto out;
    CHECK(q->word.row_slot && q->word.pq_codes && q->word.q4 && q->word.pq_dim == 8 && seslm_model_is_quantized(q));
    int exact = 0, four = 0, pq = 0, bad = 0;
    float row[64];
    for (int id = 0; id < V; id++) {
        seslm_embedding_row(row, &q->word, id, C);
        const float *pr = parent->word_emb + (size_t)id * C;
        const float half = 0.5f * row_amax(pr, C);
        if (q->word.exact_slot[id] >= 0) { // INT8 per row: within half a step (max|w| / 127)
            exact++;
            for (int c = 0; c < C; c++) bad += !(fabsf(row[c] - pr[c]) <= half / 127.0f * 1.0001f);
        } else if (q->word.row_slot[id] >= 0) { // seen: 4-bit, within half a step (max|w| / 7)
            four++;
            bad += counts[id] == 0;
            for (int c = 0; c < C; c++) bad += !(fabsf(row[c] - pr[c]) <= half / 7.0f * 1.0001f);
        } else { // unseen: product-quantized; fewer than 256 rows, so reproduced exactly
            pq++;
            bad += counts[id] != 0 || memcmp(row, pr, (size_t)C * sizeof *row) != 0;
        }
    }
    CHECK_MSG(bad == 0, "%d rows differ from the parent beyond their format's step", bad);
    CHECK_MSG(exact >= 6 && four > 0 && pq >= V / 3 - 6 && exact + four + pq == V && rs.pq_rows == pq && rs.q4_rows == four,
              "rows: %d exact, %d 4-bit, %d PQ (stats %d / %d)", exact, four, pq, rs.pq_rows, rs.q4_rows);
    CHECK_MSG(rs.pq_row_cos > 0.999999 && rs.pq_row_cos_int4 > 0.9 && rs.pq_row_cos_int4 < 1.0, "row cosines: pq %.6f, int4 %.6f",
              rs.pq_row_cos, rs.pq_row_cos_int4);
    bad = 0; // positions INT8 per row
    for (int p = 0; p < P; p++) {
        const float *pr = parent->pos_emb + (size_t)p * C, half = 0.5f * row_amax(parent->pos_emb + (size_t)p * C, C);
        for (int c = 0; c < C; c++) bad += !(fabsf(q->pos_emb[(size_t)p * C + c] - pr[c]) <= half / 127.0f * 1.0001f);
    }
    for (int t = 0; t < pc->type_vocab_size; t++) { // token types too
        const float *pr = parent->type_emb + (size_t)t * C, half = 0.5f * row_amax(pr, C);
        for (int c = 0; c < C; c++) bad += !(fabsf(q->type_emb[(size_t)t * C + c] - pr[c]) <= half / 127.0f * 1.0001f);
    }
    CHECK_MSG(bad == 0, "position rows: %d values beyond half a step", bad);
    // the file holds INT8 exact rows and positions
    char path[4200];
    snprintf(path, sizeof path, "%s/pq8/model.safetensors", g_root);
    st_file f;
    if (st_open(&f, path) == SESLM_OK) {
        const st_tensor *er = st_find(&f, "embeddings.word_embeddings.exact_rows"), *pe = st_find(&f, "embeddings.position_embeddings.weight");
        CHECK(er && er->dtype == ST_I8 && st_find(&f, "embeddings.word_embeddings.exact_rows_scale"));
        CHECK(pe && pe->dtype == ST_I8 && st_find(&f, "embeddings.position_embeddings.weight_scale"));
        const st_tensor *pc8 = st_find(&f, "embeddings.word_embeddings.pq_codes");
        CHECK(pc8 && pc8->dtype == ST_U8 && pc8->shape[0] == pq && pc8->shape[1] == C / 8);
        st_close(&f);
    } else {
        CHECK_MSG(0, "%s", seslm_last_error());
    }
    // both CPU backends read the same table; the student is close to the parent
    float a[NT * 16], b[NT * 16], p[NT * 16];
    embed(q, "cpu", a);
    embed(q, "cpu-ref", b);
    embed(parent, "cpu", p);
    float dmax = 0;
    for (int i = 0; i < NT * C; i++) dmax = fmaxf(dmax, fabsf(a[i] - b[i]));
    CHECK_MSG(dmax < 1e-5f, "pq8 table: cpu vs cpu-ref differ by %g", dmax);
    double cs = 0;
    for (int i = 0; i < NT; i++) {
        double ab = 0, aa = 0, bb = 0;
        for (int c = 0; c < C; c++) ab += a[i * C + c] * p[i * C + c], aa += a[i * C + c] * a[i * C + c], bb += p[i * C + c] * p[i * C + c];
        cs += ab / sqrt(aa * bb) / NT;
    }
    CHECK_MSG(cs > 0.95 && cs < 1.0, "pq8 student vs parent: mean cos %.6f", cs);
    // the ONNX export reads the rows as the kernels do
    snprintf(path, sizeof path, "%s/pq8.onnx", g_root);
    CHECK_MSG(seslm_export_onnx(q, path, 0) == SESLM_OK, "export: %s", seslm_last_error());
    // widening (plan / recompile of this student) gives the same rows
    float *rows = malloc((size_t)V * C * sizeof *rows);
    for (int id = 0; rows && id < V; id++) seslm_embedding_row(rows + (size_t)id * C, &q->word, id, C);
    CHECK(seslm_model_widen(q) == SESLM_OK && q->word.f32);
    CHECK(rows && q->word.f32 && memcmp(rows, q->word.f32, (size_t)V * C * sizeof *rows) == 0);
    free(rows);
    seslm_model_free(q);
    // pq4 without telemetry: every non-exact id product-quantized, no 4-bit table at all
    seslm_recompile_opts o4 = {.ridge = 1e-3, .compress_embeddings = SESLM_EMB_PQ4, .n_exact = 6};
    CHECK_MSG(compress(parent, "pq4", &o4, &rs) == SESLM_OK, "%s", seslm_last_error());
    q = load("pq4");
    if (q) {
        CHECK(q->word.pq_dim == 4 && !q->word.q4 && !q->word.q && q->word.n_rows == 0 && rs.q4_rows == 0 && rs.pq_rows == V - rs.exact_rows);
        bad = 0;
        for (int id = 0; id < V; id++) {
            seslm_embedding_row(row, &q->word, id, C);
            bad += memcmp(row, parent->word_emb + (size_t)id * C, (size_t)C * sizeof *row) != 0; // F32 exact rows, PQ exact
        }
        CHECK_MSG(bad == 0, "pq4 without telemetry: %d rows differ", bad);
        CHECK(q->pos_emb == parent->pos_emb || memcmp(q->pos_emb, parent->pos_emb, (size_t)P * C * 4) == 0);
        embed(q, "cpu", a);
        embed(q, "cpu-ref", b);
        dmax = 0;
        for (int i = 0; i < NT * C; i++) dmax = fmaxf(dmax, fabsf(a[i] - b[i]));
        CHECK_MSG(dmax < 1e-5f, "pq4 table: cpu vs cpu-ref differ by %g", dmax);
    }
    seslm_model_free(q);
out:
    free(counts);
}

// ---- malformed files ----------------------------------------------------------------------------

typedef enum { BAD_CODE_ROWS, BAD_NO_IDS, BAD_OVERLAP, BAD_BOOK_NAN, BAD_SCALE_MISSING } bad_kind;

/* Rewrites DIR/model.safetensors with one defect; returns 1 when done. */
static int rewrite(const char *name, bad_kind kind) {
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/%s/model.safetensors", g_root, name);
    snprintf(tmp, sizeof tmp, "%s.new", path);
    st_file f;
    if (st_open(&f, path) != SESLM_OK) return 0;
    st_write_tensor *t = calloc((size_t)f.n_tensors + 1, sizeof *t);
    void *own = NULL;
    int n = 0;
    for (int i = 0; t && i < f.n_tensors; i++) {
        const st_tensor *s = &f.tensors[i];
        st_write_tensor w = {.name = s->name, .dtype = s->dtype, .ndim = s->ndim, .data = s->data};
        memcpy(w.shape, s->shape, sizeof w.shape);
        if (kind == BAD_NO_IDS && !strcmp(s->name, "embeddings.word_embeddings.weight_ids")) continue;
        if (kind == BAD_SCALE_MISSING && !strcmp(s->name, "embeddings.word_embeddings.exact_rows_scale")) continue;
        if (kind == BAD_CODE_ROWS && !strcmp(s->name, "embeddings.word_embeddings.pq_codes")) w.shape[0]--;
        if (kind == BAD_OVERLAP && !strcmp(s->name, "embeddings.word_embeddings.weight_ids")) {
            const st_tensor *ex = st_find(&f, "embeddings.word_embeddings.exact_ids");
            int32_t *ids = malloc(s->nbytes + 4);
            memcpy(ids, s->data, s->nbytes);
            ids[0] = ((const int32_t *)ex->data)[0];
            w.data = own = ids;
        }
        if (kind == BAD_BOOK_NAN && !strcmp(s->name, "embeddings.word_embeddings.pq_codebook")) {
            float *b = malloc(s->nbytes + 4);
            memcpy(b, s->data, s->nbytes);
            b[5] = NAN;
            w.data = own = b;
        }
        t[n++] = w;
    }
    const int ok = t && st_write(tmp, t, n, NULL) == SESLM_OK && rename(tmp, path) == 0;
    free(t), free(own);
    st_close(&f);
    return ok;
}

static void test_malformed(const seslm_model *parent) {
    const int V = seslm_model_get_config(parent)->vocab_size;
    uint64_t *counts = calloc((size_t)V, sizeof *counts);
    for (int i = 0; i < V; i++) counts[i] = i % 2;
    const seslm_recompile_opts o = {.ridge = 1e-3, .compress_embeddings = SESLM_EMB_PQ8, .token_counts = counts, .n_exact = 4,
                                    .exact_int8 = 1};
    const struct {
        bad_kind k;
        const char *name, *msg;
    } cases[] = {{BAD_CODE_ROWS, "bad_rows", "pq_codes"},
                 {BAD_NO_IDS, "bad_ids", "weight_ids"},
                 {BAD_OVERLAP, "bad_overlap", "repeated"},
                 {BAD_BOOK_NAN, "bad_nan", "non-finite"},
                 {BAD_SCALE_MISSING, "bad_scale", "exact_rows_scale"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_MSG(compress(parent, cases[i].name, &o, NULL) == SESLM_OK, "%s", seslm_last_error());
        CHECK_MSG(rewrite(cases[i].name, cases[i].k), "rewrite %s", cases[i].name);
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/%s", g_root, cases[i].name);
        seslm_model *m = NULL;
        const seslm_status st = seslm_model_load(&m, dir);
        CHECK_MSG(st == SESLM_ERR_SHAPE && strstr(seslm_last_error(), cases[i].msg), "%s: status %d, '%s'", cases[i].name, (int)st,
                  seslm_last_error());
        seslm_model_free(m);
    }
    free(counts);
}

/* Both CPU backends' embed op on synthetic compressed tables at C = 64 (the fast backend's AVX-512 rows need C a
 * multiple of 32; the model above has C = 16): exact, 4-bit, INT8 and product-quantized rows, every nibble and
 * byte value, bit for bit (the fast rows must not fuse the scale product into the sums). */
static void check_embed_rows_c64(void) {
    enum { C = 64, V = 48, E = 6, R = 10, L = 12 };
    static float exact[E * C], pos[L * C], type[C], scale[V], book[(C / 8) * 256 * 8];
    static int8_t q8[V * C];
    static uint8_t q4[V * C / 2], codes[R * (C / 8)];
    static int32_t slot[V], rslot[V], ids[V];
    uint32_t st = 12345;
#define RND() ((st = st * 1664525u + 1013904223u) >> 8)
    for (int i = 0; i < E * C; i++) exact[i] = (float)RND() / (1 << 24) - 0.5f;
    for (int i = 0; i < L * C; i++) pos[i] = (float)RND() / (1 << 24) * 0.2f - 0.1f;
    for (int i = 0; i < C; i++) type[i] = (float)RND() / (1 << 24) * 0.05f;
    for (int i = 0; i < V; i++) scale[i] = 0.01f + (float)RND() / (1 << 24) * 0.05f;
    for (int i = 0; i < V * C; i++) q8[i] = (int8_t)(i % 255 - 127);
    for (int i = 0; i < V * C / 2; i++) q4[i] = (uint8_t)(i * 37 + 11);
    for (size_t i = 0; i < sizeof book / sizeof *book; i++) book[i] = (float)RND() / (1 << 24) - 0.5f;
    for (int i = 0; i < R * (C / 8); i++) codes[i] = (uint8_t)RND();
    for (int id = 0; id < V; id++) {
        slot[id] = id % 8 == 0 ? id / 8 : -1;                 // 6 exact rows
        rslot[id] = id % 5 == 1 ? -1 - (id / 5) % R : id;     // PQ rows among the others
        ids[id] = id;
    }
#undef RND
    int off[4] = {0, 12, 24, 36}, len[4] = {12, 12, 12, 12};
    float *a = malloc(sizeof(float) * V * C), *b = malloc(sizeof(float) * V * C);
    const seslm_backend *fast = seslm_backend_cpu_fast(), *ref = seslm_backend_cpu_ref();
    for (int t = 0; t < 2; t++) { // 4-bit, then INT8 rows
        seslm_embedding w = {.q = t ? q8 : NULL, .q4 = t ? NULL : q4, .scale = scale, .exact_slot = slot, .exact = exact,
                             .row_slot = rslot, .pq_codes = codes, .pq_book = book, .pq_dim = 8, .n_rows = V, .n_pq = R};
        for (int i = 0; i < V * C; i++) a[i] = NAN, b[i] = -1.0f;
        fast->embed(a, ids, off, len, 4, &w, pos, type, C);
        ref->embed(b, ids, off, len, 4, &w, pos, type, C);
        CHECK_MSG(memcmp(a, b, sizeof(float) * V * C) == 0, "embed C=64 %s rows: cpu and cpu-ref differ", t ? "INT8" : "4-bit");
    }
    free(a), free(b);
}

int main(void) {
    g_root = tm_mkdtemp("embed_compress");
    test_pq_kernel();
    check_embed_rows_c64();
    tm_model full;
    tm_init(&full, 31);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/parent", g_root);
    mkdir(dir, 0755);
    CHECK(tm_write(&full, dir, NULL));
    seslm_model *parent = NULL;
    CHECK_MSG(seslm_model_load(&parent, dir) == SESLM_OK, "load parent: %s", seslm_last_error());
    if (parent) {
        test_pq_model(parent);
        test_malformed(parent);
    }
    seslm_model_free(parent);
    tm_free(&full);
    tm_rmtree(g_root);
    free(g_root);
    return test_report("test_embed_compress");
}
