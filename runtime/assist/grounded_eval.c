/* grounded_eval.c — the grounded QA set (data/grounded/): retrieval, the decoder's grounded answer and the
 * hallucination check per question, and the rates over the set (grounded.h). */
#include "grounded.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define EVAL_MAX_K 8
#define EMBED_CHUNK 32

typedef struct {
    char *buf;
    char **line;
    int n;
} lines;

static void lines_free(lines *l) {
    free(l->buf);
    free(l->line);
    memset(l, 0, sizeof *l);
}

/* Every non-empty line of the file (trailing CR removed). */
static seslm_status lines_read(lines *l, const char *path) {
    memset(l, 0, sizeof *l);
    FILE *f = fopen(path, "rb");
    if (!f) return seslm_fail(SESLM_ERR_IO, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (sz < 0 || !(l->buf = malloc((size_t)sz + 1)) || fread(l->buf, 1, (size_t)sz, f) != (size_t)sz) {
        fclose(f);
        lines_free(l);
        return seslm_fail(SESLM_ERR_IO, "cannot read %s", path);
    }
    fclose(f);
    l->buf[sz] = 0;
    int cap = 1;
    for (long i = 0; i < sz; i++) cap += l->buf[i] == '\n';
    if (!(l->line = malloc((size_t)cap * sizeof *l->line))) {
        lines_free(l);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    for (char *p = l->buf; p && *p;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        size_t L = strlen(p);
        if (L && p[L - 1] == '\r') p[--L] = 0;
        if (L) l->line[l->n++] = p;
        p = nl ? nl + 1 : NULL;
    }
    return SESLM_OK;
}

static float dot(const float *a, const float *b, int d) {
    double s = 0;
    for (int i = 0; i < d; i++) s += (double)a[i] * b[i];
    return (float)s;
}

static void normalise(float *v, int d) {
    double s = 0;
    for (int i = 0; i < d; i++) s += (double)v[i] * v[i];
    if (s > 0)
        for (int i = 0; i < d; i++) v[i] = (float)(v[i] / sqrt(s));
}

/* The expected answer's alternatives are separated by '|'; any one found in text (case-blind) counts. */
static int contains_expected(const char *text, const char *expected) {
    const char *p = expected;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        for (const char *t = text; n && *t; t++)
            if (strncasecmp(t, p, n) == 0) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

struct seslm_ground_cache {
    struct entry {
        char *prompt, *raw;
        int n_gen;
        struct entry *next;
    } *head;
};

seslm_ground_cache *seslm_ground_cache_new(void) { return calloc(1, sizeof(seslm_ground_cache)); }

void seslm_ground_cache_free(seslm_ground_cache *c) {
    if (!c) return;
    for (struct entry *e = c->head, *n; e; e = n) {
        n = e->next;
        free(e->prompt);
        free(e->raw);
        free(e);
    }
    free(c);
}

/* The cached answer to prompt (a malloc'd copy in *raw), or generates it and caches a copy. */
static seslm_status answer(struct seslm_llm *m, seslm_ground_cache *c, const char *prompt, int max_tokens, char **raw,
                           int *n_gen) {
    for (struct entry *e = c ? c->head : NULL; e; e = e->next)
        if (strcmp(e->prompt, prompt) == 0) {
            *n_gen = 0; // nothing generated this time
            return (*raw = strdup(e->raw)) ? SESLM_OK : seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        }
    seslm_status st = seslm_ground_generate(m, prompt, max_tokens, raw, NULL, n_gen);
    if (st != SESLM_OK || !c) return st;
    struct entry *e = calloc(1, sizeof *e);
    if (e && (e->prompt = strdup(prompt)) && (e->raw = strdup(*raw))) {
        e->n_gen = *n_gen;
        e->next = c->head;
        c->head = e;
    } else if (e) {
        free(e->prompt);
        free(e);
    }
    return SESLM_OK; // a failed cache insert only costs a generation later
}

seslm_status seslm_ground_eval(struct seslm_llm *m, int dim, seslm_ground_embed_fn embed, void *user,
                               const char *qa_path, const char *passages_path, int k, double kb_threshold,
                               int max_q, const seslm_ground_opts *o, seslm_ground_cache *cache,
                               seslm_ground_eval_result *res, FILE *log, FILE *progress) {
    memset(res, 0, sizeof *res);
    if (!m || dim <= 0 || !embed || k < 1 || k > EVAL_MAX_K || !o)
        return seslm_fail(SESLM_ERR_ARG, "grounded QA: bad arguments (k must be 1..%d)", EVAL_MAX_K);
    lines qa, ps;
    seslm_status st = lines_read(&qa, qa_path);
    if (st != SESLM_OK) return st;
    if ((st = lines_read(&ps, passages_path)) != SESLM_OK) {
        lines_free(&qa);
        return st;
    }
    float *pe = NULL, q[4096];
    const double t0 = util_now_s();
    if (dim > 4096) st = seslm_fail(SESLM_ERR_ARG, "grounded QA: embeddings of %d dimensions (at most 4096)", dim);
    else if (ps.n == 0) st = seslm_fail(SESLM_ERR_FORMAT, "%s: no passages", passages_path);
    else if (qa.n < 2 || strncmp(qa.line[0], "id\tquestion\tanswer", 18) != 0)
        st = seslm_fail(SESLM_ERR_FORMAT, "%s: expected the header \"id TAB question TAB answer\" and questions", qa_path);
    else if (!(pe = malloc((size_t)ps.n * (size_t)dim * sizeof *pe))) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    for (int i = 0; st == SESLM_OK && i < ps.n; i += EMBED_CHUNK) {
        int c = ps.n - i < EMBED_CHUNK ? ps.n - i : EMBED_CHUNK;
        if (embed(user, (const char *const *)ps.line + i, c, pe + (size_t)i * dim) != 0)
            st = seslm_fail(SESLM_ERR_INTERNAL, "grounded QA: embedding the passages: %s", seslm_last_error());
    }
    for (int i = 0; st == SESLM_OK && i < ps.n; i++) normalise(pe + (size_t)i * dim, dim);
    const int nq = max_q > 0 && max_q < qa.n - 1 ? max_q : qa.n - 1;
    for (int i = 1; st == SESLM_OK && i <= nq; i++) {
        // id TAB question TAB expected ("" or "-": not answerable from the passages)
        char *id = qa.line[i], *question = strchr(id, '\t'), *expected = question ? strchr(question + 1, '\t') : NULL;
        if (!expected || strchr(expected + 1, '\t')) {
            st = seslm_fail(SESLM_ERR_FORMAT, "%s: row %d: expected 3 TAB-separated fields", qa_path, i + 1);
            break;
        }
        *question++ = 0;
        *expected++ = 0;
        const int answerable = *expected && strcmp(expected, "-") != 0;
        const char *qs[1] = {question};
        if (embed(user, qs, 1, q) != 0) {
            st = seslm_fail(SESLM_ERR_INTERNAL, "grounded QA: embedding a question: %s", seslm_last_error());
            break;
        }
        normalise(q, dim);
        // exact top-k at or above the threshold (ties: the lower line first)
        int top[EVAL_MAX_K], nt = 0;
        float sc[EVAL_MAX_K];
        for (int p = 0; p < ps.n; p++) {
            float s = dot(q, pe + (size_t)p * dim, dim);
            if (s < kb_threshold) continue;
            int j;
            if (nt < k) {
                j = nt++;
            } else {
                if (s <= sc[k - 1]) continue;
                j = k - 1;
            }
            while (j > 0 && sc[j - 1] < s) sc[j] = sc[j - 1], top[j] = top[j - 1], j--;
            sc[j] = s, top[j] = p;
        }
        const char *ctx[EVAL_MAX_K];
        for (int j = 0; j < nt; j++) ctx[j] = ps.line[top[j]];
        char *prompt = NULL, *raw = NULL;
        int ngen = 0;
        seslm_ground_check ck;
        memset(&ck, 0, sizeof ck);
        if (nt) { // with no passage the node abstains without asking the decoder (as /v1/message does)
            if (!(prompt = seslm_ground_prompt(m, question, ctx, nt))) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
            else st = answer(m, cache, prompt, o->max_tokens, &raw, &ngen);
            if (st == SESLM_OK) st = seslm_ground_check_answer(question, raw, ctx, nt, dim, embed, user, o, &ck);
        } else {
            ck.verdict = SESLM_GROUND_ABSTAIN;
            snprintf(ck.why, sizeof ck.why, "no passage at or above the retrieval threshold");
        }
        if (st != SESLM_OK) {
            free(prompt);
            free(raw);
            break;
        }
        res->n++;
        res->tokens += ngen;
        const int answered = ck.verdict == SESLM_GROUND_ANSWER;
        res->answered += answered;
        res->declined += ck.verdict == SESLM_GROUND_ABSTAIN;
        res->clarified += ck.verdict == SESLM_GROUND_CLARIFY;
        const char *said = answered ? raw : ck.verdict == SESLM_GROUND_CLARIFY ? seslm_ground_clarify_text()
                                                                             : seslm_ground_abstain_text();
        int hit = 0;
        if (answerable) {
            res->n_answerable++;
            hit = answered && contains_expected(raw, expected);
            res->found += hit;
            res->raw_found += raw && contains_expected(raw, expected);
            res->hallucinated += answered && !hit;
        } else {
            res->n_unanswerable++;
            res->unans_declined += !answered;
            res->raw_unans_declined += !raw || seslm_ground_is_decline(raw);
            res->hallucinated += answered;
        }
        if (log) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "id", id);
            cJSON_AddStringToObject(j, "question", question);
            cJSON_AddStringToObject(j, "expected", answerable ? expected : "");
            cJSON *pa = cJSON_AddArrayToObject(j, "passages");
            for (int t = 0; t < nt; t++) {
                cJSON *e = cJSON_CreateObject();
                cJSON_AddNumberToObject(e, "passage", top[t]);
                cJSON_AddNumberToObject(e, "score", sc[t]);
                cJSON_AddItemToArray(pa, e);
            }
            cJSON_AddStringToObject(j, "prompt", prompt ? prompt : "");
            cJSON_AddStringToObject(j, "raw", raw ? raw : "");
            cJSON_AddStringToObject(j, "verdict", seslm_ground_verdict_name(ck.verdict));
            cJSON_AddStringToObject(j, "said", said);
            cJSON_AddNumberToObject(j, "support", ck.min_support);
            cJSON_AddStringToObject(j, "why", ck.why);
            cJSON_AddBoolToObject(j, "found", hit);
            cJSON_AddBoolToObject(j, "hallucinated", answered && (answerable ? !hit : 1)); // as res->hallucinated counts
            char *t = cJSON_PrintUnformatted(j);
            if (t) fprintf(log, "%s\n", t);
            free(t);
            cJSON_Delete(j);
        }
        if (progress)
            fprintf(progress, "grounded QA: %d/%d %s: %s (support %.3f)\n", i, nq, id, seslm_ground_verdict_name(ck.verdict),
                    (double)ck.min_support);
        seslm_ground_check_free(&ck);
        free(prompt);
        free(raw);
    }
    res->seconds = util_now_s() - t0;
    free(pe);
    lines_free(&qa);
    lines_free(&ps);
    return st;
}
