/* llm_distill.c — end-to-end distillation of a decoder student against its parent (llm_distill.h).
 *
 * Shapes: C = n_embd, H query heads and Hk KV heads of D (A = H D, KV = Hk D, G = H / Hk), F = n_ff; a batch is
 * S sequences packed into M rows (sequence s at rows off[s] .. off[s] + len[s] - 1, positions 0 .. len[s] - 1).
 * The forward pass mirrors runtime/decoder/llama.c (ggml's rmsnorm, rope on pairs (2i, 2i+1), causal softmax
 * attention with KV head h / G, SwiGLU) in F32 without activation quantization; it keeps every activation for
 * the backward pass. */
#include "llm_distill.h"
#include "util.h"

#include "decoder.h"
#include "gguf.h"
#include "llm_answer_cache.h"
#include "qblock.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
static int omp_threads(void) { return omp_get_max_threads(); }
static int omp_thread(void) { return omp_get_thread_num(); }
#else
static int omp_threads(void) { return 1; }
static int omp_thread(void) { return 0; }
#endif

/* splitmix64: batch order and the gradient check's probes */
static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void seslm_llm_distill_opts_default(seslm_llm_distill_opts *o) {
    memset(o, 0, sizeof *o);
    o->batch_tokens = 1024;
    o->seq = 0;            // by whether there are prompts (below)
    o->answer_tokens = -1; // the same
    o->lr = 5e-5f;
    o->ce_weight = 0.5f;
    o->text_share = -1.0f; // the batches take sequences as they come
    o->seed = 1;
}

// ---- the student's trainable weights ----------------------------------------------------------------------

enum { T_ANORM, T_FNORM, T_Q, T_K, T_V, T_O, T_BO, T_G, T_U, T_D, T_BD, T_N };
static const char *const TNAME[T_N] = {"attn_norm.weight", "ffn_norm.weight", "attn_q.weight",    "attn_k.weight",
                                       "attn_v.weight",    "attn_output.weight", "attn_output.bias", "ffn_gate.weight",
                                       "ffn_up.weight",    "ffn_down.weight",    "ffn_down.bias"};

typedef struct {
    int L, C, H, Hk, D, A, KV, F, V;
    float eps, rope_base;
    size_t off[T_N];   // offsets of one layer's tensors in its block
    size_t n_rows[T_N], n_cols[T_N];
    size_t per_layer, n_params;
    float *p;          // (L, per_layer) parameters
    const uint8_t *embd; // token table as stored, its type and row bytes
    int embd_type;
    size_t embd_row;
    float *onorm;      // (C) the student's output norm (frozen)
    // the KL loss: the student's and the parent's output matrices (V, C), F32 (frozen; NULL: hidden-state loss)
    float *out_s, *out_p;
} tmodel;

static float *W(const tmodel *m, const float *base, int l, int t) { return (float *)base + (size_t)l * m->per_layer + m->off[t]; }

static void layout(tmodel *m) {
    const size_t C = m->C, A = m->A, KV = m->KV, F = m->F;
    const size_t rows[T_N] = {1, 1, A, KV, KV, C, 1, F, F, C, 1}, cols[T_N] = {C, C, C, C, C, A, C, C, C, F, C};
    size_t o = 0;
    for (int t = 0; t < T_N; t++) m->off[t] = o, m->n_rows[t] = rows[t], m->n_cols[t] = cols[t], o += rows[t] * cols[t];
    m->per_layer = o;
    m->n_params = o * (size_t)m->L;
}

static seslm_status model_load(tmodel *m, const gguf_file *f, const seslm_llm_config *cf, const char *path) {
    memset(m, 0, sizeof *m);
    m->L = cf->n_layer, m->C = cf->n_embd, m->H = cf->n_head, m->Hk = cf->n_head_kv, m->D = cf->head_dim;
    m->A = m->H * m->D, m->KV = m->Hk * m->D, m->F = cf->n_ff, m->V = cf->n_vocab;
    m->eps = cf->rms_eps, m->rope_base = cf->rope_base;
    layout(m);
    const gguf_tensor *te = gguf_find_tensor(f, "token_embd.weight"), *on = gguf_find_tensor(f, "output_norm.weight");
    if (!te || !on || on->type != QB_F32) return seslm_fail(SESLM_ERR_FORMAT, "%s: token_embd / output_norm missing", path);
    m->embd = te->data, m->embd_type = te->type, m->embd_row = qb_row_bytes(te->type, m->C);
    m->p = calloc(m->n_params, sizeof *m->p);
    m->onorm = malloc((size_t)m->C * sizeof *m->onorm);
    if (!m->p || !m->onorm) return seslm_fail(SESLM_ERR_NOMEM, "out of memory for %zu parameters", m->n_params);
    memcpy(m->onorm, on->data, (size_t)m->C * sizeof *m->onorm);
    for (int l = 0; l < m->L; l++)
        for (int t = 0; t < T_N; t++) {
            char n[96];
            snprintf(n, sizeof n, "blk.%d.%s", l, TNAME[t]);
            const gguf_tensor *g = gguf_find_tensor(f, n);
            float *dst = W(m, m->p, l, t);
            if (!g) {
                if (t == T_BO || t == T_BD) continue; // optional biases start at zero
                return seslm_fail(SESLM_ERR_FORMAT, "%s: tensor '%s' is missing", path, n);
            }
            const int64_t want0 = (int64_t)m->n_cols[t], want1 = (int64_t)m->n_rows[t];
            if (g->ne[0] != want0 || (m->n_rows[t] > 1 && g->ne[1] != want1))
                return seslm_fail(SESLM_ERR_SHAPE, "%s: tensor '%s' has an unexpected shape", path, n);
            const size_t rb = qb_row_bytes(g->type, want0);
            if (!rb) return seslm_fail(SESLM_ERR_FORMAT, "%s: tensor '%s' has a type this cannot read", path, n);
            for (size_t r = 0; r < m->n_rows[t]; r++)
                qb_dequantize_row(g->type, g->data + r * rb, dst + r * m->n_cols[t], (int)want0);
        }
    return SESLM_OK;
}

// ---- batches ----------------------------------------------------------------------------------------------

typedef struct {
    int S, M;
    int *off, *len;
    int32_t *ids; // (M)
    float *tgt;   // (M, C) the parent's normed final hidden states
} batch;

// activations of one layer for the backward pass
typedef struct {
    float *x0, *h1, *q, *k, *v, *a, *x1, *h2, *g, *u, *s; // (M, C) (M, C) (M, A) (M, KV) (M, KV) (M, A) (M, C) x2 (M, F) x3
    float *r1, *r2;                                        // (M) rmsnorm scales
    float *p;                                              // attention probabilities: per (s, h) a len x len block
} acts;

typedef struct {
    tmodel *m;
    int cap_M;
    size_t cap_p;
    acts *act;     // (L)
    float *x;      // (M, C) stream
    float *xl, *rl, *y; // final stream, its scale, normed output
    float *ls, *lp;     // (M, V) with the KL loss: the student's softmax, the parent's
    float ce;           // weight of the cross-entropy on the text's next tokens in the loss (KL: 1 - ce)
    double nll;         // the last forward pass: the student's summed -log q(next token), and how many
    long long n_nll;
    // backward scratch
    float *dx, *dx1, *dh, *da, *dq, *dk, *dv, *dg, *du, *ds, *dp; // dp: dp_stride floats per thread
    size_t dp_stride;
} work;

static void work_free(work *w) {
    if (!w->act) return;
    for (int l = 0; l < w->m->L; l++) {
        acts *a = &w->act[l];
        float *const ps[] = {a->x0, a->h1, a->q, a->k, a->v, a->a, a->x1, a->h2, a->g, a->u, a->s, a->r1, a->r2, a->p};
        for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) free(ps[i]);
    }
    free(w->act);
    free(w->ls), free(w->lp);
    float *const bs[] = {w->x, w->xl, w->rl, w->y, w->dx, w->dx1, w->dh, w->da, w->dq, w->dk, w->dv, w->dg, w->du, w->ds, w->dp};
    for (size_t i = 0; i < sizeof bs / sizeof bs[0]; i++) free(bs[i]);
    memset(w, 0, sizeof *w);
}

