/* adapt.h — adapting the encoder to the user's intents with LoRA (issue 18): a contrastive objective on
 * pairs of labelled examples in the manner of SetFit (Tunstall et al. 2022) — same intent: cosine -> 1,
 * different intents: cosine -> 0, squared error (sentence-transformers' CosineSimilarityLoss) — trained
 * on low-rank adapters only (lora.h), then merged into the weights for serving. The intent head is then
 * fitted on the adapted embeddings (runtime/assist/intent.h); the eval gate (cmd_adapt) decides whether
 * the adapted model may go live. */
#ifndef SESLM_ADAPT_H
#define SESLM_ADAPT_H

/* seslm adapt (the program) calls these. The shared libraries export only seslm_* names
 * (cmake/seslm.map), so these are compiled under the prefixed names. */
#define adapt_opts_default seslm_adapt_opts_default
#define adapt_train seslm_adapt_train
#define adapt_write_merged seslm_adapt_write_merged
#define adapt_write_served seslm_adapt_write_served

#include "lora.h"

enum { ADAPT_PAIRS = 0, ADAPT_INBATCH = 1, ADAPT_SOFTMAX = 2 };
enum { ADAPT_NEG_RANDOM = 0, ADAPT_NEG_NEAR = 1 };

typedef struct {
    int rank;          // LoRA rank (default 8)
    float alpha;       // scale alpha / rank (default 16)
    int steps;         // optimiser steps (default 0: automatic, about 4 pairs per example, 40..400 steps)
    int pairs;         // pairs per step (default 16)
    int objective;     // ADAPT_PAIRS: SetFit's cosine loss on pairs, half same-intent; ADAPT_INBATCH (default):
                       // (anchor, positive) pairs of distinct intents, every other positive a negative,
                       // softmax cross-entropy over scaled cosines (MultipleNegativesRankingLoss);
                       // ADAPT_SOFTMAX: supervised, cross-entropy of a cosine classifier over the intents
                       // (rows started at each intent's mean base embedding) trained with the adapters
    float inbatch_scale; // cosine scale of ADAPT_INBATCH and ADAPT_SOFTMAX (default 20)
    float head_lr_mult;  // ADAPT_SOFTMAX: the classifier's learning rate / lr (default 4)
    float lr;          // AdamW learning rate (default 5e-4), linear warm-up 10% then cosine
    float weight_decay; // on the adapters (default 0.01)
    float clip_norm;   // global gradient norm (default 1)
    int max_tokens;    // truncation per text (default 64)
    int threads;       // 0: the backend's default
    unsigned long long seed; // default 42
    double time_budget_s;    // 0: none; stop (keeping what was learned) when exceeded
    int progress;            // progress lines with ETA on stderr
    // anchoring: general text whose embeddings must stay where the base model puts them, so that
    // adapting to the intents does not cost general similarity and retrieval (measured without it on
    // SNIPS feedback: STS-B -6.7 points, recall@10 agreement 0.41)
    const char *const *general; // sentences (NULL: no anchoring)
    int n_general;
    int general_per_step;       // anchored sentences per step (default 8)
    float w_general;            // weight of the mean (1 - cos(adapted, base)) over them (default 1)
    int negatives;              // ADAPT_INBATCH: ADAPT_NEG_NEAR (default): each batch's intents are one intent
                                // and its nearest (by the base's mean embeddings), so the negatives are the
                                // intents it is confused with; ADAPT_NEG_RANDOM: intents drawn uniformly
} adapt_opts;

void adapt_opts_default(adapt_opts *o);

/* "pairs", "inbatch" or "softmax" (the names of --objective and adapt.yaml). */
static inline const char *adapt_objective_name(int objective) {
    return objective == ADAPT_PAIRS ? "pairs" : objective == ADAPT_SOFTMAX ? "softmax" : "inbatch";
}

typedef struct {
    int steps_done;
    double loss_first, loss_last; // mean over the first / last 10 steps
    double seconds;
} adapt_report;

/* Trains adapters of o->rank on the n labelled texts (plus the anchoring loss on o->general) (at least 2 intents, one with 2 examples) of the
 * FP32 model m: *lo is initialised here (lora_free it). SESLM_ERR_ARG for unusable input. */
seslm_status adapt_train(const adapt_opts *o, const seslm_model *m, const char *const *texts, const char *const *labels,
                         int n, lora *lo, adapt_report *rep);

/* The merged model: every file of m's directory copied (tokenizer byte-identical), model.safetensors with
 * W + s B A, and config.json's seslm_lineage.adapter = lineage_json (a JSON object, may be NULL) plus
 * the base's weights hash. out_dir is created (it must not hold a model already). */
seslm_status adapt_write_merged(const seslm_model *m, const lora *lo, const char *out_dir, const char *lineage_json);

/* The merged model in the served base's own format, for a base the trainable encoder cannot read as it is
 * (an INT8 student, compressed embeddings): the adapters were trained on f32 — the base's F32 master
 * (parent.h; f32_is_master = 1) or the base widened to F32 — and each adapted projection W + s B A is
 * written as the base stores it: F32, or INT8 per output channel by recompile's quantizer
 * (seslm_quantize_weight) with its new scales. Every other tensor (compressed word rows, positions,
 * biases, norms) is the base's, byte for byte, in the base's tensor order; with a zero adapter the INT8
 * bytes are the base's. With a master, OUT/master/ is the merged F32 master and config.json's
 * "seslm_master" names it (the next cycle plans from it, adapter included). A SHA256SUMS manifest is
 * written last, as recompile does. 2:4-sparse bases are refused (SESLM_ERR_ARG). */
seslm_status adapt_write_served(const seslm_model *served, const seslm_model *f32, int f32_is_master, const lora *lo,
                                const char *out_dir, const char *lineage_json);

#endif
