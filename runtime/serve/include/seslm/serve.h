/* serve.h — the embedding HTTP server behind `seslm serve` (libmicrohttpd: one epoll thread, a worker pool).
 *
 *   POST /v1/embed      {"texts": [...]} or {"text": "..."}  ->  {"model", "dim", "n_tokens", "embeddings"}
 *   GET  /healthz       {"status": "ok", "model": ...}
 *   GET  /metrics       Prometheus text format
 *   POST /admin/reload  optional {"model": "DIR"}: blue-green swap to a freshly loaded model (loopback only;
 *                       with an admin token configured, also "Authorization: Bearer <token>")
 *   POST /v1/intent     {"text": "..."} -> {"intent", "top", "confidence", "out_of_scope", "probabilities"}
 *   POST /v1/feedback   {"text": "...", "intent": "..."} -> online update, head file rewritten (docs/intent.md)
 *   POST /v1/retrieve   {"query": "...", "k": 3} -> {"answer", "reason", "passages": [...]} (grounded retrieval)
 *   POST /v1/message    {"session", "text", "slots", "outcome"} -> intent -> session state -> action (+ grounded
 *                       context); the state is committed (session_db) before the answer; "outcome" marks the
 *                       session's last action for learning (docs/intent.md)
 *   POST /v1/chat/completions  OpenAI-compatible chat on the GGUF decoder (--decoder), "stream": true for
 *                       server-sent events (chat.c)
 *
 * Requests from concurrent connections are coalesced by one batcher thread into forward passes of up to
 * max_batch texts. A reload loads and warms the new model beside the old one and swaps a pointer;
 * requests already holding the old model finish on it and the last one to let go frees it.
 * docs/serving.md describes the whole design. */
#ifndef SESLM_SERVE_H
#define SESLM_SERVE_H

#include "seslm.h"

#include <stddef.h>

typedef struct {
    const char *model_dir;     // required
    const char *host;          // numeric address or name to bind; default "127.0.0.1"
    int port;                  // 0: an ephemeral port (read it back with seslm_serve_port)
    const char *telemetry_dir; // NULL: no telemetry
    const char *telemetry_upload; // s3://BUCKET/PREFIX: each dump written to telemetry_dir is then uploaded
                               // there (docs/fleet.md); NULL: no upload
    int upload_retry_s;        // first retry delay of a failed upload (doubles up to 64x); default 10
    const char *otlp_endpoint; // OTLP/HTTP collector base URL: a span per embedding request and per
                               // forward batch is POSTed (JSON) to ENDPOINT/v1/traces; NULL: off
    int otlp_queue;            // spans waiting for export at most (more are dropped, counted); default 4096
    int otlp_metrics_interval_s; // with otlp_endpoint: the /metrics counters are POSTed as OTLP metrics to
                               // ENDPOINT/v1/metrics every this many seconds (and at shutdown); 0: 60, <0: off
    int window_seconds;        // telemetry window; default 300
    int max_batch;             // texts per forward pass; default 32
    int threads;               // forward-pass threads, 0 = all cores
    const char *node_id;       // names the dumps; default the host name
    const char *backend;       // encoder backend; default "cpu"
    const char *precision;     // "fp32", "bf16", "int8"; NULL: the model's config (seslm_precision)
    int max_batch_tokens;      // token budget of one forward pass (0: max_batch x the model's max length)
    int max_texts;             // texts per request; default 512
    size_t max_body_bytes;     // request body limit; default 1 MiB
    int batch_wait_us;         // how long a batch may wait for texts still arriving; default 2000
    int max_connections;       // concurrent connections in total; default 1024 (RLIMIT_NOFILE raised to fit)
    int drain_seconds;         // how long shutdown waits for in-flight requests; default 30
    const char *admin_token;   // non-empty: the admin endpoints need "Authorization: Bearer <token>" (else 401)
    const char *intent_head;   // intent head file for /v1/intent and /v1/feedback; NULL: those answer 404
    int intent_allow_new;      // /v1/feedback may add intents the head does not know
    const char *feedback_token; // non-empty: /v1/feedback needs "Authorization: Bearer <token>" (else 401)
    int feedback_open;         // 1: /v1/feedback without a token. Neither: feedback is refused (403), since
                               // every example retrains the served head

    const char *kb_dir;        // knowledge base for /v1/retrieve (seslm kb build); NULL: that answers 404
    double kb_threshold;       // minimum cosine similarity to answer (`seslm serve` default 0.5)
    const struct seslm_dialog_policy *dialog_policy; // POST /v1/message (needs intent_head); NULL: 404
    const char *session_db;    // SQLite file of the conversation state and transition log; NULL: in memory
    long long session_ttl_s;   // idle sessions expire after this (0: never)
    int max_connections_per_ip; // concurrent connections from one client address; 0: default 64, -1: no limit
    int header_timeout_s;      // a request's headers must all arrive within this (absolute); default 10
    int body_timeout_s;        // and its body within this after the headers; default 60
    int workers;               // threads that run computing requests (embed, intent, ...); default 32
    const char *decoder_model; // GGUF decoder for POST /v1/chat/completions; NULL: that answers 404. With a
                               // knowledge base and a dialog policy, /v1/message also answers with it from
                               // the retrieved passages ("reply"; grounded.h); without it, no "reply"
    double grounded_min_support;     // hallucination check: sentence support threshold (0: default 0.60)
    double grounded_clarify_support; // below it, but at or above this: ask for clarification (0: default 0.45)
    int grounded_max_tokens;         // bound on a grounded answer (0: default 48)
    double grounded_min_coverage;    // share of the question's terms the passages must hold (0: default 0.75;
                                     // negative: no coverage check)
    const char *feedback_log;        // JSON lines file: each example /v1/feedback learned is appended ({"text",
                                     // "intent", "time", "model"}, fsync'd before the answer), the feedback
                                     // `seslm adapt --feedback` trains on; NULL: none kept
    int intent_max_intents;          // with intent_allow_new: feedback adds no intent beyond this many in the head
                                     // (409; 0: default 1000). Each added intent grows the head, and every feedback
                                     // saves all of it (a 3-layer head: about 80 KB more per intent)
} seslm_serve_opts;

typedef struct seslm_server seslm_server;

/* Loads the model, starts the batcher, the telemetry writer and the HTTP daemon. */
seslm_status seslm_serve_start(seslm_server **out, const seslm_serve_opts *opts);

/* The bound TCP port (useful with port 0). */
int seslm_serve_port(const seslm_server *s);

/* Copies the id of the model now serving ("<dir basename>@<first 12 hex of the weights' SHA-256>"). */
void seslm_serve_model_id(seslm_server *s, char *buf, size_t cap);

/* Blue-green reload from dir (NULL: the current directory again). On failure the old model keeps
 * serving and seslm_last_error() says why. prev_id / new_id (may be NULL) receive the ids. */
seslm_status seslm_serve_reload(seslm_server *s, const char *dir, char *prev_id, char *new_id, size_t id_cap);

/* Graceful stop: stop accepting, let in-flight requests finish (up to drain_seconds), stop the batcher,
 * flush the open telemetry window, free everything. */
void seslm_serve_stop(seslm_server *s);

#endif
