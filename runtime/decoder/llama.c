/* llama.c — Llama-family decoder: GGUF weights and the forward pass with a KV cache (decoder.h). */
#include "decoder.h"
#include "seslm/telemetry.h"
#include "telemetry_internal.h"

#include "gguf.h"
#include "pool.h"
#include "qblock.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const void *data;
    int type;
    int N, K; // rows (outputs), row length (inputs)
} llm_mat;

typedef struct {
    const float *attn_norm, *ffn_norm; // (C)
    const float *bo, *bd;              // (C) optional biases of W_o and W_down (a reconstructed student's), or NULL
    llm_mat wq, wk, wv, wo, wg, wu, wd;
} llm_layer;

struct seslm_llm {
    gguf_file f;
    seslm_llm_config cfg;
    bpe_tokenizer *tok;
    llm_mat tok_embd, output;
    const float *output_norm;
    llm_layer *layers;
    char *default_system;
    size_t weight_bytes;
    const uint8_t *skip; // (n_layer) non-zero: the layer is bypassed (seslm_llm_set_layer_skip), else NULL
    char sha256[65]; // of the file, computed on first use (seslm_llm_sha256)
};

struct seslm_llm_ctx {
    const seslm_llm *m;
    int n_ctx, pos, ref;
    uint16_t *kc, *vc; // (L, n_ctx, H_kv * D) F16
    // scratch for a batch of up to cap tokens
    int cap;
    float *x, *h, *q, *k, *v, *a, *g, *u, *att; // att: (M * H, n_ctx) scores
    seslm_telemetry *tel; // NULL: off
    seslm_llm_capture_fn cap_fn; // NULL: off (seslm_llm_ctx_set_capture)
    void *cap_user;
    float *att_stats;     // (cap * H, 2) with telemetry: each (token, head)'s attention entropy and largest weight
    seslm_llm_stash *stash; // NULL: off (seslm_llm_ctx_set_stash)
    int stash_mode, stash_from, stash_call;
};

// ---- the layer stash: every layer's input per decode call, recorded and replayed ----

typedef struct {
    int M;
    uint64_t sum;  // FNV-1a of the call's ids and its start position: a replay out of step is caught
    size_t off;    // into x: (L, M, C) floats
} stash_call;

struct seslm_llm_stash {
    int L, C;
    size_t max_floats, n_floats, cap_floats;
    float *x;
    stash_call *calls;
    int n_calls, cap_calls;
    int full; // a record went past max_bytes: what was recorded is incomplete
};

const seslm_llm_config *seslm_llm_cfg(const seslm_llm *m) { return &m->cfg; }
const bpe_tokenizer *seslm_llm_tokenizer(const seslm_llm *m) { return m->tok; }
const char *seslm_llm_default_system(const seslm_llm *m) { return m->default_system; }
size_t seslm_llm_weight_bytes(const seslm_llm *m) { return m->weight_bytes; }

void seslm_llm_free(seslm_llm *m) {
    if (!m) return;
    bpe_free(m->tok);
    free(m->layers);
    free(m->default_system);
    gguf_close(&m->f);
    free(m);
}

static seslm_status get_mat(seslm_llm *m, const char *name, int N, int K, llm_mat *out, const char *path) {
    const gguf_tensor *t = gguf_find_tensor(&m->f, name);
    if (!t) return seslm_fail(SESLM_ERR_FORMAT, "%s: tensor '%s' is missing", path, name);
    if (t->n_dims != 2 || t->ne[0] != K || t->ne[1] != N)
        return seslm_fail(SESLM_ERR_SHAPE, "%s: tensor '%s' is [%lld, %lld], expected [%d, %d]", path, name,
                          (long long)t->ne[0], (long long)t->ne[1], K, N);
    out->data = t->data;
    out->type = t->type;
    out->N = N;
    out->K = K;
    m->weight_bytes += t->nbytes;
    return SESLM_OK;
}

static seslm_status get_vec(seslm_llm *m, const char *name, int n, const float **out, const char *path) {
    const gguf_tensor *t = gguf_find_tensor(&m->f, name);
    if (!t) return seslm_fail(SESLM_ERR_FORMAT, "%s: tensor '%s' is missing", path, name);
    if (t->n_dims != 1 || t->ne[0] != n || t->type != QB_F32)
        return seslm_fail(SESLM_ERR_SHAPE, "%s: tensor '%s' must be F32 [%d]", path, name, n);
    if (((uintptr_t)t->data & 3) != 0) return seslm_fail(SESLM_ERR_FORMAT, "%s: tensor '%s' is misaligned", path, name);
    *out = (const float *)t->data;
    m->weight_bytes += t->nbytes;
    return SESLM_OK;
}

