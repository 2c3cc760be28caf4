/* encoder.c — the BERT encoder forward pass over a packed ragged batch, driven through a backend.
 *
 *   ids (Ntok) -> embed + LN -> x (Ntok, C)
 *   per layer l (A = heads_l * D, F = ffn_l):
 *       qkv (Ntok, 3A) = x Wqkv^T + b          (Q, K, V fused into one matrix at load)
 *       ctx (Ntok, A)  = attention(qkv)        (within each sequence: the padding mask, exactly)
 *       x = LN(x + ctx Wo^T + bo)
 *       h (Ntok, F)    = gelu(x W1^T + b1)
 *       x = LN(x + h W2^T + b2)
 *   out (B, C) = [L2-normalise](pooling over each sequence's rows of x)   (pooling.h: the model's mode)
 *
 * All buffers are allocated once in seslm_encoder_new for max_batch x max_seq_len tokens; the
 * forward pass itself allocates nothing. */
#include "backend.h"
#include "bf16.h"
#include "cuda_plugin.h"
#include "encoder_device.h"
#include "encoder_probe.h"
#include "model_internal.h"
#include "pooling.h"
#include "quant.h"
#include "sparse24.h"
#include "telemetry_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct seslm_encoder {
    const seslm_model *m;
    const seslm_backend *be;
    int max_batch, max_tokens;
    int max_seq;           // truncation length (<= the model's max_seq_len)
    seslm_weight *lin;      // per layer 4 matrices: Q/K/V fused (3A, C), attention out (C, A), FFN in (F, C), out (C, F)
    unsigned char *lin_own; // per matrix: which of its arrays the encoder allocated (OWN_* bits)
    int precision;          // PREC_*: what F32-stored linear layers are computed in
    float **qkv_b;          // per layer (3A); NULL where A == 0
    // workspace
    int32_t *ids;   // (max_tokens) packed ids
    int *off, *len, *ones; // (max_batch)
    int32_t *tok;   // (max_batch, max_seq_len) tokenizer output
    float *x, *qkv, *ctx, *tmp, *ffn, *scratch;
    size_t scratch_floats;
    int8_t *qx;  // (max_tokens, ldqx) x quantized by add_layernorm_q8 for the INT8 product that reads it next
    float *qxs;  // (max_tokens) its row scales; NULL (and qx NULL): no fused path
    int ldqx;
    int8_t *qf;  // (max_tokens, ldqf) the GELU output quantized for the second FFN product (linear_gelu_q8out)
    float *qfs;  // (max_tokens) its row scales; NULL (and qf NULL): no such path
    int ldqf;
    seslm_telemetry *tel;  // NULL: telemetry off
    float *attn_stats;     // (max_batch, max heads, 2) per-sequence attention statistics
    // structural masks (seslm_encoder_set_masks): per layer NULL = all kept; else (H) / (F) factors
    float **head_mask, **neuron_mask; // (n_layers) pointers into mask_buf
    float *mask_buf;
    int masked;                       // 0: no mask anywhere (the forward pass checks only this)
    seslm_probe_fn probe;             // calibration hook (encoder_probe.h); NULL: none
    void *probe_ctx;
    encoder_device *dev;              // device backends (be->dev_alloc): weights + workspace on the device
    char *prompt;                     // prepended by embed_texts (NULL: none)
    int pool_skip;                    // leading tokens left out of pooling (the prompt, include_prompt false)
    float *fbuf;                      // (max_batch, hidden) one layer's pooled rows (features_texts)
    float *hx;                        // device backends: (max_tokens, hidden) one layer's output brought back
                                      // for features of more than one layer (allocated on first use)
};

// Mean and [CLS] pooling without a prompt to skip run as the backend's pool op; the other modes on host.
static int encoder_host_pool(const seslm_encoder *e) {
    const seslm_model_config *c = &e->m->cfg;
    return e->pool_skip > 0 || (c->pooling != SESLM_POOL_MEAN && c->pooling != SESLM_POOL_CLS);
}

const char *seslm_encoder_prompt(const seslm_encoder *e) { return e->prompt; }

int seslm_encoder_on_device(const seslm_encoder *e) { return e->dev != NULL; }

seslm_status seslm_encoder_set_prompt(seslm_encoder *e, const char *prompt) {
    const seslm_model_config *c = &e->m->cfg;
    int skip = 0;
    if (prompt && !c->include_prompt) { // sentence-transformers: len(tokenize(prompt)) minus the final [SEP]
        int n = 0;
        seslm_status st = seslm_tokenizer_encode(e->m->tok, prompt, strlen(prompt), e->tok, c->max_seq_len, &n);
        if (st != SESLM_OK) return st;
        skip = n - 1;
    }
    char *p = prompt ? strdup(prompt) : NULL;
    if (prompt && !p) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    const int host_before = encoder_host_pool(e);
    e->pool_skip = skip;
    if (e->dev && encoder_host_pool(e) && !host_before) { // device activations must now come back to the host
        float *x = realloc(e->x, (size_t)e->max_tokens * c->hidden * sizeof(float));
        if (!x) {
            e->pool_skip = 0;
            free(p);
            return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        }
        e->x = x;
    }
    free(e->prompt);
    e->prompt = p;
    return SESLM_OK;
}

void seslm_encoder_set_probe(seslm_encoder *e, seslm_probe_fn fn, void *ctx) {
    e->probe = fn;
    e->probe_ctx = ctx;
}

void seslm_encoder_set_telemetry(seslm_encoder *e, seslm_telemetry *t) { e->tel = t; }

static int mask_all_ones(const float *v, int n) {
    for (int i = 0; i < n; i++)
        if (v[i] != 1.0f) return 0;
    return 1;
}

