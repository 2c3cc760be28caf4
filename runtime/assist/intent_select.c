/* intent_select.c — the default intent head: its capacity and regularisation chosen from the data.
 *
 * Why: a fixed 128-64 MLP trails a plain logistic regression on the same embeddings at every few-shot
 * count (bench/RESULTS.md, intent section: 80.4 vs 86.8% on CLINC150 at 5 shots), because with 5 to 50
 * examples per intent the hidden layers mostly add variance. So the default ("auto") head is fitted the
 * way a careful practitioner would: first a linear head (softmax regression, the exact objective of
 * scikit-learn's LogisticRegression) whose L2 strength C is chosen by stratified k-fold cross-validation,
 * then an MLP is tried on the same folds and kept only when it is better out of fold by a margin
 * ("grow only when it pays"). The temperature is fitted on the chosen candidate's out-of-fold logits,
 * which uses every example for calibration instead of holding 20% of a few-shot set out of training.
 *
 * Cost: k folds x |grid| softmax regressions, warm-started along the C path (each from the previous C's
 * solution), plus k MLP fits when there are enough examples for an MLP to have a chance. */
#include "intent_internal.h"
#include "logreg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// The C grid: scikit-learn's default C is 1; on L2-normalised sentence embeddings the best few-shot C is
// usually 10..300 (weak regularisation), so the grid is denser there.
static const double C_GRID[] = {0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000};
enum { N_GRID = (int)(sizeof C_GRID / sizeof C_GRID[0]) };

// An MLP replaces the linear head only when it is this much better out of fold (accuracy, 0..1).
#define MLP_MARGIN 0.005
// ... and is only tried with at least this many examples per class (below, the folds are too small for
// an MLP's out-of-fold accuracy to mean much, and it lost in every measured few-shot cell).
#define MLP_MIN_PER_CLASS 20

/* Stratified folds: per class, its examples in seeded order are dealt round-robin to the k folds. */
static void make_folds(const int *y, int n, int C, int k, uint64_t *rng, int *fold) {
    int *order = malloc((size_t)n * sizeof(int)), *next = calloc((size_t)C, sizeof(int));
    if (!order || !next) { // cannot fail the fit for this: deterministic interleave instead
        for (int i = 0; i < n; i++) fold[i] = i % k;
        free(order), free(next);
        return;
    }
    for (int i = 0; i < n; i++) order[i] = i;
    intent_shuffle(order, n, rng);
    for (int t = 0; t < n; t++) {
        const int i = order[t];
        fold[i] = next[y[i]]++ % k;
    }
    free(order), free(next);
}

static int argmax_d(const double *z, int K) {
    int b = 0;
    for (int j = 1; j < K; j++)
        if (z[j] > z[b]) b = j;
    return b;
}

static double nll_row(const double *z, int K, int y) {
    double mx = z[0], s = 0;
    for (int j = 1; j < K; j++) mx = z[j] > mx ? z[j] : mx;
    for (int j = 0; j < K; j++) s += exp(z[j] - mx);
    return mx + log(s) - z[y];
}

/* Copies rows idx[0..m) of X (n, D) into out (m, D) and their labels into yo. */
static void gather(const float *X, const int *y, int D, const int *idx, int m, float *out, int *yo) {
    for (int t = 0; t < m; t++) {
        memcpy(out + (size_t)t * D, X + (size_t)idx[t] * D, (size_t)D * sizeof(float));
        yo[t] = y[idx[t]];
    }
}

typedef struct {
    double acc, nll;
} cv_score;

/* Out-of-fold scores of the linear head for every C of the grid, added to score[] (not divided);
 * oof (N_GRID, n, C), when not NULL, gets the logits. */
