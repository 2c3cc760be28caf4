/* test_evolve_student.c — what an iterated evolution cycle needs of a student (issue 13), on the tiny
 * random model (tests/tiny_model.h):
 *   * 4-bit word-embedding rows: seslm_quantize_rows4 against a reference written here (value = round half
 *     to even of w * 7 / max|w|, two's-complement nibbles, column 2j low); loading a 4-bit table (every row
 *     within half a step, frequent rows exact, both CPU backends agree); a malformed 4-bit table is refused;
 *   * layer dropping: a plan that drops a whole layer gives a student whose embeddings equal, bit for bit,
 *     those of a model written here with that layer left out; seslm_plan_validate refuses a protected layer
 *     and a drop above the cap;
 *   * INT8 students as parents: seslm_model_widen (row x scale) and seslm_parent_load, which takes a
 *     student's F32 master when config.json names it and refuses a master that is not the recorded one. */
#include "parent.h"
#include "plan.h"
#include "quant.h"
#include "recompile.h"
#include "test.h"
#include "tiny_model.h"
#include "util.h"

#include "model_internal.h"

static char *g_root;

static const char *const texts[] = {"the lazy fox is good.", "hello cat", "brown dog sat on a mat?", "world",
                                    "quick quick brown", "it sat on the mat"};
enum { NT = 6 };

static void embed(const seslm_model *m, const char *backend, float *out) {
    seslm_encoder *e = NULL;
    seslm_encoder_opts o = {.backend = backend, .n_threads = 1, .max_batch = NT};
    CHECK_MSG(seslm_encoder_new(&e, m, &o) == SESLM_OK, "%s", seslm_last_error());
    if (!e) return;
    CHECK(seslm_encoder_embed_texts(e, texts, NULL, NT, out) == SESLM_OK);
    seslm_encoder_free(e);
}

static double mean_cos(const float *a, const float *b, int n, int C) {
    double s = 0;
    for (int i = 0; i < n; i++) {
        double ab = 0, aa = 0, bb = 0;
        for (int c = 0; c < C; c++) ab += a[i * C + c] * b[i * C + c], aa += a[i * C + c] * a[i * C + c], bb += b[i * C + c] * b[i * C + c];
        s += ab / sqrt(aa * bb);
    }
    return s / n;
}

static int plan_file(seslm_plan *pl, const seslm_model *m, const char *name, const char *layers_json) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.json", g_root, name);
    FILE *f = fopen(path, "w");
    if (!f) return 0;
    fprintf(f, "{\"format\": \"seslm-plan\", \"version\": 1, \"method\": \"test\", \"layers\": %s}\n", layers_json);
    fclose(f);
    const seslm_status st = seslm_plan_read_json(pl, seslm_model_get_config(m), path);
    CHECK_MSG(st == SESLM_OK, "plan %s: %s", name, seslm_last_error());
    return st == SESLM_OK;
}

static seslm_model *recompile(const seslm_model *parent, const char *layers_json, const char *name,
                              const seslm_recompile_opts *o) {
    seslm_plan pl;
    if (!plan_file(&pl, parent, name, layers_json)) return NULL;
    char out[4096];
    snprintf(out, sizeof out, "%s/%s", g_root, name);
    seslm_status st = seslm_recompile_run(parent, &pl, o, out, NULL);
    seslm_plan_free(&pl);
    CHECK_MSG(st == SESLM_OK, "recompile %s: %s", name, seslm_last_error());
    seslm_model *m = NULL;
    if (st == SESLM_OK) CHECK_MSG(seslm_model_load(&m, out) == SESLM_OK, "load %s: %s", name, seslm_last_error());
    return m;
}

static const char *const NONE = "[{\"layer\": 0}, {\"layer\": 1}]";

// ---- 4-bit rows: the kernel against a reference written here ----------------------------------------

static float ref_round_even(float v) {
    const float f = floorf(v), d = v - f;
    if (d > 0.5f) return f + 1;
    if (d < 0.5f) return f;
    return fmodf(f, 2.0f) == 0.0f ? f : f + 1;
}

