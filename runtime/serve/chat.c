/* chat.c — POST /v1/chat/completions (OpenAI-compatible) on the GGUF decoder (runtime/decoder).
 *
 * Request:  {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}], "max_tokens": 256,
 *            "temperature": 1, "top_p": 1, "seed": 0, "stop": "..." | [...], "stream": false, "model": any}
 * Answer:   {"id", "object": "chat.completion", "created", "model", "choices": [{"index": 0,
 *            "message": {"role": "assistant", "content"}, "finish_reason": "stop"|"length"}],
 *            "usage": {"prompt_tokens", "completion_tokens", "total_tokens"}}
 * stream:   text/event-stream of "data: {chat.completion.chunk}\n\n" (first the role, then content
 *           deltas as they are generated, then the finish reason), closed by "data: [DONE]\n\n".
 * One generation runs at a time (the decoder uses every core); each request has its own KV cache sized
 * to its prompt plus max_tokens. Bad requests answer 400 with {"error": ...}. */
#include "serve_internal.h"

#include "decoder.h"
#include "grounded.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHAT_MAX_STOP 4
#define CHAT_MAX_TOKENS 4096

/* The decoder now serving. A request holds a reference from its parse to its end, so a reload (POST /admin/reload
 * with a decoder, serve_chat_reload) swaps the pointer and the old model is freed by the last request using it. */
typedef struct chat_model {
    seslm_llm *m;
    char name[256];
    atomic_int refs;
} chat_model;

struct serve_chat {
    pthread_mutex_t mu;     // guards cur
    chat_model *cur;        // holds one reference
    pthread_mutex_t gen_mu; // one generation at a time
    atomic_ullong seq;
};

struct serve_chat_req {
    serve_chat *chat;
    chat_model *cm; // the model this request runs on (a reference)
    char *prompt;
    int max_tokens, stream;
    seslm_sampler_opts sampling;
    char *stop[CHAT_MAX_STOP];
    int n_stop;
    char id[64];
    long long created;
    // streaming: the generation thread appends SSE events to buf; the HTTP thread drains it
    pthread_t thread;
    int thread_up;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sbuf buf;
    size_t sent;
    int done, cancel;
};

// path: a GGUF file, or a directory holding model.gguf (a registry version); the name: the file's stem, or the
// directory's name for model.gguf
static seslm_status chat_model_load(const char *path, chat_model **out) {
    *out = NULL;
    char file[PATH_MAX], name[256];
    struct stat sb;
    const int is_dir = stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
    size_t pl = strlen(path);
    while (pl > 1 && path[pl - 1] == '/') pl--;
    if (is_dir) snprintf(file, sizeof file, "%.*s/model.gguf", (int)pl, path);
    else snprintf(file, sizeof file, "%s", path);
    const char *base = path + pl;
    while (base > path && base[-1] != '/') base--;
    snprintf(name, sizeof name, "%.*s", (int)(path + pl - base), base);
    size_t L = strlen(name);
    if (!is_dir && L > 5 && strcmp(name + L - 5, ".gguf") == 0) name[L - 5] = 0;
    chat_model *cm = calloc(1, sizeof *cm);
    if (!cm) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    seslm_status st = seslm_llm_load(&cm->m, file);
    if (st != SESLM_OK) {
        free(cm);
        return st;
    }
    snprintf(cm->name, sizeof cm->name, "%s", name);
    atomic_init(&cm->refs, 1);
    *out = cm;
    return SESLM_OK;
}

static chat_model *chat_acquire(serve_chat *c) {
    pthread_mutex_lock(&c->mu);
    chat_model *cm = c->cur;
    atomic_fetch_add(&cm->refs, 1);
    pthread_mutex_unlock(&c->mu);
    return cm;
}

static void chat_release(chat_model *cm) {
    if (cm && atomic_fetch_sub(&cm->refs, 1) == 1) {
        seslm_llm_free(cm->m);
        free(cm);
    }
}

int serve_chat_is_decoder(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0) return 0;
    if (S_ISDIR(sb.st_mode)) {
        char f[PATH_MAX];
        snprintf(f, sizeof f, "%s/model.gguf", path);
        return stat(f, &sb) == 0 && S_ISREG(sb.st_mode);
    }
    size_t L = strlen(path);
    return S_ISREG(sb.st_mode) && L > 5 && strcmp(path + L - 5, ".gguf") == 0;
}

