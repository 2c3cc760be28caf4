/* validate.c — the validation sandbox run: loads the evaluation data, measures memory in forked
 * children, embeds every input with both models, times them interleaved, computes the metrics and
 * evaluates the gates (validate.h, docs/validation.md). */
#include "validate.h"
#include "labelled.h"
#include "util.h"

#include "validate_internal.h"
#include "logreg.h"
#include "validate_stats.h"
#include "progress.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static void say(FILE *f, const char *fmt, ...) {
    if (!f) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("validate: ", f);
    vfprintf(f, fmt, ap);
    fputc('\n', f);
    fflush(f);
    va_end(ap);
}

// ---- the inputs: one list of texts, in sections --------------------------------------------------

enum { S_HELD, S_DOMAIN, S_STS1, S_STS2, S_CL_TR, S_CL_TE, S_SN_TR, S_SN_TE, S_DI, S_PASS, S_QUERY,
       S_TRAFFIC, S_KB, S_FB_TR, S_FB_TE, S_COUNT };

typedef struct {
    const char **text; // all texts to embed, section after section
    int n, cap;
    int off[S_COUNT + 1];
    // labels: ids into `labels` for the intent sections (-1: a label the training set lacks)
    int *cl_tr_y, *cl_te_y, *sn_tr_y, *sn_te_y, *di_y, *fb_tr_y, *fb_te_y;
    int n_fb_labels, fb_rows; // labelled feedback rows available (the check needs feedback_min)
    int traffic_queries;      // the first rows of S_TRAFFIC that are also retrieval queries
    char kb_passages[4200];
    int n_cl_labels, n_sn_labels;
    int cl_tr_tab; // index in tab of the CLINC150 training table (-1: not loaded)
    double *gold;  // STS-B gold scores
    vtable tab[8 + SESLM_VALIDATE_MAX_DOMAIN + 8]; // every file a run may read
    int n_tab;
    labelled_set fb; // the node's labelled feedback (data.feedback)
} inputs;

static int add_text(inputs *in, const char *t) {
    if (in->n == in->cap) {
        int cap = in->cap ? 2 * in->cap : 4096;
        const char **nt = realloc(in->text, (size_t)cap * sizeof *nt);
        if (!nt) return 0;
        in->text = nt, in->cap = cap;
    }
    in->text[in->n++] = t;
    return 1;
}

static vtable *open_table(inputs *in, const char *path, int cols, seslm_status *st) {
    vtable *t = &in->tab[in->n_tab];
    *st = vtable_read(t, path, cols);
    if (*st != SESLM_OK) return NULL;
    in->n_tab++;
    return t;
}

// label ids by first appearance in the training rows; test labels absent from them get -1. The label of row r is
// trl[r * trs] (a 2-column table: its fields from column 1, stride 2; a labelled set: its labels, stride 1)
static seslm_status label_ids(const char *const *trl, int trs, const int *tri, int ntr, const char *const *tel, int tes,
                              const int *tei, int nte, int **ytr, int **yte, int *n_labels) {
    const char **names = malloc((size_t)(ntr + 1) * sizeof *names);
    *ytr = malloc((size_t)(ntr + 1) * sizeof **ytr);
    *yte = malloc((size_t)(nte + 1) * sizeof **yte);
    if (!names || !*ytr || !*yte) {
        free(names);
        return seslm_fail(SESLM_ERR_NOMEM, "labels: out of memory");
    }
    int k = 0;
    for (int i = 0; i < ntr; i++) {
        const char *l = trl[(size_t)tri[i] * trs];
        int j = 0;
        while (j < k && strcmp(names[j], l) != 0) j++;
        if (j == k) names[k++] = l;
        (*ytr)[i] = j;
    }
    for (int i = 0; i < nte; i++) {
        const char *l = tel[(size_t)tei[i] * tes];
        int j = 0;
        while (j < k && strcmp(names[j], l) != 0) j++;
        (*yte)[i] = j < k ? j : -1;
    }
    free(names);
    *n_labels = k;
    return SESLM_OK;
}

static void inputs_free(inputs *in) {
    free(in->text);
    free(in->cl_tr_y), free(in->cl_te_y), free(in->sn_tr_y), free(in->sn_te_y), free(in->di_y);
    free(in->fb_tr_y), free(in->fb_te_y);
    free(in->gold);
    for (int i = 0; i < in->n_tab; i++) vtable_free(&in->tab[i]);
    labelled_free(&in->fb);
    memset(in, 0, sizeof *in);
}

