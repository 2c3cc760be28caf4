/* test_serve_tiny.c — the embedding server in-process on two tiny random models (tiny_model.h), over
 * loopback sockets, so it runs (and runs under ASan/UBSan) without the real model:
 *   (a) /healthz, /v1/embed parity with the encoder called directly, {"text": ...}, bad inputs;
 *   (b) 8 client threads at once: every answer equals the direct embedding (batching is exact);
 *   (c) reloads a -> b -> broken (422, b keeps serving) -> a, and reloads while clients run: every
 *       answer equals the embedding of the model it names (X-Seslm-Model and "model");
 *   (d) /metrics has the expected series; a 1 s telemetry window rotates; stop writes one dump per
 *       retired model. */
#include "serve.h"
#include "test.h"
#include "tiny_model.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>

static int g_port;
static const char *TEXTS[] = {"the cat sat on the mat", "hello world", "quick brown fox jump over the lazy dog",
                              "", "a dog is good. it is !", "emb token ##s"};
#define NT ((int)(sizeof TEXTS / sizeof TEXTS[0]))
#define DIM 16

typedef struct {
    int code;
    char model[256];
    char *body;
} resp;

/* One HTTP/1.1 request on a fresh connection (Connection: close); returns 0 on a transport error. */
static int http(const char *method, const char *path, const char *body, resp *r) {
    memset(r, 0, sizeof *r);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return 0;
    }
    size_t bl = body ? strlen(body) : 0;
    char head[512];
    int hl = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      method, path, bl);
    int ok = send(fd, head, (size_t)hl, MSG_NOSIGNAL) == hl && (!bl || send(fd, body, bl, MSG_NOSIGNAL) == (ssize_t)bl);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    ssize_t k;
    while (ok && (k = recv(fd, buf + n, cap - n, 0)) > 0) {
        n += (size_t)k;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
    }
    close(fd);
    buf[n] = 0;
    char *sep = strstr(buf, "\r\n\r\n");
    if (!ok || !sep || sscanf(buf, "HTTP/1.1 %d", &r->code) != 1) {
        free(buf);
        return 0;
    }
    *sep = 0;
    const char *m = strstr(buf, "X-Seslm-Model: ");
    if (m) sscanf(m + 15, "%255[^\r\n]", r->model);
    r->body = strdup(sep + 4);
    free(buf);
    return 1;
}

static char *embed_body(const char *const *texts, int n) {
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "texts");
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateString(texts[i]));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* max |diff| between the answer's rows and want (n, DIM); -1 if malformed */
static double embed_diff(const char *body, const float *want, int n, char *model, size_t mcap) {
    cJSON *o = cJSON_Parse(body);
    const cJSON *e = cJSON_GetObjectItem(o, "embeddings"), *m = cJSON_GetObjectItem(o, "model");
    double worst = -1;
    if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == n && cJSON_IsString(m)) {
        worst = 0;
        snprintf(model, mcap, "%s", m->valuestring);
        for (int i = 0; i < n; i++) {
            const cJSON *row = cJSON_GetArrayItem(e, i);
            if (cJSON_GetArraySize(row) != DIM) {
                worst = -1;
                break;
            }
            for (int k = 0; k < DIM; k++) {
                double d = fabs(cJSON_GetArrayItem(row, k)->valuedouble - want[i * DIM + k]);
                worst = d > worst ? d : worst;
            }
        }
    }
    cJSON_Delete(o);
    return worst;
}

static float g_want[2][NT * DIM]; // expected embeddings of TEXTS under model a and b
static char g_id[2][256];

static void direct_embed(const char *dir, float *out) {
    seslm_model *m = NULL;
    seslm_encoder *e = NULL;
    if (seslm_model_load(&m, dir) != SESLM_OK || seslm_encoder_new(&e, m, NULL) != SESLM_OK ||
        seslm_encoder_embed_texts(e, TEXTS, NULL, NT, out) != SESLM_OK) {
        fprintf(stderr, "direct embedding failed: %s\n", seslm_last_error());
        exit(1);
    }
    seslm_encoder_free(e);
    seslm_model_free(m);
}

// ---- clients ----------------------------------------------------------------------------------------

typedef struct {
    int idx, iters, errors, wrong;
    atomic_int *stop;
} client;

