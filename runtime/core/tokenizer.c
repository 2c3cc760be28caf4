/* tokenizer.c — BERT tokenizer: BertNormalizer + BertPreTokenizer + WordPiece.
 *
 * The reference is the Rust `tokenizers` pipeline that sentence-transformers loads from
 * tokenizer.json (BertTokenizerFast), not the slow Python BertTokenizer. They differ in small ways,
 * and where they do this file follows the Rust one:
 *   - special tokens ([CLS], [SEP], [UNK], [PAD], [MASK]) written in the raw text are matched before
 *     any normalisation and become their own ids (the "added tokens" of tokenizer.json);
 *   - clean_text drops U+0000, U+FFFD and every character of category Cc/Cf/Co (keeping \t \n \r),
 *     then maps \t \n \r and Zs/Zl/Zp (Rust char::is_whitespace) to a space;
 *   - accents are stripped (NFD, then drop Mn) BEFORE lower-casing, with the canonical reordering
 *     that a whole-string NFD performs; lower-casing is per code point (no final-sigma context);
 *   - CJK ranges are those of the Rust normalizer (0x2B920.., not 0x2B820..).
 * Unicode properties (category, combining class, canonical decomposition, lower case) come from
 * utf8proc; the only code point lists here are the CJK blocks that the reference itself hard-codes.
 * Known, accepted differences: the reference takes categories from the `unicode_categories` crate
 * (about Unicode 8) and lower case from Rust std (Unicode 16), utf8proc 2.8 is Unicode 15. Checked
 * code point by code point, 624 of 1,112,064 are treated differently, all in 127 ranges of characters
 * added after Unicode 8 (new Mn/Cf/P* characters of rare scripts, e.g. U+08CA.., U+2E43..) plus
 * U+166D (Po -> So), U+1734 (Mc -> Mn) and the Unicode 16 case pairs (U+A7CB..).
 *
 * encode() does not allocate and keeps all its state on the stack, so concurrent calls on one
 * tokenizer are safe.
 */
#include "seslm.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

// ---------------------------------------------------------------------------------------------
// constants

#define TOK_MAX_WORD_CHARS 100                     // WordPiece max_input_chars_per_word
#define TOK_WORD_HEADROOM 2                        // room to write "##" in front of a piece
#define TOK_WORD_BYTES (TOK_MAX_WORD_CHARS * 4)    // a stored word is at most 100 chars of <= 4 bytes
#define TOK_MAX_SPECIAL 32                         // special tokens matched in the raw text
#define TOK_DEFAULT_MAX_LEN 512
#define TOK_DECOMP_CAP 16                          // canonical decompositions are at most 4 code points

enum { TOK_SPECIAL_CLS, TOK_SPECIAL_SEP, TOK_SPECIAL_UNK, TOK_SPECIAL_PAD, TOK_SPECIAL_MASK, TOK_N_NAMED };

// How the normaliser + pre-tokeniser treat one ASCII byte (precomputed per tokenizer).
enum { TOK_ASCII_DROP, TOK_ASCII_SPACE, TOK_ASCII_PUNCT, TOK_ASCII_WORD };

typedef struct {
    uint32_t hash;
    int32_t id; // -1: empty
} tok_slot;

typedef struct {
    char *text;
    size_t len;
    int32_t id;
} tok_special;

struct seslm_tokenizer {
    seslm_tokenizer_opts opts;
    bool strip;      // effective accent stripping
    bool lower;

    // vocabulary: the bytes of vocab.txt with each line end replaced by NUL
    char *vocab_buf;
    const char **tokens;  // id -> token
    uint32_t *token_len;
    int n_vocab;
    size_t max_token_bytes; // longest token: no substring longer than this can match

    // open-addressing hash table token -> id (linear probing, power-of-two size)
    tok_slot *slots;
    uint32_t slot_mask;

    int32_t cls_id, sep_id, unk_id;

    // special tokens matched verbatim in the input, leftmost-longest
    tok_special special[TOK_MAX_SPECIAL];
    int n_special;
    bool special_first[256]; // first bytes of special tokens, for a cheap scan

    uint8_t ascii_class[128];
    char ascii_norm[128];
};

// ---------------------------------------------------------------------------------------------
// hashing

static uint32_t tok_hash(const char *s, size_t n) {
    // FNV-1a: tokens are short, and this is simple and good enough for a 30k-entry table.
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    return h;
}

static int32_t tok_table_find(const seslm_tokenizer *tok, const char *s, size_t n) {
    uint32_t h = tok_hash(s, n);
    for (uint32_t i = h & tok->slot_mask;; i = (i + 1) & tok->slot_mask) {
        const tok_slot *sl = &tok->slots[i];
        if (sl->id < 0) return -1;
        if (sl->hash == h && tok->token_len[sl->id] == n && memcmp(tok->tokens[sl->id], s, n) == 0) return sl->id;
    }
}

