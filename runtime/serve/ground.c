/* ground.c — the grounded reply of POST /v1/message when the node has a decoder (--decoder): the decoder
 * answers the message from the retrieved passages only, the hallucination check (runtime/assist/grounded.h)
 * scores every sentence of its answer against them with the serving encoder, and the node says the answer
 * (citing the passages that support it), asks for clarification, or abstains:
 *
 *   "reply": {"text": what the node says, "verdict": "answer" | "clarify" | "abstain", "answer": the
 *             decoder's raw answer (null when it was not asked: no passage), "cited": [passage ids],
 *             "support": lowest sentence support, "why", "sentences": [{"text", "support", "passage",
 *             "missing": null | the number / name not in the passages}], "coverage": share of the question's
 *             terms in the passages, "tokens": generated tokens}
 *
 * Runs on the request's worker thread (http.c hands /v1/message to a worker); the generation holds the
 * decoder's lock, so grounded answers and /v1/chat/completions take turns. */
#include "grounded.h"
#include "retrieve.h"
#include "serve_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    seslm_server *s;
    int dim; // the knowledge base's: a model reloaded meanwhile must still give it
} embed_ctx;

/* Embeds texts through the batcher as one job (the serving model; seslm_ground_embed_fn). */
static int embed_batch(void *user, const char *const *texts, int n, float *out) {
    embed_ctx *e = user;
    seslm_server *s = e->s;
    serve_slot *slot = serve_slot_acquire(s);
    if (!slot) return seslm_fail(SESLM_ERR_INTERNAL, "no model is loaded"), -1;
    if (slot->hidden != e->dim) {
        serve_slot_release(slot);
        return seslm_fail(SESLM_ERR_SHAPE, "model %s gives %d-d embeddings, the knowledge base holds %d-d", slot->id,
                          slot->hidden, e->dim), -1;
    }
    int32_t *ids = malloc((size_t)n * (size_t)slot->tok_cap * sizeof *ids);
    int *lens = malloc((size_t)n * sizeof *lens), rc = 0;
    if (!ids || !lens) rc = (seslm_fail(SESLM_ERR_NOMEM, "out of memory"), -1);
    for (int i = 0; !rc && i < n; i++) {
        int32_t *row = ids + (size_t)i * slot->tok_cap;
        if (seslm_tokenizer_encode(seslm_model_tokenizer(slot->m), texts[i], strlen(texts[i]), row, slot->tok_cap,
                                   &lens[i]) != SESLM_OK)
            rc = -1;
        else if (lens[i] > slot->max_seq) { // keep the final [SEP], as seslm_encoder_embed_texts
            row[slot->max_seq - 1] = row[lens[i] - 1];
            lens[i] = slot->max_seq;
        }
    }
    if (!rc) {
        serve_job job;
        memset(&job, 0, sizeof job);
        job.slot = slot;
        job.n = n;
        job.cap = slot->tok_cap;
        job.ids = ids;
        job.lens = lens;
        job.out = out;
        if (serve_batcher_submit(s, &job) != 0) rc = (seslm_fail(SESLM_ERR_INTERNAL, "%s", job.err), -1);
    }
    free(ids);
    free(lens);
    serve_slot_release(slot);
    return rc;
}

int serve_ground_reply(seslm_server *s, const char *question, const int *pid, int n, sbuf *reply) {
    seslm_ground_opts o;
    seslm_ground_opts_default(&o);
    if (s->o.grounded_min_support > 0) o.min_support = s->o.grounded_min_support;
    if (s->o.grounded_clarify_support > 0) o.clarify_support = s->o.grounded_clarify_support;
    if (s->o.grounded_max_tokens > 0) o.max_tokens = s->o.grounded_max_tokens;
    if (s->o.grounded_min_coverage != 0) o.min_coverage = s->o.grounded_min_coverage < 0 ? 0 : s->o.grounded_min_coverage;
    if (n > SESLM_GROUND_MAX_PASSAGES) n = SESLM_GROUND_MAX_PASSAGES;
    const char *ps[SESLM_GROUND_MAX_PASSAGES];
    for (int i = 0; i < n; i++) ps[i] = seslm_kb_passage(s->kb, pid[i]);
    char *raw = NULL;
    int n_gen = 0;
    seslm_ground_check ck;
    memset(&ck, 0, sizeof ck);
    seslm_status st = SESLM_OK;
    if (n > 0) { // no passage: nothing to answer from, the decoder is not asked
        st = serve_chat_ground_answer(s, question, ps, n, o.max_tokens, &raw, &n_gen);
        embed_ctx ec = {s, seslm_kb_dim(s->kb)};
        if (st == SESLM_OK) st = seslm_ground_check_answer(question, raw, ps, n, ec.dim, embed_batch, &ec, &o, &ck);
    } else {
        ck.verdict = SESLM_GROUND_ABSTAIN;
        snprintf(ck.why, sizeof ck.why, "no passage is similar enough to answer from");
    }
    if (st != SESLM_OK) {
        free(raw);
        return sb_error_json(reply, st == SESLM_ERR_UTF8 || st == SESLM_ERR_LIMIT ? 400 : 500,
                             "grounded answer: %s", seslm_last_error());
    }
    const char *said = ck.verdict == SESLM_GROUND_ANSWER   ? raw
                       : ck.verdict == SESLM_GROUND_CLARIFY ? seslm_ground_clarify_text()
                                                            : seslm_ground_abstain_text();
    sb_puts(reply, "{\"text\":");
    sb_json_str(reply, said);
    sb_printf(reply, ",\"verdict\":\"%s\",\"answer\":", seslm_ground_verdict_name(ck.verdict));
    if (raw) sb_json_str(reply, raw);
    else sb_puts(reply, "null");
    sb_puts(reply, ",\"cited\":[");
    for (int i = 0, k = 0; i < n; i++)
        if (ck.cited[i]) sb_printf(reply, "%s%d", k++ ? "," : "", pid[i]);
    sb_puts(reply, "],\"support\":");
    sb_float(reply, ck.min_support);
    sb_puts(reply, ",\"why\":");
    sb_json_str(reply, ck.why);
    sb_puts(reply, ",\"sentences\":[");
    for (int i = 0; i < ck.n_sentences; i++) {
        sb_puts(reply, i ? ",{\"text\":" : "{\"text\":");
        sb_json_str(reply, ck.sentence[i]);
        sb_puts(reply, ",\"support\":");
        sb_float(reply, ck.support[i]);
        sb_printf(reply, ",\"passage\":%d,\"missing\":", pid[ck.passage[i]]);
        if (ck.flags[i]) sb_json_str(reply, ck.missing[i]);
        else sb_puts(reply, "null");
        sb_putn(reply, "}", 1);
    }
    sb_printf(reply, "],\"coverage\":%.4f,\"tokens\":%d}", (double)ck.coverage, n_gen);
    seslm_ground_check_free(&ck);
    free(raw);
    return 0;
}
