/* dmodel.c — the trainable encoder: flat F32 parameters, forward with saved activations, backward
 * (dmodel.h). The math is encoder.c's, op for op; tests/unit/test_distill_grad.c checks the gradients
 * against PyTorch autograd on the real model. */
#include "dmodel.h"

#include "model_internal.h"
#include "quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

seslm_status dm_init(dm_model *dm, const seslm_model *m) {
    memset(dm, 0, sizeof *dm);
    const seslm_model_config *c = &m->cfg;
    if (!m->word.f32)
        return seslm_fail(SESLM_ERR_ARG, "%s: the word embeddings are compressed (INT8 rows); distil the FP32 student "
                                         "and compress afterwards", m->dir);
    for (int l = 0; l < c->n_layers; l++) {
        const seslm_layer_weights *w = &m->lw[l];
        if (w->q_q || w->k_q || w->v_q || w->ao_q || w->ff1_q || w->ff2_q)
            return seslm_fail(SESLM_ERR_ARG, "%s: layer %d has INT8 weights; distillation needs the FP32 student "
                                             "(recompile with --no-int8 / keep the FP32 master, quantize after "
                                             "distilling)", m->dir, l);
        if (w->ff1_sv || w->ff2_sv)
            return seslm_fail(SESLM_ERR_ARG, "%s: layer %d has 2:4-sparse FFN weights; distil the dense FP32 student", m->dir,
                              l);
    }
    dm->src = m, dm->cfg = c;
    dm->C = c->hidden, dm->D = c->head_dim, dm->L = c->n_layers, dm->V = c->vocab_size;
    dm->P = c->max_position, dm->T = c->type_vocab_size;
    const size_t C = (size_t)dm->C;
    size_t n = 0;
    dm->word = n, n += (size_t)dm->V * C;
    dm->pos = n, n += (size_t)dm->P * C;
    dm->type = n, n += (size_t)dm->T * C;
    dm->train_begin = n;
    dm->eln_g = n, n += C;
    dm->eln_b = n, n += C;
    if (!(dm->ly = calloc((size_t)dm->L + 1, sizeof *dm->ly))) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    for (int l = 0; l < dm->L; l++) {
        dm_layer *y = &dm->ly[l];
        y->H = c->layers[l].n_heads, y->A = y->H * dm->D, y->F = c->layers[l].ffn_dim;
        const size_t A = (size_t)y->A, F = (size_t)y->F;
        y->qkv_w = n, n += 3 * A * C;
        y->qkv_b = n, n += 3 * A;
        y->ao_w = n, n += C * A;
        y->ao_b = n, n += C;
        y->ln1_g = n, n += C;
        y->ln1_b = n, n += C;
        y->ff1_w = n, n += F * C;
        y->ff1_b = n, n += F;
        y->ff2_w = n, n += C * F;
        y->ff2_b = n, n += C;
        y->ln2_g = n, n += C;
        y->ln2_b = n, n += C;
        dm->Amax = y->A > dm->Amax ? y->A : dm->Amax;
        dm->Fmax = y->F > dm->Fmax ? y->F : dm->Fmax;
    }
    dm->n_params = n;
    if (!(dm->params = malloc(n * sizeof(float)))) {
        free(dm->ly);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory for %zu parameters", n);
    }
    float *p = dm->params;
#define CP(dst, src, count) memcpy(p + (dst), (src), (size_t)(count) * sizeof(float))
    CP(dm->word, m->word.f32, (size_t)dm->V * C);
    CP(dm->pos, m->pos_emb, (size_t)dm->P * C);
    CP(dm->type, m->type_emb, (size_t)dm->T * C);
    CP(dm->eln_g, m->emb_ln_g, C);
    CP(dm->eln_b, m->emb_ln_b, C);
    for (int l = 0; l < dm->L; l++) {
        const dm_layer *y = &dm->ly[l];
        const seslm_layer_weights *w = &m->lw[l];
        const size_t A = (size_t)y->A, F = (size_t)y->F;
        if (A) {
            CP(y->qkv_w, w->q_w, A * C);
            CP(y->qkv_w + A * C, w->k_w, A * C);
            CP(y->qkv_w + 2 * A * C, w->v_w, A * C);
            CP(y->qkv_b, w->q_b, A);
            CP(y->qkv_b + A, w->k_b, A);
            CP(y->qkv_b + 2 * A, w->v_b, A);
            CP(y->ao_w, w->ao_w, C * A);
        }
        CP(y->ao_b, w->ao_b, C);
        CP(y->ln1_g, w->ln1_g, C);
        CP(y->ln1_b, w->ln1_b, C);
        if (F) {
            CP(y->ff1_w, w->ff1_w, F * C);
            CP(y->ff1_b, w->ff1_b, F);
            CP(y->ff2_w, w->ff2_w, C * F);
        }
        CP(y->ff2_b, w->ff2_b, C);
        CP(y->ln2_g, w->ln2_g, C);
        CP(y->ln2_b, w->ln2_b, C);
    }
#undef CP
    return SESLM_OK;
}

