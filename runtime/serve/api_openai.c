/* api_openai.c — the OpenAI embeddings API: POST /v1/embeddings, GET /v1/models, GET /v1/models/{id}.
 *
 * Request {"model", "input": string | [string], "encoding_format": "float" | "base64", "dimensions"?, "user"?}.
 * Answer {"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model", "usage"}; with
 * base64 each embedding is the float32 little-endian bytes in base64 (what the official client asks for by
 * default). Errors are OpenAI's shape {"error": {"message", "type", "param", "code"}}. An input longer than
 * the model's maximum is refused with 400, as OpenAI does; "truncate": true (an SE-SLM extension) cuts it.
 * Token-id inputs and other "dimensions" than the model's are refused, never approximated. */
#include "api.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int oa_error(sbuf *out, int code, const char *type, const char *param, const char *ecode, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;

static int oa_error(sbuf *out, int code, const char *type, const char *param, const char *ecode, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    out->n = 0;
    sb_puts(out, "{\"error\":{\"message\":");
    sb_json_str(out, msg);
    sb_puts(out, ",\"type\":");
    sb_json_str(out, type);
    sb_puts(out, ",\"param\":");
    if (param) sb_json_str(out, param);
    else sb_puts(out, "null");
    sb_puts(out, ",\"code\":");
    if (ecode) sb_json_str(out, ecode);
    else sb_puts(out, "null");
    sb_puts(out, "}}\n");
    return code;
}

