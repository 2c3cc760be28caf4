/* export_hf.c — a model as a Hugging Face / sentence-transformers directory (export_hf.h). The tensors
 * take BERT's names ("embeddings.word_embeddings.weight", "encoder.layer.3.attention.self.query.weight",
 * ...); INT8 linear weights keep SE-SLM's form (I8 "<w>" + F32 "<w>_scale"), which modeling_seslm.py
 * reads. Checked by tests/cli/test_export_hf.sh with sentence-transformers against `seslm embed`. */
#include "export_hf.h"
#include "backend.h"
#include "model_internal.h"
#include "quant.h"
#include "safetensors_write.h"
#include "sparse24.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define HF_MAX_TENSORS 8192

typedef struct {
    st_write_tensor *t;
    char (*names)[128];
    void **owned; // buffers to free
    int n, n_owned, oom;
} tensors;

static void *own(tensors *T, void *p) {
    if (!p) T->oom = 1;
    else T->owned[T->n_owned++] = p;
    return p;
}

static void add(tensors *T, const char *name, st_dtype dt, const void *data, int64_t d0, int64_t d1) {
    if (T->n >= HF_MAX_TENSORS || !data) {
        T->oom = 1;
        return;
    }
    st_write_tensor *t = &T->t[T->n];
    snprintf(T->names[T->n], sizeof T->names[0], "%s", name);
    t->name = T->names[T->n];
    t->dtype = dt;
    t->ndim = d1 > 0 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1 > 0 ? d1 : 0;
    t->data = data;
    T->n++;
}

/* One linear layer (N, K) named stem ("encoder.layer.0.attention.self.query"): INT8 as stored (or quantized
 * now when the model computes F32 weights in INT8), else F32 (2:4 expanded). Returns 1 when INT8. */
static int add_linear(tensors *T, const char *stem, const float *f, const int8_t *q, const float *s, const float *sv,
                      const uint8_t *si, const float *bias, int N, int K, int prec_int8) {
    char name[128];
    int int8 = 0;
    snprintf(name, sizeof name, "%s.weight", stem);
    if (q) {
        add(T, name, ST_I8, q, N, K);
        snprintf(name, sizeof name, "%s.weight_scale", stem);
        add(T, name, ST_F32, s, N, 0);
        int8 = 1;
    } else if (sv) { // 2:4: the encoder computes these in FP32 whatever the precision (seslm.h)
        float *w = own(T, malloc((size_t)N * K * sizeof(float)));
        if (w) seslm_sparse24_expand(w, sv, si, N, K);
        add(T, name, ST_F32, w, N, K);
    } else if (prec_int8) { // seslm_precision int8: the encoder quantizes F32 weights at load, as here
        int8_t *qq = own(T, malloc((size_t)N * K));
        float *ss = own(T, malloc((size_t)N * sizeof(float)));
        if (qq && ss) seslm_quantize_weight(qq, ss, f, N, K);
        add(T, name, ST_I8, qq, N, K);
        snprintf(name, sizeof name, "%s.weight_scale", stem);
        add(T, name, ST_F32, ss, N, 0);
        int8 = 1;
    } else {
        add(T, name, ST_F32, f, N, K);
    }
    snprintf(name, sizeof name, "%s.bias", stem);
    add(T, name, ST_F32, bias, N, 0);
    return int8;
}

static seslm_status write_text(const char *dir, const char *file, const char *text) {
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    return util_write_file_atomic(path, text, strlen(text));
}

static seslm_status write_json(const char *dir, const char *file, cJSON *j) {
    char *txt = j ? cJSON_Print(j) : NULL;
    cJSON_Delete(j);
    if (!txt) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    size_t n = strlen(txt);
    char *full = realloc(txt, n + 2);
    if (!full) return free(txt), seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    full[n] = '\n', full[n + 1] = 0;
    seslm_status st = write_text(dir, file, full);
    free(full);
    return st;
}

/* Copies dir/file to out/file when it exists. */
static seslm_status copy_if_present(const char *dir, const char *out, const char *file) {
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    char *buf = NULL;
    size_t n = 0;
    int missing = 0;
    seslm_status st = util_read_file(path, &buf, &n, (size_t)1 << 30, &missing);
    if (st != SESLM_OK) return missing ? SESLM_OK : st;
    snprintf(path, sizeof path, "%s/%s", out, file);
    st = util_write_file_atomic(path, buf, n);
    free(buf);
    return st;
}

