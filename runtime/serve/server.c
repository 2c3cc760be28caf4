/* server.c — the server's lifetime: start, blue-green reload, graceful stop. */
#include "dialog.h"
#include "serve_internal.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int serve_node_id_ok(const char *id) {
    size_t n = strlen(id);
    if (n == 0 || n > 64 || id[0] == '.' || id[0] == '-') return 0;
    for (const char *c = id; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
              *c == '-' || *c == '_'))
            return 0;
    return 1;
}

// the host name made a valid node id
static void default_node_id(char *out, size_t cap) {
    char h[256] = "";
    if (gethostname(h, sizeof h - 1) != 0) h[0] = 0;
    size_t n = 0;
    if (h[0] == '.' || h[0] == '-' || !h[0]) out[n++] = 'n';
    for (const char *c = h; *c && n + 1 < cap && n < 64; c++)
        out[n++] = ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
                    *c == '-' || *c == '_')
                       ? *c
                       : '_';
    out[n] = 0;
}

// Dumps are numbered per node; continue after the highest number already in the directory.
static uint64_t last_dump_seq(const char *dir, const char *node) {
    uint64_t best = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    const char *ext = serve_dump_extension();
    size_t nl = strlen(node), el = strlen(ext);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        size_t len = strlen(name);
        if (len <= nl + el + 1 || strncmp(name, node, nl) != 0 || name[nl] != '-' || strcmp(name + len - el, ext) != 0)
            continue;
        const char *end = name + len - el, *p = end;
        while (p > name && p[-1] >= '0' && p[-1] <= '9') p--;
        if (p == end || p[-1] != '-') continue;
        uint64_t v = strtoull(p, NULL, 10);
        if (v > best) best = v;
    }
    closedir(d);
    return best;
}

static void free_server(seslm_server *s) {
    serve_intent_close(s);
    serve_kb_close(s);
    serve_chat_close(s);
    seslm_dialog_free(s->dialog);
    serve_batcher_free(s);
    serve_metrics_destroy(&s->metrics);
    pthread_mutex_destroy(&s->reg_mu);
    pthread_mutex_destroy(&s->reload_mu);
    pthread_mutex_destroy(&s->fwd_mu);
    pthread_mutex_destroy(&s->q_mu);
    pthread_cond_destroy(&s->q_cv);
    pthread_mutex_destroy(&s->j_mu);
    pthread_cond_destroy(&s->j_cv);
    pthread_mutex_destroy(&s->g_mu);
    pthread_cond_destroy(&s->g_cv);
    pthread_mutex_destroy(&s->log_mu);
    pthread_mutex_destroy(&s->w_mu);
    pthread_cond_destroy(&s->w_cv);
    free(s);
}