static seslm_status cv_linear(const float *X, const int *y, int n, int D, int C, const int *fold, int k,
                              cv_score *score, float *oof) {
    int *tr = malloc((size_t)n * sizeof(int)), *te = malloc((size_t)n * sizeof(int)), *ytr = malloc((size_t)n * sizeof(int));
    float *Xtr = malloc((size_t)n * D * sizeof(float));
    double *z = malloc((size_t)C * sizeof(double)), *warm = NULL;
    seslm_status st = tr && te && ytr && Xtr && z ? SESLM_OK : seslm_fail(SESLM_ERR_NOMEM, "intent head: out of memory");
    for (int f = 0; f < k && st == SESLM_OK; f++) {
        int ntr = 0, nte = 0;
        for (int i = 0; i < n; i++) {
            if (fold[i] == f) te[nte++] = i;
            else tr[ntr++] = i;
        }
        gather(X, y, D, tr, ntr, Xtr, ytr);
        free(warm), warm = NULL;
        for (int g = 0; g < N_GRID && st == SESLM_OK; g++) {
            seslm_lr lr;
            seslm_lr_opts lo;
            seslm_lr_opts_default(&lo);
            lo.C = C_GRID[g], lo.tol = 1e-4, lo.init = warm;
            st = seslm_lr_fit(&lr, Xtr, ytr, ntr, D, C, &lo);
            if (st != SESLM_OK) break;
            for (int t = 0; t < nte; t++) {
                const int i = te[t];
                seslm_lr_logits(&lr, X + (size_t)i * D, z);
                score[g].acc += argmax_d(z, C) == y[i];
                score[g].nll += nll_row(z, C, y[i]);
                if (!oof) continue;
                float *o = oof + ((size_t)g * n + i) * C;
                for (int j = 0; j < C; j++) o[j] = (float)z[j];
            }
            free(warm);
            warm = lr.w; // the next C starts from this solution
            lr.w = NULL;
            seslm_lr_free(&lr);
        }
    }
    free(tr), free(te), free(ytr), free(Xtr), free(z), free(warm);
    return st;
}

/* Out-of-fold score of an MLP with the head's current hidden sizes and options; oof (n, C) logits. */
static seslm_status cv_mlp(seslm_intent_head *h, const float *X, const int *y, int n, const int *fold, int k,
                           uint64_t *rng, cv_score *score, float *oof) {
    const int D = h->o.input_dim, C = h->n_classes;
    int *tr = malloc((size_t)n * sizeof(int)), *te = malloc((size_t)n * sizeof(int));
    float *Xte = malloc((size_t)n * D * sizeof(float)), *lg = malloc((size_t)n * C * sizeof(float));
    int *yte = malloc((size_t)n * sizeof(int));
    double *z = malloc((size_t)C * sizeof(double));
    seslm_status st = tr && te && Xte && lg && yte && z ? SESLM_OK : seslm_fail(SESLM_ERR_NOMEM, "intent head: out of memory");
    memset(score, 0, sizeof *score);
    for (int f = 0; f < k && st == SESLM_OK; f++) {
        int ntr = 0, nte = 0;
        for (int i = 0; i < n; i++) {
            if (fold[i] == f) te[nte++] = i;
            else tr[ntr++] = i;
        }
        intent_init_weights(h, rng);
        st = intent_train_rows(h, X, y, tr, ntr, rng);
        if (st != SESLM_OK) break;
        gather(X, y, D, te, nte, Xte, yte);
        if (intent_logits(h, Xte, nte, lg) != 0) {
            st = seslm_fail(SESLM_ERR_NOMEM, "intent head: out of memory");
            break;
        }
        for (int t = 0; t < nte; t++) {
            for (int j = 0; j < C; j++) z[j] = lg[(size_t)t * C + j];
            score->acc += argmax_d(z, C) == yte[t];
            score->nll += nll_row(z, C, yte[t]);
            memcpy(oof + (size_t)te[t] * C, lg + (size_t)t * C, (size_t)C * sizeof(float));
        }
    }
    score->acc /= n, score->nll /= n;
    free(tr), free(te), free(Xte), free(lg), free(yte), free(z);
    return st;
}

