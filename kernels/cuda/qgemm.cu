// qgemm.cu — INT8 GEMM with int32 accumulation and fused dequantization:
//     y[m, n] = (sum_k qa[m, k] qw[n, k]) * (sa[m] * sw[n]) + b[n]
// qa (M, Kp) row-major and qw (N, Kp) row-major ("col" operand of mma: each output channel's K run is
// contiguous), Kp a multiple of 32, zero-padded. The int32 sums are exact, so they equal
// seslm_qgemm_ref bit for bit; the epilogue rounds each product and the sum on its own (__fmul_rn,
// __fadd_rn) exactly as ref.c writes it, so y matches the C reference bit for bit too.
//
// Tensor-core kernel: block tile 64 x 64, K step 32, 4 warps each owning a 32 x 32 sub-tile
// (2 x 4 mma.sync.m16n8k32.s8 per K step, 32 int32 accumulators per thread). Tiles go global ->
// registers (16-byte loads) -> shared memory, double-buffered: the next tile's loads are issued before
// the current tile's mma. Shared rows are 48 bytes (32 + 16 of padding): the fragment reads of a warp
// (row g, word tig) then hit 32 different banks, and 16-byte stores stay aligned.
// Fragment layouts (PTX ISA, mma.m16n8k32 .s8): g = lane / 4, tig = lane % 4;
//   A regs: (row g, k 4tig..+3), (row g+8, same k), (row g, k 16+4tig..), (row g+8, k 16+4tig..)
//   B regs: (n g, k 4tig..+3), (n g, k 16+4tig..)
//   C regs: (row g, n 2tig), (row g, n 2tig+1), (row g+8, n 2tig), (row g+8, n 2tig+1)
#include "cuda_common.cuh"

#define QG_BM 64
#define QG_BN 64
#define QG_BK 32
#define QG_LDS 48

__device__ __forceinline__ void qg_store(int32_t *acc, float *y, const float *sa, const float *sw, const float *b,
                                         int M, int N, int m, int n, int32_t v) {
    if (m >= M || n >= N) return;
    if (acc) acc[(size_t)m * N + n] = v;
    else y[(size_t)m * N + n] = __fadd_rn(__fmul_rn((float)v, __fmul_rn(sa[m], sw[n])), b ? b[n] : 0.0f);
}

__global__ void __launch_bounds__(128) qgemm_mma_kernel(int32_t *acc, float *y, const int8_t *A, const float *sa,
                                                        const int8_t *Bw, const float *sw, const float *bias, int M,
                                                        int N, int Kp) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    __shared__ __align__(16) int8_t As[2][QG_BM * QG_LDS];
    __shared__ __align__(16) int8_t Bs[2][QG_BN * QG_LDS];
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, tig = lane & 3;
    const int m0 = blockIdx.y * QG_BM, n0 = blockIdx.x * QG_BN;
    const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
    // loader: 128 threads x 16 bytes = one 64 x 32 tile of A and one of B
    const int lr = tid >> 1, lc = (tid & 1) * 16;
    const bool aok = m0 + lr < M, bok = n0 + lr < N;
    const int8_t *Ag = A + (size_t)(aok ? m0 + lr : 0) * Kp + lc;
    const int8_t *Bg = Bw + (size_t)(bok ? n0 + lr : 0) * Kp + lc;
    const int4 zero = make_int4(0, 0, 0, 0);
    int4 ra = aok ? *(const int4 *)Ag : zero, rb = bok ? *(const int4 *)Bg : zero;
    int32_t c[2][4][4];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int k = 0; k < 4; k++) c[i][j][k] = 0;
    const int nk = Kp / QG_BK;
    for (int kt = 0; kt < nk; kt++) {
        const int buf = kt & 1;
        *(int4 *)&As[buf][lr * QG_LDS + lc] = ra;
        *(int4 *)&Bs[buf][lr * QG_LDS + lc] = rb;
        __syncthreads();
        if (kt + 1 < nk) { // next tile in flight while this one is multiplied
            ra = aok ? *(const int4 *)(Ag + (size_t)(kt + 1) * QG_BK) : zero;
            rb = bok ? *(const int4 *)(Bg + (size_t)(kt + 1) * QG_BK) : zero;
        }
        const int8_t *as = As[buf], *bs = Bs[buf];
        uint32_t af[2][4], bf[4][2];
#pragma unroll
        for (int mi = 0; mi < 2; mi++) {
            const int r = wm + mi * 16 + g;
            af[mi][0] = *(const uint32_t *)(as + r * QG_LDS + tig * 4);
            af[mi][1] = *(const uint32_t *)(as + (r + 8) * QG_LDS + tig * 4);
            af[mi][2] = *(const uint32_t *)(as + r * QG_LDS + 16 + tig * 4);
            af[mi][3] = *(const uint32_t *)(as + (r + 8) * QG_LDS + 16 + tig * 4);
        }
#pragma unroll
        for (int ni = 0; ni < 4; ni++) {
            const int n = wn + ni * 8 + g;
            bf[ni][0] = *(const uint32_t *)(bs + n * QG_LDS + tig * 4);
            bf[ni][1] = *(const uint32_t *)(bs + n * QG_LDS + 16 + tig * 4);
        }
#pragma unroll
        for (int mi = 0; mi < 2; mi++)
#pragma unroll
            for (int ni = 0; ni < 4; ni++)
                asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 "
                             "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                             : "+r"(c[mi][ni][0]), "+r"(c[mi][ni][1]), "+r"(c[mi][ni][2]), "+r"(c[mi][ni][3])
                             : "r"(af[mi][0]), "r"(af[mi][1]), "r"(af[mi][2]), "r"(af[mi][3]), "r"(bf[ni][0]),
                               "r"(bf[ni][1]));
        // no second barrier: the next iteration writes the other buffer, and the one after that
        // passes the next iteration's barrier first, after every warp finished reading this one
    }
