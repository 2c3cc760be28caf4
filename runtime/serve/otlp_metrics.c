/* otlp_metrics.c — the serving node's counters as an OTLP ExportMetricsServiceRequest, JSON encoding
 * (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding), POSTed by the exporter thread of
 * otlp.c to ENDPOINT/v1/metrics every --otlp-metrics-interval seconds.
 *
 * The values are those /metrics shows, read from the same place (a snapshot of serve_metrics taken under
 * its lock, the same atomics): OTLP is a second view of them, not a second count. Names and attribute
 * keys are the Prometheus family names and labels, so a series is found under one name in both (the OTLP ->
 * Prometheus translation appends _total and the unit only to names that lack them; "{...}" units add none). Counters are cumulative monotonic Sums
 * whose start time is when the series began counting (the process start; a per-model series: when it was
 * created, since an evicted model's series restarts from 0), histograms cumulative Histograms with the
 * same bounds, the rest Gauges. */
#include "serve_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// AggregationTemporality 2 = CUMULATIVE
#define CUMULATIVE "\"aggregationTemporality\":2"

typedef struct {
    sbuf *b;
    int metrics, points; // written so far (commas)
    int64_t now_ns, proc_start_ns;
} mw;

// ---- metric and data point framing --------------------------------------------------------------------

// kind: "sum", "gauge" or "histogram"
static void metric_open(mw *w, const char *name, const char *unit, const char *kind, const char *desc) {
    sb_printf(w->b, "%s{\"name\":\"%s\",\"unit\":\"%s\",\"description\":", w->metrics++ ? "," : "", name, unit);
    sb_json_str(w->b, desc);
    sb_printf(w->b, ",\"%s\":{\"dataPoints\":[", kind);
    w->points = 0;
}
static void close_sum(mw *w) { sb_puts(w->b, "]," CUMULATIVE ",\"isMonotonic\":true}}"); }
static void close_gauge(mw *w) { sb_puts(w->b, "]}}"); }
static void close_hist(mw *w) { sb_puts(w->b, "]," CUMULATIVE "}}"); }

// a point's opening with up to two string attributes (k2 NULL: one; k1 NULL: none); start 0: a gauge's
static void point_open(mw *w, const char *k1, const char *v1, const char *k2, const char *v2, int64_t start) {
    sb_puts(w->b, w->points++ ? ",{\"attributes\":[" : "{\"attributes\":[");
    if (k1) serve_otlp_attr_str(w->b, 1, k1, v1);
    if (k1 && k2) serve_otlp_attr_str(w->b, 0, k2, v2);
    sb_puts(w->b, "]");
    if (start) sb_printf(w->b, ",\"startTimeUnixNano\":\"%lld\"", (long long)start);
    sb_printf(w->b, ",\"timeUnixNano\":\"%lld\"", (long long)w->now_ns);
}
static void point_int(mw *w, const char *k1, const char *v1, const char *k2, const char *v2, int64_t start,
                      unsigned long long v) {
    point_open(w, k1, v1, k2, v2, start);
    sb_printf(w->b, ",\"asInt\":\"%llu\"}", v);
}
static void point_hist(mw *w, const char *k, const char *v, int64_t start, const serve_hist *h, const double *le,
                       int nb) {
    point_open(w, k, v, NULL, NULL, start);
    sb_printf(w->b, ",\"count\":\"%llu\",\"sum\":%.17g,\"bucketCounts\":[", (unsigned long long)h->count, h->sum);
    for (int i = 0; i <= nb; i++) // counts[nb] is the +Inf bucket: OTLP has bounds + 1 counts, not cumulative
        sb_printf(w->b, "%s\"%llu\"", i ? "," : "", (unsigned long long)h->counts[i]);
    sb_puts(w->b, "],\"explicitBounds\":[");
    for (int i = 0; i < nb; i++) sb_printf(w->b, "%s%.17g", i ? "," : "", le[i]);
    sb_puts(w->b, "]}");
}

// ---- the families ---------------------------------------------------------------------------------------

static void http_families(mw *w, const serve_metrics *m, unsigned long long busy) {
    metric_open(w, "seslm_http_requests_total", "{request}", "sum", "HTTP requests answered, by path and status code.");
    for (int i = 0; i < m->n_req; i++) {
        char code[16];
        snprintf(code, sizeof code, "%d", m->req[i].code);
        point_int(w, "path", SERVE_ROUTE_PATH[m->req[i].r], "code", code, w->proc_start_ns,
                  (unsigned long long)m->req[i].n);
    }
    close_sum(w);
    metric_open(w, "seslm_http_request_duration_seconds", "s", "histogram",
                "Time from a request's headers to its response being queued, by path.");
    for (int r = 0; r < R_COUNT; r++) // the paths that had requests (/metrics lists every path, at 0)
        if (m->latency[r].count)
            point_hist(w, "path", SERVE_ROUTE_PATH[r], w->proc_start_ns, &m->latency[r], SERVE_LAT_LE,
                       SERVE_LAT_BUCKETS);
    close_hist(w);
    metric_open(w, "seslm_http_busy_rejections_total", "{request}", "sum",
                "Requests answered 503 because the worker queue was full.");
    point_int(w, NULL, NULL, NULL, NULL, w->proc_start_ns, busy);
    close_sum(w);
}

static void model_sum(mw *w, const serve_metrics *m, const char *name, const char *unit, const char *desc, int which) {
    metric_open(w, name, unit, "sum", desc);
    for (int i = 0; i < m->n_models; i++) {
        const serve_model_series *ms = &m->models[i];
        uint64_t v = which == 0 ? ms->requests : which == 1 ? ms->texts : ms->tokens;
        point_int(w, "model", ms->id, NULL, NULL, ms->since_unix_ns, (unsigned long long)v);
    }
    close_sum(w);
}

