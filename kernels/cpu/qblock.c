/* qblock.c — block-quantized rows (qblock.h): conversion, activation quantization, dot products
 * (plain-C reference, AVX2 and AVX-512BW versions) and the matrix product over weight rows. */
#include "qblock.h"
#include "pool.h"
#include "cpu_features.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define QB_X86 1
#endif

// ---------------------------------------------------------------------------------------------
// half precision

float qb_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { // subnormal: value = man * 2^-24
            float f = (float)man * 5.9604644775390625e-8f;
            return sign ? -f : f;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t qb_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00 | ((ax >> 13) & 0x3ff)); // NaN stays NaN
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);                         // rounds past 65504
    if (ax < 0x38800000u) { // subnormal half (or zero): round ax * 2^24 to an integer, ties to even
        float a;
        memcpy(&a, &ax, 4);
        return (uint16_t)(sign | (uint32_t)nearbyintf(a * 16777216.0f));
    }
    uint32_t r = ax - 0x38000000u; // rebias exponent 127 -> 15 (still in float's bit positions)
    r = (r + 0x0fffu + ((r >> 13) & 1)) >> 13;
    return (uint16_t)(sign | r);
}

// ---------------------------------------------------------------------------------------------
// types

const char *qb_type_name(int type) {
    switch (type) {
    case QB_F32: return "F32";
    case QB_F16: return "F16";
    case QB_Q4_0: return "Q4_0";
    case QB_Q4_1: return "Q4_1";
    case QB_Q8_0: return "Q8_0";
    case QB_Q8_1: return "Q8_1";
    default: return NULL;
    }
}

size_t qb_row_bytes(int type, int64_t k) {
    if (k <= 0) return 0;
    switch (type) {
    case QB_F32: return (size_t)k * 4;
    case QB_F16: return (size_t)k * 2;
    default: break;
    }
    if (k % QB_BLOCK) return 0;
    size_t nb = (size_t)(k / QB_BLOCK);
    switch (type) {
    case QB_Q4_0: return nb * sizeof(qb_q4_0);
    case QB_Q4_1: return nb * sizeof(qb_q4_1);
    case QB_Q8_0: return nb * sizeof(qb_q8_0);
    case QB_Q8_1: return nb * sizeof(qb_q8_1);
    default: return 0;
    }
}

int qb_vec_dot_type(int type) {
    switch (type) {
    case QB_Q4_0:
    case QB_Q8_0: return QB_Q8_0;
    case QB_Q4_1: return QB_Q8_1;
    default: return QB_F32;
    }
}

void qb_dequantize_row(int type, const void *src, float *dst, int k) {
    int nb = k / QB_BLOCK;
    switch (type) {
    case QB_F32: memcpy(dst, src, (size_t)k * 4); return;
    case QB_F16: {
        const uint16_t *h = src;
        for (int i = 0; i < k; i++) dst[i] = qb_f16_to_f32(h[i]);
        return;
    }
    case QB_Q4_0: {
        const qb_q4_0 *b = src;
        for (int i = 0; i < nb; i++) {
            float d = qb_f16_to_f32(b[i].d);
            for (int j = 0; j < 16; j++) {
                dst[i * 32 + j] = (float)((b[i].qs[j] & 15) - 8) * d;
                dst[i * 32 + j + 16] = (float)((b[i].qs[j] >> 4) - 8) * d;
            }
        }
        return;
    }
    case QB_Q4_1: {
        const qb_q4_1 *b = src;
        for (int i = 0; i < nb; i++) {
            float d = qb_f16_to_f32(b[i].d), m = qb_f16_to_f32(b[i].m);
            for (int j = 0; j < 16; j++) {
                dst[i * 32 + j] = (float)(b[i].qs[j] & 15) * d + m;
                dst[i * 32 + j + 16] = (float)(b[i].qs[j] >> 4) * d + m;
            }
        }
        return;
    }
    case QB_Q8_0: {
        const qb_q8_0 *b = src;
        for (int i = 0; i < nb; i++) {
            float d = qb_f16_to_f32(b[i].d);
            for (int j = 0; j < 32; j++) dst[i * 32 + j] = (float)b[i].qs[j] * d;
        }
        return;
    }
    case QB_Q8_1: {
        const qb_q8_1 *b = src;
        for (int i = 0; i < nb; i++) {
            float d = qb_f16_to_f32(b[i].d);
            for (int j = 0; j < 32; j++) dst[i * 32 + j] = (float)b[i].qs[j] * d;
        }
        return;
    }
    default: return;
    }
}

