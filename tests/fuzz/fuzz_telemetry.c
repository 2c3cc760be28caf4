/* fuzz_telemetry.c — libFuzzer target: the telemetry dump reader (seslm_telemetry_dump_read, libhdf5 underneath)
 * on arbitrary bytes, written to a private temporary file as `seslm ingest` / `inspect` read a node's dump.
 * Invariants checked on every input (abort() on violation, which libFuzzer reports as a crash):
 *   - a failure is SESLM_ERR_IO / FORMAT / SHAPE / ARG / NOMEM with a message naming the file;
 *   - every HDF5 object the reader opened is closed again, whatever failed;
 *   - a dump that loads has sizes inside the schema's limits and every array the sizes promise: the first and the
 *     last element of each are read (AddressSanitizer catches a short buffer);
 *   - written back (seslm_telemetry_dump_write_path) and read again, it is the same window.
 * libhdf5 is not instrumented, so coverage guides only through our reader; the value is in the many mutations
 * of the real files. HDF5 1.10 keeps internal blocks after a metadata checksum failure, which LeakSanitizer
 * would call leaks of this process: the ctest runs with ASAN_OPTIONS=detect_leaks=0 (tests/unit/test_telemetry_hdf5.c
 * checks our own frees, and that every HDF5 object is closed).
 * Seeds: tests/fuzz/corpus_telemetry/ (tests/fuzz/make_telemetry_corpus.sh). */
#include "fuzz_util.h"
#include "telemetry_hdf5.h"

#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fuzz_die(const char *what) {
    fprintf(stderr, "fuzz_telemetry: invariant violated: %s (%s)\n", what, seslm_last_error());
    abort();
}

static volatile uint8_t sink;

// Reads the first and the last of n elements of size sz (n > 0 needs p).
static void touch(const void *p, uint64_t n, size_t sz, const char *what) {
    if (n == 0) return;
    if (!p) fuzz_die(what);
    const uint8_t *b = p;
    sink ^= b[0];
    sink ^= b[(n - 1) * sz + sz - 1];
}

static void check_view(const seslm_telemetry_view *v) {
    if (v->vocab_size <= 0 || v->hidden <= 0 || v->n_layers < 0 || v->max_seq_len < 0 || v->n_pairs < 0 ||
        v->n_reservoir < 0 || v->n_batch_records < 0 || v->n_intents < 0 || v->cms_width < 0 || v->cms_depth < 0)
        fuzz_die("a negative or zero size loaded");
    if (!v->model_sha256 || strlen(v->model_sha256) != 64) fuzz_die("the model hash is not 64 characters");
    touch(v->token_counts, (uint64_t)v->vocab_size, sizeof(uint64_t), "token counts");
    touch(v->seq_len_hist, (uint64_t)v->max_seq_len + 1, sizeof(uint64_t), "length histogram");
    touch(v->batches, (uint64_t)v->n_batch_records, sizeof(seslm_batch_record), "batch log");
    touch(v->pairs, (uint64_t)v->n_pairs, sizeof(seslm_token_pair), "pairs");
    touch(v->cms, (uint64_t)v->cms_width * (uint64_t)v->cms_depth, sizeof(uint32_t), "sketch");
    touch(v->reservoir, (uint64_t)v->n_reservoir * (uint64_t)v->hidden, sizeof(float), "reservoir");
    touch(v->intent_counts, (uint64_t)v->n_intents, sizeof(uint64_t), "intent counts");
    for (int i = 0; i < v->n_intents; i++)
        if (!v->intent_labels || !v->intent_labels[i]) fuzz_die("an intent without a label");
    if (v->n_layers && !v->layers) fuzz_die("layers missing");
    for (int l = 0; l < v->n_layers; l++) {
        const seslm_layer_telemetry *y = &v->layers[l];
        if (y->n_heads < 0 || y->attn_dim < 0 || y->ffn_dim < 0) fuzz_die("a negative layer size");
        touch(y->head_entropy, (uint64_t)y->n_heads, sizeof(double), "head entropy");
        touch(y->head_max_weight, (uint64_t)y->n_heads, sizeof(double), "head max weight");
        touch(y->head_out_norm, (uint64_t)y->n_heads, sizeof(double), "head output norm");
        touch(y->ffn_pos, (uint64_t)y->ffn_dim, sizeof(uint64_t), "ffn positives");
        touch(y->ffn_abs, (uint64_t)y->ffn_dim, sizeof(double), "ffn abs");
        touch(y->ffn_sq, (uint64_t)y->ffn_dim, sizeof(double), "ffn squares");
        touch(y->in_sq_qkv, (uint64_t)v->hidden, sizeof(double), "qkv input");
        touch(y->in_sq_attn_out, (uint64_t)y->attn_dim, sizeof(double), "attention output input");
        touch(y->in_sq_ffn_in, (uint64_t)v->hidden, sizeof(double), "ffn input");
    }
}

