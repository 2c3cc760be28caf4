/* test_lora.c — LoRA adapters (pipeline/adapt/lora.h, adapt.h) on a tiny random model:
 *   - with B = 0 the adapted weights are the base weights, bit for bit;
 *   - the adapters' gradient (dA = s B^T dW, dB = s dW A^T from the encoder's backward) against central
 *     finite differences of a scalar loss of the embeddings, on entries of A and B of several targets;
 *   - save / load round trip is exact; an adapter for another model shape is refused;
 *   - the merged model directory loads like any model, gives the adapted embeddings, keeps the tokenizer
 *     files byte-identical, and records its lineage;
 *   - SetFit-style training on a toy labelled set lowers the contrastive loss. */
#include "adapt.h"
#include "test.h"
#include "tiny_model.h"

#include <unistd.h>

static double loss_of(dm_model *dm, const lora *lo, const seslm_backend *be, dm_acts *a, const int32_t *const *rows,
                      const int *lens, int B, const float *r) {
    lora_apply(lo, dm);
    dm_forward(dm, be, a, rows, lens, B);
    double s = 0;
    for (int i = 0; i < B * dm->C; i++) s += (double)a->emb[i] * r[i];
    return s;
}

static int same_file(const char *a, const char *b) {
    FILE *f = fopen(a, "rb"), *g = fopen(b, "rb");
    int same = f && g;
    while (same) {
        int x = fgetc(f), y = fgetc(g);
        if (x != y) same = 0;
        if (x == EOF || y == EOF) break;
    }
    if (f) fclose(f);
    if (g) fclose(g);
    return same;
}

