/* devices.c — which compute devices this build can use (the CPU always; CUDA GPUs when built with nvcc). */
#include "seslm.h"

#include <stdio.h>

#ifdef SESLM_HAVE_CUDA
int seslm_cuda_device_count(void);
int seslm_cuda_device_describe(int i, char *buf, int cap);
#endif

int seslm_gpu_count(void) {
#ifdef SESLM_HAVE_CUDA
    return seslm_cuda_device_count();
#else
    return 0;
#endif
}

int seslm_gpu_describe(int i, char *buf, int cap) {
#ifdef SESLM_HAVE_CUDA
    return seslm_cuda_device_describe(i, buf, cap);
#else
    (void)i;
    if (cap > 0) snprintf(buf, (size_t)cap, "CUDA support not built");
    return -1;
#endif
}

int seslm_built_with_cuda(void) {
#ifdef SESLM_HAVE_CUDA
    return 1;
#else
    return 0;
#endif
}