/* One block of activations: d = max|x| / 127, q = round(x * 127 / max|x|) with ties to even, as
 * llama.cpp's x86 quantizer computes it (so both runtimes feed the same integers to their products). */
static float quantize_block(const float *x, int8_t *q, int *sum) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int s = 0;
    for (int j = 0; j < 32; j++) {
        q[j] = (int8_t)nearbyintf(x[j] * id);
        s += q[j];
    }
    *sum = s;
    return d;
}

void qb_quantize_row(int type, const float *x, void *dst, int k) {
    int nb = k / QB_BLOCK, sum;
    if (type == QB_Q8_0) {
        qb_q8_0 *b = dst;
        for (int i = 0; i < nb; i++) b[i].d = qb_f32_to_f16(quantize_block(x + i * 32, b[i].qs, &sum));
    } else if (type == QB_Q8_1) {
        qb_q8_1 *b = dst;
        for (int i = 0; i < nb; i++) {
            float d = quantize_block(x + i * 32, b[i].qs, &sum);
            b[i].d = qb_f32_to_f16(d);
            b[i].s = qb_f32_to_f16((float)sum * d);
        }
    } else if (type == QB_F32) {
        memcpy(dst, x, (size_t)k * 4);
    }
}

/* Weight rows, as ggml's reference quantizers write them (quantize_row_q4_0_ref, ..._q4_1_ref, ..._q8_0_ref):
 * a pruned decoder's re-packed rows (pipeline/recompile/llm_prune.c). */
int qb_quantize_weight_row(int type, const float *x, void *dst, int k) {
    if (k % QB_BLOCK && type != QB_F32 && type != QB_F16) return -1;
    const int nb = k / QB_BLOCK;
    switch (type) {
    case QB_F32: memcpy(dst, x, (size_t)k * 4); return 0;
    case QB_F16: qb_f32_to_f16_row(dst, x, k); return 0;
    case QB_Q8_0: {
        int sum;
        qb_q8_0 *b = dst;
        for (int i = 0; i < nb; i++) {
            float amax = 0.0f;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[i * 32 + j]));
            const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
            for (int j = 0; j < 32; j++) b[i].qs[j] = (int8_t)roundf(x[i * 32 + j] * id);
            b[i].d = qb_f32_to_f16(d);
        }
        (void)sum;
        return 0;
    }
    case QB_Q4_0: {
        qb_q4_0 *b = dst;
        for (int i = 0; i < nb; i++) {
            const float *v = x + i * 32;
            float amax = 0.0f, max = 0.0f;
            for (int j = 0; j < 32; j++)
                if (fabsf(v[j]) > amax) amax = fabsf(v[j]), max = v[j];
            const float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
            b[i].d = qb_f32_to_f16(d);
            for (int j = 0; j < 16; j++) {
                int q0 = (int)(int8_t)(v[j] * id + 8.5f), q1 = (int)(int8_t)(v[j + 16] * id + 8.5f);
                q0 = q0 < 15 ? q0 : 15, q1 = q1 < 15 ? q1 : 15;
                b[i].qs[j] = (uint8_t)(q0 | q1 << 4);
            }
        }
        return 0;
    }
    case QB_Q4_1: {
        qb_q4_1 *b = dst;
        for (int i = 0; i < nb; i++) {
            const float *v = x + i * 32;
            float mn = v[0], mx = v[0];
            for (int j = 1; j < 32; j++) mn = fminf(mn, v[j]), mx = fmaxf(mx, v[j]);
            const float d = (mx - mn) / 15.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
            b[i].d = qb_f32_to_f16(d);
            b[i].m = qb_f32_to_f16(mn);
            for (int j = 0; j < 16; j++) {
                int q0 = (int)(int8_t)((v[j] - mn) * id + 0.5f), q1 = (int)(int8_t)((v[j + 16] - mn) * id + 0.5f);
                q0 = q0 < 15 ? q0 : 15, q1 = q1 < 15 ? q1 : 15;
                b[i].qs[j] = (uint8_t)(q0 | q1 << 4);
            }
        }
        return 0;
    }
    default: return -1;
    }
}

// ---------------------------------------------------------------------------------------------
// reference dot products

