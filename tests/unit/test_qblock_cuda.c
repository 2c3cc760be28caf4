/* test_qblock_cuda.c — the decoder's GPU kernels (kernels/cuda/qblock.cu) against the plain-C reference:
 *   - activation quantization: the same int8 values and F16 scales as qb_quantize_row (both round half
 *     to even);
 *   - y = x W^T for Q4_0 / Q4_1 / Q8_0 weights on shapes with N not a multiple of anything and K of 1
 *     to 48 blocks, against qb_matmul's reference, relative tolerance 1e-4; the output is poisoned with
 *     NaN first, so an unwritten element fails.
 * Without a GPU (or without CUDA in the build) it prints "skipped: no GPU" and exits 77. */
#include "qblock.h"
#include "test.h"

#include "seslm.h"
#ifdef SESLM_HAVE_CUDA
#include "cuda/cuda_kernels.h"
#endif

#ifdef SESLM_HAVE_CUDA
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)(rng >> 40) / 8388608.0f - 1.0f;
}

static void test_type(int type, int M, int N, int K) {
    int vt = qb_vec_dot_type(type);
    size_t wrow = qb_row_bytes(type, K), xrow = qb_row_bytes(vt, K);
    float *w = malloc((size_t)N * K * 4), *x = malloc((size_t)M * K * 4);
    uint8_t *W = malloc(wrow * N), *XQ = malloc(xrow * M), *XQd = malloc(xrow * M);
    float *yr = malloc((size_t)M * N * 4), *yd = malloc((size_t)M * N * 4);
    for (size_t i = 0; i < (size_t)N * K; i++) w[i] = frand() * 0.2f;
    for (size_t i = 0; i < (size_t)M * K; i++) x[i] = frand() * 3.0f;
    // weights: quantize with the Q8 quantizer, then reinterpret as the weight type's blocks by re-encoding
    for (int n = 0; n < N; n++) {
        uint8_t *row = W + wrow * n;
        for (int b = 0; b < K / 32; b++) {
            const float *v = w + (size_t)n * K + b * 32;
            if (type == QB_Q8_0) {
                qb_quantize_row(QB_Q8_0, v, row + b * sizeof(qb_q8_0), 32);
            } else {
                float mn = v[0], mx = v[0];
                for (int j = 1; j < 32; j++) mn = fminf(mn, v[j]), mx = fmaxf(mx, v[j]);
                if (type == QB_Q4_1) {
                    qb_q4_1 *o = (qb_q4_1 *)row + b;
                    float d = (mx - mn) / 15.0f;
                    o->d = qb_f32_to_f16(d);
                    o->m = qb_f32_to_f16(mn);
                    for (int j = 0; j < 16; j++) {
                        int a = d > 0 ? (int)((v[j] - mn) / d + 0.5f) : 0, c = d > 0 ? (int)((v[j + 16] - mn) / d + 0.5f) : 0;
                        o->qs[j] = (uint8_t)((a > 15 ? 15 : a) | (c > 15 ? 15 : c) << 4);
                    }
                } else {
                    qb_q4_0 *o = (qb_q4_0 *)row + b;
                    float amax = fmaxf(-mn, mx), d = amax / 8.0f;
                    o->d = qb_f32_to_f16(d);
                    for (int j = 0; j < 16; j++) {
                        int a = d > 0 ? (int)(v[j] / d + 8.5f) : 8, c = d > 0 ? (int)(v[j + 16] / d + 8.5f) : 8;
                        o->qs[j] = (uint8_t)((a > 15 ? 15 : a) | (c > 15 ? 15 : c) << 4);
                    }
                }
            }
        }
    }
    for (int m = 0; m < M; m++) qb_quantize_row(vt, x + (size_t)m * K, XQ + xrow * m, K);
    CHECK(qb_matmul(yr, x, W, type, M, N, K, 1) == 0);
    void *dW = seslm_cuda_alloc(wrow * N), *dX = seslm_cuda_alloc((size_t)M * K * 4), *dXQ = seslm_cuda_alloc(xrow * M),
         *dY = seslm_cuda_alloc((size_t)M * N * 4);
    CHECK(dW && dX && dXQ && dY);
    if (dW && dX && dXQ && dY) {
        for (size_t i = 0; i < (size_t)M * N; i++) yd[i] = NAN;
        seslm_cuda_upload(dW, W, wrow * N);
        seslm_cuda_upload(dX, x, (size_t)M * K * 4);
        seslm_cuda_upload(dY, yd, (size_t)M * N * 4);
        seslm_cuda_qb_quantize(dXQ, dX, vt, M, K);
        seslm_cuda_qb_matvec(dY, dW, type, dXQ, M, N, K);
        CHECK(seslm_cuda_download(XQd, dXQ, xrow * M) == 0);
        CHECK(seslm_cuda_download(yd, dY, (size_t)M * N * 4) == 0);
        CHECK_MSG(memcmp(XQ, XQd, xrow * M) == 0, "%s: GPU activation blocks differ from the CPU's", qb_type_name(vt));
        int bad = 0;
        for (size_t i = 0; i < (size_t)M * N; i++) bad += !(fabsf(yd[i] - yr[i]) <= 1e-4f * (1.0f + fabsf(yr[i])));
        CHECK_MSG(bad == 0, "%s M=%d N=%d K=%d: %d of %d products differ or are unwritten", qb_type_name(type), M, N, K,
                  bad, M * N);
    }
    seslm_cuda_free(dW), seslm_cuda_free(dX), seslm_cuda_free(dXQ), seslm_cuda_free(dY);
    free(w), free(x), free(W), free(XQ), free(XQd), free(yr), free(yd);
}
#endif

int main(void) {
    if (seslm_gpu_count() <= 0) TEST_SKIP("no GPU");
#ifdef SESLM_HAVE_CUDA
    const int types[] = {QB_Q4_0, QB_Q4_1, QB_Q8_0};
    const int shapes[][3] = {{1, 576, 576}, {1, 1536, 576}, {3, 577, 1536}, {7, 49, 32}};
    for (int t = 0; t < 3; t++)
        for (int s = 0; s < 4; s++) test_type(types[t], shapes[s][0], shapes[s][1], shapes[s][2]);
    return test_report("test_qblock_cuda");
#else
    TEST_SKIP("no GPU support in this build");
#endif
}
