/* plan.c — pruning policy and plans (plan.h, docs/pruning.md). */
#include "plan.h"
#include "util.h"

#include "yaml_config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- policy --------------------------------------------------------------------------------------

void seslm_policy_default(seslm_policy *p) {
    memset(p, 0, sizeof *p);
    p->n_targets = 3;
    p->targets[0] = 0.10, p->targets[1] = 0.20, p->targets[2] = 0.30;
    p->cap = SESLM_PLAN_HARD_CAP;
    p->n_protected = 0; // every layer's units are ranked (configs/evolve.yaml, docs/pruning.md: why)
    p->n_never_drop = 2; // the first layer reads the embeddings, the last one writes what is pooled
    p->never_drop[0] = 0, p->never_drop[1] = -1;
    p->min_heads = 4, p->min_ffn = 256;
    snprintf(p->method, sizeof p->method, "measured");
    p->neuron_groups = 64, p->calib_lines = 64;
    p->dormant_rate = 0.01, p->dormant_abs = 1e-3, p->uniform_entropy = 0.9, p->low_head_norm = 0.25;
    p->rare_count = 2, p->top_pairs = 50;
}

static const char *const policy_keys[] = {
    "version", "targets", "cap", "protected_layers", "min_heads", "min_ffn", "score", "score.method",
    "score.neuron_groups", "score.calib_lines", "profile", "profile.dormant_rate", "profile.dormant_abs",
    "profile.uniform_entropy", "profile.low_head_norm", "profile.rare_count", "profile.top_pairs",
    "targets.*", "protected_layers.*", "drop_layers", "drop_layers.*", "never_drop", "never_drop.*",
    "evolve", "evolve.*", // the nightly cycle's settings (seslm evolve, pipeline/evolve/evolve_config.c)
};

// A list of layers (index, "first" or "last" = -1) under key; left as it was when the key is absent.
static seslm_status layer_list(const seslm_yaml *y, const char *key, int *out, int *n_out) {
    const char *src = seslm_yaml_path(y);
    int np = seslm_yaml_count(y, key), line = 0;
    if (np < 0) return seslm_fail(SESLM_ERR_FORMAT, "%s: %s: expected a list of layers", src, key);
    if (np > SESLM_PLAN_MAX_PROTECTED) return seslm_fail(SESLM_ERR_FORMAT, "%s: %s: too many", src, key);
    if (!seslm_yaml_has(y, key)) return SESLM_OK;
    *n_out = np;
    for (int i = 0; i < np; i++) {
        char k2[48];
        snprintf(k2, sizeof k2, "%s.%d", key, i);
        const char *s = seslm_yaml_scalar(y, k2, &line);
        char *end = NULL;
        long k = s ? strtol(s, &end, 10) : 0;
        if (s && strcmp(s, "first") == 0) out[i] = 0;
        else if (s && strcmp(s, "last") == 0) out[i] = -1;
        else if (s && *s && end && !*end && k >= 0 && k < 100000) out[i] = (int)k;
        else
            return seslm_fail(SESLM_ERR_FORMAT, "%s:%d: %s: unknown layer '%s' (a layer index >= 0, 'first' or 'last')",
                              src, line, k2, s ? s : "(not a scalar)");
    }
    return SESLM_OK;
}