seslm_status serve_chat_open(seslm_server *s, const char *path) {
    serve_chat *c = calloc(1, sizeof *c);
    if (!c) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    seslm_status st = chat_model_load(path, &c->cur);
    if (st != SESLM_OK) {
        free(c);
        return st;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->gen_mu, NULL);
    atomic_init(&c->seq, 0);
    s->chat = c;
    return SESLM_OK;
}

seslm_status serve_chat_reload(seslm_server *s, const char *path, char *prev, char *now, size_t cap) {
    if (!s->chat) return seslm_fail(SESLM_ERR_ARG, "this node serves no decoder (seslm serve --decoder FILE)");
    chat_model *nm = NULL;
    seslm_status st = chat_model_load(path, &nm); // beside the old one, which keeps serving
    pthread_mutex_lock(&s->chat->mu);
    chat_model *old = s->chat->cur;
    if (prev) snprintf(prev, cap, "%s", old->name);
    if (st == SESLM_OK) s->chat->cur = nm;
    if (now) snprintf(now, cap, "%s", s->chat->cur->name);
    pthread_mutex_unlock(&s->chat->mu);
    if (st != SESLM_OK) return st;
    fprintf(stderr, "seslm serve: the decoder is now %s from %s (was %s)\n", nm->name, path, old->name);
    chat_release(old); // freed when the last request on it ends
    return SESLM_OK;
}

void serve_chat_close(seslm_server *s) {
    if (!s->chat) return;
    chat_release(s->chat->cur);
    pthread_mutex_destroy(&s->chat->mu);
    pthread_mutex_destroy(&s->chat->gen_mu);
    free(s->chat);
    s->chat = NULL;
}

seslm_status serve_chat_ground_answer(seslm_server *s, const char *question, const char *const *passages, int n,
                                      int max_tokens, char **text, int *n_gen) {
    *text = NULL;
    if (!s->chat) return seslm_fail(SESLM_ERR_ARG, "no decoder model on this node");
    chat_model *cm = chat_acquire(s->chat);
    char *prompt = seslm_ground_prompt(cm->m, question, passages, n);
    seslm_status st = prompt ? SESLM_OK : seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    if (st == SESLM_OK) {
        pthread_mutex_lock(&s->chat->gen_mu); // one generation at a time, as for /v1/chat/completions
        st = seslm_ground_generate(cm->m, prompt, max_tokens, text, NULL, n_gen);
        pthread_mutex_unlock(&s->chat->gen_mu);
    }
    free(prompt);
    chat_release(cm);
    return st;
}

void serve_chat_req_free(serve_chat_req *r) {
    if (!r) return;
    if (r->thread_up) {
        pthread_mutex_lock(&r->mu);
        r->cancel = 1;
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
    }
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    chat_release(r->cm);
    free(r->prompt);
    free(r->buf.p);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

static int get_num(const cJSON *root, const char *key, double lo, double hi, double *out, sbuf *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi))
        return sb_error_json(err, 400, "\"%s\" must be a number in [%g, %g]", key, lo, hi);
    *out = v->valuedouble;
    return 0;
}

