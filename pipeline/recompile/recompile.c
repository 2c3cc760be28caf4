/* recompile.c — a pruning plan applied to the weights: the student model directory (recompile.h). */
#include "recompile.h"

#include "embed_pq.h"
#include "model_internal.h"
#include "quant.h"
#include "reconstruct.h"
#include "sparse24.h"
#include "safetensors_write.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// files copied byte for byte (those present in the parent)
static const char *const COPY_FILES[] = {
    "vocab.txt",           "tokenizer.json",           "tokenizer_config.json",          "special_tokens_map.json",
    "sentence_bert_config.json", "modules.json",       "1_Pooling/config.json",          "config_sentence_transformers.json",
};

seslm_status seslm_recompile_check(const seslm_plan *pl, const seslm_model_config *c) {
    if (!pl || !c) return seslm_fail(SESLM_ERR_ARG, "no plan or no model");
    if (pl->n_layers != c->n_layers)
        return seslm_fail(SESLM_ERR_ARG, "the plan describes %d layers; the model has %d", pl->n_layers, c->n_layers);
    for (int l = 0; l < c->n_layers; l++) {
        const int N[2] = {c->layers[l].n_heads, c->layers[l].ffn_dim}, n[2] = {pl->n_remove_heads[l], pl->n_remove_neurons[l]};
        const int *idx[2] = {pl->remove_heads[l], pl->remove_neurons[l]};
        const char *what[2] = {"head", "neuron"};
        for (int k = 0; k < 2; k++) {
            if (n[k] < 0 || n[k] > N[k])
                return seslm_fail(SESLM_ERR_ARG, "layer %d: the plan removes %d %ss; the layer has %d", l, n[k], what[k],
                                  N[k]);
            for (int i = 0; i < n[k]; i++) {
                if (idx[k][i] < 0 || idx[k][i] >= N[k])
                    return seslm_fail(SESLM_ERR_ARG, "layer %d: %s %d does not exist (0..%d)", l, what[k], idx[k][i],
                                      N[k] - 1);
                if (i && idx[k][i] <= idx[k][i - 1])
                    return seslm_fail(SESLM_ERR_ARG, "layer %d: %s indices must be increasing and unique (%d after %d)",
                                      l, what[k], idx[k][i], idx[k][i - 1]);
            }
        }
    }
    int kept = 0;
    for (int l = 0; l < c->n_layers; l++) kept += !(pl->drop_layer && pl->drop_layer[l]);
    if (kept == 0) return seslm_fail(SESLM_ERR_ARG, "the plan drops every layer");
    return SESLM_OK;
}

static const char *const EMB_NAMES[] = {"f32", "int8", "int4", "pq8", "pq4"};

int seslm_embeddings_parse(const char *name) {
    for (int i = 0; name && i < (int)(sizeof EMB_NAMES / sizeof EMB_NAMES[0]); i++)
        if (strcmp(name, EMB_NAMES[i]) == 0) return i;
    return -1;
}

const char *seslm_embeddings_name(int emb) {
    return emb >= 0 && emb < (int)(sizeof EMB_NAMES / sizeof EMB_NAMES[0]) ? EMB_NAMES[emb] : "?";
}

static int dropped(const seslm_plan *pl, int l) { return pl->drop_layer && pl->drop_layer[l]; }

// ---- files ---------------------------------------------------------------------------------------

static seslm_status write_file_sync(const char *path, const void *data, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) return seslm_fail(SESLM_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    const char *p = data;
    size_t left = n;
    int ok = 1;
    while (ok && left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) ok = 0;
        else p += w, left -= (size_t)w;
    }
    int e = errno;
    if (ok && fsync(fd) != 0) ok = 0, e = errno;
    if (close(fd) != 0 && ok) ok = 0, e = errno;
    return ok ? SESLM_OK : seslm_fail(SESLM_ERR_IO, "cannot write %s: %s", path, strerror(e));
}

static seslm_status copy_files(const char *src_dir, const char *dst_dir) {
    for (size_t i = 0; i < sizeof COPY_FILES / sizeof COPY_FILES[0]; i++) {
        char src[8400], dst[8400];
        snprintf(src, sizeof src, "%s/%s", src_dir, COPY_FILES[i]);
        snprintf(dst, sizeof dst, "%s/%s", dst_dir, COPY_FILES[i]);
        char *buf = NULL;
        size_t n = 0;
        int missing = 0;
        seslm_status st = util_read_file(src, &buf, &n, (size_t)1 << 30, &missing);
        if (st != SESLM_OK) {
            if (missing) continue;
            return st;
        }
        char *slash = strrchr(dst, '/');
        if (strchr(COPY_FILES[i], '/')) { // a sub-directory (1_Pooling)
            *slash = 0;
            if (mkdir(dst, 0755) != 0 && errno != EEXIST) {
                free(buf);
                return seslm_fail(SESLM_ERR_IO, "cannot create %s: %s", dst, strerror(errno));
            }
            st = st_fsync_dir(dst);
            *slash = '/';
        }
        if (st == SESLM_OK) st = write_file_sync(dst, buf, n);
        free(buf);
        if (st == SESLM_OK && strchr(COPY_FILES[i], '/')) {
            *slash = 0;
            st = st_fsync_dir(dst);
        }
        if (st != SESLM_OK) return st;
    }
    return SESLM_OK;
}

// ---- config.json ---------------------------------------------------------------------------------

/* A new generation's "seslm_lineage": this step's parent, plan and recovery, the root model every generation
 * descends from (validation compares with it: drift over generations stays bounded), the parent's own lineage
 * nested as "parent". */
