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
#include "cpu_features.h"

#include <stdlib.h>
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
    int gelu;         // AVX-512 epilogue: GELU on the tile's registers before they are stored
    uint32_t *rowmax; // not NULL: rowmax[m] = max over the row of |y| as float bits, merged as below
    int shared;       // rowmax is shared by the threads (atomic merge), else this thread's own slots
    const int32_t *top_idx; // not NULL: activations from seslm_quantize_rows_top1, whose float element
    const float *top_val;   // each finished tile adds (add_top_tile)
} qgemm_args;

// Nonnegative floats order as their bit patterns (a NaN's or an infinity's |x| is above every finite one),
// so the row maximum is an unsigned integer maximum. Each thread merges its tiles into its own slots (a
// plain max: the CAS the threads shared cost 1.4% of an INT8 student's batch, mostly in `lock cmpxchg`);
// the shared array with a CAS is the fallback when the slots could not be allocated.
static inline void rowmax_update(const qgemm_args *a, int m, uint32_t v) {
    uint32_t *p = a->rowmax + m;
    if (!a->shared) {
        if (v > *p) *p = v;
        return;
    }
    uint32_t cur = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (v > cur && !__atomic_compare_exchange_n(p, &cur, v, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

static inline uint32_t abs_bits(float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    return u & 0x7fffffffu;
}

// y[m, n] += top_val[m] * (sw[n] * qw[n, t]) on a finished tile: qw[n, t] for the tile's 16 columns of a
// panel are one byte of each 4-byte word of the 64-byte group holding k = t (quant.h's packed layout), so a
// row costs one cache line per panel (the unpacked (N, K) rows would cost one per column).
// One panel p of row y: its 16 columns (fewer at the edge).
static inline void add_top_panel(const qgemm_args *a, float *y, float tv, int t, int p) {
    const int8_t *w = a->qp + ((size_t)p * a->Kg + (size_t)(t >> 2)) * 64 + (t & 3);
    for (int j = 0; j < 16 && 16 * p + j < a->N; j++) y[16 * p + j] += tv * (a->sw[16 * p + j] * (float)w[4 * j]);
}

static void add_top_tile(const qgemm_args *a, int m0, int mr, int p0, int np) {
    for (int r = 0; r < mr; r++) {
        const float tv = a->top_val[m0 + r];
        if (tv == 0.0f) continue;
        for (int pj = 0; pj < np; pj++) add_top_panel(a, a->y + (size_t)(m0 + r) * a->N, tv, a->top_idx[m0 + r], p0 + pj);
    }
}

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
#include "gelu_avx512.h"

// Each of 8 vectors' maximum lane (unsigned) into out[0..7]: the vectors' halves, then quarters, are merged
// pairwise into shared registers (shuffle + max per level), so 8 rows cost 16 shuffles and 10 maxima instead of
// 8 separate reductions (64 operations, serial within each row; perf: a tenth of the GELU epilogue).
VNNI static inline void reduce_max8(const __m512i v[8], uint32_t out[8]) {
    __m512i h[4], q[2];
    for (int i = 0; i < 4; i++) // 256-bit halves: [v2i.lo, v2i+1.lo] max [v2i.hi, v2i+1.hi]
        h[i] = _mm512_max_epu32(_mm512_shuffle_i64x2(v[2 * i], v[2 * i + 1], 0x44),
                                _mm512_shuffle_i64x2(v[2 * i], v[2 * i + 1], 0xEE));
    for (int i = 0; i < 2; i++) // 128-bit quarters: lane group g of q[i] = row 4 i + g's 4 partial maxima
        q[i] = _mm512_max_epu32(_mm512_shuffle_i64x2(h[2 * i], h[2 * i + 1], 0x88),
                                _mm512_shuffle_i64x2(h[2 * i], h[2 * i + 1], 0xDD));
    for (int i = 0; i < 2; i++) {
        __m512i t = _mm512_max_epu32(q[i], _mm512_shuffle_epi32(q[i], (_MM_PERM_ENUM)0x4E));
        t = _mm512_max_epu32(t, _mm512_shuffle_epi32(t, (_MM_PERM_ENUM)0xB1));
        uint32_t l[16];
        _mm512_storeu_si512((void *)l, t);
        for (int g = 0; g < 4; g++) out[4 * i + g] = l[4 * g];
    }
}

// The epilogue of a tile (rows m0..m0+mr-1, panels p0..p0+np-1): int32 sums (MODE 0), or dequantized
// + bias (MODE 1), or that then GELU, with each row's max |y| merged into rowmax (MODE 2). Per panel the
// column sums, weight scales, bias and mask are loaded once for all rows; the pointers are read into locals
// (stores through y could otherwise alias *a, and GCC reloaded every field for every segment).
VNNI static inline __attribute__((always_inline)) void epilogue(const qgemm_args *a, int m0, int mr, int p0, int np,
                                                                 const __m512i acc[MR][NP], const int MODE) {
    const int N = a->N;
    int32_t *restrict acc_out = a->acc;
    float *restrict y = a->y;
    const float *restrict sa = a->sa;
    __m512i cs[NP], mxr[8]; // mxr: each row's running max |y| lanes (MODE 2; rows mr..7 stay 0)
    if (MODE == 2)
        for (int r = mr; r < 8; r++) mxr[r] = _mm512_setzero_si512();
    __m512 sw[NP], bv[NP];
    __mmask16 k[NP];
    for (int j = 0; j < np; j++) {
        const int n0 = 16 * (p0 + j), nv = N - n0 < 16 ? N - n0 : 16;
        k[j] = (__mmask16)((1u << nv) - 1u);
        cs[j] = _mm512_loadu_si512((const void *)(a->colsum + n0));
        if (MODE == 0) continue;
        sw[j] = _mm512_maskz_loadu_ps(k[j], a->sw + n0);
        bv[j] = a->b ? _mm512_maskz_loadu_ps(k[j], a->b + n0) : _mm512_setzero_ps();
    }
    for (int r = 0; r < mr; r++) {
        const size_t row = (size_t)(m0 + r) * N + 16 * (size_t)p0;
        if (MODE == 0) {
            for (int j = 0; j < np; j++)
                _mm512_mask_storeu_epi32(acc_out + row + 16 * j, k[j], _mm512_sub_epi32(acc[r][j], cs[j]));
            continue;
        }
        const __m512 sam = _mm512_set1_ps(sa[m0 + r]);
        __m512i mx = _mm512_setzero_si512();
        for (int j = 0; j < np; j++) {
            const __m512i s = _mm512_sub_epi32(acc[r][j], cs[j]);
            __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(sam, sw[j]), bv[j]);
            if (MODE == 2) v = gelu16(v);
            _mm512_mask_storeu_ps(y + row + 16 * j, k[j], v);
            if (MODE == 2)
                mx = _mm512_max_epu32(mx, _mm512_maskz_and_epi32(k[j], _mm512_castps_si512(v), _mm512_set1_epi32(0x7fffffff)));
        }
        if (MODE == 2) mxr[r] = mx;
    }
    if (MODE == 2 && a->rowmax) {
        uint32_t m8[8];
        reduce_max8(mxr, m8);
        for (int r = 0; r < mr; r++) rowmax_update(a, m0 + r, m8[r]);
    }
}

// Out of line, one per mode: inlined into the tiles, the GELU's constants and temporaries crowded the 29
// registers of the K loop and GCC spilled every accumulator to the stack on every step (2x slower).
VNNI __attribute__((noinline)) static void epilogue_acc(const qgemm_args *a, int m0, int mr, int p0, int np,
                                                         const __m512i acc[MR][NP]) {
    epilogue(a, m0, mr, p0, np, acc, 0);
}
VNNI __attribute__((noinline)) static void epilogue_f32(const qgemm_args *a, int m0, int mr, int p0, int np,
                                                         const __m512i acc[MR][NP]) {
    epilogue(a, m0, mr, p0, np, acc, 1);
}
VNNI __attribute__((noinline)) static void epilogue_gelu(const qgemm_args *a, int m0, int mr, int p0, int np,
                                                          const __m512i acc[MR][NP]) {
    epilogue(a, m0, mr, p0, np, acc, 2);
}

#define ROW_DECL(r) __m512i c##r##0 = z, c##r##1 = z, c##r##2 = z, c##r##3 = z;
#define ROW_STEP(r)                                                                                              \
    if (R > r) {                                                                                                 \
        int32_t wd;                                                                                              \
        memcpy(&wd, x##r + 4 * (size_t)g, 4);                                                                    \
        const __m512i av = _mm512_xor_si512(_mm512_set1_epi32(wd), flip); /* s8 -> u8 (+128) */                 \
        c##r##0 = _mm512_dpbusd_epi32(c##r##0, av, w0);                                                          \
        if (NPV > 1) c##r##1 = _mm512_dpbusd_epi32(c##r##1, av, w1);                                             \
        if (NPV > 2) c##r##2 = _mm512_dpbusd_epi32(c##r##2, av, w2);                                             \
        if (NPV > 3) c##r##3 = _mm512_dpbusd_epi32(c##r##3, av, w3);                                             \
    }
#define ROW_SAVE(r)                                                                                              \
    if (R > r) {                                                                                                 \
        acc[r][0] = c##r##0;                                                                                     \
        if (NPV > 1) acc[r][1] = c##r##1;                                                                        \
        if (NPV > 2) acc[r][2] = c##r##2;                                                                        \
        if (NPV > 3) acc[r][3] = c##r##3;                                                                        \
    }

// Tiles of R = 1..6 rows x NPV = 1..4 panels: named accumulators, not an array — GCC kept an array's 24
// accumulators in registers only by copying them around every iteration (perf: the loop was mostly
// vmovdqa64), and spilled at 6 rows. Each (R, NPV) gets its own fully unrolled copy: at batch 1 most tiles
// are row-edge tiles (a sentence has 8-20 tokens), and a pruned FFN width leaves a column-edge block of 1-3
// panels in every layer (the array version ran those about 3x slower per panel).
VNNI static inline __attribute__((always_inline)) void tile_rows(const qgemm_args *a, int m0, int p0, const int R,
                                                                  const int NPV) {
    const __m512i z = _mm512_setzero_si512(), flip = _mm512_set1_epi32((int)0x80808080u);
    ROW_DECL(0) ROW_DECL(1) ROW_DECL(2) ROW_DECL(3) ROW_DECL(4) ROW_DECL(5)
    const int8_t *x0 = a->qa + (size_t)m0 * a->lda, *x1 = x0 + (R > 1 ? a->lda : 0),
                 *x2 = x0 + (R > 2 ? 2 * (size_t)a->lda : 0), *x3 = x0 + (R > 3 ? 3 * (size_t)a->lda : 0),
                 *x4 = x0 + (R > 4 ? 4 * (size_t)a->lda : 0), *x5 = x0 + (R > 5 ? 5 * (size_t)a->lda : 0);
    const int8_t *wp = a->qp + (size_t)p0 * a->Kg * 64;
    const size_t ps = (size_t)a->Kg * 64; // bytes per panel
    for (int g = 0; g < a->Kg; g++) {
        const int8_t *w = wp + (size_t)g * 64;
        const __m512i w0 = _mm512_loadu_si512((const void *)w),
                      w1 = NPV > 1 ? _mm512_loadu_si512((const void *)(w + ps)) : z,
                      w2 = NPV > 2 ? _mm512_loadu_si512((const void *)(w + 2 * ps)) : z,
                      w3 = NPV > 3 ? _mm512_loadu_si512((const void *)(w + 3 * ps)) : z;
        ROW_STEP(0) ROW_STEP(1) ROW_STEP(2) ROW_STEP(3) ROW_STEP(4) ROW_STEP(5)
    }
    __m512i acc[MR][NP];
    ROW_SAVE(0) ROW_SAVE(1) ROW_SAVE(2) ROW_SAVE(3) ROW_SAVE(4) ROW_SAVE(5)
    const __m512i(*const done)[NP] = (const __m512i(*)[NP])acc;
    if (a->acc) epilogue_acc(a, m0, R, p0, NPV, done);
    else if (a->gelu) epilogue_gelu(a, m0, R, p0, NPV, done);
    else epilogue_f32(a, m0, R, p0, NPV, done);
}
#define TILE(R, P) \
    VNNI static void tile_vnni_##R##_##P(const qgemm_args *a, int m0, int p0) { tile_rows(a, m0, p0, R, P); }
#define TILES(P) TILE(1, P) TILE(2, P) TILE(3, P) TILE(4, P) TILE(5, P) TILE(6, P)
TILES(1)
TILES(2)
TILES(3)
TILES(4)
#define TILE_ROW(P) {tile_vnni_1_##P, tile_vnni_2_##P, tile_vnni_3_##P, tile_vnni_4_##P, tile_vnni_5_##P, tile_vnni_6_##P}
static void (*const vnni_tiles[NP][MR])(const qgemm_args *, int, int) = {TILE_ROW(1), TILE_ROW(2), TILE_ROW(3),
                                                                         TILE_ROW(4)};
static void tile_vnni(const qgemm_args *a, int m0, int mr, int p0, int np) { vnni_tiles[np - 1][mr - 1](a, m0, p0); }

// ---- AVX2 kernel ------------------------------------------------------------------------------------
//
// No 8-bit multiply-add that neither saturates nor needs VNNI exists in AVX2 (vpmaddubsw saturates its
// u8 x s8 pair sums at 32767; the -128 weights the packer keeps break the sign trick), so both operands are
// widened to int16 and multiplied with vpmaddwd (exact: only four -32768 factors could overflow). The tile's
// rows are widened once into a stack buffer; a weight group (8 columns x 4 k, 32 bytes) is widened by two
// vpmovsxbw and serves every row of the tile: per row and group one 64-bit broadcast of the row's 4 int16
// activations and 2 vpmaddwd + 2 vpaddd, the int32 lanes holding (k0 k1) and (k2 k3) partial sums of each
// column, folded with one vphaddd at the end. 6 rows x 8 columns = 12 accumulators + 2 weights + 1
// broadcast of the 16 ymm registers. Activations stay signed, so the column sums of the VNNI offset
// (colsum) are not used; the epilogue keeps the VNNI kernel's float order (fma(acc, sa sw, b)), so the two
// fast kernels give the same bits.
#define AVX2 __attribute__((target("avx2,fma")))

#define A2_DECL(r) __m256i c##r##a = z, c##r##b = z;
#define A2_STEP(r)                                                                                               \
    if (R > r) {                                                                                                 \
        int64_t v;                                                                                               \
        memcpy(&v, xw + (size_t)(r) * K4 + 4 * (size_t)g, 8);                                                   \
        const __m256i av = _mm256_set1_epi64x(v);                                                                \
        c##r##a = _mm256_add_epi32(c##r##a, _mm256_madd_epi16(wa, av));                                          \
        c##r##b = _mm256_add_epi32(c##r##b, _mm256_madd_epi16(wb, av));                                          \
    }
#define A2_SAVE(r) \
    if (R > r) s[r] = _mm256_permute4x64_epi64(_mm256_hadd_epi32(c##r##a, c##r##b), 0xD8);

// R rows x 8 columns starting at column n0 (w: the first group's 32 bytes of those columns)
AVX2 static inline __attribute__((always_inline)) void tile8_avx2(const qgemm_args *a, const int16_t *xw, int K4,
                                                                  int m0, const int8_t *w, int n0, const int R) {
    const __m256i z = _mm256_setzero_si256();
    A2_DECL(0) A2_DECL(1) A2_DECL(2) A2_DECL(3) A2_DECL(4) A2_DECL(5)
    for (int g = 0; g < a->Kg; g++) {
        const int8_t *wg = w + (size_t)g * 64;
        const __m256i wa = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)wg)),
                      wb = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wg + 16)));
        A2_STEP(0) A2_STEP(1) A2_STEP(2) A2_STEP(3) A2_STEP(4) A2_STEP(5)
    }
    __m256i s[MR];
    A2_SAVE(0) A2_SAVE(1) A2_SAVE(2) A2_SAVE(3) A2_SAVE(4) A2_SAVE(5)
    const int nv = a->N - n0 < 8 ? a->N - n0 : 8;
    const __m256i k = _mm256_cmpgt_epi32(_mm256_set1_epi32(nv), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    if (a->acc) {
        for (int r = 0; r < R; r++) _mm256_maskstore_epi32((int *)(a->acc + (size_t)(m0 + r) * a->N + n0), k, s[r]);
        return;
    }
    const __m256 sw = _mm256_maskload_ps(a->sw + n0, k), bv = a->b ? _mm256_maskload_ps(a->b + n0, k) : _mm256_setzero_ps();
    for (int r = 0; r < R; r++) {
        const __m256 v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[r]), _mm256_mul_ps(_mm256_set1_ps(a->sa[m0 + r]), sw), bv);
        _mm256_maskstore_ps(a->y + (size_t)(m0 + r) * a->N + n0, k, v);
    }
}
#define TILE8(R) \
    AVX2 static void tile8_avx2_##R(const qgemm_args *a, const int16_t *xw, int K4, int m0, const int8_t *w, int n0) { \
        tile8_avx2(a, xw, K4, m0, w, n0, R);                                                                    \
    }
