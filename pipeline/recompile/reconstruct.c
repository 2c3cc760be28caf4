/* reconstruct.c — least-squares refit of a pruned projection on calibration statistics (reconstruct.h). */
#include "reconstruct.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef SESLM_HAVE_OPENBLAS
#include <cblas.h>
#endif
#ifdef SESLM_HAVE_LAPACKE
#include <lapacke.h>
#endif

static double gram_at(const double *G, int K1, int i, int j) { // symmetric, upper triangle stored
    return i <= j ? G[(size_t)i * K1 + j] : G[(size_t)j * K1 + i];
}

#ifndef SESLM_HAVE_LAPACKE
// The plain-C solve (the reference; used when LAPACKE is not there):
// in-place Cholesky of the SPD (n, n) matrix a (lower triangle = L). 0 when not positive definite.
static int cholesky(double *a, int n) {
    for (int j = 0; j < n; j++) {
        double d = a[(size_t)j * n + j];
        for (int k = 0; k < j; k++) d -= a[(size_t)j * n + k] * a[(size_t)j * n + k];
        if (!(d > 0)) return 0;
        d = sqrt(d);
        a[(size_t)j * n + j] = d;
        for (int i = j + 1; i < n; i++) {
            double s = a[(size_t)i * n + j];
            const double *ri = a + (size_t)i * n, *rj = a + (size_t)j * n;
            for (int k = 0; k < j; k++) s -= ri[k] * rj[k];
            a[(size_t)i * n + j] = s / d;
        }
    }
    return 1;
}

// Solves L L^T X = B for X (n, m) in place in B (row-major).
static void chol_solve(const double *L, int n, double *B, int m) {
#ifdef SESLM_HAVE_OPENBLAS
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, n, m, 1.0, L, n, B, m);
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, n, m, 1.0, L, n, B, m);
    return;
#endif
    for (int i = 0; i < n; i++) { // forward: L Y = B
        double *bi = B + (size_t)i * m;
        for (int k = 0; k < i; k++) {
            const double l = L[(size_t)i * n + k];
            const double *bk = B + (size_t)k * m;
            for (int j = 0; j < m; j++) bi[j] -= l * bk[j];
        }
        const double d = L[(size_t)i * n + i];
        for (int j = 0; j < m; j++) bi[j] /= d;
    }
    for (int i = n - 1; i >= 0; i--) { // backward: L^T X = Y
        double *bi = B + (size_t)i * m;
        for (int k = i + 1; k < n; k++) {
            const double l = L[(size_t)k * n + i];
            const double *bk = B + (size_t)k * m;
            for (int j = 0; j < m; j++) bi[j] -= l * bk[j];
        }
        const double d = L[(size_t)i * n + i];
        for (int j = 0; j < m; j++) bi[j] /= d;
    }
}
#endif

// tr(X^T G X) for X (K1, N) = sum of squares of the outputs over the calibration tokens
static double quad_form(const double *G, int K1, const double *X, int N, double *tmp /* (K1, N) */) {
#ifdef SESLM_HAVE_OPENBLAS
    cblas_dsymm(CblasRowMajor, CblasLeft, CblasUpper, K1, N, 1.0, G, K1, X, N, 0.0, tmp, N);
    double q = 0;
    for (size_t i = 0; i < (size_t)K1 * N; i++) q += X[i] * tmp[i];
    return q;
#endif
    for (int i = 0; i < K1; i++) {
        double *ti = tmp + (size_t)i * N;
        memset(ti, 0, (size_t)N * sizeof *ti);
        for (int k = 0; k < K1; k++) {
            const double g = gram_at(G, K1, i, k);
            if (g == 0) continue;
            const double *xk = X + (size_t)k * N;
            for (int j = 0; j < N; j++) ti[j] += g * xk[j];
        }
    }
    double s = 0;
    for (size_t i = 0; i < (size_t)K1 * N; i++) s += X[i] * tmp[i];
    return s;
}

