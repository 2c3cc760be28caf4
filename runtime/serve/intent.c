/* intent.c — the intent endpoints of the server: POST /v1/intent and POST /v1/feedback.
 *
 * One intent head (runtime/assist/intent.h) per server, behind one mutex: predictions and online updates from
 * concurrent connections are serialised, so no update is lost. The text is embedded through the batcher
 * like any /v1/embed text (so the encoder's telemetry sees it). A feedback example is learned and the
 * head file rewritten crash-safely (temp file + fsync + rename) before the answer is sent: an
 * acknowledged example survives a crash or restart. Predicted intents are counted per telemetry
 * window and written into the dump's /intents group (the janitor takes the counts at each dump).
 *
 * The feedback log (--feedback-log): the head keeps what it learned only as embeddings, so the node also
 * appends each learned example's text and intent to a JSON lines file, the input of `seslm adapt --feedback`
 * (adapters need the texts). One write of the whole line and an fdatasync under the head's mutex, before the
 * answer: an acknowledged example is in the log; a crash mid-write leaves at most an unacknowledged partial
 * line, cut off when the log is next opened. Every successful reload opens the path again, so a log moved
 * aside (rotated) is followed by a new file from the next reload on (SIGHUP).
 *
 * A head answers for the model it was trained on: a reload to another model swaps the head with it when one is
 * found for the new model (serve_intent_prepare), and a text embedded by the model being swapped out is
 * embedded again (embed_for_head), so no answer pairs one model's embedding with another model's head. */
#include "intent.h"
#include "serve_internal.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct serve_intent {
    pthread_mutex_t mu; // the head, the counts
    seslm_intent_head *h;
    char path[PATH_MAX];
    char model_sha[65];   // the model the head was trained on (its file says; "" unknown)
    uint64_t generation;  // the model slot the head answers for: an embedding from another slot is done again
    int allow_new;
    uint64_t *counts; // predictions per class in the open telemetry window (n_classes)
    int n_counts;
    // predictions of the open window under a head swapped out since, by label (labels the current head lacks)
    char **carry_labels;
    uint64_t *carry_counts;
    int n_carry;
    int log_fd; // the feedback log (O_APPEND), -1: none
    char log_path[PATH_MAX];
};

/* Opens the feedback log for appending; a last line without its newline (a crash mid-write: never
 * acknowledged) is cut off, so every line of the log is a whole JSON object. */
static seslm_status open_feedback_log(serve_intent *in, const char *path) {
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return seslm_fail(SESLM_ERR_IO, "feedback log %s: %s", path, strerror(errno));
    struct stat st;
    off_t keep = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return seslm_fail(SESLM_ERR_IO, "feedback log %s: not a regular file", path);
    }
    char buf[4096];
    for (off_t end = st.st_size; end > 0 && keep == 0;) { // the last newline, scanning back from the end
        const off_t at = end > (off_t)sizeof buf ? end - (off_t)sizeof buf : 0;
        const ssize_t got = pread(fd, buf, (size_t)(end - at), at);
        if (got != end - at) {
            close(fd);
            return seslm_fail(SESLM_ERR_IO, "feedback log %s: cannot read it: %s", path, got < 0 ? strerror(errno) : "short read");
        }
        for (ssize_t i = got - 1; i >= 0; i--)
            if (buf[i] == '\n') {
                keep = at + i + 1;
                break;
            }
        end = at;
    }
    if (keep < st.st_size) {
        if (ftruncate(fd, keep) != 0 || fsync(fd) != 0) {
            const int e = errno;
            close(fd);
            return seslm_fail(SESLM_ERR_IO, "feedback log %s: cannot cut off its partial last line: %s", path, strerror(e));
        }
        fprintf(stderr, "seslm serve: feedback log %s: cut off a partial last line of %lld bytes (a crash mid-write)\n",
                path, (long long)(st.st_size - keep));
    }
    in->log_fd = fd;
    snprintf(in->log_path, sizeof in->log_path, "%s", path);
    return SESLM_OK;
}