TILE8(1) TILE8(2) TILE8(3) TILE8(4) TILE8(5) TILE8(6)
static void (*const avx2_tiles[MR])(const qgemm_args *, const int16_t *, int, int, const int8_t *, int) = {
    tile8_avx2_1, tile8_avx2_2, tile8_avx2_3, tile8_avx2_4, tile8_avx2_5, tile8_avx2_6};

enum { XW_STACK = MR * 2048 }; // int16 activations kept on the stack (24 KiB: K up to 2048; else the heap)

AVX2 static void tile_avx2(const qgemm_args *a, int m0, int mr, int p0, int np) {
    const int K4 = 4 * a->Kg;
    int16_t stack[XW_STACK], *xw = (size_t)mr * K4 <= XW_STACK ? stack : malloc((size_t)mr * K4 * sizeof *xw);
    if (!xw) { // out of memory: the portable kernel needs no buffer
        tile_c(a, m0, mr, p0, np);
        return;
    }
    for (int r = 0; r < mr; r++) { // widen the rows once (the bytes past K meet zero-padded weights)
        const int8_t *x = a->qa + (size_t)(m0 + r) * a->lda;
        int16_t *o = xw + (size_t)r * K4;
        int k = 0;
        for (; k + 16 <= K4; k += 16)
            _mm256_storeu_si256((__m256i *)(o + k), _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x + k))));
        for (; k < K4; k++) o[k] = x[k];
    }
    for (int pj = 0; pj < np; pj++)
        for (int h = 0; h < 2; h++) {
            const int n0 = 16 * (p0 + pj) + 8 * h;
            if (n0 >= a->N) break;
            avx2_tiles[mr - 1](a, xw, K4, m0, a->qp + (size_t)(p0 + pj) * a->Kg * 64 + 32 * h, n0);
        }
    if (xw != stack) free(xw);
}