/* The default system prompt of a SmolLM2-style template: the literal that follows
 * "'<|im_start|>system\n" in the branch taken when messages[0] is not a system message. */
static char *template_default_system(const gguf_file *f) {
    gguf_str tpl;
    if (gguf_get_str(f, "tokenizer.chat_template", &tpl) != 0) return NULL;
    const char *key = "'<|im_start|>system\n";
    size_t kl = strlen(key);
    for (size_t i = 0; i + kl <= tpl.len; i++) {
        if (memcmp(tpl.s + i, key, kl) != 0) continue;
        size_t a = i + kl, b = a;
        while (b + 10 <= tpl.len && memcmp(tpl.s + b, "<|im_end|>", 10) != 0) {
            if (tpl.s[b] == '\'' || tpl.s[b] == '{') return NULL; // an expression, not a literal
            b++;
        }
        if (b + 10 > tpl.len) return NULL;
        char *s = malloc(b - a + 1);
        if (!s) return NULL;
        memcpy(s, tpl.s + a, b - a);
        s[b - a] = 0;
        return s;
    }
    return NULL;
}

static int cfg_u32(const gguf_file *f, const char *arch, const char *key, int *out, int lo, int hi) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    uint32_t v;
    if (gguf_get_u32(f, k, &v) != 0 || (int64_t)v < lo || (int64_t)v > hi) return -1;
    *out = (int)v;
    return 0;
}

seslm_status seslm_llm_load(seslm_llm **out, const char *path) {
    *out = NULL;
    seslm_llm *m = calloc(1, sizeof *m);
    if (!m) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    seslm_status st = gguf_open(&m->f, path);
    if (st != SESLM_OK) {
        free(m);
        return st;
    }
    gguf_str arch;
    if (gguf_get_str(&m->f, "general.architecture", &arch) != 0 || arch.len != 5 || memcmp(arch.s, "llama", 5) != 0) {
        seslm_llm_free(m);
        return seslm_fail(SESLM_ERR_FORMAT, "%s: general.architecture is not \"llama\"", path);
    }
    seslm_llm_config *c = &m->cfg;
    c->n_ctx_train = 2048;
    if (cfg_u32(&m->f, "llama", "embedding_length", &c->n_embd, 32, 1 << 16) ||
        cfg_u32(&m->f, "llama", "block_count", &c->n_layer, 1, 1024) ||
        cfg_u32(&m->f, "llama", "feed_forward_length", &c->n_ff, 32, 1 << 18) ||
        cfg_u32(&m->f, "llama", "attention.head_count", &c->n_head, 1, 1024)) {
        seslm_llm_free(m);
        return seslm_fail(SESLM_ERR_FORMAT, "%s: llama.* hyperparameters missing or out of range", path);
    }
    c->n_head_kv = c->n_head;
    cfg_u32(&m->f, "llama", "attention.head_count_kv", &c->n_head_kv, 1, c->n_head);
    cfg_u32(&m->f, "llama", "context_length", &c->n_ctx_train, 1, 1 << 24);
    c->rope_base = 10000.0f;
    c->rms_eps = 1e-5f;
    gguf_get_f32(&m->f, "llama.rope.freq_base", &c->rope_base);
    gguf_get_f32(&m->f, "llama.attention.layer_norm_rms_epsilon", &c->rms_eps);
    // a student with pruned heads states its head size (as llama.cpp reads it): n_head * head_dim != n_embd
    c->head_dim = c->n_embd / c->n_head;
    int has_kl = cfg_u32(&m->f, "llama", "attention.key_length", &c->head_dim, 2, 1 << 12) == 0, vl = c->head_dim;
    cfg_u32(&m->f, "llama", "attention.value_length", &vl, 2, 1 << 12);
    int rope_dim = c->head_dim;
    cfg_u32(&m->f, "llama", "rope.dimension_count", &rope_dim, 1, 1 << 16);
    if ((!has_kl && c->n_embd % c->n_head) || vl != c->head_dim || c->n_head % c->n_head_kv || c->head_dim % 2 ||
        rope_dim != c->head_dim ||
        !(c->rope_base > 0.0f) || !(c->rms_eps > 0.0f)) {
        seslm_llm_free(m);
        return seslm_fail(SESLM_ERR_SHAPE, "%s: inconsistent heads (%d heads, %d KV heads, width %d, rope %d)", path,
                          c->n_head, c->n_head_kv, c->n_embd, rope_dim);
    }
    if ((st = bpe_load(&m->tok, &m->f, path)) != SESLM_OK) {
        seslm_llm_free(m);
        return st;
    }
    c->n_vocab = bpe_vocab_size(m->tok);
    m->default_system = template_default_system(&m->f);
    int C = c->n_embd, A = c->n_head * c->head_dim, KV = c->n_head_kv * c->head_dim, F = c->n_ff;
    st = get_mat(m, "token_embd.weight", c->n_vocab, C, &m->tok_embd, path);
    if (!st) st = get_vec(m, "output_norm.weight", C, &m->output_norm, path);
    if (!st) {
        if (gguf_find_tensor(&m->f, "output.weight"))
            st = get_mat(m, "output.weight", c->n_vocab, C, &m->output, path);
        else
            m->output = m->tok_embd; // tied embeddings
    }
    m->layers = st ? NULL : calloc((size_t)c->n_layer, sizeof *m->layers);
    if (!st && !m->layers) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    for (int l = 0; !st && l < c->n_layer; l++) {
        llm_layer *L = &m->layers[l];
        char n[96];
#define MAT(field, nm, N_, K_)                                                \
    if (!st) {                                                                \
        snprintf(n, sizeof n, "blk.%d.%s.weight", l, nm);                     \
        st = get_mat(m, n, N_, K_, &L->field, path);                          \
    }
        if (!st) {
            snprintf(n, sizeof n, "blk.%d.attn_norm.weight", l);
            st = get_vec(m, n, C, &L->attn_norm, path);
        }
        if (!st) {
            snprintf(n, sizeof n, "blk.%d.ffn_norm.weight", l);
            st = get_vec(m, n, C, &L->ffn_norm, path);
        }
        for (int k = 0; k < 2 && !st; k++) { // optional biases (llama.cpp's llama architecture reads them too)
            snprintf(n, sizeof n, "blk.%d.%s.bias", l, k ? "ffn_down" : "attn_output");
            if (gguf_find_tensor(&m->f, n)) st = get_vec(m, n, C, k ? &L->bd : &L->bo, path);
        }
        MAT(wq, "attn_q", A, C)
        MAT(wk, "attn_k", KV, C)
        MAT(wv, "attn_v", KV, C)
        MAT(wo, "attn_output", C, A)
        MAT(wg, "ffn_gate", F, C)
        MAT(wu, "ffn_up", F, C)
        MAT(wd, "ffn_down", C, F)
#undef MAT
    }
    if (st) {
        seslm_llm_free(m);
        return st;
    }
    *out = m;
    return SESLM_OK;
}

