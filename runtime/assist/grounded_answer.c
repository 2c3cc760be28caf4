/* grounded_answer.c — the decoder's grounded prompt and its bounded greedy answer (grounded.h). */
#include "grounded.h"

#include "decoder.h"

#include <stdlib.h>
#include <string.h>

// The instruction of seed 002's platform; the model is told how to decline so that the check can
// recognise it (seslm_ground_is_decline).
static const char *SYSTEM =
    "Answer ONLY using the context below. If the context does not contain the answer, say \"I don't know\". "
    "Answer in one short sentence.";

char *seslm_ground_prompt(const struct seslm_llm *m, const char *question, const char *const *passages, int n) {
    size_t len = strlen(question) + 64;
    for (int i = 0; i < n; i++) len += strlen(passages[i]) + 16;
    char *user = malloc(len);
    if (!user) return NULL;
    char *w = user;
    w += sprintf(w, "Context:\n");
    for (int i = 0; i < n; i++) w += sprintf(w, "[%d] %s\n", i + 1, passages[i]);
    sprintf(w, "\nQuestion: %s", question);
    seslm_chat_msg msgs[2] = {{"system", SYSTEM}, {"user", user}};
    char *p = seslm_chat_format(m, msgs, 2, 1);
    free(user);
    return p;
}

seslm_status seslm_ground_generate(struct seslm_llm *m, const char *prompt, int max_tokens, char **text,
                                   int *n_prompt, int *n_gen) {
    *text = NULL;
    if (max_tokens < 1) return seslm_fail(SESLM_ERR_ARG, "grounded answer: max_tokens must be >= 1");
    const seslm_llm_config *cf = seslm_llm_cfg(m);
    int32_t *ids = NULL;
    int n = 0;
    seslm_status st = bpe_encode(seslm_llm_tokenizer(m), prompt, strlen(prompt), 1, &ids, &n);
    free(ids);
    if (st != SESLM_OK) return st;
    if (n + max_tokens + 1 > cf->n_ctx_train)
        return seslm_fail(SESLM_ERR_LIMIT, "the grounded prompt has %d tokens; with %d to generate it exceeds the "
                                           "model's context of %d", n, max_tokens, cf->n_ctx_train);
    seslm_llm_ctx *ctx = NULL;
    if ((st = seslm_llm_ctx_new(&ctx, m, n + max_tokens + 1, 0)) != SESLM_OK) return st;
    // greedy: the same context gives the same answer, so the check and the tests are deterministic
    seslm_gen_opts go = {.max_tokens = max_tokens, .sampling = {0.0f, 1.0f, 0}, .parse_special = 1};
    seslm_gen_result res;
    st = seslm_generate(ctx, prompt, strlen(prompt), &go, &res);
    seslm_llm_ctx_free(ctx);
    if (st != SESLM_OK) return st;
    *text = res.text;
    res.text = NULL;
    if (n_prompt) *n_prompt = res.n_prompt;
    if (n_gen) *n_gen = res.n_gen;
    seslm_gen_result_free(&res);
    return SESLM_OK;
}