#pragma unroll
    for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int ni = 0; ni < 4; ni++) {
            const int m = m0 + wm + mi * 16 + g, n = n0 + wn + ni * 8 + tig * 2;
            qg_store(acc, y, sa, sw, bias, M, N, m, n, c[mi][ni][0]);
            qg_store(acc, y, sa, sw, bias, M, N, m, n + 1, c[mi][ni][1]);
            qg_store(acc, y, sa, sw, bias, M, N, m + 8, n, c[mi][ni][2]);
            qg_store(acc, y, sa, sw, bias, M, N, m + 8, n + 1, c[mi][ni][3]);
        }
#endif
}

// The plain version: one thread per output, 4 bytes of K at a time. The reference the tensor-core
// kernel is checked against on the GPU, and the fallback for shapes it does not take.
__global__ void qgemm_simple_kernel(int32_t *acc, float *y, const int8_t *A, const float *sa, const int8_t *Bw,
                                    const float *sw, const float *bias, int M, int N, int Kp) {
    const int n = blockIdx.y * blockDim.x + threadIdx.x, m = blockIdx.x; // M on x: up to 2^31 - 1 rows
    if (n >= N || m >= M) return;
    const int8_t *a = A + (size_t)m * Kp, *w = Bw + (size_t)n * Kp;
    int32_t s = 0;
    for (int k = 0; k < Kp; k++) s += (int32_t)a[k] * (int32_t)w[k];
    qg_store(acc, y, sa, sw, bias, M, N, m, n, s);
}

// The epilogue alone, over int32 sums another product wrote (cuBLAS's INT8 GEMM): the same qg_store, so y is
// bit-identical to the fused kernels'.
__global__ void qgemm_dequant_kernel(float *y, const int32_t *acc, const float *sa, const float *sw, const float *bias,
                                     int M, int N) {
    const int n = blockIdx.y * blockDim.x + threadIdx.x, m = blockIdx.x;
    if (n >= N || m >= M) return;
    qg_store(NULL, y, sa, sw, bias, M, N, m, n, acc[(size_t)m * N + n]);
}

extern "C" void seslm_cuda_qgemm_dequant(float *y, const int32_t *acc, const float *sa, const float *sw, const float *b,
                                         int M, int N) {
    if (M <= 0 || N <= 0) return;
    const dim3 grid((unsigned)M, cu_blocks((size_t)N, 128));
    qgemm_dequant_kernel<<<grid, 128, 0, cu_stream()>>>(y, acc, sa, sw, b, M, N);
    cudaCheckLaunch("qgemm_dequant_kernel");
}

static int qgemm_args_ok(const char *who, int M, int N, int Kp) {
    if (M < 0 || N < 0 || Kp < 0 || Kp % 32 != 0) {
        seslm_cuda_note(cudaErrorInvalidValue, who, __FILE__, __LINE__); // "Kp must be a multiple of 32"
        return 0;
    }
    return M > 0 && N > 0;
}

extern "C" void seslm_cuda_qgemm(int32_t *acc, float *y, const int8_t *qa, const float *sa, const int8_t *qw,
                                 const float *sw, const float *b, int M, int N, int Kp) {
    if (!qgemm_args_ok("seslm_cuda_qgemm (Kp must be a multiple of 32)", M, N, Kp)) return;
    const dim3 grid(cu_blocks((size_t)N, QG_BN), cu_blocks((size_t)M, QG_BM));
    qgemm_mma_kernel<<<grid, 128, 0, cu_stream()>>>(acc, y, qa, sa, qw, sw, b, M, N, Kp);
    cudaCheckLaunch("qgemm_mma_kernel");
}

extern "C" void seslm_cuda_qgemm_simple(int32_t *acc, float *y, const int8_t *qa, const float *sa, const int8_t *qw,
                                        const float *sw, const float *b, int M, int N, int Kp) {
    if (!qgemm_args_ok("seslm_cuda_qgemm_simple (Kp must be a multiple of 32)", M, N, Kp)) return;
    const dim3 grid((unsigned)M, cu_blocks((size_t)N, 128));
    qgemm_simple_kernel<<<grid, 128, 0, cu_stream()>>>(acc, y, qa, sa, qw, sw, b, M, N, Kp);
    cudaCheckLaunch("qgemm_simple_kernel");
}
