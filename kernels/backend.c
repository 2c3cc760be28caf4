/* backend.c — backend registry. The CUDA backends come from the plugin library (cuda_plugin.h). */
#include "backend.h"
#include "cuda_plugin.h"
#include "seslm.h"

#include <stdlib.h>
#include <string.h>

float *seslm_weight_pack32(const float *w, int N, int K) {
    const size_t panels = ((size_t)N + 31) / 32;
    float *wp = calloc(panels * K * 32 + 1, sizeof *wp); // zeros pad the last panel
    if (!wp) return NULL;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) wp[((size_t)(n / 32) * K + k) * 32 + n % 32] = w[(size_t)n * K + k];
    return wp;
}

const seslm_backend *seslm_backend_get(const char *name) {
    if (!name || strcmp(name, "cpu") == 0) return seslm_backend_cpu_fast();
    if (strcmp(name, "cpu-ref") == 0) return seslm_backend_cpu_ref();
    if (strcmp(name, "cpu-devsim") == 0) return seslm_backend_cpu_devsim();
    if (strcmp(name, "cuda") == 0 || strcmp(name, "cuda-fp16") == 0) {
        const char *why = NULL;
        const seslm_cuda_plugin *p = seslm_cuda_plugin_get(&why);
        if (!p) {
            seslm_fail(SESLM_ERR_ARG, "%s", why);
            return NULL;
        }
        return p->backend(strcmp(name, "cuda-fp16") == 0); // NULL without a visible device
    }
    return NULL;
}
