/* config.c — the architecture of a model directory, read from HF-style config.json plus the
 * sentence-transformers files (sentence_bert_config.json, 1_Pooling/config.json, modules.json).
 *
 * Per-layer structure (pruned models): config.json may carry "seslm_layers": [{"num_attention_heads": h,
 * "intermediate_size": f}, ...], one entry per layer; absent, every layer has the global values. */
#include "model_internal.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int json_int(const cJSON *o, const char *key, int dflt, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) {
        *out = dflt;
        return dflt != -1;
    }
    // range check first: converting an out-of-range double to int is undefined behaviour
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= INT_MIN && v->valuedouble <= INT_MAX) ||
        v->valuedouble != (double)(int)v->valuedouble)
        return 0;
    *out = (int)v->valuedouble;
    return 1;
}

static seslm_status config_parse_layers(seslm_model_config *cfg, const cJSON *root, const char *path, int heads,
                                        int ffn) {
    cfg->layers = calloc((size_t)cfg->n_layers, sizeof *cfg->layers);
    if (!cfg->layers) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    const cJSON *jl = cJSON_GetObjectItemCaseSensitive(root, "seslm_layers");
    if (jl && (!cJSON_IsArray(jl) || cJSON_GetArraySize(jl) != cfg->n_layers))
        return seslm_fail(SESLM_ERR_FORMAT, "%s: seslm_layers must be an array of %d layer objects", path,
                          cfg->n_layers);
    for (int i = 0; i < cfg->n_layers; i++) {
        seslm_layer_config *l = &cfg->layers[i];
        l->n_heads = heads;
        l->ffn_dim = ffn;
        if (!jl) continue;
        const cJSON *e = cJSON_GetArrayItem(jl, i);
        if (!cJSON_IsObject(e) || !json_int(e, "num_attention_heads", heads, &l->n_heads) ||
            !json_int(e, "intermediate_size", ffn, &l->ffn_dim) || l->n_heads < 0 || l->ffn_dim < 0 ||
            l->n_heads > 4096 || l->ffn_dim > (1 << 20) || (int64_t)l->n_heads * cfg->head_dim > (1 << 20))
            return seslm_fail(SESLM_ERR_FORMAT, "%s: seslm_layers[%d] is invalid", path, i);
    }
    return SESLM_OK;
}

// Sentence-transformers pipeline: pooling mode and whether a Normalize module follows.
static void config_sentence_transformers(seslm_model_config *cfg, const char *dir) {
    cfg->pooling_mean = 1;
    cfg->normalize = 0;
    char *buf = NULL;
    size_t n = 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/modules.json", dir);
    if (util_read_file(path, &buf, &n, 1 << 20, NULL) == SESLM_OK) {
        cfg->normalize = strstr(buf, "sentence_transformers.models.Normalize") != NULL;
        free(buf);
    }
    snprintf(path, sizeof path, "%s/1_Pooling/config.json", dir);
    if (util_read_file(path, &buf, &n, 1 << 20, NULL) == SESLM_OK) {
        cJSON *p = cJSON_ParseWithLength(buf, n);
        const cJSON *cls = p ? cJSON_GetObjectItemCaseSensitive(p, "pooling_mode_cls_token") : NULL;
        if (cJSON_IsTrue(cls)) cfg->pooling_mean = 0;
        cJSON_Delete(p);
        free(buf);
    }
    snprintf(path, sizeof path, "%s/sentence_bert_config.json", dir);
    if (util_read_file(path, &buf, &n, 1 << 20, NULL) == SESLM_OK) {
        cJSON *p = cJSON_ParseWithLength(buf, n);
        int msl = 0;
        if (p && json_int(p, "max_seq_length", 0, &msl) && msl > 0 && msl < cfg->max_seq_len) cfg->max_seq_len = msl;
        cJSON_Delete(p);
        free(buf);
    }
}

