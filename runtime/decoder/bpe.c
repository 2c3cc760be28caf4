/* bpe.c — byte-level BPE (bpe.h): pre-tokenizer, merges by rank, byte alphabet. */
#include "bpe.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4 };

typedef struct {
    uint64_t key; // (left id + 1) << 32 | (right id + 1); 0 = empty
    int32_t rank, merged;
} merge_slot;

typedef struct {
    const char *s;
    uint32_t len;
    int32_t id; // -1 = empty
} str_slot;

struct bpe_tokenizer {
    int n_vocab;
    char **text;     // token text as stored (GPT-2 alphabet), NUL-terminated
    uint32_t *tlen;
    uint8_t *type;
    str_slot *strs;  // text -> id (open addressing, power-of-two size)
    size_t strs_cap;
    merge_slot *merges;
    size_t merges_cap;
    int32_t byte_tok[256]; // token of each byte's alphabet character
    uint16_t byte_cp[256]; // the alphabet: byte -> code point
    int16_t cp_byte[512];  // and back (code points < 512), -1 where not in the alphabet
    int split_digits;
    int32_t bos, eos;
    int32_t *specials;     // ids of control / user-defined / unknown tokens, longest text first
    int n_specials;
};

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}
static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

int32_t bpe_lookup(const bpe_tokenizer *t, const char *s, size_t len) {
    size_t mask = t->strs_cap - 1, i = hash_bytes(s, len) & mask;
    while (t->strs[i].id >= 0) {
        if (t->strs[i].len == len && memcmp(t->strs[i].s, s, len) == 0) return t->strs[i].id;
        i = (i + 1) & mask;
    }
    return -1;
}

static const merge_slot *merge_find(const bpe_tokenizer *t, int32_t a, int32_t b) {
    uint64_t key = ((uint64_t)(uint32_t)(a + 1) << 32) | (uint32_t)(b + 1);
    size_t mask = t->merges_cap - 1, i = hash_u64(key) & mask;
    while (t->merges[i].key) {
        if (t->merges[i].key == key) return &t->merges[i];
        i = (i + 1) & mask;
    }
    return NULL;
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

static int cmp_special_len(const void *a, const void *b, void *t_) {
    const bpe_tokenizer *t = t_;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (t->tlen[x] != t->tlen[y]) return t->tlen[x] > t->tlen[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

static void sort_specials(bpe_tokenizer *t) { // insertion sort: a few dozen entries
    for (int i = 1; i < t->n_specials; i++)
        for (int j = i; j > 0 && cmp_special_len(&t->specials[j], &t->specials[j - 1], t) < 0; j--) {
            int32_t s = t->specials[j];
            t->specials[j] = t->specials[j - 1];
            t->specials[j - 1] = s;
        }
}

void bpe_free(bpe_tokenizer *t) {
    if (!t) return;
    if (t->text)
        for (int i = 0; i < t->n_vocab; i++) free(t->text[i]);
    free(t->text);
    free(t->tlen);
    free(t->type);
    free(t->strs);
    free(t->merges);
    free(t->specials);
    free(t);
}

static int utf8_encode(uint32_t cp, char *o) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 63)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 63)); o[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 63));
    o[2] = (char)(0x80 | ((cp >> 6) & 63)); o[3] = (char)(0x80 | (cp & 63));
    return 4;
}