// ---------------------------------------------------------------------------------------------
// context

void seslm_llm_ctx_free(seslm_llm_ctx *c) {
    if (!c) return;
    free(c->kc);
    free(c->vc);
    free(c->att_stats);
    free(c->x);
    free(c->h);
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->a);
    free(c->g);
    free(c->u);
    free(c->att);
    free(c);
}

seslm_status seslm_llm_ctx_new(seslm_llm_ctx **out, const seslm_llm *m, int n_ctx, int ref) {
    *out = NULL;
    const seslm_llm_config *cf = &m->cfg;
    if (n_ctx <= 0 || n_ctx > cf->n_ctx_train)
        return seslm_fail(SESLM_ERR_ARG, "context of %d tokens (the model allows 1..%d)", n_ctx, cf->n_ctx_train);
    seslm_llm_ctx *c = calloc(1, sizeof *c);
    if (!c) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    c->m = m;
    c->n_ctx = n_ctx;
    c->ref = ref;
    size_t kv = (size_t)cf->n_layer * (size_t)n_ctx * (size_t)(cf->n_head_kv * cf->head_dim);
    c->kc = malloc(kv * 2);
    c->vc = malloc(kv * 2);
    if (!c->kc || !c->vc) {
        seslm_llm_ctx_free(c);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory for a KV cache of %d tokens", n_ctx);
    }
    *out = c;
    return SESLM_OK;
}

int seslm_llm_set_threads(int n) { return seslm_pool_set_threads(n); }

const char *seslm_llm_sha256(const seslm_llm *m) {
    seslm_llm *mm = (seslm_llm *)m; // the cache only
    if (mm->sha256[0]) return mm->sha256;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (!m->f.map || !EVP_Digest(m->f.map, m->f.map_size, md, &len, EVP_sha256(), NULL) || len != 32) return "";
    for (int i = 0; i < 32; i++) snprintf(mm->sha256 + 2 * i, 3, "%02x", md[i]);
    return mm->sha256;
}