// Later duplicates win, as when the reference builds its vocab map line by line.
static void tok_table_insert(seslm_tokenizer *tok, int32_t id) {
    const char *s = tok->tokens[id];
    size_t n = tok->token_len[id];
    uint32_t h = tok_hash(s, n);
    for (uint32_t i = h & tok->slot_mask;; i = (i + 1) & tok->slot_mask) {
        tok_slot *sl = &tok->slots[i];
        if (sl->id < 0 || (sl->hash == h && tok->token_len[sl->id] == n && memcmp(tok->tokens[sl->id], s, n) == 0)) {
            sl->hash = h;
            sl->id = id;
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// character classes (the reference's definitions, on utf8proc properties)

static bool tok_is_cjk(int32_t c) {
    // The blocks hard-coded in tokenizers' BertNormalizer (is_chinese_char).
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// Removed by clean_text: NUL, U+FFFD and "other" characters except \t \n \r. Unassigned code points
// (Cn) are kept, as the reference keeps them.
static bool tok_is_dropped(int32_t c, utf8proc_category_t cat) {
    if (c == 0 || c == 0xFFFD) return true;
    if (c == '\t' || c == '\n' || c == '\r') return false;
    return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_CO ||
           cat == UTF8PROC_CATEGORY_CS;
}

// Rust char::is_whitespace is the White_Space property; apart from Cc characters (already removed by
// clean_text, except \t \n \r) that is exactly Zs + Zl + Zp.
static bool tok_is_space(int32_t c, utf8proc_category_t cat) {
    return c == '\t' || c == '\n' || c == '\r' || c == ' ' || cat == UTF8PROC_CATEGORY_ZS ||
           cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
}

static bool tok_is_ascii_punct(int32_t c) {
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
}

static bool tok_is_punct(int32_t c, utf8proc_category_t cat) {
    return tok_is_ascii_punct(c) || (cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO);
}

static int32_t tok_lower(int32_t c) {
    // utf8proc_tolower is the simple (1:1) mapping. Rust's to_lowercase differs only for U+0130,
    // which lower-cases to "i" + U+0307; that pair is produced by the caller (see tok_norm_char).
    return utf8proc_tolower(c);
}

// ---------------------------------------------------------------------------------------------
// encode state: one word being built, and the output ids

typedef struct {
    const seslm_tokenizer *tok;
    int32_t *ids;
    int n;      // ids written so far (the [CLS] included)
    int limit;  // ids[] positions usable by wordpieces: max_len - 1 (the last one is for [SEP])

    char buf[TOK_WORD_HEADROOM + TOK_WORD_BYTES];
    size_t len;      // bytes stored at buf + TOK_WORD_HEADROOM
    int chars;       // code points in the word (may exceed what is stored)
    size_t run_start; // start of the current run of non-starters (canonical reordering)
} tok_state;

static inline char *tok_word(tok_state *st) { return st->buf + TOK_WORD_HEADROOM; }

// Ids past the limit are counted, not stored: a word's pieces may still turn into one [UNK] (which
// then fits), and encode() clamps the count at the end, as the reference truncates the token list.
static void tok_emit(tok_state *st, int32_t id) {
    if (st->n < st->limit) st->ids[st->n] = id;
    st->n++;
}

// Greedy longest-match-first WordPiece over the stored word; a word that cannot be fully decomposed
// (or is longer than 100 chars) becomes a single [UNK].
static void tok_wordpiece(tok_state *st) {
    const seslm_tokenizer *tok = st->tok;
    char *w = tok_word(st);
    size_t len = st->len;
    int n0 = st->n;
    if (st->chars > TOK_MAX_WORD_CHARS) {
        tok_emit(st, tok->unk_id);
        return;
    }
    size_t start = 0;
    while (start < len) {
        size_t end = len;
        if (end - start > tok->max_token_bytes) {
            end = start + tok->max_token_bytes;
            while (end > start && ((uint8_t)w[end] & 0xC0) == 0x80) end--;
        }
        int32_t id = -1;
        while (end > start) {
            if (start == 0) {
                id = tok_table_find(tok, w, end);
            } else {
                // The bytes before `start` are consumed: write the "##" prefix over them (the
                // headroom covers start == 1).
                char *key = w + start - 2;
                key[0] = '#';
                key[1] = '#';
                id = tok_table_find(tok, key, end - start + 2);
            }
            if (id >= 0) break;
            do end--; while (end > start && ((uint8_t)w[end] & 0xC0) == 0x80);
        }
        if (id < 0) {
            st->n = n0;
            tok_emit(st, tok->unk_id);
            return;
        }
        tok_emit(st, id);
        start = end;
    }
}

static void tok_flush(tok_state *st) {
    if (st->chars > 0) tok_wordpiece(st);
    st->len = 0;
    st->chars = 0;
    st->run_start = 0;
}

static int32_t tok_decode_prev(const char *w, size_t *pos) {
    size_t p = *pos;
    do p--; while (p > 0 && ((uint8_t)w[p] & 0xC0) == 0x80);
    utf8proc_int32_t c = 0;
    utf8proc_iterate((const utf8proc_uint8_t *)w + p, (utf8proc_ssize_t)(*pos - p), &c);
    *pos = p;
    return c;
}

// Appends one normalised code point to the word. With NFD on, a non-starter (combining class > 0)
// is moved before earlier non-starters of the same run with a higher class: the stable sort that
// canonical ordering applies to the whole string.
static void tok_word_append(tok_state *st, int32_t c, int ccc) {
    st->chars++;
    if (st->chars > TOK_MAX_WORD_CHARS) return; // becomes [UNK]; no need to store it
    uint8_t enc[4];
    size_t n = (size_t)utf8proc_encode_char(c, enc);
    char *w = tok_word(st);
    size_t at = st->len;
    if (ccc > 0 && st->tok->strip) {
        for (size_t p = at; p > st->run_start;) {
            size_t q = p;
            int32_t prev = tok_decode_prev(w, &q);
            if (utf8proc_get_property(prev)->combining_class <= ccc) break;
            at = p = q;
        }
        memmove(w + at + n, w + at, st->len - at);
    }
    memcpy(w + at, enc, n);
    st->len += n;
    if (ccc == 0) st->run_start = st->len;
}

// Feeds one code point that the normaliser produced (after NFD / Mn removal / lower-casing) to the
// pre-tokeniser: punctuation is a word of its own.
static void tok_pretok_char(tok_state *st, int32_t c) {
    const utf8proc_property_t *p = utf8proc_get_property(c);
    utf8proc_category_t cat = (utf8proc_category_t)p->category;
    if (tok_is_space(c, cat)) {
        tok_flush(st);
    } else if (tok_is_punct(c, cat)) {
        tok_flush(st);
        tok_word_append(st, c, 0);
        tok_flush(st);
    } else {
        tok_word_append(st, c, p->combining_class);
    }
}

// Normalises one code point of a non-whitespace, non-dropped input character.
static void tok_norm_char(tok_state *st, int32_t c) {
    const seslm_tokenizer *tok = st->tok;
    if (!tok->strip) {
        if (tok->lower && c == 0x130) { // Rust: 'İ'.to_lowercase() == "i\u{307}"
            tok_pretok_char(st, 'i');
            tok_pretok_char(st, 0x307);
            return;
        }
        tok_pretok_char(st, tok->lower ? tok_lower(c) : c);
        return;
    }
    utf8proc_int32_t dec[TOK_DECOMP_CAP];
    int last_bound = 0;
    utf8proc_ssize_t nd = utf8proc_decompose_char(c, dec, TOK_DECOMP_CAP, UTF8PROC_DECOMPOSE, &last_bound);
    if (nd <= 0 || nd > TOK_DECOMP_CAP) {
        dec[0] = c;
        nd = 1;
    }
    for (utf8proc_ssize_t i = 0; i < nd; i++) {
        const utf8proc_property_t *p = utf8proc_get_property(dec[i]);
        if (p->category == UTF8PROC_CATEGORY_MN) {
            // Dropped, but a starter still ends the reordering run.
            if (p->combining_class == 0) st->run_start = st->len;
            continue;
        }
        tok_pretok_char(st, tok->lower ? tok_lower(dec[i]) : dec[i]);
    }
}

// One input code point through clean_text, CJK spacing and normalisation.
static void tok_input_char(tok_state *st, int32_t c) {
    const seslm_tokenizer *tok = st->tok;
    utf8proc_category_t cat = utf8proc_category(c);
    if (tok_is_dropped(c, cat)) return;
    if (tok_is_space(c, cat)) {
        tok_flush(st);
    } else if (tok->opts.tokenize_chinese_chars && tok_is_cjk(c)) {
        tok_flush(st);
        tok_norm_char(st, c);
        tok_flush(st);
    } else {
        tok_norm_char(st, c);
    }
}

static void tok_ascii_char(tok_state *st, uint8_t b) {
    switch (st->tok->ascii_class[b]) {
    case TOK_ASCII_DROP: return;
    case TOK_ASCII_SPACE: tok_flush(st); return;
    case TOK_ASCII_PUNCT:
        tok_flush(st);
        tok_word_append(st, b, 0);
        tok_flush(st);
        return;
    default: break;
    }
    st->chars++;
    if (st->chars <= TOK_MAX_WORD_CHARS) tok_word(st)[st->len++] = st->tok->ascii_norm[b];
    st->run_start = st->len;
}

// Length of the longest special token starting at text[0], or 0.
static size_t tok_match_special(const seslm_tokenizer *tok, const char *text, size_t len, int32_t *id) {
    size_t best = 0;
    for (int i = 0; i < tok->n_special; i++) {
        const tok_special *sp = &tok->special[i];
        if (sp->len > best && sp->len <= len && memcmp(text, sp->text, sp->len) == 0) {
            best = sp->len;
            *id = sp->id;
        }
    }
    return best;
}

static seslm_status tok_fail_utf8(size_t offset) {
    return seslm_fail(SESLM_ERR_UTF8, "tokenizer: invalid UTF-8 at byte offset %zu", offset);
}

static seslm_status tok_validate_utf8(const char *text, size_t len, size_t pos) {
    while (pos < len) {
        if ((uint8_t)text[pos] < 0x80) {
            pos++;
            continue;
        }
        utf8proc_int32_t c;
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)text + pos, (utf8proc_ssize_t)(len - pos), &c);
        if (k <= 0) return tok_fail_utf8(pos);
        pos += (size_t)k;
    }
    return SESLM_OK;
}

// ---------------------------------------------------------------------------------------------
// public: encode

seslm_status seslm_tokenizer_encode(const seslm_tokenizer *tok, const char *text, size_t len, int32_t *ids,
                                    int cap, int *n_ids) {
    return seslm_tokenizer_encode_full(tok, text, len, ids, cap, n_ids, NULL);
}

seslm_status seslm_tokenizer_encode_full(const seslm_tokenizer *tok, const char *text, size_t len, int32_t *ids,
                                         int cap, int *n_ids, int *n_full) {
    if (n_ids) *n_ids = 0;
    if (n_full) *n_full = 0;
    const bool count = n_full != NULL; // go on past the limit: tok_emit counts what it does not store
    if (!tok || !ids || !n_ids || (!text && len > 0)) return seslm_fail(SESLM_ERR_ARG, "tokenizer_encode: NULL argument");
    if (cap < tok->opts.max_len)
        return seslm_fail(SESLM_ERR_ARG, "tokenizer_encode: cap %d < max_len %d", cap, tok->opts.max_len);

    tok_state st = {.tok = tok, .ids = ids, .n = 0, .limit = tok->opts.max_len - 1};
    ids[st.n++] = tok->cls_id;
    size_t pos = 0;
    while (pos < len && (st.n < st.limit || count)) {
        uint8_t b = (uint8_t)text[pos];
        if (tok->special_first[b]) {
            int32_t sid = -1;
            size_t k = tok_match_special(tok, text + pos, len - pos, &sid);
            if (k > 0) {
                tok_flush(&st);
                tok_emit(&st, sid);
                pos += k;
                continue;
            }
        }
        if (b < 0x80) {
            tok_ascii_char(&st, b);
            pos++;
            continue;
        }
        utf8proc_int32_t c;
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)text + pos, (utf8proc_ssize_t)(len - pos), &c);
        if (k <= 0) return tok_fail_utf8(pos);
        tok_input_char(&st, c);
        pos += (size_t)k;
    }
    if (st.n < st.limit || count) tok_flush(&st);
    // Truncated: the rest is not tokenised, but bad bytes are still an error wherever they are.
    seslm_status s = tok_validate_utf8(text, len, pos);
    if (s != SESLM_OK) return s;
    if (n_full) *n_full = st.n + 1; // (+ [SEP])
    if (st.n > st.limit) st.n = st.limit;
    ids[st.n++] = tok->sep_id;
    *n_ids = st.n;
    return SESLM_OK;
}

