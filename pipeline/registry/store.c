/* store.c — the content-addressed local artifact store (store.h): hash a model directory, and copy it
 * into <root>/sha256/<hash>/ through a temporary directory, fsync and rename. */
#include "store.h"

#include "model_verify.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILES 4096
#define MAX_DEPTH 8

static seslm_status mkdirs(const char *path, mode_t mode) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, mode) != 0 && errno != EEXIST)
                return seslm_fail(SESLM_ERR_IO, "store: cannot create %s: %s", buf, strerror(errno));
            *p = '/';
        }
    if (mkdir(buf, mode) != 0 && errno != EEXIST) return seslm_fail(SESLM_ERR_IO, "store: cannot create %s: %s", buf, strerror(errno));
    return SESLM_OK;
}

static seslm_status fsync_path(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return seslm_fail(SESLM_ERR_IO, "store: cannot open %s: %s", path, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    return rc == 0 ? SESLM_OK : seslm_fail(SESLM_ERR_IO, "store: fsync %s: %s", path, strerror(errno));
}

/* Hashes every file (and copies it under dst when dst is not NULL). */
static seslm_status hash_copy(const char *src, const char *dst, char sha[65], long long *total) {
    struct {
        char **rel;
        int n;
    } l = {NULL, 0};
    seslm_status s = util_dir_files(src, MAX_FILES, MAX_DEPTH, &l.rel, &l.n); // as model_dir_hash lists them
    if (s != SESLM_OK) {
        char why[1024]; // (seslm_fail writes the buffer seslm_last_error reads)
        snprintf(why, sizeof why, "%s", seslm_last_error());
        return seslm_fail(s, "store: %s", why);
    }
    if (l.n == 0) s = seslm_fail(SESLM_ERR_FORMAT, "store: %s holds no files", src);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char *buf = malloc(1 << 20);
    if (!md || !buf || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) s = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    long long sum = 0;
    for (int i = 0; s == SESLM_OK && i < l.n; i++) {
        char in[8400], out[8400];
        snprintf(in, sizeof in, "%s/%s", src, l.rel[i]);
        int fi = open(in, O_RDONLY), fo = -1;
        struct stat st;
        if (fi < 0 || fstat(fi, &st) != 0) {
            s = seslm_fail(SESLM_ERR_IO, "store: cannot read %s: %s", in, strerror(errno));
            if (fi >= 0) close(fi);
            break;
        }
        char hdr[64];
        int hn = snprintf(hdr, sizeof hdr, "%lld", (long long)st.st_size);
        EVP_DigestUpdate(md, l.rel[i], strlen(l.rel[i]) + 1);
        EVP_DigestUpdate(md, hdr, (size_t)hn + 1);
        if (dst) {
            snprintf(out, sizeof out, "%s/%s", dst, l.rel[i]);
            char *slash = strrchr(out, '/');
            *slash = 0;
            s = mkdirs(out, 0755);
            *slash = '/';
            if (s == SESLM_OK && (fo = open(out, O_WRONLY | O_CREAT | O_EXCL, 0644)) < 0)
                s = seslm_fail(SESLM_ERR_IO, "store: cannot create %s: %s", out, strerror(errno));
        }
        long long got = 0;
        while (s == SESLM_OK) {
            ssize_t n = read(fi, buf, 1 << 20);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) s = seslm_fail(SESLM_ERR_IO, "store: reading %s: %s", in, strerror(errno));
            if (n <= 0) break;
            EVP_DigestUpdate(md, buf, (size_t)n);
            got += n;
            for (ssize_t off = 0; fo >= 0 && off < n && s == SESLM_OK;) {
                ssize_t w = write(fo, buf + off, (size_t)(n - off));
                if (w < 0 && errno == EINTR) continue;
                if (w <= 0) s = seslm_fail(SESLM_ERR_IO, "store: writing %s: %s", out, strerror(errno));
                else off += w;
            }
        }
        if (s == SESLM_OK && got != (long long)st.st_size) s = seslm_fail(SESLM_ERR_IO, "store: %s changed while being read", in);
        if (fo >= 0) {
            if (s == SESLM_OK && fsync(fo) != 0) s = seslm_fail(SESLM_ERR_IO, "store: fsync %s: %s", out, strerror(errno));
            if (close(fo) != 0 && s == SESLM_OK) s = seslm_fail(SESLM_ERR_IO, "store: close %s: %s", out, strerror(errno));
        }
        close(fi);
        sum += got;
    }
    unsigned char h[32];
    unsigned int hl = 0;
    if (s == SESLM_OK && !EVP_DigestFinal_ex(md, h, &hl)) s = seslm_fail(SESLM_ERR_INTERNAL, "sha256 failed");
    if (s == SESLM_OK) {
        for (int i = 0; i < 32; i++) snprintf(sha + 2 * i, 3, "%02x", h[i]);
        if (total) *total = sum;
    }
    // directories of the copy are synced deepest first, so every entry is durable before the rename
    for (int i = l.n - 1; s == SESLM_OK && dst && i >= 0; i--) {
        char *slash = strrchr(l.rel[i], '/');
        if (!slash) continue;
        char d[8400];
        snprintf(d, sizeof d, "%s/%.*s", dst, (int)(slash - l.rel[i]), l.rel[i]);
        s = fsync_path(d);
    }
    if (s == SESLM_OK && dst) s = fsync_path(dst);
    free(buf);
    EVP_MD_CTX_free(md);
    util_dir_files_free(l.rel, l.n);
    return s;
}

