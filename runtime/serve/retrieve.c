/* retrieve.c — POST /v1/retrieve {"query": "...", "k": 3}: exact top-k passages of the server's knowledge
 * base (runtime/assist/retrieve.h) with the grounded-answer contract: "answer": false and a "reason" when the
 * best passage is below the similarity threshold; only passages at or above it are returned. The
 * knowledge base is read-only once loaded, so requests search it concurrently without a lock. */
#include "retrieve.h"
#include "serve_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KB_MAX_K 100

seslm_status serve_kb_open(seslm_server *s, const char *dir) {
    seslm_kb *kb = NULL;
    seslm_status st = seslm_kb_load(&kb, dir);
    if (st != SESLM_OK) {
        char why[1024];
        snprintf(why, sizeof why, "%s", seslm_last_error());
        return seslm_fail(st, "knowledge base: %s", why);
    }
    if (seslm_kb_dim(kb) != s->current->hidden) {
        st = seslm_fail(SESLM_ERR_SHAPE, "knowledge base %s holds %d-d embeddings, the model gives %d-d", dir,
                        seslm_kb_dim(kb), s->current->hidden);
        seslm_kb_free(kb);
        return st;
    }
    s->kb = kb;
    return SESLM_OK;
}

void serve_kb_close(seslm_server *s) {
    seslm_kb_free(s->kb);
    s->kb = NULL;
}


int serve_kb_handle(seslm_server *s, const char *body, size_t len, sbuf *out, char *model_id) {
    model_id[0] = 0;
    if (!s->kb) return sb_error_json(out, 404, "no knowledge base is loaded (start the server with --kb DIR)");
    if (len == 0) return sb_error_json(out, 400, "empty body: send {\"query\": \"...\", \"k\": 3}");
    cJSON *root = NULL;
    const int perr = sb_parse_json(body, len, &root, out);
    if (perr) return perr;
    int code = 0, k = 3;
    const char *query = NULL;
    if (!cJSON_IsObject(root)) code = sb_error_json(out, 400, "the body must be a JSON object {\"query\": \"...\", \"k\": 3}");
    for (const cJSON *f = code ? NULL : root->child; f && !code; f = f->next) {
        if (strcmp(f->string, "query") == 0) {
            if (!cJSON_IsString(f) || !*f->valuestring) code = sb_error_json(out, 400, "\"query\" must be a non-empty string");
            else query = f->valuestring;
        } else if (strcmp(f->string, "k") == 0) {
            double v = cJSON_IsNumber(f) ? f->valuedouble : NAN;
            if (!(v >= 1 && v <= KB_MAX_K) || v != floor(v)) code = sb_error_json(out, 400, "\"k\" must be an integer in 1..%d", KB_MAX_K);
            else k = (int)v;
        } else {
            code = sb_error_json(out, 400, "unknown field \"%.100s\" (the fields are \"query\" and \"k\")", f->string);
        }
    }
    if (!code && !query) code = sb_error_json(out, 400, "missing field \"query\"");
    if (code) {
        cJSON_Delete(root);
        return code;
    }
    // embed through the batcher, as /v1/embed does
    serve_slot *slot = serve_slot_acquire(s);
    if (!slot) {
        cJSON_Delete(root);
        return sb_error_json(out, 503, "no model is loaded");
    }
    snprintf(model_id, SERVE_ID_CAP, "%s", slot->id);
    int32_t *ids = malloc((size_t)slot->tok_cap * sizeof(int32_t));
    float *q = malloc((size_t)slot->hidden * sizeof(float));
    int n_ids = 0;
    if (!ids || !q) code = sb_error_json(out, 500, "out of memory");
    else if (slot->hidden != seslm_kb_dim(s->kb))
        code = sb_error_json(out, 500, "the knowledge base holds %d-d embeddings, model %s gives %d-d", seslm_kb_dim(s->kb),
                          slot->id, slot->hidden);
    if (!code) {
        seslm_status st = seslm_tokenizer_encode(seslm_model_tokenizer(slot->m), query, strlen(query), ids, slot->tok_cap, &n_ids);
        if (st != SESLM_OK) {
            if (st == SESLM_ERR_UTF8) atomic_fetch_add(&slot->rejected, 1);
            code = sb_error_json(out, st == SESLM_ERR_UTF8 ? 400 : 500, "\"query\": %s", seslm_last_error());
        }
    }
    if (!code) {
        if (n_ids > slot->max_seq) {
            ids[slot->max_seq - 1] = ids[n_ids - 1];
            n_ids = slot->max_seq;
        }
        serve_job job;
        memset(&job, 0, sizeof job);
        job.slot = slot;
        job.n = 1;
        job.cap = slot->tok_cap;
        job.ids = ids;
        job.lens = &n_ids;
        job.out = q;
        if (serve_batcher_submit(s, &job) != 0) code = sb_error_json(out, 500, "%s", job.err);
    }
    if (!code) {
        seslm_kb_hit hits[KB_MAX_K];
        const double thr = s->o.kb_threshold;
        int n = seslm_kb_search(s->kb, q, k, hits), above = 0;
        while (above < n && hits[above].score >= thr) above++;
        sb_printf(out, "{\"answer\":%s,\"best_score\":%.6f,\"threshold\":%.6g,\"reason\":", above ? "true" : "false",
                  n ? (double)hits[0].score : -1.0, thr);
        char why[256];
        if (above) snprintf(why, sizeof why, "grounded in %d passage(s) at or above the threshold", above);
        else snprintf(why, sizeof why, "no passage is similar enough: the best scores %.3f, below the threshold %.3f",
                      n ? (double)hits[0].score : -1.0, thr);
        sb_json_str(out, why);
        sb_puts(out, ",\"passages\":[");
        for (int j = 0; j < above; j++) {
            sb_printf(out, "%s{\"rank\":%d,\"passage\":%d,\"score\":%.6f,\"text\":", j ? "," : "", j + 1, hits[j].index,
                      (double)hits[j].score);
            sb_json_str(out, seslm_kb_passage(s->kb, hits[j].index));
            sb_putn(out, "}", 1);
        }
        sb_puts(out, "],\"model\":");
        sb_json_str(out, slot->id);
        sb_puts(out, "}\n");
        code = 200;
    }
    free(ids);
    free(q);
    serve_slot_release(slot);
    cJSON_Delete(root);
    return code;
}
