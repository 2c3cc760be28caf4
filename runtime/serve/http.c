/* http.c — the HTTP side of the server on libmicrohttpd: routing, request bodies, JSON in and out, error
 * answers.
 *
 * Threads: one libmicrohttpd poll thread (epoll) reads every connection, so an idle or slow client costs a
 * descriptor, not a thread. It answers /healthz, /metrics and every refusal itself; a request that computes
 * (embed, intent, feedback, retrieve, message, reload) is suspended and handed to the worker pool
 * (workers.c), whose thread builds the answer and resumes the connection. Connections are bounded in total
 * and per client address; each request's headers and body have absolute deadlines (guard.c).
 *
 * Every answer is JSON except /metrics; every error is {"error": "..."} with a 4xx/5xx code. Bodies are
 * collected up to max_body_bytes; a larger declared Content-Length is refused at once with 413, a larger
 * chunked body is drained and then refused. */
#include "api.h"
#include "serve_internal.h"
#include "util.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define DISCARD_LIMIT ((size_t)64 << 20) // past this much oversized body the connection is dropped

typedef struct {
    serve_route r;
    int method; // 0 GET/HEAD, 1 POST, 2 other
    int64_t t0;
    char *body;
    size_t len, cap;
    int too_large;
    size_t discarded;
    int arriving; // counted in s->arriving until the job is queued or refused
    // handed to a worker: it fills code/out/model, then resumes the connection
    struct MHD_Connection *c;
    int state; // 0 receiving, 1 at a worker, 2 answer ready
    int sse;   // the worker's answer is server-sent events (chat streaming), not JSON
    int code;
    sbuf out;
    char model[SERVE_ID_CAP];
} req_ctx;

static serve_route route_of(const char *url) {
    if (strcmp(url, "/v1/embed") == 0) return R_EMBED;
    if (strcmp(url, "/healthz") == 0) return R_HEALTHZ;
    if (strcmp(url, "/metrics") == 0) return R_METRICS;
    if (strcmp(url, "/admin/reload") == 0) return R_RELOAD;
    if (strcmp(url, "/v1/intent") == 0) return R_INTENT;
    if (strcmp(url, "/v1/feedback") == 0) return R_FEEDBACK;
    if (strcmp(url, "/v1/retrieve") == 0) return R_RETRIEVE;
    if (strcmp(url, "/v1/message") == 0) return R_MESSAGE;
    if (strcmp(url, "/v1/chat/completions") == 0) return R_CHAT;
    return serve_api_route(url); // OpenAI, TEI, KServe v2, /openapi.json (or R_OTHER)
}

static void arriving_done(seslm_server *s, req_ctx *x) {
    if (!x->arriving) return;
    x->arriving = 0;
    serve_arriving_add(s, -1);
}

// ---- answers --------------------------------------------------------------------------------------

/* Queues body (malloc'd; taken over, also on failure) with the given code; records the metrics. */
static enum MHD_Result reply(seslm_server *s, struct MHD_Connection *c, req_ctx *x, int code, char *body, size_t len,
                             const char *ctype, const char *allow, const char *model) {
    arriving_done(s, x);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (allow) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    if (model && *model) MHD_add_response_header(resp, "X-Seslm-Model", model);
    if (atomic_load(&s->draining)) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)code, resp);
    MHD_destroy_response(resp);
    serve_metrics_request(&s->metrics, x->r, code, (double)(serve_now_mono_ns() - x->t0) * 1e-9);
    return ret;
}

static enum MHD_Result reply_sbuf(seslm_server *s, struct MHD_Connection *c, req_ctx *x, int code, sbuf *b,
                                  const char *model) {
    if (b->oom || !b->p) {
        free(b->p);
        static const char oom[] = "{\"error\":\"out of memory\"}\n";
        char *p = malloc(sizeof oom);
        if (!p) return MHD_NO;
        memcpy(p, oom, sizeof oom);
        return reply(s, c, x, 500, p, sizeof oom - 1, "application/json", NULL, model);
    }
    return reply(s, c, x, code, b->p, b->n, "application/json", NULL, model);
}

/* {"error": msg[, "model": model]} */
static enum MHD_Result reply_error(seslm_server *s, struct MHD_Connection *c, req_ctx *x, int code, const char *allow,
                                   const char *model, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 7, 8)))