static void test_rows4_kernel(void) {
    enum { N = 7, K = 18 };
    float w[N * K], scale[N];
    uint8_t q[N * K / 2];
    tm_seed(5);
    for (int i = 0; i < N * K; i++) w[i] = 0.3f * tm_rand_sym();
    for (int k = 0; k < K; k++) w[1 * K + k] = 0.0f;            // a zero row: scale 0, every value 0
    w[2 * K + 3] = -0.9f;                                       // the row's max is negative: -7
    for (int k = 0; k < K; k++) w[3 * K + k] = (float)(k - 8) / 16.0f; // exact halves after scaling: ties to even
    memset(q, 0xAB, sizeof q);                                  // poison: every byte must be written
    const float worst = seslm_quantize_rows4(q, scale, w, N, K);
    CHECK_MSG(worst <= 1.0f / 14.0f + 1e-6f, "worst relative error %g", worst);
    int bad = 0;
    for (int n = 0; n < N; n++) {
        float amax = 0;
        for (int k = 0; k < K; k++) amax = fmaxf(amax, fabsf(w[n * K + k]));
        CHECK(scale[n] == (amax > 0 ? amax / 7.0f : 0.0f));
        for (int k = 0; k < K; k++) {
            float v = amax > 0 ? ref_round_even(w[n * K + k] * (7.0f / amax)) : 0.0f;
            v = fminf(7.0f, fmaxf(-7.0f, v));
            const int nib = (q[n * K / 2 + k / 2] >> (4 * (k & 1))) & 0xF;
            const int got = nib >= 8 ? nib - 16 : nib;
            bad += got != (int)v;
            // the dequantized value as the kernels read it (backend.h) is within half a step
            const int32_t slot[N] = {-1, -1, -1, -1, -1, -1, -1}; // no exact rows
            seslm_embedding e = {.q4 = q, .scale = scale, .exact_slot = slot};
            float row[K];
            seslm_embedding_row(row, &e, n, K);
            bad += !(fabsf(row[k] - w[n * K + k]) <= 0.5f * scale[n] * 1.0001f + 1e-12f);
        }
    }
    CHECK_MSG(bad == 0, "%d nibbles differ from the reference", bad);
    const int nib_max = q[2 * K / 2 + 1] >> 4; // column 3 of row 2: -7
    CHECK(nib_max == 9);
}

// ---- 4-bit rows: writer + loader ---------------------------------------------------------------

static void test_rows4_model(const seslm_model *parent) {
    const seslm_model_config *pc = seslm_model_get_config(parent);
    const int C = pc->hidden, V = pc->vocab_size;
    uint64_t *counts = calloc((size_t)V, sizeof *counts);
    for (int i = 0; i < V; i++) counts[i] = (uint64_t)(i * 5 % 11);
    seslm_recompile_opts o = {.ridge = 1e-3, .compress_embeddings = SESLM_EMB_INT4, .token_counts = counts, .n_exact = 6};
    seslm_model *q = recompile(parent, NONE, "int4", &o);
    if (q) {
        CHECK(q->word.q4 && !q->word.q && !q->word.f32 && seslm_model_is_quantized(q));
        int exact = 0, bad = 0;
        float row[64];
        for (int id = 0; id < V; id++) {
            seslm_embedding_row(row, &q->word, id, C);
            const float *pr = parent->word_emb + (size_t)id * C;
            if (q->word.exact_slot[id] >= 0) exact++, bad += memcmp(row, pr, (size_t)C * sizeof *row) != 0;
            else
                for (int c = 0; c < C; c++) bad += !(fabsf(row[c] - pr[c]) <= 0.5f * q->word.scale[id] * 1.0001f);
        }
        CHECK_MSG(bad == 0 && exact >= 6, "4-bit rows: %d bad, %d exact", bad, exact);
        CHECK(q->word.exact_slot[13] >= 0 && q->word.exact_slot[24] >= 0); // count 10, the largest (ids 2, 13, 24, 35; 2 is [CLS])
        float a[NT * 16], b[NT * 16], p[NT * 16];
        embed(q, "cpu", a);
        embed(q, "cpu-ref", b);
        embed(parent, "cpu", p);
        float d = 0;
        for (int i = 0; i < NT * C; i++) d = fmaxf(d, fabsf(a[i] - b[i]));
        CHECK_MSG(d < 1e-5f, "4-bit table: cpu vs cpu-ref differ by %g", d);
        const double cq = mean_cos(p, a, NT, C);
        CHECK_MSG(cq > 0.95 && cq < 1.0, "4-bit table vs parent: mean cos %.6f", cq);
        // bytes: the table shrinks to half of INT8's
        int64_t b4 = 0, b8 = 0;
        seslm_param_group g[8];
        seslm_model_param_groups(q, g, 8);
        b4 = g[0].bytes;
        seslm_recompile_opts o8 = o;
        o8.compress_embeddings = SESLM_EMB_INT8;
        seslm_model *q8 = recompile(parent, NONE, "int8", &o8);
        if (q8) {
            seslm_model_param_groups(q8, g, 8);
            b8 = g[0].bytes;
        }
        CHECK_MSG(b4 < b8 && b4 > 0, "embedding bytes: 4-bit %lld, INT8 %lld", (long long)b4, (long long)b8);
        seslm_model_free(q8);
    }
    seslm_model_free(q);
    // a 4-bit table of the wrong width is refused with a message, not read out of bounds
    tm_model bad;
    tm_init(&bad, 29);
    tm_tensor *t = tm_find(&bad, "embeddings.word_embeddings.weight");
    CHECK(t != NULL);
    if (!t) return;
    memcpy(t->dtype, "U8", 3);
    t->shape[1] = 5; // hidden 16 needs 8 bytes per row
    tm_tensor *s = tm_add(&bad, "embeddings.word_embeddings.weight_scale", bad.vocab, -1);
    tm_fill(s, 0.01f, 0.02f);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/bad4", g_root);
    mkdir(dir, 0755);
    CHECK(tm_write(&bad, dir, NULL));
    tm_free(&bad);
    seslm_model *m = NULL;
    CHECK(seslm_model_load(&m, dir) != SESLM_OK && strstr(seslm_last_error(), "4-bit") != NULL);
    seslm_model_free(m);
    free(counts);
}

