/* score.c — importance scores (score.h). */
#include "score.h"

#include "model_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- calibration ---------------------------------------------------------------------------------

static seslm_status calib_embed(seslm_calib *c, float *out) {
    for (int i = 0; i < c->n; i += c->batch) {
        int nb = c->n - i < c->batch ? c->n - i : c->batch;
        seslm_status st = seslm_encoder_embed_texts(c->e, c->texts + i, c->lens ? c->lens + i : NULL, nb,
                                                    out + (size_t)i * c->hidden);
        if (st != SESLM_OK) return st;
    }
    return SESLM_OK;
}

seslm_status seslm_calib_init(seslm_calib *c, seslm_encoder *e, int hidden, const char *const *texts,
                              const size_t *lens, int n, int batch) {
    memset(c, 0, sizeof *c);
    if (n <= 0 || batch <= 0) return seslm_fail(SESLM_ERR_ARG, "calibration needs at least one text");
    c->e = e, c->n = n, c->batch = batch, c->hidden = hidden, c->texts = texts, c->lens = lens;
    c->base = malloc((size_t)n * hidden * sizeof(float));
    c->cur = malloc((size_t)n * hidden * sizeof(float));
    c->cos = malloc((size_t)n * sizeof(float));
    if (!c->base || !c->cur || !c->cos) {
        seslm_calib_free(c);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    seslm_status st = seslm_encoder_set_masks(e, NULL, NULL);
    if (st == SESLM_OK) st = calib_embed(c, c->base);
    if (st != SESLM_OK) seslm_calib_free(c);
    return st;
}

void seslm_calib_free(seslm_calib *c) {
    free(c->base), free(c->cur), free(c->cos);
    c->base = c->cur = c->cos = NULL;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

seslm_status seslm_calib_eval(seslm_calib *c, const float *const *head_mask, const float *const *neuron_mask,
                              double *mean_cos, double *p5_cos) {
    seslm_status st = seslm_encoder_set_masks(c->e, head_mask, neuron_mask);
    if (st == SESLM_OK) st = calib_embed(c, c->cur);
    seslm_encoder_set_masks(c->e, NULL, NULL);
    if (st != SESLM_OK) return st;
    double sum = 0;
    for (int i = 0; i < c->n; i++) {
        const float *a = c->base + (size_t)i * c->hidden, *b = c->cur + (size_t)i * c->hidden;
        double ab = 0, aa = 0, bb = 0;
        for (int k = 0; k < c->hidden; k++) ab += (double)a[k] * b[k], aa += (double)a[k] * a[k], bb += (double)b[k] * b[k];
        double cs = aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
        c->cos[i] = (float)cs;
        sum += cs;
    }
    if (mean_cos) *mean_cos = sum / c->n;
    if (p5_cos) {
        float *tmp = c->cur; // reuse: (n) floats fit in (n, hidden)
        memcpy(tmp, c->cos, (size_t)c->n * sizeof(float));
        qsort(tmp, (size_t)c->n, sizeof(float), cmp_float);
        *p5_cos = tmp[(int)floor(0.05 * (c->n - 1))];
    }
    return SESLM_OK;
}

// ---- scores container ----------------------------------------------------------------------------

seslm_status seslm_scores_alloc(seslm_scores *s, const seslm_model_config *c) {
    memset(s, 0, sizeof *s);
    const int L = c->n_layers;
    s->n_layers = L, s->vocab_size = c->vocab_size;
    s->n_heads = calloc((size_t)L, sizeof(int));
    s->ffn_dim = calloc((size_t)L, sizeof(int));
    s->head = calloc((size_t)L, sizeof(double *));
    s->neuron = calloc((size_t)L, sizeof(double *));
    s->layer = calloc((size_t)L, sizeof(double));
    s->emb_row = calloc((size_t)c->vocab_size + 1, sizeof(double));
    int ok = s->n_heads && s->ffn_dim && s->head && s->neuron && s->layer && s->emb_row;
    for (int l = 0; ok && l < L; l++) {
        s->n_heads[l] = c->layers[l].n_heads, s->ffn_dim[l] = c->layers[l].ffn_dim;
        s->head[l] = calloc((size_t)s->n_heads[l] + 1, sizeof(double));
        s->neuron[l] = calloc((size_t)s->ffn_dim[l] + 1, sizeof(double));
        ok = s->head[l] && s->neuron[l];
    }
    if (!ok) {
        seslm_scores_free(s);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    return SESLM_OK;
}

void seslm_scores_free(seslm_scores *s) {
    for (int l = 0; l < s->n_layers; l++) {
        if (s->head) free(s->head[l]);
        if (s->neuron) free(s->neuron[l]);
    }
    free(s->n_heads), free(s->ffn_dim), free(s->head), free(s->neuron), free(s->layer), free(s->emb_row);
    memset(s, 0, sizeof *s);
}

static void emb_rows_from_tel(const seslm_score_ctx *ctx, seslm_scores *s) {
    if (!ctx->tel || !ctx->tel->token_counts || ctx->tel->vocab_size != s->vocab_size) return;
    for (int i = 0; i < s->vocab_size; i++) s->emb_row[i] = (double)ctx->tel->token_counts[i];
}

static void progress(const seslm_score_ctx *ctx, const char *what, int done, int total) {
    if (ctx->progress) ctx->progress(ctx->progress_ctx, what, done, total);
}

// ---- (a) activation-aware ------------------------------------------------------------------------

static seslm_status score_activation(const seslm_score_ctx *ctx, seslm_scores *s) {
    const seslm_model *m = ctx->m;
    const seslm_telemetry_view *v = ctx->tel;
    if (!v) return seslm_fail(SESLM_ERR_ARG, "the activation score needs telemetry");
    const seslm_model_config *c = &m->cfg;
    if (v->n_layers != c->n_layers || v->hidden != c->hidden)
        return seslm_fail(SESLM_ERR_SHAPE, "telemetry of a %d-layer, hidden-%d model; this model has %d, %d",
                          v->n_layers, v->hidden, c->n_layers, c->hidden);
    const int C = c->hidden, D = c->head_dim;
    for (int l = 0; l < c->n_layers; l++) {
        const seslm_layer_telemetry *T = &v->layers[l];
        const int H = c->layers[l].n_heads, A = H * D, F = c->layers[l].ffn_dim;
        if (T->n_heads != H || T->ffn_dim != F)
            return seslm_fail(SESLM_ERR_SHAPE, "telemetry layer %d has %d heads / %d neurons; the model %d / %d", l,
                              T->n_heads, T->ffn_dim, H, F);
        const seslm_layer_weights *w = &m->lw[l];
        if ((H > 0 && !w->ao_w) || (F > 0 && !w->ff2_w)) // INT8 / 2:4 weights: seslm_parent_load widens them
            return seslm_fail(SESLM_ERR_ARG, "layer %d: the activation score reads F32 weights; this model is quantized "
                                             "or sparse (load it with seslm_parent_load)", l);
        double qt = T->query_tokens ? (double)T->query_tokens : 1, ft = T->ffn_tokens ? (double)T->ffn_tokens : 1;
        double total = 0;
        for (int h = 0; h < H; h++) {
            double sc = 0;
            for (int j = h * D; j < (h + 1) * D; j++) {
                double col = 0;
                for (int i = 0; i < C; i++) col += (double)w->ao_w[(size_t)i * A + j] * w->ao_w[(size_t)i * A + j];
                sc += sqrt(col) * sqrt(T->in_sq_attn_out[j] / qt);
            }
            s->head[l][h] = sc;
            total += sc;
        }
        for (int f = 0; f < F; f++) {
            double col = 0;
            for (int i = 0; i < C; i++) col += (double)w->ff2_w[(size_t)i * F + f] * w->ff2_w[(size_t)i * F + f];
            s->neuron[l][f] = sqrt(col) * sqrt(T->ffn_sq[f] / ft);
            total += s->neuron[l][f];
        }
        s->layer[l] = total;
    }
    emb_rows_from_tel(ctx, s);
    return SESLM_OK;
}

// ---- (b) measured effect -------------------------------------------------------------------------

static seslm_status measure(const seslm_score_ctx *ctx, seslm_scores *s, int neurons) {
    if (!ctx->calib) return seslm_fail(SESLM_ERR_ARG, "the measured score needs calibration text");
    const seslm_model_config *c = &ctx->m->cfg;
    const int L = c->n_layers;
    int Hmax = 0, Fmax = 0;
    for (int l = 0; l < L; l++) {
        Hmax = c->layers[l].n_heads > Hmax ? c->layers[l].n_heads : Hmax;
        Fmax = c->layers[l].ffn_dim > Fmax ? c->layers[l].ffn_dim : Fmax;
    }
    float *hm = malloc(((size_t)Hmax + 1) * sizeof(float)), *nm = malloc(((size_t)Fmax + 1) * sizeof(float));
    const float **hp = calloc((size_t)L, sizeof(float *)), **np = calloc((size_t)L, sizeof(float *));
    seslm_status st = SESLM_OK;
    if (!hm || !nm || !hp || !np) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    const int G0 = ctx->neuron_groups > 0 ? ctx->neuron_groups : 64;
    int total = 0, done = 0;
    for (int l = 0; l < L; l++)
        total += c->layers[l].n_heads + (neurons ? (G0 < c->layers[l].ffn_dim ? G0 : c->layers[l].ffn_dim) : 0) + 1;
    for (int l = 0; st == SESLM_OK && l < L; l++) {
        const int H = c->layers[l].n_heads, F = c->layers[l].ffn_dim, G = !neurons ? 0 : G0 < F ? G0 : F;
        double mc;
        for (int h = 0; st == SESLM_OK && h < H; h++) {
            for (int k = 0; k < H; k++) hm[k] = k == h ? 0.0f : 1.0f;
            hp[l] = hm;
            st = seslm_calib_eval(ctx->calib, hp, NULL, &mc, NULL);
            hp[l] = NULL;
            s->head[l][h] = 1.0 - mc;
            progress(ctx, "measured score", ++done, total);
        }
        for (int g = 0; st == SESLM_OK && g < G; g++) {
            int f0 = (int)((int64_t)g * F / G), f1 = (int)((int64_t)(g + 1) * F / G);
            for (int k = 0; k < F; k++) nm[k] = k >= f0 && k < f1 ? 0.0f : 1.0f;
            np[l] = nm;
            st = seslm_calib_eval(ctx->calib, NULL, np, &mc, NULL);
            np[l] = NULL;
            for (int k = f0; k < f1; k++) s->neuron[l][k] = (1.0 - mc) / (f1 - f0);
            progress(ctx, "measured score", ++done, total);
        }
        if (st == SESLM_OK) { // the whole layer
            for (int k = 0; k < H; k++) hm[k] = 0;
            for (int k = 0; k < F; k++) nm[k] = 0;
            hp[l] = hm, np[l] = nm;
            st = seslm_calib_eval(ctx->calib, hp, np, &mc, NULL);
            hp[l] = np[l] = NULL;
            s->layer[l] = 1.0 - mc;
            progress(ctx, "measured score", ++done, total);
        }
    }
    free(hm), free(nm), free(hp), free(np);
    if (st == SESLM_OK) emb_rows_from_tel(ctx, s);
    return st;
}

static seslm_status score_measured(const seslm_score_ctx *ctx, seslm_scores *s) { return measure(ctx, s, 1); }

/* heads and layers measured, neurons from the activation score (measuring neurons one by one is too
 * slow, and in groups too coarse: docs/pruning.md) */
static seslm_status score_hybrid(const seslm_score_ctx *ctx, seslm_scores *s) {
    if (!ctx->calib) return seslm_fail(SESLM_ERR_ARG, "the hybrid score needs calibration text");
    seslm_status st = score_activation(ctx, s);
    if (st == SESLM_OK) st = measure(ctx, s, 0);
    return st;
}

// ---- the table -----------------------------------------------------------------------------------

static const seslm_score_method methods[] = {
    {"activation", "|W| x input-channel RMS from telemetry (Wanda/FLAP)", score_activation},
    {"measured", "1 - cosine of the embedding with the unit masked, on calibration text", score_measured},
    {"hybrid", "heads and layers measured, neurons activation-aware", score_hybrid},
};

const seslm_score_method *seslm_score_methods(int *n) {
    *n = (int)(sizeof methods / sizeof methods[0]);
    return methods;
}

const seslm_score_method *seslm_score_method_find(const char *name) {
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strcmp(methods[i].name, name) == 0) return &methods[i];
    return NULL;
}

seslm_status seslm_score_run(const char *name, const seslm_score_ctx *ctx, seslm_scores *s) {
    const seslm_score_method *meth = seslm_score_method_find(name);
    if (!meth) return seslm_fail(SESLM_ERR_ARG, "unknown score method '%s' (known: activation, measured, hybrid)", name);
    seslm_status st = seslm_scores_alloc(s, &ctx->m->cfg);
    if (st != SESLM_OK) return st;
    snprintf(s->method, sizeof s->method, "%s", name);
    st = meth->score(ctx, s);
    if (st != SESLM_OK) seslm_scores_free(s);
    return st;
}

// ---- JSON ----------------------------------------------------------------------------------------

static cJSON *doubles(const double *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

seslm_status seslm_scores_write_json(const seslm_scores *const *s, int n, const char *path) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", "seslm-scores");
    cJSON_AddNumberToObject(root, "version", 1);
    cJSON_AddStringToObject(root, "higher_is", "more important");
    cJSON *ms = cJSON_AddObjectToObject(root, "methods");
    for (int k = 0; k < n; k++) {
        cJSON *mj = cJSON_AddObjectToObject(ms, s[k]->method);
        cJSON *layers = cJSON_AddArrayToObject(mj, "layers");
        for (int l = 0; l < s[k]->n_layers; l++) {
            cJSON *lj = cJSON_CreateObject();
            cJSON_AddNumberToObject(lj, "layer", l);
            cJSON_AddNumberToObject(lj, "score", s[k]->layer[l]);
            cJSON_AddItemToObject(lj, "heads", doubles(s[k]->head[l], s[k]->n_heads[l]));
            cJSON_AddItemToObject(lj, "neurons", doubles(s[k]->neuron[l], s[k]->ffn_dim[l]));
            cJSON_AddItemToArray(layers, lj);
        }
        cJSON_AddItemToObject(mj, "embedding_rows", doubles(s[k]->emb_row, s[k]->vocab_size));
    }
    char *txt = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!txt) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    FILE *f = fopen(path, "w");
    int ok = f && fputs(txt, f) >= 0 && fputc('\n', f) != EOF;
    if (f) ok &= fclose(f) == 0;
    free(txt);
    return ok ? SESLM_OK : seslm_fail(SESLM_ERR_IO, "cannot write %s", path);
}
