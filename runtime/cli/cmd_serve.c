/* cmd_serve.c — `seslm serve`: the embedding HTTP server (runtime/serve/, docs/serving.md). */
#include "cli.h"
#include "dialog_policy.h"
#include "sd_notify.h"
#include "serve.h"
#include "util.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *HELP =
    "usage: seslm serve [--model DIR] [--host ADDR] [--port P] [--telemetry-dir DIR] [--window-seconds S]\n"
    "                   [--telemetry-upload s3://BUCKET/PREFIX [--upload-retry-seconds S]]\n"
    "                   [--otlp-endpoint URL [--otlp-queue N] [--otlp-metrics-interval S]]\n"
    "                   [--max-batch N] [--max-batch-tokens N] [--threads N] [--node ID] [--backend cpu|cpu-ref]\n"
    "                   [--precision fp32|bf16|int8]\n"
    "                   [--max-texts N] [--max-body-bytes N] [--batch-wait-us N] [--max-connections N]\n"
    "                   [--drain-seconds N] [--admin-token-file F] [--max-connections-per-ip N]\n"
    "                   [--header-timeout S] [--body-timeout S] [--workers N]\n"
    "                   [--intent-head FILE [--intent-allow-new 0|1] [--feedback-token-file F | --feedback-open 1]\n"
    "                    [--feedback-log FILE]]\n"
    "                   [--kb DIR [--kb-threshold S]]\n"
    "                   [--dialog-policy YAML [--session-db FILE] [--session-ttl SECONDS]]\n"
    "                   [--decoder GGUF [--grounded-support S] [--grounded-clarify S] [--grounded-max-tokens N]\n"
    "                    [--grounded-coverage S]]\n"
    "\n"
    "Serves sentence embeddings over HTTP (JSON):\n"
    "  POST /v1/embed      {\"texts\": [\"...\", ...]} or {\"text\": \"...\"}\n"
    "                      -> {\"model\": ID, \"dim\": 384, \"n_tokens\": N, \"embeddings\": [[...], ...]}\n"
    "  GET  /healthz       {\"status\": \"ok\", \"model\": ID}\n"
    "  GET  /metrics       Prometheus text format\n"
    "  POST /admin/reload  optional {\"model\": \"DIR\"}: load, warm up and swap in a model without\n"
    "                      dropping a request (loopback clients only); SIGHUP reloads the current DIR\n"
    "  POST /v1/intent     {\"text\": \"...\"} -> {\"intent\", \"top\", \"confidence\", \"in_scope\",\n"
    "                      \"out_of_scope\", \"probabilities\"} (needs --intent-head; see seslm intent --help)\n"
    "  POST /v1/feedback   {\"text\": \"...\", \"intent\": \"...\"}: learn online; the head file is rewritten\n"
    "                      crash-safely before the answer, so a restart keeps every acknowledged example.\n"
    "                      Needs \"Authorization: Bearer <feedback token>\" (401 otherwise); without a\n"
    "                      feedback token the endpoint is closed (403) unless started with --feedback-open 1\n"
    "  POST /v1/retrieve   {\"query\": \"...\", \"k\": 3} -> {\"answer\", \"reason\", \"passages\"}: exact top-k\n"
    "                      of the knowledge base (needs --kb); answer false when the best is below the threshold\n"
    "  POST /v1/message    {\"session\", \"text\", \"slots\": {...}}: intent -> session state -> action (+ grounded\n"
    "                      context with --kb); needs --intent-head and --dialog-policy (configs/dialog.yaml).\n"
    "                      \"outcome\": \"success\"|\"failure\" (text then optional) marks the session's last\n"
    "                      action; the policy's learning re-ranks a goal's allowed actions by success rate\n"
    "Also spoken (see GET /openapi.json, an OpenAPI 3 document of every endpoint):\n"
    "  OpenAI     POST /v1/embeddings, GET /v1/models       (input over the maximum length: 400)\n"
    "  TEI        POST /embed (and POST /), GET /info, GET /health (readiness)\n"
    "  KServe v2  GET /v2/health/live (liveness), GET /v2/health/ready (readiness),\n"
    "             GET /v2/models/ID[/ready], POST /v2/models/ID/infer\n"
    "  On these, an input longer than the model's maximum is refused (413) unless the request sets\n"
    "  \"truncate\": true; /v1/embed truncates it, as it always has.\n"
    "Texts of concurrent requests are batched into one forward pass. The model id is\n"
    "\"<basename of DIR>@<first 12 hex digits of the weights' SHA-256>\". SIGTERM or SIGINT stops\n"
    "accepting, finishes the requests in flight, writes the open telemetry window and exits 0.\n"
    "\n"
    "  --model DIR           model directory; default $SESLM_MODEL_DIR or models/all-MiniLM-L6-v2\n"
    "  --host ADDR           address to listen on (default 127.0.0.1: loopback only)\n"
    "  --port P              TCP port, 0 = any free one (default 8080); the bound port is logged\n"
    "  --telemetry-dir DIR   write a telemetry dump into DIR every window and at shutdown (default off)\n"
    "  --window-seconds S    telemetry window length (default 300)\n"
    "  --telemetry-upload URL  also upload every dump to an S3-compatible store, as\n"
    "                        URL/<YYYY-MM-DD>/<node>/<file> (docs/fleet.md); needs --telemetry-dir, where the\n"
    "                        dumps are written first and stay: an uploaded one gets a marker .<file>.uploaded,\n"
    "                        a failed one is retried (and at the next start), never dropped. Connection from\n"
    "                        SESLM_S3_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY\n"
    "  --upload-retry-seconds S  first retry delay after a failed upload, doubled up to 64x (default 10)\n"
    "  --otlp-endpoint URL   export OpenTelemetry spans as OTLP/HTTP JSON to URL/v1/traces, e.g.\n"
    "                        http://127.0.0.1:4318 (a collector); default off. One per embedding request\n"
    "                        (seslm.embed: model version, texts, tokens, queue and compute seconds) and one\n"
    "                        per forward batch (seslm.batch: model, texts, tokens, compute seconds, a link\n"
    "                        to each request span it served). Requests never wait for it\n"
    "  --otlp-queue N        spans waiting for export at most; more are dropped and counted in /metrics\n"
    "                        seslm_otlp_spans_total{result=\"dropped\"} (default 4096)\n"
    "  --otlp-metrics-interval S  with --otlp-endpoint, also POST the /metrics counters (requests, texts,\n"
    "                        tokens, latency histograms, model version, OTLP spans) as OTLP metrics to\n"
    "                        URL/v1/metrics every S seconds and at shutdown (default 60; 0: off)\n"
    "  --max-batch N         texts per forward pass, 1..4096 (default 32)\n"
    "  --threads N           forward-pass threads, 0 = all cores (default 0)\n"
    "  --node ID             node name in dump file names (default the host name)\n"
    "  --backend NAME        cpu (default) or cpu-ref; cuda / cuda-fp16 on a GPU; cpu-devsim: the GPU code\n"
    "                        path run by cpu-ref's ops on host memory (for tests)\n"
    "  --precision P         fp32, bf16 or int8 linear layers (default: the model's config.json\n"
    "                        \"seslm_precision\", else fp32; see seslm embed --help)\n"
    "  --max-batch-tokens N  token budget of one forward pass (default max-batch x the model's max length):\n"
    "                        a pass takes queued requests while their tokens fit, so long texts do not\n"
    "                        make a batch's latency explode\n"
    "  --max-texts N         texts per request (default 512; more -> 413)\n"
    "  --max-body-bytes N    request body limit (default 1048576; more -> 413)\n"
    "  --batch-wait-us N     how long a pass may wait for requests still arriving (default 2000)\n"
    "  --max-connections N   concurrent connections in total (default 1024; the descriptor limit is raised\n"
    "                        to fit); an idle or slow connection costs a descriptor, not a thread\n"
    "  --max-connections-per-ip N  concurrent connections from one client address (default 64; 0: no limit;\n"
    "                        behind a reverse proxy on the same host every client shares its address)\n"
    "  --header-timeout S    a request's headers must all arrive within S seconds of the connection opening\n"
    "                        or of the previous answer on it, however slowly they trickle (default 10)\n"
    "  --body-timeout S      and its body within S seconds after the headers (default 60)\n"
    "  --workers N           threads that run computing requests; /healthz and /metrics never wait for them\n"
    "                        (default 32)\n"
    "  --drain-seconds N     on shutdown, how long requests in flight may take to finish (default 30)\n"
    "  --admin-token-file F  /admin/* then needs \"Authorization: Bearer <token>\" (401 otherwise); the token\n"
    "                        is F's first line, else $SESLM_ADMIN_TOKEN; without either, loopback suffices.\n"
    "                        F must be private (chmod 600; docs/security.md), as must every key or token file\n"
    "  --feedback-token-file F  /v1/feedback needs \"Authorization: Bearer <token>\"; the token is F's first\n"
    "                        line, else $SESLM_FEEDBACK_TOKEN\n"
    "  --feedback-open B     1: anyone who reaches the port may post feedback (which retrains the served\n"
    "                        head); 0 (default): feedback needs the feedback token, and without one is closed\n"
    "  --intent-head FILE    serve this intent head (seslm intent train) on /v1/intent and /v1/feedback;\n"
    "                        a reload to other weights swaps in that model's head (FILE.<weights sha256>\n"
    "                        kept from an earlier swap, else the model's intent_head.safetensors)\n"
    "  --intent-allow-new B  1: feedback may add new intents; 0 (default): an unknown intent is a 400\n"
    "  --intent-max-intents N  with --intent-allow-new 1: feedback adds no intent beyond N in the head (409;\n"
    "                        default 1000)\n"
    "  --feedback-log FILE   append every example /v1/feedback learned to FILE, JSON lines {\"text\", \"intent\",\n"
    "                        \"time\", \"model\"}, synced before the answer: the --feedback of seslm adapt\n"
    "                        (the head keeps only embeddings; adapters need the texts); every reload opens\n"
    "                        the path again, so to rotate it: move it aside, then SIGHUP\n"
    "  --kb DIR              serve this knowledge base (seslm kb build) on /v1/retrieve\n"
    "  --kb-threshold S      minimum cosine similarity to answer from the knowledge base (default 0.5)\n"
    "  --decoder GGUF        serve this decoder (SmolLM2 GGUF) on POST /v1/chat/completions (OpenAI-style,\n"
    "                        \"stream\": true for server-sent events, sent when the generation ends);\n"
    "                        with --kb and --dialog-policy, /v1/message also answers from the retrieved\n"
    "                        passages only (\"reply\": the answer with its passages cited, after a\n"
    "                        hallucination check of each sentence; else it abstains or asks to clarify);\n"
    "                        GGUF may be a registry version's directory holding model.gguf. POST\n"
    "                        /admin/reload {\"model\": DIR-or-GGUF} of a decoder swaps it (running\n"
    "                        generations finish on the old one)\n"
    "  --grounded-support S  hallucination check: least sentence support to answer (default 0.60)\n"
    "  --grounded-clarify S  below --grounded-support but at or above S: ask for clarification instead of\n"
    "                        abstaining (default 0.45; = the support: never)\n"
    "  --grounded-max-tokens N  bound on a grounded answer (default 48)\n"
    "  --grounded-coverage S share of the question's terms the passages must hold to answer (default 0.75;\n"
    "                        0: no such check)\n"
    "  --dialog-policy YAML  the decision policy of /v1/message (configs/dialog.yaml)\n"
    "  --session-db FILE     keep conversation state and the transition log in this SQLite file (created\n"
    "                        when absent); every turn is committed before its answer. Default: in memory\n"
    "  --session-ttl S       sessions idle longer than S seconds expire (default 86400; 0: never)\n"
    "\n"
    "Exit status: 0 after a signalled shutdown, 1 the model could not be loaded or the port bound,\n"
    "2 usage error.\n";

