/* test_recompile_q8.c — the recovery and compression steps of recompile:
 *   * seslm_reconstruct_linear on synthetic activations: when the removed inputs are exact linear
 *     combinations of kept ones (plus a constant), the refit reproduces the full layer (error ~0) while
 *     plain slicing does not; on random data the refit is never worse than slicing; nothing removed = the
 *     original weights;
 *   * calibration + reconstruction on the tiny model: the student's embeddings are closer to the
 *     unpruned parent's than the plainly sliced student's, on texts not used for calibration;
 *   * INT8 weights + compressed embeddings: the student loads (round trip through save / load), every id
 *     of the vocabulary still maps to a finite row within half a quantization step of the parent's (the
 *     exact rows bit for bit), both backends agree on its embeddings, its embeddings stay close to the
 *     parent's, its tensors are INT8 with scales and its file is smaller; config.json describes the
 *     quantization; recompiling an INT8 model again is refused. */
#include "calibrate.h"
#include "model_internal.h"
#include "reconstruct.h"
#include "recompile.h"
#include "test.h"
#include "tiny_model.h"

static char *g_root;
static uint64_t rng = 0x5851F42D4C957F2Dull;
static double drand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0;
}

// ---- reconstruction on synthetic data --------------------------------------------------------------

static void gram_of(double *G, const float *x, int T, int K) {
    const int K1 = K + 1;
    memset(G, 0, sizeof(double) * K1 * K1);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < K1; i++)
            for (int j = i; j < K1; j++)
                G[(size_t)i * K1 + j] += (i < K ? x[(size_t)t * K + i] : 1.0) * (j < K ? x[(size_t)t * K + j] : 1.0);
}

