/* logreg.h — multinomial logistic regression (softmax regression) with L2 penalty, fitted by L-BFGS:
 * the classifier that the validation sandbox fits on each model's own embeddings to measure intent
 * accuracy, and the linear intent head's solver (runtime/assist/intent_select.c). It lives in the core so
 * that both layers above can use it.
 *
 * It minimises the objective of scikit-learn's LogisticRegression(C=C) with the lbfgs solver and the
 * multinomial loss (intercept fitted, not penalised):
 *
 *     f(W, b) = (1/n) sum_i -log softmax(W x_i + b)[y_i]  +  ||W||^2 / (2 C n)
 *
 * The objective is strictly convex, so any solver that converges reaches scikit-learn's solution;
 * tests/unit/test_validate_lr.c checks that against a stored scikit-learn fit. */
#ifndef SESLM_LOGREG_H
#define SESLM_LOGREG_H

#include "seslm.h"

typedef struct {
    double C;     // inverse regularisation strength (scikit-learn's C), > 0
    int max_iter; // L-BFGS iterations
    double tol;   // stop when the largest gradient component is below tol
    const double *init; // warm start (n_classes, dim + 1) as seslm_lr.w, or NULL for zeros
} seslm_lr_opts;

typedef struct {
    int n_classes, dim;
    double *w;     // n_classes rows of dim weights followed by the intercept: (n_classes, dim + 1)
    int iterations; // L-BFGS iterations used
    double loss;   // final objective value
    int converged; // gradient below tol before max_iter
} seslm_lr;

/* Defaults: C 10, 300 iterations, tol 1e-5. */
void seslm_lr_opts_default(seslm_lr_opts *o);

/* Fits X (n, d) row-major with labels y[i] in [0, K). K >= 2. Deterministic (starts from zero). */
seslm_status seslm_lr_fit(seslm_lr *lr, const float *X, const int *y, int n, int d, int K, const seslm_lr_opts *o);
/* Logits W x + b of x (d) into z (K). */
void seslm_lr_logits(const seslm_lr *lr, const float *x, double *z);
/* Class probabilities of x (d) into p (K). */
void seslm_lr_proba(const seslm_lr *lr, const float *x, double *p);
/* The most probable class of x (the lowest index on ties). */
int seslm_lr_predict(const seslm_lr *lr, const float *x);
void seslm_lr_free(seslm_lr *lr);

#endif