seslm_status seslm_llm_telemetry_new(seslm_telemetry **out, const seslm_llm *m, int max_seq,
                                     const seslm_telemetry_opts *opts) {
    const seslm_llm_config *c = &m->cfg;
    int *heads = malloc((size_t)(c->n_layer + 1) * sizeof *heads), *ffn = malloc((size_t)(c->n_layer + 1) * sizeof *ffn);
    if (!heads || !ffn) {
        free(heads), free(ffn);
        *out = NULL;
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    for (int l = 0; l < c->n_layer; l++) heads[l] = c->n_head, ffn[l] = c->n_ff;
    const seslm_telemetry_shape sh = {c->n_vocab, c->n_embd, c->n_layer, max_seq > 0 ? max_seq : c->n_ctx_train,
                                      c->head_dim, heads, ffn, seslm_llm_sha256(m)};
    seslm_status st = seslm_telemetry_new_shape(out, &sh, opts);
    free(heads), free(ffn);
    return st;
}

seslm_status seslm_llm_ctx_set_telemetry(seslm_llm_ctx *c, seslm_telemetry *t) {
    if (t) {
        const seslm_llm_config *cf = &c->m->cfg;
        if (t->n_layers != cf->n_layer || t->hidden != cf->n_embd || t->vocab != cf->n_vocab ||
            (cf->n_layer > 0 && (t->layers[0].n_heads != cf->n_head || t->layers[0].ffn_dim != cf->n_ff)))
            return seslm_fail(SESLM_ERR_ARG, "the telemetry object was not made for this decoder's shape");
    }
    c->tel = t;
    return SESLM_OK;
}

void seslm_llm_ctx_set_capture(seslm_llm_ctx *c, seslm_llm_capture_fn fn, void *user) {
    c->cap_fn = fn;
    c->cap_user = user;
}

seslm_status seslm_llm_stash_new(seslm_llm_stash **out, const seslm_llm *m, size_t max_bytes) {
    *out = calloc(1, sizeof **out);
    if (!*out) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    (*out)->L = m->cfg.n_layer, (*out)->C = m->cfg.n_embd, (*out)->max_floats = max_bytes / sizeof(float);
    return SESLM_OK;
}

void seslm_llm_stash_free(seslm_llm_stash *s) {
    if (!s) return;
    free(s->x), free(s->calls), free(s);
}

int seslm_llm_stash_complete(const seslm_llm_stash *s) { return s && !s->full; }
size_t seslm_llm_stash_bytes(const seslm_llm_stash *s) { return s ? s->n_floats * sizeof(float) : 0; }

seslm_status seslm_llm_ctx_set_stash(seslm_llm_ctx *c, seslm_llm_stash *s, int mode, int from) {
    if (mode != SESLM_LLM_STASH_OFF && (!s || s->L != c->m->cfg.n_layer || s->C != c->m->cfg.n_embd))
        return seslm_fail(SESLM_ERR_ARG, "the stash was not made for this decoder");
    if (mode == SESLM_LLM_STASH_REPLAY && (from < 0 || from >= s->L || s->full))
        return seslm_fail(SESLM_ERR_ARG, s && s->full ? "the stash is incomplete (it outgrew its memory bound)"
                                                      : "replay from layer %d of %d", from, s ? s->L : 0);
    if (mode == SESLM_LLM_STASH_RECORD) s->n_calls = 0, s->n_floats = 0, s->full = 0;
    c->stash = mode == SESLM_LLM_STASH_OFF ? NULL : s;
    c->stash_mode = mode, c->stash_from = from, c->stash_call = 0;
    return SESLM_OK;
}

static uint64_t stash_sum(const int32_t *ids, int M, int pos) {
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)(uint32_t)pos;
    for (int i = 0; i < M; i++) h = (h ^ (uint64_t)(uint32_t)ids[i]) * 1099511628211ULL;
    return h;
}

/* RECORD: a new entry for this call (NULL when the bound is reached: the stash is marked incomplete). */
static float *stash_begin(seslm_llm_ctx *c, const int32_t *ids, int M) {
    seslm_llm_stash *s = c->stash;
    const size_t need = (size_t)s->L * (size_t)M * (size_t)s->C;
    if (s->full || s->n_floats + need > s->max_floats) {
        s->full = 1;
        return NULL;
    }
    if (s->n_calls == s->cap_calls) {
        int cap = s->cap_calls ? 2 * s->cap_calls : 64;
        stash_call *n = realloc(s->calls, (size_t)cap * sizeof *n);
        if (!n) return s->full = 1, NULL;
        s->calls = n, s->cap_calls = cap;
    }
    if (s->n_floats + need > s->cap_floats) {
        size_t cap = s->cap_floats ? 2 * s->cap_floats : need * 8;
        while (cap < s->n_floats + need) cap *= 2;
        if (cap > s->max_floats) cap = s->max_floats;
        float *n = realloc(s->x, cap * sizeof *n);
        if (!n) return s->full = 1, NULL;
        s->x = n, s->cap_floats = cap;
    }
    stash_call *e = &s->calls[s->n_calls++];
    e->M = M, e->sum = stash_sum(ids, M, c->pos), e->off = s->n_floats;
    s->n_floats += need;
    return s->x + e->off;
}

