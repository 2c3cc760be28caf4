/* bench_gpu.c — GPU benchmarks of the "cuda" backend (needs a CUDA build and a visible GPU).
 *
 *   bench_gpu e2e --model DIR [--student DIR] [--backend cuda|cuda-fp16] [--batches 1,32,256] [--seq 128]
 *                 [--warmup 5] [--repeats 30]
 *       End-to-end sentences/s of seslm_encoder_forward_ids on the cuda backend: B sequences of exactly
 *       `seq` tokens ([CLS] random word pieces [SEP], fixed seed), upload + forward + pooled download per
 *       call, timed with the host clock after the download (the call waits for the device). Tokenization
 *       is excluded on both sides (bench/gpu/st_peer.py times the same thing for PyTorch). One JSON line
 *       per (model, batch): median / min / max ms per batch, sentences/s at the median.
 *
 *   bench_gpu kernels [--tokens 32768] [--seq 128] [--warmup 10] [--repeats 50]
 *       Per-kernel device time with cudaEvent (median of repeats), each kernel first CHECKED against the
 *       CPU reference (kernels/cpu/ref.c) on a slice of its output, then timed; achieved GB/s (memory-bound
 *       kernels: bytes each input read once + output written once) or TFLOP/s / TOPS (products), next to
 *       the ceilings measured in the same run (device-to-device copy; cuBLAS FP32 and FP16 GEMM).
 *
 * Exit: 0 ok, 1 a check failed or CUDA failed, 2 usage, 77 no GPU / no CUDA build. */
#include "backend.h"
#include "quant.h"
#include "seslm.h"
#ifdef SESLM_HAVE_CUDA
#include "cuda/cuda_kernels.h"
#include <cuda_runtime.h>
#endif

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static uint64_t g_rng = 0x243f6a8885a308d3ull;
static uint32_t rnd(void) {
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}

static int usage(void) {
    fprintf(stderr, "usage: bench_gpu e2e --model DIR [--student DIR] [--backend cuda|cuda-fp16] [--batches 1,32,256] "
                    "[--seq 128] [--warmup N] [--repeats N]\n       bench_gpu kernels [--tokens N] [--seq L] [--warmup "
                    "N] [--repeats N]\n");
    return 2;
}

// ---- end to end -----------------------------------------------------------------------------------

static int e2e_one(const char *label, const char *dir, const char *backend, const int *batches, int nb, int seq,
                   int warmup, int repeats) {
    seslm_model *m = NULL;
    if (seslm_model_load(&m, dir) != SESLM_OK) {
        fprintf(stderr, "bench_gpu: %s: %s\n", dir, seslm_last_error());
        return 1;
    }
    const seslm_model_config *c = seslm_model_get_config(m);
    int maxb = 0;
    for (int i = 0; i < nb; i++) maxb = batches[i] > maxb ? batches[i] : maxb;
    if (seq > c->max_seq_len) seq = c->max_seq_len;
    seslm_encoder *e = NULL;
    seslm_encoder_opts o = {.backend = backend, .max_batch = maxb, .max_seq_len = seq};
    if (seslm_encoder_new(&e, m, &o) != SESLM_OK) {
        fprintf(stderr, "bench_gpu: %s encoder: %s\n", backend, seslm_last_error());
        seslm_model_free(m);
        return 1;
    }
    int32_t *ids = malloc((size_t)maxb * seq * sizeof *ids);
    const int32_t **rows = malloc((size_t)maxb * sizeof *rows);
    int *lens = malloc((size_t)maxb * sizeof *lens);
    float *out = malloc((size_t)maxb * c->hidden * sizeof *out);
    double *t = malloc((size_t)repeats * sizeof *t);
    for (int b = 0; b < maxb; b++) { // [CLS] word pieces [SEP] (ids 101 / 102 in the MiniLM vocabulary)
        int32_t *r = ids + (size_t)b * seq;
        r[0] = 101, r[seq - 1] = 102;
        for (int i = 1; i < seq - 1; i++) r[i] = 1000 + (int32_t)(rnd() % (uint32_t)(c->vocab_size - 1000));
        rows[b] = r, lens[b] = seq;
    }
    int rc = 0;
    for (int i = 0; i < nb && rc == 0; i++) {
        const int B = batches[i];
        for (int k = 0; k < warmup + repeats && rc == 0; k++) {
            const double t0 = now_ms();
            if (seslm_encoder_forward_ids(e, rows, lens, B, out) != SESLM_OK) {
                fprintf(stderr, "bench_gpu: forward: %s\n", seslm_last_error());
                rc = 1;
            }
            if (k >= warmup) t[k - warmup] = now_ms() - t0;
        }
        if (rc) break;
        qsort(t, (size_t)repeats, sizeof *t, cmp_double);
        const double med = t[repeats / 2];
        printf("{\"bench\": \"e2e\", \"model\": \"%s\", \"backend\": \"%s\", \"dir\": \"%s\", \"batch\": %d, \"seq\": "
               "%d, \"repeats\": %d, "
               "\"ms_median\": %.4f, \"ms_min\": %.4f, \"ms_max\": %.4f, \"sentences_per_s\": %.1f}\n",
               label, backend, dir, B, seq, repeats, med, t[0], t[repeats - 1], B / (med / 1e3));
        fflush(stdout);
    }
    free(ids), free(rows), free(lens), free(out), free(t);
    seslm_encoder_free(e);
    seslm_model_free(m);
    return rc;
}

