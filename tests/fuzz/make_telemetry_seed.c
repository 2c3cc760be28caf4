/* make_telemetry_seed.c — writes the seeds of fuzz_telemetry (tests/fuzz/make_telemetry_corpus.sh builds and runs
 * it): telemetry dumps of the tiny random model (tests/tiny_model.h: vocab 40, hidden 16, 2 layers) with small
 * sketches, so that every dataset of the schema (docs/telemetry.md) has rows and the files stay small:
 *   OUT/full.h5     9 random batches, intent labels (one not ASCII)
 *   OUT/empty.h5    the same telemetry after a reset: every variable-length dataset has zero rows
 *   OUT/pruned.h5   a pruned model: layer 0 with 2 heads and 8 neurons, layer 1 with none */
#include "seslm/telemetry_hdf5.h"
#include "tiny_runtime.h"

static int write_dump(const seslm_telemetry_view *v, const char *node, const char *out_dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", out_dir, name);
    seslm_dump_meta meta = {.node_id = node, .model_id = "tiny", .seq = 3, .n_rejected = 1};
    remove(path);
    if (seslm_telemetry_dump_write_path(v, &meta, path) != SESLM_OK) {
        fprintf(stderr, "make_telemetry_seed: %s: %s\n", path, seslm_last_error());
        return 0;
    }
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_telemetry_seed OUT_DIR\n");
        return 2;
    }
    char *root = tm_mkdtemp("telemetry-seed");
    tm_model full, pruned;
    tm_init(&full, 3);
    tm_prune(&pruned, &full, 0, 2, 8);
    tm_model none;
    tm_prune(&none, &pruned, 1, 0, 0);
    seslm_model *m = tr_write_and_load(root, "full", &full, NULL, "make_telemetry_seed");
    seslm_model *mp = tr_write_and_load(root, "pruned", &none, NULL, "make_telemetry_seed");
    seslm_telemetry_opts o = {.cms_width = 32, .cms_depth = 2, .top_pairs = 8, .reservoir = 2, .max_batches = 3,
                              .seed = 99};
    seslm_telemetry *t = NULL;
    int ok = seslm_telemetry_new(&t, m, &o) == SESLM_OK;
    ok = ok && tr_feed_random(m, t, 9, 1, 1) > 0;
    seslm_telemetry_view v;
    const char *labels[3] = {"greeting", "transfer_money", "b\xc3\xa4r"};
    uint64_t counts[3] = {5, 0, 2};
    if (ok) {
        seslm_telemetry_snapshot(t, &v);
        v.n_intents = 3, v.intent_labels = labels, v.intent_counts = counts;
        ok = write_dump(&v, "node-a", argv[1], "full.h5");
        seslm_telemetry_reset(t);
        seslm_telemetry_snapshot(t, &v);
        ok = ok && write_dump(&v, "node-b", argv[1], "empty.h5");
    }
    seslm_telemetry_free(t);
    t = NULL;
    ok = ok && seslm_telemetry_new(&t, mp, &o) == SESLM_OK && tr_feed_random(mp, t, 3, 2, 1) > 0;
    if (ok) {
        seslm_telemetry_snapshot(t, &v);
        ok = write_dump(&v, "node-c", argv[1], "pruned.h5");
    }
    seslm_telemetry_free(t);
    seslm_model_free(m);
    seslm_model_free(mp);
    tm_free(&full), tm_free(&pruned), tm_free(&none);
    tm_rmtree(root);
    free(root);
    return ok && t_failures == 0 ? 0 : 1;
}