#endif
    ;

static enum MHD_Result reply_error(seslm_server *s, struct MHD_Connection *c, req_ctx *x, int code, const char *allow,
                                   const char *model, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sbuf b = {0};
    sb_puts(&b, "{\"error\":");
    sb_json_str(&b, msg);
    if (model && *model) {
        sb_puts(&b, ",\"model\":");
        sb_json_str(&b, model);
    }
    sb_puts(&b, "}\n");
    if (b.oom || !b.p) return reply_sbuf(s, c, x, 500, &b, model);
    return reply(s, c, x, code, b.p, b.n, "application/json", allow, model);
}

/* Worker side: {"error": msg[, "model": model]} into out; returns code. */
static int fail_json(sbuf *out, int code, const char *model, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

static int fail_json(sbuf *out, int code, const char *model, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    free(out->p);
    memset(out, 0, sizeof *out);
    sb_puts(out, "{\"error\":");
    sb_json_str(out, msg);
    if (model && *model) {
        sb_puts(out, ",\"model\":");
        sb_json_str(out, model);
    }
    sb_puts(out, "}\n");
    return code;
}

// ---- JSON body helpers ----------------------------------------------------------------------------

/* Parses the body as JSON; on failure writes a message with the byte offset. */
static cJSON *parse_body(const req_ctx *x, char *why, size_t cap) {
    // (UTF-8 is checked per text by the handlers, which name the text and count it as refused input)
    if (util_json_strict(x->body ? x->body : "", x->len, 0, why, cap)) return NULL;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(x->body ? x->body : "", x->len, &end, 0);
    if (!j) {
        size_t at = end && x->body && end >= x->body ? (size_t)(end - x->body) : 0;
        snprintf(why, cap, "invalid JSON near byte %zu", at);
        return NULL;
    }
    // only whitespace may follow the value
    for (const char *p = end; p && p < x->body + x->len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            snprintf(why, cap, "invalid JSON: unexpected data after the value at byte %zu", (size_t)(p - x->body));
            cJSON_Delete(j);
            return NULL;
        }
    return j;
}

static int body_blank(const req_ctx *x) {
    for (size_t i = 0; i < x->len; i++)
        if (x->body[i] != ' ' && x->body[i] != '\t' && x->body[i] != '\n' && x->body[i] != '\r') return 0;
    return 1;
}

// ---- POST /v1/embed -------------------------------------------------------------------------------

static int work_embed(seslm_server *s, req_ctx *x, sbuf *o, char *model) {
    char why[600];
    if (x->len == 0) return fail_json(o, 400, NULL, "empty body: send {\"texts\": [\"...\", ...]}");
    cJSON *root = parse_body(x, why, sizeof why);
    if (!root) return fail_json(o, 400, NULL, "%s", why);
    int ret;
    const cJSON *texts = cJSON_GetObjectItemCaseSensitive(root, "texts");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(root, "text");
    int n = 0;
    if (!cJSON_IsObject(root)) {
        ret = fail_json(o, 400, NULL, "the body must be a JSON object {\"texts\": [...]}");
        goto out_json;
    }
    if (texts && text) {
        ret = fail_json(o, 400, NULL, "give either \"texts\" or \"text\", not both");
        goto out_json;
    }
    if (text) {
        if (!cJSON_IsString(text)) {
            ret = fail_json(o, 400, NULL, "\"text\" must be a string");
            goto out_json;
        }
        n = 1;
    } else if (texts) {
        if (!cJSON_IsArray(texts)) {
            ret = fail_json(o, 400, NULL, "\"texts\" must be an array of strings");
            goto out_json;
        }
        n = cJSON_GetArraySize(texts);
        if (n == 0) {
            ret = fail_json(o, 400, NULL, "\"texts\" is empty");
            goto out_json;
        }
        if (n > s->o.max_texts) {
            ret = fail_json(o, 413, NULL, "too many texts: %d (the limit is %d per request)", n,
                              s->o.max_texts);
            goto out_json;
        }
        int i = 0;
        for (const cJSON *t = texts->child; t; t = t->next, i++)
            if (!cJSON_IsString(t)) {
                ret = fail_json(o, 400, NULL, "texts[%d] must be a string", i);
                goto out_json;
            }
    } else {
        ret = fail_json(o, 400, NULL, "missing field \"texts\" (an array of strings)");
        goto out_json;
    }

    serve_slot *slot = serve_slot_acquire(s);
    if (slot) snprintf(model, SERVE_ID_CAP, "%s", slot->id);
    if (!slot) {
        ret = fail_json(o, 503, NULL, "no model is loaded");
        goto out_json;
    }
    serve_job job;
    memset(&job, 0, sizeof job);
    job.slot = slot;
    job.n = n;
    job.cap = slot->tok_cap;
    int32_t *ids = malloc((size_t)n * job.cap * sizeof(int32_t));
    int *lens = malloc((size_t)n * sizeof(int));
    float *out = malloc((size_t)n * slot->hidden * sizeof(float));
    if (!ids || !lens || !out) {
        ret = fail_json(o, 500, slot->id, "out of memory for %d texts", n);
        goto out_slot;
    }
    // tokenize here, in parallel across connections; the batcher only runs forward passes
    int64_t ntok = 0;
    const cJSON *t = text ? text : texts->child;
    for (int i = 0; i < n; i++, t = t->next) {
        int32_t *row = ids + (size_t)i * job.cap;
        const char *str = t->valuestring;
        seslm_status st = serve_tokenize(slot, NULL, str, strlen(str), row, job.cap, &lens[i], NULL); // + prompt
        if (st != SESLM_OK) {
            const char *what = text ? "text" : "texts";
            char idx[32] = "";
            if (!text) snprintf(idx, sizeof idx, "[%d]", i);
            if (st == SESLM_ERR_UTF8) atomic_fetch_add(&slot->rejected, 1);
            ret = st == SESLM_ERR_UTF8
                      ? fail_json(o, 400, slot->id, "%s%s is not valid UTF-8: %s", what, idx, seslm_last_error())
                      : fail_json(o, 500, slot->id, "%s%s: %s", what, idx, seslm_last_error());
            goto out_slot;
        }
        if (lens[i] > slot->max_seq) { // as seslm_encoder_embed_texts: keep the final [SEP]
            row[slot->max_seq - 1] = row[lens[i] - 1];
            lens[i] = slot->max_seq;
        }
        ntok += lens[i];
    }
    cJSON_Delete(root);
    root = NULL;
    job.ids = ids;
    job.lens = lens;
    job.out = out;
    arriving_done(s, x); // queued below: the batcher need not wait for this one any more
    if (serve_batcher_submit(s, &job) != 0) {
        ret = fail_json(o, 500, slot->id, "%s", job.err);
        goto out_slot;
    }
    serve_metrics_embed_request(&s->metrics, slot->id);
    sbuf b = {0};
    sb_puts(&b, "{\"model\":");
    sb_json_str(&b, slot->id);
    sb_printf(&b, ",\"dim\":%d,\"n_tokens\":%lld,\"embeddings\":[", slot->hidden, (long long)ntok);
    for (int i = 0; i < n && !b.oom; i++) {
        sb_puts(&b, i ? ",[" : "[");
        const float *v = out + (size_t)i * slot->hidden;
        for (int k = 0; k < slot->hidden; k++) {
            if (k) sb_putn(&b, ",", 1);
            sb_float(&b, v[k]);
        }
        sb_putn(&b, "]", 1);
    }
    sb_puts(&b, "]}\n");
    free(o->p);
    *o = b;
    ret = 200;
out_slot:
    free(ids);
    free(lens);
    free(out);
    serve_slot_release(slot);
out_json:
    cJSON_Delete(root);
    return ret;
}

// ---- POST /admin/reload ---------------------------------------------------------------------------

static int peer_is_loopback(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr) return 0;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) return 1;
        return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
    }
    return 0;
}

