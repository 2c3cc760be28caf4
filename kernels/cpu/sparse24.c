/* sparse24.c — 2:4 structured sparsity: compression, reference and fast products (sparse24.h). */
#include "sparse24.h"
#include "pool.h"
#include "cpu_features.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---- stored form -----------------------------------------------------------------------------------

double seslm_sparse24_compress(float *values, uint8_t *index, const float *w, const float *score, int N, int K) {
    double kept = 0, total = 0;
    for (int n = 0; n < N; n++)
        for (int g = 0; g < K / 4; g++) {
            const float *r = w + (size_t)n * K + 4 * g;
            float s[4];
            for (int i = 0; i < 4; i++) {
                s[i] = score ? score[(size_t)n * K + 4 * g + i] : fabsf(r[i]);
                total += (double)r[i] * r[i];
            }
            // the two largest scores; ties keep the lower position
            int a = 0;
            for (int i = 1; i < 4; i++)
                if (s[i] > s[a]) a = i;
            int b = a == 0 ? 1 : 0;
            for (int i = 0; i < 4; i++)
                if (i != a && s[i] > s[b]) b = i;
            const int lo = a < b ? a : b, hi = a < b ? b : a;
            values[(size_t)n * (K / 2) + 2 * g] = r[lo];
            values[(size_t)n * (K / 2) + 2 * g + 1] = r[hi];
            index[(size_t)n * (K / 4) + g] = (uint8_t)(lo | hi << 2);
            kept += (double)r[lo] * r[lo] + (double)r[hi] * r[hi];
        }
    return total > 0 ? kept / total : 1.0;
}

void seslm_sparse24_expand(float *w, const float *values, const uint8_t *index, int N, int K) {
    memset(w, 0, (size_t)N * K * sizeof *w);
    for (int n = 0; n < N; n++)
        for (int g = 0; g < K / 4; g++) {
            const uint8_t ix = index[(size_t)n * (K / 4) + g];
            w[(size_t)n * K + 4 * g + (ix & 3)] = values[(size_t)n * (K / 2) + 2 * g];
            w[(size_t)n * K + 4 * g + (ix >> 2 & 3)] = values[(size_t)n * (K / 2) + 2 * g + 1];
        }
}

int seslm_sparse24_valid(const uint8_t *index, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((index[i] & 0xf0) || (index[i] & 3) >= (index[i] >> 2 & 3)) return 0;
    return 1;
}

void seslm_sparse24_linear_ref(float *y, const float *x, const float *values, const uint8_t *index, const float *b,
                               int M, int N, int K) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double acc = b ? b[n] : 0.0;
            const float *xr = x + (size_t)m * K;
            for (int g = 0; g < K / 4; g++) {
                const uint8_t ix = index[(size_t)n * (K / 4) + g];
                acc += (double)values[(size_t)n * (K / 2) + 2 * g] * xr[4 * g + (ix & 3)];
                acc += (double)values[(size_t)n * (K / 2) + 2 * g + 1] * xr[4 * g + (ix >> 2 & 3)];
            }
            y[(size_t)m * N + n] = (float)acc;
        }
}

// ---- panels --------------------------------------------------------------------------------------------

// One group of one 16-row panel: 2 x 16 values, 2 x 16 lane selectors into the 16-float x chunk that
// holds the group (lane = 4 * (g % 4) + position). Rows past N are zero.
typedef struct {
    float v[2][16];
    uint8_t sel[2][16];
} panel_group; // 160 bytes

void *seslm_sparse24_pack(const float *values, const uint8_t *index, int N, int K) {
    const int P = (N + 15) / 16, G = K / 4;
    panel_group *pg = calloc((size_t)P * G + 1, sizeof *pg);
    if (!pg) return NULL;
    for (int n = 0; n < N; n++)
        for (int g = 0; g < G; g++) {
            panel_group *q = pg + (size_t)(n / 16) * G + g;
            const uint8_t ix = index[(size_t)n * G + g];
            for (int j = 0; j < 2; j++) {
                q->v[j][n % 16] = values[(size_t)n * (K / 2) + 2 * g + j];
                q->sel[j][n % 16] = (uint8_t)(4 * (g % 4) + (j ? ix >> 2 & 3 : ix & 3));
            }
        }
    return pg;
}