// The window's sizes and a few sums: what a rewrite must keep.
static int same_window(const seslm_telemetry_view *a, const seslm_telemetry_view *b) {
    if (a->vocab_size != b->vocab_size || a->hidden != b->hidden || a->n_layers != b->n_layers ||
        a->n_tokens != b->n_tokens || a->n_pairs != b->n_pairs || a->n_reservoir != b->n_reservoir ||
        a->n_batch_records != b->n_batch_records || a->n_intents != b->n_intents || a->cms_width != b->cms_width ||
        a->window_start_ns != b->window_start_ns || strcmp(a->model_sha256, b->model_sha256) != 0)
        return 0;
    if (memcmp(a->token_counts, b->token_counts, (size_t)a->vocab_size * sizeof(uint64_t)) != 0) return 0;
    for (int l = 0; l < a->n_layers; l++)
        if (a->layers[l].n_heads != b->layers[l].n_heads || a->layers[l].ffn_dim != b->layers[l].ffn_dim ||
            a->layers[l].exec_count != b->layers[l].exec_count)
            return 0;
    for (int i = 0; i < a->n_intents; i++)
        if (strcmp(a->intent_labels[i], b->intent_labels[i]) != 0 || a->intent_counts[i] != b->intent_counts[i])
            return 0;
    return 1;
}

static void check_closed(void) {
    if (H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) != 0) fuzz_die("HDF5 objects left open");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_file("telemetry", "node-0.h5", data, size);
    char in_path[200], out_path[200];
    snprintf(in_path, sizeof in_path, "%s", path);
    fuzz_path("telemetry", "rewritten.h5", out_path, sizeof out_path);
    seslm_telemetry_dump *d = NULL;
    seslm_status st = seslm_telemetry_dump_read(in_path, NULL, &d);
    check_closed();
    if (st != SESLM_OK) {
        if (d) fuzz_die("a failed read returned a dump");
        if (st != SESLM_ERR_IO && st != SESLM_ERR_FORMAT && st != SESLM_ERR_SHAPE && st != SESLM_ERR_ARG &&
            st != SESLM_ERR_NOMEM)
            fuzz_die("unexpected status");
        if (!strstr(seslm_last_error(), in_path)) fuzz_die("the message does not name the file");
        return 0;
    }
    check_view(&d->v);
    remove(out_path);
    st = seslm_telemetry_dump_write_path(&d->v, &d->meta, out_path);
    check_closed();
    if (st != SESLM_OK) fuzz_die("a dump that loads cannot be written back");
    seslm_telemetry_dump *d2 = NULL;
    st = seslm_telemetry_dump_read(out_path, d->v.model_sha256, &d2);
    check_closed();
    if (st != SESLM_OK) fuzz_die("a rewritten dump does not load");
    if (!same_window(&d->v, &d2->v)) fuzz_die("the rewritten dump holds another window");
    seslm_telemetry_dump_free(d2);
    seslm_telemetry_dump_free(d);
    remove(out_path);
    return 0;
}
