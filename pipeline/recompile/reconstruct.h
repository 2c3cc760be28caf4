/* reconstruct.h — layer-wise least-squares recovery of a pruned linear layer (no retraining).
 *
 * A projection y = x W^T + b (W: (N, K)) loses some of its input units (column blocks of W, `unit`
 * columns each: one FFN neuron, or one head's D context columns). With the parent's calibration Gram
 * matrix G of [x, 1] (calibrate.h), the kept columns and the bias are refitted so that on the
 * calibration activations the student's output is the least-squares best approximation of the
 * parent's full output:
 *
 *     min over W', b'  sum_tokens || x_S W'^T + b' - (x W^T + b) ||^2   (+ ridge)
 *
 *     (G_SS + lambda I) [W'^T; b'] = G_S,all [W^T; b]      S = kept columns + the constant column
 *
 * This both rescales the kept units (Kwon et al. 2022) and moves the removed units' mean contribution
 * into the bias (FLAP's bias compensation). lambda = ridge * mean(diag(G_SS)). */
#ifndef SESLM_RECONSTRUCT_H
#define SESLM_RECONSTRUCT_H

#include "seslm.h"

/* w (N, K), b (N); G (K+1, K+1), upper triangle used; keep: nk unit indices (increasing).
 * Writes w_out (N, nk*unit) and b_out (N). rel_err (may be NULL) receives the calibration-set relative
 * output error after the fit, and rel_err_plain the same for plain slicing (weights kept as they are). */
seslm_status seslm_reconstruct_linear(float *w_out, float *b_out, const float *w, const float *b, int N, int K,
                                      const int *keep, int nk, int unit, const double *G, double ridge,
                                      double *rel_err, double *rel_err_plain);

#endif
