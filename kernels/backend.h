/* backend.h — the numeric kernels of the encoder behind one interface (a struct of function pointers,
 * as in ggml's backends). Every backend computes the same math; "cpu-ref" is the plain-C reference that
 * the fast CPU and CUDA versions are tested against.
 *
 * Activations are "packed": the tokens of all sequences of a batch are concatenated (no padding), so
 * row t of an (Ntok, C) matrix is one token; sequence b owns rows [off[b], off[b] + len[b]). The padding
 * mask of the reference implementation is thereby exact: a token only ever attends within its sequence. */
#ifndef SESLM_BACKEND_H
#define SESLM_BACKEND_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    SESLM_OP_EMBED,         // gather word + position + token-type rows
    SESLM_OP_LINEAR,        // y = x W^T + b
    SESLM_OP_ADD_LAYERNORM, // x = LN(x + r)
    SESLM_OP_GELU,          // erf GELU in place
    SESLM_OP_ATTENTION,     // multi-head self-attention within each sequence
    SESLM_OP_POOL,          // mean pooling (+ L2 normalisation)
    SESLM_OP_COL_STATS,     // telemetry: per-column sums of squares / |x| / positives
    SESLM_OP_HEAD_NORMS,    // telemetry: per-head sums of output-vector norms
    SESLM_OP_COUNT
} seslm_op;

/* A weight matrix of nn.Linear: w (N, K) as stored in the model; wp the same weights packed once by
 * the encoder, when the backend sets wants_packed, into column panels of W^T: (ceil(N/32), K, 32),
 * zero-padded past N — the layout the fast small-batch kernel streams sequentially. */
typedef struct {
    const float *w;
    float *wp;
    int N, K;
    // INT8 weights (w and wp NULL; see quant.h): q (N, K) per-output-channel scales qscale (N), and,
    // when the backend wants packed weights, the VNNI layout qp with its column sums qsum.
    const int8_t *q;
    const float *qscale;
    int8_t *qp;
    int32_t *qsum;
    // INT8: 1 when each token's largest input element stays float (quant.h seslm_quantize_rows_top1; the
    // model's config.json says so). The pre-quantized ops (linear_q8in, linear_gelu_q8out, add_layernorm_q8)
    // are not used for such weights: linear quantizes its input itself.
    int act_top1;
    // 2:4 sparse F32 weights (sparse24.h; w, wp, q NULL): values (N, K/2), index (N, K/4), and the panel
    // layout sp when the backend wants packed weights
    const float *sv;
    const uint8_t *si;
    void *sp;
    // BF16 weights (bf16.h; converted from F32 at load): bw (N, K), and the panel layout bwp when the
    // backend wants packed weights (then bw may be NULL)
    const uint16_t *bw;
    uint16_t *bwp;
} seslm_weight;

/* The word-embedding table: plain F32 rows, or (embedding compression) every row INT8 -- or 4-bit -- with
 * a per-row scale, and the frequent rows kept exact in F32: exact_slot[id] >= 0 names id's row in exact.
 * 4-bit rows (q4): byte j of a row holds column 2j in its low nibble and 2j+1 in its high nibble, each a
 * two's-complement value in [-7, 7] (quant.h seslm_quantize_rows4); the value is nibble * scale.
 * Rare rows may instead be product-quantized (embed_pq.h): the row is split into C / pq_dim sub-vectors of
 * pq_dim columns, each replaced by one of 256 centroids; pq_codes row r holds the centroid index of every
 * sub-vector, pq_book (C / pq_dim, 256, pq_dim) the centroids. With row_slot (V) the q / q4 tables hold only
 * some ids: row_slot[id] >= 0 is id's row in q / q4 (and scale), row_slot[id] < 0 its PQ row -1 - row_slot[id].
 * Without row_slot, q / q4 row = id (every id has one). */
