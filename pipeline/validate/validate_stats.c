/* validate_stats.c — rank correlation, percentiles, top-k retrieval (validate_stats.h). */
#include "validate_stats.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    double v;
    int i;
} keyed;

static int keyed_cmp(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    if (x->v < y->v) return -1;
    if (x->v > y->v) return 1;
    return (x->i > y->i) - (x->i < y->i); // stable: equal values keep their order
}

seslm_status seslm_stats_rank_average(const double *x, int n, double *rank) {
    if (n <= 0) return SESLM_OK;
    keyed *k = malloc((size_t)n * sizeof *k);
    if (!k) return seslm_fail(SESLM_ERR_NOMEM, "ranks of %d values: out of memory", n);
    for (int i = 0; i < n; i++) k[i] = (keyed){x[i], i};
    qsort(k, (size_t)n, sizeof *k, keyed_cmp);
    for (int s = 0; s < n;) {
        int e = s + 1;
        while (e < n && k[e].v == k[s].v) e++;
        // positions s..e-1 (0-based) hold equal values: each gets the mean of ranks s+1..e
        double r = 0.5 * (double)(s + 1 + e);
        for (int j = s; j < e; j++) rank[k[j].i] = r;
        s = e;
    }
    free(k);
    return SESLM_OK;
}

double seslm_stats_pearson(const double *x, const double *y, int n) {
    if (n < 2) return NAN;
    double mx = 0, my = 0;
    for (int i = 0; i < n; i++) mx += x[i], my += y[i];
    mx /= n, my /= n;
    double sxy = 0, sxx = 0, syy = 0;
    for (int i = 0; i < n; i++) {
        double a = x[i] - mx, b = y[i] - my;
        sxy += a * b, sxx += a * a, syy += b * b;
    }
    if (sxx <= 0 || syy <= 0) return NAN;
    return sxy / sqrt(sxx * syy);
}

double seslm_stats_spearman(const double *x, const double *y, int n) {
    if (n < 2) return NAN;
    double *rx = malloc((size_t)n * sizeof *rx), *ry = malloc((size_t)n * sizeof *ry);
    double r = NAN;
    if (rx && ry && seslm_stats_rank_average(x, n, rx) == SESLM_OK && seslm_stats_rank_average(y, n, ry) == SESLM_OK)
        r = seslm_stats_pearson(rx, ry, n);
    free(rx);
    free(ry);
    return r;
}

static int dbl_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double seslm_stats_percentile(double *v, int n, double p) {
    if (n <= 0) return NAN;
    qsort(v, (size_t)n, sizeof *v, dbl_cmp);
    double pos = p / 100.0 * (n - 1);
    if (pos <= 0) return v[0];
    if (pos >= n - 1) return v[n - 1];
    int lo = (int)floor(pos);
    double f = pos - lo;
    return v[lo] + f * (v[lo + 1] - v[lo]);
}

void seslm_stats_topk(const float *q, const float *P, int n, int d, int k, int *out) {
    // a sorted insertion list of k: n is a few thousand passages and k = 10, so this beats a heap
    double score[SESLM_STATS_TOPK_MAX];
    if (k > SESLM_STATS_TOPK_MAX) k = SESLM_STATS_TOPK_MAX;
    if (k > n) k = n;
    int m = 0;
    for (int i = 0; i < n; i++) {
        const float *p = P + (size_t)i * d;
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)q[j] * p[j];
        if (m == k && s <= score[k - 1]) continue; // not better than the worst kept (ties: lower index wins)
        int pos = m < k ? m++ : k - 1;
        while (pos > 0 && score[pos - 1] < s) {
            score[pos] = score[pos - 1];
            out[pos] = out[pos - 1];
            pos--;
        }
        score[pos] = s;
        out[pos] = i;
    }
}

double seslm_stats_recall_at_k(const int *a, const int *b, int k) {
    if (k <= 0) return NAN;
    int hit = 0;
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++)
            if (a[i] == b[j]) {
                hit++;
                break;
            }
    return (double)hit / k;
}

double seslm_stats_agreement_at_k(const int *a, const int *b, int k, const double *ref_score_b, double ref_kth,
                                  double margin) {
    if (k <= 0) return NAN;
    int hit = 0;
    for (int j = 0; j < k; j++) {
        int in_a = 0;
        for (int i = 0; i < k && !in_a; i++) in_a = a[i] == b[j];
        hit += in_a || ref_score_b[j] >= ref_kth - margin;
    }
    return (double)hit / k;
}

double seslm_stats_mcnemar_greater(int wins, int losses) {
    if (wins < 0 || losses < 0) return NAN;
    const int n = wins + losses;
    if (wins == 0) return 1.0;
    // sum of C(n, k) / 2^n over k >= wins, each term from lgamma (exact to ~1e-13 relative)
    const double lnorm = lgamma((double)n + 1) - n * log(2.0);
    double p = 0;
    for (int k = wins; k <= n; k++) p += exp(lnorm - lgamma((double)k + 1) - lgamma((double)(n - k) + 1));
    return p < 1 ? p : 1;
}

double seslm_stats_cosine(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    if (aa <= 0 || bb <= 0) return 0;
    return ab / sqrt(aa * bb);
}

void seslm_stats_quantile_ci(const double *sorted, int n, double q, double *lo, double *hi) {
    if (n <= 0) {
        *lo = *hi = NAN;
        return;
    }
    double k = n * q, d = 1.96 * sqrt(n * q * (1 - q));
    int a = (int)floor(k - d), b = (int)ceil(k + d) + 1; // 1-based ranks: covers when a <= Bin(n, q) < b
    // a rank outside the sample means the sample cannot bound that side: say so rather than clamp
    *lo = a < 1 ? -INFINITY : sorted[a - 1];
    *hi = b > n ? INFINITY : sorted[b - 1];
}
