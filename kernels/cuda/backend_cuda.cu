// backend_cuda.cu — the "cuda" backend: the ops of backend.h on device memory, through the kernels of
// this folder. The encoder sees dev_alloc and keeps its whole workspace and every weight on the GPU
// (weights uploaded once, at encoder creation, in this backend's layout: F32 rows as stored, INT8 rows
// padded to a multiple of 32 bytes for the tensor-core product); a forward pass then queues kernels
// only, and its one synchronisation is the download of the pooled output (dev_download), which also
// reports any CUDA failure of the pass.
//
// Linear layers: F32 weights go through cuBLAS SGEMM (the baseline, not a hand-written kernel); INT8
// weights through quantize.cu + the mma.sync kernel of qgemm.cu with fused dequantization.
// Telemetry (col_stats, head_norms, attention statistics) is not implemented on the GPU: the encoder
// refuses telemetry and probes on a device backend, and these entries only record an error.
#include "cuda_common.cuh"
#include "seslm.h"

#include <stdlib.h>
#include <string.h>

extern "C" int seslm_cuda_device_count(void);

static int cu_supports_op(seslm_op op) { return op != SESLM_OP_COL_STATS && op != SESLM_OP_HEAD_NORMS && op < SESLM_OP_COUNT; }
static void cu_set_threads(int n) { (void)n; }

// INT8 products: our mma.sync kernel with the dequantization fused, or cuBLAS's INT8 GEMM + a separate epilogue
// pass (seslm_cuda_qgemm_cublas_dq); both give the same bits. Measured on the H200 (bench/RESULTS.md 6): cuBLAS
// wins where K is long (ffn_out, K 1536: 0.119 vs 0.214 ms at 32768 tokens) and where the output has too few
// 64 x 64 tiles to fill the GPU (batch 1: the INT8 student's pass 0.52 vs 0.64 ms); the fused kernel wins on
// wide outputs with short K (ffn_in, N 1536: 0.30 vs 0.33 ms: the epilogue's extra pass over the int32 sums
// costs more than cuBLAS saves). cuBLAS INT8 needs N % 4 == 0. $SESLM_CUDA_INT8_GEMM=mma or =cublas forces one.
static int int8_use_cublas(int M, int N, int K) {
    static int mode = -1, sms = 0; // mode 0: ours, 1: cuBLAS, 2: by shape
    if (mode < 0) {
        const char *e = getenv("SESLM_CUDA_INT8_GEMM");
        mode = e && strcmp(e, "mma") == 0 ? 0 : e && strcmp(e, "cublas") == 0 ? 1 : 2;
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
            sms = 132;
    }
    if (N % 4 || mode == 0) return 0;
    if (mode == 1) return 1;
    const long long tiles = (long long)((M + 63) / 64) * ((N + 63) / 64);
    return K >= 1024 || tiles < 4LL * sms;
}

static void cu_linear(float *y, const float *x, const seslm_weight *W, const float *b, int M) {
    const int N = W->N, K = W->K;
    if (M <= 0 || N <= 0) return;
    if (!W->qscale) {
        seslm_cuda_linear_f32(y, x, W->w, b, M, N, K);
        return;
    }
    const int Kp = seslm_cuda_kpad(K), blas = int8_use_cublas(M, N, K);
    const size_t qa_bytes = ((size_t)M * Kp + 255) & ~(size_t)255, sa_bytes = ((size_t)M * sizeof(float) + 255) & ~(size_t)255;
    const size_t top_bytes = W->act_top1 ? (((size_t)M * (sizeof(int32_t) + sizeof(float)) + 255) & ~(size_t)255) : 0;
    const size_t acc_bytes = blas ? (size_t)M * N * sizeof(int32_t) : 0;
    char *ws = (char *)seslm_cuda_scratch(qa_bytes + sa_bytes + acc_bytes + top_bytes);
    if (!ws) return; // recorded
    int8_t *qa = (int8_t *)ws;
    float *sa = (float *)(ws + qa_bytes);
    int32_t *ti = W->act_top1 ? (int32_t *)(ws + qa_bytes + sa_bytes + acc_bytes) : NULL;
    float *tv = ti ? (float *)(ti + M) : NULL;
    if (ti) seslm_cuda_quantize_rows_top1(qa, sa, ti, tv, x, M, K, Kp); // the largest element stays float
    else seslm_cuda_quantize_rows(qa, sa, x, M, K, Kp);
    if (blas) seslm_cuda_qgemm_cublas_dq((int32_t *)(ws + qa_bytes + sa_bytes), y, qa, sa, W->q, W->qscale, b, M, N, Kp);
    else seslm_cuda_qgemm(NULL, y, qa, sa, W->q, W->qscale, b, M, N, Kp);
    if (ti) seslm_cuda_add_top1(y, ti, tv, W->q, Kp, W->qscale, M, N);
}