float qb_dot_ref(int type, const void *w, const void *x, int k) {
    int nb = k / QB_BLOCK;
    float acc = 0.0f;
    switch (type) {
    case QB_Q4_0: {
        const qb_q4_0 *a = w;
        const qb_q8_0 *b = x;
        for (int i = 0; i < nb; i++) {
            int s = 0;
            for (int j = 0; j < 16; j++)
                s += ((a[i].qs[j] & 15) - 8) * b[i].qs[j] + ((a[i].qs[j] >> 4) - 8) * b[i].qs[j + 16];
            acc += (float)s * qb_f16_to_f32(a[i].d) * qb_f16_to_f32(b[i].d);
        }
        return acc;
    }
    case QB_Q4_1: {
        const qb_q4_1 *a = w;
        const qb_q8_1 *b = x;
        for (int i = 0; i < nb; i++) {
            int s = 0;
            for (int j = 0; j < 16; j++) s += (a[i].qs[j] & 15) * b[i].qs[j] + (a[i].qs[j] >> 4) * b[i].qs[j + 16];
            acc += (float)s * qb_f16_to_f32(a[i].d) * qb_f16_to_f32(b[i].d) +
                   qb_f16_to_f32(a[i].m) * qb_f16_to_f32(b[i].s);
        }
        return acc;
    }
    case QB_Q8_0: {
        const qb_q8_0 *a = w;
        const qb_q8_0 *b = x;
        for (int i = 0; i < nb; i++) {
            int s = 0;
            for (int j = 0; j < 32; j++) s += a[i].qs[j] * b[i].qs[j];
            acc += (float)s * qb_f16_to_f32(a[i].d) * qb_f16_to_f32(b[i].d);
        }
        return acc;
    }
    case QB_F16: {
        const uint16_t *a = w;
        const float *b = x;
        for (int j = 0; j < k; j++) acc += qb_f16_to_f32(a[j]) * b[j];
        return acc;
    }
    case QB_F32: {
        const float *a = w, *b = x;
        for (int j = 0; j < k; j++) acc += a[j] * b[j];
        return acc;
    }
    default: return NAN;
    }
}

// ---------------------------------------------------------------------------------------------
// fast dot products (x86). Integer sums per block are exact; only the order of the float sums differs
// from the reference.

#ifdef QB_X86
#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

AVX2 static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

/* 16 bytes of nibbles -> 32 bytes 0..15: values 0..15 in the low lane, 16..31 in the high lane */
AVX2 static inline __m256i nibbles32(const uint8_t *qs) {
    __m128i t = _mm_loadu_si128((const __m128i *)qs);
    __m256i b = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(b, _mm256_set1_epi8(15));
}

/* u8 x s8 pairwise sums to 8 floats */
AVX2 static inline __m256 dot_us8(__m256i u, __m256i s) {
    __m256i p = _mm256_maddubs_epi16(u, s);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}
/* s8 x s8: |a| * (b with a's sign) */
AVX2 static inline __m256 dot_ss8(__m256i a, __m256i b) {
    return dot_us8(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
}

AVX2 static float dot_q4_1_avx2(const qb_q4_1 *a, const qb_q8_1 *b, int nb) {
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f;
    for (int i = 0; i < nb; i++) {
        summs += h2f(a[i].m) * h2f(b[i].s);
        __m256 d = _mm256_set1_ps(h2f(a[i].d) * h2f(b[i].d));
        __m256 xy = dot_us8(nibbles32(a[i].qs), _mm256_loadu_si256((const __m256i *)b[i].qs));
        acc = _mm256_fmadd_ps(d, xy, acc);
    }
    return hsum256(acc) + summs;
}

AVX2 static float dot_q4_0_avx2(const qb_q4_0 *a, const qb_q8_0 *b, int nb) {
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        __m256 d = _mm256_set1_ps(h2f(a[i].d) * h2f(b[i].d));
        __m256i qa = _mm256_sub_epi8(nibbles32(a[i].qs), _mm256_set1_epi8(8));
        acc = _mm256_fmadd_ps(d, dot_ss8(qa, _mm256_loadu_si256((const __m256i *)b[i].qs)), acc);
    }
    return hsum256(acc);
}

AVX2 static float dot_q8_0_avx2(const qb_q8_0 *a, const qb_q8_0 *b, int nb) {
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        __m256 d = _mm256_set1_ps(h2f(a[i].d) * h2f(b[i].d));
        __m256i qa = _mm256_loadu_si256((const __m256i *)a[i].qs);
        acc = _mm256_fmadd_ps(d, dot_ss8(qa, _mm256_loadu_si256((const __m256i *)b[i].qs)), acc);
    }
    return hsum256(acc);
}

