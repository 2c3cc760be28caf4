/* util.c — see util.h. */
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

seslm_status util_read_file(const char *path, char **out, size_t *len, size_t max_bytes, int *missing) {
    *out = NULL;
    *len = 0;
    if (missing) *missing = 0;
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (missing) *missing = e == ENOENT;
        return seslm_fail(SESLM_ERR_IO, "%s: %s", path, strerror(e));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return seslm_fail(SESLM_ERR_IO, "%s: not a regular file", path);
    }
    if ((unsigned long long)sb.st_size > max_bytes) {
        close(fd);
        return seslm_fail(SESLM_ERR_LIMIT, "%s: %lld bytes exceeds the %zu-byte limit", path, (long long)sb.st_size,
                          max_bytes);
    }
    char *buf = malloc((size_t)sb.st_size + 1);
    if (!buf) {
        close(fd);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory reading %s", path);
    }
    size_t n = 0;
    while (n < (size_t)sb.st_size) {
        ssize_t k = read(fd, buf + n, (size_t)sb.st_size - n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        n += (size_t)k;
    }
    close(fd);
    if (n != (size_t)sb.st_size) {
        free(buf);
        return seslm_fail(SESLM_ERR_IO, "%s: short read", path);
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return SESLM_OK;
}

seslm_status util_write_file_atomic(const char *path, const void *data, size_t n) {
    char tmp[4200], dir[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp)
        return seslm_fail(SESLM_ERR_ARG, "path too long: %s", path);
    int fd = mkstemp(tmp);
    if (fd < 0) return seslm_fail(SESLM_ERR_IO, "cannot create a temporary file beside %s: %s", path, strerror(errno));
    fchmod(fd, 0644);
    const char *p = data;
    size_t left = n;
    int ok = 1, e = 0;
    while (ok && left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) ok = 0, e = errno;
        else p += w, left -= (size_t)w;
    }
    if (ok && fsync(fd) != 0) ok = 0, e = errno;
    if (close(fd) != 0 && ok) ok = 0, e = errno;
    if (ok && rename(tmp, path) != 0) ok = 0, e = errno;
    if (!ok) {
        unlink(tmp);
        return seslm_fail(SESLM_ERR_IO, "cannot write %s: %s", path, strerror(e ? e : EIO));
    }
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return SESLM_OK;
}

void util_rmtree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return;
    if (!S_ISDIR(sb.st_mode)) {
        unlink(path);
        return;
    }
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
            char child[4096];
            if (snprintf(child, sizeof child, "%s/%s", path, de->d_name) >= (int)sizeof child) continue;
            util_rmtree(child);
        }
        closedir(d);
    }
    rmdir(path);
}
