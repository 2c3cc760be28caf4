/* lora.c — low-rank adapters: init, apply (W = base + s B A), gradients from dW, save / load (lora.h). */
#include "lora.h"

#include "safetensors_write.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SESLM_HAVE_OPENBLAS
#include <cblas.h>
#endif

static const char *const KIND[4] = {"qkv", "ao", "ff1", "ff2"};

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* C (m, n) = alpha op(A) op(B) + beta C, row-major; BLAS when present. */
static void gemm(int ta, int tb, int m, int n, int k, float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc) {
#ifdef SESLM_HAVE_OPENBLAS
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, A, lda, B,
                ldb, beta, C, ldc);
#else
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++) s += (double)(ta ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p]) *
                                             (tb ? B[(size_t)j * ldb + p] : B[(size_t)p * ldb + j]);
            C[(size_t)i * ldc + j] = (float)(alpha * s + (beta != 0 ? beta * C[(size_t)i * ldc + j] : 0));
        }
#endif
}

static void layout(lora *lo, const dm_model *dm) {
    size_t n = 0;
    int k = 0;
    for (int l = 0; l < dm->L; l++) {
        const dm_layer *y = &dm->ly[l];
        const int C = dm->C;
        const int outs[4] = {3 * y->A, C, y->F, C}, ins[4] = {C, y->A, C, y->F};
        const size_t offs[4] = {y->qkv_w, y->ao_w, y->ff1_w, y->ff2_w};
        for (int j = 0; j < 4; j++, k++) {
            lora_target *t = &lo->t[k];
            t->layer = l, t->kind = j, t->out = outs[j], t->in = ins[j], t->w_off = offs[j];
            t->a_off = n, n += (size_t)lo->rank * t->in;
            t->b_off = n, n += (size_t)t->out * lo->rank;
        }
    }
    lo->n_targets = k;
    lo->n_params = n;
}

seslm_status lora_init(lora *lo, const dm_model *dm, int rank, float alpha, unsigned long long seed) {
    memset(lo, 0, sizeof *lo);
    if (rank < 1 || rank > 256) return seslm_fail(SESLM_ERR_ARG, "LoRA rank must be in 1..256 (got %d)", rank);
    if (!(alpha > 0 && alpha < 1e4)) return seslm_fail(SESLM_ERR_ARG, "LoRA alpha must be in (0, 1e4)");
    lo->rank = rank, lo->alpha = alpha, lo->scale = alpha / (float)rank;
    lo->t = calloc((size_t)dm->L * 4 + 1, sizeof *lo->t);
    if (!lo->t) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    layout(lo, dm);
    lo->params = calloc(lo->n_params, sizeof(float));
    lo->base = malloc(dm->n_params * sizeof(float));
    if (!lo->params || !lo->base) {
        lora_free(lo);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory for the adapters");
    }
    memcpy(lo->base, dm->params, dm->n_params * sizeof(float));
    lo->n_base = dm->n_params;
    uint64_t s = seed ? seed : 1;
    for (int k = 0; k < lo->n_targets; k++) { // A: Kaiming-uniform (bound 1/sqrt(in), as PEFT); B: zero
        const lora_target *t = &lo->t[k];
        const double bound = 1.0 / sqrt((double)t->in);
        for (size_t i = 0; i < (size_t)rank * t->in; i++)
            lo->params[t->a_off + i] = (float)((2.0 * ((double)(splitmix64(&s) >> 11) / 9007199254740992.0) - 1) * bound);
    }
    return SESLM_OK;
}

void lora_free(lora *lo) {
    if (!lo) return;
    free(lo->t), free(lo->params), free(lo->base);
    memset(lo, 0, sizeof *lo);
}

void lora_apply(const lora *lo, dm_model *dm) {
    memcpy(dm->params, lo->base, lo->n_base * sizeof(float));
    for (int k = 0; k < lo->n_targets; k++) {
        const lora_target *t = &lo->t[k];
        // W (out, in) += s B (out, r) A (r, in)
        gemm(0, 0, t->out, t->in, lo->rank, lo->scale, lo->params + t->b_off, lo->rank, lo->params + t->a_off, t->in, 1.0f,
             dm->params + t->w_off, t->in);
    }
}

void lora_grad(const lora *lo, const float *grad, float *lgrad) {
    for (int k = 0; k < lo->n_targets; k++) {
        const lora_target *t = &lo->t[k];
        const float *dW = grad + t->w_off;                                       // (out, in)
        const float *A = lo->params + t->a_off, *B = lo->params + t->b_off;      // (r, in), (out, r)
        // dA (r, in) = s B^T (r, out) dW (out, in)
        gemm(1, 0, lo->rank, t->in, t->out, lo->scale, B, lo->rank, dW, t->in, 0.0f, lgrad + t->a_off, t->in);
        // dB (out, r) = s dW (out, in) A^T (in, r)
        gemm(0, 1, t->out, lo->rank, t->in, lo->scale, dW, t->in, A, t->in, 0.0f, lgrad + t->b_off, lo->rank);
    }
}

