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

// ---- sentence-transformers pipeline (modules.json, the Pooling folder, prompts) -------------------
// Only what this runtime reproduces exactly is accepted: Transformer (at the model root), one Pooling,
// an optional Normalize, in that order. Anything else is refused by name, never approximated.

static const char *const pool_names[] = {"mean", "cls", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"};
// the legacy boolean keys, in the order sentence-transformers concatenates them
static const struct {
    const char *key;
    seslm_pooling mode;
} pool_legacy[] = {{"pooling_mode_cls_token", SESLM_POOL_CLS},
                   {"pooling_mode_max_tokens", SESLM_POOL_MAX},
                   {"pooling_mode_mean_tokens", SESLM_POOL_MEAN},
                   {"pooling_mode_mean_sqrt_len_tokens", SESLM_POOL_MEAN_SQRT_LEN},
                   {"pooling_mode_weightedmean_tokens", SESLM_POOL_WEIGHTEDMEAN},
                   {"pooling_mode_lasttoken", SESLM_POOL_LASTTOKEN}};

const char *seslm_pooling_name(seslm_pooling p) {
    return (unsigned)p < sizeof pool_names / sizeof pool_names[0] ? pool_names[p] : "?";
}

static int pool_from_name(const char *s, seslm_pooling *out) {
    for (int i = 0; i < (int)(sizeof pool_names / sizeof pool_names[0]); i++)
        if (strcmp(s, pool_names[i]) == 0) return *out = (seslm_pooling)i, 1;
    return 0;
}

// Optional JSON file: *out NULL when absent; malformed -> SESLM_ERR_FORMAT.
static seslm_status config_json_file(const char *path, cJSON **out) {
    char *buf = NULL;
    size_t n = 0;
    int missing = 0;
    *out = NULL;
    seslm_status st = util_read_file(path, &buf, &n, 1 << 20, &missing);
    if (st != SESLM_OK) return missing ? SESLM_OK : st;
    *out = cJSON_ParseWithLength(buf, n);
    free(buf);
    if (!*out) return seslm_fail(SESLM_ERR_FORMAT, "%s: not valid JSON", path);
    return SESLM_OK;
}

// <dir>/<sub>/config.json of the Pooling module.
static seslm_status config_pooling(seslm_model_config *cfg, const char *dir, const char *sub) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/config.json", dir, sub);
    cJSON *p = NULL;
    seslm_status st = config_json_file(path, &p);
    if (st != SESLM_OK) return st;
    if (!p) return SESLM_OK; // sentence-transformers' default: mean
    if (!cJSON_IsObject(p)) {
        cJSON_Delete(p);
        return seslm_fail(SESLM_ERR_FORMAT, "%s: not a JSON object", path);
    }
    int n_modes = 0;
    seslm_pooling mode = SESLM_POOL_MEAN;
    const cJSON *pm = cJSON_GetObjectItemCaseSensitive(p, "pooling_mode");
    if (pm) { // sentence-transformers >= 6: a name or a list of names (concatenated)
        const cJSON *e;
        if (cJSON_IsString(pm)) {
            if (!pool_from_name(pm->valuestring, &mode)) st = seslm_fail(SESLM_ERR_FORMAT, "%s: unknown pooling_mode \"%s\"", path, pm->valuestring);
            n_modes = 1;
        } else if (cJSON_IsArray(pm)) {
            cJSON_ArrayForEach(e, pm) {
                if (!cJSON_IsString(e) || !pool_from_name(e->valuestring, &mode))
                    st = seslm_fail(SESLM_ERR_FORMAT, "%s: unknown pooling_mode entry", path);
                n_modes++;
            }
        } else {
            st = seslm_fail(SESLM_ERR_FORMAT, "%s: pooling_mode must be a string or a list of strings", path);
        }
    } else { // the legacy booleans; none set means mean
        for (size_t i = 0; i < sizeof pool_legacy / sizeof pool_legacy[0]; i++)
            if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, pool_legacy[i].key))) mode = pool_legacy[i].mode, n_modes++;
        if (n_modes == 0) n_modes = 1;
    }
    if (st == SESLM_OK && n_modes != 1)
        st = seslm_fail(SESLM_ERR_FORMAT,
                        "%s: %d pooling modes are enabled; sentence-transformers concatenates them into a %d-wide vector, "
                        "which SE-SLM does not reproduce (enable exactly one)", path, n_modes, n_modes * cfg->hidden);
    const cJSON *dim = cJSON_GetObjectItemCaseSensitive(p, "word_embedding_dimension");
    if (!dim) dim = cJSON_GetObjectItemCaseSensitive(p, "embedding_dimension");
    // (checked against the hidden size after the weights, whose shapes say more when config.json is wrong)
    if (st == SESLM_OK && dim && (!cJSON_IsNumber(dim) || !(dim->valuedouble >= 1 && dim->valuedouble <= 1 << 20)))
        st = seslm_fail(SESLM_ERR_FORMAT, "%s: bad embedding dimension", path);
    if (st == SESLM_OK && dim) cfg->pooling_dim = (int)dim->valuedouble;
    const cJSON *ip = cJSON_GetObjectItemCaseSensitive(p, "include_prompt");
    if (st == SESLM_OK && ip && !cJSON_IsBool(ip)) st = seslm_fail(SESLM_ERR_FORMAT, "%s: include_prompt must be a boolean", path);
    cfg->include_prompt = !cJSON_IsFalse(ip);
    cfg->pooling = mode;
    cJSON_Delete(p);
    return st;
}

