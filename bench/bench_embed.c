/* bench_embed.c — sentences/s and per-batch latency of `seslm` embedding, end to end (tokenize +
 * forward + pool, what a caller pays), over the lines of an input file taken in order, cyclically.
 *
 *   bench_embed --model DIR --inputs FILE --batch B [--max-len L] [--threads N] [--warmup W]
 *               [--repeats R] [--backend cpu] [--telemetry on|off]
 *
 * Prints one JSON object: per-batch latency p50 / p95 / min / max (ms), sentences/s over all timed
 * batches, peak RSS. Compare with bench/ort/ort_bench.py, run on the same inputs in the same session. */
#include "seslm.h"
#include "telemetry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(const double *sorted, int n, double p) { // nearest-rank percentile
    int k = (int)(p / 100.0 * n + 0.999999) - 1;
    return sorted[k < 0 ? 0 : (k >= n ? n - 1 : k)];
}

int main(int argc, char **argv) {
    const char *model = "models/all-MiniLM-L6-v2", *inputs = NULL, *backend = "cpu", *precision = "fp32";
    int batch = 1, max_len = 0, threads = 0, warmup = 10, repeats = 100, telemetry = 0;
    for (int i = 1; i < argc; i += 2) { // every option takes one value
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            printf("usage: bench_embed --model DIR --inputs FILE --batch B [--max-len L] [--threads N] "
                   "[--warmup W] [--repeats R] [--backend cpu|cpu-ref] [--precision fp32|bf16|int8] [--telemetry on|off]\n");
            return 0;
        }
        if (!v) {
            fprintf(stderr, "bench_embed: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--inputs")) inputs = v;
        else if (!strcmp(a, "--backend")) backend = v;
        else if (!strcmp(a, "--precision")) precision = v;
        else if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--max-len")) max_len = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--warmup")) warmup = atoi(v);
        else if (!strcmp(a, "--repeats")) repeats = atoi(v);
        else if (!strcmp(a, "--telemetry")) telemetry = !strcmp(v, "on");
        else {
            fprintf(stderr, "bench_embed: unknown option %s\n", a);
            return 2;
        }
    }
    if (!inputs || batch < 1 || repeats < 1 || warmup < 0) {
        fprintf(stderr, "bench_embed: --inputs FILE and positive --batch/--repeats are required\n");
        return 2;
    }
    FILE *f = fopen(inputs, "r");
    if (!f) {
        perror(inputs);
        return 1;
    }
    char **texts = NULL, *line = NULL;
    size_t cap = 0;
    int n = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        if (len && line[len - 1] == '\n') line[--len] = 0;
        texts = realloc(texts, (size_t)(n + 1) * sizeof *texts);
        texts[n++] = strdup(line);
    }
    free(line);
    fclose(f);
    if (n == 0) {
        fprintf(stderr, "bench_embed: %s is empty\n", inputs);
        return 1;
    }
    seslm_model *m = NULL;
    seslm_encoder *e = NULL;
    seslm_encoder_opts eo = {.backend = backend, .n_threads = threads, .max_batch = batch, .max_seq_len = max_len,
                             .precision = precision};
    if (seslm_model_load(&m, model) != SESLM_OK || seslm_encoder_new(&e, m, &eo) != SESLM_OK) {
        fprintf(stderr, "bench_embed: %s\n", seslm_last_error());
        return 1;
    }
    seslm_telemetry *tel = NULL;
    if (telemetry) {
        if (seslm_telemetry_new(&tel, m, NULL) != SESLM_OK) {
            fprintf(stderr, "bench_embed: %s\n", seslm_last_error());
            return 1;
        }
        seslm_encoder_set_telemetry(e, tel);
    }
    const int C = seslm_model_get_config(m)->hidden;
    float *out = malloc((size_t)batch * C * sizeof *out);
    const char **bt = malloc((size_t)batch * sizeof *bt);
    double *lat = malloc((size_t)repeats * sizeof *lat), total = 0;
    int next = 0;
    for (int r = -warmup; r < repeats; r++) {
        for (int b = 0; b < batch; b++) bt[b] = texts[(next + b) % n];
        next = (next + batch) % n;
        double t0 = now_ms();
        if (seslm_encoder_embed_texts(e, bt, NULL, batch, out) != SESLM_OK) {
            fprintf(stderr, "bench_embed: %s\n", seslm_last_error());
            return 1;
        }
        double dt = now_ms() - t0;
        if (r >= 0) {
            lat[r] = dt;
            total += dt;
        }
    }
    qsort(lat, (size_t)repeats, sizeof *lat, cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"peer\":\"seslm\",\"telemetry\":%s,\"backend\":\"%s\",\"precision\":\"%s\",\"threads\":%d,\"batch\":%d,\"max_len\":%d,\"inputs\":\"%s\","
           "\"repeats\":%d,\"sentences_per_s\":%.2f,\"p50_ms\":%.3f,\"p95_ms\":%.3f,\"min_ms\":%.3f,\"max_ms\":%.3f,"
           "\"peak_rss_mb\":%.1f}\n",
           telemetry ? "true" : "false", backend, precision, threads, batch, max_len, inputs, repeats, batch * repeats / (total / 1e3), pct(lat, repeats, 50),
           pct(lat, repeats, 95), lat[0], lat[repeats - 1], ru.ru_maxrss / 1024.0);
    free(out), free(bt), free(lat);
    for (int i = 0; i < n; i++) free(texts[i]);
    free(texts);
    seslm_encoder_free(e);
    seslm_telemetry_free(tel);
    seslm_model_free(m);
    return 0;
}
