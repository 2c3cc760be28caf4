/* fuzz_safetensors.c — libFuzzer target: st_parse on arbitrary bytes.
 *
 * The input is parsed from a private heap copy of exactly its size, so AddressSanitizer reports any
 * read past the end of the image. Invariants checked on every input (abort() on violation, which
 * libFuzzer reports as a crash):
 *   - a failure is SESLM_ERR_FORMAT (or NOMEM) with a message naming the file;
 *   - on success every tensor lies inside the data section, nbytes == numel * dtype size, numel is
 *     the product of the shape, and st_find finds each tensor under its own name;
 *   - the first and the last byte of every tensor are read (ASan catches an out-of-bounds pointer).
 * Seeds: tests/fuzz/corpus_safetensors/ (small valid files, a truncated one, bad offsets). */
#include "safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fuzz_die(const char *what, const char *name) {
    fprintf(stderr, "fuzz_safetensors: invariant violated: %s (tensor '%s'; %s)\n", what, name ? name : "",
            seslm_last_error());
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    st_file f;
    memset(&f, 0, sizeof f);
    seslm_status st = st_parse(&f, copy, size, "fuzz.safetensors");
    if (st != SESLM_OK) {
        if (st != SESLM_ERR_FORMAT && st != SESLM_ERR_NOMEM) fuzz_die("unexpected status", NULL);
        if (!strstr(seslm_last_error(), "fuzz.safetensors")) fuzz_die("message does not name the file", NULL);
    } else {
        uint64_t hlen = 0;
        for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | copy[i];
        const uint8_t *lo = copy + 8 + hlen, *hi = copy + size;
        volatile uint8_t sink = 0;
        for (int i = 0; i < f.n_tensors; i++) {
            const st_tensor *t = &f.tensors[i];
            const uint8_t *p = t->data;
            if (!t->name) fuzz_die("tensor without a name", NULL);
            if (t->ndim < 0 || t->ndim > ST_MAX_DIMS) fuzz_die("ndim out of range", t->name);
            int64_t numel = 1;
            for (int d = 0; d < t->ndim; d++) {
                if (t->shape[d] < 0) fuzz_die("negative dimension", t->name);
                numel *= t->shape[d]; // cannot overflow: the parser checked it
            }
            if (numel != t->numel) fuzz_die("numel is not the product of the shape", t->name);
            if ((uint64_t)t->numel * st_dtype_size(t->dtype) != t->nbytes) fuzz_die("nbytes != numel * size", t->name);
            if (p < lo || p > hi || t->nbytes > (size_t)(hi - p)) fuzz_die("tensor outside the data section", t->name);
            if (t->nbytes) {
                sink ^= p[0];
                sink ^= p[t->nbytes - 1];
            }
            const st_tensor *found = st_find(&f, t->name);
            if (!found || strcmp(found->name, t->name) != 0) fuzz_die("st_find does not find the tensor", t->name);
        }
        (void)sink;
    }
    st_close(&f);
    if (f.tensors || f.n_tensors) fuzz_die("st_close left state behind", NULL);
    free(copy);
    return 0;
}