/* Adds a sampled section of one column of a table. Returns the sampled row indices (malloc'd). */
static int *add_section(inputs *in, const vtable *t, int m, int col, int *n_out, seslm_status *st) {
    int *idx = malloc((size_t)(t->n + 1) * sizeof *idx);
    if (!idx) {
        *st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    int n = validate_pick(t->n, m, idx);
    for (int i = 0; i < n; i++)
        if (!add_text(in, vtable_get(t, idx[i], col))) {
            free(idx);
            *st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
            return NULL;
        }
    *n_out = n;
    return idx;
}

static seslm_status intent_pair(inputs *in, const char *train, const char *test, int ntr, int nte, int s_tr,
                                int **ytr, int **yte, int *n_labels) {
    seslm_status st = SESLM_OK;
    int tr_index = in->n_tab;
    vtable *tr = open_table(in, train, 2, &st);
    vtable *te = tr ? open_table(in, test, 2, &st) : NULL;
    if (!te) return st;
    if (s_tr == S_CL_TR) in->cl_tr_tab = tr_index;
    int a = 0, b = 0;
    in->off[s_tr] = in->n;
    int *itr = add_section(in, tr, ntr, 0, &a, &st);
    in->off[s_tr + 1] = in->n;
    int *ite = itr ? add_section(in, te, nte, 0, &b, &st) : NULL;
    if (ite)
        st = label_ids((const char *const *)tr->f + 1, 2, itr, a, (const char *const *)te->f + 1, 2, ite, b, ytr, yte, n_labels);
    free(itr), free(ite);
    return st;
}

/* The node's own data: held-out served traffic (cosine; its first rows also retrieval queries), the
 * knowledge base's passages, the labelled feedback (every 4th row a test row, the rest training). */
static seslm_status inputs_load_node(inputs *in, const seslm_validate_config *c) {
    seslm_status st = SESLM_OK;
    int n = 0;
    in->off[S_TRAFFIC] = in->n;
    if (c->traffic && c->traffic[0] && c->traffic_n > 0) {
        vtable *t = open_table(in, c->traffic, 1, &st);
        if (!t) return st;
        // the queries are a spread subset; put them first so the section's head is the query set
        int *qi = malloc((size_t)(t->n + 1) * sizeof *qi), *ai = malloc((size_t)(t->n + 1) * sizeof *ai);
        char *used = calloc((size_t)t->n + 1, 1);
        if (!qi || !ai || !used) {
            free(qi), free(ai), free(used);
            return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        }
        const int nq = validate_pick(t->n, c->traffic_queries_n < c->traffic_n ? c->traffic_queries_n : c->traffic_n, qi);
        const int na = validate_pick(t->n, c->traffic_n, ai);
        int ok = 1;
        for (int i = 0; ok && i < nq; i++) ok = add_text(in, vtable_get(t, qi[i], 0)), used[qi[i]] = 1;
        int extra = c->traffic_n - nq;
        for (int i = 0; ok && i < na && extra > 0; i++)
            if (!used[ai[i]]) ok = add_text(in, vtable_get(t, ai[i], 0)), extra--;
        in->traffic_queries = nq;
        free(qi), free(ai), free(used);
        if (!ok) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    in->off[S_KB] = in->n;
    if (c->kb && c->kb[0] && in->off[S_KB] > in->off[S_TRAFFIC]) {
        snprintf(in->kb_passages, sizeof in->kb_passages, "%s/passages.txt", c->kb);
        vtable *t = open_table(in, in->kb_passages, 1, &st);
        if (!t) return st;
        free(add_section(in, t, c->kb_passages_n, 0, &n, &st));
        if (st != SESLM_OK) return st;
    }
    in->off[S_FB_TR] = in->off[S_FB_TE] = in->n;
    if (c->feedback && c->feedback[0] && c->feedback_n > 0) {
        // the node's feedback as its log writes it (JSON lines) or as TSV, with or without a header (labelled.h)
        if ((st = labelled_read(&in->fb, c->feedback)) != SESLM_OK) return st;
        const labelled_set *t = &in->fb;
        int *idx = malloc((size_t)(t->n + 1) * sizeof *idx), *tri = malloc((size_t)(t->n + 1) * sizeof *tri),
            *tei = malloc((size_t)(t->n + 1) * sizeof *tei);
        if (!idx || !tri || !tei) {
            free(idx), free(tri), free(tei);
            return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        }
        const int m = validate_pick(t->n, c->feedback_n, idx);
        int ntr = 0, nte = 0;
        for (int i = 0; i < m; i++) { // every 4th sampled row tests, the others train
            if (i % 4 == 3) tei[nte++] = idx[i];
            else tri[ntr++] = idx[i];
        }
        in->fb_rows = m;
        int ok = 1;
        if (m >= c->feedback_min) {
            for (int i = 0; ok && i < ntr; i++) ok = add_text(in, t->text[tri[i]]);
            in->off[S_FB_TE] = in->n;
            for (int i = 0; ok && i < nte; i++) ok = add_text(in, t->text[tei[i]]);
            if (ok)
                st = label_ids((const char *const *)t->label, 1, tri, ntr, (const char *const *)t->label, 1, tei, nte,
                               &in->fb_tr_y, &in->fb_te_y, &in->n_fb_labels);
        }
        free(idx), free(tri), free(tei);
        if (!ok) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        if (st != SESLM_OK) return st;
    }
    in->off[S_COUNT] = in->n;
    return SESLM_OK;
}

static seslm_status inputs_load(inputs *in, const seslm_validate_config *c) {
    memset(in, 0, sizeof *in);
    in->cl_tr_tab = -1;
    seslm_status st = SESLM_OK;
    int n = 0;
    for (int s = 0; s <= S_COUNT; s++) in->off[s] = 0;
    // S_HELD
    in->off[S_HELD] = in->n;
    if (c->heldout_n > 0) {
        vtable *t = open_table(in, c->heldout, 1, &st);
        if (!t) return st;
        free(add_section(in, t, c->heldout_n, 0, &n, &st));
        if (st != SESLM_OK) return st;
    }
    in->off[S_DOMAIN] = in->n;
    for (int d = 0; c->domain_n > 0 && d < c->n_domain_texts; d++) {
        vtable *t = open_table(in, c->domain_texts[d], 1, &st);
        if (!t) return st;
        free(add_section(in, t, c->domain_n, 0, &n, &st));
        if (st != SESLM_OK) return st;
    }
    in->off[S_STS1] = in->n;
    vtable *sts = NULL;
    int *sidx = NULL, ns = 0;
    if (c->stsb_pairs > 0) {
        if (!(sts = open_table(in, c->stsb, 3, &st))) return st;
        if (!(sidx = add_section(in, sts, c->stsb_pairs, 0, &ns, &st))) return st;
        in->gold = malloc((size_t)ns * sizeof *in->gold);
        for (int i = 0; in->gold && i < ns; i++) {
            char *end;
            in->gold[i] = strtod(vtable_get(sts, sidx[i], 2), &end);
            if (*end || !isfinite(in->gold[i])) {
                st = seslm_fail(SESLM_ERR_FORMAT, "%s: row %d: gold score '%s' is not a number", c->stsb, sidx[i] + 1,
                                vtable_get(sts, sidx[i], 2));
                free(sidx);
                return st;
            }
        }
        free(sidx);
        if (!in->gold) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    in->off[S_STS2] = in->n;
    if (sts) {
        free(add_section(in, sts, c->stsb_pairs, 1, &n, &st));
        if (st != SESLM_OK) return st;
    }
    in->off[S_CL_TR] = in->off[S_CL_TE] = in->n;
    if (c->intent_train > 0 && c->intent_test > 0) {
        st = intent_pair(in, c->clinc_train, c->clinc_test, c->intent_train, c->intent_test, S_CL_TR, &in->cl_tr_y,
                         &in->cl_te_y, &in->n_cl_labels);
        if (st != SESLM_OK) return st;
    }
    in->off[S_SN_TR] = in->off[S_SN_TE] = in->n;
    if (c->intent_train > 0 && c->intent_test > 0) {
        st = intent_pair(in, c->snips_train, c->snips_test, c->intent_train, c->intent_test, S_SN_TR, &in->sn_tr_y,
                         &in->sn_te_y, &in->n_sn_labels);
        if (st != SESLM_OK) return st;
    }
    in->off[S_DI] = in->n;
    if (c->domain_intent_n > 0 && in->cl_tr_tab >= 0) {
        vtable *tx = open_table(in, c->domain_intent_texts, 1, &st);
        vtable *lb = tx ? open_table(in, c->domain_intent_labels, 1, &st) : NULL;
        if (!lb) return st;
        if (tx->n != lb->n)
            return seslm_fail(SESLM_ERR_FORMAT, "%s has %d lines but %s has %d labels", c->domain_intent_texts, tx->n,
                              c->domain_intent_labels, lb->n);
        int *idx = add_section(in, tx, c->domain_intent_n, 0, &n, &st);
        if (!idx) return st;
        // the CLINC150 training labels name the classes; find each domain label among them
        const vtable *cltr = &in->tab[in->cl_tr_tab];
        in->di_y = malloc((size_t)(n + 1) * sizeof *in->di_y);
        int ntr = in->off[S_CL_TE] - in->off[S_CL_TR];
        int *tri = malloc((size_t)(ntr + 1) * sizeof *tri);
        if (!in->di_y || !tri) {
            free(idx), free(tri);
            return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        }
        validate_pick(cltr->n, c->intent_train, tri);
        for (int i = 0; i < n; i++) {
            const char *l = vtable_get(lb, idx[i], 0);
            in->di_y[i] = -1;
            for (int j = 0; j < ntr; j++)
                if (strcmp(vtable_get(cltr, tri[j], 1), l) == 0) {
                    in->di_y[i] = in->cl_tr_y[j];
                    break;
                }
        }
        free(idx), free(tri);
    }
    in->off[S_PASS] = in->n;
    if (c->passages_n > 0 && c->queries_n > 0) {
        vtable *p = open_table(in, c->passages, 1, &st);
        if (!p) return st;
        free(add_section(in, p, c->passages_n, 0, &n, &st));
        if (st != SESLM_OK) return st;
        in->off[S_QUERY] = in->n;
        vtable *q = open_table(in, c->queries, 1, &st);
        if (!q) return st;
        free(add_section(in, q, c->queries_n, 0, &n, &st));
        if (st != SESLM_OK) return st;
    } else {
        in->off[S_QUERY] = in->n;
    }
    return inputs_load_node(in, c);
}

// ---- models ------------------------------------------------------------------------------------

typedef struct {
    const char *dir;
    seslm_model *m;
    seslm_encoder *e;
    int C;
    float *emb; // (inputs.n, C)
} vmodel;

static seslm_status model_open(vmodel *vm, const char *dir, const seslm_validate_config *c) {
    vm->dir = dir;
    seslm_status st = seslm_model_load(&vm->m, dir);
    if (st != SESLM_OK) return seslm_fail(st, "%s: %s", dir, seslm_last_error());
    seslm_encoder_opts o = {.backend = "cpu", .n_threads = c->threads, .max_batch = c->batch > 32 ? c->batch : 32};
    st = seslm_encoder_new(&vm->e, vm->m, &o);
    if (st != SESLM_OK) return seslm_fail(st, "%s: %s", dir, seslm_last_error());
    vm->C = seslm_model_get_config(vm->m)->hidden;
    return SESLM_OK;
}

static void model_close(vmodel *vm) {
    free(vm->emb);
    seslm_encoder_free(vm->e);
    seslm_model_free(vm->m);
    memset(vm, 0, sizeof *vm);
}

static seslm_status embed_range(vmodel *vm, const char *const *texts, int n, int batch, float *out, seslm_progress *prog) {
    size_t lens[4096];
    if (batch > 4096) batch = 4096;
    for (int i = 0; i < n; i += batch) {
        int b = n - i < batch ? n - i : batch;
        for (int j = 0; j < b; j++) lens[j] = strlen(texts[i + j]);
        seslm_status st = seslm_encoder_embed_texts(vm->e, texts + i, lens, b, out + (size_t)i * vm->C);
        if (st != SESLM_OK) return seslm_fail(st, "%s: embedding input %d: %s", vm->dir, i, seslm_last_error());
        if (prog) seslm_progress_update(prog, i + b);
    }
    if (prog) seslm_progress_finish(prog);
    return SESLM_OK;
}

static long long param_count(const seslm_model *m) {
    int n = seslm_model_param_groups(m, NULL, 0);
    seslm_param_group *g = calloc((size_t)n + 1, sizeof *g);
    long long p = 0;
    if (!g) return -1;
    n = seslm_model_param_groups(m, g, n);
    for (int i = 0; i < n; i++) p += g[i].params;
    free(g);
    return p;
}

static long long file_bytes(const char *dir) {
    char path[2048];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    struct stat sb;
    return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

// ---- metrics -----------------------------------------------------------------------------------

static void set(seslm_validate_result *r, seslm_vmetric m, double parent, double cand, int n) {
    memset(&r->values[m], 0, sizeof r->values[m]);
    r->values[m].measured = isfinite(parent) && isfinite(cand);
    r->values[m].parent = parent;
    r->values[m].candidate = cand;
    r->n_samples[m] = n;
}

/* Cosine between the two models' embeddings of rows [a, b): mean and 5th percentile. */
static void cosine_check(seslm_validate_result *r, const vmodel *p, const vmodel *q, int a, int b, seslm_vmetric mean,
                         seslm_vmetric p5) {
    int n = b - a;
    if (n <= 0) return;
    double *v = malloc((size_t)n * sizeof *v), s = 0;
    if (!v) return;
    for (int i = 0; i < n; i++) {
        v[i] = seslm_stats_cosine(p->emb + (size_t)(a + i) * p->C, q->emb + (size_t)(a + i) * q->C, p->C);
        s += v[i];
    }
    set(r, mean, 1.0, s / n, n);
    set(r, p5, 1.0, seslm_stats_percentile(v, n, 5), n);
    free(v);
}

static double stsb_spearman(const vmodel *vm, const inputs *in) {
    int n = in->off[S_STS2] - in->off[S_STS1];
    double *cos = malloc((size_t)n * sizeof *cos), rho = NAN;
    if (!cos) return NAN;
    for (int i = 0; i < n; i++)
        cos[i] = seslm_stats_cosine(vm->emb + (size_t)(in->off[S_STS1] + i) * vm->C,
                                    vm->emb + (size_t)(in->off[S_STS2] + i) * vm->C, vm->C);
    rho = seslm_stats_spearman(cos, in->gold, n);
    free(cos);
    return rho;
}

/* Fits on rows [tr, te), tests on [te, end) and, when di_n > 0, on the domain rows too. */
static seslm_status intent_accuracy(const vmodel *vm, const seslm_validate_config *c, int tr, int te, int end,
                                    const int *ytr, const int *yte, int K, int di, int di_n, const int *ydi,
                                    double *acc, double *acc_di) {
    *acc = *acc_di = NAN;
    if (K < 2) return seslm_fail(SESLM_ERR_FORMAT, "intent training data holds %d label(s); need 2 or more", K);
    seslm_lr lr;
    seslm_status st = seslm_lr_fit(&lr, vm->emb + (size_t)tr * vm->C, ytr, te - tr, vm->C, K, &c->lr);
    if (st != SESLM_OK) return st;
    int ok = 0;
    for (int i = te; i < end; i++) ok += seslm_lr_predict(&lr, vm->emb + (size_t)i * vm->C) == yte[i - te];
    *acc = end > te ? (double)ok / (end - te) : NAN;
    ok = 0;
    for (int i = 0; i < di_n; i++) ok += seslm_lr_predict(&lr, vm->emb + (size_t)(di + i) * vm->C) == ydi[i];
    *acc_di = di_n > 0 ? (double)ok / di_n : NAN;
    seslm_lr_free(&lr);
    return SESLM_OK;
}

/* Retrieval agreement of query row `row` over passage rows [pa, pa + np): the candidate's top k against the
 * parent's, near-ties of the parent (within margin of its k-th score) counted as agreed
 * (seslm_stats_agreement_at_k); *strict: plain recall@k. skip >= 0: passage skip is the query itself (a
 * corpus of the queries' own texts) and is left out of both lists. */
static void drop_index(int *x, int k, int skip) { // k + 1 entries -> the first k without skip
    int j = 0;
    for (int i = 0; i <= k && j < k; i++)
        if (x[i] != skip) x[j++] = x[i];
}

static double agreement(const vmodel *p, const vmodel *q, int row, int pa, int np, int k, double margin, double *strict,
                        int skip) {
    int a[SESLM_STATS_TOPK_MAX + 1], b[SESLM_STATS_TOPK_MAX + 1];
    double sb[SESLM_STATS_TOPK_MAX];
    const float *pq = p->emb + (size_t)row * p->C, *pp = p->emb + (size_t)pa * p->C;
    const int kk = skip >= 0 ? k + 1 : k;
    seslm_stats_topk(pq, pp, np, p->C, kk, a);
    seslm_stats_topk(q->emb + (size_t)row * q->C, q->emb + (size_t)pa * q->C, np, q->C, kk, b);
    if (skip >= 0) drop_index(a, k, skip), drop_index(b, k, skip);
    double kth = 0;
    for (int j = 0; j < p->C; j++) kth += (double)pq[j] * pp[(size_t)a[k - 1] * p->C + j];
    for (int i = 0; i < k; i++) { // the parent's score of each passage the candidate retrieved
        double s = 0;
        for (int j = 0; j < p->C; j++) s += (double)pq[j] * pp[(size_t)b[i] * p->C + j];
        sb[i] = s;
    }
    *strict = seslm_stats_recall_at_k(a, b, k);
    return seslm_stats_agreement_at_k(a, b, k, sb, kth, margin);
}

static void note_strict(seslm_validate_result *r, int m, int k, double margin, double strict) {
    const size_t n = strlen(r->data[m]);
    snprintf(r->data[m] + n, sizeof r->data[m] - n, "; near-ties within %g of the parent's k-th count; strict recall@%d %.4f",
             margin, k, strict);
}

static void recall_check(seslm_validate_result *r, const vmodel *p, const vmodel *q, const inputs *in, int k, double margin) {
    int np = in->off[S_QUERY] - in->off[S_PASS], nq = in->off[S_TRAFFIC] - in->off[S_QUERY];
    if (np <= 0 || nq <= 0) return;
    if (k > np) k = np;
    double sum = 0, mn = 1, strict = 0;
    for (int i = 0; i < nq; i++) {
        double s1;
        const double rc = agreement(p, q, in->off[S_QUERY] + i, in->off[S_PASS], np, k, margin, &s1, -1);
        sum += rc, strict += s1;
        if (rc < mn) mn = rc;
    }
    set(r, SESLM_VM_RECALL_AGREEMENT, 1.0, sum / nq, nq);
    set(r, SESLM_VM_RECALL_AGREEMENT_MIN, 1.0, mn, nq);
    note_strict(r, SESLM_VM_RECALL_AGREEMENT, k, margin, strict / nq);
}

/* The checks on the node's own data; a check without its data is marked skipped (its gates pass, saying so). */
static seslm_status node_checks(seslm_validate_result *r, const vmodel *p, const vmodel *q, const inputs *in,
                                const seslm_validate_config *c) {
    const int t0 = in->off[S_TRAFFIC], t1 = in->off[S_KB];
    if (t1 > t0) cosine_check(r, p, q, t0, t1, SESLM_VM_TRAFFIC_COSINE_MEAN, SESLM_VM_TRAFFIC_COSINE_P5);
    else r->values[SESLM_VM_TRAFFIC_COSINE_MEAN].skipped = r->values[SESLM_VM_TRAFFIC_COSINE_P5].skipped = 1;
    // traffic queries against the KB's passages; without a KB, against the held-out traffic itself (each
    // query's neighbours among the other held-out texts): the shipped Wikipedia sentences are nothing a
    // query of another domain is about, and their top 10 is a run of near-ties (docs/validation.md)
    int pa = in->off[S_KB], pb = in->off[S_FB_TR];
    const int own = pb == pa;
    if (own) pa = t0, pb = t1;
    const int np = pb - pa - own, nq = in->traffic_queries < pb - pa ? in->traffic_queries : pb - pa;
    if (np > 0 && nq > 0) {
        const int k = c->recall_k < np ? c->recall_k : np;
        double sum = 0, strict = 0;
        for (int i = 0; i < nq; i++) {
            double s1;
            sum += agreement(p, q, t0 + i, pa, pb - pa, k, c->recall_tie_margin, &s1, own ? t0 + i - pa : -1);
            strict += s1;
        }
        set(r, SESLM_VM_TRAFFIC_RECALL_AGREEMENT, 1.0, sum / nq, nq);
        note_strict(r, SESLM_VM_TRAFFIC_RECALL_AGREEMENT, k, c->recall_tie_margin, strict / nq);
    } else {
        r->values[SESLM_VM_TRAFFIC_RECALL_AGREEMENT].skipped = 1;
    }
    const int f0 = in->off[S_FB_TR], f1 = in->off[S_FB_TE], f2 = in->off[S_COUNT];
    if (f2 > f1 && f1 > f0 && in->n_fb_labels >= 2) {
        double acc[2] = {NAN, NAN}, unused;
        const vmodel *vm[2] = {p, q};
        for (int m = 0; m < 2; m++) {
            seslm_status st = intent_accuracy(vm[m], c, f0, f1, f2, in->fb_tr_y, in->fb_te_y, in->n_fb_labels, 0, 0, NULL,
                                              &acc[m], &unused);
            if (st != SESLM_OK) return st;
        }
        set(r, SESLM_VM_FEEDBACK_INTENT_ACCURACY, acc[0], acc[1], f2 - f1);
    } else {
        r->values[SESLM_VM_FEEDBACK_INTENT_ACCURACY].skipped = 1;
    }
    return SESLM_OK;
}

/* Which data each metric used, for verdict.json and the report. */
static void describe_data(seslm_validate_result *r, const inputs *in, const seslm_validate_config *c) {
#define D(m, ...) (void)(snprintf(r->data[m], sizeof r->data[m], __VA_ARGS__) < 0)
    const int nh = in->off[S_DOMAIN] - in->off[S_HELD], nd = in->off[S_STS1] - in->off[S_DOMAIN];
    D(SESLM_VM_COSINE_MEAN, "%s (%d rows; shipped)", c->heldout, nh);
    D(SESLM_VM_COSINE_P5, "%s (%d rows; shipped)", c->heldout, nh);
    char dom[400] = "";
    for (int i = 0; i < c->n_domain_texts; i++)
        snprintf(dom + strlen(dom), sizeof dom - strlen(dom), "%s%s", i ? ", " : "", c->domain_texts[i]);
    D(SESLM_VM_DOMAIN_COSINE_MEAN, "%s (%d rows; shipped)", dom, nd);
    D(SESLM_VM_DOMAIN_COSINE_P5, "%s (%d rows; shipped)", dom, nd);
    D(SESLM_VM_STSB_SPEARMAN, "%s (%d pairs; general floor)", c->stsb, in->off[S_STS2] - in->off[S_STS1]);
    D(SESLM_VM_CLINC150_ACCURACY, "%s -> %s (shipped)", c->clinc_train, c->clinc_test);
    D(SESLM_VM_SNIPS_ACCURACY, "%s -> %s (shipped)", c->snips_train, c->snips_test);
    D(SESLM_VM_DOMAIN_INTENT_ACCURACY, "%s + %s (%d rows; shipped)", c->domain_intent_texts, c->domain_intent_labels,
      in->off[S_PASS] - in->off[S_DI]);
    D(SESLM_VM_RECALL_AGREEMENT, "%s as queries (%d) over %s (%d; shipped)", c->queries, in->off[S_TRAFFIC] - in->off[S_QUERY],
      c->passages, in->off[S_QUERY] - in->off[S_PASS]);
    D(SESLM_VM_RECALL_AGREEMENT_MIN, "%s", r->data[SESLM_VM_RECALL_AGREEMENT]);
    for (int m = SESLM_VM_LATENCY_B1_P50; m <= SESLM_VM_LATENCY_B32_P95; m++) D(m, "%s", c->latency_input);
    D(SESLM_VM_WEIGHT_BYTES, "model.safetensors");
    D(SESLM_VM_PEAK_RSS, "%s (32 rows, forked child)", c->latency_input);
    const int nt = in->off[S_KB] - in->off[S_TRAFFIC];
    if (nt > 0) {
        D(SESLM_VM_TRAFFIC_COSINE_MEAN, "%s (%d rows; served traffic held out of calibration)", c->traffic, nt);
        D(SESLM_VM_TRAFFIC_COSINE_P5, "%s", r->data[SESLM_VM_TRAFFIC_COSINE_MEAN]);
    } else {
        D(SESLM_VM_TRAFFIC_COSINE_MEAN, "none: no served-traffic sample given (data.traffic)");
        D(SESLM_VM_TRAFFIC_COSINE_P5, "%s", r->data[SESLM_VM_TRAFFIC_COSINE_MEAN]);
    }
    if (in->traffic_queries > 0 && in->off[S_FB_TR] > in->off[S_KB])
        D(SESLM_VM_TRAFFIC_RECALL_AGREEMENT, "%.200s as queries (%d) over the node's KB %.200s (%d passages)", c->traffic,
          in->traffic_queries, in->kb_passages, in->off[S_FB_TR] - in->off[S_KB]);
    else if (in->traffic_queries > 0)
        D(SESLM_VM_TRAFFIC_RECALL_AGREEMENT, "%s as queries (%d) over the other held-out traffic texts (%d; no KB "
          "configured: data.kb)", c->traffic, in->traffic_queries < nt ? in->traffic_queries : nt, nt - 1);
    else D(SESLM_VM_TRAFFIC_RECALL_AGREEMENT, "none: no served-traffic sample given (data.traffic)");
    if (in->off[S_COUNT] > in->off[S_FB_TE])
        D(SESLM_VM_FEEDBACK_INTENT_ACCURACY, "%s (%d train + %d test rows, %d labels)", c->feedback,
          in->off[S_FB_TE] - in->off[S_FB_TR], in->off[S_COUNT] - in->off[S_FB_TE], in->n_fb_labels);
    else if (c->feedback && c->feedback[0])
        D(SESLM_VM_FEEDBACK_INTENT_ACCURACY, "none: %s holds %d labelled rows, fewer than samples.feedback_min %d",
          c->feedback, in->fb_rows, c->feedback_min);
    else D(SESLM_VM_FEEDBACK_INTENT_ACCURACY, "none: no labelled feedback given (data.feedback)");
#undef D
}

static double cpu_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Attaches ~95% intervals to a timing metric: of each model's quantile q, and (paired) of the median
 * per-pair candidate/parent ratio. sorted[m] are the sorted per-call times; ratios sorted too. */
static void timing_ci(seslm_vvalue *v, double *sorted[2], int n, double q, const double *ratios) {
    seslm_stats_quantile_ci(sorted[0], n, q, &v->par_lo, &v->par_hi);
    seslm_stats_quantile_ci(sorted[1], n, q, &v->cand_lo, &v->cand_hi);
    v->has_ci = 1;
    if (ratios) {
        v->paired = 1;
        seslm_stats_quantile_ci(ratios, n, 0.5, &v->ratio_lo, &v->ratio_hi);
        v->ratio = n % 2 ? ratios[n / 2] : 0.5 * (ratios[n / 2 - 1] + ratios[n / 2]);
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Latency at batch 1 and 32 as many short pairs: each repeat runs the parent and the candidate back to
 * back (alternating which goes first, so neither always runs on a cache the other warmed). A burst of
 * other work on the machine then mostly lands on both halves of a pair, so the per-pair ratio keeps its
 * value where the p50 of each side alone would not; the gates use its median and an order-statistic
 * interval, and say "inconclusive" when the interval straddles the threshold. CPU time (all threads) is
 * recorded beside wall time. */
static seslm_status latency(seslm_validate_result *r, vmodel *vm[2], const vtable *lat, const seslm_validate_config *c,
                            FILE *progress) {
    const int sizes[2] = {1, 32}, reps[2] = {c->repeats_b1, c->repeats_b32};
    const seslm_vmetric p50[2] = {SESLM_VM_LATENCY_B1_P50, SESLM_VM_LATENCY_B32_P50};
    const seslm_vmetric p95[2] = {SESLM_VM_LATENCY_B1_P95, SESLM_VM_LATENCY_B32_P95};
    int C = vm[0]->C > vm[1]->C ? vm[0]->C : vm[1]->C;
    int nmax = (reps[0] > reps[1] ? reps[0] : reps[1]) + 1;
    float *out = malloc((size_t)32 * C * sizeof *out);
    double *t[2] = {malloc((size_t)nmax * sizeof(double)), malloc((size_t)nmax * sizeof(double))};
    double *cpu[2] = {malloc((size_t)nmax * sizeof(double)), malloc((size_t)nmax * sizeof(double))};
    double *ratio = malloc((size_t)nmax * sizeof(double)), *cratio = malloc((size_t)nmax * sizeof(double));
    seslm_status st = SESLM_OK;
    if (!out || !t[0] || !t[1] || !cpu[0] || !cpu[1] || !ratio || !cratio)
        st = seslm_fail(SESLM_ERR_NOMEM, "latency: out of memory");
    for (int s = 0; st == SESLM_OK && s < 2; s++) {
        if (reps[s] <= 0) continue;
        const int B = sizes[s], n = reps[s];
        say(progress, "latency at batch %d: %d warm-up + %d timed pairs (parent, candidate back to back)", B, c->warmup,
            n);
        const char *texts[32];
        size_t lens[32];
        for (int rep = -c->warmup; st == SESLM_OK && rep < n; rep++) {
            int base = (int)(((long long)(rep + c->warmup) * B) % lat->n);
            for (int j = 0; j < B; j++) {
                texts[j] = vtable_get(lat, (base + j) % lat->n, 0);
                lens[j] = strlen(texts[j]);
            }
            for (int o = 0; st == SESLM_OK && o < 2; o++) {
                int which = (rep & 1) ? 1 - o : o;
                double c0 = cpu_now_s(), t0 = util_now_s();
                st = seslm_encoder_embed_texts(vm[which]->e, texts, lens, B, out);
                double dt = (util_now_s() - t0) * 1e3, dc = (cpu_now_s() - c0) * 1e3;
                if (st != SESLM_OK) st = seslm_fail(st, "%s: latency run: %s", vm[which]->dir, seslm_last_error());
                if (rep >= 0) t[which][rep] = dt, cpu[which][rep] = dc;
            }
        }
        if (st != SESLM_OK) break;
        for (int i = 0; i < n; i++) {
            ratio[i] = t[1][i] / fmax(t[0][i], 1e-9);
            cratio[i] = cpu[1][i] / fmax(cpu[0][i], 1e-9);
        }
        qsort(ratio, (size_t)n, sizeof *ratio, cmp_double);
        qsort(cratio, (size_t)n, sizeof *cratio, cmp_double);
        r->pair_ratio_min[s] = ratio[0];
        r->pair_ratio_max[s] = ratio[n - 1];
        r->pair_ratio_med[s] = seslm_stats_percentile(ratio, n, 50);
        r->pair_cpu_ratio_med[s] = seslm_stats_percentile(cratio, n, 50);
        double v50[2], v95[2];
        for (int m = 0; m < 2; m++) {
            v50[m] = seslm_stats_percentile(t[m], n, 50); // sorts t[m]
            v95[m] = seslm_stats_percentile(t[m], n, 95);
            r->lat_min[m][s] = t[m][0];
            r->lat_max[m][s] = t[m][n - 1];
            r->cpu_p50[m][s] = seslm_stats_percentile(cpu[m], n, 50);
        }
        r->min_ratio[s] = t[1][0] / fmax(t[0][0], 1e-9); // best case against best case
        r->lat_repeats[s] = n;
        set(r, p50[s], v50[0], v50[1], n);
        set(r, p95[s], v95[0], v95[1], n);
        timing_ci(&r->values[p50[s]], t, n, 0.5, ratio);
        timing_ci(&r->values[p95[s]], t, n, 0.95, NULL);
    }
    free(out), free(t[0]), free(t[1]), free(cpu[0]), free(cpu[1]), free(ratio), free(cratio);
    return st;
}

// ---- the run -----------------------------------------------------------------------------------

void seslm_validate_evaluate_gates(const seslm_validate_config *c, seslm_validate_result *r) {
    r->pass = 1;
    int failed = 0, undecided = 0;
    const seslm_vvalue *tv = &r->values[SESLM_VM_TRAFFIC_COSINE_MEAN];
    const int node_traffic = tv->measured && !tv->skipped; // the node's own held-out traffic judges its domain
    for (int g = 0; g < c->n_gates; g++) {
        seslm_gate_eval(&c->gates[g], &r->values[c->gates[g].metric], &r->results[g]);
        seslm_gate_result *x = &r->results[g];
        if (node_traffic && c->gates[g].unless_traffic && !x->skipped) { // reported, not gating
            x->extra = 1;
            const int held = x->pass;
            x->pass = 1, x->inconclusive = 0;
            const size_t n = strlen(x->message);
            snprintf(x->message + n, sizeof x->message - n, " [extra check, %s; not gating: the node's own traffic is "
                     "measured (unless_traffic)]", held ? "holds" : "would fail");
        }
        r->pass &= r->results[g].pass;
        undecided += r->results[g].inconclusive;
        failed += !r->results[g].pass && !r->results[g].inconclusive;
    }
    r->n_results = c->n_gates;
    r->inconclusive = !failed && undecided > 0; // a gate that surely failed decides; noise does not
}

static double rate(int a, int b) { return b > 0 ? (double)a / b : NAN; }

void seslm_validate_set_grounded(const seslm_validate_config *c, seslm_validate_result *r,
                                 const seslm_validate_grounded *parent, const seslm_validate_grounded *candidate,
                                 const char *data) {
    const seslm_validate_grounded *g[2] = {parent, candidate};
    for (int m = SESLM_VM_GROUNDED_ANSWERED; m <= SESLM_VM_GROUNDED_HALLUCINATION; m++) {
        double v[2];
        for (int k = 0; k < 2; k++)
            v[k] = m == SESLM_VM_GROUNDED_ANSWERED  ? rate(g[k]->answered, g[k]->n)
                   : m == SESLM_VM_GROUNDED_FOUND    ? rate(g[k]->found, g[k]->n_answerable)
                   : m == SESLM_VM_GROUNDED_DECLINED ? rate(g[k]->unans_declined, g[k]->n_unanswerable)
                                                     : rate(g[k]->hallucinated, g[k]->n);
        seslm_vvalue *x = &r->values[m];
        memset(x, 0, sizeof *x);
        x->parent = v[0], x->candidate = v[1];
        x->measured = isfinite(v[0]) && isfinite(v[1]);
        x->skipped = !x->measured; // no (un)answerable question in the set: nothing to hold it to
        r->n_samples[m] = m == SESLM_VM_GROUNDED_FOUND      ? candidate->n_answerable
                          : m == SESLM_VM_GROUNDED_DECLINED ? candidate->n_unanswerable
                                                            : candidate->n;
        snprintf(r->data[m], sizeof r->data[m], "%s", data ? data : "");
    }
    seslm_validate_evaluate_gates(c, r);
}

seslm_status seslm_validate_run(const seslm_validate_config *c, const char *parent_dir, const char *candidate_dir,
                                seslm_validate_result *r, FILE *progress) {
    memset(r, 0, sizeof *r);
    double t_start = util_now_s();
    snprintf(r->parent_dir, sizeof r->parent_dir, "%s", parent_dir);
    snprintf(r->candidate_dir, sizeof r->candidate_dir, "%s", candidate_dir);
    r->threads = c->threads;
    inputs in;
    seslm_status st = inputs_load(&in, c);
    vtable lat = {0};
    if (st == SESLM_OK) st = vtable_read(&lat, c->latency_input, 1);
    if (st != SESLM_OK) {
        inputs_free(&in);
        return st;
    }
    say(progress, "%d texts to embed per model (held-out %d, domain %d, STS-B pairs %d, CLINC150 %d+%d, SNIPS %d+%d, "
        "domain intents %d, passages %d, queries %d)", in.n, in.off[S_DOMAIN] - in.off[S_HELD],
        in.off[S_STS1] - in.off[S_DOMAIN], in.off[S_STS2] - in.off[S_STS1], in.off[S_CL_TE] - in.off[S_CL_TR],
        in.off[S_SN_TR] - in.off[S_CL_TE], in.off[S_SN_TE] - in.off[S_SN_TR], in.off[S_DI] - in.off[S_SN_TE],
        in.off[S_PASS] - in.off[S_DI], in.off[S_QUERY] - in.off[S_PASS], in.off[S_TRAFFIC] - in.off[S_QUERY]);
    say(progress, "the node's data: held-out traffic %d (%d also queries), KB passages %d, feedback %d+%d of %d rows",
        in.off[S_KB] - in.off[S_TRAFFIC], in.traffic_queries, in.off[S_FB_TR] - in.off[S_KB],
        in.off[S_FB_TE] - in.off[S_FB_TR], in.off[S_COUNT] - in.off[S_FB_TE], in.fb_rows);

    // memory first: forked children, before this process has loaded anything or started threads
    const char *dirs[2] = {parent_dir, candidate_dir};
    long long rss[2] = {-1, -1};
    if (c->measure_memory) {
        const char *texts[32];
        int nt = lat.n < 32 ? lat.n : 32;
        for (int i = 0; i < nt; i++) texts[i] = vtable_get(&lat, i, 0);
        for (int m = 0; m < 2 && st == SESLM_OK; m++) {
            say(progress, "peak RSS of %s (forked child: load + one batch of %d, 1 thread)", dirs[m], nt);
            st = validate_peak_rss(dirs[m], texts, nt, 1, &rss[m]);
            if (st != SESLM_OK) {
                // a model that does not load: let the in-process load below name the real problem
                rss[m] = -1;
                st = SESLM_OK;
            }
        }
        if (rss[0] >= 0 && rss[1] >= 0) set(r, SESLM_VM_PEAK_RSS, (double)rss[0], (double)rss[1], 1);
    }
    long long wb[2] = {file_bytes(parent_dir), file_bytes(candidate_dir)};

    vmodel pm = {0}, cm = {0};
    vmodel *vm[2] = {&pm, &cm};
    for (int m = 0; m < 2 && st == SESLM_OK; m++) st = model_open(vm[m], dirs[m], c);
    if (st == SESLM_OK && pm.C != cm.C)
        st = seslm_fail(SESLM_ERR_SHAPE, "%s has hidden size %d, %s has %d: embeddings cannot be compared", parent_dir,
                        pm.C, candidate_dir, cm.C);
    if (st == SESLM_OK) {
        snprintf(r->parent_sha256, sizeof r->parent_sha256, "%s", seslm_model_weights_sha256(pm.m));
        snprintf(r->candidate_sha256, sizeof r->candidate_sha256, "%s", seslm_model_weights_sha256(cm.m));
        r->parent_params = param_count(pm.m), r->candidate_params = param_count(cm.m);
        if (wb[0] > 0 && wb[1] > 0) set(r, SESLM_VM_WEIGHT_BYTES, (double)wb[0], (double)wb[1], 1);
    }
    for (int m = 0; m < 2 && st == SESLM_OK; m++) {
        vm[m]->emb = malloc((size_t)(in.n + 1) * vm[m]->C * sizeof(float));
        if (!vm[m]->emb) {
            st = seslm_fail(SESLM_ERR_NOMEM, "embeddings of %d texts: out of memory", in.n);
            break;
        }
        double t0 = util_now_s();
        say(progress, "%s: embedding %d texts", m ? "candidate" : "parent", in.n);
        seslm_progress prog; // progress.h: an updating line with ETA on a terminal, plain lines in a log
        seslm_progress_init(&prog, progress, m ? "validate: candidate:" : "validate: parent:", "texts", in.n);
        st = embed_range(vm[m], in.text, in.n, c->batch, vm[m]->emb, &prog);
        if (st == SESLM_OK)
            say(progress, "%s: embedded in %.1f s (%.0f texts/s)", m ? "candidate" : "parent", util_now_s() - t0,
                in.n / fmax(util_now_s() - t0, 1e-9));
    }
    if (st == SESLM_OK) st = latency(r, vm, &lat, c, progress);

    if (st == SESLM_OK) {
        say(progress, "metrics: cosine, STS-B, intents (logistic regression), retrieval");
        cosine_check(r, &pm, &cm, in.off[S_HELD], in.off[S_DOMAIN], SESLM_VM_COSINE_MEAN, SESLM_VM_COSINE_P5);
        cosine_check(r, &pm, &cm, in.off[S_DOMAIN], in.off[S_STS1], SESLM_VM_DOMAIN_COSINE_MEAN,
                     SESLM_VM_DOMAIN_COSINE_P5);
        int ns = in.off[S_STS2] - in.off[S_STS1];
        if (ns > 0) set(r, SESLM_VM_STSB_SPEARMAN, stsb_spearman(&pm, &in), stsb_spearman(&cm, &in), ns);
        double acc[2] = {NAN, NAN}, acc_di[2] = {NAN, NAN}, sacc[2] = {NAN, NAN}, unused;
        int di_n = in.off[S_PASS] - in.off[S_DI];
        for (int m = 0; m < 2 && st == SESLM_OK && in.off[S_CL_TE] > in.off[S_CL_TR]; m++)
            st = intent_accuracy(vm[m], c, in.off[S_CL_TR], in.off[S_CL_TE], in.off[S_SN_TR], in.cl_tr_y, in.cl_te_y,
                                 in.n_cl_labels, in.off[S_DI], di_n, in.di_y, &acc[m], &acc_di[m]);
        for (int m = 0; m < 2 && st == SESLM_OK && in.off[S_SN_TE] > in.off[S_SN_TR]; m++)
            st = intent_accuracy(vm[m], c, in.off[S_SN_TR], in.off[S_SN_TE], in.off[S_DI], in.sn_tr_y, in.sn_te_y,
                                 in.n_sn_labels, 0, 0, NULL, &sacc[m], &unused);
        set(r, SESLM_VM_CLINC150_ACCURACY, acc[0], acc[1], in.off[S_SN_TR] - in.off[S_CL_TE]);
        set(r, SESLM_VM_SNIPS_ACCURACY, sacc[0], sacc[1], in.off[S_DI] - in.off[S_SN_TE]);
        set(r, SESLM_VM_DOMAIN_INTENT_ACCURACY, acc_di[0], acc_di[1], di_n);
        describe_data(r, &in, c); // first: the retrieval checks append their strict figure to it
        recall_check(r, &pm, &cm, &in, c->recall_k, c->recall_tie_margin);
        if (st == SESLM_OK) st = node_checks(r, &pm, &cm, &in, c);
    }
    for (int m = SESLM_VM_GROUNDED_ANSWERED; m <= SESLM_VM_GROUNDED_HALLUCINATION; m++) {
        r->values[m].skipped = 1; // until the program runs the grounded QA set (seslm_validate_set_grounded)
        snprintf(r->data[m], sizeof r->data[m], "no decoder configured (grounded.decoder)");
    }
    if (st == SESLM_OK) seslm_validate_evaluate_gates(c, r);
    r->seconds = util_now_s() - t_start;
    model_close(&pm), model_close(&cm);
    vtable_free(&lat);
    inputs_free(&in);
    return st;
}
