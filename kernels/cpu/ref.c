/* ref.c — the plain-C reference backend: the whole encoder math in the most obvious loops, double
 * accumulators where a sum runs long, libm's erff/expf. No SIMD, no threads, no BLAS: this is the
 * oracle for the fast CPU kernels and the CUDA ones. */
#include "backend.h"
#include "bf16.h"
#include "backward_internal.h"
#include "quant.h"
#include "sparse24.h"

#include <math.h>
#include <stdlib.h>

static int ref_supports_op(seslm_op op) { return op < SESLM_OP_COUNT; }
static void ref_set_threads(int n) { (void)n; }

static void ref_embed(float *x, const int32_t *ids, const int *off, const int *len, int B,
                      const seslm_embedding *word, const float *pos, const float *type, int C) {
    for (int b = 0; b < B; b++)
        for (int p = 0; p < len[b]; p++) {
            int t = off[b] + p;
            float *row = x + (size_t)t * C;
            const float *q = pos + (size_t)p * C;
            seslm_embedding_row(row, word, ids[t], C);
            for (int c = 0; c < C; c++) row[c] = row[c] + q[c] + type[c];
        }
}

// INT8: quantize x per token, exact int32 sums, dequantize (quant.h)
static void ref_linear_q8(float *y, const float *x, const seslm_weight *W, const float *b, int M) {
    const int N = W->N, K = W->K;
    const size_t qa_bytes = ((size_t)M * K + 63) & ~(size_t)63;
    char *ws = seslm_quant_scratch(qa_bytes + (size_t)M * sizeof(float) + (size_t)M * N * sizeof(int32_t));
    if (!ws) { // out of memory: NaN, never stale numbers
        for (size_t i = 0; i < (size_t)M * N; i++) y[i] = NAN;
        return;
    }
    int8_t *qa = (int8_t *)ws;
    float *sa = (float *)(ws + qa_bytes);
    int32_t *acc = (int32_t *)(sa + M);
    int32_t *ti = W->act_top1 ? malloc((size_t)M * sizeof *ti) : NULL;
    float *tv = W->act_top1 ? malloc((size_t)M * sizeof *tv) : NULL;
    if (W->act_top1 && (!ti || !tv)) {
        free(ti), free(tv);
        for (size_t i = 0; i < (size_t)M * N; i++) y[i] = NAN;
        return;
    }
    if (ti) seslm_quantize_rows_top1(qa, sa, ti, tv, x, M, K, K);
    else seslm_quantize_rows(qa, sa, x, M, K, K);
    seslm_qgemm_ref(acc, qa, W->q, M, N, K);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++)
            y[(size_t)m * N + n] = (float)acc[(size_t)m * N + n] * (sa[m] * W->qscale[n]) + (b ? b[n] : 0.0f);
    if (ti) seslm_q8_add_top1_ref(y, N, ti, tv, W->q, K, W->qscale, M, N);
    free(ti), free(tv);
}

static void ref_linear(float *y, const float *x, const seslm_weight *W, const float *b, int M) {
    if (W->qscale) {
        ref_linear_q8(y, x, W, b, M);
        return;
    }
    if (W->sv) {
        seslm_sparse24_linear_ref(y, x, W->sv, W->si, b, M, W->N, W->K);
        return;
    }
    if (W->bw) {
        seslm_bf16_linear_ref(y, x, W->bw, b, M, W->N, W->K);
        return;
    }
    const float *w = W->w;
    const int N = W->N, K = W->K;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double acc = b ? b[n] : 0.0;
            for (int k = 0; k < K; k++) acc += (double)x[(size_t)m * K + k] * w[(size_t)n * K + k];
            y[(size_t)m * N + n] = (float)acc;
        }
}

static void ref_add_layernorm(float *x, const float *r, const float *g, const float *beta, int M, int C,
                              float eps) {
    for (int m = 0; m < M; m++) {
        float *row = x + (size_t)m * C;
        if (r)
            for (int c = 0; c < C; c++) row[c] += r[(size_t)m * C + c];
        double mean = 0, var = 0;
        for (int c = 0; c < C; c++) mean += row[c];
        mean /= C;
        for (int c = 0; c < C; c++) var += (row[c] - mean) * (row[c] - mean);
        var /= C; // biased variance, as torch.nn.LayerNorm
        double rstd = 1.0 / sqrt(var + eps);
        for (int c = 0; c < C; c++) row[c] = (float)((row[c] - mean) * rstd) * g[c] + beta[c];
    }
}

static void ref_gelu(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
}

