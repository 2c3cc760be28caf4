/* adapt_config.h — configs/adapt.yaml: every option of `seslm adapt` a nightly job sets, read into the
 * values the command starts from (its flags then override them). seslm evolve reads the same file when
 * its adapt stage is enabled, so a bad file is refused before a cycle starts. */
#ifndef SESLM_ADAPT_CONFIG_H
#define SESLM_ADAPT_CONFIG_H

#define adapt_config_defaults seslm_adapt_config_defaults
#define adapt_config_load seslm_adapt_config_load

#include "seslm.h"

typedef struct {
    char model[1024], feedback[1024], out[1024]; // "" = not set (the command line must give them)
    char data_dir[1024], general[1024];          // general "-": no anchoring
    char objective[16];                          // inbatch | pairs | softmax
    double holdout, alpha, lr, general_weight, min_gain, max_stsb_drop, min_retrieval, max_p;
    int rank, steps, pairs, threads, max_tokens;
    unsigned long long seed;
    char negatives[16];                          // near | random (the in-batch objective's batches)
    int folds;                                   // 0: one split by holdout; K >= 2: the gate cross-fitted on K folds
    int base_head_layers;                        // the base side's head input in the gate (what the node's head
                                                 // reads): 0 = the base model's own intent head's, else 3
} adapt_config;

/* The command's built-in defaults (what `seslm adapt` uses without a config). */
void adapt_config_defaults(adapt_config *c);

/* Overwrites the fields of c whose keys path sets. An empty file, an unknown key, an empty value or a value
 * out of range fails (SESLM_ERR_FORMAT, "path:line: key: ..."). */
seslm_status adapt_config_load(adapt_config *c, const char *path);

#endif