/* Appends one learned example to the feedback log, durably (called with in->mu held). */
static seslm_status log_feedback(serve_intent *in, const char *text, const char *intent) {
    if (in->log_fd < 0) return SESLM_OK;
    char when[32];
    const time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "text", text);
    cJSON_AddStringToObject(o, "intent", intent);
    cJSON_AddStringToObject(o, "time", when);
    cJSON_AddStringToObject(o, "model", in->model_sha);
    char *line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!line) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    const size_t n = strlen(line);
    line[n] = '\n'; // over the NUL: one write of the whole line (cJSON escapes every newline in the text)
    const int ok = util_write_all(in->log_fd, line, n + 1), e = errno;
    free(line);
    if (!ok) return seslm_fail(SESLM_ERR_IO, "feedback log %s: %s", in->log_path, strerror(e));
    if (fdatasync(in->log_fd) != 0) return seslm_fail(SESLM_ERR_IO, "feedback log %s: fdatasync: %s", in->log_path, strerror(errno));
    return SESLM_OK;
}

/* The reason a head of input_dim D on k layers cannot answer for the model m, or NULL. (Every backend computes
 * the features of k > 1 layers: a device one brings the earlier layers back to pool them, encoder.c.) */
static const char *head_mismatch(int D, int k, const seslm_model *m, char *why, size_t cap) {
    const seslm_model_config *c = seslm_model_get_config(m);
    if (k > c->n_layers || D != k * c->hidden)
        snprintf(why, cap, "takes %d-d inputs (%d layer%s), the model gives %d-d per layer and has %d layers", D, k,
                 k == 1 ? "" : "s", c->hidden, c->n_layers);
    else
        return NULL;
    return why;
}

seslm_status serve_intent_open(seslm_server *s, const char *path, int allow_new, const char *feedback_log) {
    serve_intent *in = calloc(1, sizeof *in);
    if (!in) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    in->log_fd = -1;
    seslm_status st = seslm_intent_load(&in->h, path, in->model_sha);
    if (st != SESLM_OK) {
        char why[1024];
        snprintf(why, sizeof why, "%s", seslm_last_error());
        free(in);
        return seslm_fail(st, "intent head: %s", why);
    }
    char why[256];
    if (head_mismatch(seslm_intent_input_dim(in->h), seslm_intent_feature_layers(in->h), s->current->m,
                      why, sizeof why)) {
        st = seslm_fail(SESLM_ERR_SHAPE, "intent head %s %s", path, why);
        seslm_intent_free(in->h);
        free(in);
        return st;
    }
    if (feedback_log && *feedback_log && (st = open_feedback_log(in, feedback_log)) != SESLM_OK) {
        seslm_intent_free(in->h);
        free(in);
        return st;
    }
    snprintf(in->path, sizeof in->path, "%s", path);
    in->generation = s->current->generation;
    in->allow_new = allow_new;
    pthread_mutex_init(&in->mu, NULL);
    s->intent = in;
    // a head file trained on another model (the node was restarted on a rolled-back model): its own head
    // for this model, kept when it was swapped out, or the model's, as a reload would pick
    serve_intent_next *n = NULL;
    if ((st = serve_intent_prepare(s, s->current, &n)) != SESLM_OK) {
        char why[1024];
        snprintf(why, sizeof why, "%s", seslm_last_error());
        serve_intent_close(s);
        return seslm_fail(st, "intent head: %s", why);
    }
    serve_intent_swap_locked(s, n, s->current->generation);
    serve_intent_finish(s, n);
    return SESLM_OK;
}

