/* test_intent_oos.c — the intent head's in-scope p-value (conformal, on the max logit / the head's weight scale) on synthetic
 * unit-norm embeddings: in-scope inputs get roughly uniform p-values (so min_in_scope = a rejects about
 * a share a of them), inputs from directions no intent covers get small ones (and rank better than the
 * calibrated confidence), min_in_scope decides out_of_scope, the reference survives save / load exactly,
 * heads without one answer NaN and ignore min_in_scope, a damaged reference is refused, and a new fit
 * replaces the old reference. */
#include "intent_internal.h"
#include "test.h"
#include "test_rand.h"

#include <stdint.h>
#include <unistd.h>


enum { C = 5, D = 24, PER = 40, N = C * PER, NT = 600, NO = 300 };
static const char *NAMES[C] = {"alpha", "beta", "gamma", "delta", "eps"};

static void unit(float *x) {
    double s = 0;
    for (int d = 0; d < D; d++) s += (double)x[d] * x[d];
    for (int d = 0; d < D; d++) x[d] = (float)(x[d] / sqrt(s));
}

/* A point near centre c (unit-norm, like sentence embeddings); c < 0: a random direction (out of scope). */
static void draw(const float *centres, int c, float *x) {
    for (int d = 0; d < D; d++) x[d] = (c >= 0 ? centres[c * D + d] : (float)nrand()) + (float)(0.45 * nrand() / sqrt(D) * 2);
    unit(x);
}

static double auroc(const float *in, int nin, const float *oos, int noos) {
    double s = 0;
    for (int i = 0; i < nin; i++)
        for (int j = 0; j < noos; j++) s += in[i] > oos[j] ? 1 : in[i] == oos[j] ? 0.5 : 0;
    return s / ((double)nin * noos);
}

static float centres[C * D], X[N * D], Xt[NT * D], Xo[NO * D];
static const char *labels[N];

static void make_data(void) {
    for (int c = 0; c < C; c++) {
        for (int d = 0; d < D; d++) centres[c * D + d] = (float)nrand();
        unit(centres + c * D);
    }
    for (int i = 0; i < N; i++) draw(centres, i / PER, X + (size_t)i * D), labels[i] = NAMES[i / PER];
    for (int i = 0; i < NT; i++) draw(centres, i % C, Xt + (size_t)i * D);
    for (int i = 0; i < NO; i++) draw(centres, -1, Xo + (size_t)i * D);
}

static seslm_intent_head *head(int n_hidden) {
    seslm_intent_opts o;
    seslm_intent_opts_default(&o);
    o.input_dim = D;
    o.auto_hidden[0] = 16;
    if (n_hidden >= 0) o.n_hidden = n_hidden, o.hidden[0] = 16;
    seslm_intent_head *h = NULL;
    CHECK(seslm_intent_new(&h, &o) == SESLM_OK);
    return h;
}