static void *client_main(void *arg) {
    client *c = arg;
    for (int it = 0; it < c->iters || (c->stop && !atomic_load(c->stop)); it++) {
        int first = (c->idx + it) % NT, n = 1 + (it % 3);
        if (first + n > NT) n = NT - first;
        char *body = embed_body(TEXTS + first, n);
        resp r;
        if (!http("POST", "/v1/embed", body, &r) || r.code != 200) {
            c->errors++;
        } else {
            char model[256] = "";
            int which = strcmp(r.model, g_id[0]) == 0 ? 0 : strcmp(r.model, g_id[1]) == 0 ? 1 : -1;
            double d = which < 0 ? -1 : embed_diff(r.body, g_want[which] + first * DIM, n, model, sizeof model);
            if (d < 0 || d > 1e-5 || strcmp(model, r.model) != 0) c->wrong++;
        }
        free(r.body);
        cJSON_free(body);
        if (c->stop && it > 100000) break;
    }
    return NULL;
}

static void run_clients(int n, int iters, atomic_int *stop, void (*during)(void)) {
    pthread_t th[8];
    client cl[8];
    for (int i = 0; i < n; i++) {
        cl[i] = (client){.idx = i, .iters = iters, .stop = stop};
        pthread_create(&th[i], NULL, client_main, &cl[i]);
    }
    if (during) during();
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        CHECK_MSG(cl[i].errors == 0, "client %d: %d failed requests", i, cl[i].errors);
        CHECK_MSG(cl[i].wrong == 0, "client %d: %d answers differ from the embedding of the model they name", i,
                  cl[i].wrong);
    }
}

static seslm_server *g_srv;
static char g_dir[3][4096];
static atomic_int g_stop;

static void reload_storm(void) {
    for (int k = 0; k < 4; k++) {
        char prev[256], now[256];
        CHECK(seslm_serve_reload(g_srv, g_dir[(k + 1) % 2], prev, now, sizeof now) == SESLM_OK);
        CHECK(strcmp(now, g_id[(k + 1) % 2]) == 0);
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&g_stop, 1);
}

static int count_dumps(const char *dir) {
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) n += de->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