void serve_intent_reopen_log(seslm_server *s) {
    serve_intent *in = s->intent;
    if (!in) return;
    pthread_mutex_lock(&in->mu);
    const int old = in->log_fd;
    if (old >= 0) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s", in->log_path);
        if (open_feedback_log(in, path) == SESLM_OK) close(old); // in->log_fd is the new file's
        else fprintf(stderr, "seslm serve: %s; still appending to the file opened before\n", seslm_last_error());
    }
    pthread_mutex_unlock(&in->mu);
}

void serve_intent_close(seslm_server *s) {
    serve_intent *in = s->intent;
    if (!in) return;
    seslm_intent_free(in->h);
    if (in->log_fd >= 0) close(in->log_fd);
    free(in->counts);
    for (int i = 0; i < in->n_carry; i++) free(in->carry_labels[i]);
    free(in->carry_labels), free(in->carry_counts);
    pthread_mutex_destroy(&in->mu);
    free(in);
    s->intent = NULL;
}

int serve_intent_take_counts(seslm_server *s, char ***labels, uint64_t **counts) {
    *labels = NULL;
    *counts = NULL;
    serve_intent *in = s->intent;
    if (!in) return 0;
    pthread_mutex_lock(&in->mu);
    const int nh = in->n_counts, cap = nh + in->n_carry;
    char **l = cap ? calloc((size_t)cap, sizeof *l) : NULL;
    uint64_t *c = cap ? malloc((size_t)cap * sizeof *c) : NULL;
    int n = 0;
    for (int i = 0; l && c && i < cap; i++) { // the current head's classes, then labels carried from swapped-out heads
        const int cur = i < nh;
        const char *lab = cur ? seslm_intent_label(in->h, i) : in->carry_labels[i - nh];
        if (!lab) lab = ""; // cannot happen (counts are resized to the head at each swap); never strdup(NULL)
        const uint64_t cnt = cur ? in->counts[i] : in->carry_counts[i - nh];
        if (cur) in->counts[i] = 0;
        const int j = cur ? -1 : seslm_intent_find(in->h, lab); // learned online since the swap: one entry per label
        if (j >= 0 && j < nh) {
            c[j] += cnt;
            continue;
        }
        if (!(l[n] = strdup(lab))) break; // out of memory: keep what was copied
        c[n++] = cnt;
    }
    for (int i = 0; i < in->n_carry; i++) free(in->carry_labels[i]);
    free(in->carry_labels), free(in->carry_counts);
    in->carry_labels = NULL, in->carry_counts = NULL, in->n_carry = 0;
    pthread_mutex_unlock(&in->mu);
    if (n == 0) {
        for (int i = 0; l && i < cap; i++) free(l[i]);
        free(l), free(c);
        return 0;
    }
    *labels = l;
    *counts = c;
    return n;
}

void serve_intent_free_counts(char **labels, uint64_t *counts, int n) {
    for (int i = 0; labels && i < n; i++) free(labels[i]);
    free(labels);
    free(counts);
}

/* mu held */
static void count_prediction(serve_intent *in, int index) {
    const int C = seslm_intent_n_classes(in->h);
    if (C > in->n_counts) {
        uint64_t *c = realloc(in->counts, (size_t)C * sizeof *c);
        if (!c) return;
        memset(c + in->n_counts, 0, (size_t)(C - in->n_counts) * sizeof *c);
        in->counts = c;
        in->n_counts = C;
    }
    in->counts[index]++;
}

// ---- request helpers --------------------------------------------------------------------------------


/* Embeds one text through the batcher with the current model (the features of its last feature_layers layers
 * when that is > 1); 0 ok, else an HTTP code with out set. */
