/* logreg.c — softmax regression fitted by L-BFGS (logreg.h). */
#include "logreg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef SESLM_HAVE_OPENBLAS
#include <cblas.h>
#endif

void seslm_lr_opts_default(seslm_lr_opts *o) { *o = (seslm_lr_opts){.C = 10.0, .max_iter = 300, .tol = 1e-5, .init = NULL}; }

typedef struct {
    const double *X; // (n, d)
    const int *y;
    int n, d, K;
    double l2;  // 1 / (C n)
    double *Z;  // (n, K) scratch
} problem;

/* f(theta) and its gradient g; theta and g are (K, d + 1). */
static double objective(const problem *p, const double *theta, double *g) {
    const int n = p->n, d = p->d, K = p->K, ld = d + 1;
    double *Z = p->Z;
#ifdef SESLM_HAVE_OPENBLAS
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, K, d, 1.0, p->X, d, theta, ld, 0.0, Z, K);
#else
    for (int i = 0; i < n; i++)
        for (int k = 0; k < K; k++) {
            const double *x = p->X + (size_t)i * d, *w = theta + (size_t)k * ld;
            double s = 0;
            for (int j = 0; j < d; j++) s += x[j] * w[j];
            Z[(size_t)i * K + k] = s;
        }
#endif
    double loss = 0;
    for (int i = 0; i < n; i++) {
        double *z = Z + (size_t)i * K, mx = -INFINITY;
        for (int k = 0; k < K; k++) {
            z[k] += theta[(size_t)k * ld + d];
            if (z[k] > mx) mx = z[k];
        }
        double s = 0;
        for (int k = 0; k < K; k++) s += exp(z[k] - mx);
        loss += mx + log(s) - z[p->y[i]];
        // Z becomes (softmax - onehot) / n: the derivative of the mean loss by the logits
        for (int k = 0; k < K; k++) z[k] = exp(z[k] - mx) / s / n;
        z[p->y[i]] -= 1.0 / n;
    }
    loss /= n;
    double reg = 0;
    for (int k = 0; k < K; k++)
        for (int j = 0; j < d; j++) reg += theta[(size_t)k * ld + j] * theta[(size_t)k * ld + j];
    loss += 0.5 * p->l2 * reg;
#ifdef SESLM_HAVE_OPENBLAS
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, d, n, 1.0, Z, K, p->X, d, 0.0, g, ld);
#else
    for (int k = 0; k < K; k++)
        for (int j = 0; j < d; j++) g[(size_t)k * ld + j] = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < K; k++) {
            double zk = Z[(size_t)i * K + k];
            const double *x = p->X + (size_t)i * d;
            double *gk = g + (size_t)k * ld;
            for (int j = 0; j < d; j++) gk[j] += zk * x[j];
        }
#endif
    for (int k = 0; k < K; k++) {
        double gb = 0;
        for (int i = 0; i < n; i++) gb += Z[(size_t)i * K + k];
        g[(size_t)k * ld + d] = gb;
        for (int j = 0; j < d; j++) g[(size_t)k * ld + j] += p->l2 * theta[(size_t)k * ld + j];
    }
    return loss;
}

