/* registry_versions.c — model versions (with ratios vs parent and root), evolution runs, resolving a
 * version reference, and the read-only views: show, list, lineage, diff, runs. */
#include "registry_internal.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void lld(char *buf, size_t cap, long long v) { snprintf(buf, cap, "%lld", v); }

// ---- register -----------------------------------------------------------------------------------

typedef struct {
    const seslm_registry_version_in *v;
    const char *actor;
    long long version;
    int existed;
} add_ctx;

typedef struct {
    long long parent, bytes;
    int found;
} pb_row;

static int pb_fn(void *ctx, int nc, const char *const *v) {
    pb_row *p = ctx;
    if (nc >= 2) {
        p->parent = v[0] ? atoll(v[0]) : 0;
        p->bytes = v[1] ? atoll(v[1]) : 0;
        p->found = 1;
    }
    return 1;
}

static seslm_status parent_bytes(seslm_registry *r, long long version, pb_row *out) {
    char ver[32];
    lld(ver, sizeof ver, version);
    const char *p[] = {ver};
    out->found = 0;
    return reg_exec(r, "SELECT parent, bytes FROM model_versions WHERE version = $1", 1, p, pb_fn, out, NULL);
}

static seslm_status add_body(seslm_registry *r, void *ctx) {
    add_ctx *a = ctx;
    const seslm_registry_version_in *v = a->v;
    char buf[64];
    int found = 0;
    const char *p1[] = {v->sha256};
    a->existed = 0;
    seslm_status s = reg_scalar(r, "SELECT version FROM model_versions WHERE sha256 = $1", 1, p1, buf, sizeof buf, &found);
    if (s != SESLM_OK) return s;
    if (found) {
        a->existed = 1;
        a->version = atoll(buf);
        return SESLM_OK;
    }
    s = reg_scalar(r, "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions", 0, NULL, buf, sizeof buf, &found);
    if (s != SESLM_OK) return s;
    a->version = atoll(buf);
    double ratio_parent = -1, ratio_root = 1;
    if (v->parent > 0) {
        pb_row pr;
        if ((s = parent_bytes(r, v->parent, &pr)) != SESLM_OK) return s;
        if (!pr.found) return seslm_fail(SESLM_ERR_ARG, "registry: parent version %lld does not exist", v->parent);
        ratio_parent = pr.bytes > 0 ? (double)v->bytes / (double)pr.bytes : -1;
        pb_row root = pr;
        for (int depth = 0; root.parent > 0 && depth < 100000; depth++)
            if ((s = parent_bytes(r, root.parent, &root)) != SESLM_OK) return s;
        ratio_root = root.bytes > 0 ? (double)v->bytes / (double)root.bytes : -1;
    }
    char ver[32], par[32], np[32], nb[32], rp[40], rr[40], now[40];
    lld(ver, sizeof ver, a->version);
    lld(par, sizeof par, v->parent);
    lld(np, sizeof np, v->n_params);
    lld(nb, sizeof nb, v->bytes);
    snprintf(rp, sizeof rp, "%.17g", ratio_parent);
    snprintf(rr, sizeof rr, "%.17g", ratio_root);
    reg_now(now, sizeof now);
    const char *actor = a->actor && a->actor[0] ? a->actor : "unknown";
    const char *p[] = {ver, v->sha256, v->weights_sha256, v->parent > 0 ? par : NULL, v->location, v->arch_json, np, nb,
                       ratio_parent >= 0 ? rp : NULL, ratio_root >= 0 ? rr : NULL, v->metrics_json, v->plan_json,
                       v->config_text, v->run_id, v->note, now, actor};
    s = reg_exec(r,
                 "INSERT INTO model_versions (version, sha256, weights_sha256, parent, location, arch, n_params, bytes, "
                 "ratio_parent, ratio_root, metrics, plan, config, run_id, note, created_at, created_by) VALUES "
                 "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
                 17, p, NULL, NULL, NULL);
    if (s != SESLM_OK) return s;
    char target[40], detail[512];
    snprintf(target, sizeof target, "v%lld", a->version);
    snprintf(detail, sizeof detail, "{\"sha256\":\"%s\",\"parent\":%s,\"bytes\":%lld,\"ratio_parent\":%s,\"ratio_root\":%s}",
             v->sha256, v->parent > 0 ? par : "null", v->bytes, ratio_parent >= 0 ? rp : "null",
             ratio_root >= 0 ? rr : "null");
    return reg_audit_append(r, actor, "register", target, v->note, detail);
}

