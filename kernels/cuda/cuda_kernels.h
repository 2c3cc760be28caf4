/* cuda_kernels.h — the CUDA kernels of the encoder, as C-callable host launchers. Every pointer is
 * DEVICE memory unless said otherwise; every launcher queues its work on the calling thread's stream
 * (seslm_cuda_stream) and returns at once. Launch and API failures are recorded (the first one per
 * thread) and reported by the next seslm_cuda_sync / seslm_cuda_download, never by exit().
 *
 * The math is that of kernels/cpu/ref.c (the oracle the tests compare against); layouts are the
 * packed ragged batches of backend.h. Compiled only when nvcc is found (SESLM_HAVE_CUDA). */
#ifndef SESLM_CUDA_KERNELS_H
#define SESLM_CUDA_KERNELS_H

#include "backend.h"
#include "seslm.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- runtime: errors, memory, stream (cuda_runtime_glue.cu) ------------------------------------
/* 0 when no CUDA error was recorded on this thread since the last call, else -1 with the message
 * passed to seslm_fail (and the record cleared). Does not wait for the device. */
int seslm_cuda_take_error(void);
/* Waits for this thread's queued work; 0 ok, -1 (seslm_fail message set) on any recorded failure. */
int seslm_cuda_sync(void);
void *seslm_cuda_alloc(size_t bytes); // NULL (message set) on failure
void seslm_cuda_free(void *p);
int seslm_cuda_upload(void *dst, const void *src, size_t bytes);   // host -> device, ordered on the stream
int seslm_cuda_download(void *dst, const void *src, size_t bytes); // device -> host, waits; reports errors
int seslm_cuda_memset(void *dst, int byte, size_t bytes);
/* Grow-on-demand per-thread device scratch (kept for the thread's lifetime, and so are the buffers it
 * outgrew: recorded graphs may name them); NULL on failure. */
void *seslm_cuda_scratch(size_t bytes);
/* Frees this thread's scratch buffers (after waiting for its stream): for a thread that is done with
 * CUDA; no graph recorded on it may run afterwards. */
void seslm_cuda_scratch_release(void);
/* The stream the launchers use on this thread (a cudaStream_t): one created for the thread on first use,
 * unless set; set NULL to go back to the thread's own. */
void *seslm_cuda_stream(void);
void seslm_cuda_set_stream(void *stream);
/* CUDA graphs: begin recording this thread's stream (0 ok); end returns an executable graph of what was
 * queued in between (nothing of it ran), or NULL with the message set (a failed launch while recording);
 * replay launches it on this thread's stream (0 ok); replay_free releases it. */
int seslm_cuda_capture_begin(void);
void *seslm_cuda_capture_end(void);
int seslm_cuda_replay(void *graph);
void seslm_cuda_replay_free(void *graph);

// ---- kernels (one file each) -------------------------------------------------------------------
/* backward.cu: the backward ops of backend.h (every gradient accumulates, +=); ntok = total tokens of
 * the batch (the device cannot read off / len from the host). attention: head_dim <= 64. */
void seslm_cuda_embed_backward(float *dword, float *dpos, float *dtype, const float *dx, const int32_t *ids,
                               const int *off, const int *len, int B, int C, int ntok);
void seslm_cuda_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int M,
                                int N, int K);
void seslm_cuda_layernorm_backward(float *dz, float *dg, float *dbeta, const float *dy, const float *z, const float *g,
                                   int M, int C, float eps);
void seslm_cuda_gelu_backward(float *dx, const float *x, const float *dy, size_t n);
void seslm_cuda_attention_backward(float *dqkv, const float *dout, const float *qkv, const int *off, const int *len,
                                   int B, int H, int D, const float *head_mask, int ntok);
void seslm_cuda_pool_backward(float *dx, const float *dout, const int *off, const int *len, int B, int C);
void seslm_cuda_l2norm_backward(float *dx, const float *dy, const float *x, int B, int C);

/* embed.cu: x (Ntok, C) = word[ids[t]] + pos[p] + type[0]; `word` holds device pointers (F32 rows, or
 * INT8 rows with per-row scales and exact F32 rows for the frequent ids). */
void seslm_cuda_embed(float *x, const int32_t *ids, const int *off, const int *len, int B, const seslm_embedding *word,
                      const float *pos, const float *type, int C);
/* layernorm.cu: x (M, C) = LayerNorm(x + r) * g + beta (r may be NULL). */
void seslm_cuda_add_layernorm(float *x, const float *r, const float *g, const float *beta, int M, int C, float eps);
/* gelu.cu: x = gelu(x) over n floats; gelu_bias: x (M, N) = gelu(x + b[n]) (b may be NULL). */
void seslm_cuda_gelu(float *x, size_t n);
void seslm_cuda_gelu_bias(float *x, const float *b, int M, int N);
/* attention.cu: fused attention over the packed layout (backend.h), head_dim D <= 64, online softmax,
 * no score matrix in memory. head_mask (H) may be NULL; a head with factor 0 does no work and writes
 * zeros; other factors scale the head's output. */
void seslm_cuda_attention(float *out, const float *qkv, const int *off, const int *len, int B, int H, int D,
                          const float *head_mask);
