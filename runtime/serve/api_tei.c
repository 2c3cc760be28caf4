/* api_tei.c — the Text Embeddings Inference API (what huggingface_hub's feature_extraction calls):
 * POST /embed and POST / {"inputs": string | [string], "normalize"?, "truncate"?, "truncation_direction"?,
 * "prompt_name"?} -> [[float, ...], ...]; GET /info; GET /health (readiness: 503 while draining or unloaded).
 *
 * As TEI: an input over the maximum length is refused with 413 unless "truncate": true; errors are
 * {"error": "...", "error_type": "..."}. What cannot be reproduced is refused, never ignored: "normalize": false
 * on a model whose pipeline ends in Normalize (the pooled vector before it is not kept), left truncation,
 * a prompt_name the model does not have, or another prompt than the model's when its Pooling excludes the
 * prompt's tokens (include_prompt false, fixed per loaded encoder). */
#include "api.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tei_error(sbuf *out, int code, const char *type, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

static int tei_error(sbuf *out, int code, const char *type, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    out->n = 0;
    sb_puts(out, "{\"error\":");
    sb_json_str(out, msg);
    sb_puts(out, ",\"error_type\":");
    sb_json_str(out, type);
    sb_puts(out, "}\n");
    return code;
}

static int tei_embed(seslm_server *s, const char *body, size_t len, sbuf *out, char *model) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return tei_error(out, 422, "Validation", "the body must be a JSON object {\"inputs\": ...}");
    }
    serve_slot *slot = serve_slot_acquire(s);
    if (!slot) {
        cJSON_Delete(root);
        return tei_error(out, 503, "Unhealthy", "no model is loaded");
    }
    snprintf(model, SERVE_ID_CAP, "%s", slot->id);
    const seslm_model_config *c = seslm_model_get_config(slot->m);
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(root, "inputs"), *nz = cJSON_GetObjectItemCaseSensitive(root, "normalize");
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(root, "truncate");
    const cJSON *dir = cJSON_GetObjectItemCaseSensitive(root, "truncation_direction");
    const cJSON *pn = cJSON_GetObjectItemCaseSensitive(root, "prompt_name");
    int code = 200, n = 0;
    const char *prompt = NULL;
    const int normalize = !cJSON_IsFalse(nz); // TEI's default: true
    serve_text *texts = NULL;
    float *emb = NULL;
    if ((nz && !cJSON_IsNull(nz) && !cJSON_IsBool(nz)) || (tr && !cJSON_IsNull(tr) && !cJSON_IsBool(tr))) {
        code = tei_error(out, 422, "Validation", "\"normalize\" and \"truncate\" must be booleans");
    } else if (!normalize && c->normalize) {
        code = tei_error(out, 422, "Validation",
                         "\"normalize\": false is not available: this model's pipeline ends in Normalize "
                         "(modules.json), and its vectors are only served normalised");
    } else if (dir && !cJSON_IsNull(dir) &&
               (!cJSON_IsString(dir) || (strcmp(dir->valuestring, "Right") != 0 && strcmp(dir->valuestring, "right") != 0))) {
        code = tei_error(out, 422, "Validation", "only \"truncation_direction\": \"Right\" is supported");
    } else if (pn && !cJSON_IsNull(pn) && (!cJSON_IsString(pn) || !(prompt = seslm_model_prompt(slot->m, pn->valuestring)))) {
        code = tei_error(out, 422, "Validation", "the model has no prompt named %s (config_sentence_transformers.json)",
                         cJSON_IsString(pn) ? pn->valuestring : "(not a string)");
    } else if (prompt && !c->include_prompt &&
               strcmp(prompt, seslm_encoder_prompt(slot->e) ? seslm_encoder_prompt(slot->e) : "") != 0) {
        code = tei_error(out, 422, "Validation",
                         "this model leaves the prompt out of pooling (include_prompt false), so only its default prompt "
                         "can be served");
    } else if (cJSON_IsString(in)) {
        n = 1;
    } else if (cJSON_IsArray(in) && cJSON_GetArraySize(in) > 0) {
        n = cJSON_GetArraySize(in);
        const cJSON *e;
        cJSON_ArrayForEach(e, in) if (!cJSON_IsString(e)) {
            code = tei_error(out, 422, "Validation", "\"inputs\" must be a string or a list of strings");
            break;
        }
        if (code == 200 && n > s->o.max_texts)
            code = tei_error(out, 413, "Validation", "batch size %d > maximum allowed batch size %d", n, s->o.max_texts);
    } else {
        code = tei_error(out, 422, "Validation", "\"inputs\" must be a non-empty string or list of strings");
    }
    if (code == 200) {
        texts = malloc((size_t)n * sizeof *texts);
        emb = malloc((size_t)n * slot->hidden * sizeof(float));
        if (!texts || !emb) code = tei_error(out, 500, "Backend", "out of memory for %d inputs", n);
    }
    if (code == 200) {
        const cJSON *e = cJSON_IsString(in) ? in : in->child;
        for (int i = 0; i < n; i++, e = e->next) texts[i] = (serve_text){e->valuestring, strlen(e->valuestring)};
        int64_t ntok = 0;
        serve_embed_result r = serve_embed_texts(s, slot, prompt, texts, n, cJSON_IsTrue(tr), emb, &ntok);
        if (r.code != 200)
            code = tei_error(out, r.code == 400 ? 422 : r.code, r.code >= 500 ? "Backend" : r.code == 400 ? "Tokenizer" : "Validation",
                             "%s", r.msg);
    }
    if (code == 200) {
        sb_putn(out, "[", 1);
        for (int i = 0; i < n && !out->oom; i++) {
            float *v = emb + (size_t)i * slot->hidden;
            if (normalize && !c->normalize) { // as TEI: x / max(||x||, eps)
                double nrm = 0;
                for (int k = 0; k < slot->hidden; k++) nrm += (double)v[k] * v[k];
                const double inv = 1.0 / fmax(sqrt(nrm), 1e-12);
                for (int k = 0; k < slot->hidden; k++) v[k] = (float)(v[k] * inv);
            }
            sb_puts(out, i ? ",[" : "[");
            for (int k = 0; k < slot->hidden; k++) {
                if (k) sb_putn(out, ",", 1);
                sb_float(out, v[k]);
            }
            sb_putn(out, "]", 1);
        }
        sb_puts(out, "]\n");
    }
    free(texts);
    free(emb);
    cJSON_Delete(root);
    serve_slot_release(slot);
    return code;
}