// ---------------------------------------------------------------------------------------------
// public: accessors

void seslm_tokenizer_free(seslm_tokenizer *tok) {
    if (!tok) return;
    for (int i = 0; i < tok->n_special; i++) free(tok->special[i].text);
    free(tok->slots);
    free(tok->token_len);
    free(tok->tokens);
    free(tok->vocab_buf);
    free(tok);
}

const seslm_tokenizer_opts *seslm_tokenizer_options(const seslm_tokenizer *tok) { return tok ? &tok->opts : NULL; }

int seslm_tokenizer_vocab_size(const seslm_tokenizer *tok) { return tok ? tok->n_vocab : 0; }

const char *seslm_tokenizer_token(const seslm_tokenizer *tok, int32_t id) {
    if (!tok || id < 0 || id >= tok->n_vocab) return NULL;
    return tok->tokens[id];
}

int32_t seslm_tokenizer_lookup(const seslm_tokenizer *tok, const char *token) {
    if (!tok || !token) return -1;
    return tok_table_find(tok, token, strlen(token));
}

// ---------------------------------------------------------------------------------------------
// loading: files

// Whole files through util_read_file (bounded, never blocks on a FIFO); *missing tells a file that
// does not exist apart, so optional files are skipped silently.
static seslm_status tok_read_file(const char *path, char **out, size_t *out_len, bool *missing) {
    int miss = 0;
    seslm_status s = util_read_file(path, out, out_len, (size_t)64 << 20, &miss);
    if (missing) *missing = miss != 0;
    return s;
}