/* "Authorization: Bearer <want>"; compared in constant time so the reply time does not leak how much of a
 * guess was right. An empty or absent want accepts anything. */
static int bearer_ok(struct MHD_Connection *c, const char *want) {
    if (!want || !*want) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncmp(h, "Bearer ", 7) != 0) return 0;
    h += 7;
    size_t n = strlen(want), m = strlen(h);
    unsigned diff = (unsigned)(n ^ m);
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)want[i] ^ (unsigned char)(i < m ? h[i] : 0);
    return diff == 0;
}

/* With an admin token configured, the admin endpoints need it. */
static int admin_token_ok(seslm_server *s, struct MHD_Connection *c) { return bearer_ok(c, s->o.admin_token); }

/* Feedback retrains the served head: it needs the feedback token, or a server started open to all. */
static int feedback_denied(seslm_server *s, struct MHD_Connection *c) {
    if (s->o.feedback_token && *s->o.feedback_token) return bearer_ok(c, s->o.feedback_token) ? 0 : 401;
    return s->o.feedback_open ? 0 : 403;
}

static int work_reload(seslm_server *s, req_ctx *x, sbuf *o, char *model) {
    char cur[SERVE_ID_CAP];
    seslm_serve_model_id(s, cur, sizeof cur);
    snprintf(model, SERVE_ID_CAP, "%s", cur);
    char dir[PATH_MAX] = "", why[600];
    if (!body_blank(x)) {
        cJSON *root = parse_body(x, why, sizeof why);
        if (!root) return fail_json(o, 400, cur, "%s", why);
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
        int bad = !cJSON_IsObject(root) || (m && (!cJSON_IsString(m) || !*m->valuestring));
        if (!bad && m) snprintf(dir, sizeof dir, "%s", m->valuestring);
        cJSON_Delete(root);
        if (bad) return fail_json(o, 400, cur, "the body must be {} or {\"model\": \"DIR\"}");
    }
    char prev[SERVE_ID_CAP], now[SERVE_ID_CAP];
    int64_t t0 = serve_now_mono_ns();
    if (*dir && serve_chat_is_decoder(dir)) { // a decoder (a GGUF file, or a version's directory with model.gguf)
        seslm_status st = serve_chat_reload(s, dir, prev, now, SERVE_ID_CAP);
        if (st != SESLM_OK) {
            const int code = st == SESLM_ERR_NOMEM || st == SESLM_ERR_INTERNAL ? 500 : 422;
            return fail_json(o, code, cur, "decoder reload failed%s%s: %s", s->chat ? ", still serving " : "", s->chat ? prev : "",
                             seslm_last_error());
        }
        sbuf b = {0};
        sb_puts(&b, "{\"status\":\"reloaded\",\"decoder\":");
        sb_json_str(&b, now);
        sb_puts(&b, ",\"previous\":");
        sb_json_str(&b, prev);
        sb_printf(&b, ",\"seconds\":%.3f}\n", (double)(serve_now_mono_ns() - t0) * 1e-9);
        free(o->p);
        *o = b;
        return 200;
    }
    seslm_status st = seslm_serve_reload(s, *dir ? dir : NULL, prev, now, SERVE_ID_CAP);
    if (st != SESLM_OK) {
        int code = st == SESLM_ERR_NOMEM || st == SESLM_ERR_INTERNAL ? 500 : 422;
        snprintf(model, SERVE_ID_CAP, "%s", prev);
        return fail_json(o, code, prev, "reload failed, still serving %s: %s", prev, seslm_last_error());
    }
    sbuf b = {0};
    sb_puts(&b, "{\"status\":\"reloaded\",\"model\":");
    sb_json_str(&b, now);
    sb_puts(&b, ",\"previous\":");
    sb_json_str(&b, prev);
    sb_printf(&b, ",\"seconds\":%.3f}\n", (double)(serve_now_mono_ns() - t0) * 1e-9);
    snprintf(model, SERVE_ID_CAP, "%s", now);
    free(o->p);
    *o = b;
    return 200;
}

