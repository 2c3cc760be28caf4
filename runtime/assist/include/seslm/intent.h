/* intent.h — the intent head: a linear layer or a small MLP on frozen sentence embeddings that learns
 * online.
 *
 * By default (n_hidden = SESLM_INTENT_AUTO) the head's capacity and regularisation are chosen from the
 * data (intent_select.c): a linear head (softmax regression with the L2 strength C chosen by stratified
 * k-fold cross-validation), replaced by the MLP of auto_hidden only when that is better out of fold; the
 * temperature is fitted on the chosen candidate's out-of-fold logits. seslm_intent_selection() says
 * what was chosen. An explicit n_hidden >= 0 trains that architecture as below.
 *
 * Architecture: input_dim -> hidden[0] -> ... -> hidden[n_hidden-1] -> n_classes, ReLU between layers,
 * softmax cross-entropy, mini-batch Adam with L2 weight decay (as scikit-learn's MLPClassifier "alpha").
 * Everything random (initialisation, shuffling, the calibration split, replay sampling) comes from one
 * seeded generator, so the same data and seed give the same head, bit for bit, on one machine.
 *
 * Confidences are calibrated by temperature scaling (Guo et al., 2017): a stratified part of the
 * training data (calib_frac) is held out, a head trained on the rest, and the temperature T that
 * minimises the held-out negative log-likelihood is kept; the final head is then trained on all the
 * data and predicts softmax(logits / T). An input whose top calibrated probability is below
 * oos_threshold is reported as out of scope.
 *
 * Out of scope by a conformal p-value: the calibrated top probability ranks out-of-scope inputs poorly
 * (a temperature below 1 sharpens every answer towards 1), so the fit also keeps the score of each
 * held-out example (auto heads: every example, out of fold) as a sorted reference, "oos.scores": its
 * max logit divided by the weight scale of the head that scored it (fold heads and the final head stop
 * at different logit scales). An input's in_scope is (1 + #{reference <= its score}) / (n + 1): the
 * p-value of a conformal test (Vovk et al. 2005), so an in-scope input exchangeable with the held-out
 * examples gets in_scope <= a with probability at most a. min_in_scope = a then rejects about a share a
 * of in-scope traffic, whatever the label set, with no out-of-scope examples needed to set it
 * (docs/intent.md).
 *
 * Online learning (seslm_intent_learn) takes one or a few labelled examples, adds them to a per-class
 * replay buffer of stored embeddings, and runs Adam steps on mini-batches that mix the new examples with
 * replayed ones, so the head learns the new example without forgetting the old classes. An unknown
 * label adds a class (the output layer grows by one row; the other rows are untouched).
 *
 * The file format is safetensors: tensors "layers.<i>.weight" (out, in) and "layers.<i>.bias" (out),
 * "replay.x" (n, input_dim) F32 and "replay.y" (n) I32, and the Adam state ("adam.<i>.{mW,vW,mb,vb}",
 * step count in the metadata) so that online learning resumes exactly where it stopped, "fit.count" (C) I32 (each
 * intent's examples in the last fit, which size its online steps); the label list
 * and hyper-parameters are in "__metadata__" (docs/intent.md). Writes are crash-safe (temp file + fsync + rename).
 *
 * A head is not thread-safe: callers serialise calls on one head (the server holds a mutex). */
#ifndef SESLM_INTENT_H
#define SESLM_INTENT_H

#include "seslm.h"

#include <stdint.h>

#define SESLM_INTENT_MAX_HIDDEN 4
#define SESLM_INTENT_MAX_LABEL 128 // bytes of a label, without the NUL
#define SESLM_INTENT_AUTO (-1)     // n_hidden: choose linear or MLP by cross-validation (the default)