seslm_status bpe_load(bpe_tokenizer **out, const gguf_file *f, const char *name) {
    *out = NULL;
    gguf_str model, pre = {"", 0};
    if (gguf_get_str(f, "tokenizer.ggml.model", &model) != 0 || model.len != 4 || memcmp(model.s, "gpt2", 4) != 0)
        return seslm_fail(SESLM_ERR_FORMAT, "%s: tokenizer.ggml.model is not \"gpt2\" (byte-level BPE)", name);
    gguf_get_str(f, "tokenizer.ggml.pre", &pre);
    const gguf_kv *toks = gguf_find_kv(f, "tokenizer.ggml.tokens");
    const gguf_kv *types = gguf_find_kv(f, "tokenizer.ggml.token_type");
    const gguf_kv *merges = gguf_find_kv(f, "tokenizer.ggml.merges");
    if (!toks || toks->type != GGUF_ARRAY || toks->arr_type != GGUF_STRING || toks->n < 256 || toks->n > (1u << 24))
        return seslm_fail(SESLM_ERR_FORMAT, "%s: tokenizer.ggml.tokens missing or not a string array of 256..2^24", name);
    if (!merges || merges->type != GGUF_ARRAY || merges->arr_type != GGUF_STRING)
        return seslm_fail(SESLM_ERR_FORMAT, "%s: tokenizer.ggml.merges missing or not a string array", name);
    if (types && (types->type != GGUF_ARRAY || types->n != toks->n || types->arr_type == GGUF_STRING ||
                  types->arr_type == GGUF_ARRAY))
        return seslm_fail(SESLM_ERR_FORMAT, "%s: tokenizer.ggml.token_type does not match the tokens", name);
    bpe_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    t->n_vocab = (int)toks->n;
    t->text = calloc((size_t)t->n_vocab, sizeof *t->text);
    t->tlen = calloc((size_t)t->n_vocab, sizeof *t->tlen);
    t->type = calloc((size_t)t->n_vocab, 1);
    t->strs_cap = pow2_at_least((size_t)t->n_vocab * 2);
    t->strs = malloc(t->strs_cap * sizeof *t->strs);
    t->merges_cap = pow2_at_least((size_t)merges->n * 2);
    t->merges = calloc(t->merges_cap, sizeof *t->merges);
    t->specials = malloc((size_t)t->n_vocab * sizeof *t->specials);
    if (!t->text || !t->tlen || !t->type || !t->strs || !t->merges || !t->specials) {
        bpe_free(t);
        return seslm_fail(SESLM_ERR_NOMEM, "%s: out of memory for the tokenizer", name);
    }
    for (size_t i = 0; i < t->strs_cap; i++) t->strs[i].id = -1;
    for (int i = 0; i < t->n_vocab; i++) {
        gguf_str s = toks->strs[i];
        if (s.len > 4096) {
            bpe_free(t);
            return seslm_fail(SESLM_ERR_FORMAT, "%s: token %d is longer than 4096 bytes", name, i);
        }
        t->text[i] = malloc(s.len + 1);
        if (!t->text[i]) {
            bpe_free(t);
            return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        }
        memcpy(t->text[i], s.s, s.len);
        t->text[i][s.len] = 0;
        t->tlen[i] = (uint32_t)s.len;
        int64_t ty = types ? gguf_arr_int(types, (uint64_t)i) : TT_NORMAL;
        t->type[i] = (uint8_t)(ty >= 0 && ty < 8 ? ty : 0);
        if (s.len && (ty == TT_CONTROL || ty == TT_USER || ty == TT_UNKNOWN)) t->specials[t->n_specials++] = i;
        if (bpe_lookup(t, s.s, s.len) >= 0) continue; // first id wins, as in llama.cpp's token_to_id
        size_t mask = t->strs_cap - 1, h = hash_bytes(s.s, s.len) & mask;
        while (t->strs[h].id >= 0) h = (h + 1) & mask;
        t->strs[h] = (str_slot){t->text[i], (uint32_t)s.len, i};
    }
    sort_specials(t);
    // GPT-2's byte alphabet: printable Latin-1 bytes stand for themselves, the rest for 256, 257, ...
    for (int i = 0; i < 512; i++) t->cp_byte[i] = -1;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        t->byte_cp[b] = (uint16_t)(printable ? b : 256 + extra++);
        t->cp_byte[t->byte_cp[b]] = (int16_t)b;
        char u[4];
        int n = utf8_encode(t->byte_cp[b], u);
        // -1 where the vocabulary lacks the byte (SmolLM2 lacks a few control bytes): such a byte never
        // merges and is dropped from the output, as llama.cpp drops a symbol it cannot spell
        t->byte_tok[b] = bpe_lookup(t, u, (size_t)n);
    }
    for (uint64_t r = 0; r < merges->n; r++) {
        gguf_str m = merges->strs[r];
        const char *sp = memchr(m.s, ' ', m.len);
        if (!sp || sp == m.s || sp == m.s + m.len - 1) {
            bpe_free(t);
            return seslm_fail(SESLM_ERR_FORMAT, "%s: merge %llu is not \"left right\"", name, (unsigned long long)r);
        }
        size_t ll = (size_t)(sp - m.s), rl = m.len - ll - 1;
        int32_t a = bpe_lookup(t, m.s, ll), b = bpe_lookup(t, sp + 1, rl);
        if (a < 0 || b < 0 || ll + rl > 4096) continue; // a merge of non-tokens never applies
        char buf[4096];
        memcpy(buf, m.s, ll);
        memcpy(buf + ll, sp + 1, rl);
        int32_t c = bpe_lookup(t, buf, ll + rl);
        if (c < 0) continue; // its result is no token: skip it (llama.cpp would spell the result in bytes)
        uint64_t key = ((uint64_t)(uint32_t)(a + 1) << 32) | (uint32_t)(b + 1);
        size_t mask = t->merges_cap - 1, h = hash_u64(key) & mask;
        while (t->merges[h].key && t->merges[h].key != key) h = (h + 1) & mask;
        if (t->merges[h].key) continue; // duplicate: the first (lowest) rank stays
        t->merges[h] = (merge_slot){key, (int32_t)r, c};
    }
    // pre-tokenizers with the digit split (llama.cpp: STARCODER, REFACT, COMMAND_R, SMOLLM, CODESHELL, ...)
    static const char *const digit_split[] = {"smollm", "starcoder", "refact", "command-r", "codeshell",
                                              "exaone", "minerva-7b"};
    for (size_t i = 0; i < sizeof digit_split / sizeof digit_split[0]; i++)
        if (pre.len == strlen(digit_split[i]) && memcmp(pre.s, digit_split[i], pre.len) == 0) t->split_digits = 1;
    int known = t->split_digits || pre.len == 0 || (pre.len == 4 && memcmp(pre.s, "gpt2", 4) == 0) ||
                (pre.len == 7 && memcmp(pre.s, "default", 7) == 0);
    if (!known) {
        bpe_free(t);
        return seslm_fail(SESLM_ERR_FORMAT, "%s: pre-tokenizer \"%.*s\" is not supported (gpt2, smollm, starcoder)",
                          name, (int)(pre.len > 64 ? 64 : pre.len), pre.s);
    }
    uint32_t v;
    t->bos = gguf_get_u32(f, "tokenizer.ggml.bos_token_id", &v) == 0 && v < (uint32_t)t->n_vocab ? (int32_t)v : -1;
    t->eos = gguf_get_u32(f, "tokenizer.ggml.eos_token_id", &v) == 0 && v < (uint32_t)t->n_vocab ? (int32_t)v : -1;
    *out = t;
    return SESLM_OK;
}

