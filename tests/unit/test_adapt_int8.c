/* test_adapt_int8.c — LoRA on INT8 students (adapt.h adapt_write_served), on the tiny random model:
 *   - an INT8 student with compressed embeddings and its F32 master (as seslm recompile writes it); the
 *     adapters are trained on the master (seslm_parent_load);
 *   - a zero adapter (B = 0) merged and re-quantized gives back the base's tensors byte for byte (INT8
 *     weights and scales included), in the base's order;
 *   - a non-zero adapter: each INT8 projection is seslm_quantize_weight of master + s B A (recompile's
 *     quantizer), every other tensor (compressed word rows, biases, norms) is the base's; OUT/master is
 *     the merged F32 master, named by config.json, so the next cycle's seslm_parent_load takes it; the
 *     output loads and embeds, and a SHA256SUMS manifest checks;
 *   - without a master (widened weights) a zero adapter gives back the INT8 values exactly;
 *   - a 2:4-sparse base is refused. */
#include "adapt.h"
#include "model_internal.h"
#include "model_verify.h"
#include "parent.h"
#include "plan.h"
#include "quant.h"
#include "recompile.h"
#include "test.h"
#include "tiny_model.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static char *g_root;

static seslm_status recompile_none(const seslm_model *m, const seslm_recompile_opts *o, const char *name) {
    char path[4096], out[4096];
    snprintf(path, sizeof path, "%s/none.json", g_root);
    FILE *f = fopen(path, "w");
    if (!f) return SESLM_ERR_IO;
    fprintf(f, "{\"format\": \"seslm-plan\", \"version\": 1, \"method\": \"test\", \"layers\": [{\"layer\": 0}, {\"layer\": 1}]}\n");
    fclose(f);
    seslm_plan pl;
    seslm_status st = seslm_plan_read_json(&pl, seslm_model_get_config(m), path);
    snprintf(out, sizeof out, "%s/%s", g_root, name);
    if (st == SESLM_OK) st = seslm_recompile_run(m, &pl, o, out, NULL);
    if (st == SESLM_OK) seslm_plan_free(&pl);
    return st;
}

/* Tensors of b that differ from a's (names, dtypes, shapes and bytes); -1 when the lists differ in order. */
static int tensors_differing(const seslm_model *a, const seslm_model *b, int projections_only_ok) {
    const st_file *x = &a->st, *y = &b->st;
    if (x->n_tensors != y->n_tensors) return -1;
    int diff = 0;
    for (int i = 0; i < x->n_tensors; i++) {
        const st_tensor *s = &x->tensors[i], *t = &y->tensors[i];
        if (strcmp(s->name, t->name) || s->dtype != t->dtype || s->numel != t->numel) return -1;
        if (s->nbytes == t->nbytes && memcmp(s->data, t->data, s->nbytes) == 0) continue;
        diff++;
        if (projections_only_ok && !strstr(s->name, "dense.weight") && !strstr(s->name, "self.")) {
            CHECK_MSG(0, "a tensor the adapters do not touch changed: %s", s->name);
        }
    }
    return diff;
}

static seslm_model *load(const char *dir) {
    seslm_model *m = NULL;
    CHECK_MSG(seslm_model_load(&m, dir) == SESLM_OK, "load %s: %s", dir, seslm_last_error());
    return m;
}

/* out = base's adapters written in the base's format; B zero when zero_b. */
static seslm_status adapt_out(const char *base, int zero_b, const char *out, lora *lo_out) {
    seslm_parent p;
    seslm_status st = seslm_parent_load(&p, base);
    if (st != SESLM_OK) return st;
    seslm_model *served = load(base);
    dm_model dm;
    lora lo;
    memset(&lo, 0, sizeof lo);
    st = dm_init(&dm, p.m);
    if (st == SESLM_OK) st = lora_init(&lo, &dm, 2, 4.0f, 5);
    for (int k = 0; st == SESLM_OK && !zero_b && k < lo.n_targets; k++) // B: small non-zero values
        for (size_t i = 0; i < (size_t)lo.t[k].out * lo.rank; i++) lo.params[lo.t[k].b_off + i] = 0.05f * tm_rand_sym();
    if (st == SESLM_OK && served) st = adapt_write_served(served, p.m, p.kind == SESLM_PARENT_MASTER, &lo, out, "{\"note\":\"t\"}");
    if (lo_out) *lo_out = lo;
    else lora_free(&lo);
    dm_free(&dm);
    seslm_model_free(served);
    seslm_parent_free(&p);
    return st;
}