static int work_init(work *w, tmodel *m, int cap_M, int seq) {
    memset(w, 0, sizeof *w);
    w->m = m, w->cap_M = cap_M;
    const size_t M = (size_t)cap_M, C = m->C, A = m->A, KV = m->KV, F = m->F;
    // attention probabilities: at most (cap_M / 1 sequences) ... bounded by M * seq per head
    w->cap_p = M * (size_t)seq * (size_t)m->H;
    w->act = calloc((size_t)m->L, sizeof *w->act);
    if (!w->act) return -1;
    int bad = 0;
#define AL(p, n) bad |= !((p) = malloc((n) * sizeof(float)))
    for (int l = 0; l < m->L; l++) {
        acts *a = &w->act[l];
        AL(a->x0, M * C), AL(a->h1, M * C), AL(a->q, M * A), AL(a->k, M * KV), AL(a->v, M * KV), AL(a->a, M * A);
        AL(a->x1, M * C), AL(a->h2, M * C), AL(a->g, M * F), AL(a->u, M * F), AL(a->s, M * F), AL(a->r1, M), AL(a->r2, M);
        AL(a->p, w->cap_p);
    }
    AL(w->x, M * C), AL(w->xl, M * C), AL(w->rl, M), AL(w->y, M * C), AL(w->dx, M * C), AL(w->dx1, M * C), AL(w->dh, M * C);
    AL(w->da, M * A), AL(w->dq, M * A), AL(w->dk, M * KV), AL(w->dv, M * KV), AL(w->dg, M * F), AL(w->du, M * F);
    w->dp_stride = (size_t)seq;
    AL(w->ds, M * F), AL(w->dp, (size_t)seq * omp_threads());
    if (m->out_s) AL(w->ls, M * (size_t)m->V), AL(w->lp, M * (size_t)m->V);
#undef AL
    return bad ? -1 : 0;
}

// ---- forward ----------------------------------------------------------------------------------------------

// y = x / sqrt(mean(x^2) + eps) * w; returns the scale (squares summed in double, as ggml)
static float rms_fwd(float *y, const float *x, const float *w, int n, float eps) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += (double)(x[i] * x[i]);
    const float r = 1.0f / sqrtf((float)(s / n) + eps);
    for (int i = 0; i < n; i++) y[i] = x[i] * r * w[i];
    return r;
}

// dx = r (w dy) - x r^3 sum(w dy x) / n; dw += dy x r (dw may be NULL)
static void rms_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w, float r, int n) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += (double)w[i] * dy[i] * x[i];
    const float k = (float)(s / n) * r * r * r;
    for (int i = 0; i < n; i++) {
        dx[i] = r * w[i] * dy[i] - x[i] * k;
        if (dw) dw[i] += dy[i] * x[i] * r;
    }
}

// rotation of pairs (2i, 2i+1) by pos * base^(-2i/D); inverse = the rotation by -angle (the backward pass)
static void rope(float *v, int D, int pos, float base, float sign) {
    float theta_scale = powf(base, -2.0f / (float)D), theta = (float)pos;
    for (int i = 0; i < D; i += 2) {
        const float cs = cosf(theta), sn = sign * sinf(theta), a = v[i], b = v[i + 1];
        v[i] = a * cs - b * sn;
        v[i + 1] = a * sn + b * cs;
        theta *= theta_scale;
    }
}

// y (M, N) = x (M, K) W^T (+ b)
static void linear(float *y, const float *x, const float *w, const float *b, int M, int N, int K) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x, K, w, K, 0.0f, y, N);
    if (b)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) y[(size_t)i * N + j] += b[j];
}

// dx (M, K) = (or +=) dy (M, N) W; dW (N, K) += dy^T x; db (N) += column sums of dy
static void linear_bwd(float *dx, int accumulate, float *dw, float *db, const float *dy, const float *x, const float *w, int M,
                       int N, int K) {
    if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1.0f, dy, N, w, K, accumulate ? 1.0f : 0.0f, dx, K);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1.0f, dy, N, x, K, 1.0f, dw, K);
    if (db)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) db[j] += dy[(size_t)i * N + j];
}

// offset of the probability block of (sequence s, head h): blocks of len x len, sequences in order
static size_t pblock(const batch *b, const tmodel *m, int s, int h) {
    size_t o = 0;
    for (int t = 0; t < s; t++) o += (size_t)b->len[t] * b->len[t] * m->H;
    return o + (size_t)h * b->len[s] * b->len[s];
}

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Forward of the batch; returns the loss: with the output matrices, the mean KL divergence of the student's
 * next-token distribution from the parent's (whose logits are b->tgt times the parent's output matrix); else the
 * mean squared error per element of the normed final hidden states against b->tgt. */