// ---- the worker side --------------------------------------------------------------------------------

/* POST /v1/chat/completions on a worker. With "stream": true the answer is the OpenAI server-sent events
 * (text/event-stream), produced by the generation thread and collected here: with the poll-thread +
 * worker server the events go out together when the generation ends, not token by token (a reader that
 * blocks would stall the poll thread that serves every connection). */
static int work_chat(seslm_server *s, req_ctx *x, const char *body) {
    serve_chat_req *req = NULL;
    int code = serve_chat_parse(s, body, x->len, &req, &x->out);
    if (code) return code;
    if (!serve_chat_is_stream(req)) {
        code = serve_chat_complete(req, &x->out);
        serve_chat_req_free(req);
        return code;
    }
    if (serve_chat_stream_start(req) != 0) {
        serve_chat_req_free(req);
        return fail_json(&x->out, 503, NULL, "cannot start the generation thread");
    }
    char buf[4096];
    long n;
    while ((n = serve_chat_stream_read(req, buf, sizeof buf)) > 0) sb_putn(&x->out, buf, (size_t)n);
    serve_chat_req_free(req);
    x->sse = 1;
    return n < 0 && x->out.n == 0 ? 500 : 200;
}

/* Runs on a worker thread: computes the answer of a suspended request, then resumes its connection (the
 * poll thread then calls on_request again and queues the answer). */
