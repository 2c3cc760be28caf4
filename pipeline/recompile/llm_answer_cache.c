/* llm_answer_cache.c — the parent's greedy answers to served prompts, kept in a file (llm_answer_cache.h). */
#include "llm_answer_cache.h"

#include "bpe.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "SESLMANS"
#define VERSION 1u

typedef struct {
    uint64_t h;        // FNV-1a of the prompt's ids
    uint32_t np, k, m; // prompt tokens, answer limit, answer tokens
    int32_t *ans;      // (m)
} entry;

struct seslm_llm_answer_cache {
    char *path;
    char sha[65];
    int32_t stop[3]; // the tokens that end an answer (seslm_llm_continue_greedy's)
    entry *e;
    int n, cap, dirty;
    long long hits, misses;
};

static uint64_t fnv_ids(const int32_t *ids, int n) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < n; i++)
        for (int b = 0; b < 4; b++) h = (h ^ (((uint32_t)ids[i] >> (8 * b)) & 0xffu)) * 1099511628211ull;
    return h;
}

static void put_u32(unsigned char *p, uint32_t v) {
    for (int b = 0; b < 4; b++) p[b] = (unsigned char)(v >> (8 * b));
}
static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

// takes ans (malloc'd, m tokens): kept by the entry, or freed when it cannot be added
static int add(seslm_llm_answer_cache *c, uint64_t h, uint32_t np, uint32_t k, int32_t *ans, uint32_t m) {
    if (c->n == c->cap) {
        const int cap = c->cap ? 2 * c->cap : 64;
        entry *e = realloc(c->e, (size_t)cap * sizeof *e);
        if (!e) {
            free(ans);
            return -1;
        }
        c->e = e, c->cap = cap;
    }
    c->e[c->n++] = (entry){h, np, k, m, ans};
    return 0;
}

static void drop_all(seslm_llm_answer_cache *c) {
    for (int i = 0; i < c->n; i++) free(c->e[i].ans);
    c->n = 0;
}

// the file's entries when it is this parent's and whole; else nothing (and why, for the message)
static const char *load(seslm_llm_answer_cache *c, const unsigned char *p, size_t size) {
    if (size < 8 + 4 + 64 + 4 || memcmp(p, MAGIC, 8) != 0) return "not an answer cache";
    if (get_u32(p + 8) != VERSION) return "another version of the format";
    if (memcmp(p + 12, c->sha, 64) != 0) return "the answers of another parent";
    const uint32_t n = get_u32(p + 76);
    size_t o = 80;
    for (uint32_t i = 0; i < n; i++) {
        if (size - o < 8 + 12) return "cut short";
        uint64_t h = 0;
        for (int b = 0; b < 8; b++) h |= (uint64_t)p[o + b] << (8 * b);
        const uint32_t np = get_u32(p + o + 8), k = get_u32(p + o + 12), m = get_u32(p + o + 16);
        o += 20;
        if (m > k || m > (size - o) / 4) return "cut short";
        int32_t *ans = malloc((m ? m : 1) * sizeof *ans);
        if (!ans) return "out of memory";
        for (uint32_t j = 0; j < m; j++) ans[j] = (int32_t)get_u32(p + o + 4 * (size_t)j);
        o += 4 * (size_t)m;
        if (add(c, h, np, k, ans, m)) return "out of memory";
    }
    return o == size ? NULL : "trailing bytes";
}

seslm_status seslm_llm_answer_cache_open(const char *path, const seslm_llm *parent, int verbose, seslm_llm_answer_cache **out) {
    *out = NULL;
    seslm_llm_answer_cache *c = calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(path))) {
        free(c);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    snprintf(c->sha, sizeof c->sha, "%s", seslm_llm_sha256(parent));
    const bpe_tokenizer *tok = seslm_llm_tokenizer(parent);
    c->stop[0] = bpe_lookup(tok, "<|im_end|>", 10), c->stop[1] = bpe_lookup(tok, "<|endoftext|>", 13), c->stop[2] = bpe_eos(tok);
    if (strlen(c->sha) != 64) { // cannot identify the parent: work without a cache rather than risk another's answers
        free(c->path), free(c);
        if (verbose) fprintf(stderr, "seslm: the answer cache %s is not used: the parent's weights could not be hashed\n", path);
        return SESLM_OK;
    }
    char *buf = NULL;
    size_t size = 0;
    int missing = 0;
    const seslm_status rst = util_read_file(path, &buf, &size, (size_t)1 << 32, &missing);
    if (!missing) { // a file that is there: used when it is this parent's and whole
        const char *why = rst ? "unreadable" : load(c, (const unsigned char *)buf, size);
        free(buf);
        if (why) {
            drop_all(c);
            c->dirty = 1; // replaced with what this run computes
            if (verbose) fprintf(stderr, "seslm: the answer cache %s is not used (%s); it will be rewritten\n", path, why);
        } else if (verbose)
            fprintf(stderr, "seslm: the answer cache %s holds %d answers of this parent\n", path, c->n);
    }
    *out = c;
    return SESLM_OK;
}

