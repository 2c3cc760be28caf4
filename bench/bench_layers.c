/* bench_layers.c — one encoder layer of MiniLM, op by op, at long inputs (issue 19 §4), FP32 and BF16
 * linear layers interleaved in one run, against the machine's measured peak.
 *
 *   bench_layers [--threads N] [--repeats R] [--lens 128,256,512]
 *
 * For each sequence length L (batch 1) and each op — fused QKV (L x 1152 x 384), attention (12 heads of
 * 32), attention output (L x 384 x 384), FFN in + GELU (L x 1536 x 384), FFN out (L x 384 x 1536), the two
 * layer norms — the median time of R repeats (ops interleaved round by round, so drift hits all alike),
 * the spread (p90 - p10) / median, and GFLOP/s (2 M N K for products; 4 L^2 H D for attention), from wall
 * time and from process CPU time (the latter is what a core achieves while it runs: on a shared machine
 * wall time also counts the slices other processes took; with --threads 1 it is one core's time). The peak
 * is measured first by register-only loops (16 independent FMA / vdpbf16ps chains) on one thread,
 * times the thread count. One JSON line per (L, op, precision), then one with the peaks. */
#include "backend.h"
#include "bf16.h"
#include "pool.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_s(void) { // process CPU time: with --threads 1, the one thread's time on a core
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
__attribute__((target("avx512f"), noinline)) static float peak_fp32_loop(long iters) {
#define DECL(i) __m512 a##i = _mm512_set1_ps(0.001f * (i + 1));
    CHAINS(DECL)
    const __m512 m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-7f);
    for (long t = 0; t < iters; t++) {
#define STEP(i) a##i = _mm512_fmadd_ps(a##i, m, c);
        CHAINS(STEP)
        __asm__ volatile("" ::: "memory");
    }
    float s = 0;
#define SUM(i) s += _mm512_reduce_add_ps(a##i);
    CHAINS(SUM)
    return s;
}
__attribute__((target("avx512f,avx512bf16"), noinline)) static float peak_bf16_loop(long iters) {
    CHAINS(DECL)
    const __m512bh x = (__m512bh)_mm512_set1_epi32(0x3f803f80), y = (__m512bh)_mm512_set1_epi32(0x33d633d6);
    for (long t = 0; t < iters; t++) {
#define STEPB(i) a##i = _mm512_dpbf16_ps(a##i, x, y);
        CHAINS(STEPB)
        __asm__ volatile("" ::: "memory");
    }
    float s = 0;
    CHAINS(SUM)
    return s;
}
// GFLOP/s of one thread: the best of 200 short tries (~0.3 ms each, shorter than a scheduler time slice:
// the machine is shared, and the best try is the one no other process interrupted)
static double peak_gflops(int bf16) {
    const long iters = 50000;
    double best = 0;
    volatile float sink = 0;
    for (int t = 0; t < 200; t++) {
        const double t0 = now_s();
        sink += bf16 ? peak_bf16_loop(iters) : peak_fp32_loop(iters);
        const double dt = now_s() - t0;
        const double flops = (double)iters * 16 * 16 * (bf16 ? 4 : 2); // dpbf16: 2 products + 2 adds per lane
        best = fmax(best, flops / dt / 1e9);
    }
    (void)sink;
    return best;
}
#else
static double peak_gflops(int bf16) {
    (void)bf16;
    return NAN;
}
#endif

enum { OP_QKV, OP_ATTN, OP_AO, OP_FF1, OP_FF2, OP_LN, OP_N };
static const char *op_names[OP_N] = {"qkv", "attention", "attn_out", "ffn_in_gelu", "ffn_out", "layernorm_x2"};

static float *rand_floats(size_t n, float scale) {
    float *p = malloc(n * sizeof *p);
    uint32_t s = 12345;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = ((float)(s >> 8) / (1 << 24) - 0.5f) * scale;
    }
    return p;
}

typedef struct {
    seslm_weight w32, wb;
} lin_pair;

static lin_pair lin_make(int N, int K) {
    lin_pair p;
    memset(&p, 0, sizeof p);
    float *w = rand_floats((size_t)N * K, 0.1f);
    uint16_t *b = malloc((size_t)N * K * sizeof *b);
    seslm_bf16_from_f32(b, w, (size_t)N * K);
    p.w32 = (seslm_weight){.w = w, .wp = seslm_weight_pack32(w, N, K), .N = N, .K = K};
    p.wb = (seslm_weight){.bwp = seslm_bf16_pack(b, N, K), .N = N, .K = K};
    free(b);
    return p;
}

static void lin_free(lin_pair *p) {
    free((float *)p->w32.w), free(p->w32.wp), free(p->wb.bwp);
}