static void model_families(mw *w, const serve_metrics *m) {
    model_sum(w, m, "seslm_embed_requests_total", "{request}", "Embedding requests answered successfully, by model.",
              0);
    model_sum(w, m, "seslm_embed_texts_total", "{text}", "Texts embedded, by model.", 1);
    model_sum(w, m, "seslm_embed_tokens_total", "{token}",
              "Tokens run through the encoder (with [CLS] and [SEP]), by model.", 2);
    metric_open(w, "seslm_batch_size", "{text}", "histogram", "Texts per forward pass, by model.");
    for (int i = 0; i < m->n_models; i++)
        point_hist(w, "model", m->models[i].id, m->models[i].since_unix_ns, &m->models[i].batch_size, SERVE_BATCH_LE,
                   SERVE_BATCH_BUCKETS);
    close_hist(w);
    metric_open(w, "seslm_batch_duration_seconds", "s", "histogram", "Wall time of one forward pass, by model.");
    for (int i = 0; i < m->n_models; i++)
        point_hist(w, "model", m->models[i].id, m->models[i].since_unix_ns, &m->models[i].batch_seconds, SERVE_LAT_LE,
                   SERVE_LAT_BUCKETS);
    close_hist(w);
    // no unit: a Prometheus bridge would name a "1" gauge seslm_model_info_ratio
    metric_open(w, "seslm_model_info", "", "gauge", "The model now serving (value 1), by model id and directory.");
    if (m->cur_id[0]) point_int(w, "model", m->cur_id, "dir", m->cur_dir, 0, 1);
    close_gauge(w);
}

static void result_sum(mw *w, const char *name, const char *unit, const char *desc, const char *k1,
                       unsigned long long v1, const char *k2, unsigned long long v2, const char *k3,
                       unsigned long long v3) {
    metric_open(w, name, unit, "sum", desc);
    point_int(w, "result", k1, NULL, NULL, w->proc_start_ns, v1);
    point_int(w, "result", k2, NULL, NULL, w->proc_start_ns, v2);
    if (k3) point_int(w, "result", k3, NULL, NULL, w->proc_start_ns, v3);
    close_sum(w);
}

static void other_families(mw *w, seslm_server *s, const serve_metrics *m, const serve_otlp_counts *c) {
    result_sum(w, "seslm_model_reloads_total", "{reload}", "Model reloads, by result.", "success", m->reload_ok,
               "failure", m->reload_fail, NULL, 0);
    result_sum(w, "seslm_telemetry_dumps_total", "{dump}", "Telemetry window dumps written, by result.", "success",
               m->dump_ok, "failure", m->dump_fail, NULL, 0);
    result_sum(w, "seslm_otlp_spans_total", "{span}",
               "OpenTelemetry spans, by result (dropped: the export queue was full).", "exported", c->spans_exported,
               "failed", c->spans_failed, "dropped", c->spans_dropped);
    result_sum(w, "seslm_otlp_metric_exports_total", "{export}",
               "OpenTelemetry metric exports (POSTs to /v1/metrics), by result.", "exported", c->metrics_exported,
               "failed", c->metrics_failed, NULL, 0);
    // no unit, as seslm_model_info: p-values are ratios, and a "1" unit would get a _ratio suffix in a bridge
    metric_open(w, "seslm_intent_in_scope", "", "histogram",
                "In-scope p-values of the intent head's predictions (/v1/intent, /v1/message): about a share p of "
                "in-scope traffic falls at or below p.");
    point_hist(w, NULL, NULL, w->proc_start_ns, &m->in_scope, SERVE_IN_SCOPE_LE, SERVE_IN_SCOPE_BUCKETS);
    close_hist(w);
    metric_open(w, "seslm_http_requests_in_flight", "{request}", "gauge", "HTTP requests being received or answered.");
    point_int(w, NULL, NULL, NULL, NULL, 0, (unsigned long long)atomic_load(&s->inflight));
    close_gauge(w);
    metric_open(w, "seslm_batch_queue_texts", "{text}", "gauge", "Texts waiting for a forward pass.");
    point_int(w, NULL, NULL, NULL, NULL, 0, (unsigned long long)atomic_load(&s->queue_gauge));
    close_gauge(w);
}

// ---- the request --------------------------------------------------------------------------------------

void serve_otlp_metrics_render(seslm_server *s, const serve_otlp_counts *c, sbuf *b) {
    serve_metrics *m = malloc(sizeof *m); // a copy (~20 KB): not to hold the lock while rendering
    if (!m) {
        b->oom = 1;
        return;
    }
    serve_metrics_snapshot(&s->metrics, m);
    mw w = {.b = b, .now_ns = serve_now_real_ns(), .proc_start_ns = (int64_t)(m->start_time * 1e9)};
    if (w.proc_start_ns <= 0 || w.proc_start_ns > w.now_ns) w.proc_start_ns = w.now_ns;
    sb_puts(b, "{\"resourceMetrics\":[{");
    serve_otlp_resource(b, s->node);
    sb_puts(b, ",\"scopeMetrics\":[{\"scope\":{\"name\":\"seslm.serve\",\"version\":");
    sb_json_str(b, seslm_version());
    sb_puts(b, "},\"metrics\":[");
    http_families(&w, m, (unsigned long long)atomic_load(&s->busy_rejects));
    model_families(&w, m);
    other_families(&w, s, m, c);
    sb_puts(b, "]}]}]}");
    free(m);
}