int serve_embed_text(seslm_server *s, const char *text, float *vec, int dim, int feature_layers, char *model_id,
                     uint64_t *generation, sbuf *out) {
    serve_slot *slot = serve_slot_acquire(s);
    if (!slot) return sb_error_json(out, 503, "no model is loaded");
    snprintf(model_id, SERVE_ID_CAP, "%s", slot->id);
    if (generation) *generation = slot->generation;
    int code = 0;
    char why[256];
    if (head_mismatch(dim, feature_layers, slot->m, why, sizeof why)) {
        code = sb_error_json(out, 500, "the intent head %s (model %s)", why, slot->id);
        serve_slot_release(slot);
        return code;
    }
    int32_t *ids = malloc((size_t)slot->tok_cap * sizeof(int32_t));
    int len = 0;
    if (!ids) code = sb_error_json(out, 500, "out of memory");
    seslm_status st = code ? SESLM_OK : seslm_tokenizer_encode(seslm_model_tokenizer(slot->m), text, strlen(text), ids, slot->tok_cap, &len);
    if (!code && st != SESLM_OK) {
        if (st == SESLM_ERR_UTF8) atomic_fetch_add(&slot->rejected, 1);
        code = sb_error_json(out, st == SESLM_ERR_UTF8 ? 400 : 500, "\"text\": %s", seslm_last_error());
    }
    if (!code) {
        if (len > slot->max_seq) { // keep the final [SEP], as seslm_encoder_embed_texts
            ids[slot->max_seq - 1] = ids[len - 1];
            len = slot->max_seq;
        }
        serve_job job;
        memset(&job, 0, sizeof job);
        job.slot = slot;
        job.n = 1;
        job.cap = slot->tok_cap;
        job.ids = ids;
        job.lens = &len;
        job.out = vec;
        job.features = feature_layers > 1 ? feature_layers : 0;
        if (serve_batcher_submit(s, &job) != 0) code = sb_error_json(out, 500, "%s", job.err);
    }
    free(ids);
    serve_slot_release(slot);
    return code;
}

/* Embeds text with the model the head answers for. 0: *x (the head's width, malloc'd) holds the embedding and
 * in->mu is HELD (the caller unlocks); else an HTTP code with out set, mu not held. A reload between the
 * embedding and the lock swaps model and head together (serve_intent_swap_locked): the text is embedded again. */
static int embed_for_head(seslm_server *s, serve_intent *in, const char *text, float **x, char *model_id, sbuf *out) {
    *x = NULL;
    for (int attempt = 0; attempt < 3; attempt++) {
        pthread_mutex_lock(&in->mu);
        const int D = seslm_intent_input_dim(in->h), K = seslm_intent_feature_layers(in->h);
        pthread_mutex_unlock(&in->mu);
        float *v = realloc(*x, (size_t)D * sizeof(float));
        if (!v) {
            free(*x), *x = NULL;
            return sb_error_json(out, 500, "out of memory");
        }
        *x = v;
        uint64_t gen = 0;
        const int code = serve_embed_text(s, text, *x, D, K, model_id, &gen, out);
        if (code) {
            free(*x), *x = NULL;
            return code;
        }
        pthread_mutex_lock(&in->mu);
        if (in->generation == gen && seslm_intent_input_dim(in->h) == D && seslm_intent_feature_layers(in->h) == K)
            return 0;
        pthread_mutex_unlock(&in->mu);
    }
    free(*x), *x = NULL;
    return sb_error_json(out, 503, "the model was reloaded during the request three times; retry");
}