static int tei_info(seslm_server *s, sbuf *out, char *model) {
    serve_slot *slot = serve_slot_acquire(s);
    if (!slot) return tei_error(out, 503, "Unhealthy", "no model is loaded");
    snprintf(model, SERVE_ID_CAP, "%s", slot->id);
    const seslm_model_config *c = seslm_model_get_config(slot->m);
    sb_puts(out, "{\"model_id\":");
    sb_json_str(out, slot->id);
    sb_puts(out, ",\"model_sha\":");
    sb_json_str(out, seslm_model_weights_sha256(slot->m));
    sb_printf(out, ",\"model_dtype\":\"float32\",\"model_type\":{\"embedding\":{\"pooling\":\"%s\"}},"
                   "\"max_concurrent_requests\":%d,\"max_input_length\":%d,\"max_batch_tokens\":%d,"
                   "\"max_batch_requests\":%d,\"max_client_batch_size\":%d,\"auto_truncate\":false,"
                   "\"normalized\":%s,\"hidden_size\":%d,\"tokenization_workers\":%d,\"version\":",
              seslm_pooling_name(c->pooling), s->o.max_connections, slot->max_seq, s->o.max_batch * slot->max_seq,
              s->o.max_batch, s->o.max_texts, c->normalize ? "true" : "false", slot->hidden, s->o.max_connections);
    sb_json_str(out, seslm_version());
    sb_puts(out, ",\"prompts\":{");
    for (int i = 0; i < c->n_prompts; i++) {
        if (i) sb_putn(out, ",", 1);
        sb_json_str(out, c->prompts[i].name);
        sb_putn(out, ":", 1);
        sb_json_str(out, c->prompts[i].text);
    }
    sb_puts(out, "}}\n");
    serve_slot_release(slot);
    return 200;
}

int serve_api_tei(seslm_server *s, const char *url, const char *method, const char *body, size_t len, sbuf *out,
                  char *model) {
    const int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (strcmp(url, "/embed") == 0 || strcmp(url, "/") == 0) {
        if (strcmp(method, "POST") != 0) return tei_error(out, 405, "Validation", "use POST");
        return tei_embed(s, body, len, out, model);
    }
    if (!get) return tei_error(out, 405, "Validation", "use GET");
    if (strcmp(url, "/info") == 0) return tei_info(s, out, model);
    // /health: readiness (TEI answers 200 with an empty body when it can serve)
    if (!serve_api_ready(s)) return tei_error(out, 503, "Unhealthy", "not ready (draining or no model loaded)");
    seslm_serve_model_id(s, model, SERVE_ID_CAP);
    sb_puts(out, "{\"status\":\"ok\"}\n");
    return 200;
}