seslm_status seslm_encoder_set_masks(seslm_encoder *e, const float *const *head_mask, const float *const *neuron_mask) {
    const seslm_model_config *c = &e->m->cfg;
    const int L = c->n_layers;
    if (!e->mask_buf) { // sized once for every layer's heads and neurons
        size_t n = 0;
        for (int l = 0; l < L; l++) n += (size_t)c->layers[l].n_heads + (size_t)c->layers[l].ffn_dim;
        e->mask_buf = malloc((n + 1) * sizeof(float));
        e->head_mask = calloc((size_t)L + 1, sizeof(float *));
        e->neuron_mask = calloc((size_t)L + 1, sizeof(float *));
        if (!e->mask_buf || !e->head_mask || !e->neuron_mask) {
            free(e->mask_buf), free(e->head_mask), free(e->neuron_mask);
            e->mask_buf = NULL, e->head_mask = e->neuron_mask = NULL;
            return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        }
    }
    for (int l = 0; l < L; l++) { // validate before changing anything
        const float *hm = head_mask ? head_mask[l] : NULL, *nm = neuron_mask ? neuron_mask[l] : NULL;
        for (int h = 0; hm && h < c->layers[l].n_heads; h++)
            if (!(hm[h] >= 0.0f && hm[h] <= 1.0f))
                return seslm_fail(SESLM_ERR_ARG, "layer %d head %d: mask value must be in [0, 1]", l, h);
        for (int f = 0; nm && f < c->layers[l].ffn_dim; f++)
            if (!(nm[f] >= 0.0f && nm[f] <= 1.0f))
                return seslm_fail(SESLM_ERR_ARG, "layer %d neuron %d: mask value must be in [0, 1]", l, f);
    }
    float *p = e->mask_buf;
    e->masked = 0;
    for (int l = 0; l < L; l++) {
        const int H = c->layers[l].n_heads, F = c->layers[l].ffn_dim;
        const float *hm = head_mask ? head_mask[l] : NULL, *nm = neuron_mask ? neuron_mask[l] : NULL;
        e->head_mask[l] = e->neuron_mask[l] = NULL;
        if (hm && H > 0 && !mask_all_ones(hm, H)) {
            memcpy(p, hm, (size_t)H * sizeof(float));
            e->head_mask[l] = p;
            e->masked = 1;
        }
        p += H;
        if (nm && F > 0 && !mask_all_ones(nm, F)) {
            memcpy(p, nm, (size_t)F * sizeof(float));
            e->neuron_mask[l] = p;
            e->masked = 1;
        }
        p += F;
    }
    if (e->dev && encoder_device_set_masks(e->dev, e->mask_buf, (size_t)(p - e->mask_buf)) != SESLM_OK) {
        e->masked = 0; // nothing half-applied: the device keeps computing unmasked
        return seslm_fail(SESLM_ERR_INTERNAL, "uploading the masks: %s", seslm_last_error());
    }
    return SESLM_OK;
}

/* Multiplies column groups of a (M, G*W) row-major matrix by mask[g] (0 writes exact zeros). */
static void mask_columns(float *y, int M, int G, int W, const float *mask) {
    for (int m = 0; m < M; m++) {
        float *row = y + (size_t)m * G * W;
        for (int g = 0; g < G; g++) {
            const float k = mask[g];
            if (k == 1.0f) continue;
            float *v = row + (size_t)g * W;
            if (k == 0.0f) memset(v, 0, (size_t)W * sizeof(float));
            else
                for (int i = 0; i < W; i++) v[i] *= k;
        }
    }
}

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

enum { LIN_QKV, LIN_AO, LIN_FF1, LIN_FF2 };
enum { OWN_W = 1, OWN_Q = 2, OWN_BW = 4 };
enum { PREC_FP32, PREC_BF16, PREC_INT8 };

/* One linear layer's source: F32 rows w, or INT8 rows q with per-row scales s. */
typedef struct {
    const float *w;
    const int8_t *q;
    const float *s;
    int rows;
    const float *sv; // 2:4 sparse (single-source layers only)
    const uint8_t *si;
} weight_src;

/* F32 weights W->w (N, K) converted to the encoder's precision: BF16 (bw, or only its panels bwp when
 * packing) or INT8 per output channel (q, qscale; packed when asked). The F32 array is no longer read:
 * W->w becomes NULL (a stacked copy is freed). */