/* Parses an object body with string fields only from `allowed`; 0 ok, else an HTTP code with out set. */
static int parse_fields(const char *body, size_t len, const char *const *allowed, int n_allowed, const char **vals,
                        cJSON **root_out, sbuf *out) {
    *root_out = NULL;
    if (len == 0) return sb_error_json(out, 400, "empty body: send a JSON object");
    cJSON *root = NULL;
    const int perr = sb_parse_json(body, len, &root, out);
    if (perr) return perr;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return sb_error_json(out, 400, "the body must be a JSON object");
    }
    for (int i = 0; i < n_allowed; i++) vals[i] = NULL;
    for (const cJSON *f = root->child; f; f = f->next) {
        int k = 0;
        while (k < n_allowed && strcmp(f->string, allowed[k]) != 0) k++;
        if (k == n_allowed) {
            char fields[256] = "";
            for (int i = 0; i < n_allowed; i++)
                snprintf(fields + strlen(fields), sizeof fields - strlen(fields), i ? ", \"%s\"" : "\"%s\"", allowed[i]);
            int code = sb_error_json(out, 400, "unknown field \"%.100s\" (the fields are %s)", f->string, fields);
            cJSON_Delete(root);
            return code;
        }
        if (!cJSON_IsString(f) || !*f->valuestring) {
            int code = sb_error_json(out, 400, "\"%s\" must be a non-empty string", allowed[k]);
            cJSON_Delete(root);
            return code;
        }
        vals[k] = f->valuestring;
    }
    for (int i = 0; i < n_allowed; i++)
        if (!vals[i]) {
            int code = sb_error_json(out, 400, "missing field \"%s\"", allowed[i]);
            cJSON_Delete(root);
            return code;
        }
    *root_out = root;
    return 0;
}

// ---- POST /v1/intent ----------------------------------------------------------------------------------

static int handle_intent(seslm_server *s, const char *body, size_t len, sbuf *out, char *model_id) {
    serve_intent *in = s->intent;
    static const char *const fields[] = {"text"};
    const char *vals[1];
    cJSON *root = NULL;
    int code = parse_fields(body, len, fields, 1, vals, &root, out);
    if (code) return code;
    float *x = NULL;
    code = embed_for_head(s, in, vals[0], &x, model_id, out); // 0: in->mu held
    cJSON_Delete(root);
    if (code) return code;
    const int C = seslm_intent_n_classes(in->h);
    float *p = malloc((size_t)C * sizeof(float));
    seslm_intent_result r;
    if (!p || seslm_intent_predict(in->h, x, p, &r) != SESLM_OK) {
        code = sb_error_json(out, 500, "%s", p ? seslm_last_error() : "out of memory");
    } else {
        count_prediction(in, r.index);
        serve_metrics_in_scope(&s->metrics, r.in_scope);
        sb_puts(out, "{\"intent\":");
        if (r.out_of_scope) sb_puts(out, "null");
        else sb_json_str(out, seslm_intent_label(in->h, r.index));
        sb_puts(out, ",\"top\":");
        sb_json_str(out, seslm_intent_label(in->h, r.index));
        sb_printf(out, ",\"confidence\":%.6f,\"in_scope\":", (double)r.confidence);
        if (isnan(r.in_scope)) sb_puts(out, "null"); // a head saved before the in-scope reference
        else sb_printf(out, "%.6f", (double)r.in_scope);
        sb_printf(out, ",\"out_of_scope\":%s,\"probabilities\":{", r.out_of_scope ? "true" : "false");
        for (int j = 0; j < C; j++) {
            if (j) sb_putn(out, ",", 1);
            sb_json_str(out, seslm_intent_label(in->h, j));
            sb_printf(out, ":%.6f", (double)p[j]);
        }
        sb_puts(out, "},\"model\":");
        sb_json_str(out, model_id);
        sb_puts(out, "}\n");
        code = 200;
    }
    pthread_mutex_unlock(&in->mu);
    free(p);
    free(x);
    return code;
}

// ---- POST /v1/feedback --------------------------------------------------------------------------------

/* 409 with the reason in out when the head holds the most intents feedback may grow it to, else 0. A client that
 * sends free text as labels (a typo, a user's words) would otherwise grow the head, and every save, without end. */
static int head_full(seslm_server *s, serve_intent *in, sbuf *out) {
    const int n = seslm_intent_n_classes(in->h);
    if (n < s->o.intent_max_intents) return 0;
    return sb_error_json(out, 409, "the intent head already has %d intents, the most feedback may add up to "
                                   "(--intent-max-intents %d): retrain it with `seslm intent train`, or raise the limit",
                         n, s->o.intent_max_intents);
}

