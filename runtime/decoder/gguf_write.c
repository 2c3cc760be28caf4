/* gguf_write.c — writing GGUF v3 files (gguf.h): a pruned decoder's weights and metadata.
 *
 * The metadata is serialised into one growing buffer as it is added; the tensor infos and data are laid
 * out at write time (offsets aligned to 32, the default general.alignment), then the whole file goes to
 * PATH.tmp, is flushed to disk and renamed over PATH. */
#include "gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GGUF_W_ALIGN 32

typedef struct {
    char *name;
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    int type;
    const void *data;
    size_t nbytes;
    int owned;
} w_tensor;

struct gguf_writer {
    uint8_t *kv;
    size_t kv_len, kv_cap;
    uint64_t n_kv;
    char **keys; // for the duplicate check
    w_tensor *t;
    int n_t, cap_t;
    int failed; // out of memory on some add: the write refuses
};

gguf_writer *gguf_writer_new(void) { return calloc(1, sizeof(gguf_writer)); }

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (uint64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    free(w->keys);
    for (int i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        if (w->t[i].owned) free((void *)w->t[i].data);
    }
    free(w->t);
    free(w->kv);
    free(w);
}

static int put(gguf_writer *w, const void *p, size_t n) {
    if (w->kv_len + n > w->kv_cap) {
        size_t cap = w->kv_cap ? w->kv_cap : 4096;
        while (cap < w->kv_len + n) cap *= 2;
        uint8_t *b = realloc(w->kv, cap);
        if (!b) return w->failed = 1, -1;
        w->kv = b, w->kv_cap = cap;
    }
    memcpy(w->kv + w->kv_len, p, n);
    w->kv_len += n;
    return 0;
}
static int put_u32(gguf_writer *w, uint32_t v) { return put(w, &v, 4); } // little-endian hosts only (x86, arm64)
static int put_u64(gguf_writer *w, uint64_t v) { return put(w, &v, 8); }
static int put_str(gguf_writer *w, const char *s, size_t n) { return put_u64(w, n) || put(w, s, n) ? -1 : 0; }

// the key, once: -1 for a duplicate (a reader would take either)
static int put_key(gguf_writer *w, const char *key, size_t n, uint32_t type) {
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (strlen(w->keys[i]) == n && memcmp(w->keys[i], key, n) == 0) return -1;
    char **k = realloc(w->keys, (size_t)(w->n_kv + 1) * sizeof *k);
    if (!k) return w->failed = 1, -1;
    w->keys = k;
    if (!(k[w->n_kv] = malloc(n + 1))) return w->failed = 1, -1;
    memcpy(k[w->n_kv], key, n);
    k[w->n_kv][n] = 0;
    w->n_kv++;
    return put_str(w, key, n) || put_u32(w, type) ? -1 : 0;
}

int gguf_w_copy_kv(gguf_writer *w, const gguf_kv *kv) {
    if (put_key(w, kv->key.s, kv->key.len, (uint32_t)kv->type)) return -1;
    if (kv->type == GGUF_ARRAY && (put_u32(w, (uint32_t)kv->arr_type) || put_u64(w, kv->n))) return -1;
    return put(w, kv->data, kv->nbytes);
}

int gguf_w_u32(gguf_writer *w, const char *key, uint32_t v) {
    return put_key(w, key, strlen(key), GGUF_U32) || put_u32(w, v) ? -1 : 0;
}

int gguf_w_str(gguf_writer *w, const char *key, const char *s) {
    return put_key(w, key, strlen(key), GGUF_STRING) || put_str(w, s, strlen(s)) ? -1 : 0;
}

int gguf_w_arr_str(gguf_writer *w, const char *key, const gguf_str *s, uint64_t n) {
    if (put_key(w, key, strlen(key), GGUF_ARRAY) || put_u32(w, GGUF_STRING) || put_u64(w, n)) return -1;
    for (uint64_t i = 0; i < n; i++)
        if (put_str(w, s[i].s, s[i].len)) return -1;
    return 0;
}

