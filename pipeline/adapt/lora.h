/* lora.h — low-rank adapters (Hu et al. 2021, "LoRA") on the encoder's projections, trained through the
 * trainable encoder of pipeline/distill/dmodel.h.
 *
 * Every adapted projection W (out, in) — per layer the fused Q/K/V (3A, C), the attention output (C, A),
 * FFN in (F, C) and FFN out (C, F) — becomes W + s B A with A (r, in), B (out, r), s = alpha / r. A starts
 * Kaiming-uniform, B at zero (the adapted model starts as the base model). Training never writes W: the
 * effective weights are rebuilt from a copy of the base (lora_apply) before each forward, and the
 * gradients of A and B come from the full weight gradient dW of dm_backward:
 *     dA = s B^T dW  (r, in),    dB = s dW A^T  (out, r)
 * which reuses the encoder's one backward pass instead of a second, adapter-aware one (the cost of
 * forming dW is paid anyway by the backward of the activations).
 *
 * File (safetensors, "adapter.safetensors"): tensors "layers.<l>.<qkv|ao|ff1|ff2>.lora_A" (r, in) and
 * ".lora_B" (out, r) F32; "__metadata__": format "seslm-lora", version "1", rank, alpha, base_sha256 (the
 * base model's weights). Merged into the weights for serving (the merged model has the base's exact
 * shapes, so its latency is the base's). */
#ifndef SESLM_LORA_H
#define SESLM_LORA_H

/* seslm adapt and the LoRA tests call these. The shared libraries export only seslm_* names
 * (cmake/seslm.map), so these are compiled under the prefixed names. */
#define lora_init seslm_lora_init
#define lora_free seslm_lora_free
#define lora_apply seslm_lora_apply
#define lora_grad seslm_lora_grad
#define lora_save seslm_lora_save
#define lora_load seslm_lora_load

#include "dmodel.h"

typedef struct {
    int layer, kind;     // kind: 0 qkv, 1 ao, 2 ff1, 3 ff2
    int out, in;
    size_t w_off;        // the weight's offset in dm params
    size_t a_off, b_off; // offsets of A (r, in) and B (out, r) in lora params
} lora_target;

typedef struct {
    int rank;
    float alpha, scale; // scale = alpha / rank
    int n_targets;
    lora_target *t;
    float *params;      // all A then B blocks, (n_params)
    size_t n_params;
    float *base;        // the base model's parameters (dm n_params): W is rebuilt from it
    size_t n_base;
} lora;

/* Adapters of rank r (1..256) on every layer's four projections of dm; A from seed. Copies dm's params
 * as the base. */
seslm_status lora_init(lora *lo, const dm_model *dm, int rank, float alpha, unsigned long long seed);
void lora_free(lora *lo);

/* dm params = base + s B A on every target (the other parameters: base). */
void lora_apply(const lora *lo, dm_model *dm);

/* The adapters' gradient (n_params) from the full parameter gradient grad (dm n_params). */
void lora_grad(const lora *lo, const float *grad, float *lgrad);

/* Saves A and B crash-safely (safetensors) with the base model's weights hash. */
seslm_status lora_save(const lora *lo, const char *path, const char *base_sha256);
/* Loads adapters for dm (shapes checked against dm); *lo must come from lora_init with any rank: it is
 * re-initialised with the file's rank. base_sha256_out (65 bytes, may be NULL) gets the recorded hash. */
seslm_status lora_load(lora *lo, const dm_model *dm, const char *path, char *base_sha256_out);

#endif
