/* test_distill_grad_oracle.c — model-level gradients of the distillation engine (dmodel.h).
 *
 * 1. The real all-MiniLM-L6-v2 against PyTorch autograd (tests/oracle/make_grad_fixtures.py, fixture in
 *    tests/fixtures/grad/): for L = sum(emb * R), dL/dparam on 20 slices of 19 tensors (word-embedding rows,
 *    positions, LayerNorms, Q / K / V / output / FFN weights and biases across layers), with the reference
 *    and the fast CPU backends; and the forward embeddings against sentence-transformers' math.
 * 2. A pruned student (per-layer head counts 12 / 7 / 5 / 9 / 0 / 12 and FFN widths, written by
 *    seslm_recompile_run): its dmodel forward against the runtime encoder, and its gradients against
 *    central finite differences of the reference forward on a sample of parameters (plus fast vs ref
 *    on all of them). */
#include "dmodel.h"
#include "quant.h"
#include "recompile.h"
#include "test.h"
#include "util.h"

#include <stdint.h>
#include <unistd.h>

#define MAXS 8
static int n_sent, lens[MAXS];
static int32_t ids[MAXS][64];
static float *fix;               // the .bin
static size_t r_off, emb_off;
static double fix_loss;
typedef struct { char name[96]; int r0, nr, nc; size_t off; } slice;
static slice sl[64];
static int n_sl;

static int load_fixture(const char *dir) {
    char p[1024];
    snprintf(p, sizeof p, "%s/minilm_grads.bin", dir);
    char *bin = NULL;
    size_t nb = 0;
    if (util_read_file(p, &bin, &nb, 16 << 20, NULL) != SESLM_OK) return 0;
    fix = (float *)bin;
    snprintf(p, sizeof p, "%s/minilm_grads.txt", dir);
    FILE *f = fopen(p, "r");
    if (!f) return 0;
    char key[32];
    size_t cnt;
    while (fscanf(f, "%31s", key) == 1) {
        if (!strcmp(key, "sentences")) {
            if (fscanf(f, "%d", &n_sent) != 1 || n_sent > MAXS) return 0;
            for (int i = 0; i < n_sent; i++) {
                if (fscanf(f, " ids %d", &lens[i]) != 1 || lens[i] > 64) return 0;
                for (int t = 0; t < lens[i]; t++)
                    if (fscanf(f, "%d", &ids[i][t]) != 1) return 0;
            }
        } else if (!strcmp(key, "r")) {
            if (fscanf(f, "%zu %zu", &r_off, &cnt) != 2) return 0;
        } else if (!strcmp(key, "emb")) {
            if (fscanf(f, "%zu %zu", &emb_off, &cnt) != 2) return 0;
        } else if (!strcmp(key, "loss")) {
            if (fscanf(f, "%lf", &fix_loss) != 1) return 0;
        } else if (!strcmp(key, "grad")) {
            slice *s = &sl[n_sl++];
            if (fscanf(f, "%95s %d %d %d %zu", s->name, &s->r0, &s->nr, &s->nc, &s->off) != 5) return 0;
        } else return 0;
    }
    fclose(f);
    return n_sent > 0 && n_sl > 0;
}

/* |got - want| <= atol + rtol |want| with atol relative to the slice's largest gradient. */
static int grads_close(const char *what, const float *got, const float *want, size_t n) {
    double mx = 0;
    for (size_t i = 0; i < n; i++) mx = fabs(want[i]) > mx ? fabs(want[i]) : mx;
    const double atol = 2e-3 * mx + 1e-7, rtol = 1e-2;
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - want[i]);
        if (!(isfinite(got[i]) && d <= atol + rtol * fabs(want[i]))) {
            if (bad < 3) fprintf(stderr, "  %s[%zu]: got %.7g want %.7g\n", what, i, got[i], want[i]);
            bad++;
        }
    }
    if (bad) fprintf(stderr, "  %s: %zu of %zu off (largest |g| %.3g)\n", what, bad, n, mx);
    return bad == 0;
}

