/* test_validate_stats.c — pipeline/validate/validate_stats.c against SciPy / NumPy reference values
 * (tests/fixtures/validate/stats_scipy.json, made by tests/validate/make_stats_fixture.py): Spearman
 * with ties, average ranks, percentiles, McNemar's exact test; plus top-k retrieval and recall@k on hand-checked cases. */
#include "test.h"
#include "util.h"
#include "validate_stats.h"

#include <cjson/cJSON.h>

static double *doubles(const cJSON *a, int *n) {
    *n = cJSON_GetArraySize(a);
    double *v = malloc((size_t)(*n + 1) * sizeof *v);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) v[i++] = e->valuedouble;
    return v;
}

static void fixture_cases(void) {
    char *txt = NULL;
    size_t len = 0;
    if (util_read_file(SESLM_SOURCE_DIR "/tests/fixtures/validate/stats_scipy.json", &txt, &len, 1 << 24, NULL) !=
        SESLM_OK) {
        CHECK_MSG(0, "fixture: %s", seslm_last_error());
        return;
    }
    cJSON *root = cJSON_Parse(txt);
    free(txt);
    CHECK(root != NULL);
    int n_cases = 0, n_ties = 0, n_mcnemar = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "mcnemar")) {
        const int w = cJSON_GetObjectItem(c, "wins")->valueint, l = cJSON_GetObjectItem(c, "losses")->valueint;
        const double want = cJSON_GetObjectItem(c, "p")->valuedouble, got = seslm_stats_mcnemar_greater(w, l);
        CHECK_MSG(fabs(got - want) <= 1e-10 * want, "mcnemar(%d, %d) = %.15g, scipy %.15g", w, l, got, want);
        n_mcnemar++;
    }
    CHECK(n_mcnemar >= 10);
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        int nx, ny, nr;
        double *x = doubles(cJSON_GetObjectItem(c, "x"), &nx), *y = doubles(cJSON_GetObjectItem(c, "y"), &ny);
        double *want_rank = doubles(cJSON_GetObjectItem(c, "rank_x"), &nr);
        CHECK(nx == ny && nx == nr);
        double rho = seslm_stats_spearman(x, y, nx), want = cJSON_GetObjectItem(c, "spearman")->valuedouble;
        CHECK_MSG(fabs(rho - want) < 1e-12, "%s: spearman %.15f, scipy %.15f", name, rho, want);
        double *rank = malloc((size_t)nx * sizeof *rank);
        CHECK(seslm_stats_rank_average(x, nx, rank) == SESLM_OK);
        int bad = 0, tied = 0;
        for (int i = 0; i < nx; i++) {
            bad += rank[i] != want_rank[i];
            tied += rank[i] != floor(rank[i]);
        }
        n_ties += tied > 0;
        CHECK_MSG(bad == 0, "%s: %d ranks differ from scipy's", name, bad);
        const char *pk[3] = {"p5_x", "p50_x", "p95_x"};
        const double pp[3] = {5, 50, 95};
        for (int k = 0; k < 3; k++) {
            double *tmp = malloc((size_t)nx * sizeof *tmp);
            memcpy(tmp, x, (size_t)nx * sizeof *tmp);
            double got = seslm_stats_percentile(tmp, nx, pp[k]), w = cJSON_GetObjectItem(c, pk[k])->valuedouble;
            CHECK_MSG(fabs(got - w) < 1e-12, "%s: percentile %g = %.15f, numpy %.15f", name, pp[k], got, w);
            free(tmp);
        }
        // the naive formula 1 - 6 sum d^2 / (n (n^2 - 1)) is wrong with ties: the fixture must show that
        if (tied) {
            double *ry = malloc((size_t)ny * sizeof *ry), d2 = 0;
            seslm_stats_rank_average(y, ny, ry);
            for (int i = 0; i < nx; i++) d2 += (rank[i] - ry[i]) * (rank[i] - ry[i]);
            double naive = 1 - 6 * d2 / ((double)nx * ((double)nx * nx - 1));
            if (strcmp(name, "both_ties") == 0)
                CHECK_MSG(fabs(naive - want) > 1e-3, "%s: the naive formula happens to agree (%.6f)", name, naive);
            free(ry);
        }
        free(x), free(y), free(want_rank), free(rank);
        n_cases++;
    }
    CHECK(n_cases >= 5);
    CHECK(n_ties >= 3); // the fixture exercises ties
    cJSON_Delete(root);
}

static void edge_cases(void) {
    double a[3] = {1, 1, 1}, b[3] = {1, 2, 3};
    CHECK(isnan(seslm_stats_spearman(a, b, 3))); // constant side: undefined, as scipy says (nan)
    CHECK(isnan(seslm_stats_spearman(a, b, 1)));
    CHECK(fabs(seslm_stats_spearman(b, b, 3) - 1) < 1e-15);
    double v[1] = {7};
    CHECK(seslm_stats_percentile(v, 1, 5) == 7);
    CHECK(isnan(seslm_stats_percentile(v, 0, 5)));
    CHECK(seslm_stats_mcnemar_greater(0, 0) == 1); // no disagreement: nothing shows a gain
    CHECK(seslm_stats_mcnemar_greater(0, 7) == 1);
    CHECK(isnan(seslm_stats_mcnemar_greater(-1, 2)));
}