// add_top_tile on AVX2: a panel's 16 weights for k = t are byte t & 3 of each 4-byte word of its 64-byte
// group; shifted up to the top byte and back (arithmetic) they are sign-extended int32s. y += tv * (sw * w)
// by a multiply and an add (ISO C: no contraction), rounded as the portable loop (perf: the scalar loop was
// 7% of a plan-20 student's batch of 32 here).
AVX2 static void add_top_tile_avx2(const qgemm_args *a, int m0, int mr, int p0, int np) {
    for (int r = 0; r < mr; r++) {
        const int m = m0 + r;
        const float tv = a->top_val[m];
        if (tv == 0.0f) continue;
        const int t = a->top_idx[m];
        float *y = a->y + (size_t)m * a->N;
        const __m256 vt = _mm256_set1_ps(tv);
        const __m128i sh = _mm_cvtsi32_si128(24 - 8 * (t & 3));
        for (int pj = 0; pj < np; pj++) {
            const int p = p0 + pj, n0 = 16 * p;
            const int8_t *g = a->qp + ((size_t)p * a->Kg + (size_t)(t >> 2)) * 64;
            if (n0 + 16 > a->N) { // the edge panel: the portable loop
                add_top_panel(a, y, tv, t, p);
                continue;
            }
            for (int h = 0; h < 2; h++) {
                __m256i d = _mm256_loadu_si256((const __m256i *)(g + 32 * h));
                d = _mm256_srai_epi32(_mm256_sll_epi32(d, sh), 24);
                const __m256 w = _mm256_mul_ps(_mm256_loadu_ps(a->sw + n0 + 8 * h), _mm256_cvtepi32_ps(d));
                _mm256_storeu_ps(y + n0 + 8 * h, _mm256_add_ps(_mm256_loadu_ps(y + n0 + 8 * h), _mm256_mul_ps(vt, w)));
            }
        }
    }
}
#endif

