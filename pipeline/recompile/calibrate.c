/* calibrate.c — activation statistics of the parent on calibration text (calibrate.h). */
#include "calibrate.h"

#include "encoder_probe.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef SESLM_HAVE_OPENBLAS
#include <cblas.h>
#endif

typedef struct {
    seslm_calibration *c;
    double *zbuf; // (max tokens, max width + 1) the augmented activations of one batch, in double
    int oom;
} probe_state;

// G (W+1, W+1) upper triangle += [x, 1]^T [x, 1] over ntok rows of x (ntok, W)
void seslm_gram_add(double *G, const float *x, int ntok, int W, double *z) {
    const int W1 = W + 1;
    for (int t = 0; t < ntok; t++) {
        for (int i = 0; i < W; i++) z[(size_t)t * W1 + i] = x[(size_t)t * W + i];
        z[(size_t)t * W1 + W] = 1.0;
    }
#ifdef SESLM_HAVE_OPENBLAS
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, W1, ntok, 1.0, z, W1, 1.0, G, W1);
#else
    for (int t = 0; t < ntok; t++) {
        const double *r = z + (size_t)t * W1;
        for (int i = 0; i < W1; i++) {
            const double a = r[i];
            double *g = G + (size_t)i * W1;
            for (int j = i; j < W1; j++) g[j] += a * r[j];
        }
    }
#endif
}

static void amax_add(float *amax, const float *x, int ntok, int W) {
    for (int t = 0; t < ntok; t++)
        for (int i = 0; i < W; i++) amax[i] = fmaxf(amax[i], fabsf(x[(size_t)t * W + i]));
}

static void calib_probe(void *ctx, int l, seslm_probe_point pt, const float *x, int ntok, int W) {
    probe_state *ps = ctx;
    seslm_calibration *c = ps->c;
    switch (pt) {
    case SESLM_PROBE_QKV_IN: amax_add(c->amax_qkv[l], x, ntok, W); break;
    case SESLM_PROBE_FFN_IN: amax_add(c->amax_ffn_in[l], x, ntok, W); break;
    case SESLM_PROBE_CTX:
        amax_add(c->amax_ctx[l], x, ntok, W);
        seslm_gram_add(c->g_ctx[l], x, ntok, W, ps->zbuf);
        break;
    case SESLM_PROBE_FFN_H:
        amax_add(c->amax_ffn_h[l], x, ntok, W);
        seslm_gram_add(c->g_ffn[l], x, ntok, W, ps->zbuf);
        break;
    }
}

void seslm_calibration_free(seslm_calibration *c) {
    if (!c) return;
    for (int l = 0; l < c->n_layers; l++) {
        if (c->g_ctx) free(c->g_ctx[l]);
        if (c->g_ffn) free(c->g_ffn[l]);
        if (c->amax_qkv) free(c->amax_qkv[l]);
        if (c->amax_ffn_in) free(c->amax_ffn_in[l]);
        if (c->amax_ctx) free(c->amax_ctx[l]);
        if (c->amax_ffn_h) free(c->amax_ffn_h[l]);
    }
    free(c->A), free(c->F), free(c->g_ctx), free(c->g_ffn);
    free(c->amax_qkv), free(c->amax_ffn_in), free(c->amax_ctx), free(c->amax_ffn_h);
    memset(c, 0, sizeof *c);
}

static seslm_status calib_alloc(seslm_calibration *c, const seslm_model_config *cfg) {
    memset(c, 0, sizeof *c);
    const int L = cfg->n_layers, C = cfg->hidden;
    c->n_layers = L, c->hidden = C;
    c->A = calloc((size_t)L + 1, sizeof(int)), c->F = calloc((size_t)L + 1, sizeof(int));
    c->g_ctx = calloc((size_t)L + 1, sizeof(double *)), c->g_ffn = calloc((size_t)L + 1, sizeof(double *));
    c->amax_qkv = calloc((size_t)L + 1, sizeof(float *)), c->amax_ffn_in = calloc((size_t)L + 1, sizeof(float *));
    c->amax_ctx = calloc((size_t)L + 1, sizeof(float *)), c->amax_ffn_h = calloc((size_t)L + 1, sizeof(float *));
    if (!c->A || !c->F || !c->g_ctx || !c->g_ffn || !c->amax_qkv || !c->amax_ffn_in || !c->amax_ctx || !c->amax_ffn_h)
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    for (int l = 0; l < L; l++) {
        const int A = cfg->layers[l].n_heads * cfg->head_dim, F = cfg->layers[l].ffn_dim;
        c->A[l] = A, c->F[l] = F;
        c->amax_qkv[l] = calloc((size_t)C, sizeof(float));
        c->amax_ffn_in[l] = calloc((size_t)C, sizeof(float));
        c->amax_ctx[l] = calloc((size_t)A + 1, sizeof(float));
        c->amax_ffn_h[l] = calloc((size_t)F + 1, sizeof(float));
        c->g_ctx[l] = A ? calloc((size_t)(A + 1) * (A + 1), sizeof(double)) : NULL;
        c->g_ffn[l] = F ? calloc((size_t)(F + 1) * (F + 1), sizeof(double)) : NULL;
        if (!c->amax_qkv[l] || !c->amax_ffn_in[l] || !c->amax_ctx[l] || !c->amax_ffn_h[l] || (A && !c->g_ctx[l]) ||
            (F && !c->g_ffn[l]))
            return seslm_fail(SESLM_ERR_NOMEM, "out of memory for the calibration statistics");
    }
    return SESLM_OK;
}

