/* otlp.c — optional OpenTelemetry export of the serving node, as OTLP/HTTP with the JSON encoding
 * (https://opentelemetry.io/docs/specs/otlp/#otlphttp: POST ENDPOINT/v1/traces and ENDPOINT/v1/metrics,
 * Content-Type application/json, ids as hex strings, 64-bit integers as strings):
 *   * one span per embedding request (`seslm.embed`, kind SERVER: every job of the batcher — /v1/embed,
 *     the OpenAI / TEI / KServe embedding routes, intent and retrieval lookups);
 *   * one span per forward batch (`seslm.batch`, kind INTERNAL) in a trace of its own, with a link to the
 *     span of every request whose texts it ran (a batch serves many requests of many traces: the fan-in
 *     that OTLP models with links, not with a parent);
 *   * every --otlp-metrics-interval seconds and at shutdown, the /metrics counters (otlp_metrics.c).
 *
 * Off unless --otlp-endpoint is given. A request (or the batcher) only appends its span to a bounded
 * ring under a short lock: when the ring is full the span is dropped and counted, never waited for. One
 * exporter thread takes up to 256 spans at a time (every second, or sooner when the ring is half full)
 * and POSTs them with libcurl (5 s timeout); a batch the collector refuses or that cannot be sent is
 * counted as failed, not retried (telemetry of record is the HDF5 dumps; traces are best-effort). The same
 * thread sends the metrics when they are due. At shutdown what is queued is sent once, then the metrics.
 *
 * Request span attributes: seslm.model.id (the model version: "<dir>@<sha256 prefix>"), seslm.texts,
 * seslm.tokens, seslm.queue_seconds (enqueue -> its first forward pass starts), seslm.compute_seconds
 * (the forward passes that ran its texts, summed), seslm.ok. Batch span: seslm.model.id, seslm.texts,
 * seslm.tokens (the pass is packed: these are the tokens computed, no padding), seslm.max_text_tokens,
 * seslm.requests (its links), seslm.compute_seconds, seslm.ok. Resource: service.name "seslm-serve",
 * service.version, host.name and service.instance.id (the node id). */
#define _GNU_SOURCE
#include "serve_internal.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OTLP_BATCH 256

struct serve_otlp {
    char url[1100], metrics_url[1100], node[128];
    pthread_mutex_t mu;
    pthread_cond_t cv; // CLOCK_MONOTONIC
    serve_span *ring;
    int cap, head, n, stop, up;
    pthread_t thread;
    seslm_server *srv;
    int64_t metrics_every_ns, metrics_next_ns; // 0: no metrics export (exporter thread only)
    atomic_ullong rng; // splitmix64 state: span and trace ids
    atomic_ullong exported, dropped, failed, m_exported, m_failed;
};

// ---- ids and the queue ------------------------------------------------------------------------------

