/* serve_internal.h — the server's shared state and the pieces its files call across (not installed). */
#ifndef SESLM_SERVE_INTERNAL_H
#define SESLM_SERVE_INTERNAL_H

#include "serve.h"
#include "telemetry.h"

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

#define SERVE_ID_CAP 256

int64_t serve_now_mono_ns(void);
int64_t serve_now_real_ns(void);
/* Waits on cv until signalled or the CLOCK_MONOTONIC deadline passes (cv must use that clock). */
void serve_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ns);
int serve_cond_init_mono(pthread_cond_t *cv);

// ---- growing string buffer ------------------------------------------------------------------------

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

void sb_putn(sbuf *b, const char *s, size_t n);
void sb_puts(sbuf *b, const char *s);
void sb_printf(sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void sb_json_str(sbuf *b, const char *s);   // a quoted, escaped JSON string
/* Parses body as exactly one JSON value (whitespace after it allowed) into *root (cJSON_Delete it);
 * 0 ok, else 400 with {"error": ...} in out naming the byte where the JSON breaks. */
struct cJSON;
int sb_parse_json(const char *body, size_t len, struct cJSON **root, sbuf *out);
/* Writes {"error": "<formatted message>"} and returns code (the HTTP status to answer with). */
int sb_error_json(sbuf *out, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void sb_label_value(sbuf *b, const char *s); // a Prometheus label value (escapes \ " and newline)
void sb_float(sbuf *b, float v);             // shortest round-trip-safe decimal ("%.9g"); null if not finite

// ---- model slots: one loaded model + encoder + telemetry, reference counted -----------------------

typedef struct serve_slot {
    atomic_int refs;
    uint64_t generation;
    seslm_model *m;
    seslm_encoder *e;
    int hidden, max_seq, tok_cap;
    char id[SERVE_ID_CAP];
    char dir[PATH_MAX];
    // telemetry (NULL when off): tel[active] is attached to e; the other is the spare, written out by
    // the telemetry thread after a rotation (spare_busy) and re-armed by the batcher at the next one
    seslm_telemetry *tel[2];
    int tel_active;           // batcher-owned
    atomic_int tel_spare_busy;
    atomic_ullong rejected;   // inputs refused (invalid UTF-8) in the open window
    struct seslm_server *srv;
} serve_slot;

/* Loads dir into a new slot: model, encoder, one warm-up forward pass, telemetry attached (refs = 1). */
seslm_status serve_slot_create(struct seslm_server *s, const char *dir, serve_slot **out);
/* Takes a reference on the slot serving now (never NULL while the server runs). */
serve_slot *serve_slot_acquire(struct seslm_server *s);
/* Drops a reference; the last one hands the slot to the telemetry thread to flush and free. */
void serve_slot_release(serve_slot *slot);
void serve_slot_destroy(serve_slot *slot); // frees at once (no telemetry flush)
void serve_model_id(const char *dir, const char *sha256, char *out, size_t cap);

// ---- the batcher ----------------------------------------------------------------------------------

typedef struct { // an OTLP span's identity (otlp.c)
    uint64_t trace_hi, trace_lo, span_id;
} serve_span_ref;

typedef struct serve_job {
    serve_slot *slot;      // the model that runs this job (the caller holds a reference)
    int n;                 // texts
    const int32_t *ids;    // (n, cap) token ids
    const int *lens;       // (n)
    int cap;
    float *out;            // (n, hidden)
    int64_t enq_ns;
    int64_t first_ns;      // when its first forward pass started (batcher; 0 before)
    int64_t compute_ns;    // the forward passes that ran its texts, summed (batcher)
    int next;              // texts handed to a batch (batcher)
    int done;              // texts embedded (batcher)
    int failed;
    int finished;          // guarded by q_mu
    serve_span_ref span;   // its OTLP request span (set at submit when exporting: batch spans link to it)
    char err[512];
    pthread_cond_t cv;
    struct serve_job *qnext;
    int features;          // 0: embeddings (out (n, hidden)); k > 1: the last k layers' features (out (n, k hidden),
                           // seslm_encoder_features_ids; an intent head's input): a pass runs jobs of one kind
} serve_job;

seslm_status serve_batcher_start(struct seslm_server *s);
/* Runs the job through the batcher and waits for it; 0 ok, else job->err says why. */
int serve_batcher_submit(struct seslm_server *s, serve_job *job);
void serve_batcher_stop(struct seslm_server *s); // after the queue has drained
void serve_batcher_free(struct seslm_server *s);
void serve_arriving_add(struct seslm_server *s, int delta);

// ---- the telemetry thread: window dumps and freeing retired slots ---------------------------------

seslm_status serve_janitor_start(struct seslm_server *s);
void serve_janitor_stop(struct seslm_server *s); // drains the queue first
/* Batcher only: swaps in the spare telemetry of the slot and queues the closed window for writing. */
int serve_telemetry_rotate(struct seslm_server *s, serve_slot *slot);
void serve_janitor_retire(struct seslm_server *s, serve_slot *slot);

typedef struct {
    const char *node, *model_id;
    uint64_t seq;        // per-node dump sequence number
    uint64_t n_rejected; // inputs refused during the window
    int n_intents;       // predicted intents in the window (intent.c), 0 without an intent head
    const char *const *intent_labels;
    const uint64_t *intent_counts;
} serve_dump_info;

/* Writes the window held by t as one dump file in dir; 0 ok (path_out gets its path), else err. (dump.c) */
int serve_dump_write(seslm_telemetry *t, const char *dir, const serve_dump_info *info, char *path_out,
                     size_t path_cap, char *err, size_t err_cap);
const char *serve_dump_extension(void); // ".h5", or ".json" for the fallback writer
/* 1 if a node id is usable in dump names: 1..64 of [A-Za-z0-9._-], not starting with '.' or '-'. */
int serve_node_id_ok(const char *id);

// ---- metrics --------------------------------------------------------------------------------------

typedef enum {
    R_EMBED, R_HEALTHZ, R_METRICS, R_RELOAD, R_OTHER, R_INTENT, R_FEEDBACK, R_RETRIEVE, R_MESSAGE,
    R_OPENAI, R_TEI, R_KSERVE, R_OPENAPI, // the compatible APIs (api.h)
    R_CHAT, // POST /v1/chat/completions on the decoder (chat.c)
    R_COUNT
} serve_route;

#define SERVE_LAT_BUCKETS 14
#define SERVE_BATCH_BUCKETS 13
#define SERVE_MAX_MODEL_SERIES 16
#define SERVE_MAX_CODES 48

typedef struct {
    uint64_t counts[SERVE_LAT_BUCKETS + 1]; // last: +Inf; not cumulative
    double sum;
    uint64_t count;
} serve_hist;

typedef struct {
    char id[SERVE_ID_CAP];
    uint64_t texts, tokens, requests;
    serve_hist batch_size, batch_seconds;
    uint64_t last_used;
    int64_t since_unix_ns; // when this series started from 0 (an evicted model's counters restart)
} serve_model_series;

typedef struct {
    pthread_mutex_t mu;
    struct {
        serve_route r;
        int code;
        uint64_t n;
    } req[SERVE_MAX_CODES];
    int n_req;
    serve_hist latency[R_COUNT];
    serve_model_series models[SERVE_MAX_MODEL_SERIES];
    int n_models;
    uint64_t tick;
    uint64_t reload_ok, reload_fail, dump_ok, dump_fail;
    char cur_id[SERVE_ID_CAP], cur_dir[PATH_MAX];
    double cur_since; // Unix seconds the current model went live
    double start_time;
    serve_hist in_scope; // the intent head's in-scope p-values (SERVE_IN_SCOPE_LE)
} serve_metrics;

void serve_metrics_init(serve_metrics *m);
void serve_metrics_destroy(serve_metrics *m);
void serve_metrics_request(serve_metrics *m, serve_route r, int code, double seconds);
void serve_metrics_batch(serve_metrics *m, const char *model_id, int texts, int64_t tokens, double seconds);
void serve_metrics_embed_request(serve_metrics *m, const char *model_id);
void serve_metrics_reload(serve_metrics *m, int ok);
void serve_metrics_dump(serve_metrics *m, int ok);
void serve_metrics_set_model(serve_metrics *m, const char *id, const char *dir);
/* One intent prediction's in-scope p-value (NaN: the head has no reference; not counted). */
void serve_metrics_in_scope(serve_metrics *m, float p);
/* Renders everything in the Prometheus text exposition format 0.0.4. */
void serve_metrics_render(seslm_server *s, sbuf *out);
/* A copy of the counters taken under m->mu, for the OTLP exporter (which must not hold the lock while it
 * renders and sends); the copy's mutex is not to be used. */
void serve_metrics_snapshot(serve_metrics *m, serve_metrics *out);
extern const double SERVE_LAT_LE[SERVE_LAT_BUCKETS];     // latency histogram bounds (seconds)
extern const double SERVE_BATCH_LE[SERVE_BATCH_BUCKETS]; // texts-per-pass histogram bounds
#define SERVE_IN_SCOPE_BUCKETS 6
extern const double SERVE_IN_SCOPE_LE[SERVE_IN_SCOPE_BUCKETS]; // in-scope p-value histogram bounds
extern const char *const SERVE_ROUTE_PATH[R_COUNT];      // the `path` label of each route

// ---- hostile clients: per-connection deadlines and rate-limited logs (guard.c) ----------------------

enum { SERVE_PHASE_NONE, SERVE_PHASE_HEADERS, SERVE_PHASE_BODY };
typedef struct serve_conn serve_conn;
seslm_status serve_guard_start(struct seslm_server *s); // the watchdog thread
void serve_guard_stop(struct seslm_server *s);
/* A new connection: its first request's headers must arrive within header_timeout_s (NULL on OOM). */
serve_conn *serve_guard_open(struct seslm_server *s, int fd);
void serve_guard_close(struct seslm_server *s, serve_conn *c);
/* Starts a phase: HEADERS (header_timeout_s from now), BODY (body_timeout_s), NONE (no deadline). */
void serve_guard_phase(struct seslm_server *s, serve_conn *c, int phase);
int serve_guard_open_count(struct seslm_server *s);
/* Writes prefix + the message to stderr, at most a burst of lines per window; counts what it drops. */
void serve_log_limited(struct seslm_server *s, const char *prefix, const char *fmt, va_list ap);

// ---- the request workers (workers.c) ----------------------------------------------------------------

seslm_status serve_workers_start(struct seslm_server *s, int n, int queue_cap, void (*run)(struct seslm_server *, void *));
int serve_workers_submit(struct seslm_server *s, void *task); // 0 queued, -1 full or stopping
int serve_workers_queued(struct seslm_server *s);
void serve_workers_stop(struct seslm_server *s); // runs what is queued, then joins

// ---- fleet telemetry upload to an S3-compatible store (upload.c, docs/fleet.md) --------------------

typedef struct serve_upload serve_upload;
seslm_status serve_upload_start(struct seslm_server *s); // nothing when no upload URL is set
void serve_upload_kick(struct seslm_server *s);          // a dump was written: upload it soon
void serve_upload_stop(struct seslm_server *s);          // joins, one last pass; pending dumps stay local
void serve_upload_render(struct seslm_server *s, sbuf *b); // its /metrics families (none when off)

// ---- OpenTelemetry: spans per request and per batch, metrics; OTLP/HTTP JSON (otlp.c, otlp_metrics.c) --

enum { SERVE_SPAN_REQUEST, SERVE_SPAN_BATCH };
typedef struct {
    int kind; // SERVE_SPAN_REQUEST (seslm.embed) or SERVE_SPAN_BATCH (seslm.batch)
    char model[SERVE_ID_CAP];
    int64_t start_unix_ns, end_unix_ns, queue_ns, compute_ns, tokens;
    int texts, ok;
    int max_text_tokens;   // batch: its longest text
    serve_span_ref id;     // from serve_otlp_new_ref
    serve_span_ref *links; // batch: the request spans it served (malloc'd; the queue owns and frees it)
    int n_links;
} serve_span;
typedef struct serve_otlp serve_otlp;
seslm_status serve_otlp_start(struct seslm_server *s); // nothing without an endpoint
/* A fresh trace and span id (lock-free; never all zero). */
serve_span_ref serve_otlp_new_ref(struct seslm_server *s);
/* Queues a span for export; never waits: a full queue drops it (counted) and frees its links. */
void serve_otlp_span(struct seslm_server *s, serve_span *sp);
void serve_otlp_stop(struct seslm_server *s); // sends what is queued (once) and the metrics, joins
void serve_otlp_render(struct seslm_server *s, sbuf *b);
typedef struct {
    uint64_t spans_exported, spans_failed, spans_dropped, metrics_exported, metrics_failed;
} serve_otlp_counts;
/* OTLP JSON pieces shared by the span and metric encoders: the resource (service.name, service.version,
 * host.name and service.instance.id = node) and one string KeyValue (first: no leading comma). */
void serve_otlp_resource(sbuf *b, const char *node);
void serve_otlp_attr_str(sbuf *b, int first, const char *k, const char *v);
/* The ExportMetricsServiceRequest of the /metrics values now, as OTLP JSON (otlp_metrics.c); c: the
 * exporter's own counters. */
void serve_otlp_metrics_render(struct seslm_server *s, const serve_otlp_counts *c, sbuf *b);

// ---- the server -----------------------------------------------------------------------------------

typedef struct serve_tjob serve_tjob;

struct seslm_server {
    seslm_serve_opts o;
    char host[256], node[128], tel_dir[PATH_MAX];
    int telemetry; // telemetry on (tel_dir given)

    pthread_mutex_t reg_mu; // current, generation
    serve_slot *current;
    uint64_t generation;
    pthread_mutex_t reload_mu; // one reload at a time
    pthread_mutex_t fwd_mu;    // one forward pass (or encoder creation) at a time

    // batcher
    pthread_mutex_t q_mu;
    pthread_cond_t q_cv;
    serve_job *q_head, *q_tail;
    int q_texts, arriving, q_stop, batcher_up;
    pthread_t batcher;
    int64_t next_rotate_ns;
    void *bat_segs;
    const int32_t **bat_rows;
    int *bat_lens;

    // telemetry thread
    pthread_mutex_t j_mu;
    pthread_cond_t j_cv;
    serve_tjob *j_head, *j_tail;
    int j_stop, janitor_up;
    atomic_int j_pending; // jobs queued or being written (/metrics: a handshake for "every dump is out")
    pthread_t janitor;
    uint64_t dump_seq;
    serve_upload *upload; // NULL: dumps stay local (upload.c)
    serve_otlp *otlp;     // NULL: no OpenTelemetry export (otlp.c)

    // http
    struct MHD_Daemon *mhd;
    int port;
    atomic_int inflight;
    atomic_int draining;
    atomic_int queue_gauge; // texts waiting (for /metrics without taking q_mu)
    atomic_ullong busy_rejects; // requests answered 503 because the worker queue was full

    // connection deadlines (guard.c)
    pthread_mutex_t g_mu;
    pthread_cond_t g_cv;
    serve_conn *g_conns;
    int g_open, g_stop, g_up;
    pthread_t g_thread;
    atomic_ullong g_timeouts[2]; // [0] headers, [1] body: connections shut down at their deadline
    pthread_mutex_t log_mu;
    int64_t log_window_ns;
    int log_in_window;
    unsigned long long log_dropped;

    // request workers (workers.c)
    pthread_mutex_t w_mu;
    pthread_cond_t w_cv;
    void **w_ring;
    int w_cap, w_head, w_n, w_stop, w_up;
    pthread_t *w_threads;
    void (*w_run)(struct seslm_server *, void *);

    serve_metrics metrics;
    struct serve_intent *intent; // NULL without --intent-head (intent.c)
    struct seslm_kb *kb;         // NULL without --kb (retrieve.c); read-only once loaded
    struct seslm_dialog *dialog; // NULL without a dialog policy (message.c)
    struct serve_chat *chat;     // NULL without --decoder (chat.c)
};

// ---- the intent head: POST /v1/intent, POST /v1/feedback (intent.c) -------------------------------

typedef struct serve_intent serve_intent;
/* feedback_log (may be NULL): the JSON lines file every learned example is appended to (a partial last
 * line, left by a crash mid-write, is cut off at open). */
seslm_status serve_intent_open(seslm_server *s, const char *path, int allow_new, const char *feedback_log);
/* Opens the feedback log's path again (a reload does: a log moved aside is followed by a new file); on
 * failure the old file stays in use and stderr says why. */
void serve_intent_reopen_log(seslm_server *s);
void serve_intent_close(seslm_server *s);
/* Answers a request to R_INTENT or R_FEEDBACK: returns the HTTP code, the JSON body in out. */
int serve_intent_handle(seslm_server *s, serve_route r, const char *body, size_t len, sbuf *out, char *model_id);
/* Takes (and zeroes) the predicted-intent counts of the window; free with serve_intent_free_counts. */
int serve_intent_take_counts(seslm_server *s, char ***labels, uint64_t **counts);
void serve_intent_free_counts(char **labels, uint64_t *counts, int n);
/* Embeds one text through the batcher (dim must be the model's width times feature_layers: with
 * feature_layers > 1 the features of that many last layers); 0 ok, else an HTTP code, out set.
 * *generation (may be NULL): the slot that embedded it. */
int serve_embed_text(seslm_server *s, const char *text, float *vec, int dim, int feature_layers, char *model_id,
                     uint64_t *generation, sbuf *out);
/* Embeds text with the model the head answers for and predicts (and counts) its intent: 0 ok with *x the
 * embedding, up to a positive scale (malloc'd, the caller frees; a head on K layers: the last block of its
 * features) of *dim floats, else an HTTP code with out set. */
int serve_intent_classify_text(seslm_server *s, const char *text, float **x, int *dim, char *label, size_t cap,
                               float *confidence, int *oos, char *model_id, sbuf *out);
/* A reload's intent head (serve_intent_swap): the head for the new model, loaded before the swap. */
typedef struct serve_intent_next serve_intent_next;
/* Before a reload's swap: finds the head for the model of slot ns — the node's own earlier head for it
 * (HEAD.<weights sha256>, kept when it was swapped out), else ns's directory's intent_head.safetensors
 * (seslm adapt writes it) — and loads it. *next = NULL when the current head stays (no intent head served,
 * none found, or the current one is already that model's). SESLM_OK, or a failure to load a head that was
 * found (the reload is then refused). */
seslm_status serve_intent_prepare(seslm_server *s, const serve_slot *ns, serve_intent_next **next);
/* Called with reg_mu held at the reload's swap: the head now answers for generation gen (next's head if
 * any). Locks the head's mutex (order: the head's, then reg_mu — see seslm_serve_reload). */
void serve_intent_swap_locked(seslm_server *s, serve_intent_next *next, uint64_t gen);
/* After the swap (no lock held): the head swapped out is kept as HEAD.<its model's sha256> and the new one
 * written to HEAD; frees next. Failures are reported on stderr (the swap stands). */
void serve_intent_finish(seslm_server *s, serve_intent_next *next);
void serve_intent_lock(seslm_server *s);
void serve_intent_unlock(seslm_server *s);

// ---- conversation: POST /v1/message (message.c) -----------------------------------------------------

int serve_message_handle(seslm_server *s, const char *body, size_t len, sbuf *out, char *model_id);

// ---- the knowledge base: POST /v1/retrieve (retrieve.c) ---------------------------------------------

seslm_status serve_kb_open(seslm_server *s, const char *dir);
void serve_kb_close(seslm_server *s);
int serve_kb_handle(seslm_server *s, const char *body, size_t len, sbuf *out, char *model_id);

// ---- the decoder: POST /v1/chat/completions (chat.c) ------------------------------------------------

typedef struct serve_chat serve_chat;
typedef struct serve_chat_req serve_chat_req;
seslm_status serve_chat_open(seslm_server *s, const char *gguf_path);
void serve_chat_close(seslm_server *s);
/* Parses a request: 0 and *out, else the HTTP code with the error in err. */
int serve_chat_parse(seslm_server *s, const char *body, size_t len, serve_chat_req **out, sbuf *err);
int serve_chat_is_stream(const serve_chat_req *r);
/* Non-streaming: generates and writes the chat.completion JSON; returns the HTTP code. */
int serve_chat_complete(serve_chat_req *r, sbuf *out);
/* Streaming: starts the generation thread; then read SSE bytes until -1 (end). */
int serve_chat_stream_start(serve_chat_req *r);
long serve_chat_stream_read(serve_chat_req *r, char *buf, size_t max);
void serve_chat_req_free(serve_chat_req *r); // cancels a running generation and waits for it
/* The grounded answers of /v1/message (ground.c): the decoder (NULL without one), and one bounded greedy
 * generation under the decoder's lock. */
/* A grounded answer (ground.c): the prompt built from the passages and generated on the decoder now serving (one
 * reference held throughout, so a reload meanwhile does not change the model under it). */
seslm_status serve_chat_ground_answer(seslm_server *s, const char *question, const char *const *passages, int n,
                                      int max_tokens, char **text, int *n_gen);
/* 1 when path is a decoder: a .gguf file or a directory holding model.gguf (a registry version). */
int serve_chat_is_decoder(const char *path);
/* POST /admin/reload with a decoder: loads it beside the one serving, then swaps; requests already running
 * finish on the old one, which the last of them frees. prev / now: the names before and after. */
seslm_status serve_chat_reload(seslm_server *s, const char *path, char *prev, char *now, size_t cap);
/* The "reply" object of /v1/message: the decoder's answer from the knowledge base's passages ids (n, may
 * be 0) after the hallucination check, or the abstention / clarification. 0 ok, else an HTTP code with the
 * {"error"} body in reply. */
int serve_ground_reply(seslm_server *s, const char *question, const int *ids, int n, sbuf *reply);

/* The libmicrohttpd daemon (http.c): start; stop accepting (quiesce); stop (closes every connection). */
seslm_status serve_http_start(seslm_server *s);
void serve_http_quiesce(seslm_server *s);
void serve_http_stop(seslm_server *s);

#endif
