/* oracle_io.h — reading the reference fixtures that tests/oracle/ scripts write (header-only, for tests and
 * benchmarks that compare the runtime against outputs no one here computed).
 *
 *   oracle_slurp(path, &len)           a whole file, NUL-terminated (len may be NULL); NULL when unreadable
 *   oracle_read_inputs(path, t, l, max) inputs.bin: per input a uint32 little-endian byte length, then that
 *                                       many UTF-8 bytes; fills t[i] (malloc'd, NUL-terminated) and l[i];
 *                                       returns the count, or -1 when the file is unreadable
 *
 * Why one header: five programs carried their own copy of both readers (bench/precision_quality.c and the
 * model, precision, features and decoder oracle tests). */
#ifndef SESLM_TESTS_ORACLE_IO_H
#define SESLM_TESTS_ORACLE_IO_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline char *oracle_slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (!b) return NULL;
    b[n] = 0;
    if (len) *len = (size_t)n;
    return b;
}

static inline int oracle_read_inputs(const char *path, char **texts, size_t *lens, int max) {
    size_t len = 0;
    char *bin = oracle_slurp(path, &len);
    if (!bin) return -1;
    int n = 0;
    for (size_t p = 0; p + 4 <= len && n < max;) {
        const uint32_t l = (uint32_t)(unsigned char)bin[p] | (uint32_t)(unsigned char)bin[p + 1] << 8 |
                           (uint32_t)(unsigned char)bin[p + 2] << 16 | (uint32_t)(unsigned char)bin[p + 3] << 24;
        p += 4;
        if (l > len - p) break; // a truncated last record: the inputs before it stand
        texts[n] = malloc((size_t)l + 1);
        if (!texts[n]) break;
        memcpy(texts[n], bin + p, l);
        texts[n][l] = 0;
        lens[n++] = l;
        p += l;
    }
    free(bin);
    return n;
}

#endif