static void ref_attention(float *out, const float *qkv, const int *off, const int *len, int B, int H, int D,
                          float *scratch, size_t scratch_floats, float *stats) {
    (void)scratch_floats;
    const int HD = H * D, S = 3 * HD;
    const float scale = 1.0f / sqrtf((float)D);
    if (stats)
        for (int i = 0; i < 2 * B * H; i++) stats[i] = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < len[b]; i++) {
                const float *q = qkv + (size_t)(off[b] + i) * S + h * D;
                float *sc = scratch; // (len) scores of query i
                float mx = -INFINITY;
                for (int j = 0; j < len[b]; j++) {
                    const float *k = qkv + (size_t)(off[b] + j) * S + HD + h * D;
                    double dot = 0;
                    for (int d = 0; d < D; d++) dot += (double)q[d] * k[d];
                    sc[j] = (float)dot * scale;
                    if (sc[j] > mx) mx = sc[j];
                }
                double sum = 0;
                for (int j = 0; j < len[b]; j++) {
                    sc[j] = expf(sc[j] - mx);
                    sum += sc[j];
                }
                if (stats) { // entropy = -sum p log p with p = e / sum; the largest p
                    double ent = 0, pmax = 0;
                    for (int j = 0; j < len[b]; j++) {
                        double p = sc[j] / sum;
                        if (p > 0) ent -= p * log(p);
                        pmax = p > pmax ? p : pmax;
                    }
                    stats[2 * (b * H + h)] += (float)ent;
                    stats[2 * (b * H + h) + 1] += (float)pmax;
                }
                float *o = out + (size_t)(off[b] + i) * HD + h * D;
                for (int d = 0; d < D; d++) {
                    double acc = 0;
                    for (int j = 0; j < len[b]; j++) acc += (double)sc[j] * qkv[(size_t)(off[b] + j) * S + 2 * HD + h * D + d];
                    o[d] = (float)(acc / sum);
                }
            }
}

static void ref_pool(float *out, const float *x, const int *off, const int *len, int B, int C, int normalize) {
    for (int b = 0; b < B; b++) {
        double nrm = 0;
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int p = 0; p < len[b]; p++) s += x[(size_t)(off[b] + p) * C + c];
            out[(size_t)b * C + c] = (float)(s / len[b]);
            nrm += (double)out[(size_t)b * C + c] * out[(size_t)b * C + c];
        }
        if (normalize) {
            double inv = 1.0 / fmax(sqrt(nrm), 1e-12);
            for (int c = 0; c < C; c++) out[(size_t)b * C + c] = (float)(out[(size_t)b * C + c] * inv);
        }
    }
}

static void ref_col_stats(const float *x, int M, int N, double *sq, double *abs, uint64_t *pos) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            const float v = x[(size_t)m * N + n];
            sq[n] += (double)v * v;
            if (abs) abs[n] += fabs(v);
            if (pos) pos[n] += v > 0;
        }
}

static void ref_head_norms(const float *ctx, int M, int H, int D, double *norms) {
    for (int m = 0; m < M; m++)
        for (int h = 0; h < H; h++) {
            double s = 0;
            for (int d = 0; d < D; d++) s += (double)ctx[(size_t)m * H * D + h * D + d] * ctx[(size_t)m * H * D + h * D + d];
            norms[h] += sqrt(s);
        }
}

size_t seslm_attention_scratch_floats(int max_len, int head_dim, int n_threads) {
    // per thread: K^T of one head (D, L) and a block of score rows (8, L) for the fast path; the
    // reference uses one row. (Keys padded to a multiple of 32 by the AVX-512 path, plus 16 so K^T's rows
    // are not a power of two apart.)
    return (size_t)(n_threads > 0 ? n_threads : 1) * (((size_t)max_len + 48) * (head_dim + 8) + 64);
}

static const seslm_backend g_ref = {
    .name = "cpu-ref",
    .wants_packed = 0,
    .supports_op = ref_supports_op,
    .set_threads = ref_set_threads,
    .embed = ref_embed,
    .linear = ref_linear,
    .add_layernorm = ref_add_layernorm,
    .gelu = ref_gelu,
    .attention = ref_attention,
    .pool = ref_pool,
    .col_stats = ref_col_stats,
    .head_norms = ref_head_norms,
    .embed_backward = ref_embed_backward,
    .linear_backward = ref_linear_backward,
    .layernorm_backward = ref_layernorm_backward,
    .gelu_backward = ref_gelu_backward,
    .attention_backward = ref_attention_backward,
    .pool_backward = ref_pool_backward,
    .l2norm_backward = ref_l2norm_backward,
};

const seslm_backend *seslm_backend_cpu_ref(void) { return &g_ref; }
