/* registry_audit_head.c — the audit log's head kept outside the database.
 *
 * The HMAC on each row (registry_audit.c) stops a rewritten chain, but not a removed tail: delete the last
 * rows and an older anchored row becomes the head, whose HMAC is still good. So every audit write, once
 * its transaction has committed, also records the head in a file beside the audit key (a place the
 * database never reaches):
 *
 *     seslm-audit-head 1 <hash of row 1> <seq> <hash of row seq> <key id>:<HMAC(key, "seslm-audit-head:"
 *                                                                          genesis ':' seq ':' hash)>
 *
 * and verification (and every later write) requires the database to still hold that row with that hash:
 * fewer rows, another first row or another hash at that seq is a removed tail, a replaced or an emptied
 * log. The file may lag the database by the rows of a writer that crashed between its commit and the
 * file (those rows are still covered by their own HMACs); it never leads it, because it is written only
 * after the commit. Writers racing each other keep it monotonic (a lower seq never replaces a higher one
 * of the same log), so a race can only leave it behind, never ahead. */
#include "registry_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char MAGIC[] = "seslm-audit-head";

/* "<key id>:<hex HMAC>" over the head's fields (out: 16 + 1 + 64 + NUL). */
static void head_mac(const unsigned char key[32], const char *genesis, long long seq, const char *hash, char out[82]) {
    char msg[200];
    int n = snprintf(msg, sizeof msg, "%s:%s:%lld:%s", MAGIC, genesis, seq, hash);
    unsigned char md[32];
    unsigned int ml = 0;
    seslm_registry_audit_key_id(key, out);
    out[16] = ':';
    if (!HMAC(EVP_sha256(), key, 32, (const unsigned char *)msg, (size_t)n, md, &ml)) memset(md, 0, sizeof md);
    for (int i = 0; i < 32; i++) snprintf(out + 17 + 2 * i, 3, "%02x", md[i]);
}

typedef struct {
    char genesis[65], hash[65], mac[96];
    long long seq;
} audit_head;

/* Reads path into h: 1 when read, 0 when the file does not exist, -1 (error set) when unreadable or damaged. */
static int head_read(const char *path, audit_head *h) {
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT) return 0;
        seslm_fail(SESLM_ERR_IO, "the audit head file %s cannot be read: %s", path, strerror(errno));
        return -1;
    }
    char line[512] = "", magic[32] = "";
    int ver = 0;
    int got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    memset(h, 0, sizeof *h);
    if (!got || sscanf(line, "%31s %d %64s %lld %64s %95s", magic, &ver, h->genesis, &h->seq, h->hash, h->mac) != 6 ||
        strcmp(magic, MAGIC) != 0 || ver != 1 || strlen(h->genesis) != 64 || strlen(h->hash) != 64 || h->seq < 1 ||
        strlen(h->mac) != 81) {
        seslm_fail(SESLM_ERR_FORMAT, "the audit head file %s is damaged (expected one line \"%s 1 GENESIS SEQ HASH MAC\")",
                   path, MAGIC);
        return -1;
    }
    return 1;
}

seslm_status reg_head_check(seslm_registry *r, const unsigned char key[32], const char *path, long long *head_seq) {
    *head_seq = 0;
    audit_head h;
    int rc = head_read(path, &h);
    if (rc <= 0) return rc == 0 ? SESLM_OK : SESLM_ERR_FORMAT;
    char kid[17], want[82];
    seslm_registry_audit_key_id(key, kid);
    if (strncmp(h.mac, kid, 16) != 0)
        return seslm_fail(SESLM_ERR_FORMAT, "the audit head file %s was written with key id %.16s, not this key's %s "
                                            "(each key keeps its own head file; $SESLM_AUDIT_HEAD_FILE names it)",
                          path, h.mac, kid);
    head_mac(key, h.genesis, h.seq, h.hash, want);
    if (CRYPTO_memcmp(want, h.mac, sizeof want) != 0)
        return seslm_fail(SESLM_ERR_FORMAT, "the audit head file %s: its HMAC does not match (the file was edited)", path);
    char first[80], last[32], at[80];
    int f1 = 0, fl = 0, fa = 0;
    char seq_s[32];
    snprintf(seq_s, sizeof seq_s, "%lld", h.seq);
    const char *p[] = {seq_s};
    seslm_status s = reg_scalar(r, "SELECT hash FROM audit_log WHERE seq = 1", 0, NULL, first, sizeof first, &f1);
    if (s == SESLM_OK) s = reg_scalar(r, "SELECT MAX(seq) FROM audit_log", 0, NULL, last, sizeof last, &fl);
    if (s == SESLM_OK) s = reg_scalar(r, "SELECT hash FROM audit_log WHERE seq = $1", 1, p, at, sizeof at, &fa);
    if (s != SESLM_OK) return s;
    if (!fl)
        return seslm_fail(SESLM_ERR_FORMAT, "the audit log is empty, but its head kept outside the database (%s) is row %lld: "
                                            "the log was deleted (or that file belongs to another registry: give each "
                                            "registry its own $SESLM_AUDIT_HEAD_FILE)", path, h.seq);
    if (!f1 || strcmp(first, h.genesis) != 0)
        return seslm_fail(SESLM_ERR_FORMAT, "the audit log's first row is not the one its head kept outside the database "
                                            "(%s) descends from: the log was replaced (or that file belongs to another "
                                            "registry: give each registry its own $SESLM_AUDIT_HEAD_FILE)", path);
    long long n = atoll(last);
    if (n < h.seq)
        return seslm_fail(SESLM_ERR_FORMAT, "the audit log ends at row %lld, but its head kept outside the database (%s) is "
                                            "row %lld: rows %lld..%lld were removed from the end", n, path, h.seq, n + 1, h.seq);
    if (!fa || strcmp(at, h.hash) != 0)
        return seslm_fail(SESLM_ERR_FORMAT, "audit row %lld is not the head kept outside the database (%s): the log was "
                                            "rewritten from there", h.seq, path);
    *head_seq = h.seq;
    return SESLM_OK;
}

seslm_status reg_head_writable(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    if (access(dir, W_OK | X_OK) != 0)
        return seslm_fail(SESLM_ERR_IO, "the audit head file %s cannot be written (directory %s: %s): it is kept beside "
                                        "the audit key unless $SESLM_AUDIT_HEAD_FILE names another place (docs/security.md)",
                          path, dir, strerror(errno));
    return SESLM_OK;
}

seslm_status reg_head_store(const char *path, const unsigned char key[32], const char *genesis, long long seq,
                            const char *hash) {
    audit_head old;
    if (head_read(path, &old) == 1 && strcmp(old.genesis, genesis) == 0 && old.seq >= seq)
        return SESLM_OK; // a racing writer already recorded a later head of this log
    char line[400], mac[82], tmp[4200];
    head_mac(key, genesis, seq, hash, mac);
    int n = snprintf(line, sizeof line, "%s 1 %s %lld %s %s\n", MAGIC, genesis, seq, hash, mac);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return seslm_fail(SESLM_ERR_IO, "cannot write the audit head file %s: %s", tmp, strerror(errno));
    int ok = write(fd, line, (size_t)n) == n && fsync(fd) == 0;
    int err = errno;
    ok = close(fd) == 0 && ok;
    if (ok && rename(tmp, path) != 0) {
        ok = 0;
        err = errno;
    }
    if (!ok) {
        unlink(tmp);
        return seslm_fail(SESLM_ERR_IO, "cannot write the audit head file %s: %s", path, strerror(err));
    }
    // the rename itself must survive a crash: sync the directory (best effort; some file systems refuse)
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return SESLM_OK;
}