static seslm_status make_dir(const char *path) {
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return seslm_fail(SESLM_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    return SESLM_OK;
}

/* config.json: the source's, with the architecture the export has (standard BERT, or seslm_bert + auto_map). */
static seslm_status write_config(const seslm_model *m, const char *out, int custom, const unsigned *int8_mask) {
    const seslm_model_config *c = &m->cfg;
    char path[4300];
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
    const char *drop[] = {"model_type", "architectures", "auto_map", "seslm_layers", "seslm_quantization", "seslm_precision",
                          "seslm_master", "seslm_parent_model_type", "attention_head_size", "num_hidden_layers",
                          "seslm_int8_top1",
                          "num_attention_heads", "intermediate_size", "seslm_export"};
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++) cJSON_DeleteItemFromObjectCaseSensitive(r, drop[i]);
    cJSON_AddStringToObject(r, "model_type", custom ? "seslm_bert" : "bert");
    cJSON *arch = cJSON_AddArrayToObject(r, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString(custom ? "SeslmBertModel" : "BertModel"));
    cJSON_AddNumberToObject(r, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(r, "num_attention_heads", c->hidden / c->head_dim);
    cJSON_AddNumberToObject(r, "intermediate_size", c->n_layers ? c->layers[0].ffn_dim : 0);
    // what SE-SLM took as defaults, explicit (BertConfig's defaults are another model's)
    const struct {
        const char *key;
        double v;
    } dflt[] = {{"vocab_size", c->vocab_size}, {"hidden_size", c->hidden}, {"max_position_embeddings", c->max_position},
                {"type_vocab_size", c->type_vocab_size}, {"layer_norm_eps", c->layer_norm_eps}, {"pad_token_id", c->pad_token_id}};
    for (size_t i = 0; i < sizeof dflt / sizeof dflt[0]; i++)
        if (!cJSON_GetObjectItemCaseSensitive(r, dflt[i].key)) cJSON_AddNumberToObject(r, dflt[i].key, dflt[i].v);
    if (!cJSON_GetObjectItemCaseSensitive(r, "hidden_act")) cJSON_AddStringToObject(r, "hidden_act", "gelu");
    if (custom) {
        cJSON *am = cJSON_AddObjectToObject(r, "auto_map");
        cJSON_AddStringToObject(am, "AutoConfig", "modeling_seslm.SeslmBertConfig");
        cJSON_AddStringToObject(am, "AutoModel", "modeling_seslm.SeslmBertModel");
        cJSON_AddNumberToObject(r, "attention_head_size", c->head_dim);
        cJSON_AddBoolToObject(r, "seslm_int8_top1", c->act_top1); // modeling_seslm.py: quant.h top1
        cJSON *layers = cJSON_AddArrayToObject(r, "seslm_layers");
        static const char *const lin[] = {"query", "key", "value", "attention_output", "intermediate", "output"};
        for (int l = 0; l < c->n_layers; l++) {
            cJSON *o = cJSON_CreateObject(), *q8 = cJSON_CreateArray();
            cJSON_AddNumberToObject(o, "num_attention_heads", c->layers[l].n_heads);
            cJSON_AddNumberToObject(o, "intermediate_size", c->layers[l].ffn_dim);
            for (int k = 0; k < 6; k++)
                if (int8_mask[l] >> k & 1) cJSON_AddItemToArray(q8, cJSON_CreateString(lin[k]));
            cJSON_AddItemToObject(o, "int8", q8);
            cJSON_AddItemToArray(layers, o);
        }
    }
    cJSON *ex = cJSON_AddObjectToObject(r, "seslm_export");
    cJSON_AddStringToObject(ex, "format", "hf");
    cJSON_AddStringToObject(ex, "seslm_version", seslm_version());
    cJSON_AddStringToObject(ex, "source_weights_sha256", seslm_model_weights_sha256(m));
    cJSON_AddStringToObject(ex, "weights", custom ? "INT8 linear layers as stored (I8 + per-output-channel F32 scale, "
                                                    "computed by modeling_seslm.py as SE-SLM does), the rest F32"
                                                  : "F32");
    return write_json(out, "config.json", r);
}

/* modules.json, 1_Pooling/config.json, 2_Normalize/, sentence_bert_config.json: what SE-SLM computes. */
static seslm_status write_st_files(const seslm_model *m, const char *out) {
    const seslm_model_config *c = &m->cfg;
    cJSON *mods = cJSON_CreateArray();
    const char *paths[] = {"", "1_Pooling", "2_Normalize"};
    const char *types[] = {"sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
                           "sentence_transformers.models.Normalize"};
    for (int i = 0; i < (c->normalize ? 3 : 2); i++) {
        cJSON *o = cJSON_CreateObject();
        char nm[16];
        snprintf(nm, sizeof nm, "%d", i);
        cJSON_AddNumberToObject(o, "idx", i);
        cJSON_AddStringToObject(o, "name", nm);
        cJSON_AddStringToObject(o, "path", paths[i]);
        cJSON_AddStringToObject(o, "type", types[i]);
        cJSON_AddItemToArray(mods, o);
    }
    seslm_status st = write_json(out, "modules.json", mods);
    char dir[4300];
    snprintf(dir, sizeof dir, "%s/1_Pooling", out);
    if (st == SESLM_OK) st = make_dir(dir);
    if (st == SESLM_OK) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddNumberToObject(p, "word_embedding_dimension", c->hidden);
        cJSON_AddBoolToObject(p, "pooling_mode_cls_token", c->pooling == SESLM_POOL_CLS);
        cJSON_AddBoolToObject(p, "pooling_mode_mean_tokens", c->pooling == SESLM_POOL_MEAN);
        cJSON_AddBoolToObject(p, "pooling_mode_max_tokens", c->pooling == SESLM_POOL_MAX);
        cJSON_AddBoolToObject(p, "pooling_mode_mean_sqrt_len_tokens", c->pooling == SESLM_POOL_MEAN_SQRT_LEN);
        cJSON_AddBoolToObject(p, "pooling_mode_weightedmean_tokens", c->pooling == SESLM_POOL_WEIGHTEDMEAN);
        cJSON_AddBoolToObject(p, "pooling_mode_lasttoken", c->pooling == SESLM_POOL_LASTTOKEN);
        cJSON_AddBoolToObject(p, "include_prompt", c->include_prompt);
        st = write_json(dir, "config.json", p);
    }
    snprintf(dir, sizeof dir, "%s/2_Normalize", out);
    if (st == SESLM_OK && c->normalize) st = make_dir(dir);
    snprintf(dir, sizeof dir, "%s/sentence_bert_config.json", m->dir);
    struct stat sb;
    if (st == SESLM_OK && stat(dir, &sb) == 0) {
        st = copy_if_present(m->dir, out, "sentence_bert_config.json");
    } else if (st == SESLM_OK) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddNumberToObject(s, "max_seq_length", c->max_seq_len);
        cJSON_AddBoolToObject(s, "do_lower_case", 0);
        st = write_json(out, "sentence_bert_config.json", s);
    }
    const char *files[] = {"config_sentence_transformers.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json",
                           "special_tokens_map.json"};
    for (size_t i = 0; st == SESLM_OK && i < sizeof files / sizeof files[0]; i++) st = copy_if_present(m->dir, out, files[i]);
    return st;
}

