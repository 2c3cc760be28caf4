/* dialog_policy.c — YAML -> seslm_dialog_policy (the format is described in configs/dialog.yaml). */
#include "dialog_policy.h"
#include "yaml_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static seslm_status copy_name(const seslm_yaml *y, const char *key, const char *def, char *out, int required) {
    const char *v = NULL;
    seslm_status st = seslm_yaml_get_string(y, key, def, &v);
    if (st != SESLM_OK) return st;
    if (required && (!v || !*v)) return seslm_fail(SESLM_ERR_FORMAT, "%s: %s is required", seslm_yaml_path(y), key);
    if (v && strlen(v) >= SESLM_DIALOG_NAME)
        return seslm_fail(SESLM_ERR_FORMAT, "%s: %s: longer than %d bytes", seslm_yaml_path(y), key, SESLM_DIALOG_NAME - 1);
    snprintf(out, SESLM_DIALOG_NAME, "%s", v ? v : "");
    return SESLM_OK;
}

/* A list of at most SESLM_DIALOG_MAX_ALTERNATIVES action names under key (absent: none). */
static seslm_status read_actions(const seslm_yaml *y, const char *key, char (*out)[SESLM_DIALOG_NAME], int *n_out) {
    *n_out = 0;
    int n = seslm_yaml_count(y, key);
    if (n < 0 || n > SESLM_DIALOG_MAX_ALTERNATIVES)
        return seslm_fail(SESLM_ERR_FORMAT, "%s: %s: a list of at most %d action names", seslm_yaml_path(y), key,
                          SESLM_DIALOG_MAX_ALTERNATIVES);
    for (int j = 0; j < n; j++) {
        char k[128];
        snprintf(k, sizeof k, "%s.%d", key, j);
        seslm_status st = copy_name(y, k, NULL, out[j], 1);
        if (st != SESLM_OK) return st;
    }
    *n_out = n;
    return SESLM_OK;
}