// ---- layer dropping -----------------------------------------------------------------------------

static void test_drop_layer(const seslm_model *parent, tm_model *full) {
    const int C = seslm_model_get_config(parent)->hidden;
    seslm_recompile_opts o = {.ridge = 1e-3};
    seslm_model *s = recompile(parent, "[{\"layer\": 0, \"drop\": true}, {\"layer\": 1}]", "drop0", &o);
    // the reference: the same weights written here without layer 0 (layer 1 renamed 0)
    tm_model one;
    tm_copy(&one, full);
    char n[96];
    for (int i = one.n_t - 1; i >= 0; i--)
        if (strncmp(one.t[i].name, "encoder.layer.0.", 16) == 0) tm_remove(&one, one.t[i].name);
    for (int i = 0; i < one.n_t; i++)
        if (strncmp(one.t[i].name, "encoder.layer.1.", 16) == 0) {
            snprintf(n, sizeof n, "encoder.layer.0.%s", one.t[i].name + 16);
            snprintf(one.t[i].name, sizeof one.t[i].name, "%s", n);
        }
    one.n_layers = 1;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/one-layer", g_root);
    mkdir(dir, 0755);
    CHECK(tm_write(&one, dir, NULL));
    tm_free(&one);
    seslm_model *r = NULL;
    CHECK_MSG(seslm_model_load(&r, dir) == SESLM_OK, "%s", seslm_last_error());
    if (s && r) {
        CHECK(seslm_model_get_config(s)->n_layers == 1);
        float a[NT * 16], b[NT * 16];
        embed(s, "cpu-ref", a);
        embed(r, "cpu-ref", b);
        CHECK_MSG(memcmp(a, b, sizeof a) == 0, "the student without layer 0 differs from the reference (cos %.8f)",
                  mean_cos(a, b, NT, C));
    }
    seslm_model_free(s), seslm_model_free(r);
    // the policy: protected layers are never dropped; a drop counts whole layers against the cap
    seslm_policy pol;
    seslm_policy_default(&pol);
    pol.n_protected = 0, pol.min_heads = 0, pol.min_ffn = 0, pol.cap = 0.40;
    seslm_plan pl;
    if (plan_file(&pl, parent, "drop1", "[{\"layer\": 1, \"drop\": true}]")) {
        CHECK(pl.n_drop == 1 && pl.drop_layer[1]);
        CHECK(seslm_plan_validate(&pl, &pol, seslm_model_get_config(parent)) != SESLM_OK &&
              strstr(seslm_last_error(), "never_drop") != NULL); // the default never drops the last layer
        pol.n_never_drop = 0;
        CHECK(seslm_plan_validate(&pl, &pol, seslm_model_get_config(parent)) != SESLM_OK &&
              strstr(seslm_last_error(), "cap") != NULL); // 1 of 2 layers = 50%
        pol.cap = 0.40, pol.n_protected = 1, pol.protected_layers[0] = -1;
        CHECK(seslm_plan_validate(&pl, &pol, seslm_model_get_config(parent)) != SESLM_OK &&
              strstr(seslm_last_error(), "protected") != NULL);
        seslm_plan_free(&pl);
    }
    if (plan_file(&pl, parent, "dropall", "[{\"layer\": 0, \"drop\": true}, {\"layer\": 1, \"drop\": true}]")) {
        char out[4096];
        snprintf(out, sizeof out, "%s/dropall", g_root);
        CHECK(seslm_recompile_run(parent, &pl, &o, out, NULL) != SESLM_OK && strstr(seslm_last_error(), "every layer"));
        seslm_plan_free(&pl);
    }
}

// ---- INT8 students as parents -------------------------------------------------------------------