static int handle_feedback(seslm_server *s, const char *body, size_t len, sbuf *out, char *model_id) {
    serve_intent *in = s->intent;
    static const char *const fields[] = {"text", "intent"};
    const char *vals[2];
    cJSON *root = NULL;
    int code = parse_fields(body, len, fields, 2, vals, &root, out);
    if (code) return code;
    // a label becomes a permanent class name: check it before anything is learned (or embedded)
    if (seslm_intent_label_check(vals[1]) != SESLM_OK) {
        code = sb_error_json(out, 400, "%s", seslm_last_error());
        cJSON_Delete(root);
        return code;
    }
    // refuse an unknown intent before the (costly) embedding; the check is repeated under the lock
    pthread_mutex_lock(&in->mu);
    int known = seslm_intent_find(in->h, vals[1]) >= 0;
    code = !known && in->allow_new ? head_full(s, in, out) : 0; // checked again before learning
    pthread_mutex_unlock(&in->mu);
    if (code) {
        cJSON_Delete(root);
        return code;
    }
    if (!known && !in->allow_new) {
        code = sb_error_json(out, 400, "unknown intent \"%.200s\" (this server does not add intents; start it with "
                                    "--intent-allow-new to allow that)", vals[1]);
        cJSON_Delete(root);
        return code;
    }
    float *x = NULL;
    code = embed_for_head(s, in, vals[0], &x, model_id, out); // 0: in->mu held
    if (code) {
        cJSON_Delete(root);
        return code;
    }
    if (in->allow_new && seslm_intent_find(in->h, vals[1]) < 0 && (code = head_full(s, in, out)) != 0) { // filled since
        pthread_mutex_unlock(&in->mu);
        free(x);
        cJSON_Delete(root);
        return code;
    }
    const int before = seslm_intent_n_classes(in->h);
    int steps = 0;
    int64_t t0 = serve_now_mono_ns();
    seslm_status st = seslm_intent_learn(in->h, x, &vals[1], 1, in->allow_new, &steps);
    int64_t t1 = serve_now_mono_ns();
    if (st != SESLM_OK) {
        code = sb_error_json(out, st == SESLM_ERR_ARG ? 400 : 500, "%s", seslm_last_error());
    } else if (seslm_intent_save(in->h, in->path, in->model_sha[0] ? in->model_sha : NULL) != SESLM_OK) {
        // learned in memory but not on disk: say so (the next successful save persists it too)
        code = sb_error_json(out, 500, "learned, but the head could not be saved: %s", seslm_last_error());
    } else if (log_feedback(in, vals[0], vals[1]) != SESLM_OK) {
        // learned and saved, but adapters will not see it: an error, so the client can resend it to the log
        code = sb_error_json(out, 500, "learned, but not written to the feedback log: %s", seslm_last_error());
    } else {
        sb_puts(out, "{\"learned\":true,\"intent\":");
        sb_json_str(out, vals[1]);
        sb_printf(out, ",\"new_intent\":%s,\"intents\":%d,\"steps\":%d,\"update_ms\":%.3f,\"save_ms\":%.3f,\"examples_learned\":%llu}\n",
                  seslm_intent_n_classes(in->h) > before ? "true" : "false", seslm_intent_n_classes(in->h), steps,
                  (double)(t1 - t0) * 1e-6, (double)(serve_now_mono_ns() - t1) * 1e-6,
                  (unsigned long long)seslm_intent_online_updates(in->h));
        code = 200;
    }
    pthread_mutex_unlock(&in->mu);
    free(x);
    cJSON_Delete(root);
    return code;
}

