/* governance.c — loads configs/governance.yaml and decides whether a promotion needs an approval. */
#include "governance.h"
#include "yaml_config.h"

#include <stdio.h>
#include <string.h>

void seslm_governance_default(seslm_governance *g) {
    memset(g, 0, sizeof *g);
    snprintf(g->approval_aliases[0], sizeof g->approval_aliases[0], "live");
    g->n_approval_aliases = 1;
}

seslm_status seslm_governance_load(seslm_governance *g, const char *path) {
    memset(g, 0, sizeof *g);
    seslm_yaml *y = NULL;
    seslm_status s = seslm_yaml_load(&y, path);
    if (s != SESLM_OK) return s;
    static const char *const KEYS[] = {"version", "approval", "approval.always_for", "approval.always_for.*",
                                       "approval.ratio_below", "approval.metric_drop",
                                       "approval.rollback"};
    long long version = 1;
    s = seslm_yaml_check_keys(y, KEYS, (int)(sizeof KEYS / sizeof KEYS[0]));
    if (s == SESLM_OK) s = seslm_yaml_get_int(y, "version", 1, 1, 1, &version);
    if (s == SESLM_OK) s = seslm_yaml_get_double(y, "approval.ratio_below", 0, 1, 0, &g->ratio_below);
    if (s == SESLM_OK) s = seslm_yaml_get_double(y, "approval.metric_drop", 0, 1e9, 0, &g->metric_drop);
    if (s == SESLM_OK) s = seslm_yaml_get_bool(y, "approval.rollback", 0, &g->rollback_needs_approval);
    if (s == SESLM_OK) {
        int n = seslm_yaml_count(y, "approval.always_for");
        int line = 0;
        if (n < 0) {
            seslm_yaml_scalar(y, "approval.always_for", &line);
            s = seslm_fail(SESLM_ERR_FORMAT, "%s: approval.always_for: expected a list of aliases", path);
        } else if (n > SESLM_GOV_MAX_ALIASES) {
            s = seslm_fail(SESLM_ERR_FORMAT, "%s: approval.always_for: at most %d aliases", path, SESLM_GOV_MAX_ALIASES);
        }
        for (int i = 0; s == SESLM_OK && i < n; i++) {
            char key[64];
            snprintf(key, sizeof key, "approval.always_for.%d", i);
            const char *a = seslm_yaml_scalar(y, key, &line);
            if (!a || !a[0] || strlen(a) >= sizeof g->approval_aliases[0])
                s = seslm_fail(SESLM_ERR_FORMAT, "%s:%d: %s: expected an alias name (1 to 31 characters)", path, line, key);
            else
                snprintf(g->approval_aliases[g->n_approval_aliases++], sizeof g->approval_aliases[0], "%s", a);
        }
    }
    seslm_yaml_free(y);
    return s;
}

int seslm_governance_needs_approval(const seslm_governance *g, const char *alias, double ratio, double worst_drop,
                                    char *why, size_t cap) {
    if (!g) return 0;
    // "live" covers the per-kind live aliases too ("live-decoder"): a policy written for live must not be
    // escaped by promoting a decoder to its own live alias
    for (int i = 0; i < g->n_approval_aliases; i++)
        if (strcmp(g->approval_aliases[i], alias) == 0 ||
            (strcmp(g->approval_aliases[i], "live") == 0 && strncmp(alias, "live-", 5) == 0)) {
            snprintf(why, cap, "the policy requires an approval for every promotion to '%s'", alias);
            return 1;
        }
    if (g->ratio_below > 0 && ratio >= 0 && ratio < g->ratio_below) {
        snprintf(why, cap, "the model is %.3f of the size of the current '%s' (policy: approval below %.3f)", ratio,
                 alias, g->ratio_below);
        return 1;
    }
    if (g->metric_drop > 0 && worst_drop > g->metric_drop) {
        snprintf(why, cap, "a validation metric drops by %.4f vs the current '%s' (policy: approval beyond %.4f)",
                 worst_drop, alias, g->metric_drop);
        return 1;
    }
    return 0;
}