typedef struct {
    int input_dim;                         // 384 for all-MiniLM-L6-v2
    int n_hidden;                          // hidden layers, 0..SESLM_INTENT_MAX_HIDDEN, or SESLM_INTENT_AUTO (default)
    int hidden[SESLM_INTENT_MAX_HIDDEN];   // widths when n_hidden > 0 (128, 64)
    int auto_hidden[SESLM_INTENT_MAX_HIDDEN]; // the MLP tried in auto mode, 0-terminated (default 256; {0}: linear only)
    int epochs;                            // 0: automatic (enough epochs for ~3000 steps, 20..200)
    int batch;                             // mini-batch size (default 32)
    float lr;                              // Adam learning rate (default 5e-3)
    float weight_decay;                    // L2 penalty (default 1e-4; auto: 1 / the chosen C)
    uint64_t seed;                         // default 42
    float calib_frac;                      // held out to fit the temperature (default 0.2; 0: T = 1); auto heads fit
                                           // it on out-of-fold logits instead (any value > 0), or not at all (0)
    float oos_threshold;                   // out of scope below this calibrated confidence (default 0)
    int replay_per_class;                  // stored examples per class for replay (default 16)
    int online_steps;                      // Adam steps per online update at least (default 1)
    int online_max_steps;                  // at most, until the new examples are predicted (default 50)
    int online_replay;                     // replayed examples mixed into each online step (default 31)
    float online_lr;                       // Adam learning rate of online updates (default 5e-3)
    float min_in_scope;                    // out of scope also when in_scope (below) is under this (default 0: off;
                                           // 0.05 rejects about 5% of in-scope inputs, bench/RESULTS.md 13)
    int feature_layers;                    // what the input rows are, recorded in the head file for whoever embeds
                                           // for it: 1 (default) the sentence embedding; k > 1 the features of the
                                           // encoder's last k layers (seslm_encoder_features_texts), input_dim =
                                           // k x hidden. `seslm intent train` uses 3 by default (bench/RESULTS.md 13)
    float early_weight;                    // k > 1, the automatic head: the weight of the earlier layers' blocks
                                           // against the last, in (0, 10] (default 0.7, chosen on development rows,
                                           // bench/RESULTS.md 13; 1: equal blocks). Folded into the fitted head, so
                                           // not needed to read it; stored where folded, for online learning
} seslm_intent_opts;

typedef struct seslm_intent_head seslm_intent_head;

/* What the automatic selection chose in the last fit (NaN where not measured). */
typedef struct {
    int folds;              // k of the stratified k-fold cross-validation (0: not auto, 1: no CV possible)
    int repeats;            // times the k-fold cross-validation was repeated on fresh splits
    double C;               // chosen inverse L2 strength of the linear head
    double cv_accuracy;     // its out-of-fold accuracy (averaged over repeats, smoothed over the C grid)
    double mlp_cv_accuracy; // the MLP's out-of-fold accuracy (NaN when not tried)
    int mlp;                // 1 when the MLP was kept
    double early_weight;    // the weight of the features' earlier layers against the last (1: none; k > 1 only)
} seslm_intent_selection;

typedef struct {
    int index;          // predicted class (argmax), never -1
    int out_of_scope;   // 1 when confidence < the head's oos_threshold, or in_scope < its min_in_scope
    float confidence;   // calibrated probability of `index`
    float in_scope;     // conformal p-value of the input being in scope, in (0, 1]: the share of the fit's held-out
                        // examples (out of fold) that look no more in scope than it, by their max logit on the
                        // scoring head's weight scale; NaN when the head has no such reference (a file from
                        // before it, or a fit with nothing held out)
} seslm_intent_result;

void seslm_intent_opts_default(seslm_intent_opts *o);

/* A head with no classes yet (fit or learn adds them). Validates the options. */
seslm_status seslm_intent_new(seslm_intent_head **out, const seslm_intent_opts *o);
void seslm_intent_free(seslm_intent_head *h);

/* Trains from scratch on n examples: X (n, input_dim), labels[i] the class name of row i (classes are
 * numbered in order of first appearance). Replaces any previous weights, classes and replay buffer. */