static void tok_join_path(char *dst, size_t cap, const char *dir, const char *name) {
    size_t n = strlen(dir);
    const char *sep = (n > 0 && dir[n - 1] == '/') ? "" : "/";
    snprintf(dst, cap, "%s%s%s", dir, sep, name);
}

// Loads an optional JSON file: *json stays NULL when the file does not exist.
static seslm_status tok_load_json(const char *dir, const char *name, cJSON **json) {
    char path[4096];
    tok_join_path(path, sizeof path, dir, name);
    *json = NULL;
    char *buf;
    size_t len;
    bool missing;
    seslm_status s = tok_read_file(path, &buf, &len, &missing);
    if (s != SESLM_OK) return missing ? SESLM_OK : s;
    *json = cJSON_ParseWithLength(buf, len);
    free(buf);
    if (!*json || !cJSON_IsObject(*json)) {
        cJSON_Delete(*json);
        *json = NULL;
        return seslm_fail(SESLM_ERR_FORMAT, "%s: not a JSON object", path);
    }
    return SESLM_OK;
}

// ---------------------------------------------------------------------------------------------
// loading: vocabulary

static seslm_status tok_index_vocab(seslm_tokenizer *tok, const char *path);

static seslm_status tok_parse_vocab(seslm_tokenizer *tok, const char *path) {
    size_t len;
    seslm_status s = tok_read_file(path, &tok->vocab_buf, &len, NULL);
    if (s != SESLM_OK) return s;
    char *buf = tok->vocab_buf;
    size_t n_lines = 0;
    for (size_t i = 0; i < len; i++) n_lines += (buf[i] == '\n');
    if (len > 0 && buf[len - 1] != '\n') n_lines++;
    if (n_lines == 0) return seslm_fail(SESLM_ERR_FORMAT, "%s: empty vocabulary", path);
    if (n_lines > (size_t)INT32_MAX / 4) return seslm_fail(SESLM_ERR_FORMAT, "%s: too many lines", path);
    tok->tokens = malloc(n_lines * sizeof *tok->tokens);
    tok->token_len = malloc(n_lines * sizeof *tok->token_len);
    if (!tok->tokens || !tok->token_len) return seslm_fail(SESLM_ERR_NOMEM, "%s: out of memory", path);

    size_t pos = 0;
    for (size_t id = 0; id < n_lines; id++) {
        char *line = buf + pos;
        char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl != NULL);
        if (n > 0 && line[n - 1] == '\r') n--; // tolerate CRLF files
        line[n] = '\0';
        if (memchr(line, '\0', n)) return seslm_fail(SESLM_ERR_FORMAT, "%s:%zu: NUL byte in token", path, id + 1);
        if (tok_validate_utf8(line, n, 0) != SESLM_OK)
            return seslm_fail(SESLM_ERR_FORMAT, "%s:%zu: token is not valid UTF-8", path, id + 1);
        tok->tokens[id] = line;
        tok->token_len[id] = (uint32_t)n;
        if (n > tok->max_token_bytes) tok->max_token_bytes = n;
    }
    tok->n_vocab = (int)n_lines;
    return tok_index_vocab(tok, path);
}

