/* registry_driver.h — the SQL connection behind the registry (internal). The registry logic
 * (registry.c) is written once against this small interface; registry_sqlite.c and registry_pg.c
 * implement it. SQL text is shared: parameters are written $1, $2, ... (PostgreSQL's style, which
 * SQLite accepts as named parameters), and only the statements listed in the migrations as
 * backend-specific differ. */
#ifndef SESLM_REGISTRY_DRIVER_H
#define SESLM_REGISTRY_DRIVER_H

#include "seslm.h"

/* Called once per result row; vals[i] is NULL for SQL NULL. Return non-zero to stop. */
typedef int (*reg_row_fn)(void *ctx, int ncols, const char *const *vals);

/* Why a statement failed, beyond the message in seslm_last_error(): the transaction runner retries
 * REG_RETRY (serialization failure, deadlock, busy) and, once, REG_CONN_LOST (after reconnecting). */
typedef enum { REG_FAIL_NONE = 0, REG_FAIL_OTHER, REG_FAIL_RETRY, REG_FAIL_CONN_LOST } reg_fail_kind;

typedef struct reg_conn reg_conn;

typedef struct {
    const char *name; // "sqlite" or "postgresql"
    /* Runs one statement with n text parameters (NULL = SQL NULL); rows go to fn (may be NULL).
     * *changes (may be NULL) gets the number of rows changed. */
    seslm_status (*exec)(reg_conn *c, const char *sql, int n, const char *const *params, reg_row_fn fn, void *ctx,
                         long long *changes);
    /* A transaction that writes: SQLite BEGIN IMMEDIATE (takes the write lock now, so two promotions
     * serialise instead of failing at COMMIT); PostgreSQL BEGIN ISOLATION LEVEL SERIALIZABLE. */
    seslm_status (*begin)(reg_conn *c);
    seslm_status (*commit)(reg_conn *c);
    void (*rollback)(reg_conn *c); // best effort; never fails the caller
    seslm_status (*reconnect)(reg_conn *c);
    reg_fail_kind (*last_fail)(const reg_conn *c);
    void (*close)(reg_conn *c);
} reg_driver;

seslm_status reg_sqlite_open(reg_conn **out, const reg_driver **drv, const char *path);
seslm_status reg_pg_open(reg_conn **out, const reg_driver **drv, const char *dsn);

#endif
