/* test_sparse24.c — 2:4 structured sparsity:
 *   * compression keeps, in every group of 4, the two weights of largest score (|w|, or a given score),
 *     positions ascending; expand puts them back with zeros; the kept-mass fraction is right;
 *   * the reference product equals the dense reference product on the expanded weights, and the fast
 *     panel kernel (AVX-512 where present) equals the reference on shapes with K % 16 != 0 and ragged
 *     M, outputs poisoned with NaN first (FP32 abs + rel tolerance);
 *   * malformed position bytes are detected;
 *   * a recompiled tiny model with 2:4 FFN weights loads, both backends agree on it, and it equals the
 *     parent whose FFN weights were replaced by the expanded 2:4 matrices (checked through the product). */
#include "backend.h"
#include "model_internal.h"
#include "recompile.h"
#include "sparse24.h"
#include "test.h"
#include "tiny_model.h"

static uint64_t rng = 0xD1B54A32D192ED03ull;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)(rng >> 40) / (float)(1 << 24) * 2.0f - 1.0f;
}

static void test_compress(void) {
    const float w[8] = {0.1f, -0.9f, 0.5f, 0.2f, /* */ 3, 3, -3, 1};
    float v[4], e[8];
    uint8_t ix[2];
    double kept = seslm_sparse24_compress(v, ix, w, NULL, 1, 8);
    CHECK(ix[0] == (1 | 2 << 2) && v[0] == -0.9f && v[1] == 0.5f);
    CHECK(ix[1] == (0 | 1 << 2) && v[2] == 3 && v[3] == 3); // a tie keeps the lower positions
    const double tot = 0.01 + 0.81 + 0.25 + 0.04 + 9 + 9 + 9 + 1, kp = 0.81 + 0.25 + 18;
    CHECK(fabs(kept - kp / tot) < 1e-6);
    seslm_sparse24_expand(e, v, ix, 1, 8);
    CHECK(e[0] == 0 && e[1] == -0.9f && e[2] == 0.5f && e[3] == 0 && e[4] == 3 && e[5] == 3 && e[6] == 0 && e[7] == 0);
    const float score[8] = {1, 0, 0, 2, 0, 0, 5, 4}; // a score other than |w|
    seslm_sparse24_compress(v, ix, w, score, 1, 8);
    CHECK(ix[0] == (0 | 3 << 2) && ix[1] == (2 | 3 << 2) && v[2] == -3 && v[3] == 1);
    CHECK(seslm_sparse24_valid(ix, 2));
    const uint8_t badx[3] = {1 | 1 << 2, 2 | 1 << 2, 0x10 | 1};
    for (int i = 0; i < 3; i++) CHECK(!seslm_sparse24_valid(&badx[i], 1));
}

static void test_products(int M, int N, int K) {
    float *w = malloc((size_t)N * K * sizeof *w), *x = malloc((size_t)M * K * sizeof *x), *b = malloc((size_t)N * sizeof *b);
    float *v = malloc((size_t)N * K / 2 * sizeof *v), *e = malloc((size_t)N * K * sizeof *e);
    float *y0 = malloc((size_t)M * N * sizeof *y0), *y1 = malloc((size_t)M * N * sizeof *y1), *y2 = malloc((size_t)M * N * sizeof *y2);
    uint8_t *ix = malloc((size_t)N * K / 4 + 1);
    for (size_t i = 0; i < (size_t)N * K; i++) w[i] = frand();
    for (size_t i = 0; i < (size_t)M * K; i++) x[i] = frand();
    for (int n = 0; n < N; n++) b[n] = frand();
    seslm_sparse24_compress(v, ix, w, NULL, N, K);
    seslm_sparse24_expand(e, v, ix, N, K);
    seslm_weight dense = {.w = e, .N = N, .K = K};
    seslm_backend_cpu_ref()->linear(y0, x, &dense, b, M);
    for (size_t i = 0; i < (size_t)M * N; i++) y1[i] = y2[i] = NAN;
    seslm_sparse24_linear_ref(y1, x, v, ix, b, M, N, K);
    void *pk = seslm_sparse24_pack(v, ix, N, K);
    seslm_sparse24_linear_fast(y2, x, pk, b, M, N, K);
    size_t bad1 = 0, bad2 = 0;
    for (size_t i = 0; i < (size_t)M * N; i++) {
        bad1 += !(isfinite(y1[i]) && fabsf(y1[i] - y0[i]) <= 1e-5f + 1e-5f * fabsf(y0[i]));
        bad2 += !(isfinite(y2[i]) && fabsf(y2[i] - y1[i]) <= 1e-4f + 1e-5f * fabsf(y1[i]));
    }
    CHECK_MSG(bad1 == 0, "M=%d N=%d K=%d: sparse reference vs dense on expanded weights: %zu off", M, N, K, bad1);
    CHECK_MSG(bad2 == 0, "M=%d N=%d K=%d: fast vs reference: %zu off", M, N, K, bad2);
    free(w), free(x), free(b), free(v), free(e), free(y0), free(y1), free(y2), free(ix), free(pk);
}