static seslm_status policy_from_yaml(seslm_policy *p, const seslm_yaml *y) {
    const char *src = seslm_yaml_path(y);
    seslm_policy_default(p);
    seslm_status st = seslm_yaml_check_keys(y, policy_keys, (int)(sizeof policy_keys / sizeof policy_keys[0]));
    long long v = 0, mh = 0, mf = 0, ng = 0, cl = 0, rc = 0, tp = 0;
    if (st == SESLM_OK) st = seslm_yaml_get_int(y, "version", 1, 1, 1, &v);
    if (st == SESLM_OK) st = seslm_yaml_get_double(y, "cap", -1e9, 1e9, SESLM_PLAN_HARD_CAP, &p->cap);
    if (st != SESLM_OK) return st;
    int line = 0;
    seslm_yaml_scalar(y, "cap", &line);
    if (!(p->cap > 0) || p->cap > SESLM_PLAN_HARD_CAP + 1e-12)
        return seslm_fail(SESLM_ERR_FORMAT, "%s:%d: cap: %g breaks the rule 0 < cap <= %.2f (hard limit per cycle)", src,
                          line, p->cap, SESLM_PLAN_HARD_CAP);
    int nt = seslm_yaml_count(y, "targets");
    if (nt < 0) return seslm_fail(SESLM_ERR_FORMAT, "%s: targets: expected a list of ratios", src);
    if (nt > SESLM_PLAN_MAX_TARGETS)
        return seslm_fail(SESLM_ERR_FORMAT, "%s: targets: at most %d candidates", src, SESLM_PLAN_MAX_TARGETS);
    if (seslm_yaml_has(y, "targets")) {
        if (nt == 0) return seslm_fail(SESLM_ERR_FORMAT, "%s: targets: at least one candidate ratio is needed", src);
        p->n_targets = nt;
    } else { // the default candidates, up to the file's cap (a cap of 0.25 alone kept 0.30: found by fuzz_config);
             // a cap below them all is the one candidate
        int k = 0;
        for (int i = 0; i < p->n_targets; i++)
            if (p->targets[i] <= p->cap + 1e-12) p->targets[k++] = p->targets[i];
        if (k == 0) p->targets[k++] = p->cap;
        p->n_targets = k;
    }
    for (int i = 0; i < nt; i++) {
        char key[32];
        snprintf(key, sizeof key, "targets.%d", i);
        if ((st = seslm_yaml_get_double(y, key, -1e9, 1e9, 0, &p->targets[i])) != SESLM_OK) return st;
        seslm_yaml_scalar(y, key, &line);
        if (!(p->targets[i] > 0))
            return seslm_fail(SESLM_ERR_FORMAT, "%s:%d: %s: a target ratio must be > 0 (got %g)", src, line, key,
                              p->targets[i]);
        if (p->targets[i] > p->cap + 1e-12)
            return seslm_fail(SESLM_ERR_FORMAT, "%s:%d: %s: target %g exceeds the cap %g (rule: at most %.0f%% per cycle)",
                              src, line, key, p->targets[i], p->cap, 100 * p->cap);
    }
    if ((st = layer_list(y, "protected_layers", p->protected_layers, &p->n_protected)) != SESLM_OK) return st;
    if ((st = layer_list(y, "never_drop", p->never_drop, &p->n_never_drop)) != SESLM_OK) return st;
    int nd = seslm_yaml_count(y, "drop_layers");
    if (nd < 0) return seslm_fail(SESLM_ERR_FORMAT, "%s: drop_layers: expected a list of layer counts", src);
    if (nd > SESLM_PLAN_MAX_TARGETS)
        return seslm_fail(SESLM_ERR_FORMAT, "%s: drop_layers: at most %d candidates", src, SESLM_PLAN_MAX_TARGETS);
    p->n_drop_layers = nd;
    for (int i = 0; i < nd; i++) {
        char key[40];
        long long k = 0;
        snprintf(key, sizeof key, "drop_layers.%d", i);
        if ((st = seslm_yaml_get_int(y, key, 1, 1000, 1, &k)) != SESLM_OK) return st;
        p->drop_layers[i] = (int)k;
    }
    if (st == SESLM_OK) st = seslm_yaml_get_int(y, "min_heads", 1, 1 << 20, p->min_heads, &mh); // (a layer keeps a head)
    if (st == SESLM_OK) st = seslm_yaml_get_int(y, "min_ffn", 1, 1 << 24, p->min_ffn, &mf); // (and a neuron)
    const char *method = NULL;
    if (st == SESLM_OK) st = seslm_yaml_get_string(y, "score.method", p->method, &method);
    if (st == SESLM_OK) st = seslm_yaml_get_int(y, "score.neuron_groups", 1, 1 << 20, p->neuron_groups, &ng);
    if (st == SESLM_OK) st = seslm_yaml_get_int(y, "score.calib_lines", 1, 1 << 20, p->calib_lines, &cl);
    if (st == SESLM_OK) st = seslm_yaml_get_double(y, "profile.dormant_rate", 0, 1, p->dormant_rate, &p->dormant_rate);
    if (st == SESLM_OK) st = seslm_yaml_get_double(y, "profile.dormant_abs", 0, 1e9, p->dormant_abs, &p->dormant_abs);
    if (st == SESLM_OK) st = seslm_yaml_get_double(y, "profile.uniform_entropy", 0, 1, p->uniform_entropy, &p->uniform_entropy);
    if (st == SESLM_OK) st = seslm_yaml_get_double(y, "profile.low_head_norm", 0, 1, p->low_head_norm, &p->low_head_norm);
    if (st == SESLM_OK) st = seslm_yaml_get_int(y, "profile.rare_count", 0, 1LL << 40, p->rare_count, &rc);
    if (st == SESLM_OK) st = seslm_yaml_get_int(y, "profile.top_pairs", 0, 1 << 20, p->top_pairs, &tp);
    if (st != SESLM_OK) return st;
    if (!seslm_score_method_find(method)) {
        seslm_yaml_scalar(y, "score.method", &line);
        return seslm_fail(SESLM_ERR_FORMAT, "%s:%d: score.method: unknown method '%s' (activation, measured, hybrid)", src, line,
                          method);
    }
    snprintf(p->method, sizeof p->method, "%s", method);
    p->min_heads = (int)mh, p->min_ffn = (int)mf, p->neuron_groups = (int)ng, p->calib_lines = (int)cl;
    p->rare_count = (int)rc, p->top_pairs = (int)tp;
    return SESLM_OK;
}