static seslm_status weight_convert(seslm_weight *W, int prec, int pack, unsigned char *own) {
    const int N = W->N, K = W->K;
    const size_t nk = (size_t)N * K;
    if (prec == PREC_BF16) {
        uint16_t *bw = malloc(nk * sizeof *bw);
        if (!bw) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        seslm_bf16_from_f32(bw, W->w, nk);
        if (pack) {
            W->bwp = seslm_bf16_pack(bw, N, K);
            free(bw);
            if (!W->bwp) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        } else {
            W->bw = bw;
            *own |= OWN_BW;
        }
    } else {
        int8_t *q = malloc(nk);
        float *sc = malloc((size_t)N * sizeof *sc);
        if (!q || !sc) {
            free(q), free(sc);
            return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        }
        seslm_quantize_weight(q, sc, W->w, N, K);
        W->q = q, W->qscale = sc;
        *own |= OWN_Q;
        if (pack && !(W->qp = seslm_qweight_pack(q, N, K, &W->qsum))) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    if (*own & OWN_W) free((float *)W->w);
    *own &= (unsigned char)~OWN_W;
    W->w = NULL;
    return SESLM_OK;
}

/* (N, K) rows of up to three source matrices stacked into one (a copy when more than one), converted
 * to the encoder's precision when that is not FP32 (F32-stored sources only), and packed for the backend
 * when it asks (seslm_weight_pack32 / seslm_qweight_pack / seslm_bf16_pack). *own records what the
 * encoder allocated. */
static seslm_status weight_build(seslm_weight *W, const weight_src *src, int nsrc, int K, int pack, int prec,
                                 unsigned char *own) {
    int N = 0;
    *own = 0;
    for (int i = 0; i < nsrc; i++) N += src[i].rows;
    memset(W, 0, sizeof *W);
    W->N = N, W->K = K;
    if (N == 0 || K == 0) return SESLM_OK;
    if (src[0].sv) { // 2:4 sparse (sparse24.h)
        W->sv = src[0].sv, W->si = src[0].si;
        if (pack && !(W->sp = seslm_sparse24_pack(W->sv, W->si, N, K))) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        return SESLM_OK;
    }
    if (src[0].q) { // INT8
        int8_t *q = NULL;
        float *sc = NULL;
        if (nsrc > 1) {
            q = malloc((size_t)N * K);
            sc = malloc((size_t)N * sizeof *sc);
            if (!q || !sc) {
                free(q), free(sc);
                return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
            }
            for (int i = 0, n0 = 0; i < nsrc; n0 += src[i++].rows) {
                memcpy(q + (size_t)n0 * K, src[i].q, (size_t)src[i].rows * K);
                memcpy(sc + n0, src[i].s, (size_t)src[i].rows * sizeof *sc);
            }
        }
        W->q = q ? q : src[0].q;
        W->qscale = sc ? sc : src[0].s;
        if (q) *own |= OWN_Q;
        if (pack) {
            W->qp = seslm_qweight_pack(W->q, N, K, &W->qsum);
            if (!W->qp) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        }
        return SESLM_OK;
    }
    float *stacked = NULL;
    W->w = src[0].w;
    if (nsrc > 1) {
        if (!(stacked = malloc((size_t)N * K * sizeof *stacked))) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        for (int i = 0, n0 = 0; i < nsrc; n0 += src[i++].rows)
            memcpy(stacked + (size_t)n0 * K, src[i].w, (size_t)src[i].rows * K * sizeof *stacked);
        W->w = stacked;
        *own |= OWN_W;
    }
    if (prec != PREC_FP32) return weight_convert(W, prec, pack, own);
    if (pack) { // the packing backend reads only wp: keep no second copy
        W->wp = seslm_weight_pack32(W->w, N, K);
        if (stacked) {
            free(stacked);
            W->w = NULL;
            *own &= (unsigned char)~OWN_W;
        }
        if (!W->wp) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    return SESLM_OK;
}

/* Lays out the linear layers for the backend: Q, K and V stacked into one (3A, C) matrix so that one
 * product computes all three, and packed copies where the backend streams panels. */
static seslm_status encoder_prepare_weights(seslm_encoder *e) {
    const seslm_model *m = e->m;
    const int L = m->cfg.n_layers, C = m->cfg.hidden, pk = e->be->wants_packed;
    e->lin = calloc((size_t)L * 4, sizeof *e->lin);
    e->qkv_b = calloc((size_t)L, sizeof(float *));
    e->lin_own = calloc((size_t)L * 4, 1);
    if (!e->lin || !e->qkv_b || !e->lin_own) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    const int pr = e->precision;
    unsigned char *own = e->lin_own;
    seslm_status st = SESLM_OK;
    for (int l = 0; st == SESLM_OK && l < L; l++) {
        const int A = m->cfg.layers[l].n_heads * m->cfg.head_dim, F = m->cfg.layers[l].ffn_dim;
        const seslm_layer_weights *w = &m->lw[l];
        seslm_weight *W = e->lin + 4 * l;
        const weight_src qkv[3] = {{w->q_w, w->q_q, w->q_s, A, NULL, NULL},
                                   {w->k_w, w->k_q, w->k_s, A, NULL, NULL},
                                   {w->v_w, w->v_q, w->v_s, A, NULL, NULL}};
        const weight_src ao = {w->ao_w, w->ao_q, w->ao_s, A ? C : 0, NULL, NULL},
                         ff1 = {w->ff1_w, w->ff1_q, w->ff1_s, F, w->ff1_sv, w->ff1_si},
                         ff2 = {w->ff2_w, w->ff2_q, w->ff2_s, F ? C : 0, w->ff2_sv, w->ff2_si};
        unsigned char *ow = own + 4 * l;
        st = weight_build(&W[LIN_QKV], qkv, 3, C, pk, pr, &ow[LIN_QKV]);
        if (st == SESLM_OK) st = weight_build(&W[LIN_AO], &ao, 1, A, pk, pr, &ow[LIN_AO]);
        if (st == SESLM_OK) st = weight_build(&W[LIN_FF1], &ff1, 1, C, pk, pr, &ow[LIN_FF1]);
        if (st == SESLM_OK) st = weight_build(&W[LIN_FF2], &ff2, 1, F, pk, pr, &ow[LIN_FF2]);
        for (int i = 0; i < 4; i++) W[i].act_top1 = m->cfg.act_top1 && W[i].qscale != NULL;
        if (st == SESLM_OK && A) {
            if (!(e->qkv_b[l] = malloc(3 * (size_t)A * sizeof(float)))) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
            memcpy(e->qkv_b[l], w->q_b, (size_t)A * sizeof(float));
            memcpy(e->qkv_b[l] + A, w->k_b, (size_t)A * sizeof(float));
            memcpy(e->qkv_b[l] + 2 * A, w->v_b, (size_t)A * sizeof(float));
        }
    }
    return st;
}

// both products of layer l's FFN INT8 (packed), so FF1 can hand FF2 its input quantized
static int encoder_ffn_q8(const seslm_encoder *e, int l) {
    const seslm_weight *f1 = &e->lin[4 * l + LIN_FF1], *f2 = &e->lin[4 * l + LIN_FF2];
    return e->m->cfg.layers[l].ffn_dim > 0 && f1->qscale && f1->qp && f2->qscale && f2->qp && !f1->act_top1 &&
           !f2->act_top1;
}

seslm_status seslm_encoder_new(seslm_encoder **out, const seslm_model *m, const seslm_encoder_opts *opts) {
    *out = NULL;
    seslm_encoder_opts o = {.backend = "cpu", .n_threads = 0, .max_batch = 32};
    if (opts) o = *opts;
    if (o.max_batch <= 0 || o.max_batch > 4096)
        return seslm_fail(SESLM_ERR_ARG, "max_batch must be in 1..4096 (got %d)", o.max_batch);
    if (o.max_seq_len < 0 || o.max_seq_len == 1)
        return seslm_fail(SESLM_ERR_ARG, "max_seq_len must be 0 or >= 2 (got %d)", o.max_seq_len);
    const seslm_backend *be = seslm_backend_get(o.backend);
    if (!be && o.backend && (strcmp(o.backend, "cuda") == 0 || strcmp(o.backend, "cuda-fp16") == 0)) {
        const char *why = NULL;
        if (!seslm_cuda_plugin_get(&why)) // the CUDA backend library is not there (not built, not installed)
            return seslm_fail(SESLM_ERR_ARG, "backend '%s': %s", o.backend, why);
        return seslm_fail(SESLM_ERR_ARG, "backend '%s': no CUDA device visible", o.backend);
    }
    if (!be) return seslm_fail(SESLM_ERR_ARG, "unknown backend '%s' (known: cpu, cpu-ref, cpu-devsim, cuda, cuda-fp16)", o.backend);
    seslm_encoder *e = calloc(1, sizeof *e);
    if (!e) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    e->m = m;
    e->be = be;
    e->max_batch = o.max_batch;
    const char *prec = o.precision && *o.precision ? o.precision : m->cfg.precision[0] ? m->cfg.precision : "fp32";
    if (strcmp(prec, "fp32") == 0) e->precision = PREC_FP32;
    else if (strcmp(prec, "bf16") == 0) e->precision = PREC_BF16;
    else if (strcmp(prec, "int8") == 0) e->precision = PREC_INT8;
    else {
        free(e);
        return seslm_fail(SESLM_ERR_ARG, "unknown precision '%s' (known: fp32, bf16, int8)", prec);
    }
    if (e->precision == PREC_BF16 && be->dev_alloc) {
        free(e);
        return seslm_fail(SESLM_ERR_ARG, "precision bf16 is for the CPU backends (backend '%s'; cuda-fp16 is the "
                                         "GPU's reduced precision)", be->name);
    }
    const seslm_model_config *c = &m->cfg;
    e->max_seq = o.max_seq_len > 0 && o.max_seq_len < c->max_seq_len ? o.max_seq_len : c->max_seq_len;
    const int S = c->max_seq_len;
    if ((int64_t)o.max_batch * S > (1 << 24)) {
        seslm_encoder_free(e);
        return seslm_fail(SESLM_ERR_LIMIT, "workspace for %d x %d tokens exceeds the 16M-token limit; lower max_batch",
                          o.max_batch, S);
    }
    e->max_tokens = o.max_batch * S;
    int Amax = 0, Fmax = 0, Hmax = 0;
    for (int l = 0; l < c->n_layers; l++) {
        Hmax = c->layers[l].n_heads > Hmax ? c->layers[l].n_heads : Hmax;
        int A = c->layers[l].n_heads * c->head_dim;
        Amax = A > Amax ? A : Amax;
        Fmax = c->layers[l].ffn_dim > Fmax ? c->layers[l].ffn_dim : Fmax;
    }
    be->set_threads(o.n_threads);
    int nt = o.n_threads > 0 ? o.n_threads : 64; // scratch for as many threads as the pool may use (n_threads 0: all CPUs)
    e->scratch_floats = seslm_attention_scratch_floats(S, c->head_dim, nt);
    const size_t T = (size_t)e->max_tokens;
    const size_t Th = be->dev_alloc ? 1 : T; // device backends: the activations live on the device
    e->ids = malloc(T * sizeof(int32_t));
    e->tok = malloc(T * sizeof(int32_t));
    e->off = malloc((size_t)o.max_batch * sizeof(int));
    e->len = malloc((size_t)o.max_batch * sizeof(int));
    e->ones = malloc((size_t)o.max_batch * sizeof(int));
    // host pooling on a device backend needs the last activations back on the host
    const int host_pool = c->pooling != SESLM_POOL_MEAN && c->pooling != SESLM_POOL_CLS;
    e->x = malloc((host_pool ? T : Th) * c->hidden * sizeof(float));
    e->tmp = malloc(Th * c->hidden * sizeof(float));
    e->qkv = malloc(Th * (3 * (size_t)Amax + 1) * sizeof(float));
    e->ctx = malloc(Th * ((size_t)Amax + 1) * sizeof(float));
    e->ffn = malloc(Th * ((size_t)Fmax + 1) * sizeof(float));
    e->scratch = malloc((be->dev_alloc ? 1 : e->scratch_floats) * sizeof(float));
    e->attn_stats = malloc(((size_t)o.max_batch * Hmax * 2 + 1) * sizeof(float));
    e->fbuf = malloc((size_t)o.max_batch * c->hidden * sizeof(float));
    seslm_status st = SESLM_OK;
    if (!e->attn_stats || !e->fbuf || !e->ids || !e->tok || !e->off || !e->len || !e->ones || !e->x || !e->tmp || !e->qkv || !e->ctx || !e->ffn ||
        !e->scratch)
        st = seslm_fail(SESLM_ERR_NOMEM, "out of memory sizing the workspace for %d x %d tokens", o.max_batch, S);
    if (st == SESLM_OK) st = encoder_prepare_weights(e);
    if (st == SESLM_OK && !be->dev_alloc && be->add_layernorm_q8 && be->linear_q8in) {
        int any_q8 = 0; // x quantized once where layer norm makes it, when an INT8 product reads it
        for (int i = 0; i < 4 * c->n_layers; i++) // (top1 weights quantize their input themselves: backend.h)
            any_q8 |= e->lin[i].qscale != NULL && e->lin[i].qp != NULL && !e->lin[i].act_top1;
        if (any_q8) {
            e->ldqx = (c->hidden + 3) & ~3;
            e->qx = malloc(T * (size_t)e->ldqx + 64);
            e->qxs = malloc((T + 1) * sizeof(float));
            if (!e->qx || !e->qxs) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        }
        int ffn_q8 = 0; // both FFN products INT8: the first one's GELU output quantized where it is made
        for (int l = 0; l < c->n_layers; l++)
            ffn_q8 |= encoder_ffn_q8(e, l);
        if (st == SESLM_OK && ffn_q8 && be->linear_gelu_q8out) {
            e->ldqf = (Fmax + 3) & ~3;
            e->qf = malloc(T * (size_t)e->ldqf + 64);
            e->qfs = malloc((T + 1) * sizeof(float));
            if (!e->qf || !e->qfs) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        }
    }
    if (st == SESLM_OK && be->dev_alloc) {
        if (!(e->dev = calloc(1, sizeof *e->dev))) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        else st = encoder_device_init(e->dev, be, m, e->lin, e->qkv_b, e->max_tokens, o.max_batch, Amax, Fmax);
    }
    // the packed copies replace the mapped layer weights: let the kernel drop their resident pages
    // (a later reader faults them back in from the page cache)
    if (st == SESLM_OK && be->wants_packed) model_drop_resident_pages(m);
    if (st != SESLM_OK) {
        seslm_encoder_free(e);
        return st;
    }
    for (int b = 0; b < o.max_batch; b++) e->ones[b] = 1;
    if (c->default_prompt >= 0 && (st = seslm_encoder_set_prompt(e, c->prompts[c->default_prompt].text)) != SESLM_OK) {
        seslm_encoder_free(e);
        return st;
    }
    *out = e;
    return SESLM_OK;
}

void seslm_encoder_free(seslm_encoder *e) {
    if (!e) return;
    if (e->dev) encoder_device_free(e->dev);
    free(e->dev);
    if (e->lin)
        for (int i = 0; i < 4 * e->m->cfg.n_layers; i++) {
            const unsigned char own = e->lin_own ? e->lin_own[i] : 0; // the rest points into the model
            if (own & OWN_W) free((float *)e->lin[i].w);
            if (own & OWN_Q) free((int8_t *)e->lin[i].q), free((float *)e->lin[i].qscale);
            if (own & OWN_BW) free((uint16_t *)e->lin[i].bw);
            free(e->lin[i].bwp);
            free(e->lin[i].wp);
            free(e->lin[i].qp);
            free(e->lin[i].qsum);
            free(e->lin[i].sp);
        }
    if (e->qkv_b)
        for (int l = 0; l < e->m->cfg.n_layers; l++) free(e->qkv_b[l]);
    free(e->lin);
    free(e->lin_own);
    free(e->qkv_b);
    free(e->ids);
    free(e->tok);
    free(e->off);
    free(e->len);
    free(e->ones);
    free(e->x);
    free(e->tmp);
    free(e->qx);
    free(e->qxs);
    free(e->qf);
    free(e->qfs);
    free(e->qkv);
    free(e->ctx);
    free(e->ffn);
    free(e->scratch);
    free(e->attn_stats);
    free(e->fbuf);
    free(e->hx);
    free(e->mask_buf);
    free(e->head_mask);
    free(e->neuron_mask);
    free(e->prompt);
    free(e);
}

// ---- forward --------------------------------------------------------------------------------

// Broadcast a bias into every row: the output of a layer whose heads / neurons were all pruned.
static void rows_set_bias(float *y, const float *b, int M, int N) {
    for (int m = 0; m < M; m++) memcpy(y + (size_t)m * N, b, (size_t)N * sizeof(float));
}

// The product that reads x right after a layer norm: INT8 (packed) and the backend fuses the
// quantization into the norm? Then 1: add_layernorm_q8 / linear_q8in, else 0.
static int encoder_q8_next(const seslm_encoder *e, const seslm_weight *next) {
    return e->qx && next && next->qscale && next->qp && !next->act_top1;
}

static void encoder_ln(seslm_encoder *e, float *x, const float *r, const float *g, const float *b, int ntok, int C,
                       float eps, int q8) {
    if (q8) e->be->add_layernorm_q8(x, r, g, b, ntok, C, eps, e->qx, e->qxs, e->ldqx);
    else e->be->add_layernorm(x, r, g, b, ntok, C, eps);
}

// the first product of layer l (QKV; NULL when every head is pruned or there is no such layer)
static const seslm_weight *encoder_first_linear(const seslm_encoder *e, int l) {
    if (l >= e->m->cfg.n_layers || e->m->cfg.layers[l].n_heads == 0) return NULL;
    return &e->lin[4 * l + LIN_QKV];
}

/* One layer. q8in: x's rows are already quantized in e->qx (the last layer norm fused it). Returns whether
 * this layer's last norm quantized its output for the next layer's first product (its q8in). */
static int encoder_layer(seslm_encoder *e, int l, int ntok, int B, int q8in) {
    const seslm_model *m = e->m;
    const seslm_backend *be = e->be;
    const seslm_layer_weights *w = &m->lw[l];
    const int C = m->cfg.hidden, H = m->cfg.layers[l].n_heads, D = m->cfg.head_dim, A = H * D;
    // the tensors the ops read: host ones, or the device mirror's (device backends)
    encoder_device *dv = e->dev;
    float *x = dv ? dv->x : e->x, *qkv = dv ? dv->qkv : e->qkv, *ctx = dv ? dv->ctx : e->ctx;
    float *tmp = dv ? dv->tmp : e->tmp, *ffn = dv ? dv->ffn : e->ffn;
    const int *off = dv ? dv->off : e->off, *len = dv ? dv->len : e->len;
    const seslm_weight *lin = (dv ? dv->lin : e->lin) + 4 * l;
    const float *qkv_b = dv ? dv->qkv_b[l] : e->qkv_b[l];
    if (dv) w = &dv->lw[l];
    // device masks: same offsets in the device copy of the mask buffer
    const float *hmask = e->masked && e->head_mask[l] ? e->head_mask[l] : NULL;
    const float *nmask = e->masked && e->neuron_mask[l] ? e->neuron_mask[l] : NULL;
    if (dv && hmask) hmask = dv->mask + (hmask - e->mask_buf);
    if (dv && nmask) nmask = dv->mask + (nmask - e->mask_buf);
    const int F = m->cfg.layers[l].ffn_dim;
    const float eps = m->cfg.layer_norm_eps;
    seslm_layer_telemetry *T = e->tel ? &e->tel->layers[l] : NULL; // NULL: telemetry off
    int64_t t0 = T ? mono_ns() : 0;
    if (A > 0) {
        if (T) be->col_stats(x, ntok, C, T->in_sq_qkv, NULL, NULL);
        if (e->probe) e->probe(e->probe_ctx, l, SESLM_PROBE_QKV_IN, x, ntok, C);
        if (q8in) be->linear_q8in(qkv, e->qx, e->qxs, e->ldqx, &lin[LIN_QKV], qkv_b, ntok, 0); // (Ntok, 3A)
        else be->linear(qkv, x, &lin[LIN_QKV], qkv_b, ntok); // (Ntok, 3A)
        if (hmask && be->attention_masked) { // pruned heads skip their work on the device
            be->attention_masked(ctx, qkv, off, len, B, H, D, hmask);
        } else {
            be->attention(ctx, qkv, off, len, B, H, D, e->scratch, e->scratch_floats,
                          T ? e->attn_stats : NULL); // (Ntok, A)
            if (hmask) mask_columns(ctx, ntok, H, D, hmask);
        }
        if (T) {
            for (int b = 0; b < B; b++)
                for (int h = 0; h < H; h++) {
                    T->head_entropy[h] += e->attn_stats[2 * (b * H + h)];
                    T->head_max_weight[h] += e->attn_stats[2 * (b * H + h) + 1];
                }
            T->query_tokens += (uint64_t)ntok;
            be->head_norms(ctx, ntok, H, D, T->head_out_norm);
            be->col_stats(ctx, ntok, A, T->in_sq_attn_out, NULL, NULL);
        }
        if (e->probe) e->probe(e->probe_ctx, l, SESLM_PROBE_CTX, ctx, ntok, A);
        be->linear(tmp, ctx, &lin[LIN_AO], w->ao_b, ntok); // (Ntok, C)
    } else {
        if (be->fill_rows) be->fill_rows(tmp, w->ao_b, ntok, C);
        else rows_set_bias(tmp, w->ao_b, ntok, C);
    }
    const int q8ffn = !dv && F > 0 && encoder_q8_next(e, &lin[LIN_FF1]);
    // the GELU output quantized by FF1's tiles for FF2 (neuron masks rewrite it after GELU: not then)
    const int q8h = q8ffn && e->qf && !nmask && encoder_ffn_q8(e, l);
    encoder_ln(e, x, tmp, w->ln1_g, w->ln1_b, ntok, C, eps, q8ffn);
    if (F > 0) {
        if (T) be->col_stats(x, ntok, C, T->in_sq_ffn_in, NULL, NULL);
        if (e->probe) e->probe(e->probe_ctx, l, SESLM_PROBE_FFN_IN, x, ntok, C);
        if (q8h) { // GELU output quantized for FF2 as the tiles make it
            be->linear_gelu_q8out(ffn, e->qf, e->qfs, e->ldqf, e->qx, e->qxs, e->ldqx, &lin[LIN_FF1], w->ff1_b,
                                  ntok); // (Ntok, F)
        } else if (q8ffn) {
            be->linear_q8in(ffn, e->qx, e->qxs, e->ldqx, &lin[LIN_FF1], w->ff1_b, ntok, 1); // (Ntok, F)
        } else if (be->linear_gelu) { // bias and GELU in one pass over the activations
            be->linear_gelu(ffn, x, &lin[LIN_FF1], w->ff1_b, ntok);
        } else {
            be->linear(ffn, x, &lin[LIN_FF1], w->ff1_b, ntok); // (Ntok, F)
            be->gelu(ffn, (size_t)ntok * F);
        }
        if (nmask) {
            if (be->scale_columns) be->scale_columns(ffn, ntok, F, 1, nmask);
            else mask_columns(ffn, ntok, F, 1, nmask);
        }
        if (T) {
            be->col_stats(ffn, ntok, F, T->ffn_sq, T->ffn_abs, T->ffn_pos);
            T->ffn_tokens += (uint64_t)ntok;
        }
        if (e->probe) e->probe(e->probe_ctx, l, SESLM_PROBE_FFN_H, ffn, ntok, F);
        if (q8h) be->linear_q8in(tmp, e->qf, e->qfs, e->ldqf, &lin[LIN_FF2], w->ff2_b, ntok, 0); // (Ntok, C)
        else be->linear(tmp, ffn, &lin[LIN_FF2], w->ff2_b, ntok); // (Ntok, C)
    } else {
        if (be->fill_rows) be->fill_rows(tmp, w->ff2_b, ntok, C);
        else rows_set_bias(tmp, w->ff2_b, ntok, C);
    }
    const int q8next = !dv && encoder_q8_next(e, encoder_first_linear(e, l + 1));
    encoder_ln(e, x, tmp, w->ln2_g, w->ln2_b, ntok, C, eps, q8next);
    if (T) {
        T->exec_count++;
        T->exec_ns += mono_ns() - t0;
    }
    return q8next;
}

/* The forward pass on a device backend: ids / offsets / lengths uploaded, every op on device memory,
 * the pooled output downloaded (the one wait, which also reports any failure of the queued work).
 * Telemetry and calibration probes read host activations: CPU backends only. */
typedef struct {
    seslm_encoder *e;
    int n, ntok;
} device_pass;

// queues every op of one forward pass on the device (encoder_device_run may record it as a graph)
static void encoder_queue_device(void *ctx) {
    const device_pass *p = ctx;
    seslm_encoder *e = p->e;
    const seslm_model_config *c = &e->m->cfg;
    const seslm_backend *be = e->be;
    encoder_device *d = e->dev;
    be->embed(d->x, d->ids, d->off, d->len, p->n, &d->word, d->pos, d->type, c->hidden);
    be->add_layernorm(d->x, NULL, d->emb_ln_g, d->emb_ln_b, p->ntok, c->hidden, c->layer_norm_eps);
    for (int l = 0; l < c->n_layers; l++) encoder_layer(e, l, p->ntok, p->n, 0);
    be->pool(d->out, d->x, d->off, c->pooling == SESLM_POOL_MEAN ? d->len : d->ones, p->n, c->hidden, c->normalize);
}

// feat (n, k C) for the k > 0 last layers: block j of row b = layer L - k + j pooled, normalised, / sqrt(k)
static void encoder_feature_block(seslm_encoder *e, int n, int k, int j, const float *pooled, float *feat) {
    const int C = e->m->cfg.hidden;
    for (int b = 0; b < n; b++) {
        const float *p = pooled + (size_t)b * C;
        float *o = feat + (size_t)b * k * C + (size_t)j * C;
        double nrm = 0;
        for (int c = 0; c < C; c++) nrm += (double)p[c] * p[c];
        const double inv = 1.0 / (fmax(sqrt(nrm), 1e-12) * sqrt((double)k)); // torch's normalize, then 1 / sqrt(k)
        for (int c = 0; c < C; c++) o[c] = (float)(p[c] * inv);
    }
}

// the packed ids, offsets and lengths of a batch to the device
static seslm_status encoder_upload_batch(seslm_encoder *e, int n, int ntok) {
    const seslm_backend *be = e->be;
    encoder_device *d = e->dev;
    if (e->tel || e->probe)
        return seslm_fail(SESLM_ERR_ARG, "backend '%s': telemetry and calibration probes need a CPU backend", be->name);
    if (be->dev_upload(d->ids, e->ids, (size_t)ntok * sizeof(int32_t)) != 0 ||
        be->dev_upload(d->off, e->off, (size_t)n * sizeof(int)) != 0 ||
        be->dev_upload(d->len, e->len, (size_t)n * sizeof(int)) != 0)
        return seslm_fail(SESLM_ERR_INTERNAL, "%s", seslm_last_error());
    return SESLM_OK;
}

/* Features of k > 1 layers on a device backend (feat (n, k C)) and the embedding (out (n, C)): the pass is
 * queued layer by layer, not replayed as a graph, and each of the k - 1 earlier layers' outputs comes back to
 * the host (ntok x hidden floats; the download waits for the queued layers) to be pooled as the CPU path pools
 * it. Two more waits per batch than an embedding pass: the intent head's inputs, not the bulk embedding path. */
static seslm_status encoder_features_device(seslm_encoder *e, int n, int ntok, int k, float *out, float *feat) {
    const seslm_model_config *c = &e->m->cfg;
    const seslm_backend *be = e->be;
    encoder_device *d = e->dev;
    const int C = c->hidden, L = c->n_layers;
    seslm_status st = encoder_upload_batch(e, n, ntok);
    if (st != SESLM_OK) return st;
    if (!e->hx && !(e->hx = malloc((size_t)e->max_tokens * C * sizeof(float))))
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    const size_t TC = (size_t)ntok * C * sizeof(float);
    be->embed(d->x, d->ids, d->off, d->len, n, &d->word, d->pos, d->type, C);
    be->add_layernorm(d->x, NULL, d->emb_ln_g, d->emb_ln_b, ntok, C, c->layer_norm_eps);
    for (int l = 0; l < L; l++) {
        encoder_layer(e, l, ntok, n, 0);
        if (l >= L - k && l < L - 1) { // an earlier layer's output (Ntok, C), pooled on the host
            if (be->dev_download(e->hx, d->x, TC) != 0) return seslm_fail(SESLM_ERR_INTERNAL, "%s", seslm_last_error());
            seslm_pool_host(c->pooling, e->fbuf, e->hx, e->off, e->len, e->pool_skip, n, C, 0);
            encoder_feature_block(e, n, k, l - (L - k), e->fbuf, feat);
        }
    }
    if (encoder_host_pool(e)) {
        if (be->dev_download(e->hx, d->x, TC) != 0) return seslm_fail(SESLM_ERR_INTERNAL, "%s", seslm_last_error());
        seslm_pool_host(c->pooling, out, e->hx, e->off, e->len, e->pool_skip, n, C, c->normalize);
    } else {
        be->pool(d->out, d->x, d->off, c->pooling == SESLM_POOL_MEAN ? d->len : d->ones, n, C, c->normalize);
        if (be->dev_download(out, d->out, (size_t)n * C * sizeof(float)) != 0)
            return seslm_fail(SESLM_ERR_INTERNAL, "%s", seslm_last_error());
    }
    encoder_feature_block(e, n, k, k - 1, out, feat);
    return SESLM_OK;
}

static seslm_status encoder_forward_device(seslm_encoder *e, int n, int ntok, float *out) {
    const seslm_model_config *c = &e->m->cfg;
    const seslm_backend *be = e->be;
    encoder_device *d = e->dev;
    seslm_status ust = encoder_upload_batch(e, n, ntok);
    if (ust != SESLM_OK) return ust;
    device_pass p = {e, n, ntok};
    if (encoder_device_run(d, n, ntok, encoder_queue_device, &p) != SESLM_OK ||
        be->dev_download(out, d->out, (size_t)n * c->hidden * sizeof(float)) != 0)
        return seslm_fail(SESLM_ERR_INTERNAL, "%s", seslm_last_error());
    if (encoder_host_pool(e)) { // (the device pooled too; its result is replaced)
        if (be->dev_download(e->x, d->x, (size_t)ntok * c->hidden * sizeof(float)) != 0)
            return seslm_fail(SESLM_ERR_INTERNAL, "%s", seslm_last_error());
        seslm_pool_host(c->pooling, out, e->x, e->off, e->len, e->pool_skip, n, c->hidden, c->normalize);
    }
    return SESLM_OK;
}

// out (n, C): the embedding; feat (n, k C) (NULL: none): the features of seslm_encoder_features_texts, for
// which out may be e->fbuf
static seslm_status encoder_forward(seslm_encoder *e, const int32_t *const *ids, const int *lens, int n, float *out,
                                    int k, float *feat) {
    const seslm_model *m = e->m;
    const seslm_model_config *c = &m->cfg;
    if (n <= 0 || n > e->max_batch)
        return seslm_fail(SESLM_ERR_LIMIT, "batch of %d sequences; this encoder takes 1..%d", n, e->max_batch);
    int ntok = 0;
    for (int b = 0; b < n; b++) {
        if (lens[b] < 1 || lens[b] > e->max_seq)
            return seslm_fail(SESLM_ERR_LIMIT, "sequence %d has %d tokens; this encoder takes 1..%d", b, lens[b],
                              e->max_seq);
        for (int t = 0; t < lens[b]; t++)
            if (ids[b][t] < 0 || ids[b][t] >= c->vocab_size)
                return seslm_fail(SESLM_ERR_ARG, "sequence %d, position %d: token id %d is outside 0..%d", b, t,
                                  ids[b][t], c->vocab_size - 1);
        e->off[b] = ntok;
        e->len[b] = lens[b];
        memcpy(e->ids + ntok, ids[b], (size_t)lens[b] * sizeof(int32_t));
        ntok += lens[b];
    }
    const int C = c->hidden, L = c->n_layers;
    if (e->dev) {
        if (feat && k > 1) return encoder_features_device(e, n, ntok, k, out, feat);
        seslm_status st = encoder_forward_device(e, n, ntok, out);
        if (st == SESLM_OK && feat) encoder_feature_block(e, n, 1, 0, out, feat);
        return st;
    }
    const int64_t t0 = e->tel ? mono_ns() : 0;
    if (e->tel) tel_observe_tokens(e->tel, e->ids, e->off, e->len, n);
    e->be->embed(e->x, e->ids, e->off, e->len, n, &m->word, m->pos_emb, m->type_emb, C);
    int q8 = encoder_q8_next(e, encoder_first_linear(e, 0));
    encoder_ln(e, e->x, NULL, m->emb_ln_g, m->emb_ln_b, ntok, C, c->layer_norm_eps, q8);
    for (int l = 0; l < L; l++) {
        q8 = encoder_layer(e, l, ntok, n, q8);
        if (feat && l >= L - k && l < L - 1) { // an intermediate layer's output, pooled as the model pools
            seslm_pool_host(c->pooling, e->fbuf, e->x, e->off, e->len, e->pool_skip, n, C, 0);
            encoder_feature_block(e, n, k, l - (L - k), e->fbuf, feat);
        }
    }
    // [CLS] pooling is mean pooling over a length-1 window at each sequence's first row
    if (encoder_host_pool(e)) seslm_pool_host(c->pooling, out, e->x, e->off, e->len, e->pool_skip, n, C, c->normalize);
    else e->be->pool(out, e->x, e->off, c->pooling == SESLM_POOL_MEAN ? e->len : e->ones, n, C, c->normalize);
    if (feat) encoder_feature_block(e, n, k, k - 1, out, feat);
    if (e->tel) {
        tel_observe_embeddings(e->tel, out, n);
        tel_observe_batch(e->tel, mono_ns() - t0, n, ntok);
    }
    return SESLM_OK;
}

seslm_status seslm_encoder_forward_ids(seslm_encoder *e, const int32_t *const *ids, const int *lens, int n,
                                       float *out) {
    return encoder_forward(e, ids, lens, n, out, 0, NULL);
}

seslm_status seslm_encoder_features_ids(seslm_encoder *e, const int32_t *const *ids, const int *lens, int n, int k,
                                        float *out) {
    if (k < 1 || k > e->m->cfg.n_layers)
        return seslm_fail(SESLM_ERR_ARG, "features of %d layers; this model has %d", k, e->m->cfg.n_layers);
    return encoder_forward(e, ids, lens, n, e->fbuf, k, out);
}

// Tokenizes n texts (prompt prepended) into e->tok: rows[b], lens[b] (truncated to max_seq, final [SEP] kept).
static seslm_status encoder_tokenize(seslm_encoder *e, const char *const *texts, const size_t *text_lens, int n,
                                     const int32_t **rows, int *lens) {
    if (n <= 0 || n > e->max_batch)
        return seslm_fail(SESLM_ERR_LIMIT, "batch of %d texts; this encoder takes 1..%d", n, e->max_batch);
    const int S = e->m->cfg.max_seq_len;
    const size_t pl = e->prompt ? strlen(e->prompt) : 0;
    char *joined = NULL; // prompt + text (one buffer, grown as needed; no prompt: no allocation)
    size_t joined_cap = 0;
    for (int b = 0; b < n; b++) {
        int32_t *row = e->tok + (size_t)b * S;
        size_t tl = text_lens ? text_lens[b] : strlen(texts[b]);
        const char *t = texts[b];
        if (e->prompt) { // sentence-transformers prepends the prompt string, then tokenizes the whole
            if (pl + tl + 1 > joined_cap) {
                char *nj = realloc(joined, pl + tl + 1);
                if (!nj) {
                    free(joined);
                    return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
                }
                joined = nj, joined_cap = pl + tl + 1;
            }
            memcpy(joined, e->prompt, pl);
            memcpy(joined + pl, texts[b], tl);
            t = joined, tl += pl;
        }
        seslm_status st = seslm_tokenizer_encode(e->m->tok, t, tl, row, S, &lens[b]);
        if (st != SESLM_OK) {
            char why[512];
            snprintf(why, sizeof why, "%s", seslm_last_error());
            free(joined);
            return seslm_fail(st, "text %d: %s", b, why);
        }
        if (lens[b] > e->max_seq) { // truncate the word pieces, keep the final [SEP]
            row[e->max_seq - 1] = row[lens[b] - 1];
            lens[b] = e->max_seq;
        }
        rows[b] = row;
    }
    free(joined);
    return SESLM_OK;
}

seslm_status seslm_encoder_embed_texts(seslm_encoder *e, const char *const *texts, const size_t *text_lens, int n,
                                       float *out) {
    const int32_t *rows[4096];
    int lens[4096];
    seslm_status st = encoder_tokenize(e, texts, text_lens, n, rows, lens);
    return st == SESLM_OK ? encoder_forward(e, rows, lens, n, out, 0, NULL) : st;
}

seslm_status seslm_encoder_features_texts(seslm_encoder *e, const char *const *texts, const size_t *text_lens, int n,
                                          int k, float *out) {
    if (k < 1 || k > e->m->cfg.n_layers) // (before tokenizing)
        return seslm_fail(SESLM_ERR_ARG, "features of %d layers; this model has %d", k, e->m->cfg.n_layers);
    const int32_t *rows[4096];
    int lens[4096];
    seslm_status st = encoder_tokenize(e, texts, text_lens, n, rows, lens);
    return st == SESLM_OK ? seslm_encoder_features_ids(e, rows, lens, n, k, out) : st;
}
