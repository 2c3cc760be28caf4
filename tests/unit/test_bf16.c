/* test_bf16.c — BF16 linear layers (kernels/bf16.h):
 *   - the FP32 -> BF16 rounding against hand-computed bit patterns (ties to even, NaN, Inf, denormals)
 *     and the vectorised converter against the scalar one on random bit patterns;
 *   - the reference product against a double-precision sum of the same BF16 values (error bound of an
 *     FP32 accumulation: K * 2^-24 * sum |x w|), and against FP32 inputs (the BF16 rounding bound);
 *   - the portable fast kernel bit for bit against the reference, the AVX-512 BF16 kernel (when the CPU
 *     has it) within 2 K * 2^-24 * sum |x w| per element (the hardware flushes denormals), on shapes
 *     that hit every edge of the 8-row x 32-column blocks (odd K, partial panels, M not a multiple of 8);
 *     outputs poisoned with NaN first, so an unwritten element fails; a NaN input row stays NaN and
 *     does not leak into other rows. */
#include "bf16.h"
#include "pool.h"
#include "test.h"

#include <math.h>
#include <stdint.h>

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t urand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}
static float frand(void) { return (float)(urand() >> 8) * (1.0f / (1 << 24)) * 2.0f - 1.0f; }

static float bits_f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_rounding(void) {
    CHECK(seslm_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(seslm_f32_to_bf16(-2.0f) == 0xc000);
    CHECK(seslm_f32_to_bf16(bits_f(0x3f808000u)) == 0x3f80); // tie, even below: stays
    CHECK(seslm_f32_to_bf16(bits_f(0x3f818000u)) == 0x3f82); // tie, odd below: up to even
    CHECK(seslm_f32_to_bf16(bits_f(0x3f808001u)) == 0x3f81); // above the tie: up
    CHECK(seslm_f32_to_bf16(bits_f(0x3f807fffu)) == 0x3f80); // below the tie: down
    CHECK(seslm_f32_to_bf16(INFINITY) == 0x7f80);
    CHECK(seslm_f32_to_bf16(-INFINITY) == 0xff80);
    CHECK(seslm_f32_to_bf16(bits_f(0x7f7fffffu)) == 0x7f80); // FLT_MAX rounds to Inf (RNE)
    const uint16_t qn = seslm_f32_to_bf16(NAN);
    CHECK((qn & 0x7f80) == 0x7f80 && (qn & 0x7f) != 0);
    CHECK((seslm_f32_to_bf16(bits_f(0x7f800001u)) & 0x7f) != 0); // signalling NaN with a low payload bit
    CHECK(seslm_f32_to_bf16(bits_f(0x00000001u)) == 0x0000);     // denormals: signed zero
    CHECK(seslm_f32_to_bf16(bits_f(0x807fffffu)) == 0x8000);
    CHECK(seslm_bf16_to_f32(0x3f80) == 1.0f);
    // vectorised converter == scalar, on random bit patterns (every class: NaN, Inf, denormal, normal)
    enum { N = 1 << 16 };
    float *src = malloc(N * sizeof *src);
    uint16_t *dst = malloc(N * sizeof *dst);
    for (int i = 0; i < N; i++) {
        uint32_t u = urand();
        if (i % 17 == 0) u &= 0x807fffffu; // denormal
        if (i % 19 == 0) u |= 0x7f800000u; // Inf / NaN
        memcpy(src + i, &u, 4);
    }
    seslm_bf16_from_f32(dst, src, N);
    int bad = 0;
    for (int i = 0; i < N; i++) bad += dst[i] != seslm_f32_to_bf16(src[i]);
    CHECK_MSG(bad == 0, "%d of %d conversions differ from the scalar rounding", bad, N);
    free(src), free(dst);
}

typedef struct {
    int M, N, K;
} shape;

static void check_shape(shape s, const char *fast_isa, int *exact_out, size_t *total_out) {
    const int M = s.M, N = s.N, K = s.K;
    float *x = malloc((size_t)M * K * sizeof *x), *w = malloc((size_t)N * K * sizeof *w), *b = malloc(N * sizeof *b);
    uint16_t *wb = malloc((size_t)N * K * sizeof *wb);
    float *ref = malloc((size_t)M * N * sizeof *ref), *got = malloc((size_t)M * N * sizeof *got);
    for (size_t i = 0; i < (size_t)M * K; i++) x[i] = frand() * 3.0f;
    for (size_t i = 0; i < (size_t)N * K; i++) w[i] = frand() * 0.1f;
    for (int n = 0; n < N; n++) b[n] = frand();
    seslm_bf16_from_f32(wb, w, (size_t)N * K);
    seslm_bf16_linear_ref(ref, x, wb, b, M, N, K);
    // reference vs a double sum of the same BF16 values, and vs the FP32 product
    size_t bad_ref = 0, bad_f32 = 0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double d = b[n], mag = fabs(b[n]), f = b[n], fmag = fabs(b[n]);
            for (int k = 0; k < K; k++) {
                const double xb = seslm_bf16_to_f32(seslm_f32_to_bf16(x[(size_t)m * K + k]));
                d += xb * seslm_bf16_to_f32(wb[(size_t)n * K + k]);
                mag += fabs(xb * seslm_bf16_to_f32(wb[(size_t)n * K + k]));
                f += (double)x[(size_t)m * K + k] * w[(size_t)n * K + k];
                fmag += fabs((double)x[(size_t)m * K + k] * w[(size_t)n * K + k]);
            }
            const double r = ref[(size_t)m * N + n];
            bad_ref += !(fabs(r - d) <= (K + 1) * ldexp(mag, -24) + 1e-30);
            bad_f32 += !(fabs(r - f) <= ldexp(fmag, -7)); // two roundings to 8 significant bits
        }
    CHECK_MSG(bad_ref == 0, "%dx%dx%d: %zu reference elements outside the FP32-accumulation bound", M, N, K, bad_ref);
    CHECK_MSG(bad_f32 == 0, "%dx%dx%d: %zu reference elements outside the BF16 rounding bound", M, N, K, bad_f32);

    uint16_t *wp = seslm_bf16_pack(wb, N, K);
    CHECK(wp != NULL);
    for (size_t i = 0; i < (size_t)M * N; i++) got[i] = NAN; // poison
    CHECK(seslm_bf16_linear_fast(got, x, wp, b, M, N, K, fast_isa) == 0);
    size_t exact = 0, bad = 0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            const float g = got[(size_t)m * N + n], r = ref[(size_t)m * N + n];
            double mag = fabs(b[n]);
            for (int k = 0; k < K; k++)
                mag += fabs((double)seslm_bf16_to_f32(seslm_f32_to_bf16(x[(size_t)m * K + k])) *
                            seslm_bf16_to_f32(wb[(size_t)n * K + k]));
            exact += memcmp(&g, &r, 4) == 0;
            bad += !(fabs((double)g - r) <= 2.0 * K * ldexp(mag, -24) + 1e-30); // NaN fails
        }
    if (strcmp(fast_isa, "c") == 0)
        CHECK_MSG(exact == (size_t)M * N, "%dx%dx%d c: %zu of %d elements differ from the reference", M, N, K,
                  (size_t)M * N - exact, M * N);
    CHECK_MSG(bad == 0, "%dx%dx%d %s: %zu elements outside tolerance", M, N, K, fast_isa, bad);
    *exact_out += (int)exact;
    *total_out += (size_t)M * N;

    // a NaN in one input row: that row's outputs NaN, every other row unchanged
    if (M > 1) {
        x[(size_t)(M / 2) * K + K / 2] = NAN;
        for (size_t i = 0; i < (size_t)M * N; i++) got[i] = -1.0f;
        seslm_bf16_linear_fast(got, x, wp, b, M, N, K, fast_isa);
        int leak = 0, kept = 1;
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                const float g = got[(size_t)m * N + n];
                if (m == M / 2) kept &= isnan(g);
                else leak += isnan(g);
            }
        CHECK_MSG(kept && leak == 0, "%dx%dx%d %s: NaN row kept %d, leaked %d", M, N, K, fast_isa, kept, leak);
    }
    free(wp), free(x), free(w), free(b), free(wb), free(ref), free(got);
}

