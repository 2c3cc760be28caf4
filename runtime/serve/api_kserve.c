/* api_kserve.c — the KServe v2 / Triton inference protocol (REST):
 *   GET /v2                          server metadata
 *   GET /v2/health/live              liveness: 200 while the process answers (also while draining)
 *   GET /v2/health/ready             readiness: 200 only with a model loaded and not draining, else 503
 *   GET /v2/models/{m}[/ready]       model metadata / readiness ({m}: the model id, or its name before '@')
 *   POST /v2/models/{m}/infer        {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [n], "data": [...]}],
 *                                    "parameters"?: {"truncate": bool}}
 *                                 -> {"outputs": [{"name": "embedding", "datatype": "FP32", "shape": [n, C], "data": [...]}]}
 * Over-long inputs: 413 unless parameters.truncate. Errors: {"error": "..."}. */
#include "api.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void model_meta(sbuf *out, const serve_slot *slot) {
    sb_puts(out, "{\"name\":");
    sb_json_str(out, slot->id);
    sb_printf(out, ",\"versions\":[\"1\"],\"platform\":\"seslm\",\"inputs\":[{\"name\":\"text\",\"datatype\":\"BYTES\","
                   "\"shape\":[-1]}],\"outputs\":[{\"name\":\"embedding\",\"datatype\":\"FP32\",\"shape\":[-1,%d]}]}\n",
              slot->hidden);
}

static int kserve_infer(seslm_server *s, serve_slot *slot, const char *body, size_t len, sbuf *out) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(root, "inputs"), *in = cJSON_GetArrayItem(inputs, 0);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(in, "data"), *dt = cJSON_GetObjectItemCaseSensitive(in, "datatype");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "parameters"), "truncate");
    int code = 200, n = cJSON_GetArraySize(data);
    if (!cJSON_IsObject(root) || !cJSON_IsArray(inputs) || cJSON_GetArraySize(inputs) != 1 || !cJSON_IsArray(data) || n == 0)
        code = sb_error_json(out, 400, "the body must be {\"inputs\": [{\"name\": \"text\", \"datatype\": \"BYTES\", "
                                       "\"shape\": [n], \"data\": [\"...\"]}]} with one input of n >= 1 strings");
    else if (!cJSON_IsString(dt) || strcmp(dt->valuestring, "BYTES") != 0)
        code = sb_error_json(out, 400, "input datatype must be \"BYTES\" (UTF-8 text)");
    else if (n > s->o.max_texts)
        code = sb_error_json(out, 413, "%d inputs; the limit is %d per request", n, s->o.max_texts);
    else if (tr && !cJSON_IsBool(tr))
        code = sb_error_json(out, 400, "parameters.truncate must be a boolean");
    const cJSON *e;
    if (code == 200) cJSON_ArrayForEach(e, data) if (!cJSON_IsString(e)) {
            code = sb_error_json(out, 400, "every element of data must be a string");
            break;
        }
    serve_text *texts = code == 200 ? malloc((size_t)n * sizeof *texts) : NULL;
    float *emb = code == 200 ? malloc((size_t)n * slot->hidden * sizeof(float)) : NULL;
    if (code == 200 && (!texts || !emb)) code = sb_error_json(out, 500, "out of memory for %d inputs", n);
    if (code == 200) {
        int i = 0;
        cJSON_ArrayForEach(e, data) texts[i++] = (serve_text){e->valuestring, strlen(e->valuestring)};
        int64_t ntok = 0;
        serve_embed_result r = serve_embed_texts(s, slot, NULL, texts, n, cJSON_IsTrue(tr), emb, &ntok);
        if (r.code != 200) code = sb_error_json(out, r.code, "%s", r.msg);
    }
    if (code == 200) {
        sb_puts(out, "{\"model_name\":");
        sb_json_str(out, slot->id);
        sb_puts(out, ",\"model_version\":\"1\"");
        if (cJSON_IsString(id)) {
            sb_puts(out, ",\"id\":");
            sb_json_str(out, id->valuestring);
        }
        sb_printf(out, ",\"outputs\":[{\"name\":\"embedding\",\"datatype\":\"FP32\",\"shape\":[%d,%d],\"data\":[", n,
                  slot->hidden);
        for (size_t k = 0; k < (size_t)n * slot->hidden && !out->oom; k++) {
            if (k) sb_putn(out, ",", 1);
            sb_float(out, emb[k]);
        }
        sb_puts(out, "]}]}\n");
    }
    free(texts);
    free(emb);
    cJSON_Delete(root);
    return code;
}

int serve_api_kserve(seslm_server *s, const char *url, const char *method, const char *body, size_t len, sbuf *out,
                     char *model) {
    const int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0, post = strcmp(method, "POST") == 0;
    if (strcmp(url, "/v2/health/live") == 0 || strcmp(url, "/v2/health/ready") == 0 || strcmp(url, "/v2") == 0) {
        if (!get) return sb_error_json(out, 405, "use GET");
        if (url[3] == 0) {
            sb_printf(out, "{\"name\":\"seslm\",\"version\":\"%s\",\"extensions\":[]}\n", seslm_version());
            return 200;
        }
        if (strcmp(url, "/v2/health/live") == 0) { // the process answers: alive, even while draining
            sb_puts(out, "{\"live\":true}\n");
            return 200;
        }
        const int ready = serve_api_ready(s);
        sb_puts(out, ready ? "{\"ready\":true}\n" : "{\"ready\":false}\n");
        return ready ? 200 : 503;
    }
    if (strncmp(url, "/v2/models/", 11) != 0) return sb_error_json(out, 404, "no such endpoint: %s", url);
    // /v2/models/{m}[/ready | /infer]
    char name[SERVE_ID_CAP];
    const char *m = url + 11, *slash = strchr(m, '/');
    const size_t nl = slash ? (size_t)(slash - m) : strlen(m);
    if (nl == 0 || nl >= sizeof name) return sb_error_json(out, 404, "no such model");
    memcpy(name, m, nl);
    name[nl] = 0;
    const char *rest = slash ? slash : "";
    serve_slot *slot = serve_slot_acquire(s);
    if (!slot) return sb_error_json(out, 503, "no model is loaded");
    snprintf(model, SERVE_ID_CAP, "%s", slot->id);
    int code;
    if (!serve_api_model_matches(slot, name)) {
        code = sb_error_json(out, 404, "model '%s' is not served here (serving '%s')", name, slot->id);
    } else if (!*rest) {
        code = get ? (model_meta(out, slot), 200) : sb_error_json(out, 405, "use GET");
    } else if (strcmp(rest, "/ready") == 0) {
        const int ready = !atomic_load(&s->draining);
        code = get ? (sb_puts(out, ready ? "{\"ready\":true}\n" : "{\"ready\":false}\n"), ready ? 200 : 503)
                   : sb_error_json(out, 405, "use GET");
    } else if (strcmp(rest, "/infer") == 0) {
        code = post ? kserve_infer(s, slot, body, len, out) : sb_error_json(out, 405, "use POST");
    } else {
        code = sb_error_json(out, 404, "no such endpoint: %s", url);
    }
    serve_slot_release(slot);
    return code;
}
