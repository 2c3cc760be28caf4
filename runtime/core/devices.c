/* devices.c — which compute devices this build can use: the CPU always; CUDA GPUs when the CUDA backend
 * library (libseslm-cuda, cuda_plugin.h) can be loaded and a device is visible. */
#include "seslm.h"

#include "cuda_plugin.h"

#include <stdio.h>

int seslm_gpu_count(void) {
    const seslm_cuda_plugin *p = seslm_cuda_plugin_get(NULL);
    return p ? p->device_count() : 0;
}

int seslm_gpu_describe(int i, char *buf, int cap) {
    const char *why = NULL;
    const seslm_cuda_plugin *p = seslm_cuda_plugin_get(&why);
    if (p) return p->device_describe(i, buf, cap);
    if (cap > 0) snprintf(buf, (size_t)cap, "%s", why);
    return -1;
}

int seslm_built_with_cuda(void) { return seslm_cuda_plugin_get(NULL) != NULL; }
