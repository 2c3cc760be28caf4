/* bench_int8.c — the encoder's INT8 product on each kernel this CPU runs, against the F32 product the parent
 * uses, at MiniLM's shapes; every kernel of a shape timed in one interleaved loop (same machine state).
 *
 *   bench_int8 [--threads N] [--repeats R] [--no-portable]
 *
 * One JSON line per (shape, M): the median ms and GOP/s (2 M N K) of
 *   f32          the fast backend's F32 linear (what the parent runs)
 *   int8         the fast backend's INT8 linear: activations quantized per row + the best INT8 kernel
 *   qgemm_<isa>  the INT8 product alone (activations already quantized) on each kernel: c, avx2, avx512vnni */
#include "backend.h"
#include "quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static int cmp_d(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

enum { MAXK = 5 }; // f32, int8, and up to 3 product kernels

int main(int argc, char **argv) {
    int threads = 1, repeats = 15, portable = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            printf("usage: bench_int8 [--threads N] [--repeats R] [--no-portable]\n"
                   "  --no-portable  skip the portable C product (it takes most of the run)\n");
            return 0;
        }
        if (!strcmp(argv[i], "--no-portable")) {
            portable = 0;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "bench_int8: %s needs a value\n", argv[i]);
            return 2;
        }
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeats")) repeats = atoi(argv[++i]);
        else {
            fprintf(stderr, "bench_int8: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (threads < 1 || repeats < 3) {
        fprintf(stderr, "bench_int8: --threads >= 1 and --repeats >= 3\n");
        return 2;
    }
    const seslm_backend *be = seslm_backend_cpu_fast();
    be->set_threads(threads);
    const char *best = seslm_qgemm_isa();
    const char *isas[3] = {"c", "avx2", "avx512vnni"};
    const int nisa = !strcmp(best, "avx512vnni") ? 3 : !strcmp(best, "avx2") ? 2 : 1;
    // (N, K): fused QKV, attention output, FFN in, FFN out of MiniLM; M: one short sentence, 32 of them
    const int shapes[4][2] = {{1152, 384}, {384, 384}, {1536, 384}, {384, 1536}};
    const char *names[4] = {"qkv", "attn_out", "ffn_in", "ffn_out"};
    const int Ms[2] = {12, 384};
    for (int s = 0; s < 4; s++)
        for (int mi = 0; mi < 2; mi++) {
            const int M = Ms[mi], N = shapes[s][0], K = shapes[s][1];
            float *w = malloc((size_t)N * K * sizeof *w), *x = malloc((size_t)M * K * sizeof *x);
            float *y = malloc((size_t)M * N * sizeof *y), *b = calloc((size_t)N, sizeof *b);
            float *sw = malloc((size_t)N * sizeof *sw), *sa = malloc((size_t)M * sizeof *sa);
            int8_t *qw = malloc((size_t)N * K), *qa = malloc((size_t)M * K + 4);
            double *t = malloc((size_t)MAXK * repeats * sizeof *t);
            if (!w || !x || !y || !b || !sw || !sa || !qw || !qa || !t) {
                fprintf(stderr, "bench_int8: out of memory\n");
                return 1;
            }
            uint64_t r = 0x9E3779B97F4A7C15ull;
            for (size_t i = 0; i < (size_t)N * K; i++) {
                r ^= r << 13, r ^= r >> 7, r ^= r << 17;
                w[i] = (float)(r >> 40) / (float)(1 << 24) - 0.5f;
            }
            for (size_t i = 0; i < (size_t)M * K; i++) x[i] = w[i % ((size_t)N * K)];
            seslm_quantize_weight(qw, sw, w, N, K);
            seslm_quantize_rows(qa, sa, x, M, K, K);
            seslm_weight F = {.N = N, .K = K, .w = w, .wp = seslm_weight_pack32(w, N, K)};
            seslm_weight Q = {.N = N, .K = K, .q = qw, .qscale = sw};
            Q.qp = seslm_qweight_pack(qw, N, K, &Q.qsum);
            if (!F.wp || !Q.qp) {
                fprintf(stderr, "bench_int8: out of memory\n");
                return 1;
            }
            const int nk = 2 + nisa;
            for (int rep = -2; rep < repeats; rep++) // two warm-up rounds, then timed, interleaved
                for (int k = 0; k < nk; k++) {
                    const double t0 = now_ms();
                    if (k == 0) be->linear(y, x, &F, b, M);
                    else if (k == 1) be->linear(y, x, &Q, b, M);
                    else if (k > 2 || portable) seslm_qgemm_fast(NULL, y, qa, K, sa, Q.qp, Q.qsum, sw, b, M, N, K, isas[k - 2]);
                    if (rep >= 0) t[(size_t)k * repeats + rep] = now_ms() - t0;
                }
            printf("{\"shape\":\"%s\",\"M\":%d,\"N\":%d,\"K\":%d,\"threads\":%d,\"best_int8\":\"%s\"", names[s], M, N, K,
                   threads, best);
            const double gop = 2.0 * M * N * K / 1e6;
            for (int k = 0; k < nk; k++) {
                if (k == 2 && !portable) continue;
                qsort(t + (size_t)k * repeats, (size_t)repeats, sizeof *t, cmp_d);
                const double med = t[(size_t)k * repeats + repeats / 2];
                char key[32];
                snprintf(key, sizeof key, "%s", k == 0 ? "f32" : k == 1 ? "int8" : "qgemm_");
                if (k >= 2) strncat(key, isas[k - 2], sizeof key - strlen(key) - 1);
                printf(",\"%s_ms\":%.4f,\"%s_gops\":%.1f", key, med, key, gop / med);
            }
            printf("}\n");
            fflush(stdout);
            free(w), free(x), free(y), free(b), free(sw), free(sa), free(qw), free(qa), free(t);
            free(F.wp), free(Q.qp), free(Q.qsum);
        }
    return 0;
}