void dm_free(dm_model *dm) {
    if (!dm) return;
    free(dm->params);
    free(dm->ly);
    memset(dm, 0, sizeof *dm);
}

int dm_tensor_slot(const dm_model *dm, const char *name, size_t *offset, size_t *numel) {
    if (strncmp(name, "bert.", 5) == 0) name += 5;
    const size_t C = (size_t)dm->C;
    struct { const char *n; size_t off, cnt; } emb[] = {
        {"embeddings.word_embeddings.weight", dm->word, (size_t)dm->V * C},
        {"embeddings.position_embeddings.weight", dm->pos, (size_t)dm->P * C},
        {"embeddings.token_type_embeddings.weight", dm->type, (size_t)dm->T * C},
        {"embeddings.LayerNorm.weight", dm->eln_g, C},
        {"embeddings.LayerNorm.bias", dm->eln_b, C},
    };
    for (size_t i = 0; i < sizeof emb / sizeof emb[0]; i++)
        if (strcmp(name, emb[i].n) == 0) {
            *offset = emb[i].off, *numel = emb[i].cnt;
            return 0;
        }
    int l = -1, used = 0;
    if (sscanf(name, "encoder.layer.%d.%n", &l, &used) != 1 || used == 0 || l < 0 || l >= dm->L) return -1;
    const char *s = name + used;
    const dm_layer *y = &dm->ly[l];
    const size_t A = (size_t)y->A, F = (size_t)y->F;
    struct { const char *n; size_t off, cnt; } t[] = {
        {"attention.self.query.weight", y->qkv_w, A * C},
        {"attention.self.key.weight", y->qkv_w + A * C, A * C},
        {"attention.self.value.weight", y->qkv_w + 2 * A * C, A * C},
        {"attention.self.query.bias", y->qkv_b, A},
        {"attention.self.key.bias", y->qkv_b + A, A},
        {"attention.self.value.bias", y->qkv_b + 2 * A, A},
        {"attention.output.dense.weight", y->ao_w, C * A},
        {"attention.output.dense.bias", y->ao_b, C},
        {"attention.output.LayerNorm.weight", y->ln1_g, C},
        {"attention.output.LayerNorm.bias", y->ln1_b, C},
        {"intermediate.dense.weight", y->ff1_w, F * C},
        {"intermediate.dense.bias", y->ff1_b, F},
        {"output.dense.weight", y->ff2_w, C * F},
        {"output.dense.bias", y->ff2_b, C},
        {"output.LayerNorm.weight", y->ln2_g, C},
        {"output.LayerNorm.bias", y->ln2_b, C},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(s, t[i].n) == 0) {
            *offset = t[i].off, *numel = t[i].cnt;
            return 0;
        }
    return -1;
}

// ---- activations ---------------------------------------------------------------------------------

size_t dm_acts_bytes(const dm_model *dm, int max_tok, int max_b, int max_len, int n_threads) {
    const size_t T = (size_t)max_tok, C = (size_t)dm->C;
    size_t f = T * C * 9 + 2 * (size_t)max_b * C * 2;        // e0, x, tmp, x1, dx, dz, dx1 (+ slack); pooled, emb, dpooled
    for (int l = 0; l < dm->L; l++) f += T * (2 * C + 4 * (size_t)dm->ly[l].A + dm->ly[l].F);
    f += T * (3 * (size_t)dm->Fmax + 4 * (size_t)dm->Amax); // h, dh, dhpre; dctx, dqkv
    size_t sf = seslm_attention_backward_scratch_floats(max_len, dm->D, n_threads);
    const size_t sfw = seslm_attention_scratch_floats(max_len, dm->D, n_threads);
    f += sf > sfw ? sf : sfw;
    return f * sizeof(float) + T * sizeof(int32_t) + 2 * (size_t)max_b * sizeof(int);
}