void seslm_llm_ctx_reset(seslm_llm_ctx *c) { c->pos = 0; }
int seslm_llm_ctx_pos(const seslm_llm_ctx *c) { return c->pos; }
int seslm_llm_ctx_n_ctx(const seslm_llm_ctx *c) { return c->n_ctx; }
const seslm_llm *seslm_llm_ctx_model(const seslm_llm_ctx *c) { return c->m; }

static int ensure_scratch(seslm_llm_ctx *c, int M) {
    if (M <= c->cap) return 0;
    const seslm_llm_config *cf = &c->m->cfg;
    size_t C = (size_t)cf->n_embd, KV = (size_t)(cf->n_head_kv * cf->head_dim), F = (size_t)cf->n_ff;
    size_t A = (size_t)(cf->n_head * cf->head_dim), Mz = (size_t)M;
    float *p[9];
    size_t sz[9] = {Mz * C, Mz * C, Mz * A, Mz * KV, Mz * KV, Mz * A, Mz * F, Mz * F,
                    Mz * (size_t)cf->n_head * (size_t)c->n_ctx};
    for (int i = 0; i < 9; i++) p[i] = malloc(sz[i] * sizeof(float));
    int ok = 1;
    for (int i = 0; i < 9; i++) ok &= p[i] != NULL;
    if (!ok) {
        for (int i = 0; i < 9; i++) free(p[i]);
        return -1;
    }
    float *st = malloc(Mz * (size_t)cf->n_head * 2 * sizeof(float));
    if (!st) {
        for (int i = 0; i < 9; i++) free(p[i]);
        return -1;
    }
    float **dst[9] = {&c->x, &c->h, &c->q, &c->k, &c->v, &c->a, &c->g, &c->u, &c->att};
    for (int i = 0; i < 9; i++) {
        free(*dst[i]);
        *dst[i] = p[i];
    }
    free(c->att_stats);
    c->att_stats = st;
    c->cap = M;
    return 0;
}

/* y = x / sqrt(mean(x^2) + eps) * w, one row of n (squares in float summed in double, as ggml's rms_norm) */
static void rmsnorm(float *y, const float *x, const float *w, int n, float eps) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += (double)(x[i] * x[i]);
    float scale = 1.0f / sqrtf((float)(s / n) + eps);
    for (int i = 0; i < n; i++) y[i] = x[i] * scale * w[i];
}

/* rotary embedding of one head vector at position pos: pairs (2i, 2i+1) rotated by pos * base^(-2i/D)
 * (the angle advanced by multiplication, as ggml's rope cache computes it) */
static void rope(float *v, int D, int pos, float base) {
    float theta_scale = powf(base, -2.0f / (float)D), theta = (float)pos;
    for (int i = 0; i < D; i += 2) {
        float cs = cosf(theta), sn = sinf(theta);
        float a = v[i], b = v[i + 1];
        v[i] = a * cs - b * sn;
        v[i + 1] = a * sn + b * cs;
        theta *= theta_scale;
    }
}

static seslm_status matmul(seslm_llm_ctx *c, float *y, const float *x, const llm_mat *w, int M) {
    if (qb_matmul(y, x, w->data, w->type, M, w->N, w->K, c->ref) != 0)
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory in a matrix product");
    return SESLM_OK;
}

// n products of the same input as one parallel job (Q, K, V; gate, up): at batch 1 a token's time is mostly
// the pool's wake-ups and barriers between small products, so fewer, larger jobs are what scales to 2 threads
static seslm_status matmul_n(seslm_llm_ctx *c, int n, float *const *ys, const float *x, const llm_mat *const *w, int M) {
    const void *W[4];
    int types[4], Ns[4];
    for (int i = 0; i < n; i++) W[i] = w[i]->data, types[i] = w[i]->type, Ns[i] = w[i]->N;
    if (qb_matmul_n(n, ys, x, W, types, Ns, M, w[0]->K, c->ref) != 0)
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory in a matrix product");
    return SESLM_OK;
}

