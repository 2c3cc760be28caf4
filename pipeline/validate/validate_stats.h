/* validate_stats.h — the statistics of the validation sandbox: rank correlation, percentiles,
 * top-k retrieval and its agreement between two models. Pure functions, no model needed. */
#ifndef SESLM_VALIDATE_STATS_H
#define SESLM_VALIDATE_STATS_H

#include "seslm.h"

/* Ranks 1..n of x with ties given their average rank (as scipy.stats.rankdata "average").
 * rank has room for n. Returns SESLM_ERR_NOMEM on allocation failure. */
seslm_status seslm_stats_rank_average(const double *x, int n, double *rank);

/* Spearman's rank correlation: Pearson correlation of the average ranks (ties handled as scipy's
 * spearmanr). NaN when n < 2 or either side is constant. */
double seslm_stats_spearman(const double *x, const double *y, int n);

/* Pearson correlation; NaN when n < 2 or either side is constant. */
double seslm_stats_pearson(const double *x, const double *y, int n);

/* The p-th percentile (p in [0, 100]) with linear interpolation between closest ranks (numpy's
 * default "linear" method). Sorts v in place. NaN when n == 0. */
double seslm_stats_percentile(double *v, int n, double p);

/* A distribution-free interval (about 95%) for the q-th quantile (q in (0, 1)) of the population a sorted
 * sample of n values comes from: the order statistics at ranks n q -+ 1.96 sqrt(n q (1 - q)) (binomial
 * normal approximation). A side whose rank falls outside the sample is unbounded (-inf / +inf): 20 values
 * cannot bound a 95th percentile from above. */
void seslm_stats_quantile_ci(const double *sorted, int n, double q, double *lo, double *hi);

/* Indices of the k rows of P (n, d) with the largest dot product with q (d), best first; ties go to
 * the lower index. k is capped at n and at SESLM_STATS_TOPK_MAX; out has room for k. */
#define SESLM_STATS_TOPK_MAX 100
void seslm_stats_topk(const float *q, const float *P, int n, int d, int k, int *out);

/* |a ∩ b| / k for two lists of k distinct indices (the fraction of the reference's top-k that the
 * other list also retrieved: recall@k of b against a). */
double seslm_stats_recall_at_k(const int *a, const int *b, int k);

/* Agreement of b with the reference list a (k each, a best first) when near-ties count: an index of b
 * that is in a, or that the reference scores within `margin` of its own k-th (ref_score_b[j]: the
 * reference's score of b[j]; ref_kth: its score of a[k-1]), is agreed on. Top-k over a large passage set
 * has near-ties at rank k that the reference itself could have returned either way; margin 0 is
 * seslm_stats_recall_at_k. */
double seslm_stats_agreement_at_k(const int *a, const int *b, int k, const double *ref_score_b, double ref_kth,
                                  double margin);

/* McNemar's exact test, one-sided: of the n = wins + losses examples two classifiers disagree on, the
 * probability that a fair coin gives at least `wins` (P(X >= wins), X ~ Binomial(n, 1/2); scipy's
 * binomtest(wins, n, 0.5, alternative="greater")). 1 when n = 0. Small: the new classifier's gain over the
 * old one on the same examples is unlikely to be chance. */
double seslm_stats_mcnemar_greater(int wins, int losses);

/* Cosine similarity of two vectors (0 when either is zero). */
double seslm_stats_cosine(const float *a, const float *b, int n);

#endif