/* Shapes the head as a linear layer (D -> C) and fits it on all rows with the given C. */
static seslm_status fit_linear_head(seslm_intent_head *h, const float *X, const int *y, int n, double Creg) {
    const int D = h->o.input_dim, C = h->n_classes;
    h->o.n_hidden = 0;
    h->n_layers = 1;
    h->dims[0] = D, h->dims[1] = C;
    seslm_status st = intent_alloc_layers(h);
    if (st != SESLM_OK) return st;
    seslm_lr lr;
    seslm_lr_opts lo;
    seslm_lr_opts_default(&lo);
    lo.C = Creg, lo.max_iter = 500;
    st = seslm_lr_fit(&lr, X, y, n, D, C, &lo);
    if (st != SESLM_OK) return st;
    for (int c = 0; c < C; c++) {
        for (int j = 0; j < D; j++) h->W[0][(size_t)c * D + j] = (float)lr.w[(size_t)c * (D + 1) + j];
        h->b[0][c] = (float)lr.w[(size_t)c * (D + 1) + D];
    }
    seslm_lr_free(&lr);
    // online updates keep the same regularisation: the head's penalty weight_decay/2 |W|^2 / B per
    // batch of B is scikit-learn's |W|^2 / (2 C n) per example when weight_decay = 1 / C
    h->o.weight_decay = (float)(1.0 / Creg);
    return SESLM_OK;
}

/* Shapes the head as the MLP of `hidden` (n_hidden widths) for C classes. */
static seslm_status shape_mlp(seslm_intent_head *h, const int *hidden, int n_hidden) {
    h->o.n_hidden = n_hidden;
    h->n_layers = n_hidden + 1;
    h->dims[0] = h->o.input_dim;
    for (int i = 0; i < n_hidden; i++) h->o.hidden[i] = hidden[i], h->dims[i + 1] = hidden[i];
    h->dims[h->n_layers] = h->n_classes;
    return intent_alloc_layers(h);
}