static double forward(work *w, const float *P, const batch *b) {
    tmodel *m = w->m;
    const int M = b->M, C = m->C, A = m->A, KV = m->KV, F = m->F, D = m->D, G = m->H / m->Hk;
    const float scale = 1.0f / sqrtf((float)D);
    for (int i = 0; i < M; i++) qb_dequantize_row(m->embd_type, m->embd + (size_t)b->ids[i] * m->embd_row, w->x + (size_t)i * C, C);
    for (int l = 0; l < m->L; l++) {
        acts *a = &w->act[l];
        memcpy(a->x0, w->x, (size_t)M * C * sizeof(float));
        for (int i = 0; i < M; i++) a->r1[i] = rms_fwd(a->h1 + (size_t)i * C, w->x + (size_t)i * C, W(m, P, l, T_ANORM), C, m->eps);
        linear(a->q, a->h1, W(m, P, l, T_Q), NULL, M, A, C);
        linear(a->k, a->h1, W(m, P, l, T_K), NULL, M, KV, C);
        linear(a->v, a->h1, W(m, P, l, T_V), NULL, M, KV, C);
        for (int s = 0; s < b->S; s++)
            for (int t = 0; t < b->len[s]; t++) {
                const size_t r = (size_t)b->off[s] + t;
                for (int h = 0; h < m->H; h++) rope(a->q + r * A + (size_t)h * D, D, t, m->rope_base, 1.0f);
                for (int h = 0; h < m->Hk; h++) rope(a->k + r * KV + (size_t)h * D, D, t, m->rope_base, 1.0f);
            }
        // causal attention per sequence and head: the pairs are independent (each writes its own probability block
        // and its own head's columns of a), so they run in parallel (served prompts of ~256 tokens made these
        // single-threaded loops the larger part of a step)
#pragma omp parallel for collapse(2) schedule(dynamic)
        for (int s = 0; s < b->S; s++)
            for (int h = 0; h < m->H; h++) {
                const int n = b->len[s], o = b->off[s], g = h / G;
                float *pb = a->p + pblock(b, m, s, h);
                for (int i = 0; i < n; i++) {
                    const float *q = a->q + (size_t)(o + i) * A + (size_t)h * D;
                    float *pr = pb + (size_t)i * n, mx = -INFINITY;
                    for (int j = 0; j <= i; j++) {
                        const float *k = a->k + (size_t)(o + j) * KV + (size_t)g * D;
                        float d = 0.0f;
                        for (int e = 0; e < D; e++) d += q[e] * k[e];
                        pr[j] = d * scale;
                        mx = fmaxf(mx, pr[j]);
                    }
                    double sum = 0.0;
                    for (int j = 0; j <= i; j++) pr[j] = expf(pr[j] - mx), sum += pr[j];
                    const float inv = (float)(1.0 / sum);
                    for (int j = 0; j <= i; j++) pr[j] *= inv;
                    for (int j = i + 1; j < n; j++) pr[j] = 0.0f;
                    float *out = a->a + (size_t)(o + i) * A + (size_t)h * D;
                    for (int e = 0; e < D; e++) out[e] = 0.0f;
                    for (int j = 0; j <= i; j++) {
                        const float *v = a->v + (size_t)(o + j) * KV + (size_t)g * D;
                        for (int e = 0; e < D; e++) out[e] += pr[j] * v[e];
                    }
                }
            }
        linear(w->dh, a->a, W(m, P, l, T_O), W(m, P, l, T_BO), M, C, A); // (dh as scratch)
        for (size_t j = 0; j < (size_t)M * C; j++) w->x[j] += w->dh[j];
        memcpy(a->x1, w->x, (size_t)M * C * sizeof(float));
        for (int i = 0; i < M; i++) a->r2[i] = rms_fwd(a->h2 + (size_t)i * C, w->x + (size_t)i * C, W(m, P, l, T_FNORM), C, m->eps);
        linear(a->g, a->h2, W(m, P, l, T_G), NULL, M, F, C);
        linear(a->u, a->h2, W(m, P, l, T_U), NULL, M, F, C);
        for (size_t j = 0; j < (size_t)M * F; j++) a->s[j] = a->g[j] * sigmoidf(a->g[j]) * a->u[j];
        linear(w->dh, a->s, W(m, P, l, T_D), W(m, P, l, T_BD), M, C, F);
        for (size_t j = 0; j < (size_t)M * C; j++) w->x[j] += w->dh[j];
    }
    memcpy(w->xl, w->x, (size_t)M * C * sizeof(float));
    double loss = 0.0;
    for (int i = 0; i < M; i++) w->rl[i] = rms_fwd(w->y + (size_t)i * C, w->xl + (size_t)i * C, m->onorm, C, m->eps);
    if (m->out_s) { // KL(parent || student) of the next-token distributions, mean over tokens
        const int V = m->V;
        linear(w->ls, w->y, m->out_s, NULL, M, V, C);
        linear(w->lp, b->tgt, m->out_p, NULL, M, V, C);
        w->nll = 0.0, w->n_nll = 0;
        for (int s2 = 0; s2 < b->S; s2++)
            for (int t = 0; t < b->len[s2]; t++) {
                const int i = b->off[s2] + t, y = t + 1 < b->len[s2] ? b->ids[i + 1] : -1; // the next token, if any
                float *q = w->ls + (size_t)i * V, *pp = w->lp + (size_t)i * V;
                float mq = q[0], mp = pp[0];
                for (int v = 1; v < V; v++) mq = fmaxf(mq, q[v]), mp = fmaxf(mp, pp[v]);
                double zq = 0.0, zp = 0.0;
                for (int v = 0; v < V; v++) zq += exp((double)q[v] - mq), zp += exp((double)pp[v] - mp);
                const double lzq = log(zq) + mq, lzp = log(zp) + mp;
                double kl = 0.0;
                if (y >= 0) w->nll -= (double)q[y] - lzq, w->n_nll++;
                for (int v = 0; v < V; v++) {
                    const double lq = (double)q[v] - lzq, lpv = (double)pp[v] - lzp, pv = exp(lpv);
                    kl += pv * (lpv - lq);
                    q[v] = (float)exp(lq), pp[v] = (float)pv; // kept for the backward pass
                }
                loss += (1.0 - w->ce) * kl + (y >= 0 ? w->ce * -log(fmax((double)q[y], 1e-30)) : 0.0);
            }
        return loss / M;
    }
    for (int i = 0; i < M; i++)
        for (int c = 0; c < C; c++) {
            const double e = (double)w->y[(size_t)i * C + c] - b->tgt[(size_t)i * C + c];
            loss += e * e;
        }
    return loss / ((double)M * C);
}

/* Gradients of the loss of the last forward pass, ACCUMULATED into Gr (the parameters' layout). */
static void backward(work *w, const float *P, float *Gr, const batch *b) {
    tmodel *m = w->m;
    const int M = b->M, C = m->C, A = m->A, KV = m->KV, F = m->F, D = m->D, G = m->H / m->Hk;
    const float scale = 1.0f / sqrtf((float)D), k2 = 2.0f / ((float)M * (float)C);
    if (m->out_s) { // d loss / d logits = ((1 - ce) (q - p) + ce (q - onehot(next))) / M, then through the output matrix
        const int V = m->V;
        const float a = w->ce, inv = 1.0f / (float)M;
        for (int s2 = 0; s2 < b->S; s2++)
            for (int t = 0; t < b->len[s2]; t++) {
                const int i = b->off[s2] + t, has_next = t + 1 < b->len[s2];
                float *q = w->ls + (size_t)i * V;
                const float *pp = w->lp + (size_t)i * V;
                for (int v = 0; v < V; v++) q[v] = ((1.0f - a) * (q[v] - pp[v]) + (has_next ? a * q[v] : 0.0f)) * inv;
                if (has_next) q[b->ids[i + 1]] -= a * inv;
            }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, C, m->V, 1.0f, w->ls, m->V, m->out_s, C, 0.0f, w->dh, C);
    } else
        for (int i = 0; i < M; i++)
            for (int c = 0; c < C; c++)
                w->dh[(size_t)i * C + c] = k2 * (w->y[(size_t)i * C + c] - b->tgt[(size_t)i * C + c]);
    for (int i = 0; i < M; i++) // loss -> normed output -> final stream (output norm frozen)
        rms_bwd(w->dx + (size_t)i * C, NULL, w->dh + (size_t)i * C, w->xl + (size_t)i * C, m->onorm, w->rl[i], C);
    for (int l = m->L - 1; l >= 0; l--) {
        acts *a = &w->act[l];
        // FFN: x_out = x1 + s Wd^T + bd
        linear_bwd(w->ds, 0, W(m, Gr, l, T_D), W(m, Gr, l, T_BD), w->dx, a->s, W(m, P, l, T_D), M, C, F);
        for (size_t j = 0; j < (size_t)M * F; j++) {
            const float g = a->g[j], sg = sigmoidf(g);
            w->du[j] = w->ds[j] * g * sg;
            w->dg[j] = w->ds[j] * a->u[j] * sg * (1.0f + g * (1.0f - sg));
        }
        linear_bwd(w->dh, 0, W(m, Gr, l, T_G), NULL, w->dg, a->h2, W(m, P, l, T_G), M, F, C);
        linear_bwd(w->dh, 1, W(m, Gr, l, T_U), NULL, w->du, a->h2, W(m, P, l, T_U), M, F, C);
        for (int i = 0; i < M; i++) {
            float *d1 = w->dx1 + (size_t)i * C;
            rms_bwd(d1, W(m, Gr, l, T_FNORM), w->dh + (size_t)i * C, a->x1 + (size_t)i * C, W(m, P, l, T_FNORM), a->r2[i], C);
            for (int c = 0; c < C; c++) d1[c] += w->dx[(size_t)i * C + c];
        }
        // attention output: x1 = x0 + a Wo^T + bo
        linear_bwd(w->da, 0, W(m, Gr, l, T_O), W(m, Gr, l, T_BO), w->dx1, a->a, W(m, P, l, T_O), M, C, A);
        memset(w->dq, 0, (size_t)M * A * sizeof(float));
        memset(w->dk, 0, (size_t)M * KV * sizeof(float));
        memset(w->dv, 0, (size_t)M * KV * sizeof(float));
        // in parallel over (sequence, KV group): the heads of a group add into the same dk / dv rows, so one thread
        // takes them all, in head order (the sums are the same as single-threaded)
#pragma omp parallel for collapse(2) schedule(dynamic)
        for (int s = 0; s < b->S; s++)
            for (int g = 0; g < m->Hk; g++)
                for (int h = g * G; h < (g + 1) * G; h++) {
                    const int n = b->len[s], o = b->off[s];
                    const float *pb = a->p + pblock(b, m, s, h);
                    float *dp = w->dp + (size_t)omp_thread() * w->dp_stride;
                    for (int i = 0; i < n; i++) {
                        const float *pr = pb + (size_t)i * n, *dout = w->da + (size_t)(o + i) * A + (size_t)h * D;
                        const float *q = a->q + (size_t)(o + i) * A + (size_t)h * D;
                        float *dq = w->dq + (size_t)(o + i) * A + (size_t)h * D;
                        double dot = 0.0;
                        for (int j = 0; j <= i; j++) {
                            const float *v = a->v + (size_t)(o + j) * KV + (size_t)g * D;
                            float *dv = w->dv + (size_t)(o + j) * KV + (size_t)g * D;
                            float d = 0.0f;
                            for (int e = 0; e < D; e++) d += dout[e] * v[e], dv[e] += pr[j] * dout[e];
                            dp[j] = d;
                            dot += (double)pr[j] * d;
                        }
                        for (int j = 0; j <= i; j++) {
                            const float ds = pr[j] * (dp[j] - (float)dot) * scale;
                            const float *k = a->k + (size_t)(o + j) * KV + (size_t)g * D;
                            float *dk = w->dk + (size_t)(o + j) * KV + (size_t)g * D;
                            for (int e = 0; e < D; e++) dq[e] += ds * k[e], dk[e] += ds * q[e];
                        }
                    }
                }
        for (int s = 0; s < b->S; s++) // back through the rotation (q, k were stored rotated)
            for (int t = 0; t < b->len[s]; t++) {
                const size_t r = (size_t)b->off[s] + t;
                for (int h = 0; h < m->H; h++) rope(w->dq + r * A + (size_t)h * D, D, t, m->rope_base, -1.0f);
                for (int h = 0; h < m->Hk; h++) rope(w->dk + r * KV + (size_t)h * D, D, t, m->rope_base, -1.0f);
            }
        linear_bwd(w->dh, 0, W(m, Gr, l, T_Q), NULL, w->dq, a->h1, W(m, P, l, T_Q), M, A, C);
        linear_bwd(w->dh, 1, W(m, Gr, l, T_K), NULL, w->dk, a->h1, W(m, P, l, T_K), M, KV, C);
        linear_bwd(w->dh, 1, W(m, Gr, l, T_V), NULL, w->dv, a->h1, W(m, P, l, T_V), M, KV, C);
        for (int i = 0; i < M; i++) {
            float *d0 = w->dx + (size_t)i * C; // overwritten: dx of this layer's input
            float tmp[8192];
            float *t = C <= 8192 ? tmp : NULL;
            if (!t) continue; // C > 8192: not a decoder this runs on (checked at the start)
            rms_bwd(t, W(m, Gr, l, T_ANORM), w->dh + (size_t)i * C, a->x0 + (size_t)i * C, W(m, P, l, T_ANORM), a->r1[i], C);
            for (int c = 0; c < C; c++) d0[c] = w->dx1[(size_t)i * C + c] + t[c];
        }
    }
}

