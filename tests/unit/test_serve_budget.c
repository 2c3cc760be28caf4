/* test_serve_budget.c — the serving batcher's token budget (--max-batch-tokens), in-process on a tiny
 * random model (tiny_model.h) over loopback:
 *   - one request of 16 texts under a budget of B tokens runs in at least ceil(tokens / B) forward passes
 *     (the seslm_batch_size histogram's count), and every answer equals the encoder called directly;
 *   - a single text longer than the budget still runs (the first text of a pass always fits);
 *   - without a budget the same request is one pass (max_batch 32 >= 16 texts). */
#include "serve.h"
#include "test.h"
#include "tiny_model.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define DIM 16
#define NTEXT 16

static int g_port;

/* One HTTP/1.1 request on a fresh connection; returns the status (0 on a transport error), *body malloc'd. */
static int http(const char *method, const char *path, const char *body, char **out) {
    *out = NULL;
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
    int code = 0;
    char *sep = strstr(buf, "\r\n\r\n");
    if (!ok || !sep || sscanf(buf, "HTTP/1.1 %d", &code) != 1) code = 0;
    else *out = strdup(sep + 4);
    free(buf);
    return code;
}

/* seslm_batch_size_count of /metrics (the number of forward passes so far); -1 if absent. */
static long passes(void) {
    char *m = NULL;
    long n = -1;
    if (http("GET", "/metrics", NULL, &m) == 200) {
        const char *p = strstr(m, "seslm_batch_size_count{");
        if (p && (p = strchr(p, '}'))) n = strtol(p + 1, NULL, 10);
    }
    free(m);
    return n;
}

static const char *text_of(int i) {
    static const char *T[] = {"the cat sat on the mat", "hello world", "quick brown fox jump over the lazy dog",
                              "a dog is good. it is !", "emb token ##s", "cat dog"};
    return T[i % 6];
}

/* Posts the NTEXT texts; checks every row against want; returns n_tokens (-1 on failure). */
static long post_all(const float *want) {
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "texts");
    for (int i = 0; i < NTEXT; i++) cJSON_AddItemToArray(arr, cJSON_CreateString(text_of(i)));
    char *body = cJSON_PrintUnformatted(o), *resp = NULL;
    cJSON_Delete(o);
    long ntok = -1;
    if (http("POST", "/v1/embed", body, &resp) == 200) {
        cJSON *r = cJSON_Parse(resp);
        const cJSON *e = cJSON_GetObjectItem(r, "embeddings"), *nt = cJSON_GetObjectItem(r, "n_tokens");
        double worst = 0;
        if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == NTEXT && cJSON_IsNumber(nt)) {
            for (int i = 0; i < NTEXT; i++)
                for (int k = 0; k < DIM; k++)
                    worst = fmax(worst, fabs(cJSON_GetArrayItem(cJSON_GetArrayItem(e, i), k)->valuedouble - want[i * DIM + k]));
            CHECK_MSG(worst <= 1e-5, "answers differ from the direct embedding by %g", worst);
            ntok = (long)nt->valuedouble;
        }
        cJSON_Delete(r);
    }
    free(body);
    free(resp);
    return ntok;
}

static int serve_with_budget(const char *dir, int budget, seslm_server **srv) {
    seslm_serve_opts o = {.model_dir = dir, .port = 0, .max_batch = 32, .max_batch_tokens = budget, .threads = 1,
                          .max_texts = 64, .max_body_bytes = 1 << 16};
    if (seslm_serve_start(srv, &o) != SESLM_OK) {
        fprintf(stderr, "serve_start: %s\n", seslm_last_error());
        return 0;
    }
    g_port = seslm_serve_port(*srv);
    return 1;
}

int main(void) {
    char *root = tm_mkdtemp("budget");
    tm_model tm;
    tm_init(&tm, 5);
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/tiny", root);
    mkdir(dir, 0755);
    if (!tm_write(&tm, dir, NULL)) return 1;
    tm_free(&tm);
    float want[NTEXT * DIM];
    {
        seslm_model *m = NULL;
        seslm_encoder *e = NULL;
        const char *texts[NTEXT];
        for (int i = 0; i < NTEXT; i++) texts[i] = text_of(i);
        if (seslm_model_load(&m, dir) != SESLM_OK || seslm_encoder_new(&e, m, NULL) != SESLM_OK ||
            seslm_encoder_embed_texts(e, texts, NULL, NTEXT, want) != SESLM_OK) {
            fprintf(stderr, "direct embedding failed: %s\n", seslm_last_error());
            return 1;
        }
        seslm_encoder_free(e);
        seslm_model_free(m);
    }

    // budget of 12 tokens: every pass holds at most 12 tokens unless one text alone is longer
    seslm_server *srv = NULL;
    const int budget = 12;
    if (!serve_with_budget(dir, budget, &srv)) return 1;
    const long p0 = passes();
    const long ntok = post_all(want);
    const long p1 = passes();
    CHECK(p0 >= 0 && ntok > 0);
    printf("budget %d: %ld tokens in %ld passes\n", budget, ntok, p1 - p0);
    CHECK_MSG(p1 - p0 >= (ntok + budget - 1) / budget, "%ld tokens in %ld passes under a %d-token budget", ntok,
              p1 - p0, budget);
    CHECK(p1 - p0 <= NTEXT);
    // a text longer than the whole budget still runs, alone
    char *resp = NULL;
    CHECK(http("POST", "/v1/embed",
               "{\"text\": \"quick brown fox jump over the lazy dog quick brown fox jump over the lazy dog\"}", &resp) == 200);
    CHECK(resp && strstr(resp, "\"embeddings\""));
    free(resp);
    seslm_serve_stop(srv);

    // no budget: one pass
    if (!serve_with_budget(dir, 0, &srv)) return 1;
    const long q0 = passes();
    CHECK(post_all(want) == ntok);
    const long q1 = passes();
    CHECK_MSG(q1 - q0 == 1, "without a budget %d texts took %ld passes", NTEXT, q1 - q0);
    seslm_serve_stop(srv);
    tm_rmtree(root);
    free(root);
    return test_report("test_serve_budget");
}
