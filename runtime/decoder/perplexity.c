/* perplexity.c — held-out perplexity of a decoder on text (decoder.h, seslm_llm_perplexity).
 *
 * Each document (a line of text) starts from the document separator of GPT-2-family vocabularies,
 * <|endoftext|> (else BOS, else EOS; SmolLM2's BOS is the chat template's <|im_start|>), so that every one
 * of its tokens is scored and every byte counted. Long documents are cut into windows of n_ctx tokens, each started afresh. The sums are
 * kept in double: the negative log-likelihood in nats, the tokens scored and the bytes they stand for,
 * so that models with different vocabularies (a student whose rare tokens were cut) compare per byte. */
#include "decoder.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double seslm_llm_token_nll(const float *logits, int V, int target) {
    float mx = logits[0];
    for (int i = 1; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    double s = 0.0;
    for (int i = 0; i < V; i++) s += exp((double)logits[i] - mx);
    return log(s) - ((double)logits[target] - mx);
}

seslm_status seslm_llm_perplexity(seslm_llm_ctx *c, const char *const *docs, int n_docs, seslm_ppl_result *r,
                                  int (*progress)(void *user, int done, int total), void *user) {
    memset(r, 0, sizeof *r);
    const seslm_llm *m = seslm_llm_ctx_model(c);
    const bpe_tokenizer *tok = seslm_llm_tokenizer(m);
    const int V = seslm_llm_cfg(m)->n_vocab, W = seslm_llm_ctx_n_ctx(c);
    const int32_t start = bpe_doc_start(tok);
    if (start < 0) return seslm_fail(SESLM_ERR_FORMAT, "the tokenizer has neither a BOS nor an EOS token to start from");
    if (W < 2) return seslm_fail(SESLM_ERR_ARG, "a context of %d tokens cannot score anything", W);
    float *logits = malloc((size_t)W * (size_t)V * sizeof(float));
    int32_t *win = malloc((size_t)W * sizeof *win);
    if (!logits || !win) {
        free(logits), free(win);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory for %d x %d logits", W, V);
    }
    seslm_status st = SESLM_OK;
    for (int d = 0; d < n_docs && !st; d++) {
        int32_t *ids = NULL;
        int n = 0;
        if ((st = bpe_encode(tok, docs[d], strlen(docs[d]), 0, &ids, &n)) != SESLM_OK) {
            char why[256]; // (seslm_fail formats into the buffer seslm_last_error returns)
            snprintf(why, sizeof why, "%s", seslm_last_error());
            st = seslm_fail(st, "document %d: %s", d + 1, why);
            break;
        }
        for (int p = 0; p < n && !st; p += W - 1) { // window: start token + up to W - 1 tokens, all scored
            const int k = n - p < W - 1 ? n - p : W - 1;
            win[0] = start;
            memcpy(win + 1, ids + p, (size_t)k * sizeof *win);
            seslm_llm_ctx_reset(c);
            if ((st = seslm_llm_decode_all(c, win, k, logits)) != SESLM_OK) break;
            for (int i = 0; i < k; i++) {
                double l = seslm_llm_token_nll(logits + (size_t)i * V, V, win[i + 1]);
                if (!isfinite(l)) {
                    st = seslm_fail(SESLM_ERR_INTERNAL, "document %d: non-finite logits at token %d", d + 1, p + i);
                    break;
                }
                r->nll += l;
                char buf[64];
                int b = bpe_token_bytes(tok, win[i + 1], 0, buf, (int)sizeof buf);
                r->n_bytes += (uint64_t)(b > 0 ? b : 0);
            }
            r->n_tokens += (uint64_t)k;
        }
        free(ids);
        r->n_docs++;
        if (!st && progress && progress(user, d + 1, n_docs)) st = seslm_fail(SESLM_ERR_ARG, "cancelled");
    }
    seslm_llm_ctx_reset(c);
    free(logits), free(win);
    if (!st && r->n_tokens == 0) st = seslm_fail(SESLM_ERR_ARG, "no tokens to score (empty text)");
    if (!st) {
        r->ppl = exp(r->nll / (double)r->n_tokens);
        r->bits_per_byte = r->n_bytes ? r->nll / log(2.0) / (double)r->n_bytes : 0.0;
    }
    return st;
}