static void run_request(seslm_server *s, void *task) {
    req_ctx *x = task;
    const char *body = x->body ? x->body : "";
    switch (x->r) {
    case R_EMBED: x->code = work_embed(s, x, &x->out, x->model); break;
    case R_RELOAD: x->code = work_reload(s, x, &x->out, x->model); break;
    case R_INTENT:
    case R_FEEDBACK: x->code = serve_intent_handle(s, x->r, body, x->len, &x->out, x->model); break;
    case R_RETRIEVE: x->code = serve_kb_handle(s, body, x->len, &x->out, x->model); break;
    case R_MESSAGE: x->code = serve_message_handle(s, body, x->len, &x->out, x->model); break;
    case R_CHAT: x->code = work_chat(s, x, body); break;
    default: x->code = fail_json(&x->out, 500, NULL, "internal error: route %d has no worker", (int)x->r); break;
    }
    x->state = 2;
    MHD_resume_connection(x->c);
}

/* Suspends the connection and queues its request for a worker; a full queue answers 503 at once. */
static enum MHD_Result hand_to_worker(seslm_server *s, struct MHD_Connection *c, req_ctx *x) {
    x->c = c;
    x->state = 1;
    MHD_suspend_connection(c);
    if (serve_workers_submit(s, x) == 0) return MHD_YES;
    atomic_fetch_add(&s->busy_rejects, 1);
    x->code = fail_json(&x->out, 503, NULL, "the server is busy (%d requests queued); retry shortly", s->o.max_connections);
    x->state = 2;
    MHD_resume_connection(c);
    return MHD_YES;
}

// ---- dispatch -------------------------------------------------------------------------------------

