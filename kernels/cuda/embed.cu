// embed.cu — embedding gather: x[t] = word[ids[t]] + pos[p] + type[0] over a packed ragged batch.
// Grid (B, 16): block (b, y) handles positions y, y + 16, ... of sequence b; threads run over C, so
// every row read and written is coalesced. The word row is F32, or (compressed table) INT8 times its
// row scale (or 4-bit rows, two per byte; or product-quantized centroids, backend.h) unless the id is one of the frequent ids kept exact. Rounding as ref.c: (w + pos) + type,
// the dequantisation product rounded on its own (no fused multiply-add), so results match bit for bit.
#include "cuda_common.cuh"

__global__ void embed_kernel(float *x, const int32_t *ids, const int *off, const int *len, seslm_embedding w,
                             const float *pos, const float *type, int C) {
    const int b = blockIdx.x, L = len[b], o = off[b];
    for (int p = blockIdx.y; p < L; p += gridDim.y) {
        const int t = o + p, id = ids[t];
        const float *src = NULL;
        const int8_t *q = NULL;
        const uint8_t *q4 = NULL, *code = NULL;
        float s = 0.0f;
        if (w.f32) src = w.f32 + (size_t)id * C;
        else if (w.exact_slot[id] >= 0) src = w.exact + (size_t)w.exact_slot[id] * C;
        else {
            const int row = w.row_slot ? w.row_slot[id] : id;
            if (row < 0) code = w.pq_codes + (size_t)(-1 - row) * (C / w.pq_dim);
            else if (w.q4) q4 = w.q4 + (size_t)row * (C / 2), s = w.scale[row];
            else q = w.q + (size_t)row * C, s = w.scale[row];
        }
        const float *pr = pos + (size_t)p * C;
        float *xr = x + (size_t)t * C;
        for (int c = threadIdx.x; c < C; c += blockDim.x) {
            float v;
            if (code) { // product-quantized row (backend.h): sub-vector c / d, its centroid's column c % d
                const int d = w.pq_dim, sv = c / d;
                v = w.pq_book[((size_t)sv * 256 + code[sv]) * d + (c - sv * d)];
            } else if (q4) {
                const int nib = (q4[c >> 1] >> ((c & 1) * 4)) & 0xF;
                v = __fmul_rn((float)(nib >= 8 ? nib - 16 : nib), s);
            } else {
                v = q ? __fmul_rn((float)q[c], s) : src[c];
            }
            xr[c] = __fadd_rn(__fadd_rn(v, pr[c]), type[c]);
        }
    }
}

extern "C" void seslm_cuda_embed(float *x, const int32_t *ids, const int *off, const int *len, int B,
                                 const seslm_embedding *word, const float *pos, const float *type, int C) {
    if (B <= 0) return;
    embed_kernel<<<dim3((unsigned)B, 16), 128, 0, cu_stream()>>>(x, ids, off, len, *word, pos, type, C);
    cudaCheckLaunch("embed_kernel");
}
