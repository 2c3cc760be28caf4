/* bf16.c — BF16 linear layers (bf16.h): conversion, packing, the plain-C reference, a portable panel
 * kernel, an AVX2 + FMA one (the portable kernel's arithmetic on 8 lanes, same bits) and an AVX-512 BF16 one
 * (vdpbf16ps: 16 FP32 lanes, each += two bfloat16 products).
 *
 * The AVX-512 kernel computes 8 rows x 32 columns per pass: 16 zmm accumulators (two per row), per pair
 * of k two loads of the weight panel (32 columns x 2 k) and one 32-bit broadcast of the row's two
 * bfloat16 activations per row. 16 independent accumulation chains hide the instruction's latency at two
 * per cycle. */
#include "bf16.h"
#include "pool.h"
#include "quant.h" // seslm_quant_scratch: the per-thread grow-on-demand scratch
#include "cpu_features.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SIMD_CLONES
#endif

// branch-free form of seslm_f32_to_bf16 so the loop vectorises (same results: tests check)
SIMD_CLONES static void cvt_row(uint16_t *restrict dst, const float *restrict src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, src + i, 4);
        const uint32_t a = u & 0x7fffffffu;
        uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
        r = (u & 0x7f800000u) == 0 ? (u >> 16) & 0x8000u : r;
        r = a > 0x7f800000u ? (u >> 16) | 0x40u : r;
        dst[i] = (uint16_t)r;
    }
}

void seslm_bf16_from_f32(uint16_t *dst, const float *src, size_t n) { cvt_row(dst, src, n); }

void seslm_bf16_convert_rows(uint16_t *xb, const float *x, int M, int K, int lda) {
    for (int m = 0; m < M; m++) {
        cvt_row(xb + (size_t)m * lda, x + (size_t)m * K, (size_t)K);
        for (int k = K; k < lda; k++) xb[(size_t)m * lda + k] = 0;
    }
}

uint16_t *seslm_bf16_pack(const uint16_t *w, int N, int K) {
    const size_t P = ((size_t)N + 31) / 32, Kp = ((size_t)K + 1) / 2;
    uint16_t *wp = calloc(P * Kp * 64 + 32, sizeof *wp); // zeros pad the last panel and odd K
    if (!wp) return NULL;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) wp[(((size_t)(n / 32) * Kp + k / 2) * 32 + n % 32) * 2 + k % 2] = w[(size_t)n * K + k];
    return wp;
}

void seslm_bf16_linear_ref(float *y, const float *x, const uint16_t *w, const float *b, int M, int N, int K) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            float acc = b ? b[n] : 0.0f;
            for (int k = 0; k < K; k += 2) { // the pair's odd element first, as vdpbf16ps
                if (k + 1 < K)
                    acc = fmaf(seslm_bf16_to_f32(seslm_f32_to_bf16(x[(size_t)m * K + k + 1])),
                               seslm_bf16_to_f32(w[(size_t)n * K + k + 1]), acc);
                acc = fmaf(seslm_bf16_to_f32(seslm_f32_to_bf16(x[(size_t)m * K + k])), seslm_bf16_to_f32(w[(size_t)n * K + k]),
                           acc);
            }
            y[(size_t)m * N + n] = acc;
        }
}

// ---- panel kernels: y[:, n0 : n0 + nv] for one panel, all M rows --------------------------------------