// ---- data -------------------------------------------------------------------------------------------------

typedef struct {
    int n;         // sequences
    int *start;    // (n) first row in ids / tgt
    int *len;      // (n)
    int32_t *ids;  // all rows
    float *tgt;    // (rows, C)
    unsigned char *prompt; // (n) 1: a served chat prompt with the parent's answer, 0: plain text
    long long rows;
} seqset;

static void seqset_free(seqset *q) {
    free(q->start), free(q->len), free(q->ids), free(q->tgt), free(q->prompt);
    memset(q, 0, sizeof *q);
}

// the parent's final stream, captured after its last layer
typedef struct {
    int last;
    float *dst;
    int C;
} cap_last;

static void cap_fn(void *user, int layer, int what, const float *x, int M, int K) {
    cap_last *c = user;
    if (layer == c->last && what == SESLM_LLM_CAPTURE_OUT && K == c->C) memcpy(c->dst, x, (size_t)M * K * sizeof(float));
}

/* Tokenizes the documents ([start] + tokens, cut into sequences of at most seq) and computes the parent's targets:
 * rmsnorm(x_last) * parent's output norm, per row. */
/* The text the chat template adds to open the assistant's turn ("<|im_start|>assistant\n" for ChatML): a served chat
 * prompt ends with it. malloc'd; NULL when the model has no template (or out of memory). */
static char *generation_prompt(const seslm_llm *m) {
    seslm_chat_msg msg = {"user", "x"};
    char *with = seslm_chat_format(m, &msg, 1, 1), *without = seslm_chat_format(m, &msg, 1, 0), *g = NULL;
    if (with && without && strlen(with) > strlen(without) && strncmp(with, without, strlen(without)) == 0)
        g = strdup(with + strlen(without));
    free(with), free(without);
    return g;
}

static int ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), k = strlen(tail);
    return k && n >= k && memcmp(s + n - k, tail, k) == 0;
}

/* is_prompt (may be NULL): per document, 1 for a served chat prompt (special tokens, \n for newlines, answered)
 * among plain text documents (special 0). */
static seslm_status seqset_build(seqset *q, const seslm_llm *parent, const float *p_onorm, const char *const *docs,
                                 const unsigned char *is_prompt, const int *pick, int n_pick, int seq, int special,
                                 int answer_tokens, seslm_llm_answer_cache *cache, int verbose) {
    memset(q, 0, sizeof *q);
    const seslm_llm_config *cf = seslm_llm_cfg(parent);
    const bpe_tokenizer *tok = seslm_llm_tokenizer(parent);
    const int32_t start = bpe_doc_start(tok);
    if (start < 0) return seslm_fail(SESLM_ERR_FORMAT, "the tokenizer has neither a BOS nor an EOS token to start from");
    // with special tokens, only the documents that are served chat prompts (they end by opening the assistant's turn)
    // get the parent's answer; the others (text started with <|endoftext|> in the file) are scored as they are
    char *gen_prompt = (special || is_prompt) && answer_tokens > 0 ? generation_prompt(parent) : NULL;
    const double t0 = util_now_s();
    long long cap_rows = 0;
    int cap_n = 0;
    seslm_status st = SESLM_OK;
    for (int d = 0; d < n_pick && !st; d++) {
        int32_t *ids = NULL;
        int n = 0;
        char *doc = strdup(docs[pick[d]]);
        if (!doc) {
            st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
            break;
        }
        const int sp = special || (is_prompt && is_prompt[pick[d]]); // this document holds special tokens
        if (sp) seslm_prompt_unescape(doc);
        const int answered = answer_tokens > 0 && (!sp || !gen_prompt || ends_with(doc, gen_prompt)) &&
                             (!is_prompt || is_prompt[pick[d]]);
        st = bpe_encode(tok, doc, strlen(doc), sp, &ids, &n);
        free(doc);
        if (st != SESLM_OK) break;
        if (answered && n > 0) { // the parent's answer follows the prompt (as it is served: no start token
            const int pre = sp ? 0 : 1;       //  before a chat prompt)
            int32_t *with = malloc((size_t)(n + 1) * sizeof *with);
            if (!with) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
            else {
                with[0] = start;
                memcpy(with + pre, ids, (size_t)n * sizeof *ids);
                int nw = n + pre;
                st = seslm_llm_answer_cache_greedy(cache, parent, &with, &nw, answer_tokens);
                // the parent answers each prompt (~1 s each on 2 cores): progress every 25 documents, with an estimate
                if (verbose && (d + 1) % 25 == 0) {
                    const double el = util_now_s() - t0;
                    fprintf(stderr, "seslm distill-decoder: the parent's answers: %d of %d documents (%.0f s, about %.0f s left)\n",
                            d + 1, n_pick, el, el / (d + 1) * (n_pick - d - 1));
                }
                free(ids);
                ids = malloc((size_t)(nw - pre) * sizeof *ids);
                if (ids) memcpy(ids, with + pre, (size_t)(nw - pre) * sizeof *ids), n = nw - pre;
                else if (!st) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
                free(with);
            }
            if (st) {
                free(ids);
                break;
            }
        }
        // windows of seq tokens: the start token + seq - 1 of the document; a document with special tokens carries its
        // own structure (<|im_start|> ..., as the node's prompts start) and gets no start token. A served chat prompt
        // with its answer stays one sequence (its last seq tokens): an answer cut off from the context it must be
        // drawn from teaches the student to answer without reading it (measured: in 64-token windows the students
        // learnt the answer format, not the copying)
        const int pre = sp ? 0 : 1, W = seq - pre;
        const int whole = sp && answered;
        for (int p = whole && n > W ? n - W : 0; p < n; p += W) {
            const int k = n - p < W ? n - p : W;
            if (q->n == cap_n) {
                cap_n = cap_n ? 2 * cap_n : 256;
                int *s2 = realloc(q->start, (size_t)cap_n * sizeof *s2), *l2 = s2 ? realloc(q->len, (size_t)cap_n * sizeof *l2) : NULL;
                unsigned char *k2 = l2 ? realloc(q->prompt, (size_t)cap_n) : NULL;
                if (s2) q->start = s2;
                if (l2) q->len = l2;
                if (k2) q->prompt = k2;
                if (!s2 || !l2 || !k2) {
                    st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
                    break;
                }
            }
            if (q->rows + k + 1 > cap_rows) {
                cap_rows = 2 * (q->rows + k + 1) + 1024;
                int32_t *i2 = realloc(q->ids, (size_t)cap_rows * sizeof *i2);
                if (!i2) {
                    st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
                    break;
                }
                q->ids = i2;
            }
            q->start[q->n] = (int)q->rows, q->len[q->n] = k + pre, q->prompt[q->n] = (unsigned char)whole;
            if (pre) q->ids[q->rows] = start;
            memcpy(q->ids + q->rows + pre, ids + p, (size_t)k * sizeof *ids);
            q->rows += k + pre, q->n++;
        }
        free(ids);
    }
    free(gen_prompt);
    if (!st && !(q->tgt = malloc((size_t)q->rows * cf->n_embd * sizeof(float)))) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    seslm_llm_ctx *c = NULL;
    if (!st) st = seslm_llm_ctx_new(&c, parent, seq, 0);
    cap_last cl = {cf->n_layer - 1, NULL, cf->n_embd};
    if (!st) seslm_llm_ctx_set_capture(c, cap_fn, &cl);
    for (int s = 0; s < q->n && !st; s++) {
        cl.dst = q->tgt + (size_t)q->start[s] * cf->n_embd;
        seslm_llm_ctx_reset(c);
        st = seslm_llm_decode(c, q->ids + q->start[s], q->len[s], NULL);
        for (int i = 0; i < q->len[s] && !st; i++) {
            float *r = cl.dst + (size_t)i * cf->n_embd;
            rms_fwd(r, r, p_onorm, cf->n_embd, cf->rms_eps);
        }
    }
    seslm_llm_ctx_free(c);
    if (st) seqset_free(q);
    return st;
}

