/* precision_quality.c — how far reduced-precision embeddings are from the FP32 parent.
 *
 *   precision_quality --model DIR (--fixtures DIR | --inputs FILE) [--precision bf16] [--threads N]
 *                     [--batch B] [--max-len L] [--limit N]
 *
 * Embeds every input with the FP32 encoder and with the given precision (fast CPU backend) and prints
 * one JSON object: min / mean / 1st-percentile cosine to FP32, max |diff|, and with --fixtures also the
 * min cosine of each to the sentence-transformers embeddings (tests/fixtures/oracle/embeddings.f32).
 * --inputs reads one text per line (held-out text, e.g. data/bench/long128.txt). */
#include "../tests/oracle_io.h"
#include "seslm.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double cosine(const float *a, const float *b, int C) {
    double ab = 0, aa = 0, bb = 0;
    for (int c = 0; c < C; c++) ab += (double)a[c] * b[c], aa += (double)a[c] * a[c], bb += (double)b[c] * b[c];
    return ab / sqrt(aa * bb);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int embed_all(const seslm_model *m, const char *precision, int threads, int batch, int max_len, char **texts,
                     const size_t *lens, int n, float *out) {
    seslm_encoder *e = NULL;
    seslm_encoder_opts eo = {.backend = "cpu", .n_threads = threads, .max_batch = batch, .max_seq_len = max_len,
                             .precision = precision};
    if (seslm_encoder_new(&e, m, &eo) != SESLM_OK) return -1;
    const int C = seslm_model_get_config(m)->hidden;
    for (int i = 0; i < n; i += batch) {
        const int nb = n - i < batch ? n - i : batch;
        if (seslm_encoder_embed_texts(e, (const char *const *)texts + i, lens + i, nb, out + (size_t)i * C) != SESLM_OK) {
            seslm_encoder_free(e);
            return -1;
        }
    }
    seslm_encoder_free(e);
    return 0;
}

int main(int argc, char **argv) {
    const char *model = "models/all-MiniLM-L6-v2", *fixtures = NULL, *inputs = NULL, *precision = "bf16";
    int threads = 0, batch = 16, max_len = 0, limit = 1 << 20;
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            printf("usage: precision_quality --model DIR (--fixtures DIR | --inputs FILE) [--precision bf16|int8] "
                   "[--threads N] [--batch B] [--max-len L] [--limit N]\n");
            return 0;
        }
        if (!v) {
            fprintf(stderr, "precision_quality: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--fixtures")) fixtures = v;
        else if (!strcmp(a, "--inputs")) inputs = v;
        else if (!strcmp(a, "--precision")) precision = v;
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--max-len")) max_len = atoi(v);
        else if (!strcmp(a, "--limit")) limit = atoi(v);
        else {
            fprintf(stderr, "precision_quality: unknown option %s\n", a);
            return 2;
        }
    }
    if (!fixtures == !inputs || batch < 1) {
        fprintf(stderr, "precision_quality: one of --fixtures DIR / --inputs FILE is required\n");
        return 2;
    }
    char **texts = NULL;
    size_t *lens = NULL; // explicit: fixture texts may hold NUL bytes
    int n = 0;
    float *st_emb = NULL;
    char path[4096];
    size_t len = 0;
    if (fixtures) { // per input: uint32 LE byte length + UTF-8 bytes
        snprintf(path, sizeof path, "%s/inputs.bin", fixtures);
        texts = malloc((size_t)limit * sizeof *texts), lens = malloc((size_t)limit * sizeof *lens);
        n = texts && lens ? oracle_read_inputs(path, texts, lens, limit) : -1;
        if (n < 0) {
            perror(path);
            return 1;
        }
        snprintf(path, sizeof path, "%s/embeddings.f32", fixtures);
        st_emb = (float *)oracle_slurp(path, &len);
    } else {
        FILE *f = fopen(inputs, "r");
        if (!f) {
            perror(inputs);
            return 1;
        }
        char *line = NULL;
        size_t cap = 0;
        ssize_t l;
        while (n < limit && (l = getline(&line, &cap, f)) >= 0) {
            if (l && line[l - 1] == '\n') line[--l] = 0;
            texts = realloc(texts, (size_t)(n + 1) * sizeof *texts);
            lens = realloc(lens, (size_t)(n + 1) * sizeof *lens);
            lens[n] = (size_t)l;
            texts[n++] = strdup(line);
        }
        free(line);
        fclose(f);
    }
    seslm_model *m = NULL;
    if (n == 0 || seslm_model_load(&m, model) != SESLM_OK) {
        fprintf(stderr, "precision_quality: %s\n", n ? seslm_last_error() : "no inputs");
        return 1;
    }
    const int C = seslm_model_get_config(m)->hidden;
    float *f32 = malloc((size_t)n * C * sizeof *f32), *low = malloc((size_t)n * C * sizeof *low);
    if (embed_all(m, "fp32", threads, batch, max_len, texts, lens, n, f32) != 0 ||
        embed_all(m, precision, threads, batch, max_len, texts, lens, n, low) != 0) {
        fprintf(stderr, "precision_quality: %s\n", seslm_last_error());
        return 1;
    }
    double *cs = malloc((size_t)n * sizeof *cs), sum = 0, maxdiff = 0, st_min_f32 = 2, st_min_low = 2;
    for (int i = 0; i < n; i++) {
        cs[i] = cosine(f32 + (size_t)i * C, low + (size_t)i * C, C);
        sum += cs[i];
        for (int c = 0; c < C; c++) maxdiff = fmax(maxdiff, fabs((double)f32[(size_t)i * C + c] - low[(size_t)i * C + c]));
        if (st_emb && len >= (size_t)(i + 1) * C * sizeof(float)) {
            st_min_f32 = fmin(st_min_f32, cosine(st_emb + (size_t)i * C, f32 + (size_t)i * C, C));
            st_min_low = fmin(st_min_low, cosine(st_emb + (size_t)i * C, low + (size_t)i * C, C));
        }
    }
    qsort(cs, (size_t)n, sizeof *cs, cmp_double);
    printf("{\"precision\":\"%s\",\"inputs\":\"%s\",\"n\":%d,\"max_len\":%d,\"cos_to_fp32_min\":%.7f,"
           "\"cos_to_fp32_p01\":%.7f,\"cos_to_fp32_mean\":%.8f,\"max_abs_diff\":%.3g",
           precision, fixtures ? fixtures : inputs, n, max_len, cs[0], cs[n / 100], sum / n, maxdiff);
    if (st_emb) printf(",\"st_cos_min_fp32\":%.7f,\"st_cos_min_%s\":%.7f", st_min_f32, precision, st_min_low);
    printf("}\n");
    for (int i = 0; i < n; i++) free(texts[i]);
    free(texts), free(lens), free(st_emb), free(f32), free(low), free(cs);
    seslm_model_free(m);
    return 0;
}
