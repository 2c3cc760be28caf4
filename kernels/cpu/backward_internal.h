/* backward_internal.h — the reference backward ops (ref_backward.c), shared by the backend tables of
 * ref.c and, where the fast path has nothing better, fast.c. */
#ifndef SESLM_BACKWARD_INTERNAL_H
#define SESLM_BACKWARD_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

void ref_embed_backward(float *dword, float *dpos, float *dtype, const float *dx, const int32_t *ids, const int *off,
                        const int *len, int B, int C);
void ref_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int M, int N,
                         int K);
void ref_layernorm_backward(float *dz, float *dg, float *dbeta, const float *dy, const float *z, const float *g, int M,
                            int C, float eps);
void ref_gelu_backward(float *dx, const float *x, const float *dy, size_t n);
void ref_attention_backward(float *dqkv, const float *dout, const float *qkv, const int *off, const int *len, int B,
                            int H, int D, const float *head_mask, float *scratch, size_t scratch_floats);
void ref_pool_backward(float *dx, const float *dout, const int *off, const int *len, int B, int C);
void ref_l2norm_backward(float *dx, const float *dy, const float *x, int B, int C);

void fast_embed_backward(float *dword, float *dpos, float *dtype, const float *dx, const int32_t *ids, const int *off,
                         const int *len, int B, int C);
void fast_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int M, int N,
                          int K);
void fast_layernorm_backward(float *dz, float *dg, float *dbeta, const float *dy, const float *z, const float *g, int M,
                             int C, float eps);
void fast_gelu_backward(float *dx, const float *x, const float *dy, size_t n);
void fast_attention_backward(float *dqkv, const float *dout, const float *qkv, const int *off, const int *len, int B,
                             int H, int D, const float *head_mask, float *scratch, size_t scratch_floats);
void fast_pool_backward(float *dx, const float *dout, const int *off, const int *len, int B, int C);
void fast_l2norm_backward(float *dx, const float *dy, const float *x, int B, int C);

#endif
