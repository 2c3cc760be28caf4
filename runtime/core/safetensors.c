/* safetensors.c — see safetensors.h. */
#include "safetensors.h"

#include <openssl/crypto.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

// the header is JSON of at most this many bytes (the format's own limit is 100 MB)
#define ST_MAX_HEADER ((uint64_t)100 * 1024 * 1024)

static const struct {
    const char *name;
    st_dtype dtype;
    size_t size;
} st_dtypes[] = {
    {"F32", ST_F32, 4}, {"F16", ST_F16, 2}, {"BF16", ST_BF16, 2}, {"F64", ST_F64, 8}, {"I64", ST_I64, 8},
    {"I32", ST_I32, 4}, {"I16", ST_I16, 2}, {"I8", ST_I8, 1},     {"U8", ST_U8, 1},   {"BOOL", ST_BOOL, 1},
};

size_t st_dtype_size(st_dtype d) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (st_dtypes[i].dtype == d) return st_dtypes[i].size;
    return 0;
}

const char *st_dtype_name(st_dtype d) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (st_dtypes[i].dtype == d) return st_dtypes[i].name;
    return "?";
}

static int st_dtype_from_name(const char *s, st_dtype *out) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(st_dtypes[i].name, s) == 0) {
            *out = st_dtypes[i].dtype;
            return 1;
        }
    return 0;
}

// JSON numbers are doubles: accept only exact non-negative integers below 2^53.
static int st_json_uint(const cJSON *v, int64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)(int64_t)d) return 0;
    *out = (int64_t)d;
    return 1;
}

// ---- parsing ------------------------------------------------------------------------------------