static void sb_base64_f32(sbuf *b, const float *v, int n) {
    static const char T[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const size_t len = (size_t)n * 4;
    unsigned char *p = malloc(len ? len : 1);
    if (!p) {
        b->oom = 1;
        return;
    }
    for (int i = 0; i < n; i++) { // little-endian float32, whatever the host
        uint32_t u;
        memcpy(&u, &v[i], 4);
        p[4 * i] = (unsigned char)u, p[4 * i + 1] = (unsigned char)(u >> 8);
        p[4 * i + 2] = (unsigned char)(u >> 16), p[4 * i + 3] = (unsigned char)(u >> 24);
    }
    sb_putn(b, "\"", 1);
    for (size_t i = 0; i < len; i += 3) {
        const unsigned a = p[i], c1 = i + 1 < len ? p[i + 1] : 0, c2 = i + 2 < len ? p[i + 2] : 0;
        char q[4] = {T[a >> 2], T[((a & 3) << 4) | (c1 >> 4)], i + 1 < len ? T[((c1 & 15) << 2) | (c2 >> 6)] : '=',
                     i + 2 < len ? T[c2 & 63] : '='};
        sb_putn(b, q, 4);
    }
    sb_putn(b, "\"", 1);
    free(p);
}

static void model_object(sbuf *b, seslm_server *s, const serve_slot *slot) {
    sb_puts(b, "{\"id\":");
    sb_json_str(b, slot->id);
    sb_printf(b, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"seslm\"}", (long long)s->metrics.cur_since);
}

static int oa_embeddings(seslm_server *s, const char *body, size_t len, sbuf *out, char *model) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return oa_error(out, 400, "invalid_request_error", NULL, NULL,
                        "the body must be a JSON object {\"model\": ..., \"input\": ...}");
    }
    serve_slot *slot = serve_slot_acquire(s);
    if (!slot) {
        cJSON_Delete(root);
        return oa_error(out, 503, "server_error", NULL, NULL, "no model is loaded");
    }
    snprintf(model, SERVE_ID_CAP, "%s", slot->id);
    const cJSON *jm = cJSON_GetObjectItemCaseSensitive(root, "model"), *in = cJSON_GetObjectItemCaseSensitive(root, "input");
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "encoding_format");
    const cJSON *dims = cJSON_GetObjectItemCaseSensitive(root, "dimensions"), *tr = cJSON_GetObjectItemCaseSensitive(root, "truncate");
    int code = 200, n = 0, b64 = 0;
    serve_text *texts = NULL;
    float *emb = NULL;
    if (!cJSON_IsString(jm)) {
        code = oa_error(out, 400, "invalid_request_error", "model", NULL, "\"model\" must be a string (see GET /v1/models)");
    } else if (!serve_api_model_matches(slot, jm->valuestring)) {
        code = oa_error(out, 404, "invalid_request_error", "model", "model_not_found",
                        "The model '%s' does not exist; this server serves '%s'", jm->valuestring, slot->id);
    } else if (fmt && !cJSON_IsNull(fmt) &&
               (!cJSON_IsString(fmt) || (strcmp(fmt->valuestring, "float") != 0 && strcmp(fmt->valuestring, "base64") != 0))) {
        code = oa_error(out, 400, "invalid_request_error", "encoding_format", NULL,
                        "\"encoding_format\" must be \"float\" or \"base64\"");
    } else if (dims && !cJSON_IsNull(dims) && (!cJSON_IsNumber(dims) || dims->valuedouble != slot->hidden)) {
        code = oa_error(out, 400, "invalid_request_error", "dimensions", NULL,
                        "this model's embeddings have %d dimensions; other \"dimensions\" are not supported", slot->hidden);
    } else if (tr && !cJSON_IsBool(tr)) {
        code = oa_error(out, 400, "invalid_request_error", "truncate", NULL, "\"truncate\" must be a boolean");
    } else if (cJSON_IsString(in)) {
        n = 1;
    } else if (cJSON_IsArray(in) && cJSON_GetArraySize(in) > 0) {
        n = cJSON_GetArraySize(in);
        const cJSON *e;
        cJSON_ArrayForEach(e, in) if (!cJSON_IsString(e)) {
            code = oa_error(out, 400, "invalid_request_error", "input", NULL,
                            "\"input\" must be a string or a list of strings (token-id inputs are not supported)");
            break;
        }
        if (code == 200 && n > s->o.max_texts)
            code = oa_error(out, 400, "invalid_request_error", "input", NULL, "%d inputs; the limit is %d per request", n,
                            s->o.max_texts);
    } else {
        code = oa_error(out, 400, "invalid_request_error", "input", NULL,
                        "\"input\" must be a non-empty string or list of strings");
    }
    b64 = cJSON_IsString(fmt) && strcmp(fmt->valuestring, "base64") == 0;
    if (code == 200) {
        texts = malloc((size_t)n * sizeof *texts);
        emb = malloc((size_t)n * slot->hidden * sizeof(float));
        if (!texts || !emb) code = oa_error(out, 500, "server_error", NULL, NULL, "out of memory for %d inputs", n);
    }
    int64_t ntok = 0;
    if (code == 200) {
        const cJSON *e = cJSON_IsString(in) ? in : in->child;
        for (int i = 0; i < n; i++, e = e->next) texts[i] = (serve_text){e->valuestring, strlen(e->valuestring)};
        serve_embed_result r = serve_embed_texts(s, slot, NULL, texts, n, cJSON_IsTrue(tr), emb, &ntok);
        if (r.code != 200) // OpenAI answers an over-long input with 400 ("maximum context length")
            code = oa_error(out, r.code == 413 ? 400 : r.code, r.code >= 500 ? "server_error" : "invalid_request_error",
                            "input", r.code == 413 ? "context_length_exceeded" : NULL, "%s", r.msg);
    }
    if (code == 200) {
        sb_puts(out, "{\"object\":\"list\",\"data\":[");
        for (int i = 0; i < n && !out->oom; i++) {
            sb_printf(out, "%s{\"object\":\"embedding\",\"index\":%d,\"embedding\":", i ? "," : "", i);
            const float *v = emb + (size_t)i * slot->hidden;
            if (b64) {
                sb_base64_f32(out, v, slot->hidden);
            } else {
                sb_putn(out, "[", 1);
                for (int k = 0; k < slot->hidden; k++) {
                    if (k) sb_putn(out, ",", 1);
                    sb_float(out, v[k]);
                }
                sb_putn(out, "]", 1);
            }
            sb_putn(out, "}", 1);
        }
        sb_puts(out, "],\"model\":");
        sb_json_str(out, slot->id);
        sb_printf(out, ",\"usage\":{\"prompt_tokens\":%lld,\"total_tokens\":%lld}}\n", (long long)ntok, (long long)ntok);
    }
    free(texts);
    free(emb);
    cJSON_Delete(root);
    serve_slot_release(slot);
    return code;
}

int serve_api_openai(seslm_server *s, const char *url, const char *method, const char *body, size_t len, sbuf *out,
                     char *model) {
    const int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (strcmp(url, "/v1/embeddings") == 0) {
        if (strcmp(method, "POST") != 0) return oa_error(out, 405, "invalid_request_error", NULL, NULL, "use POST");
        return oa_embeddings(s, body, len, out, model);
    }
    if (!get) return oa_error(out, 405, "invalid_request_error", NULL, NULL, "use GET");
    serve_slot *slot = serve_slot_acquire(s);
    if (!slot) return oa_error(out, 503, "server_error", NULL, NULL, "no model is loaded");
    snprintf(model, SERVE_ID_CAP, "%s", slot->id);
    int code = 200;
    if (strcmp(url, "/v1/models") == 0) {
        sb_puts(out, "{\"object\":\"list\",\"data\":[");
        model_object(out, s, slot);
        sb_puts(out, "]}\n");
    } else if (serve_api_model_matches(slot, url + strlen("/v1/models/"))) {
        model_object(out, s, slot);
        sb_putn(out, "\n", 1);
    } else {
        code = oa_error(out, 404, "invalid_request_error", "model", "model_not_found", "The model '%s' does not exist",
                        url + strlen("/v1/models/"));
    }
    serve_slot_release(slot);
    return code;
}