seslm_status seslm_export_hf(const seslm_model *m, const char *out, int *custom_out) {
    const seslm_model_config *c = &m->cfg;
    const int C = c->hidden, D = c->head_dim, V = c->vocab_size, L = c->n_layers;
    if (strcmp(c->precision, "bf16") == 0)
        return seslm_fail(SESLM_ERR_ARG, "%s computes its F32 weights in BF16 (seslm_precision bf16): the Hugging Face "
                                         "export reproduces FP32 and INT8 only", m->dir);
    const int prec_int8 = strcmp(c->precision, "int8") == 0;
    seslm_status st = make_dir(out);
    if (st != SESLM_OK) return st;
    tensors T = {0};
    T.t = calloc(HF_MAX_TENSORS, sizeof *T.t);
    T.names = calloc(HF_MAX_TENSORS, sizeof *T.names);
    T.owned = calloc(HF_MAX_TENSORS, sizeof *T.owned);
    unsigned *int8_mask = calloc((size_t)L + 1, sizeof *int8_mask);
    if (!T.t || !T.names || !T.owned || !int8_mask) {
        free(T.t), free(T.names), free(T.owned), free(int8_mask);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    float *word = own(&T, malloc((size_t)V * C * sizeof(float))); // compressed rows restored as the kernels read them
    if (word)
        for (int v = 0; v < V; v++) seslm_embedding_row(word + (size_t)v * C, &m->word, v, C);
    add(&T, "embeddings.word_embeddings.weight", ST_F32, word, V, C);
    add(&T, "embeddings.position_embeddings.weight", ST_F32, m->pos_emb, c->max_position, C);
    add(&T, "embeddings.token_type_embeddings.weight", ST_F32, m->type_emb, c->type_vocab_size, C);
    add(&T, "embeddings.LayerNorm.weight", ST_F32, m->emb_ln_g, C, 0);
    add(&T, "embeddings.LayerNorm.bias", ST_F32, m->emb_ln_b, C, 0);
    int custom = 0;
    for (int l = 0; l < L; l++) {
        const seslm_layer_weights *w = &m->lw[l];
        const int H = c->layers[l].n_heads, A = H * D, F = c->layers[l].ffn_dim;
        char p[32], s[96];
        snprintf(p, sizeof p, "encoder.layer.%d.", l);
        unsigned q8 = 0;
        if (A > 0) {
            snprintf(s, sizeof s, "%sattention.self.query", p);
            q8 |= (unsigned)add_linear(&T, s, w->q_w, w->q_q, w->q_s, NULL, NULL, w->q_b, A, C, prec_int8) << 0;
            snprintf(s, sizeof s, "%sattention.self.key", p);
            q8 |= (unsigned)add_linear(&T, s, w->k_w, w->k_q, w->k_s, NULL, NULL, w->k_b, A, C, prec_int8) << 1;
            snprintf(s, sizeof s, "%sattention.self.value", p);
            q8 |= (unsigned)add_linear(&T, s, w->v_w, w->v_q, w->v_s, NULL, NULL, w->v_b, A, C, prec_int8) << 2;
            snprintf(s, sizeof s, "%sattention.output.dense", p);
            q8 |= (unsigned)add_linear(&T, s, w->ao_w, w->ao_q, w->ao_s, NULL, NULL, w->ao_b, C, A, prec_int8) << 3;
        } else {
            snprintf(s, sizeof s, "%sattention.output.dense.bias", p);
            add(&T, s, ST_F32, w->ao_b, C, 0);
        }
        snprintf(s, sizeof s, "%sattention.output.LayerNorm.weight", p);
        add(&T, s, ST_F32, w->ln1_g, C, 0);
        snprintf(s, sizeof s, "%sattention.output.LayerNorm.bias", p);
        add(&T, s, ST_F32, w->ln1_b, C, 0);
        if (F > 0) {
            snprintf(s, sizeof s, "%sintermediate.dense", p);
            q8 |= (unsigned)add_linear(&T, s, w->ff1_w, w->ff1_q, w->ff1_s, w->ff1_sv, w->ff1_si, w->ff1_b, F, C, prec_int8) << 4;
            snprintf(s, sizeof s, "%soutput.dense", p);
            q8 |= (unsigned)add_linear(&T, s, w->ff2_w, w->ff2_q, w->ff2_s, w->ff2_sv, w->ff2_si, w->ff2_b, C, F, prec_int8) << 5;
        } else {
            snprintf(s, sizeof s, "%soutput.dense.bias", p);
            add(&T, s, ST_F32, w->ff2_b, C, 0);
        }
        snprintf(s, sizeof s, "%soutput.LayerNorm.weight", p);
        add(&T, s, ST_F32, w->ln2_g, C, 0);
        snprintf(s, sizeof s, "%soutput.LayerNorm.bias", p);
        add(&T, s, ST_F32, w->ln2_b, C, 0);
        int8_mask[l] = q8;
        // BertModel: hidden / num_attention_heads heads of hidden / heads each, one FFN width, no INT8
        custom |= q8 != 0 || A != C || F <= 0 || F != c->layers[0].ffn_dim;
    }
    char path[4300];
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    if (T.oom) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory collecting the tensors");
    if (st == SESLM_OK) st = st_write(path, T.t, T.n, NULL);
    if (st == SESLM_OK) st = write_config(m, out, custom, int8_mask);
    if (st == SESLM_OK) st = write_st_files(m, out);
    snprintf(path, sizeof path, "%s/modeling_seslm.py", out);
    if (st == SESLM_OK && custom) st = write_text(out, "modeling_seslm.py", seslm_hf_modeling_py);
    else if (st == SESLM_OK) remove(path); // a standard export in a folder that held a custom one
    for (int i = 0; i < T.n_owned; i++) free(T.owned[i]);
    free(T.t), free(T.names), free(T.owned), free(int8_mask);
    if (custom_out) *custom_out = custom;
    return st;
}
