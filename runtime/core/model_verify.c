/* model_verify.c — content hash, manifest and load-time check of a model directory (model_verify.h). */
#include "model_verify.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILES 4096
#define MAX_DEPTH 8

typedef struct {
    char **rel;
    int n;
} file_list;

static void list_free(file_list *l) {
    util_dir_files_free(l->rel, l->n);
    l->rel = NULL;
    l->n = 0;
}

/* The sorted list of dir's files (util_dir_files: the registry's store lists them the same way), less the
 * excluded relative paths. */
static seslm_status list_files(const char *dir, const char *const *ex, int n_ex, file_list *l) {
    seslm_status s = util_dir_files(dir, MAX_FILES, MAX_DEPTH, &l->rel, &l->n);
    if (s != SESLM_OK) return s;
    int k = 0;
    for (int i = 0; i < l->n; i++) {
        int drop = 0;
        for (int j = 0; j < n_ex && !drop; j++) drop = strcmp(l->rel[i], ex[j]) == 0;
        if (drop) free(l->rel[i]);
        else l->rel[k++] = l->rel[i];
    }
    l->n = k;
    return SESLM_OK;
}

/* Streams one file into the content digest `all` (path NUL size NUL bytes) and, when one is given, its own
 * digest into one[65]. */
static seslm_status hash_file(const char *dir, const char *rel, EVP_MD_CTX *all, unsigned char *buf, size_t cap,
                              char one[65], long long *bytes) {
    char path[PATH_MAX + 2048];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        seslm_status s = seslm_fail(SESLM_ERR_IO, "cannot read %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return s;
    }
    EVP_MD_CTX *f = one ? EVP_MD_CTX_new() : NULL;
    seslm_status s = SESLM_OK;
    if (one && (!f || !EVP_DigestInit_ex(f, EVP_sha256(), NULL))) s = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    if (all && s == SESLM_OK) {
        char hdr[32];
        int hn = snprintf(hdr, sizeof hdr, "%lld", (long long)st.st_size);
        EVP_DigestUpdate(all, rel, strlen(rel) + 1);
        EVP_DigestUpdate(all, hdr, (size_t)hn + 1);
    }
    long long got = 0;
    while (s == SESLM_OK) {
        ssize_t n = read(fd, buf, cap);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) s = seslm_fail(SESLM_ERR_IO, "reading %s: %s", path, strerror(errno));
        if (n <= 0) break;
        if (all) EVP_DigestUpdate(all, buf, (size_t)n);
        if (f) EVP_DigestUpdate(f, buf, (size_t)n);
        got += n;
    }
    close(fd);
    if (s == SESLM_OK && got != (long long)st.st_size) s = seslm_fail(SESLM_ERR_IO, "%s changed while being read", path);
    if (s == SESLM_OK && f) {
        unsigned char md[32];
        unsigned int ml = 0;
        if (!EVP_DigestFinal_ex(f, md, &ml)) s = seslm_fail(SESLM_ERR_INTERNAL, "sha256 failed");
        for (int i = 0; s == SESLM_OK && i < 32; i++) snprintf(one + 2 * i, 3, "%02x", md[i]);
    }
    EVP_MD_CTX_free(f);
    if (bytes) *bytes += got;
    return s;
}