static uint64_t next_rand(atomic_ullong *s) { // splitmix64, its state advanced atomically (no lock)
    uint64_t z = (uint64_t)atomic_fetch_add(s, 0x9e3779b97f4a7c15ull) + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

serve_span_ref serve_otlp_new_ref(seslm_server *s) {
    serve_span_ref r = {0, 0, 0};
    serve_otlp *o = s->otlp;
    if (!o) return r;
    r.trace_hi = next_rand(&o->rng), r.trace_lo = next_rand(&o->rng), r.span_id = next_rand(&o->rng);
    if (!r.span_id) r.span_id = 1; // all-zero ids are invalid
    if (!r.trace_hi && !r.trace_lo) r.trace_lo = 1;
    return r;
}

void serve_otlp_span(seslm_server *s, serve_span *sp) {
    serve_otlp *o = s->otlp;
    if (!o) {
        free(sp->links);
        return;
    }
    pthread_mutex_lock(&o->mu);
    if (o->n == o->cap || o->stop) {
        pthread_mutex_unlock(&o->mu);
        atomic_fetch_add(&o->dropped, 1);
        free(sp->links);
        return;
    }
    o->ring[(o->head + o->n) % o->cap] = *sp; // the ring now owns its links
    o->n++;
    if (o->n >= o->cap / 2) pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

// ---- OTLP JSON ----------------------------------------------------------------------------------------

void serve_otlp_attr_str(sbuf *b, int first, const char *k, const char *v) {
    sb_printf(b, "%s{\"key\":\"%s\",\"value\":{\"stringValue\":", first ? "" : ",", k);
    sb_json_str(b, v);
    sb_puts(b, "}}");
}

static void attr_int(sbuf *b, const char *k, long long v) {
    sb_printf(b, ",{\"key\":\"%s\",\"value\":{\"intValue\":\"%lld\"}}", k, v);
}
static void attr_dbl(sbuf *b, const char *k, double v) {
    sb_printf(b, ",{\"key\":\"%s\",\"value\":{\"doubleValue\":%.9g}}", k, v);
}

void serve_otlp_resource(sbuf *b, const char *node) {
    sb_puts(b, "\"resource\":{\"attributes\":[");
    serve_otlp_attr_str(b, 1, "service.name", "seslm-serve");
    serve_otlp_attr_str(b, 0, "service.version", seslm_version());
    serve_otlp_attr_str(b, 0, "host.name", node);
    serve_otlp_attr_str(b, 0, "service.instance.id", node); // Prometheus bridges make it the `instance` label
    sb_puts(b, "]}");
}

static void span_head(sbuf *b, const serve_span *p, int first) {
    const int batch = p->kind == SERVE_SPAN_BATCH;
    // kind: 1 INTERNAL (a step inside the node), 2 SERVER (a request answered)
    sb_printf(b,
              "%s{\"traceId\":\"%016llx%016llx\",\"spanId\":\"%016llx\",\"name\":\"%s\",\"kind\":%d,"
              "\"startTimeUnixNano\":\"%lld\",\"endTimeUnixNano\":\"%lld\",\"attributes\":[",
              first ? "" : ",", (unsigned long long)p->id.trace_hi, (unsigned long long)p->id.trace_lo,
              (unsigned long long)p->id.span_id, batch ? "seslm.batch" : "seslm.embed", batch ? 1 : 2,
              (long long)p->start_unix_ns, (long long)p->end_unix_ns);
}

static void span_attrs(sbuf *b, const serve_span *p) {
    serve_otlp_attr_str(b, 1, "seslm.model.id", p->model);
    attr_int(b, "seslm.texts", p->texts);
    attr_int(b, "seslm.tokens", (long long)p->tokens);
    if (p->kind == SERVE_SPAN_BATCH) {
        attr_int(b, "seslm.max_text_tokens", p->max_text_tokens);
        attr_int(b, "seslm.requests", p->n_links);
    } else {
        attr_dbl(b, "seslm.queue_seconds", (double)p->queue_ns * 1e-9);
    }
    attr_dbl(b, "seslm.compute_seconds", (double)p->compute_ns * 1e-9);
    sb_printf(b, ",{\"key\":\"seslm.ok\",\"value\":{\"boolValue\":%s}}", p->ok ? "true" : "false");
}

static void span_links(sbuf *b, const serve_span *p) {
    if (!p->n_links) return;
    sb_puts(b, ",\"links\":[");
    for (int i = 0; i < p->n_links; i++)
        sb_printf(b, "%s{\"traceId\":\"%016llx%016llx\",\"spanId\":\"%016llx\"}", i ? "," : "",
                  (unsigned long long)p->links[i].trace_hi, (unsigned long long)p->links[i].trace_lo,
                  (unsigned long long)p->links[i].span_id);
    sb_puts(b, "]");
}

/* The ExportTraceServiceRequest of n spans, as OTLP JSON. */
static void render(const serve_otlp *o, const serve_span *sp, int n, sbuf *b) {
    sb_puts(b, "{\"resourceSpans\":[{");
    serve_otlp_resource(b, o->node);
    sb_puts(b, ",\"scopeSpans\":[{\"scope\":{\"name\":\"seslm.serve\",\"version\":");
    sb_json_str(b, seslm_version());
    sb_puts(b, "},\"spans\":[");
    for (int i = 0; i < n; i++) {
        span_head(b, &sp[i], i == 0);
        span_attrs(b, &sp[i]);
        sb_puts(b, "]");
        span_links(b, &sp[i]);
        sb_printf(b, ",\"status\":{\"code\":%d}}", sp[i].ok ? 1 : 2); // 1 OK, 2 ERROR
    }
    sb_puts(b, "]}]}]}");
}

// ---- sending ------------------------------------------------------------------------------------------

static size_t discard(char *p, size_t sz, size_t n, void *ud) {
    (void)p, (void)ud;
    return sz * n;
}

/* POSTs one body to url; 0 when the collector answered 2xx. */
static int post(const char *url, const sbuf *b, char *why, size_t cap) {
    CURL *c = curl_easy_init();
    if (!c) return snprintf(why, cap, "curl_easy_init failed"), -1;
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, b->p);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->n);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 2L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    CURLcode rc = curl_easy_perform(c);
    long http = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) return snprintf(why, cap, "%s", cerr[0] ? cerr : curl_easy_strerror(rc)), -1;
    if (http < 200 || http >= 300) return snprintf(why, cap, "HTTP %ld", http), -1;
    return 0;
}

