/* store_s3.c — the S3-compatible artifact store (store_s3.h): model directories as objects (through the
 * objstore layer's client, s3_client.h), manifest written last, content hash checked on get. */
#define _GNU_SOURCE
#include "store_s3.h"

#include "store.h"

#include "util.h"

#include <cjson/cJSON.h>
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
#define MAX_MANIFEST (4 << 20)

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
    if ((s = seslm_s3_head(s3, key, &have, NULL)) != SESLM_OK) return s;
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
        s = seslm_s3_put_fd(s3, key, fd, (long long)st.st_size);
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
        s = seslm_s3_put_mem(s3, key, text, strlen(text)); // last: the model now exists
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
    long long got = 0;
    seslm_status s = seslm_s3_get_fd(s3, key, fd, &got, NULL);
    if (s == SESLM_OK && got != size)
        s = seslm_fail(SESLM_ERR_FORMAT, "s3: s3://%s/%s has %lld bytes, its manifest says %lld (tampered or truncated)",
                       s3->bucket, key, got, size);
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
    char *text = NULL;
    size_t len = 0;
    int missing = 0;
    seslm_status s = seslm_s3_get_mem(s3, key, MAX_MANIFEST, &text, &len, &missing);
    if (s != SESLM_OK && missing)
        s = seslm_fail(SESLM_ERR_IO, "s3: model %s is not in the store s3://%s/%s (no manifest)", sha256, s3->bucket,
                       s3->prefix);
    cJSON *man = s == SESLM_OK ? cJSON_ParseWithLength(text, len) : NULL;
    free(text);
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