// "cuda-fp16": F32 weights are kept on the device as FP16 (W->w then points to N*K halves: this
// backend's own layout) and multiplied by cuBLAS with FP16 inputs and FP32 accumulation; everything
// else (activations between ops, layernorm, softmax, INT8 layers) stays as in "cuda".
static void cu_linear_fp16(float *y, const float *x, const seslm_weight *W, const float *b, int M) {
    if (M <= 0 || W->N <= 0) return;
    if (W->qscale) cu_linear(y, x, W, b, M);
    else seslm_cuda_linear_f16(y, x, W->w, b, M, W->N, W->K);
}

// FFN input layer: the product without bias, then bias + GELU in one pass (instead of broadcasting the
// bias into y first, the product reading it back, and GELU reading and writing y again). The sum
// product + bias rounds exactly as in the unfused order (x + 0 is x), so INT8 results stay bit-exact.
static void cu_linear_gelu(float *y, const float *x, const seslm_weight *W, const float *b, int M) {
    cu_linear(y, x, W, NULL, M);
    seslm_cuda_gelu_bias(y, b, M, W->N);
}
static void cu_linear_gelu_fp16(float *y, const float *x, const seslm_weight *W, const float *b, int M) {
    cu_linear_fp16(y, x, W, NULL, M);
    seslm_cuda_gelu_bias(y, b, M, W->N);
}

static void cu_attention(float *out, const float *qkv, const int *off, const int *len, int B, int H, int D,
                         float *scratch, size_t scratch_floats, float *stats) {
    (void)scratch, (void)scratch_floats;
    if (stats) seslm_cuda_note(cudaErrorNotSupported, "cuda attention statistics (telemetry)", __FILE__, __LINE__);
    seslm_cuda_attention(out, qkv, off, len, B, H, D, NULL);
}

static void cu_col_stats(const float *x, int M, int N, double *sq, double *abs, uint64_t *pos) {
    (void)x, (void)M, (void)N, (void)sq, (void)abs, (void)pos;
    seslm_cuda_note(cudaErrorNotSupported, "cuda col_stats (telemetry)", __FILE__, __LINE__);
}

static void cu_head_norms(const float *ctx, int M, int H, int D, double *norms) {
    (void)ctx, (void)M, (void)H, (void)D, (void)norms;
    seslm_cuda_note(cudaErrorNotSupported, "cuda head_norms (telemetry)", __FILE__, __LINE__);
}

static int cu_weight_upload(seslm_weight *dev, const seslm_weight *host) {
    memset(dev, 0, sizeof *dev);
    dev->N = host->N, dev->K = host->K;
    const int N = host->N, K = host->K;
    if (N == 0 || K == 0) return 0;
    if (host->qscale) { // INT8 rows, each zero-padded to Kp bytes
        const int Kp = seslm_cuda_kpad(K);
        int8_t *pad = (int8_t *)calloc((size_t)N * Kp, 1);
        if (!pad) {
            seslm_fail(SESLM_ERR_NOMEM, "out of memory");
            return -1;
        }
        for (int n = 0; n < N; n++) memcpy(pad + (size_t)n * Kp, host->q + (size_t)n * K, (size_t)K);
        int8_t *q = (int8_t *)seslm_cuda_alloc((size_t)N * Kp);
        float *s = (float *)seslm_cuda_alloc((size_t)N * sizeof(float));
        int rc = q && s ? 0 : -1;
        if (rc == 0) rc = seslm_cuda_upload(q, pad, (size_t)N * Kp);
        if (rc == 0) rc = seslm_cuda_upload(s, host->qscale, (size_t)N * sizeof(float));
        // pageable uploads return once the host bytes are staged: pad may be freed now
        free(pad);
        dev->q = q, dev->qscale = s, dev->act_top1 = host->act_top1;
        return rc;
    }
    if (host->sv) { // 2:4 sparse FFN weights: a CPU-only layout so far
        seslm_fail(SESLM_ERR_ARG, "backend 'cuda': 2:4 sparse weights have no CUDA kernel yet; use the cpu backend");
        return -1;
    }
    if (!host->w) {
        seslm_fail(SESLM_ERR_INTERNAL, "cuda weight upload: no F32 rows (packed weights are a CPU layout)");
        return -1;
    }
    float *w = (float *)seslm_cuda_alloc((size_t)N * K * sizeof(float));
    dev->w = w;
    if (!w) return -1;
    return seslm_cuda_upload(w, host->w, (size_t)N * K * sizeof(float));
}

