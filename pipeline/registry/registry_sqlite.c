/* registry_sqlite.c — the registry's embedded backend: one SQLite file, WAL journal (readers never
 * block the writer), a busy timeout (a second writer waits instead of failing), BEGIN IMMEDIATE for
 * every writing transaction, synchronous=FULL (a committed promotion survives a power cut). */
#include "registry_driver.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct reg_conn {
    sqlite3 *db;
    char *path;
    reg_fail_kind fail;
};

static const int BUSY_TIMEOUT_MS = 30000;

static seslm_status sq_fail(reg_conn *c, int rc, const char *what) {
    c->fail = (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) ? REG_FAIL_RETRY : REG_FAIL_OTHER;
    return seslm_fail(SESLM_ERR_IO, "registry %s: %s: %s", c->path, what, c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
}

static seslm_status sq_exec(reg_conn *c, const char *sql, int n, const char *const *params, reg_row_fn fn, void *ctx,
                            long long *changes) {
    sqlite3_stmt *st = NULL;
    c->fail = REG_FAIL_NONE;
    const char *tail = sql;
    // a migration may hold several statements (SQLite triggers); run them in turn
    while (tail && *tail) {
        int rc = sqlite3_prepare_v2(c->db, tail, -1, &st, &tail);
        if (rc != SQLITE_OK) return sq_fail(c, rc, "cannot prepare a statement");
        if (!st) break; // only whitespace / comments left
        for (int i = 0; i < n; i++) {
            char name[16];
            snprintf(name, sizeof name, "$%d", i + 1);
            int idx = sqlite3_bind_parameter_index(st, name);
            if (idx == 0) continue; // this statement does not use $i
            rc = params[i] ? sqlite3_bind_text(st, idx, params[i], -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, idx);
            if (rc != SQLITE_OK) {
                sqlite3_finalize(st);
                return sq_fail(c, rc, "cannot bind a parameter");
            }
        }
        int stop = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            if (stop || !fn) continue;
            int nc = sqlite3_column_count(st);
            const char *vals[64];
            if (nc > 64) nc = 64;
            for (int i = 0; i < nc; i++) vals[i] = (const char *)sqlite3_column_text(st, i);
            stop = fn(ctx, nc, vals);
        }
        if (rc != SQLITE_DONE) {
            seslm_status s = sq_fail(c, rc, "statement failed");
            sqlite3_finalize(st);
            return s;
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    if (changes) *changes = sqlite3_changes(c->db);
    return SESLM_OK;
}

static seslm_status sq_simple(reg_conn *c, const char *sql) { return sq_exec(c, sql, 0, NULL, NULL, NULL, NULL); }
static seslm_status sq_begin(reg_conn *c) { return sq_simple(c, "BEGIN IMMEDIATE"); }
static seslm_status sq_commit(reg_conn *c) { return sq_simple(c, "COMMIT"); }
static void sq_rollback(reg_conn *c) {
    if (!sqlite3_get_autocommit(c->db)) sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}
static seslm_status sq_reconnect(reg_conn *c) {
    (void)c;
    return seslm_fail(SESLM_ERR_IO, "registry %s: an SQLite file has no connection to restore", c->path);
}
static reg_fail_kind sq_last_fail(const reg_conn *c) { return c->fail; }
static void sq_close(reg_conn *c) {
    if (!c) return;
    sqlite3_close(c->db);
    free(c->path);
    free(c);
}

static const reg_driver SQLITE_DRIVER = {"sqlite", sq_exec, sq_begin, sq_commit, sq_rollback,
                                         sq_reconnect, sq_last_fail, sq_close};

seslm_status reg_sqlite_open(reg_conn **out, const reg_driver **drv, const char *path) {
    *out = NULL;
    reg_conn *c = calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(path))) {
        free(c);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    int rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK) {
        seslm_status s = seslm_fail(SESLM_ERR_IO, "registry %s: cannot open: %s", path,
                                    c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        sq_close(c);
        return s;
    }
    sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
    seslm_status s = sq_simple(c, "PRAGMA journal_mode=WAL");
    if (s == SESLM_OK) s = sq_simple(c, "PRAGMA synchronous=FULL");
    if (s == SESLM_OK) s = sq_simple(c, "PRAGMA foreign_keys=ON");
    if (s != SESLM_OK) {
        sq_close(c);
        return s;
    }
    *out = c;
    *drv = &SQLITE_DRIVER;
    return SESLM_OK;
}
