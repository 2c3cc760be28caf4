/* registry.c — opening a registry (URL -> backend), the schema and its migrations, the transaction
 * runner with retries, and the query helpers the other registry_*.c files use. */
#include "registry_internal.h"

#include <openssl/crypto.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

// ---- schema -------------------------------------------------------------------------------------
// One SQL text for both backends (types both accept: BIGINT, TEXT, DOUBLE PRECISION); only the
// triggers that make audit_log append-only differ. A migration is applied once, in one transaction,
// and recorded in schema_version; later schema changes append a migration, never edit one.

typedef struct {
    int version;
    const char *common, *sqlite, *pg;
} reg_migration;

static const reg_migration MIGRATIONS[] = {
    {1,
     "CREATE TABLE model_versions (\n"
     "  version BIGINT PRIMARY KEY,\n"
     "  sha256 TEXT NOT NULL UNIQUE,\n"
     "  weights_sha256 TEXT,\n"
     "  parent BIGINT REFERENCES model_versions(version),\n"
     "  location TEXT NOT NULL,\n"
     "  arch TEXT,\n"
     "  n_params BIGINT NOT NULL,\n"
     "  bytes BIGINT NOT NULL,\n"
     "  ratio_parent DOUBLE PRECISION,\n"
     "  ratio_root DOUBLE PRECISION,\n"
     "  metrics TEXT,\n"
     "  plan TEXT,\n"
     "  config TEXT,\n"
     "  run_id TEXT,\n"
     "  note TEXT,\n"
     "  created_at TEXT NOT NULL,\n"
     "  created_by TEXT NOT NULL);\n"
     "CREATE INDEX model_versions_weights ON model_versions(weights_sha256);\n"
     "CREATE TABLE evolution_runs (\n"
     "  run_id TEXT PRIMARY KEY,\n"
     "  started_at TEXT,\n"
     "  finished_at TEXT,\n"
     "  outcome TEXT,\n"
     "  stages TEXT,\n"
     "  recorded_at TEXT NOT NULL,\n"
     "  recorded_by TEXT NOT NULL);\n"
     "CREATE TABLE aliases (\n"
     "  alias TEXT PRIMARY KEY,\n"
     "  version BIGINT NOT NULL REFERENCES model_versions(version),\n"
     "  updated_at TEXT NOT NULL,\n"
     "  updated_by TEXT NOT NULL);\n"
     "CREATE TABLE approvals (\n"
     "  id BIGINT PRIMARY KEY,\n"
     "  version BIGINT NOT NULL REFERENCES model_versions(version),\n"
     "  alias TEXT NOT NULL,\n"
     "  approved_by TEXT NOT NULL,\n"
     "  reason TEXT NOT NULL,\n"
     "  created_at TEXT NOT NULL);\n"
     "CREATE TABLE audit_log (\n"
     "  seq BIGINT PRIMARY KEY,\n"
     "  at TEXT NOT NULL,\n"
     "  actor TEXT NOT NULL,\n"
     "  action TEXT NOT NULL,\n"
     "  target TEXT,\n"
     "  reason TEXT,\n"
     "  detail TEXT,\n"
     "  prev_hash TEXT NOT NULL,\n"
     "  hash TEXT NOT NULL);\n",
     "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log\n"
     "  BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;\n"
     "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log\n"
     "  BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;\n",
     "CREATE FUNCTION seslm_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS\n"
     "  $f$ BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $f$;\n"
     "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log\n"
     "  FOR EACH ROW EXECUTE FUNCTION seslm_audit_append_only();\n"
     "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log\n"
     "  FOR EACH STATEMENT EXECUTE FUNCTION seslm_audit_append_only();\n"},
    // the audit log's anchor outside the database: an HMAC of each row's hash under a key the database
    // never sees (registry_audit.c)
    {2, "ALTER TABLE audit_log ADD COLUMN mac TEXT;\n", NULL, NULL},
};
static const int N_MIGRATIONS = (int)(sizeof MIGRATIONS / sizeof MIGRATIONS[0]);

// ---- helpers ------------------------------------------------------------------------------------

void reg_now(char *buf, size_t cap) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char t[32];
    strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%s.%03dZ", t, (int)(tv.tv_usec / 1000));
}

seslm_status reg_exec(seslm_registry *r, const char *sql, int n, const char *const *p, reg_row_fn fn, void *ctx,
                      long long *changes) {
    return r->d->exec(r->c, sql, n, p, fn, ctx, changes);
}

typedef struct {
    char *buf;
    size_t cap;
    int found;
} scalar_ctx;

static int scalar_row(void *ctx, int nc, const char *const *v) {
    scalar_ctx *s = ctx;
    if (nc > 0 && v[0]) {
        snprintf(s->buf, s->cap, "%s", v[0]);
        s->found = 1;
    }
    return 1;
}

seslm_status reg_scalar(seslm_registry *r, const char *sql, int n, const char *const *p, char *buf, size_t cap,
                        int *found) {
    scalar_ctx s = {buf, cap, 0};
    if (cap) buf[0] = 0;
    seslm_status st = reg_exec(r, sql, n, p, scalar_row, &s, NULL);
    if (found) *found = s.found;
    return st;
}

