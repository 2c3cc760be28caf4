/* registry_internal.h — what the registry's source files share: the handle, the transaction runner,
 * query helpers and the audit append. */
#ifndef SESLM_REGISTRY_INTERNAL_H
#define SESLM_REGISTRY_INTERNAL_H

#include "registry.h"
#include "registry_driver.h"

#include <stddef.h>

struct seslm_registry {
    reg_conn *c;
    const reg_driver *d;
    seslm_registry_backend kind;
    unsigned char audit_key[32]; // the audit anchor key (seslm_registry_set_audit_key), when have_audit_key
    int have_audit_key;
    int audit_rotating;          // the next append may change the key the log is anchored with
    long long anchored_from;     // set by the last verify
    char *audit_head_path;       // the head kept outside the database (registry_audit_head.c), or NULL
    long long audit_head_seq;    // set by the last verify: the row the head file vouched for (0: none)
    int audit_head_recorded;     // set by the last verify: the head file was missing and is now written
    int head_pending;            // an audit row was appended in this transaction: record it after the commit
    long long pending_seq;
    char pending_genesis[65], pending_hash[65];
};

/* Runs body inside a writing transaction, retrying serialization failures / busy errors and, once, a
 * lost connection (after reconnecting). body must only change the database (no other side effects):
 * it may run more than once. */
seslm_status reg_tx(seslm_registry *r, seslm_status (*body)(seslm_registry *, void *), void *ctx);
/* A read outside a transaction, with the same one reconnect + retry on a lost connection. */
seslm_status reg_read(seslm_registry *r, seslm_status (*body)(seslm_registry *, void *), void *ctx);

seslm_status reg_exec(seslm_registry *r, const char *sql, int n, const char *const *p, reg_row_fn fn, void *ctx,
                      long long *changes);
/* First column of the first row into buf ("" and *found = 0 when no row or NULL). */
seslm_status reg_scalar(seslm_registry *r, const char *sql, int n, const char *const *p, char *buf, size_t cap,
                        int *found);
/* Rows as a cJSON array of objects (cJSON *), keys = cols (n_cols names); values are strings, or numbers
 * for the columns whose name is listed in numeric (comma-separated), or parsed JSON for those in json. */
seslm_status reg_rows_json(seslm_registry *r, const char *sql, int n, const char *const *p, const char *const *cols,
                           int n_cols, const char *numeric, const char *json, void **array);

/* Appends one hash-chained audit row inside the caller's transaction. */
seslm_status reg_audit_append(seslm_registry *r, const char *actor, const char *action, const char *target,
                              const char *reason, const char *detail_json);
/* The audit head outside the database (registry_audit_head.c). reg_head_check: SESLM_OK when path does not
 * exist (*head_seq = 0) or when the database still holds the row it records (*head_seq = its seq); else
 * SESLM_ERR_FORMAT naming what was removed or replaced. reg_head_store writes it (0600, atomically; never
 * a lower seq over a higher one of the same log). reg_head_writable: can path's directory take it. */
seslm_status reg_head_check(seslm_registry *r, const unsigned char key[32], const char *path, long long *head_seq);
seslm_status reg_head_store(const char *path, const unsigned char key[32], const char *genesis, long long seq,
                            const char *hash);
seslm_status reg_head_writable(const char *path);
/* Current UTC time, ISO 8601 with milliseconds ("2026-11-25T10:42:04.123Z"). */
void reg_now(char *buf, size_t cap);

#endif
