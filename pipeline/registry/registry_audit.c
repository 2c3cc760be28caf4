/* registry_audit.c — the append-only audit log. Each row's hash is
 *     sha256(prev_hash || canonical row)
 * where the canonical row is the compact JSON array [seq, at, actor, action, target, reason, detail]
 * (NULL as null) and the first row's prev_hash is 64 zeros; changing, removing or inserting any row
 * breaks the chain from there on, and `seslm audit verify` names the first broken row. The tables also
 * refuse UPDATE / DELETE by trigger; the chain is what catches someone who bypasses the triggers. */
#include "registry_internal.h"

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char ZERO_HASH[] = "0000000000000000000000000000000000000000000000000000000000000000";

static seslm_status row_hash(const char *prev, const char *seq, const char *at, const char *actor, const char *action,
                             const char *target, const char *reason, const char *detail, char out[65]) {
    cJSON *a = cJSON_CreateArray();
    if (!a) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    cJSON_AddItemToArray(a, cJSON_CreateNumber((double)atoll(seq)));
    const char *f[] = {at, actor, action, target, reason, detail};
    for (int i = 0; i < 6; i++) cJSON_AddItemToArray(a, f[i] ? cJSON_CreateString(f[i]) : cJSON_CreateNull());
    char *canon = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    if (!canon) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    unsigned char md[32];
    unsigned int n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) && EVP_DigestUpdate(ctx, prev, strlen(prev)) &&
             EVP_DigestUpdate(ctx, canon, strlen(canon)) && EVP_DigestFinal_ex(ctx, md, &n);
    EVP_MD_CTX_free(ctx);
    free(canon);
    if (!ok) return seslm_fail(SESLM_ERR_INTERNAL, "sha256 failed");
    for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
    return SESLM_OK;
}

typedef struct {
    char seq[32], hash[65];
    int found;
} last_row;

static int last_row_fn(void *ctx, int nc, const char *const *v) {
    last_row *l = ctx;
    if (nc >= 2 && v[0] && v[1]) {
        snprintf(l->seq, sizeof l->seq, "%s", v[0]);
        snprintf(l->hash, sizeof l->hash, "%s", v[1]);
        l->found = 1;
    }
    return 1;
}

seslm_status reg_audit_append(seslm_registry *r, const char *actor, const char *action, const char *target,
                              const char *reason, const char *detail_json) {
    last_row l = {{0}, {0}, 0};
    seslm_status s = reg_exec(r, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", 0, NULL, last_row_fn, &l, NULL);
    if (s != SESLM_OK) return s;
    char seq[32], at[40], hash[65];
    snprintf(seq, sizeof seq, "%lld", l.found ? atoll(l.seq) + 1 : 1LL);
    const char *prev = l.found ? l.hash : ZERO_HASH;
    reg_now(at, sizeof at);
    if (!actor || !actor[0]) actor = "unknown";
    s = row_hash(prev, seq, at, actor, action, target, reason, detail_json, hash);
    if (s != SESLM_OK) return s;
    const char *p[] = {seq, at, actor, action, target, reason, detail_json, prev, hash};
    return reg_exec(r,
                    "INSERT INTO audit_log (seq, at, actor, action, target, reason, detail, prev_hash, hash) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    9, p, NULL, NULL, NULL);
}

typedef struct {
    const char *actor, *action, *target, *reason, *detail;
} audit_args;

static seslm_status audit_body(seslm_registry *r, void *ctx) {
    audit_args *a = ctx;
    return reg_audit_append(r, a->actor, a->action, a->target, a->reason, a->detail);
}

seslm_status seslm_registry_audit(seslm_registry *r, const char *actor, const char *action, const char *target,
                                  const char *reason, const char *detail_json) {
    if (!action || !action[0]) return seslm_fail(SESLM_ERR_ARG, "audit: an action is required");
    audit_args a = {actor, action, target, reason, detail_json};
    return reg_tx(r, audit_body, &a);
}

typedef struct {
    long long n, expect_seq;
    char prev[65];
    int bad;
    char msg[512];
} verify_ctx;

static int verify_row(void *ctx, int nc, const char *const *v) {
    verify_ctx *x = ctx;
    if (nc < 9) return 1;
    x->n++;
    const char *seq = v[0], *prev = v[7], *hash = v[8];
    char want[65];
    if (!seq || atoll(seq) != x->expect_seq) {
        snprintf(x->msg, sizeof x->msg, "audit row %s: expected sequence number %lld (a row was removed or inserted)",
                 seq ? seq : "NULL", x->expect_seq);
        return x->bad = 1;
    }
    if (!prev || strcmp(prev, x->prev) != 0) {
        snprintf(x->msg, sizeof x->msg, "audit row %s: prev_hash does not match the hash of row %lld (the chain is broken)",
                 seq, x->expect_seq - 1);
        return x->bad = 1;
    }
    if (!v[1] || !v[2] || !v[3] || row_hash(prev, seq, v[1], v[2], v[3], v[4], v[5], v[6], want) != SESLM_OK ||
        !hash || strcmp(hash, want) != 0) {
        snprintf(x->msg, sizeof x->msg, "audit row %s: its hash does not match its contents (the row was changed)", seq);
        return x->bad = 1;
    }
    snprintf(x->prev, sizeof x->prev, "%s", hash);
    x->expect_seq++;
    return 0;
}

static seslm_status verify_body(seslm_registry *r, void *ctx) {
    verify_ctx *x = ctx;
    x->n = 0;
    x->expect_seq = 1;
    x->bad = 0;
    snprintf(x->prev, sizeof x->prev, "%s", ZERO_HASH);
    return reg_exec(r, "SELECT seq, at, actor, action, target, reason, detail, prev_hash, hash FROM audit_log ORDER BY seq",
                    0, NULL, verify_row, x, NULL);
}

seslm_status seslm_registry_audit_verify(seslm_registry *r, long long *n_rows, char *head) {
    verify_ctx x;
    memset(&x, 0, sizeof x);
    seslm_status s = reg_read(r, verify_body, &x);
    if (n_rows) *n_rows = x.n;
    if (s != SESLM_OK) return s;
    if (x.bad) return seslm_fail(SESLM_ERR_FORMAT, "%s", x.msg);
    if (head) snprintf(head, 65, "%s", x.prev);
    return SESLM_OK;
}

typedef struct {
    long long limit;
    void *arr;
} log_ctx;

static seslm_status log_body(seslm_registry *r, void *ctx) {
    log_ctx *x = ctx;
    static const char *const COLS[] = {"seq", "at", "actor", "action", "target", "reason", "detail", "hash"};
    char lim[32];
    snprintf(lim, sizeof lim, "%lld", x->limit > 0 ? x->limit : (long long)1 << 62);
    const char *p[] = {lim};
    return reg_rows_json(r,
                         "SELECT seq, at, actor, action, target, reason, detail, hash FROM "
                         "(SELECT * FROM audit_log ORDER BY seq DESC LIMIT $1) t ORDER BY seq",
                         1, p, COLS, 8, "seq", "detail", &x->arr);
}

seslm_status seslm_registry_audit_json(seslm_registry *r, long long limit, char **json) {
    log_ctx x = {limit, NULL};
    *json = NULL;
    seslm_status s = reg_read(r, log_body, &x);
    if (s != SESLM_OK) return s;
    *json = cJSON_PrintUnformatted(x.arr);
    cJSON_Delete(x.arr);
    return *json ? SESLM_OK : seslm_fail(SESLM_ERR_NOMEM, "out of memory");
}
