/* safetensors_write.c — crash-safe safetensors writer (see safetensors_write.h). */
#include "safetensors_write.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static size_t align8(size_t x) { return (x + 7) & ~(size_t)7; }

seslm_status st_fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return seslm_fail(SESLM_ERR_IO, "cannot open directory %s: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL && e != EROFS) // some file systems cannot sync directories
        return seslm_fail(SESLM_ERR_IO, "cannot sync directory %s: %s", dir, strerror(e));
    return SESLM_OK;
}


static seslm_status build_header(const st_write_tensor *t, int n, const char *metadata_json, char **out,
                                 size_t *out_len, size_t *data_len) {
    // every cJSON call below can fail on a failed allocation, silently dropping an entry; ok collects them
    // so that a header missing a dtype or an offset is never written (tests/fault found such a file)
    int ok = 1;
    cJSON *h = cJSON_CreateObject();
    ok &= h != NULL;
    cJSON *meta = metadata_json ? cJSON_Parse(metadata_json) : NULL;
    if (metadata_json && (!meta || !cJSON_IsObject(meta))) {
        cJSON_Delete(meta);
        cJSON_Delete(h);
        return seslm_fail(SESLM_ERR_ARG, "safetensors metadata must be a JSON object");
    }
    if (!meta) {
        meta = cJSON_CreateObject();
        ok &= meta && cJSON_AddStringToObject(meta, "format", "pt") != NULL;
    }
    for (const cJSON *v = meta ? meta->child : NULL; v; v = v->next)
        if (!cJSON_IsString(v)) {
            cJSON_Delete(meta);
            cJSON_Delete(h);
            return seslm_fail(SESLM_ERR_ARG, "safetensors metadata values must be strings");
        }
    ok &= h && meta && cJSON_AddItemToObject(h, "__metadata__", meta);
    if (!ok) {
        if (!h || !cJSON_GetObjectItemCaseSensitive(h, "__metadata__")) cJSON_Delete(meta);
        cJSON_Delete(h);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory for the safetensors header");
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        if (!t[i].name || !t[i].name[0] || strcmp(t[i].name, "__metadata__") == 0 ||
            cJSON_GetObjectItemCaseSensitive(h, t[i].name)) {
            cJSON_Delete(h);
            return seslm_fail(SESLM_ERR_ARG, "safetensors: bad or duplicate tensor name '%s'",
                              t[i].name ? t[i].name : "(null)");
        }
        if (t[i].ndim < 0 || t[i].ndim > ST_MAX_DIMS) {
            cJSON_Delete(h);
            return seslm_fail(SESLM_ERR_ARG, "safetensors: tensor '%s' has %d dimensions", t[i].name, t[i].ndim);
        }
        int64_t numel = 1;
        cJSON *e = cJSON_CreateObject(), *shape = cJSON_CreateArray();
        ok &= e && shape;
        for (int d = 0; d < t[i].ndim; d++) {
            if (t[i].shape[d] < 0 || (t[i].shape[d] > 0 && numel > INT64_MAX / 8 / t[i].shape[d])) {
                cJSON_Delete(e);
                cJSON_Delete(shape);
                cJSON_Delete(h);
                return seslm_fail(SESLM_ERR_ARG, "safetensors: tensor '%s' has a bad shape", t[i].name);
            }
            numel *= t[i].shape[d];
            ok &= shape && cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t[i].shape[d]));
        }
        size_t nb = (size_t)numel * st_dtype_size(t[i].dtype);
        if (!ok) {
            cJSON_Delete(e);
            cJSON_Delete(shape);
            cJSON_Delete(h);
            return seslm_fail(SESLM_ERR_NOMEM, "out of memory for the safetensors header");
        }
        ok &= cJSON_AddStringToObject(e, "dtype", st_dtype_name(t[i].dtype)) != NULL;
        if (!cJSON_AddItemToObject(e, "shape", shape)) {
            cJSON_Delete(shape);
            ok = 0;
        }
        cJSON *offs = cJSON_CreateArray();
        ok &= offs && cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        ok &= offs && cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + nb)));
        if (!offs || !cJSON_AddItemToObject(e, "data_offsets", offs)) {
            cJSON_Delete(offs);
            ok = 0;
        }
        if (!cJSON_AddItemToObject(h, t[i].name, e)) {
            cJSON_Delete(e);
            ok = 0;
        }
        if (!ok) {
            cJSON_Delete(h);
            return seslm_fail(SESLM_ERR_NOMEM, "out of memory for the safetensors header");
        }
        off += nb;
    }
    char *txt = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    if (!txt) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    size_t len = strlen(txt), padded = align8(8 + len) - 8;
    char *buf = malloc(padded + 1);
    if (!buf) {
        free(txt);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    memcpy(buf, txt, len);
    memset(buf + len, ' ', padded - len);
    buf[padded] = 0;
    free(txt);
    *out = buf;
    *out_len = padded;
    *data_len = off;
    return SESLM_OK;
}

seslm_status st_write(const char *path, const st_write_tensor *t, int n, const char *metadata_json) {
    if (!path || n < 0 || (n > 0 && !t)) return seslm_fail(SESLM_ERR_ARG, "st_write: bad arguments");
    char *hdr = NULL;
    size_t hl = 0, dl = 0;
    seslm_status st = build_header(t, n, metadata_json, &hdr, &hl, &dl);
    if (st != SESLM_OK) return st;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16), *dcopy = strdup(path);
    if (!tmp || !dcopy) {
        free(tmp), free(dcopy), free(hdr);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        st = seslm_fail(SESLM_ERR_IO, "cannot create a temporary file beside %s: %s", path, strerror(errno));
        free(tmp), free(dcopy), free(hdr);
        return st;
    }
    fchmod(fd, 0644);
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    int ok = util_write_all(fd, lenb, 8) && util_write_all(fd, hdr, hl);
    for (int i = 0; ok && i < n; i++) {
        int64_t numel = 1;
        for (int d = 0; d < t[i].ndim; d++) numel *= t[i].shape[d];
        size_t nb = (size_t)numel * st_dtype_size(t[i].dtype);
        if (nb && !t[i].data) {
            close(fd);
            unlink(tmp);
            free(tmp), free(dcopy), free(hdr);
            return seslm_fail(SESLM_ERR_ARG, "st_write: tensor '%s' has no data", t[i].name);
        }
        ok = (nb == 0 || util_write_all(fd, t[i].data, nb));
    }
    int e = errno;
    if (ok && fsync(fd) != 0) ok = 0, e = errno;
    if (close(fd) != 0 && ok) ok = 0, e = errno;
    if (ok && rename(tmp, path) != 0) ok = 0, e = errno;
    if (!ok) {
        unlink(tmp);
        st = seslm_fail(SESLM_ERR_IO, "cannot write %s: %s", path, strerror(e));
    } else {
        st = st_fsync_dir(dirname(dcopy));
    }
    free(tmp), free(dcopy), free(hdr);
    return st;
}