int serve_intent_classify_text(seslm_server *s, const char *text, float **x_out, int *dim, char *label, size_t cap,
                               float *confidence, int *oos, char *model_id, sbuf *out) {
    *x_out = NULL;
    *dim = 0;
    serve_intent *in = s->intent;
    float *x = NULL;
    int code = embed_for_head(s, in, text, &x, model_id, out); // 0: in->mu held
    if (code) return code;
    seslm_intent_result r;
    const int D = seslm_intent_input_dim(in->h), K = seslm_intent_feature_layers(in->h);
    if (seslm_intent_predict(in->h, x, NULL, &r) != SESLM_OK) {
        code = sb_error_json(out, 500, "%s", seslm_last_error());
    } else {
        count_prediction(in, r.index);
        serve_metrics_in_scope(&s->metrics, r.in_scope);
        snprintf(label, cap, "%s", seslm_intent_label(in->h, r.index));
        *confidence = r.confidence;
        *oos = r.out_of_scope;
    }
    pthread_mutex_unlock(&in->mu);
    if (code) {
        free(x);
    } else { // the caller's KB search wants the embedding: with K layers, the last block is it, over sqrt(K) (the
             // search normalises its query, so the scale does not matter)
        if (K > 1) memmove(x, x + (size_t)(K - 1) * (D / K), (size_t)(D / K) * sizeof(float));
        *x_out = x, *dim = K > 1 ? D / K : D;
    }
    return code;
}

int serve_intent_handle(seslm_server *s, serve_route r, const char *body, size_t len, sbuf *out, char *model_id) {
    model_id[0] = 0;
    if (!s->intent)
        return sb_error_json(out, 404, "no intent head is loaded (start the server with --intent-head FILE)");
    return r == R_INTENT ? handle_intent(s, body, len, out, model_id) : handle_feedback(s, body, len, out, model_id);
}

// ---- a reload swaps the head with the model ------------------------------------------------------------

struct serve_intent_next {
    seslm_intent_head *h;   // the head for the new model
    char model_sha[65];     // the new model's weights sha256
    char from[PATH_MAX + 80];
    seslm_intent_head *old; // after the swap: the head swapped out, and its model
    char old_sha[65];
};

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

seslm_status serve_intent_prepare(seslm_server *s, const serve_slot *ns, serve_intent_next **next) {
    *next = NULL;
    serve_intent *in = s->intent;
    const char *sha = in ? seslm_model_weights_sha256(ns->m) : NULL;
    if (!sha || !*sha) return SESLM_OK;
    pthread_mutex_lock(&in->mu);
    char cur[65];
    snprintf(cur, sizeof cur, "%s", in->model_sha);
    pthread_mutex_unlock(&in->mu);
    if (strcmp(cur, sha) == 0) return SESLM_OK;
    // the node's own head for that model first (it holds what was learned online), then the model's
    char cand[2][PATH_MAX + 80];
    snprintf(cand[0], sizeof cand[0], "%s.%s", in->path, sha);
    snprintf(cand[1], sizeof cand[1], "%s/intent_head.safetensors", ns->dir);
    for (int k = 0; k < 2; k++) {
        if (!is_file(cand[k])) continue;
        serve_intent_next *n = calloc(1, sizeof *n);
        if (!n) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        char head_sha[65] = "";
        seslm_status st = seslm_intent_load(&n->h, cand[k], head_sha);
        if (st == SESLM_OK && strcmp(head_sha, sha) != 0)
            st = seslm_fail(SESLM_ERR_ARG, "intent head %s was trained on model %.12s, not on %.12s", cand[k],
                            *head_sha ? head_sha : "(unknown)", sha);
        char why[256];
        if (st == SESLM_OK && head_mismatch(seslm_intent_input_dim(n->h), seslm_intent_feature_layers(n->h), ns->m,
                                            why, sizeof why))
            st = seslm_fail(SESLM_ERR_SHAPE, "intent head %s %s", cand[k], why);
        if (st != SESLM_OK) {
            seslm_intent_free(n->h);
            free(n);
            return st;
        }
        snprintf(n->model_sha, sizeof n->model_sha, "%s", sha);
        memcpy(n->from, cand[k], sizeof n->from); // the same size, NUL-terminated by snprintf above
        *next = n;
        return SESLM_OK;
    }
    if (*cur)
        fprintf(stderr, "seslm serve: warning: the intent head %s was trained on model %.12s and the new model %.12s "
                        "has none (no %s, no intent_head.safetensors in %s): it keeps answering\n",
                in->path, cur, sha, cand[0], ns->dir);
    return SESLM_OK;
}