static serve_conn *guard_of(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? (serve_conn *)ci->socket_context : NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    seslm_server *s = cls;
    req_ctx *x = *con_cls;
    if (!x) { // headers are in; the body (if any) now has body_timeout_s
        x = calloc(1, sizeof *x);
        if (!x) return MHD_NO;
        *con_cls = x;
        serve_guard_phase(s, guard_of(c), SERVE_PHASE_BODY);
        atomic_fetch_add(&s->inflight, 1);
        x->t0 = serve_now_mono_ns();
        x->r = route_of(url);
        x->method = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ? 0 : strcmp(method, "POST") == 0 ? 1 : 2;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end = NULL;
            unsigned long long v = strtoull(cl, &end, 10);
            if (end != cl && v > s->o.max_body_bytes)
                return reply_error(s, c, x, 413, NULL, NULL, "request body of %llu bytes; the limit is %zu", v,
                                   s->o.max_body_bytes);
        }
        if (x->r == R_EMBED && x->method == 1) {
            x->arriving = 1;
            serve_arriving_add(s, 1);
        }
        return MHD_YES;
    }
    if (x->state == 2) { // back from a worker
        serve_guard_phase(s, guard_of(c), SERVE_PHASE_NONE);
        sbuf b = x->out;
        memset(&x->out, 0, sizeof x->out);
        if (x->sse && !b.oom && b.p) return reply(s, c, x, x->code, b.p, b.n, "text/event-stream", NULL, x->model);
        return reply_sbuf(s, c, x, x->code, &b, x->model);
    }
    if (*upload_size) { // a piece of the body
        size_t n = *upload_size;
        *upload_size = 0;
        if (!x->too_large && x->len + n > s->o.max_body_bytes) {
            x->too_large = 1;
            free(x->body);
            x->body = NULL;
            x->len = x->cap = 0;
        }
        if (x->too_large) {
            x->discarded += n;
            return x->discarded > DISCARD_LIMIT ? MHD_NO : MHD_YES;
        }
        if (x->len + n + 1 > x->cap) {
            size_t cap = x->cap ? x->cap : 4096;
            while (cap < x->len + n + 1) cap *= 2;
            char *p = realloc(x->body, cap);
            if (!p) return MHD_NO;
            x->body = p;
            x->cap = cap;
        }
        memcpy(x->body + x->len, upload, n);
        x->len += n;
        x->body[x->len] = 0;
        return MHD_YES;
    }
    // the whole request is in: no deadline while it is answered (MHD's idle timeout covers a stalled reader)
    serve_guard_phase(s, guard_of(c), SERVE_PHASE_NONE);
    if (x->too_large)
        return reply_error(s, c, x, 413, NULL, NULL, "request body over the limit of %zu bytes", s->o.max_body_bytes);
    char cur[SERVE_ID_CAP];
    switch (x->r) {
    case R_RELOAD:
        if (x->method != 1) return reply_error(s, c, x, 405, "POST", NULL, "%s %s: use POST", method, url);
        seslm_serve_model_id(s, cur, sizeof cur);
        if (!peer_is_loopback(c))
            return reply_error(s, c, x, 403, NULL, cur, "/admin/reload is only served to loopback clients");
        if (!admin_token_ok(s, c))
            return reply_error(s, c, x, 401, NULL, cur, "/admin/reload needs a valid admin token");
        return hand_to_worker(s, c, x);
    case R_EMBED:
    case R_INTENT:
    case R_FEEDBACK:
    case R_RETRIEVE:
    case R_MESSAGE:
        if (x->method != 1) return reply_error(s, c, x, 405, "POST", NULL, "%s %s: use POST", method, url);
        if (x->r == R_FEEDBACK) { // checked here, before a worker is taken
            int denied = feedback_denied(s, c);
            if (denied == 401) return reply_error(s, c, x, 401, NULL, NULL, "/v1/feedback needs a valid feedback token");
            if (denied)
                return reply_error(s, c, x, 403, NULL, NULL,
                                   "/v1/feedback is closed: the server was started without --feedback-token-file "
                                   "(or --feedback-open 1)");
        }
        return hand_to_worker(s, c, x);
    case R_CHAT:
        if (x->method != 1) return reply_error(s, c, x, 405, "POST", NULL, "%s %s: use POST", method, url);
        return hand_to_worker(s, c, x); // generation is long work: never on the poll thread
    case R_HEALTHZ: {
        if (x->method != 0) return reply_error(s, c, x, 405, "GET, HEAD", NULL, "%s %s: use GET", method, url);
        seslm_serve_model_id(s, cur, sizeof cur);
        int draining = atomic_load(&s->draining);
        sbuf b = {0};
        sb_puts(&b, draining ? "{\"status\":\"draining\",\"model\":" : "{\"status\":\"ok\",\"model\":");
        sb_json_str(&b, cur);
        sb_puts(&b, "}\n");
        return reply_sbuf(s, c, x, draining ? 503 : 200, &b, cur);
    }
    case R_METRICS: {
        if (x->method != 0) return reply_error(s, c, x, 405, "GET, HEAD", NULL, "%s %s: use GET", method, url);
        sbuf b = {0};
        serve_metrics_render(s, &b);
        if (b.oom || !b.p) return reply_sbuf(s, c, x, 500, &b, NULL);
        return reply(s, c, x, 200, b.p, b.n, "text/plain; version=0.0.4; charset=utf-8", NULL, NULL);
    }
    case R_OPENAI:
    case R_TEI:
    case R_KSERVE:
    case R_OPENAPI: {
        sbuf b = {0};
        const char *ctype = "application/json";
        int code = serve_api_handle(s, x->r, url, method, x->body ? x->body : "", x->len, &b, &ctype, cur);
        if (b.oom || !b.p) return reply_sbuf(s, c, x, 500, &b, cur);
        return reply(s, c, x, code, b.p, b.n, ctype, NULL, cur);
    }
    default:
        return reply_error(s, c, x, 404, NULL, NULL,
                           "no such endpoint: %s (try POST /v1/embed, GET /healthz, GET /metrics, GET /openapi.json)", url);
    }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)toe;
    seslm_server *s = cls;
    req_ctx *x = *con_cls;
    // a kept-alive connection: the next request's headers have header_timeout_s from now
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK) serve_guard_phase(s, guard_of(c), SERVE_PHASE_HEADERS);
    if (!x) return;
    arriving_done(s, x);
    free(x->body);
    free(x->out.p);
    free(x);
    *con_cls = NULL;
    atomic_fetch_sub(&s->inflight, 1);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
    seslm_server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = serve_guard_open(s, ci ? (int)ci->connect_fd : -1);
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        serve_guard_close(s, *socket_context);
        *socket_context = NULL;
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    serve_log_limited(cls, "seslm serve: libmicrohttpd: ", fmt, ap);
}

