/* store_s3.c — the S3-compatible artifact store (store_s3.h): model directories as objects, signed
 * with AWS SigV4 by libcurl (CURLOPT_AWS_SIGV4), manifest written last, content hash checked on get. */
#define _GNU_SOURCE
#include "store_s3.h"

#include "store.h"

#include "util.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MANIFEST_FORMAT "seslm-s3-model-1"
#define MAX_ERR_BODY 4096
#define MAX_MANIFEST (4 << 20)

int seslm_s3_is_url(const char *url) { return url && strncmp(url, "s3://", 5) == 0; }

static void trim_slashes(char *s) {
    size_t n = strlen(s);
    while (n && s[n - 1] == '/') s[--n] = 0;
    size_t k = strspn(s, "/");
    if (k) memmove(s, s + k, strlen(s + k) + 1);
}

seslm_status seslm_s3_open(seslm_s3 *s3, const char *url) {
    memset(s3, 0, sizeof *s3);
    if (!seslm_s3_is_url(url)) return seslm_fail(SESLM_ERR_ARG, "s3: '%s' is not an s3://BUCKET/PREFIX URL", url ? url : "");
    const char *b = url + 5, *slash = strchr(b, '/');
    size_t bl = slash ? (size_t)(slash - b) : strlen(b);
    if (bl == 0 || bl >= sizeof s3->bucket) return seslm_fail(SESLM_ERR_ARG, "s3: '%s' names no bucket", url);
    memcpy(s3->bucket, b, bl);
    for (const char *p = s3->bucket; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
            return seslm_fail(SESLM_ERR_ARG, "s3: bucket name '%s' may hold only a-z, 0-9, '-' and '.'", s3->bucket);
    if (slash && snprintf(s3->prefix, sizeof s3->prefix, "%s", slash + 1) >= (int)sizeof s3->prefix)
        return seslm_fail(SESLM_ERR_ARG, "s3: prefix too long in '%s'", url);
    trim_slashes(s3->prefix);
    static const struct {
        const char *var;
        size_t off, cap;
        const char *dflt;
    } E[] = {{"SESLM_S3_ENDPOINT", offsetof(seslm_s3, endpoint), sizeof s3->endpoint, NULL},
             {"AWS_REGION", offsetof(seslm_s3, region), sizeof s3->region, "us-east-1"},
             {"AWS_ACCESS_KEY_ID", offsetof(seslm_s3, access_key), sizeof s3->access_key, NULL},
             {"AWS_SECRET_ACCESS_KEY", offsetof(seslm_s3, secret_key), sizeof s3->secret_key, NULL}};
    for (size_t i = 0; i < sizeof E / sizeof E[0]; i++) {
        const char *v = getenv(E[i].var);
        if (!v || !v[0]) v = E[i].dflt;
        if (!v) return seslm_fail(SESLM_ERR_ARG, "s3: %s is not set (needed for %s)", E[i].var, url);
        if (strlen(v) >= E[i].cap) return seslm_fail(SESLM_ERR_ARG, "s3: %s is too long", E[i].var);
        strcpy((char *)s3 + E[i].off, v);
    }
    if (strncmp(s3->endpoint, "http://", 7) != 0 && strncmp(s3->endpoint, "https://", 8) != 0)
        return seslm_fail(SESLM_ERR_ARG, "s3: SESLM_S3_ENDPOINT must start with http:// or https:// (got '%s')", s3->endpoint);
    size_t n = strlen(s3->endpoint);
    while (n && s3->endpoint[n - 1] == '/') s3->endpoint[--n] = 0;
    // ':' would end the user name in CURLOPT_USERPWD; AWS key ids never hold one
    if (strchr(s3->access_key, ':')) return seslm_fail(SESLM_ERR_ARG, "s3: AWS_ACCESS_KEY_ID holds a ':'");
    return SESLM_OK;
}

/* ---- one HTTP request ---------------------------------------------------------------------------- */

typedef struct {
    // request body: a memory buffer or a file descriptor (neither: empty)
    const char *up;
    size_t up_len, up_off;
    int up_fd;
    // response body of a 2xx: into a memory buffer (grown) or a file descriptor; errors go to err
    char *down;
    size_t down_len, down_cap_max;
    int down_fd, want_mem, write_failed;
    char err[MAX_ERR_BODY + 1];
    size_t err_len;
    CURL *curl;
} xfer;

static size_t on_read(char *buf, size_t size, size_t nmemb, void *ud) {
    xfer *x = ud;
    size_t want = size * nmemb;
    if (x->up_fd >= 0) {
        ssize_t n;
        do n = read(x->up_fd, buf, want);
        while (n < 0 && errno == EINTR);
        return n < 0 ? CURL_READFUNC_ABORT : (size_t)n;
    }
    size_t left = x->up_len - x->up_off, n = left < want ? left : want;
    memcpy(buf, x->up + x->up_off, n);
    x->up_off += n;
    return n;
}

static size_t on_write(char *buf, size_t size, size_t nmemb, void *ud) {
    xfer *x = ud;
    size_t n = size * nmemb;
    long code = 0;
    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &code);
    if (code < 200 || code >= 300) { // an S3 error document: keep its start for the message
        size_t k = MAX_ERR_BODY - x->err_len < n ? MAX_ERR_BODY - x->err_len : n;
        memcpy(x->err + x->err_len, buf, k);
        x->err_len += k;
        x->err[x->err_len] = 0;
        return n;
    }
    if (x->want_mem) {
        if (x->down_len + n > x->down_cap_max) {
            x->write_failed = 1;
            return 0;
        }
        char *d = realloc(x->down, x->down_len + n + 1);
        if (!d) {
            x->write_failed = 1;
            return 0;
        }
        x->down = d;
        memcpy(x->down + x->down_len, buf, n);
        x->down_len += n;
        x->down[x->down_len] = 0;
        return n;
    }
    for (size_t off = 0; x->down_fd >= 0 && off < n;) {
        ssize_t w = write(x->down_fd, buf + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            x->write_failed = 1;
            return 0;
        }
        off += (size_t)w;
    }
    x->down_len += n;
    return n;
}