/* AVX-512BW: two blocks per 512-bit register; block i's 8 partial sums in the low half, i+1's in the
 * high half, each scaled by its own d_w * d_x. */
AVX512 static inline __m512 dot_us8_512(__m512i u, __m512i s) {
    __m512i p = _mm512_maddubs_epi16(u, s);
    return _mm512_cvtepi32_ps(_mm512_madd_epi16(p, _mm512_set1_epi16(1)));
}
AVX512 static inline __m512 scale2(float d0, float d1) {
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_set1_ps(d0)), _mm256_castps_pd(_mm256_set1_ps(d1)), 1));
}
AVX512 static inline __m512i load2(const int8_t *p0, const int8_t *p1) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p0)),
                              _mm256_loadu_si256((const __m256i *)p1), 1);
}
AVX512 static inline __m512i nibbles64(const uint8_t *q0, const uint8_t *q1) {
    __m256i t = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)q0)),
                                        _mm_loadu_si128((const __m128i *)q1), 1); // [q0 | q1]
    __m256i h = _mm256_srli_epi16(t, 4);
    // want [q0 lo | q0 hi | q1 lo | q1 hi]
    __m512i z = _mm512_castsi256_si512(_mm256_permute2x128_si256(t, h, 0x20)); // [q0 | q0>>4]
    z = _mm512_inserti64x4(z, _mm256_permute2x128_si256(t, h, 0x31), 1);    // [q1 | q1>>4]
    return _mm512_and_si512(z, _mm512_set1_epi8(15));
}

AVX512 static float dot_q4_1_avx512(const qb_q4_1 *a, const qb_q8_1 *b, int nb) {
    __m512 acc = _mm512_setzero_ps();
    float summs = 0.0f;
    int i = 0;
    for (; i + 1 < nb; i += 2) {
        summs += h2f(a[i].m) * h2f(b[i].s) + h2f(a[i + 1].m) * h2f(b[i + 1].s);
        __m512 d = scale2(h2f(a[i].d) * h2f(b[i].d), h2f(a[i + 1].d) * h2f(b[i + 1].d));
        __m512 xy = dot_us8_512(nibbles64(a[i].qs, a[i + 1].qs), load2(b[i].qs, b[i + 1].qs));
        acc = _mm512_fmadd_ps(d, xy, acc);
    }
    float r = _mm512_reduce_add_ps(acc) + summs;
    if (i < nb) r += dot_q4_1_avx2(a + i, b + i, 1);
    return r;
}

AVX512 static float dot_q8_0_avx512(const qb_q8_0 *a, const qb_q8_0 *b, int nb) {
    __m512 acc = _mm512_setzero_ps();
    int i = 0;
    for (; i + 1 < nb; i += 2) {
        __m512 d = scale2(h2f(a[i].d) * h2f(b[i].d), h2f(a[i + 1].d) * h2f(b[i + 1].d));
        __m512i qa = load2(a[i].qs, a[i + 1].qs), qb = load2(b[i].qs, b[i + 1].qs);
        __m512i ua = _mm512_abs_epi8(qa);
        // b with a's sign: negate where a < 0 (a == 0 contributes 0 through |a| anyway)
        __mmask64 neg = _mm512_movepi8_mask(qa);
        __m512i sb = _mm512_mask_sub_epi8(qb, neg, _mm512_setzero_si512(), qb);
        acc = _mm512_fmadd_ps(d, dot_us8_512(ua, sb), acc);
    }
    float r = _mm512_reduce_add_ps(acc);
    if (i < nb) r += dot_q8_0_avx2(a + i, b + i, 1);
    return r;
}

AVX2 static float dot_f32_avx2(const float *a, const float *b, int k) {
    __m256 acc = _mm256_setzero_ps();
    int j = 0;
    for (; j + 8 <= k; j += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j), acc);
    float r = hsum256(acc);
    for (; j < k; j++) r += a[j] * b[j];
    return r;
}

/* One weight row against 4 tokens' activations (rows x, x + xs, x + 2 xs, x + 3 xs): the weight nibbles are
 * unpacked once per block for the 4 products (prompt processing). */