seslm_status dm_acts_init(dm_acts *a, const dm_model *dm, int max_tok, int max_b, int max_len, int n_threads) {
    memset(a, 0, sizeof *a);
    a->max_tok = max_tok, a->max_b = max_b;
    const size_t T = (size_t)max_tok, C = (size_t)dm->C, L = (size_t)dm->L;
    int ok = 1;
#define AL(p, count) ok = ok && ((p) = malloc(((size_t)(count) + 1) * sizeof *(p))) != NULL
    AL(a->ids, T);
    AL(a->off, max_b);
    AL(a->len, max_b);
    AL(a->e0, T * C);
    a->z1 = calloc(L + 1, sizeof(float *));
    a->z2 = calloc(L + 1, sizeof(float *));
    a->qkv = calloc(L + 1, sizeof(float *));
    a->ctx = calloc(L + 1, sizeof(float *));
    a->hpre = calloc(L + 1, sizeof(float *));
    ok = ok && a->z1 && a->z2 && a->qkv && a->ctx && a->hpre;
    for (size_t l = 0; ok && l < L; l++) {
        AL(a->z1[l], T * C);
        AL(a->z2[l], T * C);
        AL(a->qkv[l], T * 3 * (size_t)dm->ly[l].A);
        AL(a->ctx[l], T * (size_t)dm->ly[l].A);
        AL(a->hpre[l], T * (size_t)dm->ly[l].F);
    }
    AL(a->x, T * C);
    AL(a->h, T * (size_t)dm->Fmax);
    AL(a->tmp, T * C);
    AL(a->pooled, (size_t)max_b * C);
    AL(a->emb, (size_t)max_b * C);
    size_t sf = seslm_attention_backward_scratch_floats(max_len, dm->D, n_threads);
    const size_t sfw = seslm_attention_scratch_floats(max_len, dm->D, n_threads);
    a->scratch_floats = sf > sfw ? sf : sfw;
    AL(a->scratch, a->scratch_floats);
    AL(a->dx, T * C);
    AL(a->dz, T * C);
    AL(a->dx1, T * C);
    AL(a->x1, T * C);
    AL(a->dh, T * (size_t)dm->Fmax);
    AL(a->dhpre, T * (size_t)dm->Fmax);
    AL(a->dctx, T * (size_t)dm->Amax);
    AL(a->dqkv, T * 3 * (size_t)dm->Amax);
    AL(a->dpooled, (size_t)max_b * C);
#undef AL
    if (!ok) {
        dm_acts_free(a);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory for the activations of %d tokens", max_tok);
    }
    (void)L;
    a->dh[0] = 0; // (Fmax may be 0)
    return SESLM_OK;
}

void dm_acts_free(dm_acts *a) {
    if (!a) return;
    for (int l = 0; a->z1 && a->z1[l]; l++) free(a->z1[l]);
    for (int l = 0; a->z2 && a->z2[l]; l++) free(a->z2[l]);
    for (int l = 0; a->qkv && a->qkv[l]; l++) free(a->qkv[l]);
    for (int l = 0; a->ctx && a->ctx[l]; l++) free(a->ctx[l]);
    for (int l = 0; a->hpre && a->hpre[l]; l++) free(a->hpre[l]);
    free(a->z1), free(a->z2), free(a->qkv), free(a->ctx), free(a->hpre);
    free(a->ids), free(a->off), free(a->len), free(a->e0), free(a->x), free(a->h), free(a->tmp);
    free(a->pooled), free(a->emb), free(a->scratch), free(a->dx), free(a->dz), free(a->dx1), free(a->x1);
    free(a->dh), free(a->dhpre), free(a->dctx), free(a->dqkv), free(a->dpooled);
    memset(a, 0, sizeof *a);
}

// ---- fake quantization (the INT8-aware phase) -----------------------------------------------------

// round to nearest, ties to even, for |v| <= 127.5 (kernels/cpu/quant.c's trick, same results)
static inline float round_even(float v) { return (v + 12582912.0f) - 12582912.0f; }