// modules.json: the module list. Absent: Transformer + mean pooling (read from 1_Pooling if present).
static seslm_status config_modules(seslm_model_config *cfg, const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/modules.json", dir);
    cJSON *mods = NULL;
    seslm_status st = config_json_file(path, &mods);
    if (st != SESLM_OK) return st;
    if (!mods) return config_pooling(cfg, dir, "1_Pooling");
    if (!cJSON_IsArray(mods) || cJSON_GetArraySize(mods) == 0) {
        cJSON_Delete(mods);
        return seslm_fail(SESLM_ERR_FORMAT, "%s: must be a non-empty list of modules", path);
    }
    int i = 0, have_pool = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, mods) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "type"), *pth = cJSON_GetObjectItemCaseSensitive(e, "path");
        const char *type = cJSON_IsString(t) ? t->valuestring : "(none)";
        const char *dot = strrchr(type, '.');
        const char *cls = dot ? dot + 1 : type;
        const char *sub = cJSON_IsString(pth) ? pth->valuestring : "";
        const int ours = strncmp(type, "sentence_transformers.", 22) == 0;
        // the only pipeline reproduced: [0] Transformer at the root, [1] Pooling, [2] Normalize (optional)
        if (ours && i == 0 && strcmp(cls, "Transformer") == 0) {
            if (sub[0]) st = seslm_fail(SESLM_ERR_FORMAT, "%s: a Transformer module in a subfolder (\"%s\") is not supported", path, sub);
        } else if (ours && i == 1 && strcmp(cls, "Pooling") == 0) {
            if (!sub[0] || strstr(sub, "..") || sub[0] == '/')
                st = seslm_fail(SESLM_ERR_FORMAT, "%s: the Pooling module needs a relative \"path\"", path);
            else
                st = config_pooling(cfg, dir, sub);
            have_pool = 1;
        } else if (ours && i == 2 && strcmp(cls, "Normalize") == 0) {
            cfg->normalize = 1;
        } else {
            st = seslm_fail(SESLM_ERR_FORMAT,
                            "%s: module %d is \"%s\"; SE-SLM reproduces only Transformer -> Pooling -> [Normalize], "
                            "so this model is refused rather than run differently", path, i, type);
        }
        if (st != SESLM_OK) break;
        i++;
    }
    if (st == SESLM_OK && !have_pool)
        st = seslm_fail(SESLM_ERR_FORMAT, "%s: no Pooling module; token embeddings are not a sentence embedding", path);
    cJSON_Delete(mods);
    return st;
}