int main(void) {
    char dir[] = "/tmp/test_lora_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char mdir[512], odir[512], adir[512];
    snprintf(mdir, sizeof mdir, "%s/model", dir);
    snprintf(odir, sizeof odir, "%s/merged", dir);
    snprintf(adir, sizeof adir, "%s/adapter.safetensors", dir);
    tm_model tm;
    tm_init(&tm, 7);
    CHECK(mkdir(mdir, 0755) == 0 && tm_write(&tm, mdir, NULL));
    seslm_model *m = NULL;
    CHECK_MSG(seslm_model_load(&m, mdir) == SESLM_OK, "%s", seslm_last_error());
    const seslm_backend *be = seslm_backend_get("cpu-ref");
    CHECK(be && be->linear_backward);
    be->set_threads(1);
    dm_model dm;
    CHECK(dm_init(&dm, m) == SESLM_OK);
    lora lo;
    CHECK(lora_init(&lo, &dm, 2, 4.0f, 11) == SESLM_OK);
    CHECK(lo.n_targets == 4 * dm.L && lo.scale == 2.0f);

    // B = 0: the base weights exactly
    lora_apply(&lo, &dm);
    CHECK(memcmp(dm.params, lo.base, dm.n_params * sizeof(float)) == 0);

    // gradients against finite differences, with B made non-zero
    for (size_t i = 0; i < lo.n_params; i++) lo.params[i] = 0.3f * tm_rand_sym();
    enum { B = 2 };
    const int32_t s0[] = {2, 7, 9, 10, 5, 11, 3}, s1[] = {2, 12, 13, 32, 3};
    const int32_t *rows[B] = {s0, s1};
    const int lens[B] = {7, 5};
    dm_acts a;
    CHECK(dm_acts_init(&a, &dm, 16, B, 8, 1) == SESLM_OK);
    float r[B * 16], *grad = calloc(dm.n_params, sizeof(float)), *lg = calloc(lo.n_params, sizeof(float));
    for (int i = 0; i < B * dm.C; i++) r[i] = tm_rand_sym();
    loss_of(&dm, &lo, be, &a, rows, lens, B, r);
    dm_backward(&dm, be, &a, r, NULL, NULL, NULL, grad, 0); // d loss / d emb = r
    lora_grad(&lo, grad, lg);
    int checked = 0, bad = 0;
    double worst = 0;
    for (int k = 0; k < lo.n_targets; k++) { // every target: each kind in both layers
        const lora_target *t = &lo.t[k];
        const size_t picks[2] = {t->a_off + (size_t)(k * 7) % ((size_t)lo.rank * t->in),
                                 t->b_off + (size_t)(k * 5) % ((size_t)t->out * lo.rank)};
        for (int p = 0; p < 2; p++) {
            const size_t i = picks[p];
            const float keep = lo.params[i], h = 1e-2f;
            lo.params[i] = keep + h;
            const double fp = loss_of(&dm, &lo, be, &a, rows, lens, B, r);
            lo.params[i] = keep - h;
            const double fm = loss_of(&dm, &lo, be, &a, rows, lens, B, r);
            lo.params[i] = keep;
            const double fd = (fp - fm) / (2 * h), an = lg[i];
            const double err = fabs(fd - an) / (fabs(fd) + fabs(an) + 1e-3);
            worst = err > worst ? err : worst;
            bad += !(err < 2e-2) || isnan(an);
            checked++;
        }
    }
    CHECK_MSG(checked == 2 * lo.n_targets && bad == 0, "%d of %d adapter gradients off (worst relative error %.3g)", bad, checked, worst);

    // save / load: exact; a model of another shape refuses the file
    CHECK(lora_save(&lo, adir, seslm_model_weights_sha256(m)) == SESLM_OK);
    lora back;
    memset(&back, 0, sizeof back);
    char sha[65];
    CHECK_MSG(lora_load(&back, &dm, adir, sha) == SESLM_OK, "%s", seslm_last_error());
    CHECK(back.rank == 2 && back.n_params == lo.n_params && memcmp(back.params, lo.params, lo.n_params * sizeof(float)) == 0);
    CHECK(strcmp(sha, seslm_model_weights_sha256(m)) == 0);
    lora_free(&back);
    // a corrupt file: a value beyond 1e6 (merged it could overflow the weights) or a rank of 0 is refused, naming it
    {
        char bdir[512];
        snprintf(bdir, sizeof bdir, "%s/big.safetensors", dir);
        const float keep0 = lo.params[0];
        lo.params[0] = 2e6f;
        CHECK(lora_save(&lo, bdir, NULL) == SESLM_OK);
        lo.params[0] = keep0;
        CHECK_MSG(lora_load(&back, &dm, bdir, NULL) == SESLM_ERR_FORMAT && strstr(seslm_last_error(), "beyond 1e6") &&
                      strstr(seslm_last_error(), "big.safetensors") && back.params == NULL,
                  "%s", seslm_last_error());
        lora z = lo; // the same adapters under rank "0"
        z.rank = 0;
        CHECK(lora_save(&z, bdir, NULL) == SESLM_OK);
        CHECK_MSG(lora_load(&back, &dm, bdir, NULL) == SESLM_ERR_FORMAT && strstr(seslm_last_error(), "rank '0'") &&
                      strstr(seslm_last_error(), "big.safetensors"),
                  "%s", seslm_last_error());
    }
    char pdir[512];
    snprintf(pdir, sizeof pdir, "%s/pruned", dir);
    tm_model tp;
    tm_prune(&tp, &tm, 0, 2, 12);
    CHECK(mkdir(pdir, 0755) == 0 && tm_write(&tp, pdir, NULL));
    seslm_model *pm = NULL;
    dm_model pd;
    CHECK(seslm_model_load(&pm, pdir) == SESLM_OK && dm_init(&pd, pm) == SESLM_OK);
    CHECK_MSG(lora_load(&back, &pd, adir, NULL) == SESLM_ERR_SHAPE, "a pruned model must refuse the adapter: %s",
              seslm_last_error());
    dm_free(&pd);
    seslm_model_free(pm);
    tm_free(&tp);

    // the merged model: loads, embeds like the adapted dm, tokenizer files identical, lineage recorded
    CHECK_MSG(adapt_write_merged(m, &lo, odir, "{\"note\":\"test\"}") == SESLM_OK, "%s", seslm_last_error());
    CHECK(adapt_write_merged(m, &lo, odir, NULL) == SESLM_ERR_ARG); // never over a model
    seslm_model *mm = NULL;
    CHECK_MSG(seslm_model_load(&mm, odir) == SESLM_OK, "%s", seslm_last_error());
    if (mm) {
        dm_model md;
        CHECK(dm_init(&md, mm) == SESLM_OK);
        lora_apply(&lo, &dm);
        double maxd = 0;
        for (size_t i = dm.train_begin; i < dm.n_params; i++) {
            const double d = fabs((double)md.params[i] - dm.params[i]);
            maxd = d > maxd ? d : maxd;
        }
        CHECK_MSG(maxd == 0, "merged weights differ from base + s B A by %g", maxd);
        dm_free(&md);
        seslm_model_free(mm);
    }
    char f1[600], f2[600];
    snprintf(f1, sizeof f1, "%s/vocab.txt", mdir);
    snprintf(f2, sizeof f2, "%s/vocab.txt", odir);
    CHECK(same_file(f1, f2));
    snprintf(f1, sizeof f1, "%s/1_Pooling/config.json", mdir);
    snprintf(f2, sizeof f2, "%s/1_Pooling/config.json", odir);
    CHECK(same_file(f1, f2));
    snprintf(f2, sizeof f2, "%s/config.json", odir);
    char *cfg = NULL;
    size_t cl = 0;
    FILE *cf = fopen(f2, "rb");
    if (cf) {
        cfg = calloc(1, 1 << 16);
        cl = fread(cfg, 1, (1 << 16) - 1, cf);
        fclose(cf);
    }
    CHECK(cfg && cl > 0 && strstr(cfg, "\"adapter\"") && strstr(cfg, "base_weights_sha256") && strstr(cfg, "\"note\""));
    free(cfg);

    // training lowers the contrastive loss on a toy set of two "intents"
    const char *texts[] = {"the cat sat", "the cat sat on the mat", "a cat is good", "the dog run", "a dog is bad",
                           "the lazy dog", "hello world", "hello the world", "world hello"};
    const char *labels[] = {"cat", "cat", "cat", "dog", "dog", "dog", "greet", "greet", "greet"};
    adapt_opts o;
    adapt_opts_default(&o);
    o.rank = 4, o.steps = 60, o.pairs = 6, o.lr = 5e-3f, o.threads = 1, o.max_tokens = 8;
    lora tr;
    adapt_report rep;
    CHECK_MSG(adapt_train(&o, m, texts, labels, 9, &tr, &rep) == SESLM_OK, "%s", seslm_last_error());
    CHECK_MSG(rep.steps_done == 60 && rep.loss_last < 0.8 * rep.loss_first, "loss %.4f -> %.4f in %d steps", rep.loss_first,
              rep.loss_last, rep.steps_done);
    lora_free(&tr);
    const char *one[] = {"a", "a", "a"};
    CHECK(adapt_train(&o, m, texts, one, 3, &tr, &rep) == SESLM_ERR_ARG); // one intent: nothing to contrast

    free(grad), free(lg);
    dm_acts_free(&a);
    lora_free(&lo);
    dm_free(&dm);
    seslm_model_free(m);
    tm_free(&tm);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    return test_report("test_lora");
}
