/* registry_audit.c — the append-only audit log. Each row's hash is
 *     sha256(prev_hash || canonical row)
 * where the canonical row is the compact JSON array [seq, at, actor, action, target, reason, detail]
 * (NULL as null) and the first row's prev_hash is 64 zeros; changing, removing or inserting any row
 * breaks the chain from there on, and `seslm audit verify` names the first broken row. The tables also
 * refuse UPDATE / DELETE by trigger; the chain is what catches someone who bypasses the triggers.
 *
 * The chain alone cannot stop someone who rewrites rows and recomputes every hash after them. With an
 * audit key (a file the database never sees) each row also carries mac = "<key id>:<HMAC-SHA256(key,
 * seq ':' hash)>": the head's mac vouches for the whole chain before it, and only the key's holder can
 * make one. Rows written before the log was anchored carry none; the anchored head covers them too. */
#include "registry_internal.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
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

// ---- the anchor --------------------------------------------------------------------------------------

void seslm_registry_audit_key_id(const unsigned char key[32], char id[17]) {
    static const char TAGSTR[] = "seslm-audit-key-id";
    unsigned char md[32];
    unsigned int n = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) && EVP_DigestUpdate(c, TAGSTR, sizeof TAGSTR - 1) &&
             EVP_DigestUpdate(c, key, 32) && EVP_DigestFinal_ex(c, md, &n);
    EVP_MD_CTX_free(c);
    for (int i = 0; i < 8; i++) snprintf(id + 2 * i, 3, "%02x", ok ? md[i] : 0);
}

/* "<key id>:<hex HMAC-SHA256(key, seq ':' hash)>" into out (16 + 1 + 64 + NUL). */
static void row_mac(const unsigned char key[32], const char *seq, const char *hash, char out[82]) {
    char msg[128];
    int n = snprintf(msg, sizeof msg, "%s:%s", seq, hash);
    unsigned char md[32];
    unsigned int ml = 0;
    seslm_registry_audit_key_id(key, out);
    out[16] = ':';
    if (!HMAC(EVP_sha256(), key, 32, (const unsigned char *)msg, (size_t)n, md, &ml)) memset(md, 0, sizeof md);
    for (int i = 0; i < 32; i++) snprintf(out + 17 + 2 * i, 3, "%02x", md[i]);
}

seslm_status seslm_registry_set_audit_key(seslm_registry *r, const unsigned char key[32]) {
    r->have_audit_key = key != NULL;
    if (key) memcpy(r->audit_key, key, 32);
    else OPENSSL_cleanse(r->audit_key, sizeof r->audit_key);
    return SESLM_OK;
}

long long seslm_registry_audit_anchored_from(const seslm_registry *r) { return r->anchored_from; }

seslm_status seslm_registry_set_audit_head_file(seslm_registry *r, const char *path) {
    char *copy = NULL;
    if (path && path[0] && !(copy = strdup(path))) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    free(r->audit_head_path);
    r->audit_head_path = copy;
    return SESLM_OK;
}

long long seslm_registry_audit_head_seq(const seslm_registry *r, int *recorded_now) {
    if (recorded_now) *recorded_now = r->audit_head_recorded;
    return r->audit_head_seq;
}

typedef struct {
    char seq[32], hash[65], mac[96];
    int found;
} last_row;

static int last_row_fn(void *ctx, int nc, const char *const *v) {
    last_row *l = ctx;
    if (nc >= 3 && v[0] && v[1]) {
        snprintf(l->seq, sizeof l->seq, "%s", v[0]);
        snprintf(l->hash, sizeof l->hash, "%s", v[1]);
        snprintf(l->mac, sizeof l->mac, "%s", v[2] ? v[2] : "");
        l->found = 1;
    }
    return 1;
}

