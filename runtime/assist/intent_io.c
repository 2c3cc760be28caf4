/* intent_io.c — the intent head as a safetensors file: weights, the replay buffer, and the label list
 * plus hyper-parameters in "__metadata__" (string values only, as the format requires; the label list
 * is a JSON array encoded as one string). Written through st_write (temp file + fsync + rename). */
#include "intent_internal.h"
#include "safetensors_write.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

_Static_assert(sizeof(int) == sizeof(int32_t), "fit.count is written from an int array as I32");

#define INTENT_FORMAT "seslm-intent-head"
#define INTENT_VERSION "1"

static void meta_num(cJSON *m, const char *k, double v) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.9g", v);
    cJSON_AddStringToObject(m, k, buf);
}

seslm_status seslm_intent_save(const seslm_intent_head *h, const char *path, const char *model_sha256) {
    if (h->n_classes < 1) return seslm_fail(SESLM_ERR_ARG, "intent head has no classes: nothing to save");
    const seslm_intent_opts *o = &h->o;
    cJSON *m = cJSON_CreateObject(), *labels = cJSON_CreateArray();
    if (!m || !labels) {
        cJSON_Delete(m), cJSON_Delete(labels);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < h->n_classes; i++) cJSON_AddItemToArray(labels, cJSON_CreateString(h->labels[i]));
    char *labels_json = cJSON_PrintUnformatted(labels);
    cJSON_Delete(labels);
    cJSON_AddStringToObject(m, "format", INTENT_FORMAT);
    cJSON_AddStringToObject(m, "version", INTENT_VERSION);
    cJSON_AddStringToObject(m, "labels", labels_json ? labels_json : "[]");
    free(labels_json);
    char hidden[128] = "";
    for (int i = 0; i < o->n_hidden; i++)
        snprintf(hidden + strlen(hidden), sizeof hidden - strlen(hidden), i ? ",%d" : "%d", o->hidden[i]);
    cJSON_AddStringToObject(m, "hidden", hidden);
    meta_num(m, "input_dim", o->input_dim);
    meta_num(m, "temperature", h->temperature);
    meta_num(m, "oos_threshold", o->oos_threshold);
    meta_num(m, "epochs", o->epochs);
    meta_num(m, "batch", o->batch);
    meta_num(m, "lr", o->lr);
    meta_num(m, "weight_decay", o->weight_decay);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    cJSON_AddStringToObject(m, "seed", seed);
    meta_num(m, "calib_frac", o->calib_frac);
    meta_num(m, "replay_per_class", o->replay_per_class);
    meta_num(m, "online_steps", o->online_steps);
    meta_num(m, "online_max_steps", o->online_max_steps);
    meta_num(m, "online_replay", o->online_replay);
    meta_num(m, "online_lr", o->online_lr);
    meta_num(m, "min_in_scope", o->min_in_scope);
    meta_num(m, "feature_layers", o->feature_layers);
    if (h->in_scale) // the block weights folded into the first layer: online learning after a reload needs them
        meta_num(m, "early_weight", o->early_weight);
    if (h->fit_rms > 0) // the fitted weights' scale, which sizes the online steps (seslm_intent_online_rate)
        meta_num(m, "fit_rms", h->fit_rms);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)h->online_updates);
    cJSON_AddStringToObject(m, "online_updates", seed);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)h->rng);
    cJSON_AddStringToObject(m, "rng_state", seed);
    snprintf(seed, sizeof seed, "%ld", h->adam_t);
    cJSON_AddStringToObject(m, "adam_t", seed);
    cJSON_AddStringToObject(m, "model_sha256", model_sha256 ? model_sha256 : "");
    char *meta = cJSON_PrintUnformatted(m);
    cJSON_Delete(m);
    if (!meta) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");

    st_write_tensor t[6 * INTENT_MAX_LAYERS + 4];
    char names[6 * INTENT_MAX_LAYERS][32];
    int nt = 0;
    for (int l = 0; l < h->n_layers; l++) {
        // the weights, then the Adam moments, so that online learning resumes exactly after a reload
        const float *data[6] = {h->W[l], h->b[l], h->mW[l], h->vW[l], h->mb[l], h->vb[l]};
        static const char *fmt[6] = {"layers.%d.weight", "layers.%d.bias", "adam.%d.mW", "adam.%d.vW", "adam.%d.mb", "adam.%d.vb"};
        for (int k = 0; k < 6; k++) {
            snprintf(names[6 * l + k], sizeof names[0], fmt[k], l);
            const int is_w = k == 0 || k == 2 || k == 3;
            t[nt++] = (st_write_tensor){.name = names[6 * l + k], .dtype = ST_F32, .ndim = is_w ? 2 : 1,
                                        .shape = {h->dims[l + 1], is_w ? h->dims[l] : 0}, .data = data[k]};
        }
    }
    t[nt++] = (st_write_tensor){.name = "replay.x", .dtype = ST_F32, .ndim = 2, .shape = {h->n_replay, o->input_dim},
                                .data = h->n_replay ? h->rx : NULL};
    int32_t *ry = malloc((size_t)(h->n_replay ? h->n_replay : 1) * sizeof(int32_t));
    if (!ry) {
        free(meta);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < h->n_replay; i++) ry[i] = h->ry[i];
    t[nt++] = (st_write_tensor){.name = "replay.y", .dtype = ST_I32, .ndim = 1, .shape = {h->n_replay},
                                .data = h->n_replay ? ry : NULL};
    if (h->n_oos_ref > 0) // the in-scope reference (sorted held-out scores); absent when the fit held none out
        t[nt++] = (st_write_tensor){.name = "oos.scores", .dtype = ST_F32, .ndim = 1, .shape = {h->n_oos_ref},
                                    .data = h->oos_ref};
    if (h->fit_count && h->n_classes > 0) // the fit's examples per intent (they size online steps; int and int32_t
        // are the same width on every target we build for, checked below)
        t[nt++] = (st_write_tensor){.name = "fit.count", .dtype = ST_I32, .ndim = 1, .shape = {h->n_classes},
                                    .data = h->fit_count};
    seslm_status st = st_write(path, t, nt, meta);
    free(ry);
    free(meta);
    return st;
}