/* Every connection is a descriptor: make room for max_connections of them (and the model, dumps, logs). */
static void fit_fd_limit(seslm_server *s) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rlim_t need = (rlim_t)s->o.max_connections + 64;
    if (rl.rlim_cur >= need) return;
    rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    struct rlimit nl = {want, rl.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &nl) == 0) rl.rlim_cur = want;
    if (rl.rlim_cur < need) {
        int fit = rl.rlim_cur > 128 ? (int)(rl.rlim_cur - 64) : 64;
        fprintf(stderr, "seslm serve: the descriptor limit (ulimit -n %llu) allows %d connections, not %d\n",
                (unsigned long long)rl.rlim_cur, fit, s->o.max_connections);
        s->o.max_connections = fit;
    }
}

seslm_status serve_http_start(seslm_server *s) {
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char port[16];
    snprintf(port, sizeof port, "%d", s->o.port);
    int gai = getaddrinfo(s->host, port, &hints, &ai);
    if (gai != 0 || !ai) return seslm_fail(SESLM_ERR_ARG, "cannot resolve host '%s': %s", s->host, gai_strerror(gai));
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    memcpy(&addr, ai->ai_addr, ai->ai_addrlen < sizeof addr ? ai->ai_addrlen : sizeof addr);
    int v6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);

    fit_fd_limit(s);
    seslm_status st = serve_guard_start(s);
    // the queue can hold every connection's request: a 503 then means the pool itself is stuck
    if (st == SESLM_OK) st = serve_workers_start(s, s->o.workers, s->o.max_connections, run_request);
    if (st != SESLM_OK) {
        serve_workers_stop(s);
        serve_guard_stop(s);
        return st;
    }
    // MHD_USE_AUTO picks epoll on Linux: no FD_SETSIZE ceiling on the connection count
    unsigned flags = MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    if (v6) flags |= MHD_USE_IPv6;
    unsigned per_ip = s->o.max_connections_per_ip > 0 ? (unsigned)s->o.max_connections_per_ip : 0;
    s->mhd = MHD_start_daemon(flags, (uint16_t)s->o.port, NULL, NULL, on_request, s,                        //
                              MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,                                      //
                              MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,                              //
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->o.max_connections,                 //
                              MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip,                                  //
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->o.body_timeout_s,                //
                              MHD_OPTION_NOTIFY_COMPLETED, (MHD_RequestCompletedCallback)on_completed, s,  //
                              MHD_OPTION_NOTIFY_CONNECTION, (MHD_NotifyConnectionCallback)on_connection, s, //
                              MHD_OPTION_END);
    if (!s->mhd) {
        serve_workers_stop(s);
        serve_guard_stop(s);
        return seslm_fail(SESLM_ERR_IO, "cannot listen on %s port %d (in use? see the message above)", s->host,
                          s->o.port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : s->o.port;
    return SESLM_OK;
}

void serve_http_quiesce(seslm_server *s) {
    if (!s->mhd) return;
    MHD_socket fd = MHD_quiesce_daemon(s->mhd);
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

void serve_http_stop(seslm_server *s) {
    if (!s->mhd) return;
    // every suspended request gets its answer and its connection resumed before the daemon goes
    serve_workers_stop(s);
    MHD_stop_daemon(s->mhd);
    s->mhd = NULL;
    serve_guard_stop(s);
}