static void hex32(const unsigned char *md, char out[65]) {
    for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

seslm_status model_dir_hash(const char *dir, const char *const *exclude, int n_exclude, char sha256[65],
                            long long *bytes) {
    file_list l = {NULL, 0};
    seslm_status s = list_files(dir, exclude, n_exclude, &l);
    if (s != SESLM_OK) return s;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char *buf = malloc(1 << 20);
    if (!md || !buf || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) s = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    long long sum = 0;
    for (int i = 0; s == SESLM_OK && i < l.n; i++) s = hash_file(dir, l.rel[i], md, buf, 1 << 20, NULL, &sum);
    unsigned char h[32];
    unsigned int hl = 0;
    if (s == SESLM_OK && !EVP_DigestFinal_ex(md, h, &hl)) s = seslm_fail(SESLM_ERR_INTERNAL, "sha256 failed");
    if (s == SESLM_OK) {
        hex32(h, sha256);
        if (bytes) *bytes = sum;
    }
    free(buf);
    EVP_MD_CTX_free(md);
    list_free(&l);
    return s;
}

// ---- manifest -------------------------------------------------------------------------------------

static int name_ok(const char *rel) { return !strpbrk(rel, "\n\r\\"); } // sha256sum would escape these

seslm_status model_manifest_write(const char *dir) {
    static const char *const ex[] = {SESLM_MANIFEST_NAME};
    file_list l = {NULL, 0};
    seslm_status s = list_files(dir, ex, 1, &l);
    if (s != SESLM_OK) return s;
    unsigned char *buf = malloc(1 << 20);
    size_t cap = (size_t)l.n * (64 + 2 + 2048 + 1) + 1, n = 0;
    char *txt = buf ? malloc(cap) : NULL;
    if (!txt) s = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    for (int i = 0; s == SESLM_OK && i < l.n; i++) {
        char one[65];
        if (!name_ok(l.rel[i])) s = seslm_fail(SESLM_ERR_FORMAT, "%s/%s: a file name with a newline or backslash", dir, l.rel[i]);
        if (s == SESLM_OK) s = hash_file(dir, l.rel[i], NULL, buf, 1 << 20, one, NULL);
        if (s == SESLM_OK) n += (size_t)snprintf(txt + n, cap - n, "%s  %s\n", one, l.rel[i]);
    }
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", dir, SESLM_MANIFEST_NAME);
    if (s == SESLM_OK) s = util_write_file_atomic(path, txt, n);
    free(txt);
    free(buf);
    list_free(&l);
    return s;
}

static seslm_status verify_manifest(const char *dir, const char *path) {
    char *txt = NULL;
    size_t len = 0;
    seslm_status s = util_read_file(path, &txt, &len, (size_t)MAX_FILES * 2200, NULL);
    if (s != SESLM_OK) return s;
    static const char *const ex[] = {SESLM_MANIFEST_NAME};
    file_list l = {NULL, 0};
    s = list_files(dir, ex, 1, &l);
    unsigned char *buf = s == SESLM_OK ? malloc(1 << 20) : NULL;
    if (s == SESLM_OK && !buf) s = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    // lines are in file order, so one pass over both lists matches them
    char *p = txt, *end = txt + len;
    int i = 0, line = 0;
    while (s == SESLM_OK && p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        line++;
        if (!nl) {
            s = seslm_fail(SESLM_ERR_FORMAT, "%s: line %d is not terminated", path, line);
            break;
        }
        *nl = 0;
        int hex = (int)strspn(p, "0123456789abcdef");
        if (hex != 64 || p[64] != ' ' || p[65] != ' ' || !p[66]) {
            s = seslm_fail(SESLM_ERR_FORMAT, "%s: line %d is not \"<sha256>  <file>\"", path, line);
            break;
        }
        const char *rel = p + 66;
        if (i >= l.n || strcmp(l.rel[i], rel) != 0) {
            if (i < l.n && strcmp(l.rel[i], rel) < 0)
                s = seslm_fail(SESLM_ERR_FORMAT, "%s/%s is not listed in %s: the directory was changed after it was written",
                               dir, l.rel[i], SESLM_MANIFEST_NAME);
            else
                s = seslm_fail(SESLM_ERR_FORMAT, "%s: lists %s, which is missing (or the list is out of order)", path, rel);
            break;
        }
        char one[65];
        s = hash_file(dir, rel, NULL, buf, 1 << 20, one, NULL);
        if (s == SESLM_OK && memcmp(one, p, 64) != 0)
            s = seslm_fail(SESLM_ERR_FORMAT, "%s/%s: its SHA-256 is %s, %s records %.64s: modified or corrupted; not loaded",
                           dir, rel, one, SESLM_MANIFEST_NAME, p);
        i++;
        p = nl + 1;
    }
    if (s == SESLM_OK && i < l.n)
        s = seslm_fail(SESLM_ERR_FORMAT, "%s/%s is not listed in %s: the directory was changed after it was written", dir,
                       l.rel[i], SESLM_MANIFEST_NAME);
    free(buf);
    free(txt);
    list_free(&l);
    return s;
}

// ---- the load-time check --------------------------------------------------------------------------

/* The hash a directory of the content-addressed store is named by: ".../sha256/<64 lowercase hex>". */
static int store_name(const char *real, char sha[65]) {
    const char *base = strrchr(real, '/');
    if (!base || base == real) return 0;
    if (strlen(base + 1) != 64 || strspn(base + 1, "0123456789abcdef") != 64) return 0;
    if ((size_t)(base - real) < 7 || strncmp(base - 7, "/sha256", 7) != 0) return 0;
    memcpy(sha, base + 1, 65);
    return 1;
}

seslm_status model_verify_dir(const char *dir, const char **how) {
    if (how) *how = "none";
    char real[PATH_MAX], want[65], got[65], man[PATH_MAX + 32];
    if (realpath(dir, real) && store_name(real, want)) {
        if (how) *how = "store";
        seslm_status s = model_dir_hash(real, NULL, 0, got, NULL);
        if (s != SESLM_OK) return s;
        if (strcmp(got, want) != 0)
            return seslm_fail(SESLM_ERR_FORMAT,
                              "%s: content hash %s differs from the registered hash %s it is stored under: the stored "
                              "model was modified or corrupted; not loaded",
                              dir, got, want);
        return SESLM_OK;
    }
    snprintf(man, sizeof man, "%s/%s", dir, SESLM_MANIFEST_NAME);
    struct stat st;
    if (stat(man, &st) != 0) return SESLM_OK;
    if (how) *how = "manifest";
    return verify_manifest(dir, man);
}