// ---- load -----------------------------------------------------------------------------------------

/* The "__metadata__" object of a safetensors file (the reader validates the rest). */
static seslm_status read_metadata(const char *path, cJSON **out) {
    *out = NULL;
    FILE *f = NULL; // a FIFO named as the head (a mistyped --intent-head) fails here instead of blocking the node's start
    seslm_status ost = util_fopen_read(path, 0, &f);
    if (ost != SESLM_OK) return ost;
    unsigned char len8[8];
    seslm_status st = SESLM_OK;
    char *hdr = NULL;
    if (fread(len8, 1, 8, f) != 8) st = seslm_fail(SESLM_ERR_FORMAT, "%s: shorter than a safetensors header", path);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | len8[i];
    if (st == SESLM_OK && (n < 2 || n > (64u << 20))) st = seslm_fail(SESLM_ERR_FORMAT, "%s: bad header length %llu", path, (unsigned long long)n);
    if (st == SESLM_OK && !(hdr = malloc(n + 1))) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    if (st == SESLM_OK && fread(hdr, 1, n, f) != n) st = seslm_fail(SESLM_ERR_FORMAT, "%s: truncated header", path);
    fclose(f);
    if (st != SESLM_OK) {
        free(hdr);
        return st;
    }
    hdr[n] = 0;
    cJSON *root = cJSON_ParseWithLength(hdr, n);
    free(hdr);
    if (!root) return seslm_fail(SESLM_ERR_FORMAT, "%s: header is not JSON", path);
    cJSON *meta = cJSON_DetachItemFromObjectCaseSensitive(root, "__metadata__");
    cJSON_Delete(root);
    if (!cJSON_IsObject(meta)) {
        cJSON_Delete(meta);
        return seslm_fail(SESLM_ERR_FORMAT, "%s: no __metadata__: not an intent head", path);
    }
    *out = meta;
    return SESLM_OK;
}