seslm_status seslm_intent_fit(seslm_intent_head *h, const float *X, const char *const *labels, int n);

/* Online update from n (1..64) examples. A label the head does not know adds a class when allow_new,
 * else the call fails with SESLM_ERR_ARG and the head is unchanged. All or nothing: a call that fails (out of
 * memory, or steps that would leave a weight non-finite or beyond 1e6: SESLM_ERR_ARG) leaves the head as it was,
 * its classes and replay buffer included. *steps_out (may be NULL) gets the number of Adam steps taken. */
seslm_status seslm_intent_learn(seslm_intent_head *h, const float *X, const char *const *labels, int n, int allow_new,
                                int *steps_out);

/* Adds a class without training; returns its index in *index. An existing label returns its index. */
seslm_status seslm_intent_add_class(seslm_intent_head *h, const char *label, int *index);

/* Calibrated probabilities of one embedding: probs (n_classes) may be NULL. Fails with no classes, and on an
 * embedding that is not finite or whose logits overflow (SESLM_ERR_ARG). */
seslm_status seslm_intent_predict(const seslm_intent_head *h, const float *x, float *probs, seslm_intent_result *r);

int seslm_intent_n_classes(const seslm_intent_head *h);
const char *seslm_intent_label(const seslm_intent_head *h, int i); // NULL when out of range
/* SESLM_OK when label is a valid class name: 1..SESLM_INTENT_MAX_LABEL bytes of valid UTF-8, no control
 * characters, no white space at either end (so not only white space); else SESLM_ERR_ARG saying why.
 * Every function that takes labels checks them this way. */
seslm_status seslm_intent_label_check(const char *label);
int seslm_intent_find(const seslm_intent_head *h, const char *label); // -1 when unknown
int seslm_intent_input_dim(const seslm_intent_head *h);
int seslm_intent_feature_layers(const seslm_intent_head *h); // opts.feature_layers (1 for files from before it)
float seslm_intent_temperature(const seslm_intent_head *h);
float seslm_intent_oos_threshold(const seslm_intent_head *h);
void seslm_intent_set_oos_threshold(seslm_intent_head *h, float t);
float seslm_intent_min_in_scope(const seslm_intent_head *h);
void seslm_intent_set_min_in_scope(seslm_intent_head *h, float a); // clamped to [0, 1]
int seslm_intent_in_scope_reference(const seslm_intent_head *h);     // examples in the reference (0: none)
int seslm_intent_replay_size(const seslm_intent_head *h);
uint64_t seslm_intent_online_updates(const seslm_intent_head *h); // learned examples since fit
/* The Adam rate and weight decay online learning (seslm_intent_learn) steps with: opts.online_lr, at most 1 % of
 * the fitted weights' RMS for a linear head the automatic fit chose; the fit's weight decay times the temperature
 * where that is below 1. Sized to the fit, so strongly regularised heads are not broken by feedback. */
void seslm_intent_online_rate(const seslm_intent_head *h, float *lr, float *weight_decay);
/* The factor on that rate for feedback on intent `index` (a batch steps at its largest): min(1, 10 / the examples of
 * it the last fit saw), 1 for an intent added online or a head whose file records no counts. A head fitted on 50
 * examples per intent steps at a fifth of the rate on them: the full rate cost such heads 0.5-0.7 points. */
float seslm_intent_online_scale(const seslm_intent_head *h, int index);
const seslm_intent_opts *seslm_intent_options(const seslm_intent_head *h);
const seslm_intent_selection *seslm_intent_get_selection(const seslm_intent_head *h);

/* Saves crash-safely. model_sha256 (may be NULL) names the embedding model the head was trained on. */
seslm_status seslm_intent_save(const seslm_intent_head *h, const char *path, const char *model_sha256);
/* Loads a head; model_sha256_out (may be NULL, 65 bytes) receives the recorded model hash or "". */
seslm_status seslm_intent_load(seslm_intent_head **out, const char *path, char *model_sha256_out);

#endif