AVX512 static void dot4_q4_1_avx512(float *out, const qb_q4_1 *a, const uint8_t *x, size_t xs, int nb) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    float summs[4] = {0, 0, 0, 0};
    int i = 0;
    for (; i + 1 < nb; i += 2) {
        __m512i qa = nibbles64(a[i].qs, a[i + 1].qs);
        float d0 = h2f(a[i].d), d1 = h2f(a[i + 1].d), m0 = h2f(a[i].m), m1 = h2f(a[i + 1].m);
        for (int t = 0; t < 4; t++) {
            const qb_q8_1 *b = (const qb_q8_1 *)(x + (size_t)t * xs);
            summs[t] += m0 * h2f(b[i].s) + m1 * h2f(b[i + 1].s);
            __m512 d = scale2(d0 * h2f(b[i].d), d1 * h2f(b[i + 1].d));
            acc[t] = _mm512_fmadd_ps(d, dot_us8_512(qa, load2(b[i].qs, b[i + 1].qs)), acc[t]);
        }
    }
    for (int t = 0; t < 4; t++) {
        out[t] = _mm512_reduce_add_ps(acc[t]) + summs[t];
        if (i < nb) out[t] += dot_q4_1_avx2(a + i, (const qb_q8_1 *)(x + (size_t)t * xs) + i, 1);
    }
}

AVX512 static void dot4_q8_0_avx512(float *out, const qb_q8_0 *a, const uint8_t *x, size_t xs, int nb) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int i = 0;
    for (; i + 1 < nb; i += 2) {
        __m512i qa = load2(a[i].qs, a[i + 1].qs);
        __m512i ua = _mm512_abs_epi8(qa);
        __mmask64 neg = _mm512_movepi8_mask(qa);
        float d0 = h2f(a[i].d), d1 = h2f(a[i + 1].d);
        for (int t = 0; t < 4; t++) {
            const qb_q8_0 *b = (const qb_q8_0 *)(x + (size_t)t * xs);
            __m512i qb = load2(b[i].qs, b[i + 1].qs);
            __m512i sb = _mm512_mask_sub_epi8(qb, neg, _mm512_setzero_si512(), qb);
            __m512 d = scale2(d0 * h2f(b[i].d), d1 * h2f(b[i + 1].d));
            acc[t] = _mm512_fmadd_ps(d, dot_us8_512(ua, sb), acc[t]);
        }
    }
    for (int t = 0; t < 4; t++) {
        out[t] = _mm512_reduce_add_ps(acc[t]);
        if (i < nb) out[t] += dot_q8_0_avx2(a + i, (const qb_q8_0 *)(x + (size_t)t * xs) + i, 1);
    }
}

/* AVX-512 VNNI (prompt processing on CPUs that have it): vpdpbusd multiplies the weight nibbles
 * (u8) by the activations (s8) and sums each 4 products into int32 in one instruction, where maddubs + madd
 * took two (the same exact integer sums: no pair reaches the int16 limit, 15 * 127 * 2 < 32767). */
#define VNNI512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
VNNI512 static inline __m512 dot_us8_vnni(__m512i u, __m512i s) {
    return _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), u, s));
}

/* dot4_q4_1_avx512 with VNNI and the activations' block scales already as floats (qb_quant_task: xd, per token
 * and pair of blocks [d_i x 8 | d_i+1 x 8]; xsm, per token and block s_i): the per-token work of a pair of
 * blocks drops from ~25 instructions (four F16 conversions, the scale vector built) to ~12. The same float
 * operations in the same order as dot4_q4_1_avx512, so the same bits. */
VNNI512 static void dot4_q4_1_vnni(float *out, const qb_q4_1 *a, const uint8_t *x, size_t xs, int nb, const float *xd,
                                   const float *xsm, size_t fs) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    float summs[4] = {0, 0, 0, 0};
    int i = 0;
    for (; i + 1 < nb; i += 2) {
        __m512i qa = nibbles64(a[i].qs, a[i + 1].qs);
        const float m0 = h2f(a[i].m), m1 = h2f(a[i + 1].m);
        const __m512 wd = scale2(h2f(a[i].d), h2f(a[i + 1].d));
        for (int t = 0; t < 4; t++) {
            const qb_q8_1 *b = (const qb_q8_1 *)(x + (size_t)t * xs);
            const float *sm = xsm + (size_t)t * nb;
            summs[t] += m0 * sm[i] + m1 * sm[i + 1];
            const __m512 d = _mm512_mul_ps(wd, _mm512_loadu_ps(xd + (size_t)t * fs + (size_t)(i / 2) * 16));
            acc[t] = _mm512_fmadd_ps(d, dot_us8_vnni(qa, load2(b[i].qs, b[i + 1].qs)), acc[t]);
        }
    }
    for (int t = 0; t < 4; t++) {
        out[t] = _mm512_reduce_add_ps(acc[t]) + summs[t];
        if (i < nb) out[t] += dot_q4_1_avx2(a + i, (const qb_q8_1 *)(x + (size_t)t * xs) + i, 1);
    }
}

