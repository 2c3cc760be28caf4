/* test_tiny_model.c — end-to-end checks on a tiny random BERT written to a temp dir (tiny_model.h):
 *   (a) "cpu" and "cpu-ref" agree with each other and with an independent double-precision forward
 *       pass written here, on texts and on ragged id batches;
 *   (b) per-layer structure ("seslm_layers"): a pruned model matches the independent forward, and a
 *       model cut to heads 0,1 / neurons 0..7 equals the full model whose other heads' value rows
 *       and other neurons' input rows are zero (and a 0-head / 0-FFN layer equals one whose value /
 *       FFN-input weights are all zero);
 *   (c) F16, BF16, unaligned F32 and "bert."-prefixed files load to exactly the expected floats;
 *   (d) an embedding does not depend on where a sequence sits in a ragged batch. */
#include "model_internal.h"
#include "test.h"
#include "tiny_runtime.h"

#include <math.h>

#define C_MAX 64
#define T_MAX 64

static char *g_root; // temp dir holding the model dirs

// ---- an independent forward pass (double precision, straight from the tm_model tensors) ---------


static void reference_embed(tm_model *m, const int32_t *ids, int n, float *out) {
    const int C = m->hidden, D = m->head_dim;
    static double x[T_MAX * C_MAX], q[T_MAX * C_MAX], k[T_MAX * C_MAX], v[T_MAX * C_MAX], ctx[T_MAX * C_MAX],
        r[T_MAX * C_MAX], h[T_MAX * 4 * C_MAX];
    const float *we = tm_ref_w(m, "embeddings.word_embeddings.weight", 0), *pe = tm_ref_w(m, "embeddings.position_embeddings.weight", 0),
                *te = tm_ref_w(m, "embeddings.token_type_embeddings.weight", 0);
    for (int t = 0; t < n; t++)
        for (int c = 0; c < C; c++) x[t * C + c] = (double)we[ids[t] * C + c] + pe[t * C + c] + te[c];
    tm_ref_layernorm(x, n, C, tm_ref_w(m, "embeddings.LayerNorm.weight", 0), tm_ref_w(m, "embeddings.LayerNorm.bias", 0));
    for (int l = 0; l < m->n_layers; l++) {
        const int H = m->l_heads[l], A = H * D, F = m->l_ffn[l];
        const float *ao_b = tm_ref_w(m, "encoder.layer.%d.attention.output.dense.bias", l);
        if (A > 0) {
            tm_ref_linear(q, x, tm_ref_w(m, "encoder.layer.%d.attention.self.query.weight", l), tm_ref_w(m, "encoder.layer.%d.attention.self.query.bias", l), n, A, C);
            tm_ref_linear(k, x, tm_ref_w(m, "encoder.layer.%d.attention.self.key.weight", l), tm_ref_w(m, "encoder.layer.%d.attention.self.key.bias", l), n, A, C);
            tm_ref_linear(v, x, tm_ref_w(m, "encoder.layer.%d.attention.self.value.weight", l), tm_ref_w(m, "encoder.layer.%d.attention.self.value.bias", l), n, A, C);
            for (int hh = 0; hh < H; hh++)
                for (int i = 0; i < n; i++) {
                    double s[T_MAX], mx = -INFINITY, sum = 0;
                    for (int j = 0; j < n; j++) {
                        double d = 0;
                        for (int e = 0; e < D; e++) d += q[i * A + hh * D + e] * k[j * A + hh * D + e];
                        s[j] = d / sqrt((double)D);
                        mx = fmax(mx, s[j]);
                    }
                    for (int j = 0; j < n; j++) sum += s[j] = exp(s[j] - mx);
                    for (int e = 0; e < D; e++) {
                        double acc = 0;
                        for (int j = 0; j < n; j++) acc += s[j] * v[j * A + hh * D + e];
                        ctx[i * A + hh * D + e] = acc / sum;
                    }
                }
            tm_ref_linear(r, ctx, tm_ref_w(m, "encoder.layer.%d.attention.output.dense.weight", l), ao_b, n, C, A);
        } else {
            for (int t = 0; t < n; t++)
                for (int c = 0; c < C; c++) r[t * C + c] = ao_b[c];
        }
        for (int i = 0; i < n * C; i++) x[i] += r[i];
        tm_ref_layernorm(x, n, C, tm_ref_w(m, "encoder.layer.%d.attention.output.LayerNorm.weight", l),
           tm_ref_w(m, "encoder.layer.%d.attention.output.LayerNorm.bias", l));
        const float *f2_b = tm_ref_w(m, "encoder.layer.%d.output.dense.bias", l);
        if (F > 0) {
            tm_ref_linear(h, x, tm_ref_w(m, "encoder.layer.%d.intermediate.dense.weight", l), tm_ref_w(m, "encoder.layer.%d.intermediate.dense.bias", l), n, F, C);
            for (int i = 0; i < n * F; i++) h[i] = 0.5 * h[i] * (1.0 + erf(h[i] / sqrt(2.0)));
            tm_ref_linear(r, h, tm_ref_w(m, "encoder.layer.%d.output.dense.weight", l), f2_b, n, C, F);
        } else {
            for (int t = 0; t < n; t++)
                for (int c = 0; c < C; c++) r[t * C + c] = f2_b[c];
        }
        for (int i = 0; i < n * C; i++) x[i] += r[i];
        tm_ref_layernorm(x, n, C, tm_ref_w(m, "encoder.layer.%d.output.LayerNorm.weight", l), tm_ref_w(m, "encoder.layer.%d.output.LayerNorm.bias", l));
    }
    double pooled[C_MAX], norm = 0;
    for (int c = 0; c < C; c++) {
        pooled[c] = 0;
        for (int t = 0; t < n; t++) pooled[c] += x[t * C + c];
        pooled[c] /= n;
        norm += pooled[c] * pooled[c];
    }
    norm = fmax(sqrt(norm), 1e-12);
    for (int c = 0; c < C; c++) out[c] = (float)(pooled[c] / norm);
}

