/* fast_backward.c — the fast CPU backward ops: the products of linear_backward through OpenBLAS sgemm,
 * the rest as vectorisable loops threaded with OpenMP. Same math as ref_backward.c; the unit test
 * test_backward_ops compares the two. Every gradient accumulates (+=). */
#include "backend.h"
#include "backward_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef SESLM_HAVE_OPENBLAS
#include <cblas.h>
#endif

void fast_embed_backward(float *dword, float *dpos, float *dtype, const float *dx, const int32_t *ids, const int *off,
                         const int *len, int B, int C) {
    // serial over tokens: two tokens with the same id add into the same row
    ref_embed_backward(dword, dpos, dtype, dx, ids, off, len, B, C);
}

void fast_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int M, int N,
                          int K) {
    if (M == 0 || N == 0) return;
#ifdef SESLM_HAVE_OPENBLAS
    if (K == 0) dx = dw = NULL; // a fully pruned input (no heads / neurons): only the bias has a gradient
    // dx (M, K) += dy (M, N) . W (N, K);  dw (N, K) += dy^T (N, M) . x (M, K)
    if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1.0f, dy, N, w, K, 1.0f, dx, K);
    if (dw) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1.0f, dy, N, x, K, 1.0f, dw, K);
#else
    ref_linear_backward(dx, dw, NULL, dy, x, w, M, N, K);
#endif
    if (db) {
#pragma omp parallel for schedule(static) if ((long)M * N > 65536)
        for (int n0 = 0; n0 < N; n0 += 64) {
            const int n1 = n0 + 64 < N ? n0 + 64 : N;
            float acc[64] = {0};
            for (int m = 0; m < M; m++) {
                const float *r = dy + (size_t)m * N;
#pragma omp simd
                for (int n = n0; n < n1; n++) acc[n - n0] += r[n];
            }
            for (int n = n0; n < n1; n++) db[n] += acc[n - n0];
        }
    }
}

void fast_layernorm_backward(float *dz, float *dg, float *dbeta, const float *dy, const float *z, const float *g, int M,
                             int C, float eps) {
    float *stat = malloc(2 * (size_t)(M > 0 ? M : 1) * sizeof(float)); // per row mean, rstd
    if (!stat) { // out of memory: the reference needs none
        ref_layernorm_backward(dz, dg, dbeta, dy, z, g, M, C, eps);
        return;
    }
#pragma omp parallel for schedule(static) if (M > 8)
    for (int m = 0; m < M; m++) {
        const float *zr = z + (size_t)m * C, *dyr = dy + (size_t)m * C;
        float mean = 0, var = 0;
#pragma omp simd reduction(+ : mean)
        for (int c = 0; c < C; c++) mean += zr[c];
        mean /= (float)C;
#pragma omp simd reduction(+ : var)
        for (int c = 0; c < C; c++) var += (zr[c] - mean) * (zr[c] - mean);
        var /= (float)C;
        const float rstd = 1.0f / sqrtf(var + eps);
        stat[2 * m] = mean, stat[2 * m + 1] = rstd;
        if (!dz) continue;
        float s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
        for (int c = 0; c < C; c++) {
            const float zh = (zr[c] - mean) * rstd, dzh = dyr[c] * g[c];
            s1 += dzh;
            s2 += dzh * zh;
        }
        s1 /= (float)C, s2 /= (float)C;
        float *o = dz + (size_t)m * C;
#pragma omp simd
        for (int c = 0; c < C; c++) o[c] += rstd * (dyr[c] * g[c] - s1 - (zr[c] - mean) * rstd * s2);
    }
    if (dg || dbeta) { // column sums: threads own column blocks, so nothing races
#pragma omp parallel for schedule(static) if ((long)M * C > 65536)
        for (int c0 = 0; c0 < C; c0 += 64) {
            const int c1 = c0 + 64 < C ? c0 + 64 : C;
            float ag[64] = {0}, ab[64] = {0};
            for (int m = 0; m < M; m++) {
                const float *zr = z + (size_t)m * C, *dyr = dy + (size_t)m * C;
                const float mean = stat[2 * m], rstd = stat[2 * m + 1];
#pragma omp simd
                for (int c = c0; c < c1; c++) {
                    ag[c - c0] += dyr[c] * (zr[c] - mean) * rstd;
                    ab[c - c0] += dyr[c];
                }
            }
            for (int c = c0; c < c1; c++) {
                if (dg) dg[c] += ag[c - c0];
                if (dbeta) dbeta[c] += ab[c - c0];
            }
        }
    }
    free(stat);
}

void fast_gelu_backward(float *dx, const float *x, const float *dy, size_t n) {
    const float k = (float)(0.5 * M_2_SQRTPI * M_SQRT1_2); // 1 / sqrt(2 pi)
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        const float v = x[i];
        dx[i] += dy[i] * (0.5f * (1.0f + erff(v * (float)M_SQRT1_2)) + v * expf(-0.5f * v * v) * k);
    }
}