int bpe_vocab_size(const bpe_tokenizer *t) { return t->n_vocab; }
int32_t bpe_bos(const bpe_tokenizer *t) { return t->bos; }
int32_t bpe_eos(const bpe_tokenizer *t) { return t->eos; }
int32_t bpe_doc_start(const bpe_tokenizer *t) {
    const int32_t s = bpe_lookup(t, "<|endoftext|>", 13);
    return s >= 0 ? s : t->bos >= 0 ? t->bos : t->eos;
}
int bpe_is_control(const bpe_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && t->type[id] == TT_CONTROL;
}

// ---------------------------------------------------------------------------------------------
// encoding

typedef struct {
    int32_t *v;
    int n, cap;
} ids_buf;

static int ids_push(ids_buf *b, int32_t id) {
    if (b->n == b->cap) {
        int nc = b->cap ? b->cap * 2 : 64;
        int32_t *nv = realloc(b->v, (size_t)nc * sizeof *nv);
        if (!nv) return -1;
        b->v = nv;
        b->cap = nc;
    }
    b->v[b->n++] = id;
    return 0;
}

/* BPE of one pre-token (bytes) appended to out. sym is scratch of len entries. */
static int bpe_word(const bpe_tokenizer *t, const uint8_t *w, int len, int32_t *sym, ids_buf *out) {
    for (int i = 0; i < len; i++) sym[i] = t->byte_tok[w[i]];
    int n = len;
    for (;;) { // merge the lowest-ranked adjacent pair, leftmost on ties
        int best = -1;
        int32_t best_rank = INT32_MAX, merged = -1;
        for (int i = 0; i + 1 < n; i++) {
            if (sym[i] < 0 || sym[i + 1] < 0) continue;
            const merge_slot *m = merge_find(t, sym[i], sym[i + 1]);
            if (m && m->rank < best_rank) {
                best_rank = m->rank;
                best = i;
                merged = m->merged;
            }
        }
        if (best < 0) break;
        sym[best] = merged;
        memmove(sym + best + 1, sym + best + 2, (size_t)(n - best - 2) * sizeof *sym);
        n--;
    }
    for (int i = 0; i < n; i++)
        if (sym[i] >= 0 && ids_push(out, sym[i]) != 0) return -1;
    return 0;
}

