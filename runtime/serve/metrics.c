/* metrics.c — the server's Prometheus metrics, kept under one mutex and rendered in the text format
 * (version 0.0.4). Names follow the Prometheus conventions: base units (seconds, bytes), `_total` on
 * counters, HELP and TYPE for every family; per-model series carry the model id as the `model` label
 * (the 16 most recently used models are kept). */
#include "serve_internal.h"

#include <dirent.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

const double SERVE_LAT_LE[SERVE_LAT_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const double SERVE_BATCH_LE[SERVE_BATCH_BUCKETS] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
const double SERVE_IN_SCOPE_LE[SERVE_IN_SCOPE_BUCKETS] = {0.01, 0.05, 0.1, 0.25, 0.5, 1};
const char *const SERVE_ROUTE_PATH[R_COUNT] = {"/v1/embed", "/healthz", "/metrics", "/admin/reload", "other",
                                                   "/v1/intent", "/v1/feedback", "/v1/retrieve", "/v1/message",
                                                   "openai", "tei", "kserve", "/openapi.json",
                                                   "/v1/chat/completions"};

void serve_metrics_init(serve_metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    m->start_time = (double)serve_now_real_ns() * 1e-9;
}

void serve_metrics_destroy(serve_metrics *m) { pthread_mutex_destroy(&m->mu); }

static void hist_add(serve_hist *h, const double *le, int nb, double v) {
    int i = 0;
    while (i < nb && v > le[i]) i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

void serve_metrics_request(serve_metrics *m, serve_route r, int code, double seconds) {
    pthread_mutex_lock(&m->mu);
    int i = 0;
    while (i < m->n_req && !(m->req[i].r == r && m->req[i].code == code)) i++;
    if (i == m->n_req && m->n_req < SERVE_MAX_CODES) {
        m->req[i].r = r;
        m->req[i].code = code;
        m->req[i].n = 0;
        m->n_req++;
    }
    if (i < m->n_req) m->req[i].n++;
    hist_add(&m->latency[r], SERVE_LAT_LE, SERVE_LAT_BUCKETS, seconds);
    pthread_mutex_unlock(&m->mu);
}

// the series of a model (created, evicting the least recently used other than the current model)
static serve_model_series *model_series(serve_metrics *m, const char *id) {
    m->tick++;
    for (int i = 0; i < m->n_models; i++)
        if (strcmp(m->models[i].id, id) == 0) {
            m->models[i].last_used = m->tick;
            return &m->models[i];
        }
    int k = m->n_models;
    if (k == SERVE_MAX_MODEL_SERIES) {
        k = -1;
        for (int i = 0; i < m->n_models; i++)
            if (strcmp(m->models[i].id, m->cur_id) != 0 && (k < 0 || m->models[i].last_used < m->models[k].last_used))
                k = i;
        if (k < 0) k = 0;
    } else {
        m->n_models++;
    }
    memset(&m->models[k], 0, sizeof m->models[k]);
    snprintf(m->models[k].id, sizeof m->models[k].id, "%s", id);
    m->models[k].last_used = m->tick;
    m->models[k].since_unix_ns = serve_now_real_ns();
    return &m->models[k];
}

void serve_metrics_batch(serve_metrics *m, const char *model_id, int texts, int64_t tokens, double seconds) {
    pthread_mutex_lock(&m->mu);
    serve_model_series *ms = model_series(m, model_id);
    ms->texts += (uint64_t)texts;
    ms->tokens += (uint64_t)tokens;
    hist_add(&ms->batch_size, SERVE_BATCH_LE, SERVE_BATCH_BUCKETS, (double)texts);
    hist_add(&ms->batch_seconds, SERVE_LAT_LE, SERVE_LAT_BUCKETS, seconds);
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_embed_request(serve_metrics *m, const char *model_id) {
    pthread_mutex_lock(&m->mu);
    model_series(m, model_id)->requests++;
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_reload(serve_metrics *m, int ok) {
    pthread_mutex_lock(&m->mu);
    if (ok) m->reload_ok++;
    else m->reload_fail++;
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_in_scope(serve_metrics *m, float p) {
    if (!(p >= 0 && p <= 1)) return; // NaN: a head without an in-scope reference
    pthread_mutex_lock(&m->mu);
    hist_add(&m->in_scope, SERVE_IN_SCOPE_LE, SERVE_IN_SCOPE_BUCKETS, p);
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_dump(serve_metrics *m, int ok) {
    pthread_mutex_lock(&m->mu);
    if (ok) m->dump_ok++;
    else m->dump_fail++;
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_set_model(serve_metrics *m, const char *id, const char *dir) {
    pthread_mutex_lock(&m->mu);
    snprintf(m->cur_id, sizeof m->cur_id, "%s", id);
    snprintf(m->cur_dir, sizeof m->cur_dir, "%s", dir);
    m->cur_since = (double)serve_now_real_ns() * 1e-9;
    model_series(m, id);
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_snapshot(serve_metrics *m, serve_metrics *out) {
    pthread_mutex_lock(&m->mu);
    memcpy(out, m, sizeof *out);
    pthread_mutex_unlock(&m->mu);
}

// ---- rendering ------------------------------------------------------------------------------------

static void family(sbuf *b, const char *name, const char *type, const char *help) {
    sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void model_label(sbuf *b, const char *id) {
    sb_puts(b, "model=\"");
    sb_label_value(b, id);
    sb_puts(b, "\"");
}

// one histogram's series; labels: `key="value"` pairs already escaped, or "" for none
static void hist_render(sbuf *b, const char *name, const char *labels, const serve_hist *h, const double *le, int nb) {
    uint64_t cum = 0;
    const char *sep = *labels ? "," : "";
    for (int i = 0; i < nb; i++) {
        cum += h->counts[i];
        sb_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, le[i], (unsigned long long)cum);
    }
    cum += h->counts[nb];
    sb_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)cum);
    if (*labels) {
        sb_printf(b, "%s_sum{%s} %.17g\n", name, labels, h->sum);
        sb_printf(b, "%s_count{%s} %llu\n", name, labels, (unsigned long long)h->count);
    } else {
        sb_printf(b, "%s_sum %.17g\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->count);
    }
}

static void process_metrics(sbuf *b, double start_time) {
    long page = sysconf(_SC_PAGESIZE);
    unsigned long long vsz = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%llu %llu", &vsz, &rss) != 2) vsz = rss = 0;
        fclose(f);
    }
    family(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    sb_printf(b, "process_resident_memory_bytes %llu\n", rss * (unsigned long long)page);
    family(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    sb_printf(b, "process_virtual_memory_bytes %llu\n", vsz * (unsigned long long)page);
    struct rusage ru;
    double cpu = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
              1e-6 * ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec);
    family(b, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
    sb_printf(b, "process_cpu_seconds_total %.6f\n", cpu);
    family(b, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
    sb_printf(b, "process_start_time_seconds %.3f\n", start_time);
    int fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) fds += de->d_name[0] != '.';
        closedir(d);
        fds--; // the directory stream's own descriptor
    }
    family(b, "process_open_fds", "gauge", "Number of open file descriptors.");
    sb_printf(b, "process_open_fds %d\n", fds < 0 ? 0 : fds);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    // what malloc holds, to tell a leak (in_use grows) from fragmentation (free grows, in_use flat) when
    // the resident size creeps up (the soak test, tests/serve/soak.py, reads both)
    struct mallinfo2 mi = mallinfo2();
    family(b, "seslm_heap_bytes", "gauge",
           "malloc's heap over all arenas (glibc mallinfo2): in_use = allocated and not freed (mmapped blocks "
           "included), free = held by malloc for reuse.");
    sb_printf(b, "seslm_heap_bytes{state=\"in_use\"} %zu\nseslm_heap_bytes{state=\"free\"} %zu\n", mi.uordblks + mi.hblkhd,
              mi.fordblks);
#endif
}

void serve_metrics_render(seslm_server *s, sbuf *b) {
    serve_metrics *m = &s->metrics;
    process_metrics(b, m->start_time);
    pthread_mutex_lock(&m->mu);

    family(b, "seslm_build_info", "gauge", "The build serving (value 1): version, commit, compiler.");
    sb_puts(b, "seslm_build_info{version=\"");
    sb_label_value(b, seslm_version());
    sb_puts(b, "\",commit=\"");
    sb_label_value(b, seslm_build_commit());
    sb_puts(b, "\",compiler=\"");
    sb_label_value(b, seslm_build_compiler());
    sb_puts(b, "\"} 1\n");
    family(b, "seslm_model_info", "gauge", "The model now serving (value 1), by model id and directory.");
    if (m->cur_id[0]) {
        sb_puts(b, "seslm_model_info{");
        model_label(b, m->cur_id);
        sb_puts(b, ",dir=\"");
        sb_label_value(b, m->cur_dir);
        sb_puts(b, "\"} 1\n");
    }
    family(b, "seslm_model_live_since_timestamp_seconds", "gauge", "When the model now serving went live (Unix time).");
    sb_printf(b, "seslm_model_live_since_timestamp_seconds %.3f\n", m->cur_since);
    family(b, "seslm_model_reloads_total", "counter", "Model reloads, by result.");
    sb_printf(b, "seslm_model_reloads_total{result=\"success\"} %llu\n", (unsigned long long)m->reload_ok);
    sb_printf(b, "seslm_model_reloads_total{result=\"failure\"} %llu\n", (unsigned long long)m->reload_fail);

    family(b, "seslm_http_requests_total", "counter", "HTTP requests answered, by path and status code.");
    for (int i = 0; i < m->n_req; i++)
        sb_printf(b, "seslm_http_requests_total{path=\"%s\",code=\"%d\"} %llu\n", SERVE_ROUTE_PATH[m->req[i].r],
                  m->req[i].code, (unsigned long long)m->req[i].n);
    family(b, "seslm_http_request_duration_seconds", "histogram",
           "Time from a request's headers to its response being queued, by path.");
    for (int r = 0; r < R_COUNT; r++) {
        char lab[64];
        snprintf(lab, sizeof lab, "path=\"%s\"", SERVE_ROUTE_PATH[r]);
        hist_render(b, "seslm_http_request_duration_seconds", lab, &m->latency[r], SERVE_LAT_LE, SERVE_LAT_BUCKETS);
    }
    family(b, "seslm_http_requests_in_flight", "gauge", "HTTP requests being received or answered.");
    sb_printf(b, "seslm_http_requests_in_flight %d\n", atomic_load(&s->inflight));
    family(b, "seslm_telemetry_pending_jobs", "gauge",
           "Telemetry windows and retired models queued for the writer thread or being written.");
    sb_printf(b, "seslm_telemetry_pending_jobs %d\n", atomic_load(&s->j_pending));
    family(b, "seslm_http_connections_open", "gauge", "Client connections open now.");
    sb_printf(b, "seslm_http_connections_open %d\n", serve_guard_open_count(s));
    family(b, "seslm_http_connections_timed_out_total", "counter",
           "Connections shut down because a request's headers or body missed its deadline.");
    sb_printf(b, "seslm_http_connections_timed_out_total{phase=\"headers\"} %llu\n",
              (unsigned long long)atomic_load(&s->g_timeouts[0]));
    sb_printf(b, "seslm_http_connections_timed_out_total{phase=\"body\"} %llu\n",
              (unsigned long long)atomic_load(&s->g_timeouts[1]));
    family(b, "seslm_http_worker_queue_requests", "gauge", "Requests waiting for a worker thread.");
    sb_printf(b, "seslm_http_worker_queue_requests %d\n", serve_workers_queued(s));
    family(b, "seslm_http_busy_rejections_total", "counter", "Requests answered 503 because the worker queue was full.");
    sb_printf(b, "seslm_http_busy_rejections_total %llu\n", (unsigned long long)atomic_load(&s->busy_rejects));
    family(b, "seslm_batch_queue_texts", "gauge", "Texts waiting for a forward pass.");
    sb_printf(b, "seslm_batch_queue_texts %d\n", atomic_load(&s->queue_gauge));

    family(b, "seslm_embed_requests_total", "counter", "Embedding requests answered successfully, by model.");
    for (int i = 0; i < m->n_models; i++) {
        sb_puts(b, "seslm_embed_requests_total{");
        model_label(b, m->models[i].id);
        sb_printf(b, "} %llu\n", (unsigned long long)m->models[i].requests);
    }
    family(b, "seslm_embed_texts_total", "counter", "Texts embedded, by model.");
    for (int i = 0; i < m->n_models; i++) {
        sb_puts(b, "seslm_embed_texts_total{");
        model_label(b, m->models[i].id);
        sb_printf(b, "} %llu\n", (unsigned long long)m->models[i].texts);
    }
    family(b, "seslm_embed_tokens_total", "counter", "Tokens run through the encoder (with [CLS] and [SEP]), by model.");
    for (int i = 0; i < m->n_models; i++) {
        sb_puts(b, "seslm_embed_tokens_total{");
        model_label(b, m->models[i].id);
        sb_printf(b, "} %llu\n", (unsigned long long)m->models[i].tokens);
    }
    family(b, "seslm_batch_size", "histogram", "Texts per forward pass, by model.");
    for (int i = 0; i < m->n_models; i++) {
        sbuf lab = {0};
        model_label(&lab, m->models[i].id);
        if (lab.p)
            hist_render(b, "seslm_batch_size", lab.p, &m->models[i].batch_size, SERVE_BATCH_LE, SERVE_BATCH_BUCKETS);
        free(lab.p);
    }
    family(b, "seslm_batch_duration_seconds", "histogram", "Wall time of one forward pass, by model.");
    for (int i = 0; i < m->n_models; i++) {
        sbuf lab = {0};
        model_label(&lab, m->models[i].id);
        if (lab.p)
            hist_render(b, "seslm_batch_duration_seconds", lab.p, &m->models[i].batch_seconds, SERVE_LAT_LE,
                        SERVE_LAT_BUCKETS);
        free(lab.p);
    }
    // a drift alarm with a known false-alarm rate: on traffic like the head's training examples the p-values
    // are about uniform, so far more than 5 % of predictions at or below 0.05 means new or out-of-scope traffic
    family(b, "seslm_intent_in_scope", "histogram",
           "In-scope p-values of the intent head's predictions (/v1/intent, /v1/message): about a share p of "
           "in-scope traffic falls at or below p.");
    hist_render(b, "seslm_intent_in_scope", "", &m->in_scope, SERVE_IN_SCOPE_LE, SERVE_IN_SCOPE_BUCKETS);
    family(b, "seslm_telemetry_dumps_total", "counter", "Telemetry window dumps written, by result.");
    sb_printf(b, "seslm_telemetry_dumps_total{result=\"success\"} %llu\n", (unsigned long long)m->dump_ok);
    sb_printf(b, "seslm_telemetry_dumps_total{result=\"failure\"} %llu\n", (unsigned long long)m->dump_fail);
    pthread_mutex_unlock(&m->mu);
    serve_upload_render(s, b);
    serve_otlp_render(s, b);
}