static int is_hex(const char *s, size_t min) {
    size_t n = 0;
    for (; s[n]; n++)
        if (!isxdigit((unsigned char)s[n])) return 0;
    return n >= min;
}

seslm_status seslm_registry_add_version(seslm_registry *r, const seslm_registry_version_in *v, const char *actor,
                                        long long *version, int *existed) {
    if (!v->sha256 || !is_hex(v->sha256, 64) || strlen(v->sha256) != 64)
        return seslm_fail(SESLM_ERR_ARG, "registry: a version needs a 64-digit sha256");
    if (!v->location || !v->location[0]) return seslm_fail(SESLM_ERR_ARG, "registry: a version needs a location");
    if (v->n_params < 0 || v->bytes < 0) return seslm_fail(SESLM_ERR_ARG, "registry: negative size");
    add_ctx a = {v, actor, 0, 0};
    seslm_status s = reg_tx(r, add_body, &a);
    if (s != SESLM_OK) return s;
    if (version) *version = a.version;
    if (existed) *existed = a.existed;
    return SESLM_OK;
}

typedef struct {
    const char *sql;
    int n;
    const char *const *p;
    char buf[128];
    int found;
} scalar_q;

static seslm_status scalar_body(seslm_registry *r, void *ctx) {
    scalar_q *q = ctx;
    return reg_scalar(r, q->sql, q->n, q->p, q->buf, sizeof q->buf, &q->found);
}

seslm_status seslm_registry_find_by_weights(seslm_registry *r, const char *weights_sha256, long long *version) {
    const char *p[] = {weights_sha256};
    scalar_q q = {"SELECT MAX(version) FROM model_versions WHERE weights_sha256 = $1", 1, p, {0}, 0};
    seslm_status s = reg_read(r, scalar_body, &q);
    *version = s == SESLM_OK && q.found ? atoll(q.buf) : 0;
    return s;
}

// ---- evolution runs -----------------------------------------------------------------------------

typedef struct {
    const char *id, *stages, *outcome, *started, *finished, *actor;
} run_ctx;

