/* dump_identity.c — the identity of a telemetry dump (dump_identity.h). */
#include "dump_identity.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

seslm_status seslm_dump_identity_of(const char *path, const seslm_telemetry_dump *d, seslm_dump_identity *id) {
    memset(id, 0, sizeof *id);
    snprintf(id->node_id, sizeof id->node_id, "%s", d->meta.node_id ? d->meta.node_id : "");
    id->seq = d->meta.seq;
    id->window_start_ns = d->v.window_start_ns;
    FILE *f = fopen(path, "rb");
    if (!f) return seslm_fail(SESLM_ERR_IO, "%s: %s", path, strerror(errno));
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char buf[1 << 16], h[32];
    unsigned int hl = 0;
    seslm_status s = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) ? SESLM_OK : seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    for (size_t n; s == SESLM_OK && (n = fread(buf, 1, sizeof buf, f)) > 0;) EVP_DigestUpdate(md, buf, n);
    if (s == SESLM_OK && ferror(f)) s = seslm_fail(SESLM_ERR_IO, "%s: read error", path);
    if (s == SESLM_OK && !EVP_DigestFinal_ex(md, h, &hl)) s = seslm_fail(SESLM_ERR_INTERNAL, "sha256 failed");
    for (int i = 0; s == SESLM_OK && i < 32; i++) snprintf(id->file_sha256 + 2 * i, 3, "%02x", h[i]);
    EVP_MD_CTX_free(md);
    fclose(f);
    return s;
}

int seslm_dump_identity_same(const seslm_dump_identity *a, const seslm_dump_identity *b, char *why, size_t cap) {
    if (a->file_sha256[0] && strcmp(a->file_sha256, b->file_sha256) == 0) {
        snprintf(why, cap, "identical bytes (SHA-256 %.16s...)", a->file_sha256);
        return 1;
    }
    if (a->node_id[0] && strcmp(a->node_id, b->node_id) == 0 && a->seq == b->seq && a->window_start_ns == b->window_start_ns) {
        snprintf(why, cap, "same node '%s', dump sequence number %llu and window start", a->node_id,
                 (unsigned long long)a->seq);
        return 1;
    }
    return 0;
}