typedef struct {
    const seslm_llm_ctx *c;
    const uint16_t *kc, *vc; // this layer's cache, (n_ctx, KV) F16
    int H, G, D, A, KV, pos0; // A = H * D: a row of q and of the attention output
    float kq_scale;
} attn_job;

// items: (token, head) pairs; token i sees positions 0..pos0+i
static void attn_task(void *ctx, int lo, int hi, int tid) {
    (void)tid;
    const attn_job *j = ctx;
    const seslm_llm_ctx *c = j->c;
    const int H = j->H, D = j->D, KV = j->KV;
    for (int ih = lo; ih < hi; ih++) {
        int i = ih / H, h = ih % H, g = h / j->G, T = j->pos0 + i + 1;
        const float *q = c->q + (size_t)i * j->A + h * D;
        float *s = c->att + (size_t)ih * c->n_ctx, mx = -INFINITY;
        for (int t = 0; t < T; t++) {
            s[t] = qb_dot_f16(j->kc + (size_t)t * KV + g * D, q, D, c->ref) * j->kq_scale;
            mx = fmaxf(mx, s[t]);
        }
        double sum = 0.0; // (ggml sums the exponentials in double)
        for (int t = 0; t < T; t++) {
            s[t] = expf(s[t] - mx);
            sum += s[t];
        }
        float inv = (float)(1.0 / sum), *o = c->a + (size_t)i * j->A + h * D;
        if (c->tel) { // entropy = log Z - sum_t e_t log e_t / Z (log e_t = score_t - max); largest weight 1 / Z
            double el = 0.0;
            for (int t = 0; t < T; t++) el += s[t] > 0.0f ? (double)s[t] * log((double)s[t]) : 0.0;
            c->att_stats[2 * (size_t)ih] = (float)(log(sum) - el / sum);
            c->att_stats[2 * (size_t)ih + 1] = inv;
        }
        for (int d = 0; d < D; d++) o[d] = 0.0f;
        for (int t = 0; t < T; t++)
            qb_axpy_f16(o, s[t] * inv, j->vc + (size_t)t * KV + g * D, D, c->ref);
    }
}

// The element-wise steps of a batch of tokens (a prompt), one token per work item: serial, SwiGLU's
// expf over (M, F) alone was ~15% of a 2-thread prompt.
typedef enum { ROWS_RMSNORM, ROWS_SWIGLU, ROWS_ROPE_CACHE } rows_op;
typedef struct {
    seslm_llm_ctx *c;
    rows_op op;
    const float *w; // RMSNorm weights
    uint16_t *kc, *vc;
    int pos0;
} rows_job;

static void rows_task(void *ctx, int lo, int hi, int tid) {
    (void)tid;
    const rows_job *j = ctx;
    seslm_llm_ctx *c = j->c;
    const seslm_llm_config *cf = &c->m->cfg;
    const int C = cf->n_embd, F = cf->n_ff, D = cf->head_dim, KV = cf->n_head_kv * D, A = cf->n_head * D;
    for (int i = lo; i < hi; i++) {
        switch (j->op) {
        case ROWS_RMSNORM: rmsnorm(c->h + (size_t)i * C, c->x + (size_t)i * C, j->w, C, cf->rms_eps); break;
        case ROWS_SWIGLU:
            for (size_t k = (size_t)i * F; k < (size_t)(i + 1) * F; k++) {
                float g = c->g[k];
                c->g[k] = g / (1.0f + expf(-g)) * c->u[k];
            }
            break;
        case ROWS_ROPE_CACHE:
            for (int h = 0; h < cf->n_head; h++) rope(c->q + (size_t)i * A + h * D, D, j->pos0 + i, cf->rope_base);
            for (int h = 0; h < cf->n_head_kv; h++) rope(c->k + (size_t)i * KV + h * D, D, j->pos0 + i, cf->rope_base);
            qb_f32_to_f16_row(j->kc + (size_t)(j->pos0 + i) * KV, c->k + (size_t)i * KV, KV);
            qb_f32_to_f16_row(j->vc + (size_t)(j->pos0 + i) * KV, c->v + (size_t)i * KV, KV);
            break;
        }
    }
}

static void rows_run(seslm_llm_ctx *c, rows_op op, const float *w, uint16_t *kc, uint16_t *vc, int pos0, int M) {
    rows_job j = {c, op, w, kc, vc, pos0};
    if (M > 1) seslm_pool_for(M, 1, 0, rows_task, &j);
    else rows_task(&j, 0, M, 0);
}