seslm_status seslm_calibration_collect(seslm_calibration *c, const seslm_model *m, const char *const *texts, int n,
                                       int batch, int n_threads, void (*progress)(void *ctx, int done, int total), void *pctx) {
    const seslm_model_config *cfg = seslm_model_get_config(m);
    if (n <= 0) return seslm_fail(SESLM_ERR_ARG, "calibration: no texts");
    if (batch <= 0) batch = 16;
    seslm_status st = calib_alloc(c, cfg);
    int W = cfg->hidden;
    for (int l = 0; l < cfg->n_layers; l++) {
        W = c->A[l] > W ? c->A[l] : W;
        W = c->F[l] > W ? c->F[l] : W;
    }
    seslm_encoder *e = NULL;
    seslm_encoder_opts o = {.backend = "cpu", .n_threads = n_threads, .max_batch = batch};
    if (st == SESLM_OK) st = seslm_encoder_new(&e, m, &o);
    probe_state ps = {.c = c};
    float *out = NULL;
    if (st == SESLM_OK) {
        ps.zbuf = malloc((size_t)batch * cfg->max_seq_len * (W + 1) * sizeof(double));
        out = malloc((size_t)batch * cfg->hidden * sizeof(float));
        if (!ps.zbuf || !out) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory for a calibration batch");
    }
    if (st == SESLM_OK) seslm_encoder_set_probe(e, calib_probe, &ps);
    for (int i = 0; st == SESLM_OK && i < n; i += batch) {
        const int b = n - i < batch ? n - i : batch;
        st = seslm_encoder_embed_texts(e, texts + i, NULL, b, out);
        if (st != SESLM_OK) {
            char why[512];
            snprintf(why, sizeof why, "%s", seslm_last_error());
            st = seslm_fail(st, "calibration text %d..%d: %s", i + 1, i + b, why);
            break;
        }
        c->texts += b;
        if (progress) progress(pctx, i + b, n);
    }
    if (st == SESLM_OK) {
        // the token count is the constant column's own Gram entry (any layer with an FFN or attention)
        for (int l = 0; l < c->n_layers; l++) {
            if (c->g_ffn[l]) {
                c->tokens = (int64_t)llround(c->g_ffn[l][(size_t)c->F[l] * (c->F[l] + 1) + c->F[l]]);
                break;
            }
            if (c->g_ctx[l]) {
                c->tokens = (int64_t)llround(c->g_ctx[l][(size_t)c->A[l] * (c->A[l] + 1) + c->A[l]]);
                break;
            }
        }
    }
    free(ps.zbuf), free(out);
    seslm_encoder_free(e);
    if (st != SESLM_OK) seslm_calibration_free(c);
    return st;
}

// ---- text files ------------------------------------------------------------------------------------

void seslm_lines_free(char **lines, int n) {
    for (int i = 0; i < n; i++) free(lines[i]);
    free(lines);
}

seslm_status seslm_lines_read(const char *path, int max_lines, char ***lines_out, int *n_out) {
    *lines_out = NULL, *n_out = 0;
    char *buf = NULL;
    size_t len = 0;
    seslm_status st = util_read_file(path, &buf, &len, (size_t)1 << 30, NULL);
    if (st != SESLM_OK) return st;
    int cap = 0, n = 0;
    char **lines = NULL;
    for (size_t i = 0; i < len && (max_lines <= 0 || n < max_lines);) {
        size_t j = i;
        while (j < len && buf[j] != '\n') j++;
        size_t e = j;
        if (e > i && buf[e - 1] == '\r') e--;
        size_t k = i;
        while (k < e && (buf[k] == ' ' || buf[k] == '\t' || buf[k] == '\f' || buf[k] == '\v')) k++;
        if (k < e) { // (a line of blanks is no text)
            if (n == cap) {
                cap = cap ? 2 * cap : 256;
                char **nl = realloc(lines, (size_t)cap * sizeof *nl);
                if (!nl) {
                    st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
                    break;
                }
                lines = nl;
            }
            if (!(lines[n] = malloc(e - i + 1))) {
                st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
                break;
            }
            memcpy(lines[n], buf + i, e - i);
            lines[n++][e - i] = 0;
        }
        i = j + 1;
    }
    free(buf);
    if (st == SESLM_OK && n == 0) st = seslm_fail(SESLM_ERR_FORMAT, "%s: no line with text (empty, or only blank lines)", path);
    if (st != SESLM_OK) {
        seslm_lines_free(lines, n);
        return st;
    }
    *lines_out = lines, *n_out = n;
    return SESLM_OK;
}