static void test_auto_p_values(void) {
    seslm_intent_head *h = head(SESLM_INTENT_AUTO);
    CHECK(seslm_intent_fit(h, X, labels, N) == SESLM_OK);
    // every example scored out of fold: the reference holds all of them, sorted
    CHECK_MSG(seslm_intent_in_scope_reference(h) == N, "reference of %d, expected %d", seslm_intent_in_scope_reference(h), N);
    int sorted = 1;
    for (int i = 1; i < h->n_oos_ref; i++) sorted &= h->oos_ref[i - 1] <= h->oos_ref[i];
    CHECK(sorted);

    static float pin[NT], pout[NO], cin[NT], cout[NO];
    int below10 = 0, below25 = 0, ok = 1;
    double mean = 0;
    for (int i = 0; i < NT; i++) {
        seslm_intent_result r;
        ok &= seslm_intent_predict(h, Xt + (size_t)i * D, NULL, &r) == SESLM_OK;
        ok &= r.in_scope > 0 && r.in_scope <= 1 && !r.out_of_scope; // min_in_scope 0: off
        pin[i] = r.in_scope, cin[i] = r.confidence;
        below10 += r.in_scope <= 0.10f, below25 += r.in_scope <= 0.25f, mean += r.in_scope;
    }
    for (int i = 0; i < NO; i++) {
        seslm_intent_result r;
        ok &= seslm_intent_predict(h, Xo + (size_t)i * D, NULL, &r) == SESLM_OK;
        pout[i] = r.in_scope, cout[i] = r.confidence;
    }
    CHECK(ok);
    // fresh in-scope inputs are exchangeable with the held-out examples: about a share a of them at p <= a
    // (each score on its own head's scale, so the final head compares with the fold heads)
    mean /= NT;
    CHECK_MSG(below10 <= 0.16 * NT && below10 >= 0.01 * NT, "%d of %d in-scope inputs at p <= 0.10", below10, NT);
    CHECK_MSG(below25 <= 0.33 * NT && below25 >= 0.04 * NT, "%d of %d in-scope inputs at p <= 0.25", below25, NT);
    CHECK_MSG(mean > 0.4 && mean < 0.8, "mean in-scope p-value %.3f", mean);
    const double a_p = auroc(pin, NT, pout, NO), a_c = auroc(cin, NT, cout, NO);
    printf("in_scope AUROC %.4f, confidence AUROC %.4f (T %.3f); in-scope p <= 0.10: %d / %d\n", a_p, a_c,
           (double)h->temperature, below10, NT);
    CHECK_MSG(a_p > 0.9, "in_scope AUROC %.4f", a_p);
    CHECK_MSG(a_p >= a_c, "in_scope AUROC %.4f below the confidence's %.4f", a_p, a_c);

    // min_in_scope decides out_of_scope, and only through in_scope
    seslm_intent_set_min_in_scope(h, 0.1f);
    CHECK(seslm_intent_min_in_scope(h) == 0.1f);
    int agree = 1, rejected_oos = 0;
    for (int i = 0; i < NT + NO; i++) {
        const float *x = i < NT ? Xt + (size_t)i * D : Xo + (size_t)(i - NT) * D;
        seslm_intent_result r;
        seslm_intent_predict(h, x, NULL, &r);
        agree &= r.out_of_scope == (r.in_scope < 0.1f);
        if (i >= NT) rejected_oos += r.out_of_scope;
    }
    CHECK(agree);
    CHECK_MSG(rejected_oos > NO / 2, "%d of %d out-of-scope inputs rejected at min_in_scope 0.1", rejected_oos, NO);
    seslm_intent_set_min_in_scope(h, -3);
    CHECK(seslm_intent_min_in_scope(h) == 0);
    seslm_intent_set_min_in_scope(h, 0.05f);

    // save / load: the same p-values and threshold
    char path[] = "/tmp/seslm_test_intent_oos_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    CHECK(seslm_intent_save(h, path, NULL) == SESLM_OK);
    seslm_intent_head *r = NULL;
    CHECK(seslm_intent_load(&r, path, NULL) == SESLM_OK);
    if (r) {
        CHECK(seslm_intent_min_in_scope(r) == 0.05f && seslm_intent_in_scope_reference(r) == N);
        int same = 1;
        for (int i = 0; i < NO; i++) {
            seslm_intent_result a, b;
            seslm_intent_predict(h, Xo + (size_t)i * D, NULL, &a);
            seslm_intent_predict(r, Xo + (size_t)i * D, NULL, &b);
            same &= a.in_scope == b.in_scope && a.out_of_scope == b.out_of_scope;
        }
        CHECK_MSG(same, "a loaded head must give the saved one's in-scope p-values");
        seslm_intent_free(r), r = NULL;
    }
    // a damaged reference is refused, naming it: unsorted, then not finite
    const float keep = h->oos_ref[0];
    h->oos_ref[0] = h->oos_ref[N - 1] + 1;
    CHECK(seslm_intent_save(h, path, NULL) == SESLM_OK);
    CHECK(seslm_intent_load(&r, path, NULL) == SESLM_ERR_FORMAT && r == NULL && strstr(seslm_last_error(), "oos.scores"));
    h->oos_ref[0] = NAN;
    CHECK(seslm_intent_save(h, path, NULL) == SESLM_OK);
    CHECK(seslm_intent_load(&r, path, NULL) == SESLM_ERR_FORMAT && r == NULL && strstr(seslm_last_error(), "not finite"));
    h->oos_ref[0] = keep;

    // a head without a reference (a file saved before it): in_scope NaN, min_in_scope has no effect
    const int n_ref = h->n_oos_ref;
    h->n_oos_ref = 0;
    CHECK(seslm_intent_save(h, path, NULL) == SESLM_OK);
    h->n_oos_ref = n_ref;
    CHECK(seslm_intent_load(&r, path, NULL) == SESLM_OK);
    if (r) {
        seslm_intent_set_min_in_scope(r, 1.0f);
        seslm_intent_result a;
        CHECK(seslm_intent_predict(r, Xo, NULL, &a) == SESLM_OK);
        CHECK(isnan(a.in_scope) && !a.out_of_scope && seslm_intent_in_scope_reference(r) == 0);
        seslm_intent_free(r);
    }
    unlink(path);
    seslm_intent_free(h);
}

