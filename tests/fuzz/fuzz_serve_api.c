/* fuzz_serve_api.c — libFuzzer target: the serving node's request handlers on arbitrary request bodies, in
 * process (no sockets: libmicrohttpd's own parsing is not ours to fuzz), against a live server on a tiny random
 * BERT model (tests/tiny_model.h) with an intent head that may learn new intents.
 *
 * The first byte picks the endpoint (modulo the table below), the rest is the body:
 *   the compatible APIs (serve_api_handle): OpenAI /v1/embeddings and /v1/models/{id}, TEI /embed and /,
 *   KServe v2 /v2/models/{m}/infer, and GET /info; the intent endpoints (serve_intent_handle): /v1/intent and
 *   /v1/feedback; the conversation endpoint /v1/message (serve_message_handle) under configs/dialog.yaml.
 * Invariants checked on every input (abort() on violation, which libFuzzer reports as a crash):
 *   - the status is 200 or a 4xx / 503: a client's body never makes the node answer 500 (nor crash, leak or
 *     read out of bounds: ASan and UBSan run underneath);
 *   - the answer is a non-empty body, and a JSON one parses;
 *   - the node still answers a fixed, valid embedding request with 200 afterwards (every 64th input).
 * FUZZ_SERVE_VERBOSE=1 prints each request's endpoint, status and answer.  * Seeds: tests/fuzz/corpus_serve_api/ (a valid and a malformed body per endpoint). */
#include "api.h"
#include "dialog_policy.h"
#include "intent.h"
#include "tiny_model.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fuzz_die(const char *what, int code, const char *body) {
    fprintf(stderr, "fuzz_serve_api: invariant violated: %s (HTTP %d: %.300s)\n", what, code, body ? body : "");
    abort();
}

static seslm_server *g_srv;
static char *g_root;
static seslm_dialog_policy g_policy;

static const struct {
    serve_route r;
    const char *method, *url;
} ENDPOINTS[] = {
    {R_OPENAI, "POST", "/v1/embeddings"}, {R_OPENAI, "GET", "/v1/models/tiny"}, {R_TEI, "POST", "/embed"},
    {R_TEI, "POST", "/"},                 {R_KSERVE, "POST", "/v2/models/tiny/infer"},
    {R_TEI, "GET", "/info"},              {R_INTENT, "POST", "/v1/intent"},      {R_FEEDBACK, "POST", "/v1/feedback"},
    {R_MESSAGE, "POST", "/v1/message"},
};
#define N_ENDPOINTS ((int)(sizeof ENDPOINTS / sizeof ENDPOINTS[0]))

static void cleanup(void) {
    if (g_srv) seslm_serve_stop(g_srv);
    seslm_dialog_policy_free(&g_policy);
    if (g_root) tm_rmtree(g_root), free(g_root);
}

/* A tiny model, an intent head for it fitted on random 16-wide embeddings of the intents configs/dialog.yaml names,
 * and that dialog policy (sessions in memory). */
static void start_server(void) {
    g_root = tm_mkdtemp("fuzz-serve");
    char dir[4200], head[4200], log[4200];
    snprintf(dir, sizeof dir, "%s/tiny", g_root);
    snprintf(head, sizeof head, "%s/head.safetensors", g_root);
    snprintf(log, sizeof log, "%s/feedback.jsonl", g_root);
    mkdir(dir, 0755);
    tm_model tm;
    tm_init(&tm, 7);
    if (!tm_write(&tm, dir, NULL)) fuzz_die("cannot write the tiny model", 0, NULL);
    tm_free(&tm);
    enum { D = 16, N = 30 };
    float X[N * D];
    const char *labels[N];
    static const char *const NAMES[5] = {"request_data", "ask_question", "confirmation", "correction", "end_conversation"};
    for (int i = 0; i < N; i++) {
        labels[i] = NAMES[i % 5];
        for (int d = 0; d < D; d++) X[i * D + d] = tm_rand_sym() + (d == i % 5 ? 2.0f : 0.0f);
    }
    seslm_intent_opts o;
    seslm_intent_opts_default(&o);
    o.input_dim = D;
    seslm_intent_head *h = NULL;
    if (seslm_intent_new(&h, &o) != SESLM_OK || seslm_intent_fit(h, X, labels, N) != SESLM_OK ||
        seslm_intent_save(h, head, NULL) != SESLM_OK)
        fuzz_die(seslm_last_error(), 0, NULL);
    seslm_intent_free(h);
    if (seslm_dialog_policy_load(&g_policy, SESLM_FUZZ_DIR "/../../configs/dialog.yaml") != SESLM_OK)
        fuzz_die(seslm_last_error(), 0, NULL);
    seslm_serve_opts so = {.model_dir = dir, .port = 0, .max_batch = 8, .threads = 1, .max_texts = 16,
                           .max_body_bytes = 1 << 16, .intent_head = head, .intent_allow_new = 1, .feedback_log = log,
                           .dialog_policy = &g_policy};
    if (seslm_serve_start(&g_srv, &so) != SESLM_OK) fuzz_die(seslm_last_error(), 0, NULL);
    atexit(cleanup);
}

static int handle(int e, const char *body, size_t len, sbuf *out) {
    char model[SERVE_ID_CAP] = "";
    const char *ctype = "application/json";
    if (ENDPOINTS[e].r == R_INTENT || ENDPOINTS[e].r == R_FEEDBACK)
        return serve_intent_handle(g_srv, ENDPOINTS[e].r, body, len, out, model);
    if (ENDPOINTS[e].r == R_MESSAGE) return serve_message_handle(g_srv, body, len, out, model);
    return serve_api_handle(g_srv, ENDPOINTS[e].r, ENDPOINTS[e].url, ENDPOINTS[e].method, body, len, out, &ctype, model);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static long runs;
    if (!g_srv) start_server();
    if (size < 1) return 0;
    const int e = data[0] % N_ENDPOINTS;
    char *body = malloc(size); // exactly the body's bytes: ASan sees a read past its end
    if (!body) return 0;
    memcpy(body, data + 1, size - 1);
    sbuf out = {0};
    const int code = handle(e, body, size - 1, &out);
    free(body);
    if (getenv("FUZZ_SERVE_VERBOSE")) fprintf(stderr, "%s %s -> %d %.200s\n", ENDPOINTS[e].method, ENDPOINTS[e].url, code, out.p);
    if (!(code == 200 || (code >= 400 && code < 500) || code == 503)) fuzz_die("a status other than 200, 4xx or 503", code, out.p);
    if (out.oom || !out.p || !out.n) fuzz_die("an empty answer", code, out.p);
    if (out.p[0] == '{' || out.p[0] == '[') {
        cJSON *j = cJSON_ParseWithLength(out.p, out.n);
        if (!j) fuzz_die("an answer that is not JSON", code, out.p);
        cJSON_Delete(j);
    }
    free(out.p);
    if (++runs % 64 == 0) { // the node still works
        static const char ok[] = "{\"model\": \"tiny\", \"input\": [\"hello world\", \"a b\"]}";
        sbuf o2 = {0};
        const int c2 = handle(0, ok, sizeof ok - 1, &o2);
        if (c2 != 200) fuzz_die("a valid request failed after fuzzed ones", c2, o2.p);
        free(o2.p);
    }
    return 0;
}