int main(void) {
    test_rounding();
    const shape shapes[] = {{1, 32, 2},   {1, 1, 1},     {3, 33, 7},    {8, 64, 16},  {9, 65, 129},
                            {12, 384, 384}, {37, 100, 130}, {17, 1536, 384}, {13, 384, 1536}};
    const int nshapes = (int)(sizeof shapes / sizeof *shapes);
    for (int threads = 1; threads <= 2; threads++) {
        seslm_pool_set_threads(threads);
        int exact = 0;
        size_t total = 0;
        for (int i = 0; i < nshapes; i++) check_shape(shapes[i], "c", &exact, &total);
        // the AVX2 kernel runs the portable kernel's arithmetic: every element bit-identical to it
        if (strcmp(seslm_bf16_isa(), "c") != 0) {
            exact = 0, total = 0;
            for (int i = 0; i < nshapes; i++) check_shape(shapes[i], "avx2", &exact, &total);
            CHECK_MSG(exact == (int)total, "avx2 (%d threads): %d of %zu elements bit-identical to the reference",
                      threads, exact, total);
        }
        if (strcmp(seslm_bf16_isa(), "avx512bf16") == 0) {
            exact = 0, total = 0;
            for (int i = 0; i < nshapes; i++) check_shape(shapes[i], "avx512bf16", &exact, &total);
            printf("avx512bf16 (%d threads): %d of %zu elements bit-identical to the reference\n", threads, exact, total);
        } else {
            printf("no AVX-512 BF16 on this CPU: the portable and AVX2 kernels only\n");
        }
    }
    return test_report("test_bf16");
}