// Greedy answers are prefixes of each other: the answer under a limit k is the first k tokens of the answer under
// any larger limit (generation stops at a stop token, so one within the first k would have ended that answer
// too). An entry asked with limit e->k therefore serves every k <= e->k, and, when it ended before its limit (a stop
// token, or the context's end), every k at all.
static uint32_t serves(const seslm_llm_answer_cache *c, const entry *e, uint32_t k) {
    const int ended = e->m < e->k || (e->m > 0 && (e->ans[e->m - 1] == c->stop[0] || e->ans[e->m - 1] == c->stop[1] ||
                                                    e->ans[e->m - 1] == c->stop[2]));
    if (!ended && k > e->k) return UINT32_MAX;
    return k < e->m ? k : e->m;
}

seslm_status seslm_llm_answer_cache_greedy(seslm_llm_answer_cache *c, const seslm_llm *parent, int32_t **ids, int *n, int k) {
    if (!c || k <= 0 || *n <= 0) return seslm_llm_continue_greedy(parent, ids, n, k);
    const uint64_t h = fnv_ids(*ids, *n);
    for (int i = 0; i < c->n; i++) {
        const entry *e = &c->e[i];
        if (e->h != h || e->np != (uint32_t)*n) continue;
        const uint32_t m = serves(c, e, (uint32_t)k);
        if (m == UINT32_MAX) continue;
        int32_t *g = realloc(*ids, ((size_t)*n + m) * sizeof *g);
        if (!g) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        if (m) memcpy(g + *n, e->ans, m * sizeof *g);
        *ids = g, *n += (int)m;
        c->hits++;
        return SESLM_OK;
    }
    const int np = *n;
    seslm_status st = seslm_llm_continue_greedy(parent, ids, n, k);
    if (st) return st;
    c->misses++;
    const uint32_t m = (uint32_t)(*n - np);
    int32_t *a = malloc((m ? m : 1) * sizeof *a);
    if (a && m) memcpy(a, *ids + np, m * sizeof *a);
    if (a && add(c, h, (uint32_t)np, (uint32_t)k, a, m) == 0) c->dirty = 1;
    return SESLM_OK; // an answer the cache could not keep is still the answer
}

void seslm_llm_answer_cache_counts(const seslm_llm_answer_cache *c, long long *hits, long long *misses) {
    *hits = c ? c->hits : 0;
    *misses = c ? c->misses : 0;
}

seslm_status seslm_llm_answer_cache_close(seslm_llm_answer_cache *c) {
    if (!c) return SESLM_OK;
    seslm_status st = SESLM_OK;
    if (c->dirty) {
        size_t size = 80;
        for (int i = 0; i < c->n; i++) size += 20 + 4 * (size_t)c->e[i].m;
        unsigned char *p = malloc(size);
        if (!p) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        else {
            memcpy(p, MAGIC, 8);
            put_u32(p + 8, VERSION);
            memcpy(p + 12, c->sha, 64);
            put_u32(p + 76, (uint32_t)c->n);
            size_t o = 80;
            for (int i = 0; i < c->n; i++) {
                const entry *e = &c->e[i];
                for (int b = 0; b < 8; b++) p[o + b] = (unsigned char)(e->h >> (8 * b));
                put_u32(p + o + 8, e->np), put_u32(p + o + 12, e->k), put_u32(p + o + 16, e->m);
                o += 20;
                for (uint32_t j = 0; j < e->m; j++) put_u32(p + o + 4 * (size_t)j, (uint32_t)e->ans[j]);
                o += 4 * (size_t)e->m;
            }
            st = util_write_file_atomic(c->path, p, size);
            free(p);
        }
    }
    drop_all(c);
    free(c->e), free(c->path), free(c);
    return st;
}