static cJSON *lineage_new(cJSON *r, const seslm_model *m, const seslm_plan *pl, const seslm_recompile_opts *o, cJSON *prev,
                          int hr, int nr) {
    cJSON *lin = cJSON_AddObjectToObject(r, "seslm_lineage");
    if (!lin) return NULL;
    const char *psha = o->parent_sha256 ? o->parent_sha256 : seslm_model_weights_sha256(m);
    cJSON_AddStringToObject(lin, "parent_weights_sha256", psha);
    const cJSON *pg = cJSON_GetObjectItemCaseSensitive(prev, "generation");
    cJSON_AddNumberToObject(lin, "generation", cJSON_IsNumber(pg) ? pg->valueint + 1 : 1);
    char abs[PATH_MAX];
    const char *pdir = o->parent_dir ? o->parent_dir : m->dir;
    if (!realpath(pdir, abs)) snprintf(abs, sizeof abs, "%s", pdir);
    cJSON_AddStringToObject(lin, "parent_dir", abs);
    if (o->parent_kind) cJSON_AddStringToObject(lin, "parent_weights", o->parent_kind);
    const cJSON *rd = cJSON_GetObjectItemCaseSensitive(prev, "root_dir");
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(prev, "root_weights_sha256");
    cJSON_AddStringToObject(lin, "root_dir", cJSON_IsString(rd) ? rd->valuestring : abs);
    cJSON_AddStringToObject(lin, "root_weights_sha256", cJSON_IsString(rs) ? rs->valuestring : psha);
    cJSON_AddStringToObject(lin, "plan", o->plan_name ? o->plan_name : "");
    cJSON_AddStringToObject(lin, "plan_method", pl->method);
    cJSON_AddNumberToObject(lin, "plan_target", pl->target);
    cJSON_AddNumberToObject(lin, "heads_removed", hr);
    cJSON_AddNumberToObject(lin, "neurons_removed", nr);
    cJSON *dl = cJSON_AddArrayToObject(lin, "layers_removed");
    for (int l = 0; l < pl->n_layers; l++)
        if (dropped(pl, l)) cJSON_AddItemToArray(dl, cJSON_CreateNumber(l));
    cJSON_AddStringToObject(lin, "reconstruction", o->calib ? "least-squares" : "none");
    if (o->calib) {
        cJSON_AddNumberToObject(lin, "calibration_texts", (double)o->calib->texts);
        cJSON_AddNumberToObject(lin, "calibration_tokens", (double)o->calib->tokens);
        cJSON_AddNumberToObject(lin, "ridge", o->ridge);
    }
    if (o->calibration_name) cJSON_AddStringToObject(lin, "calibration", o->calibration_name);
    if (prev) cJSON_AddItemToObject(lin, "parent", prev);
    return lin;
}

