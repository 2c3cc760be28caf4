/* tiny_model.h — writes a TINY random BERT model directory (config.json, model.safetensors,
 * vocab.txt, tokenizer_config.json, modules.json, 1_Pooling/config.json) for the tests that need a
 * model but must not depend on the real one: hidden 16, 2 layers, 4 heads of 4, FFN 24, 40 tokens,
 * 32 positions. Everything is static so each test executable gets its own copy.
 *
 *   tm_model m;
 *   tm_init(&m, seed);                        // random F32 weights, every layer full
 *   tm_prune(&p, &m, layer, heads, ffn);      // keep the first heads / neurons of a layer
 *   tm_write(&m, dir, &(tm_write_opts){...}); // F32 / F16 / BF16, aligned or not, "bert." prefix
 *
 * The safetensors writer (tm_st_image) is also used directly for malformed-file tests. */
#ifndef SESLM_TINY_MODEL_H
#define SESLM_TINY_MODEL_H

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__GNUC__)
#define TM_API static __attribute__((unused))
#else
#define TM_API static
#endif

#define TM_MAX_TENSORS 64
#define TM_MAX_LAYERS 4

// ---- small helpers -------------------------------------------------------------------------------

TM_API uint64_t tm_rng_state = 0x9e3779b97f4a7c15ull;

TM_API void tm_seed(uint64_t s) { tm_rng_state = s * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull; }

TM_API uint32_t tm_rand_u32(void) { // xorshift64*
    tm_rng_state ^= tm_rng_state >> 12;
    tm_rng_state ^= tm_rng_state << 25;
    tm_rng_state ^= tm_rng_state >> 27;
    return (uint32_t)((tm_rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

// uniform in [-1, 1)
TM_API float tm_rand_sym(void) { return (float)((double)tm_rand_u32() / 2147483648.0 - 1.0); }

TM_API int tm_write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "tiny_model: cannot create %s\n", path);
        return 0;
    }
    int ok = fwrite(data, 1, n, f) == n;
    ok &= fclose(f) == 0;
    return ok;
}

// out = dir/name; exits if it does not fit
TM_API void tm_path(char *out, size_t cap, const char *dir, const char *name) {
    int k = snprintf(out, cap, "%s/%s", dir, name);
    if (k < 0 || (size_t)k >= cap) {
        fprintf(stderr, "tiny_model: path too long\n");
        exit(1);
    }
}

TM_API int tm_write_text(const char *dir, const char *name, const char *text) {
    char path[4096];
    tm_path(path, sizeof path, dir, name);
    return tm_write_bytes(path, text, strlen(text));
}

// Removes a directory tree (files and directories only; what the tests create).
TM_API void tm_rmtree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *de;
            while ((de = readdir(d)) != NULL) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
                char child[4096];
                tm_path(child, sizeof child, path, de->d_name);
                tm_rmtree(child);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

// A fresh temporary directory (caller frees the string and removes the tree).
TM_API char *tm_mkdtemp(const char *tag) {
    const char *tmp = getenv("TMPDIR");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s/seslm_%s_XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
    if (!mkdtemp(buf)) {
        perror("mkdtemp");
        exit(1);
    }
    return strdup(buf);
}

// ---- dtype conversions (independent of the library's) ---------------------------------------------

// float -> IEEE half, round to nearest even, subnormals included
TM_API uint16_t tm_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0);
    if (ax >= 0x477ff000u) return sign | 0x7c00; // rounds to infinity
    if (ax < 0x38800000u) {                      // below 2^-14: a half subnormal (or zero)
        double d = fabs((double)f) * 16777216.0;  // in units of 2^-24, exact
        double r = floor(d), frac = d - r;
        if (frac > 0.5 || (frac == 0.5 && fmod(r, 2.0) != 0)) r += 1;
        return sign | (uint16_t)r;
    }
    uint32_t h = (((ax >> 23) - 127 + 15) << 10) | ((ax & 0x7fffffu) >> 13);
    uint32_t rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;
    return sign | (uint16_t)h;
}