/* Percent-encodes an object key for the URL path (SigV4 signs the path as sent: '/' kept). */
static void encode_key(const char *key, char *out, size_t cap) {
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)key; *p && o + 4 < cap; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("-._~/", *p))
            out[o++] = (char)*p;
        else
            o += (size_t)snprintf(out + o, cap - o, "%%%02X", *p);
    }
    out[o] = 0;
}

/* The <Code> of an S3 error document, or "". */
static void error_code(const char *body, char *code, size_t cap) {
    code[0] = 0;
    const char *a = body ? strstr(body, "<Code>") : NULL, *b = a ? strstr(a, "</Code>") : NULL;
    if (a && b && b - a - 6 < (long)cap) snprintf(code, cap, "%.*s", (int)(b - a - 6), a + 6);
}

/* Performs METHOD on KEY (NULL: the bucket itself). *http gets the status (0: no response). A transport
 * failure (refused connection, timeout, DNS) is reported here; HTTP statuses are for the caller. */
static seslm_status s3_request(const seslm_s3 *s3, const char *method, const char *key, xfer *x, long long up_size,
                               long *http) {
    *http = 0;
    char enc[3 * 1024 + 1] = "", url[4600], sigv4[128], userpwd[520];
    if (key) encode_key(key, enc, sizeof enc);
    snprintf(url, sizeof url, "%s/%s%s%s", s3->endpoint, s3->bucket, key ? "/" : "", enc);
    snprintf(sigv4, sizeof sigv4, "aws:amz:%s:s3", s3->region);
    snprintf(userpwd, sizeof userpwd, "%s:%s", s3->access_key, s3->secret_key);
    CURL *c = curl_easy_init();
    if (!c) return seslm_fail(SESLM_ERR_NOMEM, "s3: curl_easy_init failed");
    x->curl = c;
    char cerr[CURL_ERROR_SIZE] = "";
    // the body is not hashed into the signature (S3 accepts UNSIGNED-PAYLOAD); the content hash of the
    // whole model is checked on get instead
    struct curl_slist *h = curl_slist_append(NULL, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_AWS_SIGV4, sigv4);
    curl_easy_setopt(c, CURLOPT_USERPWD, userpwd);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    // a stalled transfer (< 1 KiB/s for 60 s) fails instead of hanging
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    if (!strcmp(method, "PUT")) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, x);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)up_size);
    } else if (!strcmp(method, "HEAD")) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    }
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, http);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    x->curl = NULL;
    if (x->write_failed) return seslm_fail(SESLM_ERR_IO, "s3: %s %s: cannot store the response (disk full or too large)", method, url);
    if (rc != CURLE_OK)
        return seslm_fail(SESLM_ERR_IO, "s3: %s %s failed: %s (is the endpoint %s up?)", method, url,
                          cerr[0] ? cerr : curl_easy_strerror(rc), s3->endpoint);
    return SESLM_OK;
}

