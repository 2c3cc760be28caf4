/* otlp.c — optional OpenTelemetry export of the serving node: one span per embedding request (every job
 * of the batcher: /v1/embed, the OpenAI / TEI / KServe embedding routes, intent and retrieval lookups),
 * sent as OTLP/HTTP with the JSON encoding (https://opentelemetry.io/docs/specs/otlp/#otlphttp: POST
 * ENDPOINT/v1/traces, Content-Type application/json, ids as hex strings, 64-bit integers as strings).
 *
 * Off unless --otlp-endpoint is given. A request only appends its span to a bounded ring under a short
 * lock: when the ring is full the span is dropped and counted, never waited for. One exporter thread
 * takes up to 256 spans at a time (every second, or sooner when the ring is half full) and POSTs them
 * with libcurl (5 s timeout); a batch the collector refuses or that cannot be sent is counted as failed,
 * not retried (telemetry of record is the HDF5 dumps; traces are best-effort). At shutdown what is
 * queued is sent once.
 *
 * Span attributes: seslm.model.id (the model version: "<dir>@<sha256 prefix>"), seslm.texts,
 * seslm.tokens, seslm.queue_seconds (enqueue -> its first forward pass starts), seslm.compute_seconds
 * (the forward passes that ran its texts, summed), seslm.ok. Resource: service.name "seslm-serve",
 * service.version, host.name (the node id). */
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
    char url[1100], node[128];
    pthread_mutex_t mu;
    pthread_cond_t cv; // CLOCK_MONOTONIC
    serve_span *ring;
    int cap, head, n, stop, up;
    pthread_t thread;
    uint64_t rng; // span and trace ids (guarded by mu)
    atomic_ullong exported, dropped, failed;
};

static uint64_t next_rand(uint64_t *s) { // splitmix64
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void serve_otlp_span(seslm_server *s, const serve_span *sp) {
    serve_otlp *o = s->otlp;
    if (!o) return;
    pthread_mutex_lock(&o->mu);
    if (o->n == o->cap || o->stop) {
        pthread_mutex_unlock(&o->mu);
        atomic_fetch_add(&o->dropped, 1);
        return;
    }
    serve_span *d = &o->ring[(o->head + o->n) % o->cap];
    *d = *sp;
    d->trace_hi = next_rand(&o->rng), d->trace_lo = next_rand(&o->rng), d->span_id = next_rand(&o->rng);
    if (!d->span_id) d->span_id = 1; // all-zero ids are invalid
    o->n++;
    if (o->n >= o->cap / 2) pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

static void attr_str(sbuf *b, int first, const char *k, const char *v) {
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

/* The ExportTraceServiceRequest of n spans, as OTLP JSON. */
static void render(const serve_otlp *o, const serve_span *sp, int n, sbuf *b) {
    sb_puts(b, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    attr_str(b, 1, "service.name", "seslm-serve");
    attr_str(b, 0, "service.version", seslm_version());
    attr_str(b, 0, "host.name", o->node);
    sb_puts(b, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"seslm.serve\",\"version\":");
    sb_json_str(b, seslm_version());
    sb_puts(b, "},\"spans\":[");
    for (int i = 0; i < n; i++) {
        const serve_span *p = &sp[i];
        sb_printf(b,
                  "%s{\"traceId\":\"%016llx%016llx\",\"spanId\":\"%016llx\",\"name\":\"%s\",\"kind\":2,"
                  "\"startTimeUnixNano\":\"%lld\",\"endTimeUnixNano\":\"%lld\",\"attributes\":[",
                  i ? "," : "", (unsigned long long)p->trace_hi, (unsigned long long)p->trace_lo,
                  (unsigned long long)p->span_id, "seslm.embed", (long long)p->start_unix_ns, (long long)p->end_unix_ns);
        attr_str(b, 1, "seslm.model.id", p->model);
        attr_int(b, "seslm.texts", p->texts);
        attr_int(b, "seslm.tokens", (long long)p->tokens);
        attr_dbl(b, "seslm.queue_seconds", (double)p->queue_ns * 1e-9);
        attr_dbl(b, "seslm.compute_seconds", (double)p->compute_ns * 1e-9);
        sb_printf(b, ",{\"key\":\"seslm.ok\",\"value\":{\"boolValue\":%s}}", p->ok ? "true" : "false");
        // status: 1 OK, 2 ERROR
        sb_printf(b, "],\"status\":{\"code\":%d}}", p->ok ? 1 : 2);
    }
    sb_puts(b, "]}]}]}");
}

static size_t discard(char *p, size_t sz, size_t n, void *ud) {
    (void)p, (void)ud;
    return sz * n;
}

/* POSTs one batch; 0 when the collector answered 2xx. */
static int post(const serve_otlp *o, const sbuf *b, char *why, size_t cap) {
    CURL *c = curl_easy_init();
    if (!c) return snprintf(why, cap, "curl_easy_init failed"), -1;
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, o->url);
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

/* Takes up to OTLP_BATCH spans (mu held), exports them (mu released meanwhile); 0 sent, -1 failed. */
static int export_some(serve_otlp *o, serve_span *buf) {
    int n = o->n < OTLP_BATCH ? o->n : OTLP_BATCH;
    for (int i = 0; i < n; i++) buf[i] = o->ring[(o->head + i) % o->cap];
    o->head = (o->head + n) % o->cap;
    o->n -= n;
    pthread_mutex_unlock(&o->mu);
    sbuf b = {0};
    render(o, buf, n, &b);
    char why[CURL_ERROR_SIZE + 64] = "out of memory";
    int rc = !b.oom && post(o, &b, why, sizeof why) == 0 ? 0 : -1;
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

static void *otlp_main(void *arg) {
    serve_otlp *o = arg;
    serve_span *buf = malloc(OTLP_BATCH * sizeof *buf);
    pthread_mutex_lock(&o->mu);
    while (buf) {
        if (o->n == 0 && o->stop) break;
        if (o->n < o->cap / 2 && !o->stop) serve_cond_wait_until(&o->cv, &o->mu, serve_now_mono_ns() + 1000000000);
        if (o->n > 0 && export_some(o, buf) != 0 && o->stop) { // shutting down: one failure ends it
            atomic_fetch_add(&o->failed, (unsigned long long)o->n);
            o->n = 0;
        }
    }
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
    snprintf(o->node, sizeof o->node, "%s", s->node);
    uint64_t seed = (uint64_t)serve_now_real_ns() ^ ((uint64_t)getpid() << 32);
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &seed, sizeof seed) != (ssize_t)sizeof seed) seed ^= (uint64_t)(uintptr_t)o;
        close(fd);
    }
    o->rng = seed;
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
    pthread_cond_destroy(&o->cv);
    pthread_mutex_destroy(&o->mu);
    free(o->ring);
    free(o);
    s->otlp = NULL;
}

void serve_otlp_render(seslm_server *s, sbuf *b) {
    serve_otlp *o = s->otlp;
    if (!o) return;
    sb_printf(b, "# HELP seslm_otlp_spans_total OpenTelemetry spans, by result (dropped: the export queue was full).\n"
                 "# TYPE seslm_otlp_spans_total counter\n"
                 "seslm_otlp_spans_total{result=\"exported\"} %llu\n"
                 "seslm_otlp_spans_total{result=\"failed\"} %llu\n"
                 "seslm_otlp_spans_total{result=\"dropped\"} %llu\n",
              (unsigned long long)atomic_load(&o->exported), (unsigned long long)atomic_load(&o->failed),
              (unsigned long long)atomic_load(&o->dropped));
}
