/* test_intent_auto.c — the default intent head chooses its capacity from the data (intent_select.c):
 * a linear head identical to the cross-validated softmax regression it chose (fitted as its folds were);
 * a weakly regularised one where regularising hurts; an MLP kept only where
 * the classes are not linearly separable; a class with a single example (no cross-validation possible);
 * and the Adam state saved with the head, so online learning after a reload is bit-identical to online
 * learning without one. */
#include "intent_internal.h"
#include "logreg.h"
#include "test.h"
#include "test_rand.h"

#include <stdint.h>
#include <unistd.h>


static const char *NAMES[] = {"alpha", "beta", "gamma", "delta"};

static seslm_intent_head *auto_head(int D, uint64_t seed) {
    seslm_intent_opts o;
    seslm_intent_opts_default(&o);
    CHECK(o.n_hidden == SESLM_INTENT_AUTO); // the default
    o.input_dim = D;
    o.seed = seed;
    o.auto_hidden[0] = 32; // small, so the test is quick
    seslm_intent_head *h = NULL;
    CHECK(seslm_intent_new(&h, &o) == SESLM_OK);
    return h;
}

static void test_auto_linear(void) {
    enum { C = 4, per = 10, D = 8, n = C * per };
    float centres[C * D], X[n * D];
    const char *labels[n];
    int y[n];
    for (int c = 0; c < C * D; c++) centres[c] = (float)nrand();
    for (int c = 0, i = 0; c < C; c++)
        for (int k = 0; k < per; k++, i++) {
            for (int d = 0; d < D; d++) X[i * D + d] = centres[c * D + d] + (float)(0.8 * nrand());
            labels[i] = NAMES[c], y[i] = c;
        }
    seslm_intent_head *h = auto_head(D, 3);
    CHECK(seslm_intent_fit(h, X, labels, n) == SESLM_OK);
    const seslm_intent_selection *s = seslm_intent_get_selection(h);
    CHECK_MSG(s->folds == 5, "folds %d (10 examples per class: 5)", s->folds);
    CHECK_MSG(!s->mlp && isnan(s->mlp_cv_accuracy), "with 10 examples per class the MLP is not tried");
    CHECK(h->o.n_hidden == 0 && h->n_layers == 1);
    CHECK_MSG(s->cv_accuracy > 0.5 && s->cv_accuracy <= 1.0, "cv accuracy %.3f", s->cv_accuracy);
    CHECK_MSG(fabsf(h->o.weight_decay - (float)(1.0 / s->C)) < 1e-6f, "weight decay %g for C %g", h->o.weight_decay, s->C);
    // the head is exactly the softmax regression at the chosen C, fitted as the cross-validation fitted its
    // folds (the head that was validated): warm-started along the grid from C = 0.1, tolerance 1e-4
    static const double grid[] = {0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000};
    seslm_lr lr = {0};
    double *warm = NULL;
    for (int g = 0; g < 9; g++) {
        seslm_lr_opts lo;
        seslm_lr_opts_default(&lo);
        lo.C = grid[g], lo.tol = 1e-4, lo.init = warm;
        CHECK(seslm_lr_fit(&lr, X, y, n, D, C, &lo) == SESLM_OK);
        free(warm), warm = NULL;
        if (grid[g] == s->C) break;
        warm = lr.w, lr.w = NULL;
        seslm_lr_free(&lr);
    }
    CHECK_MSG(lr.w != NULL, "C %g is not on the grid", s->C);
    if (!lr.w) return;
    int same = 1;
    for (int c = 0; c < C; c++) {
        for (int j = 0; j < D; j++) same &= h->W[0][c * D + j] == (float)lr.w[c * (D + 1) + j];
        same &= h->b[0][c] == (float)lr.w[c * (D + 1) + D];
    }
    CHECK_MSG(same, "the linear head differs from the softmax regression at C = %g", s->C);
    seslm_lr_free(&lr);
    // same seed, same head (the folds come from the seed)
    seslm_intent_head *h2 = auto_head(D, 3);
    CHECK(seslm_intent_fit(h2, X, labels, n) == SESLM_OK);
    CHECK(seslm_intent_get_selection(h2)->C == s->C && h2->temperature == h->temperature);
    seslm_intent_free(h2);
    seslm_intent_free(h);
}