// ---- helpers ---------------------------------------------------------------------------------------

static double max_abs_diff(const float *a, const float *b, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d; // NaN propagates as "not <=" -> becomes m
    }
    return m;
}

static double cosine(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / sqrt(aa * bb);
}

static int all_finite(const float *a, int n) {
    for (int i = 0; i < n; i++)
        if (!isfinite(a[i])) return 0;
    return 1;
}


static seslm_model *write_and_load(const tm_model *tm, const char *sub, const tm_write_opts *o) {
    return tr_write_and_load(g_root, sub, tm, o, "test_tiny_model");
}

static seslm_encoder *encoder(const seslm_model *m, const char *backend, int max_batch) {
    seslm_encoder *e = NULL;
    seslm_encoder_opts o = {.backend = backend, .n_threads = 2, .max_batch = max_batch};
    seslm_status st = seslm_encoder_new(&e, m, &o);
    CHECK_MSG(st == SESLM_OK && e, "encoder %s: %s", backend, seslm_last_error());
    if (!e) exit(test_report("test_tiny_model"));
    return e;
}

static void embed_ids(const seslm_model *m, const char *backend, const int32_t *const *rows, const int *lens, int n,
                      float *out) {
    seslm_encoder *e = encoder(m, backend, n);
    seslm_status st = seslm_encoder_forward_ids(e, rows, lens, n, out);
    CHECK_MSG(st == SESLM_OK, "forward_ids %s: %s", backend, seslm_last_error());
    seslm_encoder_free(e);
}

static void embed_texts(const seslm_model *m, const char *backend, const char *const *texts, int n, float *out) {
    seslm_encoder *e = encoder(m, backend, n);
    seslm_status st = seslm_encoder_embed_texts(e, texts, NULL, n, out);
    CHECK_MSG(st == SESLM_OK, "embed_texts %s: %s", backend, seslm_last_error());
    seslm_encoder_free(e);
}

// A ragged batch of random ids (ids < 39: row 39 of the word table holds the special values of (c)).
#define NB 9
static const int g_lens[NB] = {1, 2, 5, 17, 32, 3, 31, 8, 2};
static int32_t g_ids[NB][32];
static const int32_t *g_rows[NB];

static void make_batch(void) {
    tm_seed(77);
    for (int b = 0; b < NB; b++) {
        for (int t = 0; t < g_lens[b]; t++) g_ids[b][t] = (int32_t)(tm_rand_u32() % 39);
        g_rows[b] = g_ids[b];
    }
}