int serve_chat_parse(seslm_server *s, const char *body, size_t len, serve_chat_req **out, sbuf *err) {
    *out = NULL;
    if (!s->chat) return sb_error_json(err, 404, "no decoder model on this node (seslm serve --decoder FILE)");
    cJSON *root = NULL;
    int code = sb_parse_json(body, len, &root, err);
    if (code) return code;
    serve_chat_req *r = calloc(1, sizeof *r);
    if (!r) {
        cJSON_Delete(root);
        return sb_error_json(err, 500, "out of memory");
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->chat = s->chat;
    r->cm = chat_acquire(s->chat);
    r->max_tokens = 256;
    r->sampling = (seslm_sampler_opts){1.0f, 1.0f, 0};
    seslm_chat_msg *msgs = NULL;
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(root, "messages");
    int n = cJSON_IsArray(ms) ? cJSON_GetArraySize(ms) : 0;
    if (!cJSON_IsObject(root)) code = sb_error_json(err, 400, "the body must be a JSON object");
    else if (n <= 0 || n > 1024) code = sb_error_json(err, 400, "\"messages\" must be an array of 1..1024 messages");
    if (!code && !(msgs = calloc((size_t)n, sizeof *msgs))) code = sb_error_json(err, 500, "out of memory");
    for (int i = 0; !code && i < n; i++) {
        const cJSON *m = cJSON_GetArrayItem(ms, i);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsString(role) || (strcmp(role->valuestring, "system") && strcmp(role->valuestring, "user") &&
                                      strcmp(role->valuestring, "assistant")))
            code = sb_error_json(err, 400, "messages[%d].role must be \"system\", \"user\" or \"assistant\"", i);
        else if (!cJSON_IsString(content))
            code = sb_error_json(err, 400, "messages[%d].content must be a string", i);
        else if (strstr(content->valuestring, "<|im_"))
            code = sb_error_json(err, 400, "messages[%d].content contains a chat control token", i);
        else
            msgs[i] = (seslm_chat_msg){role->valuestring, content->valuestring};
    }
    double v;
    if (!code && (v = r->max_tokens, !(code = get_num(root, "max_tokens", 1, CHAT_MAX_TOKENS, &v, err))))
        r->max_tokens = (int)v;
    if (!code && (v = r->sampling.temperature, !(code = get_num(root, "temperature", 0, 2, &v, err))))
        r->sampling.temperature = (float)v;
    if (!code && (v = r->sampling.top_p, !(code = get_num(root, "top_p", 1e-6, 1, &v, err)))) r->sampling.top_p = (float)v;
    if (!code && (v = 0, !(code = get_num(root, "seed", 0, 9007199254740991.0, &v, err)))) r->sampling.seed = (uint64_t)v;
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(root, "stream");
    if (!code && stream && !cJSON_IsNull(stream) && !cJSON_IsBool(stream))
        code = sb_error_json(err, 400, "\"stream\" must be true or false");
    r->stream = cJSON_IsTrue(stream);
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(root, "stop");
    if (!code && stop && !cJSON_IsNull(stop)) {
        if (cJSON_IsString(stop)) {
            if (*stop->valuestring) r->stop[r->n_stop++] = strdup(stop->valuestring);
        } else if (cJSON_IsArray(stop) && cJSON_GetArraySize(stop) <= CHAT_MAX_STOP) {
            const cJSON *e;
            cJSON_ArrayForEach(e, stop) {
                if (!cJSON_IsString(e) || !*e->valuestring) {
                    code = sb_error_json(err, 400, "\"stop\" entries must be non-empty strings");
                    break;
                }
                r->stop[r->n_stop++] = strdup(e->valuestring);
            }
        } else {
            code = sb_error_json(err, 400, "\"stop\" must be a string or an array of up to %d strings", CHAT_MAX_STOP);
        }
        for (int i = 0; !code && i < r->n_stop; i++)
            if (!r->stop[i]) code = sb_error_json(err, 500, "out of memory");
    }
    if (!code && !(r->prompt = seslm_chat_format(r->cm->m, msgs, n, 1))) code = sb_error_json(err, 500, "out of memory");
    free(msgs);
    cJSON_Delete(root);
    if (code) {
        serve_chat_req_free(r);
        return code;
    }
    snprintf(r->id, sizeof r->id, "chatcmpl-%llu", (unsigned long long)atomic_fetch_add(&s->chat->seq, 1) + 1);
    r->created = (long long)time(NULL);
    *out = r;
    return 0;
}

int serve_chat_is_stream(const serve_chat_req *r) { return r->stream; }

static int on_piece(void *user, const char *text, size_t len);

/* Runs the generation (under the model's lock). 0 ok; else the HTTP code with the error in err. */
static int run(serve_chat_req *r, seslm_gen_result *res, sbuf *err) {
    serve_chat *c = r->chat;
    const seslm_llm *m = r->cm->m;
    const seslm_llm_config *cf = seslm_llm_cfg(m);
    int32_t *ids = NULL;
    int n = 0;
    seslm_status st = bpe_encode(seslm_llm_tokenizer(m), r->prompt, strlen(r->prompt), 1, &ids, &n);
    free(ids);
    if (st == SESLM_ERR_UTF8) return sb_error_json(err, 400, "messages: %s", seslm_last_error());
    if (st) return sb_error_json(err, 500, "%s", seslm_last_error());
    if (n + 1 > cf->n_ctx_train)
        return sb_error_json(err, 400, "the conversation has %d tokens; the model's context is %d", n, cf->n_ctx_train);
    int n_ctx = n + r->max_tokens + 1 < cf->n_ctx_train ? n + r->max_tokens + 1 : cf->n_ctx_train;
    seslm_llm_ctx *ctx = NULL;
    if (seslm_llm_ctx_new(&ctx, m, n_ctx, 0) != SESLM_OK) return sb_error_json(err, 503, "%s", seslm_last_error());
    seslm_gen_opts go = {.max_tokens = r->max_tokens,
                         .sampling = r->sampling,
                         .stop = (const char *const *)r->stop,
                         .n_stop = r->n_stop,
                         .parse_special = 1,
                         .on_text = r->stream ? on_piece : NULL,
                         .user = r};
    pthread_mutex_lock(&c->gen_mu);
    st = seslm_generate(ctx, r->prompt, strlen(r->prompt), &go, res);
    pthread_mutex_unlock(&c->gen_mu);
    seslm_llm_ctx_free(ctx);
    if (st == SESLM_ERR_UTF8 || st == SESLM_ERR_LIMIT || st == SESLM_ERR_ARG)
        return sb_error_json(err, 400, "%s", seslm_last_error());
    if (st) return sb_error_json(err, 500, "%s", seslm_last_error());
    return 0;
}