AVX2 static void dot4_q4_1_avx2(float *out, const qb_q4_1 *a, const uint8_t *x, size_t xs, int nb) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    float summs[4] = {0, 0, 0, 0};
    for (int i = 0; i < nb; i++) {
        __m256i qa = nibbles32(a[i].qs);
        float d0 = h2f(a[i].d), m0 = h2f(a[i].m);
        for (int t = 0; t < 4; t++) {
            const qb_q8_1 *b = (const qb_q8_1 *)(x + (size_t)t * xs);
            summs[t] += m0 * h2f(b[i].s);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d0 * h2f(b[i].d)),
                                     dot_us8(qa, _mm256_loadu_si256((const __m256i *)b[i].qs)), acc[t]);
        }
    }
    for (int t = 0; t < 4; t++) out[t] = hsum256(acc[t]) + summs[t];
}

AVX2 static float dot_f16_avx2(const uint16_t *k, const float *q, int n) {
    __m256 acc = _mm256_setzero_ps();
    int j = 0;
    for (; j + 8 <= n; j += 8)
        acc = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + j))), _mm256_loadu_ps(q + j), acc);
    float r = hsum256(acc);
    for (; j < n; j++) r += _cvtsh_ss(k[j]) * q[j];
    return r;
}

AVX2 static void axpy_f16_avx2(float *y, float a, const uint16_t *v, int n) {
    __m256 av = _mm256_set1_ps(a);
    int j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(y + j, _mm256_fmadd_ps(av, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + j))),
                                                _mm256_loadu_ps(y + j)));
    for (; j < n; j++) y[j] += a * _cvtsh_ss(v[j]);
}
#endif

enum { ISA_C, ISA_AVX2, ISA_AVX512, ISA_VNNI };

static int hw_isa(void) {
#ifdef QB_X86
    // (every AVX2 CPU has F16C; clang's __builtin_cpu_supports does not know "f16c")
    int have2 = cpu_has(CPU_AVX2_FMA);
    int have512 = have2 && cpu_has(CPU_AVX512F | CPU_AVX512BW_VL);
    int vnni = have512 && cpu_has(CPU_AVX512VNNI);
    return vnni ? ISA_VNNI : have512 ? ISA_AVX512 : have2 ? ISA_AVX2 : ISA_C;
#else
    return ISA_C;
#endif
}

static int detect_isa(void) {
    const char *force = getenv("SESLM_QB_ISA"); // for tests and benchmarks: "c", "avx2", "avx512"
    int best = hw_isa();
    if (force && strcmp(force, "c") == 0) return ISA_C;
    if (force && strcmp(force, "avx2") == 0 && best >= ISA_AVX2) return ISA_AVX2;
    if (force && strcmp(force, "avx512") == 0 && best >= ISA_AVX512) return ISA_AVX512;
    return best;
}

static int isa_cached = -1;
static int isa_get(void) {
    int v = __atomic_load_n(&isa_cached, __ATOMIC_RELAXED);
    if (v < 0) {
        v = detect_isa();
        __atomic_store_n(&isa_cached, v, __ATOMIC_RELAXED);
    }
    return v;
}

int qb_force_isa(const char *name) {
    int want = name == NULL ? hw_isa() : strcmp(name, "c") == 0 ? ISA_C : strcmp(name, "avx2") == 0 ? ISA_AVX2
             : strcmp(name, "avx512") == 0 ? ISA_AVX512 : strcmp(name, "avx512vnni") == 0 ? ISA_VNNI : -1;
    if (want < 0) return -1;
    if (want > hw_isa()) return -1; // this CPU lacks it
    __atomic_store_n(&isa_cached, want, __ATOMIC_RELAXED);
    return 0;
}

const char *qb_isa(void) {
    int v = isa_get();
    return v == ISA_VNNI ? "avx512vnni" : v == ISA_AVX512 ? "avx512" : v == ISA_AVX2 ? "avx2" : "c";
}