seslm_status lora_save(const lora *lo, const char *path, const char *base_sha256) {
    st_write_tensor *w = calloc((size_t)lo->n_targets * 2 + 1, sizeof *w);
    char (*names)[48] = calloc((size_t)lo->n_targets * 2 + 1, sizeof *names);
    cJSON *m = cJSON_CreateObject();
    seslm_status st = w && names && m ? SESLM_OK : seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    char *meta = NULL;
    if (st == SESLM_OK) {
        char buf[64];
        cJSON_AddStringToObject(m, "format", "seslm-lora");
        cJSON_AddStringToObject(m, "version", "1");
        snprintf(buf, sizeof buf, "%d", lo->rank);
        cJSON_AddStringToObject(m, "rank", buf);
        snprintf(buf, sizeof buf, "%.9g", (double)lo->alpha);
        cJSON_AddStringToObject(m, "alpha", buf);
        cJSON_AddStringToObject(m, "base_sha256", base_sha256 ? base_sha256 : "");
        if (!(meta = cJSON_PrintUnformatted(m))) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    for (int k = 0; st == SESLM_OK && k < lo->n_targets; k++) {
        const lora_target *t = &lo->t[k];
        snprintf(names[2 * k], sizeof names[0], "layers.%d.%s.lora_A", t->layer, KIND[t->kind]);
        snprintf(names[2 * k + 1], sizeof names[0], "layers.%d.%s.lora_B", t->layer, KIND[t->kind]);
        w[2 * k] = (st_write_tensor){.name = names[2 * k], .dtype = ST_F32, .ndim = 2, .shape = {lo->rank, t->in},
                                     .data = lo->params + t->a_off};
        w[2 * k + 1] = (st_write_tensor){.name = names[2 * k + 1], .dtype = ST_F32, .ndim = 2, .shape = {t->out, lo->rank},
                                         .data = lo->params + t->b_off};
    }
    if (st == SESLM_OK) st = st_write(path, w, 2 * lo->n_targets, meta);
    free(w), free(names), free(meta);
    cJSON_Delete(m);
    return st;
}

/* The "__metadata__" object of an opened safetensors file (the header JSON at the start of the map). */
static cJSON *metadata(const st_file *f) {
    if (!f->map || f->map_len < 8) return NULL;
    const unsigned char *b = f->map;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | b[i];
    if (n > f->map_len - 8) return NULL;
    cJSON *root = cJSON_ParseWithLength((const char *)b + 8, (size_t)n);
    cJSON *m = root ? cJSON_DetachItemFromObjectCaseSensitive(root, "__metadata__") : NULL;
    cJSON_Delete(root);
    return m;
}

static const char *meta_str(const cJSON *m, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

seslm_status lora_load(lora *lo, const dm_model *dm, const char *path, char *base_sha256_out) {
    st_file f;
    memset(&f, 0, sizeof f);
    seslm_status st = st_open(&f, path);
    if (st != SESLM_OK) return st;
    cJSON *m = metadata(&f);
    const char *fmt = meta_str(m, "format"), *rk = meta_str(m, "rank"), *al = meta_str(m, "alpha");
    if (!fmt || strcmp(fmt, "seslm-lora") != 0 || !rk || !al) {
        cJSON_Delete(m);
        st_close(&f);
        return seslm_fail(SESLM_ERR_FORMAT, "%s: not a LoRA adapter file (metadata format 'seslm-lora', rank, alpha)", path);
    }
    const int rank = atoi(rk);
    const float alpha = (float)atof(al);
    lora_free(lo);
    st = lora_init(lo, dm, rank, alpha, 1);
    if (st == SESLM_ERR_ARG) st = seslm_fail(SESLM_ERR_FORMAT, "%s: metadata rank '%.20s', alpha '%.20s': %s", path, rk, al, seslm_last_error());
    for (int k = 0; st == SESLM_OK && k < lo->n_targets; k++) {
        const lora_target *t = &lo->t[k];
        char an[48], bn[48];
        snprintf(an, sizeof an, "layers.%d.%s.lora_A", t->layer, KIND[t->kind]);
        snprintf(bn, sizeof bn, "layers.%d.%s.lora_B", t->layer, KIND[t->kind]);
        const st_tensor *a = st_find(&f, an), *b = st_find(&f, bn);
        if (!a || !b || a->dtype != ST_F32 || b->dtype != ST_F32 || a->ndim != 2 || b->ndim != 2 || a->shape[0] != rank ||
            a->shape[1] != t->in || b->shape[0] != t->out || b->shape[1] != rank) {
            st = seslm_fail(SESLM_ERR_SHAPE, "%s: %s (%d, %d) / %s (%d, %d) missing or of another shape: an adapter for another model?",
                            path, an, rank, t->in, bn, t->out, rank);
            break;
        }
        memcpy(lo->params + t->a_off, a->data, a->nbytes);
        memcpy(lo->params + t->b_off, b->data, b->nbytes);
    }
    // trained adapters hold values far below 1: beyond 1e6 (or non-finite) the file is corrupt, and merging such
    // values (s B A over up to 256 ranks) could overflow the weights to infinity
    for (size_t i = 0; st == SESLM_OK && i < lo->n_params; i++)
        if (!(fabsf(lo->params[i]) <= 1e6f))
            st = seslm_fail(SESLM_ERR_FORMAT, "%s: an adapter value is %s", path,
                            isfinite(lo->params[i]) ? "beyond 1e6 (a corrupt file?)" : "not finite");
    if (st == SESLM_OK && base_sha256_out) {
        const char *sha = meta_str(m, "base_sha256");
        snprintf(base_sha256_out, 65, "%s", sha ? sha : "");
    }
    cJSON_Delete(m);
    st_close(&f);
    if (st != SESLM_OK) lora_free(lo);
    return st;
}