static int parse_batches(const char *s, int *b, int cap) {
    int n = 0;
    while (*s && n < cap) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 4096) return -1;
        b[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return n;
}

#ifdef SESLM_HAVE_CUDA
// ---- kernels --------------------------------------------------------------------------------------

static float rndf(void) { return (float)((double)rnd() / 4294967296.0 * 2.0 - 1.0); }

static int g_fail;
static int g_warmup = 10, g_repeats = 50;

#define CU(call)                                                                                                       \
    do {                                                                                                               \
        cudaError_t e_ = (call);                                                                                       \
        if (e_ != cudaSuccess) {                                                                                       \
            fprintf(stderr, "bench_gpu: %s: %s (%s:%d)\n", #call, cudaGetErrorString(e_), __FILE__, __LINE__);         \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)

static void *dalloc(size_t bytes) {
    void *p = seslm_cuda_alloc(bytes);
    if (!p) {
        fprintf(stderr, "bench_gpu: %s\n", seslm_last_error());
        exit(1);
    }
    return p;
}
static void *dup_dev(const void *h, size_t bytes) {
    void *d = dalloc(bytes);
    CU(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    return d;
}
static float *rand_host(size_t n, float s) {
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = rndf() * s;
    return v;
}

typedef void (*kernel_fn)(void *ctx);

// median device time (ms) of fn over g_repeats launches after g_warmup, each bracketed by events
static double time_kernel(kernel_fn fn, void *ctx) {
    cudaStream_t s = (cudaStream_t)seslm_cuda_stream();
    cudaEvent_t a, b;
    CU(cudaEventCreate(&a));
    CU(cudaEventCreate(&b));
    for (int i = 0; i < g_warmup; i++) fn(ctx);
    double *t = malloc((size_t)g_repeats * sizeof *t);
    for (int i = 0; i < g_repeats; i++) {
        CU(cudaEventRecord(a, s));
        fn(ctx);
        CU(cudaEventRecord(b, s));
        CU(cudaEventSynchronize(b));
        float ms = 0;
        CU(cudaEventElapsedTime(&ms, a, b));
        t[i] = ms;
    }
    if (seslm_cuda_sync() != 0) {
        fprintf(stderr, "bench_gpu: %s\n", seslm_last_error());
        exit(1);
    }
    qsort(t, (size_t)g_repeats, sizeof *t, cmp_double);
    const double med = t[g_repeats / 2];
    free(t);
    CU(cudaEventDestroy(a));
    CU(cudaEventDestroy(b));
    return med;
}

static void report(const char *name, const char *shape, double ms, double bytes, double flops, int checked_ok) {
    printf("{\"bench\": \"kernel\", \"kernel\": \"%s\", \"shape\": \"%s\", \"ms_median\": %.5f", name, shape, ms);
    if (bytes > 0) printf(", \"GB_per_s\": %.1f", bytes / (ms * 1e-3) / 1e9);
    if (flops > 0) printf(", \"TFLOP_per_s\": %.2f", flops / (ms * 1e-3) / 1e12);
    printf(", \"checked\": %s}\n", checked_ok ? "true" : "false");
    fflush(stdout);
    if (!checked_ok) g_fail = 1;
}

// max |got - want| / (1 + |want|) over n, NaN = infinite
static int close_enough(const char *what, const float *got, const float *want, size_t n, double tol) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]) / (1.0 + fabs((double)want[i]));
        if (!(d <= worst)) worst = d; // catches NaN
    }
    if (!(worst <= tol)) fprintf(stderr, "bench_gpu: CHECK FAILED %s: max scaled error %g > %g\n", what, worst, tol);
    return worst <= tol;
}

