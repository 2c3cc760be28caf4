/* test_masks.c — seslm_encoder_set_masks on the tiny model, both backends:
 *   * no mask (never set, or cleared) gives bit-identical embeddings to an encoder that never had masks;
 *   * masking head h of layer l equals the model whose head-h V rows and V bias and output-projection
 *     columns are zero (the head contributes exactly nothing);
 *   * masking every neuron of a layer equals the model whose second FFN matrix is zero (input side);
 *   * mask values outside [0, 1] are refused. */
#include "seslm.h"
#include "test.h"
#include "tiny_model.h"

static char *g_root;

static seslm_model *load(const tm_model *tm, const char *sub) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", g_root, sub);
    mkdir(dir, 0755);
    CHECK(tm_write(tm, dir, NULL));
    seslm_model *m = NULL;
    seslm_status st = seslm_model_load(&m, dir);
    CHECK_MSG(st == SESLM_OK, "load %s: %s", sub, seslm_last_error());
    if (!m) exit(test_report("test_masks"));
    return m;
}

enum { NSEQ = 3 };
static const int32_t s0[] = {2, 5, 7, 9, 10, 5, 11, 3}, s1[] = {2, 12, 13, 3}, s2[] = {2, 14, 15, 16, 17, 19, 5, 20, 8, 3};
static const int32_t *const rows[NSEQ] = {s0, s1, s2};
static const int lens[NSEQ] = {8, 4, 10};

static seslm_encoder *enc(const seslm_model *m, const char *backend) {
    seslm_encoder *e = NULL;
    seslm_encoder_opts o = {.backend = backend, .n_threads = 1, .max_batch = 4};
    CHECK(seslm_encoder_new(&e, m, &o) == SESLM_OK);
    if (!e) exit(test_report("test_masks"));
    return e;
}

static void run(seslm_encoder *e, float *out) { CHECK(seslm_encoder_forward_ids(e, rows, lens, NSEQ, out) == SESLM_OK); }

static float maxdiff(const float *a, const float *b, int n) {
    float d = 0;
    for (int i = 0; i < n; i++) d = fmaxf(d, fabsf(a[i] - b[i]));
    return d;
}

int main(void) {
    g_root = tm_mkdtemp("masks");
    tm_model full;
    tm_init(&full, 7);
    const int C = full.hidden, D = full.head_dim, H = full.heads, F = full.ffn, A = H * D;
    seslm_model *m = load(&full, "full");
    // the pruned twins: layer 1 head 2 dead; layer 0 FFN output projection zero
    const int L = 1, HD = 2;
    tm_tensor *vw = tm_findf(&full, "encoder.layer.%d.attention.self.value.weight", L);
    tm_tensor *vb = tm_findf(&full, "encoder.layer.%d.attention.self.value.bias", L);
    tm_tensor *ow = tm_findf(&full, "encoder.layer.%d.attention.output.dense.weight", L);
    for (int r = HD * D; r < (HD + 1) * D; r++) {
        memset(vw->f + (size_t)r * C, 0, (size_t)C * sizeof(float));
        vb->f[r] = 0;
    }
    for (int i = 0; i < C; i++)
        for (int j = HD * D; j < (HD + 1) * D; j++) ow->f[(size_t)i * A + j] = 0;
    seslm_model *m_head = load(&full, "head");
    tm_tensor *f2 = tm_findf(&full, "encoder.layer.%d.output.dense.weight", 0);
    memset(f2->f, 0, (size_t)C * F * sizeof(float));
    seslm_model *m_both = load(&full, "both"); // head dead and layer 0's FFN silent
    tm_free(&full);

    const char *backends[] = {"cpu", "cpu-ref"};
    float ref[NSEQ * 16], got[NSEQ * 16], want[NSEQ * 16];
    for (int b = 0; b < 2; b++) {
        seslm_encoder *e0 = enc(m, backends[b]), *e = enc(m, backends[b]);
        run(e0, ref);
        run(e, got);
        CHECK_MSG(memcmp(ref, got, sizeof ref) == 0, "%s: two fresh encoders differ", backends[b]);
        // all-ones masks count as no mask: bit-identical
        float ones_h[4] = {1, 1, 1, 1}, ones_f[24];
        for (int i = 0; i < F; i++) ones_f[i] = 1;
        const float *hm1[2] = {ones_h, ones_h}, *nm1[2] = {ones_f, ones_f};
        CHECK(seslm_encoder_set_masks(e, hm1, nm1) == SESLM_OK);
        run(e, got);
        CHECK_MSG(memcmp(ref, got, sizeof ref) == 0, "%s: all-ones masks change the output", backends[b]);

        // head mask == the pruned twin
        float hmask[4] = {1, 1, 1, 1};
        hmask[HD] = 0;
        const float *hm[2] = {NULL, hmask};
        CHECK(seslm_encoder_set_masks(e, hm, NULL) == SESLM_OK);
        run(e, got);
        seslm_encoder *eh = enc(m_head, backends[b]);
        run(eh, want);
        CHECK_MSG(maxdiff(got, want, NSEQ * C) < 1e-5f, "%s: head mask vs pruned model: %g", backends[b],
                  maxdiff(got, want, NSEQ * C));
        CHECK_MSG(maxdiff(got, ref, NSEQ * C) > 1e-4f, "%s: masking a head changed nothing", backends[b]);
        seslm_encoder_free(eh);

        // plus every neuron of layer 0 masked == output projection zero
        float zero_f[24] = {0};
        const float *nm[2] = {zero_f, NULL};
        CHECK(seslm_encoder_set_masks(e, hm, nm) == SESLM_OK);
        run(e, got);
        seslm_encoder *eb = enc(m_both, backends[b]);
        run(eb, want);
        CHECK_MSG(maxdiff(got, want, NSEQ * C) < 1e-5f, "%s: neuron mask vs zero FFN: %g", backends[b],
                  maxdiff(got, want, NSEQ * C));
        seslm_encoder_free(eb);

        // cleared: bit-identical again
        CHECK(seslm_encoder_set_masks(e, NULL, NULL) == SESLM_OK);
        run(e, got);
        CHECK_MSG(memcmp(ref, got, sizeof ref) == 0, "%s: cleared masks differ from no masks", backends[b]);
        // bad values refused, state unchanged
        float bad[4] = {1, -0.5f, 1, 1};
        const float *hb[2] = {bad, NULL};
        CHECK(seslm_encoder_set_masks(e, hb, NULL) == SESLM_ERR_ARG);
        run(e, got);
        CHECK(memcmp(ref, got, sizeof ref) == 0);
        seslm_encoder_free(e0);
        seslm_encoder_free(e);
    }
    seslm_model_free(m);
    seslm_model_free(m_head);
    seslm_model_free(m_both);
    tm_rmtree(g_root);
    free(g_root);
    return test_report("test_masks");
}
