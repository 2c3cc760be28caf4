// backward.cu — the backward ops of backend.h on the device: the products of linear_backward through
// cuBLAS (FP32, default math: no TF32), the rest as plain kernels. Same math as kernels/cpu/ref_backward.c
// (the oracle of tests/unit/test_backward_cuda.c); every gradient accumulates (+=). Where several threads
// add into one element (embedding rows of repeated ids, K / V rows shared by every query) the sums use
// atomicAdd: correct, not bit-reproducible from run to run (the CPU backends are).
#include "cuda_common.cuh"

#include <cublas_v2.h>
#include <math.h>
#include <stdio.h>

static thread_local cublasHandle_t t_bw_handle;

static cublasHandle_t bw_handle(void) {
    if (!t_bw_handle && cublasCreate(&t_bw_handle) != CUBLAS_STATUS_SUCCESS) {
        seslm_cuda_note(cudaErrorUnknown, "cublasCreate (backward)", __FILE__, __LINE__);
        t_bw_handle = NULL;
        return NULL;
    }
    if (cublasSetStream(t_bw_handle, cu_stream()) != CUBLAS_STATUS_SUCCESS) {
        seslm_cuda_note(cudaErrorUnknown, "cublasSetStream (backward)", __FILE__, __LINE__);
        return NULL;
    }
    return t_bw_handle;
}

static void blas_ok(cublasStatus_t s, const char *what) {
    if (s == CUBLAS_STATUS_SUCCESS) return;
    char msg[160];
    snprintf(msg, sizeof msg, "%s: cuBLAS status %d", what, (int)s);
    seslm_cuda_note(cudaErrorUnknown, msg, __FILE__, __LINE__);
}

// ---- embedding gather ----------------------------------------------------------------------------

// one block per token, threads over C
__global__ void embed_bw_kernel(float *dword, float *dpos, float *dtype, const float *dx, const int32_t *ids,
                                const int *tok_seq_pos, int C) {
    const int t = blockIdx.x, p = tok_seq_pos[t];
    const float *g = dx + (size_t)t * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        if (dword) atomicAdd(&dword[(size_t)ids[t] * C + c], g[c]);
        if (dpos) atomicAdd(&dpos[(size_t)p * C + c], g[c]);
        if (dtype) atomicAdd(&dtype[c], g[c]);
    }
}

// position of every token inside its sequence (one block per sequence)
__global__ void token_positions_kernel(int *pos, const int *off, const int *len) {
    const int b = blockIdx.x;
    for (int p = threadIdx.x; p < len[b]; p += blockDim.x) pos[off[b] + p] = p;
}

extern "C" void seslm_cuda_embed_backward(float *dword, float *dpos, float *dtype, const float *dx, const int32_t *ids,
                                          const int *off, const int *len, int B, int C, int ntok) {
    if (B <= 0 || ntok <= 0) return;
    int *pos = (int *)seslm_cuda_scratch((size_t)ntok * sizeof(int));
    if (!pos) return;
    token_positions_kernel<<<B, 128, 0, cu_stream()>>>(pos, off, len);
    cudaCheckLaunch("token_positions_kernel");
    embed_bw_kernel<<<ntok, 128, 0, cu_stream()>>>(dword, dpos, dtype, dx, ids, pos, C);
    cudaCheckLaunch("embed_bw_kernel");
}

// ---- linear --------------------------------------------------------------------------------------

// db (N) += column sums of dy (M, N): one thread per column (coalesced rows)
__global__ void colsum_add_kernel(float *db, const float *dy, int M, int N) {
    const int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= N) return;
    float acc = 0;
    for (int m = 0; m < M; m++) acc += dy[(size_t)m * N + n];
    db[n] += acc;
}

