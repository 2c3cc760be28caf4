/* llm_heal.h — healing a decoder student where layers were dropped (llm_prune.c, --heal-steps).
 *
 * A dropped span of layers (a..b) leaves a hole in the residual stream: the parent's stream after layer b
 * is no longer computed. The kept layer before the span (p = a - 1) ends in a SwiGLU FFN whose input is
 * the normed stream after p's attention; that FFN is trained, on the parent's own activations over the
 * calibration text, to output what layer p's FFN *and* the span added together:
 *
 *     target(x) = out_b - mid_p         (mid_p: the stream after p's attention; out_b: after layer b)
 *     y(x)      = W_down (silu(W_gate xn) * (W_up xn)) + b_down,   xn = ffn_norm(mid_p)
 *
 * a local distillation: only that FFN's weights learn (no gradient through attention, norms or other
 * layers), so it runs on the CPU in seconds per span. It starts from the parent's FFN with the span's
 * mean contribution in b_down (what --compensate alone gives), so its first held-out error is that
 * baseline's, and the caller keeps the trained weights only if their held-out error, after re-quantization
 * to the file's type, is below the baseline's. */
#ifndef SESLM_LLM_HEAL_H
#define SESLM_LLM_HEAL_H

#include "seslm.h"

#include <stdint.h>

typedef struct {
    int steps;     // Adam steps (0: no training)
    int batch;     // rows per step (default 256)
    float lr;      // peak learning rate; warm-up over the first 5% of steps, cosine decay to 10% (default 3e-4)
    uint64_t seed; // batch order
    int verbose;   // progress lines on standard error
} seslm_llm_heal_opts;

void seslm_llm_heal_opts_default(seslm_llm_heal_opts *o);

/* splitmix64: the healing's batch order and the calibration rows' reservoir sample (llm_prune.c) */
static inline uint64_t seslm_llm_heal_rng(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Weighted mean squared error per element of the FFN (wg, wu (F, C); wd (C, F); bd (C)) on rows [lo, hi) of
 * X (n, C) against Y (n, C), row r weighted by R[r] (NULL: 1). */
double seslm_llm_heal_mse(const float *wg, const float *wu, const float *wd, const float *bd, int C, int F, const float *X,
                    const float *Y, const float *R, int lo, int hi);

/* One batch of B rows (X, Y (B, C), R (B) or NULL): returns its loss (as seslm_llm_heal_mse) and ACCUMULATES (+=) its
 * gradients into gg, gu (F, C), gd (C, F), gb (C). work: 5 B F + B C floats. */
double seslm_llm_heal_batch(const float *wg, const float *wu, const float *wd, const float *bd, int C, int F, const float *X,
                      const float *Y, const float *R, int B, float *gg, float *gu, float *gd, float *gb, float *work);

/* Trains the FFN in place on rows [0, n - n_val) of X / Y with Adam (the weighted mean squared error above: the
 * caller weights a token by 1 / mean(out_b^2), so that the error counts as the next layer's RMSNorm sees it,
 * not dominated by the stream's few huge channels); rows [n - n_val, n)
 * are held out. The weights returned are those of the evaluation (every steps / 10) with the lowest held-out
 * error; *val0 and *val1 get the held-out error before and after. NOMEM on allocation failure (the weights
 * are then unchanged). */
seslm_status seslm_llm_heal_ffn(float *wg, float *wu, float *wd, float *bd, int C, int F, const float *X, const float *Y,
                          const float *R, int n, int n_val, const seslm_llm_heal_opts *o, double *val0, double *val1);

#endif