static void retrieval(void) {
    // 6 passages in 2-D; query (1, 0): scores 0.9, 0.1, 0.5, 0.5, -1, 0.8
    const float P[12] = {0.9f, 0, 0.1f, 1, 0.5f, 0, 0.5f, 0.3f, -1, 0, 0.8f, 0.2f};
    const float q[2] = {1, 0};
    int top[4];
    seslm_stats_topk(q, P, 6, 2, 4, top);
    CHECK(top[0] == 0 && top[1] == 5);
    CHECK(top[2] == 2 && top[3] == 3); // a tie (0.5 and 0.5): the lower index first
    int top_all[10];
    seslm_stats_topk(q, P, 6, 2, 10, top_all); // k capped at n
    CHECK(top_all[5] == 4);
    int a[4] = {0, 5, 2, 3}, b[4] = {5, 0, 3, 1}, c[4] = {7, 8, 9, 10};
    CHECK(fabs(seslm_stats_recall_at_k(a, a, 4) - 1) < 1e-15);
    CHECK(fabs(seslm_stats_recall_at_k(a, b, 4) - 0.75) < 1e-15); // order does not matter, membership does
    CHECK(seslm_stats_recall_at_k(a, c, 4) == 0);
    // near-ties: b swaps a's 4th passage (id 3, score 0.5) for id 1 (score 0.1 by the reference)
    const double sb[4] = {0.8, 0.9, 0.5, 0.1}; // the reference's scores of b's ids 5, 0, 3, 1
    CHECK(fabs(seslm_stats_agreement_at_k(a, b, 4, sb, 0.5, 0) - 0.75) < 1e-15);   // margin 0: recall@k
    CHECK(fabs(seslm_stats_agreement_at_k(a, b, 4, sb, 0.5, 0.39) - 0.75) < 1e-15); // 0.1 < 0.5 - 0.39
    CHECK(fabs(seslm_stats_agreement_at_k(a, b, 4, sb, 0.5, 0.4) - 1) < 1e-15);     // within 0.4 of the 4th
    const double sc[4] = {0.49, 0.2, 0.3, 0.6};                                    // c: none of a's ids
    CHECK(fabs(seslm_stats_agreement_at_k(a, c, 4, sc, 0.5, 0.02) - 0.5) < 1e-15);  // 0.49 and 0.6 count
    const float u[3] = {1, 2, 3}, w[3] = {-2, -4, -6}, z[3] = {0, 0, 0};
    CHECK(fabs(seslm_stats_cosine(u, w, 3) + 1) < 1e-12);
    CHECK(seslm_stats_cosine(u, z, 3) == 0);
}

/* The order-statistic interval must cover the true quantile with probability >= ~95%: with x_(1..n) sorted
 * values, [x_(a), x_(b)] covers the q-quantile exactly when a <= Bin(n, q) < b, a sum computed exactly here
 * (independent of the normal approximation the function uses). */
static void quantile_interval(void) {
    const int ns[] = {20, 30, 50, 100, 200, 500};
    const double qs[] = {0.5, 0.95};
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 2; j++) {
            int n = ns[i];
            double q = qs[j], *v = malloc((size_t)n * sizeof *v), lo, hi;
            for (int k = 0; k < n; k++) v[k] = k + 1; // value = rank
            seslm_stats_quantile_ci(v, n, q, &lo, &hi);
            int a = isinf(lo) ? 0 : (int)lo, b = isinf(hi) ? n + 1 : (int)hi;
            CHECK_MSG(a >= 0 && a <= b && b <= n + 1, "n %d q %g: ranks %d..%d", n, q, a, b);
            double cover = 0;
            for (int k = a; k < b && k <= n; k++) cover += exp(lgamma(n + 1.0) - lgamma(k + 1.0) - lgamma(n - k + 1.0) +
                                                      k * log(q) + (n - k) * log1p(-q));
            CHECK_MSG(cover >= 0.93 && cover < 0.999, "n %d q %g: ranks %d..%d cover %.4f",
                      n, q, a, b, cover);
            CHECK(lo <= seslm_stats_percentile(v, n, q * 100) && seslm_stats_percentile(v, n, q * 100) <= hi);
            free(v);
        }
    double one = 3, lo, hi;
    seslm_stats_quantile_ci(&one, 1, 0.5, &lo, &hi); // one value bounds nothing
    CHECK(isinf(lo) && lo < 0 && isinf(hi) && hi > 0);
    double v20[20];
    for (int k = 0; k < 20; k++) v20[k] = k;
    seslm_stats_quantile_ci(v20, 20, 0.95, &lo, &hi); // 20 calls cannot bound a p95 from above
    CHECK(isfinite(lo) && isinf(hi));
}

int main(void) {
    quantile_interval();
    fixture_cases();
    edge_cases();
    retrieval();
    return test_report("test_validate_stats");
}