typedef struct {
    const float *f32;         // (V, C), or NULL when compressed
    const int8_t *q;          // (Vq, C), or NULL when the rows are 4-bit
    const uint8_t *q4;        // (Vq, C/2) 4-bit rows (C even), or NULL
    const float *scale;       // (Vq)
    const int32_t *exact_slot; // (V): -1 or a row of exact
    const float *exact;       // (E, C)
    const int32_t *row_slot;  // (V) or NULL: see above
    const uint8_t *pq_codes;  // (R, C / pq_dim), or NULL
    const float *pq_book;     // (C / pq_dim, 256, pq_dim)
    int pq_dim;               // columns per sub-vector (C % pq_dim == 0)
    int n_rows, n_pq;         // Vq and R when row_slot is set (device copies need the sizes)
} seslm_embedding;

/* Row `id` of the table as F32 into out (C). */
static inline void seslm_embedding_row(float *out, const seslm_embedding *e, int32_t id, int C) {
    if (e->f32) {
        for (int c = 0; c < C; c++) out[c] = e->f32[(size_t)id * C + c];
        return;
    }
    if (e->exact_slot[id] >= 0) {
        const float *r = e->exact + (size_t)e->exact_slot[id] * C;
        for (int c = 0; c < C; c++) out[c] = r[c];
        return;
    }
    const int32_t row = e->row_slot ? e->row_slot[id] : id;
    if (row < 0) { // product-quantized: centroids copied (no arithmetic, so every backend agrees bit for bit)
        const int d = e->pq_dim, S = C / d;
        const uint8_t *code = e->pq_codes + (size_t)(-1 - row) * S;
        for (int s = 0; s < S; s++) {
            const float *cen = e->pq_book + ((size_t)s * 256 + code[s]) * d;
            for (int j = 0; j < d; j++) out[s * d + j] = cen[j];
        }
    } else if (e->q4) {
        const uint8_t *q = e->q4 + (size_t)row * (C / 2);
        const float s = e->scale[row];
        for (int c = 0; c < C; c++) {
            const int nib = (q[c >> 1] >> ((c & 1) * 4)) & 0xF;
            out[c] = (float)(nib >= 8 ? nib - 16 : nib) * s;
        }
    } else {
        const int8_t *q = e->q + (size_t)row * C;
        const float s = e->scale[row];
        for (int c = 0; c < C; c++) out[c] = (float)q[c] * s;
    }
}

/* Packs w (N, K) into 32-column panels of W^T (malloc'd; free() it). NULL when out of memory. */
float *seslm_weight_pack32(const float *w, int N, int K);

