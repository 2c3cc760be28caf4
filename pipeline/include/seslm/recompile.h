/* recompile.h — graph rewriting with weight inheritance: a pruning plan (plan.h) applied to a model's
 * weights, producing a smaller model directory whose tensors are slices of the parent's.
 *
 * Per layer, the plan's heads lose their rows of the Q/K/V weights and biases and their columns of
 * attention.output.dense.weight; its FFN neurons lose their rows of intermediate.dense (weight and
 * bias) and their columns of output.dense.weight. LayerNorms, output biases and embeddings are copied
 * unchanged, so the student computes exactly what the parent computes with the same heads / neurons
 * masked (seslm_encoder_set_masks). Tensors are written as F32 (F16/BF16 parents are widened).
 *
 * config.json is the parent's with "attention_head_size" (the parent's head dim), "seslm_layers" (the
 * per-layer heads and FFN widths) and "seslm_lineage" (parent weights' sha256, plan file, counts; the
 * parent's own lineage nested as "parent"); num_attention_heads / intermediate_size keep the original
 * values. The tokenizer and sentence-transformers files are copied byte for byte.
 *
 * Crash safety: everything is written into a temporary directory beside out_dir (each file fsync'd)
 * that is renamed to out_dir at the end; an existing out_dir is never overwritten. */
#ifndef SESLM_RECOMPILE_H
#define SESLM_RECOMPILE_H

#include "calibrate.h"
#include "plan.h"
#include "seslm.h"

#define SESLM_MAX_LAYERS 64
#define SESLM_EMB_INT8 1
#define SESLM_EMB_INT4 2
#define SESLM_EMB_PQ8 3 // 4-bit rows for the ids seen in telemetry, product-quantized rare rows (8-column sub-vectors)
#define SESLM_EMB_PQ4 4 // the same with 4-column sub-vectors (twice the code bytes, closer rows)

/* "f32" 0, "int8", "int4", "pq8", "pq4" -> SESLM_EMB_*; -1 for anything else. */
int seslm_embeddings_parse(const char *name);
const char *seslm_embeddings_name(int emb);

typedef struct {
    int64_t params_parent, params;             // parameters (seslm_model_param_groups)
    int64_t bytes_parent, bytes;               // parent parameters as F32 bytes; student tensor bytes as written
    int64_t file_bytes_parent, file_bytes;     // size of model.safetensors
    int heads_removed, neurons_removed;     // dropped layers count all their heads and neurons
    int layers_removed;
    int exact_rows;                            // embedding compression: rows kept exact
    int pq_rows, q4_rows;                      // SESLM_EMB_PQ*: rows product-quantized / left 4-bit
    double pq_row_cos, pq_row_cos_int4;        // mean cosine of the PQ rows to the parent's, and of 4-bit rows of the same ids
    float quant_worst_rel_err;                 // INT8: largest weight rounding error / channel max
    // reconstruction, per layer: calibration-set relative output error of the pruned projection, after
    // the least-squares fit and with plain slicing (0 where nothing was removed or no calibration)
    double attn_err_fit[SESLM_MAX_LAYERS], attn_err_plain[SESLM_MAX_LAYERS];
    double ffn_err_fit[SESLM_MAX_LAYERS], ffn_err_plain[SESLM_MAX_LAYERS];
    int refits_skipped; // pruned projections left sliced: fewer calibration tokens than 2 x (kept inputs + 1)
    int sparse24_layers; // layers whose FFN weights were written 2:4 sparse
} seslm_recompile_stats;

/* What recompile does beyond slicing. Zero-initialised = slicing only. */
typedef struct {
    const char *plan_name;          // recorded in the lineage (may be NULL)
    const char *calibration_name;   // recorded in the lineage (may be NULL)
    const seslm_calibration *calib; // least-squares reconstruction of pruned projections (NULL: none)
    double ridge;                   // reconstruction ridge, relative to the mean Gram diagonal (1e-3)
    int quantize_int8;              // linear weights INT8 per output channel, activations per token
    int act_token;                  // with quantize_int8: activations rounded per token alone; 0 (default):
                                    // each token's largest element kept in float (kernels/quant.h top1)
    int compress_embeddings;        // word table per row INT8 (SESLM_EMB_INT8) or 4-bit (SESLM_EMB_INT4) + the n_exact
                                    // most frequent rows exact; 0: F32
    const uint64_t *token_counts;   // (vocab) frequencies from telemetry for the exact rows (may be NULL)
    int n_exact;
    int exact_int8;                 // the exact rows INT8 per row (scale per row) instead of F32
    int position_int8;              // position and token-type embeddings INT8 per row instead of F32
    int rare_min;                   // SESLM_EMB_PQ*: ids with a count below this are product-quantized (0: 1)
    int sparse24_ffn;               // FFN weights 2:4 sparse (F32 only; the caller decides it pays: sparsity.h)
    // lineage (may be NULL): the parent as served (a student's master is what was read, its dir is this)
    const char *parent_dir, *parent_sha256, *parent_kind;
    int keep_lineage;               // the parent's seslm_lineage copied unchanged (the quantization step)
    const char *master_sha256;      // config.json "seslm_master": the F32 master kept in out_dir/master/
    int distill_steps;              // recorded in the lineage when > 0
    double distill_cos_before, distill_cos_after;
    // (fields added since 0.1 go last: a program built against the older header keeps its layout)
    const uint8_t *seen_ids;        // (vocab) SESLM_EMB_PQ*: ids also kept as 4-bit rows whatever their count: the
                                    // calibration text's (served traffic the telemetry may not have shown); NULL: none
} seslm_recompile_opts;

/* 1 when the model holds INT8 (or 2:4 sparse) tensors: recompile reads F32 weights, so such a model is
 * recompiled from its F32 master or widened first (parent.h). */
int seslm_model_is_quantized(const seslm_model *m);

/* Writes the student model directory out_dir (must not exist) with the options o (NULL: slicing only). */
seslm_status seslm_recompile_run(const seslm_model *parent, const seslm_plan *plan, const seslm_recompile_opts *o,
                                 const char *out_dir, seslm_recompile_stats *stats);

/* Structural checks of a plan against a model: layer count, indices in range, increasing and unique.
 * Removing every head or every neuron of a layer is allowed (the layer keeps its biases and norms).
 * Policy rules (cap, protected layers, minimums) are seslm_plan_validate's. */
seslm_status seslm_recompile_check(const seslm_plan *plan, const seslm_model_config *c);

/* Writes the student model directory out_dir (which must not exist). plan_name (may be NULL) is
 * recorded in the lineage; stats (may be NULL) receives the sizes. */
seslm_status seslm_recompile_ex(const seslm_model *parent, const seslm_plan *plan, const char *plan_name,
                                const char *out_dir, seslm_recompile_stats *stats);
seslm_status seslm_recompile(const seslm_model *parent, const seslm_plan *plan, const char *out_dir);

#endif
