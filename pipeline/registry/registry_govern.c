/* registry_govern.c — approvals, promotion and rollback. A promotion is one transaction: the policy
 * check, the alias moves (for "live": the old live becomes "previous") and the audit row commit
 * together; the alias table has one row per alias, updated in place, so a reader sees the old or the
 * new live model, never none or two.
 *
 * One registry can hold encoders and decoders: each kind serves from its own live alias ("live" and
 * "live-decoder", say; any "live-NAME" has its "previous-NAME" and its rollback), and an alias never
 * changes kind, since the serving node that follows it loads one kind of model in that slot. */
#include "governance.h"
#include "registry_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void lld(char *buf, size_t cap, long long v) { snprintf(buf, cap, "%lld", v); }

static seslm_status alias_in_tx(seslm_registry *r, const char *alias, long long *v) {
    char buf[32];
    int found = 0;
    const char *p[] = {alias};
    seslm_status s = reg_scalar(r, "SELECT version FROM aliases WHERE alias = $1", 1, p, buf, sizeof buf, &found);
    *v = found ? atoll(buf) : 0;
    return s;
}

static seslm_status alias_set(seslm_registry *r, const char *alias, long long version, const char *actor) {
    char ver[32], now[40];
    lld(ver, sizeof ver, version);
    reg_now(now, sizeof now);
    const char *p[] = {alias, ver, now, actor};
    return reg_exec(r,
                    "INSERT INTO aliases (alias, version, updated_at, updated_by) VALUES ($1, $2, $3, $4) "
                    "ON CONFLICT (alias) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at, "
                    "updated_by = excluded.updated_by",
                    4, p, NULL, NULL, NULL);
}

// ---- live aliases and kinds -------------------------------------------------------------------------

int seslm_registry_alias_is_live(const char *alias) {
    return alias && (strcmp(alias, "live") == 0 || strncmp(alias, "live-", 5) == 0);
}

/* "live" -> "previous", "live-decoder" -> "previous-decoder" */
static void previous_of(const char *live, char *buf, size_t cap) { snprintf(buf, cap, "previous%s", live + 4); }

static int is_previous(const char *alias) {
    return strcmp(alias, "previous") == 0 || strncmp(alias, "previous-", 9) == 0;
}

/* The kind of version v: its arch JSON's "kind" ("decoder"), "encoder" when it names none. */
static seslm_status kind_in_tx(seslm_registry *r, long long v, char *kind, size_t cap) {
    char ver[32], arch[4096];
    int found = 0;
    snprintf(ver, sizeof ver, "%lld", v);
    const char *p[] = {ver};
    snprintf(kind, cap, "encoder");
    seslm_status s = reg_scalar(r, "SELECT arch FROM model_versions WHERE version = $1", 1, p, arch, sizeof arch, &found);
    if (s != SESLM_OK || !found) return s;
    cJSON *j = cJSON_Parse(arch);
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "kind");
    if (cJSON_IsString(k) && k->valuestring[0]) snprintf(kind, cap, "%s", k->valuestring);
    cJSON_Delete(j);
    return SESLM_OK;
}

static seslm_status exists_in_tx(seslm_registry *r, long long v) {
    char ver[32], buf[32];
    int found = 0;
    lld(ver, sizeof ver, v);
    const char *p[] = {ver};
    seslm_status s = reg_scalar(r, "SELECT version FROM model_versions WHERE version = $1", 1, p, buf, sizeof buf, &found);
    if (s == SESLM_OK && !found) s = seslm_fail(SESLM_ERR_ARG, "registry: there is no version %lld", v);
    return s;
}

/* The newest approval of version for alias (0 when none). */
static seslm_status approval_in_tx(seslm_registry *r, long long v, const char *alias, long long *id) {
    char ver[32], buf[32];
    int found = 0;
    lld(ver, sizeof ver, v);
    const char *p[] = {ver, alias};
    seslm_status s = reg_scalar(r, "SELECT MAX(id) FROM approvals WHERE version = $1 AND alias = $2", 2, p, buf,
                                sizeof buf, &found);
    *id = found ? atoll(buf) : 0;
    return s;
}