static void panel_c(float *y, const float *x, const panel_group *pg, const float *b, int M, int N, int K, int p) {
    const int G = K / 4;
    for (int m = 0; m < M; m++) {
        float acc[16] = {0};
        const float *xr = x + (size_t)m * K;
        for (int g = 0; g < G; g++) {
            const panel_group *q = pg + (size_t)p * G + g;
            const float *chunk = xr + 16 * (g / 4);
            for (int j = 0; j < 16; j++) acc[j] += q->v[0][j] * chunk[q->sel[0][j]] + q->v[1][j] * chunk[q->sel[1][j]];
        }
        for (int j = 0; j < 16 && 16 * p + j < N; j++) y[(size_t)m * N + 16 * p + j] = acc[j] + (b ? b[16 * p + j] : 0.0f);
    }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define SP24_X86 1
// 4 rows at a time: each group's values and selectors are loaded once and serve the 4 rows; the x chunk
// (16 floats = 4 groups) is loaded once per 4 groups (the last chunk masked when K % 16 != 0).
__attribute__((target("avx512f"))) static void panel_avx512(float *y, const float *x, const panel_group *pg,
                                                            const float *b, int M, int N, int K, int p) {
    const int G = K / 4;
    const int nv = N - 16 * p < 16 ? N - 16 * p : 16;
    const __mmask16 mask = (__mmask16)((1u << nv) - 1u);
    const __m512 bias = b ? _mm512_maskz_loadu_ps(mask, b + 16 * p) : _mm512_setzero_ps();
    for (int m0 = 0; m0 < M; m0 += 4) {
        const int mr = M - m0 < 4 ? M - m0 : 4;
        __m512 acc[4] = {bias, bias, bias, bias};
        const float *xr[4];
        for (int r = 0; r < 4; r++) xr[r] = x + (size_t)(m0 + (r < mr ? r : 0)) * K;
        for (int c = 0; c < (G + 3) / 4; c++) {
            const int left = K - 16 * c, ng = G - 4 * c < 4 ? G - 4 * c : 4;
            const __mmask16 xm = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
            __m512 xc[4];
            for (int r = 0; r < 4; r++) xc[r] = _mm512_maskz_loadu_ps(xm, xr[r] + 16 * c);
            for (int gg = 0; gg < ng; gg++) {
                const panel_group *q = pg + (size_t)p * G + 4 * c + gg;
                const __m512 v0 = _mm512_loadu_ps(q->v[0]), v1 = _mm512_loadu_ps(q->v[1]);
                const __m512i s0 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)q->sel[0]));
                const __m512i s1 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)q->sel[1]));
                for (int r = 0; r < 4; r++) {
                    acc[r] = _mm512_fmadd_ps(v0, _mm512_permutexvar_ps(s0, xc[r]), acc[r]);
                    acc[r] = _mm512_fmadd_ps(v1, _mm512_permutexvar_ps(s1, xc[r]), acc[r]);
                }
            }
        }
        for (int r = 0; r < mr; r++) _mm512_mask_storeu_ps(y + (size_t)(m0 + r) * N + 16 * p, mask, acc[r]);
    }
}
#endif

typedef struct {
    float *y;
    const float *x;
    const panel_group *pg;
    const float *b;
    int M, N, K, avx512;
} sp24_job;

static void sp24_task(void *ctx, int lo, int hi, int tid) {
    (void)tid;
    const sp24_job *j = ctx;
    for (int p = lo; p < hi; p++) {
#ifdef SP24_X86
        if (j->avx512) {
            panel_avx512(j->y, j->x, j->pg, j->b, j->M, j->N, j->K, p);
            continue;
        }
#endif
        panel_c(j->y, j->x, j->pg, j->b, j->M, j->N, j->K, p);
    }
}

void seslm_sparse24_linear_fast(float *y, const float *x, const void *packed, const float *b, int M, int N, int K) {
    const panel_group *pg = packed;
    const int P = (N + 15) / 16;
#ifdef SP24_X86
    const int avx512 = cpu_has(CPU_AVX512F);
#endif
    sp24_job j = {y, x, pg, b, M, N, K, 0};
#ifdef SP24_X86
    j.avx512 = avx512;
#endif
    if (P > 1 && (long)M * N * K > 200000) seslm_pool_for(P, 1, 0, sp24_task, &j);
    else sp24_task(&j, 0, P, 0);
}