float qb_dot(int type, const void *w, const void *x, int k) {
#ifdef QB_X86
    int isa = isa_get();
    int nb = k / QB_BLOCK;
    if (isa >= ISA_AVX512) {
        if (type == QB_Q4_1) return dot_q4_1_avx512(w, x, nb); // one token: memory-bound, VNNI gains nothing
        if (type == QB_Q8_0) return dot_q8_0_avx512(w, x, nb);
    }
    if (isa >= ISA_AVX2) {
        switch (type) {
        case QB_Q4_1: return dot_q4_1_avx2(w, x, nb);
        case QB_Q4_0: return dot_q4_0_avx2(w, x, nb);
        case QB_Q8_0: return dot_q8_0_avx2(w, x, nb);
        case QB_F32: return dot_f32_avx2(w, x, k);
        default: break;
        }
    }
#endif
    return qb_dot_ref(type, w, x, k);
}

static int isa_get(void);

float qb_dot_f16(const uint16_t *k, const float *q, int n, int ref) {
#ifdef QB_X86
    if (!ref && isa_get() >= ISA_AVX2) return dot_f16_avx2(k, q, n);
#endif
    float r = 0.0f;
    for (int j = 0; j < n; j++) r += qb_f16_to_f32(k[j]) * q[j];
    return r;
}

void qb_axpy_f16(float *y, float a, const uint16_t *v, int n, int ref) {
#ifdef QB_X86
    if (!ref && isa_get() >= ISA_AVX2) {
        axpy_f16_avx2(y, a, v, n);
        return;
    }
#endif
    for (int j = 0; j < n; j++) y[j] += a * qb_f16_to_f32(v[j]);
}

void qb_f32_to_f16_row(uint16_t *dst, const float *src, int n) {
    for (int j = 0; j < n; j++) dst[j] = qb_f32_to_f16(src[j]);
}