static const char *const g_texts[] = {
    "hello world",
    "the quick brown fox jumps over the lazy dog.",
    "",
    "cat sat on the mat",
    "Embedding tokens! is it good, or bad?",
    "the cat sat on the mat the cat sat on the mat the cat sat on the mat the cat sat on the mat the dog",
    "unknownword qqq",
    "   ",
};
#define NT ((int)(sizeof g_texts / sizeof g_texts[0]))

/* Compares the fast and reference backends (and optionally the independent forward) on the random id
 * batch; returns the cpu embeddings in out (NB, C). */
static void check_backends_ids(const char *what, const seslm_model *m, tm_model *tm, float *out) {
    const int C = seslm_model_get_config(m)->hidden;
    float ref[NB * C_MAX], mine[C_MAX];
    embed_ids(m, "cpu", g_rows, g_lens, NB, out);
    embed_ids(m, "cpu-ref", g_rows, g_lens, NB, ref);
    CHECK_MSG(all_finite(out, NB * C) && all_finite(ref, NB * C), "%s: non-finite embedding", what);
    for (int b = 0; b < NB; b++) {
        double d = max_abs_diff(out + b * C, ref + b * C, C), cs = cosine(out + b * C, ref + b * C, C);
        CHECK_MSG(d <= 1e-5 && cs >= 0.99999, "%s: seq %d (len %d): cpu vs cpu-ref max diff %.3g cos %.8f", what, b,
                  g_lens[b], d, cs);
        double n2 = 0;
        for (int c = 0; c < C; c++) n2 += (double)out[b * C + c] * out[b * C + c];
        CHECK_MSG(fabs(sqrt(n2) - 1) < 1e-5, "%s: seq %d not L2-normalised (norm %.8f)", what, b, sqrt(n2));
        if (tm) {
            reference_embed(tm, g_ids[b], g_lens[b], mine);
            double dr = max_abs_diff(out + b * C, mine, C), drr = max_abs_diff(ref + b * C, mine, C);
            CHECK_MSG(dr <= 1e-5 && drr <= 1e-5, "%s: seq %d (len %d): vs independent forward: cpu %.3g cpu-ref %.3g",
                      what, b, g_lens[b], dr, drr);
        }
    }
}

// ---- (a) ---------------------------------------------------------------------------------------------

static void test_backends(tm_model *full, const seslm_model *m) {
    const int C = seslm_model_get_config(m)->hidden;
    CHECK(C == 16);
    CHECK(seslm_model_get_config(m)->max_seq_len == 32);
    CHECK(seslm_model_get_config(m)->n_layers == 2 && seslm_model_get_config(m)->head_dim == 4);
    CHECK(seslm_model_get_config(m)->normalize == 1 && seslm_model_get_config(m)->pooling_mean == 1);
    float out[NB * C_MAX];
    check_backends_ids("full/ids", m, full, out);

    // texts: cpu vs cpu-ref, and vs the independent forward on the tokenizer's ids
    float a[NT * C_MAX], b[NT * C_MAX], mine[C_MAX];
    embed_texts(m, "cpu", g_texts, NT, a);
    embed_texts(m, "cpu-ref", g_texts, NT, b);
    CHECK(all_finite(a, NT * C) && all_finite(b, NT * C));
    for (int i = 0; i < NT; i++) {
        double d = max_abs_diff(a + i * C, b + i * C, C), cs = cosine(a + i * C, b + i * C, C);
        CHECK_MSG(d <= 1e-5 && cs >= 0.99999, "text %d: cpu vs cpu-ref max diff %.3g cos %.8f", i, d, cs);
        int32_t ids[64];
        int n = 0;
        CHECK(seslm_tokenizer_encode(seslm_model_tokenizer(m), g_texts[i], strlen(g_texts[i]), ids, 64, &n) == SESLM_OK);
        CHECK(n >= 2 && n <= 32 && ids[0] == 2 && ids[n - 1] == 3);
        reference_embed(full, ids, n, mine);
        CHECK_MSG(max_abs_diff(a + i * C, mine, C) <= 1e-5, "text %d: vs independent forward %.3g", i,
                  max_abs_diff(a + i * C, mine, C));
    }
    // different inputs give different embeddings (the model is not degenerate)
    CHECK(max_abs_diff(a, a + C, C) > 1e-2);
    CHECK(max_abs_diff(out, out + 3 * C, C) > 1e-2);

    // the thread count does not change the result
    seslm_encoder *e1 = NULL;
    seslm_encoder_opts o1 = {.backend = "cpu", .n_threads = 1, .max_batch = NB};
    CHECK(seslm_encoder_new(&e1, m, &o1) == SESLM_OK);
    float t1[NB * C_MAX];
    CHECK(e1 && seslm_encoder_forward_ids(e1, g_rows, g_lens, NB, t1) == SESLM_OK);
    CHECK_MSG(max_abs_diff(t1, out, NB * C) <= 1e-6, "1 vs 2 threads: %.3g", max_abs_diff(t1, out, NB * C));
    seslm_encoder_free(e1);
}

