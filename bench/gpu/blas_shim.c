/* blas_shim.c — a stand-in libopenblas.so.0 for the GPU bundle only (bench/gpu/bundle.sh).
 *
 * Why: the bundle must fit one device carry (64 MiB with the working tree), and Debian's OpenBLAS is
 * 35 MB (kernels for every CPU). On the device machine the CPU does no heavy BLAS work: the CPU
 * embeddings that test_embed_cuda.sh compares the GPU with are 4 sentences. So this is a plain,
 * correct, slow implementation of the few CBLAS entry points our libraries import (cblas_sgemm,
 * cblas_dgemm, cblas_dsymm, cblas_dsyrk, openblas_set_num_threads), every layout and transpose.
 * Never built into the product. */
#include <stddef.h>

enum { RowMajor = 101, ColMajor = 102, NoTrans = 111, Trans = 112, ConjTrans = 113, Upper = 121, Lower = 122,
       Left = 141, Right = 142 };

// element (i, j) of a matrix stored with leading dimension ld, possibly transposed, in either layout
#define AT(P, ld, i, j, order, tr)                                                                                \
    ((order) == RowMajor ? ((tr) == NoTrans ? (P)[(size_t)(i) * (ld) + (j)] : (P)[(size_t)(j) * (ld) + (i)])     \
                         : ((tr) == NoTrans ? (P)[(size_t)(i) + (size_t)(j) * (ld)] : (P)[(size_t)(j) + (size_t)(i) * (ld)]))
#define CAT(P, ld, i, j, order) (*((order) == RowMajor ? &(P)[(size_t)(i) * (ld) + (j)] : &(P)[(size_t)(i) + (size_t)(j) * (ld)]))

void openblas_set_num_threads(int n) { (void)n; }

#define GEMM(NAME, T)                                                                                           \
    void NAME(int order, int ta, int tb, int M, int N, int K, T alpha, const T *A, int lda, const T *B, int ldb, \
              T beta, T *C, int ldc) {                                                                          \
        for (int i = 0; i < M; i++)                                                                             \
            for (int j = 0; j < N; j++) {                                                                       \
                double s = 0;                                                                                   \
                for (int k = 0; k < K; k++) s += (double)AT(A, lda, i, k, order, ta) * AT(B, ldb, k, j, order, tb); \
                T *c = &CAT(C, ldc, i, j, order);                                                               \
                *c = (T)(alpha * s + (beta == 0 ? 0 : beta * *c));                                              \
            }                                                                                                   \
    }
GEMM(cblas_sgemm, float)
GEMM(cblas_dgemm, double)

// symmetric A (only the `uplo` triangle is read): C = alpha A B + beta C (Left) or alpha B A + beta C (Right)
static double sym(int order, int uplo, const double *A, int lda, int i, int j) {
    int up = (uplo == Upper) ? (i <= j) : (i >= j);
    return up ? AT(A, lda, i, j, order, NoTrans) : AT(A, lda, j, i, order, NoTrans);
}
void cblas_dsymm(int order, int side, int uplo, int M, int N, double alpha, const double *A, int lda,
                 const double *B, int ldb, double beta, double *C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            if (side == Left)
                for (int k = 0; k < M; k++) s += sym(order, uplo, A, lda, i, k) * AT(B, ldb, k, j, order, NoTrans);
            else
                for (int k = 0; k < N; k++) s += AT(B, ldb, i, k, order, NoTrans) * sym(order, uplo, A, lda, k, j);
            double *c = &CAT(C, ldc, i, j, order);
            *c = alpha * s + (beta == 0 ? 0 : beta * *c);
        }
}
// C = alpha op(A) op(A)^T + beta C on the `uplo` triangle; op(A) is N x K (NoTrans) or A^T (Trans)
void cblas_dsyrk(int order, int uplo, int trans, int N, int K, double alpha, const double *A, int lda, double beta,
                 double *C, int ldc) {
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            if ((uplo == Upper) ? (i > j) : (i < j)) continue;
            double s = 0;
            for (int k = 0; k < K; k++) s += AT(A, lda, i, k, order, trans) * AT(A, lda, j, k, order, trans);
            double *c = &CAT(C, ldc, i, j, order);
            *c = alpha * s + (beta == 0 ? 0 : beta * *c);
        }
}

// LAPACKE_dposv (liblapacke.so.3, imported by the evolve library): the least-squares reconstruction never
// runs on the device machine, so the stand-in refuses with an error code instead of solving.
int LAPACKE_dposv(int order, char uplo, int n, int nrhs, double *a, int lda, double *b, int ldb) {
    (void)order, (void)uplo, (void)n, (void)nrhs, (void)a, (void)lda, (void)b, (void)ldb;
    return -1010;  // LAPACK_WORK_MEMORY_ERROR: "could not run"
}
