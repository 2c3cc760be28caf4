/* util.c — see util.h. */
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

seslm_status util_fopen_read(const char *path, int allow_pipe, FILE **out) {
    *out = NULL;
    const int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return seslm_fail(SESLM_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    const int pipe_ok = allow_pipe && fstat(fd, &sb) == 0 && S_ISFIFO(sb.st_mode);
    if (pipe_ok) { // reads wait for the writer's data again (a writer that is gone: end of file at once)
        const int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
            const int e = errno;
            close(fd);
            return seslm_fail(SESLM_ERR_IO, "%s: %s", path, strerror(e));
        }
    } else if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return seslm_fail(SESLM_ERR_IO, "%s: not a regular file", path);
    }
    if (!(*out = fdopen(fd, "rb"))) {
        const int e = errno;
        close(fd);
        return seslm_fail(SESLM_ERR_IO, "cannot open %s: %s", path, strerror(e));
    }
    return SESLM_OK;
}

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

int util_write_all(int fd, const void *p, size_t n) {
    const char *b = p;
    while (n > 0) {
        const ssize_t w = write(fd, b, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            if (w == 0) errno = EIO;
            return 0;
        }
        b += w;
        n -= (size_t)w;
    }
    return 1;
}

seslm_status util_write_file_atomic(const char *path, const void *data, size_t n) {
    char tmp[4200], dir[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp)
        return seslm_fail(SESLM_ERR_ARG, "path too long: %s", path);
    int fd = mkstemp(tmp);
    if (fd < 0) return seslm_fail(SESLM_ERR_IO, "cannot create a temporary file beside %s: %s", path, strerror(errno));
    fchmod(fd, 0644);
    int ok = 1, e = 0;
    if (!util_write_all(fd, data, n)) ok = 0, e = errno;
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

// ---- the files of a directory tree ----------------------------------------------------------------

typedef struct {
    char **rel;
    int n, max_files, max_depth;
} dir_list;

static seslm_status dir_list_add(dir_list *l, const char *rel) {
    if (l->n >= l->max_files) return seslm_fail(SESLM_ERR_LIMIT, "more than %d files in the directory", l->max_files);
    char **r = realloc(l->rel, (size_t)(l->n + 1) * sizeof *r);
    if (!r) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    l->rel = r;
    if (!(l->rel[l->n] = strdup(rel))) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    l->n++;
    return SESLM_OK;
}

static seslm_status dir_walk(const char *root, const char *rel, int depth, dir_list *l) {
    char dpath[4096];
    snprintf(dpath, sizeof dpath, "%s%s%s", root, rel[0] ? "/" : "", rel);
    if (depth > l->max_depth) return seslm_fail(SESLM_ERR_LIMIT, "%s is nested more than %d levels", dpath, l->max_depth);
    DIR *d = opendir(dpath);
    if (!d) return seslm_fail(SESLM_ERR_IO, "cannot read directory %s: %s", dpath, strerror(errno));
    seslm_status s = SESLM_OK;
    struct dirent *e;
    while (s == SESLM_OK && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char r2[2048], full[4096 + 2048];
        if ((size_t)snprintf(r2, sizeof r2, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name) >= sizeof r2) {
            s = seslm_fail(SESLM_ERR_LIMIT, "path too long under %s", dpath);
            break;
        }
        snprintf(full, sizeof full, "%s/%s", root, r2);
        struct stat st;
        if (stat(full, &st) != 0) s = seslm_fail(SESLM_ERR_IO, "cannot stat %s: %s", full, strerror(errno));
        else if (S_ISDIR(st.st_mode)) s = dir_walk(root, r2, depth + 1, l);
        else if (S_ISREG(st.st_mode)) s = dir_list_add(l, r2);
        else s = seslm_fail(SESLM_ERR_FORMAT, "%s is neither a file nor a directory", full);
    }
    closedir(d);
    return s;
}

static int dir_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

seslm_status util_dir_files(const char *root, int max_files, int max_depth, char ***rel, int *n) {
    dir_list l = {NULL, 0, max_files, max_depth};
    seslm_status s = dir_walk(root, "", 0, &l);
    if (s != SESLM_OK) {
        util_dir_files_free(l.rel, l.n);
        *rel = NULL, *n = 0;
        return s;
    }
    if (l.n > 1) qsort(l.rel, (size_t)l.n, sizeof *l.rel, dir_cmp);
    *rel = l.rel, *n = l.n;
    return SESLM_OK;
}

void util_dir_files_free(char **rel, int n) {
    for (int i = 0; i < n; i++) free(rel[i]);
    free(rel);
}

/* Bytes of the well-formed UTF-8 sequence at s[i] (1..4), or 0 when the bytes there are not one (RFC 3629
 * table: no overlong forms, no surrogates, nothing above U+10FFFF, not cut short by n). */
static size_t utf8_seq_len(const unsigned char *s, size_t i, size_t n) {
    unsigned c = s[i];
    size_t k;
    unsigned lo = 0x80, hi = 0xbf; // the allowed range of the second byte
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        k = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
        k = 2;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f; // no UTF-16 surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
        k = 3;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f; // nothing above U+10FFFF
    } else {
        return 0;
    }
    if (i + k >= n) return 0; // cut short
    if (s[i + 1] < lo || s[i + 1] > hi) return 0;
    for (size_t j = 2; j <= k; j++)
        if ((s[i + j] & 0xc0) != 0x80) return 0;
    return k + 1;
}