static void test_explicit_head(void) {
    // an explicit MLP: the reference is the calibration split's held-out examples (calib_frac 0.2 of each intent),
    // scored by the calibration head (automatic epochs: as many steps as the final head, so the same scale)
    seslm_intent_head *h = head(1);
    CHECK(seslm_intent_fit(h, X, labels, N) == SESLM_OK);
    CHECK_MSG(seslm_intent_in_scope_reference(h) == N / 5, "reference of %d", seslm_intent_in_scope_reference(h));
    int below10 = 0, rej = 0;
    static float pin[NT], pout[NO];
    for (int i = 0; i < NT; i++) {
        seslm_intent_result r;
        seslm_intent_predict(h, Xt + (size_t)i * D, NULL, &r);
        below10 += r.in_scope <= 0.10f, pin[i] = r.in_scope;
    }
    for (int i = 0; i < NO; i++) {
        seslm_intent_result r;
        seslm_intent_predict(h, Xo + (size_t)i * D, NULL, &r);
        rej += r.in_scope <= 0.10f, pout[i] = r.in_scope;
    }
    printf("explicit MLP: in_scope AUROC %.4f; p <= 0.10: %d / %d in scope, %d / %d out of scope\n",
           auroc(pin, NT, pout, NO), below10, NT, rej, NO);
    CHECK_MSG(below10 <= 0.16 * NT && below10 >= 0.01 * NT, "%d of %d in-scope inputs at p <= 0.10", below10, NT);
    CHECK_MSG(rej > NO / 2, "%d of %d out-of-scope inputs at p <= 0.10", rej, NO);
    // a new fit with nothing held out replaces the reference: none, so NaN
    h->o.calib_frac = 0;
    CHECK(seslm_intent_fit(h, X, labels, N) == SESLM_OK);
    seslm_intent_result r;
    CHECK(seslm_intent_predict(h, Xt, NULL, &r) == SESLM_OK && isnan(r.in_scope) && seslm_intent_in_scope_reference(h) == 0);
    seslm_intent_free(h);
    // options out of range are refused
    seslm_intent_opts o;
    seslm_intent_opts_default(&o);
    o.input_dim = D;
    o.min_in_scope = 1.5f;
    seslm_intent_head *bad = NULL;
    CHECK(seslm_intent_new(&bad, &o) == SESLM_ERR_ARG && bad == NULL && strstr(seslm_last_error(), "min_in_scope"));
}

int main(void) {
    test_rand_seed(4242);
    make_data();
    test_auto_p_values();
    test_explicit_head();
    return test_report("test_intent_oos");
}
