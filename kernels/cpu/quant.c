/* quant.c — INT8 quantization helpers and the plain-C reference product (see quant.h). */
#include "quant.h"
#include "cpu_features.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

// ---- quantization ---------------------------------------------------------------------------------

// Round to nearest, ties to even, for |v| <= 127.5: adding and subtracting 1.5 * 2^23 leaves the
// integer part in the mantissa. Vectorises on every x86-64 level, unlike lrintf without SSE4.1.
static inline float round_even(float v) { return (v + 12582912.0f) - 12582912.0f; }

static void quantize_row_scaled_c(int8_t *o, float *scale, const float *r, int K, int ldq, float amax, int nonfinite);

// One row, portable. (Explicit compares, not fmaxf: without -ffast-math fmaxf is a libm call per element.)
static void quantize_row_c(int8_t *o, float *scale, const float *r, int K, int ldq) {
    float amax = 0.0f, probe = 0.0f; // probe: x - x is NaN for a NaN or an infinity, else 0
    for (int k = 0; k < K; k++) {
        const float a = fabsf(r[k]);
        amax = a > amax ? a : amax;
        probe += r[k] - r[k];
    }
    quantize_row_scaled_c(o, scale, r, K, ldq, amax, probe != 0.0f);
}

// One row whose max |x| (amax) is known; nonfinite: the row holds a NaN or an infinity.
static void quantize_row_scaled_c(int8_t *o, float *scale, const float *r, int K, int ldq, float amax, int nonfinite) {
    if (!(amax > 0.0f) || nonfinite) { // zero row: zeros; poisoned row: scale NaN, never finite
        memset(o, 0, (size_t)ldq);
        *scale = nonfinite ? NAN : 0.0f;
        return;
    }
    const float inv = 127.0f / amax;
    for (int k = 0; k < K; k++) {
        float v = round_even(r[k] * inv);
        v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
        o[k] = (int8_t)v;
    }
    if (ldq > K) memset(o + K, 0, (size_t)(ldq - K));
    *scale = amax / 127.0f;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define QUANT_X86 1
__attribute__((target("avx512f,avx512bw"))) static void quantize_row_scaled_avx512(int8_t *o, float *scale,
                                                                                    const float *r, int K, int ldq,
                                                                                    float am, int nonfinite);

// The same row on AVX-512: vcvtps2dq rounds to nearest even (the default MXCSR mode), as round_even
// does, and the clamp comes before the narrowing, so the bytes are identical to quantize_row_c's.
__attribute__((target("avx512f,avx512bw"))) static void quantize_row_avx512(int8_t *o, float *scale, const float *r,
                                                                             int K, int ldq) {
    __m512 amax = _mm512_setzero_ps(), probe = _mm512_setzero_ps();
    int k = 0;
    for (; k + 16 <= K; k += 16) {
        const __m512 x = _mm512_loadu_ps(r + k);
        amax = _mm512_max_ps(amax, _mm512_abs_ps(x));
        probe = _mm512_add_ps(probe, _mm512_sub_ps(x, x));
    }
    if (k < K) {
        const __mmask16 m = (__mmask16)((1u << (K - k)) - 1u);
        const __m512 x = _mm512_maskz_loadu_ps(m, r + k);
        amax = _mm512_max_ps(amax, _mm512_abs_ps(x));
        probe = _mm512_add_ps(probe, _mm512_sub_ps(x, x));
    }
    const float am = _mm512_reduce_max_ps(amax), pr = _mm512_reduce_add_ps(probe);
    quantize_row_scaled_avx512(o, scale, r, K, ldq, am, pr != 0.0f);
}

// One row whose max |x| (am) is known; nonfinite: the row holds a NaN or an infinity.
__attribute__((target("avx512f,avx512bw"))) static void quantize_row_scaled_avx512(int8_t *o, float *scale,
                                                                                    const float *r, int K, int ldq,
                                                                                    float am, int nonfinite) {
    if (!(am > 0.0f) || nonfinite) {
        memset(o, 0, (size_t)ldq);
        *scale = nonfinite ? NAN : 0.0f;
        return;
    }
    int k;
    const __m512 inv = _mm512_set1_ps(127.0f / am);
    const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
    for (k = 0; k + 16 <= K; k += 16) {
        __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(r + k), inv));
        q = _mm512_min_epi32(_mm512_max_epi32(q, lo), hi);
        _mm_storeu_si128((__m128i *)(o + k), _mm512_cvtepi32_epi8(q));
    }
    if (k < K) {
        const __mmask16 m = (__mmask16)((1u << (K - k)) - 1u);
        __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, r + k), inv));
        q = _mm512_min_epi32(_mm512_max_epi32(q, lo), hi);
        _mm512_mask_cvtepi32_storeu_epi8(o + k, m, q);
    }
    if (ldq > K) memset(o + K, 0, (size_t)(ldq - K));
    *scale = am / 127.0f;
}
#endif