extern "C" void seslm_cuda_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                                           const float *w, int M, int N, int K) {
    if (M <= 0 || N <= 0) return;
    const float one = 1.0f;
    if (K > 0 && (dx || dw)) {
        cublasHandle_t h = bw_handle();
        if (!h) return;
        // row-major dx (M, K) += dy (M, N) W (N, K): column-major dx^T (K, M) += W^T (K, N) dy^T (N, M)
        if (dx) blas_ok(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, K, M, N, &one, w, K, dy, N, &one, dx, K), "sgemm dx");
        // row-major dw (N, K) += dy^T (N, M) x (M, K): column-major dw^T (K, N) += x^T (K, M) dy (M, N)
        if (dw) blas_ok(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, K, N, M, &one, x, K, dy, N, &one, dw, K), "sgemm dw");
    }
    if (db) {
        colsum_add_kernel<<<cu_blocks((size_t)N, 128), 128, 0, cu_stream()>>>(db, dy, M, N);
        cudaCheckLaunch("colsum_add_kernel");
    }
}

// ---- layernorm -----------------------------------------------------------------------------------

// one warp per row: mean / rstd (kept in stat for the column pass) and dz
__global__ void ln_bw_rows_kernel(float *dz, float *stat, const float *dy, const float *z, const float *g, int M, int C,
                                  float eps) {
    const int m = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (m >= M) return;
    const float *zr = z + (size_t)m * C, *dyr = dy + (size_t)m * C;
    float s = 0;
    for (int c = lane; c < C; c += 32) s += zr[c];
    const float mean = warp_sum(s) / C;
    float v = 0;
    for (int c = lane; c < C; c += 32) v += (zr[c] - mean) * (zr[c] - mean);
    const float rstd = rsqrtf(warp_sum(v) / C + eps);
    if (lane == 0) stat[2 * m] = mean, stat[2 * m + 1] = rstd;
    if (!dz) return;
    float s1 = 0, s2 = 0;
    for (int c = lane; c < C; c += 32) {
        const float zh = (zr[c] - mean) * rstd, dzh = dyr[c] * g[c];
        s1 += dzh;
        s2 += dzh * zh;
    }
    s1 = warp_sum(s1) / C, s2 = warp_sum(s2) / C;
    for (int c = lane; c < C; c += 32)
        dz[(size_t)m * C + c] += rstd * (dyr[c] * g[c] - s1 - (zr[c] - mean) * rstd * s2);
}

// dg, dbeta: one thread per column
__global__ void ln_bw_cols_kernel(float *dg, float *dbeta, const float *stat, const float *dy, const float *z, int M, int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float ag = 0, ab = 0;
    for (int m = 0; m < M; m++) {
        const float d = dy[(size_t)m * C + c];
        ag += d * (z[(size_t)m * C + c] - stat[2 * m]) * stat[2 * m + 1];
        ab += d;
    }
    if (dg) dg[c] += ag;
    if (dbeta) dbeta[c] += ab;
}

extern "C" void seslm_cuda_layernorm_backward(float *dz, float *dg, float *dbeta, const float *dy, const float *z,
                                              const float *g, int M, int C, float eps) {
    if (M <= 0 || C <= 0) return;
    float *stat = (float *)seslm_cuda_scratch(2 * (size_t)M * sizeof(float));
    if (!stat) return;
    ln_bw_rows_kernel<<<cu_blocks((size_t)M, 4), 128, 0, cu_stream()>>>(dz, stat, dy, z, g, M, C, eps);
    cudaCheckLaunch("ln_bw_rows_kernel");
    if (dg || dbeta) {
        ln_bw_cols_kernel<<<cu_blocks((size_t)C, 128), 128, 0, cu_stream()>>>(dg, dbeta, stat, dy, z, M, C);
        cudaCheckLaunch("ln_bw_cols_kernel");
    }
}

// ---- GELU ----------------------------------------------------------------------------------------