int main(void) {
    g_root = tm_mkdtemp("adapt_int8");
    tm_model tm;
    tm_init(&tm, 31);
    char dir[4096], fdir[4096], qdir[4096], mdir[4200], out[4200];
    snprintf(dir, sizeof dir, "%s/parent", g_root);
    mkdir(dir, 0755);
    CHECK(tm_write(&tm, dir, NULL));
    seslm_model *parent = load(dir);
    if (!parent) return test_report("test_adapt_int8");
    // the F32 student, then its INT8 + compressed-embedding form with the F32 one as its master
    seslm_recompile_opts f32o = {.ridge = 1e-3};
    CHECK_MSG(recompile_none(parent, &f32o, "f32") == SESLM_OK, "%s", seslm_last_error());
    snprintf(fdir, sizeof fdir, "%s/f32", g_root);
    snprintf(qdir, sizeof qdir, "%s/q8", g_root);
    snprintf(mdir, sizeof mdir, "%s/q8/master", g_root);
    seslm_model *f = load(fdir);
    if (!f) return test_report("test_adapt_int8");
    seslm_recompile_opts qo = {.ridge = 1e-3, .quantize_int8 = 1, .compress_embeddings = SESLM_EMB_INT8, .n_exact = 4,
                               .keep_lineage = 1, .master_sha256 = seslm_model_weights_sha256(f)};
    CHECK_MSG(recompile_none(f, &qo, "q8") == SESLM_OK, "%s", seslm_last_error());
    seslm_model_free(f);
    CHECK(rename(fdir, mdir) == 0);
    seslm_model *q8 = load(qdir);
    CHECK(q8 && seslm_model_is_quantized(q8) && q8->lw[0].q_q && !q8->word.f32);

    // a zero adapter: the base's bytes, every tensor
    snprintf(out, sizeof out, "%s/zero", g_root);
    CHECK_MSG(adapt_out(qdir, 1, out, NULL) == SESLM_OK, "%s", seslm_last_error());
    seslm_model *z = load(out);
    if (z && q8) CHECK_MSG(tensors_differing(q8, z, 0) == 0, "a zero adapter changed %d tensors", tensors_differing(q8, z, 0));
    seslm_model_free(z);
    CHECK(adapt_out(qdir, 1, out, NULL) == SESLM_ERR_ARG); // never over a model

    // a real adapter: the projections re-quantized from master + s B A, the rest the base's
    snprintf(out, sizeof out, "%s/adapted", g_root);
    lora lo;
    CHECK_MSG(adapt_out(qdir, 0, out, &lo) == SESLM_OK, "%s", seslm_last_error());
    seslm_model *a = load(out);
    if (a && q8) {
        const int nd = tensors_differing(q8, a, 1);
        CHECK_MSG(nd == 2 * 6 * q8->cfg.n_layers, "%d tensors differ (want 6 weights + 6 scales per layer)", nd);
        CHECK(seslm_model_is_quantized(a) && a->lw[1].ff1_q && !a->word.f32);
        // layer 1's FFN-in: recompile's quantizer on the merged master
        seslm_parent p;
        CHECK_MSG(seslm_parent_load(&p, qdir) == SESLM_OK, "%s", seslm_last_error());
        dm_model dm;
        CHECK(dm_init(&dm, p.m) == SESLM_OK);
        lora_apply(&lo, &dm);
        const int F = dm.ly[1].F, C = dm.C;
        int8_t *q = malloc((size_t)F * C);
        float *sc = malloc((size_t)F * sizeof *sc);
        seslm_quantize_weight(q, sc, dm.params + dm.ly[1].ff1_w, F, C);
        const st_tensor *tw = st_find(&a->st, "encoder.layer.1.intermediate.dense.weight"),
                        *ts = st_find(&a->st, "encoder.layer.1.intermediate.dense.weight_scale");
        CHECK(tw && ts && tw->dtype == ST_I8 && memcmp(tw->data, q, (size_t)F * C) == 0 && memcmp(ts->data, sc, (size_t)F * 4) == 0);
        free(q), free(sc);
        dm_free(&dm);
        seslm_parent_free(&p);
        // the next cycle starts from the merged master (recorded hash checked by seslm_parent_load)
        CHECK_MSG(seslm_parent_load(&p, out) == SESLM_OK, "%s", seslm_last_error());
        CHECK(p.kind == SESLM_PARENT_MASTER);
        if (p.m) {
            dm_model mm;
            CHECK(dm_init(&mm, p.m) == SESLM_OK && dm_init(&dm, p.m) == SESLM_OK);
            seslm_parent q8p;
            CHECK(seslm_parent_load(&q8p, qdir) == SESLM_OK);
            dm_model base;
            CHECK(dm_init(&base, q8p.m) == SESLM_OK);
            lora_apply(&lo, &base);
            CHECK_MSG(memcmp(base.params, mm.params, mm.n_params * sizeof(float)) == 0, "the master is not base + s B A");
            dm_free(&base), dm_free(&mm), dm_free(&dm);
            seslm_parent_free(&q8p);
        }
        seslm_parent_free(&p);
        // it embeds, and its manifest checks
        seslm_encoder *e = NULL;
        seslm_encoder_opts eo = {.backend = "cpu", .n_threads = 1, .max_batch = 2};
        const char *texts[] = {"the lazy fox", "hello cat"};
        float emb[2 * 64];
        CHECK(seslm_encoder_new(&e, a, &eo) == SESLM_OK && seslm_encoder_embed_texts(e, texts, NULL, 2, emb) == SESLM_OK);
        seslm_encoder_free(e);
        const char *how = NULL;
        CHECK_MSG(model_verify_dir(out, &how) == SESLM_OK && how && !strcmp(how, "manifest"), "%s", seslm_last_error());
    }
    lora_free(&lo);
    seslm_model_free(a);

    // no master: trained on the widened weights; a zero adapter keeps every INT8 value
    CHECK(rename(mdir, fdir) == 0);
    snprintf(out, sizeof out, "%s/widened", g_root);
    CHECK_MSG(adapt_out(qdir, 1, out, NULL) == SESLM_OK, "%s", seslm_last_error());
    seslm_model *w = load(out);
    if (w && q8) {
        int qsame = 1;
        double worst = 0;
        for (int i = 0; i < q8->st.n_tensors; i++) {
            const st_tensor *s = &q8->st.tensors[i], *t = st_find(&w->st, s->name);
            if (!t || t->nbytes != s->nbytes) qsame = 0;
            else if (s->dtype == ST_I8) qsame &= memcmp(s->data, t->data, s->nbytes) == 0;
            else if (strstr(s->name, "_scale"))
                for (int64_t k = 0; k < s->numel; k++) {
                    const float x = ((const float *)s->data)[k], y = ((const float *)t->data)[k];
                    worst = fmax(worst, fabs((double)x - y) / (fabs((double)x) + 1e-30));
                }
        }
        CHECK(qsame);
        CHECK_MSG(worst < 1e-6, "widened round trip: scales off by %g (relative)", worst);
        struct stat sb;
        char mp[4300];
        snprintf(mp, sizeof mp, "%s/master", out);
        CHECK(stat(mp, &sb) != 0); // no master to write: the base had none
    }
    seslm_model_free(w);
    seslm_model_free(q8);

    // 2:4-sparse FFNs: refused with a message
    seslm_recompile_opts so = {.ridge = 1e-3, .sparse24_ffn = 1};
    CHECK_MSG(recompile_none(parent, &so, "sp") == SESLM_OK, "%s", seslm_last_error());
    snprintf(dir, sizeof dir, "%s/sp", g_root);
    snprintf(out, sizeof out, "%s/sp-out", g_root);
    seslm_model *sp = load(dir);
    if (sp && sp->lw[0].ff1_sv) {
        const seslm_status st = adapt_out(dir, 1, out, NULL);
        CHECK_MSG(st == SESLM_ERR_ARG && strstr(seslm_last_error(), "2:4"), "st %d: %s", st, seslm_last_error());
    } else {
        CHECK_MSG(0, "the tiny model's 2:4 student has no sparse FFN");
    }
    seslm_model_free(sp);
    seslm_model_free(parent);
    tm_free(&tm);
    tm_rmtree(g_root);
    free(g_root);
    return test_report("test_adapt_int8");
}