int serve_chat_complete(serve_chat_req *r, sbuf *out) {
    seslm_gen_result res;
    int code = run(r, &res, out);
    if (code) return code;
    sb_printf(out, "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":%lld,\"model\":", r->id, r->created);
    sb_json_str(out, r->cm->name);
    sb_puts(out, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    sb_json_str(out, res.text);
    sb_printf(out, "},\"finish_reason\":\"%s\"}],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,"
                   "\"total_tokens\":%d}}\n",
              strcmp(res.finish, "length") == 0 ? "length" : "stop", res.n_prompt, res.n_gen, res.n_prompt + res.n_gen);
    seslm_gen_result_free(&res);
    return out->oom ? sb_error_json(out, 500, "out of memory") : 200;
}

// ---- streaming -------------------------------------------------------------------------------------

static void chunk(serve_chat_req *r, sbuf *b, const char *delta_key, const char *delta, size_t dlen, const char *finish) {
    sb_printf(b, "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%lld,\"model\":", r->id,
              r->created);
    sb_json_str(b, r->cm->name);
    sb_puts(b, ",\"choices\":[{\"index\":0,\"delta\":{");
    if (delta_key) {
        sb_printf(b, "\"%s\":", delta_key);
        char *tmp = malloc(dlen + 1);
        if (tmp) {
            memcpy(tmp, delta, dlen);
            tmp[dlen] = 0;
            sb_json_str(b, tmp);
            free(tmp);
        } else {
            b->oom = 1;
        }
    }
    sb_puts(b, "},\"finish_reason\":");
    if (finish) sb_printf(b, "\"%s\"", finish);
    else sb_puts(b, "null");
    sb_puts(b, "}]}\n\n");
}

static int on_piece(void *user, const char *text, size_t len) {
    serve_chat_req *r = user;
    pthread_mutex_lock(&r->mu);
    int cancel = r->cancel;
    if (!cancel) chunk(r, &r->buf, "content", text, len, NULL);
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return cancel;
}

static void *stream_main(void *arg) {
    serve_chat_req *r = arg;
    seslm_gen_result res;
    sbuf err = {0};
    int code = run(r, &res, &err);
    pthread_mutex_lock(&r->mu);
    if (code) { // the headers (200) are gone: report the error as an event
        sb_puts(&r->buf, "data: ");
        sb_putn(&r->buf, err.p ? err.p : "{}", err.p ? strcspn(err.p, "\n") : 2);
        sb_puts(&r->buf, "\n\n");
    } else {
        chunk(r, &r->buf, NULL, NULL, 0, strcmp(res.finish, "length") == 0 ? "length" : "stop");
        seslm_gen_result_free(&res);
    }
    sb_puts(&r->buf, "data: [DONE]\n\n");
    r->done = 1;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    free(err.p);
    return NULL;
}

int serve_chat_stream_start(serve_chat_req *r) {
    chunk(r, &r->buf, "role", "assistant", 9, NULL);
    if (pthread_create(&r->thread, NULL, stream_main, r) != 0) return -1;
    r->thread_up = 1;
    return 0;
}

long serve_chat_stream_read(serve_chat_req *r, char *buf, size_t max) {
    pthread_mutex_lock(&r->mu);
    while (r->sent == r->buf.n && !r->done && !r->buf.oom) pthread_cond_wait(&r->cv, &r->mu);
    long n;
    if (r->buf.oom) {
        n = -1;
    } else if (r->sent < r->buf.n) {
        size_t k = r->buf.n - r->sent < max ? r->buf.n - r->sent : max;
        memcpy(buf, r->buf.p + r->sent, k);
        r->sent += k;
        n = (long)k;
    } else {
        n = -1; // done and drained: end of stream
    }
    pthread_mutex_unlock(&r->mu);
    return n;
}
