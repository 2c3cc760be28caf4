/* qgemm.c — fast INT8 product on the VNNI-packed weights (quant.h), fused with dequantization.
 *
 *   acc (MR rows x NP panels of 16 columns) += u8(qa) . qw   over K in groups of 4 (one vpdpbusd each)
 *   y = (acc - 128 * colsum) * sa[m] * sw[n] + b[n]
 *
 * Each tile keeps MR x NP zmm accumulators (6 x 4) in registers while it streams its NP weight panels (each a
 * contiguous K x 16 bytes run), so one 4-byte activation broadcast serves NP panels and one weight load
 * serves MR rows. Tiles are spread over the pool's threads (pool.h); adjacent tiles share weight panels. */
#include "quant.h"
#include "pool.h"

#include <string.h>

enum { MR = 6, NP = 4 }; // 24 accumulators + 4 weight registers + 1 broadcast of AVX-512's 32 registers

typedef struct {
    int32_t *acc;
    float *y;
    const int8_t *qa;
    int lda;
    const float *sa;
    const int8_t *qp;
    const int32_t *colsum;
    const float *sw, *b;
    int M, N, K, Kg;
} qgemm_args;

// ---- portable kernel --------------------------------------------------------------------------------

static void tile_c(const qgemm_args *a, int m0, int mr, int p0, int np) {
    for (int r = 0; r < mr; r++) {
        const int m = m0 + r;
        const int8_t *x = a->qa + (size_t)m * a->lda;
        for (int pj = 0; pj < np; pj++) {
            const int p = p0 + pj;
            int32_t s[16] = {0};
            const int8_t *w = a->qp + (size_t)p * a->Kg * 64;
            for (int g = 0; g < a->Kg; g++)
                for (int j = 0; j < 16; j++)
                    for (int i = 0; i < 4; i++) s[j] += (int32_t)x[4 * g + i] * w[(g * 16 + j) * 4 + i];
            for (int j = 0; j < 16 && 16 * p + j < a->N; j++) {
                const int n = 16 * p + j;
                if (a->acc)
                    a->acc[(size_t)m * a->N + n] = s[j];
                else
                    a->y[(size_t)m * a->N + n] = (float)s[j] * (a->sa[m] * a->sw[n]) + (a->b ? a->b[n] : 0.0f);
            }
        }
    }
}

// ---- AVX-512 VNNI kernel ----------------------------------------------------------------------------

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define QGEMM_X86 1
#define VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

VNNI static inline __attribute__((always_inline)) void tile_vnni_n(const qgemm_args *a, int m0, int mr, int p0,
                                                                    int np) {
    __m512i c[MR][NP];
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < NP; j++) c[r][j] = _mm512_setzero_si512();
    const int8_t *x[MR];
    for (int r = 0; r < MR; r++) x[r] = a->qa + (size_t)(m0 + (r < mr ? r : 0)) * a->lda;
    const int8_t *w[NP];
    for (int j = 0; j < NP; j++) w[j] = a->qp + (size_t)(p0 + (j < np ? j : 0)) * a->Kg * 64;
    const __m512i flip = _mm512_set1_epi32((int)0x80808080u);
    for (int g = 0; g < a->Kg; g++) {
        __m512i wv[NP];
        for (int j = 0; j < np; j++) wv[j] = _mm512_loadu_si512((const void *)(w[j] + (size_t)g * 64));
        for (int r = 0; r < mr; r++) {
            int32_t word;
            memcpy(&word, x[r] + 4 * g, 4);
            const __m512i av = _mm512_xor_si512(_mm512_set1_epi32(word), flip); // s8 -> u8 (+128)
            for (int j = 0; j < np; j++) c[r][j] = _mm512_dpbusd_epi32(c[r][j], av, wv[j]);
        }
    }
    for (int r = 0; r < mr; r++) {
        const int m = m0 + r;
        for (int j = 0; j < np; j++) {
            const int n0 = 16 * (p0 + j);
            const int nv = a->N - n0 < 16 ? a->N - n0 : 16;
            const __mmask16 k = (__mmask16)((1u << nv) - 1u);
            const __m512i s = _mm512_sub_epi32(c[r][j], _mm512_loadu_si512((const void *)(a->colsum + n0)));
            if (a->acc) {
                _mm512_mask_storeu_epi32(a->acc + (size_t)m * a->N + n0, k, s);
            } else {
                const __m512 sc = _mm512_mul_ps(_mm512_set1_ps(a->sa[m]), _mm512_maskz_loadu_ps(k, a->sw + n0));
                const __m512 bv = a->b ? _mm512_maskz_loadu_ps(k, a->b + n0) : _mm512_setzero_ps();
                _mm512_mask_storeu_ps(a->y + (size_t)m * a->N + n0, k,
                                      _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), sc, bv));
            }
        }
    }
}