static int cu_weight_upload_fp16(seslm_weight *dev, const seslm_weight *host) {
    if (host->qscale || host->N == 0 || host->K == 0) return cu_weight_upload(dev, host);
    seslm_weight f32;
    if (cu_weight_upload(&f32, host) != 0) {
        seslm_cuda_free((void *)f32.w);
        return -1;
    }
    *dev = f32;
    const size_t n = (size_t)host->N * host->K;
    void *h = seslm_cuda_alloc(n * 2);
    if (h) seslm_cuda_f32_to_f16(h, f32.w, n);
    int rc = h ? seslm_cuda_sync() : -1; // the F32 copy is freed right after: wait for the conversion
    seslm_cuda_free((void *)f32.w);
    dev->w = (const float *)h;
    return rc;
}

static void cu_weight_free(seslm_weight *dev) {
    seslm_cuda_free((void *)dev->w);
    seslm_cuda_free((void *)dev->q);
    seslm_cuda_free((void *)dev->qscale);
    memset(dev, 0, sizeof *dev);
}

static seslm_backend make_backend(int fp16) {
    seslm_backend b;
    memset(&b, 0, sizeof b);
    b.name = fp16 ? "cuda-fp16" : "cuda";
    b.wants_packed = 0;
    b.supports_op = cu_supports_op;
    b.set_threads = cu_set_threads;
    b.embed = seslm_cuda_embed;
    b.linear = fp16 ? cu_linear_fp16 : cu_linear;
    b.linear_gelu = fp16 ? cu_linear_gelu_fp16 : cu_linear_gelu;
    b.add_layernorm = seslm_cuda_add_layernorm;
    b.gelu = seslm_cuda_gelu;
    b.attention = cu_attention;
    b.pool = seslm_cuda_pool;
    b.col_stats = cu_col_stats;
    b.head_norms = cu_head_norms;
    b.dev_alloc = seslm_cuda_alloc;
    b.dev_free = seslm_cuda_free;
    b.dev_upload = seslm_cuda_upload;
    b.dev_download = seslm_cuda_download;
    b.weight_upload = fp16 ? cu_weight_upload_fp16 : cu_weight_upload;
    b.weight_free = cu_weight_free;
    b.fill_rows = seslm_cuda_fill_rows;
    b.scale_columns = seslm_cuda_scale_columns;
    b.attention_masked = seslm_cuda_attention;
    b.capture_begin = seslm_cuda_capture_begin;
    b.capture_end = seslm_cuda_capture_end;
    b.replay = seslm_cuda_replay;
    b.replay_free = seslm_cuda_replay_free;
    // backward (backward.cu); embed_backward / attention_backward need the batch's token count on the
    // host, which these signatures do not carry: call seslm_cuda_embed_backward / _attention_backward
    b.linear_backward = seslm_cuda_linear_backward;
    b.layernorm_backward = seslm_cuda_layernorm_backward;
    b.gelu_backward = seslm_cuda_gelu_backward;
    b.pool_backward = seslm_cuda_pool_backward;
    b.l2norm_backward = seslm_cuda_l2norm_backward;
    return b;
}

static const seslm_backend g_cuda = make_backend(0), g_cuda_fp16 = make_backend(1);

extern "C" const seslm_backend *seslm_backend_cuda(int fp16) {
    if (seslm_cuda_device_count() <= 0) {
        seslm_fail(SESLM_ERR_ARG, "no CUDA device visible");
        return NULL;
    }
    return fp16 ? &g_cuda_fp16 : &g_cuda;
}