// The token -> id hash table over tokens[0 .. n_vocab).
static seslm_status tok_index_vocab(seslm_tokenizer *tok, const char *path) {
    uint32_t cap = 16;
    while (cap < 2 * (uint32_t)tok->n_vocab) cap *= 2;
    tok->slots = malloc(cap * sizeof *tok->slots);
    if (!tok->slots) return seslm_fail(SESLM_ERR_NOMEM, "%s: out of memory", path);
    for (uint32_t i = 0; i < cap; i++) tok->slots[i] = (tok_slot){0, -1};
    tok->slot_mask = cap - 1;
    for (int32_t id = 0; id < tok->n_vocab; id++) tok_table_insert(tok, id);
    return SESLM_OK;
}

// ---------------------------------------------------------------------------------------------
// loading: configuration

// A special token in tokenizer_config.json is a string or an object {"content": "..."}.
static const char *tok_json_token(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (cJSON_IsString(c)) return c->valuestring;
    }
    return NULL;
}

static seslm_status tok_add_special(seslm_tokenizer *tok, const char *text) {
    if (!text || !*text) return SESLM_OK;
    int32_t id = seslm_tokenizer_lookup(tok, text);
    if (id < 0) return SESLM_OK; // not in the vocabulary: nothing to match it to
    for (int i = 0; i < tok->n_special; i++)
        if (strcmp(tok->special[i].text, text) == 0) return SESLM_OK;
    if (tok->n_special == TOK_MAX_SPECIAL) return SESLM_OK;
    tok_special *sp = &tok->special[tok->n_special];
    sp->len = strlen(text);
    sp->text = malloc(sp->len + 1);
    if (!sp->text) return seslm_fail(SESLM_ERR_NOMEM, "tokenizer: out of memory");
    memcpy(sp->text, text, sp->len + 1);
    sp->id = id;
    tok->special_first[(uint8_t)text[0]] = true;
    tok->n_special++;
    return SESLM_OK;
}