static void free_links(serve_span *sp, int n) {
    for (int i = 0; i < n; i++) free(sp[i].links);
}

/* Takes up to OTLP_BATCH spans (mu held), exports them (mu released meanwhile); 0 sent, -1 failed. */
static int export_some(serve_otlp *o, serve_span *buf) {
    int n = o->n < OTLP_BATCH ? o->n : OTLP_BATCH;
    for (int i = 0; i < n; i++) buf[i] = o->ring[(o->head + i) % o->cap];
    o->head = (o->head + n) % o->cap;
    o->n -= n;
    pthread_mutex_unlock(&o->mu);
    sbuf b = {0};
    render(o, buf, n, &b);
    free_links(buf, n);
    char why[CURL_ERROR_SIZE + 64] = "out of memory";
    int rc = !b.oom && post(o->url, &b, why, sizeof why) == 0 ? 0 : -1;
    if (rc == 0) {
        atomic_fetch_add(&o->exported, (unsigned long long)n);
    } else {
        // the first failure and then one in 100 are logged; each is counted
        if (atomic_fetch_add(&o->failed, (unsigned long long)n) % 100 == 0)
            fprintf(stderr, "seslm serve: OTLP export of %d span(s) to %s failed: %s\n", n, o->url, why);
    }
    free(b.p);
    pthread_mutex_lock(&o->mu);
    return rc;
}

static void counts_of(serve_otlp *o, serve_otlp_counts *c) {
    c->spans_exported = atomic_load(&o->exported), c->spans_failed = atomic_load(&o->failed);
    c->spans_dropped = atomic_load(&o->dropped);
    c->metrics_exported = atomic_load(&o->m_exported), c->metrics_failed = atomic_load(&o->m_failed);
}

/* POSTs the metrics now (mu held, released meanwhile); 0 sent, -1 failed. */
static int export_metrics(serve_otlp *o) {
    pthread_mutex_unlock(&o->mu);
    sbuf b = {0};
    serve_otlp_counts c;
    counts_of(o, &c); // from o, not s->otlp: the thread may run before that is set
    serve_otlp_metrics_render(o->srv, &c, &b);
    char why[CURL_ERROR_SIZE + 64] = "out of memory";
    int rc = !b.oom && post(o->metrics_url, &b, why, sizeof why) == 0 ? 0 : -1;
    if (rc == 0) atomic_fetch_add(&o->m_exported, 1);
    else if (atomic_fetch_add(&o->m_failed, 1) % 100 == 0) // logged like the spans: the first, then 1 in 100
        fprintf(stderr, "seslm serve: OTLP metrics export to %s failed: %s\n", o->metrics_url, why);
    free(b.p);
    pthread_mutex_lock(&o->mu);
    return rc;
}

// The ring drained at shutdown (mu held): what could not be sent is counted failed; 0 all sent.
static int drain_at_stop(serve_otlp *o, serve_span *buf) {
    while (o->n > 0)
        if (export_some(o, buf) != 0) { // one failure ends it: the collector is not to hold up the exit
            atomic_fetch_add(&o->failed, (unsigned long long)o->n);
            for (int i = 0; i < o->n; i++) free(o->ring[(o->head + i) % o->cap].links);
            o->n = 0;
            return -1;
        }
    return 0;
}

// Whether the metrics are due now; if so the next time is set (one interval on; after a stall, from now).
static int metrics_due(serve_otlp *o) {
    const int64_t now = serve_now_mono_ns();
    if (!o->metrics_every_ns || now < o->metrics_next_ns) return 0;
    o->metrics_next_ns += o->metrics_every_ns;
    if (o->metrics_next_ns <= now) o->metrics_next_ns = now + o->metrics_every_ns;
    return 1;
}

static void *otlp_main(void *arg) {
    serve_otlp *o = arg;
    serve_span *buf = malloc(OTLP_BATCH * sizeof *buf);
    pthread_mutex_lock(&o->mu);
    while (buf && !o->stop) {
        if (o->n < o->cap / 2) serve_cond_wait_until(&o->cv, &o->mu, serve_now_mono_ns() + 1000000000);
        if (o->stop) break;
        if (o->n > 0) export_some(o, buf);
        if (metrics_due(o)) export_metrics(o);
    }
    // shutdown: the spans queued, then the final counters (skipped if the collector just failed)
    int ok = buf ? drain_at_stop(o, buf) == 0 : 0;
    if (ok && o->metrics_every_ns) export_metrics(o);
    pthread_mutex_unlock(&o->mu);
    free(buf);
    return NULL;
}

