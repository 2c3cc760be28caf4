/* gguf.c — bounds-checked GGUF parsing (gguf.h). */
#include "gguf.h"

#include "qblock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    const uint8_t *p, *end;
    const char *name;
    seslm_status st;
} rd;

static int rd_need(rd *r, uint64_t n, const char *what) {
    if (r->st != SESLM_OK) return 0;
    if ((uint64_t)(r->end - r->p) < n) {
        r->st = seslm_fail(SESLM_ERR_FORMAT, "%s: truncated GGUF file (reading %s)", r->name, what);
        return 0;
    }
    return 1;
}

static uint64_t rd_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static uint64_t rd_u(rd *r, int n, const char *what) {
    if (!rd_need(r, (uint64_t)n, what)) return 0;
    uint64_t v = rd_le(r->p, n);
    r->p += n;
    return v;
}

static gguf_str rd_str(rd *r, const char *what) {
    gguf_str s = {0, 0};
    uint64_t len = rd_u(r, 8, what);
    if (!rd_need(r, len, what)) return s;
    s.s = (const char *)r->p;
    s.len = (size_t)len;
    r->p += len;
    return s;
}

static int scalar_size(int type) {
    switch (type) {
    case GGUF_U8: case GGUF_I8: case GGUF_BOOL: return 1;
    case GGUF_U16: case GGUF_I16: return 2;
    case GGUF_U32: case GGUF_I32: case GGUF_F32: return 4;
    case GGUF_U64: case GGUF_I64: case GGUF_F64: return 8;
    default: return 0;
    }
}

static int str_eq(gguf_str a, const char *b) {
    size_t n = strlen(b);
    return a.len == n && memcmp(a.s, b, n) == 0;
}

static void gguf_free_index(gguf_file *f) {
    if (f->kv)
        for (int i = 0; i < f->n_kv; i++) free(f->kv[i].strs);
    free(f->kv);
    free(f->tensors);
    f->kv = NULL;
    f->tensors = NULL;
}