void dm_fake_quant_rows(float *y, const float *x, int M, int K) {
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const float *r = x + (size_t)m * K;
        float *o = y + (size_t)m * K, amax = 0.0f;
        for (int k = 0; k < K; k++) {
            const float a = fabsf(r[k]);
            amax = a > amax ? a : amax;
        }
        if (!(amax > 0.0f)) { // a zero row stays zero (a NaN row stays NaN: the loss check catches it)
            if (o != r) memcpy(o, r, (size_t)K * sizeof(float));
            continue;
        }
        const float inv = 127.0f / amax, s = amax / 127.0f;
        for (int k = 0; k < K; k++) {
            float v = round_even(r[k] * inv);
            v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
            o[k] = v * s;
        }
    }
}

// The runtime's own quantizer (quant.h), so the simulation cannot drift from it: codes times scale, and the
// row's first largest element as it was.
void dm_fake_quant_rows_top1(float *y, const float *x, int M, int K) {
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        int8_t qs[4096], *q = K <= 4096 ? qs : malloc((size_t)K);
        const float *r = x + (size_t)m * K;
        float *o = y + (size_t)m * K, s, tv;
        int32_t t;
        if (!q) { // out of memory: NaN, which the loss check reports
            for (int k = 0; k < K; k++) o[k] = NAN;
            continue;
        }
        seslm_quantize_rows_top1(q, &s, &t, &tv, r, 1, K, K);
        if (isnan(s) || (s == 0.0f && tv == 0.0f)) { // a NaN row stays NaN, a zero row zero (dm_fake_quant_rows)
            if (o != r) memcpy(o, r, (size_t)K * sizeof(float));
        } else {
            for (int k = 0; k < K; k++) o[k] = (float)q[k] * s;
            o[t] = tv;
        }
        if (q != qs) free(q);
    }
}

// fq_act 1: per token; 2: per token with the largest element kept
static void fake_quant_act(const dm_model *dm, float *y, const float *x, int M, int K) {
    if (dm->fq_act == 2) dm_fake_quant_rows_top1(y, x, M, K);
    else dm_fake_quant_rows(y, x, M, K);
}

void dm_fake_quant_weights(dm_model *dm) {
    float *P = dm->params;
    const int C = dm->C;
    for (int l = 0; l < dm->L; l++) {
        const dm_layer *y = &dm->ly[l];
        if (y->A > 0) {
            dm_fake_quant_rows(P + y->qkv_w, P + y->qkv_w, 3 * y->A, C); // (3A, C): Q, K, V rows each alone
            dm_fake_quant_rows(P + y->ao_w, P + y->ao_w, C, y->A);       // (C, A)
        }
        if (y->F > 0) {
            dm_fake_quant_rows(P + y->ff1_w, P + y->ff1_w, y->F, C); // (F, C)
            dm_fake_quant_rows(P + y->ff2_w, P + y->ff2_w, C, y->F); // (C, F)
        }
    }
}

// ---- forward -------------------------------------------------------------------------------------

static void rows_bias(float *y, const float *b, int M, int N) {
    for (int m = 0; m < M; m++) memcpy(y + (size_t)m * N, b, (size_t)N * sizeof(float));
}

// z = x + r (saved), x = LayerNorm(z)
static void add_save_ln(const seslm_backend *be, float *x, const float *r, float *z, const float *g, const float *b, int M,
                        int C, float eps) {
    for (size_t i = 0; i < (size_t)M * C; i++) z[i] = x[i] + r[i];
    memcpy(x, z, (size_t)M * C * sizeof(float));
    be->add_layernorm(x, NULL, g, b, M, C, eps);
}

static void ln_of(const seslm_backend *be, float *y, const float *z, const float *g, const float *b, int M, int C, float eps) {
    memcpy(y, z, (size_t)M * C * sizeof(float));
    be->add_layernorm(y, NULL, g, b, M, C, eps);
}