enum { F_LETTER = 1, F_NUMBER = 2, F_SPACE = 4, F_OTHER = 8 };

static int cp_flags(int32_t cp) {
    switch (cp) { // llama.cpp's whitespace set (unicode-data.cpp)
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0: case 0x1680:
    case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
        return F_SPACE;
    default: break;
    }
    if (cp >= 0x2000 && cp <= 0x200A) return F_SPACE;
    utf8proc_category_t c = utf8proc_category(cp);
    if (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) return F_LETTER;
    if (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO) return F_NUMBER;
    return F_OTHER;
}

/* The GPT-2 regex over code points [lo, hi) of one segment (llama.cpp's unicode_regex_split_custom_gpt2):
 * calls emit for each pre-token [a, b) in code-point indices. */
static int gpt2_split(const bpe_tokenizer *t, const int32_t *cp, const int *fl, const int *off, int lo, int hi,
                      const uint8_t *bytes, int32_t *sym, ids_buf *out) {
#define FL(p) ((p) >= lo && (p) < hi ? fl[p] : 0)
#define CP(p) ((p) >= lo && (p) < hi ? cp[p] : -1)
    int prev = lo, pos = lo;
#define EMIT(end)                                                                                        \
    do {                                                                                                 \
        int e_ = (end);                                                                                  \
        if (e_ > prev && bpe_word(t, bytes + off[prev], off[e_] - off[prev], sym, out) != 0) return -1;  \
        prev = e_;                                                                                       \
    } while (0)
    while (pos < hi) {
        int32_t c = cp[pos];
        if (c == '\'' && pos + 1 < hi) {
            int32_t n1 = CP(pos + 1);
            if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') {
                EMIT(pos + 2);
                pos += 2;
                continue;
            }
            if (pos + 2 < hi) {
                int32_t n2 = CP(pos + 2);
                if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l')) {
                    EMIT(pos + 3);
                    pos += 3;
                    continue;
                }
            }
        }
        int f2 = c == ' ' ? FL(pos + 1) : fl[pos];
        if (f2 & (F_LETTER | F_NUMBER | F_OTHER)) {
            int cls = f2;
            pos += c == ' ';
            while (FL(pos) == cls) pos++;
            EMIT(pos);
            continue;
        }
        int nws = 0;
        while (FL(pos + nws) == F_SPACE) nws++;
        if (nws > 1 && CP(pos + nws) != -1) {
            pos += nws - 1;
            EMIT(pos);
            continue;
        }
        if (nws > 0) {
            pos += nws;
            EMIT(pos);
            continue;
        }
        EMIT(++pos);
    }
    return 0;
#undef FL
#undef CP
#undef EMIT
}

