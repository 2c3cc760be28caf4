/* test_validate_lr.c — pipeline/validate/validate_lr.c against scikit-learn's LogisticRegression (lbfgs,
 * multinomial, converged to tol 1e-10) on iris and digits (tests/fixtures/validate/lr_sklearn.json,
 * made by tests/validate/make_lr_fixture.py): coefficients, intercepts, probabilities, predictions. */
#include "test.h"
#include "util.h"
#include "logreg.h"

#include <cjson/cJSON.h>

int main(void) {
    char *txt = NULL;
    size_t len = 0;
    if (util_read_file(SESLM_SOURCE_DIR "/tests/fixtures/validate/lr_sklearn.json", &txt, &len, 1 << 26, NULL) !=
        SESLM_OK) {
        fprintf(stderr, "fixture: %s\n", seslm_last_error());
        return 1;
    }
    cJSON *root = cJSON_Parse(txt);
    free(txt);
    CHECK(root != NULL);
    const cJSON *c;
    int n_cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        int n = cJSON_GetObjectItem(c, "n")->valueint, d = cJSON_GetObjectItem(c, "d")->valueint;
        int K = cJSON_GetObjectItem(c, "K")->valueint;
        float *X = malloc((size_t)n * d * sizeof *X);
        int *y = malloc((size_t)n * sizeof *y);
        for (int i = 0; i < n; i++) {
            const cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItem(c, "X"), i);
            for (int j = 0; j < d; j++) X[(size_t)i * d + j] = (float)cJSON_GetArrayItem(row, j)->valuedouble;
            y[i] = cJSON_GetArrayItem(cJSON_GetObjectItem(c, "y"), i)->valueint;
        }
        seslm_lr_opts o = {.C = cJSON_GetObjectItem(c, "C")->valuedouble, .max_iter = 5000, .tol = 1e-9};
        seslm_lr lr;
        CHECK(seslm_lr_fit(&lr, X, y, n, d, K, &o) == SESLM_OK);
        CHECK_MSG(lr.converged, "%s: not converged after %d iterations", name, lr.iterations);
        double max_coef = 0, max_diff = 0, max_pdiff = 0;
        for (int k = 0; k < K; k++) {
            const cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItem(c, "coef"), k);
            for (int j = 0; j < d; j++) {
                double w = cJSON_GetArrayItem(row, j)->valuedouble;
                max_coef = fmax(max_coef, fabs(w));
                max_diff = fmax(max_diff, fabs(lr.w[(size_t)k * (d + 1) + j] - w));
            }
            double b = cJSON_GetArrayItem(cJSON_GetObjectItem(c, "intercept"), k)->valuedouble;
            max_diff = fmax(max_diff, fabs(lr.w[(size_t)k * (d + 1) + d] - b));
        }
        int agree = 0;
        double *p = malloc((size_t)K * sizeof *p);
        for (int i = 0; i < n; i++) {
            seslm_lr_proba(&lr, X + (size_t)i * d, p);
            const cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItem(c, "proba"), i);
            for (int k = 0; k < K; k++) max_pdiff = fmax(max_pdiff, fabs(p[k] - cJSON_GetArrayItem(row, k)->valuedouble));
            agree += seslm_lr_predict(&lr, X + (size_t)i * d) ==
                     cJSON_GetArrayItem(cJSON_GetObjectItem(c, "predict"), i)->valueint;
        }
        printf("%s: n %d d %d K %d C %g: %d iterations, max |coef - sklearn| %.2e (max |coef| %.2f), "
               "max |proba - sklearn| %.2e, %d/%d predictions agree\n",
               name, n, d, K, o.C, lr.iterations, max_diff, max_coef, max_pdiff, agree, n);
        CHECK_MSG(max_diff <= 1e-4 * fmax(1, max_coef), "%s: coefficients differ by %.3e", name, max_diff);
        CHECK_MSG(max_pdiff <= 1e-5, "%s: probabilities differ by %.3e", name, max_pdiff);
        CHECK_MSG(agree == n, "%s: %d of %d predictions differ", name, n - agree, n);
        // a fit stopped early is measurably not the optimum: the comparison above can fail
        seslm_lr early;
        seslm_lr_opts o2 = o;
        o2.max_iter = 3;
        CHECK(seslm_lr_fit(&early, X, y, n, d, K, &o2) == SESLM_OK);
        double e_diff = 0;
        for (int k = 0; k < K; k++)
            for (int j = 0; j < d; j++)
                e_diff = fmax(e_diff, fabs(early.w[(size_t)k * (d + 1) + j] -
                                           cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "coef"), k), j)->valuedouble));
        CHECK_MSG(e_diff > 1e-2, "%s: 3 iterations already match sklearn (%.3e)", name, e_diff);
        seslm_lr_free(&early);
        seslm_lr_free(&lr);
        free(p), free(X), free(y);
        n_cases++;
    }
    CHECK(n_cases == 2);
    // bad input: a label outside [0, K), one class, C <= 0
    float X1[4] = {0, 1, 2, 3};
    int y1[4] = {0, 1, 2, 0};
    seslm_lr lr;
    seslm_lr_opts o = {.C = 1, .max_iter = 10, .tol = 1e-6};
    CHECK(seslm_lr_fit(&lr, X1, y1, 4, 1, 2, &o) == SESLM_ERR_ARG);
    CHECK(strstr(seslm_last_error(), "label 2") != NULL);
    CHECK(seslm_lr_fit(&lr, X1, y1, 4, 1, 1, &o) == SESLM_ERR_ARG);
    o.C = 0;
    CHECK(seslm_lr_fit(&lr, X1, y1, 4, 1, 3, &o) == SESLM_ERR_ARG);
    cJSON_Delete(root);
    return test_report("test_validate_lr");
}