#ifdef QUANT_X86
static int have_avx512bw(void) { return cpu_has(CPU_AVX512F | CPU_AVX512BW_VL); }
#endif

void seslm_quantize_rows(int8_t *q, float *scale, const float *x, int M, int K, int ldq) {
#ifdef QUANT_X86
    const int avx512 = have_avx512bw();
#endif
    for (int m = 0; m < M; m++) {
#ifdef QUANT_X86
        if (avx512) {
            quantize_row_avx512(q + (size_t)m * ldq, scale + m, x + (size_t)m * K, K, ldq);
            continue;
        }
#endif
        quantize_row_c(q + (size_t)m * ldq, scale + m, x + (size_t)m * K, K, ldq);
    }
}

void seslm_quantize_rows_amax(int8_t *q, float *scale, const float *x, int M, int K, int ldq,
                              const uint32_t *absmax_bits) {
#ifdef QUANT_X86
    const int avx512 = have_avx512bw();
#endif
    for (int m = 0; m < M; m++) {
        float am;
        memcpy(&am, absmax_bits + m, 4);
        const int nonfinite = absmax_bits[m] >= 0x7f800000u;
#ifdef QUANT_X86
        if (avx512) {
            quantize_row_scaled_avx512(q + (size_t)m * ldq, scale + m, x + (size_t)m * K, K, ldq, am, nonfinite);
            continue;
        }
#endif
        quantize_row_scaled_c(q + (size_t)m * ldq, scale + m, x + (size_t)m * K, K, ldq, am, nonfinite);
    }
}

/* For tests: the portable row quantizer on its own. */
void seslm_quantize_rows_portable(int8_t *q, float *scale, const float *x, int M, int K, int ldq) {
    for (int m = 0; m < M; m++) quantize_row_c(q + (size_t)m * ldq, scale + m, x + (size_t)m * K, K, ldq);
}

// ---- the largest element of each token kept in float ------------------------------------------------

// One row (quant.h seslm_quantize_rows_top1). Four passes, each one GCC vectorises but the short scan for
// the first index of the maximum: the maximum, its index, the second largest |x| (the maximum with t
// masked out), then the rounding with t's code forced to 0. The clamp comes before the cast, so t's
// out-of-range product never reaches it.
static void quantize_row_top1_c(int8_t *o, float *scale, int32_t *ti, float *tv, const float *r, int K, int ldq) {
    float a1 = 0.0f, probe = 0.0f;
    for (int k = 0; k < K; k++) {
        const float a = fabsf(r[k]);
        a1 = a > a1 ? a : a1;
        probe += r[k] - r[k];
    }
    *ti = 0, *tv = 0.0f;
    if (probe != 0.0f || !(a1 > 0.0f)) { // poisoned row: scale NaN; zero row: zeros, scale 0
        memset(o, 0, (size_t)ldq);
        *scale = probe != 0.0f ? NAN : 0.0f;
        return;
    }
    int t = 0;
    while (fabsf(r[t]) != a1) t++;
    float a2 = 0.0f;
    for (int k = 0; k < K; k++) {
        const float a = k == t ? 0.0f : fabsf(r[k]);
        a2 = a > a2 ? a : a2;
    }
    *ti = t, *tv = r[t];
    if (!(a2 > 0.0f)) { // the row is its largest element alone
        memset(o, 0, (size_t)ldq);
        *scale = 0.0f;
        return;
    }
    const float inv = 127.0f / a2;
    for (int k = 0; k < K; k++) {
        float v = round_even(r[k] * inv);
        v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
        o[k] = k == t ? 0 : (int8_t)v;
    }
    if (ldq > K) memset(o + K, 0, (size_t)(ldq - K));
    *scale = a2 / 127.0f;
}