/* Pre-tokenize and BPE one fragment of plain text (no special tokens in it). */
static seslm_status encode_fragment(const bpe_tokenizer *t, const uint8_t *s, int len, int base, ids_buf *out) {
    if (len == 0) return SESLM_OK;
    int32_t *cp = malloc((size_t)len * sizeof *cp), *sym = malloc((size_t)len * sizeof *sym);
    int *fl = malloc((size_t)len * sizeof *fl), *off = malloc(((size_t)len + 1) * sizeof *off);
    seslm_status st = SESLM_OK;
    if (!cp || !sym || !fl || !off) {
        st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        goto done;
    }
    int n = 0, i = 0;
    while (i < len) {
        int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(s + i, len - i, &c);
        if (k <= 0) {
            st = seslm_fail(SESLM_ERR_UTF8, "invalid UTF-8 at byte %d", base + i);
            goto done;
        }
        off[n] = i;
        cp[n] = c;
        fl[n] = cp_flags(c);
        n++;
        i += (int)k;
    }
    off[n] = len;
    // segments: each number code point alone when digits are split, the runs between them
    int lo = 0;
    for (int p = 0; p <= n; p++) {
        int cut = p == n || (t->split_digits && fl[p] == F_NUMBER);
        if (!cut) continue;
        if (p > lo && gpt2_split(t, cp, fl, off, lo, p, s, sym, out) != 0) goto oom;
        if (p < n) {
            if (gpt2_split(t, cp, fl, off, p, p + 1, s, sym, out) != 0) goto oom;
        }
        lo = p + 1;
    }
    goto done;
oom:
    st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
done:
    free(cp);
    free(sym);
    free(fl);
    free(off);
    return st;
}

seslm_status bpe_encode(const bpe_tokenizer *t, const char *text, size_t len, int parse_special, int32_t **ids,
                        int *n) {
    *ids = NULL;
    *n = 0;
    if (len > (size_t)1 << 30) return seslm_fail(SESLM_ERR_LIMIT, "text of %zu bytes is too long to tokenize", len);
    ids_buf out = {0};
    const uint8_t *s = (const uint8_t *)text;
    size_t start = 0, i = 0;
    seslm_status st = SESLM_OK;
    while (i < len && st == SESLM_OK) {
        int32_t hit = -1;
        for (int k = 0; k < t->n_specials; k++) { // longest first
            int32_t id = t->specials[k];
            if (!parse_special && t->type[id] != TT_USER) continue;
            if (t->tlen[id] <= len - i && memcmp(s + i, t->text[id], t->tlen[id]) == 0) {
                hit = id;
                break;
            }
        }
        if (hit < 0) {
            i++;
            continue;
        }
        st = encode_fragment(t, s + start, (int)(i - start), (int)start, &out);
        if (st == SESLM_OK && ids_push(&out, hit) != 0) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        i += t->tlen[hit];
        start = i;
    }
    if (st == SESLM_OK) st = encode_fragment(t, s + start, (int)(len - start), (int)start, &out);
    if (st != SESLM_OK) {
        free(out.v);
        return st;
    }
    *ids = out.v ? out.v : malloc(sizeof(int32_t));
    *n = out.n;
    return *ids ? SESLM_OK : seslm_fail(SESLM_ERR_NOMEM, "out of memory");
}

int bpe_token_bytes(const bpe_tokenizer *t, int32_t id, int special, char *buf, int cap) {
    if (id < 0 || id >= t->n_vocab) return -1;
    if (t->type[id] == TT_CONTROL || t->type[id] == TT_UNKNOWN) {
        if (!special) return 0;
        int n = (int)t->tlen[id];
        memcpy(buf, t->text[id], (size_t)(n < cap ? n : cap));
        return n;
    }
    if (t->type[id] == TT_USER) { // user-defined tokens are stored as plain text
        int n = (int)t->tlen[id];
        memcpy(buf, t->text[id], (size_t)(n < cap ? n : cap));
        return n;
    }
    const uint8_t *p = (const uint8_t *)t->text[id];
    int len = (int)t->tlen[id], i = 0, o = 0;
    while (i < len) {
        int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, len - i, &c);
        if (k <= 0) { // not UTF-8 in the vocabulary: pass the byte through
            if (o < cap) buf[o] = (char)p[i];
            o++;
            i++;
            continue;
        }
        if (c < 512 && t->cp_byte[c] >= 0) {
            if (o < cap) buf[o] = (char)t->cp_byte[c];
            o++;
        } else {
            for (utf8proc_ssize_t j = 0; j < k; j++, o++)
                if (o < cap) buf[o] = (char)p[i + j];
        }
        i += (int)k;
    }
    return o;
}