static seslm_status write_config(const seslm_model *m, const seslm_plan *pl, const seslm_recompile_opts *o,
                                 const int *kh, const int *kf, const char *dir, int hr, int nr, int exact_rows) {
    char path[8400];
    snprintf(path, sizeof path, "%s/config.json", m->dir);
    char *buf = NULL;
    size_t n = 0;
    seslm_status st = util_read_file(path, &buf, &n, 16 << 20, NULL);
    if (st != SESLM_OK) return st;
    cJSON *r = cJSON_ParseWithLength(buf, n);
    free(buf);
    if (!cJSON_IsObject(r)) {
        cJSON_Delete(r);
        return seslm_fail(SESLM_ERR_FORMAT, "%s: not a JSON object", path);
    }
    const seslm_model_config *c = &m->cfg;
    cJSON_DeleteItemFromObjectCaseSensitive(r, "attention_head_size");
    cJSON_AddNumberToObject(r, "attention_head_size", c->head_dim);
    cJSON_DeleteItemFromObjectCaseSensitive(r, "seslm_layers");
    cJSON *layers = cJSON_AddArrayToObject(r, "seslm_layers");
    int n_kept = 0;
    for (int l = 0; l < c->n_layers; l++) n_kept += !dropped(pl, l);
    cJSON_DeleteItemFromObjectCaseSensitive(r, "num_hidden_layers");
    cJSON_AddNumberToObject(r, "num_hidden_layers", n_kept);
    for (int l = 0; l < c->n_layers; l++) {
        if (dropped(pl, l)) continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "num_attention_heads", kh[l]);
        cJSON_AddNumberToObject(o, "intermediate_size", kf[l]);
        cJSON_AddItemToArray(layers, o);
    }
    cJSON *prev = cJSON_DetachItemFromObjectCaseSensitive(r, "seslm_lineage");
    cJSON_DeleteItemFromObjectCaseSensitive(r, "seslm_master");
    if (o->master_sha256) {
        cJSON *ms = cJSON_AddObjectToObject(r, "seslm_master");
        cJSON_AddStringToObject(ms, "dir", "master");
        cJSON_AddStringToObject(ms, "weights_sha256", o->master_sha256);
    }
    cJSON *lin = NULL;
    if (o->keep_lineage && prev) { // the quantization step of one recompile: same generation
        cJSON_AddItemToObject(r, "seslm_lineage", prev);
        lin = prev, prev = NULL;
    }
    if (!lin) lin = lineage_new(r, m, pl, o, prev, hr, nr);
    if (!lin) {
        cJSON_Delete(r);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    if (o->distill_steps > 0) {
        cJSON_DeleteItemFromObjectCaseSensitive(lin, "distillation");
        cJSON *d = cJSON_AddObjectToObject(lin, "distillation");
        cJSON_AddNumberToObject(d, "steps", o->distill_steps);
        cJSON_AddNumberToObject(d, "heldout_cos_before", o->distill_cos_before);
        cJSON_AddNumberToObject(d, "heldout_cos_after", o->distill_cos_after);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(r, "seslm_quantization");
    if (o->quantize_int8 || o->compress_embeddings || o->sparse24_ffn || o->position_int8) {
        cJSON *qz = cJSON_AddObjectToObject(r, "seslm_quantization");
        cJSON_AddStringToObject(qz, "linear_weights", o->quantize_int8 ? "int8-per-output-channel-symmetric" : "f32");
        cJSON_AddStringToObject(qz, "linear_activations", !o->quantize_int8 ? "f32"
                                                          : o->act_token   ? SESLM_ACT_TOKEN
                                                                           : SESLM_ACT_TOP1);
        const int ce = o->compress_embeddings;
        cJSON_AddStringToObject(qz, "word_embeddings", ce == SESLM_EMB_INT4   ? "int4-per-row+exact-frequent-rows"
                                                     : ce == SESLM_EMB_PQ8    ? "int4-per-row-seen+pq8-rare-rows+exact-frequent-rows"
                                                     : ce == SESLM_EMB_PQ4    ? "int4-per-row-seen+pq4-rare-rows+exact-frequent-rows"
                                                     : ce                     ? "int8-per-row+exact-frequent-rows"
                                                                              : "f32");
        if (ce) cJSON_AddNumberToObject(qz, "word_embeddings_exact_rows", exact_rows);
        if (ce) cJSON_AddStringToObject(qz, "word_embeddings_exact_dtype", o->exact_int8 ? "int8-per-row" : "f32");
        if (ce == SESLM_EMB_PQ8 || ce == SESLM_EMB_PQ4) cJSON_AddNumberToObject(qz, "word_embeddings_rare_below_count", o->rare_min > 0 ? o->rare_min : 1);
        cJSON_AddStringToObject(qz, "position_embeddings", o->position_int8 ? "int8-per-row" : "f32");
        cJSON_AddStringToObject(qz, "sparsity", o->sparse24_ffn ? "2:4 (FFN weights, F32 values + 2-bit positions)" : "dense");
    }
    // A stock loader must refuse a student rather than misread it: per-layer widths, INT8, 2:4 or compressed
    // rows are not what BertModel would build from "bert" (transformers then re-initialises or reinterprets
    // tensors silently). An unknown model_type is refused by AutoConfig, and the architectures entry names
    // what the weights are. SE-SLM itself reads seslm_layers / seslm_quantization.
    int uniform = !(o->quantize_int8 || o->compress_embeddings || o->sparse24_ffn || o->position_int8);
    for (int l = 0; l < c->n_layers; l++) uniform &= kh[l] == c->layers[0].n_heads && kf[l] == c->layers[0].ffn_dim;
    const cJSON *heads0 = cJSON_GetObjectItemCaseSensitive(r, "num_attention_heads");
    const cJSON *ffn0 = cJSON_GetObjectItemCaseSensitive(r, "intermediate_size");
    uniform &= cJSON_IsNumber(heads0) && heads0->valueint == kh[0] && cJSON_IsNumber(ffn0) && ffn0->valueint == kf[0];
    if (!uniform) {
        cJSON *mt = cJSON_DetachItemFromObjectCaseSensitive(r, "model_type");
        if (cJSON_IsString(mt) && strcmp(mt->valuestring, "seslm_bert") != 0)
            cJSON_AddStringToObject(r, "seslm_parent_model_type", mt->valuestring);
        cJSON_Delete(mt);
        cJSON_AddStringToObject(r, "model_type", "seslm_bert");
        cJSON_DeleteItemFromObjectCaseSensitive(r, "architectures");
        cJSON *arch = cJSON_AddArrayToObject(r, "architectures");
        cJSON_AddItemToArray(arch, cJSON_CreateString("SeslmBertModel"));
    }
    cJSON_AddItemToObject(lin, "build", cJSON_Parse(seslm_build_info_json())); // provenance
    char *txt = cJSON_Print(r);
    cJSON_Delete(r);
    if (!txt) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    size_t len = strlen(txt);
    txt[len] = 0;
    char *full = malloc(len + 2);
    if (!full) {
        free(txt);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    memcpy(full, txt, len);
    full[len] = '\n';
    free(txt);
    snprintf(path, sizeof path, "%s/config.json", dir);
    st = write_file_sync(path, full, len + 1);
    free(full);
    return st;
}

// ---- weights -------------------------------------------------------------------------------------

typedef struct {
    st_write_tensor *t;
    char **names;
    void **owned;
    int n, cap, n_owned;
} tensor_list;

static seslm_status tl_add_t(tensor_list *L, const char *name, st_dtype dt, const void *data, int64_t d0, int64_t d1,
                             int own) {
    if (L->n == L->cap) {
        int cap = L->cap ? 2 * L->cap : 64;
        st_write_tensor *t = realloc(L->t, (size_t)cap * sizeof *t);
        if (t) L->t = t;
        char **nm = realloc(L->names, (size_t)cap * sizeof *nm);
        if (nm) L->names = nm;
        void **ow = realloc(L->owned, (size_t)cap * sizeof *ow);
        if (ow) L->owned = ow;
        if (!t || !nm || !ow) {
            if (own) free((void *)data);
            return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        }
        L->cap = cap;
    }
    if (own) L->owned[L->n_owned++] = (void *)data;
    char *s = strdup(name);
    if (!s) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    L->names[L->n] = s;
    st_write_tensor *w = &L->t[L->n++];
    memset(w, 0, sizeof *w);
    w->name = s;
    w->dtype = dt;
    w->ndim = d1 >= 0 ? 2 : 1;
    w->shape[0] = d0;
    w->shape[1] = d1;
    w->data = data;
    return SESLM_OK;
}

static seslm_status tl_add(tensor_list *L, const char *name, const float *data, int64_t d0, int64_t d1, int own) {
    return tl_add_t(L, name, ST_F32, data, d0, d1, own);
}

static int64_t tl_bytes(const tensor_list *L) {
    int64_t n = 0;
    for (int i = 0; i < L->n; i++) {
        int64_t e = L->t[i].shape[0] * (L->t[i].ndim == 2 ? L->t[i].shape[1] : 1);
        n += e * (int64_t)st_dtype_size(L->t[i].dtype);
    }
    return n;
}

/* A weight matrix (N, K) written as F32, or (opts->quantize) as INT8 per output channel plus its
 * "<name>_scale" (N). Takes ownership of w. */
static seslm_status tl_add_weight(tensor_list *L, const char *name, float *w, int64_t N, int64_t K, int quantize,
                                  float *worst_err) {
    if (!quantize) return tl_add(L, name, w, N, K, 1);
    int8_t *q = malloc((size_t)(N * K) + 1);
    float *sc = malloc((size_t)N * sizeof *sc + 1);
    if (!q || !sc) {
        free(q), free(sc), free(w);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    float e = seslm_quantize_weight(q, sc, w, (int)N, (int)K);
    if (worst_err && e > *worst_err) *worst_err = e;
    free(w);
    char sname[200];
    snprintf(sname, sizeof sname, "%s_scale", name);
    seslm_status st = tl_add_t(L, name, ST_I8, q, N, K, 1);
    if (st == SESLM_OK) st = tl_add(L, sname, sc, N, -1, 1);
    else free(sc);
    return st;
}

/* A weight (N, K) written 2:4 sparse (sparse24.h): "<name>_24values" and "<name>_24index". Kept pairs are
 * chosen by Wanda's score |w| * ||x_k|| when input norms are given (sq_norm (K): sum over calibration
 * tokens of x_k^2), else by |w|. Takes ownership of w. */
static seslm_status tl_add_sparse24(tensor_list *L, const char *name, float *w, int64_t N, int64_t K, const double *sq_norm,
                                    double *kept_mass) {
    float *v = malloc((size_t)(N * K / 2) * sizeof *v + 1), *score = sq_norm ? malloc((size_t)(N * K) * sizeof *score) : NULL;
    uint8_t *ix = malloc((size_t)(N * K / 4) + 1);
    if (!v || !ix || (sq_norm && !score)) {
        free(v), free(ix), free(score), free(w);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    if (score)
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < K; k++) score[n * K + k] = fabsf(w[n * K + k]) * (float)sqrt(sq_norm[k]);
    double km = seslm_sparse24_compress(v, ix, w, score, (int)N, (int)K);
    if (kept_mass) *kept_mass = km;
    free(w), free(score);
    char vn[220], in[220];
    snprintf(vn, sizeof vn, "%s_24values", name);
    snprintf(in, sizeof in, "%s_24index", name);
    seslm_status st = tl_add(L, vn, v, N, K / 2, 1);
    if (st == SESLM_OK) st = tl_add_t(L, in, ST_U8, ix, N, K / 4, 1);
    else free(ix);
    return st;
}

/* safetensors has no padding between tensors: the tensors are ordered by element size, largest first
 * (as the safetensors library does), so every F32 / I32 tensor starts 4-byte aligned in the mapping (the
 * header is padded to 8) whatever the byte tables' sizes (4-bit rows, PQ codes). Stable within a size. */
static seslm_status tl_align(tensor_list *L) {
    st_write_tensor *t = malloc(((size_t)L->n + 1) * sizeof *t);
    if (!t) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    int k = 0;
    for (size_t sz = 8; sz >= 1; sz /= 2)
        for (int i = 0; i < L->n; i++)
            if (st_dtype_size(L->t[i].dtype) == sz || (sz == 1 && st_dtype_size(L->t[i].dtype) < 1)) t[k++] = L->t[i];
    if (k != L->n) { // an element size not a power of two up to 8: keep the order as it is
        free(t);
        return SESLM_OK;
    }
    memcpy(L->t, t, (size_t)L->n * sizeof *t);
    free(t);
    return SESLM_OK;
}

static void tl_free(tensor_list *L) {
    for (int i = 0; i < L->n; i++) free(L->names[i]);
    for (int i = 0; i < L->n_owned; i++) free(L->owned[i]);
    free(L->t), free(L->names), free(L->owned);
}

/* rows `keep` (n of them, each `rw` floats wide, in units of `unit` rows) of src */
static float *take_rows(const float *src, const int *keep, int n, int unit, int64_t rw) {
    float *o = malloc(((size_t)n * unit * rw + 1) * sizeof(float));
    if (!o) return NULL;
    for (int i = 0; i < n; i++)
        memcpy(o + (size_t)i * unit * rw, src + (size_t)keep[i] * unit * rw, (size_t)unit * rw * sizeof(float));
    return o;
}

/* columns: src is (rows, n_src * unit); keeps the unit-wide column blocks `keep` */
static float *take_cols(const float *src, int64_t rows, int n_src, const int *keep, int n, int unit) {
    float *o = malloc(((size_t)rows * n * unit + 1) * sizeof(float));
    if (!o) return NULL;
    for (int64_t r = 0; r < rows; r++)
        for (int i = 0; i < n; i++)
            memcpy(o + ((size_t)r * n + i) * unit, src + ((size_t)r * n_src + keep[i]) * unit, (size_t)unit * sizeof(float));
    return o;
}

static int *kept(int N, const int *removed, int n_removed, int *n_kept) {
    int *k = malloc(((size_t)N + 1) * sizeof(int)), j = 0, n = 0;
    if (!k) return NULL;
    for (int i = 0; i < N; i++) {
        if (j < n_removed && removed[j] == i) {
            j++;
            continue;
        }
        k[n++] = i;
    }
    *n_kept = n;
    return k;
}

static float *copy_floats(const float *src, size_t n) {
    float *o = malloc((n + 1) * sizeof *o);
    if (o && n) memcpy(o, src, n * sizeof *o);
    return o;
}

/* The output projection of a pruned block: plain slicing of its kept column blocks, or, with
 * calibration statistics, the least-squares refit of those columns and of the bias (reconstruct.h). */
static seslm_status project_out(float **w_out, float **b_out, const float *w, const float *b, int N, int K,
                                const int *keep, int nk, int unit, const double *G, const seslm_recompile_opts *o,
                                double *err_fit, double *err_plain, int *rs_skips) {
    *w_out = *b_out = NULL;
    // a refit with fewer calibration tokens than twice its unknowns per output overfits the calibration
    // text (measured: 64 short lines, ~700 tokens for 1100 kept neurons, held-out cosine 0.92 -> 0.91)
    const int too_few = G && o->calib && o->calib->tokens < 2 * (int64_t)(nk * unit + 1);
    if (too_few && rs_skips) (*rs_skips)++;
    if (!G || nk * unit == K || too_few) { // nothing removed (or too little text): plain slicing
        *w_out = take_cols(w, N, K / unit, keep, nk, unit);
        *b_out = copy_floats(b, (size_t)N);
        return *w_out && *b_out ? SESLM_OK : seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    *w_out = malloc(((size_t)N * nk * unit + 1) * sizeof(float));
    *b_out = malloc(((size_t)N + 1) * sizeof(float));
    if (!*w_out || !*b_out) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    return seslm_reconstruct_linear(*w_out, *b_out, w, b, N, K, keep, nk, unit, G, o->ridge, err_fit, err_plain);
}

static seslm_status add_layer(tensor_list *L, const seslm_model *m, const seslm_plan *pl, int l, int out_l, int *kh, int *kf,
                              const seslm_recompile_opts *o, seslm_recompile_stats *rs) {
    const seslm_model_config *c = &m->cfg;
    const seslm_layer_weights *w = &m->lw[l];
    const int C = c->hidden, D = c->head_dim, H = c->layers[l].n_heads, F = c->layers[l].ffn_dim;
    const int qz = o->quantize_int8;
    float *werr = rs ? &rs->quant_worst_rel_err : NULL;
    int nh = 0, nf = 0;
    int *hk = kept(H, pl->remove_heads[l], pl->n_remove_heads[l], &nh);
    int *fk = kept(F, pl->remove_neurons[l], pl->n_remove_neurons[l], &nf);
    seslm_status st = hk && fk ? SESLM_OK : seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    char n[160];
#define NAME(suffix) snprintf(n, sizeof n, "encoder.layer.%d.%s", out_l, suffix)
#define OWN(suffix, expr, d0, d1)                                                                        \
    do {                                                                                                 \
        if (st != SESLM_OK) break;                                                                       \
        float *p_ = (expr);                                                                              \
        if (!p_) {                                                                                       \
            st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");                                           \
            break;                                                                                       \
        }                                                                                                \
        NAME(suffix);                                                                                    \
        st = tl_add(L, n, p_, d0, d1, 1);                                                                \
    } while (0)
#define WEIGHT(suffix, expr, d0, d1)                                                                     \
    do {                                                                                                 \
        if (st != SESLM_OK) break;                                                                       \
        float *p_ = (expr);                                                                              \
        if (!p_) {                                                                                       \
            st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");                                           \
            break;                                                                                       \
        }                                                                                                \
        NAME(suffix);                                                                                    \
        st = tl_add_weight(L, n, p_, d0, d1, qz, werr);                                                  \
    } while (0)
#define SAME(suffix, ptr)                                                                                \
    do {                                                                                                 \
        NAME(suffix);                                                                                    \
        if (st == SESLM_OK) st = tl_add(L, n, ptr, C, -1, 0);                                            \
    } while (0)
    const int64_t A = (int64_t)nh * D;
    const double *Gc = o->calib ? o->calib->g_ctx[l] : NULL, *Gf = o->calib ? o->calib->g_ffn[l] : NULL;
    double ef = 0, ep = 0;
    if (nh > 0) {
        WEIGHT("attention.self.query.weight", take_rows(w->q_w, hk, nh, D, C), A, C);
        OWN("attention.self.query.bias", take_rows(w->q_b, hk, nh, D, 1), A, -1);
        WEIGHT("attention.self.key.weight", take_rows(w->k_w, hk, nh, D, C), A, C);
        OWN("attention.self.key.bias", take_rows(w->k_b, hk, nh, D, 1), A, -1);
        WEIGHT("attention.self.value.weight", take_rows(w->v_w, hk, nh, D, C), A, C);
        OWN("attention.self.value.bias", take_rows(w->v_b, hk, nh, D, 1), A, -1);
    }
    if (st == SESLM_OK) { // attention output projection (+ bias, refitted when heads were removed)
        float *wo = NULL, *bo = NULL;
        st = project_out(&wo, &bo, w->ao_w, w->ao_b, C, H * D, hk, nh, D, Gc, o, &ef, &ep, rs ? &rs->refits_skipped : NULL);
        if (st == SESLM_OK && rs && Gc && nh < H) rs->attn_err_fit[l] = ef, rs->attn_err_plain[l] = ep;
        if (st == SESLM_OK && nh > 0) WEIGHT("attention.output.dense.weight", wo, C, A);
        else free(wo);
        if (st == SESLM_OK) OWN("attention.output.dense.bias", bo, C, -1);
        else free(bo);
    }
    SAME("attention.output.LayerNorm.weight", w->ln1_g);
    SAME("attention.output.LayerNorm.bias", w->ln1_b);
    double *sqn = NULL; // the FFN input's per-channel sums of squares (Wanda scores for 2:4), from the Gram
    if (o->sparse24_ffn && o->calib && o->calib->g_ffn[l] && (sqn = malloc(((size_t)nf + 1) * sizeof *sqn)))
        for (int i = 0; i < nf; i++) sqn[i] = o->calib->g_ffn[l][(size_t)fk[i] * (F + 1) + fk[i]];
    if (nf > 0 && o->sparse24_ffn && C % 4 == 0 && nf % 4 == 0) {
        if (st == SESLM_OK) {
            float *p_ = take_rows(w->ff1_w, fk, nf, 1, C);
            NAME("intermediate.dense.weight");
            st = p_ ? tl_add_sparse24(L, n, p_, nf, C, NULL, NULL) : seslm_fail(SESLM_ERR_NOMEM, "out of memory");
            if (rs) rs->sparse24_layers++;
        }
        OWN("intermediate.dense.bias", take_rows(w->ff1_b, fk, nf, 1, 1), nf, -1);
    } else if (nf > 0) {
        WEIGHT("intermediate.dense.weight", take_rows(w->ff1_w, fk, nf, 1, C), nf, C);
        OWN("intermediate.dense.bias", take_rows(w->ff1_b, fk, nf, 1, 1), nf, -1);
    }
    if (st == SESLM_OK) {
        float *wo = NULL, *bo = NULL;
        st = project_out(&wo, &bo, w->ff2_w, w->ff2_b, C, F, fk, nf, 1, Gf, o, &ef, &ep, rs ? &rs->refits_skipped : NULL);
        if (st == SESLM_OK && rs && Gf && nf < F) rs->ffn_err_fit[l] = ef, rs->ffn_err_plain[l] = ep;
        if (st == SESLM_OK && nf > 0 && o->sparse24_ffn && nf % 4 == 0) {
            NAME("output.dense.weight");
            st = tl_add_sparse24(L, n, wo, C, nf, sqn, NULL);
        } else if (st == SESLM_OK && nf > 0) {
            WEIGHT("output.dense.weight", wo, C, nf);
        } else {
            free(wo);
        }
        if (st == SESLM_OK) OWN("output.dense.bias", bo, C, -1);
        else free(bo);
    }
    SAME("output.LayerNorm.weight", w->ln2_g);
    SAME("output.LayerNorm.bias", w->ln2_b);
#undef OWN
#undef SAME
#undef WEIGHT
#undef NAME
    free(hk), free(fk), free(sqn);
    kh[l] = nh, kf[l] = nf;
    return st;
}

static double row_cos(const float *a, const float *b, int C) {
    double ab = 0, aa = 0, bb = 0;
    for (int c = 0; c < C; c++) ab += (double)a[c] * b[c], aa += (double)a[c] * a[c], bb += (double)b[c] * b[c];
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : (aa == bb ? 1.0 : 0.0);
}

/* A table (N, C) as INT8 per row + "<name>_scale" (quant=1), or F32 as it is (not owned). */
static seslm_status tl_add_table(tensor_list *L, const char *name, const float *w, int64_t N, int64_t C, int quant) {
    if (!quant) return tl_add(L, name, w, N, C, 0);
    float *copy = copy_floats(w, (size_t)(N * C));
    return copy ? tl_add_weight(L, name, copy, N, C, 1, NULL) : seslm_fail(SESLM_ERR_NOMEM, "out of memory");
}

/* The rows `ids` (n) of the 4-bit table q4 (V, C/2) / scale (V) compacted. */
static seslm_status take_q4(uint8_t **q_out, float **s_out, const uint8_t *q4, const float *sc, const int32_t *ids, int n, int C) {
    *q_out = malloc((size_t)n * (C / 2) + 1);
    *s_out = malloc(((size_t)n + 1) * sizeof **s_out);
    if (!*q_out || !*s_out) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        memcpy(*q_out + (size_t)i * (C / 2), q4 + (size_t)ids[i] * (C / 2), (size_t)(C / 2));
        (*s_out)[i] = sc[ids[i]];
    }
    return SESLM_OK;
}

/* The rare rows (ids, n) product-quantized (embed_pq.h) into "...pq_codes" / "...pq_codebook"; the mean
 * row cosines (PQ and, for comparison, the 4-bit rows q4 of the same ids) into rs. */
static seslm_status add_pq_rows(tensor_list *L, const seslm_model *m, const int32_t *ids, int n, int d, const uint8_t *q4,
                                const float *sc, seslm_recompile_stats *rs) {
    const int C = m->cfg.hidden, S = C / d;
    float *rows = malloc(((size_t)n * C + 1) * sizeof *rows), *book = malloc(((size_t)S * SESLM_PQ_K * d + 1) * sizeof *book);
    uint8_t *codes = malloc((size_t)n * S + 1);
    if (!rows || !book || !codes) {
        free(rows), free(book), free(codes);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) memcpy(rows + (size_t)i * C, m->word_emb + (size_t)ids[i] * C, (size_t)C * sizeof *rows);
    // k-means++ then 12 Lloyd iterations on at most 16384 rows (64 per centroid): for MiniLM's ~27k rare
    // rows 1.5-2 min of a loaded 2-core machine (bench/RESULTS.md section 15.7)
    seslm_status st = n > 0 ? seslm_pq_train(book, codes, rows, n, C, d, 12, 16384, 0x5E5E11ull, NULL) : SESLM_OK;
    if (n == 0) memset(book, 0, (size_t)S * SESLM_PQ_K * d * sizeof *book);
    if (st == SESLM_OK && rs && n > 0) {
        double cp = 0, c4 = 0;
        float *r = malloc(((size_t)C + 1) * sizeof *r);
        const int32_t none = -1;
        for (int i = 0; r && i < n; i++) {
            for (int s = 0; s < S; s++) memcpy(r + s * d, book + ((size_t)s * SESLM_PQ_K + codes[(size_t)i * S + s]) * d, (size_t)d * sizeof *r);
            cp += row_cos(r, rows + (size_t)i * C, C);
            const seslm_embedding e = {.q4 = q4 + (size_t)ids[i] * (C / 2), .scale = sc + ids[i], .exact_slot = &none};
            seslm_embedding_row(r, &e, 0, C);
            c4 += row_cos(r, rows + (size_t)i * C, C);
        }
        free(r);
        rs->pq_row_cos = cp / n, rs->pq_row_cos_int4 = c4 / n;
    }
    free(rows);
    if (st != SESLM_OK) {
        free(book), free(codes);
        return st;
    }
    st = tl_add_t(L, "embeddings.word_embeddings.pq_codes", ST_U8, codes, n, S, 1);
    if (st == SESLM_OK) st = tl_add(L, "embeddings.word_embeddings.pq_codebook", book, (int64_t)S * SESLM_PQ_K, d, 1);
    else free(book);
    return st;
}

/* Embedding compression: every row INT8 (or 4-bit) with its own scale, and the n_exact most frequent ids
 * (by token_counts; the special tokens always) kept exact -- in F32, or INT8 per row (o->exact_int8).
 * SESLM_EMB_PQ*: only the ids with a count >= rare_min keep a 4-bit row; the rest are product-quantized.
 * The id space is unchanged: every id still has a row. */
static seslm_status add_word_table(tensor_list *L, const seslm_model *m, const seslm_recompile_opts *o,
                                   seslm_recompile_stats *rs) {
    const seslm_model_config *c = &m->cfg;
    const int V = c->vocab_size, C = c->hidden;
    if (!o->compress_embeddings) return tl_add(L, "embeddings.word_embeddings.weight", m->word_emb, V, C, 0);
    const int pq = o->compress_embeddings == SESLM_EMB_PQ8 || o->compress_embeddings == SESLM_EMB_PQ4;
    const int four = o->compress_embeddings == SESLM_EMB_INT4 || pq, pq_d = o->compress_embeddings == SESLM_EMB_PQ4 ? 4 : 8;
    if (four && C % 2) return seslm_fail(SESLM_ERR_ARG, "4-bit embedding rows need an even hidden size (%d)", C);
    if (pq && C % pq_d) return seslm_fail(SESLM_ERR_ARG, "product-quantized rows need a hidden size divisible by %d (%d)", pq_d, C);
    int8_t *q = malloc((size_t)V * C + 1);
    float *sc = malloc(((size_t)V + 1) * sizeof *sc);
    int32_t *order = malloc(((size_t)V + 1) * sizeof *order);
    char *is_exact = calloc((size_t)V + 1, 1);
    if (!q || !sc || !order || !is_exact) {
        free(q), free(sc), free(order), free(is_exact);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    if (four) seslm_quantize_rows4((uint8_t *)q, sc, m->word_emb, V, C);
    else seslm_quantize_weight(q, sc, m->word_emb, V, C);
    // exact ids: the special tokens, then by descending count (ties: lower id first)
    int n = 0;
    const seslm_tokenizer *tok = m->tok;
    const int sp[4] = {seslm_tokenizer_lookup(tok, "[CLS]"), seslm_tokenizer_lookup(tok, "[SEP]"),
                       seslm_tokenizer_lookup(tok, "[PAD]"), seslm_tokenizer_lookup(tok, "[UNK]")};
    for (int i = 0; i < 4; i++)
        if (sp[i] >= 0 && sp[i] < V && !is_exact[sp[i]]) is_exact[sp[i]] = 1, order[n++] = sp[i];
    if (o->token_counts) {
        int want = o->n_exact < V ? o->n_exact : V;
        while (n < want) { // selection by repeated max: n_exact is small (hundreds to a few thousand)
            int best = -1;
            for (int id = 0; id < V; id++)
                if (!is_exact[id] && o->token_counts[id] > 0 && (best < 0 || o->token_counts[id] > o->token_counts[best]))
                    best = id;
            if (best < 0) break;
            is_exact[best] = 1, order[n++] = best;
        }
    }
    float *rows = malloc(((size_t)n * C + 1) * sizeof *rows);
    int32_t *mid = pq ? malloc(((size_t)V + 1) * sizeof *mid) : NULL, *rare = pq ? malloc(((size_t)V + 1) * sizeof *rare) : NULL;
    if (!rows || (pq && (!mid || !rare))) {
        free(q), free(sc), free(order), free(is_exact), free(rows), free(mid), free(rare);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) memcpy(rows + (size_t)i * C, m->word_emb + (size_t)order[i] * C, (size_t)C * sizeof *rows);
    seslm_status st = SESLM_OK;
    if (pq) { // seen ids keep 4-bit rows (increasing id order); the others are product-quantized
        const uint64_t rmin = o->rare_min > 0 ? (uint64_t)o->rare_min : 1;
        int nm = 0, nr = 0;
        for (int id = 0; id < V; id++) {
            if (is_exact[id]) continue;
            if ((o->token_counts && o->token_counts[id] >= rmin) || (o->seen_ids && o->seen_ids[id])) mid[nm++] = id;
            else rare[nr++] = id;
        }
        uint8_t *mq = NULL;
        float *ms = NULL;
        st = take_q4(&mq, &ms, (const uint8_t *)q, sc, mid, nm, C);
        if (st == SESLM_OK) st = add_pq_rows(L, m, rare, nr, pq_d, (const uint8_t *)q, sc, rs);
        free(q), free(sc), free(rare);
        if (nm == 0) free(mq), free(ms), mq = NULL, ms = NULL; // no 4-bit table at all (the loader allows it)
        if (st == SESLM_OK && nm) st = tl_add_t(L, "embeddings.word_embeddings.weight", ST_U8, mq, nm, C / 2, 1);
        else free(mq);
        if (st == SESLM_OK && nm) st = tl_add(L, "embeddings.word_embeddings.weight_scale", ms, nm, -1, 1);
        else free(ms);
        if (st == SESLM_OK) st = tl_add_t(L, "embeddings.word_embeddings.weight_ids", ST_I32, mid, nm, -1, 1);
        else free(mid);
        if (rs) rs->pq_rows = nr, rs->q4_rows = nm;
    } else {
        st = four ? tl_add_t(L, "embeddings.word_embeddings.weight", ST_U8, q, V, C / 2, 1)
                  : tl_add_t(L, "embeddings.word_embeddings.weight", ST_I8, q, V, C, 1);
        if (st == SESLM_OK) st = tl_add(L, "embeddings.word_embeddings.weight_scale", sc, V, -1, 1);
        else free(sc);
    }
    free(is_exact);
    if (st == SESLM_OK) st = tl_add_t(L, "embeddings.word_embeddings.exact_ids", ST_I32, order, n, -1, 1);
    else free(order);
    if (st == SESLM_OK && o->exact_int8) st = tl_add_weight(L, "embeddings.word_embeddings.exact_rows", rows, n, C, 1, NULL);
    else if (st == SESLM_OK) st = tl_add(L, "embeddings.word_embeddings.exact_rows", rows, n, C, 1);
    else free(rows);
    if (rs) rs->exact_rows = n;
    return st;
}

static int64_t file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (int64_t)sb.st_size : -1;
}

// ---- the whole directory -------------------------------------------------------------------------

int seslm_model_is_quantized(const seslm_model *m) {
    if (!m->word.f32) return 1;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const seslm_layer_weights *w = &m->lw[l];
        if (w->q_q || w->ao_q || w->ff1_q || w->ff2_q || w->ff1_sv || w->ff2_sv) return 1;
    }
    return 0;
}

seslm_status seslm_recompile_run(const seslm_model *m, const seslm_plan *pl, const seslm_recompile_opts *opts,
                                 const char *out_dir, seslm_recompile_stats *stats) {
    if (!m || !pl || !out_dir || !out_dir[0]) return seslm_fail(SESLM_ERR_ARG, "recompile: missing argument");
    const seslm_recompile_opts o = opts ? *opts : (seslm_recompile_opts){.ridge = 1e-3};
    const seslm_model_config *c = &m->cfg;
    seslm_status st = seslm_recompile_check(pl, c);
    if (st != SESLM_OK) return st;
    if (seslm_model_is_quantized(m))
        return seslm_fail(SESLM_ERR_ARG, "%s holds INT8 tensors; recompile starts from a float (F32/F16/BF16) model, "
                                         "the student's F32 master or its widened weights (parent.h)", m->dir);
    if (o.sparse24_ffn && o.quantize_int8)
        return seslm_fail(SESLM_ERR_ARG, "2:4 sparsity applies to F32 weights; it is not combined with INT8 (--quantize none)");
    if (o.calib && (o.calib->n_layers != c->n_layers || o.calib->hidden != c->hidden))
        return seslm_fail(SESLM_ERR_ARG, "the calibration statistics were collected on another model");
    seslm_recompile_stats rs;
    memset(&rs, 0, sizeof rs);
    char out[4096];
    if (snprintf(out, sizeof out, "%s", out_dir) >= (int)sizeof out - 32)
        return seslm_fail(SESLM_ERR_ARG, "output path too long");
    for (size_t len = strlen(out); len > 1 && out[len - 1] == '/'; len--) out[len - 1] = 0;
    struct stat sb;
    if (lstat(out, &sb) == 0) return seslm_fail(SESLM_ERR_IO, "%s already exists; refusing to overwrite it", out);
    if (errno != ENOENT) return seslm_fail(SESLM_ERR_IO, "%s: %s", out, strerror(errno));
    char tmp[4096 + 16], parent_dir[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", out);
    snprintf(parent_dir, sizeof parent_dir, "%s", out);
    char *slash = strrchr(parent_dir, '/');
    if (!slash) snprintf(parent_dir, sizeof parent_dir, ".");
    else if (slash == parent_dir) parent_dir[1] = 0;
    else *slash = 0;
    if (!mkdtemp(tmp)) return seslm_fail(SESLM_ERR_IO, "cannot create a temporary directory beside %s: %s", out, strerror(errno));
    chmod(tmp, 0755);

    tensor_list L = {0};
    int *kh = calloc((size_t)c->n_layers + 1, sizeof(int)), *kf = calloc((size_t)c->n_layers + 1, sizeof(int));
    if (!kh || !kf) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    const int64_t C = c->hidden;
    if (st == SESLM_OK) st = add_word_table(&L, m, &o, &rs);
    if (st == SESLM_OK) st = tl_add_table(&L, "embeddings.position_embeddings.weight", m->pos_emb, c->max_position, C, o.position_int8);
    if (st == SESLM_OK) st = tl_add_table(&L, "embeddings.token_type_embeddings.weight", m->type_emb, c->type_vocab_size, C, o.position_int8);
    if (st == SESLM_OK) st = tl_add(&L, "embeddings.LayerNorm.weight", m->emb_ln_g, C, -1, 0);
    if (st == SESLM_OK) st = tl_add(&L, "embeddings.LayerNorm.bias", m->emb_ln_b, C, -1, 0);
    if (c->n_layers > SESLM_MAX_LAYERS) st = seslm_fail(SESLM_ERR_LIMIT, "more than %d layers", SESLM_MAX_LAYERS);
    // a dropped layer is skipped: the kept ones are renumbered 0.. in order (config.json's per-layer list)
    for (int l = 0, out_l = 0; st == SESLM_OK && l < c->n_layers; l++)
        if (!dropped(pl, l)) st = add_layer(&L, m, pl, l, out_l++, kh, kf, &o, &rs);
    const int64_t written_bytes = tl_bytes(&L);
    int hr = 0, nr = 0, lr = 0;
    for (int l = 0; l < c->n_layers; l++) {
        if (dropped(pl, l)) hr += c->layers[l].n_heads, nr += c->layers[l].ffn_dim, lr++;
        else hr += pl->n_remove_heads[l], nr += pl->n_remove_neurons[l];
    }
    char path[4096 + 64], meta[256];
    snprintf(path, sizeof path, "%s/model.safetensors", tmp);
    snprintf(meta, sizeof meta, "{\"format\":\"pt\",\"seslm_parent_sha256\":\"%s\"}", seslm_model_weights_sha256(m));
    if (st == SESLM_OK) st = tl_align(&L);
    if (st == SESLM_OK) st = st_write(path, L.t, L.n, meta);
    tl_free(&L);
    if (st == SESLM_OK) st = write_config(m, pl, &o, kh, kf, tmp, hr, nr, rs.exact_rows);
    if (st == SESLM_OK) st = copy_files(m->dir, tmp);
    if (st == SESLM_OK) st = st_fsync_dir(tmp);
    if (st == SESLM_OK && stats) {
        *stats = rs;
        int ng = seslm_model_param_groups(m, NULL, 0);
        seslm_param_group *g = calloc((size_t)ng + 1, sizeof *g);
        if (g) {
            seslm_model_param_groups(m, g, ng);
            for (int i = 0; i < ng; i++) stats->params_parent += g[i].params;
            free(g);
        }
        const int64_t D = c->head_dim;
        stats->params = stats->params_parent - hr * (4 * D * C + 3 * D) - nr * (2 * C + 1) - lr * 6 * C;
        stats->layers_removed = lr;
        stats->bytes_parent = stats->params_parent * (int64_t)sizeof(float);
        stats->bytes = written_bytes;
        stats->file_bytes_parent = (int64_t)m->st.map_len;
        stats->file_bytes = file_size(path);
        stats->heads_removed = hr, stats->neurons_removed = nr;
    }
    free(kh), free(kf);
    if (st == SESLM_OK) {
        // the final check and the rename: rename(2) would replace an empty directory, so look again
        if (lstat(out, &sb) == 0) st = seslm_fail(SESLM_ERR_IO, "%s already exists; refusing to overwrite it", out);
        else if (rename(tmp, out) != 0) st = seslm_fail(SESLM_ERR_IO, "cannot rename %s to %s: %s", tmp, out, strerror(errno));
        else st = st_fsync_dir(parent_dir);
        if (st != SESLM_OK && lstat(tmp, &sb) != 0) return st; // renamed; the directory is complete
    }
    if (st != SESLM_OK) util_rmtree(tmp);
    return st;
}

seslm_status seslm_recompile_ex(const seslm_model *m, const seslm_plan *pl, const char *plan_name, const char *out_dir,
                                seslm_recompile_stats *stats) {
    const seslm_recompile_opts o = {.plan_name = plan_name, .ridge = 1e-3};
    return seslm_recompile_run(m, pl, &o, out_dir, stats);
}

seslm_status seslm_recompile(const seslm_model *parent, const seslm_plan *plan, const char *out_dir) {
    return seslm_recompile_ex(parent, plan, NULL, out_dir, NULL);
}