static void oracle_real_model(const seslm_model *m, const seslm_backend *be) {
    dm_model dm;
    CHECK(dm_init(&dm, m) == SESLM_OK);
    dm_acts a;
    CHECK(dm_acts_init(&a, &dm, 256, MAXS, 64, 2) == SESLM_OK);
    const int32_t *rows[MAXS];
    for (int i = 0; i < n_sent; i++) rows[i] = ids[i];
    dm_forward(&dm, be, &a, rows, lens, n_sent);
    const int C = dm.C;
    CHECK_MSG(grads_close("embedding", a.emb, fix + emb_off, (size_t)n_sent * C), "%s: forward embeddings vs PyTorch",
              be->name);
    double loss = 0;
    for (int i = 0; i < n_sent * C; i++) loss += (double)a.emb[i] * fix[r_off + i];
    CHECK_MSG(fabs(loss - fix_loss) < 1e-4, "%s: loss %.7g, PyTorch %.7g", be->name, loss, fix_loss);
    float *grad = calloc(dm.n_params, sizeof(float));
    dm_backward(&dm, be, &a, fix + r_off, NULL, NULL, NULL, grad, 1);
    int compared = 0;
    for (int i = 0; i < n_sl; i++) {
        size_t off, numel;
        CHECK_MSG(dm_tensor_slot(&dm, sl[i].name, &off, &numel) == 0, "no slot for %s", sl[i].name);
        const size_t start = off + (size_t)sl[i].r0 * sl[i].nc, n = (size_t)sl[i].nr * sl[i].nc;
        char what[160];
        snprintf(what, sizeof what, "%.16s %.96s[%d..]", be->name, sl[i].name, sl[i].r0);
        CHECK_MSG(grads_close(what, grad + start, fix + sl[i].off, n), "%s: gradient differs from PyTorch", what);
        compared++;
    }
    CHECK(compared == n_sl && n_sl >= 15);
    free(grad);
    dm_acts_free(&a);
    dm_free(&dm);
}

// ---- pruned student ------------------------------------------------------------------------------

static double loss_of(const dm_model *dm, dm_acts *a, const int32_t *const *rows, const float *r) {
    dm_forward(dm, seslm_backend_cpu_ref(), a, rows, lens, n_sent);
    double s = 0;
    for (int i = 0; i < n_sent * dm->C; i++) s += (double)a->emb[i] * r[i];
    return s;
}