static const char *meta_str(const cJSON *m, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A numeric metadata value within [lo, hi]; a missing key keeps *out (older files). */
static int meta_double(const cJSON *m, const char *k, double lo, double hi, double *out) {
    const char *s = meta_str(m, k);
    if (!s) return 1;
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end || !isfinite(v) || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

seslm_status seslm_intent_load(seslm_intent_head **out, const char *path, char *model_sha256_out) {
    *out = NULL;
    if (model_sha256_out) model_sha256_out[0] = 0;
    cJSON *m = NULL;
    seslm_status st = read_metadata(path, &m);
    if (st != SESLM_OK) return st;
    seslm_intent_opts o;
    seslm_intent_opts_default(&o);
    const char *fmt = meta_str(m, "format"), *ver = meta_str(m, "version"), *hid = meta_str(m, "hidden"),
               *lab = meta_str(m, "labels");
    st_file f = {0};
    seslm_intent_head *h = NULL;
    cJSON *labels = NULL;
    const char **names = NULL;
    if (!fmt || strcmp(fmt, INTENT_FORMAT) != 0) {
        st = seslm_fail(SESLM_ERR_FORMAT, "%s: not an intent head (metadata format is '%s')", path, fmt ? fmt : "missing");
        goto done;
    }
    if (!ver || strcmp(ver, INTENT_VERSION) != 0) {
        st = seslm_fail(SESLM_ERR_FORMAT, "%s: intent head version '%s' is not supported (this build reads %s)", path,
                        ver ? ver : "missing", INTENT_VERSION);
        goto done;
    }
    // hyper-parameters
    o.n_hidden = 0;
    for (const char *p = hid ? hid : ""; *p;) {
        char *end = NULL;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 65536 || o.n_hidden == SESLM_INTENT_MAX_HIDDEN) {
            st = seslm_fail(SESLM_ERR_FORMAT, "%s: bad hidden sizes '%s'", path, hid);
            goto done;
        }
        o.hidden[o.n_hidden++] = (int)v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') {
            st = seslm_fail(SESLM_ERR_FORMAT, "%s: bad hidden sizes '%s'", path, hid);
            goto done;
        }
    }
    // every number in the metadata, its range, and its value when absent (older files lack the later ones:
    // feature_layers 1, early_weight (nothing folded), fit_rms 0 (no fitted scale recorded))
    static const struct {
        const char *key;
        double lo, hi;
    } HP[17] = {{"input_dim", 1, 65536},      {"temperature", 1e-3, 1e3},    {"oos_threshold", 0, 1},
                {"epochs", 0, 100000},        {"batch", 1, 65536},           {"lr", 1e-12, 10},
                {"weight_decay", 0, 100},     {"calib_frac", 0, 0.9},        {"replay_per_class", 1, 100000},
                {"online_steps", 1, 100000},  {"online_max_steps", 1, 100000}, {"online_replay", 0, 65536},
                {"online_lr", 1e-12, 10},     {"min_in_scope", 0, 1},        {"feature_layers", 1, 64},
                {"early_weight", 1e-3, 10},   {"fit_rms", 0, 1e6}};
    double v[17] = {o.input_dim, 1.0, o.oos_threshold, o.epochs, o.batch, o.lr, o.weight_decay, o.calib_frac,
                    o.replay_per_class, o.online_steps, o.online_max_steps, o.online_replay, o.online_lr, o.min_in_scope,
                    1.0, o.early_weight, 0.0};
    for (int k = 0; k < 17; k++)
        if (!meta_double(m, HP[k].key, HP[k].lo, HP[k].hi, &v[k]) || (k == 14 && v[k] != floor(v[k]))) {
            st = seslm_fail(SESLM_ERR_FORMAT, "%s: metadata \"%s\" is not a number in [%g, %g]%s", path, HP[k].key,
                            HP[k].lo, HP[k].hi, k == 14 ? " (a whole number)" : "");
            goto done;
        }
    o.input_dim = (int)v[0], o.oos_threshold = (float)v[2], o.epochs = (int)v[3], o.batch = (int)v[4];
    o.lr = (float)v[5], o.weight_decay = (float)v[6], o.calib_frac = (float)v[7], o.replay_per_class = (int)v[8];
    o.online_steps = (int)v[9], o.online_max_steps = (int)v[10], o.online_replay = (int)v[11], o.online_lr = (float)v[12];
    o.min_in_scope = (float)v[13], o.feature_layers = (int)v[14], o.early_weight = (float)v[15];
    const int folded = meta_str(m, "early_weight") != NULL;
    const char *seed = meta_str(m, "seed");
    if (seed) o.seed = strtoull(seed, NULL, 10);
    if ((st = seslm_intent_new(&h, &o)) != SESLM_OK) goto done;
    h->temperature = (float)v[1];
    h->fit_rms = (float)v[16];
    const char *rs = meta_str(m, "rng_state"), *ou = meta_str(m, "online_updates");
    if (rs) h->rng = strtoull(rs, NULL, 10);
    if (ou) h->online_updates = strtoull(ou, NULL, 10);
    const char *at = meta_str(m, "adam_t");
    // labels
    labels = lab ? cJSON_Parse(lab) : NULL;
    if (!cJSON_IsArray(labels) || cJSON_GetArraySize(labels) < 1) {
        st = seslm_fail(SESLM_ERR_FORMAT, "%s: metadata \"labels\" must be a non-empty JSON array of strings", path);
        goto done;
    }
    const int C = cJSON_GetArraySize(labels);
    names = calloc((size_t)C, sizeof(char *));
    if (!names) {
        st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        goto done;
    }
    int i = 0;
    for (const cJSON *e = labels->child; e; e = e->next, i++) {
        if (!cJSON_IsString(e)) {
            st = seslm_fail(SESLM_ERR_FORMAT, "%s: label %d is not a string", path, i);
            goto done;
        }
        names[i] = e->valuestring;
        for (int j = 0; j < i; j++)
            if (strcmp(names[j], names[i]) == 0) {
                st = seslm_fail(SESLM_ERR_FORMAT, "%s: label '%s' appears twice", path, names[i]);
                goto done;
            }
    }
    if ((st = intent_set_labels(h, names, C)) != SESLM_OK) goto done;
    h->dims[h->n_layers] = C;
    if ((st = intent_alloc_layers(h)) != SESLM_OK) goto done;
    if (at) h->adam_t = strtol(at, NULL, 10) > 0 ? strtol(at, NULL, 10) : 0; // after alloc, which zeroes it
    if (folded && o.feature_layers > 1 && o.early_weight != 1.0f) {
        if (!(h->in_scale = intent_block_scale(o.input_dim, o.feature_layers, o.early_weight))) {
            st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
            goto done;
        }
        h->selection.early_weight = o.early_weight;
    }
    // tensors
    if ((st = st_open(&f, path)) != SESLM_OK) goto done;
    for (int l = 0; l < h->n_layers; l++) {
        char wn[32], bn[32];
        snprintf(wn, sizeof wn, "layers.%d.weight", l);
        snprintf(bn, sizeof bn, "layers.%d.bias", l);
        const st_tensor *w = st_find(&f, wn), *b = st_find(&f, bn);
        if (!w || !b || w->dtype != ST_F32 || b->dtype != ST_F32 || w->ndim != 2 || b->ndim != 1 ||
            w->shape[0] != h->dims[l + 1] || w->shape[1] != h->dims[l] || b->shape[0] != h->dims[l + 1]) {
            st = seslm_fail(SESLM_ERR_SHAPE, "%s: %s / %s missing or not F32 (%d, %d) / (%d)", path, wn, bn, h->dims[l + 1],
                            h->dims[l], h->dims[l + 1]);
            goto done;
        }
        memcpy(h->W[l], w->data, w->nbytes);
        memcpy(h->b[l], b->data, b->nbytes);
        // the Adam moments (files written before they were saved have none: online learning restarts them)
        float *mom[4] = {h->mW[l], h->vW[l], h->mb[l], h->vb[l]};
        static const char *mfmt[4] = {"adam.%d.mW", "adam.%d.vW", "adam.%d.mb", "adam.%d.vb"};
        for (int k = 0; k < 4; k++) {
            char mn[32];
            snprintf(mn, sizeof mn, mfmt[k], l);
            const st_tensor *mt = st_find(&f, mn);
            if (!mt) continue;
            const st_tensor *like = k < 2 ? w : b;
            if (mt->dtype != ST_F32 || mt->ndim != like->ndim || mt->nbytes != like->nbytes) {
                st = seslm_fail(SESLM_ERR_SHAPE, "%s: %s is not F32 shaped like its parameter", path, mn);
                goto done;
            }
            memcpy(mom[k], mt->data, mt->nbytes);
        }
        // every value in range: a fit or online learning never writes weights near INTENT_MAX_WEIGHT (a linear head at
        // C = 1000 keeps them within tens), and weights past it overflow the logits of ordinary inputs; Adam's second
        // moments are squares. A file that breaks this was not written by this library (or was damaged).
        const struct {
            const float *v;
            size_t n;
            const char *what;
            int moment; // 0 a parameter, 1 a first moment, 2 a second moment
        } chk[6] = {{h->W[l], (size_t)w->numel, wn, 0},          {h->b[l], (size_t)b->numel, bn, 0},
                    {h->mW[l], (size_t)w->numel, "adam.mW", 1}, {h->vW[l], (size_t)w->numel, "adam.vW", 2},
                    {h->mb[l], (size_t)b->numel, "adam.mb", 1}, {h->vb[l], (size_t)b->numel, "adam.vb", 2}};
        for (int c = 0; c < 6; c++)
            for (size_t k = 0; k < chk[c].n; k++) {
                const float x = chk[c].v[k];
                if (!isfinite(x) || (chk[c].moment == 0 && fabsf(x) > INTENT_MAX_WEIGHT) || (chk[c].moment == 2 && x < 0)) {
                    st = seslm_fail(SESLM_ERR_FORMAT, "%s: %s of layer %d holds %s (%g at %zu)", path, chk[c].what, l,
                                    !isfinite(x)         ? "a non-finite value"
                                    : chk[c].moment == 2 ? "a negative second moment"
                                                         : "a weight beyond 1e6 in magnitude",
                                    (double)x, k);
                    goto done;
                }
            }
    }
    char extra[32];
    snprintf(extra, sizeof extra, "layers.%d.weight", h->n_layers);
    if (st_find(&f, extra)) {
        st = seslm_fail(SESLM_ERR_SHAPE, "%s: more layers than the metadata's hidden sizes say", path);
        goto done;
    }
    const st_tensor *rx = st_find(&f, "replay.x"), *ry = st_find(&f, "replay.y");
    if (!rx || !ry || rx->dtype != ST_F32 || ry->dtype != ST_I32 || rx->ndim != 2 || ry->ndim != 1 ||
        rx->shape[1] != h->o.input_dim || rx->shape[0] != ry->shape[0] || rx->shape[0] > 100000000) {
        st = seslm_fail(SESLM_ERR_SHAPE, "%s: replay.x (n, %d) F32 / replay.y (n) I32 missing or inconsistent", path, h->o.input_dim);
        goto done;
    }
    const int nr = (int)rx->shape[0];
    if ((st = intent_replay_reserve(h, nr > 0 ? nr : 1)) != SESLM_OK) goto done;
    if (nr) memcpy(h->rx, rx->data, rx->nbytes);
    for (size_t k = 0; k < (size_t)rx->numel; k++) // online learning replays these rows
        if (!isfinite(h->rx[k])) {
            st = seslm_fail(SESLM_ERR_FORMAT, "%s: replay.x holds a non-finite value (row %zu)", path, k / (size_t)h->o.input_dim);
            goto done;
        }
    const int32_t *yy = ry->data;
    for (int k = 0; k < nr; k++) {
        if (yy[k] < 0 || yy[k] >= C) {
            st = seslm_fail(SESLM_ERR_FORMAT, "%s: replay.y[%d] = %d is not a class", path, k, yy[k]);
            goto done;
        }
        h->ry[k] = yy[k];
    }
    h->n_replay = nr;
    const st_tensor *fc = st_find(&f, "fit.count"); // files from before 2026-12-07 have none: no per-intent scaling
    if (fc) {
        if (fc->dtype != ST_I32 || fc->ndim != 1 || fc->shape[0] != C) {
            st = seslm_fail(SESLM_ERR_SHAPE, "%s: fit.count must be an I32 vector of %d (one per intent)", path, C);
            goto done;
        }
        const int32_t *cv = fc->data;
        for (int k = 0; k < C; k++)
            if (cv[k] < 0) {
                st = seslm_fail(SESLM_ERR_FORMAT, "%s: fit.count[%d] = %d is negative", path, k, cv[k]);
                goto done;
            }
        if (!(h->fit_count = malloc((size_t)C * sizeof(int)))) {
            st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (int k = 0; k < C; k++) h->fit_count[k] = cv[k];
    }
    const st_tensor *oe = st_find(&f, "oos.scores"); // files from before the in-scope reference have none
    if (oe) {
        if (oe->dtype != ST_F32 || oe->ndim != 1 || oe->shape[0] < 1 || oe->shape[0] > 100000000) {
            st = seslm_fail(SESLM_ERR_SHAPE, "%s: oos.scores must be a non-empty F32 vector", path);
            goto done;
        }
        const int ne = (int)oe->shape[0];
        const float *ev = oe->data;
        for (int k = 0; k < ne; k++)
            if (!isfinite(ev[k]) || (k && ev[k] < ev[k - 1])) {
                st = seslm_fail(SESLM_ERR_FORMAT, "%s: oos.scores[%d] is %s", path, k,
                                isfinite(ev[k]) ? "out of order (the reference is sorted ascending)" : "not finite");
                goto done;
            }
        if (!(h->oos_ref = malloc((size_t)ne * sizeof(float)))) {
            st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
            goto done;
        }
        memcpy(h->oos_ref, ev, (size_t)ne * sizeof(float));
        h->n_oos_ref = ne;
        if ((st = intent_oos_refresh(h)) != SESLM_OK) goto done; // the scale, from the replay rows as at the fit
    }
    if (model_sha256_out) {
        const char *sha = meta_str(m, "model_sha256");
        snprintf(model_sha256_out, 65, "%s", sha ? sha : "");
    }
done:
    st_close(&f);
    free(names);
    cJSON_Delete(labels);
    cJSON_Delete(m);
    if (st != SESLM_OK) {
        seslm_intent_free(h);
        return st;
    }
    *out = h;
    return SESLM_OK;
}