// ---- dispatch ---------------------------------------------------------------------------------------

typedef void (*tile_fn)(const qgemm_args *, int, int, int, int);

static int cpu_has_avx2(void) {
#ifdef QGEMM_X86
    return cpu_has(CPU_AVX2_FMA);
#else
    return 0;
#endif
}

static int cpu_has_vnni(void) {
#ifdef QGEMM_X86
    return cpu_has(CPU_AVX512F | CPU_AVX512BW_VL | CPU_AVX512VNNI);
#else
    return 0;
#endif
}

const char *seslm_qgemm_isa(void) { return cpu_has_vnni() ? "avx512vnni" : cpu_has_avx2() ? "avx2" : "c"; }

typedef struct {
    const qgemm_args *a;
    tile_fn fn;
    int nmb, P;
    seslm_rows_post post; // run on each finished tile's rows (not done inside the kernel)
    int scan_max;         // the kernel does not track rowmax: scan each finished tile's rows for it
    uint32_t *slots;      // rowmax: nslots threads' own (M) arrays, merged after the run; NULL: a->rowmax shared
    int nslots;
} qgemm_job;

// items: tiles, column blocks outermost so a thread's consecutive tiles reuse the same weight panels
static void qgemm_task(void *ctx, int lo, int hi, int tid) {
    const qgemm_job *j = ctx;
    const int M = j->a->M;
    qgemm_args own; // this thread's view: its own row-max slots (a thread beyond them shares a->rowmax)
    const qgemm_args *a = j->a;
    if (j->slots && tid < j->nslots) {
        own = *j->a;
        own.rowmax = j->slots + (size_t)tid * M, own.shared = 0;
        a = &own;
    }
    for (int t = lo; t < hi; t++) {
        const int pb = t / j->nmb, mb = t % j->nmb;
        const int m0 = mb * MR, p0 = pb * NP;
        const int mr = M - m0 < MR ? M - m0 : MR, np = j->P - p0 < NP ? j->P - p0 : NP;
        j->fn(a, m0, mr, p0, np);
        if (a->top_val) {
#ifdef QGEMM_X86
            if (j->fn != tile_c && cpu_has_avx2()) add_top_tile_avx2(a, m0, mr, p0, np); // "c": the portable pair
            else
#endif
                add_top_tile(a, m0, mr, p0, np);
        }
        if (!j->post && !j->scan_max) continue;
        // the tile's rows (mr x up to 64 floats) are still in L1: finish them here
        const int n0 = 16 * p0, nv = j->a->N - n0 < 16 * np ? j->a->N - n0 : 16 * np;
        for (int r = 0; r < mr; r++) {
            float *y = j->a->y + (size_t)(m0 + r) * j->a->N + n0;
            if (j->post) j->post(y, (size_t)nv);
            if (!j->scan_max) continue;
            uint32_t mx = 0;
            for (int i = 0; i < nv; i++) mx = abs_bits(y[i]) > mx ? abs_bits(y[i]) : mx;
            rowmax_update(a, m0 + r, mx);
        }
    }
}