void dm_forward(const dm_model *dm, const seslm_backend *be, dm_acts *a, const int32_t *const *ids, const int *lens,
                int B) {
    const int C = dm->C, D = dm->D;
    const float eps = dm->cfg->layer_norm_eps, *P = dm->params;
    int ntok = 0;
    for (int b = 0; b < B; b++) {
        a->off[b] = ntok, a->len[b] = lens[b];
        memcpy(a->ids + ntok, ids[b], (size_t)lens[b] * sizeof(int32_t));
        ntok += lens[b];
    }
    a->ntok = ntok, a->B = B;
    seslm_embedding word = {.f32 = P + dm->word};
    be->embed(a->e0, a->ids, a->off, a->len, B, &word, P + dm->pos, P + dm->type, C); // (Ntok, C)
    ln_of(be, a->x, a->e0, P + dm->eln_g, P + dm->eln_b, ntok, C, eps);
    for (int l = 0; l < dm->L; l++) {
        const dm_layer *y = &dm->ly[l];
        if (y->A > 0) {
            seslm_weight Wqkv = {.w = P + y->qkv_w, .N = 3 * y->A, .K = C}, Wao = {.w = P + y->ao_w, .N = C, .K = y->A};
            const float *xin = a->x, *cin = a->ctx[l];
            if (dm->fq_act) fake_quant_act(dm, a->x1, a->x, ntok, C), xin = a->x1; // x1, dctx: backward work
            be->linear(a->qkv[l], xin, &Wqkv, P + y->qkv_b, ntok); // (Ntok, 3A)
            be->attention(a->ctx[l], a->qkv[l], a->off, a->len, B, y->H, D, a->scratch, a->scratch_floats, NULL);
            if (dm->fq_act) fake_quant_act(dm, a->dctx, a->ctx[l], ntok, y->A), cin = a->dctx;
            be->linear(a->tmp, cin, &Wao, P + y->ao_b, ntok); // (Ntok, C)
        } else {
            rows_bias(a->tmp, P + y->ao_b, ntok, C);
        }
        add_save_ln(be, a->x, a->tmp, a->z1[l], P + y->ln1_g, P + y->ln1_b, ntok, C, eps);
        if (y->F > 0) {
            seslm_weight W1 = {.w = P + y->ff1_w, .N = y->F, .K = C}, W2 = {.w = P + y->ff2_w, .N = C, .K = y->F};
            const float *xin = a->x;
            if (dm->fq_act) fake_quant_act(dm, a->x1, a->x, ntok, C), xin = a->x1;
            be->linear(a->hpre[l], xin, &W1, P + y->ff1_b, ntok); // (Ntok, F)
            memcpy(a->h, a->hpre[l], (size_t)ntok * y->F * sizeof(float));
            be->gelu(a->h, (size_t)ntok * y->F);
            if (dm->fq_act) fake_quant_act(dm, a->h, a->h, ntok, y->F); // recomputed unrounded in the backward
            be->linear(a->tmp, a->h, &W2, P + y->ff2_b, ntok); // (Ntok, C)
        } else {
            rows_bias(a->tmp, P + y->ff2_b, ntok, C);
        }
        add_save_ln(be, a->x, a->tmp, a->z2[l], P + y->ln2_g, P + y->ln2_b, ntok, C, eps);
    }
    be->pool(a->pooled, a->x, a->off, a->len, B, C, 0); // (B, C)
    memcpy(a->emb, a->pooled, (size_t)B * C * sizeof(float));
    for (int b = 0; b < B; b++) { // L2 normalisation as the pool op's normalize
        double n2 = 0;
        for (int c = 0; c < C; c++) n2 += (double)a->emb[(size_t)b * C + c] * a->emb[(size_t)b * C + c];
        const double inv = 1.0 / (sqrt(n2) > 1e-12 ? sqrt(n2) : 1e-12);
        for (int c = 0; c < C; c++) a->emb[(size_t)b * C + c] = (float)(a->emb[(size_t)b * C + c] * inv);
    }
}

// ---- backward ------------------------------------------------------------------------------------

void dm_layer_output(const dm_model *dm, const seslm_backend *be, const dm_acts *a, int l, float *out) {
    ln_of(be, out, a->z2[l], dm->params + dm->ly[l].ln2_g, dm->params + dm->ly[l].ln2_b, a->ntok, dm->C,
          dm->cfg->layer_norm_eps);
}