/* Where regularising hurts, the cross-validation sees it: the classes differ only along x0 - x1 while x0 and
 * x1 share a large noise, so a strongly regularised head (close to nearest centroid, which sees mostly the
 * noisy x0) is near chance and only a weakly regularised one finds the direction (1, -1). */
static void test_auto_needs_capacity(void) {
    enum { per = 20, D = 2, n = 2 * per };
    float X[n * D];
    const char *labels[n];
    for (int i = 0; i < n; i++) {
        const int c = i % 2;
        const double z = 5.0 * nrand();
        X[i * D + 0] = (float)((c ? 0.5 : -0.5) + z + 0.05 * nrand());
        X[i * D + 1] = (float)z;
        labels[i] = NAMES[c];
    }
    seslm_intent_head *h = auto_head(D, 6);
    CHECK(seslm_intent_fit(h, X, labels, n) == SESLM_OK);
    const seslm_intent_selection *s = seslm_intent_get_selection(h);
    CHECK_MSG(s->cv_accuracy > 0.9 && s->C >= 3, "C %g, cv accuracy %.3f", s->C, s->cv_accuracy);
    int right = 0;
    for (int i = 0; i < n; i++) {
        seslm_intent_result r;
        CHECK(seslm_intent_predict(h, X + i * D, NULL, &r) == SESLM_OK);
        right += strcmp(seslm_intent_label(h, r.index), labels[i]) == 0;
    }
    CHECK_MSG(right >= n - 1, "%d of %d training rows right", right, n);
    seslm_intent_free(h);
}

static void test_auto_grows_when_it_pays(void) {
    // XOR in two of the dimensions: no linear head can beat chance; an MLP can
    enum { per = 100, D = 4, n = 2 * per }; // an MLP is tried from 100 examples per class
    float X[n * D];
    const char *labels[n];
    for (int i = 0; i < n; i++) {
        const int c = i % 2;
        const int q = (i / 2) % 2; // which of the class's two quadrants
        const float sx = q ? 1.0f : -1.0f, sy = c ? -sx : sx;
        X[i * D + 0] = sx * (float)(1.0 + 0.3 * fabs(nrand()));
        X[i * D + 1] = sy * (float)(1.0 + 0.3 * fabs(nrand()));
        for (int d = 2; d < D; d++) X[i * D + d] = (float)(0.3 * nrand());
        labels[i] = NAMES[c];
    }
    seslm_intent_head *h = auto_head(D, 5);
    h->o.epochs = 60;
    CHECK(seslm_intent_fit(h, X, labels, n) == SESLM_OK);
    const seslm_intent_selection *s = seslm_intent_get_selection(h);
    CHECK_MSG(s->mlp == 1 && h->o.n_hidden == 1 && h->o.hidden[0] == 32,
              "XOR: the MLP must be kept (linear cv %.3f, MLP cv %.3f)", s->cv_accuracy, s->mlp_cv_accuracy);
    CHECK_MSG(s->cv_accuracy < 0.75 && s->mlp_cv_accuracy > 0.9, "linear cv %.3f, MLP cv %.3f", s->cv_accuracy,
              s->mlp_cv_accuracy);
    int right = 0;
    for (int i = 0; i < n; i++) {
        seslm_intent_result r;
        CHECK(seslm_intent_predict(h, X + i * D, NULL, &r) == SESLM_OK);
        right += strcmp(seslm_intent_label(h, r.index), labels[i]) == 0;
    }
    CHECK_MSG(right >= n * 9 / 10, "MLP head: %d of %d right", right, n);
    seslm_intent_free(h);
}

static void test_auto_single_example(void) {
    enum { D = 3 };
    const float X[4 * D] = {1, 0, 0, 0.9f, 0.1f, 0, 0, 1, 0, 0, 0, 1};
    const char *labels[4] = {"a", "a", "b", "c"}; // b and c have one example each: no folds possible
    seslm_intent_head *h = auto_head(D, 1);
    CHECK(seslm_intent_fit(h, X, labels, 4) == SESLM_OK);
    const seslm_intent_selection *s = seslm_intent_get_selection(h);
    CHECK(s->folds == 1 && s->C == 10.0 && isnan(s->cv_accuracy) && h->temperature == 1.0f);
    for (int i = 0; i < 4; i++) {
        seslm_intent_result r;
        CHECK(seslm_intent_predict(h, X + i * D, NULL, &r) == SESLM_OK);
        CHECK_MSG(strcmp(seslm_intent_label(h, r.index), labels[i]) == 0, "row %d predicted %s", i,
                  seslm_intent_label(h, r.index));
    }
    seslm_intent_free(h);
}