TM_API float tm_f16_to_f32(uint16_t h) {
    int e = (h >> 10) & 0x1f, man = h & 0x3ff;
    float v;
    if (e == 0) v = ldexpf((float)man, -24);
    else if (e == 31) v = man ? NAN : INFINITY;
    else v = ldexpf((float)(man | 0x400), e - 25);
    return (h & 0x8000) ? -v : v;
}

TM_API uint16_t tm_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); // NaN stays NaN
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

TM_API float tm_bf16_to_f32(uint16_t h) {
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

// ---- the safetensors writer ----------------------------------------------------------------------

typedef struct {
    const char *name;
    const char *dtype; // "F32", "F16", "BF16", "I32", ... written as given
    int ndim;
    const int64_t *shape;
    const void *data; // nbytes raw bytes
    size_t nbytes;
} tm_st_entry;

/* Serialises a safetensors image: 8-byte LE header length, JSON header (with __metadata__), data.
 * The header is padded with spaces so the data section starts at an offset that is 0 (mod 8) when
 * misalign == 0, or `misalign` (mod 8) otherwise. Returns a malloc'd buffer and its length. */
TM_API uint8_t *tm_st_image(const tm_st_entry *e, int n, int misalign, size_t *out_len) {
    size_t hcap = 256 + (size_t)n * 256, hl = 0, dl = 0;
    char *h = malloc(hcap + 16);
    if (!h) return NULL;
    hl += (size_t)snprintf(h + hl, hcap - hl, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        h[hl++] = ',';
        h[hl++] = '"';
        for (const char *c = e[i].name; *c && hl < hcap - 8; c++) { // JSON-escape the name
            if (*c == '"' || *c == '\\') h[hl++] = '\\';
            h[hl++] = *c;
        }
        hl += (size_t)snprintf(h + hl, hcap - hl, "\":{\"dtype\":\"%s\",\"shape\":[", e[i].dtype);
        for (int d = 0; d < e[i].ndim; d++)
            hl += (size_t)snprintf(h + hl, hcap - hl, d ? ",%lld" : "%lld", (long long)e[i].shape[d]);
        hl += (size_t)snprintf(h + hl, hcap - hl, "],\"data_offsets\":[%zu,%zu]}", dl, dl + e[i].nbytes);
        dl += e[i].nbytes;
    }
    h[hl++] = '}';
    while ((8 + hl) % 8 != (size_t)(misalign % 8)) h[hl++] = ' ';
    uint8_t *img = malloc(8 + hl + dl);
    if (!img) {
        free(h);
        return NULL;
    }
    for (int i = 0; i < 8; i++) img[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(img + 8, h, hl);
    size_t o = 8 + hl;
    for (int i = 0; i < n; i++) {
        if (e[i].nbytes) memcpy(img + o, e[i].data, e[i].nbytes);
        o += e[i].nbytes;
    }
    free(h);
    *out_len = o;
    return img;
}

// ---- the tiny model -------------------------------------------------------------------------------

typedef struct {
    char name[96];
    char dtype[8]; // "" = the file's dtype; else this dtype, written as the raw bytes of f (numel * size)
    int ndim;
    int64_t shape[2];
    float *f; // numel floats
} tm_tensor;

typedef struct {
    int hidden, n_layers, heads, head_dim, ffn, vocab, max_pos, type_vocab;
    int per_layer; // write "seslm_layers" into config.json
    int l_heads[TM_MAX_LAYERS], l_ffn[TM_MAX_LAYERS];
    tm_tensor t[TM_MAX_TENSORS];
    int n_t;
} tm_model;

TM_API const char *const tm_vocab[] = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "cat", "dog", "sat", "on", "mat", "hello", "world",
    "quick", "brown", "fox", "jump", "run", "over", "lazy", "is", "it", "good", "bad", "emb", "token", "##s",
    "##ed", "##ing", "##ding", "##er", ".", ",", "!", "?", "'", "x", "y", "z",
};
#define TM_VOCAB ((int)(sizeof tm_vocab / sizeof tm_vocab[0]))

TM_API int64_t tm_numel(const tm_tensor *t) { return t->ndim == 2 ? t->shape[0] * t->shape[1] : t->shape[0]; }

TM_API tm_tensor *tm_find(tm_model *m, const char *name) {
    for (int i = 0; i < m->n_t; i++)
        if (strcmp(m->t[i].name, name) == 0) return &m->t[i];
    return NULL;
}

TM_API tm_tensor *tm_findf(tm_model *m, const char *fmt, int layer) {
    char n[96];
    snprintf(n, sizeof n, fmt, layer);
    return tm_find(m, n);
}

// Adds a zero tensor (d1 < 0: 1-D) and returns it.
TM_API tm_tensor *tm_add(tm_model *m, const char *name, int64_t d0, int64_t d1) {
    if (m->n_t >= TM_MAX_TENSORS) {
        fprintf(stderr, "tiny_model: too many tensors\n");
        exit(1);
    }
    tm_tensor *t = &m->t[m->n_t++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = d1 >= 0 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1 >= 0 ? d1 : 1;
    t->f = calloc((size_t)(d0 * (d1 >= 0 ? d1 : 1)) + 1, sizeof(float));
    if (!t->f) exit(1);
    return t;
}

TM_API void tm_remove(tm_model *m, const char *name) {
    tm_tensor *t = tm_find(m, name);
    if (!t) return;
    free(t->f);
    int i = (int)(t - m->t);
    memmove(&m->t[i], &m->t[i + 1], (size_t)(m->n_t - i - 1) * sizeof *t);
    m->n_t--;
}

TM_API void tm_free(tm_model *m) {
    for (int i = 0; i < m->n_t; i++) free(m->t[i].f);
    m->n_t = 0;
}

TM_API void tm_fill(tm_tensor *t, float scale, float offset) {
    for (int64_t i = 0; i < tm_numel(t); i++) t->f[i] = offset + scale * tm_rand_sym();
}

TM_API void tm_add_layer(tm_model *m, int l, int H, int F) {
    const int C = m->hidden, A = H * m->head_dim;
    char n[96];
#define ADD(suffix, d0, d1, scale, off)                                                    \
    do {                                                                                   \
        snprintf(n, sizeof n, "encoder.layer.%d.%s", l, suffix);                           \
        tm_fill(tm_add(m, n, d0, d1), scale, off);                                         \
    } while (0)
    if (A > 0) {
        ADD("attention.self.query.weight", A, C, 0.6f, 0);
        ADD("attention.self.query.bias", A, -1, 0.2f, 0);
        ADD("attention.self.key.weight", A, C, 0.6f, 0);
        ADD("attention.self.key.bias", A, -1, 0.2f, 0);
        ADD("attention.self.value.weight", A, C, 0.4f, 0);
        ADD("attention.self.value.bias", A, -1, 0.2f, 0);
        ADD("attention.output.dense.weight", C, A, 0.4f, 0);
    }
    ADD("attention.output.dense.bias", C, -1, 0.2f, 0);
    ADD("attention.output.LayerNorm.weight", C, -1, 0.2f, 1.0f);
    ADD("attention.output.LayerNorm.bias", C, -1, 0.1f, 0);
    if (F > 0) {
        ADD("intermediate.dense.weight", F, C, 0.5f, 0);
        ADD("intermediate.dense.bias", F, -1, 0.3f, 0);
        ADD("output.dense.weight", C, F, 0.3f, 0);
    }
    ADD("output.dense.bias", C, -1, 0.2f, 0);
    ADD("output.LayerNorm.weight", C, -1, 0.2f, 1.0f);
    ADD("output.LayerNorm.bias", C, -1, 0.1f, 0);
#undef ADD
}

/* A full random model: hidden 16, 2 layers, 4 heads of 4, FFN 24, vocab 40, 32 positions. */
TM_API void tm_init(tm_model *m, uint64_t seed) {
    memset(m, 0, sizeof *m);
    tm_seed(seed);
    m->hidden = 16;
    m->n_layers = 2;
    m->heads = 4;
    m->head_dim = 4;
    m->ffn = 24;
    m->vocab = TM_VOCAB;
    m->max_pos = 32;
    m->type_vocab = 2;
    const int C = m->hidden;
    tm_fill(tm_add(m, "embeddings.word_embeddings.weight", m->vocab, C), 1.0f, 0);
    tm_fill(tm_add(m, "embeddings.position_embeddings.weight", m->max_pos, C), 0.3f, 0);
    tm_fill(tm_add(m, "embeddings.token_type_embeddings.weight", m->type_vocab, C), 0.2f, 0);
    tm_fill(tm_add(m, "embeddings.LayerNorm.weight", C, -1), 0.2f, 1.0f);
    tm_fill(tm_add(m, "embeddings.LayerNorm.bias", C, -1), 0.1f, 0);
    for (int l = 0; l < m->n_layers; l++) {
        m->l_heads[l] = m->heads;
        m->l_ffn[l] = m->ffn;
        tm_add_layer(m, l, m->heads, m->ffn);
    }
}

TM_API void tm_copy(tm_model *dst, const tm_model *src) {
    *dst = *src;
    for (int i = 0; i < src->n_t; i++) {
        size_t n = (size_t)tm_numel(&src->t[i]) + 1;
        dst->t[i].f = malloc(n * sizeof(float));
        if (!dst->t[i].f) exit(1);
        memcpy(dst->t[i].f, src->t[i].f, n * sizeof(float));
    }
}

/* dst = src with layer l cut to its first H heads and first F FFN neurons (rows of Q/K/V and of the
 * first FFN dense, columns of the attention-output and second FFN dense). With H == 0 (F == 0) the
 * weight tensors are dropped and only the biases and layer norms remain, as model.c expects. */
TM_API void tm_prune(tm_model *dst, const tm_model *src, int l, int H, int F) {
    tm_copy(dst, src);
    const int C = src->hidden, D = src->head_dim, A0 = src->l_heads[l] * D, F0 = src->l_ffn[l], A = H * D;
    static const char *rows_a[] = {"query.weight", "key.weight", "value.weight"};
    static const char *bias_a[] = {"query.bias", "key.bias", "value.bias"};
    char n[96];
    for (int k = 0; k < 3; k++) {
        snprintf(n, sizeof n, "encoder.layer.%d.attention.self.%s", l, rows_a[k]);
        if (A == 0) tm_remove(dst, n);
        else if (A0 > 0) tm_find(dst, n)->shape[0] = A; // the first A rows are the first H heads
        snprintf(n, sizeof n, "encoder.layer.%d.attention.self.%s", l, bias_a[k]);
        if (A == 0) tm_remove(dst, n);
        else if (A0 > 0) tm_find(dst, n)->shape[0] = A;
    }
    snprintf(n, sizeof n, "encoder.layer.%d.attention.output.dense.weight", l);
    if (A == 0) {
        tm_remove(dst, n);
    } else if (A0 > 0) {
        tm_tensor *t = tm_find(dst, n); // (C, A0) -> (C, A): keep the first A columns
        for (int r = 0; r < C; r++)
            for (int c = 0; c < A; c++) t->f[r * A + c] = t->f[r * A0 + c];
        t->shape[1] = A;
    }
    snprintf(n, sizeof n, "encoder.layer.%d.intermediate.dense.weight", l);
    if (F == 0) tm_remove(dst, n);
    else if (F0 > 0) tm_find(dst, n)->shape[0] = F;
    snprintf(n, sizeof n, "encoder.layer.%d.intermediate.dense.bias", l);
    if (F == 0) tm_remove(dst, n);
    else if (F0 > 0) tm_find(dst, n)->shape[0] = F;
    snprintf(n, sizeof n, "encoder.layer.%d.output.dense.weight", l);
    if (F == 0) {
        tm_remove(dst, n);
    } else if (F0 > 0) {
        tm_tensor *t = tm_find(dst, n); // (C, F0) -> (C, F)
        for (int r = 0; r < C; r++)
            for (int c = 0; c < F; c++) t->f[r * F + c] = t->f[r * F0 + c];
        t->shape[1] = F;
    }
    dst->per_layer = 1;
    dst->l_heads[l] = H;
    dst->l_ffn[l] = F;
}

// Rounds every weight to what a file of dtype `dt` ("F16", "BF16") stores.
TM_API void tm_round(tm_model *m, const char *dt) {
    for (int i = 0; i < m->n_t; i++)
        for (int64_t k = 0; k < tm_numel(&m->t[i]); k++) {
            float *v = &m->t[i].f[k];
            if (strcmp(dt, "F16") == 0) *v = tm_f16_to_f32(tm_f32_to_f16(*v));
            else if (strcmp(dt, "BF16") == 0) *v = tm_bf16_to_f32(tm_f32_to_bf16(*v));
        }
}

typedef struct {
    const char *dtype;  // "F32" (default), "F16", "BF16"
    int misalign;       // data section offset mod 8 (0: aligned as safetensors writers do)
    const char *prefix; // tensor-name prefix, e.g. "bert." (default none)
    const char *config_extra; // appended to config.json members, e.g. "\"hidden_act\": \"gelu\""
} tm_write_opts;

TM_API uint8_t *tm_safetensors(const tm_model *m, const tm_write_opts *o, size_t *len) {
    const char *fdt = o && o->dtype ? o->dtype : "F32";
    tm_st_entry e[TM_MAX_TENSORS];
    char names[TM_MAX_TENSORS][128];
    void *bufs[TM_MAX_TENSORS];
    for (int i = 0; i < m->n_t; i++) {
        const tm_tensor *t = &m->t[i];
        const char *dt = t->dtype[0] ? t->dtype : fdt;
        size_t n = (size_t)tm_numel(t);
        int half = strcmp(dt, "F16") == 0 || strcmp(dt, "BF16") == 0;
        if (half) {
            uint16_t *h = malloc(n * 2 + 2);
            if (!h) exit(1);
            for (size_t k = 0; k < n; k++) h[k] = strcmp(dt, "F16") == 0 ? tm_f32_to_f16(t->f[k]) : tm_f32_to_bf16(t->f[k]);
            bufs[i] = h;
        } else {
            bufs[i] = NULL;
        }
        snprintf(names[i], sizeof names[i], "%s%s", o && o->prefix ? o->prefix : "", t->name);
        // other dtypes are written as the raw bytes of the float buffer, numel * their size
        size_t es = half ? 2 : strcmp(dt, "I16") == 0 ? 2 : strcmp(dt, "F64") == 0 || strcmp(dt, "I64") == 0 ? 8
                    : strcmp(dt, "U8") == 0 || strcmp(dt, "I8") == 0 || strcmp(dt, "BOOL") == 0 ? 1 : 4;
        e[i] = (tm_st_entry){names[i], dt, t->ndim, t->shape, half ? bufs[i] : (const void *)t->f, n * es};
    }
    uint8_t *img = tm_st_image(e, m->n_t, o ? o->misalign : 0, len);
    for (int i = 0; i < m->n_t; i++) free(bufs[i]);
    return img;
}

TM_API int tm_write_config(const tm_model *m, const char *dir, const char *extra) {
    char cfg[4096];
    size_t n = (size_t)snprintf(cfg, sizeof cfg,
                                "{\n  \"architectures\": [\"BertModel\"],\n  \"model_type\": \"bert\",\n"
                                "  \"hidden_act\": \"gelu\",\n  \"hidden_size\": %d,\n  \"num_hidden_layers\": %d,\n"
                                "  \"num_attention_heads\": %d,\n  \"intermediate_size\": %d,\n  \"vocab_size\": %d,\n"
                                "  \"max_position_embeddings\": %d,\n  \"type_vocab_size\": %d,\n"
                                "  \"layer_norm_eps\": 1e-12,\n  \"pad_token_id\": 0,\n"
                                "  \"position_embedding_type\": \"absolute\"",
                                m->hidden, m->n_layers, m->heads, m->ffn, m->vocab, m->max_pos, m->type_vocab);
    if (m->per_layer) {
        n += (size_t)snprintf(cfg + n, sizeof cfg - n, ",\n  \"seslm_layers\": [");
        for (int l = 0; l < m->n_layers; l++)
            n += (size_t)snprintf(cfg + n, sizeof cfg - n, "%s{\"num_attention_heads\": %d, \"intermediate_size\": %d}",
                                  l ? ", " : "", m->l_heads[l], m->l_ffn[l]);
        n += (size_t)snprintf(cfg + n, sizeof cfg - n, "]");
    }
    if (extra && *extra) n += (size_t)snprintf(cfg + n, sizeof cfg - n, ",\n  %s", extra);
    snprintf(cfg + n, sizeof cfg - n, "\n}\n");
    return tm_write_text(dir, "config.json", cfg);
}

/* Writes the whole model directory into dir (which must exist). Returns 1 on success. */
TM_API int tm_write(const tm_model *m, const char *dir, const tm_write_opts *o) {
    char path[4096], vocab[4096] = "";
    size_t vl = 0;
    for (int i = 0; i < TM_VOCAB; i++) vl += (size_t)snprintf(vocab + vl, sizeof vocab - vl, "%s\n", tm_vocab[i]);
    int ok = tm_write_config(m, dir, o ? o->config_extra : NULL);
    ok &= tm_write_text(dir, "vocab.txt", vocab);
    ok &= tm_write_text(dir, "tokenizer_config.json",
                        "{\"do_lower_case\": true, \"unk_token\": \"[UNK]\", \"sep_token\": \"[SEP]\", "
                        "\"pad_token\": \"[PAD]\", \"cls_token\": \"[CLS]\", \"mask_token\": \"[MASK]\", "
                        "\"tokenize_chinese_chars\": true, \"strip_accents\": null, \"model_max_length\": 32}\n");
    ok &= tm_write_text(dir, "modules.json",
                        "[{\"idx\": 0, \"name\": \"0\", \"path\": \"\", \"type\": \"sentence_transformers.models.Transformer\"},"
                        " {\"idx\": 1, \"name\": \"1\", \"path\": \"1_Pooling\", \"type\": \"sentence_transformers.models.Pooling\"},"
                        " {\"idx\": 2, \"name\": \"2\", \"path\": \"2_Normalize\", \"type\": \"sentence_transformers.models.Normalize\"}]\n");
    tm_path(path, sizeof path, dir, "1_Pooling");
    mkdir(path, 0755);
    ok &= tm_write_text(dir, "1_Pooling/config.json",
                        "{\"word_embedding_dimension\": 16, \"pooling_mode_cls_token\": false, "
                        "\"pooling_mode_mean_tokens\": true, \"pooling_mode_max_tokens\": false}\n");
    size_t len = 0;
    uint8_t *img = tm_safetensors(m, o, &len);
    tm_path(path, sizeof path, dir, "model.safetensors");
    ok &= img && tm_write_bytes(path, img, len);
    free(img);
    return ok;
}


// ---- pieces of an independent double-precision forward pass (the references several tests share) --

/* The float data of a tensor named by fmt (with one %d for the layer); exits if it is missing. */
TM_API const float *tm_ref_w(tm_model *m, const char *fmt, int l) {
    tm_tensor *t = tm_findf(m, fmt, l);
    if (!t) {
        fprintf(stderr, "reference: missing %s (layer %d)\n", fmt, l);
        exit(1);
    }
    return t->f;
}

/* x (n, C) = LayerNorm(x) * g + b, eps 1e-12, in double. */
TM_API void tm_ref_layernorm(double *x, int n, int C, const float *g, const float *b) {
    for (int t = 0; t < n; t++) {
        double *r = x + t * C, mean = 0, var = 0;
        for (int c = 0; c < C; c++) mean += r[c];
        mean /= C;
        for (int c = 0; c < C; c++) var += (r[c] - mean) * (r[c] - mean);
        var /= C;
        for (int c = 0; c < C; c++) r[c] = (r[c] - mean) / sqrt(var + 1e-12) * g[c] + b[c];
    }
}

/* y (n, N) = x (n, K) W (N, K)^T + b, in double. */
TM_API void tm_ref_linear(double *y, const double *x, const float *w, const float *b, int n, int N, int K) {
    for (int t = 0; t < n; t++)
        for (int o = 0; o < N; o++) {
            double acc = b[o];
            for (int k = 0; k < K; k++) acc += x[t * K + k] * w[o * K + k];
            y[t * N + o] = acc;
        }
}

#endif
