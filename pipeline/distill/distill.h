/* distill.h — the distillation engine (issue 13): trains an FP32 student (pruned heads / neurons, fewer
 * layers) to mimic its FP32 parent on label-free text — the served traffic's calibration sample plus an
 * optional replay of general text — and writes the distilled student in the student's own format.
 *
 * Losses (weights in distill_opts; 0 turns one off), all on the same batch of sentences:
 *   w_emb_cos  1 - cos(student embedding, parent embedding), mean over the batch
 *   w_emb_mse  || s - p ||^2 / C, mean over the batch
 *   w_sim      MSE between the in-batch cosine-similarity matrices S_s = s s^T and S_p = p p^T (keeps
 *              retrieval rankings)
 *   w_attn     MiniLM self-attention distribution KL + value-relation KL (Wang et al. 2020) on the last
 *              student layer against the last parent layer
 *   w_hidden   MSE of each student layer's output against the parent layer it maps to (l -> (l+1) Lp/Ls - 1:
 *              identity for equal depths, uniform when the student has fewer layers, last to last)
 * Optimiser: AdamW, linear warm-up then cosine decay, global-norm clipping; fixed seeds; checkpoints
 * written crash-safely (temp + fsync + rename) so a run killed at any point resumes bit-identically. */
#ifndef SESLM_DISTILL_H
#define SESLM_DISTILL_H

/* seslm distill and seslm recompile (the program) call these. The shared libraries export only seslm_* names
 * (cmake/seslm.map), so these are compiled under the prefixed names. */
#define distill_opts_default seslm_distill_opts_default
#define distill_run seslm_distill_run

#include <stddef.h>

typedef struct distill_opts {
    const char *parent_dir;      // teacher model dir (FP32 parent)
    const char *student_dir;     // FP32 student dir (pruned, sliced/reconstructed); INT8 / compressed
                                 // students are refused with a clear message (quantize after distilling)
    const char *calibration;     // text file, one sentence per line: sampled served traffic
    const char *general;         // optional text file of general text replayed so the student does not
                                 // forget (NULL = none)
    const char *out_dir;         // distilled student written here (same format as the student; config.json
                                 // lineage notes the distillation)
    const char *checkpoint_dir;  // NULL = out_dir/.ckpt ; resumes after kill -9
    int steps, batch, threads, max_tokens; // max_tokens: truncation length per sentence (0 = model's)
    float lr, weight_decay, warmup_frac, clip_norm;
    float w_emb_cos, w_emb_mse, w_sim, w_attn; // loss weights; 0 turns a loss off
    unsigned long long seed;
    double time_budget_s;        // 0 = none; stop cleanly (and save) when exceeded
    int progress;                // 1: progress lines with ETA on stderr
    const char *device;          // "cpu" (default) or "cpu-ref"; "cuda" where built with CUDA and a GPU
    double general_frac;         // share of each batch drawn from `general` when given (default 0.25)
    double holdout_frac;         // share of calibration held out for cos_before / cos_after (default 0.1)
    float w_hidden;              // hidden-state MSE of every student layer's output against its mapped parent
                                 // layer (TinyBERT; uniform mapping, last to last); 0 = off
    int checkpoint_every;        // steps between checkpoints (default 50; also every 120 s)
    double augment_frac;         // share of each batch's calibration rows replaced by an augmented view
                                 // (token replacement, splicing of two sentences, span deletion) whose
                                 // target the parent computes in the step: a 40% student fits 1,080
                                 // sentences to 0.998 and generalises to 0.938 without it (docs/distill.md)
    double int8_aware_frac;      // > 0: the student will ship INT8 (seslm recompile's default); the last
                                 // int8_aware_frac of the steps run with the runtime's INT8 arithmetic
                                 // simulated (weights per output channel, activations per token; gradients
                                 // straight through the rounding), and the held-out cosine -- hence the model
                                 // selection -- measures the INT8 student throughout. 0 = off (default)
    int int8_act_token;          // with int8_aware_frac: the student's activations will be rounded per token
                                 // alone (recompile --act-quant token); 0 (default): each token's largest
                                 // element kept in float, as recompile's default (kernels/quant.h top1)
    double lr_gap;               // > 0: the peak learning rate is lr x clamp(g / lr_gap, 0.1, 1), g = 1 - the
                                 // held-out cosine before training (the starting gap). Adam moves every
                                 // weight ~lr a step whatever its gradient, so a student already close to
                                 // its parent (plan-20: g 0.017) is knocked away at the lr a 40% student
                                 // needs (g 0.04-0.08); default 0.05, 0 = lr as given (docs/distill.md)
} distill_opts;

void distill_opts_default(distill_opts *o);

typedef struct distill_report {
    int steps_done;
    double loss_first, loss_last, seconds;
    double cos_before, cos_after; // mean cosine to parent on a held-out slice of the calibration text (of the
                                  // INT8-rounded student when int8_aware_frac > 0)
    int n_train, n_holdout;       // sentences used for training / held out
    int resumed_from;             // step a checkpoint resumed from (0 = fresh start)
    double lr_peak;               // the peak learning rate used (lr, scaled by the starting gap with lr_gap)
    int best_step;                // the step whose parameters were written: the held-out cosine is checked
                                  // every steps/8 steps and the best (step 0 = the student unchanged) kept
} distill_report;

/* 0 ok, 1 bad input (message in err), 2 internal failure. */
int distill_run(const distill_opts *o, distill_report *rep, char *err, size_t errlen);

#endif
