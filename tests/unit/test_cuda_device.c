/* test_cuda_device.c — the CUDA build path: device discovery. Without a GPU this test reports
 * "skipped: no GPU" (exit 77), never "passed". */
#include "seslm.h"
#include "test.h"

int main(void) {
    if (!seslm_built_with_cuda()) TEST_SKIP_UNLESS("SESLM_REQUIRE_GPU", "no GPU (built without CUDA)");
    int n = seslm_gpu_count();
    if (n <= 0) TEST_SKIP_UNLESS("SESLM_REQUIRE_GPU", "no GPU");
    char desc[256];
    for (int i = 0; i < n; i++) {
        CHECK(seslm_gpu_describe(i, desc, sizeof desc) == 0);
        CHECK(strstr(desc, "sm_") != NULL);
        printf("gpu %d: %s\n", i, desc);
    }
    CHECK(seslm_gpu_describe(n, desc, sizeof desc) == -1);
    return test_report("test_cuda_device");
}