static void test_reconstruct_synthetic(void) {
    enum { T = 400, K = 12, N = 5 };
    static float x[T * K], w[N * K], b[N];
    // columns 0..7 random; 8..11 are combinations of 0..7 plus a constant: removing them loses nothing
    for (int t = 0; t < T; t++) {
        float *r = x + (size_t)t * K;
        for (int k = 0; k < 8; k++) r[k] = (float)drand();
        r[8] = r[0] + 2 * r[1] + 0.5f;
        r[9] = r[2] - r[3];
        r[10] = 3 * r[4] - 1.0f;
        r[11] = r[5] + r[6] + r[7];
    }
    for (int i = 0; i < N * K; i++) w[i] = (float)drand();
    for (int n = 0; n < N; n++) b[n] = (float)drand();
    static double G[(K + 1) * (K + 1)];
    gram_of(G, x, T, K);
    const int keep[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    float wo[N * 8], bo[N];
    double ef = -1, ep = -1;
    CHECK(seslm_reconstruct_linear(wo, bo, w, b, N, K, keep, 8, 1, G, 1e-9, &ef, &ep) == SESLM_OK);
    CHECK_MSG(ef < 1e-4 && ep > 0.1, "dependent columns: refit error %g (want ~0), sliced %g (want large)", ef, ep);
    // the refit output equals the full output on the data
    double worst = 0;
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N; n++) {
            double full = b[n], part = bo[n];
            for (int k = 0; k < K; k++) full += (double)x[t * K + k] * w[n * K + k];
            for (int k = 0; k < 8; k++) part += (double)x[t * K + k] * wo[n * 8 + k];
            worst = fmax(worst, fabs(full - part));
        }
    CHECK_MSG(worst < 1e-3, "refit output differs from the full layer by %g", worst);
    // random independent columns, 2-wide units: the fit is never worse than slicing
    for (int i = 0; i < T * K; i++) x[i] = (float)drand();
    gram_of(G, x, T, K);
    const int keep2[4] = {0, 2, 3, 5}; // units of 2 columns: columns 0,1 4,5 6,7 10,11
    float wo2[N * 8];
    CHECK(seslm_reconstruct_linear(wo2, bo, w, b, N, K, keep2, 4, 2, G, 1e-6, &ef, &ep) == SESLM_OK);
    CHECK_MSG(ef <= ep + 1e-9 && ef > 0, "independent columns: refit %g vs sliced %g", ef, ep);
    // nothing removed: the original weights come back
    const int all[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    float wo3[N * K], bo3[N];
    CHECK(seslm_reconstruct_linear(wo3, bo3, w, b, N, K, all, 12, 1, G, 0.0, &ef, &ep) == SESLM_OK);
    double dw = 0;
    for (int i = 0; i < N * K; i++) dw = fmax(dw, fabs(wo3[i] - w[i]));
    for (int n = 0; n < N; n++) dw = fmax(dw, fabs(bo3[n] - b[n]));
    CHECK_MSG(dw < 1e-3 && ef < 1e-6, "nothing removed: weights moved by %g", dw);
    // a singular system (a column that is always 0, no ridge) is an error, not garbage
    for (int t = 0; t < T; t++) x[t * K + 3] = 0;
    gram_of(G, x, T, K);
    const int keep4[3] = {2, 3, 4};
    CHECK(seslm_reconstruct_linear(wo, bo, w, b, N, K, keep4, 3, 1, G, 0.0, NULL, NULL) != SESLM_OK);
}

// ---- the tiny model ----------------------------------------------------------------------------------

static const char *const calib_texts[] = {"the cat sat on the mat.", "hello world", "a quick brown fox",
                                          "jumps over the lazy dog!", "it is good, it is bad?", "the dog is quick",
                                          "a bad cat", "hello, the world is good", "x", "the mat is on the cat",
                                          "quick quick brown", "it sat"};
static const char *const eval_texts[] = {"the lazy fox is good.", "hello cat", "brown dog sat on a mat?", "world"};
enum { NC = 12, NE = 4 };

static void embed(const seslm_model *m, const char *backend, float *out) {
    seslm_encoder *e = NULL;
    seslm_encoder_opts o = {.backend = backend, .n_threads = 1, .max_batch = NE};
    CHECK(seslm_encoder_new(&e, m, &o) == SESLM_OK);
    if (!e) return;
    CHECK(seslm_encoder_embed_texts(e, eval_texts, NULL, NE, out) == SESLM_OK);
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

static seslm_model *build(const seslm_model *parent, const char *plan_json, const char *name, const seslm_recompile_opts *o,
                          seslm_recompile_stats *s) {
    char path[4096], out[4096];
    snprintf(path, sizeof path, "%s/%s.json", g_root, name);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"format\": \"seslm-plan\", \"version\": 1, \"method\": \"test\", \"layers\": %s}\n", plan_json);
    fclose(f);
    seslm_plan pl;
    CHECK_MSG(seslm_plan_read_json(&pl, seslm_model_get_config(parent), path) == SESLM_OK, "%s", seslm_last_error());
    snprintf(out, sizeof out, "%s/%s", g_root, name);
    seslm_status st = seslm_recompile_run(parent, &pl, o, out, s);
    seslm_plan_free(&pl);
    CHECK_MSG(st == SESLM_OK, "recompile %s: %s", name, seslm_last_error());
    seslm_model *m = NULL;
    if (st == SESLM_OK) CHECK_MSG(seslm_model_load(&m, out) == SESLM_OK, "load %s: %s", name, seslm_last_error());
    return m;
}

static void test_tiny(void) {
    tm_model full;
    tm_init(&full, 23);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/parent", g_root);
    mkdir(dir, 0755);
    CHECK(tm_write(&full, dir, NULL));
    tm_free(&full);
    seslm_model *parent = NULL;
    CHECK_MSG(seslm_model_load(&parent, dir) == SESLM_OK, "load parent: %s", seslm_last_error());
    if (!parent) return;
    const seslm_model_config *pc = seslm_model_get_config(parent);
    const int C = pc->hidden;
    float want[NE * 16], got[NE * 16], got_ref[NE * 16];
    embed(parent, "cpu", want);

    // reconstruction: calibrate, prune a head and a third of layer 1's neurons
    seslm_calibration cal;
    CHECK_MSG(seslm_calibration_collect(&cal, parent, calib_texts, NC, 4, 1, NULL, NULL) == SESLM_OK, "calibrate: %s",
              seslm_last_error());
    CHECK(cal.texts == NC && cal.tokens > NC);
    const char *plan = "[{\"layer\": 0, \"remove_heads\": [2], \"remove_neurons\": [1, 4, 9, 13]},"
                       " {\"layer\": 1, \"remove_heads\": [0], \"remove_neurons\": [0, 2, 3, 5, 7, 11, 17, 19]}]";
    seslm_recompile_opts plain = {.ridge = 1e-3}, refit = {.ridge = 1e-3, .calib = &cal};
    seslm_recompile_stats s1, s2;
    seslm_model *a = build(parent, plan, "sliced", &plain, &s1), *r = build(parent, plan, "refit", &refit, &s2);
    if (a && r) {
        embed(a, "cpu", got);
        const double ca = mean_cos(want, got, NE, C);
        embed(r, "cpu", got);
        const double cr = mean_cos(want, got, NE, C);
        CHECK_MSG(cr > ca, "held-out cosine to the parent: refit %.6f, sliced %.6f", cr, ca);
        for (int l = 0; l < 2; l++)
            CHECK_MSG(s2.ffn_err_fit[l] > 0 && s2.ffn_err_fit[l] < s2.ffn_err_plain[l] && s2.attn_err_fit[l] < s2.attn_err_plain[l],
                      "layer %d: calibration errors ffn %g/%g attn %g/%g", l, s2.ffn_err_fit[l], s2.ffn_err_plain[l],
                      s2.attn_err_fit[l], s2.attn_err_plain[l]);
    }
    seslm_model_free(a), seslm_model_free(r);

    // INT8 + compressed embeddings, nothing pruned; exact rows from "telemetry" counts
    uint64_t *counts = calloc((size_t)pc->vocab_size, sizeof *counts);
    for (int i = 0; i < pc->vocab_size; i++) counts[i] = (uint64_t)(i * 7 % 13);
    seslm_recompile_opts q8 = {.ridge = 1e-3, .quantize_int8 = 1, .compress_embeddings = 1, .token_counts = counts, .n_exact = 7};
    const char *none = "[{\"layer\": 0, \"remove_heads\": [], \"remove_neurons\": []},"
                       " {\"layer\": 1, \"remove_heads\": [], \"remove_neurons\": []}]";
    seslm_recompile_stats s3;
    seslm_model *q = build(parent, none, "int8", &q8, &s3);
    if (q) {
        CHECK(seslm_model_is_quantized(q) && !seslm_model_is_quantized(parent));
        CHECK(s3.exact_rows >= 5 && s3.exact_rows <= 9 && s3.bytes < s3.bytes_parent / 2);
        CHECK(s3.file_bytes < s3.file_bytes_parent);
        CHECK(q->lw[0].q_q && q->lw[0].ff2_q && q->lw[1].ao_q && !q->lw[0].q_w && q->lw[0].q_s);
        // every id keeps a row: exact rows bit for bit, the others within half a step of the parent's
        int exact = 0, bad = 0;
        float row[64];
        for (int id = 0; id < pc->vocab_size; id++) {
            seslm_embedding_row(row, &q->word, id, C);
            const float *pr = parent->word_emb + (size_t)id * C;
            if (q->word.exact_slot[id] >= 0) {
                exact++;
                bad += memcmp(row, pr, (size_t)C * sizeof *row) != 0;
            } else {
                for (int c = 0; c < C; c++) bad += !(isfinite(row[c]) && fabsf(row[c] - pr[c]) <= 0.5f * q->word.scale[id] * 1.0001f);
            }
        }
        CHECK_MSG(bad == 0 && exact == s3.exact_rows, "embedding rows: %d bad, %d exact (stats %d)", bad, exact, s3.exact_rows);
        // the most frequent ids (count 12: i * 7 % 13 == 12 -> i = 11, 24, 37) are exact
        CHECK(q->word.exact_slot[11] >= 0 && q->word.exact_slot[24] >= 0 && q->word.exact_slot[37] >= 0);
        // both backends agree, and the student stays close to the parent
        embed(q, "cpu", got);
        embed(q, "cpu-ref", got_ref);
        float d = 0;
        for (int i = 0; i < NE * C; i++) d = fmaxf(d, fabsf(got[i] - got_ref[i]));
        CHECK_MSG(d < 2e-3f, "INT8 student: cpu vs cpu-ref differ by %g", d);
        const double cq = mean_cos(want, got, NE, C);
        CHECK_MSG(cq > 0.99, "INT8 student vs parent: mean cos %.6f", cq);
        // config.json describes the quantization
        char path[4096];
        snprintf(path, sizeof path, "%s/int8/config.json", g_root);
        FILE *f = fopen(path, "r");
        char buf[8192] = {0};
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f) fclose(f);
        CHECK(n > 0 && strstr(buf, "\"seslm_quantization\"") && strstr(buf, "int8-per-output-channel-symmetric"));
        // an INT8 model cannot be recompiled again
        seslm_plan pl;
        snprintf(path, sizeof path, "%s/int8.json", g_root);
        CHECK(seslm_plan_read_json(&pl, seslm_model_get_config(q), path) == SESLM_OK);
        snprintf(path, sizeof path, "%s/int8-again", g_root);
        CHECK(seslm_recompile_run(q, &pl, &q8, path, NULL) != SESLM_OK && strstr(seslm_last_error(), "INT8"));
        seslm_plan_free(&pl);
        struct stat sb;
        CHECK(stat(path, &sb) != 0);
    }
    seslm_model_free(q);
    free(counts);
    seslm_calibration_free(&cal);
    seslm_model_free(parent);
}

int main(void) {
    g_root = tm_mkdtemp("recompile_q8");
    test_reconstruct_synthetic();
    test_tiny();
    tm_rmtree(g_root);
    free(g_root);
    return test_report("test_recompile_q8");
}