/* Test hook: a pause in the middle of a promotion, between the two alias writes, so a test can kill
 * the process there (suite_kill9 in tests/registry_suite.h). Unset in normal use. */
static void test_pause(void) {
    const char *e = getenv("SESLM_REGISTRY_TEST_PAUSE_MS");
    long ms = e ? atol(e) : 0;
    if (ms > 0) {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

// ---- approve --------------------------------------------------------------------------------------

typedef struct {
    long long version;
    const char *alias, *by, *reason;
} approve_ctx;

static seslm_status approve_body(seslm_registry *r, void *ctx) {
    approve_ctx *a = ctx;
    seslm_status s = exists_in_tx(r, a->version);
    char buf[32], ver[32], now[40];
    int found = 0;
    if (s == SESLM_OK) s = reg_scalar(r, "SELECT COALESCE(MAX(id), 0) + 1 FROM approvals", 0, NULL, buf, sizeof buf, &found);
    if (s != SESLM_OK) return s;
    lld(ver, sizeof ver, a->version);
    reg_now(now, sizeof now);
    const char *p[] = {buf, ver, a->alias, a->by, a->reason, now};
    s = reg_exec(r, "INSERT INTO approvals (id, version, alias, approved_by, reason, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                 6, p, NULL, NULL, NULL);
    if (s != SESLM_OK) return s;
    char target[48], detail[128];
    snprintf(target, sizeof target, "v%lld", a->version);
    snprintf(detail, sizeof detail, "{\"approval\":%s,\"alias\":\"%s\"}", buf, a->alias);
    return reg_audit_append(r, a->by, "approve", target, a->reason, detail);
}

static int alias_ok(const char *a) {
    if (!a || !a[0] || strlen(a) > 31) return 0;
    for (const char *p = a; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
            return 0;
    return !(a[0] >= '0' && a[0] <= '9'); // "3" is a version number, not an alias
}

seslm_status seslm_registry_approve(seslm_registry *r, long long version, const char *alias, const char *by,
                                    const char *reason) {
    if (!alias_ok(alias)) return seslm_fail(SESLM_ERR_ARG, "registry: bad alias '%s' (letters, digits, - and _; 1 to 31)", alias ? alias : "");
    if (!by || !by[0]) return seslm_fail(SESLM_ERR_ARG, "registry: an approval needs who approves (--by)");
    if (!reason || !reason[0]) return seslm_fail(SESLM_ERR_ARG, "registry: an approval needs a reason (--reason)");
    approve_ctx a = {version, alias, by, reason};
    return reg_tx(r, approve_body, &a);
}

// ---- promote --------------------------------------------------------------------------------------

typedef struct {
    long long version, old;
    const char *alias, *actor, *reason;
    const seslm_governance *gov;
    int refused;
    char why[384];
} promote_ctx;

/* bytes(v), metrics(v) */
typedef struct {
    long long bytes;
    cJSON *metrics;
} vinfo;

static int vinfo_fn(void *ctx, int nc, const char *const *v) {
    vinfo *x = ctx;
    if (nc >= 2) {
        x->bytes = v[0] ? atoll(v[0]) : 0;
        x->metrics = v[1] ? cJSON_Parse(v[1]) : NULL;
    }
    return 1;
}

static seslm_status vinfo_get(seslm_registry *r, long long v, vinfo *out) {
    char ver[32];
    lld(ver, sizeof ver, v);
    const char *p[] = {ver};
    out->bytes = 0;
    out->metrics = NULL;
    return reg_exec(r, "SELECT bytes, metrics FROM model_versions WHERE version = $1", 1, p, vinfo_fn, out, NULL);
}

static seslm_status policy_check(seslm_registry *r, promote_ctx *x, long long *approval) {
    *approval = 0;
    if (!x->gov) return SESLM_OK;
    double ratio = -1, worst = -1;
    if (x->old) {
        vinfo a, b;
        seslm_status s = vinfo_get(r, x->old, &a);
        if (s == SESLM_OK) s = vinfo_get(r, x->version, &b);
        else b.metrics = NULL;
        if (s == SESLM_OK && a.bytes > 0) ratio = (double)b.bytes / (double)a.bytes;
        // metrics are "higher is better" scores (cosine, accuracy, recall): the worst drop old - new
        const cJSON *it;
        if (cJSON_IsObject(a.metrics) && cJSON_IsObject(b.metrics))
            cJSON_ArrayForEach(it, a.metrics) {
                const cJSON *nb = cJSON_GetObjectItem(b.metrics, it->string);
                if (cJSON_IsNumber(it) && cJSON_IsNumber(nb) && it->valuedouble - nb->valuedouble > worst)
                    worst = it->valuedouble - nb->valuedouble;
            }
        cJSON_Delete(a.metrics);
        cJSON_Delete(b.metrics);
        if (s != SESLM_OK) return s;
    }
    char why[256];
    if (!seslm_governance_needs_approval(x->gov, x->alias, ratio, worst, why, sizeof why)) return SESLM_OK;
    seslm_status s = approval_in_tx(r, x->version, x->alias, approval);
    if (s != SESLM_OK) return s;
    if (*approval) return SESLM_OK;
    x->refused = 1;
    snprintf(x->why, sizeof x->why, "%s", why);
    return seslm_fail(SESLM_ERR_ARG,
                      "promotion of v%lld to '%s' refused: %s, and none is recorded (seslm approve v%lld --alias %s "
                      "--by NAME --reason TEXT)",
                      x->version, x->alias, why, x->version, x->alias);
}

static seslm_status promote_body(seslm_registry *r, void *ctx) {
    promote_ctx *x = ctx;
    x->refused = 0;
    seslm_status s = exists_in_tx(r, x->version);
    if (s == SESLM_OK) s = alias_in_tx(r, x->alias, &x->old);
    if (s != SESLM_OK) return s;
    if (x->old == x->version) return seslm_fail(SESLM_ERR_ARG, "registry: v%lld is already '%s'", x->version, x->alias);
    if (x->old) { // an alias keeps its kind: the node following it loads one kind of model there
        char ko[32], kn[32];
        if ((s = kind_in_tx(r, x->old, ko, sizeof ko)) != SESLM_OK || (s = kind_in_tx(r, x->version, kn, sizeof kn)) != SESLM_OK)
            return s;
        if (strcmp(ko, kn) != 0)
            return seslm_fail(SESLM_ERR_ARG,
                              "registry: '%s' holds %s v%lld and v%lld is %s %s: an alias keeps its kind (a serving node "
                              "loads one kind of model from it); promote it to its own alias, e.g. --alias live-%s",
                              x->alias, ko, x->old, x->version, kn[0] == 'e' ? "an" : "a", kn, kn);
    }
    long long approval = 0;
    if ((s = policy_check(r, x, &approval)) != SESLM_OK) return s;
    char prev[48];
    previous_of(x->alias, prev, sizeof prev);
    const int blue_green = seslm_registry_alias_is_live(x->alias);
    if (blue_green && x->old) s = alias_set(r, prev, x->old, x->actor);
    test_pause();
    if (s == SESLM_OK) s = alias_set(r, x->alias, x->version, x->actor);
    if (s != SESLM_OK) return s;
    char detail[256], ap[32], old[32];
    lld(ap, sizeof ap, approval);
    lld(old, sizeof old, x->old);
    snprintf(detail, sizeof detail, "{\"version\":%lld,\"old\":%s,\"approval\":%s}", x->version, x->old ? old : "null",
             approval ? ap : "null");
    return reg_audit_append(r, x->actor, "promote", x->alias, x->reason, detail);
}

seslm_status seslm_registry_promote(seslm_registry *r, long long version, const char *alias,
                                    const seslm_governance *gov, const char *actor, const char *reason, long long *old) {
    if (!alias) alias = "live";
    if (!alias_ok(alias)) return seslm_fail(SESLM_ERR_ARG, "registry: bad alias '%s' (letters, digits, - and _; 1 to 31)", alias);
    if (is_previous(alias))
        return seslm_fail(SESLM_ERR_ARG, "registry: '%s' is kept by promotions to live%s; use seslm rollback", alias,
                          alias + 8);
    promote_ctx x = {version, 0, alias, actor && actor[0] ? actor : "unknown", reason, gov, 0, {0}};
    seslm_status s = reg_tx(r, promote_body, &x);
    if (s != SESLM_OK && x.refused) {
        // the refusal is part of the record too; it is written on its own, after the rollback
        char msg[768], target[48], detail[512];
        snprintf(msg, sizeof msg, "%s", seslm_last_error());
        snprintf(target, sizeof target, "%s", alias);
        cJSON *d = cJSON_CreateObject();
        cJSON_AddNumberToObject(d, "version", (double)version);
        cJSON_AddStringToObject(d, "rule", x.why);
        char *t = cJSON_PrintUnformatted(d);
        snprintf(detail, sizeof detail, "%s", t ? t : "{}");
        free(t);
        cJSON_Delete(d);
        seslm_registry_audit(r, x.actor, "promote_refused", target, reason, detail);
        return seslm_fail(s, "%s", msg);
    }
    if (s == SESLM_OK && old) *old = x.old;
    return s;
}

// ---- rollback -------------------------------------------------------------------------------------

typedef struct {
    const seslm_governance *gov;
    const char *alias, *actor, *reason;
    long long live, prev;
} rollback_ctx;

static seslm_status rollback_body(seslm_registry *r, void *ctx) {
    rollback_ctx *x = ctx;
    char prev[48];
    previous_of(x->alias, prev, sizeof prev);
    seslm_status s = alias_in_tx(r, x->alias, &x->live);
    if (s == SESLM_OK) s = alias_in_tx(r, prev, &x->prev);
    if (s != SESLM_OK) return s;
    if (!x->live || !x->prev)
        return seslm_fail(SESLM_ERR_ARG, "registry: nothing to roll back to (no '%s' model for '%s')", prev, x->alias);
    long long approval = 0;
    if (x->gov && x->gov->rollback_needs_approval) {
        if ((s = approval_in_tx(r, x->prev, x->alias, &approval)) != SESLM_OK) return s;
        if (!approval)
            return seslm_fail(SESLM_ERR_ARG,
                              "rollback to v%lld refused: the policy requires an approval of v%lld for '%s' "
                              "(seslm approve v%lld --alias %s --by NAME --reason TEXT)",
                              x->prev, x->prev, x->alias, x->prev, x->alias);
    }
    s = alias_set(r, prev, x->live, x->actor);
    test_pause();
    if (s == SESLM_OK) s = alias_set(r, x->alias, x->prev, x->actor);
    if (s != SESLM_OK) return s;
    char detail[128];
    snprintf(detail, sizeof detail, "{\"version\":%lld,\"old\":%lld}", x->prev, x->live);
    return reg_audit_append(r, x->actor, "rollback", x->alias, x->reason, detail);
}

seslm_status seslm_registry_rollback_alias(seslm_registry *r, const char *alias, const seslm_governance *gov,
                                           const char *actor, const char *reason, long long *now_live) {
    if (!alias) alias = "live";
    if (!alias_ok(alias) || !seslm_registry_alias_is_live(alias))
        return seslm_fail(SESLM_ERR_ARG, "registry: rollback swaps a live alias ('live' or 'live-NAME'), not '%s'", alias);
    rollback_ctx x = {gov, alias, actor && actor[0] ? actor : "unknown", reason, 0, 0};
    seslm_status s = reg_tx(r, rollback_body, &x);
    if (s == SESLM_OK && now_live) *now_live = x.prev;
    return s;
}

seslm_status seslm_registry_rollback(seslm_registry *r, const seslm_governance *gov, const char *actor,
                                     const char *reason, long long *now_live) {
    return seslm_registry_rollback_alias(r, "live", gov, actor, reason, now_live);
}