static double dot(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static double norm_inf(const double *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

enum { HIST = 10 };

seslm_status seslm_lr_fit(seslm_lr *lr, const float *X, const int *y, int n, int d, int K, const seslm_lr_opts *o) {
    memset(lr, 0, sizeof *lr);
    seslm_lr_opts def;
    if (!o) seslm_lr_opts_default(&def), o = &def;
    if (n < 1 || d < 1 || K < 2 || !(o->C > 0) || o->max_iter < 0)
        return seslm_fail(SESLM_ERR_ARG, "logistic regression: bad sizes n=%d d=%d K=%d or C=%g", n, d, K, o->C);
    for (int i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= K) return seslm_fail(SESLM_ERR_ARG, "logistic regression: label %d of row %d outside [0, %d)", y[i], i, K);
    const size_t P = (size_t)K * (d + 1);
    double *Xd = malloc((size_t)n * d * sizeof *Xd), *Z = malloc((size_t)n * K * sizeof *Z);
    double *mem = calloc(P * (5 + 2 * HIST), sizeof *mem);
    if (!Xd || !Z || !mem) {
        free(Xd), free(Z), free(mem);
        return seslm_fail(SESLM_ERR_NOMEM, "logistic regression on %d x %d, %d classes: out of memory", n, d, K);
    }
    for (size_t i = 0; i < (size_t)n * d; i++) Xd[i] = X[i];
    if (o->init) memcpy(mem, o->init, P * sizeof *mem); // warm start (the C path of a cross-validation)
    problem pb = {Xd, y, n, d, K, 1.0 / (o->C * n), Z};
    double *x = mem, *g = x + P, *dir = g + P, *xn = dir + P, *gn = xn + P;
    double *S = gn + P, *Yh = S + P * HIST, rho[HIST], alpha[HIST];
    int hist = 0, head = 0; // ring buffer of the last HIST (s, y) pairs; head = next slot
    double f = objective(&pb, x, g);
    int it = 0;
    for (; it < o->max_iter && norm_inf(g, P) > o->tol; it++) {
        // two-loop recursion: dir = -H g
        for (size_t i = 0; i < P; i++) dir[i] = -g[i];
        for (int h = 0; h < hist; h++) {
            int s = (head - 1 - h + HIST) % HIST;
            alpha[s] = rho[s] * dot(S + s * P, dir, P);
            for (size_t i = 0; i < P; i++) dir[i] -= alpha[s] * Yh[s * P + i];
        }
        if (hist) {
            int s = (head - 1 + HIST) % HIST;
            double gamma = dot(S + s * P, Yh + s * P, P) / dot(Yh + s * P, Yh + s * P, P);
            for (size_t i = 0; i < P; i++) dir[i] *= gamma;
        } else {
            double gn2 = sqrt(dot(g, g, P));
            for (size_t i = 0; i < P; i++) dir[i] /= fmax(gn2, 1e-300); // first step: unit length
        }
        for (int h = hist - 1; h >= 0; h--) {
            int s = (head - 1 - h + HIST) % HIST;
            double beta = rho[s] * dot(Yh + s * P, dir, P);
            for (size_t i = 0; i < P; i++) dir[i] += (alpha[s] - beta) * S[s * P + i];
        }
        double gd = dot(g, dir, P);
        if (!(gd < 0)) { // not a descent direction (numerical trouble): restart from steepest descent
            hist = 0;
            for (size_t i = 0; i < P; i++) dir[i] = -g[i];
            gd = -dot(g, g, P);
        }
        // backtracking line search with the Armijo condition
        double step = 1, fn = f;
        int ok = 0;
        for (int ls = 0; ls < 50; ls++, step *= 0.5) {
            for (size_t i = 0; i < P; i++) xn[i] = x[i] + step * dir[i];
            fn = objective(&pb, xn, gn);
            if (fn <= f + 1e-4 * step * gd) {
                ok = 1;
                break;
            }
        }
        if (!ok) break; // no decrease possible at this precision: we are at the optimum
        double *sv = S + head * P, *yv = Yh + head * P;
        for (size_t i = 0; i < P; i++) sv[i] = xn[i] - x[i], yv[i] = gn[i] - g[i];
        double sy = dot(sv, yv, P);
        if (sy > 1e-12 * dot(yv, yv, P)) { // keep the pair only when curvature is positive
            rho[head] = 1.0 / sy;
            head = (head + 1) % HIST;
            if (hist < HIST) hist++;
        }
        memcpy(x, xn, P * sizeof *x);
        memcpy(g, gn, P * sizeof *g);
        f = fn;
    }
    lr->w = malloc(P * sizeof *lr->w);
    if (!lr->w) {
        free(Xd), free(Z), free(mem);
        return seslm_fail(SESLM_ERR_NOMEM, "logistic regression: out of memory");
    }
    memcpy(lr->w, x, P * sizeof *x);
    lr->n_classes = K, lr->dim = d, lr->iterations = it, lr->loss = f;
    lr->converged = norm_inf(g, P) <= o->tol;
    free(Xd), free(Z), free(mem);
    return SESLM_OK;
}

void seslm_lr_proba(const seslm_lr *lr, const float *x, double *p) {
    const int d = lr->dim, K = lr->n_classes;
    double mx = -INFINITY, s = 0;
    for (int k = 0; k < K; k++) {
        const double *w = lr->w + (size_t)k * (d + 1);
        double z = w[d];
        for (int j = 0; j < d; j++) z += w[j] * x[j];
        p[k] = z;
        if (z > mx) mx = z;
    }
    for (int k = 0; k < K; k++) s += (p[k] = exp(p[k] - mx));
    for (int k = 0; k < K; k++) p[k] /= s;
}

void seslm_lr_logits(const seslm_lr *lr, const float *x, double *z) {
    const int d = lr->dim, K = lr->n_classes;
    for (int k = 0; k < K; k++) {
        const double *w = lr->w + (size_t)k * (d + 1);
        double s = w[d];
        for (int j = 0; j < d; j++) s += w[j] * x[j];
        z[k] = s;
    }
}

int seslm_lr_predict(const seslm_lr *lr, const float *x) {
    const int d = lr->dim, K = lr->n_classes;
    int best = 0;
    double bz = -INFINITY;
    for (int k = 0; k < K; k++) {
        const double *w = lr->w + (size_t)k * (d + 1);
        double z = w[d];
        for (int j = 0; j < d; j++) z += w[j] * x[j];
        if (z > bz) bz = z, best = k;
    }
    return best;
}

void seslm_lr_free(seslm_lr *lr) {
    if (!lr) return;
    free(lr->w);
    memset(lr, 0, sizeof *lr);
}
