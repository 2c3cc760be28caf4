// linear_cublas.cu — the FP32 and FP16 linear layers through cuBLAS: the BASELINE matrix products
// (no hand-written FP32/FP16 GEMM here). Row-major y (M, N) = x (M, K) W (N, K)^T is, in cuBLAS's
// column-major view, y^T (N, M) = W (N, K) . x^T (K, M): gemm(T, N) with W as the first operand.
// The bias is broadcast into y first and the product added with beta = 1 (one fewer pass over y than
// a separate bias kernel after the product). FP32 runs in CUBLAS_DEFAULT_MATH (true FP32, no TF32),
// so it matches the double-accumulating reference to ~1e-6; FP16 rounds x and W to half.
// One cuBLAS handle per host thread (created on first use, bound to that thread's stream, with its own
// workspace; both kept for the thread's lifetime).
#include "cuda_common.cuh"

#include <cublas_v2.h>
#include <cuda_fp16.h>

#include <stdio.h>

static thread_local cublasHandle_t t_handle;

static int blas_check(cublasStatus_t s, const char *what) {
    if (s == CUBLAS_STATUS_SUCCESS) return 0;
    char msg[160];
    snprintf(msg, sizeof msg, "%s: cuBLAS status %d", what, (int)s);
    seslm_cuda_note(cudaErrorUnknown, msg, __FILE__, __LINE__);
    return -1;
}

static thread_local void *t_workspace;

static cublasHandle_t blas_handle(void) {
    if (!t_handle) {
        if (blas_check(cublasCreate(&t_handle), "cublasCreate") != 0) {
            t_handle = NULL;
            return NULL;
        }
        // our own workspace: cuBLAS then allocates nothing inside a CUDA graph capture (32 MiB: what
        // NVIDIA suggests for Hopper); without it cuBLAS falls back to its default
        const size_t ws = (size_t)32 << 20;
        if (cudaMalloc(&t_workspace, ws) == cudaSuccess) blas_check(cublasSetWorkspace(t_handle, t_workspace, ws), "cublasSetWorkspace");
        else cudaGetLastError(), t_workspace = NULL;
    }
    if (blas_check(cublasSetStream(t_handle, cu_stream()), "cublasSetStream") != 0) return NULL;
    return t_handle;
}

__global__ void f32_to_f16_kernel(__half *dst, const float *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __float2half_rn(src[i]);
}

extern "C" void seslm_cuda_f32_to_f16(void *dst, const float *src, size_t n) {
    if (!n) return;
    unsigned g = cu_blocks(n, 256);
    f32_to_f16_kernel<<<g < 4096 ? g : 4096, 256, 0, cu_stream()>>>((__half *)dst, src, n);
    cudaCheckLaunch("f32_to_f16_kernel");
}

extern "C" void seslm_cuda_linear_f32(float *y, const float *x, const float *w, const float *b, int M, int N, int K) {
    if (M <= 0 || N <= 0) return;
    cublasHandle_t h = blas_handle();
    if (!h) return;
    if (b) seslm_cuda_fill_rows(y, b, M, N);
    const float one = 1.0f, beta = b ? 1.0f : 0.0f;
    blas_check(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, w, K, x, K, &beta, y, N), "cublasSgemm");
}

extern "C" void seslm_cuda_linear_f16(float *y, const float *x, const void *w16, const float *b, int M, int N, int K) {
    if (M <= 0 || N <= 0) return;
    cublasHandle_t h = blas_handle();
    if (!h) return;
    __half *x16 = (__half *)seslm_cuda_scratch((size_t)M * K * sizeof(__half));
    if (!x16) return;
    seslm_cuda_f32_to_f16(x16, x, (size_t)M * K);
    if (b) seslm_cuda_fill_rows(y, b, M, N);
    const float one = 1.0f, beta = b ? 1.0f : 0.0f;
    blas_check(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, w16, CUDA_R_16F, K, x16, CUDA_R_16F, K, &beta,
                            y, CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx (FP16)");
}

// The cuBLAS INT8 product (the baseline the mma kernel is compared with): acc (M, N) int32 = qa (M, Kp)
// qw (N, Kp)^T, the "TN" int8 layout cuBLAS requires (leading dimensions multiples of 4: Kp is a
// multiple of 32). No dequantization: the comparison is of the int32 products alone.
extern "C" void seslm_cuda_qgemm_cublas(int32_t *acc, const int8_t *qa, const int8_t *qw, int M, int N, int Kp) {
    if (M <= 0 || N <= 0) return;
    cublasHandle_t h = blas_handle();
    if (!h) return;
    const int32_t one = 1, zero = 0;
    blas_check(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, Kp, &one, qw, CUDA_R_8I, Kp, qa, CUDA_R_8I, Kp, &zero, acc,
                            CUDA_R_32I, N, CUBLAS_COMPUTE_32I, CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx (INT8)");
}

// The INT8 layer through cuBLAS: its INT8 GEMM (IMMA tensor cores; measured 1.7-3.7x faster than our mma.sync
// kernel at MiniLM's shapes on the H200, bench/RESULTS.md 6) writes the int32 sums to acc_ws (M, N, device
// scratch), then seslm_cuda_qgemm_dequant applies the fused kernels' epilogue: y is bit-identical to
// seslm_cuda_qgemm's. cuBLAS INT8 wants N a multiple of 4 (callers check).
extern "C" void seslm_cuda_qgemm_cublas_dq(int32_t *acc_ws, float *y, const int8_t *qa, const float *sa,
                                           const int8_t *qw, const float *sw, const float *b, int M, int N, int Kp) {
    if (M <= 0 || N <= 0) return;
    seslm_cuda_qgemm_cublas(acc_ws, qa, qw, M, N, Kp);
    seslm_cuda_qgemm_dequant(y, acc_ws, sa, sw, b, M, N);
}