// a batch of sequences [i0, i1) of q, in the order of perm (NULL: in order)
static void batch_of(batch *b, const seqset *q, const int *perm, int i0, int i1, int C, int32_t *ids, float *tgt, int *off, int *len) {
    b->S = 0, b->M = 0, b->ids = ids, b->tgt = tgt, b->off = off, b->len = len;
    for (int i = i0; i < i1; i++) {
        const int s = perm ? perm[i] : i;
        off[b->S] = b->M, len[b->S] = q->len[s];
        memcpy(ids + b->M, q->ids + q->start[s], (size_t)q->len[s] * sizeof *ids);
        memcpy(tgt + (size_t)b->M * C, q->tgt + (size_t)q->start[s] * C, (size_t)q->len[s] * C * sizeof *tgt);
        b->M += q->len[s], b->S++;
    }
}

// ---- the run ----------------------------------------------------------------------------------------------

typedef struct {
    seslm_llm *parent, *student;
    gguf_file sf, pf;
    int sf_open, pf_open;
    tmodel m;
    seqset tr, va;
    work w;
    int32_t *bids;
    float *btgt;
    int *boff, *blen, cap_seqs, cap_M;
} run;

static void run_free(run *r) {
    work_free(&r->w);
    seqset_free(&r->tr), seqset_free(&r->va);
    free(r->m.p), free(r->m.onorm), free(r->m.out_s), free(r->m.out_p);
    free(r->bids), free(r->btgt), free(r->boff), free(r->blen);
    if (r->sf_open) gguf_close(&r->sf);
    if (r->pf_open) gguf_close(&r->pf);
    seslm_llm_free(r->parent), seslm_llm_free(r->student);
}

// the output matrix of a file (output.weight, else the tied token table), (V, C) F32
static seslm_status out_matrix(const gguf_file *f, int V, int C, float **out, const char *path) {
    const gguf_tensor *t = gguf_find_tensor(f, "output.weight");
    if (!t) t = gguf_find_tensor(f, "token_embd.weight");
    const size_t rb = t ? qb_row_bytes(t->type, C) : 0;
    if (!t || !rb || t->ne[0] != C || t->ne[1] != V) return seslm_fail(SESLM_ERR_FORMAT, "%s: no output matrix of %d x %d", path, V, C);
    if (!(*out = malloc((size_t)V * C * sizeof **out))) return seslm_fail(SESLM_ERR_NOMEM, "out of memory for the output matrix");
    for (int v = 0; v < V; v++) qb_dequantize_row(t->type, t->data + (size_t)v * rb, *out + (size_t)v * C, C);
    return SESLM_OK;
}

