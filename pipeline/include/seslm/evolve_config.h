/* evolve_config.h — the `evolve:` section of configs/evolve.yaml: what the nightly cycle (seslm evolve)
 * reads, runs and keeps. The rest of the file is the pruning policy (plan.h). */
#ifndef SESLM_EVOLVE_CONFIG_H
#define SESLM_EVOLVE_CONFIG_H

#include "seslm.h"

#define SESLM_EVOLVE_MAX_CANDIDATES 8

typedef struct {
    char model[1024], telemetry[1024], out[1024];
    char calibration[1024];          // calibration text (one input per line)
    int calibration_lines;
    double candidates[SESLM_EVOLVE_MAX_CANDIDATES]; // targets (of the policy's) to recompile + validate
    int n_candidates;
    int quantize, embeddings_int8, exact_rows;
    char gates[1024];                // validation config (configs/gates.yaml)
    int threads;
    char select[64];                 // metric whose candidate value the best passing candidate minimises
    // drift stage: off when reference is empty
    char drift_reference[1024], drift_config[1024], micro_calibration[1024];
    double micro_candidates[SESLM_EVOLVE_MAX_CANDIDATES];
    int n_micro;
} seslm_evolve_config;

/* Reads the evolve section of path (defaults for absent keys; file:line errors for bad values). The
 * candidates must be among the policy's targets. */
seslm_status seslm_evolve_config_load(seslm_evolve_config *c, const char *path);

#endif
