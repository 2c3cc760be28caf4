/* seslm_llm_answers.h — the parent's answers to served chat prompts, and what a model loses on them
 * (llm_prune.c: the layer choice of recompile-decoder with served prompts).
 *
 * Layer costs measured on plain text miss what a grounded-QA node needs most: copying from the context.
 * On SmolLM2-135M-Instruct the layer cheapest on wiki text (17: +0.002 nats/token) costs +0.27 nats per
 * answer token on grounded prompts, and 18 (+0.056 on text) +0.61 (bench/RESULTS.md 17). So the choice
 * also scores the parent's own greedy answers to the served prompts, each token predicted from the
 * prompt and the answer before it, with the layers bypassed. */
#ifndef SESLM_LLM_ANSWERS_H
#define SESLM_LLM_ANSWERS_H

#include "decoder.h"
#include "llm_answer_cache.h"

#include <stdint.h>

typedef struct {
    int32_t *ids;  // every prompt's tokens then its answer's, back to back
    int *off;      // (n) where each starts in ids
    int *n_prompt; // (n) prompt tokens
    int *n_answer; // (n) answer tokens (>= 1)
    int n;         // prompts answered
    int max_len;   // the longest prompt + answer (the context the scoring needs)
    long long n_answer_tokens;
} seslm_llm_answers;

/* The parent's greedy answers (up to max_answer tokens, to its end of turn) to the prompts (served chat
 * prompts, "\n" for a newline; special tokens as the node writes them), through cache (may be NULL). A prompt that leaves no room for
 * an answer in the training context, or is empty, is skipped. ARG when none is left; UTF8 names a bad one. */
seslm_status seslm_llm_answers_build(seslm_llm_answers *a, const seslm_llm *parent, const char *const *prompts, int n_prompts,
                               int max_answer, seslm_llm_answer_cache *cache, int verbose);
/* Summed negative log-likelihood (nats) of the answer tokens under the model of a context of at least
 * a->max_len tokens (reset first; with whatever layers that model bypasses). */
seslm_status seslm_llm_answers_nll(seslm_llm_ctx *c, const seslm_llm_answers *a, double *nll);
void seslm_llm_answers_free(seslm_llm_answers *a);

#endif
