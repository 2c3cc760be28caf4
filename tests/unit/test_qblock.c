/* test_qblock.c — the decoder's block-quantized kernels (kernels/qblock.h):
 *   - half-precision conversion on exact values (1, 65504, smallest subnormal, overflow, NaN);
 *   - the reference dot of each weight type equals the float sum of the dequantized rows (the format
 *     definition, computed here independently in double);
 *   - activation quantization: |x - q d| <= d / 2 per value, and Q8_1's s = d * sum(q);
 *   - the fast dot (AVX-512, AVX2, whichever this CPU has) against the reference on random rows, for
 *     every type, with a tolerance relative to sum |w x|; NaN never passes;
 *   - the threaded matrix product against the reference one, on a NaN-poisoned output (an unwritten
 *     element fails) with N not a multiple of the 16-row chunks and M not a multiple of 4 tokens. */
#include "pool.h"
#include "qblock.h"
#include "test.h"

#include <stdint.h>

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
static float frand(void) { return (float)rnd() / 2147483648.0f / 2.0f * 2.0f - 1.0f; } // [-1, 1)

/* random weight row of `type` with finite scales */
static void random_row(int type, uint8_t *w, int K) {
    int nb = K / 32;
    for (int i = 0; i < nb; i++) {
        if (type == QB_Q4_0) {
            qb_q4_0 *b = (qb_q4_0 *)w + i;
            b->d = qb_f32_to_f16(frand() * 0.1f);
            for (int j = 0; j < 16; j++) b->qs[j] = (uint8_t)rnd();
        } else if (type == QB_Q4_1) {
            qb_q4_1 *b = (qb_q4_1 *)w + i;
            b->d = qb_f32_to_f16(fabsf(frand()) * 0.02f);
            b->m = qb_f32_to_f16(frand() * 0.15f);
            for (int j = 0; j < 16; j++) b->qs[j] = (uint8_t)rnd();
        } else if (type == QB_Q8_0) {
            qb_q8_0 *b = (qb_q8_0 *)w + i;
            b->d = qb_f32_to_f16(frand() * 0.01f);
            for (int j = 0; j < 32; j++) b->qs[j] = (int8_t)(rnd() % 255 - 127);
        }
    }
    if (type == QB_F16)
        for (int j = 0; j < K; j++) ((uint16_t *)w)[j] = qb_f32_to_f16(frand());
    if (type == QB_F32)
        for (int j = 0; j < K; j++) ((float *)w)[j] = frand();
}

static void test_f16(void) {
    CHECK(qb_f32_to_f16(1.0f) == 0x3C00);
    CHECK(qb_f32_to_f16(-2.0f) == 0xC000);
    CHECK(qb_f32_to_f16(65504.0f) == 0x7BFF);
    CHECK(qb_f32_to_f16(65520.0f) == 0x7C00); // rounds to infinity
    CHECK(qb_f32_to_f16(5.9604645e-8f) == 0x0001);
    CHECK(qb_f32_to_f16(1.0f + 1.0f / 2048.0f) == 0x3C00); // tie -> even
    CHECK(qb_f32_to_f16(1.0f + 3.0f / 2048.0f) == 0x3C02); // tie -> even (up)
    uint16_t nan = qb_f32_to_f16(NAN);
    CHECK((nan & 0x7C00) == 0x7C00 && (nan & 0x3FF) != 0);
    CHECK(isnan(qb_f16_to_f32(nan)));
    CHECK(qb_f16_to_f32(0x3C00) == 1.0f);
    CHECK(qb_f16_to_f32(0x0001) == 5.9604644775390625e-8f);
    CHECK(isinf(qb_f16_to_f32(0xFC00)) && qb_f16_to_f32(0xFC00) < 0);
    int bad = 0;
    for (uint32_t h = 0; h < 0x7C00; h++) // every finite positive half survives the round trip
        bad += qb_f32_to_f16(qb_f16_to_f32((uint16_t)h)) != h;
    CHECK_MSG(bad == 0, "%d halves changed in a round trip", bad);
}