/* The message for an HTTP status that is not 2xx. */
static seslm_status http_fail(const seslm_s3 *s3, const char *method, const char *key, long http, const xfer *x) {
    char code[128];
    error_code(x->err, code, sizeof code);
    const char *hint = http == 403                          ? " (access denied: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and AWS_REGION)"
                       : http == 404 && !strcmp(code, "NoSuchBucket") ? " (the bucket does not exist)"
                       : http == 404 && !strcmp(code, "NoSuchKey")    ? " (the object is missing)"
                       : http == 404                                  ? " (not found)"
                                                                      : "";
    return seslm_fail(SESLM_ERR_IO, "s3: %s s3://%s/%s: HTTP %ld%s%s%s", method, s3->bucket, key ? key : "", http,
                      code[0] ? " " : "", code, hint);
}

static void xfer_init(xfer *x) {
    memset(x, 0, sizeof *x);
    x->up_fd = x->down_fd = -1;
}

seslm_status seslm_s3_create_bucket(const seslm_s3 *s3) {
    xfer x;
    xfer_init(&x);
    long http;
    seslm_status s = s3_request(s3, "PUT", NULL, &x, 0, &http);
    if (s != SESLM_OK) return s;
    char code[128];
    error_code(x.err, code, sizeof code);
    if ((http >= 200 && http < 300) || (http == 409 && !strcmp(code, "BucketAlreadyOwnedByYou"))) return SESLM_OK;
    return http_fail(s3, "PUT bucket", NULL, http, &x);
}

static void object_key(const seslm_s3 *s3, const char *sha, const char *rel, char *out, size_t cap) {
    if (rel) snprintf(out, cap, "%s%ssha256/%s/%s", s3->prefix, s3->prefix[0] ? "/" : "", sha, rel);
    else snprintf(out, cap, "%s%ssha256/%s.manifest.json", s3->prefix, s3->prefix[0] ? "/" : "", sha);
}

/* ---- the model directory's files ------------------------------------------------------------------ */