// -- ceilings
typedef struct {
    void *a, *b;
    size_t bytes;
} copy_ctx;
static void k_copy(void *p) {
    copy_ctx *c = p;
    cudaMemcpyAsync(c->b, c->a, c->bytes, cudaMemcpyDeviceToDevice, (cudaStream_t)seslm_cuda_stream());
}
typedef struct {
    float *y, *x, *b;
    const void *w;
    int M, N, K, half;
} lin_ctx;
static void k_lin(void *p) {
    lin_ctx *c = p;
    if (c->half)
        seslm_cuda_linear_f16(c->y, c->x, c->w, c->b, c->M, c->N, c->K);
    else
        seslm_cuda_linear_f32(c->y, c->x, c->w, c->b, c->M, c->N, c->K);
}
typedef struct {
    int32_t *acc;
    float *y;
    int8_t *qa, *qw;
    float *sa, *sw, *b;
    int M, N, Kp, simple;
} qg_ctx;
static void k_qg(void *p) {
    qg_ctx *c = p;
    if (c->simple == 3) // the backend's path: cuBLAS INT8 into acc, then the dequantization epilogue into y
        seslm_cuda_qgemm_cublas_dq(c->acc, c->y, c->qa, c->sa, c->qw, c->sw, c->b, c->M, c->N, c->Kp);
    else if (c->simple == 2)
        seslm_cuda_qgemm_cublas(c->acc, c->qa, c->qw, c->M, c->N, c->Kp);
    else if (c->simple)
        seslm_cuda_qgemm_simple(c->acc, c->y, c->qa, c->sa, c->qw, c->sw, c->b, c->M, c->N, c->Kp);
    else
        seslm_cuda_qgemm(c->acc, c->y, c->qa, c->sa, c->qw, c->sw, c->b, c->M, c->N, c->Kp);
}
typedef struct {
    float *out, *qkv;
    int *off, *len;
    int B, H, D;
    float *mask;
} att_ctx;
static void k_att(void *p) {
    att_ctx *c = p;
    seslm_cuda_attention(c->out, c->qkv, c->off, c->len, c->B, c->H, c->D, c->mask);
}
typedef struct {
    float *x;
    int32_t *ids;
    int *off, *len;
    int B, C;
    seslm_embedding w;
    float *pos, *type;
} emb_ctx;
static void k_emb(void *p) {
    emb_ctx *c = p;
    seslm_cuda_embed(c->x, c->ids, c->off, c->len, c->B, &c->w, c->pos, c->type, c->C);
}
typedef struct {
    float *x, *r, *g, *b;
    int M, C;
} ln_ctx;
static void k_ln(void *p) {
    ln_ctx *c = p;
    seslm_cuda_add_layernorm(c->x, c->r, c->g, c->b, c->M, c->C, 1e-12f);
}
typedef struct {
    float *x, *b;
    int M, N;
} gelu_ctx;
static void k_gelu(void *p) {
    gelu_ctx *c = p;
    seslm_cuda_gelu_bias(c->x, c->b, c->M, c->N);
}
typedef struct {
    float *out, *x;
    int *off, *len;
    int B, C;
} pool_ctx;
static void k_pool(void *p) {
    pool_ctx *c = p;
    seslm_cuda_pool(c->out, c->x, c->off, c->len, c->B, c->C, 1);
}
typedef struct {
    int8_t *q;
    float *s, *x;
    int M, K, Kp;
} quant_ctx;
static void k_quant(void *p) {
    quant_ctx *c = p;
    seslm_cuda_quantize_rows(c->q, c->s, c->x, c->M, c->K, c->Kp);
}

