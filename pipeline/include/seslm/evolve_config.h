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
    int quantize, embeddings_int8, exact_rows; // embeddings_int8: recompile.h SESLM_EMB_* (0 f32, 1 int8, 2 int4, 3 pq8, 4 pq4)
    int layer_candidates[SESLM_EVOLVE_MAX_CANDIDATES]; // deeper students tried: plan-lN (N layers kept) when
    int n_layer_candidates;                            // the plan stage wrote it (within the cap)
    double heldout_fraction;         // of the calibration sample: served traffic the cycle never fits on
    char root[1024];                 // the original model ("" = the lineage's root_dir, else the parent)
    char root_gates[1024];           // gates against the root ("" = gates)
    char kb[1024], feedback[1024];   // the node's knowledge base and labelled feedback ("" = none)
    int distill_steps, distill_batch; // distillation inside recompile (0 steps = off)
    double distill_time_s;
    double distill_int8_aware;       // share of the distillation steps with INT8 simulated (recompile --distill-int8-aware)
    char distill_general[1024];
    char gates[1024];                // validation config (configs/gates.yaml)
    int threads;
    char select[64];                 // metric whose candidate value the best passing candidate minimises
    // drift stage: off when reference is empty
    char drift_reference[1024], drift_config[1024], micro_calibration[1024];
    double micro_candidates[SESLM_EVOLVE_MAX_CANDIDATES];
    int n_micro;
    // adapt stage (issue 18): LoRA on the selected student (or the parent) after selection; off by default
    int adapt_enabled;
    char adapt_config[1024];         // seslm adapt's options (configs/adapt.yaml)
    char adapt_feedback[1024];       // "" = evolve.feedback, else the adapt config's feedback
    // the decoder cycle (evolve.model a GGUF file: recompile-decoder + validate-decoder per candidate, docs/decoder.md)
    int dec_drop[SESLM_EVOLVE_MAX_CANDIDATES]; // candidates: layers dropped (evolve.decoder.drop_layers)
    int n_dec_drop;
    char dec_embd_type[16];          // the embedding / output table: keep | q8_0 | q4_1 | q4_0
    char dec_layer_type[16];         // every kept layer's matrices: keep | q8_0 | q4_1 | q4_0 (--layer-type)
    int dec_heal_steps;              // healing of the dropped spans' neighbours (0 = off)
    int dec_distill_steps;           // end-to-end distillation of each candidate (recompile-decoder --distill-steps; 0 = off)
    double dec_distill_lr;           //   its peak learning rate
    int dec_distill_special;         //   the calibration lines are chat-formatted served prompts (--distill-special)
    int dec_distill_answer;          //   the parent's answers to them, up to this many tokens (--distill-answer-tokens;
                                     //   -1: recompile-decoder's default)
    int dec_distill_seq;             //   tokens per sequence (0: recompile-decoder's default)
    int dec_choice_prompts;          //   served prompts whose answers the layer choice scores (--choice-prompts; 32)
    char dec_distill_prompts[4096];  //   served chat prompts distilled beside the calibration text (--distill-prompts)
    double dec_distill_text_share;   //   of each step's tokens, the calibration text's share beside the prompts
                                     //   (--distill-text-share; 0: as they come)
    double dec_max_ppl_increase, dec_max_bytes_ratio, dec_max_latency_ratio; // validate-decoder's bars
    int dec_rounds, dec_grounded, dec_heldout_lines;
    double dec_distill_minutes;      // a time budget for each candidate's distillation steps (0: none; at the end:
                                     //   fields are only ever added here)
    char intent_data[1024];          // evolve.intent.data: the node's intent head's training examples; set, stage
                                     //   08-intent fits a head for the deployed model on them (and evolve.feedback)
    char intent_head[1024];          // evolve.intent.head: the serving node's current head ("": the parent directory's
                                     //   intent_head.safetensors); without intent_data, 08-intent-check runs it on
                                     //   the held-out traffic through the parent and the selected student
} seslm_evolve_config;

/* Reads the evolve section of path (defaults for absent keys; file:line errors for bad values). The
 * candidates must be among the policy's targets. */
seslm_status seslm_evolve_config_load(seslm_evolve_config *c, const char *path);

#endif