static seslm_status run_body(seslm_registry *r, void *ctx) {
    run_ctx *x = ctx;
    char now[40], buf[8];
    int found = 0;
    const char *p1[] = {x->id};
    // checked here, not left to the primary key: a unique violation is what a race looks like (retried)
    seslm_status s0 = reg_scalar(r, "SELECT 1 FROM evolution_runs WHERE run_id = $1", 1, p1, buf, sizeof buf, &found);
    if (s0 != SESLM_OK) return s0;
    if (found) return seslm_fail(SESLM_ERR_ARG, "registry: run '%s' is already recorded", x->id);
    reg_now(now, sizeof now);
    const char *actor = x->actor && x->actor[0] ? x->actor : "unknown";
    const char *p[] = {x->id, x->started, x->finished, x->outcome, x->stages, now, actor};
    seslm_status s = reg_exec(r,
                              "INSERT INTO evolution_runs (run_id, started_at, finished_at, outcome, stages, recorded_at, "
                              "recorded_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                              7, p, NULL, NULL, NULL);
    if (s != SESLM_OK) return s;
    return reg_audit_append(r, actor, "run", x->id, x->outcome, NULL);
}

seslm_status seslm_registry_add_run(seslm_registry *r, const char *run_id, const char *stages_json,
                                    const char *outcome, const char *started_at, const char *finished_at,
                                    const char *actor) {
    if (!run_id || !run_id[0]) return seslm_fail(SESLM_ERR_ARG, "registry: a run needs an id");
    run_ctx x = {run_id, stages_json, outcome, started_at, finished_at, actor};
    return reg_tx(r, run_body, &x);
}

// ---- resolve ------------------------------------------------------------------------------------

seslm_status seslm_registry_alias_get(seslm_registry *r, const char *alias, long long *version) {
    const char *p[] = {alias};
    scalar_q q = {"SELECT version FROM aliases WHERE alias = $1", 1, p, {0}, 0};
    seslm_status s = reg_read(r, scalar_body, &q);
    *version = s == SESLM_OK && q.found ? atoll(q.buf) : 0;
    return s;
}

seslm_status seslm_registry_resolve(seslm_registry *r, const char *ref, long long *version) {
    *version = 0;
    if (!ref || !ref[0]) return seslm_fail(SESLM_ERR_ARG, "registry: empty version reference");
    const char *num = (ref[0] == 'v' || ref[0] == 'V') && isdigit((unsigned char)ref[1]) ? ref + 1 : ref;
    char *end = NULL;
    long long n = strtoll(num, &end, 10);
    seslm_status s;
    if (isdigit((unsigned char)num[0]) && *end == 0 && strlen(num) < 19) {
        char ver[32];
        lld(ver, sizeof ver, n);
        const char *p[] = {ver};
        scalar_q q = {"SELECT version FROM model_versions WHERE version = $1", 1, p, {0}, 0};
        if ((s = reg_read(r, scalar_body, &q)) != SESLM_OK) return s;
        if (!q.found) return seslm_fail(SESLM_ERR_ARG, "registry: there is no version %lld", n);
        *version = n;
        return SESLM_OK;
    }
    if ((s = seslm_registry_alias_get(r, ref, version)) != SESLM_OK) return s;
    if (*version) return SESLM_OK;
    if (is_hex(ref, 8) && strlen(ref) <= 64) {
        char low[65];
        size_t i = 0;
        for (; ref[i]; i++) low[i] = (char)tolower((unsigned char)ref[i]);
        low[i] = 0;
        const char *p[] = {low};
        scalar_q q = {"SELECT COUNT(*), MIN(version) FROM model_versions WHERE substr(sha256, 1, length(CAST($1 AS TEXT))) "
                      "= CAST($1 AS TEXT)",
                      1, p, {0}, 0};
        if ((s = reg_read(r, scalar_body, &q)) != SESLM_OK) return s;
        long long count = atoll(q.buf);
        if (count > 1) return seslm_fail(SESLM_ERR_ARG, "registry: hash prefix %s names %lld versions", ref, count);
        if (count == 1) {
            // the MIN(version) of the same query: read it with a second query to keep reg_scalar simple
            scalar_q q2 = {"SELECT version FROM model_versions WHERE substr(sha256, 1, length(CAST($1 AS TEXT))) = "
                           "CAST($1 AS TEXT)",
                           1, p, {0}, 0};
            if ((s = reg_read(r, scalar_body, &q2)) != SESLM_OK) return s;
            *version = atoll(q2.buf);
            return SESLM_OK;
        }
    }
    return seslm_fail(SESLM_ERR_ARG, "registry: '%s' is no version number, alias or hash prefix of this registry", ref);
}

// ---- views --------------------------------------------------------------------------------------

static const char *const VCOLS[] = {"version", "sha256", "weights_sha256", "parent", "location", "arch", "n_params",
                                    "bytes", "ratio_parent", "ratio_root", "metrics", "plan", "config", "run_id",
                                    "note", "created_at", "created_by"};
#define VSELECT                                                                                                     \
    "SELECT version, sha256, weights_sha256, parent, location, arch, n_params, bytes, ratio_parent, ratio_root, " \
    "metrics, plan, config, run_id, note, created_at, created_by FROM model_versions"
static const char *const VNUM = "version,parent,n_params,bytes,ratio_parent,ratio_root";
static const char *const VJSON = "arch,metrics,plan";

typedef struct {
    long long a, b;
    cJSON *out;
} view_ctx;

static void add_delta(cJSON *o, const char *key, const cJSON *a, const cJSON *b);

static seslm_status get_version(seslm_registry *r, long long v, cJSON **obj) {
    char ver[32];
    lld(ver, sizeof ver, v);
    const char *p[] = {ver};
    void *arr = NULL;
    seslm_status s = reg_rows_json(r, VSELECT " WHERE version = $1", 1, p, VCOLS, 17, VNUM, VJSON, &arr);
    if (s != SESLM_OK) return s;
    cJSON *a = arr;
    cJSON *o = cJSON_DetachItemFromArray(a, 0);
    cJSON_Delete(a);
    if (!o) return seslm_fail(SESLM_ERR_ARG, "registry: there is no version %lld", v);
    // the aliases pointing at it
    static const char *const ACOLS[] = {"alias"};
    if ((s = reg_rows_json(r, "SELECT alias FROM aliases WHERE version = $1 ORDER BY alias", 1, p, ACOLS, 1, NULL, NULL,
                           &arr)) != SESLM_OK) {
        cJSON_Delete(o);
        return s;
    }
    cJSON *names = cJSON_CreateArray();
    cJSON *it;
    cJSON_ArrayForEach(it, (cJSON *)arr) cJSON_AddItemToArray(names, cJSON_CreateString(cJSON_GetObjectItem(it, "alias")->valuestring));
    cJSON_Delete(arr);
    cJSON_AddItemToObject(o, "aliases", names);
    *obj = o;
    return SESLM_OK;
}

static seslm_status print_out(view_ctx *x, seslm_status s, char **json) {
    *json = NULL;
    if (s == SESLM_OK) {
        *json = cJSON_PrintUnformatted(x->out);
        if (!*json) s = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    cJSON_Delete(x->out);
    return s;
}

static seslm_status show_body(seslm_registry *r, void *ctx) {
    view_ctx *x = ctx;
    cJSON_Delete(x->out);
    x->out = NULL;
    seslm_status s = get_version(r, x->a, &x->out);
    const cJSON *par = s == SESLM_OK ? cJSON_GetObjectItem(x->out, "parent") : NULL;
    if (!cJSON_IsNumber(par)) return s;
    // the validation deltas against the parent: what this step of the lineage cost or gained
    cJSON *p = NULL;
    if ((s = get_version(r, (long long)par->valuedouble, &p)) != SESLM_OK) return s;
    cJSON *md = cJSON_AddObjectToObject(x->out, "metrics_delta_parent");
    const cJSON *ma = cJSON_GetObjectItem(p, "metrics"), *mb = cJSON_GetObjectItem(x->out, "metrics"), *it;
    if (cJSON_IsObject(ma) && cJSON_IsObject(mb))
        cJSON_ArrayForEach(it, ma) add_delta(md, it->string, it, cJSON_GetObjectItem(mb, it->string));
    cJSON_Delete(p);
    return SESLM_OK;
}

seslm_status seslm_registry_show_json(seslm_registry *r, long long version, char **json) {
    view_ctx x = {version, 0, NULL};
    return print_out(&x, reg_read(r, show_body, &x), json);
}

static seslm_status list_body(seslm_registry *r, void *ctx) {
    view_ctx *x = ctx;
    static const char *const COLS[] = {"version", "sha256", "parent", "n_params", "bytes", "ratio_parent", "ratio_root",
                                       "run_id", "created_at", "created_by"};
    static const char *const ACOLS[] = {"alias", "version", "updated_at", "updated_by"};
    void *vers = NULL, *al = NULL;
    seslm_status s = reg_rows_json(r,
                                   "SELECT version, sha256, parent, n_params, bytes, ratio_parent, ratio_root, run_id, "
                                   "created_at, created_by FROM model_versions ORDER BY version",
                                   0, NULL, COLS, 10, "version,parent,n_params,bytes,ratio_parent,ratio_root", NULL, &vers);
    if (s == SESLM_OK)
        s = reg_rows_json(r, "SELECT alias, version, updated_at, updated_by FROM aliases ORDER BY alias", 0, NULL, ACOLS, 4,
                          "version", NULL, &al);
    if (s != SESLM_OK) {
        cJSON_Delete(vers);
        return s;
    }
    cJSON_Delete(x->out);
    x->out = cJSON_CreateObject();
    cJSON_AddItemToObject(x->out, "versions", vers);
    cJSON_AddItemToObject(x->out, "aliases", al);
    return SESLM_OK;
}

seslm_status seslm_registry_list_json(seslm_registry *r, char **json) {
    view_ctx x = {0, 0, NULL};
    return print_out(&x, reg_read(r, list_body, &x), json);
}

static seslm_status lineage_body(seslm_registry *r, void *ctx) {
    view_ctx *x = ctx;
    cJSON_Delete(x->out);
    x->out = cJSON_CreateArray();
    long long v = x->a;
    for (int depth = 0; v > 0 && depth < 100000; depth++) {
        cJSON *o = NULL;
        seslm_status s = get_version(r, v, &o);
        if (s != SESLM_OK) return s;
        cJSON *keep = cJSON_CreateObject();
        static const char *const KEEP[] = {"version", "sha256", "parent", "n_params", "bytes", "ratio_parent",
                                           "ratio_root", "run_id", "created_at", "metrics", "aliases"};
        for (size_t i = 0; i < sizeof KEEP / sizeof KEEP[0]; i++) {
            cJSON *it = cJSON_DetachItemFromObject(o, KEEP[i]);
            if (it) cJSON_AddItemToObject(keep, KEEP[i], it);
        }
        cJSON *par = cJSON_GetObjectItem(keep, "parent");
        v = cJSON_IsNumber(par) ? (long long)par->valuedouble : 0;
        cJSON_Delete(o);
        cJSON_AddItemToArray(x->out, keep);
    }
    return SESLM_OK;
}

seslm_status seslm_registry_lineage_json(seslm_registry *r, long long version, char **json) {
    view_ctx x = {version, 0, NULL};
    return print_out(&x, reg_read(r, lineage_body, &x), json);
}

static void add_delta(cJSON *o, const char *key, const cJSON *a, const cJSON *b) {
    if (cJSON_IsNumber(a) && cJSON_IsNumber(b)) cJSON_AddNumberToObject(o, key, b->valuedouble - a->valuedouble);
}

static seslm_status diff_body(seslm_registry *r, void *ctx) {
    view_ctx *x = ctx;
    cJSON *a = NULL, *b = NULL;
    seslm_status s = get_version(r, x->a, &a);
    if (s == SESLM_OK) s = get_version(r, x->b, &b);
    if (s != SESLM_OK) {
        cJSON_Delete(a);
        return s;
    }
    cJSON_Delete(x->out);
    cJSON *o = x->out = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "from", (double)x->a);
    cJSON_AddNumberToObject(o, "to", (double)x->b);
    add_delta(o, "n_params_delta", cJSON_GetObjectItem(a, "n_params"), cJSON_GetObjectItem(b, "n_params"));
    add_delta(o, "bytes_delta", cJSON_GetObjectItem(a, "bytes"), cJSON_GetObjectItem(b, "bytes"));
    const cJSON *ba = cJSON_GetObjectItem(a, "bytes"), *bb = cJSON_GetObjectItem(b, "bytes");
    if (cJSON_IsNumber(ba) && cJSON_IsNumber(bb) && ba->valuedouble > 0)
        cJSON_AddNumberToObject(o, "bytes_ratio", bb->valuedouble / ba->valuedouble);
    // per-layer structure side by side, and the metric deltas of the metrics both have
    cJSON *arch = cJSON_AddObjectToObject(o, "arch");
    cJSON_AddItemToObject(arch, "from", cJSON_DetachItemFromObject(a, "arch"));
    cJSON_AddItemToObject(arch, "to", cJSON_DetachItemFromObject(b, "arch"));
    cJSON *md = cJSON_AddObjectToObject(o, "metrics_delta");
    const cJSON *ma = cJSON_GetObjectItem(a, "metrics"), *mb = cJSON_GetObjectItem(b, "metrics"), *it;
    if (cJSON_IsObject(ma) && cJSON_IsObject(mb))
        cJSON_ArrayForEach(it, ma) add_delta(md, it->string, it, cJSON_GetObjectItem(mb, it->string));
    cJSON_Delete(a);
    cJSON_Delete(b);
    return SESLM_OK;
}

seslm_status seslm_registry_diff_json(seslm_registry *r, long long a, long long b, char **json) {
    view_ctx x = {a, b, NULL};
    return print_out(&x, reg_read(r, diff_body, &x), json);
}

static seslm_status runs_body(seslm_registry *r, void *ctx) {
    view_ctx *x = ctx;
    static const char *const COLS[] = {"run_id", "started_at", "finished_at", "outcome", "stages", "recorded_at",
                                       "recorded_by"};
    void *arr = NULL;
    seslm_status s = reg_rows_json(r,
                                   "SELECT run_id, started_at, finished_at, outcome, stages, recorded_at, recorded_by "
                                   "FROM evolution_runs ORDER BY recorded_at, run_id",
                                   0, NULL, COLS, 7, NULL, "stages", &arr);
    if (s == SESLM_OK) {
        cJSON_Delete(x->out);
        x->out = arr;
    }
    return s;
}

seslm_status seslm_registry_runs_json(seslm_registry *r, char **json) {
    view_ctx x = {0, 0, NULL};
    return print_out(&x, reg_read(r, runs_body, &x), json);
}

typedef struct {
    const char *alias;
    void *arr;
} history_ctx;

static seslm_status history_body(seslm_registry *r, void *ctx) {
    history_ctx *x = ctx;
    static const char *const COLS[] = {"seq", "at", "actor", "action", "reason", "detail"};
    const char *p[] = {x->alias};
    cJSON_Delete(x->arr);
    x->arr = NULL;
    return reg_rows_json(r,
                         "SELECT seq, at, actor, action, reason, detail FROM audit_log WHERE target = $1 AND action IN "
                         "('promote', 'rollback') ORDER BY seq",
                         1, p, COLS, 6, "seq", "detail", &x->arr);
}

seslm_status seslm_registry_history_json(seslm_registry *r, const char *alias, char **json) {
    history_ctx x = {alias, NULL};
    *json = NULL;
    seslm_status s = reg_read(r, history_body, &x);
    if (s == SESLM_OK && !(*json = cJSON_PrintUnformatted(x.arr))) s = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    cJSON_Delete(x.arr);
    return s;
}
