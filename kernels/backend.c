/* backend.c — backend registry. */
#include "backend.h"

#include <string.h>

const seslm_backend *seslm_backend_get(const char *name) {
    if (!name || strcmp(name, "cpu") == 0) return seslm_backend_cpu_fast();
    if (strcmp(name, "cpu-ref") == 0) return seslm_backend_cpu_ref();
    return NULL;
}