/* pool.cu: out (B, C) = mean of each sequence's rows, L2-normalised when normalize. */
void seslm_cuda_pool(float *out, const float *x, const int *off, const int *len, int B, int C, int normalize);
/* quantize.cu: per-token INT8 quantization of x (M, K) into q (M, ldq), scale (M), exactly as
 * seslm_quantize_rows (quant.h): the same int8 values and scales, columns K..ldq-1 zero. */
void seslm_cuda_quantize_rows(int8_t *q, float *scale, const float *x, int M, int K, int ldq);
/* quantize.cu: seslm_quantize_rows_top1 (quant.h) on the device, and the top terms added to a product:
 * y (M, N) += top_val[m] * (sw[n] * qw[n * ldw + top_idx[m]]) as seslm_q8_add_top1_ref. */
void seslm_cuda_quantize_rows_top1(int8_t *q, float *scale, int32_t *top_idx, float *top_val, const float *x, int M,
                                   int K, int ldq);
void seslm_cuda_add_top1(float *y, const int32_t *top_idx, const float *top_val, const int8_t *qw, int ldw,
                         const float *sw, int M, int N);
/* qgemm.cu: INT8 product over K padded to Kp (a multiple of 32, zero-filled): qa (M, Kp), qw (N, Kp).
 * When acc is not NULL it gets the int32 sums (M, N), bit-exact against seslm_qgemm_ref; otherwise
 * y (M, N) = acc * (sa[m] * sw[n]) + b[n], rounded as ref.c does (b may be NULL).
 * seslm_cuda_qgemm uses tensor-core mma.sync m16n8k32 (sm_80/sm_90); _simple is one thread per output. */
void seslm_cuda_qgemm(int32_t *acc, float *y, const int8_t *qa, const float *sa, const int8_t *qw, const float *sw,
                      const float *b, int M, int N, int Kp);
void seslm_cuda_qgemm_simple(int32_t *acc, float *y, const int8_t *qa, const float *sa, const int8_t *qw,
                             const float *sw, const float *b, int M, int N, int Kp);
static inline int seslm_cuda_kpad(int K) { return (K + 31) & ~31; }
/* linear_cublas.cu: the cuBLAS INT8 baseline, int32 products only: acc (M, N) = qa (M, Kp) qw (N, Kp)^T. */
void seslm_cuda_qgemm_cublas(int32_t *acc, const int8_t *qa, const int8_t *qw, int M, int N, int Kp);
/* The dequantized product through cuBLAS INT8 (int32 sums into acc_ws, (M, N) device memory the caller owns)
 * and qgemm.cu's epilogue: y bit-identical to seslm_cuda_qgemm(NULL, y, ...). N must be a multiple of 4. */
void seslm_cuda_qgemm_cublas_dq(int32_t *acc_ws, float *y, const int8_t *qa, const float *sa, const int8_t *qw,
                                const float *sw, const float *b, int M, int N, int Kp);
/* qgemm.cu: the epilogue alone: y (M, N) = acc * (sa[m] * sw[n]) + b[n], rounded as seslm_cuda_qgemm does. */
void seslm_cuda_qgemm_dequant(float *y, const int32_t *acc, const float *sa, const float *sw, const float *b, int M, int N);
/* linear_cublas.cu (cuBLAS baseline): y (M, N) = x (M, K) W (N, K)^T + b in FP32 (no TF32), and the
 * FP16 variant: W16 (N, K) halves, x converted to FP16 on the fly, FP32 accumulation and output. */
void seslm_cuda_linear_f32(float *y, const float *x, const float *w, const float *b, int M, int N, int K);
void seslm_cuda_linear_f16(float *y, const float *x, const void *w16, const float *b, int M, int N, int K);
void seslm_cuda_f32_to_f16(void *dst, const float *src, size_t n);
/* rows.cu: y (M, N) rows = row (N); y (M, G*W) column groups *= mask[g] (0 writes exact zeros). */
void seslm_cuda_fill_rows(float *y, const float *row, int M, int N);
void seslm_cuda_scale_columns(float *y, int M, int G, int W, const float *mask);

/* nccl_allreduce.cu: bufs[r] (n doubles, host) of every rank r < n_ranks (one rank per visible GPU, one
 * process) replaced by the element-wise sum over the ranks, through NCCL (loaded at run time). One
 * rank: the same path, the values come back unchanged. available: NCCL can be loaded. */
int seslm_nccl_available(void);
seslm_status seslm_nccl_allreduce_sum_f64(double *const *bufs, int n_ranks, size_t n);

/* backend_cuda.cu: the "cuda" backend (fp16 = 0) or "cuda-fp16" (F32 weights as FP16 on the device, FP16
 * matrix products with FP32 accumulation); NULL (message set) without a visible device. */
const seslm_backend *seslm_backend_cuda(int fp16);

// ---- the decoder (qblock.cu): block-quantized weights (kernels/qblock.h layouts) ----------------
/* xq (M, K / 32 blocks of `type`: QB_Q8_0 or QB_Q8_1) = per-block quantization of x (M, K). */
void seslm_cuda_qb_quantize(void *xq, const float *x, int type, int M, int K);
/* y (M, N) = x . W^T with W (N, K) in QB_Q4_0 / QB_Q4_1 / QB_Q8_0 blocks and xq in qb_vec_dot_type(type). */
void seslm_cuda_qb_matvec(float *y, const void *W, int type, const void *xq, int M, int N, int K);

#ifdef __cplusplus
}
#endif
#endif
