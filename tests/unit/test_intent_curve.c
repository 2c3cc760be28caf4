/* test_intent_curve.c — the intent head on real data reproduces scikit-learn within a tolerance.
 *
 * SNIPS subset (10 training examples per intent, 20 test per intent, from data/intent/), embedded by the
 * real model; our head trained with seeds 1..3 must reach, on average, the best of scikit-learn's
 * LogisticRegression and MLPClassifier(128, 64) accuracy on the same subset minus 4 points
 * (tests/fixtures/intent/snips_sklearn.json, made by make_fixture.sh from our own embeddings), and
 * more data must not hurt: 10 per intent is at least as good as 3 per intent, on average. */
#include "intent.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <unistd.h>

#ifndef SESLM_MODEL_DIR
#define SESLM_MODEL_DIR SESLM_SOURCE_DIR "/models/all-MiniLM-L6-v2"
#endif

typedef struct {
    char *text[1024], *label[1024];
    int n;
} rows;

/* The first `per` rows of each label of a TSV file with a header (the fixture script's awk rule). */
static int read_first(const char *path, int per, rows *r) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[4096];
    char *seen[64];
    int cnt[64], ns = 0, ln = 0;
    r->n = 0;
    while (fgets(line, sizeof line, f)) {
        if (ln++ == 0) continue;
        line[strcspn(line, "\r\n")] = 0;
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = 0;
        int k = 0;
        while (k < ns && strcmp(seen[k], tab + 1) != 0) k++;
        if (k == ns) seen[ns] = strdup(tab + 1), cnt[ns++] = 0;
        if (cnt[k]++ >= per || r->n >= 1024) continue;
        r->text[r->n] = strdup(line);
        r->label[r->n++] = strdup(tab + 1);
    }
    for (int k = 0; k < ns; k++) free(seen[k]);
    fclose(f);
    return 0;
}

static void rows_free(rows *r) {
    for (int i = 0; i < r->n; i++) free(r->text[i]), free(r->label[i]);
    r->n = 0;
}

static float *embed(seslm_encoder *e, const rows *r, int D) {
    float *X = malloc((size_t)r->n * D * sizeof(float));
    for (int i = 0; i < r->n; i += 32) {
        int nb = r->n - i < 32 ? r->n - i : 32;
        size_t lens[32];
        for (int k = 0; k < nb; k++) lens[k] = strlen(r->text[i + k]);
        if (seslm_encoder_embed_texts(e, (const char *const *)r->text + i, lens, nb, X + (size_t)i * D) != SESLM_OK)
            return NULL;
    }
    return X;
}

static double run(const float *Xtr, const rows *tr, const float *Xte, const rows *te, int D, uint64_t seed) {
    seslm_intent_opts o;
    seslm_intent_opts_default(&o);
    o.input_dim = D;
    o.seed = seed;
    seslm_intent_head *h = NULL;
    if (seslm_intent_new(&h, &o) != SESLM_OK || seslm_intent_fit(h, Xtr, (const char *const *)tr->label, tr->n) != SESLM_OK) {
        fprintf(stderr, "fit: %s\n", seslm_last_error());
        seslm_intent_free(h);
        return 0;
    }
    int right = 0;
    for (int i = 0; i < te->n; i++) {
        seslm_intent_result r;
        seslm_intent_predict(h, Xte + (size_t)i * D, NULL, &r);
        right += strcmp(seslm_intent_label(h, r.index), te->label[i]) == 0;
    }
    seslm_intent_free(h);
    return (double)right / te->n;
}

int main(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", SESLM_MODEL_DIR);
    if (access(path, R_OK) != 0) TEST_SKIP_UNLESS("SESLM_REQUIRE_MODEL", "no model at %s (data/fetch_model.sh)", SESLM_MODEL_DIR);
    snprintf(path, sizeof path, "%s/tests/fixtures/intent/snips_sklearn.json", SESLM_SOURCE_DIR);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (!f) return test_report("test_intent_curve");
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    cJSON *fx = cJSON_Parse(buf);
    double lr = cJSON_GetNumberValue(cJSON_GetObjectItem(fx, "logreg_C1_accuracy"));
    double mlp = cJSON_GetNumberValue(cJSON_GetObjectItem(fx, "mlp_128_64_accuracy_mean"));
    int fx_train = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(fx, "n_train"));
    int fx_test = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(fx, "n_test"));
    cJSON_Delete(fx);
    CHECK(lr > 0.5 && mlp > 0.5);

    rows tr = {0}, tr3 = {0}, te = {0};
    snprintf(path, sizeof path, "%s/data/intent/snips_train50.tsv", SESLM_SOURCE_DIR);
    CHECK(read_first(path, 10, &tr) == 0 && read_first(path, 3, &tr3) == 0);
    snprintf(path, sizeof path, "%s/data/intent/snips_test700.tsv", SESLM_SOURCE_DIR);
    CHECK(read_first(path, 20, &te) == 0);
    CHECK_MSG(tr.n == fx_train && te.n == fx_test, "subset %d/%d, fixture %d/%d", tr.n, te.n, fx_train, fx_test);

    seslm_model *m = NULL;
    seslm_encoder *e = NULL;
    seslm_encoder_opts eo = {.backend = "cpu", .n_threads = 2, .max_batch = 32};
    CHECK(seslm_model_load(&m, SESLM_MODEL_DIR) == SESLM_OK && seslm_encoder_new(&e, m, &eo) == SESLM_OK);
    if (!e) return test_report("test_intent_curve");
    const int D = seslm_model_get_config(m)->hidden;
    float *Xtr = embed(e, &tr, D), *Xtr3 = embed(e, &tr3, D), *Xte = embed(e, &te, D);
    CHECK(Xtr && Xtr3 && Xte);
    double mean10 = 0, mean3 = 0;
    for (uint64_t s = 1; s <= 3; s++) {
        double a10 = run(Xtr, &tr, Xte, &te, D, s), a3 = run(Xtr3, &tr3, Xte, &te, D, s);
        printf("seed %llu: 3 per intent %.3f, 10 per intent %.3f\n", (unsigned long long)s, a3, a10);
        mean10 += a10 / 3, mean3 += a3 / 3;
    }
    const double ref = lr > mlp ? lr : mlp;
    printf("ours: 10 per intent %.3f (3 per intent %.3f); scikit-learn: logreg %.3f, mlp %.3f\n", mean10, mean3, lr, mlp);
    CHECK_MSG(mean10 >= ref - 0.04, "mean accuracy %.3f is more than 4 points below scikit-learn's %.3f", mean10, ref);
    CHECK_MSG(mean10 >= mean3, "10 examples per intent (%.3f) worse than 3 (%.3f)", mean10, mean3);
    free(Xtr), free(Xtr3), free(Xte);
    rows_free(&tr), rows_free(&tr3), rows_free(&te);
    seslm_encoder_free(e);
    seslm_model_free(m);
    return test_report("test_intent_curve");
}
