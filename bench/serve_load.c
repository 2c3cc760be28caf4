/* serve_load.c — a bounded loopback load generator for embedding servers (issue 19 §3).
 *
 *   serve_load --port P --clients N --total R [--inputs FILE] [--warmup W] [--path /v1/embed]
 *              [--label NAME] [--timeout-s S]
 *
 * N client threads each send ceil(R / N) requests, one at a time, each a fresh connection
 * ("Connection: close", what both peers support) carrying {"texts": [one line of FILE]} — lines taken in
 * order per client, client i starting at line 7919 i — after W unrecorded warm-up requests each. A request
 * counts when the answer is HTTP 200 with a body holding "embeddings". Prints one JSON object: requests,
 * errors, wall seconds, requests/s (ok requests / wall time of the timed phase), latency p50 / p90 / p99 /
 * max in ms. Exit 1 when any request failed. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int g_port, g_warmup, g_per_client, g_nlines, g_timeout_s = 60;
static const char *g_path = "/v1/embed";
static char **g_lines;
static pthread_barrier_t g_barrier;
static atomic_int g_errors;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* {"texts": ["<line, JSON-escaped>"]} */
static char *body_for(const char *line) {
    size_t n = strlen(line), k = 0;
    char *b = malloc(n * 6 + 32);
    k += (size_t)sprintf(b, "{\"texts\": [\"");
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = (unsigned char)line[i];
        if (c == '"' || c == '\\') b[k++] = '\\', b[k++] = (char)c;
        else if (c < 0x20) k += (size_t)sprintf(b + k, "\\u%04x", c);
        else b[k++] = (char)c;
    }
    k += (size_t)sprintf(b + k, "\"]}");
    b[k] = 0;
    return b;
}

/* One request; 1 when the answer is 200 with embeddings. */
static int request(const char *body) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    struct timeval tv = {g_timeout_s, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return 0;
    }
    const size_t bl = strlen(body);
    char head[256];
    const int hl = snprintf(head, sizeof head,
                            "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n"
                            "Content-Length: %zu\r\n\r\n",
                            g_path, bl);
    int ok = send(fd, head, (size_t)hl, MSG_NOSIGNAL) == hl && send(fd, body, bl, MSG_NOSIGNAL) == (ssize_t)bl;
    size_t cap = 1 << 15, n = 0;
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
    ok = ok && sscanf(buf, "HTTP/1.%*d %d", &code) == 1 && code == 200 && strstr(buf, "\"embeddings\"") != NULL;
    free(buf);
    return ok;
}

typedef struct {
    int id;
    double *lat; // (g_per_client) seconds, -1 = failed
} client;

static void *client_main(void *arg) {
    client *c = arg;
    int line = (int)((7919L * c->id) % g_nlines);
    for (int w = 0; w < g_warmup; w++, line = (line + 1) % g_nlines) {
        char *b = body_for(g_lines[line]);
        request(b);
        free(b);
    }
    pthread_barrier_wait(&g_barrier);
    for (int r = 0; r < g_per_client; r++, line = (line + 1) % g_nlines) {
        char *b = body_for(g_lines[line]);
        const double t0 = now_s();
        const int ok = request(b);
        c->lat[r] = ok ? now_s() - t0 : -1;
        if (!ok) atomic_fetch_add(&g_errors, 1);
        free(b);
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const char *inputs = "data/bench/short.txt", *label = "server";
    int clients = 1, total = 200;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            printf("usage: serve_load --port P --clients N --total R [--inputs FILE] [--warmup W] [--path P] "
                   "[--label NAME] [--timeout-s S]\n");
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "serve_load: %s needs a value\n", argv[i]);
            return 2;
        }
        const char *a = argv[i], *v = argv[++i];
        if (!strcmp(a, "--port")) g_port = atoi(v);
        else if (!strcmp(a, "--clients")) clients = atoi(v);
        else if (!strcmp(a, "--total")) total = atoi(v);
        else if (!strcmp(a, "--inputs")) inputs = v;
        else if (!strcmp(a, "--warmup")) g_warmup = atoi(v);
        else if (!strcmp(a, "--path")) g_path = v;
        else if (!strcmp(a, "--label")) label = v;
        else if (!strcmp(a, "--timeout-s")) g_timeout_s = atoi(v);
        else {
            fprintf(stderr, "serve_load: unknown option %s\n", a);
            return 2;
        }
    }
    if (g_port <= 0 || g_port > 65535 || clients < 1 || clients > 1024 || total < 1 || g_warmup < 0) {
        fprintf(stderr, "serve_load: --port 1..65535, --clients 1..1024 and --total >= 1 are required\n");
        return 2;
    }
    FILE *f = fopen(inputs, "r");
    if (!f) {
        perror(inputs);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        if (len && line[len - 1] == '\n') line[--len] = 0;
        if (!len) continue;
        g_lines = realloc(g_lines, (size_t)(g_nlines + 1) * sizeof *g_lines);
        g_lines[g_nlines++] = strdup(line);
    }
    free(line);
    fclose(f);
    if (!g_nlines) {
        fprintf(stderr, "serve_load: %s has no lines\n", inputs);
        return 1;
    }
    g_per_client = (total + clients - 1) / clients;
    pthread_barrier_init(&g_barrier, NULL, (unsigned)clients + 1);
    client *cs = calloc((size_t)clients, sizeof *cs);
    pthread_t *th = calloc((size_t)clients, sizeof *th);
    for (int i = 0; i < clients; i++) {
        cs[i].id = i;
        cs[i].lat = malloc((size_t)g_per_client * sizeof(double));
        if (pthread_create(&th[i], NULL, client_main, &cs[i]) != 0) {
            fprintf(stderr, "serve_load: cannot start client %d\n", i);
            return 1;
        }
    }
    pthread_barrier_wait(&g_barrier);
    const double t0 = now_s();
    for (int i = 0; i < clients; i++) pthread_join(th[i], NULL);
    const double wall = now_s() - t0;
    const int n = clients * g_per_client;
    double *all = malloc((size_t)n * sizeof *all);
    int ok = 0;
    for (int i = 0; i < clients; i++)
        for (int r = 0; r < g_per_client; r++)
            if (cs[i].lat[r] >= 0) all[ok++] = cs[i].lat[r];
    qsort(all, (size_t)ok, sizeof *all, cmp_double);
#define PCT(p) (ok ? all[(int)((p) / 100.0 * (ok - 1) + 0.5)] * 1e3 : -1.0)
    printf("{\"label\":\"%s\",\"clients\":%d,\"requests\":%d,\"errors\":%d,\"wall_s\":%.3f,\"requests_per_s\":%.2f,"
           "\"p50_ms\":%.2f,\"p90_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f,\"inputs\":\"%s\"}\n",
           label, clients, n, atomic_load(&g_errors), wall, ok / wall, PCT(50), PCT(90), PCT(99), PCT(100), inputs);
    for (int i = 0; i < clients; i++) free(cs[i].lat);
    free(cs), free(th), free(all);
    for (int i = 0; i < g_nlines; i++) free(g_lines[i]);
    free(g_lines);
    return atomic_load(&g_errors) ? 1 : 0;
}
