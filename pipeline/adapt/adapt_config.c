/* adapt_config.c — configs/adapt.yaml (adapt_config.h). */
#include "adapt_config.h"

#include "adapt.h"
#include "yaml_config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void adapt_config_defaults(adapt_config *c) {
    adapt_opts o;
    adapt_opts_default(&o);
    memset(c, 0, sizeof *c);
    snprintf(c->data_dir, sizeof c->data_dir, "data/eval");
    snprintf(c->general, sizeof c->general, "data/traffic/wiki_600.txt");
    snprintf(c->objective, sizeof c->objective, "%s", adapt_objective_name(o.objective));
    c->holdout = 0.25, c->alpha = o.alpha, c->lr = o.lr, c->general_weight = o.w_general;
    c->min_gain = 1, c->max_stsb_drop = 1, c->min_retrieval = 0.8, c->max_p = 0.05;
    c->rank = o.rank, c->steps = o.steps, c->pairs = o.pairs, c->threads = o.threads, c->max_tokens = o.max_tokens;
    c->seed = o.seed;
    c->folds = 3; // the gate cross-fitted (cmd_adapt.c assign_folds): its test sees every example
    snprintf(c->negatives, sizeof c->negatives, "%s", o.negatives == ADAPT_NEG_NEAR ? "near" : "random");
}

/* A string key: absent keeps *out; present must be non-empty (an empty value is a mistake, not a default). */
static seslm_status get_str(const seslm_yaml *y, const char *key, char *out, size_t cap) {
    if (!seslm_yaml_has(y, key)) return SESLM_OK;
    int line = 0;
    const char *v = seslm_yaml_scalar(y, key, &line);
    if (!v) return seslm_fail(SESLM_ERR_FORMAT, "%s: %s: expected a string", seslm_yaml_path(y), key);
    if (!*v)
        return seslm_fail(SESLM_ERR_FORMAT, "%s:%d: %s: empty value (remove the key for the default)", seslm_yaml_path(y),
                          line, key);
    if (snprintf(out, cap, "%s", v) >= (int)cap) return seslm_fail(SESLM_ERR_FORMAT, "%s:%d: %s: too long", seslm_yaml_path(y), line, key);
    return SESLM_OK;
}

/* A number in (lo, hi) or [lo, hi] (open: ends excluded, as the command's flags). */
static seslm_status get_num(const seslm_yaml *y, const char *key, double lo, double hi, int open, double *out) {
    if (!seslm_yaml_has(y, key)) return SESLM_OK;
    seslm_status st = seslm_yaml_get_double(y, key, lo, hi, *out, out);
    if (st == SESLM_OK && open && !(*out > lo && *out < hi)) {
        int line = 0;
        seslm_yaml_scalar(y, key, &line);
        st = seslm_fail(SESLM_ERR_FORMAT, "%s:%d: %s: expected a number in (%g, %g), ends excluded, got %g", seslm_yaml_path(y),
                        line, key, lo, hi, *out);
    }
    return st;
}

static seslm_status get_int(const seslm_yaml *y, const char *key, long long lo, long long hi, int *out) {
    long long v = *out;
    seslm_status st = seslm_yaml_get_int(y, key, lo, hi, v, &v);
    if (st == SESLM_OK) *out = (int)v;
    return st;
}