seslm_status seslm_serve_start(seslm_server **out, const seslm_serve_opts *opts) {
    *out = NULL;
    seslm_serve_opts o = *opts;
    if (!o.model_dir || !*o.model_dir) return seslm_fail(SESLM_ERR_ARG, "no model directory given");
    if (!o.host || !*o.host) o.host = "127.0.0.1";
    if (!o.backend) o.backend = "cpu";
    if (o.window_seconds <= 0) o.window_seconds = 300;
    if (o.max_batch <= 0) o.max_batch = 32;
    if (o.max_texts <= 0) o.max_texts = 512;
    if (o.max_body_bytes == 0) o.max_body_bytes = (size_t)1 << 20;
    if (o.batch_wait_us < 0) o.batch_wait_us = 2000;
    if (o.max_connections <= 0) o.max_connections = 1024;
    if (o.max_connections_per_ip == 0) o.max_connections_per_ip = 64;
    if (o.header_timeout_s <= 0) o.header_timeout_s = 10;
    if (o.body_timeout_s <= 0) o.body_timeout_s = 60;
    if (o.workers <= 0) o.workers = 32;
    if (o.drain_seconds <= 0) o.drain_seconds = 30;
    if (o.intent_max_intents <= 0) o.intent_max_intents = 1000;
    if (o.port < 0 || o.port > 65535) return seslm_fail(SESLM_ERR_ARG, "port %d is outside 0..65535", o.port);
    if (o.max_batch > 4096) return seslm_fail(SESLM_ERR_ARG, "max_batch must be in 1..4096 (got %d)", o.max_batch);

    seslm_server *s = calloc(1, sizeof *s);
    if (!s) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    s->o = o;
    snprintf(s->host, sizeof s->host, "%s", o.host);
    if (o.node_id && *o.node_id) {
        if (!serve_node_id_ok(o.node_id)) {
            free(s);
            return seslm_fail(SESLM_ERR_ARG, "node id '%s': use 1..64 of A-Z a-z 0-9 . _ -, not starting with . or -",
                              o.node_id);
        }
        snprintf(s->node, sizeof s->node, "%s", o.node_id);
    } else {
        default_node_id(s->node, sizeof s->node);
    }
    s->o.host = s->host;
    s->o.node_id = s->node;
    s->o.model_dir = NULL; // the live directory is the current slot's
    if (o.telemetry_dir && *o.telemetry_dir) {
        snprintf(s->tel_dir, sizeof s->tel_dir, "%s", o.telemetry_dir);
        s->o.telemetry_dir = s->tel_dir;
        s->telemetry = 1;
        if (access(s->tel_dir, W_OK) != 0) {
            free(s);
            return seslm_fail(SESLM_ERR_IO, "telemetry directory %s is not writable (create it first)", o.telemetry_dir);
        }
        s->dump_seq = last_dump_seq(s->tel_dir, s->node);
    } else {
        s->o.telemetry_dir = NULL;
    }
    pthread_mutex_init(&s->reg_mu, NULL);
    pthread_mutex_init(&s->reload_mu, NULL);
    pthread_mutex_init(&s->fwd_mu, NULL);
    pthread_mutex_init(&s->q_mu, NULL);
    serve_cond_init_mono(&s->q_cv);
    pthread_mutex_init(&s->j_mu, NULL);
    pthread_cond_init(&s->j_cv, NULL);
    pthread_mutex_init(&s->g_mu, NULL);
    serve_cond_init_mono(&s->g_cv);
    pthread_mutex_init(&s->log_mu, NULL);
    pthread_mutex_init(&s->w_mu, NULL);
    pthread_cond_init(&s->w_cv, NULL);
    atomic_init(&s->inflight, 0);
    atomic_init(&s->draining, 0);
    atomic_init(&s->queue_gauge, 0);
    atomic_init(&s->j_pending, 0);
    serve_metrics_init(&s->metrics);

    serve_slot *slot = NULL;
    seslm_status st = serve_slot_create(s, o.model_dir, &slot);
    if (st != SESLM_OK) {
        free_server(s);
        return st;
    }
    s->current = slot;
    s->generation = slot->generation = 1;
    serve_metrics_set_model(&s->metrics, slot->id, slot->dir);

    st = o.intent_head && *o.intent_head ? serve_intent_open(s, o.intent_head, o.intent_allow_new, o.feedback_log) : SESLM_OK;
    if (st == SESLM_OK && o.kb_dir && *o.kb_dir) st = serve_kb_open(s, o.kb_dir);
    if (st == SESLM_OK && o.decoder_model && *o.decoder_model) st = serve_chat_open(s, o.decoder_model);
    if (st == SESLM_OK && o.dialog_policy) {
        st = s->intent ? seslm_dialog_open(&s->dialog, o.dialog_policy, o.session_db, o.session_ttl_s)
                       : seslm_fail(SESLM_ERR_ARG, "a dialog policy needs an intent head (--intent-head)");
    }
    if (st == SESLM_OK) st = serve_upload_start(s);
    if (st == SESLM_OK) st = serve_otlp_start(s);
    if (st == SESLM_OK) st = serve_janitor_start(s);
    if (st == SESLM_OK) st = serve_batcher_start(s);
    if (st == SESLM_OK) st = serve_http_start(s);
    if (st != SESLM_OK) {
        char why[1024];
        snprintf(why, sizeof why, "%s", seslm_last_error());
        serve_batcher_stop(s);
        serve_slot_release(s->current);
        s->current = NULL;
        serve_janitor_stop(s);
        serve_upload_stop(s);
        serve_otlp_stop(s);
        free_server(s);
        return seslm_fail(st, "%s", why);
    }
    *out = s;
    return SESLM_OK;
}

int seslm_serve_port(const seslm_server *s) { return s->port; }

void seslm_serve_model_id(seslm_server *s, char *buf, size_t cap) {
    pthread_mutex_lock(&s->reg_mu);
    snprintf(buf, cap, "%s", s->current ? s->current->id : "");
    pthread_mutex_unlock(&s->reg_mu);
}