// the tiles over the pool (or the calling thread for a small product)
static void qgemm_run(const qgemm_args *a, tile_fn fn, seslm_rows_post post, int scan_max, uint32_t *slots,
                      int nslots) {
    const int P = (a->N + 15) / 16, nmb = (a->M + MR - 1) / MR, npb = (P + NP - 1) / NP;
    const int tiles = nmb * npb;
    qgemm_job j = {a, fn, nmb, P, post, scan_max, slots, nslots};
    if (tiles > 1 && (long)a->M * a->N * a->K > 200000) seslm_pool_for(tiles, 1, 0, qgemm_task, &j);
    else qgemm_task(&j, 0, tiles, 0);
}

static tile_fn qgemm_pick(const char *isa) {
    static int have_vnni = -1, have_avx2 = -1; // benign races: every thread computes the same values
    if (have_vnni < 0) have_vnni = cpu_has_vnni();
    if (have_avx2 < 0) have_avx2 = cpu_has_avx2();
#ifdef QGEMM_X86
    if (have_vnni && (!isa || strcmp(isa, "avx512vnni") == 0)) return tile_vnni;
    if (have_avx2 && (!isa || strcmp(isa, "avx2") == 0)) return tile_avx2;
#endif
    (void)isa;
    return tile_c;
}