int main(void) {
    char *root = tm_mkdtemp("serve");
    const char *names[3] = {"tiny-a", "tiny-b", "tiny-broken"};
    for (int i = 0; i < 3; i++) {
        tm_model m;
        tm_init(&m, 11 + (uint64_t)i);
        snprintf(g_dir[i], sizeof g_dir[i], "%s/%s", root, names[i]);
        mkdir(g_dir[i], 0755);
        if (!tm_write(&m, g_dir[i], NULL)) return 1;
        tm_free(&m);
    }
    char path[4200], tel[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", g_dir[2]);
    if (truncate(path, 300) != 0) return 1;
    snprintf(tel, sizeof tel, "%s/tel", root);
    mkdir(tel, 0755);
    direct_embed(g_dir[0], g_want[0]);
    direct_embed(g_dir[1], g_want[1]);

    seslm_serve_opts o = {.model_dir = g_dir[0], .port = 0, .telemetry_dir = tel, .node_id = "unit",
                          .max_batch = 4, .threads = 1, .max_texts = 8, .max_body_bytes = 4096,
                          .window_seconds = 1};
    if (seslm_serve_start(&g_srv, &o) != SESLM_OK) {
        fprintf(stderr, "serve_start: %s\n", seslm_last_error());
        return 1;
    }
    g_port = seslm_serve_port(g_srv);
    seslm_serve_model_id(g_srv, g_id[0], sizeof g_id[0]);
    CHECK(strncmp(g_id[0], "tiny-a@", 7) == 0 && strlen(g_id[0]) == 19);

    // (a) basics
    resp r;
    CHECK(http("GET", "/healthz", NULL, &r) && r.code == 200 && strstr(r.body, g_id[0]));
    free(r.body);
    char *body = embed_body(TEXTS, NT);
    char model[256];
    CHECK(http("POST", "/v1/embed", body, &r) && r.code == 200);
    double d = embed_diff(r.body, g_want[0], NT, model, sizeof model);
    CHECK_MSG(d >= 0 && d <= 1e-5, "parity: max diff %g", d);
    CHECK(strcmp(model, g_id[0]) == 0 && strcmp(r.model, g_id[0]) == 0);
    free(r.body);
    cJSON_free(body);
    CHECK(http("POST", "/v1/embed", "{\"text\": \"hello world\"}", &r) && r.code == 200);
    d = embed_diff(r.body, g_want[0] + DIM, 1, model, sizeof model);
    CHECK_MSG(d >= 0 && d <= 1e-5, "{\"text\"}: max diff %g", d);
    free(r.body);
    static const struct {
        const char *method, *path, *body;
        int code;
    } bad[] = {
        {"POST", "/v1/embed", "{\"texts\": [", 400},
        {"POST", "/v1/embed", "{\"texts\": [1]}", 400},
        {"POST", "/v1/embed", "{\"texts\": []}", 400},
        {"POST", "/v1/embed", "{}", 400},
        {"POST", "/v1/embed", "", 400},
        {"POST", "/v1/embed", "{\"texts\": [\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\"]}", 413},
        {"POST", "/v1/embed", "{\"text\": \"\xc3\x28\"}", 400},
        {"GET", "/v1/embed", NULL, 405},
        {"PUT", "/healthz", "x", 405},
        {"GET", "/nope", NULL, 404},
        {"POST", "/admin/reload", "[", 400},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int got = http(bad[i].method, bad[i].path, bad[i].body, &r);
        CHECK_MSG(got && r.code == bad[i].code, "%s %s %s: got %d, want %d", bad[i].method, bad[i].path,
                  bad[i].body ? bad[i].body : "", got ? r.code : -1, bad[i].code);
        CHECK_MSG(got && r.body && strstr(r.body, "\"error\":"), "no JSON error for case %zu", i);
        free(r.body);
    }
    char big[6000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    CHECK(http("POST", "/v1/embed", big, &r) && r.code == 413);
    free(r.body);

    // (b) concurrent clients
    run_clients(8, 12, NULL, NULL);

    // (c) reloads: to b, a broken one, back to a; then a storm of reloads under load
    char req[4300], prev[256];
    snprintf(req, sizeof req, "{\"model\": \"%s\"}", g_dir[1]);
    CHECK(http("POST", "/admin/reload", req, &r) && r.code == 200 && strstr(r.body, "\"model\":\"tiny-b@"));
    free(r.body);
    seslm_serve_model_id(g_srv, g_id[1], sizeof g_id[1]);
    CHECK(strncmp(g_id[1], "tiny-b@", 7) == 0);
    snprintf(req, sizeof req, "{\"model\": \"%s\"}", g_dir[2]);
    CHECK(http("POST", "/admin/reload", req, &r) && r.code == 422 && strstr(r.body, "\"error\":"));
    free(r.body);
    CHECK(http("GET", "/healthz", NULL, &r) && r.code == 200 && strstr(r.body, g_id[1]));
    free(r.body);
    CHECK(seslm_serve_reload(g_srv, g_dir[0], prev, model, sizeof model) == SESLM_OK);
    CHECK(strcmp(prev, g_id[1]) == 0 && strcmp(model, g_id[0]) == 0);
    atomic_store(&g_stop, 0);
    run_clients(4, 0, &g_stop, reload_storm);

    // (d) metrics, then stop: 6 successful reloads retired 6 slots, the stop retires the 7th
    CHECK(http("GET", "/metrics", NULL, &r) && r.code == 200);
    CHECK(r.body && strstr(r.body, "seslm_model_reloads_total{result=\"success\"} 6"));
    CHECK(r.body && strstr(r.body, "seslm_model_reloads_total{result=\"failure\"} 1"));
    CHECK(r.body && strstr(r.body, "seslm_batch_size_bucket{model=\"tiny-a@"));
    CHECK(r.body && strstr(r.body, "seslm_http_requests_total{path=\"/v1/embed\",code=\"413\"} 2"));
    free(r.body);
    int before = count_dumps(tel);
    struct timespec ts = {1, 300000000}; // one more window closes: its dump is written while we wait
    nanosleep(&ts, NULL);
    int rotated = count_dumps(tel) - before;
    CHECK_MSG(rotated >= 1, "no telemetry dump in 1.3 s with a 1 s window");
    seslm_serve_stop(g_srv);
    int dumps = count_dumps(tel);
    CHECK_MSG(dumps >= 8 && dumps >= before + rotated + 1,
              "%d telemetry dumps: expected the 6 retired models', %d rotations and the final window", dumps, rotated);
    tm_rmtree(root);
    free(root);
    return test_report("test_serve_tiny");
}