/* One head of one sequence: P (L, L) = softmax(Q K^T scale) recomputed, dP = dO V^T, then
 * dS = P (dP - rowsum(P dP)), dQ += dS K scale, dK += dS^T Q scale, dV += P^T dO. Rows of q / k / v /
 * the gradients are `stride` floats apart (the packed qkv layout). */
static void head_attention_backward(float *dq, float *dk, float *dv, const float *go, int go_stride, const float *q,
                                    const float *k, const float *v, int stride, int L, int D, float hm, float *P,
                                    float *dP) {
    const float scale = 1.0f / sqrtf((float)D);
    for (int i = 0; i < L; i++) {
        float *p = P + (size_t)i * L, *dp = dP + (size_t)i * L;
        const float *qi = q + (size_t)i * stride, *gi = go + (size_t)i * go_stride;
        float mx = -INFINITY;
        for (int j = 0; j < L; j++) {
            const float *kj = k + (size_t)j * stride, *vj = v + (size_t)j * stride;
            float s = 0, t = 0;
#pragma omp simd reduction(+ : s, t)
            for (int d = 0; d < D; d++) {
                s += qi[d] * kj[d];
                t += gi[d] * vj[d];
            }
            p[j] = s * scale;
            dp[j] = t * hm;
            mx = p[j] > mx ? p[j] : mx;
        }
        float sum = 0;
        for (int j = 0; j < L; j++) {
            p[j] = expf(p[j] - mx);
            sum += p[j];
        }
        const float inv = 1.0f / sum;
        float pdp = 0;
        for (int j = 0; j < L; j++) {
            p[j] *= inv;
            pdp += p[j] * dp[j];
        }
        for (int j = 0; j < L; j++) dp[j] = p[j] * (dp[j] - pdp) * scale; // now dS
    }
    for (int i = 0; i < L; i++) {
        const float *p = P + (size_t)i * L, *ds = dP + (size_t)i * L;
        const float *qi = q + (size_t)i * stride, *gi = go + (size_t)i * go_stride;
        float *dqi = dq + (size_t)i * stride;
        for (int j = 0; j < L; j++) {
            const float *kj = k + (size_t)j * stride;
            float *dkj = dk + (size_t)j * stride, *dvj = dv + (size_t)j * stride;
            const float a = ds[j], pv = p[j] * hm;
#pragma omp simd
            for (int d = 0; d < D; d++) {
                dqi[d] += a * kj[d];
                dkj[d] += a * qi[d];
                dvj[d] += pv * gi[d];
            }
        }
    }
}

void fast_attention_backward(float *dqkv, const float *dout, const float *qkv, const int *off, const int *len, int B,
                             int H, int D, const float *head_mask, float *scratch, size_t scratch_floats) {
    const int HD = H * D, S = 3 * HD;
    int maxL = 0, nt = 1;
    for (int b = 0; b < B; b++) maxL = len[b] > maxL ? len[b] : maxL;
    const size_t per = 2 * (size_t)maxL * maxL;
#ifdef _OPENMP
    nt = omp_get_max_threads();
#endif
    if ((size_t)nt * per > scratch_floats) nt = (int)(scratch_floats / (per ? per : 1));
    if (nt < 1) { // the caller's scratch is too small for even one head: the reference needs 2 L
        ref_attention_backward(dqkv, dout, qkv, off, len, B, H, D, head_mask, scratch, scratch_floats);
        return;
    }
    // each (sequence, head) pair writes only its own rows x head columns of dqkv: no races
#pragma omp parallel for schedule(dynamic) num_threads(nt) if (B * H > 1)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H;
        const float hm = head_mask ? head_mask[h] : 1.0f;
        if (hm == 0.0f) continue;
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        float *P = scratch + (size_t)tid * per, *dP = P + (size_t)len[b] * len[b];
        const size_t r0 = (size_t)off[b] * S + (size_t)h * D;
        head_attention_backward(dqkv + r0, dqkv + r0 + HD, dqkv + r0 + 2 * HD, dout + (size_t)off[b] * HD + h * D, HD,
                                qkv + r0, qkv + r0 + HD, qkv + r0 + 2 * HD, S, len[b], D, hm, P, dP);
    }
}

void fast_pool_backward(float *dx, const float *dout, const int *off, const int *len, int B, int C) {
#pragma omp parallel for schedule(static) if (B > 4)
    for (int b = 0; b < B; b++) {
        const float inv = 1.0f / (float)len[b];
        const float *g = dout + (size_t)b * C;
        for (int p = 0; p < len[b]; p++) {
            float *r = dx + (size_t)(off[b] + p) * C;
#pragma omp simd
            for (int c = 0; c < C; c++) r[c] += g[c] * inv;
        }
    }
}

void fast_l2norm_backward(float *dx, const float *dy, const float *x, int B, int C) {
    ref_l2norm_backward(dx, dy, x, B, C); // (B, C): negligible next to the layers
}
