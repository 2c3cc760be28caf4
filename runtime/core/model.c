/* model.c — loads a model directory: config, tokenizer, and weights from model.safetensors
 * (mmap'd; F32 tensors are used in place, F16/BF16 are widened to F32 once at load).
 * Every tensor's presence, dtype and shape is checked against the config before use. */
#include "model_internal.h"
#include "model_crypt.h"
#include "model_verify.h"
#include "sparse24.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <sys/stat.h>

#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

// ---- tensor lookup with dtype conversion ---------------------------------------------------------

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { // subnormal: renormalise
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static seslm_status model_own(seslm_model *m, void *p) {
    void **o = realloc(m->owned, (size_t)(m->n_owned + 1) * sizeof *o);
    if (!o) {
        free(p);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    m->owned = o;
    m->owned[m->n_owned++] = p;
    return SESLM_OK;
}

/* Finds `name` (with or without a "bert." prefix), checks its shape is (d0[, d1]) and returns F32 data. */
static seslm_status model_tensor(seslm_model *m, const float **out, const char *name, int64_t d0, int64_t d1) {
    char alt[256];
    const st_tensor *t = st_find(&m->st, name);
    if (!t) {
        snprintf(alt, sizeof alt, "bert.%s", name);
        t = st_find(&m->st, alt);
    }
    if (!t) return seslm_fail(SESLM_ERR_SHAPE, "%s: tensor '%s' is missing", m->st.path, name);
    int want_nd = d1 >= 0 ? 2 : 1;
    if (t->ndim != want_nd || t->shape[0] != d0 || (want_nd == 2 && t->shape[1] != d1)) {
        char got[128] = "";
        for (int i = 0; i < t->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        if (want_nd == 2)
            return seslm_fail(SESLM_ERR_SHAPE, "%s: tensor '%s' has shape [%s], config.json implies [%lld, %lld]",
                              m->st.path, name, got, (long long)d0, (long long)d1);
        return seslm_fail(SESLM_ERR_SHAPE, "%s: tensor '%s' has shape [%s], config.json implies [%lld]", m->st.path,
                          name, got, (long long)d0);
    }
    if (t->dtype == ST_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
        *out = t->data;
        return SESLM_OK;
    }
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return seslm_fail(SESLM_ERR_SHAPE, "%s: tensor '%s' has dtype %s; F32, F16 or BF16 expected", m->st.path,
                          name, st_dtype_name(t->dtype));
    float *p = malloc((size_t)t->numel * sizeof(float));
    if (!p) return seslm_fail(SESLM_ERR_NOMEM, "out of memory converting '%s'", name);
    const uint8_t *src = t->data;
    for (int64_t i = 0; i < t->numel; i++) {
        if (t->dtype == ST_F32) {
            memcpy(&p[i], src + 4 * i, 4);
        } else {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            if (t->dtype == ST_F16) {
                p[i] = half_to_float(h);
            } else {
                uint32_t bits = (uint32_t)h << 16;
                memcpy(&p[i], &bits, 4);
            }
        }
    }
    *out = p;
    return model_own(m, p);
}

/* A linear weight (d0, d1): F32 (or F16 / BF16, widened) into *f, or INT8 with its per-row scale tensor
 * "<name>_scale" (d0) into *q and *s (quant.h). */
static seslm_status model_linear(seslm_model *m, const float **f, const int8_t **q, const float **s, const char *name,
                                 int64_t d0, int64_t d1) {
    char alt[256], sname[280];
    const char *nm = name;
    const st_tensor *t = st_find(&m->st, name);
    if (!t) {
        snprintf(alt, sizeof alt, "bert.%s", name);
        if ((t = st_find(&m->st, alt))) nm = alt;
    }
    if (!t || t->dtype != ST_I8) return model_tensor(m, f, name, d0, d1);
    if (t->ndim != 2 || t->shape[0] != d0 || t->shape[1] != d1)
        return seslm_fail(SESLM_ERR_SHAPE, "%s: INT8 tensor '%s' must have shape [%lld, %lld]", m->st.path, nm,
                          (long long)d0, (long long)d1);
    snprintf(sname, sizeof sname, "%s_scale", nm);
    const st_tensor *ts = st_find(&m->st, sname);
    if (!ts || ts->dtype != ST_F32 || ts->ndim != 1 || ts->shape[0] != d0 || (uintptr_t)ts->data % sizeof(float))
        return seslm_fail(SESLM_ERR_SHAPE, "%s: INT8 tensor '%s' needs an F32 tensor '%s' of shape [%lld]",
                          m->st.path, nm, sname, (long long)d0);
    const float *sc = ts->data;
    for (int64_t i = 0; i < d0; i++)
        if (!(sc[i] >= 0.0f) || !isfinite(sc[i]))
            return seslm_fail(SESLM_ERR_SHAPE, "%s: '%s'[%lld] = %g is not a finite non-negative scale", m->st.path,
                              sname, (long long)i, (double)sc[i]);
    *f = NULL;
    *q = t->data;
    *s = sc;
    return SESLM_OK;
}

/* An FFN weight (d0, d1) stored 2:4 sparse as "<name>_24values" (d0, d1/2) F32 and "<name>_24index"
 * (d0, d1/4) U8 (sparse24.h); anything else goes through model_linear. */
static seslm_status model_ffn_weight(seslm_model *m, const float **f, const int8_t **q, const float **s,
                                     const float **sv, const uint8_t **si, const char *name, int64_t d0, int64_t d1) {
    char vn[300], in[300];
    snprintf(vn, sizeof vn, "%s_24values", name);
    snprintf(in, sizeof in, "%s_24index", name);
    const st_tensor *tv = st_find(&m->st, vn), *ti = st_find(&m->st, in);
    if (!tv && !ti) return model_linear(m, f, q, s, name, d0, d1);
    if (!tv || !ti || d1 % 4)
        return seslm_fail(SESLM_ERR_SHAPE, "%s: 2:4 sparse '%s' needs both '%s' and '%s' and an input width divisible by 4",
                          m->st.path, name, vn, in);
    if (ti->dtype != ST_U8 || ti->ndim != 2 || ti->shape[0] != d0 || ti->shape[1] != d1 / 4)
        return seslm_fail(SESLM_ERR_SHAPE, "%s: '%s' must be U8 of shape [%lld, %lld]", m->st.path, in, (long long)d0,
                          (long long)(d1 / 4));
    if (!seslm_sparse24_valid(ti->data, (size_t)ti->numel))
        return seslm_fail(SESLM_ERR_SHAPE, "%s: '%s' holds an invalid 2:4 position pair", m->st.path, in);
    *f = NULL;
    *si = ti->data;
    return model_tensor(m, sv, vn, d0, d1 / 2);
}

/* A table (d0, d1) read as F32: F32 / F16 / BF16 (model_tensor), or INT8 per row with "<name>_scale" (d0),
 * dequantized once here into an F32 copy the model owns (value = q * scale, the product the kernels form),
 * so every backend reads F32 rows: position / token-type embeddings and the exact word rows. */
static seslm_status model_table(seslm_model *m, const float **out, const char *name, int64_t d0, int64_t d1) {
    const int8_t *q = NULL;
    const float *s = NULL;
    seslm_status st = model_linear(m, out, &q, &s, name, d0, d1);
    if (st != SESLM_OK || !q) return st;
    float *f = malloc(((size_t)d0 * d1 + 1) * sizeof *f);
    if (!f) return seslm_fail(SESLM_ERR_NOMEM, "out of memory widening '%s'", name);
    for (int64_t r = 0; r < d0; r++)
        for (int64_t c = 0; c < d1; c++) f[r * d1 + c] = (float)q[r * d1 + c] * s[r];
    *out = f;
    return model_own(m, f);
}

/* Per-row scales "<base>_scale" (n) F32, finite and >= 0. */
static seslm_status model_row_scales(seslm_model *m, const float **out, const char *base, int64_t n) {
    char sname[256];
    snprintf(sname, sizeof sname, "%s_scale", base);
    const st_tensor *ts = st_find(&m->st, sname);
    if (!ts || ts->dtype != ST_F32 || ts->ndim != 1 || ts->shape[0] != n || (uintptr_t)ts->data % sizeof(float))
        return seslm_fail(SESLM_ERR_SHAPE, "%s: '%s' needs an F32 tensor '%s' of shape [%lld]", m->st.path, base, sname,
                          (long long)n);
    const float *s = ts->data;
    for (int64_t i = 0; i < n; i++)
        if (!(s[i] >= 0.0f) || !isfinite(s[i]))
            return seslm_fail(SESLM_ERR_SHAPE, "%s: '%s'[%lld] = %g is not a finite non-negative scale", m->st.path, sname,
                              (long long)i, (double)s[i]);
    *out = s;
    return SESLM_OK;
}

/* An I32 id list (n from the file) of distinct ids in [0, V) not yet given a slot: slot[id] = base + i. */
static seslm_status model_id_list(seslm_model *m, const char *name, int64_t V, int32_t *slot, char *taken, int64_t *n) {
    const st_tensor *t = st_find(&m->st, name);
    *n = t && t->ndim == 1 ? t->shape[0] : -1;
    if (!t || t->dtype != ST_I32 || *n < 0 || *n > V || (uintptr_t)t->data % 4)
        return seslm_fail(SESLM_ERR_SHAPE, "%s: '%s' must be I32 of shape [n <= %lld]", m->st.path, name, (long long)V);
    const int32_t *ids = t->data;
    for (int64_t i = 0; i < *n; i++) {
        if (ids[i] < 0 || ids[i] >= V || taken[ids[i]])
            return seslm_fail(SESLM_ERR_SHAPE, "%s: %s[%lld] = %d is out of range or repeated", m->st.path, name,
                              (long long)i, ids[i]);
        taken[ids[i]] = 1;
        slot[ids[i]] = (int32_t)i;
    }
    return SESLM_OK;
}

/* The word table: F32 rows, or embedding compression:
 *   "...weight" (V, C) I8 or (V, C/2) U8 4-bit rows, with "...weight_scale" (V) -- every id a row; or, with
 *   "...weight_ids" (M) I32, only those ids' rows (M, ...) and the rest product-quantized: "...pq_codes"
 *   (R, S) U8 for the remaining ids in increasing order, "...pq_codebook" (S * 256, C / S) F32 (backend.h);
 *   the frequent rows exact in "...exact_rows" (E, C) -- F32, or INT8 with "...exact_rows_scale" (E) --
 *   with their ids in "...exact_ids" (E). */
static seslm_status model_word_table(seslm_model *m) {
    const seslm_model_config *c = &m->cfg;
    const int64_t V = c->vocab_size, C = c->hidden;
    const char *base = "embeddings.word_embeddings.weight";
    const int8_t *q = NULL;
    const float *s = NULL;
    seslm_status st;
    const st_tensor *t4 = st_find(&m->st, base), *tids = st_find(&m->st, "embeddings.word_embeddings.weight_ids");
    const st_tensor *tcode = st_find(&m->st, "embeddings.word_embeddings.pq_codes");
    memset(&m->word, 0, sizeof m->word);
    if (tcode && !tids)
        return seslm_fail(SESLM_ERR_SHAPE, "%s: product-quantized rows need 'embeddings.word_embeddings.weight_ids'",
                          m->st.path);
    int64_t Vq = V; // rows of the INT8 / 4-bit table
    int32_t *row_slot = NULL;
    if (tids) {
        if (!tcode) return seslm_fail(SESLM_ERR_SHAPE, "%s: 'embeddings.word_embeddings.weight_ids' without 'pq_codes'", m->st.path);
        Vq = tids->ndim == 1 ? tids->shape[0] : -1;
        if (!(row_slot = malloc(((size_t)V + 1) * sizeof *row_slot))) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        if ((st = model_own(m, row_slot)) != SESLM_OK) return st;
    }
    if (t4 && t4->dtype == ST_U8) { // 4-bit rows, two per byte (backend.h), with "..._scale"
        if (C % 2 || t4->ndim != 2 || t4->shape[0] != Vq || t4->shape[1] != C / 2)
            return seslm_fail(SESLM_ERR_SHAPE, "%s: 4-bit '%s' must have shape [%lld, %lld] (hidden even)", m->st.path, base,
                              (long long)Vq, (long long)(C / 2));
        if ((st = model_row_scales(m, &s, base, Vq)) != SESLM_OK) return st;
        m->word_emb = NULL;
        m->word.q4 = t4->data, m->word.scale = s;
    } else if (t4 || !tids) {
        if (Vq < 0) return seslm_fail(SESLM_ERR_SHAPE, "%s: 'embeddings.word_embeddings.weight_ids' must be 1-D", m->st.path);
        if ((st = model_linear(m, &m->word_emb, &q, &s, base, Vq, C)) != SESLM_OK) return st;
        if (!q && tids) return seslm_fail(SESLM_ERR_SHAPE, "%s: '%s' with weight_ids must be INT8 or 4-bit", m->st.path, base);
        if (!q) {
            m->word.f32 = m->word_emb;
            return SESLM_OK;
        }
        m->word.q = q, m->word.scale = s;
    } else {
        m->word_emb = NULL; // every non-exact row product-quantized: no INT8 / 4-bit table
    }
    const st_tensor *ti = st_find(&m->st, "embeddings.word_embeddings.exact_ids");
    const st_tensor *tr = st_find(&m->st, "embeddings.word_embeddings.exact_rows");
    if (!ti != !tr)
        return seslm_fail(SESLM_ERR_SHAPE, "%s: 'embeddings.word_embeddings.exact_ids' and '...exact_rows' come together",
                          m->st.path);
    int32_t *slot = malloc((size_t)V * sizeof *slot);
    if (!slot) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < V; i++) slot[i] = -1;
    if ((st = model_own(m, slot)) != SESLM_OK) return st;
    m->word.exact_slot = slot;
    char *taken = calloc((size_t)V + 1, 1);
    if (!taken) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    if ((st = model_own(m, taken)) != SESLM_OK) return st;
    int64_t E = 0, M = 0;
    if (ti && (st = model_id_list(m, "embeddings.word_embeddings.exact_ids", V, slot, taken, &E)) != SESLM_OK) return st;
    if (ti && (st = model_table(m, &m->word.exact, "embeddings.word_embeddings.exact_rows", E, C)) != SESLM_OK) return st;
    if (!tids) return SESLM_OK;
    // the INT8 / 4-bit rows' ids, then every other id product-quantized, in increasing id order
    for (int64_t i = 0; i < V; i++) row_slot[i] = 0;
    if ((st = model_id_list(m, "embeddings.word_embeddings.weight_ids", V, row_slot, taken, &M)) != SESLM_OK) return st;
    if (!m->word.q && !m->word.q4 && M > 0)
        return seslm_fail(SESLM_ERR_SHAPE, "%s: 'weight_ids' names %lld rows but '%s' is missing", m->st.path, (long long)M, base);
    int64_t R = 0;
    for (int64_t i = 0; i < V; i++)
        if (!taken[i]) row_slot[i] = -1 - (int32_t)R++;
    const int64_t S = tcode->ndim == 2 ? tcode->shape[1] : 0;
    if (tcode->dtype != ST_U8 || tcode->ndim != 2 || tcode->shape[0] != R || S <= 0 || C % S)
        return seslm_fail(SESLM_ERR_SHAPE, "%s: 'embeddings.word_embeddings.pq_codes' must be U8 of shape [%lld, S] with S "
                          "dividing %lld (the ids neither exact nor in weight_ids)", m->st.path, (long long)R, (long long)C);
    if ((st = model_tensor(m, &m->word.pq_book, "embeddings.word_embeddings.pq_codebook", S * 256, C / S)) != SESLM_OK) return st;
    for (int64_t i = 0; i < S * 256 * (C / S); i++)
        if (!isfinite(m->word.pq_book[i]))
            return seslm_fail(SESLM_ERR_SHAPE, "%s: 'embeddings.word_embeddings.pq_codebook' holds a non-finite value", m->st.path);
    m->word.pq_codes = tcode->data;
    m->word.pq_dim = (int)(C / S);
    m->word.row_slot = row_slot;
    m->word.n_rows = (int)M, m->word.n_pq = (int)R;
    return SESLM_OK;
}

// ---- load ----------------------------------------------------------------------------------------

static seslm_status model_load_layer(seslm_model *m, int i) {
    const seslm_model_config *c = &m->cfg;
    const int C = c->hidden, A = c->layers[i].n_heads * c->head_dim, F = c->layers[i].ffn_dim;
    seslm_layer_weights *w = &m->lw[i];
    char n[160];
    seslm_status st = SESLM_OK;
#define T(field, suffix, d0, d1)                                                         \
    do {                                                                                 \
        snprintf(n, sizeof n, "encoder.layer.%d.%s", i, suffix);                         \
        if (st == SESLM_OK) st = model_tensor(m, &w->field, n, d0, d1);                  \
    } while (0)
#define W(field, suffix, d0, d1)                                                                  \
    do {                                                                                          \
        snprintf(n, sizeof n, "encoder.layer.%d.%s", i, suffix);                                  \
        if (st == SESLM_OK) st = model_linear(m, &w->field##_w, &w->field##_q, &w->field##_s, n, d0, d1); \
    } while (0)
    if (A > 0) {
        W(q, "attention.self.query.weight", A, C);
        T(q_b, "attention.self.query.bias", A, -1);
        W(k, "attention.self.key.weight", A, C);
        T(k_b, "attention.self.key.bias", A, -1);
        W(v, "attention.self.value.weight", A, C);
        T(v_b, "attention.self.value.bias", A, -1);
        W(ao, "attention.output.dense.weight", C, A);
        if (st == SESLM_OK && (!w->q_q != !w->k_q || !w->q_q != !w->v_q))
            st = seslm_fail(SESLM_ERR_SHAPE, "%s: layer %d: query, key and value must all be INT8 or none", m->st.path, i);
    }
    T(ao_b, "attention.output.dense.bias", C, -1);
    T(ln1_g, "attention.output.LayerNorm.weight", C, -1);
    T(ln1_b, "attention.output.LayerNorm.bias", C, -1);
    if (F > 0) {
#define WS(field, suffix, d0, d1)                                                                 \
    do {                                                                                          \
        snprintf(n, sizeof n, "encoder.layer.%d.%s", i, suffix);                                  \
        if (st == SESLM_OK)                                                                       \
            st = model_ffn_weight(m, &w->field##_w, &w->field##_q, &w->field##_s, &w->field##_sv, \
                                  &w->field##_si, n, d0, d1);                                     \
    } while (0)
        WS(ff1, "intermediate.dense.weight", F, C);
        T(ff1_b, "intermediate.dense.bias", F, -1);
        WS(ff2, "output.dense.weight", C, F);
#undef WS
    }
    T(ff2_b, "output.dense.bias", C, -1);
    T(ln2_g, "output.LayerNorm.weight", C, -1);
    T(ln2_b, "output.LayerNorm.bias", C, -1);
#undef T
#undef W
    return st;
}

static seslm_status model_load_weights(seslm_model *m) {
    const seslm_model_config *c = &m->cfg;
    seslm_status st = model_word_table(m);
    if (st == SESLM_OK)
        st = model_table(m, &m->pos_emb, "embeddings.position_embeddings.weight", c->max_position, c->hidden);
    if (st == SESLM_OK)
        st = model_table(m, &m->type_emb, "embeddings.token_type_embeddings.weight", c->type_vocab_size, c->hidden);
    if (st == SESLM_OK) st = model_tensor(m, &m->emb_ln_g, "embeddings.LayerNorm.weight", c->hidden, -1);
    if (st == SESLM_OK) st = model_tensor(m, &m->emb_ln_b, "embeddings.LayerNorm.bias", c->hidden, -1);
    m->lw = calloc((size_t)c->n_layers, sizeof *m->lw);
    if (st == SESLM_OK && !m->lw) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    for (int i = 0; st == SESLM_OK && i < c->n_layers; i++) st = model_load_layer(m, i);
    return st;
}

/* model.safetensors, or, when only model.safetensors.enc is there (seslm encrypt), that file decrypted
 * into memory with the key from the environment (model_crypt.h); the plaintext never touches disk. */
static seslm_status model_open_weights(st_file *f, const char *path) {
    struct stat sb;
    char enc[4200];
    snprintf(enc, sizeof enc, "%s.enc", path);
    if (stat(path, &sb) == 0 || errno != ENOENT || stat(enc, &sb) != 0) return st_open(f, path);
    unsigned char key[SESLM_CRYPT_KEY_BYTES], *buf = NULL;
    size_t len = 0;
    seslm_status st = seslm_crypt_key_load(key, NULL);
    if (st != SESLM_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", seslm_last_error()); // seslm_fail formats into the same buffer
        return seslm_fail(st, "%s is encrypted: %s", enc, why);
    }
    unsigned char bound[32], now[32];
    int version = 0;
    st = seslm_crypt_decrypt_file(key, enc, "model.safetensors", &buf, &len, bound, &version);
    OPENSSL_cleanse(key, sizeof key);
    if (st != SESLM_OK) return st;
    // the clear files (config, tokenizer, pooling) are authenticated with the weights
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    if (version < 2)
        st = seslm_fail(SESLM_ERR_FORMAT, "%s: encrypted in format version 1, which does not authenticate the tokenizer "
                                          "and config files: encrypt the original model again with this seslm", enc);
    else if ((st = seslm_crypt_clear_digest(dir, now)) == SESLM_OK && CRYPTO_memcmp(now, bound, 32) != 0)
        st = seslm_fail(SESLM_ERR_FORMAT, "%s: the clear files beside the encrypted weights (config.json, vocab.txt, "
                                          "tokenizer and pooling files) were changed, added or removed after encryption; "
                                          "not loaded", dir);
    if (st != SESLM_OK) {
        seslm_crypt_buffer_free(buf, len);
        return st;
    }
    return st_open_buffer(f, buf, len, enc);
}

/* 1 when any linear layer is stored INT8 (a quantized student), 0 when every one is F32 or 2:4. */
static int model_stores_int8(const seslm_model *m) {
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const seslm_layer_weights *w = &m->lw[l];
        if (w->q_q || w->k_q || w->v_q || w->ao_q || w->ff1_q || w->ff2_q) return 1;
    }
    return 0;
}

seslm_status seslm_model_load(seslm_model **out, const char *model_dir) {
    *out = NULL;
    if (!model_dir) return seslm_fail(SESLM_ERR_ARG, "no model directory given");
    seslm_model *m = calloc(1, sizeof *m);
    if (!m || !(m->dir = strdup(model_dir))) {
        free(m);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    // a stored or manifested directory must be what was recorded before any of it is read (model_verify.h)
    seslm_status st = model_verify_dir(model_dir, NULL);
    char path[4096], enc[4200];
    struct stat sb;
    snprintf(path, sizeof path, "%s/model.safetensors", model_dir);
    snprintf(enc, sizeof enc, "%s.enc", path);
    // an encrypted model authenticates config.json (with the weights) before config.json is read
    const int encrypted = stat(path, &sb) != 0 && stat(enc, &sb) == 0;
    if (st == SESLM_OK && encrypted) st = model_open_weights(&m->st, path);
    if (st == SESLM_OK) st = seslm_config_load(&m->cfg, model_dir);
    if (st == SESLM_OK && !encrypted) st = model_open_weights(&m->st, path);
    if (st == SESLM_OK) st = model_load_weights(m);
    if (st == SESLM_OK && !m->cfg.act_explicit && !model_stores_int8(m))
        m->cfg.act_top1 = 1; // quantized at load, if at all: the more accurate rounding (seslm.h act_explicit)
    if (st == SESLM_OK && m->cfg.pooling_dim && m->cfg.pooling_dim != m->cfg.hidden)
        st = seslm_fail(SESLM_ERR_FORMAT, "%s: the Pooling config's embedding dimension %d differs from the model's hidden size %d",
                        model_dir, m->cfg.pooling_dim, m->cfg.hidden);
    if (st == SESLM_OK) st = seslm_tokenizer_load(&m->tok, model_dir, m->cfg.max_position);
    if (st == SESLM_OK && seslm_tokenizer_vocab_size(m->tok) > m->cfg.vocab_size)
        st = seslm_fail(SESLM_ERR_SHAPE, "%s: the vocabulary has %d tokens but the model has %d embedding rows", model_dir,
                        seslm_tokenizer_vocab_size(m->tok), m->cfg.vocab_size);
    if (st == SESLM_OK) {
        // the tokenizer truncates; the model must never see more positions than it has
        int tl = seslm_tokenizer_options(m->tok)->max_len;
        if (tl < m->cfg.max_seq_len) m->cfg.max_seq_len = tl;
    }
    if (st != SESLM_OK) {
        seslm_model_free(m);
        return st;
    }
    *out = m;
    return SESLM_OK;
}

void seslm_model_free(seslm_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->lw);
    st_close(&m->st);
    seslm_tokenizer_free(m->tok);
    seslm_config_free(&m->cfg);
    free(m->dir);
    free(m);
}

void model_drop_resident_pages(const seslm_model *m) {
    // (never on a decrypted heap image: MADV_DONTNEED would zero it, not page it back in from a file)
    if (m->st.map && !m->st.heap) madvise(m->st.map, m->st.map_len, MADV_DONTNEED);
}

const seslm_model_config *seslm_model_get_config(const seslm_model *m) { return &m->cfg; }
const seslm_tokenizer *seslm_model_tokenizer(const seslm_model *m) { return m->tok; }

const char *seslm_model_prompt(const seslm_model *m, const char *name) {
    for (int i = 0; m && name && i < m->cfg.n_prompts; i++)
        if (strcmp(m->cfg.prompts[i].name, name) == 0) return m->cfg.prompts[i].text;
    return NULL;
}

const char *seslm_model_weights_sha256(const seslm_model *m) {
    seslm_model *mm = (seslm_model *)m; // computed once, lazily: hashing 90 MB costs ~0.2 s
    if (mm->sha256[0]) return mm->sha256;
    unsigned char md[32];
    unsigned int len = 0;
    if (!EVP_Digest(m->st.map, m->st.map_len, md, &len, EVP_sha256(), NULL) || len != 32) return "";
    for (int i = 0; i < 32; i++) snprintf(mm->sha256 + 2 * i, 3, "%02x", md[i]);
    return mm->sha256;
}

// ---- parameter accounting -----------------------------------------------------------------------

/* Stored bytes of the tensors whose name (without a "bert." prefix) starts with one of the prefixes:
 * the true size of a component whatever its dtype (INT8 weights count their scales). */
static int64_t tensor_bytes(const seslm_model *m, const char *p1, const char *p2, const char *p3) {
    int64_t n = 0;
    for (int i = 0; i < m->st.n_tensors; i++) {
        const char *nm = m->st.tensors[i].name;
        if (strncmp(nm, "bert.", 5) == 0) nm += 5;
        if ((p1 && strncmp(nm, p1, strlen(p1)) == 0) || (p2 && strncmp(nm, p2, strlen(p2)) == 0) ||
            (p3 && strncmp(nm, p3, strlen(p3)) == 0))
            n += (int64_t)m->st.tensors[i].nbytes;
    }
    return n;
}

int seslm_model_param_groups(const seslm_model *m, seslm_param_group *g, int cap) {
    const seslm_model_config *c = &m->cfg;
    const int64_t C = c->hidden;
    int n = 0;
#define ADD(p, b, ...)                                                                    \
    do {                                                                                  \
        if (n < cap) {                                                                    \
            snprintf(g[n].name, sizeof g[n].name, __VA_ARGS__);                           \
            g[n].params = (p);                                                            \
            g[n].bytes = (b);                                                             \
        }                                                                                 \
        n++;                                                                              \
    } while (0)
    if (cap > 0) { // (sizing calls skip the tensor walk)
        ADD(((int64_t)c->vocab_size + c->max_position + c->type_vocab_size + 2) * C,
            tensor_bytes(m, "embeddings.", NULL, NULL), "embeddings");
    } else {
        n++;
    }
    for (int i = 0; i < c->n_layers; i++) {
        const int64_t A = (int64_t)c->layers[i].n_heads * c->head_dim, F = c->layers[i].ffn_dim;
        char a[64], f1[64], f2[64];
        snprintf(a, sizeof a, "encoder.layer.%d.attention.", i);
        snprintf(f1, sizeof f1, "encoder.layer.%d.intermediate.", i);
        snprintf(f2, sizeof f2, "encoder.layer.%d.output.", i);
        // q,k,v + output dense + layernorm; two dense + layernorm
        ADD(3 * (A * C + A) + C * A + C + 2 * C, cap > n ? tensor_bytes(m, a, NULL, NULL) : 0, "layer.%d.attention", i);
        ADD(F * C + F + C * F + C + 2 * C, cap > n ? tensor_bytes(m, f1, f2, NULL) : 0, "layer.%d.ffn", i);
    }
#undef ADD
    return n;
}

// ---- widening: a quantized / sparse student as F32 (plan and recompile of an evolved student) --------

/* (N, K) F32 copy of a linear weight stored as INT8 + per-row scale, or as 2:4 values + index. */
static seslm_status widen_linear(seslm_model *m, const float **w, const int8_t **q, const float **s, const float **sv,
                                 const uint8_t **si, int N, int K) {
    if (*w || N == 0 || K == 0) return SESLM_OK;
    if (!*q && !(sv && *sv)) return SESLM_OK;
    float *f = malloc((size_t)N * K * sizeof *f);
    if (!f) return seslm_fail(SESLM_ERR_NOMEM, "out of memory widening a %dx%d weight", N, K);
    if (*q) {
        for (int n = 0; n < N; n++)
            for (int k = 0; k < K; k++) f[(size_t)n * K + k] = (float)(*q)[(size_t)n * K + k] * (*s)[n];
        *q = NULL, *s = NULL;
    } else {
        seslm_sparse24_expand(f, *sv, *si, N, K);
        *sv = NULL, *si = NULL;
    }
    *w = f;
    return model_own(m, f);
}

seslm_status seslm_model_widen(seslm_model *m) {
    const seslm_model_config *c = &m->cfg;
    const int C = c->hidden, V = c->vocab_size;
    seslm_status st = SESLM_OK;
    if (!m->word.f32) {
        float *t = malloc((size_t)V * C * sizeof *t);
        if (!t) return seslm_fail(SESLM_ERR_NOMEM, "out of memory widening the word table");
        for (int v = 0; v < V; v++) seslm_embedding_row(t + (size_t)v * C, &m->word, v, C);
        if ((st = model_own(m, t)) != SESLM_OK) return st;
        memset(&m->word, 0, sizeof m->word);
        m->word_emb = m->word.f32 = t;
    }
    for (int l = 0; st == SESLM_OK && l < c->n_layers; l++) {
        seslm_layer_weights *w = &m->lw[l];
        const int A = c->layers[l].n_heads * c->head_dim, F = c->layers[l].ffn_dim;
        st = widen_linear(m, &w->q_w, &w->q_q, &w->q_s, NULL, NULL, A, C);
        if (st == SESLM_OK) st = widen_linear(m, &w->k_w, &w->k_q, &w->k_s, NULL, NULL, A, C);
        if (st == SESLM_OK) st = widen_linear(m, &w->v_w, &w->v_q, &w->v_s, NULL, NULL, A, C);
        if (st == SESLM_OK) st = widen_linear(m, &w->ao_w, &w->ao_q, &w->ao_s, NULL, NULL, C, A);
        if (st == SESLM_OK) st = widen_linear(m, &w->ff1_w, &w->ff1_q, &w->ff1_s, &w->ff1_sv, &w->ff1_si, F, C);
        if (st == SESLM_OK) st = widen_linear(m, &w->ff2_w, &w->ff2_q, &w->ff2_s, &w->ff2_sv, &w->ff2_si, C, F);
    }
    return st;
}
