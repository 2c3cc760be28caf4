/* retrieve.c — knowledge base: build, crash-safe save, verified load, exact top-k cosine search. */
#include "retrieve.h"
#include "safetensors_write.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KB_FORMAT "seslm-kb"

struct seslm_kb {
    int n, dim;
    float *emb;      // (n, dim), unit rows
    char **passages; // n strings
    char sha[65];
};

static void sha256_hex(const void *data, size_t len, char out[65]) {
    unsigned char md[32];
    unsigned int mdl = 0;
    EVP_Digest(data, len, md, &mdl, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

void seslm_kb_free(seslm_kb *kb) {
    if (!kb) return;
    for (int i = 0; kb->passages && i < kb->n; i++) free(kb->passages[i]);
    free(kb->passages);
    free(kb->emb);
    free(kb);
}

seslm_status seslm_kb_new(seslm_kb **out, const char *const *passages, int n, const float *emb, int dim,
                          const char *model_sha256) {
    *out = NULL;
    if (n < 1 || dim < 1) return seslm_fail(SESLM_ERR_ARG, "knowledge base: no passages");
    seslm_kb *kb = calloc(1, sizeof *kb);
    if (!kb) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    kb->dim = dim;
    kb->emb = malloc((size_t)n * dim * sizeof(float));
    kb->passages = calloc((size_t)n, sizeof(char *));
    if (!kb->emb || !kb->passages) {
        seslm_kb_free(kb);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory for %d passages", n);
    }
    for (int i = 0; i < n; i++) {
        if (strpbrk(passages[i], "\r\n")) {
            kb->n = i;
            seslm_kb_free(kb);
            return seslm_fail(SESLM_ERR_ARG, "passage %d contains a line break", i);
        }
        kb->passages[i] = strdup(passages[i]);
        kb->n = i + 1;
        if (!kb->passages[i]) {
            seslm_kb_free(kb);
            return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        }
        double s = 0;
        for (int d = 0; d < dim; d++) s += (double)emb[(size_t)i * dim + d] * emb[(size_t)i * dim + d];
        if (!isfinite(s) || s == 0) {
            seslm_kb_free(kb);
            return seslm_fail(SESLM_ERR_ARG, "passage %d: embedding is zero or not finite", i);
        }
        const double inv = 1.0 / sqrt(s); // in double: a row of subnormal floats has 1 / |row| beyond float's range
        for (int d = 0; d < dim; d++) kb->emb[(size_t)i * dim + d] = (float)(emb[(size_t)i * dim + d] * inv);
    }
    snprintf(kb->sha, sizeof kb->sha, "%s", model_sha256 ? model_sha256 : "");
    *out = kb;
    return SESLM_OK;
}

int seslm_kb_size(const seslm_kb *kb) { return kb->n; }
int seslm_kb_dim(const seslm_kb *kb) { return kb->dim; }
const char *seslm_kb_passage(const seslm_kb *kb, int i) { return i >= 0 && i < kb->n ? kb->passages[i] : NULL; }
const char *seslm_kb_model_sha256(const seslm_kb *kb) { return kb->sha; }

// ---- save / load ------------------------------------------------------------------------------------

/* Writes len bytes to path crash-safely: temp file in the same directory, fsync, rename, fsync dir. */
static seslm_status write_atomic(const char *dir, const char *path, const char *data, size_t len) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return seslm_fail(SESLM_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return seslm_fail(SESLM_ERR_IO, "cannot write %s: %s", tmp, strerror(e));
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlink(tmp);
        return seslm_fail(SESLM_ERR_IO, "cannot sync %s: %s", tmp, strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return seslm_fail(SESLM_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(e));
    }
    return st_fsync_dir(dir);
}

/* passages.txt as one buffer (each passage + '\n'). */
static char *join_passages(const seslm_kb *kb, size_t *len) {
    size_t n = 0;
    for (int i = 0; i < kb->n; i++) n += strlen(kb->passages[i]) + 1;
    char *buf = malloc(n + 1), *p = buf;
    if (!buf) return NULL;
    for (int i = 0; i < kb->n; i++) {
        size_t l = strlen(kb->passages[i]);
        memcpy(p, kb->passages[i], l);
        p[l] = '\n';
        p += l + 1;
    }
    *len = n;
    return buf;
}

seslm_status seslm_kb_save(const seslm_kb *kb, const char *dir) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return seslm_fail(SESLM_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    size_t len = 0;
    char *text = join_passages(kb, &len);
    if (!text) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    char path[4096], psha[65];
    sha256_hex(text, len, psha);
    snprintf(path, sizeof path, "%s/passages.txt", dir);
    seslm_status st = write_atomic(dir, path, text, len);
    free(text);
    if (st != SESLM_OK) return st;
    cJSON *m = cJSON_CreateObject();
    char num[32];
    cJSON_AddStringToObject(m, "format", KB_FORMAT);
    cJSON_AddStringToObject(m, "version", "1");
    snprintf(num, sizeof num, "%d", kb->n);
    cJSON_AddStringToObject(m, "passages", num);
    cJSON_AddStringToObject(m, "passages_sha256", psha);
    cJSON_AddStringToObject(m, "model_sha256", kb->sha);
    char *meta = cJSON_PrintUnformatted(m);
    cJSON_Delete(m);
    if (!meta) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    st_write_tensor t = {.name = "embeddings", .dtype = ST_F32, .ndim = 2, .shape = {kb->n, kb->dim}, .data = kb->emb};
    snprintf(path, sizeof path, "%s/index.safetensors", dir);
    st = st_write(path, &t, 1, meta);
    free(meta);
    return st;
}

/* passages.txt, whole (util_read_file: a FIFO or directory fails without blocking a node's start). */
static seslm_status read_file(const char *path, char **out, size_t *len) {
    return util_read_file(path, out, len, (size_t)1 << 36, NULL);
}

/* The "__metadata__" of a safetensors file as a cJSON object (NULL when absent). */
static cJSON *st_metadata(const char *path) {
    FILE *f = NULL;
    if (util_fopen_read(path, 0, &f) != SESLM_OK) return NULL;
    unsigned char l8[8];
    cJSON *meta = NULL;
    if (fread(l8, 1, 8, f) == 8) {
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--) n = n << 8 | l8[i];
        char *h = n > 1 && n < (64u << 20) ? malloc(n + 1) : NULL;
        if (h && fread(h, 1, n, f) == n) {
            cJSON *root = cJSON_ParseWithLength(h, n);
            meta = cJSON_DetachItemFromObjectCaseSensitive(root, "__metadata__");
            cJSON_Delete(root);
        }
        free(h);
    }
    fclose(f);
    return meta;
}

seslm_status seslm_kb_load(seslm_kb **out, const char *dir) {
    *out = NULL;
    char ipath[4096], ppath[4096];
    snprintf(ipath, sizeof ipath, "%s/index.safetensors", dir);
    snprintf(ppath, sizeof ppath, "%s/passages.txt", dir);
    st_file f = {0};
    seslm_status st = st_open(&f, ipath);
    if (st != SESLM_OK) return st;
    cJSON *m = st_metadata(ipath);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(m, "format"), *ps = cJSON_GetObjectItemCaseSensitive(m, "passages_sha256"),
                *ms = cJSON_GetObjectItemCaseSensitive(m, "model_sha256");
    const st_tensor *e = st_find(&f, "embeddings");
    char *text = NULL;
    size_t len = 0;
    seslm_kb *kb = NULL;
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, KB_FORMAT) != 0 || !cJSON_IsString(ps)) {
        st = seslm_fail(SESLM_ERR_FORMAT, "%s: not a knowledge-base index (seslm kb build makes one)", ipath);
    } else if (!e || e->dtype != ST_F32 || e->ndim != 2 || e->shape[0] < 1 || e->shape[1] < 1 || e->shape[0] > (1 << 28) ||
               e->shape[1] > (1 << 20)) {
        st = seslm_fail(SESLM_ERR_SHAPE, "%s: tensor \"embeddings\" (n, dim) F32 missing or malformed", ipath);
    } else if ((st = read_file(ppath, &text, &len)) == SESLM_OK) {
        char sha[65];
        sha256_hex(text, len, sha);
        if (strcmp(sha, ps->valuestring) != 0) {
            st = seslm_fail(SESLM_ERR_FORMAT, "%s does not belong to %s (SHA-256 differs): rebuild the knowledge base", ppath, ipath);
        } else {
            const int n = (int)e->shape[0];
            const char **lines = malloc((size_t)n * sizeof(char *));
            int k = 0;
            for (char *p = text; lines && *p && k <= n;) {
                char *nl = strchr(p, '\n');
                if (!nl) break;
                *nl = 0;
                if (k < n) lines[k] = p;
                k++;
                p = nl + 1;
            }
            if (!lines) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
            else if (k != n) st = seslm_fail(SESLM_ERR_FORMAT, "%s has %d passages, the index %d", ppath, k, n);
            else st = seslm_kb_new(&kb, lines, n, e->data, (int)e->shape[1], cJSON_IsString(ms) ? ms->valuestring : "");
            free(lines);
        }
    }
    free(text);
    cJSON_Delete(m);
    st_close(&f);
    if (st != SESLM_OK) return st;
    *out = kb;
    return SESLM_OK;
}

// ---- search -------------------------------------------------------------------------------------------

int seslm_kb_search(const seslm_kb *kb, const float *q, int k, seslm_kb_hit *hits) {
    if (k < 1) return 0;
    if (k > kb->n) k = kb->n;
    double qn = 0;
    for (int d = 0; d < kb->dim; d++) qn += (double)q[d] * q[d];
    const float inv = qn > 0 ? (float)(1.0 / sqrt(qn)) : 0.0f;
    int have = 0;
    for (int i = 0; i < kb->n; i++) {
        const float *r = kb->emb + (size_t)i * kb->dim;
        float s = 0;
        for (int d = 0; d < kb->dim; d++) s += r[d] * q[d];
        s *= inv;
        // insertion into the sorted top-k (k is small); equal scores keep the earlier passage first
        if (have == k && s <= hits[k - 1].score) continue;
        int j = have < k ? have++ : k - 1;
        while (j > 0 && hits[j - 1].score < s) {
            hits[j] = hits[j - 1];
            j--;
        }
        hits[j] = (seslm_kb_hit){i, s};
    }
    return have;
}