static seslm_status run_open(run *r, const char *parent_path, const char *student_path, const char *const *docs, int n_docs,
                             const unsigned char *is_prompt, int seq, int batch_tokens, int n_val_every, int kl, int special,
                             int answer_tokens, const char *cache_path, long long *hits, long long *misses, int verbose) {
    memset(r, 0, sizeof *r);
    seslm_status st = seslm_llm_load(&r->parent, parent_path);
    if (!st) st = seslm_llm_load(&r->student, student_path);
    if (st) return st;
    const seslm_llm_config *pc = seslm_llm_cfg(r->parent), *sc = seslm_llm_cfg(r->student);
    if (pc->n_vocab != sc->n_vocab || pc->n_embd != sc->n_embd)
        return seslm_fail(SESLM_ERR_SHAPE, "the student (vocabulary %d, width %d) and the parent (%d, %d) differ: distillation "
                          "needs the parent's vocabulary and width", sc->n_vocab, sc->n_embd, pc->n_vocab, pc->n_embd);
    if (sc->n_embd > 8192) return seslm_fail(SESLM_ERR_ARG, "a width of %d is more than this supports (8192)", sc->n_embd);
    if ((st = gguf_open(&r->sf, student_path))) return st;
    r->sf_open = 1;
    if ((st = gguf_open(&r->pf, parent_path))) return st;
    r->pf_open = 1;
    const gguf_tensor *pon = gguf_find_tensor(&r->pf, "output_norm.weight");
    if (!pon || pon->type != QB_F32 || pon->ne[0] != pc->n_embd) return seslm_fail(SESLM_ERR_FORMAT, "%s: output_norm.weight", parent_path);
    if ((st = model_load(&r->m, &r->sf, sc, student_path))) return st;
    if (kl && ((st = out_matrix(&r->sf, sc->n_vocab, sc->n_embd, &r->m.out_s, student_path)) ||
               (st = out_matrix(&r->pf, pc->n_vocab, pc->n_embd, &r->m.out_p, parent_path))))
        return st;
    // documents: every n_val_every-th held out (at least 1), the rest trained on
    int *tr = calloc((size_t)n_docs + 1, sizeof *tr), *va = calloc((size_t)n_docs + 1, sizeof *va), nt = 0, nv = 0;
    if (!tr || !va) {
        free(tr), free(va);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    for (int d = 0; d < n_docs; d++) {
        if (!docs[d][0]) continue;
        if (n_val_every > 0 && d % n_val_every == n_val_every - 1) va[nv++] = d;
        else tr[nt++] = d;
    }
    if (nt < 2 || (n_val_every > 0 && nv < 1)) st = seslm_fail(SESLM_ERR_ARG, "distillation: too few documents of text (%d given; 1 in 8 is held out)", n_docs);
    // the parent's answers: through the cache file when given (the other candidates of a cycle ask the same)
    seslm_llm_answer_cache *cache = NULL;
    if (!st && cache_path && answer_tokens > 0) st = seslm_llm_answer_cache_open(cache_path, r->parent, verbose, &cache);
    if (!st) st = seqset_build(&r->tr, r->parent, (const float *)pon->data, docs, is_prompt, tr, nt, seq, special, answer_tokens, cache, verbose);
    if (!st && nv) st = seqset_build(&r->va, r->parent, (const float *)pon->data, docs, is_prompt, va, nv, seq, special, answer_tokens, cache, verbose);
    if (hits) seslm_llm_answer_cache_counts(cache, hits, misses);
    const seslm_status cst = seslm_llm_answer_cache_close(cache); // one that cannot be written fails nothing
    if (cst && verbose) fprintf(stderr, "seslm distill-decoder: the answer cache was not written: %s\n", seslm_last_error());
    free(tr), free(va);
    if (st) return st;
    r->cap_M = batch_tokens + seq;
    r->cap_seqs = r->cap_M;
    r->bids = malloc((size_t)r->cap_M * sizeof *r->bids);
    r->btgt = malloc((size_t)r->cap_M * sc->n_embd * sizeof *r->btgt);
    r->boff = malloc((size_t)r->cap_seqs * sizeof *r->boff);
    r->blen = malloc((size_t)r->cap_seqs * sizeof *r->blen);
    if (!r->bids || !r->btgt || !r->boff || !r->blen || work_init(&r->w, &r->m, r->cap_M, seq))
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory for batches of %d tokens", batch_tokens);
    return SESLM_OK;
}

/* The selection metric's sum and count over the sequences idx[0..n_idx) of q, no gradients, in batches: with
 * logits, the student's negative log-likelihood of the text's next tokens (per token it is what held-out perplexity
 * measures); else the hidden-state loss, per row. */
static void set_loss_of(run *r, const float *P, const seqset *q, const int *idx, int n_idx, int batch_tokens, double *sum,
                        long long *count) {
    *sum = 0.0, *count = 0;
    for (int i = 0; i < n_idx;) {
        int j = i, tok = 0;
        while (j < n_idx && (j == i || tok + q->len[idx[j]] <= batch_tokens)) tok += q->len[idx[j++]];
        batch b;
        batch_of(&b, q, idx, i, j, r->m.C, r->bids, r->btgt, r->boff, r->blen);
        const double l = forward(&r->w, P, &b);
        if (r->m.out_s) *sum += r->w.nll, *count += r->w.n_nll;
        else *sum += l * b.M, *count += b.M;
        i = j;
    }
}

/* The held-out metric (per token; NAN when there is nothing to measure): over every sequence, or with a text share
 * s when both kinds are held out, s x the text's + (1 - s) x the served prompts' (each per its own tokens: the
 * weighting the batches train with). The two parts go to *text / *prompts (NAN for a kind that is absent). */
static double set_loss(run *r, const float *P, const seqset *q, int batch_tokens, float share, double *text, double *prompts) {
    int *idx = malloc((size_t)(q->n ? q->n : 1) * sizeof *idx), nt = 0, np = 0;
    *text = *prompts = NAN;
    if (!idx) return NAN; // no better than any weights: the selection keeps what it has
    for (int i = 0; i < q->n; i++)
        if (!q->prompt[i]) idx[nt++] = i;
    for (int i = 0; i < q->n; i++)
        if (q->prompt[i]) idx[nt + np++] = i;
    double st = 0.0, sp = 0.0;
    long long ct = 0, cp = 0;
    set_loss_of(r, P, q, idx, nt, batch_tokens, &st, &ct);
    set_loss_of(r, P, q, idx + nt, np, batch_tokens, &sp, &cp);
    free(idx);
    if (ct) *text = st / (double)ct;
    if (cp) *prompts = sp / (double)cp;
    if (share >= 0.0f && ct && cp) return share * *text + (1.0 - share) * *prompts;
    return ct + cp ? (st + sp) / (double)(ct + cp) : NAN;
}

// matrices back to the student file's types and again to F32: the weights as they will be stored
static void quantize_stored(const tmodel *m, const gguf_file *f, float *P) {
    float *buf = NULL;
    size_t cap = 0;
    for (int l = 0; l < m->L; l++)
        for (int t = 0; t < T_N; t++) {
            if (m->n_rows[t] == 1) continue; // norms and biases stay F32
            char n[96];
            snprintf(n, sizeof n, "blk.%d.%s", l, TNAME[t]);
            const gguf_tensor *g = gguf_find_tensor(f, n);
            const int K = (int)m->n_cols[t];
            const size_t rb = qb_row_bytes(g->type, K);
            if (rb > cap) {
                free(buf);
                buf = malloc(rb);
                cap = buf ? rb : 0;
            }
            if (!buf) return;
            float *w = W(m, P, l, t);
            for (size_t r = 0; r < m->n_rows[t]; r++) {
                qb_quantize_weight_row(g->type, w + r * K, buf, K);
                qb_dequantize_row(g->type, buf, w + r * K, K);
            }
        }
    free(buf);
}

static int is_layer_tensor(const gguf_str *name, int *layer, int *t) {
    char n[128];
    if (name->len >= sizeof n) return 0;
    memcpy(n, name->s, name->len);
    n[name->len] = 0;
    int l, pos = 0;
    if (sscanf(n, "blk.%d.%n", &l, &pos) != 1 || pos <= 0) return 0;
    for (int k = 0; k < T_N; k++)
        if (strcmp(n + pos, TNAME[k]) == 0) return *layer = l, *t = k, 1;
    return 0;
}

static int key_is(const gguf_kv *kv, const char *k) { return kv->key.len == strlen(k) && memcmp(kv->key.s, k, kv->key.len) == 0; }

/* Writes the student file with the layer tensors of P (matrices quantized to their stored type, norms and biases
 * F32; biases added after their layer's other tensors when the file had none). */
static seslm_status write_student(const tmodel *m, const gguf_file *f, const float *P, const char *out_path) {
    gguf_writer *w = gguf_writer_new();
    if (!w) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    seslm_status st = SESLM_OK;
    for (int i = 0; i < f->n_kv && !st; i++) {
        if (key_is(&f->kv[i], "general.alignment")) continue; // the writer aligns to 32
        if (gguf_w_copy_kv(w, &f->kv[i])) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    uint8_t *have_bias = calloc((size_t)m->L * 2, 1);
    if (!have_bias) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < f->n_tensors && !st; i++) {
        const gguf_tensor *g = &f->tensors[i];
        int l, t;
        if (is_layer_tensor(&g->name, &l, &t) && l >= 0 && l < m->L) {
            if (t == T_BO) have_bias[2 * l] = 1;
            if (t == T_BD) have_bias[2 * l + 1] = 1;
        }
    }
    for (int i = 0; i < f->n_tensors && !st; i++) {
        const gguf_tensor *g = &f->tensors[i];
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)g->name.len, g->name.s);
        int l, t;
        if (!is_layer_tensor(&g->name, &l, &t) || l < 0 || l >= m->L) {
            if (gguf_w_tensor(w, name, g->n_dims, g->ne, g->type, g->data, g->nbytes, 0)) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
            continue;
        }
        const int K = (int)m->n_cols[t];
        const size_t rb = qb_row_bytes(g->type, K), nb = rb * m->n_rows[t];
        uint8_t *data = malloc(nb ? nb : 1);
        if (!data) {
            st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
            break;
        }
        for (size_t r = 0; r < m->n_rows[t]; r++) qb_quantize_weight_row(g->type, W(m, P, l, t) + r * K, data + r * rb, K);
        if (gguf_w_tensor(w, name, g->n_dims, g->ne, g->type, data, nb, 1)) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        // a layer's missing biases follow its ffn_down.weight
        if (!st && t == T_D)
            for (int k = 0; k < 2 && !st; k++) {
                if (have_bias[2 * l + k]) continue;
                const int bt = k ? T_BD : T_BO;
                float *b = malloc((size_t)m->C * sizeof *b);
                char bn[96];
                snprintf(bn, sizeof bn, "blk.%d.%s", l, TNAME[bt]);
                const int64_t ne[1] = {m->C};
                if (!b) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
                else {
                    memcpy(b, W(m, P, l, bt), (size_t)m->C * sizeof *b);
                    if (gguf_w_tensor(w, bn, 1, ne, QB_F32, b, (size_t)m->C * sizeof *b, 1)) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
                }
            }
    }
    free(have_bias);
    if (!st) st = gguf_w_write(w, out_path);
    gguf_writer_free(w);
    return st;
}