void serve_intent_lock(seslm_server *s) {
    if (s->intent) pthread_mutex_lock(&s->intent->mu);
}

void serve_intent_unlock(seslm_server *s) {
    if (s->intent) pthread_mutex_unlock(&s->intent->mu);
}

/* mu held, in->h the new head: the open window's counts per class of the old head go on by label, under the
 * new head's class of the same name, else carried by name until the window is taken (an adapter promotion or
 * rollback must not lose the predictions made since the last dump). Out of memory: those counts are dropped. */
static void carry_counts_locked(serve_intent *in, const seslm_intent_head *old) {
    const int C = seslm_intent_n_classes(in->h);
    uint64_t *nc = calloc((size_t)(C > 0 ? C : 1), sizeof *nc);
    for (int i = 0; nc && i < in->n_counts; i++) {
        const char *lab = in->counts[i] ? seslm_intent_label(old, i) : NULL;
        if (!lab) continue;
        const int j = seslm_intent_find(in->h, lab);
        if (j >= 0 && j < C) {
            nc[j] += in->counts[i];
            continue;
        }
        int k = 0;
        while (k < in->n_carry && strcmp(in->carry_labels[k], lab) != 0) k++;
        if (k == in->n_carry) {
            char **cl = realloc(in->carry_labels, (size_t)(k + 1) * sizeof *cl);
            if (cl) in->carry_labels = cl;
            uint64_t *cc = cl ? realloc(in->carry_counts, (size_t)(k + 1) * sizeof *cc) : NULL;
            if (cc) in->carry_counts = cc;
            char *name = cc ? strdup(lab) : NULL;
            if (!name) continue;
            in->carry_labels[k] = name, in->carry_counts[k] = 0, in->n_carry++;
        }
        in->carry_counts[k] += in->counts[i];
    }
    free(in->counts);
    in->counts = nc;
    in->n_counts = nc ? C : 0;
}

void serve_intent_swap_locked(seslm_server *s, serve_intent_next *next, uint64_t gen) {
    serve_intent *in = s->intent;
    if (!in) return;
    in->generation = gen;
    if (!next) return;
    next->old = in->h;
    snprintf(next->old_sha, sizeof next->old_sha, "%s", in->model_sha);
    in->h = next->h;
    next->h = NULL;
    snprintf(in->model_sha, sizeof in->model_sha, "%s", next->model_sha);
    carry_counts_locked(in, next->old);
}

void serve_intent_finish(seslm_server *s, serve_intent_next *next) {
    serve_intent *in = s->intent;
    if (!in || !next) return;
    char kept[PATH_MAX + 80] = "";
    if (next->old && *next->old_sha) { // a rollback finds it here, also after a restart
        snprintf(kept, sizeof kept, "%s.%s", in->path, next->old_sha);
        if (seslm_intent_save(next->old, kept, next->old_sha) != SESLM_OK) {
            fprintf(stderr, "seslm serve: the intent head swapped out could not be kept: %s\n", seslm_last_error());
            kept[0] = 0;
        }
    }
    seslm_intent_free(next->old);
    pthread_mutex_lock(&in->mu);
    const seslm_status st = seslm_intent_save(in->h, in->path, in->model_sha);
    pthread_mutex_unlock(&in->mu);
    if (st != SESLM_OK)
        fprintf(stderr, "seslm serve: the new intent head could not be written to %s: %s\n", in->path, seslm_last_error());
    fprintf(stderr, "seslm serve: intent head for model %.12s from %s%s%s\n", next->model_sha, next->from,
            *kept ? "; the previous one kept as " : "", kept);
    seslm_intent_free(next->h);
    free(next);
}
