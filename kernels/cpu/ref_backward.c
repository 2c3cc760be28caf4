/* ref_backward.c — the plain-C reference of the encoder's backward ops (backend.h, "backward"): the
 * obvious loops with double accumulators, the oracle for the fast CPU and CUDA versions. Every gradient
 * accumulates (+=) into its output. Forward quantities that are cheap (LayerNorm mean / rstd, softmax
 * probabilities) are recomputed from the saved inputs rather than stored. */
#include "backend.h"
#include "backward_internal.h"

#include <math.h>

void ref_embed_backward(float *dword, float *dpos, float *dtype, const float *dx, const int32_t *ids, const int *off,
                        const int *len, int B, int C) {
    for (int b = 0; b < B; b++)
        for (int p = 0; p < len[b]; p++) {
            const int t = off[b] + p;
            const float *g = dx + (size_t)t * C;
            for (int c = 0; c < C; c++) {
                if (dword) dword[(size_t)ids[t] * C + c] += g[c];
                if (dpos) dpos[(size_t)p * C + c] += g[c];
                if (dtype) dtype[c] += g[c];
            }
        }
}

void ref_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int M, int N,
                         int K) {
    if (dx)
        for (int m = 0; m < M; m++)
            for (int k = 0; k < K; k++) {
                double acc = 0;
                for (int n = 0; n < N; n++) acc += (double)dy[(size_t)m * N + n] * w[(size_t)n * K + k];
                dx[(size_t)m * K + k] += (float)acc;
            }
    if (dw)
        for (int n = 0; n < N; n++)
            for (int k = 0; k < K; k++) {
                double acc = 0;
                for (int m = 0; m < M; m++) acc += (double)dy[(size_t)m * N + n] * x[(size_t)m * K + k];
                dw[(size_t)n * K + k] += (float)acc;
            }
    if (db)
        for (int n = 0; n < N; n++) {
            double acc = 0;
            for (int m = 0; m < M; m++) acc += dy[(size_t)m * N + n];
            db[n] += (float)acc;
        }
}

/* y = zhat g + beta, zhat = (z - mean) rstd:
 * dz = rstd (dzhat - mean(dzhat) - zhat mean(dzhat zhat)), dzhat = dy g. */
void ref_layernorm_backward(float *dz, float *dg, float *dbeta, const float *dy, const float *z, const float *g, int M,
                            int C, float eps) {
    for (int m = 0; m < M; m++) {
        const float *zr = z + (size_t)m * C, *dyr = dy + (size_t)m * C;
        double mean = 0, var = 0;
        for (int c = 0; c < C; c++) mean += zr[c];
        mean /= C;
        for (int c = 0; c < C; c++) var += (zr[c] - mean) * (zr[c] - mean);
        var /= C;
        const double rstd = 1.0 / sqrt(var + eps);
        double s1 = 0, s2 = 0; // mean(dzhat), mean(dzhat zhat)
        for (int c = 0; c < C; c++) {
            const double zh = (zr[c] - mean) * rstd, dzh = (double)dyr[c] * g[c];
            s1 += dzh;
            s2 += dzh * zh;
            if (dg) dg[c] += (float)(dyr[c] * zh);
            if (dbeta) dbeta[c] += dyr[c];
        }
        s1 /= C, s2 /= C;
        if (dz)
            for (int c = 0; c < C; c++) {
                const double zh = (zr[c] - mean) * rstd, dzh = (double)dyr[c] * g[c];
                dz[(size_t)m * C + c] += (float)(rstd * (dzh - s1 - zh * s2));
            }
    }
}

// d/dx [0.5 x (1 + erf(x / sqrt 2))] = 0.5 (1 + erf(x / sqrt 2)) + x exp(-x^2 / 2) / sqrt(2 pi)
void ref_gelu_backward(float *dx, const float *x, const float *dy, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const double v = x[i];
        const double d = 0.5 * (1.0 + erf(v * M_SQRT1_2)) + v * exp(-0.5 * v * v) * (0.5 * M_2_SQRTPI * M_SQRT1_2);
        dx[i] += (float)(dy[i] * d);
    }
}

