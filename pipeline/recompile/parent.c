/* parent.c — loading the model a cycle starts from: F32 as is, an INT8 student's F32 master, or the
 * INT8 student widened (parent.h). */
#include "parent.h"
#include "model_internal.h"
#include "recompile.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *seslm_parent_kind_name(seslm_parent_kind k) {
    return k == SESLM_PARENT_MASTER ? "f32 master" : k == SESLM_PARENT_WIDENED ? "int8 widened to f32" : "f32";
}

/* The "seslm_master" sha256 that dir's config.json records ("" when none). */
static void recorded_master_sha(const char *dir, char *sha, size_t cap) {
    char path[4200], *txt = NULL;
    size_t n = 0;
    sha[0] = 0;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (util_read_file(path, &txt, &n, 16 << 20, NULL) != SESLM_OK) return;
    cJSON *r = cJSON_ParseWithLength(txt, n);
    free(txt);
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(r, "seslm_master");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(ms, "weights_sha256");
    if (cJSON_IsString(s)) snprintf(sha, cap, "%s", s->valuestring);
    cJSON_Delete(r);
}

seslm_status seslm_parent_load(seslm_parent *p, const char *dir) {
    memset(p, 0, sizeof *p);
    seslm_model *served = NULL;
    seslm_status st = seslm_model_load(&served, dir);
    if (st != SESLM_OK) return st;
    snprintf(p->served_sha256, sizeof p->served_sha256, "%s", seslm_model_weights_sha256(served));
    char mdir[4200];
    struct stat sb;
    snprintf(mdir, sizeof mdir, "%s/master/config.json", dir);
    const int has_master = stat(mdir, &sb) == 0;
    snprintf(mdir, sizeof mdir, "%s/master", dir);
    if (!has_master) {
        p->m = served;
        snprintf(p->weights_dir, sizeof p->weights_dir, "%s", dir);
        if (!seslm_model_is_quantized(served)) return SESLM_OK;
        p->kind = SESLM_PARENT_WIDENED;
        if ((st = seslm_model_widen(served)) != SESLM_OK) {
            seslm_model_free(served);
            p->m = NULL;
        }
        return st;
    }
    seslm_model *m = NULL;
    if ((st = seslm_model_load(&m, mdir)) != SESLM_OK) {
        seslm_model_free(served);
        return st;
    }
    char want[80];
    recorded_master_sha(dir, want, sizeof want);
    const seslm_model_config *a = seslm_model_get_config(served), *b = seslm_model_get_config(m);
    int same = a->n_layers == b->n_layers && a->hidden == b->hidden && a->vocab_size == b->vocab_size;
    for (int l = 0; same && l < a->n_layers; l++)
        same = a->layers[l].n_heads == b->layers[l].n_heads && a->layers[l].ffn_dim == b->layers[l].ffn_dim;
    if (!same) st = seslm_fail(SESLM_ERR_FORMAT, "%s: its layer shapes differ from the student's in %s", mdir, dir);
    else if (want[0] && strcmp(want, seslm_model_weights_sha256(m)) != 0)
        st = seslm_fail(SESLM_ERR_FORMAT, "%s: weights sha256 %.16s... but the student records master %.16s...", mdir,
                        seslm_model_weights_sha256(m), want);
    else if (seslm_model_is_quantized(m))
        st = seslm_fail(SESLM_ERR_FORMAT, "%s holds INT8 tensors; a master is F32", mdir);
    seslm_model_free(served);
    if (st != SESLM_OK) {
        seslm_model_free(m);
        return st;
    }
    p->m = m;
    p->kind = SESLM_PARENT_MASTER;
    snprintf(p->weights_dir, sizeof p->weights_dir, "%s", mdir);
    return SESLM_OK;
}

void seslm_parent_free(seslm_parent *p) {
    if (!p) return;
    seslm_model_free(p->m);
    memset(p, 0, sizeof *p);
}
