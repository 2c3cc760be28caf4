/* test_nccl_cuda.c — the multi-GPU sum of calibration statistics (seslm_nccl_allreduce_sum_f64): one
 * rank (the one-GPU path of the same code: values unchanged, bit for bit) and, with several GPUs, all
 * of them (every rank gets the element-wise sum of all ranks' arrays). Bad rank counts are refused.
 * Skipped (77) without a GPU or without NCCL. Label "gpu". */
#include "seslm.h"
#include "test.h"
#ifdef SESLM_HAVE_CUDA
#include "cuda/cuda_kernels.h"
#endif

#include <stdint.h>

int main(void) {
#ifndef SESLM_HAVE_CUDA
    TEST_SKIP_UNLESS("SESLM_REQUIRE_GPU", "no GPU (built without CUDA)");
#else
    const int n_gpu = seslm_gpu_count();
    if (n_gpu <= 0) TEST_SKIP_UNLESS("SESLM_REQUIRE_GPU", "no GPU");
    if (!seslm_nccl_available()) TEST_SKIP("NCCL not available (libnccl.so.2)");
    enum { N = 100003, R = 8 };
    static double buf[R][N], want[N], orig[R][N];
    double *ptr[R];
    uint64_t s = 0x9e3779b97f4a7c15ull;
    const int ranks = n_gpu < R ? n_gpu : R;
    for (int r = 0; r < R; r++) {
        for (int i = 0; i < N; i++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            buf[r][i] = orig[r][i] = (double)(s >> 11) / 9007199254740992.0 * 2e3 - 1e3;
        }
        ptr[r] = buf[r];
    }
    // one rank: the same code path; the sum of one array is that array
    CHECK_MSG(seslm_nccl_allreduce_sum_f64(ptr, 1, N) == SESLM_OK, "%s", seslm_last_error());
    CHECK(memcmp(buf[0], orig[0], sizeof buf[0]) == 0);
    // all ranks
    for (int i = 0; i < N; i++) {
        want[i] = 0;
        for (int r = 0; r < ranks; r++) want[i] += orig[r][i];
    }
    CHECK_MSG(seslm_nccl_allreduce_sum_f64(ptr, ranks, N) == SESLM_OK, "%s", seslm_last_error());
    int bad = 0;
    for (int r = 0; r < ranks; r++)
        for (int i = 0; i < N; i++) bad += !(fabs(buf[r][i] - want[i]) <= 1e-9 * (1 + fabs(want[i])));
    CHECK_MSG(bad == 0, "%d of %d summed values wrong over %d ranks", bad, ranks * N, ranks);
    // refused: more ranks than GPUs, zero ranks
    CHECK(seslm_nccl_allreduce_sum_f64(ptr, n_gpu + 1, N) == SESLM_ERR_ARG && strstr(seslm_last_error(), "GPU"));
    CHECK(seslm_nccl_allreduce_sum_f64(ptr, 0, N) == SESLM_ERR_ARG);
    printf("all-reduce over %d rank(s) of %d doubles\n", ranks, N);
    return test_report("test_nccl_cuda");
#endif
}
