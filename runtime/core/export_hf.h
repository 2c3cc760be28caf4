/* export_hf.h — a loaded model as a Hugging Face / sentence-transformers directory:
 *   config.json, model.safetensors (BERT tensor names), modules.json, 1_Pooling/config.json, 2_Normalize/
 *   (when the model normalises), sentence_bert_config.json, the tokenizer files, and, where BertModel
 *   cannot express the model, modeling_seslm.py (loaded with trust_remote_code).
 * A plain BertModel config when every layer keeps the same head count (hidden / head_dim heads) and FFN
 * width and no layer computes in INT8; otherwise model_type "seslm_bert" with per-layer shapes and an
 * auto_map to modeling_seslm.py. INT8 layers keep their INT8 weights and per-channel scales ("<w>_scale",
 * SE-SLM's own naming) and the modeling file computes them as SE-SLM does (per-token activation
 * quantization, exact integer sums). 2:4 weights and compressed word rows are written dense FP32. */
#ifndef SESLM_EXPORT_HF_H
#define SESLM_EXPORT_HF_H

#include "seslm.h"

/* Writes the directory out_dir (created if needed; files in it are replaced). *custom (may be NULL) is set
 * to 1 when the model needs modeling_seslm.py, 0 for a standard BertModel. */
seslm_status seslm_export_hf(const seslm_model *m, const char *out_dir, int *custom);

/* The text of modeling_seslm.py (export_hf_modeling.c). */
extern const char seslm_hf_modeling_py[];

#endif
