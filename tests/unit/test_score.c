/* test_score.c — importance scores on the tiny model with a provably dormant head (layer 1, head 1:
 * its V rows and V bias are zero, so its context is exactly zero and it contributes nothing) and a
 * provably dormant neuron (layer 0, neuron 5: zero input weights and bias -10, so GELU gives ~-8e-23).
 * Both methods ("activation" from telemetry, "measured" by masking on calibration text) must score
 * them lowest of their kind; embedding rows score the token counts; the scores file is valid JSON; the
 * profile lists the dormant neuron and the dormant head (zero output norm). */
#include "profile.h"
#include "score.h"
#include "seslm.h"
#include "telemetry.h"
#include "test.h"
#include "tiny_model.h"

#include <cjson/cJSON.h>

static const char *texts[] = {
    "the cat sat on the mat", "hello world", "the quick brown fox jump over the lazy dog", "it is good",
    "a dog is bad", "emb token ##s", "the dog sat", "hello cat , world !", "x y z", "is it a fox ?",
    "the lazy cat run", "good dog", "running over the mat", "the token is good", "a brown dog sat on it",
    "hello hello world",
};
enum { NT = sizeof texts / sizeof texts[0], DL = 1, DH = 1, NL = 0, NN = 5 };

int main(void) {
    char *root = tm_mkdtemp("score");
    tm_model tm;
    tm_init(&tm, 11);
    const int C = tm.hidden, D = tm.head_dim;
    tm_tensor *vw = tm_findf(&tm, "encoder.layer.%d.attention.self.value.weight", DL);
    tm_tensor *vb = tm_findf(&tm, "encoder.layer.%d.attention.self.value.bias", DL);
    for (int r = DH * D; r < (DH + 1) * D; r++) {
        memset(vw->f + (size_t)r * C, 0, (size_t)C * sizeof(float));
        vb->f[r] = 0;
    }
    tm_tensor *w1 = tm_findf(&tm, "encoder.layer.%d.intermediate.dense.weight", NL);
    tm_tensor *b1 = tm_findf(&tm, "encoder.layer.%d.intermediate.dense.bias", NL);
    memset(w1->f + (size_t)NN * C, 0, (size_t)C * sizeof(float));
    b1->f[NN] = -10.0f;
    CHECK(tm_write(&tm, root, NULL));
    tm_free(&tm);
    seslm_model *m = NULL;
    CHECK(seslm_model_load(&m, root) == SESLM_OK);
    if (!m) return test_report("test_score");
    const seslm_model_config *c = seslm_model_get_config(m);

    // telemetry over the texts
    seslm_encoder *e = NULL;
    seslm_encoder_opts eo = {.backend = "cpu", .n_threads = 1, .max_batch = 8};
    CHECK(seslm_encoder_new(&e, m, &eo) == SESLM_OK);
    seslm_telemetry *tel = NULL;
    CHECK(seslm_telemetry_new(&tel, m, NULL) == SESLM_OK);
    seslm_encoder_set_telemetry(e, tel);
    float out[8 * 16];
    for (int i = 0; i < NT; i += 8) CHECK(seslm_encoder_embed_texts(e, texts + i, NULL, 8, out) == SESLM_OK);
    seslm_encoder_set_telemetry(e, NULL);
    seslm_telemetry_view v;
    seslm_telemetry_snapshot(tel, &v);

    seslm_calib cal;
    CHECK(seslm_calib_init(&cal, e, C, texts, NULL, NT, 8) == SESLM_OK);
    double mc = 0, p5 = 0;
    CHECK(seslm_calib_eval(&cal, NULL, NULL, &mc, &p5) == SESLM_OK);
    CHECK_MSG(fabs(mc - 1) < 1e-6 && fabs(p5 - 1) < 1e-6, "unmasked: mean %g p5 %g", mc, p5);

    int nm = 0;
    const seslm_score_method *tab = seslm_score_methods(&nm);
    CHECK(nm >= 2);
    CHECK(seslm_score_method_find("activation") && seslm_score_method_find("measured"));
    CHECK(!seslm_score_method_find("nope"));
    seslm_scores sc[4];
    seslm_score_ctx ctx = {.m = m, .tel = &v, .calib = &cal, .neuron_groups = 64};
    for (int k = 0; k < nm && k < 4; k++) {
        CHECK_MSG(seslm_score_run(tab[k].name, &ctx, &sc[k]) == SESLM_OK, "%s: %s", tab[k].name, seslm_last_error());
        const seslm_scores *s = &sc[k];
        const double dh = s->head[DL][DH], dn = s->neuron[NL][NN];
        for (int l = 0; l < c->n_layers; l++) {
            for (int h = 0; h < c->layers[l].n_heads; h++)
                if (l != DL || h != DH)
                    CHECK_MSG(s->head[l][h] > dh + 1e-7, "%s: head %d.%d scores %g <= dormant %g", s->method, l, h,
                              s->head[l][h], dh);
            for (int f = 0; f < c->layers[l].ffn_dim; f++)
                if (l != NL || f != NN)
                    CHECK_MSG(s->neuron[l][f] > dn + 1e-9, "%s: neuron %d.%d scores %g <= dormant %g", s->method, l, f,
                              s->neuron[l][f], dn);
            CHECK_MSG(s->layer[l] > 0, "%s: layer %d scores %g", s->method, l, s->layer[l]);
        }
        CHECK_MSG(fabs(dh) < 1e-6, "%s: dormant head scores %g", s->method, dh);
        CHECK_MSG(fabs(dn) < 1e-6, "%s: dormant neuron scores %g", s->method, dn);
        // embedding rows = token counts ([CLS] once per text)
        CHECK(s->emb_row[2] == NT);
        CHECK(s->emb_row[4] == 0); // [MASK] never seen
    }
    // the measured method needs calibration, the activation method telemetry
    seslm_scores bad;
    seslm_score_ctx no_cal = {.m = m, .tel = &v};
    CHECK(seslm_score_run("measured", &no_cal, &bad) == SESLM_ERR_ARG);
    seslm_score_ctx no_tel = {.m = m, .calib = &cal};
    CHECK(seslm_score_run("activation", &no_tel, &bad) == SESLM_ERR_ARG);
    CHECK(seslm_score_run("nope", &ctx, &bad) == SESLM_ERR_ARG);

    // the JSON file
    char path[4200];
    snprintf(path, sizeof path, "%s/scores.json", root);
    const seslm_scores *sp[2] = {&sc[0], &sc[1]};
    CHECK(seslm_scores_write_json(sp, 2, path) == SESLM_OK);
    FILE *f = fopen(path, "rb");
    char *buf = calloc(1 << 20, 1);
    size_t n = f && buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    if (f) fclose(f);
    cJSON *j = n ? cJSON_Parse(buf) : NULL;
    CHECK(j != NULL);
    const cJSON *ms = cJSON_GetObjectItem(j, "methods");
    const cJSON *act = cJSON_GetObjectItem(ms, "activation"), *mea = cJSON_GetObjectItem(ms, "measured");
    CHECK(act && mea);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(act, "layers")) == c->n_layers);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(mea, "embedding_rows")) == c->vocab_size);
    cJSON_Delete(j);
    free(buf);

    // the profile
    seslm_policy pol;
    seslm_policy_default(&pol);
    snprintf(path, sizeof path, "%s/profile.json", root);
    CHECK(seslm_profile_write_json(&v, &pol, seslm_model_tokenizer(m), path) == SESLM_OK);
    f = fopen(path, "rb");
    buf = calloc(1 << 22, 1);
    n = f && buf ? fread(buf, 1, (1 << 22) - 1, f) : 0;
    if (f) fclose(f);
    j = n ? cJSON_Parse(buf) : NULL;
    CHECK(j != NULL);
    const cJSON *pl = cJSON_GetObjectItem(j, "layers");
    const cJSON *dorm = cJSON_GetObjectItem(cJSON_GetArrayItem(pl, NL), "dormant_neurons");
    const cJSON *low = cJSON_GetObjectItem(cJSON_GetArrayItem(pl, DL), "low_contribution_heads");
    int found_n = 0, found_h = 0;
    for (const cJSON *x = dorm ? dorm->child : NULL; x; x = x->next) found_n |= x->valueint == NN;
    for (const cJSON *x = low ? low->child : NULL; x; x = x->next) found_h |= x->valueint == DH;
    CHECK_MSG(found_n, "profile: neuron %d.%d not listed as dormant", NL, NN);
    CHECK_MSG(found_h, "profile: head %d.%d not listed as low-contribution", DL, DH);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "sequences")) == NT);
    cJSON_Delete(j);
    free(buf);

    for (int k = 0; k < nm && k < 4; k++) seslm_scores_free(&sc[k]);
    seslm_calib_free(&cal);
    seslm_telemetry_free(tel);
    seslm_encoder_free(e);
    seslm_model_free(m);
    tm_rmtree(root);
    free(root);
    return test_report("test_score");
}
