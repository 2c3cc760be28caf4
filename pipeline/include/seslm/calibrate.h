/* calibrate.h — statistics of the parent's activations on calibration text, for the recovery steps of
 * recompile: per layer the Gram matrices of the inputs of the two "output" projections (attention
 * context and FFN hidden units), each augmented with a constant 1 column so that a bias can be refitted
 * with the weights (reconstruct.h), and per-channel max |x| of every linear layer's input.
 *
 *   g_ctx[l] (A+1, A+1) = sum over tokens of [ctx, 1]^T [ctx, 1]
 *   g_ffn[l] (F+1, F+1) = sum over tokens of [h, 1]^T [h, 1]     (h = GELU output)
 *
 * Accumulated in double; only the upper triangle is filled (symmetric). */
#ifndef SESLM_CALIBRATE_H
#define SESLM_CALIBRATE_H

#include "seslm.h"

#include <stdint.h>

typedef struct {
    int n_layers, hidden;
    int *A, *F;                   // (n_layers) widths
    double **g_ctx, **g_ffn;      // (n_layers) Gram matrices, NULL where the width is 0
    float **amax_qkv, **amax_ffn_in, **amax_ctx, **amax_ffn_h; // (n_layers) per-channel max |x|
    int64_t tokens, texts;
} seslm_calibration;

/* Runs the model (cpu backend, batches of `batch`, n_threads threads, 0 = all cores) over texts and
 * accumulates the statistics.
 * progress (may be NULL) is called after each batch with texts done / total. */
seslm_status seslm_calibration_collect(seslm_calibration *c, const seslm_model *m, const char *const *texts, int n,
                                       int batch, int n_threads, void (*progress)(void *ctx, int done, int total), void *pctx);
void seslm_calibration_free(seslm_calibration *c);
/* G (W+1, W+1) upper triangle += [x, 1]^T [x, 1] over the ntok rows of x (ntok, W); z: scratch of
 * ntok * (W + 1) doubles. (The decoder's calibration, llm_prune.c, accumulates with it too.) */
void seslm_gram_add(double *G, const float *x, int ntok, int W, double *z);

/* Reads a text file of one input per line (empty lines skipped; at most max_lines, 0 = all). The lines
 * are NUL-terminated copies in *lines_out (free with seslm_lines_free). Invalid UTF-8 is the
 * tokenizer's to refuse later. */
seslm_status seslm_lines_read(const char *path, int max_lines, char ***lines_out, int *n_out);
void seslm_lines_free(char **lines, int n);

#endif
