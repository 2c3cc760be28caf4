/* intent_internal.h — the intent head's layout, shared by intent.c, intent_io.c and the unit tests
 * (the gradient check reads the parameters and the analytic gradient). Not installed. */
#ifndef SESLM_INTENT_INTERNAL_H
#define SESLM_INTENT_INTERNAL_H

/* The intent tests check the loss gradient directly. The shared libraries export only seslm_* names
 * (cmake/seslm.map), so these are compiled under the prefixed names. */
#define intent_loss_grad seslm_intent_loss_grad

#include "intent.h"

#define INTENT_MAX_LAYERS (SESLM_INTENT_MAX_HIDDEN + 1)

struct seslm_intent_head {
    seslm_intent_opts o;
    int n_layers;                  // n_hidden + 1
    int dims[INTENT_MAX_LAYERS + 1]; // dims[0] = input_dim, dims[n_layers] = n_classes
    float *W[INTENT_MAX_LAYERS];   // (dims[l+1], dims[l]) row-major, as torch.nn.Linear
    float *b[INTENT_MAX_LAYERS];
    float *mW[INTENT_MAX_LAYERS], *vW[INTENT_MAX_LAYERS], *mb[INTENT_MAX_LAYERS], *vb[INTENT_MAX_LAYERS]; // Adam
    long adam_t;
    int n_classes;
    char **labels;
    float temperature;
    float *rx;   // replay buffer (cap_replay, input_dim)
    int *ry;
    int n_replay, cap_replay;
    uint64_t rng;
    uint64_t online_updates;
    int auto_select;               // fit chooses the architecture (n_hidden was SESLM_INTENT_AUTO)
    float mlp_weight_decay;        // the options' weight decay, for the MLP candidate of an auto fit
    seslm_intent_selection selection;
    float *oos_ref;                // (n_oos_ref) sorted ascending: held-out examples' scores (intent_oos_score)
    int n_oos_ref;
    float oos_scale;               // the last layer's weight scale (intent_weight_scale)
    float *in_scale;               // (input_dim) or NULL: the block weights s folded into W[0] by an auto fit on
                                   // k > 1 features (W[0] = W' diag(s), W' the fitted weights). Online learning
                                   // penalises and steps W' as the fit did (intent_loss_grad, adam_step)
    float fit_rms;                 // RMS of the fitted weights W' of a linear head fitted by the auto fit (L-BFGS at
                                   // the chosen C); 0: none recorded. Online steps are at most 1 % of it
    int *fit_count;                // (n_classes) or NULL: each class's examples in the last fit (0 for a class added
                                   // online); NULL in files written before 2026-12-07 (no per-class scaling)
};

/* Mean softmax cross-entropy (temperature 1) of B rows X (B, input_dim) with classes y, plus the L2
 * term wd/2 * sum W'^2 / B (wd: the caller's weight decay, h->o.weight_decay in training; W' = W[0] / s where
 * block weights are folded in). With gW/gb non-NULL (arrays of n_layers buffers shaped like W/b) the gradient
 * is written there. Returns the loss, -1 on out of memory, NaN where the values overflow. */
double intent_loss_grad(const seslm_intent_head *h, const float *X, const int *y, int B, float wd, float **gW,
                        float **gb);

/* The largest weight or bias magnitude a head file may hold (intent_io.c): fits keep them within tens. */
#define INTENT_MAX_WEIGHT 1e6f

/* Online steps are at most this part of the fitted weights' RMS (seslm_intent_online_rate, intent.c). */
#define INTENT_ONLINE_REL_STEP 0.01f
/* The fit's examples per intent the online rate is meant for (it was tuned on heads fitted on 10 per intent);
 * feedback on an intent fitted on more steps by rate * this / count (seslm_intent_online_scale, intent.c). */
#define INTENT_ONLINE_REF_COUNT 10

/* Logits (B, n_classes) of B rows (no temperature). 0 ok, -1 out of memory. */
int intent_logits(const seslm_intent_head *h, const float *X, int B, float *logits);

/* Allocates the parameters and Adam state for dims (weights uninitialised). */
seslm_status intent_alloc_layers(seslm_intent_head *h);
seslm_status intent_set_labels(seslm_intent_head *h, const char *const *labels, int n);
seslm_status intent_replay_reserve(seslm_intent_head *h, int cap);

/* Shared by intent.c and intent_select.c. */
void intent_shuffle(int *a, int n, uint64_t *rng);
void intent_init_weights(seslm_intent_head *h, uint64_t *rng);             // Glorot, zero biases, fresh Adam
seslm_status intent_train_rows(seslm_intent_head *h, const float *X, const int *y, const int *idx, int n, uint64_t *rng);
float intent_fit_temperature(const float *logits, const int *y, int n, int C);
/* The in-scope reference: n held-out examples' scores (each by a head that did not see it), kept sorted.
 * n 0 clears it. */
seslm_status intent_set_oos_ref(seslm_intent_head *h, const float *z, int n);
/* The out-of-scope score of a row of C logits: max logit / scale, scale = the head's weight scale (higher =
 * more in scope). Why the max logit (MaxLogit, Hendrycks et al. 2022): on CLINC150 it ranks out-of-scope
 * inputs as well as the energy logsumexp(logits) (AUROC 93.7-96.2 vs 93.7-96.1) and has no log(C) floor.
 * Why the scale: at large C the solver's stopping point sets the logits' scale (two fits of the same
 * 20-shot CLINC150 data stopped with median training energies of 8 and 13), so the fold heads' held-out
 * scores are comparable with the final head's only on each head's own scale; compared raw, 38-42 % of
 * in-scope test rows fell under p = 0.05 on two draws (bench/RESULTS.md 13). */
float intent_oos_score(const float *z, int C, float scale);
/* sqrt(mean over rows of |row|^2) of W (rows, cols; row stride `stride`): a head's logit scale. */
float intent_weight_scale(const float *W, int rows, int cols, int stride);
/* Refreshes h->oos_scale from the head's last layer (after a fit, an online update or a load). */
seslm_status intent_oos_refresh(seslm_intent_head *h);
/* (D) per input dimension the weight of its layer's block of k = K feature blocks: w before the last layer,
 * 1 for the last, rescaled so a unit row stays a unit row; malloc'd. NULL when K <= 1 or w == 1 (nothing to
 * weigh) or out of memory. */
float *intent_block_scale(int D, int K, double w);
/* The automatic fit (intent_select.c): labels set, y in [0, n_classes); shapes and trains the head. */
seslm_status intent_fit_auto(seslm_intent_head *h, const float *X, const int *y, int n, uint64_t *rng);

#endif