// ---- (b) ---------------------------------------------------------------------------------------------

static void zero_rows(tm_tensor *t, int r0, int r1) { // rows [r0, r1) of a (R, K) or (R) tensor
    int64_t K = t->ndim == 2 ? t->shape[1] : 1;
    memset(t->f + r0 * K, 0, (size_t)((r1 - r0) * K) * sizeof(float));
}

static void zero_cols(tm_tensor *t, int c0, int c1) {
    for (int64_t r = 0; r < t->shape[0]; r++)
        for (int c = c0; c < c1; c++) t->f[r * t->shape[1] + c] = 0;
}

static void test_per_layer(tm_model *full, const float *full_out) {
    const int C = 16, D = 4;
    // Z: the full model with layer 0's heads 2,3 and neurons 8..23 silenced, and all of layer 1's
    // heads and neurons silenced (zero value rows make a head's context zero; zero FFN-input rows and
    // biases make gelu 0). Cutting those heads / neurons away must not change anything.
    tm_model z, p, p1, q, q1;
    tm_copy(&z, full);
    zero_rows(tm_findf(&z, "encoder.layer.%d.attention.self.value.weight", 0), 2 * D, 4 * D);
    zero_rows(tm_findf(&z, "encoder.layer.%d.attention.self.value.bias", 0), 2 * D, 4 * D);
    zero_cols(tm_findf(&z, "encoder.layer.%d.attention.output.dense.weight", 0), 2 * D, 4 * D);
    zero_rows(tm_findf(&z, "encoder.layer.%d.intermediate.dense.weight", 0), 8, 24);
    zero_rows(tm_findf(&z, "encoder.layer.%d.intermediate.dense.bias", 0), 8, 24);
    zero_cols(tm_findf(&z, "encoder.layer.%d.output.dense.weight", 0), 8, 24);
    zero_rows(tm_findf(&z, "encoder.layer.%d.attention.self.value.weight", 1), 0, 4 * D);
    zero_rows(tm_findf(&z, "encoder.layer.%d.attention.self.value.bias", 1), 0, 4 * D);
    zero_rows(tm_findf(&z, "encoder.layer.%d.intermediate.dense.weight", 1), 0, 24);
    zero_rows(tm_findf(&z, "encoder.layer.%d.intermediate.dense.bias", 1), 0, 24);
    tm_prune(&p1, &z, 0, 2, 8);
    tm_prune(&p, &p1, 1, 0, 0);
    // the pruned files really lack the dropped tensors
    CHECK(tm_findf(&p, "encoder.layer.%d.attention.self.query.weight", 1) == NULL);
    CHECK(tm_findf(&p, "encoder.layer.%d.intermediate.dense.weight", 1) == NULL);
    CHECK(tm_findf(&p, "encoder.layer.%d.attention.output.dense.bias", 1) != NULL);
    CHECK(tm_findf(&p, "encoder.layer.%d.attention.self.query.weight", 0)->shape[0] == 8);
    CHECK(tm_findf(&p, "encoder.layer.%d.attention.output.dense.weight", 0)->shape[1] == 8);

    seslm_model *mz = write_and_load(&z, "zeroed", NULL);
    seslm_model *mp = write_and_load(&p, "pruned", NULL);
    const seslm_model_config *cp = seslm_model_get_config(mp);
    CHECK(cp->layers[0].n_heads == 2 && cp->layers[0].ffn_dim == 8);
    CHECK(cp->layers[1].n_heads == 0 && cp->layers[1].ffn_dim == 0);
    seslm_param_group g[8];
    CHECK(seslm_model_param_groups(mp, g, 8) == 5);
    CHECK(g[1].params == 3 * (8 * C + 8) + C * 8 + C + 2 * C && strcmp(g[1].name, "layer.0.attention") == 0);
    CHECK(g[2].params == 8 * C + 8 + C * 8 + C + 2 * C);
    CHECK(g[3].params == C + 2 * C && g[4].params == C + 2 * C);

    float oz[NB * C_MAX], op[NB * C_MAX];
    check_backends_ids("zeroed", mz, &z, oz);
    check_backends_ids("pruned", mp, &p, op);
    for (int b = 0; b < NB; b++) {
        double d = max_abs_diff(oz + b * C, op + b * C, C);
        CHECK_MSG(d <= 1e-5, "seq %d: pruned vs zeroed full model differ by %.3g", b, d);
        CHECK_MSG(max_abs_diff(op + b * C, full_out + b * C, C) > 1e-2, "seq %d: pruning changed nothing", b);
    }
    // the same through cpu-ref, so the head slicing of both backends is covered
    float rz[NB * C_MAX], rp[NB * C_MAX];
    embed_ids(mz, "cpu-ref", g_rows, g_lens, NB, rz);
    embed_ids(mp, "cpu-ref", g_rows, g_lens, NB, rp);
    CHECK_MSG(max_abs_diff(rz, rp, NB * C) <= 1e-5, "cpu-ref: pruned vs zeroed %.3g", max_abs_diff(rz, rp, NB * C));
    seslm_model_free(mz);
    seslm_model_free(mp);

    // Q: the full random model (nothing silenced) cut to layer 0: 0 heads + full FFN, layer 1: 3 heads,
    // no FFN; checked against the independent forward, which handles any per-layer shape.
    tm_prune(&q1, full, 0, 0, 24);
    tm_prune(&q, &q1, 1, 3, 0);
    seslm_model *mq = write_and_load(&q, "pruned2", NULL);
    float oq[NB * C_MAX];
    check_backends_ids("pruned2", mq, &q, oq);
    CHECK(max_abs_diff(oq, full_out, NB * C) > 1e-2);
    seslm_model_free(mq);

    tm_free(&z);
    tm_free(&p1);
    tm_free(&p);
    tm_free(&q1);
    tm_free(&q);
}