static void test_quantize(void) {
    enum { K = 256 };
    float x[K], y[K];
    for (int j = 0; j < K; j++) x[j] = frand() * (j < 32 ? 0.0f : 3.0f); // first block all zero
    qb_q8_0 a[K / 32];
    qb_q8_1 b[K / 32];
    qb_quantize_row(QB_Q8_0, x, a, K);
    qb_quantize_row(QB_Q8_1, x, b, K);
    qb_dequantize_row(QB_Q8_1, b, y, K);
    for (int i = 0; i < K / 32; i++) {
        float d = qb_f16_to_f32(b[i].d);
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            sum += b[i].qs[j];
            CHECK(a[i].qs[j] == b[i].qs[j]);
            // d is stored in F16: allow its rounding (2^-11 relative) on top of half a step
            CHECK(fabsf(x[i * 32 + j] - y[i * 32 + j]) <= d * 0.5f + fabsf(x[i * 32 + j]) * 1e-3f + 1e-7f);
        }
        CHECK(fabsf(qb_f16_to_f32(b[i].s) - (float)sum * d) <= fabsf((float)sum * d) * 1e-3f + 1e-6f);
    }
    CHECK(qb_f16_to_f32(b[0].d) == 0.0f);
}

static void test_dots(const char *isa) {
    const int types[] = {QB_Q4_0, QB_Q4_1, QB_Q8_0, QB_F16, QB_F32};
    const int Ks[] = {32, 64, 96, 576, 1536};
    static uint8_t w[1536 * 4], xq[1536 * 4];
    static float x[1536], wd[1536], xd[1536];
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++)
            for (int rep = 0; rep < 8; rep++) {
                int type = types[ti], K = Ks[ki], vt = qb_vec_dot_type(type);
                random_row(type, w, K);
                for (int j = 0; j < K; j++) x[j] = frand() * 2.0f;
                qb_quantize_row(vt, x, xq, K);
                qb_dequantize_row(type, w, wd, K);
                qb_dequantize_row(vt, xq, xd, K);
                double exact = 0.0, mag = 0.0;
                for (int j = 0; j < K; j++) {
                    exact += (double)wd[j] * xd[j];
                    mag += fabs((double)wd[j] * xd[j]);
                }
                // Q4_1: the reference uses the F16-rounded s = d * sum(q), not sum(d q): allow it
                double slack = type == QB_Q4_1 ? 2e-3 * mag + 1e-4 : 1e-5 * mag + 1e-6;
                float ref = qb_dot_ref(type, w, xq, K), fast = qb_dot(type, w, xq, K);
                CHECK_MSG(fabs(ref - exact) <= slack, "%s K=%d: reference %g vs definition %g",
                          qb_type_name(type), K, (double)ref, exact);
                CHECK_MSG(fabsf(fast - ref) <= 1e-5f * (float)mag + 1e-6f, "%s %s K=%d: fast %g vs reference %g",
                          isa, qb_type_name(type), K, (double)fast, (double)ref);
            }
}

/* qb_matmul_n (one parallel job over several matrices' row chunks) = one qb_matmul per matrix, bit for bit:
 * Q4_1 / Q4_1 / Q4_1 share the activation format (x quantized once), Q4_0 + F16 do not (separate calls);
 * on the pool's threads, row counts that leave partial chunks. */
static void test_matmul_n(void) {
    enum { M = 5, K = 64 };
    const int Ns[3] = {40, 17, 33};
    const int sets[2][3] = {{QB_Q4_1, QB_Q4_1, QB_Q4_1}, {QB_Q4_0, QB_F16, QB_Q8_0}};
    static uint8_t W[3][40 * K * 4];
    float x[M * K], y[3][M * 40], y1[3][M * 40];
    for (int j = 0; j < M * K; j++) x[j] = frand();
    seslm_pool_set_threads(2);
    for (int set = 0; set < 2; set++) {
        const void *Ws[3];
        float *ys[3];
        for (int i = 0; i < 3; i++) {
            const size_t rb = qb_row_bytes(sets[set][i], K);
            for (int n = 0; n < Ns[i]; n++) random_row(sets[set][i], W[i] + n * rb, K);
            Ws[i] = W[i], ys[i] = y[i];
            for (int j = 0; j < M * 40; j++) y[i][j] = NAN;
            CHECK(qb_matmul(y1[i], x, W[i], sets[set][i], M, Ns[i], K, 0) == 0);
        }
        CHECK(qb_matmul_n(3, ys, x, Ws, sets[set], Ns, M, K, 0) == 0);
        for (int i = 0; i < 3; i++)
            CHECK_MSG(memcmp(y[i], y1[i], (size_t)M * Ns[i] * sizeof(float)) == 0, "qb_matmul_n set %d matrix %d differs",
                      set, i);
    }
    seslm_pool_set_threads(1);
}