// Full-width tiles (NP = 4 panels) with R = 1..6 rows: named accumulators, not an array — GCC kept the
// array version's 24 accumulators in registers only by copying them around every iteration (perf: the
// loop was mostly vmovdqa64), and spilled at 6 rows. Each R gets its own fully unrolled copy; at batch 1
// most tiles are row-edge tiles (a sentence has 8-20 tokens).
VNNI static inline __attribute__((always_inline)) void store_row(const qgemm_args *a, int m, int p0, __m512i c0,
                                                                  __m512i c1, __m512i c2, __m512i c3) {
    const __m512i cs[4] = {c0, c1, c2, c3};
    for (int j = 0; j < 4; j++) {
        const int n0 = 16 * (p0 + j);
        const int nv = a->N - n0 < 16 ? a->N - n0 : 16;
        const __mmask16 k = (__mmask16)((1u << nv) - 1u);
        const __m512i s = _mm512_sub_epi32(cs[j], _mm512_loadu_si512((const void *)(a->colsum + n0)));
        if (a->acc) {
            _mm512_mask_storeu_epi32(a->acc + (size_t)m * a->N + n0, k, s);
        } else {
            const __m512 sc = _mm512_mul_ps(_mm512_set1_ps(a->sa[m]), _mm512_maskz_loadu_ps(k, a->sw + n0));
            const __m512 bv = a->b ? _mm512_maskz_loadu_ps(k, a->b + n0) : _mm512_setzero_ps();
            _mm512_mask_storeu_ps(a->y + (size_t)m * a->N + n0, k, _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), sc, bv));
        }
    }
}