int main(int argc, char **argv) {
    int threads = 1, repeats = 15;
    int lens[8] = {128, 256, 512}, nlens = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            printf("usage: bench_layers [--threads N] [--repeats R] [--lens 128,256,512]\n");
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "bench_layers: %s needs a value\n", argv[i]);
            return 2;
        }
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeats")) repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--lens")) {
            nlens = 0;
            for (char *s = argv[++i]; *s && nlens < 8;) {
                lens[nlens++] = (int)strtol(s, &s, 10);
                if (*s == ',') s++;
                else if (*s) break;
            }
        } else {
            fprintf(stderr, "bench_layers: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (repeats < 3 || threads < 1) {
        fprintf(stderr, "bench_layers: --repeats >= 3 and --threads >= 1\n");
        return 2;
    }
    const seslm_backend *be = seslm_backend_cpu_fast();
    be->set_threads(threads);
    const double pk32 = peak_gflops(0), pk16 = peak_gflops(1);
    printf("{\"peak\":true,\"threads\":%d,\"peak_fp32_gflops_1t\":%.1f,\"peak_bf16_gflops_1t\":%.1f,\"isa_bf16\":\"%s\"}\n",
           threads, pk32, pk16, seslm_bf16_isa());
    fflush(stdout);
    const int C = 384, F = 1536, H = 12, D = 32;
    lin_pair qkv = lin_make(3 * C, C), ao = lin_make(C, C), ff1 = lin_make(F, C), ff2 = lin_make(C, F);
    float *bias = rand_floats(F * 3, 0.1f), *g = rand_floats(C, 1.0f), *beta = rand_floats(C, 0.1f);
    for (int li = 0; li < nlens; li++) {
        const int L = lens[li];
        float *x = rand_floats((size_t)L * C, 2.0f), *qkvb = rand_floats((size_t)L * 3 * C, 1.0f);
        float *ctx = malloc((size_t)L * C * sizeof(float)), *tmp = malloc((size_t)L * C * sizeof(float));
        float *ffn = malloc((size_t)L * F * sizeof(float)), *xs = malloc((size_t)L * C * sizeof(float));
        const size_t sf = seslm_attention_scratch_floats(L, D, threads);
        float *scratch = malloc(sf * sizeof(float));
        int off = 0, len = L;
        double *t[OP_N][2], *tc[OP_N][2];
        for (int o = 0; o < OP_N; o++)
            for (int p = 0; p < 2; p++) {
                t[o][p] = malloc((size_t)repeats * sizeof(double));
                tc[o][p] = malloc((size_t)repeats * sizeof(double));
            }
        for (int r = -1; r < repeats; r++) // r = -1: warm-up
            for (int p = 0; p < 2; p++)
                for (int o = 0; o < OP_N; o++) {
                    const double t0 = now_s(), c0 = cpu_s();
                    switch (o) {
                    case OP_QKV: be->linear(qkvb, x, p ? &qkv.wb : &qkv.w32, bias, L); break;
                    case OP_ATTN: be->attention(ctx, qkvb, &off, &len, 1, H, D, scratch, sf, NULL); break;
                    case OP_AO: be->linear(tmp, ctx, p ? &ao.wb : &ao.w32, bias, L); break;
                    case OP_FF1:
                        be->linear(ffn, x, p ? &ff1.wb : &ff1.w32, bias, L);
                        be->gelu(ffn, (size_t)L * F);
                        break;
                    case OP_FF2: be->linear(tmp, ffn, p ? &ff2.wb : &ff2.w32, bias, L); break;
                    case OP_LN:
                        memcpy(xs, x, (size_t)L * C * sizeof(float));
                        be->add_layernorm(xs, tmp, g, beta, L, C, 1e-12f);
                        be->add_layernorm(xs, tmp, g, beta, L, C, 1e-12f);
                        break;
                    }
                    if (r >= 0) t[o][p][r] = now_s() - t0, tc[o][p][r] = cpu_s() - c0;
                }
        for (int o = 0; o < OP_N; o++)
            for (int p = 0; p < 2; p++) {
                if ((o == OP_ATTN || o == OP_LN) && p == 1) continue; // FP32 in both precisions
                qsort(t[o][p], (size_t)repeats, sizeof(double), cmp_double);
                qsort(tc[o][p], (size_t)repeats, sizeof(double), cmp_double);
                const double cmed = tc[o][p][repeats / 2];
                const double med = t[o][p][repeats / 2], p10 = t[o][p][repeats / 10],
                             p90 = t[o][p][repeats - 1 - repeats / 10];
                double flops = 0;
                switch (o) {
                case OP_QKV: flops = 2.0 * L * 3 * C * C; break;
                case OP_ATTN: flops = 4.0 * L * L * H * D; break;
                case OP_AO: flops = 2.0 * L * C * C; break;
                case OP_FF1:
                case OP_FF2: flops = 2.0 * L * F * C; break;
                default: break;
                }
                const double gfs = flops / med / 1e9, peak = (p ? pk16 : pk32) * threads;
                const double gfc = flops / cmed / 1e9 / threads; // per core-second of CPU time
                printf("{\"L\":%d,\"op\":\"%s\",\"precision\":\"%s\",\"threads\":%d,\"median_ms\":%.4f,\"spread\":%.3f,"
                       "\"gflops\":%.1f,\"pct_of_peak\":%.1f,\"cpu_ms\":%.4f,\"gflops_per_core_cpu\":%.1f,"
                       "\"pct_of_core_peak_cpu\":%.1f}\n",
                       L, op_names[o], p ? "bf16" : "fp32", threads, med * 1e3, (p90 - p10) / med, gfs,
                       flops > 0 ? 100.0 * gfs / peak : 0.0, cmed * 1e3, gfc,
                       flops > 0 ? 100.0 * gfc / (p ? pk16 : pk32) : 0.0);
            }
        fflush(stdout);
        for (int o = 0; o < OP_N; o++)
            for (int p = 0; p < 2; p++) free(t[o][p]), free(tc[o][p]);
        free(x), free(qkvb), free(ctx), free(tmp), free(ffn), free(xs), free(scratch);
    }
    lin_free(&qkv), lin_free(&ao), lin_free(&ff1), lin_free(&ff2);
    free(bias), free(g), free(beta);
    return 0;
}
