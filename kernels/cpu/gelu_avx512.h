/* gelu_avx512.h — GELU on 16 lanes of AVX-512, shared by the fast backend's element-wise pass (fast.c) and the
 * INT8 product's epilogue (qgemm.c), which applies it to a tile's registers before they are stored: the
 * same instructions in both, so the fused and the separate paths give the same bits. */
#ifndef SESLM_GELU_AVX512_H
#define SESLM_GELU_AVX512_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>

// GELU on 16 lanes: seslm_erff's rational approximation (mathfun.h), its division as a reciprocal estimate
// refined by one Newton step (relative error ~2^-28, below FP32's rounding; the division was a quarter of the
// op's time), then 0.5 x (1 + erf(x / sqrt 2)).
__attribute__((target("avx512f"))) static inline __m512 gelu16(__m512 v) {
    const __m512 x = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v, _mm512_set1_ps(0.70710678118654752f)),
                                                 _mm512_set1_ps(-4.0f)),
                                   _mm512_set1_ps(4.0f));
    const __m512 x2 = _mm512_mul_ps(x, x);
    __m512 p = _mm512_fmadd_ps(x2, _mm512_set1_ps(-2.72614225801306e-10f), _mm512_set1_ps(2.77068142495902e-08f));
    p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(-2.10102402082508e-06f));
    p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(-5.69250639462346e-05f));
    p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(-7.34990630326855e-04f));
    p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(-2.95459980854025e-03f));
    p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(-1.60960333262415e-02f));
    p = _mm512_mul_ps(x, p);
    __m512 q = _mm512_fmadd_ps(x2, _mm512_set1_ps(-1.45660718464996e-05f), _mm512_set1_ps(-2.13374055278905e-04f));
    q = _mm512_fmadd_ps(x2, q, _mm512_set1_ps(-1.68282697438203e-03f));
    q = _mm512_fmadd_ps(x2, q, _mm512_set1_ps(-7.37332916720468e-03f));
    q = _mm512_fmadd_ps(x2, q, _mm512_set1_ps(-1.42647390514189e-02f));
    __m512 r = _mm512_rcp14_ps(q);
    r = _mm512_mul_ps(r, _mm512_fnmadd_ps(q, r, _mm512_set1_ps(2.0f))); // r (2 - q r)
    const __m512 half = _mm512_mul_ps(v, _mm512_set1_ps(0.5f));
    return _mm512_fmadd_ps(half, _mm512_mul_ps(p, r), half);
}

#endif
#endif
