/* dmodel.h — a trainable copy of an encoder (F32 parameters in one flat buffer), its forward pass with
 * the activations the backward pass needs, and the backward pass; both through the ops of backend.h.
 * This is the train_gpt2.c of the project: one readable forward, one backward, no autograd.
 *
 * Parameter layout (offsets into params, in floats), frozen ones first:
 *   word (V, C), pos (P, C), type (T, C)                                  [frozen unless train_embeddings]
 *   emb_ln_g (C), emb_ln_b (C), then per layer l (A = heads_l * D, F = ffn_l):
 *   qkv_w (3A, C) [query rows | key rows | value rows], qkv_b (3A), ao_w (C, A), ao_b (C), ln1_g, ln1_b (C),
 *   ff1_w (F, C), ff1_b (F), ff2_w (C, F), ff2_b (C), ln2_g, ln2_b (C)
 *
 * Memory: the forward keeps, per token and layer l, z1 and z2 (the LayerNorm inputs, 2C), qkv (3A),
 * ctx (A) and the FFN pre-activation (F) — (2C + 4A_l + F_l) floats — plus the embedding sum (C); the
 * LayerNorm outputs and GELU outputs are recomputed in the backward pass (cheap, O(Ntok C) each)
 * instead of being stored. For all-MiniLM-L6-v2 that is 15.4 KB per token and layer. The attention
 * probabilities are recomputed by attention_backward (no (L, L) matrices kept). */
#ifndef SESLM_DMODEL_H
#define SESLM_DMODEL_H

/* The LoRA stage's tests and the gradient oracle call the trainable encoder directly. The shared libraries export only seslm_* names
 * (cmake/seslm.map), so these are compiled under the prefixed names. */
#define dm_init seslm_dm_init
#define dm_free seslm_dm_free
#define dm_tensor_slot seslm_dm_tensor_slot
#define dm_acts_init seslm_dm_acts_init
#define dm_acts_free seslm_dm_acts_free
#define dm_acts_bytes seslm_dm_acts_bytes
#define dm_forward seslm_dm_forward
#define dm_backward seslm_dm_backward
#define dm_layer_output seslm_dm_layer_output
#define dm_fake_quant_rows seslm_dm_fake_quant_rows
#define dm_fake_quant_rows_top1 seslm_dm_fake_quant_rows_top1
#define dm_fake_quant_weights seslm_dm_fake_quant_weights

#include "backend.h"
#include "seslm.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int H, A, F;
    size_t qkv_w, qkv_b, ao_w, ao_b, ln1_g, ln1_b, ff1_w, ff1_b, ff2_w, ff2_b, ln2_g, ln2_b;
} dm_layer;

typedef struct {
    const seslm_model *src;     // loaded model (config, tokenizer, tensor names for writing)
    const seslm_model_config *cfg;
    int C, D, L, V, P, T;
    float *params;              // (n_params)
    size_t n_params, train_begin; // params[train_begin..n_params) are trained
    size_t word, pos, type, eln_g, eln_b;
    dm_layer *ly;               // (L)
    int Amax, Fmax;
    int fq_act;                 // 1: the input rows of every linear layer are rounded to INT8 per token as the
                                // runtime's INT8 kernels do (fake quantization: distill's INT8-aware phase;
                                // the backward pass passes gradients straight through the rounding); 2: the
                                // same with each row's largest element kept (dm_fake_quant_rows_top1)
} dm_model;

/* Copies the F32 weights of m (which must outlive dm). INT8, 2:4-sparse or compressed-embedding models
 * are refused (SESLM_ERR_ARG with a message): distil the FP32 student, quantize afterwards. */
seslm_status dm_init(dm_model *dm, const seslm_model *m);
void dm_free(dm_model *dm);

/* Where the tensor `name` of the model file (as model.safetensors names it, with or without a "bert."
 * prefix) lives in params: *offset, and its element count *numel. Q / K / V weights and biases are
 * slices of the fused qkv block. Returns 0, or -1 for a name that is no parameter (e.g. position_ids). */
int dm_tensor_slot(const dm_model *dm, const char *name, size_t *offset, size_t *numel);

/* The activations of one forward pass of up to max_tok tokens in max_b sequences. */
typedef struct {
    int max_tok, max_b, ntok, B;
    int32_t *ids;
    int *off, *len;
    float *e0;          // (Ntok, C) embedding sum before its LayerNorm
    float **z1, **z2;   // per layer (Ntok, C) LayerNorm inputs
    float **qkv, **ctx; // per layer (Ntok, 3A), (Ntok, A)
    float **hpre;       // per layer (Ntok, F) FFN pre-activation
    float *x;           // (Ntok, C) current hidden state; after forward: last layer's output
    float *h;           // (Ntok, Fmax) GELU output (work)
    float *tmp;         // (Ntok, C) (work)
    float *pooled;      // (B, C) mean over each sequence
    float *emb;         // (B, C) pooled / ||pooled||
    float *scratch;     // attention scratch (forward and backward)
    size_t scratch_floats;
    // backward work
    float *dx, *dz, *dx1, *dh, *dhpre, *dctx, *dqkv, *dpooled, *x1;
} dm_acts;

seslm_status dm_acts_init(dm_acts *a, const dm_model *dm, int max_tok, int max_b, int max_len, int n_threads);
void dm_acts_free(dm_acts *a);
/* Bytes held by the activations (the memory bound of a step besides parameters and optimiser state). */
size_t dm_acts_bytes(const dm_model *dm, int max_tok, int max_b, int max_len, int n_threads);

/* Forward over B sequences (ids[b], lens[b]) on backend be: fills a (emb, pooled, saved activations). */
void dm_forward(const dm_model *dm, const seslm_backend *be, dm_acts *a, const int32_t *const *ids, const int *lens,
                int B);

/* Backward from d emb (B, C) and d pooled (B, C) (either may be NULL) plus, when dqkv_last is not NULL,
 * an extra gradient (Ntok, 3A) on the last layer's qkv (attention-relation losses), and when dhid is not
 * NULL, extra gradients dhid[l] (Ntok, C) (NULL entries: none) on each layer's output (hidden-state
 * losses). grad (n_params) accumulates; the frozen region is left untouched unless train_embeddings. */
void dm_backward(const dm_model *dm, const seslm_backend *be, dm_acts *a, const float *demb, const float *dpooled,
                 const float *dqkv_last, const float *const *dhid, float *grad, int train_embeddings);

/* y (M, K) = x rounded to INT8 per row and back: scale max|row| / 127, round to nearest even, clamp to
 * +-127 -- the arithmetic of seslm_quantize_rows / seslm_quantize_weight. y may be x. */
void dm_fake_quant_rows(float *y, const float *x, int M, int K);
/* The same with each row's first largest |x| kept as it is and the rest rounded with the second largest as the
 * maximum: the arithmetic of seslm_quantize_rows_top1 (kernels/quant.h). y may be x. */
void dm_fake_quant_rows_top1(float *y, const float *x, int M, int K);

/* Rounds every linear weight matrix of dm in place to INT8 per output channel (what recompile stores). */
void dm_fake_quant_weights(dm_model *dm);

/* out (Ntok, C) = the output of layer l of the last forward (recomputed from the saved z2). */
void dm_layer_output(const dm_model *dm, const seslm_backend *be, const dm_acts *a, int l, float *out);

#endif