void seslm_qgemm_fast(int32_t *acc, float *y, const int8_t *qa, int lda, const float *sa, const int8_t *qp,
                      const int32_t *colsum, const float *sw, const float *b, int M, int N, int K, const char *isa) {
    seslm_qgemm_fast_post(acc, y, qa, lda, sa, qp, colsum, sw, b, M, N, K, isa, NULL);
}

void seslm_qgemm_fast_post(int32_t *acc, float *y, const int8_t *qa, int lda, const float *sa, const int8_t *qp,
                           const int32_t *colsum, const float *sw, const float *b, int M, int N, int K,
                           const char *isa, seslm_rows_post post) {
    const qgemm_args a = {acc, y, qa, lda, sa, qp, colsum, sw, b, M, N, K, (K + 3) / 4, 0, NULL, 0, NULL, NULL};
    qgemm_run(&a, qgemm_pick(isa), acc ? NULL : post, 0, NULL, 0);
}

void seslm_qgemm_fast_top1(float *y, const int8_t *qa, int lda, const float *sa, const int32_t *top_idx,
                           const float *top_val, const int8_t *qp, const int32_t *colsum, const float *sw, const float *b,
                           int M, int N, int K, const char *isa, seslm_rows_post post) {
    // gelu 0: an activation must see the top term, so it runs as post after add_top_tile, never in the kernel
    const qgemm_args a = {NULL, y, qa, lda, sa, qp, colsum, sw, b, M, N, K, (K + 3) / 4, 0, NULL, 0, top_idx, top_val};
    qgemm_run(&a, qgemm_pick(isa), post, 0, NULL, 0);
}