static int tok_json_bool(const cJSON *obj, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

// Reads the normaliser switches and special tokens; fills names[] with the special token strings.
static void tok_apply_config(seslm_tokenizer *tok, const cJSON *cfg, const char *names[TOK_N_NAMED]) {
    static const char *keys[TOK_N_NAMED] = {"cls_token", "sep_token", "unk_token", "pad_token", "mask_token"};
    tok->opts.do_lower_case = tok_json_bool(cfg, "do_lower_case", 1);
    tok->opts.tokenize_chinese_chars = tok_json_bool(cfg, "tokenize_chinese_chars", 1);
    const cJSON *sa = cJSON_GetObjectItemCaseSensitive(cfg, "strip_accents");
    tok->opts.strip_accents = cJSON_IsBool(sa) ? cJSON_IsTrue(sa) : -1;
    for (int i = 0; i < TOK_N_NAMED; i++) {
        const char *t = tok_json_token(cJSON_GetObjectItemCaseSensitive(cfg, keys[i]));
        if (t) names[i] = t;
    }
}

// max_seq_length of sentence_bert_config.json, else model_max_length, else 512; capped by max_pos.
static int tok_pick_max_len(const cJSON *st_cfg, const cJSON *cfg, int max_pos) {
    double v = 0;
    const cJSON *m = st_cfg ? cJSON_GetObjectItemCaseSensitive(st_cfg, "max_seq_length") : NULL;
    if (cJSON_IsNumber(m) && m->valuedouble >= 2 && m->valuedouble <= 1e6) v = m->valuedouble;
    if (v == 0 && cfg) {
        m = cJSON_GetObjectItemCaseSensitive(cfg, "model_max_length");
        // transformers writes a huge sentinel (1e30) for "no limit"
        if (cJSON_IsNumber(m) && m->valuedouble >= 2 && m->valuedouble <= 1e6) v = m->valuedouble;
    }
    int n = v > 0 ? (int)v : TOK_DEFAULT_MAX_LEN;
    if (max_pos > 0 && n > max_pos) n = max_pos;
    return n;
}

static void tok_build_ascii(seslm_tokenizer *tok) {
    for (int c = 0; c < 128; c++) {
        utf8proc_category_t cat = utf8proc_category(c);
        uint8_t cls = TOK_ASCII_WORD;
        if (tok_is_dropped(c, cat)) cls = TOK_ASCII_DROP;
        else if (tok_is_space(c, cat)) cls = TOK_ASCII_SPACE;
        else if (tok_is_punct(c, cat)) cls = TOK_ASCII_PUNCT;
        tok->ascii_class[c] = cls;
        tok->ascii_norm[c] = (char)(tok->lower ? tok_lower(c) : c);
    }
}

static seslm_status tok_resolve_specials(seslm_tokenizer *tok, const char *vocab_path, const char *names[TOK_N_NAMED],
                                         const cJSON *cfg) {
    int32_t *need[3] = {&tok->cls_id, &tok->sep_id, &tok->unk_id};
    for (int i = 0; i < 3; i++) {
        *need[i] = seslm_tokenizer_lookup(tok, names[i]);
        if (*need[i] < 0) return seslm_fail(SESLM_ERR_FORMAT, "%s: special token %s is missing", vocab_path, names[i]);
    }
    for (int i = 0; i < TOK_N_NAMED; i++) {
        seslm_status s = tok_add_special(tok, names[i]);
        if (s != SESLM_OK) return s;
    }
    const cJSON *extra = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "additional_special_tokens") : NULL;
    const cJSON *e;
    cJSON_ArrayForEach(e, extra) {
        seslm_status s = tok_add_special(tok, tok_json_token(e));
        if (s != SESLM_OK) return s;
    }
    return SESLM_OK;
}

// ---------------------------------------------------------------------------------------------
// loading: tokenizer.json (the `tokenizers` serialisation), used when vocab.txt is absent
//
// Only the pipeline this file implements is accepted: model WordPiece ("##", 100 chars per word),
// normalizer BertNormalizer (clean_text), pre_tokenizer BertPreTokenizer, post_processor
// TemplateProcessing "[CLS] $A [SEP]" or BertProcessing. Anything else is refused with its name, never
// approximated. Its truncation / padding sections are ignored, as sentence-transformers overrides them.

static seslm_status tok_json_refuse(const char *path, const char *what, const char *got) {
    return seslm_fail(SESLM_ERR_FORMAT, "%s: %s%s%s%s is not supported (SE-SLM implements the BERT WordPiece pipeline only)",
                      path, what, got ? " \"" : "", got ? got : "", got ? "\"" : "");
}

static const char *tok_json_type(const cJSON *o) {
    const cJSON *t = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, "type") : NULL;
    return cJSON_IsString(t) ? t->valuestring : NULL;
}

// vocab {token: id} -> tokens[id]; ids must be exactly 0 .. n-1.
static seslm_status tok_json_vocab(seslm_tokenizer *tok, const cJSON *vocab, const char *path) {
    int n = cJSON_GetArraySize(vocab);
    if (!cJSON_IsObject(vocab) || n <= 0) return seslm_fail(SESLM_ERR_FORMAT, "%s: model.vocab must be a non-empty object", path);
    size_t bytes = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) bytes += strlen(e->string) + 1;
    tok->vocab_buf = malloc(bytes);
    tok->tokens = calloc((size_t)n, sizeof *tok->tokens);
    tok->token_len = malloc((size_t)n * sizeof *tok->token_len);
    if (!tok->vocab_buf || !tok->tokens || !tok->token_len) return seslm_fail(SESLM_ERR_NOMEM, "%s: out of memory", path);
    size_t pos = 0;
    cJSON_ArrayForEach(e, vocab) {
        const size_t len = strlen(e->string);
        if (!cJSON_IsNumber(e) || !(e->valuedouble >= 0 && e->valuedouble < n) || e->valuedouble != (double)(int)e->valuedouble)
            return seslm_fail(SESLM_ERR_FORMAT, "%s: model.vocab[\"%s\"] must be an integer id in 0..%d", path, e->string, n - 1);
        const int id = (int)e->valuedouble;
        if (tok->tokens[id]) return seslm_fail(SESLM_ERR_FORMAT, "%s: model.vocab gives id %d twice", path, id);
        if (len == 0 || tok_validate_utf8(e->string, len, 0) != SESLM_OK)
            return seslm_fail(SESLM_ERR_FORMAT, "%s: model.vocab has an empty or invalid UTF-8 token (id %d)", path, id);
        memcpy(tok->vocab_buf + pos, e->string, len + 1);
        tok->tokens[id] = tok->vocab_buf + pos;
        tok->token_len[id] = (uint32_t)len;
        if (len > tok->max_token_bytes) tok->max_token_bytes = len;
        pos += len + 1;
    }
    tok->n_vocab = n; // n distinct ids in 0..n-1: every id is present
    return tok_index_vocab(tok, path);
}