static int run_kernels(int T, int seq) {
    const seslm_backend *ref = seslm_backend_cpu_ref();
    const int C = 384, H = 12, D = 32, F = 1536, B = T / seq, CHK = 64; // rows checked against the reference
    char shape[128];
    // ceilings
    {
        const size_t bytes = (size_t)1 << 30;
        copy_ctx cc = {dalloc(bytes), dalloc(bytes), bytes};
        CU(cudaMemset(cc.a, 1, bytes));
        double ms = time_kernel(k_copy, &cc);
        report("ceiling: device-to-device copy", "1 GiB", ms, 2.0 * bytes, 0, 1);
        seslm_cuda_free(cc.a), seslm_cuda_free(cc.b);
        const int n = 8192;
        float *x = rand_host((size_t)n * n, 1.0f);
        lin_ctx lc = {
            dalloc((size_t)n * n * 4), dup_dev(x, (size_t)n * n * 4), NULL, dup_dev(x, (size_t)n * n * 4), n, n, n, 0};
        ms = time_kernel(k_lin, &lc);
        report("ceiling: cuBLAS SGEMM (FP32)", "8192^3", ms, 0, 2.0 * n * n * (double)n, 1);
        void *w32 = (void *)lc.w, *w16 = dalloc((size_t)n * n * 2);
        seslm_cuda_f32_to_f16(w16, lc.x, (size_t)n * n);
        lc.w = w16, lc.half = 1;
        ms = time_kernel(k_lin, &lc);
        report("ceiling: cuBLAS GemmEx (FP16 in, FP32 out)", "8192^3", ms, 0, 2.0 * n * n * (double)n, 1);
        seslm_cuda_free(lc.y), seslm_cuda_free(lc.x), seslm_cuda_free(w16), seslm_cuda_free(w32);
        free(x);
    }
    // the encoder's linear shapes at T tokens
    const int lin_shapes[4][2] = {{3 * C, C}, {C, C}, {F, C}, {C, F}};
    const char *lin_names[4] = {"qkv", "attn_out", "ffn_in", "ffn_out"};
    for (int s = 0; s < 4; s++) {
        const int N = lin_shapes[s][0], K = lin_shapes[s][1], Kp = seslm_cuda_kpad(K);
        float *x = rand_host((size_t)T * K, 1.0f), *w = rand_host((size_t)N * K, 0.1f), *b = rand_host(N, 0.5f);
        float *want = malloc((size_t)CHK * N * 4), *got = malloc((size_t)CHK * N * 4);
        seslm_weight hw = {.w = w, .N = N, .K = K};
        ref->linear(want, x, &hw, b, CHK);
        lin_ctx lc = {dalloc((size_t)T * N * 4),
                      dup_dev(x, (size_t)T * K * 4),
                      dup_dev(b, N * 4),
                      dup_dev(w, (size_t)N * K * 4),
                      T,
                      N,
                      K,
                      0};
        k_lin(&lc);
        CU(cudaMemcpy(got, lc.y, (size_t)CHK * N * 4, cudaMemcpyDeviceToHost));
        int ok = close_enough("linear f32", got, want, (size_t)CHK * N, 1e-4);
        snprintf(shape, sizeof shape, "%s M=%d N=%d K=%d", lin_names[s], T, N, K);
        report("linear FP32 (cuBLAS baseline)", shape, time_kernel(k_lin, &lc), 0, 2.0 * T * N * (double)K, ok);
        void *w16 = dalloc((size_t)N * K * 2);
        seslm_cuda_f32_to_f16(w16, lc.w, (size_t)N * K);
        lin_ctx lh = lc;
        lh.w = w16, lh.half = 1;
        k_lin(&lh);
        CU(cudaMemcpy(got, lh.y, (size_t)CHK * N * 4, cudaMemcpyDeviceToHost));
        ok = close_enough("linear f16", got, want, (size_t)CHK * N, 3e-2);
        report("linear FP16 (cuBLAS baseline)", shape, time_kernel(k_lin, &lh), 0, 2.0 * T * N * (double)K, ok);
        // INT8: quantize + mma GEMM with fused dequantization; int32 sums checked bit for bit
        int8_t *qw = malloc((size_t)N * K), *qwp = calloc((size_t)N * Kp, 1), *qa = malloc((size_t)CHK * K);
        float *sw = malloc(N * 4), *sa = malloc(CHK * 4);
        seslm_quantize_weight(qw, sw, w, N, K);
        for (int n = 0; n < N; n++) memcpy(qwp + (size_t)n * Kp, qw + (size_t)n * K, K);
        seslm_quantize_rows(qa, sa, x, CHK, K, K);
        int32_t *acc = malloc((size_t)CHK * N * 4), *acc_got = malloc((size_t)CHK * N * 4);
        seslm_qgemm_ref(acc, qa, qw, CHK, N, K);
        quant_ctx qc = {dalloc((size_t)T * Kp), dalloc((size_t)T * 4), lc.x, T, K, Kp};
        report("quantize rows (INT8 per token)", shape, time_kernel(k_quant, &qc), (double)T * K * 4 + (double)T * Kp,
               0, 1);
        qg_ctx gc = {dalloc((size_t)T * N * 4),
                     NULL,
                     qc.q,
                     dup_dev(qwp, (size_t)N * Kp),
                     qc.s,
                     dup_dev(sw, N * 4),
                     lc.b,
                     T,
                     N,
                     Kp,
                     0};
        { // the cuBLAS INT8 baseline (int32 products only, no dequantization), and the mma kernel doing
          // the same work (int32 out) for a like-for-like comparison
            gc.simple = 2, gc.y = NULL;
            k_qg(&gc);
            if (seslm_cuda_sync() != 0) {
                printf(
                    "{\"bench\": \"kernel\", \"kernel\": \"INT8 GEMM cuBLAS\", \"shape\": \"%s\", \"error\": \"%s\"}\n",
                    shape, seslm_last_error());
            } else {
                CU(cudaMemcpy(acc_got, gc.acc, (size_t)CHK * N * 4, cudaMemcpyDeviceToHost));
                ok = memcmp(acc_got, acc, (size_t)CHK * N * 4) == 0;
                if (!ok)
                    fprintf(stderr, "bench_gpu: CHECK FAILED cuBLAS int8: int32 sums differ from seslm_qgemm_ref\n");
                report("INT8 GEMM cuBLAS (baseline, int32 out)", shape, time_kernel(k_qg, &gc), 0,
                       2.0 * T * N * (double)K, ok);
            }
            gc.simple = 0;
            k_qg(&gc);
            CU(cudaMemcpy(acc_got, gc.acc, (size_t)CHK * N * 4, cudaMemcpyDeviceToHost));
            ok = memcmp(acc_got, acc, (size_t)CHK * N * 4) == 0;
            report("INT8 GEMM mma.sync m16n8k32 (int32 out)", shape, time_kernel(k_qg, &gc), 0, 2.0 * T * N * (double)K,
                   ok);
        }
        if (N % 4 == 0) { // cuBLAS INT8 + our epilogue, as the backend runs it: the same y as the fused mma kernel
            float *y_mma = malloc((size_t)CHK * N * 4), *y_blas = malloc((size_t)CHK * N * 4);
            gc.simple = 0, gc.y = lc.y;
            int32_t *keep = gc.acc;
            gc.acc = NULL;
            k_qg(&gc);
            CU(cudaMemcpy(y_mma, lc.y, (size_t)CHK * N * 4, cudaMemcpyDeviceToHost));
            gc.acc = keep, gc.simple = 3;
            k_qg(&gc);
            if (seslm_cuda_sync() != 0) {
                printf("{\"bench\": \"kernel\", \"kernel\": \"INT8 GEMM cuBLAS + dequant\", \"shape\": \"%s\", \"error\": \"%s\"}\n",
                       shape, seslm_last_error());
            } else {
                CU(cudaMemcpy(y_blas, lc.y, (size_t)CHK * N * 4, cudaMemcpyDeviceToHost));
                ok = memcmp(y_mma, y_blas, (size_t)CHK * N * 4) == 0;
                if (!ok) fprintf(stderr, "bench_gpu: CHECK FAILED cuBLAS + dequant: y differs from the mma kernel's\n");
                report("INT8 GEMM cuBLAS + dequant (backend)", shape, time_kernel(k_qg, &gc), 0, 2.0 * T * N * (double)K, ok);
            }
            free(y_mma), free(y_blas);
        }
        for (int simple = 0; simple < 2; simple++) {
            gc.simple = simple, gc.y = NULL;
            k_qg(&gc);
            CU(cudaMemcpy(acc_got, gc.acc, (size_t)CHK * N * 4, cudaMemcpyDeviceToHost));
            ok = memcmp(acc_got, acc, (size_t)CHK * N * 4) == 0;
            if (!ok)
                fprintf(stderr, "bench_gpu: CHECK FAILED qgemm %s: int32 sums differ from seslm_qgemm_ref\n",
                        simple ? "simple" : "mma");
            gc.y = lc.y; // time the fused-dequantization form the backend runs
            int32_t *keep = gc.acc;
            gc.acc = NULL;
            report(simple ? "INT8 GEMM simple (reference CUDA kernel)" : "INT8 GEMM mma.sync m16n8k32 + dequant", shape,
                   time_kernel(k_qg, &gc), 0, 2.0 * T * N * (double)K, ok);
            gc.acc = keep;
            if (T * (double)N * K > 5e10) break; // the simple kernel is too slow to time at full size
        }
        seslm_cuda_free(lc.y), seslm_cuda_free(lc.x), seslm_cuda_free(lc.b), seslm_cuda_free((void *)lc.w),
            seslm_cuda_free(w16);
        seslm_cuda_free(qc.q), seslm_cuda_free(qc.s), seslm_cuda_free(gc.acc), seslm_cuda_free(gc.qw),
            seslm_cuda_free(gc.sw);
        free(x), free(w), free(b), free(want), free(got), free(qw), free(qwp), free(qa), free(sw), free(sa), free(acc),
            free(acc_got);
    }
    // attention: B sequences of seq tokens, H heads of D
    {
        int *off = malloc(B * sizeof *off), *len = malloc(B * sizeof *len);
        for (int b = 0; b < B; b++) off[b] = b * seq, len[b] = seq;
        float *qkv = rand_host((size_t)T * 3 * H * D, 2.0f), *want = malloc((size_t)seq * H * D * 4),
              *got = malloc((size_t)seq * H * D * 4);
        size_t sf = seslm_attention_scratch_floats(seq, D, 1);
        float *scratch = malloc(sf * 4);
        ref->attention(want, qkv, off, len, 1, H, D, scratch, sf, NULL); // sequence 0 only
        att_ctx ac = {dalloc((size_t)T * H * D * 4),
                      dup_dev(qkv, (size_t)T * 3 * H * D * 4),
                      dup_dev(off, B * 4),
                      dup_dev(len, B * 4),
                      B,
                      H,
                      D,
                      NULL};
        k_att(&ac);
        CU(cudaMemcpy(got, ac.out, (size_t)seq * H * D * 4, cudaMemcpyDeviceToHost));
        int ok = close_enough("attention", got, want, (size_t)seq * H * D, 1e-4);
        snprintf(shape, sizeof shape, "B=%d L=%d H=%d D=%d", B, seq, H, D);
        report("attention (fused, online softmax)", shape, time_kernel(k_att, &ac), (double)T * 4 * H * D * 4,
               4.0 * B * H * (double)seq * seq * D, ok);
        // masked heads: half of them pruned should take about half the time (they do no work)
        float hm[64];
        for (int h = 0; h < H; h++) hm[h] = h % 2 ? 0.0f : 1.0f;
        ac.mask = dup_dev(hm, H * 4);
        report("attention, every other head masked (skipped)", shape, time_kernel(k_att, &ac),
               (double)T * 4 * H * D * 2, 2.0 * B * H * (double)seq * seq * D, 1);
        seslm_cuda_free(ac.mask);
        ac.mask = NULL;
        // embedding gather (F32 table of the real model's size; random rows)
        {
            const int V = 30522, P = 512;
            float *wt = rand_host((size_t)V * C, 1.0f), *pt = rand_host((size_t)P * C, 0.3f), *tt = rand_host(C, 0.2f);
            int32_t *ids = malloc((size_t)T * sizeof *ids);
            for (int t = 0; t < T; t++) ids[t] = (int32_t)(rnd() % V);
            float *want = malloc((size_t)seq * C * 4), *got = malloc((size_t)seq * C * 4);
            seslm_embedding hw = {.f32 = wt};
            ref->embed(want, ids, off, len, 1, &hw, pt, tt, C);
            emb_ctx ec = {dalloc((size_t)T * C * 4),      dup_dev(ids, (size_t)T * 4), ac.off, ac.len, B, C, {0},
                          dup_dev(pt, (size_t)P * C * 4), dup_dev(tt, C * 4)};
            ec.w.f32 = dup_dev(wt, (size_t)V * C * 4);
            k_emb(&ec);
            CU(cudaMemcpy(got, ec.x, (size_t)seq * C * 4, cudaMemcpyDeviceToHost));
            int eok = close_enough("embed", got, want, (size_t)seq * C, 0);
            report("embedding gather (F32 rows)", shape, time_kernel(k_emb, &ec), (double)T * C * 4 * 3, 0, eok);
            seslm_cuda_free(ec.x), seslm_cuda_free(ec.ids), seslm_cuda_free(ec.pos), seslm_cuda_free(ec.type);
            seslm_cuda_free((void *)ec.w.f32);
            free(wt), free(pt), free(tt), free(ids), free(want), free(got);
        }
        // pooling on the same buffer viewed as (T, 384)
        pool_ctx pc = {dalloc((size_t)B * C * 4), ac.out, ac.off, ac.len, B, C};
        report("mean pool + L2", shape, time_kernel(k_pool, &pc), (double)T * C * 4, 0, 1);
        seslm_cuda_free(pc.out), seslm_cuda_free(ac.out), seslm_cuda_free(ac.qkv), seslm_cuda_free(ac.off),
            seslm_cuda_free(ac.len);
        free(off), free(len), free(qkv), free(want), free(got), free(scratch);
    }
    // residual + layernorm, GELU + bias
    {
        float *x = rand_host((size_t)T * C, 2.0f), *r = rand_host((size_t)T * C, 1.0f), *g = rand_host(C, 1.0f),
              *b = rand_host(C, 0.5f);
        float *want = malloc((size_t)CHK * C * 4), *got = malloc((size_t)CHK * C * 4);
        memcpy(want, x, (size_t)CHK * C * 4);
        ref->add_layernorm(want, r, g, b, CHK, C, 1e-12f);
        ln_ctx lc = {
            dup_dev(x, (size_t)T * C * 4), dup_dev(r, (size_t)T * C * 4), dup_dev(g, C * 4), dup_dev(b, C * 4), T, C};
        k_ln(&lc);
        CU(cudaMemcpy(got, lc.x, (size_t)CHK * C * 4, cudaMemcpyDeviceToHost));
        int ok = close_enough("add_layernorm", got, want, (size_t)CHK * C, 1e-4);
        snprintf(shape, sizeof shape, "M=%d C=%d", T, C);
        report("residual add + layernorm", shape, time_kernel(k_ln, &lc), 3.0 * T * C * 4, 0, ok);
        seslm_cuda_free(lc.x), seslm_cuda_free(lc.r), seslm_cuda_free(lc.g), seslm_cuda_free(lc.b);
        free(x), free(r), free(g), free(b), free(want), free(got);
        float *h = rand_host((size_t)T * F, 3.0f), *fb = rand_host(F, 0.5f);
        float *hw = malloc((size_t)CHK * F * 4), *hg = malloc((size_t)CHK * F * 4);
        for (size_t i = 0; i < (size_t)CHK * F; i++) hw[i] = h[i] + fb[i % F];
        ref->gelu(hw, (size_t)CHK * F);
        gelu_ctx gc = {dup_dev(h, (size_t)T * F * 4), dup_dev(fb, F * 4), T, F};
        k_gelu(&gc);
        CU(cudaMemcpy(hg, gc.x, (size_t)CHK * F * 4, cudaMemcpyDeviceToHost));
        ok = close_enough("gelu_bias", hg, hw, (size_t)CHK * F, 1e-5);
        snprintf(shape, sizeof shape, "M=%d N=%d", T, F);
        report("GELU + bias", shape, time_kernel(k_gelu, &gc), 2.0 * T * F * 4, 0, ok);
        seslm_cuda_free(gc.x), seslm_cuda_free(gc.b);
        free(h), free(fb), free(hw), free(hg);
    }
    return g_fail;
}
#endif

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) return argc < 2 ? usage() : (usage(), 0);
    const char *mode = argv[1], *model = "models/all-MiniLM-L6-v2", *student = NULL, *backend = "cuda";
    int batches[16] = {1, 32, 256}, nb = 3, seq = 128, warmup = -1, repeats = -1, tokens = 32768;
    for (int i = 2; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return usage();
        if (!strcmp(a, "--model"))
            model = v;
        else if (!strcmp(a, "--student"))
            student = v;
        else if (!strcmp(a, "--backend"))
            backend = v;
        else if (!strcmp(a, "--batches")) {
            if ((nb = parse_batches(v, batches, 16)) <= 0) return usage();
        } else if (!strcmp(a, "--seq"))
            seq = atoi(v);
        else if (!strcmp(a, "--warmup"))
            warmup = atoi(v);
        else if (!strcmp(a, "--repeats"))
            repeats = atoi(v);
        else if (!strcmp(a, "--tokens"))
            tokens = atoi(v);
        else
            return usage();
    }
    if (seq < 2 || seq > 512 || tokens < seq || repeats == 0 || warmup < -1) return usage();
    if (seslm_gpu_count() <= 0) {
        printf("skipped: no GPU (%s)\n", seslm_built_with_cuda() ? "none visible" : "built without CUDA");
        return 77;
    }
    char desc[256] = "";
    seslm_gpu_describe(0, desc, sizeof desc);
    printf("{\"bench\": \"device\", \"gpu\": \"%s\"}\n", desc);
    if (!strcmp(mode, "e2e")) {
        const int w = warmup >= 0 ? warmup : 5, r = repeats > 0 ? repeats : 30;
        int rc = e2e_one("parent", model, backend, batches, nb, seq, w, r);
        if (rc == 0 && student) rc = e2e_one("student", student, backend, batches, nb, seq, w, r);
        return rc;
    }
#ifdef SESLM_HAVE_CUDA
    if (!strcmp(mode, "kernels")) {
        if (warmup >= 0) g_warmup = warmup;
        if (repeats > 0) g_repeats = repeats;
        return run_kernels(tokens / seq * seq, seq);
    }
#endif
    return usage();
}