__global__ void gelu_bw_kernel(float *dx, const float *x, const float *dy, size_t n) {
    const float k = 0.3989422804014327f; // 1 / sqrt(2 pi)
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float v = x[i];
        dx[i] += dy[i] * (0.5f * (1.0f + erff(v * 0.7071067811865476f)) + v * expf(-0.5f * v * v) * k);
    }
}

extern "C" void seslm_cuda_gelu_backward(float *dx, const float *x, const float *dy, size_t n) {
    if (!n) return;
    const unsigned g = cu_blocks(n, 256);
    gelu_bw_kernel<<<g < 8192 ? g : 8192, 256, 0, cu_stream()>>>(dx, x, dy, n);
    cudaCheckLaunch("gelu_bw_kernel");
}

// ---- attention -----------------------------------------------------------------------------------

/* One warp per (sequence, head, query i); lane holds dims lane and lane + 32 (D <= 64). Three passes
 * over the keys recompute the scores: max / sum, then sum_j p_j dp_j, then the gradients:
 * dq_i += sum_j ds_j k_j (this warp's own row), dk_j += ds_j q_i and dv_j += p_j do_i (shared with the
 * other queries: atomicAdd). */
__global__ void attention_bw_kernel(float *dqkv, const float *dout, const float *qkv, const int *off, const int *len,
                                    int H, int D, const float *head_mask, const int *qrow_seq, int ntok) {
    const int w = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (w >= ntok * H) return;
    const int t = w / H, h = w % H, b = qrow_seq[t];
    const float hm = head_mask ? head_mask[h] : 1.0f;
    if (hm == 0.0f) return;
    const int HD = H * D, S = 3 * HD, L = len[b];
    const float scale = rsqrtf((float)D);
    const float *q = qkv + (size_t)t * S + h * D, *go = dout + (size_t)t * HD + h * D;
    const float q0 = lane < D ? q[lane] : 0.0f, q1 = lane + 32 < D ? q[lane + 32] : 0.0f;
    const float g0 = lane < D ? go[lane] * hm : 0.0f, g1 = lane + 32 < D ? go[lane + 32] * hm : 0.0f;
    const float *kbase = qkv + (size_t)off[b] * S + HD + h * D, *vbase = qkv + (size_t)off[b] * S + 2 * HD + h * D;
    float mx = -INFINITY, sum = 0;
    for (int j = 0; j < L; j++) {
        const float *k = kbase + (size_t)j * S;
        const float s = warp_sum(q0 * (lane < D ? k[lane] : 0.0f) + q1 * (lane + 32 < D ? k[lane + 32] : 0.0f)) * scale;
        const float nm = fmaxf(mx, s);
        sum = sum * expf(mx - nm) + expf(s - nm);
        mx = nm;
    }
    float pdp = 0;
    for (int j = 0; j < L; j++) {
        const float *k = kbase + (size_t)j * S, *v = vbase + (size_t)j * S;
        const float s = warp_sum(q0 * (lane < D ? k[lane] : 0.0f) + q1 * (lane + 32 < D ? k[lane + 32] : 0.0f)) * scale;
        const float dp = warp_sum(g0 * (lane < D ? v[lane] : 0.0f) + g1 * (lane + 32 < D ? v[lane + 32] : 0.0f));
        pdp += expf(s - mx) / sum * dp;
    }
    float dq0 = 0, dq1 = 0;
    float *dkbase = dqkv + (size_t)off[b] * S + HD + h * D, *dvbase = dqkv + (size_t)off[b] * S + 2 * HD + h * D;
    for (int j = 0; j < L; j++) {
        const float *k = kbase + (size_t)j * S, *v = vbase + (size_t)j * S;
        const float k0 = lane < D ? k[lane] : 0.0f, k1 = lane + 32 < D ? k[lane + 32] : 0.0f;
        const float s = warp_sum(q0 * k0 + q1 * k1) * scale;
        const float dp = warp_sum(g0 * (lane < D ? v[lane] : 0.0f) + g1 * (lane + 32 < D ? v[lane + 32] : 0.0f));
        const float p = expf(s - mx) / sum, ds = p * (dp - pdp) * scale;
        dq0 += ds * k0, dq1 += ds * k1;
        float *dk = dkbase + (size_t)j * S, *dv = dvbase + (size_t)j * S;
        if (lane < D) atomicAdd(&dk[lane], ds * q0), atomicAdd(&dv[lane], p * g0);
        if (lane + 32 < D) atomicAdd(&dk[lane + 32], ds * q1), atomicAdd(&dv[lane + 32], p * g1);
    }
    float *dq = dqkv + (size_t)t * S + h * D;
    if (lane < D) dq[lane] += dq0;
    if (lane + 32 < D) dq[lane + 32] += dq1;
}

