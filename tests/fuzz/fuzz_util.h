/* fuzz_util.h — what the fuzz targets that read files share: a private temporary folder (removed at exit) that
 * the fuzzed bytes are written into as the programs read them, and MiniLM's shape for the loaders that check a
 * file against a model. Static functions: each target gets its own copy. */
#ifndef SESLM_FUZZ_UTIL_H
#define SESLM_FUZZ_UTIL_H

#include "seslm.h"
#include "tiny_model.h" // tm_rmtree

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char fuzz_dir_path[64];

static void fuzz_dir_remove(void) { tm_rmtree(fuzz_dir_path); }

/* The folder, made (from /tmp/seslm-fuzz-<tag>-XXXXXX) on first use. */
static const char *fuzz_dir(const char *tag) {
    if (!fuzz_dir_path[0]) {
        snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "/tmp/seslm-fuzz-%s-XXXXXX", tag);
        if (!mkdtemp(fuzz_dir_path)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(fuzz_dir_remove);
    }
    return fuzz_dir_path;
}

/* buf = <folder>/name. */
static inline const char *fuzz_path(const char *tag, const char *name, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s", fuzz_dir(tag), name);
    return buf;
}

/* Writes n bytes to <folder>/name (replacing it); returns the path (a static buffer). */
static inline const char *fuzz_write_file(const char *tag, const char *name, const uint8_t *p, size_t n) {
    static char path[160];
    fuzz_path(tag, name, path, sizeof path);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
        fprintf(stderr, "fuzz: cannot write %s\n", path);
        abort();
    }
    return path;
}

/* all-MiniLM-L6-v2's shape: 6 layers of 12 heads of 32 and 1,536 FFN neurons. */
static inline void fuzz_minilm(seslm_model_config *c, seslm_layer_config *layers) {
    memset(c, 0, sizeof *c);
    c->vocab_size = 30522, c->hidden = 384, c->n_layers = 6, c->head_dim = 32, c->max_position = 512;
    c->max_seq_len = 256;
    for (int l = 0; l < 6; l++) layers[l].n_heads = 12, layers[l].ffn_dim = 1536;
    c->layers = layers;
}

#endif