seslm_status seslm_store_hash_dir(const char *dir, char sha256[65], long long *bytes) {
    return model_dir_hash(dir, NULL, 0, sha256, bytes);
}

seslm_status seslm_store_put(const char *root, const char *model_dir, char sha256[65], char *path, size_t cap,
                             int *existed) {
    *existed = 0;
    struct stat st;
    if (stat(model_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return seslm_fail(SESLM_ERR_IO, "store: %s is not a directory", model_dir);
    char base[4096], tmp[4200], final[4200], first[65];
    snprintf(base, sizeof base, "%s/sha256", root);
    // hash in place first: a model already stored is not copied again
    // (the same hash the loader checks a stored directory against, model_verify.h; the copy below must agree)
    seslm_status s = model_dir_hash(model_dir, NULL, 0, first, NULL);
    if (s != SESLM_OK) return s;
    snprintf(final, sizeof final, "%s/%s", base, first);
    if (stat(final, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(sha256, 65, "%s", first);
        snprintf(path, cap, "%s", final);
        *existed = 1;
        return SESLM_OK;
    }
    if ((s = mkdirs(base, 0755)) != SESLM_OK) return s;
    snprintf(tmp, sizeof tmp, "%s/.tmp.XXXXXX", base);
    if (!mkdtemp(tmp)) return seslm_fail(SESLM_ERR_IO, "store: cannot create a temporary directory in %s: %s", base, strerror(errno));
    chmod(tmp, 0755);
    s = hash_copy(model_dir, tmp, sha256, NULL);
    if (s == SESLM_OK && strcmp(sha256, first) != 0)
        s = seslm_fail(SESLM_ERR_IO, "store: %s changed while it was being stored; try again", model_dir);
    if (s != SESLM_OK) {
        util_rmtree(tmp);
        return s;
    }
    snprintf(final, sizeof final, "%s/%s", base, sha256);
    if (rename(tmp, final) != 0) {
        int e = errno;
        util_rmtree(tmp);
        // already stored (by an earlier or a concurrent put): same hash, same content
        if ((e == ENOTEMPTY || e == EEXIST) && stat(final, &st) == 0 && S_ISDIR(st.st_mode)) *existed = 1;
        else return seslm_fail(SESLM_ERR_IO, "store: cannot rename %s to %s: %s", tmp, final, strerror(e));
    } else if ((s = fsync_path(base)) != SESLM_OK) {
        return s;
    }
    snprintf(path, cap, "%s", final);
    return SESLM_OK;
}