seslm_status gguf_parse(gguf_file *f, const void *image, size_t size, const char *name) {
    memset(f, 0, sizeof *f);
    rd r = {image, (const uint8_t *)image + size, name, SESLM_OK};
    f->base = image;
    f->size = size;
    if (size < 4 || memcmp(image, "GGUF", 4) != 0)
        return seslm_fail(SESLM_ERR_FORMAT, "%s: not a GGUF file (no \"GGUF\" magic)", name);
    r.p += 4;
    f->version = (uint32_t)rd_u(&r, 4, "version");
    uint64_t n_tensors = rd_u(&r, 8, "tensor count"), n_kv = rd_u(&r, 8, "metadata count");
    if (r.st) return r.st;
    if (f->version < 2 || f->version > 3)
        return seslm_fail(SESLM_ERR_FORMAT, "%s: GGUF version %u is not supported (2 or 3)", name, f->version);
    // each pair needs at least 8 + 4 + 1 bytes and each tensor info 8 + 4 + 4 + 8: bounds the counts
    if (n_kv > size / 13 || n_tensors > size / 24)
        return seslm_fail(SESLM_ERR_FORMAT, "%s: counts (%llu tensors, %llu metadata) exceed the file size", name,
                          (unsigned long long)n_tensors, (unsigned long long)n_kv);
    f->kv = calloc(n_kv ? n_kv : 1, sizeof *f->kv);
    f->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *f->tensors);
    if (!f->kv || !f->tensors) {
        gguf_free_index(f);
        return seslm_fail(SESLM_ERR_NOMEM, "%s: out of memory for the GGUF index", name);
    }
    f->n_kv = (int)n_kv;
    f->n_tensors = (int)n_tensors;
    f->alignment = 32;
    for (uint64_t i = 0; i < n_kv && !r.st; i++) {
        gguf_kv *kv = &f->kv[i];
        kv->key = rd_str(&r, "metadata key");
        kv->type = (int)rd_u(&r, 4, "metadata type");
        kv->n = 1;
        if (r.st) break;
        if (kv->type == GGUF_STRING) {
            kv->data = r.p;
            rd_str(&r, "string value");
        } else if (kv->type == GGUF_ARRAY) {
            kv->arr_type = (int)rd_u(&r, 4, "array type");
            kv->n = rd_u(&r, 8, "array length");
            if (r.st) break;
            kv->data = r.p;
            if (kv->arr_type == GGUF_STRING) {
                if (kv->n > (uint64_t)(r.end - r.p) / 8) {
                    r.st = seslm_fail(SESLM_ERR_FORMAT, "%s: string array '%.*s' longer than the file", name,
                                      (int)(kv->key.len > 200 ? 200 : kv->key.len), kv->key.s);
                    break;
                }
                kv->strs = malloc((size_t)(kv->n ? kv->n : 1) * sizeof *kv->strs);
                if (!kv->strs) {
                    r.st = seslm_fail(SESLM_ERR_NOMEM, "%s: out of memory", name);
                    break;
                }
                for (uint64_t j = 0; j < kv->n && !r.st; j++) kv->strs[j] = rd_str(&r, "string array element");
            } else {
                int es = scalar_size(kv->arr_type);
                if (!es) {
                    r.st = seslm_fail(SESLM_ERR_FORMAT, "%s: metadata '%.*s' has array element type %d", name,
                                      (int)(kv->key.len > 200 ? 200 : kv->key.len), kv->key.s, kv->arr_type);
                    break;
                }
                if (kv->n > (uint64_t)(r.end - r.p) / (uint64_t)es) {
                    rd_need(&r, UINT64_MAX, "array values");
                    break;
                }
                r.p += kv->n * (uint64_t)es;
            }
        } else {
            int es = scalar_size(kv->type);
            if (!es) {
                r.st = seslm_fail(SESLM_ERR_FORMAT, "%s: metadata '%.*s' has unknown type %d", name,
                                  (int)(kv->key.len > 200 ? 200 : kv->key.len), kv->key.s, kv->type);
                break;
            }
            if (!rd_need(&r, (uint64_t)es, "metadata value")) break;
            kv->data = r.p;
            r.p += es;
        }
        if (!r.st) kv->nbytes = (size_t)(r.p - kv->data);
    }
    if (r.st) {
        gguf_free_index(f);
        return r.st;
    }
    uint32_t align;
    if (gguf_find_kv(f, "general.alignment")) {
        if (gguf_get_u32(f, "general.alignment", &align) != 0 || align == 0 || (align & (align - 1)) || align > 65536) {
            gguf_free_index(f);
            return seslm_fail(SESLM_ERR_FORMAT, "%s: general.alignment must be a power of two up to 65536", name);
        }
        f->alignment = align;
    }
    uint64_t *offs = calloc(n_tensors ? n_tensors : 1, sizeof *offs);
    if (!offs) {
        gguf_free_index(f);
        return seslm_fail(SESLM_ERR_NOMEM, "%s: out of memory", name);
    }
    for (uint64_t i = 0; i < n_tensors && !r.st; i++) {
        gguf_tensor *t = &f->tensors[i];
        t->name = rd_str(&r, "tensor name");
        uint32_t nd = (uint32_t)rd_u(&r, 4, "tensor dims");
        if (r.st) break;
        if (nd < 1 || nd > GGUF_MAX_DIMS) {
            r.st = seslm_fail(SESLM_ERR_FORMAT, "%s: tensor '%.*s' has %u dimensions (1..4)", name,
                              (int)(t->name.len > 200 ? 200 : t->name.len), t->name.s, nd);
            break;
        }
        t->n_dims = (int)nd;
        uint64_t numel = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < nd && !r.st; d++) {
            uint64_t v = rd_u(&r, 8, "tensor dim");
            if (v == 0 || v > (1ull << 40) || numel > (1ull << 40) / v) {
                if (!r.st)
                    r.st = seslm_fail(SESLM_ERR_FORMAT, "%s: tensor '%.*s' has a bad dimension", name,
                                      (int)(t->name.len > 200 ? 200 : t->name.len), t->name.s);
                break;
            }
            t->ne[d] = (int64_t)v;
            numel *= v;
        }
        t->type = (int)rd_u(&r, 4, "tensor type");
        offs[i] = rd_u(&r, 8, "tensor offset");
        if (r.st) break;
        size_t rowb = qb_type_name(t->type) && t->type != QB_Q8_1 ? qb_row_bytes(t->type, t->ne[0]) : 0;
        if (!rowb) {
            r.st = seslm_fail(SESLM_ERR_FORMAT, "%s: tensor '%.*s' has type %d and row length %lld, not readable here "
                              "(F32, F16, Q4_0, Q4_1, Q8_0; block types need rows of 32k)", name,
                              (int)(t->name.len > 200 ? 200 : t->name.len), t->name.s, t->type, (long long)t->ne[0]);
            break;
        }
        t->nbytes = rowb * (size_t)(numel / (uint64_t)t->ne[0]);
        for (uint64_t j = 0; j < i; j++)
            if (f->tensors[j].name.len == t->name.len && memcmp(f->tensors[j].name.s, t->name.s, t->name.len) == 0) {
                r.st = seslm_fail(SESLM_ERR_FORMAT, "%s: tensor name '%.*s' appears twice", name,
                                  (int)(t->name.len > 200 ? 200 : t->name.len), t->name.s);
                break;
            }
    }
    if (!r.st) {
        uint64_t pos = (uint64_t)(r.p - f->base);
        uint64_t data_start = (pos + f->alignment - 1) / f->alignment * f->alignment;
        if (n_tensors && data_start > size) {
            r.st = seslm_fail(SESLM_ERR_FORMAT, "%s: truncated GGUF file (no tensor data)", name);
        }
        for (uint64_t i = 0; i < n_tensors && !r.st; i++) {
            gguf_tensor *t = &f->tensors[i];
            uint64_t avail = size - data_start;
            if (offs[i] % f->alignment || offs[i] > avail || t->nbytes > avail - offs[i]) {
                r.st = seslm_fail(SESLM_ERR_FORMAT, "%s: tensor '%.*s' (offset %llu, %zu bytes) lies outside the file",
                                  name, (int)(t->name.len > 200 ? 200 : t->name.len), t->name.s,
                                  (unsigned long long)offs[i], t->nbytes);
                break;
            }
            t->data = f->base + data_start + offs[i];
        }
    }
    free(offs);
    if (r.st) {
        gguf_free_index(f);
        return r.st;
    }
    return SESLM_OK;
}