// ---- (c) ---------------------------------------------------------------------------------------------

static int same_bits(const float *a, const float *b, int64_t n, const char *what, const char *name) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], 4) != 0) {
            fprintf(stderr, "%s: %s[%lld] loaded as %.9g, expected %.9g\n", what, name, (long long)i, (double)a[i],
                    (double)b[i]);
            return 0;
        }
    return 1;
}

typedef struct {
    const float *p;
    const char *name;
    int layer;
} wmap;

// Every tensor the model holds equals the tm_model's floats bit for bit.
static void check_loaded_weights(const seslm_model *m, tm_model *tm, const char *what) {
    wmap map[64];
    int n = 0;
    map[n++] = (wmap){m->word_emb, "embeddings.word_embeddings.weight", 0};
    map[n++] = (wmap){m->pos_emb, "embeddings.position_embeddings.weight", 0};
    map[n++] = (wmap){m->type_emb, "embeddings.token_type_embeddings.weight", 0};
    map[n++] = (wmap){m->emb_ln_g, "embeddings.LayerNorm.weight", 0};
    map[n++] = (wmap){m->emb_ln_b, "embeddings.LayerNorm.bias", 0};
    for (int l = 0; l < tm->n_layers; l++) {
        const seslm_layer_weights *w = &m->lw[l];
        map[n++] = (wmap){w->q_w, "encoder.layer.%d.attention.self.query.weight", l};
        map[n++] = (wmap){w->q_b, "encoder.layer.%d.attention.self.query.bias", l};
        map[n++] = (wmap){w->k_w, "encoder.layer.%d.attention.self.key.weight", l};
        map[n++] = (wmap){w->k_b, "encoder.layer.%d.attention.self.key.bias", l};
        map[n++] = (wmap){w->v_w, "encoder.layer.%d.attention.self.value.weight", l};
        map[n++] = (wmap){w->v_b, "encoder.layer.%d.attention.self.value.bias", l};
        map[n++] = (wmap){w->ao_w, "encoder.layer.%d.attention.output.dense.weight", l};
        map[n++] = (wmap){w->ao_b, "encoder.layer.%d.attention.output.dense.bias", l};
        map[n++] = (wmap){w->ln1_g, "encoder.layer.%d.attention.output.LayerNorm.weight", l};
        map[n++] = (wmap){w->ln1_b, "encoder.layer.%d.attention.output.LayerNorm.bias", l};
        map[n++] = (wmap){w->ff1_w, "encoder.layer.%d.intermediate.dense.weight", l};
        map[n++] = (wmap){w->ff1_b, "encoder.layer.%d.intermediate.dense.bias", l};
        map[n++] = (wmap){w->ff2_w, "encoder.layer.%d.output.dense.weight", l};
        map[n++] = (wmap){w->ff2_b, "encoder.layer.%d.output.dense.bias", l};
        map[n++] = (wmap){w->ln2_g, "encoder.layer.%d.output.LayerNorm.weight", l};
        map[n++] = (wmap){w->ln2_b, "encoder.layer.%d.output.LayerNorm.bias", l};
    }
    int checked = 0;
    for (int i = 0; i < n; i++) {
        char name[96];
        snprintf(name, sizeof name, map[i].name, map[i].layer);
        tm_tensor *t = tm_find(tm, name);
        CHECK_MSG(map[i].p != NULL, "%s: %s not loaded", what, name);
        CHECK_MSG(t != NULL, "%s: %s not in the test model", what, name);
        if (!t || !map[i].p) continue;
        CHECK_MSG(((uintptr_t)map[i].p % sizeof(float)) == 0, "%s: %s is not float-aligned", what, name);
        CHECK(same_bits(map[i].p, t->f, tm_numel(t), what, name));
        checked++;
    }
    CHECK(checked == 5 + 16 * tm->n_layers);
}