static char **g_files; // nftw has no user pointer; guarded by g_lock
static int g_n, g_cap, g_err;
static size_t g_root_len;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static int on_entry(const char *path, const struct stat *st, int type, struct FTW *f) {
    (void)f;
    if (type == FTW_D || type == FTW_DP) return 0;
    if (type != FTW_F || !S_ISREG(st->st_mode)) return g_err = 1, 1;
    if (g_n == g_cap) {
        int cap = g_cap ? 2 * g_cap : 64;
        char **r = realloc(g_files, (size_t)cap * sizeof *r);
        if (!r) return g_err = 1, 1;
        g_files = r, g_cap = cap;
    }
    if (!(g_files[g_n] = strdup(path + g_root_len + 1))) return g_err = 1, 1;
    g_n++;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The relative paths of the regular files under dir (symbolic links followed, as seslm_store_hash_dir
 * does), sorted. */
static seslm_status list_files(const char *dir, char ***files, int *n) {
    pthread_mutex_lock(&g_lock);
    g_files = NULL, g_n = g_cap = g_err = 0;
    g_root_len = strlen(dir);
    while (g_root_len > 1 && dir[g_root_len - 1] == '/') g_root_len--;
    int rc = nftw(dir, on_entry, 16, 0);
    *files = g_files, *n = g_n;
    int err = g_err;
    pthread_mutex_unlock(&g_lock);
    if (rc != 0 || err) {
        for (int i = 0; i < *n; i++) free((*files)[i]);
        free(*files);
        *files = NULL, *n = 0;
        return seslm_fail(SESLM_ERR_IO, "s3: cannot list %s (unreadable, or an entry that is no file)", dir);
    }
    qsort(*files, (size_t)*n, sizeof **files, cmp_str);
    return SESLM_OK;
}

static void free_files(char **f, int n) {
    for (int i = 0; i < n; i++) free(f[i]);
    free(f);
}

/* ---- put -------------------------------------------------------------------------------------------- */

static seslm_status head(const seslm_s3 *s3, const char *key, int *exists) {
    xfer x;
    xfer_init(&x);
    long http;
    seslm_status s = s3_request(s3, "HEAD", key, &x, 0, &http);
    if (s != SESLM_OK) return s;
    *exists = http >= 200 && http < 300;
    if (*exists || http == 404) return SESLM_OK;
    return http_fail(s3, "HEAD", key, http, &x);
}

static seslm_status put_fd(const seslm_s3 *s3, const char *key, int fd, long long size) {
    xfer x;
    xfer_init(&x);
    x.up_fd = fd;
    long http;
    seslm_status s = s3_request(s3, "PUT", key, &x, size, &http);
    if (s == SESLM_OK && (http < 200 || http >= 300)) s = http_fail(s3, "PUT", key, http, &x);
    return s;
}

static seslm_status put_mem(const seslm_s3 *s3, const char *key, const char *data, size_t len) {
    xfer x;
    xfer_init(&x);
    x.up = data, x.up_len = len;
    long http;
    seslm_status s = s3_request(s3, "PUT", key, &x, (long long)len, &http);
    if (s == SESLM_OK && (http < 200 || http >= 300)) s = http_fail(s3, "PUT", key, http, &x);
    return s;
}

seslm_status seslm_s3_put_dir(const seslm_s3 *s3, const char *model_dir, char sha256[65], long long *bytes,
                              char *location, size_t cap, int *existed) {
    *existed = 0;
    long long total = 0;
    seslm_status s = seslm_store_hash_dir(model_dir, sha256, &total);
    if (s != SESLM_OK) return s;
    if (bytes) *bytes = total;
    char key[2048];
    snprintf(location, cap, "s3://%s/%s%ssha256/%s", s3->bucket, s3->prefix, s3->prefix[0] ? "/" : "", sha256);
    object_key(s3, sha256, NULL, key, sizeof key);
    int have = 0;
    if ((s = head(s3, key, &have)) != SESLM_OK) return s;
    if (have) {
        *existed = 1;
        return SESLM_OK;
    }
    char **files = NULL;
    int n = 0;
    if ((s = list_files(model_dir, &files, &n)) != SESLM_OK) return s;
    cJSON *man = cJSON_CreateObject(), *arr = NULL;
    cJSON_AddStringToObject(man, "format", MANIFEST_FORMAT);
    cJSON_AddStringToObject(man, "sha256", sha256);
    cJSON_AddNumberToObject(man, "bytes", (double)total);
    arr = cJSON_AddArrayToObject(man, "files");
    for (int i = 0; s == SESLM_OK && i < n; i++) {
        char path[PATH_MAX + 1200];
        snprintf(path, sizeof path, "%s/%s", model_dir, files[i]);
        int fd = open(path, O_RDONLY);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            s = seslm_fail(SESLM_ERR_IO, "s3: cannot read %s: %s", path, strerror(errno));
            if (fd >= 0) close(fd);
            break;
        }
        object_key(s3, sha256, files[i], key, sizeof key);
        s = put_fd(s3, key, fd, (long long)st.st_size);
        close(fd);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "path", files[i]);
        cJSON_AddNumberToObject(e, "size", (double)st.st_size);
        cJSON_AddItemToArray(arr, e);
    }
    free_files(files, n);
    // the uploaded bytes are the ones hashed only if nothing changed meanwhile
    char again[65];
    if (s == SESLM_OK && (s = seslm_store_hash_dir(model_dir, again, NULL)) == SESLM_OK && strcmp(again, sha256) != 0)
        s = seslm_fail(SESLM_ERR_IO, "s3: %s changed while it was being uploaded; try again", model_dir);
    char *text = s == SESLM_OK ? cJSON_PrintUnformatted(man) : NULL;
    cJSON_Delete(man);
    if (s == SESLM_OK && !text) s = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    if (s == SESLM_OK) {
        object_key(s3, sha256, NULL, key, sizeof key);
        s = put_mem(s3, key, text, strlen(text)); // last: the model now exists
    }
    free(text);
    return s;
}