static seslm_status st_parse_entry(st_tensor *t, const cJSON *e, const uint8_t *data, uint64_t data_len,
                                   const char *what) {
    const char *name = e->string;
    if (!cJSON_IsObject(e)) return seslm_fail(SESLM_ERR_FORMAT, "%s: tensor '%s' is not an object", what, name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(jd) || !cJSON_IsArray(js) || !cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
        return seslm_fail(SESLM_ERR_FORMAT, "%s: tensor '%s' lacks dtype, shape or data_offsets", what, name);
    if (!st_dtype_from_name(jd->valuestring, &t->dtype))
        return seslm_fail(SESLM_ERR_FORMAT, "%s: tensor '%s' has unsupported dtype '%s'", what, name,
                          jd->valuestring);
    int nd = cJSON_GetArraySize(js);
    if (nd > ST_MAX_DIMS) return seslm_fail(SESLM_ERR_FORMAT, "%s: tensor '%s' has %d dims", what, name, nd);
    t->ndim = nd;
    int64_t numel = 1;
    for (int i = 0; i < nd; i++) {
        int64_t d;
        if (!st_json_uint(cJSON_GetArrayItem(js, i), &d))
            return seslm_fail(SESLM_ERR_FORMAT, "%s: tensor '%s' has a bad shape", what, name);
        t->shape[i] = d;
        if (d != 0 && numel > INT64_MAX / d)
            return seslm_fail(SESLM_ERR_FORMAT, "%s: tensor '%s' shape overflows", what, name);
        numel *= d;
    }
    int64_t begin, end;
    if (!st_json_uint(cJSON_GetArrayItem(jo, 0), &begin) || !st_json_uint(cJSON_GetArrayItem(jo, 1), &end) ||
        end < begin)
        return seslm_fail(SESLM_ERR_FORMAT, "%s: tensor '%s' has bad data_offsets", what, name);
    if ((uint64_t)end > data_len)
        return seslm_fail(SESLM_ERR_FORMAT,
                          "%s: tensor '%s' ends at byte %lld of a %llu-byte data section (file truncated?)", what,
                          name, (long long)end, (unsigned long long)data_len);
    size_t es = st_dtype_size(t->dtype);
    if (numel > INT64_MAX / (int64_t)es) // checked apart: the message below must not overflow either
        return seslm_fail(SESLM_ERR_FORMAT, "%s: tensor '%s': %lld elements of %s overflow the byte count", what,
                          name, (long long)numel, jd->valuestring);
    if (numel * (int64_t)es != end - begin)
        return seslm_fail(SESLM_ERR_FORMAT, "%s: tensor '%s': %lld elements of %s need %lld bytes, offsets give %lld",
                          what, name, (long long)numel, jd->valuestring, (long long)(numel * (int64_t)es),
                          (long long)(end - begin));
    t->numel = numel;
    t->data = data + begin;
    t->nbytes = (size_t)(end - begin);
    t->name = strdup(name);
    if (!t->name) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    return SESLM_OK;
}

seslm_status st_parse(st_file *f, const void *buf, size_t len, const char *what) {
    const uint8_t *p = buf;
    if (len < 8) return seslm_fail(SESLM_ERR_FORMAT, "%s: %zu bytes is too short for a safetensors file", what, len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i]; // little-endian
    if (hlen < 2 || hlen > ST_MAX_HEADER || hlen > len - 8)
        return seslm_fail(SESLM_ERR_FORMAT, "%s: header length %llu is invalid for a %zu-byte file (truncated or not safetensors)",
                          what, (unsigned long long)hlen, len);
    cJSON *root = cJSON_ParseWithLength((const char *)p + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return seslm_fail(SESLM_ERR_FORMAT, "%s: header is not a JSON object", what);
    }
    const uint8_t *data = p + 8 + hlen;
    uint64_t data_len = len - 8 - hlen;
    int n = 0;
    for (const cJSON *e = root->child; e; e = e->next) n += strcmp(e->string, "__metadata__") != 0;
    f->tensors = calloc(n ? (size_t)n : 1, sizeof(st_tensor));
    if (!f->tensors) {
        cJSON_Delete(root);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    seslm_status st = SESLM_OK;
    for (const cJSON *e = root->child; e && st == SESLM_OK; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        if (st_find(f, e->string)) {
            st = seslm_fail(SESLM_ERR_FORMAT, "%s: tensor '%s' appears twice", what, e->string);
            break;
        }
        st = st_parse_entry(&f->tensors[f->n_tensors], e, data, data_len, what);
        if (st == SESLM_OK) f->n_tensors++;
    }
    cJSON_Delete(root);
    return st;
}

// ---- file lifetime ------------------------------------------------------------------------------

seslm_status st_open(st_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); // O_NONBLOCK: a FIFO must not block the open
    if (fd < 0) return seslm_fail(SESLM_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return seslm_fail(SESLM_ERR_IO, "%s: not a regular file", path);
    }
    if (sb.st_size < 8) {
        close(fd);
        return seslm_fail(SESLM_ERR_FORMAT, "%s: %lld bytes is too short for a safetensors file", path,
                          (long long)sb.st_size);
    }
    void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return seslm_fail(SESLM_ERR_IO, "%s: mmap: %s", path, strerror(errno));
    f->map = map;
    f->map_len = (size_t)sb.st_size;
    f->path = strdup(path);
    seslm_status st = f->path ? st_parse(f, map, f->map_len, path) : seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    if (st != SESLM_OK) st_close(f);
    return st;
}

seslm_status st_open_buffer(st_file *f, void *buf, size_t len, const char *path) {
    memset(f, 0, sizeof *f);
    f->map = buf;
    f->map_len = len;
    f->heap = 1;
    f->path = strdup(path);
    seslm_status st = f->path ? st_parse(f, buf, len, path) : seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    if (st != SESLM_OK) st_close(f);
    return st;
}

void st_close(st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    if (f->map && f->heap) {
        OPENSSL_cleanse(f->map, f->map_len); // decrypted weights do not outlive the model
        free(f->map);
    } else if (f->map) munmap(f->map, f->map_len);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const st_tensor *st_find(const st_file *f, const char *name) {
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}
