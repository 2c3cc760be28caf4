/* llm_prune.c — plan and recompile of a pruned GGUF decoder from its telemetry (llm_prune.h). */
#include "llm_prune.h"

#include "calibrate.h"
#include "decoder.h"
#include "gguf.h"
#include "llm_answers.h"
#include "llm_heal.h"
#include "qblock.h"
#include "reconstruct.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void seslm_llm_prune_opts_default(seslm_llm_prune_opts *o) {
    memset(o, 0, sizeof *o);
    o->ffn_keep = 1.0;
    o->vocab_general = -1;
    o->vocab_min_count = 1;
    o->embd_type = -1;
    o->ctx = 256;
    o->reconstruct = 1;
    o->ridge = 1e-3;
    o->compensate = 1;
    o->heal_tokens = 16384;
    o->heal_lr = 3e-4f;
    o->heal_type = -1;
    o->answer_tokens = 24;
    o->layer_type = -1;
}

// ---- small helpers ----

typedef struct {
    int idx;
    double score;
} ranked;

static int by_score_desc(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    return x->idx - y->idx;
}
static int by_idx(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

// the k best of n scores, their indices ascending in keep[0..k)
static int top_k(const double *score, int n, int k, int *keep) {
    ranked *r = malloc((size_t)n * sizeof *r);
    if (!r) return -1;
    for (int i = 0; i < n; i++) r[i].idx = i, r[i].score = isfinite(score[i]) ? score[i] : -1.0;
    qsort(r, (size_t)n, sizeof *r, by_score_desc);
    for (int i = 0; i < k; i++) keep[i] = r[i].idx;
    qsort(keep, (size_t)k, sizeof *keep, by_idx);
    free(r);
    return 0;
}

static const gguf_tensor *tensor_bias(const gguf_file *f, int layer, const char *nm) {
    char n[96];
    snprintf(n, sizeof n, "blk.%d.%s.bias", layer, nm);
    const gguf_tensor *t = gguf_find_tensor(f, n);
    return t && t->type == QB_F32 ? t : NULL;
}

static const gguf_tensor *tensor(const gguf_file *f, int layer, const char *nm) {
    char n[96];
    if (layer >= 0) snprintf(n, sizeof n, "blk.%d.%s.weight", layer, nm);
    else snprintf(n, sizeof n, "%s.weight", nm);
    return gguf_find_tensor(f, n);
}

// a (rows, K) matrix dequantized to floats (malloc'd)
static float *dequant(const gguf_tensor *t) {
    const int K = (int)t->ne[0], N = (int)t->ne[1];
    const size_t rb = qb_row_bytes(t->type, K);
    float *x = malloc((size_t)N * (size_t)K * sizeof *x);
    if (!x || !rb) return free(x), NULL;
    for (int r = 0; r < N; r++) qb_dequantize_row(t->type, t->data + (size_t)r * rb, x + (size_t)r * K, K);
    return x;
}

// rows rows[0..n) of t, bytes copied (malloc'd, *bytes set)
static uint8_t *take_rows(const gguf_tensor *t, const int *rows, int n, size_t *bytes) {
    const size_t rb = qb_row_bytes(t->type, t->ne[0]);
    uint8_t *d = malloc((size_t)n * rb + 1);
    if (!d) return NULL;
    for (int i = 0; i < n; i++) memcpy(d + (size_t)i * rb, t->data + (size_t)rows[i] * rb, rb);
    *bytes = (size_t)n * rb;
    return d;
}

static uint8_t *copy_all(const gguf_tensor *t, size_t *bytes) {
    uint8_t *d = malloc(t->nbytes + 1);
    if (d) memcpy(d, t->data, t->nbytes);
    *bytes = t->nbytes;
    return d;
}

// columns cols[0..n) of every row of t, re-quantized to `type` (malloc'd)
static uint8_t *take_cols(const gguf_tensor *t, const int *cols, int n, int type, size_t *bytes) {
    const int K = (int)t->ne[0], N = (int)t->ne[1];
    const size_t ib = qb_row_bytes(t->type, K), ob = qb_row_bytes(type, n);
    float *row = malloc((size_t)K * sizeof *row), *sel = malloc((size_t)n * sizeof *sel);
    uint8_t *d = malloc((size_t)N * ob + 1);
    if (!row || !sel || !d || !ob) {
        free(row), free(sel), free(d);
        return NULL;
    }
    for (int r = 0; r < N; r++) {
        qb_dequantize_row(t->type, t->data + (size_t)r * ib, row, K);
        for (int j = 0; j < n; j++) sel[j] = row[cols[j]];
        qb_quantize_weight_row(type, sel, d + (size_t)r * ob, n);
    }
    free(row), free(sel);
    *bytes = (size_t)N * ob;
    return d;
}

// all rows of t re-quantized to `type`
static uint8_t *requant_rows(const gguf_tensor *t, const int *rows, int n, int type, size_t *bytes) {
    const int K = (int)t->ne[0];
    const size_t ib = qb_row_bytes(t->type, K), ob = qb_row_bytes(type, K);
    float *row = malloc((size_t)K * sizeof *row);
    uint8_t *d = malloc((size_t)n * ob + 1);
    if (!row || !d || !ob) return free(row), free(d), NULL;
    for (int i = 0; i < n; i++) {
        qb_dequantize_row(t->type, t->data + (size_t)rows[i] * ib, row, K);
        qb_quantize_weight_row(type, row, d + (size_t)i * ob, K);
    }
    free(row);
    *bytes = (size_t)n * ob;
    return d;
}

// the N rows of K values in buf (type `from`, malloc'd) re-quantized to `to`: buf is freed, the new rows returned
// (NULL when out of memory); *bytes their size. to == from returns buf as it is
static uint8_t *retype_rows(uint8_t *buf, int from, int to, int K, int N, size_t *bytes) {
    if (!buf || to < 0 || to == from) return buf;
    const size_t ib = qb_row_bytes(from, K), ob = qb_row_bytes(to, K);
    float *row = malloc((size_t)K * sizeof *row);
    uint8_t *d = ob ? malloc((size_t)N * ob + 1) : NULL;
    if (row && d && ib)
        for (int r = 0; r < N; r++) {
            qb_dequantize_row(from, buf + (size_t)r * ib, row, K);
            qb_quantize_weight_row(to, row, d + (size_t)r * ob, K);
        }
    else free(d), d = NULL;
    free(row), free(buf);
    if (d) *bytes = (size_t)N * ob;
    return d;
}

// ---- vocabulary: token string -> id (open addressing) ----

typedef struct {
    const gguf_str *s;
    int32_t *slot;
    size_t cap;
} str_map;

static uint64_t fnv(const char *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
    return h;
}
static int map_init(str_map *m, const gguf_str *s, int n) {
    m->s = s;
    m->cap = 1;
    while (m->cap < (size_t)n * 2) m->cap *= 2;
    if (!(m->slot = malloc(m->cap * sizeof *m->slot))) return -1;
    for (size_t i = 0; i < m->cap; i++) m->slot[i] = -1;
    for (int i = 0; i < n; i++) {
        size_t h = fnv(s[i].s, s[i].len) & (m->cap - 1);
        while (m->slot[h] >= 0) h = (h + 1) & (m->cap - 1);
        m->slot[h] = i;
    }
    return 0;
}
static int32_t map_get(const str_map *m, const char *p, size_t n) {
    size_t h = fnv(p, n) & (m->cap - 1);
    for (; m->slot[h] >= 0; h = (h + 1) & (m->cap - 1)) {
        const gguf_str *t = &m->s[m->slot[h]];
        if (t->len == n && memcmp(t->s, p, n) == 0) return m->slot[h];
    }
    return -1;
}

/* A merge "A B": its two pieces and their concatenation (into buf, cap bytes) as token ids (-1: not a token).
 * 0, or -1 for a malformed or over-long merge. */
static int merge_ids(const str_map *mp, const gguf_str *mg, char *buf, size_t cap, int32_t *a, int32_t *b, int32_t *t) {
    const char *sp = memchr(mg->s, ' ', mg->len);
    if (!sp || mg->len > cap) return -1;
    size_t la = (size_t)(sp - mg->s), lb = mg->len - la - 1;
    memcpy(buf, mg->s, la);
    memcpy(buf + la, sp + 1, lb);
    *t = map_get(mp, buf, la + lb), *a = map_get(mp, mg->s, la), *b = map_get(mp, sp + 1, lb);
    return 0;
}

// number of UTF-8 characters of a token string
static int n_chars(const gguf_str *s) {
    int c = 0;
    for (size_t i = 0; i < s->len; i++) c += ((uint8_t)s->s[i] & 0xC0) != 0x80;
    return c;
}

/* keep[V]: the tokens kept; then closed under the merges that build kept tokens. */
static seslm_status vocab_choose(const gguf_file *f, const seslm_telemetry_view *tel, const seslm_llm_prune_opts *o,
                                 uint8_t *keep, int V) {
    const gguf_kv *toks = gguf_find_kv(f, "tokenizer.ggml.tokens"), *types = gguf_find_kv(f, "tokenizer.ggml.token_type");
    const gguf_kv *merges = gguf_find_kv(f, "tokenizer.ggml.merges");
    if (!toks || !toks->strs || (int)toks->n != V || !merges || !merges->strs)
        return seslm_fail(SESLM_ERR_FORMAT, "the tokenizer's tokens / merges are missing");
    for (int i = 0; i < V; i++) {
        int64_t ty = types ? gguf_arr_int(types, (uint64_t)i) : 1;
        keep[i] = i < o->vocab_general || ty != 1 || n_chars(&toks->strs[i]) <= 1 ||
                  (tel && tel->token_counts && tel->token_counts[i] >= o->vocab_min_count && o->vocab_min_count > 0);
    }
    str_map mp;
    if (map_init(&mp, toks->strs, V)) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    char buf[1024];
    for (int changed = 1; changed;) { // a kept token keeps the two pieces of every merge that builds it
        changed = 0;
        for (uint64_t r = merges->n; r-- > 0;) {
            int32_t a, b, t;
            if (merge_ids(&mp, &merges->strs[r], buf, sizeof buf, &a, &b, &t) || t < 0 || !keep[t]) continue;
            if (a >= 0 && !keep[a]) keep[a] = 1, changed = 1;
            if (b >= 0 && !keep[b]) keep[b] = 1, changed = 1;
        }
    }
    free(mp.slot);
    return SESLM_OK;
}

// the merges whose two pieces and result are all kept, in rank order (pointers into f)
static gguf_str *vocab_merges(const gguf_file *f, const uint8_t *keep, int V, uint64_t *n_out) {
    const gguf_kv *toks = gguf_find_kv(f, "tokenizer.ggml.tokens"), *merges = gguf_find_kv(f, "tokenizer.ggml.merges");
    str_map mp;
    gguf_str *out = malloc((size_t)(merges->n + 1) * sizeof *out);
    if (!out || map_init(&mp, toks->strs, V)) return free(out), NULL;
    uint64_t n = 0;
    char buf[1024];
    for (uint64_t r = 0; r < merges->n; r++) {
        int32_t a, b, t;
        if (!merge_ids(&mp, &merges->strs[r], buf, sizeof buf, &a, &b, &t) && t >= 0 && a >= 0 && b >= 0 && keep[t] &&
            keep[a] && keep[b])
            out[n++] = merges->strs[r];
    }
    free(mp.slot);
    *n_out = n;
    return out;
}

// ---- layers: the calibration loss with each layer bypassed ----

#define LLM_PRUNE_RECHECK 8 // after the first layer, the next is chosen among this many of the cheapest

/* The layers to drop, greedily: every layer's bypass alone is measured (cost: the calibration loss increase,
 * nats per token, plus with served prompts the increase of their answers' loss, nats per answer token); the
 * cheapest goes first; each next one is the cheapest of the LLM_PRUNE_RECHECK cheapest left, re-measured
 * together with those already chosen (single costs do not add: with layer 17 of SmolLM2 gone, bypassing 18 as
 * well cost +0.033 where alone it cost +0.056). base / base_answer get the parent's two losses, drop[] the choice,
 * step[] the cost of the set at each layer's step, text_cost / answer_cost (may be NULL) the two parts of each
 * layer's own cost. */
typedef struct {
    seslm_llm *m;
    seslm_llm_ctx *c, *ca; // calibration text / served prompts (NULL: none)
    seslm_llm_answers ans;
    const seslm_llm_prune_opts *o;
    seslm_llm_stash *sc, *sa; // each context's layer inputs as recorded (NULL: whole passes)
} layer_probe;

#define LLM_PRUNE_STASH_BYTES ((size_t)1 << 30) // per context: ~15k tokens of SmolLM2-135M (30 x 576 floats each)

enum { PROBE_WHOLE = 0, PROBE_RECORD = 1, PROBE_RESUME = 2 };

// loss of the model with the layers in skip (NULL: none) bypassed: text nats/token, answers nats/answer token.
// how: PROBE_WHOLE; PROBE_RECORD (a whole pass that records every layer's input); PROBE_RESUME at layer `from`
// (skip must bypass the same layers before `from` as the recording pass did)
static seslm_status probe_loss(layer_probe *p, const uint8_t *skip, int how, int from, double *text, double *answer) {
    seslm_ppl_result pr;
    seslm_status st = SESLM_OK;
    if (how != PROBE_WHOLE && p->sc) {
        const int mode = how == PROBE_RECORD ? SESLM_LLM_STASH_RECORD : SESLM_LLM_STASH_REPLAY;
        st = seslm_llm_ctx_set_stash(p->c, p->sc, mode, from);
        if (!st && p->ca) st = seslm_llm_ctx_set_stash(p->ca, p->sa, mode, from);
    }
    seslm_llm_set_layer_skip(p->m, skip);
    if (!st) st = seslm_llm_perplexity(p->c, p->o->calib, p->o->n_calib, &pr, NULL, NULL);
    if (!st) *text = pr.nll / (double)pr.n_tokens;
    *answer = 0.0;
    double nll = 0.0;
    if (!st && p->ca && !(st = seslm_llm_answers_nll(p->ca, &p->ans, &nll))) *answer = nll / (double)p->ans.n_answer_tokens;
    seslm_llm_set_layer_skip(p->m, NULL);
    seslm_llm_ctx_set_stash(p->c, NULL, SESLM_LLM_STASH_OFF, 0);
    if (p->ca) seslm_llm_ctx_set_stash(p->ca, NULL, SESLM_LLM_STASH_OFF, 0);
    if (!st && how == PROBE_RECORD && p->sc &&
        (!seslm_llm_stash_complete(p->sc) || (p->sa && !seslm_llm_stash_complete(p->sa)))) {
        if (p->o->verbose)
            fprintf(stderr, "seslm recompile-decoder: the layer choice's text and answers outgrow %zu MiB of recorded "
                            "layer inputs: every probe runs the whole model\n", LLM_PRUNE_STASH_BYTES >> 20);
        seslm_llm_stash_free(p->sc), seslm_llm_stash_free(p->sa);
        p->sc = p->sa = NULL;
    }
    return st;
}

static seslm_status layer_choose(const char *path, const seslm_llm_prune_opts *o, double *base, double *base_answer, double *cost,
                                 double *step, double *text_cost, double *answer_cost, uint8_t *drop, int *order, int L) {
    layer_probe p = {.o = o};
    seslm_status st = seslm_llm_load(&p.m, path);
    if (!st) st = seslm_llm_ctx_new(&p.c, p.m, o->ctx, 0);
    if (!st && o->n_prompts > 0) {
        if (o->verbose)
            fprintf(stderr, "seslm recompile-decoder: the layer choice also scores the parent's answers to %d served prompts\n",
                    o->n_prompts);
        seslm_llm_answer_cache *cache = NULL;
        if (o->answers_cache) st = seslm_llm_answer_cache_open(o->answers_cache, p.m, o->verbose, &cache);
        if (!st) st = seslm_llm_answers_build(&p.ans, p.m, o->prompts, o->n_prompts, o->answer_tokens, cache, o->verbose);
        const seslm_status cst = seslm_llm_answer_cache_close(cache); // a cache that cannot be written fails nothing
        if (cst && o->verbose) fprintf(stderr, "seslm recompile-decoder: the answer cache was not written: %s\n", seslm_last_error());
        if (!st) st = seslm_llm_ctx_new(&p.ca, p.m, p.ans.max_len, 0);
    }
    if (!st && !o->choice_whole_passes) {
        st = seslm_llm_stash_new(&p.sc, p.m, LLM_PRUNE_STASH_BYTES);
        if (!st && p.ca) st = seslm_llm_stash_new(&p.sa, p.m, LLM_PRUNE_STASH_BYTES);
    }
    uint8_t *skip = calloc((size_t)L, 1);
    ranked *r = malloc((size_t)L * sizeof *r);
    if (!st && (!skip || !r)) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    double base_text = 0.0, base_ans = 0.0;
    if (!st) st = probe_loss(&p, NULL, PROBE_RECORD, 0, &base_text, &base_ans); // the parent's layer inputs
    if (!st) *base = base_text, *base_answer = base_ans;
    for (int l = 0; l < L && !st; l++) {
        memset(skip, 0, (size_t)L);
        skip[l] = 1;
        double t = 0.0, a = 0.0;
        st = probe_loss(&p, skip, PROBE_RESUME, l, &t, &a); // layers 0..l-1 as in the parent
        if (st) break;
        cost[l] = t - base_text + a - base_ans;
        if (text_cost) text_cost[l] = t - base_text;
        if (answer_cost) answer_cost[l] = a - base_ans;
        if (o->verbose && p.ca)
            fprintf(stderr, "seslm recompile-decoder: layer %d (of %d) bypassed: loss %+.4f nats/token (text %+.4f, answers %+.4f)\n",
                    l, L, cost[l], t - base_text, a - base_ans);
        else if (o->verbose)
            fprintf(stderr, "seslm recompile-decoder: layer %d (of %d) bypassed: loss %+.4f nats/token\n", l, L, cost[l]);
    }
    for (int l = 0; l < L && !st; l++) r[l].idx = l, r[l].score = -cost[l]; // by_score_desc: cheapest first
    if (!st) qsort(r, (size_t)L, sizeof *r, by_score_desc);
    for (int k = 0; k < o->drop_layers && !st; k++) {
        int best = -1;
        double best_loss = INFINITY;
        if (k && p.sc) { // the layer inputs with the layers chosen so far bypassed (their loss is step[order[k - 1]])
            double t = 0.0, a = 0.0;
            if ((st = probe_loss(&p, drop, PROBE_RECORD, 0, &t, &a))) break;
        }
        for (int i = 0, tried = 0; i < L && tried < (k ? LLM_PRUNE_RECHECK : 1) && !st; i++) {
            const int l = r[i].idx;
            if (drop[l]) continue;
            tried++;
            double loss = cost[l];
            if (k) { // re-measured with the layers already chosen
                memcpy(skip, drop, (size_t)L);
                skip[l] = 1;
                double t = 0.0, a = 0.0;
                st = probe_loss(&p, skip, PROBE_RESUME, l, &t, &a); // layers 0..l-1 as recorded with drop[]
                if (st) break;
                loss = t - base_text + a - base_ans;
            }
            if (loss < best_loss) best_loss = loss, best = l;
        }
        if (st) break;
        drop[best] = 1;
        step[best] = best_loss;
        order[k] = best;
        if (o->verbose)
            fprintf(stderr, "seslm recompile-decoder: drop layer %d: %d layer(s) bypassed cost %+.4f nats/token\n", best, k + 1,
                    best_loss);
    }
    free(skip), free(r);
    seslm_llm_stash_free(p.sc), seslm_llm_stash_free(p.sa);
    seslm_llm_answers_free(&p.ans);
    seslm_llm_ctx_free(p.ca);
    seslm_llm_ctx_free(p.c);
    seslm_llm_free(p.m);
    return st;
}

// ---- reconstruction: the parent's Gram matrices of the inputs of W_o and W_down on calibration text ----

/* Healing (llm_heal.h): for a dropped span b0..b whose kept neighbour before it is p, a uniform sample
 * (reservoir) of calibration tokens' rows: X the input of p's gate / up products, Y = out_b - mid_p. */
typedef struct {
    int p, b, C, cap;
    float *X, *Y;     // (cap, C)
    float *R;         // (cap) 1 / mean(out_b^2) of the row: the error as the next RMSNorm sees it
    int n;            // rows filled
    uint64_t seen;    // rows offered
    uint64_t rng;
    int *slot;        // (batch rows) the current batch's destination rows, -1: not sampled
    int slot_cap;
    int oom;
} heal_cap;

static void heal_capture(heal_cap *h, int l, int what, const float *x, int M, int K) {
    if (h->oom || K != h->C) return;
    if (l == h->p && what == SESLM_LLM_CAPTURE_MID) { // first of the three in a batch: choose the rows
        if (M > h->slot_cap) {
            int *s = realloc(h->slot, (size_t)M * sizeof *s);
            if (!s) {
                h->oom = 1;
                return;
            }
            h->slot = s, h->slot_cap = M;
        }
        for (int i = 0; i < M; i++) {
            h->seen++;
            if (h->n < h->cap) h->slot[i] = h->n++;
            else {
                const uint64_t j = seslm_llm_heal_rng(&h->rng) % h->seen;
                h->slot[i] = j < (uint64_t)h->cap ? (int)j : -1;
            }
            if (h->slot[i] >= 0)
                for (int k = 0; k < K; k++) h->Y[(size_t)h->slot[i] * K + k] = -x[(size_t)i * K + k];
        }
    } else if (l == h->p && what == SESLM_LLM_CAPTURE_FFN_IN) {
        for (int i = 0; i < M; i++)
            if (h->slot[i] >= 0) memcpy(h->X + (size_t)h->slot[i] * K, x + (size_t)i * K, (size_t)K * sizeof *x);
    } else if (l == h->b && what == SESLM_LLM_CAPTURE_OUT) {
        for (int i = 0; i < M; i++)
            if (h->slot[i] >= 0) {
                double ms = 0.0;
                for (int k = 0; k < K; k++) {
                    h->Y[(size_t)h->slot[i] * K + k] += x[(size_t)i * K + k];
                    ms += (double)x[(size_t)i * K + k] * x[(size_t)i * K + k];
                }
                h->R[h->slot[i]] = (float)(1.0 / (ms / K + 1e-6));
            }
    }
}

typedef struct {
    int L;
    heal_cap *heal;   // (n_heal) spans to heal, or NULL
    int n_heal;
    double **ga, **gf; // (L) (A+1)^2 and (F+1)^2, upper triangles
    double **sa, **sf; // (L) column sums of the W_o / W_down inputs (layers to drop: their mean contribution)
    uint64_t tokens;   // rows summed per layer
    double *z;
    size_t zcap;
    int oom;
} dec_calib;

static void dec_capture(void *user, int l, int what, const float *x, int M, int K) {
    dec_calib *d = user;
    for (int i = 0; i < d->n_heal; i++) heal_capture(&d->heal[i], l, what, x, M, K);
    if (what != SESLM_LLM_CAPTURE_ATTN && what != SESLM_LLM_CAPTURE_FFN) return;
    double *S = what == SESLM_LLM_CAPTURE_FFN ? d->sf[l] : d->sa[l];
    if (S)
        for (int i = 0; i < M; i++)
            for (int k = 0; k < K; k++) S[k] += x[(size_t)i * K + k];
    if (what == SESLM_LLM_CAPTURE_FFN && l == 0) d->tokens += (uint64_t)M;
    double *G = what == SESLM_LLM_CAPTURE_FFN ? d->gf[l] : d->ga[l];
    if (!G || d->oom) return;
    size_t need = (size_t)M * (size_t)(K + 1);
    if (need > d->zcap) {
        double *z = realloc(d->z, need * sizeof *z);
        if (!z) {
            d->oom = 1;
            return;
        }
        d->z = z, d->zcap = need;
    }
    seslm_gram_add(G, x, M, K, d->z);
}

static void dec_calib_free(dec_calib *d) {
    for (int l = 0; l < d->L; l++) {
        if (d->ga) free(d->ga[l]);
        if (d->gf) free(d->gf[l]);
        if (d->sa) free(d->sa[l]);
        if (d->sf) free(d->sf[l]);
    }
    free(d->ga), free(d->gf), free(d->sa), free(d->sf), free(d->z);
}

static seslm_status dec_calibrate(const char *path, const seslm_llm_prune_opts *o, dec_calib *d, int L, int A, int F,
                                  int want_attn, int want_ffn, const uint8_t *want_mean, heal_cap *heal, int n_heal) {
    memset(d, 0, sizeof *d);
    d->L = L;
    d->heal = heal, d->n_heal = n_heal;
    d->ga = calloc((size_t)L, sizeof *d->ga), d->gf = calloc((size_t)L, sizeof *d->gf);
    d->sa = calloc((size_t)L, sizeof *d->sa), d->sf = calloc((size_t)L, sizeof *d->sf);
    if (!d->ga || !d->gf || !d->sa || !d->sf) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    for (int l = 0; l < L; l++) {
        if (want_mean && want_mean[l]) { // a layer to drop: its inputs' means only
            if (!(d->sa[l] = calloc((size_t)A, sizeof(double))) || !(d->sf[l] = calloc((size_t)F, sizeof(double)))) d->oom = 1;
            continue;
        }
        if (want_attn && !(d->ga[l] = calloc((size_t)(A + 1) * (A + 1), sizeof(double)))) d->oom = 1;
        if (want_ffn && !(d->gf[l] = calloc((size_t)(F + 1) * (F + 1), sizeof(double)))) d->oom = 1;
    }
    if (d->oom) return seslm_fail(SESLM_ERR_NOMEM, "out of memory for %d layers of Gram matrices", L);
    seslm_llm *m = NULL;
    seslm_llm_ctx *c = NULL;
    seslm_status st = seslm_llm_load(&m, path);
    if (!st) st = seslm_llm_ctx_new(&c, m, o->ctx, 0);
    seslm_ppl_result r;
    if (!st) {
        seslm_llm_ctx_set_capture(c, dec_capture, d);
        st = seslm_llm_perplexity(c, o->calib, o->n_calib, &r, NULL, NULL);
    }
    for (int i = 0; i < d->n_heal; i++) d->oom |= d->heal[i].oom;
    if (!st && d->oom) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory in the calibration");
    if (!st && o->verbose)
        fprintf(stderr, "seslm recompile-decoder: calibration: %llu tokens of %d documents\n", (unsigned long long)r.n_tokens,
                r.n_docs);
    seslm_llm_ctx_free(c);
    seslm_llm_free(m);
    return st;
}

/* W (C rows, K) of t refitted on its kept input units (unit columns each) to the parent's output with a
 * bias (reconstruct.h); the weights quantized to `type` in *wq, the bias (C floats) in *bias. When the
 * refit's calibration error is not below plain slicing's (a ridge-dominated fit on too few tokens), the
 * plain slice is kept: *err is then *err_plain. */
static seslm_status refit(const gguf_tensor *t, int type, const gguf_tensor *tb, const int *keep, int nk, int unit,
                          const double *G, double ridge, uint8_t **wq, size_t *wbytes, float **bias, double *err, double *err_plain) {
    const int K = (int)t->ne[0], N = (int)t->ne[1], K2 = nk * unit;
    float *w = dequant(t), *b = calloc((size_t)N, sizeof *b), *wo = malloc((size_t)N * K2 * sizeof *wo);
    float *bo = malloc((size_t)N * sizeof *bo);
    const size_t ob = qb_row_bytes(type, K2);
    uint8_t *q = malloc((size_t)N * ob + 1);
    seslm_status st = SESLM_OK;
    if (!w || !b || !wo || !bo || !q || !ob) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    if (!st && tb) memcpy(b, tb->data, (size_t)N * sizeof *b);
    if (!st) st = seslm_reconstruct_linear(wo, bo, w, b, N, K, keep, nk, unit, G, ridge, err, err_plain);
    if (!st && !(*err <= *err_plain)) { // too little calibration text for the ridge: plain slicing is better, keep it
        for (int r = 0; r < N; r++)
            for (int i = 0; i < nk; i++)
                memcpy(wo + (size_t)r * K2 + (size_t)i * unit, w + (size_t)r * K + (size_t)keep[i] * unit, (size_t)unit * sizeof *wo);
        memcpy(bo, b, (size_t)N * sizeof *bo);
        *err = *err_plain;
    }
    for (int r = 0; r < N && !st; r++) qb_quantize_weight_row(type, wo + (size_t)r * K2, q + (size_t)r * ob, K2);
    free(w), free(b), free(wo);
    if (st) {
        free(q), free(bo);
        return st;
    }
    *wq = q, *wbytes = (size_t)N * ob, *bias = bo;
    return SESLM_OK;
}

/* A kept layer's bias, written as blk.L2.NM.bias when there is one: the refit's (b, freed here), else the
 * parent's (tb), plus a dropped neighbour's mean contribution (comp, C floats; may be NULL). */
static seslm_status put_bias(gguf_writer *w, int l2, const char *nm, float *b, const gguf_tensor *tb, const float *comp,
                             int C, size_t *bytes_out) {
    int nz = 0;
    for (int i = 0; comp && i < C; i++) nz |= comp[i] != 0.0f;
    if (!b && !tb && !nz) return SESLM_OK;
    if (!b) {
        if (!(b = calloc((size_t)C, sizeof *b))) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        if (tb) memcpy(b, tb->data, (size_t)C * sizeof *b);
    }
    for (int i = 0; nz && i < C; i++) b[i] += comp[i];
    char n[96];
    snprintf(n, sizeof n, "blk.%d.%s.bias", l2, nm);
    const int64_t ne[1] = {C};
    if (gguf_w_tensor(w, n, 1, ne, QB_F32, b, (size_t)C * sizeof *b, 1)) {
        free(b);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory for tensor %s", n);
    }
    *bytes_out += (size_t)C * sizeof *b;
    return SESLM_OK;
}

// ---- the plan and the file ----

static int is_key(const gguf_kv *kv, const char *k) { return kv->key.len == strlen(k) && memcmp(kv->key.s, k, kv->key.len) == 0; }

seslm_status seslm_llm_prune(const char *parent_path, const seslm_telemetry_view *tel, const seslm_llm_prune_opts *o,
                             const char *out_path, const char *plan_path, seslm_llm_prune_summary *sum) {
    memset(sum, 0, sizeof *sum);
    gguf_file f;
    seslm_status st = gguf_open(&f, parent_path);
    if (st) return st;
    // the parent's shape, read as the loader does (it has just been checked by seslm_llm_load in the caller)
    uint32_t L = 0, C = 0, F = 0, H = 0, HKV = 0, D = 0;
    gguf_get_u32(&f, "llama.block_count", &L);
    gguf_get_u32(&f, "llama.embedding_length", &C);
    gguf_get_u32(&f, "llama.feed_forward_length", &F);
    gguf_get_u32(&f, "llama.attention.head_count", &H);
    HKV = H;
    gguf_get_u32(&f, "llama.attention.head_count_kv", &HKV);
    D = H ? C / H : 0;
    gguf_get_u32(&f, "llama.attention.key_length", &D);
    const gguf_tensor *te = tensor(&f, -1, "token_embd");
    const gguf_kv *toks = gguf_find_kv(&f, "tokenizer.ggml.tokens");
    const int V = toks ? (int)toks->n : 0, G = HKV ? (int)(H / HKV) : 0;
    if (!L || !C || !F || !H || !HKV || !D || !te || !V || H % HKV) {
        gguf_close(&f);
        return seslm_fail(SESLM_ERR_FORMAT, "%s: not a llama GGUF file this runtime reads", parent_path);
    }
    if (!tel || tel->n_layers != (int)L || tel->vocab_size != V || tel->layers[0].n_heads != (int)H ||
        tel->layers[0].ffn_dim != (int)F) {
        gguf_close(&f);
        return seslm_fail(SESLM_ERR_SHAPE, "the telemetry is not of this decoder's shape (%u layers, %u heads, %u FFN, %d tokens)",
                          L, H, F, V);
    }
    int F2 = (int)ceil(o->ffn_keep * F / 32.0) * 32, KV2 = o->kv_keep > 0 ? o->kv_keep : (int)HKV;
    if (F2 > (int)F) F2 = (int)F;
    if (!(o->ffn_keep > 0.0 && o->ffn_keep <= 1.0) || F2 < 32 || KV2 > (int)HKV || o->drop_layers < 0 ||
        o->drop_layers >= (int)L || (o->drop_layers > 0 && o->n_calib <= 0)) {
        gguf_close(&f);
        return seslm_fail(SESLM_ERR_ARG, "options out of range (ffn_keep %g, kv_keep %d of %u, drop_layers %d of %u%s)",
                          o->ffn_keep, o->kv_keep, HKV, o->drop_layers, L,
                          o->drop_layers > 0 && o->n_calib <= 0 ? ", dropping layers needs calibration text" : "");
    }
    for (int i = 0; i < o->n_drop_list && !st; i++)
        if (o->drop_list[i] < 0 || o->drop_list[i] >= (int)L || o->drop_layers > 0)
            st = seslm_fail(SESLM_ERR_ARG, "layer %d to drop is not one of the parent's %u (or both a count and a list given)",
                            o->drop_list[i], L);
    if (st) {
        gguf_close(&f);
        return st;
    }
    const int H2 = KV2 * G;
    int L2 = (int)L - o->drop_layers; // minus the list's layers, below
    int *ffn_keep = malloc((size_t)L * (size_t)F2 * sizeof(int)), *kv_keep = malloc((size_t)L * (size_t)KV2 * sizeof(int));
    double *lcost = calloc(L, sizeof(double)), *lstep = calloc(L, sizeof(double)), *ltext = calloc(L, sizeof(double)),
           *lans = calloc(L, sizeof(double)), *score = malloc((size_t)(F > H ? F : H) * sizeof(double)), base = 0.0,
           base_answer = 0.0;
    uint8_t *drop = calloc(L, 1), *vkeep = malloc((size_t)V);
    int *drop_order = calloc(L, sizeof(int));
    int n_dropped_list = 0;
    for (int i = 0; drop && i < o->n_drop_list; i++) n_dropped_list += !drop[o->drop_list[i]], drop[o->drop_list[i]] = 1;
    L2 -= n_dropped_list;
    if (L2 < 1 && !st) st = seslm_fail(SESLM_ERR_ARG, "every layer would be dropped");
    gguf_writer *w = gguf_writer_new();
    cJSON *plan = cJSON_CreateObject();
    if (!ffn_keep || !kv_keep || !lcost || !lstep || !ltext || !lans || !score || !drop || !vkeep || !drop_order || !w || !plan) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    // layers
    if (!st && o->drop_layers > 0) {
        st = layer_choose(parent_path, o, &base, &base_answer, lcost, lstep, ltext, lans, drop, drop_order, (int)L);
    }
    // FFN neurons and KV groups per layer
    for (int l = 0; l < (int)L && !st; l++) {
        const seslm_layer_telemetry *T = &tel->layers[l];
        float *wo = dequant(tensor(&f, l, "attn_output"));
        if (!wo) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        // a neuron's mean energy on the traffic (with its W_down column's norm as a factor the 5%-cut student's
        // held-out perplexity was 1.8x worse without reconstruction, 2% better with it: bench/RESULTS.md 17)
        for (int n = 0; n < (int)F && !st; n++) score[n] = T->ffn_sq[n] / (double)(T->ffn_tokens ? T->ffn_tokens : 1);
        if (!st && top_k(score, (int)F, F2, ffn_keep + (size_t)l * F2)) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        for (int g = 0; g < (int)HKV && !st; g++) {
            score[g] = 0.0;
            for (int h = g * G; h < (g + 1) * G; h++) {
                double cn = 0.0;
                for (uint32_t r = 0; r < C; r++)
                    for (uint32_t d = 0; d < D; d++) {
                        double v = wo[(size_t)r * H * D + (size_t)h * D + d];
                        cn += v * v;
                    }
                score[g] += T->head_out_norm[h] / (double)(T->query_tokens ? T->query_tokens : 1) * sqrt(cn / D);
            }
        }
        if (!st && top_k(score, (int)HKV, KV2, kv_keep + (size_t)l * KV2)) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        free(wo);
    }
    // the parent's statistics for the refits
    dec_calib dc;
    memset(&dc, 0, sizeof dc);
    const int refit_attn = o->reconstruct && o->n_calib > 0 && KV2 < (int)HKV;
    const int refit_ffn = o->reconstruct && o->n_calib > 0 && F2 < (int)F;
    int any_drop = 0;
    for (int l = 0; l < (int)L; l++) any_drop |= drop ? drop[l] : 0;
    const int compensate = o->reconstruct && o->compensate && o->n_calib > 0 && any_drop;
    // healing: one span per run of dropped layers that has a kept layer before it
    heal_cap *hc = NULL;
    int n_heal = 0;
    const int heal = o->heal_steps > 0 && o->n_calib > 0 && any_drop;
    if (!st && o->heal_steps > 0 && F2 < (int)F)
        st = seslm_fail(SESLM_ERR_ARG, "healing (--heal-steps) does not combine with an FFN cut (--ffn-keep < 1) yet");
    if (!st && o->heal_steps > 0 && (o->heal_tokens < 64 || o->n_calib <= 0))
        st = seslm_fail(SESLM_ERR_ARG, "healing needs calibration text and at least 64 tokens (--heal-tokens %d)", o->heal_tokens);
    if (!st && heal) {
        if (!(hc = calloc((size_t)L, sizeof *hc))) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        for (int l = 1; l < (int)L && !st; l++) {
            if (!drop[l] || drop[l - 1]) continue;
            int b = l;
            while (b + 1 < (int)L && drop[b + 1]) b++;
            heal_cap *h = &hc[n_heal++];
            h->p = l - 1, h->b = b, h->C = (int)C, h->cap = o->heal_tokens, h->rng = 0x5eed0000ULL + (uint64_t)l;
            h->X = malloc((size_t)h->cap * C * sizeof *h->X), h->Y = malloc((size_t)h->cap * C * sizeof *h->Y);
            h->R = malloc((size_t)h->cap * sizeof *h->R);
            if (!h->X || !h->Y || !h->R) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory for %d healing tokens", h->cap);
        }
    }
    if (!st && (refit_attn || refit_ffn || compensate || n_heal))
        st = dec_calibrate(parent_path, o, &dc, (int)L, (int)(H * D), (int)F, refit_attn, refit_ffn, compensate ? drop : NULL,
                           hc, n_heal);
    /* A dropped layer's mean contribution to the residual stream over the calibration tokens (W_o mean(ctx) + b_o +
     * W_down mean(h) + b_down) is added to the bias of the kept layer before it (its W_down's; the next kept layer's
     * W_o's for a dropped first layer): the best constant in place of the layer. comp (L, C), per kept layer. */
    float *comp_f = compensate ? calloc((size_t)L * C, sizeof(float)) : NULL, *comp_a = compensate ? calloc((size_t)L * C, sizeof(float)) : NULL;
    if (compensate && !st && (!comp_f || !comp_a)) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    for (int l = 0; compensate && l < (int)L && !st; l++) {
        if (!drop[l]) continue;
        int prev = l - 1, next = l + 1;
        while (prev >= 0 && drop[prev]) prev--;
        while (next < (int)L && drop[next]) next++;
        float *dst = prev >= 0 ? comp_f + (size_t)prev * C : next < (int)L ? comp_a + (size_t)next * C : NULL;
        if (!dst || !dc.tokens) continue;
        const gguf_tensor *mats[2] = {tensor(&f, l, "attn_output"), tensor(&f, l, "ffn_down")};
        const gguf_tensor *bs[2] = {tensor_bias(&f, l, "attn_output"), tensor_bias(&f, l, "ffn_down")};
        const double *sums[2] = {dc.sa[l], dc.sf[l]};
        for (int k = 0; k < 2 && !st; k++) {
            float *w = dequant(mats[k]);
            if (!w) {
                st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
                break;
            }
            const int K = (int)mats[k]->ne[0];
            for (uint32_t r = 0; r < C; r++) {
                double acc = bs[k] ? ((const float *)bs[k]->data)[r] : 0.0;
                for (int j = 0; j < K; j++) acc += (double)w[(size_t)r * K + j] * sums[k][j] / (double)dc.tokens;
                dst[r] += (float)acc;
            }
            free(w);
        }
    }
    /* Healing: the kept layer p before each span trains its FFN (llm_heal.h), starting from the parent's with the
     * span's mean contribution in its bias; the trained matrices, quantized to heal_type, replace p's only when the
     * held-out error with them is below the starting point's. hq (L, 3): p's gate / up / down bytes, hb (L): its bias. */
    uint8_t **hq = n_heal ? calloc((size_t)L * 3, sizeof *hq) : NULL;
    size_t *hqb = n_heal ? calloc((size_t)L * 3, sizeof *hqb) : NULL;
    float **hb = n_heal ? calloc((size_t)L, sizeof *hb) : NULL;
    double *hval = n_heal ? calloc((size_t)L * 3, sizeof *hval) : NULL; // start, trained (F32), trained (quantized)
    if (n_heal && !st && (!hq || !hqb || !hb || !hval)) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n_heal && !st; i++) {
        heal_cap *h = &hc[i];
        const int p = h->p, n = h->n, n_val = n / 8;
        sum->n_heal_tried++;
        if (n_val < 8) {
            if (o->verbose) fprintf(stderr, "seslm recompile-decoder: too few calibration tokens (%d) to heal layer %d\n", n, p);
            continue;
        }
        const gguf_tensor *tm[3] = {tensor(&f, p, "ffn_gate"), tensor(&f, p, "ffn_up"), tensor(&f, p, "ffn_down")};
        const gguf_tensor *tbd = tensor_bias(&f, p, "ffn_down");
        float *wm[3] = {dequant(tm[0]), dequant(tm[1]), dequant(tm[2])}, *bd = calloc(C, sizeof *bd);
        if (!wm[0] || !wm[1] || !wm[2] || !bd) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        for (uint32_t r = 0; r < C && !st; r++)
            bd[r] = (tbd ? ((const float *)tbd->data)[r] : 0.0f) + (comp_f ? comp_f[(size_t)p * C + r] : 0.0f);
        seslm_llm_heal_opts ho;
        seslm_llm_heal_opts_default(&ho);
        ho.steps = o->heal_steps, ho.lr = o->heal_lr > 0 ? o->heal_lr : ho.lr, ho.seed = 1 + (uint64_t)p, ho.verbose = o->verbose;
        if (!st && o->verbose)
            fprintf(stderr, "seslm recompile-decoder: healing layer %d for the dropped layers %d..%d on %d tokens (%d held out)\n", p,
                    p + 1, h->b, n, n_val);
        double v0 = 0, v1 = 0;
        if (!st) st = seslm_llm_heal_ffn(wm[0], wm[1], wm[2], bd, (int)C, (int)F, h->X, h->Y, h->R, n, n_val, &ho, &v0, &v1);
        // the trained matrices in the file's type, and the held-out error with them as stored
        for (int k = 0; k < 3 && !st; k++) {
            const int ty = o->heal_type >= 0 ? o->heal_type : o->layer_type >= 0 ? o->layer_type : tm[k]->type;
            const int K = (int)tm[k]->ne[0], N = (int)tm[k]->ne[1];
            const size_t rb = qb_row_bytes(ty, K);
            uint8_t *q = rb ? malloc((size_t)N * rb) : NULL;
            if (!q) {
                st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
                break;
            }
            for (int r = 0; r < N; r++) {
                qb_quantize_weight_row(ty, wm[k] + (size_t)r * K, q + (size_t)r * rb, K);
                qb_dequantize_row(ty, q + (size_t)r * rb, wm[k] + (size_t)r * K, K);
            }
            hq[3 * p + k] = q, hqb[3 * p + k] = (size_t)N * rb;
        }
        const double vq = st ? NAN : seslm_llm_heal_mse(wm[0], wm[1], wm[2], bd, (int)C, (int)F, h->X, h->Y, h->R, n - n_val, n);
        hval[3 * p] = v0, hval[3 * p + 1] = v1, hval[3 * p + 2] = vq;
        if (!st && vq < v0) {
            hb[p] = bd, bd = NULL, sum->n_healed++;
        } else {
            for (int k = 0; k < 3; k++) free(hq[3 * p + k]), hq[3 * p + k] = NULL;
        }
        if (!st && o->verbose)
            fprintf(stderr, "seslm recompile-decoder: layer %d healed: held-out error %.5g -> %.5g (F32) -> %.5g (stored): %s\n", p,
                    v0, v1, vq, hb[p] ? "kept" : "not kept (no better than the mean)");
        free(wm[0]), free(wm[1]), free(wm[2]), free(bd);
        free(h->X), free(h->Y), free(h->R), free(h->slot), h->X = h->Y = h->R = NULL, h->slot = NULL;
    }
    double *err = calloc((size_t)L * 4, sizeof(double)); // per layer: W_o refit / plain, W_down refit / plain
    if (!err && !st) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    // vocabulary
    int V2 = V;
    int32_t *new_id = NULL, *old_of = NULL;
    if (!st) {
        if (o->vocab_general >= 0) st = vocab_choose(&f, tel, o, vkeep, V);
        else memset(vkeep, 1, (size_t)V);
    }
    if (!st) {
        new_id = malloc((size_t)V * sizeof *new_id), old_of = malloc((size_t)V * sizeof *old_of);
        if (!new_id || !old_of) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        V2 = 0;
        for (int i = 0; i < V && !st; i++) new_id[i] = vkeep[i] ? (old_of[V2] = i, V2++) : -1;
    }
    // metadata: the parent's, with the new shape and the cut tokenizer
    gguf_str *tstr = NULL, *mstr = NULL;
    int32_t *ti32 = NULL;
    float *tf32 = NULL;
    for (int i = 0; i < f.n_kv && !st; i++) {
        const gguf_kv *kv = &f.kv[i];
        int rc = 0;
        if (is_key(kv, "general.alignment")) continue; // the writer aligns to 32
        if (is_key(kv, "seslm.parent_sha256") || is_key(kv, "seslm.generation")) continue; // written below
        else if (is_key(kv, "llama.block_count")) rc = gguf_w_u32(w, "llama.block_count", (uint32_t)L2);
        else if (is_key(kv, "llama.feed_forward_length")) rc = gguf_w_u32(w, "llama.feed_forward_length", (uint32_t)F2);
        else if (is_key(kv, "llama.attention.head_count")) rc = gguf_w_u32(w, "llama.attention.head_count", (uint32_t)H2);
        else if (is_key(kv, "llama.attention.head_count_kv")) rc = gguf_w_u32(w, "llama.attention.head_count_kv", (uint32_t)KV2);
        else if (is_key(kv, "llama.attention.key_length") || is_key(kv, "llama.attention.value_length")) continue;
        else if (is_key(kv, "llama.vocab_size")) rc = gguf_w_u32(w, "llama.vocab_size", (uint32_t)V2);
        else if (V2 < V && kv->type == GGUF_ARRAY && kv->n == (uint64_t)V && kv->key.len > 16 &&
                 memcmp(kv->key.s, "tokenizer.ggml.", 15) == 0) { // per-token arrays: tokens, token_type, scores
            char key[128];
            snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.s);
            if (kv->arr_type == GGUF_STRING) {
                if (!tstr && !(tstr = malloc((size_t)V2 * sizeof *tstr))) rc = -1;
                for (int j = 0; !rc && j < V2; j++) tstr[j] = kv->strs[old_of[j]];
                rc = rc || gguf_w_arr_str(w, key, tstr, (uint64_t)V2);
            } else if (kv->arr_type == GGUF_F32) {
                if (!tf32 && !(tf32 = malloc((size_t)V2 * sizeof *tf32))) rc = -1;
                for (int j = 0; !rc && j < V2; j++) tf32[j] = gguf_arr_f32(kv, (uint64_t)old_of[j]);
                rc = rc || gguf_w_arr_f32(w, key, tf32, (uint64_t)V2);
            } else {
                if (!ti32 && !(ti32 = malloc((size_t)V2 * sizeof *ti32))) rc = -1;
                for (int j = 0; !rc && j < V2; j++) ti32[j] = (int32_t)gguf_arr_int(kv, (uint64_t)old_of[j]);
                rc = rc || gguf_w_arr_i32(w, key, ti32, (uint64_t)V2);
            }
        } else if (V2 < V && is_key(kv, "tokenizer.ggml.merges")) {
            uint64_t nm = 0;
            if (!(mstr = vocab_merges(&f, vkeep, V, &nm))) rc = -1;
            rc = rc || gguf_w_arr_str(w, "tokenizer.ggml.merges", mstr, nm);
        } else if (V2 < V && kv->type != GGUF_ARRAY && kv->key.len > 24 && memcmp(kv->key.s, "tokenizer.ggml.", 15) == 0 &&
                   memcmp(kv->key.s + kv->key.len - 9, "_token_id", 9) == 0) { // special ids, renumbered
            char key[128];
            snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.s);
            uint32_t id = 0;
            if (gguf_get_u32(&f, key, &id) == 0 && id < (uint32_t)V && new_id[id] >= 0) rc = gguf_w_u32(w, key, (uint32_t)new_id[id]);
        } else rc = gguf_w_copy_kv(w, kv);
        if (rc) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory writing the metadata");
    }
    if (!st && (gguf_w_u32(w, "llama.attention.key_length", D) || gguf_w_u32(w, "llama.attention.value_length", D)))
        st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    // lineage, as an encoder student's config.json carries it: the registry links the student to its parent
    if (!st) {
        seslm_llm *pm = NULL;
        char psha[65] = "";
        if (seslm_llm_load(&pm, parent_path) == SESLM_OK) snprintf(psha, sizeof psha, "%s", seslm_llm_sha256(pm));
        seslm_llm_free(pm);
        uint32_t gen = 0;
        gguf_get_u32(&f, "seslm.generation", &gen);
        if (!psha[0]) st = seslm_fail(SESLM_ERR_IO, "%s: cannot hash the parent", parent_path);
        else if (gguf_w_str(w, "seslm.parent_sha256", psha) || gguf_w_u32(w, "seslm.generation", gen + 1))
            st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    // tensors
    int64_t ne[2];
    size_t nb = 0;
    uint8_t *buf = NULL;
    const int lt = o->layer_type; // every layer matrix re-quantized to it (< 0: its own type)
#define ADDM(name, n0, n1, ty, data)                                                                  \
    do {                                                                                               \
        const int ty_ = lt >= 0 ? lt : (ty);                                                           \
        uint8_t *d_ = retype_rows(data, ty, ty_, (int)(n0), (int)(n1), &nb);                           \
        buf = d_;                                                                                      \
        ADD(name, n0, n1, ty_, d_);                                                                    \
    } while (0)
#define ADD(name, n0, n1, ty, data)                                                                   \
    do {                                                                                               \
        ne[0] = (n0), ne[1] = (n1);                                                                    \
        if (!(data) || gguf_w_tensor(w, name, (n1) ? 2 : 1, ne, ty, data, nb, 1)) {                    \
            st = seslm_fail(SESLM_ERR_NOMEM, "out of memory for tensor %s", name);                     \
        } else sum->bytes_out += nb;                                                                   \
    } while (0)
    if (!st) {
        const int et = o->embd_type >= 0 ? o->embd_type : te->type;
        buf = et == te->type ? take_rows(te, old_of, V2, &nb) : requant_rows(te, old_of, V2, et, &nb);
        ADD("token_embd.weight", C, V2, et, buf);
        const gguf_tensor *on = tensor(&f, -1, "output_norm"), *out = tensor(&f, -1, "output");
        if (!st && on) {
            buf = copy_all(on, &nb);
            ADD("output_norm.weight", C, 0, on->type, buf);
        }
        if (!st && out) {
            buf = take_rows(out, old_of, V2, &nb);
            ADD("output.weight", C, V2, out->type, buf);
        }
    }
    int *rows = malloc((size_t)(2 * H * D + 1) * sizeof(int));
    if (!rows && !st) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    for (int l = 0, l2 = 0; l < (int)L && !st; l++) {
        if (drop[l]) continue;
        char n[96];
        const int *kg = kv_keep + (size_t)l * KV2, *kf = ffn_keep + (size_t)l * F2;
        const char *norms[2] = {"attn_norm", "ffn_norm"};
        for (int k = 0; k < 2 && !st; k++) {
            const gguf_tensor *t = tensor(&f, l, norms[k]);
            snprintf(n, sizeof n, "blk.%d.%s.weight", l2, norms[k]);
            buf = t ? copy_all(t, &nb) : NULL;
            ADD(n, C, 0, t ? t->type : 0, buf);
        }
        int nq = 0, nkv = 0; // rows of Q (query heads of the kept groups) and of K / V (the kept KV heads)
        for (int i = 0; i < KV2; i++)
            for (int h = kg[i] * G; h < (kg[i] + 1) * G; h++)
                for (uint32_t d = 0; d < D; d++) rows[nq++] = h * (int)D + (int)d;
        int *kvrows = rows + nq;
        for (int i = 0; i < KV2; i++)
            for (uint32_t d = 0; d < D; d++) kvrows[nkv++] = kg[i] * (int)D + (int)d;
        const gguf_tensor *t;
        t = tensor(&f, l, "attn_q"), snprintf(n, sizeof n, "blk.%d.attn_q.weight", l2), buf = take_rows(t, rows, nq, &nb);
        ADDM(n, C, nq, t->type, buf);
        if (st) break;
        t = tensor(&f, l, "attn_k"), snprintf(n, sizeof n, "blk.%d.attn_k.weight", l2), buf = take_rows(t, kvrows, nkv, &nb);
        ADDM(n, C, nkv, t->type, buf);
        if (st) break;
        t = tensor(&f, l, "attn_v"), snprintf(n, sizeof n, "blk.%d.attn_v.weight", l2), buf = take_rows(t, kvrows, nkv, &nb);
        ADDM(n, C, nkv, t->type, buf);
        if (st) break;
        t = tensor(&f, l, "attn_output"), snprintf(n, sizeof n, "blk.%d.attn_output.weight", l2);
        const gguf_tensor *tb = tensor_bias(&f, l, "attn_output");
        float *bias = NULL;
        // a matrix cut by column is re-quantized anyway: straight to the layer type (once, not twice)
        const int ot = nq == (int)(H * D) ? t->type : lt >= 0 ? lt : t->type;
        if (nq == (int)(H * D)) buf = copy_all(t, &nb); // nothing cut: the bytes as they are
        else if (refit_attn) {
            int heads[1024], nh = 0;
            for (int i = 0; i < KV2 && nh < 1024; i++)
                for (int h = kg[i] * G; h < (kg[i] + 1) * G; h++) heads[nh++] = h;
            st = refit(t, ot, tb, heads, nh, (int)D, dc.ga[l], o->ridge, &buf, &nb, &bias, &err[4 * l], &err[4 * l + 1]);
            if (st) break;
        } else buf = take_cols(t, rows, nq, ot, &nb);
        ADDM(n, nq, C, ot, buf);
        if (st) break;
        if ((st = put_bias(w, l2, "attn_output", bias, tb, comp_a ? comp_a + (size_t)l * C : NULL, (int)C, &sum->bytes_out)))
            break;
        if (hb && hb[l]) { // the trained FFN (F2 == F): its bytes, and its bias in place of the parent's + the span's mean
            static const char *nm[3] = {"ffn_gate", "ffn_up", "ffn_down"};
            for (int k = 0; k < 3 && !st; k++) {
                snprintf(n, sizeof n, "blk.%d.%s.weight", l2, nm[k]);
                buf = hq[3 * l + k], hq[3 * l + k] = NULL, nb = hqb[3 * l + k];
                ADD(n, k < 2 ? C : F, k < 2 ? F : C, o->heal_type >= 0 ? o->heal_type : lt >= 0 ? lt : tensor(&f, l, nm[k])->type, buf);
            }
            if (st) break;
            float *b = hb[l];
            hb[l] = NULL; // put_bias takes it (and frees it on failure)
            if ((st = put_bias(w, l2, "ffn_down", b, NULL, NULL, (int)C, &sum->bytes_out))) break;
            l2++;
            continue;
        }
        t = tensor(&f, l, "ffn_gate"), snprintf(n, sizeof n, "blk.%d.ffn_gate.weight", l2), buf = take_rows(t, kf, F2, &nb);
        ADDM(n, C, F2, t->type, buf);
        if (st) break;
        t = tensor(&f, l, "ffn_up"), snprintf(n, sizeof n, "blk.%d.ffn_up.weight", l2), buf = take_rows(t, kf, F2, &nb);
        ADDM(n, C, F2, t->type, buf);
        if (st) break;
        t = tensor(&f, l, "ffn_down"), snprintf(n, sizeof n, "blk.%d.ffn_down.weight", l2);
        tb = tensor_bias(&f, l, "ffn_down");
        bias = NULL;
        const int dt = F2 == (int)F ? t->type : lt >= 0 ? lt : t->type;
        if (F2 == (int)F) buf = copy_all(t, &nb);
        else if (refit_ffn) {
            st = refit(t, dt, tb, kf, F2, 1, dc.gf[l], o->ridge, &buf, &nb, &bias, &err[4 * l + 2], &err[4 * l + 3]);
            if (st) break;
        } else buf = take_cols(t, kf, F2, dt, &nb);
        ADDM(n, F2, C, dt, buf);
        if (st) break;
        if ((st = put_bias(w, l2, "ffn_down", bias, tb, comp_f ? comp_f + (size_t)l * C : NULL, (int)C, &sum->bytes_out)))
            break;
        l2++;
    }
#undef ADD
#undef ADDM
    free(rows);
    for (int i = 0; i < f.n_tensors; i++) sum->bytes_in += f.tensors[i].nbytes;
    if (!st) st = gguf_w_write(w, out_path);
    // the plan, for lineage and audit
    if (!st && plan_path) {
        cJSON_AddStringToObject(plan, "kind", "decoder");
        cJSON_AddStringToObject(plan, "parent", parent_path);
        cJSON_AddNumberToObject(plan, "ffn_keep", F2);
        cJSON_AddNumberToObject(plan, "kv_groups_keep", KV2);
        cJSON_AddNumberToObject(plan, "vocab_keep", V2);
        cJSON_AddNumberToObject(plan, "calibration_loss", base); // the parent's, nats/token
        if (o->drop_layers > 0 && o->n_prompts > 0) cJSON_AddNumberToObject(plan, "answer_loss", base_answer); // per answer token
        if (o->drop_layers > 0) // the greedy choice in order: its first k are the choice for k layers (seslm evolve reuses it)
            cJSON_AddItemToObject(plan, "drop_order", cJSON_CreateIntArray(drop_order, o->drop_layers));
        cJSON *ls = cJSON_AddArrayToObject(plan, "layers");
        for (int l = 0; l < (int)L; l++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "parent_layer", l);
            cJSON_AddBoolToObject(e, "dropped", drop[l]);
            if (o->drop_layers > 0) cJSON_AddNumberToObject(e, "loss_if_dropped", lcost[l]);
            if (o->drop_layers > 0 && o->n_prompts > 0) { // its two parts: the calibration text's and the answers'
                cJSON_AddNumberToObject(e, "text_loss_if_dropped", ltext[l]);
                cJSON_AddNumberToObject(e, "answer_loss_if_dropped", lans[l]);
            }
            if (o->drop_layers > 0 && drop[l]) cJSON_AddNumberToObject(e, "loss_of_set_when_chosen", lstep[l]);
            cJSON_AddItemToObject(e, "kv_groups", cJSON_CreateIntArray(kv_keep + (size_t)l * KV2, KV2));
            if (refit_attn) {
                cJSON_AddNumberToObject(e, "attn_out_rel_err", err[4 * l]);
                cJSON_AddNumberToObject(e, "attn_out_rel_err_plain", err[4 * l + 1]);
            }
            if (refit_ffn) {
                cJSON_AddNumberToObject(e, "ffn_out_rel_err", err[4 * l + 2]);
                cJSON_AddNumberToObject(e, "ffn_out_rel_err_plain", err[4 * l + 3]);
            }
            if (hval && (hval[3 * l] > 0.0 || hval[3 * l + 2] > 0.0)) {
                cJSON *hj = cJSON_AddObjectToObject(e, "heal");
                cJSON_AddNumberToObject(hj, "held_out_mse_start", hval[3 * l]);
                cJSON_AddNumberToObject(hj, "held_out_mse_trained", hval[3 * l + 1]);
                cJSON_AddNumberToObject(hj, "held_out_mse_stored", hval[3 * l + 2]);
                cJSON_AddBoolToObject(hj, "kept", hval[3 * l + 2] < hval[3 * l]);
            }
            cJSON_AddItemToObject(e, "ffn_neurons", cJSON_CreateIntArray(ffn_keep + (size_t)l * F2, F2));
            cJSON_AddItemToArray(ls, e);
        }
        char *js = cJSON_PrintUnformatted(plan);
        FILE *pf = js ? fopen(plan_path, "w") : NULL;
        if (!pf || fputs(js, pf) < 0 || fputc('\n', pf) < 0) st = seslm_fail(SESLM_ERR_IO, "%s: cannot write the plan", plan_path);
        if (pf && fclose(pf) != 0 && !st) st = seslm_fail(SESLM_ERR_IO, "%s: cannot write the plan", plan_path);
        free(js);
    }
    sum->n_layer_in = (int)L, sum->n_layer_out = L2, sum->ffn_in = (int)F, sum->ffn_out = F2, sum->heads_in = (int)H;
    sum->heads_out = H2, sum->kv_in = (int)HKV, sum->kv_out = KV2, sum->vocab_in = V, sum->vocab_out = V2;
    cJSON_Delete(plan);
    dec_calib_free(&dc);
    for (int i = 0; i < n_heal; i++) free(hc[i].X), free(hc[i].Y), free(hc[i].R), free(hc[i].slot);
    for (int i = 0; hq && i < 3 * (int)L; i++) free(hq[i]);
    for (int i = 0; hb && i < (int)L; i++) free(hb[i]);
    free(hc), free(hq), free(hqb), free(hb), free(hval);
    free(err), free(comp_f), free(comp_a);
    gguf_writer_free(w);
    free(ffn_keep), free(kv_keep), free(lcost), free(lstep), free(ltext), free(lans), free(score), free(drop), free(vkeep), free(new_id), free(old_of);
    free(drop_order);
    free(tstr), free(mstr), free(ti32), free(tf32);
    gguf_close(&f);
    return st;
}
