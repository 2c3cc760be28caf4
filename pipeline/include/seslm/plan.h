/* plan.h — pruning policy (configs/evolve.yaml) and pruning plans (docs/pruning.md).
 *
 * A plan removes attention heads and FFN neurons from unprotected layers, chosen by lowest score (one
 * score method, score.h). Policy rules, enforced both when a plan is built and by seslm_plan_validate
 * on any (possibly hand-edited) plan file:
 *   * at most `cap` (hard limit SESLM_PLAN_HARD_CAP = 0.40 per cycle) of the prunable parameters
 *     (attention + FFN matrices and biases of every layer), of the heads and of the FFN neurons;
 *   * protected layers are never touched (default: the first and the last);
 *   * every layer keeps >= min_heads heads and >= min_ffn neurons (unless it had fewer to start with);
 *   * the embeddings' id space never changes (the tokenizer is fixed): a plan may list rare rows as
 *     compression candidates, never remove ids. */
#ifndef SESLM_PLAN_H
#define SESLM_PLAN_H

#include "score.h"
#include "seslm.h"

#define SESLM_PLAN_HARD_CAP 0.40
#define SESLM_PLAN_MAX_TARGETS 16
#define SESLM_PLAN_MAX_PROTECTED 64

typedef struct {
    int n_targets;
    double targets[SESLM_PLAN_MAX_TARGETS]; // fractions of prunable parameters, each in (0, cap]
    double cap;                             // <= SESLM_PLAN_HARD_CAP
    int n_protected;
    int protected_layers[SESLM_PLAN_MAX_PROTECTED]; // index; -1 = "last"
    int min_heads, min_ffn;
    int n_drop_layers;
    int drop_layers[SESLM_PLAN_MAX_TARGETS]; // candidates that drop this many whole layers (plan-lN: N kept)
    char method[32];                        // score method that chooses the units
    int neuron_groups, calib_lines;         // "measured" score settings
    // profile thresholds
    double dormant_rate, dormant_abs, uniform_entropy, low_head_norm;
    int rare_count, top_pairs;
    // (fields added since 0.1 go last: a program built against the older header keeps its layout)
    int n_never_drop;                         // layers never dropped whole (their units may be pruned)
    int never_drop[SESLM_PLAN_MAX_PROTECTED]; // index; -1 = "last"
} seslm_policy;

void seslm_policy_default(seslm_policy *p);
/* Loads and checks a policy file (unknown keys, values out of range, cap > 0.40, targets above the
 * cap, negative values: SESLM_ERR_FORMAT / SESLM_ERR_ARG with the rule in the message). */
seslm_status seslm_policy_load(seslm_policy *p, const char *path);
seslm_status seslm_policy_load_string(seslm_policy *p, const char *text);
/* Checks a policy against a model: layer indices exist, min_heads / min_ffn do not exceed any
 * unprotected layer's size. Fills is_protected (n_layers) when not NULL. */
seslm_status seslm_policy_check_model(const seslm_policy *p, const seslm_model_config *c, int *is_protected);
/* Fills keep[l] = 1 for the layers a deeper student may not drop whole: protected_layers and never_drop. */
seslm_status seslm_policy_undroppable(const seslm_policy *p, const seslm_model_config *c, int *keep);

typedef struct {
    int n_layers;
    int *n_remove_heads, *n_remove_neurons; // (n_layers)
    int **remove_heads, **remove_neurons;   // sorted indices per layer
    int *drop_layer;                        // (n_layers) 1: the whole layer is removed (may be NULL: none)
    int n_drop;
    double target;
    char method[32];
    // predicted, per token at mean_seq_len tokens per sequence
    double mean_seq_len;
    int64_t params_parent, params, prunable_parent, bytes_parent, bytes;
    double flops_parent, flops;
    // measured on calibration text (-1: not measured)
    double mean_cos, p5_cos;
    int calib_n;
} seslm_plan;

/* Builds the plan for target fraction `target` from scores: heads and neurons of unprotected layers
 * in increasing score order (each kind ranked across layers), each kind removing `target` of its
 * model-wide count as far as the per-layer minimums allow. */
seslm_status seslm_plan_build(seslm_plan *pl, const seslm_policy *p, const seslm_model_config *c,
                              const seslm_scores *s, double target, double mean_seq_len);
/* A deeper student: drops the n_drop unprotected layers of lowest layer score (each layer's heads and
 * neurons summed) whole. The plan's target is the fraction of prunable parameters it removes (with each
 * layer's biases and norms); seslm_plan_validate holds it to the cap like any plan (6 -> 4 layers is 33%;
 * 6 -> 3 is 50%, over the 40% cap: two cycles). */
seslm_status seslm_plan_build_drop(seslm_plan *pl, const seslm_policy *p, const seslm_model_config *c,
                                   const seslm_scores *s, int n_drop, double mean_seq_len);
void seslm_plan_free(seslm_plan *pl);
/* Recomputes the predicted parameters, bytes and FLOPs per token of a plan. */
void seslm_plan_predict(seslm_plan *pl, const seslm_model_config *c);
/* Checks a plan against the policy and the model; the message names the rule a bad plan breaks. */
seslm_status seslm_plan_validate(const seslm_plan *pl, const seslm_policy *p, const seslm_model_config *c);
/* Applies the plan as masks to the calibration set: fills mean_cos, p5_cos, calib_n. */
seslm_status seslm_plan_measure(seslm_plan *pl, const seslm_model_config *c, seslm_calib *cal);

seslm_status seslm_plan_write_json(const seslm_plan *pl, const char *model_sha256, const char *path);
/* Reads a (possibly hand-edited) plan; layers absent from the file remove nothing. Structural errors
 * fail here; policy rules are seslm_plan_validate's. */
seslm_status seslm_plan_read_json(seslm_plan *pl, const seslm_model_config *c, const char *path);

#endif