seslm_status intent_fit_auto(seslm_intent_head *h, const float *X, const int *y, int n, uint64_t *rng) {
    const int D = h->o.input_dim, C = h->n_classes;
    int *cnt = calloc((size_t)C, sizeof(int)), *fold = malloc((size_t)n * sizeof(int));
    if (!cnt || !fold) {
        free(cnt), free(fold);
        return seslm_fail(SESLM_ERR_NOMEM, "intent head: out of memory");
    }
    for (int i = 0; i < n; i++) cnt[y[i]]++;
    int min_count = n;
    for (int c = 0; c < C; c++) min_count = cnt[c] < min_count ? cnt[c] : min_count;
    free(cnt);
    const int k = min_count < 5 ? min_count : 5;
    h->temperature = 1.0f;
    h->selection.folds = k;
    if (k < 2) { // a class with one example: no cross-validation possible; scikit-learn-like C, T = 1
        free(fold);
        h->selection.C = 10.0;
        h->selection.cv_accuracy = NAN;
        h->selection.mlp_cv_accuracy = NAN;
        return fit_linear_head(h, X, y, n, 10.0);
    }
    make_folds(y, n, C, k, rng, fold);

    // With few examples one k-fold split is a noisy judge (SNIPS, 35 examples: the chosen C jumped between
    // 0.3 and 1000 from seed to seed), so small sets repeat the cross-validation on fresh splits, and the
    // accuracy curve over the grid is smoothed with its neighbours (C values next to each other give
    // nearly the same head; a lone peak is more likely noise than signal).
    const int repeats = n >= 2000 ? 1 : n >= 700 ? 2 : n >= 300 ? 3 : 5;
    cv_score raw[N_GRID], lin[N_GRID];
    memset(raw, 0, sizeof raw);
    float *oof = malloc((size_t)N_GRID * n * C * sizeof(float));
    seslm_status st = oof ? cv_linear(X, y, n, D, C, fold, k, raw, oof) : seslm_fail(SESLM_ERR_NOMEM, "intent head: out of memory");
    int *fold2 = st == SESLM_OK && repeats > 1 ? malloc((size_t)n * sizeof(int)) : NULL;
    for (int r = 1; r < repeats && st == SESLM_OK; r++) {
        if (!fold2) {
            st = seslm_fail(SESLM_ERR_NOMEM, "intent head: out of memory");
            break;
        }
        make_folds(y, n, C, k, rng, fold2);
        st = cv_linear(X, y, n, D, C, fold2, k, raw, NULL);
    }
    free(fold2);
    for (int g = 0; g < N_GRID; g++) {
        double acc = 0, nll = 0, w = 0;
        for (int j = g - 1; j <= g + 1; j++) {
            if (j < 0 || j >= N_GRID) continue;
            const double wj = j == g ? 2 : 1;
            acc += wj * raw[j].acc, nll += wj * raw[j].nll, w += wj;
        }
        lin[g].acc = acc / (w * n * repeats), lin[g].nll = nll / (w * n * repeats);
    }
    int best = 0;
    for (int g = 1; g < N_GRID; g++) // accuracy first; the lower out-of-fold NLL breaks ties
        if (lin[g].acc > lin[best].acc + 1e-12 || (fabs(lin[g].acc - lin[best].acc) <= 1e-12 && lin[g].nll < lin[best].nll))
            best = g;
    h->selection.repeats = repeats;
    h->selection.C = C_GRID[best];
    h->selection.cv_accuracy = st == SESLM_OK ? lin[best].acc : NAN;
    h->selection.mlp_cv_accuracy = NAN;

    // grow only when it pays: the MLP of the options (the seed's recipe) on the same folds
    int use_mlp = 0;
    float *oof_mlp = NULL;
    if (st == SESLM_OK && min_count >= MLP_MIN_PER_CLASS && h->o.auto_hidden[0] > 0) {
        int nh = 0;
        while (nh < SESLM_INTENT_MAX_HIDDEN && h->o.auto_hidden[nh] > 0) nh++;
        oof_mlp = malloc((size_t)n * C * sizeof(float));
        h->o.weight_decay = h->mlp_weight_decay;
        st = oof_mlp ? shape_mlp(h, h->o.auto_hidden, nh) : seslm_fail(SESLM_ERR_NOMEM, "intent head: out of memory");
        cv_score mlp;
        if (st == SESLM_OK) st = cv_mlp(h, X, y, n, fold, k, rng, &mlp, oof_mlp);
        if (st == SESLM_OK) {
            h->selection.mlp_cv_accuracy = mlp.acc;
            use_mlp = mlp.acc > lin[best].acc + MLP_MARGIN;
        }
    }
    if (st == SESLM_OK && h->o.calib_frac > 0) { // the temperature from the chosen candidate's out-of-fold logits
                                                  // (all n rows); calib_frac 0 asks for no calibration: T = 1
        const float *lg = use_mlp ? oof_mlp : oof + (size_t)best * n * C;
        h->temperature = intent_fit_temperature(lg, y, n, C);
    }
    free(oof), free(oof_mlp), free(fold);
    if (st != SESLM_OK) return st;
    h->selection.mlp = use_mlp;
    if (use_mlp) { // the final MLP on all the data (shape_mlp above left the head in that shape)
        intent_init_weights(h, rng);
        int *all = malloc((size_t)n * sizeof(int));
        if (!all) return seslm_fail(SESLM_ERR_NOMEM, "intent head: out of memory");
        for (int i = 0; i < n; i++) all[i] = i;
        st = intent_train_rows(h, X, y, all, n, rng);
        free(all);
        return st;
    }
    return fit_linear_head(h, X, y, n, C_GRID[best]);
}