static void panel_c(float *restrict y, const uint16_t *restrict xb, int lda, const uint16_t *restrict panel,
                    const float *restrict bias, int M, int N, int Kp, int n0, int nv) {
    for (int m = 0; m < M; m++) {
        float acc[32];
        for (int j = 0; j < 32; j++) acc[j] = bias && j < nv ? bias[n0 + j] : 0.0f;
        const uint16_t *xr = xb + (size_t)m * lda;
        for (int g = 0; g < Kp; g++) {
            const float x0 = seslm_bf16_to_f32(xr[2 * g]), x1 = seslm_bf16_to_f32(xr[2 * g + 1]);
            const uint16_t *wg = panel + (size_t)g * 64;
            for (int j = 0; j < 32; j++) {
                acc[j] = fmaf(x1, seslm_bf16_to_f32(wg[2 * j + 1]), acc[j]);
                acc[j] = fmaf(x0, seslm_bf16_to_f32(wg[2 * j]), acc[j]);
            }
        }
        memcpy(y + (size_t)m * N + n0, acc, (size_t)nv * sizeof(float));
    }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define BF16_X86 1

#define DP_ROW(r)                                                                                                   \
    do {                                                                                                            \
        int32_t pr;                                                                                                 \
        memcpy(&pr, x##r + 2 * g, 4);                                                                               \
        const __m512bh a = (__m512bh)_mm512_set1_epi32(pr);                                                         \
        c##r##0 = _mm512_dpbf16_ps(c##r##0, a, w0);                                                                 \
        c##r##1 = _mm512_dpbf16_ps(c##r##1, a, w1);                                                                 \
    } while (0)
#define STORE_ROW(r)                                                                                                \
    do {                                                                                                            \
        if (mr > r) {                                                                                               \
            _mm512_storeu_ps(yr + (size_t)(r) * N, c##r##0);                                                       \
            _mm512_storeu_ps(yr + (size_t)(r) * N + 16, c##r##1);                                                  \
        }                                                                                                           \
    } while (0)

__attribute__((target("avx512f,avx512bf16"))) static void panel_avx512(float *restrict y, const uint16_t *restrict xb,
                                                                      int lda, const uint16_t *restrict panel,
                                                                      const float *restrict bias, int M, int N,
                                                                      int Kp, int n0, int nv) {
    if (nv < 32) { // the last, partial panel
        panel_c(y, xb, lda, panel, bias, M, N, Kp, n0, nv);
        return;
    }
    const __m512 b0 = bias ? _mm512_loadu_ps(bias + n0) : _mm512_setzero_ps();
    const __m512 b1 = bias ? _mm512_loadu_ps(bias + n0 + 16) : _mm512_setzero_ps();
    for (int m0 = 0; m0 < M; m0 += 8) {
        const int mr = M - m0 < 8 ? M - m0 : 8;
        // rows past the end read row m0 again (computed, never stored)
        const uint16_t *x0 = xb + (size_t)m0 * lda;
        const uint16_t *x1 = mr > 1 ? x0 + lda : x0, *x2 = mr > 2 ? x0 + 2 * (size_t)lda : x0,
                       *x3 = mr > 3 ? x0 + 3 * (size_t)lda : x0, *x4 = mr > 4 ? x0 + 4 * (size_t)lda : x0,
                       *x5 = mr > 5 ? x0 + 5 * (size_t)lda : x0, *x6 = mr > 6 ? x0 + 6 * (size_t)lda : x0,
                       *x7 = mr > 7 ? x0 + 7 * (size_t)lda : x0;
        __m512 c00 = b0, c01 = b1, c10 = b0, c11 = b1, c20 = b0, c21 = b1, c30 = b0, c31 = b1;
        __m512 c40 = b0, c41 = b1, c50 = b0, c51 = b1, c60 = b0, c61 = b1, c70 = b0, c71 = b1;
        const uint16_t *w = panel;
        for (int g = 0; g < Kp; g++, w += 64) {
            const __m512bh w0 = (__m512bh)_mm512_loadu_si512(w), w1 = (__m512bh)_mm512_loadu_si512(w + 32);
            DP_ROW(0);
            DP_ROW(1);
            DP_ROW(2);
            DP_ROW(3);
            DP_ROW(4);
            DP_ROW(5);
            DP_ROW(6);
            DP_ROW(7);
        }
        float *yr = y + (size_t)m0 * N + n0;
        STORE_ROW(0);
        STORE_ROW(1);
        STORE_ROW(2);
        STORE_ROW(3);
        STORE_ROW(4);
        STORE_ROW(5);
        STORE_ROW(6);
        STORE_ROW(7);
    }
}

// ---- AVX2 + FMA panel kernel: the portable kernel's arithmetic, 8 lanes at a time ---------------------
//
// No BF16 product in AVX2, but a bfloat16 is the top half of a float: a 256-bit load of a group (8 columns x
// 2 k as 16 uint16) gives the odd-k weights as floats by masking the low halves and the even-k weights by a
// 16-bit shift. Each lane then runs panel_c's two fmaf in panel_c's order (odd k first), so the results are
// bit-identical to the portable kernel. 2 rows x 32 columns per pass: 8 accumulators + 2 weights + 4
// broadcast activations of the 16 ymm registers.
#define BF_AVX2 __attribute__((target("avx2,fma")))

#define BF2_CHUNK(c)                                                                                                \
    do {                                                                                                            \
        const __m256i v = _mm256_loadu_si256((const __m256i *)(w + 16 * (c)));                                      \
        const __m256 wo = _mm256_castsi256_ps(_mm256_and_si256(v, hi16)),                                           \
                     we = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));                                           \
        a0##c = _mm256_fmadd_ps(x01, wo, a0##c);                                                                    \
        a0##c = _mm256_fmadd_ps(x00, we, a0##c);                                                                    \
        if (two) {                                                                                                  \
            a1##c = _mm256_fmadd_ps(x11, wo, a1##c);                                                                \
            a1##c = _mm256_fmadd_ps(x10, we, a1##c);                                                                \
        }                                                                                                           \
    } while (0)

static inline float bf_at(const uint16_t *p) { return seslm_bf16_to_f32(*p); }

BF_AVX2 static void panel_avx2(float *restrict y, const uint16_t *restrict xb, int lda, const uint16_t *restrict panel,
                               const float *restrict bias, int M, int N, int Kp, int n0, int nv) {
    if (nv < 32) { // the last, partial panel
        panel_c(y, xb, lda, panel, bias, M, N, Kp, n0, nv);
        return;
    }
    const __m256i hi16 = _mm256_set1_epi32((int)0xffff0000u);
    __m256 bv[4];
    for (int c = 0; c < 4; c++) bv[c] = bias ? _mm256_loadu_ps(bias + n0 + 8 * c) : _mm256_setzero_ps();
    for (int m0 = 0; m0 < M; m0 += 2) {
        const int two = M - m0 > 1;
        const uint16_t *r0 = xb + (size_t)m0 * lda, *r1 = two ? r0 + lda : r0;
        __m256 a00 = bv[0], a01 = bv[1], a02 = bv[2], a03 = bv[3];
        __m256 a10 = bv[0], a11 = bv[1], a12 = bv[2], a13 = bv[3];
        const uint16_t *w = panel;
        for (int g = 0; g < Kp; g++, w += 64) {
            const __m256 x00 = _mm256_set1_ps(bf_at(r0 + 2 * g)), x01 = _mm256_set1_ps(bf_at(r0 + 2 * g + 1)),
                         x10 = _mm256_set1_ps(bf_at(r1 + 2 * g)), x11 = _mm256_set1_ps(bf_at(r1 + 2 * g + 1));
            BF2_CHUNK(0);
            BF2_CHUNK(1);
            BF2_CHUNK(2);
            BF2_CHUNK(3);
        }
        float *yr = y + (size_t)m0 * N + n0;
        _mm256_storeu_ps(yr, a00), _mm256_storeu_ps(yr + 8, a01), _mm256_storeu_ps(yr + 16, a02),
            _mm256_storeu_ps(yr + 24, a03);
        if (two)
            _mm256_storeu_ps(yr + N, a10), _mm256_storeu_ps(yr + N + 8, a11), _mm256_storeu_ps(yr + N + 16, a12),
                _mm256_storeu_ps(yr + N + 24, a13);
    }
}
#endif

typedef void (*panel_fn)(float *restrict, const uint16_t *restrict, int, const uint16_t *restrict,
                         const float *restrict, int, int, int, int, int);

static int cpu_has_bf16(void) {
#ifdef BF16_X86
    return cpu_has(CPU_AVX512F | CPU_AVX512BF16);
#else
    return 0;
#endif
}

static int cpu_has_avx2(void) {
#ifdef BF16_X86
    return cpu_has(CPU_AVX2_FMA);
#else
    return 0;
#endif
}

const char *seslm_bf16_isa(void) { return cpu_has_bf16() ? "avx512bf16" : cpu_has_avx2() ? "avx2" : "c"; }

typedef struct {
    float *y;
    const float *x;
    uint16_t *xb;
    const uint16_t *wp;
    const float *b;
    int M, N, K, Kp, lda;
    panel_fn fn;
} bf16_job;

// items: blocks of 64 rows to convert
static void cvt_task(void *ctx, int lo, int hi, int tid) {
    (void)tid;
    const bf16_job *j = ctx;
    const int m0 = lo * 64, m1 = hi * 64 < j->M ? hi * 64 : j->M;
    seslm_bf16_convert_rows(j->xb + (size_t)m0 * j->lda, j->x + (size_t)m0 * j->K, m1 - m0, j->K, j->lda);
}

// items: panels
static void panel_task(void *ctx, int lo, int hi, int tid) {
    (void)tid;
    const bf16_job *j = ctx;
    for (int p = lo; p < hi; p++) {
        const int n0 = 32 * p, nv = j->N - n0 < 32 ? j->N - n0 : 32;
        j->fn(j->y, j->xb, j->lda, j->wp + (size_t)p * j->Kp * 64, j->b, j->M, j->N, j->Kp, n0, nv);
    }
}

int seslm_bf16_linear_fast(float *y, const float *x, const uint16_t *wp, const float *b, int M, int N, int K,
                           const char *isa) {
    static int have = -1, have_avx2 = -1; // benign races: every thread computes the same values
    if (have < 0) have = cpu_has_bf16();
    if (have_avx2 < 0) have_avx2 = cpu_has_avx2();
    panel_fn fn = panel_c;
#ifdef BF16_X86
    if (have && (!isa || strcmp(isa, "avx512bf16") == 0)) fn = panel_avx512;
    else if (have_avx2 && (!isa || strcmp(isa, "avx2") == 0)) fn = panel_avx2;
#else
    (void)isa; // only the portable kernel here (e.g. a clang build without the AVX-512 BF16 path)
#endif
    const int Kp = (K + 1) / 2, lda = 2 * Kp;
    // the caller's thread's scratch: +64 lets the kernel's 32-bit loads of a row's last pair stay inside
    uint16_t *xb = seslm_quant_scratch((size_t)M * lda * sizeof(uint16_t) + 64);
    if (!xb) { // out of memory: NaN, never stale numbers
        for (size_t i = 0; i < (size_t)M * N; i++) y[i] = NAN;
        return -1;
    }
    bf16_job j = {y, x, xb, wp, b, M, N, K, Kp, lda, fn};
    const int nblk = (M + 63) / 64, np = (N + 31) / 32;
    if (nblk > 1) seslm_pool_for(nblk, 1, 0, cvt_task, &j);
    else cvt_task(&j, 0, nblk, 0);
    if (np > 1 && (long)N * K > 65536) seslm_pool_for(np, 1, 0, panel_task, &j);
    else panel_task(&j, 0, np, 0);
    return 0;
}