#define ROW_DECL(r) __m512i c##r##0 = z, c##r##1 = z, c##r##2 = z, c##r##3 = z;
#define ROW_STEP(r)                                                                                              \
    if (R > r) {                                                                                                 \
        int32_t wd;                                                                                              \
        memcpy(&wd, x##r + 4 * (size_t)g, 4);                                                                    \
        const __m512i av = _mm512_xor_si512(_mm512_set1_epi32(wd), flip); /* s8 -> u8 (+128) */                 \
        c##r##0 = _mm512_dpbusd_epi32(c##r##0, av, w0);                                                          \
        c##r##1 = _mm512_dpbusd_epi32(c##r##1, av, w1);                                                          \
        c##r##2 = _mm512_dpbusd_epi32(c##r##2, av, w2);                                                          \
        c##r##3 = _mm512_dpbusd_epi32(c##r##3, av, w3);                                                          \
    }
#define ROW_STORE(r) \
    if (R > r) store_row(a, m0 + r, p0, c##r##0, c##r##1, c##r##2, c##r##3);

VNNI static inline __attribute__((always_inline)) void tile_rows(const qgemm_args *a, int m0, int p0, const int R) {
    const __m512i z = _mm512_setzero_si512(), flip = _mm512_set1_epi32((int)0x80808080u);
    ROW_DECL(0) ROW_DECL(1) ROW_DECL(2) ROW_DECL(3) ROW_DECL(4) ROW_DECL(5)
    const int8_t *x0 = a->qa + (size_t)m0 * a->lda, *x1 = x0 + (R > 1 ? a->lda : 0),
                 *x2 = x0 + (R > 2 ? 2 * (size_t)a->lda : 0), *x3 = x0 + (R > 3 ? 3 * (size_t)a->lda : 0),
                 *x4 = x0 + (R > 4 ? 4 * (size_t)a->lda : 0), *x5 = x0 + (R > 5 ? 5 * (size_t)a->lda : 0);
    const int8_t *wp = a->qp + (size_t)p0 * a->Kg * 64;
    const size_t ps = (size_t)a->Kg * 64; // bytes per panel
    for (int g = 0; g < a->Kg; g++) {
        const int8_t *w = wp + (size_t)g * 64;
        const __m512i w0 = _mm512_loadu_si512((const void *)w), w1 = _mm512_loadu_si512((const void *)(w + ps)),
                      w2 = _mm512_loadu_si512((const void *)(w + 2 * ps)),
                      w3 = _mm512_loadu_si512((const void *)(w + 3 * ps));
        ROW_STEP(0) ROW_STEP(1) ROW_STEP(2) ROW_STEP(3) ROW_STEP(4) ROW_STEP(5)
    }
    ROW_STORE(0) ROW_STORE(1) ROW_STORE(2) ROW_STORE(3) ROW_STORE(4) ROW_STORE(5)
}
#define TILE_ROWS(R) \
    VNNI static void tile_vnni_##R(const qgemm_args *a, int m0, int p0) { tile_rows(a, m0, p0, R); }
TILE_ROWS(1)
TILE_ROWS(2)
TILE_ROWS(3)
TILE_ROWS(4)
TILE_ROWS(5)
TILE_ROWS(6)
VNNI static void tile_vnni_edge(const qgemm_args *a, int m0, int mr, int p0, int np) {
    tile_vnni_n(a, m0, mr, p0, np);
}
static void tile_vnni(const qgemm_args *a, int m0, int mr, int p0, int np) {
    if (np == NP) {
        switch (mr) {
        case 6: tile_vnni_6(a, m0, p0); return;
        case 5: tile_vnni_5(a, m0, p0); return;
        case 4: tile_vnni_4(a, m0, p0); return;
        case 3: tile_vnni_3(a, m0, p0); return;
        case 2: tile_vnni_2(a, m0, p0); return;
        case 1: tile_vnni_1(a, m0, p0); return;
        }
    }
    tile_vnni_edge(a, m0, mr, p0, np);
}
#endif

// ---- dispatch ---------------------------------------------------------------------------------------

typedef void (*tile_fn)(const qgemm_args *, int, int, int, int);

static int cpu_has_vnni(void) {
#ifdef QGEMM_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#else
    return 0;
#endif
}

const char *seslm_qgemm_isa(void) { return cpu_has_vnni() ? "avx512vnni" : "c"; }

typedef struct {
    const qgemm_args *a;
    tile_fn fn;
    int nmb, P;
    seslm_rows_post post;
} qgemm_job;

// items: tiles, column blocks outermost so a thread's consecutive tiles reuse the same weight panels
static void qgemm_task(void *ctx, int lo, int hi, int tid) {
    (void)tid;
    const qgemm_job *j = ctx;
    const int M = j->a->M;
    for (int t = lo; t < hi; t++) {
        const int pb = t / j->nmb, mb = t % j->nmb;
        const int m0 = mb * MR, p0 = pb * NP;
        const int mr = M - m0 < MR ? M - m0 : MR, np = j->P - p0 < NP ? j->P - p0 : NP;
        j->fn(j->a, m0, mr, p0, np);
        if (j->post) { // the tile's rows (mr x up to 64 floats) are still in L1: finish them here
            const int n0 = 16 * p0, nv = j->a->N - n0 < 16 * np ? j->a->N - n0 : 16 * np;
            for (int r = 0; r < mr; r++) j->post(j->a->y + (size_t)(m0 + r) * j->a->N + n0, (size_t)nv);
        }
    }
}

void seslm_qgemm_fast(int32_t *acc, float *y, const int8_t *qa, int lda, const float *sa, const int8_t *qp,
                      const int32_t *colsum, const float *sw, const float *b, int M, int N, int K, const char *isa) {
    seslm_qgemm_fast_post(acc, y, qa, lda, sa, qp, colsum, sw, b, M, N, K, isa, NULL);
}

void seslm_qgemm_fast_post(int32_t *acc, float *y, const int8_t *qa, int lda, const float *sa, const int8_t *qp,
                           const int32_t *colsum, const float *sw, const float *b, int M, int N, int K,
                           const char *isa, seslm_rows_post post) {
    static int have_vnni = -1; // benign race: every thread computes the same value
    if (have_vnni < 0) have_vnni = cpu_has_vnni();
    tile_fn fn = tile_c;
#ifdef QGEMM_X86
    if (have_vnni && (!isa || strcmp(isa, "avx512vnni") == 0)) fn = tile_vnni;
#endif
    (void)isa;
    const qgemm_args a = {acc, y, qa, lda, sa, qp, colsum, sw, b, M, N, K, (K + 3) / 4};
    const int P = (N + 15) / 16, nmb = (M + MR - 1) / MR, npb = (P + NP - 1) / NP;
    const int tiles = nmb * npb;
    // column blocks outermost: a thread's consecutive tiles reuse the same weight panels from cache
    qgemm_job j = {&a, fn, nmb, P, acc ? NULL : post};
    if (tiles > 1 && (long)M * N * K > 200000) seslm_pool_for(tiles, 1, 0, qgemm_task, &j);
    else qgemm_task(&j, 0, tiles, 0);
}