/* Bytes at s[i] that begin a well-formed sequence without completing it (1 for a byte that begins none). */
static size_t utf8_valid_prefix(const unsigned char *s, size_t i, size_t n) {
    unsigned c = s[i];
    size_t k = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : 0;
    unsigned lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80, hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
    size_t j = 1;
    if (k && i + 1 < n && s[i + 1] >= lo && s[i + 1] <= hi) {
        j = 2;
        while (j <= k && i + j < n && (s[i + j] & 0xc0) == 0x80) j++;
    }
    return j;
}

int util_utf8_valid(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq_len(s, i, n);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

size_t util_utf8_repair(const char *str, size_t n, char *out) {
    const unsigned char *s = (const unsigned char *)str;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq_len(s, i, n);
        if (k) {
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
            continue;
        }
        // one U+FFFD per maximal subpart (Unicode's recommended practice, as Python's errors="replace"): a lead
        // byte with the bytes that still continue it validly (a cut character), else the one byte. Text repaired
        // in pieces cut where no character is unfinished (generation's stream) reads the same as repaired whole.
        i += utf8_valid_prefix(s, i, n);
        out[o++] = (char)0xef;
        out[o++] = (char)0xbf;
        out[o++] = (char)0xbd;
    }
    out[o] = 0;
    return o;
}

seslm_status util_secret_file_check(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return seslm_fail(SESLM_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return seslm_fail(SESLM_ERR_ARG, "%s: a secret must be a regular file", path);
    if ((st.st_mode & 077) == 0) return SESLM_OK;
    const char *o = getenv("SESLM_INSECURE_SECRET_FILES");
    if (o && !strcmp(o, "1")) return SESLM_OK;
    return seslm_fail(SESLM_ERR_ARG,
                      "%s holds a secret but has mode %04o (group or others may read or change it): run chmod 600 on it "
                      "(or set SESLM_INSECURE_SECRET_FILES=1 to accept it anyway)",
                      path, (unsigned)(st.st_mode & 07777));
}

seslm_status util_read_secret_line(const char *path, const char *what, char *buf, size_t cap) {
    buf[0] = 0;
    seslm_status s = util_secret_file_check(path);
    char *txt = NULL;
    size_t n = 0;
    if (s == SESLM_OK) s = util_read_file(path, &txt, &n, 4096, NULL);
    if (s != SESLM_OK) return s;
    n = strcspn(txt, "\r\n");
    while (n && txt[n - 1] == ' ') n--;
    if (n == 0 || n >= cap) s = seslm_fail(SESLM_ERR_FORMAT, "%s: the %s is %s", path, what, n ? "too long" : "empty");
    else {
        memcpy(buf, txt, n);
        buf[n] = 0;
    }
    memset(txt, 0, strlen(txt));
    free(txt);
    return s;
}

double util_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// ---- strict JSON -----------------------------------------------------------------------------------

static int hex4(const char *p, const char *end, unsigned *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        if (p + i >= end) return 0;
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return 0;
        *v = *v << 4 | (unsigned)d;
    }
    return 1;
}

int util_json_strict(const char *body, size_t len, int check_utf8, char *why, size_t cap) {
    if (check_utf8 && !util_utf8_valid(body, len)) {
        snprintf(why, cap, "the body is not valid UTF-8 (RFC 8259 requires it)");
        return -1;
    }
    const char *p = body, *end = body + len;
    int in_str = 0;
    for (; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (!in_str) {
            if (c == '"') in_str = 1;
            else if (c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                snprintf(why, cap, "invalid JSON: control byte 0x%02x at byte %zu (only space, tab, CR and LF may "
                                   "stand between tokens)", c, (size_t)(p - body));
                return -1;
            }
            continue;
        }
        if (c == '"') {
            in_str = 0;
        } else if (c < 0x20) {
            snprintf(why, cap, "invalid JSON: raw control byte 0x%02x inside a string at byte %zu (escape it)", c,
                     (size_t)(p - body));
            return -1;
        } else if (c == '\\' && p + 1 < end && p[1] == 'u') {
            unsigned v = 0, w = 0;
            if (!hex4(p + 2, end, &v)) continue; // the parser reports the bad escape
            if (v == 0) {
                snprintf(why, cap, "\\u0000 (NUL) at byte %zu: NUL is not accepted in strings", (size_t)(p - body));
                return -1;
            }
            if (v >= 0xdc00 && v <= 0xdfff) {
                snprintf(why, cap, "a lone UTF-16 low surrogate \\u%04x at byte %zu", v, (size_t)(p - body));
                return -1;
            }
            if (v >= 0xd800 && v <= 0xdbff) {
                if (!(p + 7 < end && p[6] == '\\' && p[7] == 'u' && hex4(p + 8, end, &w) && w >= 0xdc00 && w <= 0xdfff)) {
                    snprintf(why, cap, "a lone UTF-16 high surrogate \\u%04x at byte %zu", v, (size_t)(p - body));
                    return -1;
                }
                p += 6; // the pair's second half
            }
            p += 5;
        } else if (c == '\\') {
            p++; // the escaped character (a quote or a backslash must not end or start anything)
        }
    }
    return 0;
}
