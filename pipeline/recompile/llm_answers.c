/* seslm_llm_answers.c — the parent's answers to served chat prompts, and their loss under a model (seslm_llm_answers.h). */
#include "llm_answers.h"

#include "bpe.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void seslm_llm_answers_free(seslm_llm_answers *a) {
    free(a->ids), free(a->off), free(a->n_prompt), free(a->n_answer);
    memset(a, 0, sizeof *a);
}

seslm_status seslm_llm_answers_build(seslm_llm_answers *a, const seslm_llm *parent, const char *const *prompts, int n_prompts,
                               int max_answer, seslm_llm_answer_cache *cache, int verbose) {
    memset(a, 0, sizeof *a);
    if (n_prompts <= 0 || max_answer <= 0) return seslm_fail(SESLM_ERR_ARG, "no served prompts to answer");
    const bpe_tokenizer *tok = seslm_llm_tokenizer(parent);
    const int n_ctx = seslm_llm_cfg(parent)->n_ctx_train;
    a->off = malloc((size_t)n_prompts * sizeof(int));
    a->n_prompt = malloc((size_t)n_prompts * sizeof(int));
    a->n_answer = malloc((size_t)n_prompts * sizeof(int));
    if (!a->off || !a->n_prompt || !a->n_answer) {
        seslm_llm_answers_free(a);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    long long cap = 0, used = 0;
    const double t0 = util_now_s();
    seslm_status st = SESLM_OK;
    for (int i = 0; i < n_prompts && !st; i++) {
        char *p = strdup(prompts[i]);
        if (!p) {
            st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
            break;
        }
        seslm_prompt_unescape(p);
        int32_t *ids = NULL;
        int n = 0;
        st = bpe_encode(tok, p, strlen(p), 1, &ids, &n);
        free(p);
        if (st) {
            char why[256];
            snprintf(why, sizeof why, "%s", seslm_last_error());
            st = seslm_fail(st, "served prompt %d: %s", i + 1, why);
            break;
        }
        const int np = n;
        if (np > 0 && np < n_ctx) st = seslm_llm_answer_cache_greedy(cache, parent, &ids, &n, max_answer);
        if (!st && np > 0 && n > np) { // answered: keep it
            if (used + n > cap) {
                cap = 2 * (used + n) + 4096;
                int32_t *g = realloc(a->ids, (size_t)cap * sizeof *g);
                if (!g) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
                else a->ids = g;
            }
            if (!st) {
                memcpy(a->ids + used, ids, (size_t)n * sizeof *ids);
                a->off[a->n] = (int)used, a->n_prompt[a->n] = np, a->n_answer[a->n] = n - np;
                if (n > a->max_len) a->max_len = n;
                a->n_answer_tokens += n - np;
                a->n++;
                used += n;
            }
        }
        free(ids);
        if (!st && verbose && (i + 1) % 8 == 0) {
            const double el = util_now_s() - t0;
            fprintf(stderr, "seslm recompile-decoder: the parent's answers to the served prompts: %d of %d (%.0f s)\n", i + 1,
                    n_prompts, el);
        }
    }
    if (!st && a->n == 0) st = seslm_fail(SESLM_ERR_ARG, "none of the %d served prompts left room for an answer", n_prompts);
    if (st) seslm_llm_answers_free(a);
    return st;
}

seslm_status seslm_llm_answers_nll(seslm_llm_ctx *c, const seslm_llm_answers *a, double *nll) {
    *nll = 0.0;
    const int V = seslm_llm_cfg(seslm_llm_ctx_model(c))->n_vocab;
    if (seslm_llm_ctx_n_ctx(c) < a->max_len) return seslm_fail(SESLM_ERR_ARG, "the context is shorter than a served prompt with its answer");
    int max_ans = 0;
    for (int i = 0; i < a->n; i++) max_ans = a->n_answer[i] > max_ans ? a->n_answer[i] : max_ans;
    float *logits = malloc((size_t)max_ans * (size_t)V * sizeof *logits); // (A, V): row j predicts answer token j
    if (!logits) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    seslm_status st = SESLM_OK;
    double sum = 0.0;
    for (int i = 0; i < a->n && !st; i++) {
        const int32_t *p = a->ids + a->off[i], *ans = p + a->n_prompt[i];
        const int A = a->n_answer[i];
        seslm_llm_ctx_reset(c);
        // the prompt's last row predicts the first answer token; the answer's rows but its last predict the rest
        st = seslm_llm_decode(c, p, a->n_prompt[i], logits);
        if (!st && A > 1) st = seslm_llm_decode_all(c, ans, A - 1, logits + V);
        for (int j = 0; j < A && !st; j++) sum += seslm_llm_token_nll(logits + (size_t)j * V, V, ans[j]);
    }
    free(logits);
    if (!st) *nll = sum;
    return st;
}