// ---- telemetry (c->tel set): the encoder's per-layer statistics (seslm/telemetry.h), on the decode thread ----

static int64_t tel_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// sq[j] += sum over the M rows of x[., j]^2
static void tel_col_sq(double *sq, const float *x, int M, int N) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) sq[j] += (double)x[(size_t)i * N + j] * x[(size_t)i * N + j];
}

// the SwiGLU outputs (M, F): each neuron's sums of squares and of |.|, and how often it was > 0
static void tel_ffn(seslm_layer_telemetry *L, const float *g, int M, int F) {
    for (int i = 0; i < M; i++)
        for (int n = 0; n < F; n++) {
            const float v = g[(size_t)i * F + n];
            L->ffn_sq[n] += (double)v * v;
            L->ffn_abs[n] += fabs((double)v);
            L->ffn_pos[n] += v > 0.0f;
        }
    L->ffn_tokens += (uint64_t)M;
}

// per query head: the L2 norm of its output per token, its attention entropy and largest weight (att_stats)
static void tel_heads(seslm_layer_telemetry *L, const float *a, const float *st, int M, int H, int D) {
    for (int i = 0; i < M; i++)
        for (int h = 0; h < H; h++) {
            const float *o = a + (size_t)i * H * D + (size_t)h * D;
            double n2 = 0.0;
            for (int d = 0; d < D; d++) n2 += (double)o[d] * o[d];
            L->head_out_norm[h] += sqrt(n2);
            L->head_entropy[h] += st[2 * ((size_t)i * H + h)];
            L->head_max_weight[h] += st[2 * ((size_t)i * H + h) + 1];
        }
    L->query_tokens += (uint64_t)M;
}