// sequence of every token (one block per sequence)
__global__ void token_seq_kernel(int *seq, const int *off, const int *len) {
    const int b = blockIdx.x;
    for (int p = threadIdx.x; p < len[b]; p += blockDim.x) seq[off[b] + p] = b;
}

extern "C" void seslm_cuda_attention_backward(float *dqkv, const float *dout, const float *qkv, const int *off,
                                              const int *len, int B, int H, int D, const float *head_mask, int ntok) {
    if (B <= 0 || H <= 0 || ntok <= 0) return;
    if (D > 64) {
        seslm_cuda_note(cudaErrorInvalidValue, "cuda attention backward: head_dim > 64", __FILE__, __LINE__);
        return;
    }
    int *seq = (int *)seslm_cuda_scratch((size_t)ntok * sizeof(int));
    if (!seq) return;
    token_seq_kernel<<<B, 128, 0, cu_stream()>>>(seq, off, len);
    cudaCheckLaunch("token_seq_kernel");
    const size_t warps = (size_t)ntok * H;
    attention_bw_kernel<<<cu_blocks(warps, 4), 128, 0, cu_stream()>>>(dqkv, dout, qkv, off, len, H, D, head_mask, seq, ntok);
    cudaCheckLaunch("attention_bw_kernel");
}

// ---- pooling, L2 normalisation -------------------------------------------------------------------

__global__ void pool_bw_kernel(float *dx, const float *dout, const int *off, const int *len, int C) {
    const int b = blockIdx.x;
    const float inv = 1.0f / (float)len[b];
    for (int i = threadIdx.x; i < len[b] * C; i += blockDim.x) {
        const int p = i / C, c = i % C;
        dx[(size_t)(off[b] + p) * C + c] += dout[(size_t)b * C + c] * inv;
    }
}

extern "C" void seslm_cuda_pool_backward(float *dx, const float *dout, const int *off, const int *len, int B, int C) {
    if (B <= 0) return;
    pool_bw_kernel<<<B, 256, 0, cu_stream()>>>(dx, dout, off, len, C);
    cudaCheckLaunch("pool_bw_kernel");
}

// one warp per row
__global__ void l2norm_bw_kernel(float *dx, const float *dy, const float *x, int B, int C) {
    const int b = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (b >= B) return;
    const float *xr = x + (size_t)b * C, *g = dy + (size_t)b * C;
    float n2 = 0, xg = 0;
    for (int c = lane; c < C; c += 32) n2 += xr[c] * xr[c], xg += xr[c] * g[c];
    n2 = warp_sum(n2), xg = warp_sum(xg);
    const float n = sqrtf(n2);
    for (int c = lane; c < C; c += 32)
        dx[(size_t)b * C + c] += n <= 1e-12f ? g[c] / 1e-12f : (g[c] - xr[c] * xg / n2) / n;
}

extern "C" void seslm_cuda_l2norm_backward(float *dx, const float *dy, const float *x, int B, int C) {
    if (B <= 0) return;
    l2norm_bw_kernel<<<cu_blocks((size_t)B, 4), 128, 0, cu_stream()>>>(dx, dy, x, B, C);
    cudaCheckLaunch("l2norm_bw_kernel");
}