static seslm_status from_yaml(seslm_dialog_policy *p, const seslm_yaml *y) {
    memset(p, 0, sizeof *p);
    // the allowed keys, goal fields included, so a misspelt field is reported with its line
    int ng = seslm_yaml_count(y, "goals");
    if (ng > 10000) return seslm_fail(SESLM_ERR_FORMAT, "%s: more than 10000 goals", seslm_yaml_path(y));
    enum { NB = 13, NF = 10 };
    const int nk = NB + NF * (ng > 0 ? ng : 0);
    char **keys = calloc((size_t)nk, sizeof *keys);
    if (!keys) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    static const char *const base[NB] = {"min_confidence", "confirm_intent", "deny_intent", "end_intent", "max_sessions",
                                         "goals", "learning", "learning.enabled", "learning.min_count",
                                         "learning.prior_success", "learning.prior_failure", "clarify_alternatives",
                                         "clarify_alternatives.*"};
    static const char *const fields[NF] = {"", ".intent", ".slots", ".slots.*", ".confirm", ".action", ".alternatives",
                                           ".alternatives.*", ".ask_alternatives", ".ask_alternatives.*"};
    int ok = 1;
    for (int i = 0; i < NB; i++) ok &= (keys[i] = strdup(base[i])) != NULL;
    for (int i = 0; i < ng; i++)
        for (int f = 0; f < NF; f++) {
            char k[96];
            snprintf(k, sizeof k, "goals.%d%s", i, fields[f]);
            ok &= (keys[NB + NF * i + f] = strdup(k)) != NULL;
        }
    seslm_status st = ok ? seslm_yaml_check_keys(y, (const char *const *)keys, nk) : seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < nk; i++) free(keys[i]);
    free(keys);
    long long ms = 0;
    if (st == SESLM_OK) st = seslm_yaml_get_double(y, "min_confidence", 0, 1, 0.5, &p->min_confidence);
    if (st == SESLM_OK) st = seslm_yaml_get_int(y, "max_sessions", 1, 10000000, 10000, &ms);
    p->max_sessions = (int)ms;
    long long mc = 0;
    if (st == SESLM_OK) st = seslm_yaml_get_bool(y, "learning.enabled", 1, &p->learn);
    if (st == SESLM_OK) st = seslm_yaml_get_int(y, "learning.min_count", 1, 1000000, 3, &mc);
    p->learn_min_count = (int)mc;
    if (st == SESLM_OK) st = seslm_yaml_get_double(y, "learning.prior_success", 1e-6, 1e6, 1, &p->learn_prior_success);
    if (st == SESLM_OK) st = seslm_yaml_get_double(y, "learning.prior_failure", 1e-6, 1e6, 1, &p->learn_prior_failure);
    if (st == SESLM_OK) st = copy_name(y, "confirm_intent", "", p->confirm_intent, 0);
    if (st == SESLM_OK) st = copy_name(y, "deny_intent", "", p->deny_intent, 0);
    if (st == SESLM_OK) st = copy_name(y, "end_intent", "", p->end_intent, 0);
    if (st == SESLM_OK) st = read_actions(y, "clarify_alternatives", p->clarify_alternatives, &p->n_clarify_alternatives);
    int n = seslm_yaml_count(y, "goals");
    if (st == SESLM_OK && n < 0) st = seslm_fail(SESLM_ERR_FORMAT, "%s: goals must be a list", seslm_yaml_path(y));
    if (st == SESLM_OK && n > 0 && !(p->goals = calloc((size_t)n, sizeof *p->goals)))
        st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    for (int i = 0; st == SESLM_OK && i < n; i++) {
        seslm_dialog_goal *g = &p->goals[i];
        char k[96];
        snprintf(k, sizeof k, "goals.%d.intent", i);
        st = copy_name(y, k, NULL, g->intent, 1);
        snprintf(k, sizeof k, "goals.%d.action", i);
        if (st == SESLM_OK) st = copy_name(y, k, NULL, g->action, 1);
        snprintf(k, sizeof k, "goals.%d.confirm", i);
        const char *cv = NULL;
        if (st == SESLM_OK) st = seslm_yaml_get_string(y, k, NULL, &cv);
        if (st == SESLM_OK && cv && strcmp(cv, "optional") == 0) g->confirm = 2; // learning may skip it
        else if (st == SESLM_OK) st = seslm_yaml_get_bool(y, k, 0, &g->confirm);
        snprintf(k, sizeof k, "goals.%d.slots", i);
        int ns = seslm_yaml_count(y, k);
        if (st == SESLM_OK && (ns < 0 || ns > SESLM_DIALOG_MAX_SLOTS))
            st = seslm_fail(SESLM_ERR_FORMAT, "%s: %s: a list of at most %d slot names", seslm_yaml_path(y), k, SESLM_DIALOG_MAX_SLOTS);
        for (int j = 0; st == SESLM_OK && j < ns; j++) {
            char sk[112];
            snprintf(sk, sizeof sk, "goals.%d.slots.%d", i, j);
            st = copy_name(y, sk, NULL, g->slots[j], 1);
        }
        g->n_slots = ns > 0 ? ns : 0;
        snprintf(k, sizeof k, "goals.%d.alternatives", i);
        int na = seslm_yaml_count(y, k);
        if (st == SESLM_OK && (na < 0 || na > SESLM_DIALOG_MAX_ALTERNATIVES))
            st = seslm_fail(SESLM_ERR_FORMAT, "%s: %s: a list of at most %d action names", seslm_yaml_path(y), k,
                            SESLM_DIALOG_MAX_ALTERNATIVES);
        for (int j = 0; st == SESLM_OK && j < na; j++) {
            char sk[112];
            snprintf(sk, sizeof sk, "goals.%d.alternatives.%d", i, j);
            st = copy_name(y, sk, NULL, g->alternatives[j], 1);
        }
        g->n_alternatives = na > 0 ? na : 0;
        snprintf(k, sizeof k, "goals.%d.ask_alternatives", i);
        if (st == SESLM_OK) st = read_actions(y, k, g->ask_alternatives, &g->n_ask_alternatives);
        for (int j = 0; st == SESLM_OK && j < g->n_ask_alternatives; j++)
            if (strcmp(g->ask_alternatives[j], g->action) == 0)
                st = seslm_fail(SESLM_ERR_FORMAT, "%s: %s: '%s' is the goal's action, which never runs with a required slot missing",
                                seslm_yaml_path(y), k, g->action);
        p->n_goals = i + 1;
    }
    if (st != SESLM_OK) seslm_dialog_policy_free(p);
    return st;
}

seslm_status seslm_dialog_policy_load(seslm_dialog_policy *p, const char *path) {
    seslm_yaml *y = NULL;
    seslm_status st = seslm_yaml_load(&y, path);
    if (st == SESLM_OK) st = from_yaml(p, y);
    seslm_yaml_free(y);
    return st;
}

seslm_status seslm_dialog_policy_load_string(seslm_dialog_policy *p, const char *name, const char *text, size_t len) {
    seslm_yaml *y = NULL;
    seslm_status st = seslm_yaml_load_string(&y, name, text, len);
    if (st == SESLM_OK) st = from_yaml(p, y);
    seslm_yaml_free(y);
    return st;
}

void seslm_dialog_policy_free(seslm_dialog_policy *p) {
    free(p->goals);
    p->goals = NULL;
    p->n_goals = 0;
}
