/* fuzz_gguf.c — libFuzzer target: gguf_parse (and, when it succeeds, bpe_load and one encode) on
 * arbitrary bytes.
 *
 * The input is parsed from a private heap copy of exactly its size, so AddressSanitizer reports any
 * read past the end of the image. Invariants checked on every input (abort() on violation):
 *   - a failure is SESLM_ERR_FORMAT (or NOMEM) with a message naming the file;
 *   - on success every tensor lies inside the image, its byte count matches its type and shape, and
 *     gguf_find_tensor finds it under its own name; the first and last byte of each are read;
 *   - every metadata string (and string-array element) lies inside the image;
 *   - a tokenizer that loads encodes a fixed text to ids inside its vocabulary.
 * Seeds: tests/fuzz/corpus_gguf/ (small valid files written by tests/fuzz/make_gguf_corpus.py, a
 * truncated one, bad counts and offsets). */
#include "bpe.h"
#include "gguf.h"
#include "qblock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fuzz_die(const char *what) {
    fprintf(stderr, "fuzz_gguf: invariant violated: %s (%s)\n", what, seslm_last_error());
    abort();
}

static void check_inside(const uint8_t *lo, const uint8_t *hi, const void *p, size_t n, const char *what) {
    const uint8_t *q = p;
    if (n && (q < lo || q > hi || (size_t)(hi - q) < n)) fuzz_die(what);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    gguf_file f;
    seslm_status st = gguf_parse(&f, copy, size, "fuzz.gguf");
    if (st != SESLM_OK) {
        if (st != SESLM_ERR_FORMAT && st != SESLM_ERR_NOMEM) fuzz_die("unexpected status");
        if (!strstr(seslm_last_error(), "fuzz.gguf")) fuzz_die("message does not name the file");
        free(copy);
        return 0;
    }
    const uint8_t *lo = copy, *hi = copy + size;
    volatile uint8_t sink = 0;
    for (int i = 0; i < f.n_tensors; i++) {
        const gguf_tensor *t = &f.tensors[i];
        int64_t numel = 1;
        for (int d = 0; d < t->n_dims; d++) numel *= t->ne[d];
        if (t->nbytes != qb_row_bytes(t->type, t->ne[0]) * (size_t)(numel / t->ne[0])) fuzz_die("nbytes");
        check_inside(lo, hi, t->data, t->nbytes, "tensor outside the image");
        check_inside(lo, hi, t->name.s, t->name.len, "tensor name outside the image");
        sink ^= t->data[0];
        sink ^= t->data[t->nbytes - 1];
        char name[256];
        if (t->name.len < sizeof name && !memchr(t->name.s, 0, t->name.len)) {
            memcpy(name, t->name.s, t->name.len);
            name[t->name.len] = 0;
            if (gguf_find_tensor(&f, name) != t) fuzz_die("find_tensor");
        }
    }
    for (int i = 0; i < f.n_kv; i++) {
        const gguf_kv *kv = &f.kv[i];
        check_inside(lo, hi, kv->key.s, kv->key.len, "key outside the image");
        if (kv->strs)
            for (uint64_t j = 0; j < kv->n; j++) check_inside(lo, hi, kv->strs[j].s, kv->strs[j].len, "string element");
    }
    (void)sink;
    bpe_tokenizer *tok = NULL;
    if (bpe_load(&tok, &f, "fuzz.gguf") == SESLM_OK) {
        static const char text[] = "Hello, world! 123  \n\tcaf\xc3\xa9 <|im_start|>x's";
        int32_t *ids = NULL;
        int n = 0;
        if (bpe_encode(tok, text, sizeof text - 1, 1, &ids, &n) == SESLM_OK) {
            for (int i = 0; i < n; i++)
                if (ids[i] < 0 || ids[i] >= bpe_vocab_size(tok)) fuzz_die("token id out of range");
            char buf[64];
            for (int i = 0; i < n; i++) bpe_token_bytes(tok, ids[i], 1, buf, (int)sizeof buf);
        }
        free(ids);
        bpe_free(tok);
    }
    gguf_close(&f);
    free(copy);
    return 0;
}