// Served prompts are distilled with the parent's answers, each prompt whole with its answer: longer sequences than
// plain text's 64-token windows (which cut the context off the answer that copies from it).
enum { SEQ_TEXT = 64, SEQ_PROMPTS = 512, ANSWER_PROMPTS = 48 };

seslm_status seslm_llm_distill(const char *parent_path, const char *student_path, const char *const *docs, int n_docs,
                               const seslm_llm_distill_opts *opts, const char *out_path, seslm_llm_distill_result *res) {
    memset(res, 0, sizeof *res);
    res->val_text = res->val_prompts = NAN;
    seslm_llm_distill_opts resolved = *opts; // the automatic values (0 / -1) made concrete
    const seslm_llm_distill_opts *o = &resolved;
    const int with_prompts = opts->n_prompts > 0;
    if (resolved.seq == 0)
        resolved.seq = !with_prompts ? SEQ_TEXT : opts->batch_tokens < SEQ_PROMPTS ? opts->batch_tokens : SEQ_PROMPTS;
    if (resolved.answer_tokens < 0) resolved.answer_tokens = with_prompts ? ANSWER_PROMPTS : 0;
    if (o->steps < 0 || o->batch_tokens < 16 || o->seq < 2 || o->seq > o->batch_tokens || !(o->lr > 0.0f))
        return seslm_fail(SESLM_ERR_ARG, "distillation: steps >= 0, batch tokens >= 16, 2 <= seq <= batch, lr > 0");
    if (!(o->ce_weight >= 0.0f && o->ce_weight <= 1.0f)) return seslm_fail(SESLM_ERR_ARG, "distillation: the cross-entropy weight must be in [0, 1]");
    if (o->n_prompts < 0 || (o->n_prompts > 0 && !o->prompts)) return seslm_fail(SESLM_ERR_ARG, "distillation: bad prompt list");
    if (!(o->text_share < 0.0f || (o->text_share > 0.0f && o->text_share < 1.0f)))
        return seslm_fail(SESLM_ERR_ARG, "distillation: the text share must be in (0, 1), or negative for none");
    if (!(o->max_seconds >= 0.0)) return seslm_fail(SESLM_ERR_ARG, "distillation: the time budget must be >= 0 seconds");
    if (o->steps == 0) return SESLM_OK;
    // served prompts beside the text: the two interleaved evenly, so the held-out slice (1 in 8) holds both kinds
    const char **all = NULL;
    unsigned char *is_prompt = NULL;
    if (o->n_prompts > 0) {
        const int n_all = n_docs + o->n_prompts;
        all = malloc((size_t)n_all * sizeof *all), is_prompt = malloc((size_t)n_all);
        if (!all || !is_prompt) {
            free(all), free(is_prompt);
            return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        }
        for (int k = 0, i = 0, j = 0; k < n_all; k++) {
            const int take_prompt = j < o->n_prompts && (i >= n_docs || (long long)j * n_docs <= (long long)i * o->n_prompts);
            all[k] = take_prompt ? o->prompts[j++] : docs[i++];
            is_prompt[k] = (unsigned char)take_prompt;
        }
        docs = all, n_docs = n_all;
    }
    run r;
    seslm_status st = run_open(&r, parent_path, student_path, docs, n_docs, is_prompt, o->seq, o->batch_tokens, 8,
                               !o->hidden_loss, o->special, o->answer_tokens, o->answers_cache, &res->answers_cached,
                               &res->answers_computed, o->verbose);
    free(all), free(is_prompt); // the sequences hold their own token ids
    r.w.ce = o->ce_weight;
    tmodel *m = &r.m;
    const size_t n = m->n_params;
    float *Gr = NULL, *Ma = NULL, *Va = NULL, *best = NULL, *Pq = NULL;
    int *perm = NULL, *bsel = NULL;
    if (!st) {
        Gr = calloc(n, sizeof *Gr), Ma = calloc(n, sizeof *Ma), Va = calloc(n, sizeof *Va), best = malloc(n * sizeof *best);
        Pq = malloc(n * sizeof *Pq);
        perm = malloc((size_t)r.tr.n * sizeof *perm), bsel = malloc((size_t)r.cap_seqs * sizeof *bsel);
        if (!Gr || !Ma || !Va || !best || !Pq || !perm || !bsel)
            st = seslm_fail(SESLM_ERR_NOMEM, "out of memory for the optimizer (%zu parameters)", n);
    }
    // two pools when a text share is asked for and both kinds are trained on: perm[0..n_pool[0]) the text's
    // sequences, perm[n_pool[0]..) the prompts'; each shuffled on its own and refilled when exhausted, so every
    // batch holds about share x batch_tokens of text (short lines) beside the prompts (long), whatever their counts
    int n_pool[2] = {0, 0};
    for (int i = 0; !st && i < r.tr.n; i++) n_pool[r.tr.prompt[i]]++;
    const int pools = o->text_share > 0.0f && n_pool[0] && n_pool[1] ? 2 : 1;
    const float share = pools == 2 ? o->text_share : -1.0f;
    if (pools == 1) n_pool[0] = r.tr.n, n_pool[1] = 0;
    if (!st) {
        for (int i = 0, a = 0, b = n_pool[0]; i < r.tr.n; i++) perm[pools == 2 && r.tr.prompt[i] ? b++ : a++] = i;
        res->train_tokens = r.tr.rows, res->val_tokens = r.va.rows;
        memcpy(best, m->p, n * sizeof *best);
        memcpy(Pq, m->p, n * sizeof *Pq);
        quantize_stored(m, &r.sf, Pq);
        res->val_start = res->val_trained = set_loss(&r, Pq, &r.va, o->batch_tokens, share, &res->val_text, &res->val_prompts);
        if (o->verbose) {
            fprintf(stderr, "seslm distill-decoder: %zu parameters in %d layers; %lld training tokens (%d sequences), %lld held out; "
                    "held-out loss %.6g", n, m->L, r.tr.rows, r.tr.n, r.va.rows, res->val_start);
            if (isfinite(res->val_text) && isfinite(res->val_prompts))
                fprintf(stderr, " (text %.6g, prompts %.6g%s)", res->val_text, res->val_prompts, pools == 2 ? ", weighted by the text share" : "");
            fputc('\n', stderr);
        }
    }
    uint64_t rng = o->seed ? o->seed : 1;
    int pos[2] = {n_pool[0], n_pool[1]}; // next position in each pool's permutation (reshuffled when exhausted)
    // total: the schedule's length, o->steps unless the time budget shortens it (then the warm-up, the cosine decay
    // and the evaluations follow the shorter schedule, so a cut run still ends decayed and evaluated)
    int total = o->steps, eval_every = total >= 10 ? total / 10 : 1, warm = total / 20 > 0 ? total / 20 : 1;
    const float b1 = 0.9f, b2 = 0.999f, aeps = 1e-8f;
    const double t_train = util_now_s();
    for (int step = 1; step <= total && !st; step++) {
        // the batch: sequences from a shuffled order until batch_tokens (with two pools: the text's until its
        // share of them, then the prompts'); at least one of each pool
        int S = 0, tok = 0;
        for (int k = 0; k < pools; k++) {
            int *pp = perm + (k ? n_pool[0] : 0);
            const int np = n_pool[k], goal = pools == 1 ? o->batch_tokens : k == 0 ? (int)(share * o->batch_tokens) : o->batch_tokens;
            for (int first = 1;; first = 0) {
                if (pos[k] >= np) {
                    for (int i = np - 1; i > 0; i--) {
                        const int j = (int)(rng_next(&rng) % (uint64_t)(i + 1)), t = pp[i];
                        pp[i] = pp[j], pp[j] = t;
                    }
                    pos[k] = 0;
                }
                const int s2 = pp[pos[k]];
                if (!first && tok + r.tr.len[s2] > goal) break;
                bsel[S++] = s2, tok += r.tr.len[s2], pos[k]++;
                *(r.tr.prompt[s2] ? &res->seen_prompts : &res->seen_text) += r.tr.len[s2];
                if (S == r.cap_seqs || (pools == 1 && pos[k] >= np)) break;
            }
        }
        batch b;
        batch_of(&b, &r.tr, bsel, 0, S, m->C, r.bids, r.btgt, r.boff, r.blen);
        memset(Gr, 0, n * sizeof *Gr);
        // quantization-aware: the pass runs on the weights as they would be stored (Pq = quantized P), and the
        // gradient w.r.t. them updates the F32 master P (straight-through); without this, re-quantizing the
        // trained weights at the end undid most of the gain (5 layers dropped: held-out 0.367 -> 0.298 in F32,
        // 0.347 as stored)
        const double loss = forward(&r.w, Pq, &b);
        backward(&r.w, Pq, Gr, &b);
        double gn = 0.0;
        for (size_t i = 0; i < n; i++) gn += (double)Gr[i] * Gr[i];
        gn = sqrt(gn);
        if (!isfinite(gn) || !isfinite(loss)) {
            st = seslm_fail(SESLM_ERR_INTERNAL, "distillation: non-finite loss or gradient at step %d", step);
            break;
        }
        const float clip = gn > 1.0 ? (float)(1.0 / gn) : 1.0f;
        const double prog = (double)(step - warm) / (double)(total - warm > 0 ? total - warm : 1);
        const float lr = step <= warm ? o->lr * (float)step / (float)warm
                                      : o->lr * (0.1f + 0.9f * 0.5f * (1.0f + (float)cos(3.14159265358979323846 * (prog < 0 ? 0 : prog))));
        const float c1 = 1.0f - powf(b1, (float)step), c2 = 1.0f - powf(b2, (float)step);
        for (size_t i = 0; i < n; i++) {
            const float g = Gr[i] * clip;
            Ma[i] = b1 * Ma[i] + (1.0f - b1) * g;
            Va[i] = b2 * Va[i] + (1.0f - b2) * g * g;
            m->p[i] -= lr * (Ma[i] / c1) / (sqrtf(Va[i] / c2) + aeps);
        }
        memcpy(Pq, m->p, n * sizeof *Pq);
        quantize_stored(m, &r.sf, Pq);
        res->steps = step;
        // the time budget: the steps that fit at the pace so far (from step 3: the first ones pay one-time costs
        // such as first touches of the buffers); the schedule only ever shortens, and a step it makes the last is
        // evaluated below as the last
        if (o->max_seconds > 0.0 && step >= 3 && step < total) {
            const double el = util_now_s() - t_train;
            const double fit = el > 0.0 ? o->max_seconds * (double)step / el : (double)total;
            if (fit < (double)total) {
                const int nt = fit > (double)step ? (int)fit : step;
                if (o->verbose)
                    fprintf(stderr, "seslm distill-decoder: the time budget (%.0f s) fits %d of %d steps at %.2f s per step: "
                            "the schedule now ends at step %d\n", o->max_seconds, nt, o->steps, el / step, nt);
                total = nt, res->budget_cut = 1;
                eval_every = total >= 10 ? total / 10 : 1;
                if (warm > (total / 20 > 0 ? total / 20 : 1)) warm = total / 20 > 0 ? total / 20 : 1;
            }
        }
        if (step % eval_every == 0 || step == total) {
            double vt, vp;
            const double vl = set_loss(&r, Pq, &r.va, o->batch_tokens, share, &vt, &vp);
            if (vl < res->val_trained) res->val_trained = vl, res->val_text = vt, res->val_prompts = vp, memcpy(best, m->p, n * sizeof *best);
            if (o->verbose) {
                fprintf(stderr, "seslm distill-decoder: step %d/%d: batch loss %.6g, held-out %.6g", step, total, loss, vl);
                if (isfinite(vt) && isfinite(vp)) fprintf(stderr, " (text %.6g, prompts %.6g)", vt, vp);
                fprintf(stderr, " (best %.6g), lr %.3g, |g| %.3g\n", res->val_trained, lr, gn);
            }
        }
    }
    res->train_seconds = util_now_s() - t_train;
    if (!st) { // as stored: quantized to the file's types
        memcpy(m->p, best, n * sizeof *best);
        quantize_stored(m, &r.sf, m->p);
        double vt, vp;
        res->val_stored = set_loss(&r, m->p, &r.va, o->batch_tokens, share, &vt, &vp);
        res->kept = res->val_stored < res->val_start;
        if (o->verbose)
            fprintf(stderr, "seslm distill-decoder: held-out loss %.6g -> %.6g (best) -> %.6g (written): %s\n", res->val_start,
                    res->val_trained, res->val_stored, res->kept ? "kept" : "not kept (no better than the student as given)");
        if (res->kept) st = write_student(m, &r.sf, m->p, out_path);
    }
    free(Gr), free(Ma), free(Va), free(best), free(Pq), free(perm), free(bsel);
    run_free(&r);
    return st;
}