#ifdef QUANT_X86
// The same row on AVX2, the same bytes: the maximum and the probe 8 lanes at a time, the first index of the
// maximum by compare + movemask, the second largest as the maxima on both sides of t, and the rounding by
// vcvtps2dq (nearest even, as round_even), clamped before the narrowing; then q[t] = 0.
__attribute__((target("avx2"))) static void quantize_row_top1_avx2(int8_t *o, float *scale, int32_t *ti, float *tv,
                                                                   const float *r, int K, int ldq) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 am = _mm256_setzero_ps(), pr = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        const __m256 v = _mm256_loadu_ps(r + k);
        am = _mm256_max_ps(am, _mm256_andnot_ps(sign, v));
        pr = _mm256_add_ps(pr, _mm256_sub_ps(v, v));
    }
    float lane[8], a1 = 0.0f, probe = 0.0f;
    _mm256_storeu_ps(lane, am);
    for (int i = 0; i < 8; i++) a1 = lane[i] > a1 ? lane[i] : a1;
    _mm256_storeu_ps(lane, pr);
    for (int i = 0; i < 8; i++) probe += lane[i];
    for (; k < K; k++) {
        const float a = fabsf(r[k]);
        a1 = a > a1 ? a : a1;
        probe += r[k] - r[k];
    }
    *ti = 0, *tv = 0.0f;
    if (probe != 0.0f || !(a1 > 0.0f)) {
        memset(o, 0, (size_t)ldq);
        *scale = probe != 0.0f ? NAN : 0.0f;
        return;
    }
    int t = 0;
    const __m256 va1 = _mm256_set1_ps(a1);
    for (; t + 8 <= K; t += 8) {
        const int mk = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(r + t)), va1, _CMP_EQ_OQ));
        if (mk) {
            t += __builtin_ctz((unsigned)mk);
            break;
        }
    }
    while (fabsf(r[t]) != a1) t++;
    float a2 = 0.0f;
    for (int side = 0; side < 2; side++) { // [0, t) then (t, K)
        const int lo = side ? t + 1 : 0, hi = side ? K : t;
        __m256 m2 = _mm256_setzero_ps();
        int j = lo;
        for (; j + 8 <= hi; j += 8) m2 = _mm256_max_ps(m2, _mm256_andnot_ps(sign, _mm256_loadu_ps(r + j)));
        _mm256_storeu_ps(lane, m2);
        for (int i = 0; i < 8; i++) a2 = lane[i] > a2 ? lane[i] : a2;
        for (; j < hi; j++) a2 = fabsf(r[j]) > a2 ? fabsf(r[j]) : a2;
    }
    *ti = t, *tv = r[t];
    if (!(a2 > 0.0f)) {
        memset(o, 0, (size_t)ldq);
        *scale = 0.0f;
        return;
    }
    const float inv = 127.0f / a2;
    const __m256 vinv = _mm256_set1_ps(inv);
    const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
    for (k = 0; k + 8 <= K; k += 8) {
        __m256i qv = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(r + k), vinv));
        qv = _mm256_min_epi32(_mm256_max_epi32(qv, lo), hi);
        const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(qv), _mm256_extracti128_si256(qv, 1));
        _mm_storel_epi64((__m128i *)(o + k), _mm_packs_epi16(w16, w16));
    }
    for (; k < K; k++) {
        float v = round_even(r[k] * inv);
        v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
        o[k] = (int8_t)v;
    }
    o[t] = 0;
    if (ldq > K) memset(o + K, 0, (size_t)(ldq - K));
    *scale = a2 / 127.0f;
}
#endif

void seslm_quantize_rows_top1(int8_t *q, float *scale, int32_t *top_idx, float *top_val, const float *x, int M, int K,
                              int ldq) {
#ifdef QUANT_X86
    const int avx2 = cpu_has(CPU_AVX2_FMA);
#endif
    for (int m = 0; m < M; m++) {
#ifdef QUANT_X86
        if (avx2) {
            quantize_row_top1_avx2(q + (size_t)m * ldq, scale + m, top_idx + m, top_val + m, x + (size_t)m * K, K, ldq);
            continue;
        }
#endif
        quantize_row_top1_c(q + (size_t)m * ldq, scale + m, top_idx + m, top_val + m, x + (size_t)m * K, K, ldq);
    }
}

/* For tests: the portable top1 quantizer on its own. */
void seslm_quantize_rows_top1_portable(int8_t *q, float *scale, int32_t *top_idx, float *top_val, const float *x, int M,
                                       int K, int ldq) {
    for (int m = 0; m < M; m++)
        quantize_row_top1_c(q + (size_t)m * ldq, scale + m, top_idx + m, top_val + m, x + (size_t)m * K, K, ldq);
}

void seslm_q8_add_top1_ref(float *y, int ldy, const int32_t *top_idx, const float *top_val, const int8_t *qw, int ldw,
                           const float *sw, int M, int N) {
    for (int m = 0; m < M; m++) {
        const float tv = top_val[m];
        if (tv == 0.0f) continue;
        const int8_t *w = qw + top_idx[m];
        for (int n = 0; n < N; n++) y[(size_t)m * ldy + n] += tv * (sw[n] * (float)w[(size_t)n * ldw]);
    }
}