typedef struct {
    cJSON *arr;
    const char *const *cols;
    int n_cols;
    const char *numeric, *json;
    int oom;
} rows_ctx;

static int in_list(const char *list, const char *name) {
    if (!list) return 0;
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == 0)) return 1;
    return 0;
}

static int rows_row(void *ctx, int nc, const char *const *v) {
    rows_ctx *x = ctx;
    cJSON *o = cJSON_CreateObject();
    if (!o) return x->oom = 1;
    for (int i = 0; i < nc && i < x->n_cols; i++) {
        const char *k = x->cols[i];
        cJSON *item;
        if (!v[i]) item = cJSON_CreateNull();
        else if (in_list(x->numeric, k)) item = cJSON_CreateNumber(strtod(v[i], NULL));
        else if (in_list(x->json, k)) {
            item = cJSON_Parse(v[i]);
            if (!item) item = cJSON_CreateString(v[i]); // stored text that is not JSON: show it as it is
        } else item = cJSON_CreateString(v[i]);
        if (!item) x->oom = 1;
        else cJSON_AddItemToObject(o, k, item);
    }
    cJSON_AddItemToArray(x->arr, o);
    return 0;
}

seslm_status reg_rows_json(seslm_registry *r, const char *sql, int n, const char *const *p, const char *const *cols,
                           int n_cols, const char *numeric, const char *json, void **array) {
    rows_ctx x = {cJSON_CreateArray(), cols, n_cols, numeric, json, 0};
    *array = NULL;
    if (!x.arr) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    seslm_status s = reg_exec(r, sql, n, p, rows_row, &x, NULL);
    if (s == SESLM_OK && x.oom) s = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    if (s != SESLM_OK) {
        cJSON_Delete(x.arr);
        return s;
    }
    *array = x.arr;
    return SESLM_OK;
}

// ---- transactions -------------------------------------------------------------------------------

static void backoff(int attempt) {
    // jittered, growing pause so two retrying writers do not collide again in lock step
    long us = (1000L << (attempt < 8 ? attempt : 8)) + (long)(rand() % 1000) * (attempt + 1);
    struct timespec ts = {us / 1000000L, (us % 1000000L) * 1000L};
    nanosleep(&ts, NULL);
}

seslm_status reg_tx(seslm_registry *r, seslm_status (*body)(seslm_registry *, void *), void *ctx) {
    int reconnected = 0;
    for (int attempt = 0;; attempt++) {
        int at_commit = 0;
        r->head_pending = 0;
        seslm_status s = r->d->begin(r->c);
        if (s == SESLM_OK) s = body(r, ctx);
        if (s == SESLM_OK) {
            at_commit = 1;
            s = r->d->commit(r->c);
        }
        if (s == SESLM_OK && r->head_pending) {
            // only now that the row is committed may the head outside the database name it
            r->head_pending = 0;
            if (reg_head_store(r->audit_head_path, r->audit_key, r->pending_genesis, r->pending_seq, r->pending_hash) !=
                SESLM_OK) {
                char why[600];
                snprintf(why, sizeof why, "%s", seslm_last_error());
                return seslm_fail(SESLM_ERR_IO, "the change was committed (audit row %lld), but %s; `seslm audit verify` "
                                                "with the key records the head once the file can be written",
                                  r->pending_seq, why);
            }
        }
        if (s == SESLM_OK) return SESLM_OK;
        reg_fail_kind k = r->d->last_fail(r->c);
        r->d->rollback(r->c);
        if (k == REG_FAIL_RETRY && attempt < 50) {
            backoff(attempt);
            continue;
        }
        if (k == REG_FAIL_CONN_LOST) {
            if (at_commit) {
                char first[512];
                snprintf(first, sizeof first, "%s", seslm_last_error()); // seslm_fail writes the same buffer
                return seslm_fail(SESLM_ERR_IO,
                                  "%s; the connection was lost during COMMIT, so whether this change was applied is "
                                  "unknown: check with `seslm registry show` / `seslm audit log` before retrying",
                                  first);
            }
            if (!reconnected) {
                char first[512];
                snprintf(first, sizeof first, "%s", seslm_last_error());
                reconnected = 1;
                if (r->d->reconnect(r->c) == SESLM_OK) continue; // the server rolled the lost transaction back
                char second[512];
                snprintf(second, sizeof second, "%s", seslm_last_error());
                return seslm_fail(SESLM_ERR_IO, "%s; reconnecting failed: %s", first, second);
            }
        }
        return s;
    }
}

seslm_status reg_read(seslm_registry *r, seslm_status (*body)(seslm_registry *, void *), void *ctx) {
    seslm_status s = body(r, ctx);
    if (s != SESLM_OK && r->d->last_fail(r->c) == REG_FAIL_CONN_LOST) {
        char first[512], second[512];
        snprintf(first, sizeof first, "%s", seslm_last_error());
        if (r->d->reconnect(r->c) != SESLM_OK) {
            snprintf(second, sizeof second, "%s", seslm_last_error());
            return seslm_fail(SESLM_ERR_IO, "%s; reconnecting failed: %s", first, second);
        }
        s = body(r, ctx);
    }
    return s;
}