void dm_backward(const dm_model *dm, const seslm_backend *be, dm_acts *a, const float *demb, const float *dpooled,
                 const float *dqkv_last, const float *const *dhid, float *grad, int train_embeddings) {
    const int C = dm->C, D = dm->D, B = a->B, ntok = a->ntok;
    const float eps = dm->cfg->layer_norm_eps, *P = dm->params;
    const size_t TC = (size_t)ntok * C;
    float *G = grad;
    // pooled -> normalised embedding; mean pooling
    if (dpooled) memcpy(a->dpooled, dpooled, (size_t)B * C * sizeof(float));
    else memset(a->dpooled, 0, (size_t)B * C * sizeof(float));
    if (demb) be->l2norm_backward(a->dpooled, demb, a->pooled, B, C);
    memset(a->dx, 0, TC * sizeof(float));
    be->pool_backward(a->dx, a->dpooled, a->off, a->len, B, C); // dx: gradient of the last layer's output
    for (int l = dm->L - 1; l >= 0; l--) {
        const dm_layer *y = &dm->ly[l];
        const int A = y->A, F = y->F;
        if (dhid && dhid[l])
            for (size_t i = 0; i < TC; i++) a->dx[i] += dhid[l][i];
        // x_out = LN2(z2), z2 = x1 + ffn(x1)
        memset(a->dz, 0, TC * sizeof(float));
        be->layernorm_backward(a->dz, G + y->ln2_g, G + y->ln2_b, a->dx, a->z2[l], P + y->ln2_g, ntok, C, eps);
        ln_of(be, a->x1, a->z1[l], P + y->ln1_g, P + y->ln1_b, ntok, C, eps); // recomputed x1
        memcpy(a->dx1, a->dz, TC * sizeof(float));                            // residual branch
        if (F > 0) {
            memcpy(a->h, a->hpre[l], (size_t)ntok * F * sizeof(float)); // recomputed GELU output
            be->gelu(a->h, (size_t)ntok * F);
            memset(a->dh, 0, (size_t)ntok * F * sizeof(float));
            be->linear_backward(a->dh, G + y->ff2_w, G + y->ff2_b, a->dz, a->h, P + y->ff2_w, ntok, C, F);
            memset(a->dhpre, 0, (size_t)ntok * F * sizeof(float));
            be->gelu_backward(a->dhpre, a->hpre[l], a->dh, (size_t)ntok * F);
            be->linear_backward(a->dx1, G + y->ff1_w, G + y->ff1_b, a->dhpre, a->x1, P + y->ff1_w, ntok, F, C);
        } else {
            be->linear_backward(NULL, NULL, G + y->ff2_b, a->dz, NULL, NULL, ntok, C, 0);
        }
        // x1 = LN1(z1), z1 = x_in + attn(x_in)
        memset(a->dz, 0, TC * sizeof(float));
        be->layernorm_backward(a->dz, G + y->ln1_g, G + y->ln1_b, a->dx1, a->z1[l], P + y->ln1_g, ntok, C, eps);
        memcpy(a->dx, a->dz, TC * sizeof(float)); // residual branch into x_in
        if (A > 0) {
            memset(a->dctx, 0, (size_t)ntok * A * sizeof(float));
            be->linear_backward(a->dctx, G + y->ao_w, G + y->ao_b, a->dz, a->ctx[l], P + y->ao_w, ntok, C, A);
            if (l == dm->L - 1 && dqkv_last) memcpy(a->dqkv, dqkv_last, (size_t)ntok * 3 * A * sizeof(float));
            else memset(a->dqkv, 0, (size_t)ntok * 3 * A * sizeof(float));
            be->attention_backward(a->dqkv, a->dctx, a->qkv[l], a->off, a->len, B, y->H, D, NULL, a->scratch,
                                   a->scratch_floats);
            // x_in: the embedding LayerNorm's output, or the previous layer's
            if (l == 0) ln_of(be, a->x1, a->e0, P + dm->eln_g, P + dm->eln_b, ntok, C, eps);
            else ln_of(be, a->x1, a->z2[l - 1], P + dm->ly[l - 1].ln2_g, P + dm->ly[l - 1].ln2_b, ntok, C, eps);
            be->linear_backward(a->dx, G + y->qkv_w, G + y->qkv_b, a->dqkv, a->x1, P + y->qkv_w, ntok, 3 * A, C);
        } else {
            be->linear_backward(NULL, NULL, G + y->ao_b, a->dz, NULL, NULL, ntok, C, 0);
        }
    }
    memset(a->dz, 0, TC * sizeof(float));
    be->layernorm_backward(a->dz, G + dm->eln_g, G + dm->eln_b, a->dx, a->e0, P + dm->eln_g, ntok, C, eps);
    if (train_embeddings)
        be->embed_backward(G + dm->word, G + dm->pos, G + dm->type, a->dz, a->ids, a->off, a->len, B, C);
}