static void test_dtypes(tm_model *full, const seslm_model *m32, const float *out32) {
    const int C = 16;
    // special values in word row 39 (never used by the id batch): half subnormals, the largest half,
    // negative zero, float subnormals (bf16 keeps them), values that round up / to even
    tm_model sp;
    tm_copy(&sp, full);
    static const float special[16] = {5.9604645e-8f, 1.0e-7f, -3.0e-8f,  6.0975552e-5f, 6.1035156e-5f, 65504.0f,
                                      -0.0f,         1e-40f,  -1e-39f,  1.00048828125f, 2049.0f,       -65519.0f,
                                      0.333333f,     1.5e-5f, 3.1e-6f,  -7.0e-7f};
    memcpy(tm_find(&sp, "embeddings.word_embeddings.weight")->f + 39 * C, special, sizeof special);
    static const char *dts[2] = {"F16", "BF16"};
    for (int k = 0; k < 2; k++) {
        char sub[32];
        snprintf(sub, sizeof sub, "dtype_%s", dts[k]);
        seslm_model *mh = write_and_load(&sp, sub, &(tm_write_opts){.dtype = dts[k]});
        tm_model rounded;
        tm_copy(&rounded, &sp);
        tm_round(&rounded, dts[k]);
        check_loaded_weights(mh, &rounded, sub);
        // same floats as an F32 file of the rounded weights -> same embeddings; close to the F32 model
        float oh[NB * C_MAX], orr[NB * C_MAX];
        check_backends_ids(sub, mh, &rounded, oh);
        snprintf(sub, sizeof sub, "dtype_%s_as_f32", dts[k]);
        seslm_model *mr = write_and_load(&rounded, sub, NULL);
        embed_ids(mr, "cpu", g_rows, g_lens, NB, orr);
        CHECK_MSG(max_abs_diff(oh, orr, NB * C) <= 1e-6, "%s vs F32 of the same values: %.3g", dts[k],
                  max_abs_diff(oh, orr, NB * C));
        double tol = k == 0 ? 5e-3 : 5e-2, worst = max_abs_diff(oh, out32, NB * C);
        CHECK_MSG(worst <= tol && worst > 0, "%s vs F32 weights: max diff %.3g (tolerance %.0e)", dts[k], worst, tol);
        for (int b = 0; b < NB; b++) CHECK(cosine(oh + b * C, out32 + b * C, C) >= (k == 0 ? 0.9999 : 0.999));
        seslm_model_free(mh);
        seslm_model_free(mr);
        tm_free(&rounded);
    }
    // F32 with the data section at an odd offset (copied to aligned memory) and with "bert." names
    for (int k = 0; k < 2; k++) {
        tm_write_opts o = k == 0 ? (tm_write_opts){.misalign = 2} : (tm_write_opts){.prefix = "bert."};
        seslm_model *mu = write_and_load(&sp, k == 0 ? "f32_unaligned" : "f32_prefixed", &o);
        check_loaded_weights(mu, &sp, k == 0 ? "f32_unaligned" : "f32_prefixed");
        float ou[NB * C_MAX];
        embed_ids(mu, "cpu", g_rows, g_lens, NB, ou);
        CHECK_MSG(max_abs_diff(ou, out32, NB * C) <= 1e-6, "%s: %.3g", k == 0 ? "unaligned" : "prefixed",
                  max_abs_diff(ou, out32, NB * C));
        seslm_model_free(mu);
    }
    // the aligned F32 file is used in place (no copies)
    CHECK(m32->n_owned == 0);
    tm_free(&sp);
}