seslm_status adapt_config_load(adapt_config *c, const char *path) {
    seslm_yaml *y = NULL;
    seslm_status st = seslm_yaml_load(&y, path);
    if (st != SESLM_OK) return st;
    static const char *const keys[] = {"version", "model", "feedback", "out", "data_dir", "general", "general_weight",
                                       "objective", "holdout", "rank", "alpha", "steps", "pairs", "lr", "seed", "threads",
                                       "max_tokens", "negatives", "gates", "gates.min_gain", "gates.max_stsb_drop", "gates.min_retrieval",
                                       "gates.max_p", "folds", "base_head_layers"};
    st = seslm_yaml_check_keys(y, keys, (int)(sizeof keys / sizeof keys[0]));
    long long ver = 1, seed = (long long)c->seed;
    if (st == SESLM_OK) st = seslm_yaml_get_int(y, "version", 1, 1, 1, &ver);
    if (st == SESLM_OK) st = get_str(y, "model", c->model, sizeof c->model);
    if (st == SESLM_OK) st = get_str(y, "feedback", c->feedback, sizeof c->feedback);
    if (st == SESLM_OK) st = get_str(y, "out", c->out, sizeof c->out);
    if (st == SESLM_OK) st = get_str(y, "data_dir", c->data_dir, sizeof c->data_dir);
    if (st == SESLM_OK) st = get_str(y, "general", c->general, sizeof c->general);
    if (st == SESLM_OK) st = get_str(y, "objective", c->objective, sizeof c->objective);
    if (st == SESLM_OK && strcmp(c->objective, "inbatch") && strcmp(c->objective, "pairs") &&
        strcmp(c->objective, "softmax")) {
        int line = 0;
        seslm_yaml_scalar(y, "objective", &line);
        st = seslm_fail(SESLM_ERR_FORMAT, "%s:%d: objective: expected inbatch, pairs or softmax, got '%s'", path, line, c->objective);
    }
    if (st == SESLM_OK) st = get_str(y, "negatives", c->negatives, sizeof c->negatives);
    if (st == SESLM_OK && strcmp(c->negatives, "near") && strcmp(c->negatives, "random")) {
        int line = 0;
        seslm_yaml_scalar(y, "negatives", &line);
        st = seslm_fail(SESLM_ERR_FORMAT, "%s:%d: negatives: expected near or random, got '%s'", path, line, c->negatives);
    }
    // the ranges of the command's flags (cmd_adapt.c)
    if (st == SESLM_OK) st = get_num(y, "general_weight", 0, 1000, 0, &c->general_weight);
    if (st == SESLM_OK) st = get_num(y, "holdout", 0, 0.9, 1, &c->holdout);
    if (st == SESLM_OK) st = get_num(y, "alpha", 0, 1e4, 1, &c->alpha);
    if (st == SESLM_OK) st = get_num(y, "lr", 0, 1, 1, &c->lr);
    if (st == SESLM_OK) st = get_int(y, "rank", 1, 256, &c->rank);
    if (st == SESLM_OK) st = get_int(y, "steps", 0, 1000000, &c->steps);
    if (st == SESLM_OK) st = get_int(y, "pairs", 1, 512, &c->pairs);
    if (st == SESLM_OK) st = get_int(y, "threads", 0, 1024, &c->threads);
    if (st == SESLM_OK) st = get_int(y, "max_tokens", 2, 512, &c->max_tokens);
    if (st == SESLM_OK) st = get_int(y, "folds", 0, 20, &c->folds);
    if (st == SESLM_OK) st = get_int(y, "base_head_layers", 0, 64, &c->base_head_layers);
    if (st == SESLM_OK && c->folds == 1) {
        int line = 0;
        seslm_yaml_scalar(y, "folds", &line);
        st = seslm_fail(SESLM_ERR_FORMAT, "%s:%d: folds: 0 (one split by holdout) or 2..20 (a cross-fitted gate), got 1", path, line);
    }
    if (st == SESLM_OK && (st = seslm_yaml_get_int(y, "seed", 0, (long long)1 << 62, seed, &seed)) == SESLM_OK)
        c->seed = (unsigned long long)seed;
    if (st == SESLM_OK) st = get_num(y, "gates.min_gain", -100, 100, 0, &c->min_gain);
    if (st == SESLM_OK) st = get_num(y, "gates.max_stsb_drop", 0, 100, 0, &c->max_stsb_drop);
    if (st == SESLM_OK) st = get_num(y, "gates.min_retrieval", 0, 1, 0, &c->min_retrieval);
    if (st == SESLM_OK) st = get_num(y, "gates.max_p", 0, 1, 0, &c->max_p);
    seslm_yaml_free(y);
    return st;
}