seslm_status seslm_serve_reload(seslm_server *s, const char *dir, char *prev_id, char *new_id, size_t id_cap) {
    pthread_mutex_lock(&s->reload_mu);
    char cur_dir[PATH_MAX], cur_id[SERVE_ID_CAP];
    pthread_mutex_lock(&s->reg_mu);
    snprintf(cur_dir, sizeof cur_dir, "%s", s->current ? s->current->dir : "");
    snprintf(cur_id, sizeof cur_id, "%s", s->current ? s->current->id : "");
    pthread_mutex_unlock(&s->reg_mu);
    if (prev_id) snprintf(prev_id, id_cap, "%s", cur_id);
    if (new_id) snprintf(new_id, id_cap, "%s", cur_id);
    if (!dir) dir = cur_dir;

    // blue: the old slot keeps serving while the new one loads and warms up beside it
    serve_slot *ns = NULL;
    seslm_status st = serve_slot_create(s, dir, &ns);
    if (st != SESLM_OK) {
        serve_metrics_reload(&s->metrics, 0);
        fprintf(stderr, "seslm serve: reload from %s failed, still serving %s: %s\n", dir, cur_id, seslm_last_error());
        pthread_mutex_unlock(&s->reload_mu);
        return st;
    }
    // the intent head for the new model, if the node serves one and one is found for it
    serve_intent_next *hn = NULL;
    if ((st = serve_intent_prepare(s, ns, &hn)) != SESLM_OK) {
        serve_metrics_reload(&s->metrics, 0);
        fprintf(stderr, "seslm serve: reload from %s refused, still serving %s: %s\n", dir, cur_id, seslm_last_error());
        serve_slot_destroy(ns);
        pthread_mutex_unlock(&s->reload_mu);
        return st;
    }
    // green: one pointer swap; requests holding the old slot finish on it, the last one retires it. The head
    // swaps in the same critical section (its lock first: the request path never holds reg_mu while taking it)
    serve_intent_lock(s);
    pthread_mutex_lock(&s->reg_mu);
    serve_slot *old = s->current;
    ns->generation = ++s->generation;
    s->current = ns;
    serve_intent_swap_locked(s, hn, ns->generation);
    pthread_mutex_unlock(&s->reg_mu);
    serve_intent_unlock(s);
    serve_intent_finish(s, hn);
    serve_intent_reopen_log(s); // log rotation: move the feedback log aside, then reload (SIGHUP)
    serve_metrics_set_model(&s->metrics, ns->id, ns->dir);
    serve_metrics_reload(&s->metrics, 1);
    if (new_id) snprintf(new_id, id_cap, "%s", ns->id);
    fprintf(stderr, "seslm serve: now serving %s from %s (was %s)\n", ns->id, ns->dir, cur_id);
    serve_slot_release(old);
    pthread_mutex_unlock(&s->reload_mu);
    return SESLM_OK;
}

void seslm_serve_stop(seslm_server *s) {
    if (!s) return;
    // 1. stop accepting; answers from now on close their connection
    atomic_store(&s->draining, 1);
    serve_http_quiesce(s);
    // 2. let the requests in flight finish
    const int64_t give_up = serve_now_mono_ns() + (int64_t)s->o.drain_seconds * 1000000000;
    while (atomic_load(&s->inflight) > 0 && serve_now_mono_ns() < give_up) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&s->inflight) > 0)
        fprintf(stderr, "seslm serve: %d requests still open after %d s; closing them\n", atomic_load(&s->inflight),
                s->o.drain_seconds);
    // 3. close the remaining (idle keep-alive) connections; the batcher still runs for any straggler
    serve_http_stop(s);
    serve_batcher_stop(s);
    // 4. no reload may start now; retire the live model: its open telemetry window is flushed
    pthread_mutex_lock(&s->reload_mu);
    pthread_mutex_lock(&s->reg_mu);
    serve_slot *cur = s->current;
    s->current = NULL;
    pthread_mutex_unlock(&s->reg_mu);
    serve_slot_release(cur);
    pthread_mutex_unlock(&s->reload_mu);
    serve_janitor_stop(s); // writes what is queued, frees retired slots
    serve_upload_stop(s);  // then the last dumps go to the object store (or stay pending)
    serve_otlp_stop(s);    // and the last spans to the collector
    free_server(s);
}