// ---- (d) ---------------------------------------------------------------------------------------------

static void test_batch_invariance(const seslm_model *m) {
    const int C = 16;
    static const char *backends[2] = {"cpu", "cpu-ref"};
    for (int k = 0; k < 2; k++) {
        // ids: each sequence alone vs inside the ragged batch
        float batch[NB * C_MAX], alone[C_MAX];
        embed_ids(m, backends[k], g_rows, g_lens, NB, batch);
        for (int b = 0; b < NB; b++) {
            embed_ids(m, backends[k], &g_rows[b], &g_lens[b], 1, alone);
            double d = max_abs_diff(alone, batch + b * C, C);
            CHECK_MSG(d <= 1e-5, "%s: seq %d alone vs in batch: %.3g", backends[k], b, d);
        }
        // the batch reversed gives the same rows reversed
        const int32_t *rrows[NB];
        int rlens[NB];
        for (int b = 0; b < NB; b++) {
            rrows[b] = g_rows[NB - 1 - b];
            rlens[b] = g_lens[NB - 1 - b];
        }
        float rev[NB * C_MAX];
        embed_ids(m, backends[k], rrows, rlens, NB, rev);
        for (int b = 0; b < NB; b++)
            CHECK_MSG(max_abs_diff(rev + b * C, batch + (NB - 1 - b) * C, C) <= 1e-5, "%s: reversed batch row %d",
                      backends[k], b);
        // texts: alone vs inside a batch
        float tb[NT * C_MAX], ta[C_MAX];
        embed_texts(m, backends[k], g_texts, NT, tb);
        for (int i = 0; i < NT; i++) {
            embed_texts(m, backends[k], &g_texts[i], 1, ta);
            CHECK_MSG(max_abs_diff(ta, tb + i * C, C) <= 1e-5, "%s: text %d alone vs in batch: %.3g", backends[k], i,
                      max_abs_diff(ta, tb + i * C, C));
        }
        // one encoder reused for batches of different sizes gives the same rows
        seslm_encoder *e = encoder(m, backends[k], NB);
        float again[NB * C_MAX];
        CHECK(seslm_encoder_forward_ids(e, g_rows + 3, g_lens + 3, 2, again) == SESLM_OK);
        CHECK(seslm_encoder_forward_ids(e, g_rows, g_lens, NB, again) == SESLM_OK);
        CHECK_MSG(max_abs_diff(again, batch, NB * C) <= 1e-6, "%s: reused encoder", backends[k]);
        seslm_encoder_free(e);
    }
}

int main(void) {
    g_root = tm_mkdtemp("tiny");
    make_batch();
    tm_model full;
    tm_init(&full, 1);
    seslm_model *m = write_and_load(&full, "full", NULL);
    float full_out[NB * C_MAX];
    embed_ids(m, "cpu", g_rows, g_lens, NB, full_out);

    test_backends(&full, m);
    test_per_layer(&full, full_out);
    test_dtypes(&full, m, full_out);
    test_batch_invariance(m);

    seslm_model_free(m);
    tm_free(&full);
    tm_rmtree(g_root);
    free(g_root);
    return test_report("test_tiny_model");
}