static void test_int8_parent(const seslm_model *parent) {
    const int C = seslm_model_get_config(parent)->hidden;
    // an F32 student and its INT8 + compressed form, the F32 one kept as the INT8 one's master
    seslm_recompile_opts f32o = {.ridge = 1e-3};
    seslm_model *f = recompile(parent, "[{\"layer\": 0, \"remove_heads\": [1]}, {\"layer\": 1, \"remove_neurons\": [0, 3]}]",
                               "f32", &f32o);
    if (!f) return;
    char fdir[4096], qdir[4096], mdir[4200];
    snprintf(fdir, sizeof fdir, "%s/f32", g_root);
    snprintf(qdir, sizeof qdir, "%s/q8", g_root);
    snprintf(mdir, sizeof mdir, "%s/q8/master", g_root);
    seslm_recompile_opts qo = {.ridge = 1e-3, .quantize_int8 = 1, .compress_embeddings = SESLM_EMB_INT8, .keep_lineage = 1,
                               .master_sha256 = seslm_model_weights_sha256(f)};
    seslm_plan none;
    CHECK(plan_file(&none, f, "none", NONE));
    CHECK_MSG(seslm_recompile_run(f, &none, &qo, qdir, NULL) == SESLM_OK, "%s", seslm_last_error());
    seslm_plan_free(&none);
    float want[NT * 16], got[NT * 16];
    embed(f, "cpu", want);
    seslm_model_free(f);
    // without its master: widened
    seslm_parent p;
    CHECK_MSG(seslm_parent_load(&p, qdir) == SESLM_OK, "%s", seslm_last_error());
    if (p.m) {
        CHECK(p.kind == SESLM_PARENT_WIDENED && !seslm_model_is_quantized(p.m) && p.m->word.f32 && p.m->lw[0].q_w);
        CHECK(strlen(p.served_sha256) == 64);
        embed(p.m, "cpu", got);
        const double c = mean_cos(want, got, NT, C);
        CHECK_MSG(c > 0.99, "widened student vs its F32 form: mean cos %.6f", c);
        // a plan on it measures, and recompiles (the segfault of issue 13 was here)
        seslm_plan pl;
        CHECK(plan_file(&pl, p.m, "again", "[{\"layer\": 1, \"remove_neurons\": [1]}]"));
        char out[4096];
        snprintf(out, sizeof out, "%s/gen2", g_root);
        CHECK_MSG(seslm_recompile_run(p.m, &pl, &f32o, out, NULL) == SESLM_OK, "%s", seslm_last_error());
        seslm_plan_free(&pl);
    }
    seslm_parent_free(&p);
    // with its master: the master's F32 weights, bit for bit
    CHECK(rename(fdir, mdir) == 0);
    CHECK_MSG(seslm_parent_load(&p, qdir) == SESLM_OK, "%s", seslm_last_error());
    if (p.m) {
        CHECK(p.kind == SESLM_PARENT_MASTER && strcmp(p.served_sha256, seslm_model_weights_sha256(p.m)) != 0);
        embed(p.m, "cpu", got);
        CHECK(memcmp(want, got, sizeof want) == 0);
    }
    seslm_parent_free(&p);
    // a master that is not the recorded one is refused
    char cfg[4300];
    snprintf(cfg, sizeof cfg, "%s/config.json", qdir);
    char *txt = NULL;
    size_t n = 0;
    CHECK(util_read_file(cfg, &txt, &n, 1 << 20, NULL) == SESLM_OK);
    char *h = txt ? strstr(txt, "\"weights_sha256\"") : NULL;
    if (h) {
        char *v = strchr(h + 16, '"');
        if (v) v[1] = v[1] == '0' ? '1' : '0';
        CHECK(util_write_file_atomic(cfg, txt, n) == SESLM_OK);
        CHECK(seslm_parent_load(&p, qdir) != SESLM_OK && strstr(seslm_last_error(), "records master") != NULL);
        CHECK(p.m == NULL);
    }
    free(txt);
}

int main(void) {
    g_root = tm_mkdtemp("evolve_student");
    tm_model full;
    tm_init(&full, 23);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/parent", g_root);
    mkdir(dir, 0755);
    CHECK(tm_write(&full, dir, NULL));
    seslm_model *parent = NULL;
    CHECK_MSG(seslm_model_load(&parent, dir) == SESLM_OK, "load parent: %s", seslm_last_error());
    test_rows4_kernel();
    if (parent) {
        test_rows4_model(parent);
        test_drop_layer(parent, &full);
        test_int8_parent(parent);
    }
    seslm_model_free(parent);
    tm_free(&full);
    tm_rmtree(g_root);
    free(g_root);
    return test_report("test_evolve_student");
}