seslm_status seslm_config_load(seslm_model_config *cfg, const char *dir) {
    memset(cfg, 0, sizeof *cfg);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *buf = NULL;
    size_t n = 0;
    seslm_status st = util_read_file(path, &buf, &n, 16 << 20, NULL);
    if (st != SESLM_OK) return st;
    cJSON *root = cJSON_ParseWithLength(buf, n);
    free(buf);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return seslm_fail(SESLM_ERR_FORMAT, "%s: not a JSON object", path);
    }
    int heads = 0, ffn = 0, head_dim = 0;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    const cJSON *pet = cJSON_GetObjectItemCaseSensitive(root, "position_embedding_type");
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_eps");
    const struct {
        const char *key;
        int dflt; // -1: required
        int *out;
    } ints[] = {{"hidden_size", -1, &cfg->hidden},
                {"num_hidden_layers", -1, &cfg->n_layers},
                {"num_attention_heads", -1, &heads},
                {"intermediate_size", -1, &ffn},
                {"vocab_size", -1, &cfg->vocab_size},
                {"max_position_embeddings", 512, &cfg->max_position},
                {"type_vocab_size", 2, &cfg->type_vocab_size},
                {"pad_token_id", 0, &cfg->pad_token_id}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (!json_int(root, ints[i].key, ints[i].dflt, ints[i].out)) {
            cJSON_Delete(root);
            return seslm_fail(SESLM_ERR_FORMAT, "%s: \"%s\" must be %san integer", path, ints[i].key,
                              ints[i].dflt == -1 ? "present and " : "");
        }
    if (cfg->hidden <= 0 || cfg->hidden > 65536 || cfg->n_layers <= 0 || cfg->n_layers > 1024 || heads <= 0 ||
        cfg->hidden % heads != 0 || ffn < 0 || cfg->vocab_size <= 0 || cfg->max_position <= 0 ||
        cfg->type_vocab_size <= 0) {
        cJSON_Delete(root);
        return seslm_fail(SESLM_ERR_FORMAT, "%s: inconsistent sizes (hidden %d, layers %d, heads %d)", path,
                          cfg->hidden, cfg->n_layers, heads);
    }
    // bounded so that heads * head_dim (the attention width) cannot overflow an int
    if (!json_int(root, "attention_head_size", cfg->hidden / heads, &head_dim) || head_dim <= 0 ||
        (int64_t)heads * head_dim > (1 << 20)) {
        cJSON_Delete(root);
        return seslm_fail(SESLM_ERR_FORMAT, "%s: bad attention_head_size", path);
    }
    cfg->head_dim = head_dim;
    if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "gelu") != 0)) {
        cJSON_Delete(root);
        return seslm_fail(SESLM_ERR_FORMAT, "%s: hidden_act must be \"gelu\" (erf); other activations are not supported",
                          path);
    }
    if (pet && (!cJSON_IsString(pet) || strcmp(pet->valuestring, "absolute") != 0)) {
        cJSON_Delete(root);
        return seslm_fail(SESLM_ERR_FORMAT, "%s: only absolute position embeddings are supported", path);
    }
    cfg->layer_norm_eps = cJSON_IsNumber(eps) ? (float)eps->valuedouble : 1e-12f;
    const cJSON *prec = cJSON_GetObjectItemCaseSensitive(root, "seslm_precision");
    snprintf(cfg->precision, sizeof cfg->precision, "fp32");
    if (prec) {
        if (!cJSON_IsString(prec) || (strcmp(prec->valuestring, "fp32") != 0 && strcmp(prec->valuestring, "bf16") != 0 &&
                                      strcmp(prec->valuestring, "int8") != 0)) {
            cJSON_Delete(root);
            return seslm_fail(SESLM_ERR_FORMAT, "%s: seslm_precision must be \"fp32\", \"bf16\" or \"int8\"", path);
        }
        snprintf(cfg->precision, sizeof cfg->precision, "%s", prec->valuestring);
    }
    cfg->max_seq_len = cfg->max_position;
    st = config_parse_layers(cfg, root, path, heads, ffn);
    cJSON_Delete(root);
    if (st != SESLM_OK) {
        seslm_config_free(cfg);
        return st;
    }
    config_sentence_transformers(cfg, dir);
    return SESLM_OK;
}

void seslm_config_free(seslm_model_config *cfg) {
    free(cfg->layers);
    cfg->layers = NULL;
}