seslm_status gguf_open(gguf_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return seslm_fail(SESLM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return seslm_fail(SESLM_ERR_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size == 0) {
        close(fd);
        return seslm_fail(SESLM_ERR_FORMAT, "%s: empty file, not a GGUF model", path);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return seslm_fail(SESLM_ERR_IO, "%s: mmap failed", path);
    seslm_status st = gguf_parse(f, map, size, path);
    if (st != SESLM_OK) {
        munmap(map, size);
        return st;
    }
    f->map = map;
    f->map_size = size;
    return SESLM_OK;
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    gguf_free_index(f);
    if (f->map) munmap(f->map, f->map_size);
    memset(f, 0, sizeof *f);
}

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key) {
    for (int i = 0; i < f->n_kv; i++)
        if (str_eq(f->kv[i].key, key)) return &f->kv[i];
    return NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    for (int i = 0; i < f->n_tensors; i++)
        if (str_eq(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

static int scalar_int(int type, const uint8_t *p, int64_t *out) {
    switch (type) {
    case GGUF_U8: case GGUF_BOOL: *out = p[0]; return 0;
    case GGUF_I8: *out = (int8_t)p[0]; return 0;
    case GGUF_U16: *out = (int64_t)rd_le(p, 2); return 0;
    case GGUF_I16: *out = (int16_t)rd_le(p, 2); return 0;
    case GGUF_U32: *out = (int64_t)rd_le(p, 4); return 0;
    case GGUF_I32: *out = (int32_t)rd_le(p, 4); return 0;
    case GGUF_U64: { uint64_t v = rd_le(p, 8); if (v > INT64_MAX) return -1; *out = (int64_t)v; return 0; }
    case GGUF_I64: *out = (int64_t)rd_le(p, 8); return 0;
    default: return -1;
    }
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    int64_t v;
    if (!kv || kv->type == GGUF_ARRAY || scalar_int(kv->type, kv->data, &v) != 0 || v < 0 || v > UINT32_MAX) return -1;
    *out = (uint32_t)v;
    return 0;
}

int gguf_get_f32(const gguf_file *f, const char *key, float *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return -1;
    if (kv->type == GGUF_F32) {
        uint32_t b = (uint32_t)rd_le(kv->data, 4);
        memcpy(out, &b, 4);
        return 0;
    }
    if (kv->type == GGUF_F64) {
        uint64_t b = rd_le(kv->data, 8);
        double d;
        memcpy(&d, &b, 8);
        *out = (float)d;
        return 0;
    }
    return -1;
}

int gguf_get_bool(const gguf_file *f, const char *key, int *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv || kv->type != GGUF_BOOL) return -1;
    *out = kv->data[0] != 0;
    return 0;
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv || kv->type != GGUF_STRING) return -1;
    out->len = (size_t)rd_le(kv->data, 8);
    out->s = (const char *)kv->data + 8;
    return 0;
}

int64_t gguf_arr_int(const gguf_kv *kv, uint64_t i) {
    int es = scalar_size(kv->arr_type);
    int64_t v = 0;
    if (!es || i >= kv->n || scalar_int(kv->arr_type, kv->data + i * (uint64_t)es, &v) != 0) return 0;
    return v;
}

float gguf_arr_f32(const gguf_kv *kv, uint64_t i) {
    if (kv->arr_type != GGUF_F32 || i >= kv->n) return 0.0f;
    uint32_t b = (uint32_t)rd_le(kv->data + i * 4, 4);
    float v;
    memcpy(&v, &b, 4);
    return v;
}
