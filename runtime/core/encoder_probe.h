/* encoder_probe.h — a callback into the forward pass at the inputs of the linear layers, for the
 * calibration passes of the pipeline (least-squares reconstruction, activation ranges). Not part of the
 * serving API: a probe runs on the forward pass's thread, inside it, and must not keep the pointers. */
#ifndef SESLM_ENCODER_PROBE_H
#define SESLM_ENCODER_PROBE_H

#include "seslm.h"

typedef enum {
    SESLM_PROBE_QKV_IN,  // x (Ntok, C): input of the fused Q/K/V product
    SESLM_PROBE_CTX,     // ctx (Ntok, A): attention output (after head masks), input of attention.output.dense
    SESLM_PROBE_FFN_IN,  // x (Ntok, C): input of intermediate.dense
    SESLM_PROBE_FFN_H,   // h (Ntok, F): GELU output (after neuron masks), input of output.dense
} seslm_probe_point;

typedef void (*seslm_probe_fn)(void *ctx, int layer, seslm_probe_point point, const float *x, int ntok, int width);

/* Installs (or, with fn NULL, removes) the probe of an encoder. */
void seslm_encoder_set_probe(seslm_encoder *e, seslm_probe_fn fn, void *ctx);

#endif
