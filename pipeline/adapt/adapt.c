/* adapt.c — SetFit-style contrastive training of LoRA adapters, and the merged model (adapt.h). */
#include "adapt.h"

#include "model_internal.h"
#include "model_verify.h"
#include "quant.h"
#include "safetensors_write.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

void adapt_opts_default(adapt_opts *o) {
    memset(o, 0, sizeof *o);
    o->rank = 8;
    o->alpha = 16;
    o->steps = 0;
    o->pairs = 16;
    o->lr = 5e-4f;
    o->weight_decay = 0.01f;
    o->clip_norm = 1.0f;
    o->max_tokens = 64;
    o->seed = 42;
    o->general_per_step = 8;
    o->objective = ADAPT_INBATCH;
    o->inbatch_scale = 20.0f;
    o->head_lr_mult = 4.0f;
    o->w_general = 8.0f; // 1 let feedback on 14 confused intents cost retrieval (0.72 agreement); 8 kept 0.84, same gain
    o->negatives = ADAPT_NEG_NEAR;
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// a batch's rows: 2 x pairs (at most 512) + general sentences (at most 512)
#define ADAPT_MAX_ROWS (3 * 512)

// ---- training ------------------------------------------------------------------------------------

typedef struct {
    int n, n_classes;
    int32_t **ids;
    int *len, *y;
    int **members, *count; // per class: its examples
} examples;

static void examples_free(examples *e) {
    for (int i = 0; i < e->n; i++) free(e->ids[i]);
    for (int c = 0; c < e->n_classes; c++) free(e->members ? e->members[c] : NULL);
    free(e->ids), free(e->len), free(e->y), free(e->members), free(e->count);
    memset(e, 0, sizeof *e);
}

static seslm_status examples_make(examples *e, const seslm_model *m, const char *const *texts, const char *const *labels,
                                  int n, int max_tokens) {
    memset(e, 0, sizeof *e);
    const seslm_tokenizer *tok = seslm_model_tokenizer(m);
    e->ids = calloc((size_t)n, sizeof *e->ids);
    e->len = calloc((size_t)n, sizeof(int));
    e->y = calloc((size_t)n, sizeof(int));
    const char **names = calloc((size_t)n, sizeof *names);
    int32_t *buf = malloc(8192 * sizeof(int32_t));
    seslm_status st = e->ids && e->len && e->y && names && buf ? SESLM_OK : seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    for (int i = 0; st == SESLM_OK && i < n; i++) {
        int nid = 0;
        if (!texts[i] || !labels[i] || !*labels[i]) {
            st = seslm_fail(SESLM_ERR_ARG, "adapt: example %d has no text or no label", i);
            break;
        }
        if ((st = seslm_tokenizer_encode(tok, texts[i], strlen(texts[i]), buf, 8192, &nid)) != SESLM_OK) {
            st = seslm_fail(SESLM_ERR_ARG, "adapt: example %d: %s", i, seslm_last_error());
            break;
        }
        if (nid > max_tokens) buf[max_tokens - 1] = buf[nid - 1], nid = max_tokens; // keep [SEP]
        if (!(e->ids[i] = malloc((size_t)nid * sizeof(int32_t)))) {
            st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
            break;
        }
        memcpy(e->ids[i], buf, (size_t)nid * sizeof(int32_t));
        e->len[i] = nid;
        int c = 0;
        while (c < e->n_classes && strcmp(names[c], labels[i]) != 0) c++;
        if (c == e->n_classes) names[e->n_classes++] = labels[i];
        e->y[i] = c;
        e->n = i + 1;
    }
    if (st == SESLM_OK) {
        e->members = calloc((size_t)e->n_classes, sizeof *e->members);
        e->count = calloc((size_t)e->n_classes, sizeof(int));
        if (!e->members || !e->count) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        for (int c = 0; st == SESLM_OK && c < e->n_classes; c++)
            if (!(e->members[c] = malloc((size_t)n * sizeof(int)))) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        for (int i = 0; st == SESLM_OK && i < n; i++) e->members[e->y[i]][e->count[e->y[i]]++] = i;
    }
    int pairable = 0;
    for (int c = 0; st == SESLM_OK && c < e->n_classes; c++) pairable |= e->count[c] >= 2;
    if (st == SESLM_OK && (e->n_classes < 2 || !pairable))
        st = seslm_fail(SESLM_ERR_ARG, "adapt: need at least 2 intents and one intent with 2 examples (got %d intents)",
                        e->n_classes);
    free(names), free(buf);
    if (st != SESLM_OK) examples_free(e);
    return st;
}

/* Tokenized general sentences (truncated like the examples); unusable ones skipped. */
static seslm_status tokenize_all(const seslm_model *m, const char *const *texts, int n, int max_tokens, int32_t ***ids_out,
                                 int **len_out, int *n_out) {
    const seslm_tokenizer *tok = seslm_model_tokenizer(m);
    int32_t **ids = calloc((size_t)n + 1, sizeof *ids), *buf = malloc(8192 * sizeof(int32_t));
    int *len = calloc((size_t)n + 1, sizeof(int)), k = 0;
    if (!ids || !len || !buf) {
        free(ids), free(len), free(buf);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        int nid = 0;
        if (!texts[i] || seslm_tokenizer_encode(tok, texts[i], strlen(texts[i]), buf, 8192, &nid) != SESLM_OK || nid < 2) continue;
        if (nid > max_tokens) buf[max_tokens - 1] = buf[nid - 1], nid = max_tokens;
        if (!(ids[k] = malloc((size_t)nid * sizeof(int32_t)))) break;
        memcpy(ids[k], buf, (size_t)nid * sizeof(int32_t));
        len[k++] = nid;
    }
    free(buf);
    *ids_out = ids, *len_out = len, *n_out = k;
    return SESLM_OK;
}

/* Two distinct examples of intent c (it has at least 2). */
static void draw_two(const examples *e, int c, uint64_t *rs, int *a, int *b) {
    const int i = (int)(splitmix64(rs) % (uint64_t)e->count[c]);
    int j = (int)(splitmix64(rs) % (uint64_t)(e->count[c] - 1));
    if (j >= i) j++;
    *a = e->members[c][i], *b = e->members[c][j];
}

/* pairs (anchor, positive) of the same intent, each pair's intent different from the others' (as far as
 * there are intents with 2 examples): the other positives of the batch are the anchor's negatives. */
static int draw_inbatch(const examples *e, int P, uint64_t *rs, int *a, int *b) {
    int *used = calloc((size_t)e->n_classes, sizeof(int)), k = 0;
    if (!used) return 0;
    int pairable = 0;
    for (int c = 0; c < e->n_classes; c++) pairable += e->count[c] >= 2;
    for (int tries = 0; k < P && tries < 50 * P; tries++) {
        const int c = (int)(splitmix64(rs) % (uint64_t)e->n_classes);
        if (e->count[c] < 2 || (used[c] && k < pairable)) continue;
        used[c] = 1;
        draw_two(e, c, rs, &a[k], &b[k]);
        k++;
    }
    free(used);
    return k;
}

/* The same, with the batch's intents close together (hard negatives): one pairable intent at random, the
 * rest drawn from its 2P nearest intents (near[c]: the others by the cosine of the base's mean embeddings,
 * nearest first), then at random if those run out. With uniform intents a batch of 16 out of 150 rarely
 * holds the two intents the head confuses ("shopping_list" / "shopping_list_update"); here it usually does. */
static int draw_inbatch_near(const examples *e, const int *near, int P, uint64_t *rs, int *a, int *b) {
    const int K = e->n_classes;
    int *pick = malloc((size_t)(2 * P + 1) * sizeof(int)), *used = calloc((size_t)K, sizeof(int)), np = 0, k = 0;
    if (!pick || !used) {
        free(pick), free(used);
        return 0;
    }
    int c0;
    do c0 = (int)(splitmix64(rs) % (uint64_t)K);
    while (e->count[c0] < 2);
    pick[np++] = c0;
    for (int j = 0; j < K - 1 && np < 2 * P + 1; j++)
        if (e->count[near[(size_t)c0 * (K - 1) + j]] >= 2) pick[np++] = near[(size_t)c0 * (K - 1) + j];
    for (int i = 1; i < np; i++) { // shuffle the neighbours (c0 stays first)
        const int j = 1 + (int)(splitmix64(rs) % (uint64_t)i), t = pick[i];
        pick[i] = pick[j], pick[j] = t;
    }
    for (int i = 0; i < np && k < P; i++) {
        const int c = pick[i];
        used[c] = 1;
        draw_two(e, c, rs, &a[k], &b[k]);
        k++;
    }
    free(pick), free(used);
    if (k < P) { // fewer near intents than pairs: the rest at random, as draw_inbatch
        int ra[512], rb[512];
        const int m = draw_inbatch(e, P, rs, ra, rb);
        for (int i = 0; i < m && k < P; i++) {
            int dup = 0;
            for (int j = 0; j < k && !dup; j++) dup = e->y[a[j]] == e->y[ra[i]];
            if (!dup) a[k] = ra[i], b[k] = rb[i], k++;
        }
    }
    return k;
}

/* The normalised mean base embedding of each intent (K, C), from a forward pass over every example. */
static void class_means(dm_model *dm, const seslm_backend *be, dm_acts *acts, const examples *ex, int B, float *mean) {
    const int C = dm->C, K = ex->n_classes;
    const int32_t *rows[ADAPT_MAX_ROWS];
    int lens[ADAPT_MAX_ROWS];
    memset(mean, 0, (size_t)K * C * sizeof(float));
    for (int i0 = 0; i0 < ex->n; i0 += B) {
        const int nb = ex->n - i0 < B ? ex->n - i0 : B;
        for (int k = 0; k < nb; k++) rows[k] = ex->ids[i0 + k], lens[k] = ex->len[i0 + k];
        dm_forward(dm, be, acts, rows, lens, nb);
        for (int k = 0; k < nb; k++)
            for (int t = 0; t < C; t++) mean[(size_t)ex->y[i0 + k] * C + t] += acts->emb[(size_t)k * C + t];
    }
    for (int c = 0; c < K; c++) {
        double q = 0;
        for (int t = 0; t < C; t++) q += (double)mean[(size_t)c * C + t] * mean[(size_t)c * C + t];
        const float inv = q > 0 ? (float)(1.0 / sqrt(q)) : 0.0f;
        for (int t = 0; t < C; t++) mean[(size_t)c * C + t] *= inv;
    }
}

typedef struct {
    float sim;
    int c;
} near_entry;

static int by_sim_desc(const void *x, const void *y) {
    const near_entry *a = x, *b = y;
    return a->sim > b->sim ? -1 : a->sim < b->sim ? 1 : a->c - b->c;
}

/* near (K, K - 1): for each intent the others, nearest first by the cosine of their mean embeddings. */
static int *near_order(const float *mean, int K, int C) {
    int *near = malloc((size_t)K * (K - 1) * sizeof(int));
    near_entry *row = malloc((size_t)K * sizeof *row);
    if (!near || !row) {
        free(near), free(row);
        return NULL;
    }
    for (int c = 0; c < K; c++) {
        int m = 0;
        for (int d = 0; d < K; d++) {
            if (d == c) continue;
            double s = 0;
            for (int t = 0; t < C; t++) s += (double)mean[(size_t)c * C + t] * mean[(size_t)d * C + t];
            row[m].sim = (float)s, row[m].c = d, m++;
        }
        qsort(row, (size_t)m, sizeof *row, by_sim_desc);
        for (int j = 0; j < m; j++) near[(size_t)c * (K - 1) + j] = row[j].c;
    }
    free(row);
    return near;
}

/* A pair: same intent (positive) for even k, different intents otherwise. */
static void draw_pair(const examples *e, int k, uint64_t *rs, int *a, int *b, float *target) {
    if (k % 2 == 0) {
        int c;
        do c = (int)(splitmix64(rs) % (uint64_t)e->n_classes);
        while (e->count[c] < 2);
        draw_two(e, c, rs, a, b);
        *target = 1.0f;
    } else {
        *a = (int)(splitmix64(rs) % (uint64_t)e->n);
        do *b = (int)(splitmix64(rs) % (uint64_t)e->n);
        while (e->y[*b] == e->y[*a]);
        *target = 0.0f;
    }
}

static float lr_at(const adapt_opts *o, int step, int total) {
    const int warm = total / 10 > 0 ? total / 10 : 1;
    if (step < warm) return o->lr * (float)(step + 1) / (float)warm;
    const double t = total > warm ? (double)(step - warm) / (double)(total - warm) : 1.0;
    return (float)(o->lr * 0.5 * (1.0 + cos(M_PI * (t < 1 ? t : 1))));
}

seslm_status adapt_train(const adapt_opts *o, const seslm_model *m, const char *const *texts, const char *const *labels,
                         int n, lora *lo, adapt_report *rep) {
    memset(rep, 0, sizeof *rep);
    memset(lo, 0, sizeof *lo);
    if (n < 3 || n > 10000000) return seslm_fail(SESLM_ERR_ARG, "adapt: need at least 3 labelled examples (got %d)", n);
    if (o->general_per_step < 0 || o->general_per_step > 512 || !(o->w_general >= 0)) 
        return seslm_fail(SESLM_ERR_ARG, "adapt: general_per_step 0..512 and w_general >= 0");
    if ((o->objective != ADAPT_PAIRS && o->objective != ADAPT_INBATCH && o->objective != ADAPT_SOFTMAX) ||
        !(o->inbatch_scale > 0 && o->inbatch_scale < 1000) || !(o->head_lr_mult > 0 && o->head_lr_mult < 1000))
        return seslm_fail(SESLM_ERR_ARG, "adapt: unknown objective or a scale outside (0, 1000)");
    if (o->pairs < 1 || o->pairs > 512 || o->steps < 0 || o->steps > 1000000 || !(o->lr > 0 && o->lr < 1) ||
        o->max_tokens < 2 || o->max_tokens > 512 || !(o->weight_decay >= 0 && o->weight_decay < 1) || !(o->clip_norm >= 0))
        return seslm_fail(SESLM_ERR_ARG, "adapt: pairs 1..512, steps 0..1000000, lr in (0, 1), max_tokens 2..512, "
                                         "weight_decay in [0, 1), clip_norm >= 0");
    const seslm_backend *be = seslm_backend_get("cpu");
    if (!be || !be->linear_backward) return seslm_fail(SESLM_ERR_ARG, "adapt: the CPU backend has no backward ops");
    if (o->threads > 0) be->set_threads(o->threads);
    examples ex;
    seslm_status st = examples_make(&ex, m, texts, labels, n, o->max_tokens);
    if (st != SESLM_OK) return st;
    dm_model dm;
    dm_acts acts;
    memset(&acts, 0, sizeof acts);
    float *grad = NULL, *lg = NULL, *mo = NULL, *vo = NULL, *demb = NULL;
    char *decay = NULL;
    if ((st = dm_init(&dm, m)) != SESLM_OK) {
        examples_free(&ex);
        return st;
    }
    int32_t **gids = NULL;
    int *glen = NULL, ng = 0;
    float *gbase = NULL; // (ng, C) the base model's embeddings of the general sentences
    if (o->general && o->n_general > 0 && o->w_general > 0 && o->general_per_step > 0)
        st = tokenize_all(m, o->general, o->n_general, o->max_tokens, &gids, &glen, &ng);
    const int G = ng > 0 ? (o->general_per_step < ng ? o->general_per_step : ng) : 0;
    const int B = 2 * o->pairs + G, C = dm.C;
    if (st == SESLM_OK) st = lora_init(lo, &dm, o->rank, o->alpha, o->seed);
    if (st == SESLM_OK) st = dm_acts_init(&acts, &dm, B * o->max_tokens, B, o->max_tokens, o->threads > 0 ? o->threads : 64);
    if (st == SESLM_OK && ng > 0) { // the anchors: embeddings of the base (the adapters start at B = 0)
        if (!(gbase = malloc((size_t)ng * C * sizeof(float)))) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        for (int i0 = 0; st == SESLM_OK && i0 < ng; i0 += B) {
            const int nb = ng - i0 < B ? ng - i0 : B;
            dm_forward(&dm, be, &acts, (const int32_t *const *)gids + i0, glen + i0, nb);
            memcpy(gbase + (size_t)i0 * C, acts.emb, (size_t)nb * C * sizeof(float));
        }
    }
    if (st == SESLM_OK) {
        grad = calloc(dm.n_params, sizeof(float));
        lg = calloc(lo->n_params, sizeof(float));
        mo = calloc(lo->n_params, sizeof(float));
        vo = calloc(lo->n_params, sizeof(float));
        demb = calloc((size_t)B * C, sizeof(float));
        decay = calloc(lo->n_params, 1);
        if (!grad || !lg || !mo || !vo || !demb || !decay) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    // ADAPT_SOFTMAX: a cosine classifier (K, C) trained with the adapters, its rows started at the classes'
    // normalised mean base embeddings (so the first steps' gradients already point somewhere useful), and
    // its own AdamW moments; it is discarded after training (the gate fits the served head anew)
    const int K = ex.n_classes;
    float *hw = NULL, *hg = NULL, *hm = NULL, *hv = NULL;
    if (st == SESLM_OK && o->objective == ADAPT_SOFTMAX) {
        hw = calloc((size_t)K * C, sizeof(float)), hg = calloc((size_t)K * C, sizeof(float));
        hm = calloc((size_t)K * C, sizeof(float)), hv = calloc((size_t)K * C, sizeof(float));
        if (!hw || !hg || !hm || !hv) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        if (st == SESLM_OK) class_means(&dm, be, &acts, &ex, B, hw);
    }
    // ADAPT_INBATCH with more intents than a batch holds: batches of neighbouring intents
    int *near = NULL;
    if (st == SESLM_OK && o->objective == ADAPT_INBATCH && o->negatives == ADAPT_NEG_NEAR && K > o->pairs &&
        K <= 4096) {
        float *mean = malloc((size_t)K * C * sizeof(float));
        if (mean) class_means(&dm, be, &acts, &ex, B, mean);
        if (!mean || !(near = near_order(mean, K, C))) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        free(mean);
    }
    int steps = o->steps;
    if (steps == 0) { // about 4 pairs per example, like SetFit's default of 20 iterations per example / batch
        steps = (4 * n + o->pairs - 1) / o->pairs;
        steps = steps < 40 ? 40 : steps > 400 ? 400 : steps;
    }
    const double t0 = util_now_s();
    uint64_t rs = o->seed ^ 0xA5A5A5A5DEADBEEFull;
    double sum_first = 0, sum_last = 0;
    int n_first = 0, n_last = 0, step = 0;
    for (; st == SESLM_OK && step < steps; step++) {
        if (o->time_budget_s > 0 && util_now_s() - t0 > o->time_budget_s) break;
        int ia[512], ib[512], gi[512];
        float target[512];
        const int32_t *rows[ADAPT_MAX_ROWS];
        int lens[ADAPT_MAX_ROWS];
        int P = o->pairs;
        if (o->objective == ADAPT_INBATCH)
            P = near ? draw_inbatch_near(&ex, near, o->pairs, &rs, ia, ib) : draw_inbatch(&ex, o->pairs, &rs, ia, ib);
        else if (o->objective == ADAPT_SOFTMAX) // 2P examples drawn uniformly (a pair slot holds two)
            for (int k = 0; k < P; k++) {
                ia[k] = (int)(splitmix64(&rs) % (uint64_t)ex.n);
                ib[k] = (int)(splitmix64(&rs) % (uint64_t)ex.n);
            }
        else
            for (int k = 0; k < P; k++) draw_pair(&ex, k, &rs, &ia[k], &ib[k], &target[k]);
        for (int k = 0; k < P; k++) {
            rows[k] = ex.ids[ia[k]], lens[k] = ex.len[ia[k]];
            rows[P + k] = ex.ids[ib[k]], lens[P + k] = ex.len[ib[k]];
        }
        for (int k = 0; k < G; k++) {
            gi[k] = (int)(splitmix64(&rs) % (uint64_t)ng);
            rows[2 * P + k] = gids[gi[k]], lens[2 * P + k] = glen[gi[k]];
        }
        lora_apply(lo, &dm);
        dm_forward(&dm, be, &acts, rows, lens, 2 * P + G);
        // CosineSimilarityLoss: mean over pairs of (cos(u, v) - target)^2, u and v unit vectors
        double loss = 0;
        memset(demb, 0, (size_t)B * C * sizeof(float));
        if (o->objective == ADAPT_INBATCH) { // CE over s_ij = scale cos(a_i, p_j), the target j = i
            const double sc = o->inbatch_scale;
            for (int i = 0; i < P; i++) {
                const float *u = acts.emb + (size_t)i * C;
                double z[512], mx = -INFINITY, den = 0;
                for (int j = 0; j < P; j++) {
                    const float *v = acts.emb + (size_t)(P + j) * C;
                    double c = 0;
                    for (int t = 0; t < C; t++) c += (double)u[t] * v[t];
                    z[j] = sc * c;
                    mx = z[j] > mx ? z[j] : mx;
                }
                for (int j = 0; j < P; j++) den += exp(z[j] - mx);
                loss += mx + log(den) - z[i];
                for (int j = 0; j < P; j++) { // d/ds_ij = (softmax - [j == i]) / P
                    const double g = (exp(z[j] - mx) / den - (j == i)) / P * sc;
                    const float *v = acts.emb + (size_t)(P + j) * C;
                    for (int t = 0; t < C; t++) {
                        demb[(size_t)i * C + t] += (float)(g * v[t]);
                        demb[(size_t)(P + j) * C + t] += (float)(g * u[t]);
                    }
                }
            }
            loss /= P > 0 ? P : 1;
        } else if (o->objective == ADAPT_SOFTMAX) { // CE over z_c = scale <e, w_c>, e the unit embedding
            const double sc = o->inbatch_scale;
            memset(hg, 0, (size_t)K * C * sizeof(float));
            double *z = malloc((size_t)K * sizeof(double));
            if (!z) {
                st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
                break;
            }
            for (int r = 0; r < 2 * P; r++) {
                const float *e = acts.emb + (size_t)r * C;
                const int y = ex.y[r < P ? ia[r] : ib[r - P]];
                double mx = -INFINITY, den = 0;
                for (int c = 0; c < K; c++) {
                    const float *w = hw + (size_t)c * C;
                    double d = 0;
                    for (int t = 0; t < C; t++) d += (double)e[t] * w[t];
                    z[c] = sc * d;
                    mx = z[c] > mx ? z[c] : mx;
                }
                for (int c = 0; c < K; c++) den += exp(z[c] - mx);
                loss += mx + log(den) - z[y];
                for (int c = 0; c < K; c++) { // d/dz_c = (softmax - [c == y]) / 2P
                    const float g = (float)((exp(z[c] - mx) / den - (c == y)) / (2 * P) * sc);
                    const float *w = hw + (size_t)c * C;
                    float *gw = hg + (size_t)c * C, *de = demb + (size_t)r * C;
                    for (int t = 0; t < C; t++) de[t] += g * w[t], gw[t] += g * e[t];
                }
            }
            free(z);
            loss /= 2 * P;
        } else {
            for (int k = 0; k < P; k++) {
                const float *u = acts.emb + (size_t)k * C, *v = acts.emb + (size_t)(P + k) * C;
                double c = 0;
                for (int j = 0; j < C; j++) c += (double)u[j] * v[j];
                const double d = c - target[k];
                loss += d * d;
                const float g = (float)(2.0 * d / P);
                for (int j = 0; j < C; j++) {
                    demb[(size_t)k * C + j] += g * v[j];
                    demb[(size_t)(P + k) * C + j] += g * u[j];
                }
            }
            loss /= P;
        }
        for (int k = 0; k < G; k++) { // anchoring: w * mean (1 - cos(adapted, base)); d/d e = -w p / G
            const float *e = acts.emb + (size_t)(2 * P + k) * C, *p = gbase + (size_t)gi[k] * C;
            double c = 0;
            for (int j = 0; j < C; j++) c += (double)e[j] * p[j];
            loss += o->w_general * (1.0 - c) / G;
            for (int j = 0; j < C; j++) demb[(size_t)(2 * P + k) * C + j] = -o->w_general * p[j] / G;
        }
        if (!isfinite(loss)) {
            st = seslm_fail(SESLM_ERR_INTERNAL, "adapt: the loss is not finite at step %d (lower --lr)", step);
            break;
        }
        memset(grad + dm.train_begin, 0, (dm.n_params - dm.train_begin) * sizeof(float));
        // the rows of the backward are the forward's (2P + G); demb beyond them is zero and unread
        dm_backward(&dm, be, &acts, demb, NULL, NULL, NULL, grad, 0);
        lora_grad(lo, grad, lg);
        double g2 = 0;
        for (size_t i = 0; i < lo->n_params; i++) g2 += (double)lg[i] * lg[i];
        const double gn = sqrt(g2);
        const float clip = o->clip_norm > 0 && gn > o->clip_norm ? (float)(o->clip_norm / gn) : 1.0f;
        const float lr = lr_at(o, step, steps), b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
        const float c1 = 1.0f - powf(b1, (float)(step + 1)), c2 = 1.0f - powf(b2, (float)(step + 1));
        for (size_t i = 0; i < lo->n_params; i++) { // AdamW on the adapters
            const float gi = lg[i] * clip;
            mo[i] = b1 * mo[i] + (1 - b1) * gi;
            vo[i] = b2 * vo[i] + (1 - b2) * gi * gi;
            lo->params[i] -= lr * ((mo[i] / c1) / (sqrtf(vo[i] / c2) + eps) + o->weight_decay * lo->params[i]);
        }
        if (hw) { // AdamW on the classifier, at the adapters' schedule, no decay (its rows are prototypes)
            const float hlr = lr * o->head_lr_mult;
            for (size_t i = 0; i < (size_t)K * C; i++) {
                hm[i] = b1 * hm[i] + (1 - b1) * hg[i];
                hv[i] = b2 * hv[i] + (1 - b2) * hg[i] * hg[i];
                hw[i] -= hlr * (hm[i] / c1) / (sqrtf(hv[i] / c2) + eps);
            }
        }
        if (step < 10) sum_first += loss, n_first++;
        if (step >= steps - 10) sum_last += loss, n_last++;
        if (o->progress && (step % 10 == 0 || step == steps - 1)) {
            const double el = util_now_s() - t0, eta = step > 0 ? el / (step + 1) * (steps - step - 1) : 0;
            fprintf(stderr, "adapt: step %d/%d  loss %.4f  %.0f s elapsed, ETA %.0f s\n", step + 1, steps, loss, el, eta);
        }
    }
    rep->steps_done = step;
    rep->loss_first = n_first ? sum_first / n_first : NAN;
    rep->loss_last = n_last ? sum_last / n_last : NAN;
    rep->seconds = util_now_s() - t0;
    free(grad), free(lg), free(mo), free(vo), free(demb), free(decay), free(gbase);
    free(hw), free(hg), free(hm), free(hv), free(near);
    for (int i = 0; i < ng; i++) free(gids[i]);
    free(gids), free(glen);
    dm_acts_free(&acts);
    dm_free(&dm);
    examples_free(&ex);
    if (st != SESLM_OK) lora_free(lo);
    return st;
}

// ---- the merged model ----------------------------------------------------------------------------

static seslm_status copy_file(const char *a, const char *b) {
    char *buf = NULL;
    size_t n = 0;
    seslm_status st = util_read_file(a, &buf, &n, (size_t)1 << 31, NULL);
    if (st == SESLM_OK) st = util_write_file_atomic(b, buf, n);
    free(buf);
    return st;
}

/* Every regular file of src (and of its sub-folders one level down, e.g. 1_Pooling/) but the weights
 * and config.json, byte for byte; with skip_master, not the F32 master folder (written anew from the
 * merged weights: a copy of the base's would make the next cycle recompile the base without the adapter). */
static seslm_status copy_dir_files(const char *src, const char *dst, int depth, int skip_master) {
    DIR *d = opendir(src);
    if (!d) return seslm_fail(SESLM_ERR_IO, "cannot read %s: %s", src, strerror(errno));
    seslm_status st = SESLM_OK;
    struct dirent *e;
    while (st == SESLM_OK && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (depth == 0 && (!strcmp(e->d_name, "model.safetensors") || !strcmp(e->d_name, "config.json") ||
                           !strcmp(e->d_name, "SHA256SUMS") || (skip_master && !strcmp(e->d_name, "master"))))
            continue;
        char a[8192], b[8192];
        snprintf(a, sizeof a, "%s/%s", src, e->d_name);
        snprintf(b, sizeof b, "%s/%s", dst, e->d_name);
        struct stat sb;
        if (stat(a, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode)) {
            if (depth > 0) continue;
            if (mkdir(b, 0755) != 0 && errno != EEXIST) st = seslm_fail(SESLM_ERR_IO, "cannot create %s: %s", b, strerror(errno));
            else st = copy_dir_files(a, b, depth + 1, 0);
        } else if (S_ISREG(sb.st_mode)) {
            st = copy_file(a, b);
        }
    }
    closedir(d);
    return st;
}

/* config.json of m with the adapter's lineage. master_sha: NULL leaves "seslm_master" as it is (an F32
 * base has none); "" removes it; else it names the merged master (DIR/master) with that hash. */
static seslm_status write_config(const seslm_model *m, const char *out_dir, const char *lineage_json, const char *master_sha) {
    char path[8400];
    snprintf(path, sizeof path, "%s/config.json", m->dir);
    char *buf = NULL;
    size_t n = 0;
    seslm_status st = util_read_file(path, &buf, &n, 16 << 20, NULL);
    if (st != SESLM_OK) return st;
    cJSON *root = cJSON_ParseWithLength(buf, n);
    free(buf);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return seslm_fail(SESLM_ERR_FORMAT, "%s: not a JSON object", path);
    }
    // as recompile does: the base is the parent (its weights hash is how the registry finds it), and
    // the base's own lineage is kept under "parent"
    cJSON *prev = cJSON_DetachItemFromObjectCaseSensitive(root, "seslm_lineage");
    cJSON *lin = cJSON_AddObjectToObject(root, "seslm_lineage");
    cJSON_AddStringToObject(lin, "parent_weights_sha256", seslm_model_weights_sha256(m));
    if (prev) cJSON_AddItemToObject(lin, "parent", prev);
    cJSON *a = lineage_json ? cJSON_Parse(lineage_json) : cJSON_CreateObject();
    if (!cJSON_IsObject(a)) {
        cJSON_Delete(a);
        a = cJSON_CreateObject();
    }
    cJSON_DeleteItemFromObjectCaseSensitive(a, "base_weights_sha256");
    cJSON_AddStringToObject(a, "base_weights_sha256", seslm_model_weights_sha256(m));
    cJSON_AddItemToObject(lin, "adapter", a);
    if (master_sha) {
        cJSON_DeleteItemFromObjectCaseSensitive(root, "seslm_master");
        if (master_sha[0]) {
            cJSON *ms = cJSON_AddObjectToObject(root, "seslm_master");
            cJSON_AddStringToObject(ms, "dir", "master");
            cJSON_AddStringToObject(ms, "weights_sha256", master_sha);
        }
    }
    char *txt = cJSON_Print(root);
    cJSON_Delete(root);
    if (!txt) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    snprintf(path, sizeof path, "%s/config.json", out_dir);
    st = util_write_file_atomic(path, txt, strlen(txt));
    free(txt);
    return st;
}

// dm = m's F32 weights with the adapters merged in (W + s B A)
static seslm_status merged_weights(dm_model *dm, const seslm_model *m, const lora *lo) {
    seslm_status st = dm_init(dm, m);
    if (st != SESLM_OK) return st;
    if ((size_t)lo->n_base != dm->n_params) {
        dm_free(dm);
        return seslm_fail(SESLM_ERR_SHAPE, "adapt: the adapters were made for another model");
    }
    lora_apply(lo, dm);
    return SESLM_OK;
}

seslm_status adapt_write_merged(const seslm_model *m, const lora *lo, const char *out_dir, const char *lineage_json) {
    char path[8400];
    snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
    struct stat sb;
    if (stat(path, &sb) == 0) return seslm_fail(SESLM_ERR_ARG, "%s already holds a model: choose an empty --out", out_dir);
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
        return seslm_fail(SESLM_ERR_IO, "cannot create %s: %s", out_dir, strerror(errno));
    dm_model dm;
    seslm_status st = merged_weights(&dm, m, lo);
    if (st != SESLM_OK) return st;
    const st_file *f = &m->st;
    st_write_tensor *t = calloc((size_t)f->n_tensors + 1, sizeof *t);
    if (!t) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    for (int i = 0; st == SESLM_OK && i < f->n_tensors; i++) {
        const st_tensor *s = &f->tensors[i];
        size_t off, numel;
        t[i].name = s->name;
        t[i].ndim = s->ndim;
        memcpy(t[i].shape, s->shape, sizeof t[i].shape);
        if (dm_tensor_slot(&dm, s->name, &off, &numel) == 0 && (int64_t)numel == s->numel && s->dtype == ST_F32) {
            t[i].dtype = ST_F32;
            t[i].data = dm.params + off;
        } else {
            t[i].dtype = s->dtype;
            t[i].data = s->data;
        }
    }
    // the other files first, the weights, then config.json last: a crash leaves no loadable half-model
    if (st == SESLM_OK) st = copy_dir_files(m->dir, out_dir, 0, 0);
    if (st == SESLM_OK) st = st_write(path, t, f->n_tensors, NULL);
    if (st == SESLM_OK) st = write_config(m, out_dir, lineage_json, NULL);
    if (st == SESLM_OK) st = st_fsync_dir(out_dir);
    free(t);
    dm_free(&dm);
    return st;
}

// ---- the merged model in the base's own format (INT8 students) ----------------------------------

/* 1 when the served tensor `name` is the weight of one of the six projections LoRA adapts. */
static int is_projection(const char *name) {
    static const char *const P[] = {"attention.self.query.weight", "attention.self.key.weight", "attention.self.value.weight",
                                    "attention.output.dense.weight", "intermediate.dense.weight", "output.dense.weight"};
    if (strncmp(name, "bert.", 5) == 0) name += 5;
    int l = 0, n = 0;
    if (sscanf(name, "encoder.layer.%d.%n", &l, &n) != 1 || n == 0) return 0;
    for (size_t i = 0; i < sizeof P / sizeof P[0]; i++)
        if (strcmp(name + n, P[i]) == 0) return 1;
    return 0;
}

static int by_data(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    return (const char *)x->data < (const char *)y->data ? -1 : (const char *)x->data > (const char *)y->data;
}

/* The served tensors with every adapted projection replaced: F32 ones by the merged weights (in dm),
 * INT8 ones re-quantized per output channel by recompile's quantizer (seslm_quantize_weight) with their
 * "_scale" tensor replaced too. Every other tensor points at the served file's bytes. t and own (n each)
 * are filled in the served file's data order; own[i] is what must be freed. */
static seslm_status served_tensors(const seslm_model *served, const dm_model *dm, st_write_tensor *t, void **own) {
    const st_file *f = &served->st;
    const int n = f->n_tensors;
    const st_tensor **ord = malloc(((size_t)n + 1) * sizeof *ord);
    const float **scale_of = calloc((size_t)n + 1, sizeof *scale_of); // by served index: the new scales of a "_scale"
    if (!ord || !scale_of) {
        free(ord), free(scale_of);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) ord[i] = &f->tensors[i];
    qsort(ord, (size_t)n, sizeof *ord, by_data); // the base's layout: the same tensor order in the file
    seslm_status st = SESLM_OK;
    for (int i = 0; st == SESLM_OK && i < n; i++) {
        const st_tensor *s = ord[i];
        t[i] = (st_write_tensor){.name = s->name, .dtype = s->dtype, .ndim = s->ndim, .data = s->data};
        memcpy(t[i].shape, s->shape, sizeof t[i].shape);
        if (!is_projection(s->name)) continue;
        size_t off = 0, numel = 0;
        if (dm_tensor_slot(dm, s->name, &off, &numel) != 0 || (int64_t)numel != s->numel || s->ndim != 2) {
            st = seslm_fail(SESLM_ERR_SHAPE, "%s: %s does not match its F32 weights", served->dir, s->name);
        } else if (s->dtype == ST_F32) {
            t[i].data = dm->params + off;
        } else if (s->dtype == ST_I8) {
            char sname[300];
            snprintf(sname, sizeof sname, "%s_scale", s->name);
            const st_tensor *sc = st_find(f, sname);
            const int N = (int)s->shape[0], K = (int)s->shape[1];
            int8_t *q = malloc((size_t)N * K + 1);
            float *scale = malloc(((size_t)N + 1) * sizeof *scale);
            own[2 * i] = q, own[2 * i + 1] = scale;
            if (!sc || sc->dtype != ST_F32 || sc->numel != N)
                st = seslm_fail(SESLM_ERR_FORMAT, "%s: %s has no F32 scale per output channel", served->dir, s->name);
            else if (!q || !scale)
                st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
            else {
                seslm_quantize_weight(q, scale, dm->params + off, N, K);
                t[i].data = q;
                scale_of[sc - f->tensors] = scale;
            }
        } else {
            st = seslm_fail(SESLM_ERR_ARG, "%s: %s is stored as %s; adapt writes F32 or INT8 projections (2:4-sparse "
                                           "students: adapt the dense one)", served->dir, s->name, st_dtype_name(s->dtype));
        }
    }
    for (int i = 0; st == SESLM_OK && i < n; i++) { // the scales, wherever they sit in the file
        const float *sc = scale_of[ord[i] - f->tensors];
        if (sc) t[i].data = sc;
    }
    free(ord), free(scale_of);
    return st;
}

/* The hash of dir's model.safetensors as seslm_model_weights_sha256 gives it (out: 65 bytes). */
static seslm_status weights_sha(const char *dir, char *out) {
    seslm_model *m = NULL;
    seslm_status st = seslm_model_load(&m, dir);
    if (st == SESLM_OK) snprintf(out, 65, "%s", seslm_model_weights_sha256(m));
    seslm_model_free(m);
    return st;
}

seslm_status adapt_write_served(const seslm_model *served, const seslm_model *f32, int f32_is_master, const lora *lo,
                                const char *out_dir, const char *lineage_json) {
    char path[8400];
    snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
    struct stat sb;
    if (stat(path, &sb) == 0) return seslm_fail(SESLM_ERR_ARG, "%s already holds a model: choose an empty --out", out_dir);
    for (int l = 0; l < served->cfg.n_layers; l++)
        if (served->lw[l].ff1_sv || served->lw[l].ff2_sv)
            return seslm_fail(SESLM_ERR_ARG, "%s: layer %d has 2:4-sparse FFN weights; adapt the dense student (sparsity "
                                             "would have to be chosen again after merging)", served->dir, l);
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
        return seslm_fail(SESLM_ERR_IO, "cannot create %s: %s", out_dir, strerror(errno));
    dm_model dm;
    seslm_status st = merged_weights(&dm, f32, lo);
    if (st != SESLM_OK) return st;
    const int n = served->st.n_tensors;
    st_write_tensor *t = calloc((size_t)n + 1, sizeof *t);
    void **own = calloc(2 * (size_t)n + 1, sizeof *own);
    st = t && own ? served_tensors(served, &dm, t, own) : seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    // the F32 master first (the next cycle plans and recompiles from it, so it must hold the adapter too),
    // then the other files, the weights, config.json naming the new master last: no loadable half-model
    char master_sha[65] = "", mdir[8400];
    snprintf(mdir, sizeof mdir, "%s/master", out_dir);
    if (st == SESLM_OK && f32_is_master) st = adapt_write_merged(f32, lo, mdir, lineage_json);
    if (st == SESLM_OK && f32_is_master) st = weights_sha(mdir, master_sha);
    if (st == SESLM_OK) st = copy_dir_files(served->dir, out_dir, 0, 1);
    char meta[256];
    snprintf(meta, sizeof meta, "{\"format\":\"pt\",\"seslm_parent_sha256\":\"%s\"}", seslm_model_weights_sha256(served));
    if (st == SESLM_OK) st = st_write(path, t, n, meta);
    if (st == SESLM_OK) st = write_config(served, out_dir, lineage_json, master_sha);
    if (st == SESLM_OK) st = model_manifest_write(out_dir); // as recompile's students: every later load checks it
    if (st == SESLM_OK) st = st_fsync_dir(out_dir);
    for (int i = 0; own && i < 2 * n; i++) free(own[i]);
    free(t), free(own);
    dm_free(&dm);
    return st;
}