int cmd_serve(int argc, char **argv) {
    seslm_serve_opts o = {.model_dir = cli_default_model_dir(), .host = "127.0.0.1", .port = 8080,
                          .window_seconds = 300, .max_batch = 32, .backend = "cpu", .max_texts = 512,
                          .max_body_bytes = (size_t)1 << 20, .batch_wait_us = 2000, .max_connections = 1024,
                          .drain_seconds = 30, .kb_threshold = 0.5,
                          .session_ttl_s = 86400};
    const char *token_file = NULL, *fb_token_file = NULL;
    char token[1024] = "", fb_token[1024] = "";
    const char *policy_path = NULL;
    double coverage = -2; // -2: not given
    int max_body = (int)o.max_body_bytes, ttl = (int)o.session_ttl_s, per_ip = -2; // -2: not given
    int metrics_every = 60;
    const cli_arg args[] = {
        {"--model", CLI_ARG_STR, &o.model_dir, 0, 0},
        {"--host", CLI_ARG_STR, &o.host, 0, 0},
        {"--port", CLI_ARG_INT, &o.port, 0, 65535},
        {"--telemetry-dir", CLI_ARG_STR, &o.telemetry_dir, 0, 0},
        {"--window-seconds", CLI_ARG_INT, &o.window_seconds, 1, 7 * 86400},
        {"--telemetry-upload", CLI_ARG_STR, &o.telemetry_upload, 0, 0},
        {"--upload-retry-seconds", CLI_ARG_INT, &o.upload_retry_s, 1, 3600},
        {"--otlp-endpoint", CLI_ARG_STR, &o.otlp_endpoint, 0, 0},
        {"--otlp-queue", CLI_ARG_INT, &o.otlp_queue, 1, 1 << 20},
        {"--otlp-metrics-interval", CLI_ARG_INT, &metrics_every, 0, 86400},
        {"--node", CLI_ARG_STR, &o.node_id, 0, 0},
        {"--backend", CLI_ARG_STR, &o.backend, 0, 0},
        {"--precision", CLI_ARG_STR, &o.precision, 0, 0},
        {"--max-batch", CLI_ARG_INT, &o.max_batch, 1, 4096},
        {"--max-batch-tokens", CLI_ARG_INT, &o.max_batch_tokens, 1, 1 << 24},
        {"--threads", CLI_ARG_INT, &o.threads, 0, 1024},
        {"--max-texts", CLI_ARG_INT, &o.max_texts, 1, 1 << 20},
        {"--max-body-bytes", CLI_ARG_INT, &max_body, 1, 1 << 30},
        {"--batch-wait-us", CLI_ARG_INT, &o.batch_wait_us, 0, 1000000},
        {"--max-connections", CLI_ARG_INT, &o.max_connections, 1, 65536},
        {"--max-connections-per-ip", CLI_ARG_INT, &per_ip, 0, 65536},
        {"--header-timeout", CLI_ARG_INT, &o.header_timeout_s, 1, 3600},
        {"--body-timeout", CLI_ARG_INT, &o.body_timeout_s, 1, 3600},
        {"--workers", CLI_ARG_INT, &o.workers, 1, 4096},
        {"--drain-seconds", CLI_ARG_INT, &o.drain_seconds, 1, 86400},
        {"--admin-token-file", CLI_ARG_STR, &token_file, 0, 0},
        {"--intent-head", CLI_ARG_STR, &o.intent_head, 0, 0},
        {"--intent-allow-new", CLI_ARG_INT, &o.intent_allow_new, 0, 1},
        {"--intent-max-intents", CLI_ARG_INT, &o.intent_max_intents, 1, 1000000},
        {"--feedback-log", CLI_ARG_STR, &o.feedback_log, 0, 0},
        {"--feedback-token-file", CLI_ARG_STR, &fb_token_file, 0, 0},
        {"--feedback-open", CLI_ARG_INT, &o.feedback_open, 0, 1},
        {"--kb", CLI_ARG_STR, &o.kb_dir, 0, 0},
        {"--decoder", CLI_ARG_STR, &o.decoder_model, 0, 0},
        {"--grounded-support", CLI_ARG_NUM, &o.grounded_min_support, 0, 1},
        {"--grounded-clarify", CLI_ARG_NUM, &o.grounded_clarify_support, 0, 1},
        {"--grounded-max-tokens", CLI_ARG_INT, &o.grounded_max_tokens, 1, 512},
        {"--grounded-coverage", CLI_ARG_NUM, &coverage, 0, 1},
        {"--kb-threshold", CLI_ARG_NUM, &o.kb_threshold, -1, 1},
        {"--dialog-policy", CLI_ARG_STR, &policy_path, 0, 0},
        {"--session-db", CLI_ARG_STR, &o.session_db, 0, 0},
        {"--session-ttl", CLI_ARG_INT, &ttl, 0, 365 * 86400},
        {NULL, 0, NULL, 0, 0},
    };
    int prc = cli_parse_args("serve", HELP, args, argc, argv, NULL);
    if (prc >= 0) return prc;
    if (o.precision && strcmp(o.precision, "fp32") != 0 && strcmp(o.precision, "bf16") != 0 && strcmp(o.precision, "int8") != 0) {
        cli_error("serve", "--precision must be fp32, bf16 or int8 (got '%s')", o.precision);
        return 2;
    }
    if (o.telemetry_dir && !strncmp(o.telemetry_dir, "s3://", 5)) {
        cli_error("serve", "--telemetry-dir is the local directory the dumps are written to first; upload them with "
                           "--telemetry-dir DIR --telemetry-upload %s", o.telemetry_dir);
        return 2;
    }
    if (o.telemetry_upload && (!o.telemetry_dir || !*o.telemetry_dir)) {
        cli_error("serve", "--telemetry-upload needs --telemetry-dir DIR (the local spool the dumps are written to first)");
        return 2;
    }
    o.max_body_bytes = (size_t)max_body;
    if (coverage != -2) o.grounded_min_coverage = coverage == 0 ? -1 : coverage; // 0 on the command line: off
    o.session_ttl_s = ttl;
    o.otlp_metrics_interval_s = metrics_every ? metrics_every : -1; // the library's 0 is its default (60)
    if (per_ip != -2) o.max_connections_per_ip = per_ip == 0 ? -1 : per_ip; // 0 on the command line: no limit

    if (token_file) {
        if (util_read_secret_line(token_file, "admin token", token, sizeof token) != SESLM_OK) {
            cli_error("serve", "%s", seslm_last_error());
            return 1;
        }
    } else if (getenv("SESLM_ADMIN_TOKEN")) {
        snprintf(token, sizeof token, "%s", getenv("SESLM_ADMIN_TOKEN"));
    }
    if (fb_token_file) {
        if (util_read_secret_line(fb_token_file, "feedback token", fb_token, sizeof fb_token) != SESLM_OK) {
            cli_error("serve", "%s", seslm_last_error());
            return 1;
        }
        if (o.feedback_open) {
            cli_error("serve", "--feedback-token-file and --feedback-open 1 contradict each other");
            return 2;
        }
    } else if (getenv("SESLM_FEEDBACK_TOKEN") && *getenv("SESLM_FEEDBACK_TOKEN")) {
        snprintf(fb_token, sizeof fb_token, "%s", getenv("SESLM_FEEDBACK_TOKEN"));
    }
    o.feedback_token = fb_token;
    o.admin_token = token;
    if (o.feedback_log && !(o.intent_head && *o.intent_head)) {
        cli_error("serve", "--feedback-log needs --intent-head (feedback is learned by the intent head)");
        return 2;
    }

    // Signals are taken synchronously by this thread (sigwait); every thread started from here on
    // inherits the blocked mask, so none of them is interrupted.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    seslm_dialog_policy policy;
    if (policy_path) {
        if (seslm_dialog_policy_load(&policy, policy_path) != SESLM_OK) {
            cli_error("serve", "%s", seslm_last_error());
            return 1;
        }
        o.dialog_policy = &policy;
    }
    seslm_server *s = NULL;
#if defined(__GLIBC__)
    // glibc raises its mmap threshold to the size of each large block freed, so after a reload has freed the
    // old model's weights the next model's come from the heap, which then fragments and grows by ~10 MB a
    // reload (the soak test, tests/cli/test_serve_soak.sh). A fixed threshold keeps large blocks in mmap:
    // freeing them returns the memory, and RSS stays flat across reloads.
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
#endif
    seslm_status started = seslm_serve_start(&s, &o);
    if (policy_path) seslm_dialog_policy_free(&policy); // the server keeps its own copy
    if (started != SESLM_OK) {
        cli_error("serve", "%s", seslm_last_error());
        return 1;
    }
    char id[256];
    seslm_serve_model_id(s, id, sizeof id);
    fprintf(stderr, "seslm serve: model %s; listening on http://%s%s%s:%d\n", id, strchr(o.host, ':') ? "[" : "",
            o.host, strchr(o.host, ':') ? "]" : "", seslm_serve_port(s));
    // under systemd (Type=notify, docs/examples/seslm-serve.service): ready once the model is loaded and
    // the socket listens
    char state[512];
    snprintf(state, sizeof state, "READY=1\nSTATUS=serving %s on port %d\nMAINPID=%ld", id, seslm_serve_port(s),
             (long)getpid());
    if (seslm_sd_notify(state) < 0) cli_error("serve", "readiness notification: %s", seslm_last_error());

    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0) continue;
        if (sig == SIGHUP) {
            char prev[256], now[256];
            seslm_sd_notify("RELOADING=1\nSTATUS=reloading");
            if (seslm_serve_reload(s, NULL, prev, now, sizeof now) != SESLM_OK)
                cli_error("serve", "SIGHUP reload failed, still serving %s: %s", prev, seslm_last_error());
            seslm_serve_model_id(s, now, sizeof now); // the new model, or the old one still serving
            snprintf(state, sizeof state, "READY=1\nSTATUS=serving %s on port %d", now, seslm_serve_port(s));
            seslm_sd_notify(state);
            continue;
        }
        fprintf(stderr, "seslm serve: %s: draining and shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
        seslm_sd_notify("STOPPING=1\nSTATUS=draining");
        break;
    }
    seslm_serve_stop(s);
    fprintf(stderr, "seslm serve: stopped\n");
    return 0;
}
