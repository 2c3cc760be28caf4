/* drift.h — has the traffic changed? Compares a reference window with a current one (each usually the
 * merge of many dumps, pipeline/ingest/ingest.h): the embedding distribution (MMD with a permutation test,
 * and a diagonal Fréchet distance), the vocabulary (Jensen-Shannon divergence, rate of unseen
 * tokens) and the predicted intents when recorded. Metrics and thresholds: docs/drift.md;
 * thresholds come from configs/drift.yaml. */
#ifndef SESLM_DRIFT_H
#define SESLM_DRIFT_H

#include "telemetry.h"

#include <stdint.h>

typedef struct {
    double mmd_alpha;         // embeddings.mmd.alpha: fires when the permutation p-value < alpha ...
    double mmd_min;           // embeddings.mmd.min_mmd2: ... and MMD^2 >= this (effect-size floor)
    int mmd_permutations;     // embeddings.mmd.permutations
    int mmd_max_sample;       // embeddings.mmd.max_sample: rows drawn from each reservoir (speed bound)
    uint64_t seed;            // embeddings.mmd.seed
    double frechet_max;       // embeddings.frechet_diag.max (0: not checked)
    int min_embeddings;       // embeddings.min_rows: fewer reservoir rows on a side -> "insufficient data"
    double js_max;            // vocabulary.js_excess_max: JS divergence (bits) above its expectation under no drift
    double unseen_max;        // vocabulary.unseen_excess_max: unseen-token rate above its expectation
    int vocab_permutations;   // vocabulary.permutations: random splits of the pooled tokens giving those expectations
    uint64_t min_tokens;      // vocabulary.min_tokens
    double intent_js_max;     // intents.js_max
} seslm_drift_config;

/* The defaults of configs/drift.yaml. */
void seslm_drift_config_default(seslm_drift_config *c);
/* Loads thresholds from a YAML file (keys absent keep their defaults; unknown keys and out-of-range
 * values fail with "file:line: key: ..."). */
seslm_status seslm_drift_config_load(seslm_drift_config *c, const char *path);

typedef enum { SESLM_CHECK_OK, SESLM_CHECK_FIRED, SESLM_CHECK_SKIPPED } seslm_check_state;

typedef struct {
    const char *name;      // "embedding_mmd", "embedding_frechet_diag", "vocabulary_js", "unseen_token_rate", "intent_js"
    double value;          // the metric (vocabulary checks: raw - expected)
    double threshold;
    double raw, expected;  // vocabulary checks: the observed metric and its mean over random splits
    seslm_check_state state;
    char note[160];        // why skipped ("not recorded", "insufficient data: ..."), or ""
} seslm_drift_check;

typedef struct {
    double mmd2, p_value, bandwidth; // MMD^2 (biased), permutation p-value, RBF median-heuristic sigma^2 ... see .c
    int n_ref, n_cur, permutations;
} seslm_mmd_result;

#define SESLM_DRIFT_CHECKS 5
typedef struct {
    int drift; // any check fired
    seslm_drift_check checks[SESLM_DRIFT_CHECKS];
    seslm_mmd_result mmd;
} seslm_drift_result;

/* Runs every check. Both views must come from the same model shape (SESLM_ERR_SHAPE otherwise). */
seslm_status seslm_drift_compare(const seslm_telemetry_view *ref, const seslm_telemetry_view *cur,
                                 const seslm_drift_config *c, seslm_drift_result *r);

// ---- the metrics, for tests and other stages ------------------------------------------------------

/* MMD^2 between the rows of X (n, d) and Y (m, d) with k(x, y) = exp(-|x-y|^2 / median), the median
 * of the pooled pairwise squared distances (median heuristic), and the permutation p-value
 * (1 + #{perm >= observed}) / (1 + permutations). At most max_sample rows of each side are used
 * (drawn with seed). */
seslm_status seslm_drift_mmd(const float *X, int n, const float *Y, int m, int d, int permutations, int max_sample,
                             uint64_t seed, seslm_mmd_result *out);
/* Sum over dimensions of (mean_x - mean_y)^2 + (sd_x - sd_y)^2: the Fréchet distance between the
 * diagonal-covariance Gaussians fitted to X and Y. */
double seslm_drift_frechet_diag(const float *X, int n, const float *Y, int m, int d);
/* Jensen-Shannon divergence (base 2, in [0, 1]) of the distributions given by two count vectors;
 * 0 when either is all zeros. */
double seslm_drift_js(const uint64_t *p, const uint64_t *q, int n);
/* Fraction of cur's count (over all ids) on ids whose ref count is 0. */
double seslm_drift_unseen_rate(const uint64_t *ref, const uint64_t *cur, int n);
/* The means of seslm_drift_js and seslm_drift_unseen_rate over `permutations` random splits of the
 * pooled tokens of ref and cur into parts of the same sizes (what the metrics are for these sample sizes
 * when nothing changed: both are biased upward on small samples of a large vocabulary). Pools larger
 * than 2^21 tokens are thinned proportionally first. */
seslm_status seslm_drift_vocab_null(const uint64_t *ref, const uint64_t *cur, int n, int permutations, uint64_t seed,
                                    double *js_mean, double *unseen_mean);

#endif