seslm_status seslm_reconstruct_linear(float *w_out, float *b_out, const float *w, const float *b, int N, int K,
                                      const int *keep, int nk, int unit, const double *G, double ridge,
                                      double *rel_err, double *rel_err_plain) {
    const int K1 = K + 1, ns = nk * unit + 1; // kept columns + the constant column
    int *S = malloc((size_t)ns * sizeof *S);
    double *Wa = malloc((size_t)K1 * N * sizeof *Wa);   // (K+1, N) = [W^T; b]
    double *A = malloc((size_t)ns * ns * sizeof *A);    // G_SS
    double *Gs = calloc((size_t)ns * K1, sizeof *Gs);   // G_S,all
    double *X = malloc((size_t)ns * N * sizeof *X);     // the solution [W'^T; b']
    double *tmp = malloc((size_t)K1 * N * sizeof *tmp);
    double *D = malloc((size_t)K1 * N * sizeof *D);     // parent minus student, in [W^T; b] coordinates
    seslm_status st = SESLM_OK;
    if (!S || !Wa || !A || !Gs || !X || !tmp || !D) {
        st = seslm_fail(SESLM_ERR_NOMEM, "out of memory in the reconstruction of a (%d, %d) layer", N, K);
        goto done;
    }
    for (int i = 0; i < nk; i++)
        for (int u = 0; u < unit; u++) S[i * unit + u] = keep[i] * unit + u;
    S[ns - 1] = K;
    for (int k = 0; k < K; k++)
        for (int n = 0; n < N; n++) Wa[(size_t)k * N + n] = w[(size_t)n * K + k];
    for (int n = 0; n < N; n++) Wa[(size_t)K * N + n] = b ? b[n] : 0.0;
    double tr = 0;
    for (int i = 0; i < ns; i++) {
        for (int j = 0; j < ns; j++) A[(size_t)i * ns + j] = gram_at(G, K1, S[i], S[j]);
        for (int k = 0; k < K1; k++) Gs[(size_t)i * K1 + k] = gram_at(G, K1, S[i], k);
        tr += A[(size_t)i * ns + i];
    }
    const double lambda = ridge * tr / ns;
    for (int i = 0; i < ns; i++) A[(size_t)i * ns + i] += lambda;
#ifdef SESLM_HAVE_OPENBLAS
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ns, N, K1, 1.0, Gs, K1, Wa, N, 0.0, X, N);
#else
    for (int i = 0; i < ns; i++) {
        double *xi = X + (size_t)i * N;
        memset(xi, 0, (size_t)N * sizeof *xi);
        for (int k = 0; k < K1; k++) {
            const double g = Gs[(size_t)i * K1 + k];
            const double *wk = Wa + (size_t)k * N;
            for (int n = 0; n < N; n++) xi[n] += g * wk[n];
        }
    }
#endif
    // A X = (Gs Wa): A is SPD (a Gram matrix plus a ridge); Cholesky factor and two triangular solves
#ifdef SESLM_HAVE_LAPACKE
    const int spd = LAPACKE_dposv(LAPACK_ROW_MAJOR, 'L', ns, N, A, ns, X, N) == 0;
#else
    const int spd = cholesky(A, ns);
    if (spd) chol_solve(A, ns, X, N);
#endif
    if (!spd) {
        st = seslm_fail(SESLM_ERR_ARG, "reconstruction: the calibration Gram matrix is singular (too little calibration text?)");
        goto done;
    }
    for (int n = 0; n < N; n++) {
        for (int i = 0; i < ns - 1; i++) w_out[(size_t)n * (ns - 1) + i] = (float)X[(size_t)i * N + n];
        b_out[n] = (float)X[(size_t)(ns - 1) * N + n];
    }
    if (rel_err || rel_err_plain) {
        const double ref = quad_form(G, K1, Wa, N, tmp);
        for (int pass = 0; pass < 2; pass++) { // 0: the fit; 1: plain slicing
            memcpy(D, Wa, (size_t)K1 * N * sizeof *D);
            for (int i = 0; i < ns; i++)
                for (int n = 0; n < N; n++) D[(size_t)S[i] * N + n] -= pass ? Wa[(size_t)S[i] * N + n] : X[(size_t)i * N + n];
            const double e = quad_form(G, K1, D, N, tmp);
            double *out = pass ? rel_err_plain : rel_err;
            if (out) *out = ref > 0 ? sqrt(fmax(e, 0) / ref) : 0;
        }
    }
done:
    free(S), free(Wa), free(A), free(Gs), free(X), free(tmp), free(D);
    return st;
}
