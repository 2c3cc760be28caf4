/* api_embed.c — what every embedding API shares: prompt-aware tokenization, the length limit, the batcher,
 * routing among the compatible APIs. */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

seslm_status serve_tokenize(const serve_slot *slot, const char *prompt, const char *text, size_t len, int32_t *row,
                            int cap, int *n, int *n_full) {
    const seslm_tokenizer *tok = seslm_model_tokenizer(slot->m);
    if (!prompt) prompt = seslm_encoder_prompt(slot->e);
    if (prompt && !*prompt) prompt = NULL;
    if (!prompt) return seslm_tokenizer_encode_full(tok, text, len, row, cap, n, n_full);
    // sentence-transformers prepends the prompt string and tokenizes the whole (the encoder then leaves the
    // prompt's tokens out of pooling when include_prompt is false)
    const size_t pl = strlen(prompt);
    char *joined = malloc(pl + len + 1);
    if (!joined) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    memcpy(joined, prompt, pl);
    memcpy(joined + pl, text, len);
    seslm_status st = seslm_tokenizer_encode_full(tok, joined, pl + len, row, cap, n, n_full);
    free(joined);
    return st;
}

serve_embed_result serve_embed_texts(seslm_server *s, serve_slot *slot, const char *prompt, const serve_text *texts,
                                     int n, int truncate, float *out, int64_t *ntok) {
    serve_embed_result r = {.code = 200, .index = -1};
    serve_job job;
    memset(&job, 0, sizeof job);
    job.slot = slot;
    job.n = n;
    job.cap = slot->tok_cap;
    int32_t *ids = malloc((size_t)n * job.cap * sizeof(int32_t));
    int *lens = malloc((size_t)n * sizeof(int));
    *ntok = 0;
    if (!ids || !lens) {
        r.code = 500;
        snprintf(r.msg, sizeof r.msg, "out of memory for %d texts", n);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        int32_t *row = ids + (size_t)i * job.cap;
        int full = 0;
        seslm_status st = serve_tokenize(slot, prompt, texts[i].p, texts[i].len, row, job.cap, &lens[i], &full);
        if (st != SESLM_OK) {
            r.index = i;
            r.code = st == SESLM_ERR_UTF8 ? 400 : 500;
            if (st == SESLM_ERR_UTF8) atomic_fetch_add(&slot->rejected, 1);
            snprintf(r.msg, sizeof r.msg, "input %d%s: %s", i, st == SESLM_ERR_UTF8 ? " is not valid UTF-8" : "",
                     seslm_last_error());
            goto out;
        }
        if (full > slot->max_seq && !truncate) { // never cut silently: the caller must ask for it
            r.index = i;
            r.code = 413;
            snprintf(r.msg, sizeof r.msg,
                     "input %d has %d tokens; the model takes at most %d (send \"truncate\": true to cut it)", i, full,
                     slot->max_seq);
            goto out;
        }
        if (lens[i] > slot->max_seq) { // as seslm_encoder_embed_texts: keep the final [SEP]
            row[slot->max_seq - 1] = row[lens[i] - 1];
            lens[i] = slot->max_seq;
        }
        *ntok += lens[i];
    }
    job.ids = ids;
    job.lens = lens;
    job.out = out;
    if (serve_batcher_submit(s, &job) != 0) {
        r.code = 500;
        snprintf(r.msg, sizeof r.msg, "%s", job.err);
        goto out;
    }
    serve_metrics_embed_request(&s->metrics, slot->id);
out:
    free(ids);
    free(lens);
    return r;
}

int serve_api_model_matches(const serve_slot *slot, const char *name) {
    if (!name) return 0;
    if (strcmp(name, slot->id) == 0) return 1;
    const char *at = strrchr(slot->id, '@');
    return at && strlen(name) == (size_t)(at - slot->id) && strncmp(name, slot->id, (size_t)(at - slot->id)) == 0;
}

int serve_api_ready(seslm_server *s) {
    if (atomic_load(&s->draining)) return 0;
    serve_slot *slot = serve_slot_acquire(s);
    serve_slot_release(slot);
    return slot != NULL;
}

serve_route serve_api_route(const char *url) {
    if (strcmp(url, "/v1/embeddings") == 0 || strcmp(url, "/v1/models") == 0 || strncmp(url, "/v1/models/", 11) == 0)
        return R_OPENAI;
    if (strcmp(url, "/embed") == 0 || strcmp(url, "/") == 0 || strcmp(url, "/info") == 0 || strcmp(url, "/health") == 0)
        return R_TEI;
    if (strcmp(url, "/v2") == 0 || strncmp(url, "/v2/", 4) == 0) return R_KSERVE;
    if (strcmp(url, "/openapi.json") == 0) return R_OPENAPI;
    return R_OTHER;
}

int serve_api_handle(seslm_server *s, serve_route r, const char *url, const char *method, const char *body,
                     size_t len, sbuf *out, const char **ctype, char *model) {
    *ctype = "application/json";
    model[0] = 0;
    switch (r) {
    case R_OPENAI:
        return serve_api_openai(s, url, method, body, len, out, model);
    case R_TEI:
        return serve_api_tei(s, url, method, body, len, out, model);
    case R_KSERVE:
        return serve_api_kserve(s, url, method, body, len, out, model);
    case R_OPENAPI:
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) return sb_error_json(out, 405, "use GET");
        sb_puts(out, serve_openapi_json());
        return 200;
    default:
        return sb_error_json(out, 404, "no such endpoint: %s", url);
    }
}