seslm_status seslm_policy_load(seslm_policy *p, const char *path) {
    seslm_yaml *y = NULL;
    seslm_status st = seslm_yaml_load(&y, path);
    if (st == SESLM_OK) st = policy_from_yaml(p, y);
    seslm_yaml_free(y);
    return st;
}

seslm_status seslm_policy_load_string(seslm_policy *p, const char *text) {
    seslm_yaml *y = NULL;
    seslm_status st = seslm_yaml_load_string(&y, "policy", text, strlen(text));
    if (st == SESLM_OK) st = policy_from_yaml(p, y);
    seslm_yaml_free(y);
    return st;
}

seslm_status seslm_policy_check_model(const seslm_policy *p, const seslm_model_config *c, int *is_protected) {
    const int L = c->n_layers;
    if (is_protected) memset(is_protected, 0, (size_t)L * sizeof(int));
    for (int i = 0; i < p->n_protected; i++) {
        int l = p->protected_layers[i] < 0 ? L - 1 : p->protected_layers[i];
        if (l >= L)
            return seslm_fail(SESLM_ERR_ARG, "protected_layers: unknown layer index %d (the model has layers 0..%d)", l,
                              L - 1);
        if (is_protected) is_protected[l] = 1;
    }
    for (int i = 0; i < p->n_never_drop; i++)
        if ((p->never_drop[i] < 0 ? L - 1 : p->never_drop[i]) >= L)
            return seslm_fail(SESLM_ERR_ARG, "never_drop: unknown layer index %d (the model has layers 0..%d)",
                              p->never_drop[i], L - 1);
    if (!(p->cap > 0 && p->cap <= SESLM_PLAN_HARD_CAP + 1e-12))
        return seslm_fail(SESLM_ERR_ARG, "cap %g breaks the rule 0 < cap <= %.2f", p->cap, SESLM_PLAN_HARD_CAP);
    for (int i = 0; i < p->n_targets; i++)
        if (!(p->targets[i] > 0) || p->targets[i] > p->cap + 1e-12)
            return seslm_fail(SESLM_ERR_ARG, "target %g breaks the rule 0 < target <= cap (%g)", p->targets[i], p->cap);
    for (int l = 0; l < L; l++) {
        int prot = 0;
        for (int i = 0; i < p->n_protected; i++) prot |= (p->protected_layers[i] < 0 ? L - 1 : p->protected_layers[i]) == l;
        if (prot) continue;
        if (p->min_heads > c->layers[l].n_heads)
            return seslm_fail(SESLM_ERR_ARG, "min_heads %d exceeds the %d heads of layer %d", p->min_heads,
                              c->layers[l].n_heads, l);
        if (p->min_ffn > c->layers[l].ffn_dim)
            return seslm_fail(SESLM_ERR_ARG, "min_ffn %d exceeds the %d neurons of layer %d", p->min_ffn,
                              c->layers[l].ffn_dim, l);
    }
    return SESLM_OK;
}

seslm_status seslm_policy_undroppable(const seslm_policy *p, const seslm_model_config *c, int *keep) {
    const int L = c->n_layers;
    seslm_status st = seslm_policy_check_model(p, c, keep);
    for (int i = 0; st == SESLM_OK && i < p->n_never_drop; i++) keep[p->never_drop[i] < 0 ? L - 1 : p->never_drop[i]] = 1;
    return st;
}

// ---- plans ---------------------------------------------------------------------------------------