seslm_status reg_audit_append(seslm_registry *r, const char *actor, const char *action, const char *target,
                              const char *reason, const char *detail_json) {
    last_row l = {{0}, {0}, {0}, 0};
    seslm_status s =
        reg_exec(r, "SELECT seq, hash, mac FROM audit_log ORDER BY seq DESC LIMIT 1", 0, NULL, last_row_fn, &l, NULL);
    if (s != SESLM_OK) return s;
    // an anchored log stays anchored, under one key at a time (rotation: seslm_registry_audit_rotate)
    char kid[17] = "";
    if (r->have_audit_key) seslm_registry_audit_key_id(r->audit_key, kid);
    if (l.mac[0] && !r->have_audit_key)
        return seslm_fail(SESLM_ERR_FORMAT, "the audit log is anchored with an HMAC key (id %.16s): set $SESLM_AUDIT_KEY_FILE "
                                         "to write to this registry (docs/security.md)", l.mac);
    if (l.mac[0] && strncmp(l.mac, kid, 16) != 0 && !r->audit_rotating)
        return seslm_fail(SESLM_ERR_FORMAT, "the audit log is anchored with key id %.16s, not this key's %s: wrong "
                                         "$SESLM_AUDIT_KEY_FILE (to change keys: seslm audit rotate-key)", l.mac, kid);
    // the head kept outside the database: a removed tail must not be hidden under new rows (registry_audit_head.c);
    // rotation checked the previous key's head already
    const int keep_head = r->have_audit_key && r->audit_head_path;
    if (keep_head) {
        long long head_seq = 0;
        if (!r->audit_rotating && (s = reg_head_check(r, r->audit_key, r->audit_head_path, &head_seq)) != SESLM_OK) {
            char why[700];
            snprintf(why, sizeof why, "%s", seslm_last_error());
            return seslm_fail(s, "refusing to append to the audit log: %s", why);
        }
        if ((s = reg_head_writable(r->audit_head_path)) != SESLM_OK) return s;
    }
    char seq[32], at[40], hash[65];
    snprintf(seq, sizeof seq, "%lld", l.found ? atoll(l.seq) + 1 : 1LL);
    const char *prev = l.found ? l.hash : ZERO_HASH;
    reg_now(at, sizeof at);
    if (!actor || !actor[0]) actor = "unknown";
    s = row_hash(prev, seq, at, actor, action, target, reason, detail_json, hash);
    if (s != SESLM_OK) return s;
    char mac[96];
    if (r->have_audit_key) row_mac(r->audit_key, seq, hash, mac);
    const char *p[] = {seq, at, actor, action, target, reason, detail_json, prev, hash, r->have_audit_key ? mac : NULL};
    s = reg_exec(r,
                 "INSERT INTO audit_log (seq, at, actor, action, target, reason, detail, prev_hash, hash, mac) "
                 "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                 10, p, NULL, NULL, NULL);
    if (s != SESLM_OK || !keep_head) return s;
    // reg_tx writes the head file once this transaction has committed
    char genesis[80];
    int found = 0;
    if (atoll(seq) == 1) snprintf(genesis, sizeof genesis, "%s", hash);
    else if ((s = reg_scalar(r, "SELECT hash FROM audit_log WHERE seq = 1", 0, NULL, genesis, sizeof genesis, &found)) != SESLM_OK)
        return s;
    else if (!found)
        return seslm_fail(SESLM_ERR_FORMAT, "the audit log has no row 1 (rows were removed): run seslm audit verify");
    snprintf(r->pending_genesis, sizeof r->pending_genesis, "%.64s", genesis);
    snprintf(r->pending_hash, sizeof r->pending_hash, "%s", hash);
    r->pending_seq = atoll(seq);
    r->head_pending = 1;
    return SESLM_OK;
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
    const unsigned char *key; // the anchor key, or NULL
    char kid[17];
    long long anchored_from;  // first row with a mac of this key (0: none yet)
    long long n_mac;          // rows with any mac
    char head_mac[96];        // the last row's mac ("" when none)
    char genesis[65];         // row 1's hash
    const char *head_path;    // the head kept outside the database, checked after the chain (or NULL)
    long long head_seq;       // the row it vouched for (0: no head file)
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
    const char *mac = nc >= 10 && v[9] ? v[9] : "";
    snprintf(x->head_mac, sizeof x->head_mac, "%s", mac);
    if (mac[0]) x->n_mac++;
    if (x->key && mac[0] && strncmp(mac, x->kid, 16) == 0) {
        char want_mac[96];
        row_mac(x->key, seq, hash, want_mac);
        if (CRYPTO_memcmp(want_mac, mac, strlen(want_mac) + 1) != 0 || strlen(mac) != strlen(want_mac)) {
            snprintf(x->msg, sizeof x->msg, "audit row %s: its HMAC does not match (the row or the chain before it was "
                                            "rewritten by someone without the audit key)", seq);
            return x->bad = 1;
        }
        if (!x->anchored_from) x->anchored_from = x->expect_seq;
    } else if (x->key && x->anchored_from) {
        snprintf(x->msg, sizeof x->msg, "audit row %s: %s after row %lld was anchored with this key (rows were "
                                        "rewritten or appended without the key)", seq, mac[0] ? "anchored with another key" : "not anchored",
                 x->anchored_from);
        return x->bad = 1;
    }
    if (x->expect_seq == 1) snprintf(x->genesis, sizeof x->genesis, "%s", hash);
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
    x->anchored_from = 0;
    x->n_mac = 0;
    x->head_mac[0] = 0;
    x->genesis[0] = 0;
    x->head_seq = 0;
    seslm_status s = reg_exec(r, "SELECT seq, at, actor, action, target, reason, detail, prev_hash, hash, mac FROM audit_log "
                                 "ORDER BY seq", 0, NULL, verify_row, x, NULL);
    return s;
}

static seslm_status verify_head_body(seslm_registry *r, void *ctx) {
    verify_ctx *x = ctx;
    return reg_head_check(r, x->key, x->head_path, &x->head_seq);
}

static seslm_status verify_with(seslm_registry *r, const unsigned char *key, const char *head_path, long long *n_rows,
                                char *head) {
    verify_ctx x;
    memset(&x, 0, sizeof x);
    x.key = key;
    x.head_path = head_path;
    if (key) seslm_registry_audit_key_id(key, x.kid);
    r->anchored_from = 0;
    r->audit_head_seq = 0;
    r->audit_head_recorded = 0;
    seslm_status s = reg_read(r, verify_body, &x);
    if (n_rows) *n_rows = x.n;
    if (s != SESLM_OK) return s;
    if (x.bad) return seslm_fail(SESLM_ERR_FORMAT, "%s", x.msg);
    // the anchor: with a key, the head must carry this key's mac (it vouches for every row before it)
    if (key && x.n > 0 && !x.anchored_from)
        return seslm_fail(SESLM_ERR_FORMAT, "no audit row is anchored with this key (id %s)%s", x.kid,
                          x.n_mac ? ": the log is anchored with another key" : ": the log was never anchored");
    if (!key && x.n_mac)
        return seslm_fail(SESLM_ERR_ARG, "the audit log is anchored with an HMAC key (id %.16s): give the key "
                                         "($SESLM_AUDIT_KEY_FILE) to verify it; the chain alone proves nothing "
                                         "against someone who can write the database", x.head_mac);
    // the tail: the database must still hold the head recorded outside it (checked after the chain and the
    // row HMACs, so a rewritten row is named as such first)
    if (key && head_path && (s = reg_read(r, verify_head_body, &x)) != SESLM_OK) return s;
    r->anchored_from = x.anchored_from;
    r->audit_head_seq = x.head_seq;
    if (head) snprintf(head, 65, "%s", x.prev);
    // a log verified under the key with no head file yet (anchored before heads were kept, or the file was
    // lost): record the head now, so a tail removed from here on is caught
    if (key && head_path && !x.head_seq && x.n > 0) {
        s = reg_head_store(head_path, key, x.genesis, x.expect_seq - 1, x.prev);
        if (s != SESLM_OK) return s;
        r->audit_head_seq = x.expect_seq - 1;
        r->audit_head_recorded = 1;
    }
    return SESLM_OK;
}

seslm_status seslm_registry_audit_verify(seslm_registry *r, long long *n_rows, char *head) {
    return verify_with(r, r->have_audit_key ? r->audit_key : NULL, r->have_audit_key ? r->audit_head_path : NULL, n_rows,
                       head);
}

seslm_status seslm_registry_audit_rotate(seslm_registry *r, const unsigned char previous[32], const char *previous_head_file,
                                         const char *actor, const char *reason) {
    if (!r->have_audit_key) return seslm_fail(SESLM_ERR_ARG, "audit key rotation: no new key");
    long long n = 0;
    // the whole log under the previous key, its head outside the database included
    seslm_status s = verify_with(r, previous, previous ? previous_head_file : NULL, &n, NULL);
    if (s != SESLM_OK) {
        char why[600];
        snprintf(why, sizeof why, "%s", seslm_last_error());
        return seslm_fail(s, "audit key rotation: the log does not verify under the previous key: %s", why);
    }
    char kid[17], detail[128], old[17] = "";
    seslm_registry_audit_key_id(r->audit_key, kid);
    if (previous) seslm_registry_audit_key_id(previous, old);
    snprintf(detail, sizeof detail, "{\"key_id\":\"%s\",\"previous_key_id\":%s%s%s,\"rows_verified\":%lld}", kid,
             previous ? "\"" : "", previous ? old : "null", previous ? "\"" : "", n);
    r->audit_rotating = 1;
    s = seslm_registry_audit(r, actor, "audit-key", NULL, reason, detail);
    r->audit_rotating = 0;
    return s;
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