// ---- open and migrate ---------------------------------------------------------------------------

static seslm_status current_version(seslm_registry *r, int *v) {
    char buf[32];
    int found = 0;
    seslm_status s = reg_scalar(r, "SELECT MAX(version) FROM schema_version", 0, NULL, buf, sizeof buf, &found);
    *v = found ? atoi(buf) : 0;
    return s;
}

static seslm_status migrate_body(seslm_registry *r, void *ctx) {
    (void)ctx;
    seslm_status s = reg_exec(r, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TEXT NOT NULL)",
                              0, NULL, NULL, NULL, NULL);
    int v = 0;
    if (s == SESLM_OK) s = current_version(r, &v);
    if (s != SESLM_OK) return s;
    if (v > SESLM_REGISTRY_SCHEMA_VERSION)
        return seslm_fail(SESLM_ERR_FORMAT,
                          "the registry has schema version %d, newer than this seslm knows (%d): upgrade seslm", v,
                          SESLM_REGISTRY_SCHEMA_VERSION);
    for (int i = 0; i < N_MIGRATIONS && s == SESLM_OK; i++) {
        const reg_migration *m = &MIGRATIONS[i];
        if (m->version <= v) continue;
        s = reg_exec(r, m->common, 0, NULL, NULL, NULL, NULL);
        const char *own = r->kind == SESLM_REGISTRY_SQLITE ? m->sqlite : m->pg;
        if (s == SESLM_OK && own) s = reg_exec(r, own, 0, NULL, NULL, NULL, NULL);
        char now[40], ver[16];
        reg_now(now, sizeof now);
        snprintf(ver, sizeof ver, "%d", m->version);
        const char *p[] = {ver, now};
        if (s == SESLM_OK) s = reg_exec(r, "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)", 2, p, NULL, NULL, NULL);
    }
    return s;
}

static seslm_status migrate(seslm_registry *r) {
    // Two processes opening a new database at once: SQLite's BEGIN IMMEDIATE serialises them; on
    // PostgreSQL a transaction-scoped advisory lock does, in READ COMMITTED so that the second one
    // sees what the first committed (a SERIALIZABLE snapshot would predate the lock).
    for (int attempt = 0;; attempt++) {
        seslm_status s;
        if (r->kind == SESLM_REGISTRY_POSTGRES) {
            s = reg_exec(r, "BEGIN", 0, NULL, NULL, NULL, NULL);
            if (s == SESLM_OK) s = reg_exec(r, "SELECT pg_advisory_xact_lock(7007001)", 0, NULL, NULL, NULL, NULL);
        } else {
            s = r->d->begin(r->c);
        }
        if (s == SESLM_OK) s = migrate_body(r, NULL);
        if (s == SESLM_OK) s = r->d->commit(r->c);
        if (s == SESLM_OK) return s;
        reg_fail_kind k = r->d->last_fail(r->c);
        r->d->rollback(r->c);
        if (k == REG_FAIL_RETRY && attempt < 20) {
            backoff(attempt);
            continue;
        }
        return s;
    }
}

seslm_status seslm_registry_open(seslm_registry **out, const char *url) {
    *out = NULL;
    if (!url || !url[0]) return seslm_fail(SESLM_ERR_ARG, "registry: empty registry URL");
    seslm_registry *r = calloc(1, sizeof *r);
    if (!r) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    seslm_status s;
    if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0) {
        r->kind = SESLM_REGISTRY_POSTGRES;
        s = reg_pg_open(&r->c, &r->d, url);
    } else if (strncmp(url, "pg:", 3) == 0) {
        r->kind = SESLM_REGISTRY_POSTGRES;
        s = reg_pg_open(&r->c, &r->d, url + 3);
    } else {
        const char *path = strncmp(url, "sqlite:", 7) == 0 ? url + 7 : url;
        if (!path[0]) s = seslm_fail(SESLM_ERR_ARG, "registry: sqlite: needs a file path");
        else {
            r->kind = SESLM_REGISTRY_SQLITE;
            s = reg_sqlite_open(&r->c, &r->d, path);
        }
    }
    if (s == SESLM_OK) s = migrate(r);
    if (s != SESLM_OK) {
        seslm_registry_close(r);
        return s;
    }
    srand((unsigned)getpid() ^ (unsigned)time(NULL));
    *out = r;
    return SESLM_OK;
}

void seslm_registry_close(seslm_registry *r) {
    if (!r) return;
    OPENSSL_cleanse(r->audit_key, sizeof r->audit_key);
    free(r->audit_head_path);
    if (r->c) r->d->close(r->c);
    free(r);
}

seslm_registry_backend seslm_registry_backend_kind(const seslm_registry *r) { return r->kind; }

int seslm_registry_schema_version(seslm_registry *r) {
    int v = 0;
    if (current_version(r, &v) != SESLM_OK) return -1;
    return v;
}