seslm_status seslm_llm_distill_gradcheck(const char *parent_path, const char *student_path, const char *const *docs,
                                         int n_docs, int kl, int n_probe, double *worst_rel, double *loss) {
    run r;
    *worst_rel = 0.0;
    seslm_status st = run_open(&r, parent_path, student_path, docs, n_docs, NULL, 16, 64, 0, kl, 0, 0, NULL, NULL, NULL, 0);
    r.w.ce = 0.5f; // both terms of the loss
    tmodel *m = &r.m;
    float *Gr = st ? NULL : calloc(m->n_params, sizeof *Gr);
    if (!st && !Gr) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    if (!st) {
        // perturb the weights a little so that zero biases and symmetric starts do not hide errors
        uint64_t rng = 7;
        for (size_t i = 0; i < m->n_params; i++)
            m->p[i] += (float)((double)(rng_next(&rng) >> 11) / 9007199254740992.0 - 0.5) * 0.02f;
        int S = r.tr.n < 4 ? r.tr.n : 4;
        batch b;
        batch_of(&b, &r.tr, NULL, 0, S, m->C, r.bids, r.btgt, r.boff, r.blen);
        *loss = forward(&r.w, m->p, &b);
        backward(&r.w, m->p, Gr, &b);
        uint64_t pr = 12345;
        // probes: half on the largest gradients among 64 random ones (where an error shows), half anywhere. The
        // forward pass is F32, so a central difference carries a round-off of about 1e-7 (1 + loss) / h: the
        // verdict is the relative error of the probes' gradient vector as a whole, and the worst single probe
        // among those whose gradient is at least a tenth of the largest (small ones are mostly round-off)
        double *num = malloc((size_t)n_probe * sizeof *num), *ana = malloc((size_t)n_probe * sizeof *ana);
        if (!num || !ana) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        double amax = 0.0, dn = 0.0, an = 0.0, worst = 0.0;
        for (int k = 0; k < n_probe && !st; k++) {
            size_t i = (size_t)(rng_next(&pr) % m->n_params);
            if (k % 2 == 0) {
                size_t bi = i;
                for (int t = 0; t < 64; t++) {
                    size_t j = (size_t)(rng_next(&pr) % m->n_params);
                    if (fabsf(Gr[j]) > fabsf(Gr[bi])) bi = j;
                }
                i = bi;
            }
            const float keep = m->p[i], h = 1e-2f * fmaxf(1.0f, fabsf(keep));
            m->p[i] = keep + h;
            const double lp = forward(&r.w, m->p, &b);
            m->p[i] = keep - h;
            const double lm = forward(&r.w, m->p, &b);
            m->p[i] = keep;
            num[k] = (lp - lm) / (2.0 * h), ana[k] = Gr[i];
            amax = fmax(amax, fabs(ana[k]));
            dn += (num[k] - ana[k]) * (num[k] - ana[k]), an += ana[k] * ana[k];
        }
        for (int k = 0; k < n_probe && !st; k++)
            if (fabs(ana[k]) >= 0.1 * amax) worst = fmax(worst, fabs(num[k] - ana[k]) / fabs(ana[k]));
        if (!st) *worst_rel = fmax(worst, an > 0 ? sqrt(dn / an) : 1.0);
        free(num), free(ana);
    }
    free(Gr);
    run_free(&r);
    return st;
}