// config_sentence_transformers.json: "prompts" {name: text} and "default_prompt_name".
static seslm_status config_prompts(seslm_model_config *cfg, const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config_sentence_transformers.json", dir);
    cJSON *p = NULL;
    seslm_status st = config_json_file(path, &p);
    cfg->default_prompt = -1;
    if (st != SESLM_OK || !p) return st;
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(p, "prompts"), *dn = cJSON_GetObjectItemCaseSensitive(p, "default_prompt_name");
    const cJSON *e;
    if (pr && !cJSON_IsNull(pr) && !cJSON_IsObject(pr)) st = seslm_fail(SESLM_ERR_FORMAT, "%s: prompts must be an object", path);
    int n = cJSON_IsObject(pr) ? cJSON_GetArraySize(pr) : 0;
    if (st == SESLM_OK && n > 0 && !(cfg->prompts = calloc((size_t)n, sizeof *cfg->prompts)))
        st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    if (st == SESLM_OK && n > 0) cJSON_ArrayForEach(e, pr) {
        if (!cJSON_IsString(e)) {
            st = seslm_fail(SESLM_ERR_FORMAT, "%s: prompts[\"%s\"] must be a string", path, e->string);
            break;
        }
        seslm_prompt *q = &cfg->prompts[cfg->n_prompts++];
        if (!(q->name = strdup(e->string)) || !(q->text = strdup(e->valuestring))) {
            st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
            break;
        }
    }
    if (st == SESLM_OK && dn && !cJSON_IsNull(dn)) {
        for (int i = 0; cJSON_IsString(dn) && i < cfg->n_prompts; i++)
            if (strcmp(cfg->prompts[i].name, dn->valuestring) == 0) cfg->default_prompt = i;
        if (cfg->default_prompt < 0)
            st = seslm_fail(SESLM_ERR_FORMAT, "%s: default_prompt_name is not one of the prompts", path);
    }
    cJSON_Delete(p);
    return st;
}

static seslm_status config_sentence_transformers(seslm_model_config *cfg, const char *dir) {
    cfg->pooling = SESLM_POOL_MEAN;
    cfg->include_prompt = 1;
    cfg->normalize = 0;
    seslm_status st = config_modules(cfg, dir);
    cfg->pooling_mean = cfg->pooling == SESLM_POOL_MEAN;
    if (st == SESLM_OK) st = config_prompts(cfg, dir);
    if (st != SESLM_OK) return st;
    char path[4096], *buf = NULL;
    size_t n = 0;
    snprintf(path, sizeof path, "%s/sentence_bert_config.json", dir);
    if (util_read_file(path, &buf, &n, 1 << 20, NULL) == SESLM_OK) {
        cJSON *p = cJSON_ParseWithLength(buf, n);
        int msl = 0;
        if (p && json_int(p, "max_seq_length", 0, &msl) && msl > 0 && msl < cfg->max_seq_len) cfg->max_seq_len = msl;
        cJSON_Delete(p);
        free(buf);
    }
    return SESLM_OK;
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
    const cJSON *qz = cJSON_GetObjectItemCaseSensitive(root, "seslm_quantization");
    const cJSON *qa = cJSON_IsObject(qz) ? cJSON_GetObjectItemCaseSensitive(qz, "linear_activations") : NULL;
    if (qa) { // what an INT8 layer does with its input (quant.h); absent or "f32": seslm_model_load decides
              // from the weights (seslm.h act_explicit)
        const char *v = cJSON_IsString(qa) ? qa->valuestring : "";
        if (strcmp(v, SESLM_ACT_TOP1) == 0) cfg->act_top1 = cfg->act_explicit = 1;
        else if (strcmp(v, SESLM_ACT_TOKEN) == 0) cfg->act_explicit = 1;
        else if (strcmp(v, "f32") != 0) {
            cJSON_Delete(root);
            return seslm_fail(SESLM_ERR_FORMAT,
                              "%s: seslm_quantization.linear_activations must be \"" SESLM_ACT_TOKEN "\", \"" SESLM_ACT_TOP1
                              "\" or \"f32\"",
                              path);
        }
    }
    cfg->max_seq_len = cfg->max_position;
    st = config_parse_layers(cfg, root, path, heads, ffn);
    cJSON_Delete(root);
    if (st != SESLM_OK) {
        seslm_config_free(cfg);
        return st;
    }
    st = config_sentence_transformers(cfg, dir);
    if (st != SESLM_OK) seslm_config_free(cfg);
    return st;
}

void seslm_config_free(seslm_model_config *cfg) {
    free(cfg->layers);
    cfg->layers = NULL;
    for (int i = 0; i < cfg->n_prompts; i++) free(cfg->prompts[i].name), free(cfg->prompts[i].text);
    free(cfg->prompts);
    cfg->prompts = NULL;
    cfg->n_prompts = 0;
}