static void pruned_student(const seslm_model *parent) {
    const int heads_left[6] = {12, 7, 5, 9, 0, 12}, ffn_left[6] = {1536, 1000, 1536, 700, 1200, 1536};
    seslm_plan pl;
    memset(&pl, 0, sizeof pl);
    pl.n_layers = 6;
    int nrh[6], nrn[6], *rh[6], *rn[6];
    for (int l = 0; l < 6; l++) {
        nrh[l] = 12 - heads_left[l], nrn[l] = 1536 - ffn_left[l];
        rh[l] = malloc(12 * sizeof(int)), rn[l] = malloc(1536 * sizeof(int));
        for (int i = 0; i < nrh[l]; i++) rh[l][i] = i + (12 - nrh[l]) / 2;                   // a contiguous run
        for (int i = 0; i < nrn[l]; i++) rn[l][i] = nrn[l] <= 768 ? 2 * i : i; // every other neuron, or a run
    }
    pl.n_remove_heads = nrh, pl.n_remove_neurons = nrn, pl.remove_heads = rh, pl.remove_neurons = rn;
    snprintf(pl.method, sizeof pl.method, "test");
    char dir[] = "/tmp/seslm_distill_grad_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char out[256];
    snprintf(out, sizeof out, "%s/student", dir);
    seslm_status st = seslm_recompile_run(parent, &pl, NULL, out, NULL);
    CHECK_MSG(st == SESLM_OK, "recompile: %s", seslm_last_error());
    seslm_model *s = NULL;
    CHECK(st == SESLM_OK && seslm_model_load(&s, out) == SESLM_OK);
    if (!s) return;
    dm_model dm;
    CHECK(dm_init(&dm, s) == SESLM_OK);
    CHECK(dm.ly[1].H == 7 && dm.ly[4].H == 0 && dm.ly[3].F == 700);
    dm_acts a;
    CHECK(dm_acts_init(&a, &dm, 256, MAXS, 64, 2) == SESLM_OK);
    const int32_t *rows[MAXS];
    for (int i = 0; i < n_sent; i++) rows[i] = ids[i];
    // forward: the training forward computes what the runtime encoder computes
    seslm_encoder *enc = NULL;
    seslm_encoder_opts eo = {.backend = "cpu-ref", .n_threads = 1, .max_batch = MAXS};
    CHECK(seslm_encoder_new(&enc, s, &eo) == SESLM_OK);
    float *ref_emb = malloc((size_t)n_sent * dm.C * sizeof(float));
    CHECK(seslm_encoder_forward_ids(enc, rows, lens, n_sent, ref_emb) == SESLM_OK);
    dm_forward(&dm, seslm_backend_cpu_ref(), &a, rows, lens, n_sent);
    CHECK_MSG(grads_close("pruned forward", a.emb, ref_emb, (size_t)n_sent * dm.C), "pruned student forward vs encoder");
    // gradients: reference backward vs finite differences on a sample of parameters
    const float *r = fix + r_off;
    float *g_ref = calloc(dm.n_params, sizeof(float)), *g_fast = calloc(dm.n_params, sizeof(float));
    loss_of(&dm, &a, rows, r);
    dm_backward(&dm, seslm_backend_cpu_ref(), &a, r, NULL, NULL, NULL, g_ref, 1);
    dm_acts af;
    CHECK(dm_acts_init(&af, &dm, 256, MAXS, 64, 2) == SESLM_OK);
    dm_forward(&dm, seslm_backend_cpu_fast(), &af, rows, lens, n_sent);
    dm_backward(&dm, seslm_backend_cpu_fast(), &af, r, NULL, NULL, NULL, g_fast, 1);
    size_t bad = 0;
    double gmax = 0;
    for (size_t i = 0; i < dm.n_params; i++) gmax = fabs(g_ref[i]) > gmax ? fabs(g_ref[i]) : gmax;
    for (size_t i = 0; i < dm.n_params; i++)
        if (!(isfinite(g_fast[i]) && fabs(g_fast[i] - g_ref[i]) <= 1e-4 * gmax + 1e-2 * fabs(g_ref[i]))) bad++;
    CHECK_MSG(bad == 0, "pruned student: %zu of %zu gradients differ between cpu and cpu-ref", bad, dm.n_params);
    // the largest-gradient parameter of several tensors of every kind
    const char *names[] = {"encoder.layer.1.attention.self.query.bias", "encoder.layer.2.attention.self.key.weight",
                           "encoder.layer.3.attention.self.value.bias", "encoder.layer.1.attention.output.dense.weight",
                           "encoder.layer.4.attention.output.dense.bias", "encoder.layer.3.intermediate.dense.bias",
                           "encoder.layer.3.output.dense.weight", "encoder.layer.4.output.LayerNorm.weight",
                           "embeddings.LayerNorm.bias", "encoder.layer.0.output.dense.bias"};
    int fd_ok = 0, fd_n = 0;
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        size_t off, numel, best = 0;
        if (dm_tensor_slot(&dm, names[k], &off, &numel) != 0) {
            CHECK_MSG(0, "no slot %s", names[k]);
            continue;
        }
        for (size_t i = 0; i < numel; i++)
            if (fabs(g_ref[off + i]) > fabs(g_ref[off + best])) best = i;
        float *p = dm.params + off + best;
        const float keep = *p, eps = 1e-2f * (fabsf(keep) > 0.1f ? fabsf(keep) : 0.1f);
        *p = keep + eps;
        const double lp = loss_of(&dm, &a, rows, r);
        *p = keep - eps;
        const double lm = loss_of(&dm, &a, rows, r);
        *p = keep;
        const double num = (lp - lm) / (2.0 * (double)eps), an = g_ref[off + best];
        const int ok = fabs(num - an) <= 2e-2 * fabs(an) + 1e-5;
        if (!ok) fprintf(stderr, "  %s[%zu]: analytic %.6g numeric %.6g\n", names[k], best, an, num);
        fd_ok += ok, fd_n++;
    }
    CHECK_MSG(fd_ok == fd_n && fd_n == 10, "pruned student: %d of %d finite-difference checks passed", fd_ok, fd_n);
    // the INT8-aware phase: the training forward with weights and activations rounded (dm_fake_quant_*)
    // computes what the runtime encoder computes on the INT8 student recompile writes from the same weights
    {
        seslm_plan none;
        memset(&none, 0, sizeof none);
        int z[6] = {0}, *zp[6] = {0};
        none.n_layers = 6, none.n_remove_heads = z, none.n_remove_neurons = z, none.remove_heads = zp, none.remove_neurons = zp;
        snprintf(none.method, sizeof none.method, "test");
        for (int mode = 0; mode < 2; mode++) { // recompile's default (top1), then per token alone
            char q8[300];
            snprintf(q8, sizeof q8, "%s/int8%s", dir, mode ? "_token" : "");
            seslm_recompile_opts qo = {.quantize_int8 = 1, .act_token = mode};
            st = seslm_recompile_run(s, &none, &qo, q8, NULL);
            CHECK_MSG(st == SESLM_OK, "recompile int8: %s", seslm_last_error());
            seslm_model *sq = NULL;
            CHECK(st == SESLM_OK && seslm_model_load(&sq, q8) == SESLM_OK);
            CHECK_MSG(sq && seslm_model_get_config(sq)->act_top1 == !mode, "the student's config does not say how its activations round");
            seslm_encoder *eq = NULL;
            float *q_emb = malloc((size_t)n_sent * dm.C * sizeof(float));
            CHECK(sq && seslm_encoder_new(&eq, sq, &eo) == SESLM_OK);
            CHECK(eq && seslm_encoder_forward_ids(eq, rows, lens, n_sent, q_emb) == SESLM_OK);
            float *keep = malloc(dm.n_params * sizeof(float));
            memcpy(keep, dm.params, dm.n_params * sizeof(float));
            dm_fake_quant_weights(&dm);
            dm.fq_act = mode ? 1 : 2;
            dm_forward(&dm, seslm_backend_cpu_ref(), &a, rows, lens, n_sent);
            double worst_q = 1, worst_f = 1; // cosine of the simulated INT8 forward to the runtime INT8 / F32 encoder
            for (int i = 0; i < n_sent; i++) {
                double dq = 0, df = 0;
                for (int c = 0; c < dm.C; c++) {
                    dq += (double)a.emb[(size_t)i * dm.C + c] * q_emb[(size_t)i * dm.C + c];
                    df += (double)a.emb[(size_t)i * dm.C + c] * ref_emb[(size_t)i * dm.C + c];
                }
                worst_q = dq < worst_q ? dq : worst_q, worst_f = df < worst_f ? df : worst_f;
            }
            fprintf(stderr, "  INT8 simulation (%s): worst cosine to the runtime INT8 student %.7f, to the F32 student %.7f\n",
                    mode ? "per token" : "top1", worst_q, worst_f);
            CHECK_MSG(worst_q > 0.99999 && 1 - worst_q < 0.1 * (1 - worst_f),
                      "simulated INT8 forward (%s): cosine %.7f to the INT8 runtime (F32: %.7f)", mode ? "per token" : "top1",
                      worst_q, worst_f);
            memcpy(dm.params, keep, dm.n_params * sizeof(float));
            dm.fq_act = 0;
            free(keep), free(q_emb);
            seslm_encoder_free(eq);
            seslm_model_free(sq);
        }
        // the rounding itself is the runtime's: seslm_quantize_rows' codes times its scale, bit for bit
        const int M = 3, K = 37;
        float x[M * K], y[M * K], sc[M];
        int8_t qc[M * K];
        for (int i = 0; i < M * K; i++) x[i] = (float)sin(0.7 * i) * (i % 5 == 0 ? 9.0f : 1.0f);
        for (int k = 0; k < K; k++) x[2 * K + k] = 0; // a zero row stays zero
        seslm_quantize_rows(qc, sc, x, M, K, K);
        dm_fake_quant_rows(y, x, M, K);
        int same = 1;
        for (int i = 0; i < M * K; i++) same &= y[i] == (float)qc[i] * sc[i / K];
        CHECK_MSG(same, "dm_fake_quant_rows differs from seslm_quantize_rows");
        // top1: the same codes times scale, and the row's first largest element as it was
        int32_t ti[M];
        float tv[M];
        x[K + 4] = -40.0f, x[K + 9] = 40.0f; // row 1: a tie for the maximum, the first index is kept
        seslm_quantize_rows_top1(qc, sc, ti, tv, x, M, K, K);
        dm_fake_quant_rows_top1(y, x, M, K);
        same = ti[1] == 4;
        for (int i = 0; i < M * K; i++) same &= tv[i / K] != 0 && i % K == ti[i / K] ? y[i] == x[i] : y[i] == (float)qc[i] * sc[i / K];
        CHECK_MSG(same, "dm_fake_quant_rows_top1 differs from seslm_quantize_rows_top1");
    }
    free(g_ref), free(g_fast), free(ref_emb);
    seslm_encoder_free(enc);
    dm_acts_free(&a), dm_acts_free(&af);
    dm_free(&dm);
    seslm_model_free(s);
    util_rmtree(dir);
    for (int l = 0; l < 6; l++) free(rh[l]), free(rn[l]);
}

int main(void) {
    const char *model_dir = getenv("SESLM_MODEL_DIR") ? getenv("SESLM_MODEL_DIR") : SESLM_MODEL_DIR;
    if (!load_fixture(SESLM_SOURCE_DIR "/tests/fixtures/grad")) {
        fprintf(stderr, "cannot read tests/fixtures/grad (tests/oracle/make_grad_fixtures.py writes it)\n");
        return 1;
    }
    seslm_model *m = NULL;
    if (seslm_model_load(&m, model_dir) != SESLM_OK) {
        fprintf(stderr, "cannot load the real model (%s): %s\n", model_dir, seslm_last_error());
        return 1;
    }
    seslm_backend_cpu_fast()->set_threads(2);
    oracle_real_model(m, seslm_backend_cpu_ref());
    oracle_real_model(m, seslm_backend_cpu_fast());
    pruned_student(m);
    seslm_model_free(m);
    free(fix);
    return test_report("test_distill_grad_oracle");
}
