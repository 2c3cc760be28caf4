/* export_onnx.h — a loaded model as an ONNX graph (opset 17): the student's real per-layer widths, its
 * pooling mode and L2 normalisation inside the graph. Inputs input_ids, attention_mask (int64 [batch, seq]);
 * output sentence_embedding (float [batch, hidden]). Weights are written FP32 (INT8 / 2:4 / compressed rows
 * dequantised) or, with int8, the linear weights as INT8 + per-row scale into MatMulInteger with the
 * activations quantized per token as SE-SLM does. Models computing F32 weights in BF16 / INT8
 * (seslm_precision) are refused. */
#ifndef SESLM_EXPORT_ONNX_H
#define SESLM_EXPORT_ONNX_H

#include "seslm.h"

seslm_status seslm_export_onnx(const seslm_model *m, const char *path, int int8_weights);

#endif
