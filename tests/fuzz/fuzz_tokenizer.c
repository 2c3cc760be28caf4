/* fuzz_tokenizer.c — libFuzzer target: seslm_tokenizer_encode on arbitrary bytes.
 *
 * The tokenizer comes from $SESLM_MODEL_DIR when set, else from the tiny committed vocabulary in
 * tests/fuzz/vocab_small/ (max_len 32, so truncation is hit often) — no model download needed.
 * Invariants checked on every input (abort() on violation, which libFuzzer reports as a crash):
 *   - status is OK exactly when the input is valid UTF-8, else SESLM_ERR_UTF8 with a message;
 *   - 2 <= n_ids <= max_len, ids[0] == [CLS], ids[n-1] == [SEP], every id inside the vocabulary,
 *     no [CLS]/[SEP] elsewhere unless the text itself contains "[CLS]" / "[SEP]";
 *   - encoding is deterministic, and a trailing space changes nothing.
 */
#include "seslm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#ifndef SESLM_FUZZ_DIR
#define SESLM_FUZZ_DIR "tests/fuzz"
#endif

static seslm_tokenizer *g_tok;
static int32_t g_cls, g_sep;

static void fuzz_die(const char *what) {
    fprintf(stderr, "fuzz_tokenizer: invariant violated: %s (%s)\n", what, seslm_last_error());
    abort();
}

static void fuzz_load(void) {
    const char *dir = getenv("SESLM_MODEL_DIR");
    if (!dir || !*dir) dir = SESLM_FUZZ_DIR "/vocab_small";
    if (seslm_tokenizer_load(&g_tok, dir, 0) != SESLM_OK) {
        fprintf(stderr, "fuzz_tokenizer: cannot load %s: %s\n", dir, seslm_last_error());
        abort();
    }
    g_cls = seslm_tokenizer_lookup(g_tok, "[CLS]");
    g_sep = seslm_tokenizer_lookup(g_tok, "[SEP]");
}

// Independent of the tokenizer's own decoding loop: walk the bytes with utf8proc_iterate.
static int fuzz_valid_utf8(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(n - i), &c);
        if (k <= 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

static int fuzz_contains(const uint8_t *p, size_t n, const char *s) {
    size_t m = strlen(s);
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(p + i, s, m) == 0) return 1;
    return 0;
}

static void fuzz_check_ids(const int32_t *ids, int n, int max_len, int vocab, int specials_in_text) {
    if (n < 2 || n > max_len) fuzz_die("n_ids outside [2, max_len]");
    if (ids[0] != g_cls || ids[n - 1] != g_sep) fuzz_die("not framed by [CLS] ... [SEP]");
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= vocab) fuzz_die("id outside the vocabulary");
        if (i > 0 && i < n - 1 && !specials_in_text && (ids[i] == g_cls || ids[i] == g_sep))
            fuzz_die("[CLS]/[SEP] inside the sequence without one in the text");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_tok) fuzz_load();
    int max_len = seslm_tokenizer_options(g_tok)->max_len;
    int vocab = seslm_tokenizer_vocab_size(g_tok);
    int32_t *ids = malloc((size_t)max_len * sizeof *ids);
    int32_t *ids2 = malloc((size_t)max_len * sizeof *ids2);
    char *spaced = malloc(size + 1);
    if (!ids || !ids2 || !spaced) abort();

    int n = -1;
    seslm_status st = seslm_tokenizer_encode(g_tok, (const char *)data, size, ids, max_len, &n);
    int valid = fuzz_valid_utf8(data, size);
    if (valid != (st == SESLM_OK)) fuzz_die("status disagrees with UTF-8 validity");
    if (st != SESLM_OK) {
        if (st != SESLM_ERR_UTF8 || n != 0 || !*seslm_last_error()) fuzz_die("bad error result");
    } else {
        int specials = fuzz_contains(data, size, "[CLS]") || fuzz_contains(data, size, "[SEP]");
        fuzz_check_ids(ids, n, max_len, vocab, specials);

        int n2 = -1;
        if (seslm_tokenizer_encode(g_tok, (const char *)data, size, ids2, max_len, &n2) != SESLM_OK || n2 != n ||
            memcmp(ids, ids2, (size_t)n * sizeof *ids) != 0)
            fuzz_die("encoding is not deterministic");

        if (size) memcpy(spaced, data, size);
        spaced[size] = ' ';
        if (seslm_tokenizer_encode(g_tok, spaced, size + 1, ids2, max_len, &n2) != SESLM_OK || n2 != n ||
            memcmp(ids, ids2, (size_t)n * sizeof *ids) != 0)
            fuzz_die("a trailing space changed the ids");
    }
    free(ids);
    free(ids2);
    free(spaced);
    return 0;
}