static void test_model(void) {
    char *root = tm_mkdtemp("sparse24"), dir[4096], out[4096], plan[4096];
    tm_model full;
    tm_init(&full, 5);
    snprintf(dir, sizeof dir, "%s/parent", root);
    mkdir(dir, 0755);
    CHECK(tm_write(&full, dir, NULL));
    tm_free(&full);
    seslm_model *p = NULL, *s = NULL;
    CHECK(seslm_model_load(&p, dir) == SESLM_OK);
    snprintf(plan, sizeof plan, "%s/plan.json", root);
    FILE *f = fopen(plan, "w");
    fprintf(f, "{\"format\": \"seslm-plan\", \"version\": 1, \"method\": \"t\", \"layers\": [{\"layer\": 0, \"remove_heads\": [],"
               " \"remove_neurons\": [3, 7, 8, 20]}, {\"layer\": 1, \"remove_heads\": [], \"remove_neurons\": []}]}\n");
    fclose(f);
    seslm_plan pl;
    CHECK(p && seslm_plan_read_json(&pl, seslm_model_get_config(p), plan) == SESLM_OK);
    snprintf(out, sizeof out, "%s/student", root);
    seslm_recompile_opts o = {.ridge = 1e-3, .sparse24_ffn = 1};
    seslm_recompile_stats st;
    CHECK_MSG(seslm_recompile_run(p, &pl, &o, out, &st) == SESLM_OK, "%s", seslm_last_error());
    seslm_plan_free(&pl);
    CHECK(st.sparse24_layers == 2);
    // INT8 + 2:4 is refused
    seslm_recompile_opts both = {.ridge = 1e-3, .sparse24_ffn = 1, .quantize_int8 = 1};
    snprintf(plan, sizeof plan, "%s/plan.json", root);
    seslm_plan pl2;
    CHECK(seslm_plan_read_json(&pl2, seslm_model_get_config(p), plan) == SESLM_OK);
    char out2[4200];
    snprintf(out2, sizeof out2, "%s/both", root);
    CHECK(seslm_recompile_run(p, &pl2, &both, out2, NULL) != SESLM_OK);
    seslm_plan_free(&pl2);
    CHECK_MSG(seslm_model_load(&s, out) == SESLM_OK, "load 2:4 student: %s", seslm_last_error());
    if (s) {
        CHECK(s->lw[0].ff1_sv && s->lw[0].ff2_si && !s->lw[0].ff1_w && s->cfg.layers[0].ffn_dim == 20);
        CHECK(seslm_model_is_quantized(s));
        // both backends agree on the student's embeddings
        const char *texts[3] = {"the cat sat", "hello world", "a quick brown fox"};
        float a[3 * 16], b[3 * 16];
        const char *bes[2] = {"cpu", "cpu-ref"};
        float *outs[2] = {a, b};
        for (int i = 0; i < 2; i++) {
            seslm_encoder *e = NULL;
            seslm_encoder_opts eo = {.backend = bes[i], .n_threads = 1, .max_batch = 3};
            CHECK(seslm_encoder_new(&e, s, &eo) == SESLM_OK);
            if (e) CHECK(seslm_encoder_embed_texts(e, texts, NULL, 3, outs[i]) == SESLM_OK);
            seslm_encoder_free(e);
        }
        float d = 0;
        for (int i = 0; i < 48; i++) d = fmaxf(d, fabsf(a[i] - b[i]));
        CHECK_MSG(d < 1e-5f, "2:4 student: cpu vs cpu-ref differ by %g", d);
    }
    seslm_model_free(s), seslm_model_free(p);
    tm_rmtree(root);
    free(root);
}

int main(void) {
    test_compress();
    const int shapes[][3] = {{1, 16, 16}, {3, 17, 20}, {4, 33, 36}, {5, 64, 1100}, {12, 384, 1536}, {37, 100, 48}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) test_products(shapes[i][0], shapes[i][1], shapes[i][2]);
    test_model();
    return test_report("test_sparse24");
}
