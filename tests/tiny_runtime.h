/* tiny_runtime.h — what several runtime tests do with a tiny model (tiny_model.h): write it into a
 * directory and load it, and feed random ragged id batches through an encoder with telemetry on. */
#ifndef SESLM_TINY_RUNTIME_H
#define SESLM_TINY_RUNTIME_H

#include "seslm.h"
#include "telemetry.h"
#include "test.h"
#include "tiny_model.h"

#include <sys/stat.h>

/* Writes tm into root/sub and loads it; a failure is a check failure and ends the test. */
TM_API seslm_model *tr_write_and_load(const char *root, const char *sub, const tm_model *tm, const tm_write_opts *o,
                                      const char *test_name) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", root, sub);
    mkdir(dir, 0755);
    CHECK_MSG(tm_write(tm, dir, o), "writing %s", dir);
    seslm_model *m = NULL;
    seslm_status st = seslm_model_load(&m, dir);
    CHECK_MSG(st == SESLM_OK && m, "load %s: %s: %s", sub, seslm_status_str(st), seslm_last_error());
    if (!m) exit(test_report(test_name));
    return m;
}

/* n_batches random ragged batches (1..6 sequences of 1..32 ids, from seed) through a "cpu" encoder
 * with telemetry t attached, one request each; returns the number of sequences. */
TM_API int tr_feed_random(const seslm_model *m, seslm_telemetry *t, int n_batches, uint64_t seed, int n_threads) {
    seslm_encoder *e = NULL;
    seslm_encoder_opts o = {.backend = "cpu", .n_threads = n_threads, .max_batch = 6};
    CHECK(seslm_encoder_new(&e, m, &o) == SESLM_OK);
    if (!e) return 0;
    seslm_encoder_set_telemetry(e, t);
    const int V = seslm_model_get_config(m)->vocab_size;
    tm_seed(seed);
    int seqs = 0;
    for (int k = 0; k < n_batches; k++) {
        int32_t ids[6][32];
        const int32_t *rows[6];
        int lens[6], B = 1 + (int)(tm_rand_u32() % 6);
        for (int b = 0; b < B; b++) {
            lens[b] = 1 + (int)(tm_rand_u32() % 32);
            for (int i = 0; i < lens[b]; i++) ids[b][i] = (int32_t)(tm_rand_u32() % (uint32_t)V);
            rows[b] = ids[b];
        }
        float out[6 * 64];
        seslm_telemetry_count_request(t);
        CHECK_MSG(seslm_encoder_forward_ids(e, rows, lens, B, out) == SESLM_OK, "%s", seslm_last_error());
        seqs += B;
    }
    seslm_encoder_free(e);
    return seqs;
}

#endif