static void test_matmul(void) {
    enum { M = 7, N = 37, K = 96 }; // M = 7: the 4-token kernels and the remainder
    const int types[] = {QB_Q4_0, QB_Q4_1, QB_Q8_0, QB_F16, QB_F32};
    static uint8_t W[N * K * 4];
    float x[M * K], y[M * N], yr[M * N];
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        int type = types[ti];
        size_t rb = qb_row_bytes(type, K);
        for (int n = 0; n < N; n++) random_row(type, W + n * rb, K);
        for (int j = 0; j < M * K; j++) x[j] = frand();
        for (int j = 0; j < M * N; j++) y[j] = yr[j] = NAN;
        CHECK(qb_matmul(yr, x, W, type, M, N, K, 1) == 0);
        CHECK(qb_matmul(y, x, W, type, M, N, K, 0) == 0);
        int bad = 0;
        for (int j = 0; j < M * N; j++) bad += !(fabsf(y[j] - yr[j]) <= 1e-4f * (1.0f + fabsf(yr[j])));
        CHECK_MSG(bad == 0, "%s: %d of %d products differ or are unwritten", qb_type_name(type), bad, M * N);
        // the reference product is the reference dot of the quantized row
        uint8_t xq[K * 4]; // F32 activations for F16 / F32 weights
        qb_quantize_row(qb_vec_dot_type(type), x + K, xq, K);
        CHECK(yr[N + 5] == qb_dot_ref(type, W + 5 * rb, xq, K));
    }
    test_matmul_n();
    CHECK(qb_row_bytes(QB_Q4_1, 33) == 0); // blocks need rows of 32k
    CHECK(qb_row_bytes(QB_Q4_1, 64) == 40);
    CHECK(qb_row_bytes(77, 64) == 0);
}

/* The VNNI kernels (vpdpbusd, the activations' scales precomputed as floats) against the AVX-512 ones: the same
 * integer sums and float operations, so the same bits; Q4_1 rows of an odd and an even block count, a batch with
 * a remainder after the 4-token kernel, and one token (decoding: the AVX-512 dot on both). */
static void test_vnni_same_bits(void) {
    if (qb_force_isa("avx512vnni") != 0) {
        printf("test_qblock: no AVX-512 VNNI on this CPU; VNNI kernels not checked\n");
        return;
    }
    enum { M = 9, N = 21 };
    const int Ks[] = {96, 128, 576};
    static uint8_t W[N * 576];
    static float x[M * 576], y0[M * N], y1[M * N];
    for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++) {
        const int K = Ks[ki];
        const size_t rb = qb_row_bytes(QB_Q4_1, K);
        for (int n = 0; n < N; n++) random_row(QB_Q4_1, W + n * rb, K);
        for (int i = 0; i < M * K; i++) x[i] = frand();
        for (int mm = 1; mm <= M; mm += M - 1) {
            for (int i = 0; i < M * N; i++) y0[i] = NAN, y1[i] = -1.0f;
            qb_force_isa("avx512vnni");
            CHECK(qb_matmul(y1, x, W, QB_Q4_1, mm, N, K, 0) == 0);
            qb_force_isa("avx512");
            CHECK(qb_matmul(y0, x, W, QB_Q4_1, mm, N, K, 0) == 0);
            CHECK_MSG(memcmp(y0, y1, (size_t)mm * N * sizeof *y0) == 0, "Q4_1 K=%d M=%d: VNNI and AVX-512 differ", K, mm);
        }
    }
    qb_force_isa(NULL);
}

int main(void) {
    test_f16();
    test_quantize();
    const char *isas[] = {"c", "avx2", "avx512", "avx512vnni"};
    int ran = 0;
    for (int i = 0; i < 4; i++) {
        if (qb_force_isa(isas[i]) != 0) {
            printf("test_qblock: %s not available on this CPU\n", isas[i]);
            continue;
        }
        test_dots(isas[i]);
        test_matmul();
        ran++;
    }
    qb_force_isa(NULL);
    test_vnni_same_bits();
    printf("test_qblock: fast dots checked with %d instruction sets (best here: %s)\n", ran, qb_isa());
    return test_report("test_qblock");
}
