/* mathfun.h — branch-free float exp and erf that compilers vectorise (libm's do not, without
 * -ffast-math). Accuracy is checked against libm in tests/unit/test_kernels_cpu.c. */
#ifndef SESLM_MATHFUN_H
#define SESLM_MATHFUN_H

#include <stdint.h>

/* exp(x): Cody-Waite range reduction x = n ln2 + r (|r| <= ln2 / 2), Cephes degree-6 polynomial for e^r, 2^n by
 * building the exponent bits. Relative error about 2 ulp on [-87, 88]; clamps outside. */
static inline float seslm_expf(float x) {
    x = x > 88.3762626647949f ? 88.3762626647949f : x;
    x = x < -87.3365447504019f ? -87.3365447504019f : x;
    // n = round(x / ln 2) without a float->int conversion (which, after the clamps, stops GCC's
    // vectoriser): adding 1.5 * 2^23 rounds to an integer held in the low mantissa bits.
    union {
        float f;
        int32_t i;
    } m = {.f = x * 1.44269504088896341f + 12582912.0f};
    const float n = m.f - 12582912.0f;
    const int32_t ni = m.i - 0x4B400000;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    // 2^n from its exponent bits; a union (not memcpy) keeps the loop vectorisable for GCC
    union {
        int32_t i;
        float f;
    } scale = {.i = (ni + 127) << 23};
    return p * scale.f;
}

/* erf(x): the rational approximation used by Eigen and XLA (odd degree-13 over even degree-8
 * polynomial) on x clamped to [-4, 4], beyond which erf is +-1 in single precision. */
static inline float seslm_erff(float x) {
    x = x > 4.0f ? 4.0f : x;
    x = x < -4.0f ? -4.0f : x;
    const float x2 = x * x;
    float p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
    p = x2 * p + -2.10102402082508e-06f;
    p = x2 * p + -5.69250639462346e-05f;
    p = x2 * p + -7.34990630326855e-04f;
    p = x2 * p + -2.95459980854025e-03f;
    p = x2 * p + -1.60960333262415e-02f;
    p = x * p;
    float q = x2 * -1.45660718464996e-05f + -2.13374055278905e-04f;
    q = x2 * q + -1.68282697438203e-03f;
    q = x2 * q + -7.37332916720468e-03f;
    q = x2 * q + -1.42647390514189e-02f;
    return p / q;
}

#endif