// The [CLS] / [SEP] of the post-processor: TemplateProcessing single = [SpecialToken, $A, SpecialToken]
// or BertProcessing {cls: [token, id], sep: [token, id]}.
static seslm_status tok_json_post(const cJSON *pp, const char *path, const char *names[TOK_N_NAMED]) {
    const char *type = tok_json_type(pp);
    if (type && strcmp(type, "BertProcessing") == 0) {
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(pp, "cls"), *sep = cJSON_GetObjectItemCaseSensitive(pp, "sep");
        if (!cJSON_IsString(cJSON_GetArrayItem(cls, 0)) || !cJSON_IsString(cJSON_GetArrayItem(sep, 0)))
            return seslm_fail(SESLM_ERR_FORMAT, "%s: post_processor BertProcessing needs cls and sep", path);
        names[TOK_SPECIAL_CLS] = cJSON_GetArrayItem(cls, 0)->valuestring;
        names[TOK_SPECIAL_SEP] = cJSON_GetArrayItem(sep, 0)->valuestring;
        return SESLM_OK;
    }
    if (!type || strcmp(type, "TemplateProcessing") != 0) return tok_json_refuse(path, "post_processor", type ? type : "null");
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
    const cJSON *a = cJSON_GetArrayItem(single, 0), *b = cJSON_GetArrayItem(single, 1), *c = cJSON_GetArrayItem(single, 2);
    const cJSON *ca = cJSON_GetObjectItemCaseSensitive(a, "SpecialToken"), *cb = cJSON_GetObjectItemCaseSensitive(b, "Sequence");
    const cJSON *cc = cJSON_GetObjectItemCaseSensitive(c, "SpecialToken");
    const cJSON *ia = cJSON_GetObjectItemCaseSensitive(ca, "id"), *ib = cJSON_GetObjectItemCaseSensitive(cb, "id");
    const cJSON *ic = cJSON_GetObjectItemCaseSensitive(cc, "id");
    if (cJSON_GetArraySize(single) != 3 || !cJSON_IsString(ia) || !cJSON_IsString(ib) || strcmp(ib->valuestring, "A") != 0 ||
        !cJSON_IsString(ic))
        return tok_json_refuse(path, "post_processor template other than \"<special> $A <special>\"", NULL);
    names[TOK_SPECIAL_CLS] = ia->valuestring;
    names[TOK_SPECIAL_SEP] = ic->valuestring;
    return SESLM_OK;
}

// The added tokens are matched verbatim in the raw text, as this tokenizer matches its specials.
static seslm_status tok_json_added(seslm_tokenizer *tok, const cJSON *added, const char *path) {
    const cJSON *e;
    if (cJSON_GetArraySize(added) > TOK_MAX_SPECIAL)
        return seslm_fail(SESLM_ERR_FORMAT, "%s: %d added tokens; at most %d are supported", path, cJSON_GetArraySize(added),
                          TOK_MAX_SPECIAL);
    cJSON_ArrayForEach(e, added) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content"), *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (!cJSON_IsString(content) || !cJSON_IsNumber(id))
            return seslm_fail(SESLM_ERR_FORMAT, "%s: added_tokens entries need \"content\" and \"id\"", path);
        if (seslm_tokenizer_lookup(tok, content->valuestring) != (int32_t)id->valuedouble)
            return seslm_fail(SESLM_ERR_FORMAT, "%s: added token \"%s\" (id %g) is not that entry of model.vocab", path,
                              content->valuestring, id->valuedouble);
        // lstrip / rstrip only eat whitespace, which BertPreTokenizer drops anyway; these two change matching
        if (tok_json_bool(e, "single_word", 0) || tok_json_bool(e, "normalized", 0))
            return seslm_fail(SESLM_ERR_FORMAT, "%s: added token \"%s\" with single_word or normalized = true is not supported",
                              path, content->valuestring);
        seslm_status s = tok_add_special(tok, content->valuestring);
        if (s != SESLM_OK) return s;
    }
    return SESLM_OK;
}