/* out[t] = dot(w, x + t * xs) for t < 4; 0 when no multi-token kernel fits (the caller loops qb_dot). */
// xd, xsm: the 4 tokens' block scales as floats (qb_quant_task; Q8_1 activations), fs floats of xd apart
static int qb_dot4(int type, const void *w, const uint8_t *x, size_t xs, int k, float *out, const float *xd,
                   const float *xsm, size_t fs) {
#ifdef QB_X86
    int isa = isa_get(), nb = k / QB_BLOCK;
    if (isa == ISA_VNNI && type == QB_Q4_1 && xd) return dot4_q4_1_vnni(out, w, x, xs, nb, xd, xsm, fs), 1;
    if (isa >= ISA_AVX512 && type == QB_Q4_1) return dot4_q4_1_avx512(out, w, x, xs, nb), 1;
    if (isa >= ISA_AVX512 && type == QB_Q8_0) return dot4_q8_0_avx512(out, w, x, xs, nb), 1;
    if (isa == ISA_AVX2 && type == QB_Q4_1) return dot4_q4_1_avx2(out, w, x, xs, nb), 1;
#endif
    (void)type, (void)w, (void)x, (void)xs, (void)k, (void)out, (void)xd, (void)xsm, (void)fs;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// matrix product

enum { QB_CHUNK = 16, QB_MAXMATS = 4 }; // rows per work item: whole cache lines of y per thread

typedef struct {
    int n;                       // matrices
    float *const *ys;            // (M, Ns[i]) each
    const void *const *Ws;       // (Ns[i], K) each
    const int *types, *Ns;
    int first[QB_MAXMATS + 1];   // work items: chunks of matrix i are [first[i], first[i + 1])
    const uint8_t *xq;           // x quantized, M rows of xrow bytes
    size_t xrow;
    const float *xd, *xsm;       // Q8_1 activations: block scales as floats (qb_quant_task), or NULL
    size_t fs;                   // floats of xd per token
    int M, K, ref;
} qb_mm_job;

// rows [n0, n1) of matrix i
static void qb_mm_rows(const qb_mm_job *j, int i, int n0, int n1) {
    const int type = j->types[i], N = j->Ns[i], M = j->M, K = j->K;
    const size_t wrow = qb_row_bytes(type, K);
    const uint8_t *w = j->Ws[i];
    float *y = j->ys[i];
    for (int n = n0; n < n1; n++) {
        const uint8_t *wr = w + (size_t)n * wrow;
        int m = 0;
        float o4[4];
        if (!j->ref)
            for (; m + 4 <= M &&
                   qb_dot4(type, wr, j->xq + (size_t)m * j->xrow, j->xrow, K, o4, j->xd ? j->xd + (size_t)m * j->fs : NULL,
                           j->xsm ? j->xsm + (size_t)m * (K / QB_BLOCK) : NULL, j->fs);
                 m += 4)
                for (int t = 0; t < 4; t++) y[(size_t)(m + t) * N + n] = o4[t];
        for (; m < M; m++) {
            const void *xr = j->xq + (size_t)m * j->xrow;
            y[(size_t)m * N + n] = j->ref ? qb_dot_ref(type, wr, xr, K) : qb_dot(type, wr, xr, K);
        }
    }
}

// items: chunks of QB_CHUNK rows, numbered through the matrices in order
static void qb_mm_task(void *ctx, int lo, int hi, int tid) {
    (void)tid;
    const qb_mm_job *j = ctx;
    for (int t = lo; t < hi; t++) {
        int i = 0;
        while (t >= j->first[i + 1]) i++;
        const int n0 = (t - j->first[i]) * QB_CHUNK, n1 = n0 + QB_CHUNK < j->Ns[i] ? n0 + QB_CHUNK : j->Ns[i];
        qb_mm_rows(j, i, n0, n1);
    }
}

// items: token rows of x, quantized to the dot type (and their block scales as floats, when xd)
typedef struct {
    const float *x;
    uint8_t *xq;
    size_t xrow;
    float *xd, *xsm;
    size_t fs;
    int K, vt;
} qb_quant_job;

static void qb_quant_task(void *ctx, int lo, int hi, int tid) {
    (void)tid;
    const qb_quant_job *j = ctx;
    const int nb = j->K / QB_BLOCK;
    for (int m = lo; m < hi; m++) {
        uint8_t *row = j->xq + (size_t)m * j->xrow;
        qb_quantize_row(j->vt, j->x + (size_t)m * j->K, row, j->K);
        if (!j->xd) continue;
        const qb_q8_1 *b = (const qb_q8_1 *)row;
        float *xd = j->xd + (size_t)m * j->fs, *xsm = j->xsm + (size_t)m * nb;
        for (int i = 0; i < nb; i++) xsm[i] = qb_f16_to_f32(b[i].s);
        for (int i = 0; i + 1 < nb; i += 2) // [d_i x 8 | d_i+1 x 8]: the pair's scale vector
            for (int l = 0; l < 16; l++) xd[(size_t)(i / 2) * 16 + l] = qb_f16_to_f32(b[i + l / 8].d);
    }
}

int qb_matmul_n(int n, float *const *ys, const float *x, const void *const *Ws, const int *types, const int *Ns, int M,
                int K, int ref) {
    if (n < 1) return 0;
    int same = n <= QB_MAXMATS;
    for (int i = 1; i < n && same; i++) same = qb_vec_dot_type(types[i]) == qb_vec_dot_type(types[0]);
    if (!same) {
        for (int i = 0; i < n; i++)
            if (qb_matmul_n(1, ys + i, x, Ws + i, types + i, Ns + i, M, K, ref) != 0) return -1;
        return 0;
    }
    const int vt = qb_vec_dot_type(types[0]);
    const size_t xrow = qb_row_bytes(vt, K);
    for (int i = 0; i < n; i++)
        if (!xrow || !qb_row_bytes(types[i], K)) return -1;
    // a batch of tokens (a prompt): Q8_1 rows' block scales also as floats for the 4-token kernel
    const int nb = K / QB_BLOCK, scales = vt == QB_Q8_1 && M >= 4 && !ref;
    const size_t fs = (size_t)(nb / 2) * 16, xq_bytes = (xrow * (size_t)M + 63) & ~(size_t)63;
    uint8_t *xq = malloc(xq_bytes + (scales ? (size_t)M * (fs + (size_t)nb) * sizeof(float) : 0));
    if (!xq) return -1;
    float *xd = scales ? (float *)(xq + xq_bytes) : NULL, *xsm = scales ? xd + (size_t)M * fs : NULL;
    qb_quant_job qj = {x, xq, xrow, xd, xsm, fs, K, vt};
    if (M >= 8) seslm_pool_for(M, 4, 0, qb_quant_task, &qj);
    else qb_quant_task(&qj, 0, M, 0);
    qb_mm_job j = {n, ys, Ws, types, Ns, {0}, xq, xrow, xd, xsm, fs, M, K, ref};
    for (int i = 0; i < n; i++) j.first[i + 1] = j.first[i] + (Ns[i] + QB_CHUNK - 1) / QB_CHUNK;
    seslm_pool_for(j.first[n], 1, 0, qb_mm_task, &j);
    free(xq);
    return 0;
}

int qb_matmul(float *y, const float *x, const void *W, int type, int M, int N, int K, int ref) {
    return qb_matmul_n(1, &y, x, &W, &type, &N, M, K, ref);
}