seslm_status serve_otlp_start(seslm_server *s) {
    const char *ep = s->o.otlp_endpoint;
    if (!ep || !*ep) return SESLM_OK;
    if (strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0)
        return seslm_fail(SESLM_ERR_ARG, "OTLP endpoint '%s' must start with http:// or https://", ep);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return seslm_fail(SESLM_ERR_INTERNAL, "curl_global_init failed");
    serve_otlp *o = calloc(1, sizeof *o);
    int cap = s->o.otlp_queue > 0 ? s->o.otlp_queue : 4096;
    if (o) o->ring = malloc((size_t)cap * sizeof *o->ring);
    if (!o || !o->ring) {
        if (o) free(o);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    o->cap = cap;
    // ENDPOINT is the collector's base URL (as OTEL_EXPORTER_OTLP_ENDPOINT): traces go to ENDPOINT/v1/traces
    size_t l = strlen(ep);
    while (l && ep[l - 1] == '/') l--;
    snprintf(o->url, sizeof o->url, "%.*s/v1/traces", (int)(l < 1024 ? l : 1024), ep);
    snprintf(o->metrics_url, sizeof o->metrics_url, "%.*s/v1/metrics", (int)(l < 1024 ? l : 1024), ep);
    snprintf(o->node, sizeof o->node, "%s", s->node);
    o->srv = s;
    const int every = s->o.otlp_metrics_interval_s == 0 ? 60 : s->o.otlp_metrics_interval_s; // <0: off
    o->metrics_every_ns = every > 0 ? (int64_t)every * 1000000000 : 0;
    o->metrics_next_ns = serve_now_mono_ns() + o->metrics_every_ns;
    uint64_t seed = (uint64_t)serve_now_real_ns() ^ ((uint64_t)getpid() << 32);
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &seed, sizeof seed) != (ssize_t)sizeof seed) seed ^= (uint64_t)(uintptr_t)o;
        close(fd);
    }
    atomic_init(&o->rng, seed);
    pthread_mutex_init(&o->mu, NULL);
    if (serve_cond_init_mono(&o->cv) != 0 || pthread_create(&o->thread, NULL, otlp_main, o) != 0) {
        pthread_mutex_destroy(&o->mu);
        free(o->ring);
        free(o);
        return seslm_fail(SESLM_ERR_INTERNAL, "cannot start the OTLP exporter thread");
    }
    o->up = 1;
    s->otlp = o;
    fprintf(stderr, "seslm serve: OTLP spans are exported to %s\n", o->url);
    if (every > 0) fprintf(stderr, "seslm serve: OTLP metrics are exported to %s every %d s\n", o->metrics_url, every);
    return SESLM_OK;
}

void serve_otlp_stop(seslm_server *s) {
    serve_otlp *o = s->otlp;
    if (!o) return;
    pthread_mutex_lock(&o->mu);
    o->stop = 1;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
    pthread_join(o->thread, NULL);
    for (int i = 0; i < o->n; i++) free(o->ring[(o->head + i) % o->cap].links); // left if its buffer failed
    pthread_cond_destroy(&o->cv);
    pthread_mutex_destroy(&o->mu);
    free(o->ring);
    free(o);
    s->otlp = NULL;
}

void serve_otlp_render(seslm_server *s, sbuf *b) {
    if (!s->otlp) return;
    serve_otlp_counts c;
    counts_of(s->otlp, &c);
    sb_printf(b, "# HELP seslm_otlp_spans_total OpenTelemetry spans, by result (dropped: the export queue was full).\n"
                 "# TYPE seslm_otlp_spans_total counter\n"
                 "seslm_otlp_spans_total{result=\"exported\"} %llu\n"
                 "seslm_otlp_spans_total{result=\"failed\"} %llu\n"
                 "seslm_otlp_spans_total{result=\"dropped\"} %llu\n",
              (unsigned long long)c.spans_exported, (unsigned long long)c.spans_failed,
              (unsigned long long)c.spans_dropped);
    sb_printf(b, "# HELP seslm_otlp_metric_exports_total OpenTelemetry metric exports (POSTs to /v1/metrics), "
                 "by result.\n"
                 "# TYPE seslm_otlp_metric_exports_total counter\n"
                 "seslm_otlp_metric_exports_total{result=\"exported\"} %llu\n"
                 "seslm_otlp_metric_exports_total{result=\"failed\"} %llu\n",
              (unsigned long long)c.metrics_exported, (unsigned long long)c.metrics_failed);
}