/* ---- get -------------------------------------------------------------------------------------------- */

/* A manifest path is relative, without "." / ".." components or empty parts (no escaping out_dir). */
static int safe_rel(const char *p) {
    if (!p[0] || p[0] == '/' || strlen(p) > 1000) return 0;
    for (const char *c = p; *c;) {
        const char *e = strchr(c, '/');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.')) return 0;
        c += n + (e ? 1 : 0);
        if (e && !*c) return 0;
    }
    return 1;
}

static seslm_status mkparents(const char *root, const char *rel) {
    char p[PATH_MAX + 1200];
    int base = snprintf(p, sizeof p, "%s/", root);
    snprintf(p + base, sizeof p - (size_t)base, "%s", rel);
    for (char *c = p + base; *c; c++)
        if (*c == '/') {
            *c = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST)
                return seslm_fail(SESLM_ERR_IO, "s3: cannot create %s: %s", p, strerror(errno));
            *c = '/';
        }
    return SESLM_OK;
}

static seslm_status fsync_dir(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return seslm_fail(SESLM_ERR_IO, "s3: cannot open %s: %s", path, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    return rc == 0 ? SESLM_OK : seslm_fail(SESLM_ERR_IO, "s3: fsync %s: %s", path, strerror(errno));
}

static seslm_status get_file(const seslm_s3 *s3, const char *key, const char *path, long long size) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) return seslm_fail(SESLM_ERR_IO, "s3: cannot create %s: %s", path, strerror(errno));
    xfer x;
    xfer_init(&x);
    x.down_fd = fd;
    long http;
    seslm_status s = s3_request(s3, "GET", key, &x, 0, &http);
    if (s == SESLM_OK && (http < 200 || http >= 300)) s = http_fail(s3, "GET", key, http, &x);
    if (s == SESLM_OK && (long long)x.down_len != size)
        s = seslm_fail(SESLM_ERR_FORMAT, "s3: s3://%s/%s has %zu bytes, its manifest says %lld (tampered or truncated)",
                       s3->bucket, key, x.down_len, size);
    if (s == SESLM_OK && fsync(fd) != 0) s = seslm_fail(SESLM_ERR_IO, "s3: fsync %s: %s", path, strerror(errno));
    if (close(fd) != 0 && s == SESLM_OK) s = seslm_fail(SESLM_ERR_IO, "s3: close %s: %s", path, strerror(errno));
    return s;
}

static int is_hex64(const char *s) {
    if (strlen(s) != 64) return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) return 0;
    return 1;
}

