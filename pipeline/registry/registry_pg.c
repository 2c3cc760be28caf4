/* registry_pg.c — the registry's fleet backend: PostgreSQL through libpq. Writing transactions run
 * SERIALIZABLE; a serialization failure or deadlock is reported as retryable (the transaction runner
 * in registry.c starts the whole transaction again), a dropped connection as REG_FAIL_CONN_LOST
 * (the runner reconnects once and retries, unless the connection died during COMMIT: then the outcome
 * is unknown and said so, never guessed). The server aborts an open transaction whose client
 * vanished, so a lost connection never leaves a half-written change. */
#include "registry_driver.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct reg_conn {
    PGconn *pg;
    char *dsn;
    reg_fail_kind fail;
};

static void pg_quiet(void *arg, const char *msg) { // "relation already exists, skipping" and the like
    (void)arg;
    (void)msg;
}

/* The DSN can hold a password: messages name the database by host/port/dbname only. */
static void pg_where(const reg_conn *c, char *buf, size_t cap) {
    if (c->pg && PQstatus(c->pg) == CONNECTION_OK)
        snprintf(buf, cap, "postgresql %s:%s/%s", PQhost(c->pg), PQport(c->pg), PQdb(c->pg));
    else
        snprintf(buf, cap, "postgresql");
}

static seslm_status pg_connect(reg_conn *c) {
    if (c->pg) PQfinish(c->pg);
    // connect_timeout first: a connect_timeout in the DSN itself overrides it
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {"10", "seslm-registry", c->dsn, NULL};
    c->pg = PQconnectdbParams(keys, vals, 1);
    if (!c->pg) return seslm_fail(SESLM_ERR_NOMEM, "registry: out of memory connecting to PostgreSQL");
    if (PQstatus(c->pg) != CONNECTION_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(c->pg));
        size_t n = strlen(msg);
        while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) msg[--n] = 0;
        c->fail = REG_FAIL_CONN_LOST;
        return seslm_fail(SESLM_ERR_IO, "registry: cannot connect to PostgreSQL: %s", msg);
    }
    PQsetNoticeProcessor(c->pg, pg_quiet, NULL);
    return SESLM_OK;
}

static seslm_status pg_exec(reg_conn *c, const char *sql, int n, const char *const *params, reg_row_fn fn, void *ctx,
                            long long *changes) {
    c->fail = REG_FAIL_NONE;
    if (!c->pg || PQstatus(c->pg) != CONNECTION_OK) {
        c->fail = REG_FAIL_CONN_LOST;
        return seslm_fail(SESLM_ERR_IO, "registry: the connection to PostgreSQL is lost");
    }
    PGresult *r = n ? PQexecParams(c->pg, sql, n, NULL, params, NULL, NULL, 0) : PQexec(c->pg, sql);
    ExecStatusType es = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (es != PGRES_COMMAND_OK && es != PGRES_TUPLES_OK) {
        const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        char code[8] = "", msg[512];
        if (st) snprintf(code, sizeof code, "%s", st); // it lives in r, cleared below
        const char *state = code[0] ? code : NULL;
        snprintf(msg, sizeof msg, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(c->pg));
        size_t len = strlen(msg);
        while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' ')) msg[--len] = 0;
        PQclear(r);
        char where[300];
        pg_where(c, where, sizeof where);
        if (PQstatus(c->pg) != CONNECTION_OK || (state && strncmp(state, "57P", 3) == 0) ||
            (state && strncmp(state, "08", 2) == 0)) {
            c->fail = REG_FAIL_CONN_LOST;
            return seslm_fail(SESLM_ERR_IO, "registry %s: connection lost: %s", where, msg[0] ? msg : "no reply");
        }
        // 23505 too: every key the registry inserts is checked or computed (MAX + 1) first in the same
        // transaction, so a unique violation means a concurrent transaction took it: run again
        c->fail = (state && (!strcmp(state, "40001") || !strcmp(state, "40P01") || !strcmp(state, "23505")))
                      ? REG_FAIL_RETRY
                      : REG_FAIL_OTHER;
        return seslm_fail(SESLM_ERR_IO, "registry %s: %s", where, msg);
    }
    if (fn && es == PGRES_TUPLES_OK) {
        int rows = PQntuples(r), nc = PQnfields(r);
        if (nc > 64) nc = 64;
        for (int i = 0; i < rows; i++) {
            const char *vals[64];
            for (int j = 0; j < nc; j++) vals[j] = PQgetisnull(r, i, j) ? NULL : PQgetvalue(r, i, j);
            if (fn(ctx, nc, vals)) break;
        }
    }
    if (changes) {
        const char *t = PQcmdTuples(r);
        *changes = t && *t ? atoll(t) : 0;
    }
    PQclear(r);
    return SESLM_OK;
}

static seslm_status pg_begin(reg_conn *c) {
    return pg_exec(c, "BEGIN ISOLATION LEVEL SERIALIZABLE", 0, NULL, NULL, NULL, NULL);
}
static seslm_status pg_commit(reg_conn *c) { return pg_exec(c, "COMMIT", 0, NULL, NULL, NULL, NULL); }
static void pg_rollback(reg_conn *c) {
    if (c->pg && PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        PGresult *r = PQexec(c->pg, "ROLLBACK");
        PQclear(r);
    }
}
static seslm_status pg_reconnect(reg_conn *c) { return pg_connect(c); }
static reg_fail_kind pg_last_fail(const reg_conn *c) { return c->fail; }
static void pg_close(reg_conn *c) {
    if (!c) return;
    if (c->pg) PQfinish(c->pg);
    free(c->dsn);
    free(c);
}

static const reg_driver PG_DRIVER = {"postgresql", pg_exec, pg_begin, pg_commit, pg_rollback,
                                     pg_reconnect, pg_last_fail, pg_close};

seslm_status reg_pg_open(reg_conn **out, const reg_driver **drv, const char *dsn) {
    *out = NULL;
    reg_conn *c = calloc(1, sizeof *c);
    if (!c || !(c->dsn = strdup(dsn))) {
        free(c);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    seslm_status s = pg_connect(c);
    if (s != SESLM_OK) {
        pg_close(c);
        return s;
    }
    *out = c;
    *drv = &PG_DRIVER;
    return SESLM_OK;
}