/* Per query i of head h (p = softmax(s), s_j = q.k_j / sqrt D, o = sum_j p_j v_j):
 *   dv_j += p_j do;  dp_j = do . v_j;  ds_j = p_j (dp_j - sum_k p_k dp_k);
 *   dq += scale sum_j ds_j k_j;  dk_j += scale ds_j q. */
void ref_attention_backward(float *dqkv, const float *dout, const float *qkv, const int *off, const int *len, int B,
                            int H, int D, const float *head_mask, float *scratch, size_t scratch_floats) {
    (void)scratch_floats;
    const int HD = H * D, S = 3 * HD;
    const double scale = 1.0 / sqrt((double)D);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const double hm = head_mask ? head_mask[h] : 1.0;
            if (hm == 0.0) continue;
            const int L = len[b];
            for (int i = 0; i < L; i++) {
                const size_t ti = (size_t)(off[b] + i);
                const float *q = qkv + ti * S + h * D;
                const float *go = dout + ti * HD + h * D;
                float *p = scratch, *dp = scratch + L; // (L) probabilities, (L) their gradients
                double mx = -INFINITY;
                for (int j = 0; j < L; j++) {
                    const float *k = qkv + (size_t)(off[b] + j) * S + HD + h * D;
                    double dot = 0;
                    for (int d = 0; d < D; d++) dot += (double)q[d] * k[d];
                    p[j] = (float)(dot * scale);
                    if (p[j] > mx) mx = p[j];
                }
                double sum = 0;
                for (int j = 0; j < L; j++) sum += exp(p[j] - mx);
                double pdp = 0;
                for (int j = 0; j < L; j++) {
                    p[j] = (float)(exp(p[j] - mx) / sum);
                    const float *v = qkv + (size_t)(off[b] + j) * S + 2 * HD + h * D;
                    float *dv = dqkv + (size_t)(off[b] + j) * S + 2 * HD + h * D;
                    double acc = 0;
                    for (int d = 0; d < D; d++) {
                        acc += (double)go[d] * hm * v[d];
                        dv[d] += (float)(p[j] * go[d] * hm);
                    }
                    dp[j] = (float)acc;
                    pdp += p[j] * acc;
                }
                float *dq = dqkv + ti * S + h * D;
                for (int j = 0; j < L; j++) {
                    const double ds = p[j] * (dp[j] - pdp) * scale;
                    const float *k = qkv + (size_t)(off[b] + j) * S + HD + h * D;
                    float *dk = dqkv + (size_t)(off[b] + j) * S + HD + h * D;
                    for (int d = 0; d < D; d++) {
                        dq[d] += (float)(ds * k[d]);
                        dk[d] += (float)(ds * q[d]);
                    }
                }
            }
        }
}

void ref_pool_backward(float *dx, const float *dout, const int *off, const int *len, int B, int C) {
    for (int b = 0; b < B; b++)
        for (int p = 0; p < len[b]; p++)
            for (int c = 0; c < C; c++) dx[(size_t)(off[b] + p) * C + c] += dout[(size_t)b * C + c] / (float)len[b];
}

void ref_l2norm_backward(float *dx, const float *dy, const float *x, int B, int C) {
    for (int b = 0; b < B; b++) {
        const float *xr = x + (size_t)b * C, *g = dy + (size_t)b * C;
        double n2 = 0, xg = 0;
        for (int c = 0; c < C; c++) {
            n2 += (double)xr[c] * xr[c];
            xg += (double)xr[c] * g[c];
        }
        const double n = sqrt(n2);
        if (n <= 1e-12) { // the forward divides by the constant 1e-12 there
            for (int c = 0; c < C; c++) dx[(size_t)b * C + c] += (float)(g[c] / 1e-12);
            continue;
        }
        for (int c = 0; c < C; c++) dx[(size_t)b * C + c] += (float)((g[c] - xr[c] * xg / n2) / n);
    }
}

size_t seslm_attention_backward_scratch_floats(int max_len, int head_dim, int n_threads) {
    // per thread: the (L, L) probabilities of one head and their gradients (fast path); the reference
    // uses 2 L
    (void)head_dim;
    return (size_t)(n_threads > 0 ? n_threads : 1) * (2 * (size_t)max_len * max_len + 64);
}