typedef struct seslm_backend {
    const char *name;
    int wants_packed; // encoder should fill seslm_weight.wp
    int (*supports_op)(seslm_op op);
    void (*set_threads)(int n_threads);

    // x (Ntok, C) = word[ids[t]] + pos[t - off(seq(t))] + type[0]
    void (*embed)(float *x, const int32_t *ids, const int *off, const int *len, int B, const seslm_embedding *word,
                  const float *pos, const float *type, int C);
    // y (M, N) = x (M, K) . W (N, K)^T + b (N)    (PyTorch nn.Linear layout; b may be NULL)
    // With INT8 weights (W->q), x is quantized per token first (quant.h) and the product is int32.
    void (*linear)(float *y, const float *x, const seslm_weight *w, const float *b, int M);
    // x (M, C) = LayerNorm(x + r) * g + beta   (r may be NULL)
    void (*add_layernorm)(float *x, const float *r, const float *g, const float *beta, int M, int C, float eps);
    // x (n) = 0.5 x (1 + erf(x / sqrt 2))
    void (*gelu)(float *x, size_t n);
    // qkv (Ntok, 3*H*D) rows [q_h0..q_hH | k_h0.. | v_h0..]; out (Ntok, H*D); softmax(q k^T / sqrt D) v per head.
    // stats (B*H, 2), when not NULL: for sequence b, head h, the sums over its query tokens of the
    // attention distribution's entropy (nats) and of its largest weight (telemetry; NULL = off).
    void (*attention)(float *out, const float *qkv, const int *off, const int *len, int B, int H, int D,
                      float *scratch, size_t scratch_floats, float *stats);
    // out (B, C) = mean of x rows of each sequence, then / max(||.||_2, 1e-12) when normalize
    void (*pool)(float *out, const float *x, const int *off, const int *len, int B, int C, int normalize);
    // Telemetry accumulators over x (M, N): sq[n] += sum_m x^2; abs[n] += sum_m |x|; pos[n] += #(x > 0).
    // abs and pos may be NULL.
    void (*col_stats)(const float *x, int M, int N, double *sq, double *abs, uint64_t *pos);
    // ctx (M, H*D): norms[h] += sum_m || ctx[m, h*D : (h+1)*D] ||_2
    void (*head_norms)(const float *ctx, int M, int H, int D, double *norms);

    // ---- backward (training; distill.h). F32 weights only. Every gradient ACCUMULATES (+=) into its
    // output, as in llm.c, so a tensor read twice (residual streams, fused Q/K/V) sums its gradients; the
    // caller zeroes them once per step. Activations are the ones the forward op read, saved by the caller.
    // embedding gather: dword rows ids[t] += dx[t] (a sparse update: only the rows of the batch's ids),
    // dpos[p] += dx[off + p], dtype[0] += dx[t]; any of dword / dpos / dtype may be NULL (frozen)
    void (*embed_backward)(float *dword, float *dpos, float *dtype, const float *dx, const int32_t *ids, const int *off,
                           const int *len, int B, int C);
    // y (M, N) = x (M, K) W (N, K)^T + b:  dx (M, K) += dy W;  dw (N, K) += dy^T x;  db (N) += sum_m dy
    // (dx, dw, db may each be NULL: not needed)
    void (*linear_backward)(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int M, int N,
                            int K);
    // y = LayerNorm(z) * g + beta over rows of z (M, C) (z = x + r, saved by the caller):
    // dz += dL/dz, dg += sum_m dy * zhat, dbeta += sum_m dy   (mean / rstd recomputed from z)
    void (*layernorm_backward)(float *dz, float *dg, float *dbeta, const float *dy, const float *z, const float *g,
                               int M, int C, float eps);
    // y = gelu(x) (erf form): dx (n) += dy * gelu'(x)
    void (*gelu_backward)(float *dx, const float *x, const float *dy, size_t n);
    // attention (above) with per-head factors head_mask (H) on its output (NULL = all 1):
    // dqkv (Ntok, 3*H*D) += d/dqkv of sum(dout * out). The probabilities are recomputed from qkv (no
    // (len x len) matrices are kept between forward and backward). scratch as for attention, twice over.
    void (*attention_backward)(float *dqkv, const float *dout, const float *qkv, const int *off, const int *len, int B,
                               int H, int D, const float *head_mask, float *scratch, size_t scratch_floats);
    // out (B, C) = mean of x rows of each sequence: dx rows += dout[b] / len[b]
    void (*pool_backward)(float *dx, const float *dout, const int *off, const int *len, int B, int C);
    // y (B, C) = x / max(||x||_2, 1e-12) per row: dx += (dy - y (y . dy)) / ||x||
    void (*l2norm_backward)(float *dx, const float *dy, const float *x, int B, int C);

    // ---- optional: device backends (the CPU backends leave all of these NULL) -------------------------
    // When dev_alloc is set, the encoder keeps its workspace, its id / offset / length arrays and every
    // weight in memory from dev_alloc, and passes only such pointers to the ops above (see encoder_device.h).
    void *(*dev_alloc)(size_t bytes);                              // NULL on failure (seslm_fail message set)
    void (*dev_free)(void *p);
    int (*dev_upload)(void *dst, const void *src, size_t bytes);   // host -> device; 0 ok, else -1 + message
    int (*dev_download)(void *dst, const void *src, size_t bytes); // waits (0 bytes: only waits); also
                                                                   // reports failed queued work
    // dev gets a device copy of host in the backend's own layout (0 ok, else -1 + message); weight_free
    // releases it.
    int (*weight_upload)(seslm_weight *dev, const seslm_weight *host);
    void (*weight_free)(seslm_weight *dev);
    // y (M, N) rows = row (N); y (M, G*W): column group g *= mask[g] (0 writes zeros); mask in device memory
    void (*fill_rows)(float *y, const float *row, int M, int N);
    void (*scale_columns)(float *y, int M, int G, int W, const float *mask);
    // attention with a head mask (H) applied inside: a head with factor 0 does no work and writes zeros
    void (*attention_masked)(float *out, const float *qkv, const int *off, const int *len, int B, int H, int D,
                             const float *head_mask);
    // y = gelu(x W^T + b): linear followed by gelu, with the bias added in the GELU pass (also the fast CPU
    // backend: GELU on each finished tile)
    void (*linear_gelu)(float *y, const float *x, const seslm_weight *w, const float *b, int M);
    // record the ops queued by this thread between capture_begin and capture_end (none of them runs) into
    // a replayable graph (NULL + message on failure); replay runs it again; replay_free releases it
    int (*capture_begin)(void);
    void *(*capture_end)(void);
    int (*replay)(void *graph);
    void (*replay_free)(void *graph);

    // ---- optional: INT8 activations quantized where they are made (the fast CPU backend) -------------
    // add_layernorm, and each output row also quantized as the INT8 linear op quantizes its input (per
    // row: q = round(x * 127 / max|x|), s = max|x| / 127; q (M, ldq), ldq a multiple of 4 >= C, zero past
    // C): the next INT8 product skips its own pass over x (linear_q8in). Same bytes as the unfused pair.
    void (*add_layernorm_q8)(float *x, const float *r, const float *g, const float *beta, int M, int C, float eps,
                             int8_t *q, float *s, int ldq);
    // y = x W^T + b on INT8 weights (w->qscale set) from x already quantized (q, s, ldq as above); then GELU
    // when gelu is not 0. The same numbers as linear / linear_gelu on the x those rows came from.
    void (*linear_q8in)(float *y, const int8_t *q, const float *s, int ldq, const seslm_weight *w, const float *b,
                        int M, int gelu);
    // linear_q8in with GELU, and y's rows also quantized as above into (qy, sy, ldqy) for the INT8 product
    // that reads y next (the second FFN product): each row's max |y| comes out of the product's tiles, so
    // the quantization needs no pass of its own to find it. Same y, bytes and scales as linear_q8in then
    // seslm_quantize_rows.
    void (*linear_gelu_q8out)(float *y, int8_t *qy, float *sy, int ldqy, const int8_t *q, const float *s, int ldq,
                              const seslm_weight *w, const float *b, int M);
} seslm_backend;

/* Scratch floats that `attention` needs for batches whose longest sequence is max_len. */
size_t seslm_attention_scratch_floats(int max_len, int head_dim, int n_threads);
/* Scratch floats that `attention_backward` needs (the same for every CPU backend). */
size_t seslm_attention_backward_scratch_floats(int max_len, int head_dim, int n_threads);

/* "cpu" (fast: BLAS + SIMD + threads), "cpu-ref" (plain C), "cpu-devsim" (cpu-ref through the device code
 * path, for tests), "cuda" or "cuda-fp16" (only in a CUDA build with a visible device; otherwise NULL with a
 * seslm_fail message). NULL if unknown. */
const seslm_backend *seslm_backend_get(const char *name);
const seslm_backend *seslm_backend_cpu_ref(void);
const seslm_backend *seslm_backend_cpu_fast(void);
/* "cpu-devsim": cpu-ref with host memory as its device memory (kernels/cpu/devsim.c), so the encoder runs
 * its device code path with the reference ops: tests of that path on machines without a GPU. */
const seslm_backend *seslm_backend_cpu_devsim(void);

#endif