static seslm_status decode(seslm_llm_ctx *c, const int32_t *ids, int M, float *logits, int all) {
    const seslm_llm *m = c->m;
    const seslm_llm_config *cf = &m->cfg;
    if (M <= 0) return seslm_fail(SESLM_ERR_ARG, "no tokens to decode");
    if (M > c->n_ctx - c->pos)
        return seslm_fail(SESLM_ERR_LIMIT, "%d more tokens do not fit the context (%d of %d used)", M, c->pos, c->n_ctx);
    for (int i = 0; i < M; i++)
        if (ids[i] < 0 || ids[i] >= cf->n_vocab) return seslm_fail(SESLM_ERR_ARG, "token id %d out of range", ids[i]);
    if (ensure_scratch(c, M) != 0) return seslm_fail(SESLM_ERR_NOMEM, "out of memory for a batch of %d", M);
    const int C = cf->n_embd, H = cf->n_head, HKV = cf->n_head_kv, D = cf->head_dim, KV = HKV * D;
    const int G = H / HKV, pos0 = c->pos, n_ctx = c->n_ctx;
    const float eps = cf->rms_eps, kq_scale = 1.0f / sqrtf((float)D);
    seslm_telemetry *T = c->tel;
    const int64_t t0 = T ? tel_now_ns() : 0;
    if (T) {
        const int off0 = 0;
        tel_observe_tokens(T, ids, &off0, &M, 1); // each decode call (a prompt, a generated token) one sequence
    }
    // the layer stash: record every layer's input, or resume from a recorded one (the layers before it unchanged)
    float *rec = NULL;
    int l0 = 0;
    if (c->stash && c->stash_mode == SESLM_LLM_STASH_RECORD) {
        rec = stash_begin(c, ids, M);
    } else if (c->stash) {
        const seslm_llm_stash *s = c->stash;
        const int k = c->stash_call++;
        if (k >= s->n_calls || s->calls[k].M != M || s->calls[k].sum != stash_sum(ids, M, pos0))
            return seslm_fail(SESLM_ERR_INTERNAL, "layer stash replay out of step at decode call %d", k + 1);
        l0 = c->stash_from;
        memcpy(c->x, s->x + s->calls[k].off + (size_t)l0 * (size_t)M * C, (size_t)M * C * sizeof *c->x);
    }
    size_t erow = qb_row_bytes(m->tok_embd.type, C);
    for (int i = 0; i < M && !l0; i++)
        qb_dequantize_row(m->tok_embd.type, (const uint8_t *)m->tok_embd.data + (size_t)ids[i] * erow, c->x + (size_t)i * C, C);
    seslm_status st = SESLM_OK;
    for (int l = l0; l < cf->n_layer && !st; l++) {
        if (rec) memcpy(rec + (size_t)l * (size_t)M * C, c->x, (size_t)M * C * sizeof *c->x);
        if (m->skip && m->skip[l]) continue;
        const llm_layer *L = &m->layers[l];
        seslm_layer_telemetry *LT = T ? &T->layers[l] : NULL;
        const int64_t lt0 = LT ? tel_now_ns() : 0;
        rows_run(c, ROWS_RMSNORM, L->attn_norm, NULL, NULL, pos0, M);
        if (LT) tel_col_sq(LT->in_sq_qkv, c->h, M, C);
        float *const qkv[3] = {c->q, c->k, c->v};
        const llm_mat *const wqkv[3] = {&L->wq, &L->wk, &L->wv};
        if ((st = matmul_n(c, 3, qkv, c->h, wqkv, M))) break;
        uint16_t *kc = c->kc + (size_t)l * n_ctx * KV, *vc = c->vc + (size_t)l * n_ctx * KV;
        rows_run(c, ROWS_ROPE_CACHE, NULL, kc, vc, pos0, M);
        // attention: one (token, head) pair per work item
        attn_job aj = {c, kc, vc, H, G, D, H * D, KV, pos0, kq_scale};
        seslm_pool_for(M * H, 1, 0, attn_task, &aj);
        if (LT) {
            tel_heads(LT, c->a, c->att_stats, M, H, D);
            tel_col_sq(LT->in_sq_attn_out, c->a, M, H * D);
        }
        if (c->cap_fn) c->cap_fn(c->cap_user, l, SESLM_LLM_CAPTURE_ATTN, c->a, M, H * D);
        if ((st = matmul(c, c->h, c->a, &L->wo, M))) break;
        for (size_t j = 0; j < (size_t)M * C; j++) c->x[j] += c->h[j];
        if (L->bo)
            for (int i = 0; i < M; i++)
                for (int j = 0; j < C; j++) c->x[(size_t)i * C + j] += L->bo[j];
        if (c->cap_fn) c->cap_fn(c->cap_user, l, SESLM_LLM_CAPTURE_MID, c->x, M, C);
        rows_run(c, ROWS_RMSNORM, L->ffn_norm, NULL, NULL, pos0, M);
        if (LT) tel_col_sq(LT->in_sq_ffn_in, c->h, M, C);
        if (c->cap_fn) c->cap_fn(c->cap_user, l, SESLM_LLM_CAPTURE_FFN_IN, c->h, M, C);
        float *const gu[2] = {c->g, c->u};
        const llm_mat *const wgu[2] = {&L->wg, &L->wu};
        if ((st = matmul_n(c, 2, gu, c->h, wgu, M))) break;
        rows_run(c, ROWS_SWIGLU, NULL, NULL, NULL, pos0, M);
        if (LT) tel_ffn(LT, c->g, M, cf->n_ff);
        if (c->cap_fn) c->cap_fn(c->cap_user, l, SESLM_LLM_CAPTURE_FFN, c->g, M, cf->n_ff);
        if ((st = matmul(c, c->h, c->g, &L->wd, M))) break;
        for (size_t j = 0; j < (size_t)M * C; j++) c->x[j] += c->h[j];
        if (L->bd)
            for (int i = 0; i < M; i++)
                for (int j = 0; j < C; j++) c->x[(size_t)i * C + j] += L->bd[j];
        if (c->cap_fn) c->cap_fn(c->cap_user, l, SESLM_LLM_CAPTURE_OUT, c->x, M, C);
        if (LT) {
            LT->exec_count++;
            LT->exec_ns += tel_now_ns() - lt0;
        }
    }
    if (st) return st;
    c->pos += M;
    if (logits && all) { // every token's logits (M, V): perplexity
        rows_run(c, ROWS_RMSNORM, m->output_norm, NULL, NULL, pos0, M);
        st = matmul(c, logits, c->h, &m->output, M);
    } else if (logits) {
        rmsnorm(c->h, c->x + (size_t)(M - 1) * C, m->output_norm, C, eps);
        st = matmul(c, logits, c->h, &m->output, 1);
    }
    if (T && !st) tel_observe_batch(T, tel_now_ns() - t0, 1, M);
    return st;
}

void seslm_llm_set_layer_skip(seslm_llm *m, const uint8_t *skip) { m->skip = skip; }

seslm_status seslm_llm_decode(seslm_llm_ctx *c, const int32_t *ids, int M, float *logits) {
    return decode(c, ids, M, logits, 0);
}

seslm_status seslm_llm_decode_all(seslm_llm_ctx *c, const int32_t *ids, int M, float *logits) {
    if (!logits) return seslm_fail(SESLM_ERR_ARG, "no logits buffer");
    return decode(c, ids, M, logits, 1);
}