static seslm_status plan_alloc(seslm_plan *pl, int L) {
    memset(pl, 0, sizeof *pl);
    pl->n_layers = L;
    pl->n_remove_heads = calloc((size_t)L + 1, sizeof(int));
    pl->n_remove_neurons = calloc((size_t)L + 1, sizeof(int));
    pl->remove_heads = calloc((size_t)L + 1, sizeof(int *));
    pl->remove_neurons = calloc((size_t)L + 1, sizeof(int *));
    pl->drop_layer = calloc((size_t)L + 1, sizeof(int));
    pl->mean_cos = pl->p5_cos = -1;
    if (!pl->n_remove_heads || !pl->n_remove_neurons || !pl->remove_heads || !pl->remove_neurons || !pl->drop_layer) {
        seslm_plan_free(pl);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    return SESLM_OK;
}

void seslm_plan_free(seslm_plan *pl) {
    for (int l = 0; l < pl->n_layers; l++) {
        if (pl->remove_heads) free(pl->remove_heads[l]);
        if (pl->remove_neurons) free(pl->remove_neurons[l]);
    }
    free(pl->n_remove_heads), free(pl->n_remove_neurons), free(pl->remove_heads), free(pl->remove_neurons);
    free(pl->drop_layer);
    memset(pl, 0, sizeof *pl);
}

typedef struct {
    double score;
    int layer, idx;
} unit;

static int cmp_unit(const void *a, const void *b) {
    const unit *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? -1 : 1;
    if (x->layer != y->layer) return x->layer - y->layer;
    return x->idx - y->idx;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

/* Removes up to `quota` units of one kind (heads: kind 0) in increasing score order. */
static seslm_status choose(seslm_plan *pl, const seslm_model_config *c, const int *prot, int kind, double *const *sc,
                           int quota, int min_keep) {
    const int L = c->n_layers;
    size_t n = 0;
    for (int l = 0; l < L; l++) n += (size_t)(kind ? c->layers[l].ffn_dim : c->layers[l].n_heads);
    unit *u = malloc((n + 1) * sizeof *u);
    int *left = malloc(((size_t)L + 1) * sizeof(int));
    if (!u || !left) {
        free(u), free(left);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    size_t k = 0;
    for (int l = 0; l < L; l++) {
        int N = kind ? c->layers[l].ffn_dim : c->layers[l].n_heads;
        left[l] = N;
        int **dst = kind ? &pl->remove_neurons[l] : &pl->remove_heads[l];
        if (!(*dst = malloc(((size_t)N + 1) * sizeof(int)))) {
            free(u), free(left);
            return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        }
        if (prot[l]) continue;
        for (int i = 0; i < N; i++) u[k++] = (unit){sc[l][i], l, i};
    }
    qsort(u, k, sizeof *u, cmp_unit);
    int removed = 0;
    for (size_t i = 0; i < k && removed < quota; i++) {
        int l = u[i].layer;
        if (left[l] - 1 < min_keep) continue;
        left[l]--;
        int *cnt = kind ? &pl->n_remove_neurons[l] : &pl->n_remove_heads[l];
        (kind ? pl->remove_neurons[l] : pl->remove_heads[l])[(*cnt)++] = u[i].idx;
        removed++;
    }
    for (int l = 0; l < L; l++) {
        if (kind) qsort(pl->remove_neurons[l], (size_t)pl->n_remove_neurons[l], sizeof(int), cmp_int);
        else qsort(pl->remove_heads[l], (size_t)pl->n_remove_heads[l], sizeof(int), cmp_int);
    }
    free(u), free(left);
    return SESLM_OK;
}

seslm_status seslm_plan_build(seslm_plan *pl, const seslm_policy *p, const seslm_model_config *c,
                              const seslm_scores *s, double target, double mean_seq_len) {
    const int L = c->n_layers;
    if (s->n_layers != L) return seslm_fail(SESLM_ERR_SHAPE, "scores of %d layers for a %d-layer model", s->n_layers, L);
    if (!(target > 0) || target > p->cap + 1e-12)
        return seslm_fail(SESLM_ERR_ARG, "target %g breaks the rule 0 < target <= cap (%g)", target, p->cap);
    int *prot = calloc((size_t)L + 1, sizeof(int));
    if (!prot) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    seslm_status st = seslm_policy_check_model(p, c, prot);
    if (st == SESLM_OK) st = plan_alloc(pl, L);
    if (st != SESLM_OK) {
        free(prot);
        return st;
    }
    pl->target = target;
    pl->mean_seq_len = mean_seq_len > 0 ? mean_seq_len : 128;
    snprintf(pl->method, sizeof pl->method, "%s", s->method);
    int nh = 0, nf = 0;
    for (int l = 0; l < L; l++) nh += c->layers[l].n_heads, nf += c->layers[l].ffn_dim;
    st = choose(pl, c, prot, 0, s->head, (int)floor(target * nh + 1e-9), p->min_heads);
    if (st == SESLM_OK) st = choose(pl, c, prot, 1, s->neuron, (int)floor(target * nf + 1e-9), p->min_ffn);
    free(prot);
    if (st != SESLM_OK) {
        seslm_plan_free(pl);
        return st;
    }
    seslm_plan_predict(pl, c);
    return SESLM_OK;
}

static int cmp_unit_desc_layer(const void *a, const void *b) { return cmp_unit(a, b); }

seslm_status seslm_plan_build_drop(seslm_plan *pl, const seslm_policy *p, const seslm_model_config *c,
                                   const seslm_scores *s, int n_drop, double mean_seq_len) {
    const int L = c->n_layers;
    if (s->n_layers != L) return seslm_fail(SESLM_ERR_SHAPE, "scores of %d layers for a %d-layer model", s->n_layers, L);
    if (n_drop < 1 || n_drop >= L) return seslm_fail(SESLM_ERR_ARG, "cannot drop %d of %d layers", n_drop, L);
    int *prot = calloc((size_t)L + 1, sizeof(int));
    unit *u = calloc((size_t)L + 1, sizeof *u);
    seslm_status st = prot && u ? seslm_policy_undroppable(p, c, prot) : seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    int k = 0;
    for (int l = 0; st == SESLM_OK && l < L; l++)
        if (!prot[l]) u[k++] = (unit){s->layer[l], l, 0};
    if (st == SESLM_OK && k < n_drop)
        st = seslm_fail(SESLM_ERR_ARG, "only %d layers may be dropped (protected_layers, never_drop): cannot drop %d", k,
                        n_drop);
    if (st == SESLM_OK) st = plan_alloc(pl, L);
    if (st != SESLM_OK) {
        free(prot), free(u);
        return st;
    }
    qsort(u, (size_t)k, sizeof *u, cmp_unit_desc_layer); // least important layers first
    for (int i = 0; i < n_drop; i++) pl->drop_layer[u[i].layer] = 1;
    pl->n_drop = n_drop;
    for (int l = 0; l < L; l++) {
        pl->remove_heads[l] = malloc(sizeof(int));
        pl->remove_neurons[l] = malloc(sizeof(int));
        if (!pl->remove_heads[l] || !pl->remove_neurons[l]) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    free(prot), free(u);
    if (st != SESLM_OK) {
        seslm_plan_free(pl);
        return st;
    }
    pl->mean_seq_len = mean_seq_len > 0 ? mean_seq_len : 128;
    snprintf(pl->method, sizeof pl->method, "%s", s->method);
    seslm_plan_predict(pl, c);
    pl->target = pl->prunable_parent ? (double)(pl->params_parent - pl->params) / (double)pl->prunable_parent : 0;
    return SESLM_OK;
}

static int64_t head_params(const seslm_model_config *c) { return 4LL * c->head_dim * c->hidden + 3LL * c->head_dim; }
static int64_t neuron_params(const seslm_model_config *c) { return 2LL * c->hidden + 1; }

static double layer_flops(const seslm_model_config *c, int H, int F, double S) {
    double A = (double)H * c->head_dim, C = c->hidden;
    return 2 * (3 * A * C + A * C + 2 * (double)F * C) + 4 * S * A; // projections + QK^T and PV
}

void seslm_plan_predict(seslm_plan *pl, const seslm_model_config *c) {
    const int64_t C = c->hidden;
    int64_t base = (int64_t)(c->vocab_size + c->max_position + c->type_vocab_size) * C + 2 * C, removed = 0;
    pl->params_parent = base, pl->prunable_parent = 0, pl->flops_parent = pl->flops = 0;
    for (int l = 0; l < c->n_layers; l++) {
        const int H = c->layers[l].n_heads, F = c->layers[l].ffn_dim;
        int64_t prun = H * head_params(c) + F * neuron_params(c);
        pl->prunable_parent += prun;
        pl->params_parent += prun + 6 * C; // + output biases and two LayerNorms
        pl->flops_parent += layer_flops(c, H, F, pl->mean_seq_len);
        if (pl->drop_layer && pl->drop_layer[l]) { // the whole layer: its units, output biases and LayerNorms
            removed += prun + 6 * C;
            continue;
        }
        removed += pl->n_remove_heads[l] * head_params(c) + pl->n_remove_neurons[l] * neuron_params(c);
        pl->flops += layer_flops(c, H - pl->n_remove_heads[l], F - pl->n_remove_neurons[l], pl->mean_seq_len);
    }
    pl->params = pl->params_parent - removed;
    pl->bytes_parent = pl->params_parent * (int64_t)sizeof(float);
    pl->bytes = pl->params * (int64_t)sizeof(float);
}

seslm_status seslm_plan_validate(const seslm_plan *pl, const seslm_policy *p, const seslm_model_config *c) {
    const int L = c->n_layers;
    if (pl->n_layers != L)
        return seslm_fail(SESLM_ERR_ARG, "the plan describes %d layers; the model has %d", pl->n_layers, L);
    int prot[1024] = {0}, nodrop[1024] = {0};
    if (L > 1024) return seslm_fail(SESLM_ERR_ARG, "too many layers");
    seslm_status st = seslm_policy_check_model(p, c, prot);
    if (st == SESLM_OK) st = seslm_policy_undroppable(p, c, nodrop);
    if (st != SESLM_OK) return st;
    int64_t nh = 0, nf = 0, rh = 0, rf = 0;
    int kept_layers = 0;
    for (int l = 0; l < L; l++) {
        const int H = c->layers[l].n_heads, F = c->layers[l].ffn_dim;
        nh += H, nf += F;
        if (pl->drop_layer && pl->drop_layer[l]) { // a dropped layer removes all its units
            if (prot[l]) return seslm_fail(SESLM_ERR_ARG, "layer %d is protected (policy protected_layers): it may not be dropped", l);
            if (nodrop[l]) return seslm_fail(SESLM_ERR_ARG, "layer %d may not be dropped whole (policy never_drop)", l);
            if (pl->n_remove_heads[l] || pl->n_remove_neurons[l])
                return seslm_fail(SESLM_ERR_ARG, "layer %d is dropped: it lists no heads or neurons to remove", l);
            rh += H, rf += F;
            continue;
        }
        kept_layers++;
        const int kinds[2] = {pl->n_remove_heads[l], pl->n_remove_neurons[l]}, N[2] = {H, F};
        const int *idx[2] = {pl->remove_heads[l], pl->remove_neurons[l]};
        const char *what[2] = {"head", "neuron"};
        for (int k = 0; k < 2; k++) {
            if (kinds[k] && prot[l])
                return seslm_fail(SESLM_ERR_ARG, "layer %d is protected (policy protected_layers): no %s may be removed", l,
                                  what[k]);
            for (int i = 0; i < kinds[k]; i++) {
                if (idx[k][i] < 0 || idx[k][i] >= N[k])
                    return seslm_fail(SESLM_ERR_ARG, "layer %d: %s %d does not exist (0..%d)", l, what[k], idx[k][i], N[k] - 1);
                if (i && idx[k][i] <= idx[k][i - 1])
                    return seslm_fail(SESLM_ERR_ARG, "layer %d: %s indices must be increasing and unique (%d after %d)", l,
                                      what[k], idx[k][i], idx[k][i - 1]);
            }
        }
        int min_h = p->min_heads < H ? p->min_heads : H, min_f = p->min_ffn < F ? p->min_ffn : F;
        if (H - kinds[0] < min_h)
            return seslm_fail(SESLM_ERR_ARG, "layer %d keeps %d heads, below min_heads %d", l, H - kinds[0], p->min_heads);
        if (F - kinds[1] < min_f)
            return seslm_fail(SESLM_ERR_ARG, "layer %d keeps %d FFN neurons, below min_ffn %d", l, F - kinds[1], p->min_ffn);
        rh += kinds[0], rf += kinds[1];
    }
    if (kept_layers == 0) return seslm_fail(SESLM_ERR_ARG, "the plan drops every layer");
    const double eps = 1e-12;
    if (nh && (double)rh / nh > p->cap + eps)
        return seslm_fail(SESLM_ERR_ARG, "removes %.1f%% of the heads, above the cap of %.0f%% per cycle", 100.0 * rh / nh,
                          100 * p->cap);
    if (nf && (double)rf / nf > p->cap + eps)
        return seslm_fail(SESLM_ERR_ARG, "removes %.1f%% of the FFN neurons, above the cap of %.0f%% per cycle",
                          100.0 * rf / nf, 100 * p->cap);
    seslm_plan tmp = *pl;
    seslm_plan_predict(&tmp, c);
    double frac = tmp.prunable_parent ? (double)(tmp.params_parent - tmp.params) / tmp.prunable_parent : 0;
    if (frac > p->cap + eps)
        return seslm_fail(SESLM_ERR_ARG, "removes %.1f%% of the prunable parameters, above the cap of %.0f%% per cycle",
                          100 * frac, 100 * p->cap);
    return SESLM_OK;
}

seslm_status seslm_plan_measure(seslm_plan *pl, const seslm_model_config *c, seslm_calib *cal) {
    const int L = c->n_layers;
    if (pl->n_drop > 0) { // masks cannot skip a layer's residual block: recompile + validate measure these
        pl->mean_cos = pl->p5_cos = -1;
        pl->calib_n = 0;
        return SESLM_OK;
    }
    size_t n = 0;
    for (int l = 0; l < L; l++) n += (size_t)c->layers[l].n_heads + (size_t)c->layers[l].ffn_dim;
    float *buf = malloc((n + 1) * sizeof(float));
    const float **hm = calloc((size_t)L + 1, sizeof(float *)), **nm = calloc((size_t)L + 1, sizeof(float *));
    if (!buf || !hm || !nm) {
        free(buf), free(hm), free(nm);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    float *q = buf;
    for (int l = 0; l < L; l++) {
        const int H = c->layers[l].n_heads, F = c->layers[l].ffn_dim;
        for (int i = 0; i < H + F; i++) q[i] = 1.0f;
        for (int i = 0; i < pl->n_remove_heads[l]; i++) q[pl->remove_heads[l][i]] = 0.0f;
        for (int i = 0; i < pl->n_remove_neurons[l]; i++) q[H + pl->remove_neurons[l][i]] = 0.0f;
        hm[l] = q, nm[l] = q + H;
        q += H + F;
    }
    seslm_status st = seslm_calib_eval(cal, hm, nm, &pl->mean_cos, &pl->p5_cos);
    pl->calib_n = cal->n;
    free(buf), free(hm), free(nm);
    return st;
}

// ---- JSON ----------------------------------------------------------------------------------------

static cJSON *ints(const int *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

seslm_status seslm_plan_write_json(const seslm_plan *pl, const char *model_sha256, const char *path) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "format", "seslm-plan");
    cJSON_AddNumberToObject(r, "version", 1);
    cJSON_AddStringToObject(r, "model_sha256", model_sha256 ? model_sha256 : "");
    cJSON_AddStringToObject(r, "method", pl->method);
    cJSON_AddNumberToObject(r, "target", pl->target);
    cJSON *layers = cJSON_AddArrayToObject(r, "layers");
    for (int l = 0; l < pl->n_layers; l++) {
        cJSON *lj = cJSON_CreateObject();
        cJSON_AddNumberToObject(lj, "layer", l);
        cJSON_AddItemToObject(lj, "remove_heads", ints(pl->remove_heads[l], pl->n_remove_heads[l]));
        cJSON_AddItemToObject(lj, "remove_neurons", ints(pl->remove_neurons[l], pl->n_remove_neurons[l]));
        if (pl->drop_layer && pl->drop_layer[l]) cJSON_AddTrueToObject(lj, "drop");
        cJSON_AddItemToArray(layers, lj);
    }
    cJSON *dl = cJSON_AddArrayToObject(r, "drop_layers");
    for (int l = 0; l < pl->n_layers; l++)
        if (pl->drop_layer && pl->drop_layer[l]) cJSON_AddItemToArray(dl, cJSON_CreateNumber(l));
    cJSON_AddNumberToObject(r, "layers_after", pl->n_layers - pl->n_drop);
    cJSON *emb = cJSON_AddObjectToObject(r, "embeddings");
    cJSON_AddStringToObject(emb, "id_space", "unchanged");
    cJSON *pr = cJSON_AddObjectToObject(r, "predicted");
    cJSON_AddNumberToObject(pr, "params_parent", (double)pl->params_parent);
    cJSON_AddNumberToObject(pr, "params", (double)pl->params);
    cJSON_AddNumberToObject(pr, "prunable_params_parent", (double)pl->prunable_parent);
    cJSON_AddNumberToObject(pr, "prunable_removed_ratio",
                            pl->prunable_parent ? (double)(pl->params_parent - pl->params) / pl->prunable_parent : 0);
    cJSON_AddNumberToObject(pr, "bytes_parent", (double)pl->bytes_parent);
    cJSON_AddNumberToObject(pr, "bytes", (double)pl->bytes);
    cJSON_AddNumberToObject(pr, "mean_seq_len", pl->mean_seq_len);
    cJSON_AddNumberToObject(pr, "flops_per_token_parent", pl->flops_parent);
    cJSON_AddNumberToObject(pr, "flops_per_token", pl->flops);
    cJSON *me = cJSON_AddObjectToObject(r, "measured");
    cJSON_AddNumberToObject(me, "calib_texts", pl->calib_n);
    cJSON_AddNumberToObject(me, "mean_cos", pl->mean_cos);
    cJSON_AddNumberToObject(me, "p5_cos", pl->p5_cos);
    cJSON_AddNumberToObject(me, "mean_deviation", pl->mean_cos >= 0 ? 1 - pl->mean_cos : -1);
    char *txt = cJSON_Print(r);
    cJSON_Delete(r);
    if (!txt) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    FILE *f = fopen(path, "w");
    int ok = f && fputs(txt, f) >= 0 && fputc('\n', f) != EOF;
    if (f) ok &= fclose(f) == 0;
    free(txt);
    return ok ? SESLM_OK : seslm_fail(SESLM_ERR_IO, "cannot write %s", path);
}

static seslm_status read_ints(const cJSON *a, int **out, int *n, const char *path, int l, const char *key) {
    if (!a) {
        *n = 0;
        *out = malloc(sizeof(int));
        return *out ? SESLM_OK : seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    if (!cJSON_IsArray(a)) return seslm_fail(SESLM_ERR_FORMAT, "%s: layer %d: %s must be a list of indices", path, l, key);
    *n = cJSON_GetArraySize(a);
    if (!(*out = malloc(((size_t)*n + 1) * sizeof(int)))) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    int i = 0;
    for (const cJSON *x = a->child; x; x = x->next, i++) {
        if (!cJSON_IsNumber(x) || x->valuedouble != floor(x->valuedouble) || fabs(x->valuedouble) > 1e9)
            return seslm_fail(SESLM_ERR_FORMAT, "%s: layer %d: %s[%d] is not an integer index", path, l, key, i);
        (*out)[i] = (int)x->valuedouble;
    }
    return SESLM_OK;
}

seslm_status seslm_plan_read_json(seslm_plan *pl, const seslm_model_config *c, const char *path) {
    memset(pl, 0, sizeof *pl);
    char *txt = NULL;
    size_t len = 0;
    seslm_status rs = util_read_file(path, &txt, &len, (size_t)64 << 20, NULL);
    if (rs != SESLM_OK) return rs;
    cJSON *r = cJSON_Parse(txt);
    free(txt);
    if (!r) return seslm_fail(SESLM_ERR_FORMAT, "%s: not valid JSON", path);
    seslm_status st = SESLM_OK;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(r, "format");
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(r, "layers");
    const cJSON *emb = cJSON_GetObjectItemCaseSensitive(r, "embeddings");
    const cJSON *idsp = emb ? cJSON_GetObjectItemCaseSensitive(emb, "id_space") : NULL;
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "seslm-plan") != 0)
        st = seslm_fail(SESLM_ERR_FORMAT, "%s: not a seslm plan (\"format\": \"seslm-plan\" missing)", path);
    else if (!cJSON_IsArray(layers))
        st = seslm_fail(SESLM_ERR_FORMAT, "%s: \"layers\" must be a list", path);
    else if (emb && (!cJSON_IsString(idsp) || strcmp(idsp->valuestring, "unchanged") != 0 ||
                     cJSON_GetArraySize(emb) != 1))
        st = seslm_fail(SESLM_ERR_ARG, "%s: the embeddings' id space never changes (embeddings may only say "
                                       "\"id_space\": \"unchanged\")", path);
    if (st == SESLM_OK) st = plan_alloc(pl, c->n_layers);
    if (st == SESLM_OK) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "target"), *m = cJSON_GetObjectItemCaseSensitive(r, "method");
        pl->target = cJSON_IsNumber(t) ? t->valuedouble : 0;
        snprintf(pl->method, sizeof pl->method, "%s", cJSON_IsString(m) ? m->valuestring : "");
        pl->mean_seq_len = 128;
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(r, "predicted");
        const cJSON *msl = pr ? cJSON_GetObjectItemCaseSensitive(pr, "mean_seq_len") : NULL;
        if (cJSON_IsNumber(msl) && msl->valuedouble > 0) pl->mean_seq_len = msl->valuedouble;
    }
    for (const cJSON *lj = st == SESLM_OK ? layers->child : NULL; lj && st == SESLM_OK; lj = lj->next) {
        const cJSON *li = cJSON_GetObjectItemCaseSensitive(lj, "layer");
        if (!cJSON_IsNumber(li) || li->valuedouble != floor(li->valuedouble)) {
            st = seslm_fail(SESLM_ERR_FORMAT, "%s: a layer entry lacks an integer \"layer\"", path);
            break;
        }
        int l = (int)li->valuedouble;
        if (l < 0 || l >= c->n_layers) {
            st = seslm_fail(SESLM_ERR_ARG, "%s: unknown layer index %d (the model has layers 0..%d)", path, l,
                            c->n_layers - 1);
            break;
        }
        if (pl->remove_heads[l] || pl->remove_neurons[l]) {
            st = seslm_fail(SESLM_ERR_FORMAT, "%s: layer %d listed twice", path, l);
            break;
        }
        st = read_ints(cJSON_GetObjectItemCaseSensitive(lj, "remove_heads"), &pl->remove_heads[l],
                       &pl->n_remove_heads[l], path, l, "remove_heads");
        if (st == SESLM_OK)
            st = read_ints(cJSON_GetObjectItemCaseSensitive(lj, "remove_neurons"), &pl->remove_neurons[l],
                           &pl->n_remove_neurons[l], path, l, "remove_neurons");
        const cJSON *dr = cJSON_GetObjectItemCaseSensitive(lj, "drop");
        if (st == SESLM_OK && dr && !cJSON_IsBool(dr))
            st = seslm_fail(SESLM_ERR_FORMAT, "%s: layer %d: \"drop\" must be true or false", path, l);
        if (st == SESLM_OK && cJSON_IsTrue(dr)) pl->drop_layer[l] = 1, pl->n_drop++;
    }
    cJSON_Delete(r);
    if (st != SESLM_OK) {
        if (pl->n_layers) seslm_plan_free(pl);
        return st;
    }
    seslm_plan_predict(pl, c);
    return SESLM_OK;
}
