/* encoder_device.h — the encoder's device-side mirror, for backends with device memory (backend.h,
 * dev_alloc != NULL): every weight uploaded once, the workspace, the packed ids / offsets / lengths, the
 * structural masks. The forward pass in encoder.c picks these pointers instead of the host ones. */
#ifndef SESLM_ENCODER_DEVICE_H
#define SESLM_ENCODER_DEVICE_H

#include "backend.h"
#include "model_internal.h"

typedef struct {
    const seslm_backend *be;
    seslm_weight *lin;       // (4 * n_layers) device copies (weight_upload), same order as the encoder's
    int n_lin;
    seslm_layer_weights *lw; // (n_layers) device copies of the biases and LayerNorm vectors (matrices NULL)
    float **qkv_b;           // (n_layers) stacked Q/K/V biases; NULL where the layer has no heads
    seslm_embedding word;    // device copy of the word table (F32, or compressed rows)
    const float *pos, *type, *emb_ln_g, *emb_ln_b;
    int32_t *ids;            // (max_tokens)
    int *off, *len, *ones;   // (max_batch)
    float *x, *qkv, *ctx, *tmp, *ffn, *out;
    float *mask;             // device copy of the encoder's mask buffer (NULL until masks are set)
    void **bufs;             // every dev_alloc'd buffer above, freed together
    int n_bufs, cap_bufs;
    // replayable forward passes (backends with capture_begin): one per (batch, tokens) shape; the kernels
    // read ids / offsets / lengths from the device buffers above, so one graph serves every batch of
    // that shape. graphs_off: SESLM_CUDA_GRAPHS=0, or a capture failed once.
    struct {
        int B, ntok, seen;
        void *exec;
    } graphs[8];
    int graph_next, graphs_off;
} encoder_device;

/* Uploads the model's weights (lin / qkv_b: the encoder's host layout of the linear layers) and sizes
 * the workspace for max_tokens tokens and max_batch sequences. On failure everything allocated so far
 * is released (encoder_device_free is still safe to call). */
seslm_status encoder_device_init(encoder_device *d, const seslm_backend *be, const seslm_model *m,
                                 const seslm_weight *lin, float *const *qkv_b, int max_tokens, int max_batch,
                                 int Amax, int Fmax);
void encoder_device_free(encoder_device *d);

/* Copies the host mask buffer (n floats) to the device (allocated on the first call) and drops the
 * recorded graphs (they were recorded with the old masks). */
seslm_status encoder_device_set_masks(encoder_device *d, const float *mask_buf, size_t n);

/* Runs queue(ctx), which queues a whole forward pass of B sequences / ntok tokens on the device: the
 * first time for a shape as is; the second time recorded as a graph (capture_begin / capture_end) and
 * replayed; afterwards replayed only. Backends without capture hooks: queue(ctx) every time. */
seslm_status encoder_device_run(encoder_device *d, int B, int ntok, void (*queue)(void *ctx), void *ctx);

#endif