float seslm_quantize_weight(int8_t *q, float *scale, const float *w, int N, int K) {
    float worst = 0.0f;
    for (int n = 0; n < N; n++) {
        const float *r = w + (size_t)n * K;
        float amax = 0.0f;
        for (int k = 0; k < K; k++) amax = fmaxf(amax, fabsf(r[k]));
        const float s = amax > 0.0f ? amax / 127.0f : 0.0f, inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        for (int k = 0; k < K; k++) {
            float v = round_even(r[k] * inv);
            v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
            q[(size_t)n * K + k] = (int8_t)v;
            if (amax > 0.0f) {
                float err = fabsf(v * s - r[k]) / amax;
                worst = err > worst ? err : worst;
            }
        }
        scale[n] = s;
    }
    return worst;
}

float seslm_quantize_rows4(uint8_t *q4, float *scale, const float *w, int N, int K) {
    float worst = 0.0f;
    for (int n = 0; n < N; n++) {
        const float *r = w + (size_t)n * K;
        float amax = 0.0f;
        for (int k = 0; k < K; k++) amax = fmaxf(amax, fabsf(r[k]));
        const float s = amax > 0.0f ? amax / 7.0f : 0.0f, inv = amax > 0.0f ? 7.0f / amax : 0.0f;
        uint8_t *o = q4 + (size_t)n * (K / 2);
        for (int k = 0; k < K; k++) {
            float v = round_even(r[k] * inv);
            v = v > 7.0f ? 7.0f : v < -7.0f ? -7.0f : v;
            const uint8_t nib = (uint8_t)((int)v & 0xF);
            if (k & 1) o[k >> 1] = (uint8_t)(o[k >> 1] | (nib << 4));
            else o[k >> 1] = nib;
            if (amax > 0.0f) {
                const float err = fabsf(v * s - r[k]) / amax;
                worst = err > worst ? err : worst;
            }
        }
        scale[n] = s;
    }
    return worst;
}

// ---- packing --------------------------------------------------------------------------------------

size_t seslm_qweight_packed_bytes(int N, int K) { return (size_t)((N + 15) / 16) * 16 * (size_t)((K + 3) / 4) * 4; }

int8_t *seslm_qweight_pack(const int8_t *q, int N, int K, int32_t **colsum_out) {
    const int P = (N + 15) / 16, Kg = (K + 3) / 4;
    int8_t *qp = calloc(seslm_qweight_packed_bytes(N, K) + 1, 1);
    int32_t *cs = calloc((size_t)P * 16 + 1, sizeof *cs);
    if (!qp || !cs) {
        free(qp), free(cs);
        return NULL;
    }
    for (int n = 0; n < N; n++) {
        const int p = n / 16, j = n % 16;
        int32_t s = 0;
        for (int k = 0; k < K; k++) {
            qp[(((size_t)p * Kg + k / 4) * 16 + j) * 4 + k % 4] = q[(size_t)n * K + k];
            s += q[(size_t)n * K + k];
        }
        cs[n] = 128 * s;
    }
    *colsum_out = cs;
    return qp;
}

// ---- reference product ----------------------------------------------------------------------------

void seslm_qgemm_ref(int32_t *acc, const int8_t *qa, const int8_t *qw, int M, int N, int K) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            int32_t s = 0;
            for (int k = 0; k < K; k++) s += (int32_t)qa[(size_t)m * K + k] * (int32_t)qw[(size_t)n * K + k];
            acc[(size_t)m * N + n] = s;
        }
}

// ---- scratch --------------------------------------------------------------------------------------

typedef struct {
    void *p;
    size_t n;
} scratch_buf;

static pthread_key_t g_key;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *v) {
    scratch_buf *s = v;
    free(s->p);
    free(s);
}
static void scratch_key_init(void) { pthread_key_create(&g_key, scratch_free); }

void *seslm_quant_scratch(size_t bytes) {
    pthread_once(&g_once, scratch_key_init);
    scratch_buf *s = pthread_getspecific(g_key);
    if (!s) {
        if (!(s = calloc(1, sizeof *s))) return NULL;
        if (pthread_setspecific(g_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    if (s->n < bytes) {
        void *p = realloc(s->p, bytes);
        if (!p) return NULL;
        s->p = p, s->n = bytes;
    }
    return s->p;
}
