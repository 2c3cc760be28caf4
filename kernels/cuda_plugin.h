/* cuda_plugin.h — the CUDA backend is its own library, libseslm-cuda (with cudart and cuBLAS). The core
 * opens it with dlopen the first time a CUDA backend or a GPU query is asked for, so a program that only
 * embeds on the CPU never loads, nor needs, the CUDA runtime. */
#ifndef SESLM_CUDA_PLUGIN_H
#define SESLM_CUDA_PLUGIN_H

#include "backend.h"

/* The entry points of libseslm-cuda (kernels/cuda/cuda_kernels.h, cuda_device.cu). */
typedef struct {
    const seslm_backend *(*backend)(int fp16); // NULL (message set) without a visible device
    int (*device_count)(void);
    int (*device_describe)(int i, char *buf, int cap);
} seslm_cuda_plugin;

/* The loaded plugin, or NULL when it cannot be loaded; then *why (when why is not NULL) says why
 * (a static string). Loaded once per process, thread-safe. $SESLM_CUDA_LIBRARY names another file. */
const seslm_cuda_plugin *seslm_cuda_plugin_get(const char **why);

#endif