seslm_status seslm_s3_get_dir(const seslm_s3 *s3, const char *sha256, const char *out_dir) {
    if (!is_hex64(sha256)) return seslm_fail(SESLM_ERR_ARG, "s3: '%s' is not a sha256 content hash", sha256);
    struct stat st;
    if (lstat(out_dir, &st) == 0) return seslm_fail(SESLM_ERR_ARG, "s3: %s exists already (give a new directory)", out_dir);
    char key[2048];
    object_key(s3, sha256, NULL, key, sizeof key);
    xfer x;
    xfer_init(&x);
    x.want_mem = 1, x.down_cap_max = MAX_MANIFEST;
    long http;
    seslm_status s = s3_request(s3, "GET", key, &x, 0, &http);
    if (s == SESLM_OK && http == 404) {
        char code[128];
        error_code(x.err, code, sizeof code);
        s = !strcmp(code, "NoSuchBucket") ? http_fail(s3, "GET", key, http, &x)
                                          : seslm_fail(SESLM_ERR_IO, "s3: model %s is not in the store s3://%s/%s (no manifest)",
                                                       sha256, s3->bucket, s3->prefix);
    } else if (s == SESLM_OK && (http < 200 || http >= 300)) {
        s = http_fail(s3, "GET", key, http, &x);
    }
    cJSON *man = s == SESLM_OK ? cJSON_ParseWithLength(x.down ? x.down : "", x.down_len) : NULL;
    free(x.down);
    if (s != SESLM_OK) return s;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(man, "format"), *msha = cJSON_GetObjectItemCaseSensitive(man, "sha256"),
                *files = cJSON_GetObjectItemCaseSensitive(man, "files");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, MANIFEST_FORMAT) != 0 || !cJSON_IsString(msha) ||
        strcmp(msha->valuestring, sha256) != 0 || !cJSON_IsArray(files) || cJSON_GetArraySize(files) == 0) {
        cJSON_Delete(man);
        return seslm_fail(SESLM_ERR_FORMAT, "s3: the manifest s3://%s/%s is malformed or names another model", s3->bucket, key);
    }
    // the temporary directory sits beside out_dir, so the final rename stays on one file system
    char parent[PATH_MAX], tmp[PATH_MAX + 32], tmpl[PATH_MAX];
    snprintf(tmpl, sizeof tmpl, "%s", out_dir);
    snprintf(parent, sizeof parent, "%s", dirname(tmpl));
    snprintf(tmp, sizeof tmp, "%s/.seslm-fetch.XXXXXX", parent);
    if (!mkdtemp(tmp)) {
        cJSON_Delete(man);
        return seslm_fail(SESLM_ERR_IO, "s3: cannot create a temporary directory in %s: %s", parent, strerror(errno));
    }
    chmod(tmp, 0755);
    const cJSON *f;
    cJSON_ArrayForEach(f, files) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(f, "path"), *z = cJSON_GetObjectItemCaseSensitive(f, "size");
        if (!cJSON_IsString(p) || !safe_rel(p->valuestring) || !cJSON_IsNumber(z) || z->valuedouble < 0) {
            s = seslm_fail(SESLM_ERR_FORMAT, "s3: the manifest s3://%s/%s has a bad file entry", s3->bucket, key);
            break;
        }
        char path[PATH_MAX + 1200], okey[2048];
        snprintf(path, sizeof path, "%s/%s", tmp, p->valuestring);
        object_key(s3, sha256, p->valuestring, okey, sizeof okey);
        if ((s = mkparents(tmp, p->valuestring)) != SESLM_OK) break;
        if ((s = get_file(s3, okey, path, (long long)z->valuedouble)) != SESLM_OK) break;
        // a file in a subdirectory (1_Pooling/config.json): its directory entry is durable before the rename
        char *slash = strrchr(path, '/');
        if (strchr(p->valuestring, '/')) {
            *slash = 0;
            s = fsync_dir(path);
            if (s != SESLM_OK) break;
        }
    }
    cJSON_Delete(man);
    char got[65];
    if (s == SESLM_OK && (s = seslm_store_hash_dir(tmp, got, NULL)) == SESLM_OK && strcmp(got, sha256) != 0)
        s = seslm_fail(SESLM_ERR_FORMAT,
                       "s3: the objects of model %s hash to %s: tampered or corrupted in the store; nothing written",
                       sha256, got);
    if (s == SESLM_OK) s = fsync_dir(tmp);
    if (s == SESLM_OK && rename(tmp, out_dir) != 0)
        s = seslm_fail(SESLM_ERR_IO, "s3: cannot rename %s to %s: %s", tmp, out_dir, strerror(errno));
    if (s != SESLM_OK) {
        util_rmtree(tmp);
        return s;
    }
    return fsync_dir(parent);
}

seslm_status seslm_s3_split_location(const char *location, char *store_url, size_t cap, char sha256[65]) {
    const char *m = location ? strstr(location, "/sha256/") : NULL;
    if (!seslm_s3_is_url(location) || !m) return seslm_fail(SESLM_ERR_ARG, "s3: '%s' is no s3://.../sha256/<hash> location", location ? location : "");
    const char *last;
    while ((last = strstr(m + 1, "/sha256/")) != NULL) m = last; // the prefix itself may hold "sha256"
    if (!is_hex64(m + 8)) return seslm_fail(SESLM_ERR_ARG, "s3: '%s' does not end in a content hash", location);
    snprintf(sha256, 65, "%s", m + 8);
    snprintf(store_url, cap, "%.*s", (int)(m - location), location);
    return SESLM_OK;
}
