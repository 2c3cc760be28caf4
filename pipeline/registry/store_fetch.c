/* store_fetch.c — a stored model back into a local directory (store_fetch.h), hash-verified. */
#define _GNU_SOURCE
#include "store_fetch.h"

#include "store.h"
#include "store_s3.h"

#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static seslm_status fsync_path(const char *path, int flags) {
    int fd = open(path, flags);
    if (fd < 0) return seslm_fail(SESLM_ERR_IO, "fetch: cannot open %s: %s", path, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    return rc == 0 ? SESLM_OK : seslm_fail(SESLM_ERR_IO, "fetch: fsync %s: %s", path, strerror(errno));
}

static seslm_status copy_file(const char *src, const char *dst) {
    int fi = open(src, O_RDONLY), fo = fi < 0 ? -1 : open(dst, O_WRONLY | O_CREAT | O_EXCL, 0644);
    seslm_status s = SESLM_OK;
    if (fi < 0 || fo < 0) s = seslm_fail(SESLM_ERR_IO, "fetch: cannot copy %s: %s", src, strerror(errno));
    char buf[1 << 16];
    while (s == SESLM_OK) {
        ssize_t n = read(fi, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) s = seslm_fail(SESLM_ERR_IO, "fetch: reading %s: %s", src, strerror(errno));
        if (n <= 0) break;
        for (ssize_t off = 0; off < n && s == SESLM_OK;) {
            ssize_t w = write(fo, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) s = seslm_fail(SESLM_ERR_IO, "fetch: writing %s: %s", dst, strerror(errno));
            else off += w;
        }
    }
    if (s == SESLM_OK && fsync(fo) != 0) s = seslm_fail(SESLM_ERR_IO, "fetch: fsync %s: %s", dst, strerror(errno));
    if (fi >= 0) close(fi);
    if (fo >= 0 && close(fo) != 0 && s == SESLM_OK) s = seslm_fail(SESLM_ERR_IO, "fetch: close %s: %s", dst, strerror(errno));
    return s;
}

/* Copies the tree src into the existing directory dst (symbolic links followed, as the hash does). */
static seslm_status copy_tree(const char *src, const char *dst, int depth) {
    if (depth > 8) return seslm_fail(SESLM_ERR_LIMIT, "fetch: %s is nested too deeply", src);
    DIR *d = opendir(src);
    if (!d) return seslm_fail(SESLM_ERR_IO, "fetch: cannot read %s: %s", src, strerror(errno));
    seslm_status s = SESLM_OK;
    struct dirent *e;
    while (s == SESLM_OK && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char a[PATH_MAX], b[PATH_MAX];
        if ((size_t)snprintf(a, sizeof a, "%s/%s", src, e->d_name) >= sizeof a ||
            (size_t)snprintf(b, sizeof b, "%s/%s", dst, e->d_name) >= sizeof b) {
            s = seslm_fail(SESLM_ERR_LIMIT, "fetch: path too long under %s", src);
            break;
        }
        struct stat st;
        if (stat(a, &st) != 0) s = seslm_fail(SESLM_ERR_IO, "fetch: cannot stat %s: %s", a, strerror(errno));
        else if (S_ISDIR(st.st_mode)) {
            if (mkdir(b, 0755) != 0) s = seslm_fail(SESLM_ERR_IO, "fetch: cannot create %s: %s", b, strerror(errno));
            if (s == SESLM_OK) s = copy_tree(a, b, depth + 1);
            if (s == SESLM_OK) s = fsync_path(b, O_RDONLY | O_DIRECTORY);
        } else if (S_ISREG(st.st_mode)) s = copy_file(a, b);
        else s = seslm_fail(SESLM_ERR_FORMAT, "fetch: %s is neither a file nor a directory", a);
    }
    closedir(d);
    return s;
}

static seslm_status fetch_local(const char *stored, const char *sha256, const char *out_dir) {
    struct stat st;
    if (stat(stored, &st) != 0 || !S_ISDIR(st.st_mode))
        return seslm_fail(SESLM_ERR_IO, "fetch: the stored model %s is missing", stored);
    char tmpl[PATH_MAX], parent[PATH_MAX], tmp[PATH_MAX + 32];
    snprintf(tmpl, sizeof tmpl, "%s", out_dir);
    snprintf(parent, sizeof parent, "%s", dirname(tmpl));
    snprintf(tmp, sizeof tmp, "%s/.seslm-fetch.XXXXXX", parent);
    if (!mkdtemp(tmp)) return seslm_fail(SESLM_ERR_IO, "fetch: cannot create a temporary directory in %s: %s", parent, strerror(errno));
    chmod(tmp, 0755);
    seslm_status s = copy_tree(stored, tmp, 0);
    char got[65];
    // the copy is what is checked, so a file changed in the store (or while copying) cannot slip through
    if (s == SESLM_OK && (s = seslm_store_hash_dir(tmp, got, NULL)) == SESLM_OK && strcmp(got, sha256) != 0)
        s = seslm_fail(SESLM_ERR_FORMAT, "fetch: %s hashes to %s, not %s: tampered or corrupted in the store; nothing written",
                       stored, got, sha256);
    if (s == SESLM_OK) s = fsync_path(tmp, O_RDONLY | O_DIRECTORY);
    if (s == SESLM_OK && rename(tmp, out_dir) != 0)
        s = seslm_fail(SESLM_ERR_IO, "fetch: cannot rename %s to %s: %s", tmp, out_dir, strerror(errno));
    if (s != SESLM_OK) {
        util_rmtree(tmp);
        return s;
    }
    return fsync_path(parent, O_RDONLY | O_DIRECTORY);
}

seslm_status seslm_store_fetch(const char *location, const char *sha256, const char *out_dir) {
    struct stat st;
    if (lstat(out_dir, &st) == 0) return seslm_fail(SESLM_ERR_ARG, "fetch: %s exists already (give a new directory)", out_dir);
    if (!seslm_s3_is_url(location)) return fetch_local(location, sha256, out_dir);
    char url[1024], sha[65];
    seslm_s3 s3;
    seslm_status s = seslm_s3_split_location(location, url, sizeof url, sha);
    if (s == SESLM_OK && strcmp(sha, sha256) != 0)
        s = seslm_fail(SESLM_ERR_FORMAT, "fetch: location %s does not match the recorded hash %s", location, sha256);
    if (s == SESLM_OK) s = seslm_s3_open(&s3, url);
    if (s == SESLM_OK) s = seslm_s3_get_dir(&s3, sha256, out_dir);
    return s;
}