/* Adam moments, step count and generator state travel with the head: learning after save + load gives
 * the same weights, bit for bit, as learning on the head that was never saved. */
static void test_adam_state_roundtrip(void) {
    enum { C = 3, per = 8, D = 6, n = C * per };
    float X[n * D];
    const char *labels[n];
    for (int i = 0; i < n; i++) {
        for (int d = 0; d < D; d++) X[i * D + d] = (float)(nrand() + (d == i % C ? 3 : 0));
        labels[i] = NAMES[i % C];
    }
    seslm_intent_head *h = auto_head(D, 9);
    CHECK(seslm_intent_fit(h, X, labels, n) == SESLM_OK);
    float x1[D], x2[D];
    for (int d = 0; d < D; d++) x1[d] = (float)nrand(), x2[d] = (float)nrand();
    const char *l1 = "delta", *l2 = "alpha";
    CHECK(seslm_intent_learn(h, x1, &l1, 1, 1, NULL) == SESLM_OK); // moments are non-zero from here
    CHECK(h->adam_t > 0);
    char path[] = "/tmp/seslm_intent_auto_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    CHECK(seslm_intent_save(h, path, NULL) == SESLM_OK);
    seslm_intent_head *g = NULL;
    CHECK(seslm_intent_load(&g, path, NULL) == SESLM_OK);
    unlink(path);
    if (!g) {
        seslm_intent_free(h);
        return;
    }
    CHECK(g->adam_t == h->adam_t && g->rng == h->rng && g->n_layers == h->n_layers);
    CHECK(seslm_intent_learn(h, x2, &l2, 1, 1, NULL) == SESLM_OK);
    CHECK(seslm_intent_learn(g, x2, &l2, 1, 1, NULL) == SESLM_OK);
    int same = 1;
    for (int l = 0; l < h->n_layers; l++) {
        const size_t nw = (size_t)h->dims[l + 1] * h->dims[l];
        same &= memcmp(h->W[l], g->W[l], nw * sizeof(float)) == 0;
        same &= memcmp(h->vW[l], g->vW[l], nw * sizeof(float)) == 0;
        same &= memcmp(h->b[l], g->b[l], (size_t)h->dims[l + 1] * sizeof(float)) == 0;
    }
    CHECK_MSG(same, "online learning after a reload differs from learning without one");
    seslm_intent_free(g);
    seslm_intent_free(h);
}

/* The replay buffer grows geometrically when full, not on every add (it once doubled per feedback: the ASan
 * soak asked for 28 GB after a few dozen). */
static void test_replay_growth(void) {
    seslm_intent_head *h = auto_head(4, 2);
    const float X[8] = {1, 0, 0, 0, 0, 1, 0, 0};
    const char *lab[2] = {"a", "b"};
    CHECK(seslm_intent_learn(h, X, lab, 2, 1, NULL) == SESLM_OK);
    char name[32];
    for (int i = 0; i < 60; i++) { // new intents: every feedback adds a replay row
        float x[4] = {(float)(i % 7), 1, (float)(i % 3), 0.5f};
        snprintf(name, sizeof name, "intent_%d", i);
        const char *l = name;
        CHECK(seslm_intent_learn(h, x, &l, 1, 1, NULL) == SESLM_OK);
    }
    CHECK_MSG(h->n_replay == 62 && h->cap_replay <= 2 * h->n_replay + 2, "replay %d rows in a buffer of %d", h->n_replay,
              h->cap_replay);
    seslm_intent_free(h);
}

int main(void) {
    test_rand_seed(777);
    test_replay_growth();
    test_auto_linear();
    test_auto_needs_capacity();
    test_auto_grows_when_it_pays();
    test_auto_single_example();
    test_adam_state_roundtrip();
    return test_report("test_intent_auto");
}