void seslm_qgemm_fast_gelu(float *y, uint32_t *rowmax, const int8_t *qa, int lda, const float *sa, const int8_t *qp,
                           const int32_t *colsum, const float *sw, const float *b, int M, int N, int K,
                           const char *isa, seslm_rows_post gelu_portable) {
    const tile_fn fn = qgemm_pick(isa);
#ifdef QGEMM_X86
    const int in_kernel = fn == tile_vnni; // the VNNI epilogue applies GELU and tracks the maximum itself
#else
    const int in_kernel = 0;
#endif
    if (rowmax) memset(rowmax, 0, (size_t)M * sizeof *rowmax);
    // each thread's own row maxima (no atomics in the tiles), merged below; out of memory: the shared array
    const int T = rowmax ? seslm_pool_threads() : 0;
    uint32_t *slots = T > 0 ? calloc((size_t)T * M, sizeof *slots) : NULL;
    const qgemm_args a = {NULL, y, qa, lda, sa, qp, colsum, sw, b, M, N, K, (K + 3) / 4, in_kernel, rowmax, 1, NULL, NULL};
    qgemm_run(&a, fn, in_kernel ? NULL : gelu_portable, !in_kernel && rowmax, slots, slots ? T : 0);
    if (!slots) return;
    for (int t = 0; t < T; t++)
        for (int m = 0; m < M; m++) rowmax[m] = slots[(size_t)t * M + m] > rowmax[m] ? slots[(size_t)t * M + m] : rowmax[m];
    free(slots);
}
