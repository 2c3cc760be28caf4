/* devsim.c — "cpu-devsim": the plain-C reference backend dressed as a device backend. Its device memory
 * is host memory (dev_alloc is malloc, uploads and downloads are memcpy, an uploaded weight is the host
 * weight), so the encoder takes its device code path (encoder_device.h: the device mirror, the queued
 * forward pass, the downloads) with ops whose results are known: the same as "cpu-ref" on the host path,
 * bit for bit. It exists to test that code path on machines without a GPU; it is no faster than cpu-ref. */
#include "backend.h"
#include "seslm.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static seslm_backend g_devsim;
static const seslm_backend *g_ref;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void *devsim_alloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) seslm_fail(SESLM_ERR_NOMEM, "cpu-devsim: out of memory (%zu bytes)", bytes);
    return p;
}

static void devsim_free(void *p) { free(p); }

static int devsim_copy(void *dst, const void *src, size_t bytes) {
    if (bytes) memcpy(dst, src, bytes);
    return 0;
}

// the host weight as it is: the reference ops read it in place; freeing it is the host's business
static int devsim_weight_upload(seslm_weight *dev, const seslm_weight *host) {
    *dev = *host;
    return 0;
}

static void devsim_weight_free(seslm_weight *dev) { memset(dev, 0, sizeof *dev); }

// A device encoder keeps no host scratch (it passes a 1-float buffer), as a GPU kernel needs none: the
// reference attention gets its own, one score row of the longest sequence.
static void devsim_attention(float *out, const float *qkv, const int *off, const int *len, int B, int H, int D,
                             float *scratch, size_t scratch_floats, float *stats) {
    (void)scratch, (void)scratch_floats;
    int S = 1;
    for (int b = 0; b < B; b++) S = len[b] > S ? len[b] : S;
    const size_t n = seslm_attention_scratch_floats(S, D, 1);
    float *own = malloc((n > (size_t)S ? n : (size_t)S) * sizeof(float));
    if (!own) { // (no way to report from an op; a poisoned output fails every comparison)
        for (int b = 0; b < B; b++)
            for (int i = 0; i < len[b] * H * D; i++) out[(size_t)off[b] * H * D + i] = NAN;
        return;
    }
    g_ref->attention(out, qkv, off, len, B, H, D, own, n, stats);
    free(own);
}

static void devsim_init(void) {
    g_ref = seslm_backend_cpu_ref();
    g_devsim = *g_ref;
    g_devsim.name = "cpu-devsim";
    g_devsim.attention = devsim_attention;
    g_devsim.dev_alloc = devsim_alloc;
    g_devsim.dev_free = devsim_free;
    g_devsim.dev_upload = devsim_copy;
    g_devsim.dev_download = devsim_copy;
    g_devsim.weight_upload = devsim_weight_upload;
    g_devsim.weight_free = devsim_weight_free;
}

const seslm_backend *seslm_backend_cpu_devsim(void) {
    pthread_once(&g_once, devsim_init);
    return &g_devsim;
}
