/* model_internal.h — the loaded model, shared by model.c, encoder.c and info. */
#ifndef SESLM_MODEL_INTERNAL_H
#define SESLM_MODEL_INTERNAL_H

#include "backend.h"
#include "safetensors.h"
#include "seslm.h"

typedef struct {
    // attention (inner width A = n_heads * head_dim); NULL when n_heads == 0
    const float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b; // (A, C), (A)
    const float *ao_w, *ao_b;                        // (C, A), (C)
    const float *ln1_g, *ln1_b;                      // (C)
    // feed-forward; NULL when ffn_dim == 0
    const float *ff1_w, *ff1_b; // (F, C), (F)
    const float *ff2_w, *ff2_b; // (C, F), (C)
    const float *ln2_g, *ln2_b; // (C)
    // INT8 linear weights (the F32 pointer of the same matrix is then NULL): q (N, K), scale (N)
    const int8_t *q_q, *k_q, *v_q, *ao_q, *ff1_q, *ff2_q;
    const float *q_s, *k_s, *v_s, *ao_s, *ff1_s, *ff2_s;
    // 2:4 sparse FFN weights (sparse24.h; ff1_w / ff2_w then NULL): values (N, K/2), index (N, K/4)
    const float *ff1_sv, *ff2_sv;
    const uint8_t *ff1_si, *ff2_si;
} seslm_layer_weights;

struct seslm_model {
    char *dir;
    seslm_model_config cfg;
    st_file st;
    seslm_tokenizer *tok;
    const float *word_emb, *pos_emb, *type_emb, *emb_ln_g, *emb_ln_b; // (V,C) (P,C) (T,C) (C) (C)
    seslm_embedding word; // the word table as the kernels read it (word_emb, or compressed rows)
    seslm_layer_weights *lw;
    void **owned;   // tensors converted from F16/BF16 or copied for alignment, index tables
    int n_owned;
    char sha256[65];
};

/* Parses config.json (+ sentence-transformers files) of a model directory into cfg. */
seslm_status seslm_config_load(seslm_model_config *cfg, const char *dir);
void seslm_config_free(seslm_model_config *cfg);

/* madvise(MADV_DONTNEED) over the weights file mapping: its pages stop counting as resident until
 * touched again (read-only private file mapping, so nothing is lost). */
void model_drop_resident_pages(const seslm_model *m);

/* Turns every INT8 / 2:4-sparse linear weight and a compressed word table into F32 copies owned by the
 * model (row x scale; exact rows kept), so code that reads F32 weights (plan's scores, recompile's
 * slicing) can take an evolved student as its parent. Call before any encoder is made from m. What it
 * computes is the dequantized model: the F32 master a recompile keeps (master/) is more exact. */
seslm_status seslm_model_widen(seslm_model *m);

#endif
