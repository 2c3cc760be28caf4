/* pooling.h — every sentence-transformers pooling mode on host memory (pooling.c). */
#ifndef SESLM_POOLING_H
#define SESLM_POOLING_H

#include "seslm.h"

/* out (B, C) = pooling of x rows off[b] .. off[b]+len[b]-1 of each sequence, leaving out its first `skip`
 * tokens (the prompt, when include_prompt is false; 0 otherwise), then L2-normalised when normalize. */
void seslm_pool_host(seslm_pooling mode, float *out, const float *x, const int *off, const int *len, int skip, int B,
                     int C, int normalize);

#endif