// Fills the vocabulary, the normaliser switches, names[] and the added tokens from tokenizer.json.
// tokenizer_config.json (cfg, may be NULL) must not contradict its normaliser.
static seslm_status tok_load_tokenizer_json(seslm_tokenizer *tok, const char *path, const cJSON *cfg,
                                            const char *names[TOK_N_NAMED], cJSON **root_out) {
    char *buf;
    size_t len;
    seslm_status s = tok_read_file(path, &buf, &len, NULL);
    if (s != SESLM_OK) return s;
    cJSON *root = *root_out = cJSON_ParseWithLength(buf, len);
    free(buf);
    if (!cJSON_IsObject(root)) return seslm_fail(SESLM_ERR_FORMAT, "%s: not a JSON object", path);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    const char *mt = tok_json_type(model), *nt = tok_json_type(norm), *pt = tok_json_type(pre);
    if (!mt || strcmp(mt, "WordPiece") != 0) return tok_json_refuse(path, "model type", mt ? mt : "null");
    if (!nt || strcmp(nt, "BertNormalizer") != 0) return tok_json_refuse(path, "normalizer", nt ? nt : "null");
    if (!pt || strcmp(pt, "BertPreTokenizer") != 0) return tok_json_refuse(path, "pre_tokenizer", pt ? pt : "null");
    const cJSON *pfx = cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix");
    const cJSON *mx = cJSON_GetObjectItemCaseSensitive(model, "max_input_chars_per_word");
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (pfx && (!cJSON_IsString(pfx) || strcmp(pfx->valuestring, "##") != 0))
        return tok_json_refuse(path, "continuing_subword_prefix", cJSON_IsString(pfx) ? pfx->valuestring : "null");
    if (mx && (!cJSON_IsNumber(mx) || mx->valuedouble != TOK_MAX_WORD_CHARS))
        return tok_json_refuse(path, "max_input_chars_per_word other than 100", NULL);
    if (!tok_json_bool(norm, "clean_text", 1)) return tok_json_refuse(path, "BertNormalizer clean_text = false", NULL);
    if (cJSON_IsString(unk)) names[TOK_SPECIAL_UNK] = unk->valuestring;
    const cJSON *sa = cJSON_GetObjectItemCaseSensitive(norm, "strip_accents");
    seslm_tokenizer_opts o = tok->opts;
    o.do_lower_case = tok_json_bool(norm, "lowercase", 1);
    o.tokenize_chinese_chars = tok_json_bool(norm, "handle_chinese_chars", 1);
    o.strip_accents = cJSON_IsBool(sa) ? cJSON_IsTrue(sa) : -1;
    if (cfg && (o.do_lower_case != tok->opts.do_lower_case || o.strip_accents != tok->opts.strip_accents ||
                o.tokenize_chinese_chars != tok->opts.tokenize_chinese_chars))
        return seslm_fail(SESLM_ERR_FORMAT,
                          "%s: its normalizer (lowercase %d, strip_accents %d, handle_chinese_chars %d) contradicts "
                          "tokenizer_config.json (%d, %d, %d); which one a loader applies is ambiguous, so it is refused",
                          path, o.do_lower_case, o.strip_accents, o.tokenize_chinese_chars, tok->opts.do_lower_case,
                          tok->opts.strip_accents, tok->opts.tokenize_chinese_chars);
    tok->opts = o;
    s = tok_json_vocab(tok, cJSON_GetObjectItemCaseSensitive(model, "vocab"), path);
    if (s == SESLM_OK) s = tok_json_post(cJSON_GetObjectItemCaseSensitive(root, "post_processor"), path, names);
    if (s == SESLM_OK) s = tok_json_added(tok, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), path);
    return s;
}

// ---------------------------------------------------------------------------------------------
// public: load

static seslm_status tok_load_into(seslm_tokenizer *tok, const char *model_dir, int max_pos) {
    char vocab_path[4096];
    struct stat sb;
    tok_join_path(vocab_path, sizeof vocab_path, model_dir, "vocab.txt");
    const bool from_json = stat(vocab_path, &sb) != 0 && errno == ENOENT;
    if (from_json) { // the same vocabulary packaged only as tokenizer.json
        tok_join_path(vocab_path, sizeof vocab_path, model_dir, "tokenizer.json");
        if (stat(vocab_path, &sb) != 0)
            return seslm_fail(SESLM_ERR_IO, "%s: neither vocab.txt nor tokenizer.json is there", model_dir);
    }
    seslm_status s = from_json ? SESLM_OK : tok_parse_vocab(tok, vocab_path);
    if (s != SESLM_OK) return s;

    cJSON *cfg = NULL, *st_cfg = NULL, *tj = NULL;
    s = tok_load_json(model_dir, "tokenizer_config.json", &cfg);
    if (s == SESLM_OK) s = tok_load_json(model_dir, "sentence_bert_config.json", &st_cfg);
    if (s == SESLM_OK) {
        const char *names[TOK_N_NAMED] = {"[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]"};
        tok->opts = (seslm_tokenizer_opts){.do_lower_case = 1, .strip_accents = -1, .tokenize_chinese_chars = 1};
        if (cfg) tok_apply_config(tok, cfg, names);
        if (from_json) s = tok_load_tokenizer_json(tok, vocab_path, cfg, names, &tj);
        tok->opts.max_len = tok_pick_max_len(st_cfg, cfg, max_pos);
        tok->lower = tok->opts.do_lower_case != 0;
        tok->strip = tok->opts.strip_accents < 0 ? tok->lower : tok->opts.strip_accents != 0;
        if (s != SESLM_OK)
            ;
        else if (tok->opts.max_len < 2)
            s = seslm_fail(SESLM_ERR_FORMAT, "%s: max_len %d leaves no room for [CLS] and [SEP]", model_dir,
                           tok->opts.max_len);
        else
            s = tok_resolve_specials(tok, vocab_path, names, cfg);
    }
    cJSON_Delete(tj); // (names[] may point into it until here)
    cJSON_Delete(cfg);
    cJSON_Delete(st_cfg);
    if (s == SESLM_OK) tok_build_ascii(tok);
    return s;
}

seslm_status seslm_tokenizer_load(seslm_tokenizer **out, const char *model_dir, int max_pos) {
    if (!out || !model_dir) return seslm_fail(SESLM_ERR_ARG, "tokenizer_load: NULL argument");
    *out = NULL;
    seslm_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) return seslm_fail(SESLM_ERR_NOMEM, "tokenizer_load: out of memory");
    seslm_status s = tok_load_into(tok, model_dir, max_pos);
    if (s != SESLM_OK) {
        seslm_tokenizer_free(tok);
        return s;
    }
    *out = tok;
    return SESLM_OK;
}