int gguf_w_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n) {
    if (put_key(w, key, strlen(key), GGUF_ARRAY) || put_u32(w, GGUF_I32) || put_u64(w, n)) return -1;
    return put(w, v, (size_t)n * 4);
}

int gguf_w_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n) {
    if (put_key(w, key, strlen(key), GGUF_ARRAY) || put_u32(w, GGUF_F32) || put_u64(w, n)) return -1;
    return put(w, v, (size_t)n * 4);
}

int gguf_w_tensor(gguf_writer *w, const char *name, int n_dims, const int64_t *ne, int type, const void *data,
                  size_t nbytes, int owned) {
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS) return -1;
    for (int i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0) return -1;
    if (w->n_t == w->cap_t) {
        int cap = w->cap_t ? 2 * w->cap_t : 64;
        w_tensor *t = realloc(w->t, (size_t)cap * sizeof *t);
        if (!t) return w->failed = 1, -1;
        w->t = t, w->cap_t = cap;
    }
    w_tensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name))) return w->failed = 1, -1;
    t->n_dims = n_dims;
    for (int i = 0; i < n_dims; i++) t->ne[i] = ne[i];
    t->type = type, t->data = data, t->nbytes = nbytes, t->owned = owned;
    w->n_t++;
    return 0;
}

static int wr(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n ? 0 : -1; }
static int wr_pad(FILE *f, uint64_t *pos) {
    static const uint8_t zero[GGUF_W_ALIGN];
    size_t pad = (size_t)((GGUF_W_ALIGN - *pos % GGUF_W_ALIGN) % GGUF_W_ALIGN);
    *pos += pad;
    return wr(f, zero, pad);
}

seslm_status gguf_w_write(gguf_writer *w, const char *path) {
    if (w->failed) return seslm_fail(SESLM_ERR_NOMEM, "out of memory while building %s", path);
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return seslm_fail(SESLM_ERR_ARG, "path too long");
    FILE *f = fopen(tmp, "wb");
    if (!f) return seslm_fail(SESLM_ERR_IO, "%s: cannot create: %m", tmp);
    const uint32_t version = 3;
    const uint64_t nt = (uint64_t)w->n_t;
    uint64_t pos = 0;
    int bad = wr(f, "GGUF", 4) || wr(f, &version, 4) || wr(f, &nt, 8) || wr(f, &w->n_kv, 8) || wr(f, w->kv, w->kv_len);
    pos = 24 + w->kv_len;
    uint64_t off = 0;
    for (int i = 0; i < w->n_t && !bad; i++) {
        const w_tensor *t = &w->t[i];
        const uint64_t nl = strlen(t->name);
        const uint32_t nd = (uint32_t)t->n_dims, ty = (uint32_t)t->type;
        bad = wr(f, &nl, 8) || wr(f, t->name, nl) || wr(f, &nd, 4);
        for (int d = 0; d < t->n_dims && !bad; d++) bad = wr(f, &t->ne[d], 8);
        bad = bad || wr(f, &ty, 4) || wr(f, &off, 8);
        pos += 8 + nl + 4 + 8 * nd + 4 + 8;
        off += (t->nbytes + GGUF_W_ALIGN - 1) / GGUF_W_ALIGN * GGUF_W_ALIGN;
    }
    bad = bad || wr_pad(f, &pos);
    for (int i = 0; i < w->n_t && !bad; i++) {
        bad = wr(f, w->t[i].data, w->t[i].nbytes);
        pos += w->t[i].nbytes;
        bad = bad || wr_pad(f, &pos);
    }
    bad = bad || fflush(f) != 0 || fsync(fileno(f)) != 0;
    if (fclose(f) != 0) bad = 1;
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return seslm_fail(SESLM_ERR_IO, "%s: cannot write: %m", path);
    }
    return SESLM_OK;
}
