/* test_telemetry_hdf5.c — telemetry dumps (runtime/telemetry/telemetry_hdf5.c, schema docs/telemetry.md):
 *   - every field of a window round-trips exactly (write, read back, memcmp), for a window with data,
 *     an empty window (zero-length datasets), a pruned model (layers with 0 heads / 0 neurons) and
 *     intent labels;
 *   - crash safety: the final name does not exist until the file is complete (checked from inside the
 *     writer, between fsync and rename), no temporary files remain, dumps are never replaced;
 *   - the reader rejects, with a message and without crashing: missing files, directories, empty and
 *     random files, truncations at many sizes, flipped bytes (checksums), schema_version 2, a wrong
 *     model hash, a missing group / dataset / attribute, a wrong shape and a wrong dtype, a dataset that
 *     claims a gigabyte in a few bytes (refused before any allocation), a dataset stored in another file, and
 *     values with valid checksums that no node writes (a NaN, infinite or negative sum, a NaN reservoir row, a
 *     neuron positive on more tokens than the FFN saw).
 * Runs on a tiny random model (tests/tiny_model.h). */
#include "telemetry_hdf5.h"
#include "test.h"
#include "tiny_runtime.h"

#include <dirent.h>
#include <math.h>
#include <errno.h>
#include <hdf5.h>
#include <sys/wait.h>

static char *g_root;

static seslm_model *write_and_load(const tm_model *tm, const char *sub) {
    return tr_write_and_load(g_root, sub, tm, NULL, "test_telemetry_hdf5");
}
static void feed(const seslm_model *m, seslm_telemetry *t, int n, uint64_t seed) { tr_feed_random(m, t, n, seed, 2); }



// ---- exact comparison of two views ----------------------------------------------------------------

static int same(const void *a, const void *b, size_t n) { return n == 0 || (a && b && memcmp(a, b, n) == 0); }

/* The first field in which two views differ (exact comparison, arrays by memcmp), or NULL. */
static const char *view_diff(const seslm_telemetry_view *a, const seslm_telemetry_view *b) {
#define F(field) \
    if (a->field != b->field) return #field
#define ARR(field, n) \
    if (!same(a->field, b->field, (size_t)(n) * sizeof *a->field)) return #field
    F(window_start_ns);
    F(window_end_ns);
    F(n_requests);
    F(n_batches);
    F(n_sequences);
    F(n_tokens);
    F(vocab_size);
    F(hidden);
    F(n_layers);
    F(max_seq_len);
    ARR(token_counts, a->vocab_size);
    ARR(seq_len_hist, a->max_seq_len + 1);
    F(n_batch_records);
    ARR(batches, a->n_batch_records);
    F(n_pairs);
    ARR(pairs, a->n_pairs);
    F(cms_width);
    F(cms_depth);
    F(seed);
    ARR(cms, (size_t)a->cms_depth * a->cms_width);
    F(pairs_total);
    F(n_reservoir);
    F(reservoir_seen);
    ARR(reservoir, (size_t)a->n_reservoir * a->hidden);
    F(peak_rss_bytes);
    F(peak_device_bytes);
    if (!a->model_sha256 || !b->model_sha256 || strcmp(a->model_sha256, b->model_sha256) != 0) return "model_sha256";
    F(n_intents);
    for (int i = 0; i < a->n_intents; i++) {
        if (strcmp(a->intent_labels[i], b->intent_labels[i]) != 0) return "intent_labels";
        if (a->intent_counts[i] != b->intent_counts[i]) return "intent_counts";
    }
    for (int l = 0; l < a->n_layers; l++) {
        const seslm_layer_telemetry *x = &a->layers[l], *y = &b->layers[l];
        const size_t H = (size_t)x->n_heads, Fn = (size_t)x->ffn_dim, A = (size_t)x->attn_dim, C = (size_t)a->hidden;
        if (x->n_heads != y->n_heads || x->attn_dim != y->attn_dim || x->ffn_dim != y->ffn_dim) return "layer dims";
        if (x->exec_count != y->exec_count || x->exec_ns != y->exec_ns || x->query_tokens != y->query_tokens ||
            x->ffn_tokens != y->ffn_tokens)
            return "layer counters";
        if (!same(x->head_entropy, y->head_entropy, H * 8)) return "head_entropy";
        if (!same(x->head_max_weight, y->head_max_weight, H * 8)) return "head_max_weight";
        if (!same(x->head_out_norm, y->head_out_norm, H * 8)) return "head_out_norm";
        if (!same(x->ffn_pos, y->ffn_pos, Fn * 8)) return "ffn_pos";
        if (!same(x->ffn_abs, y->ffn_abs, Fn * 8)) return "ffn_abs";
        if (!same(x->ffn_sq, y->ffn_sq, Fn * 8)) return "ffn_sq";
        if (!same(x->in_sq_qkv, y->in_sq_qkv, C * 8)) return "in_sq_qkv";
        if (!same(x->in_sq_attn_out, y->in_sq_attn_out, A * 8)) return "in_sq_attn_out";
        if (!same(x->in_sq_ffn_in, y->in_sq_ffn_in, C * 8)) return "in_sq_ffn_in";
    }
    return NULL;
#undef F
#undef ARR
}

// the dump-only metadata too
static const char *dump_diff(const seslm_telemetry_dump *a, const seslm_telemetry_dump *b) {
    const char *d = view_diff(&a->v, &b->v);
    if (d) return d;
    if (a->meta.seq != b->meta.seq || a->meta.n_rejected != b->meta.n_rejected) return "meta counters";
    if (strcmp(a->meta.node_id, b->meta.node_id) != 0 || strcmp(a->meta.model_id, b->meta.model_id) != 0)
        return "meta ids";
    if (strcmp(a->writer, b->writer) != 0) return "writer";
    return NULL;
}

static void check_same_view(const char *what, const seslm_telemetry_view *a, const seslm_telemetry_view *b) {
    const char *d = view_diff(a, b);
    CHECK_MSG(d == NULL, "%s: %s differs after the round trip", what, d);
}

// ---- helpers ------------------------------------------------------------------------------------

// Entries of dir other than . and ..; writes up to cap names into names.
static int list_dir(const char *dir, char names[][256], int cap) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        if (n < cap) snprintf(names[n], 256, "%s", de->d_name);
        n++;
    }
    if (d) closedir(d);
    return n;
}

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    *len = b && fread(b, 1, (size_t)n, f) == (size_t)n ? (size_t)n : 0;
    fclose(f);
    return b;
}

static void copy_file(const char *src, const char *dst) {
    size_t n = 0;
    uint8_t *b = slurp(src, &n);
    CHECK(b && n > 0 && tm_write_bytes(dst, b, n));
    free(b);
}

// Reading `path` fails with a message that names the file and contains `needle` (NULL: any message).
static void expect_reject(const char *path, const char *sha, const char *needle, const char *what) {
    seslm_telemetry_dump *d = NULL;
    seslm_status st = seslm_telemetry_dump_read(path, sha, &d);
    const char *msg = seslm_last_error();
    CHECK_MSG(st != SESLM_OK && d == NULL, "%s: accepted", what);
    CHECK_MSG(strstr(msg, path) != NULL, "%s: message does not name the file: %s", what, msg);
    CHECK_MSG(!needle || strstr(msg, needle) != NULL, "%s: message lacks '%s': %s", what, needle, msg);
    if (st == SESLM_OK) seslm_telemetry_dump_free(d);
}

// ---- before_rename hook: the final name must not exist yet, the temporary file must be complete ----

typedef struct {
    int calls;
    const char *sha;
    char tmp[4096];
} hook_state;

static void before_rename(void *ctx, const char *tmp, const char *final) {
    hook_state *h = ctx;
    h->calls++;
    snprintf(h->tmp, sizeof h->tmp, "%s", tmp);
    struct stat sb;
    CHECK_MSG(lstat(final, &sb) != 0 && errno == ENOENT, "final name %s exists before the rename", final);
    CHECK_MSG(lstat(tmp, &sb) == 0 && S_ISREG(sb.st_mode), "temporary file %s missing", tmp);
    const char *base = strrchr(tmp, '/') ? strrchr(tmp, '/') + 1 : tmp;
    CHECK_MSG(base[0] == '.' && strstr(base, ".tmp.") != NULL, "temporary name %s", base);
    CHECK(!seslm_telemetry_dump_is_final_name(tmp));
    // complete: the reader accepts it already
    seslm_telemetry_dump *d = NULL;
    CHECK_MSG(seslm_telemetry_dump_read(tmp, h->sha, &d) == SESLM_OK, "temporary file incomplete: %s",
              seslm_last_error());
    seslm_telemetry_dump_free(d);
}

// ---- tests ----------------------------------------------------------------------------------------

static void test_names(void) {
    char name[256];
    CHECK(seslm_telemetry_dump_name(name, sizeof name, "node-1", 1700000000123456789LL, 42) == SESLM_OK);
    CHECK_MSG(strcmp(name, "node-1-20231114T221320.123Z-000042.h5") == 0, "%s", name);
    CHECK(seslm_telemetry_dump_name(name, sizeof name, "n", 0, 1234567) == SESLM_OK);
    CHECK_MSG(strcmp(name, "n-19700101T000000.000Z-1234567.h5") == 0, "%s", name);
    static const char *bad[] = {"", ".hidden", "-x", "a/b", "a b", "ä", "x\n",
                                "a123456789012345678901234567890123456789012345678901234567890123456789"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_MSG(seslm_telemetry_dump_name(name, sizeof name, bad[i], 0, 0) == SESLM_ERR_ARG, "node '%s'", bad[i]);
        CHECK(strstr(seslm_last_error(), "node id") != NULL);
    }
    CHECK(seslm_telemetry_dump_name(name, 10, "node", 0, 0) == SESLM_ERR_ARG);
    CHECK(seslm_telemetry_dump_is_final_name("x-1.h5") && seslm_telemetry_dump_is_final_name("/d/x-1.h5"));
    CHECK(!seslm_telemetry_dump_is_final_name(".x-1.h5.tmp.123") && !seslm_telemetry_dump_is_final_name("/d/.x.h5"));
    CHECK(!seslm_telemetry_dump_is_final_name("x.h5.tmp.1") && !seslm_telemetry_dump_is_final_name(".h5"));
}

// Writes v into a fresh directory, checks the hook ran and only the final file remains, reads it back
// and compares. Returns the path (static buffer).
static const char *roundtrip(const char *what, const seslm_telemetry_view *v, const seslm_dump_meta *meta0) {
    static char path[4096];
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/rt_%s", g_root, what);
    mkdir(dir, 0755);
    hook_state h = {.sha = v->model_sha256};
    seslm_dump_meta meta = *meta0;
    meta.before_rename = before_rename;
    meta.ctx = &h;
    seslm_status st = seslm_telemetry_dump_write(v, &meta, dir, path, sizeof path);
    CHECK_MSG(st == SESLM_OK, "%s: write: %s", what, seslm_last_error());
    CHECK_MSG(h.calls == 1, "%s: hook called %d times", what, h.calls);
    struct stat sb;
    CHECK_MSG(lstat(h.tmp, &sb) != 0, "%s: temporary file %s left behind", what, h.tmp);
    char names[8][256];
    int n = list_dir(dir, names, 8);
    CHECK_MSG(n == 1 && seslm_telemetry_dump_is_final_name(names[0]), "%s: %d entries in %s (first %s)", what, n, dir,
              n ? names[0] : "-");
    char want[256];
    CHECK(seslm_telemetry_dump_name(want, sizeof want, meta.node_id, v->window_start_ns, meta.seq) == SESLM_OK);
    CHECK_MSG(n == 1 && strcmp(names[0], want) == 0, "%s: file %s, expected %s", what, n ? names[0] : "-", want);

    seslm_telemetry_dump *d = NULL;
    st = seslm_telemetry_dump_read(path, v->model_sha256, &d);
    CHECK_MSG(st == SESLM_OK && d, "%s: read: %s", what, seslm_last_error());
    if (d) {
        check_same_view(what, v, &d->v);
        CHECK(d->schema_version == 1);
        CHECK(strcmp(d->meta.node_id, meta.node_id) == 0 && strcmp(d->meta.model_id, meta.model_id) == 0);
        CHECK(d->meta.seq == meta.seq && d->meta.n_rejected == meta.n_rejected && d->meta.before_rename == NULL);
        CHECK(strncmp(d->writer, "seslm", 5) == 0);
        seslm_telemetry_dump_free(d);
    }
    // without an expected hash too
    st = seslm_telemetry_dump_read(path, NULL, &d);
    CHECK_MSG(st == SESLM_OK, "%s: read without hash: %s", what, seslm_last_error());
    seslm_telemetry_dump_free(d);
    // a dump is never replaced
    st = seslm_telemetry_dump_write(v, meta0, dir, NULL, 0);
    CHECK_MSG(st == SESLM_ERR_IO && strstr(seslm_last_error(), "never replaced"), "%s: overwrite: %s", what,
              seslm_last_error());
    CHECK(list_dir(dir, names, 8) == 1);
    return path;
}

static void test_roundtrip(const seslm_model *m, const seslm_model *mp, char *sample, size_t sample_cap) {
    // small sketch, heap, reservoir and batch log so that all of them fill up and truncate
    seslm_telemetry_opts o = {.cms_width = 64, .cms_depth = 3, .top_pairs = 16, .reservoir = 4, .max_batches = 5,
                              .seed = 99};
    seslm_telemetry *t = NULL;
    CHECK(seslm_telemetry_new(&t, m, &o) == SESLM_OK);
    feed(m, t, 9, 1);
    seslm_telemetry_view v;
    seslm_telemetry_snapshot(t, &v);
    CHECK(v.n_batches == 9 && v.n_batch_records == 5 && v.n_pairs == 16 && v.n_reservoir == 4 && v.n_tokens > 0);
    seslm_dump_meta meta = {.node_id = "node-a_1.x", .model_id = "tiny", .seq = 7, .n_rejected = 3};
    const char *p = roundtrip("full", &v, &meta);
    snprintf(sample, sample_cap, "%s", p);

    // the same window with intent labels (non-ASCII included) and a huge seq number
    const char *labels[3] = {"greeting", "transfer_money", "b\xc3\xa4r \xe2\x82\xac"};
    uint64_t counts[3] = {5, 0, UINT64_MAX};
    seslm_telemetry_view vi = v;
    vi.n_intents = 3;
    vi.intent_labels = labels;
    vi.intent_counts = counts;
    meta.seq = UINT64_MAX;
    meta.model_id = "";
    roundtrip("intents", &vi, &meta);

    // an empty window: every variable-length dataset has zero rows
    seslm_telemetry_reset(t);
    seslm_telemetry_snapshot(t, &v);
    CHECK(v.n_tokens == 0 && v.n_pairs == 0 && v.n_reservoir == 0 && v.n_batch_records == 0 && v.n_intents == 0);
    meta = (seslm_dump_meta){.node_id = "n0", .model_id = "tiny", .seq = 0};
    roundtrip("empty", &v, &meta);
    seslm_telemetry_free(t);

    // a pruned model: layer 0 has 2 heads and 8 neurons, layer 1 none (zero-length per-layer datasets)
    CHECK(seslm_telemetry_new(&t, mp, NULL) == SESLM_OK); // default sizes: 65536 x 4 sketch, 1024 pairs
    feed(mp, t, 4, 2);
    seslm_telemetry_snapshot(t, &v);
    CHECK(v.layers[0].n_heads == 2 && v.layers[0].ffn_dim == 8 && v.layers[1].n_heads == 0 &&
          v.layers[1].ffn_dim == 0 && v.layers[1].attn_dim == 0);
    CHECK(v.layers[0].query_tokens == v.n_tokens && v.layers[1].query_tokens == 0);
    meta = (seslm_dump_meta){.node_id = "pruned", .model_id = "tiny-pruned", .seq = 1};
    roundtrip("pruned", &v, &meta);
    seslm_telemetry_free(t);
}

static void test_write_errors(const seslm_model *m) {
    seslm_telemetry *t = NULL;
    CHECK(seslm_telemetry_new(&t, m, NULL) == SESLM_OK);
    seslm_telemetry_view v;
    seslm_telemetry_snapshot(t, &v);
    seslm_dump_meta meta = {.node_id = "n", .model_id = "tiny"};
    char dir[4096], path[4096];
    snprintf(dir, sizeof dir, "%s/no/such/dir", g_root);
    CHECK(seslm_telemetry_dump_write(&v, &meta, dir, path, sizeof path) == SESLM_ERR_IO);
    CHECK_MSG(strstr(seslm_last_error(), "does not exist"), "%s", seslm_last_error());
    meta.node_id = "bad/node";
    CHECK(seslm_telemetry_dump_write(&v, &meta, g_root, path, sizeof path) == SESLM_ERR_ARG);
    // an unwritable directory (skipped as root, who may write anyway)
    snprintf(dir, sizeof dir, "%s/ro", g_root);
    mkdir(dir, 0555);
    meta.node_id = "n";
    if (geteuid() != 0) {
        CHECK(seslm_telemetry_dump_write(&v, &meta, dir, path, sizeof path) == SESLM_ERR_IO);
        CHECK_MSG(strstr(seslm_last_error(), "cannot create"), "%s", seslm_last_error());
    }
    char names[4][256];
    CHECK(list_dir(dir, names, 4) == 0 || geteuid() == 0);
    chmod(dir, 0755);
    seslm_telemetry_free(t);
}

// Opens a copy of `src` with HDF5 and applies `edit` (which returns 0 on success).
static void edited_copy(const char *src, const char *dst, int (*edit)(hid_t f)) {
    copy_file(src, dst);
    H5E_auto2_t fn;
    void *data;
    H5Eget_auto2(H5E_DEFAULT, &fn, &data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(dst, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK_MSG(f >= 0, "cannot open %s for editing", dst);
    if (f >= 0) {
        CHECK_MSG(edit(f) == 0, "editing %s failed", dst);
        H5Fclose(f);
    }
    H5Eset_auto2(H5E_DEFAULT, fn, data);
}

static int edit_version2(hid_t f) {
    hid_t a = H5Aopen(f, "schema_version", H5P_DEFAULT);
    int32_t two = 2;
    int rc = a >= 0 && H5Awrite(a, H5T_NATIVE_INT32, &two) >= 0 ? 0 : -1;
    if (a >= 0) H5Aclose(a);
    return rc;
}

static int edit_version_i64(hid_t f) { // version 7 stored as int64: still a clear version message
    if (H5Adelete(f, "schema_version") < 0) return -1;
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, "schema_version", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    int64_t v = 7;
    int rc = a >= 0 && H5Awrite(a, H5T_NATIVE_INT64, &v) >= 0 ? 0 : -1;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return rc;
}

static int edit_no_version(hid_t f) { return H5Adelete(f, "schema_version") < 0 ? -1 : 0; }
static int edit_missing_ds(hid_t f) { return H5Ldelete(f, "/layers/1/ffn_sq_sum", H5P_DEFAULT) < 0 ? -1 : 0; }
static int edit_missing_group(hid_t f) { return H5Ldelete(f, "/memory", H5P_DEFAULT) < 0 ? -1 : 0; }
static int edit_missing_attr(hid_t f) { return H5Adelete(f, "n_tokens") < 0 ? -1 : 0; }
static int edit_missing_layer_attr(hid_t f) { return H5Adelete_by_name(f, "/layers/0", "exec_ns", H5P_DEFAULT) < 0 ? -1 : 0; }

static int replace_ds(hid_t f, const char *name, hid_t type, int rank, const hsize_t *dims) {
    if (H5Ldelete(f, name, H5P_DEFAULT) < 0) return -1;
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Sclose(sp);
    if (d < 0) return -1;
    H5Dclose(d);
    return 0;
}
static int edit_shape(hid_t f) { // counts of vocab_size + 1 entries
    hsize_t d[1] = {TM_VOCAB + 1};
    return replace_ds(f, "/tokens/counts", H5T_STD_U64LE, 1, d);
}
static int edit_rank(hid_t f) { // the sketch as 1-D
    hsize_t d[1] = {64 * 3};
    return replace_ds(f, "/token_pairs/cms", H5T_STD_U32LE, 1, d);
}
static int edit_reservoir_cols(hid_t f) {
    hsize_t d[2] = {4, 15};
    return replace_ds(f, "/embeddings/reservoir", H5T_IEEE_F32LE, 2, d);
}
static int edit_dtype(hid_t f) { // seq_len_hist as int32
    hsize_t d[1] = {33};
    return replace_ds(f, "/tokens/seq_len_hist", H5T_STD_I32LE, 1, d);
}
static int edit_pair_len(hid_t f) { // second shorter than first
    hsize_t d[1] = {3};
    return replace_ds(f, "/token_pairs/second", H5T_STD_U32LE, 1, d);
}
static int edit_attr_dtype(hid_t f) { // n_tokens as float64
    if (H5Adelete(f, "n_tokens") < 0) return -1;
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, "n_tokens", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    double x = 1;
    int rc = a >= 0 && H5Awrite(a, H5T_NATIVE_DOUBLE, &x) >= 0 ? 0 : -1;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return rc;
}
static int edit_counts_sum(hid_t f) { // counts no longer add up to n_tokens
    hid_t a = H5Aopen(f, "n_tokens", H5P_DEFAULT);
    uint64_t v = 1;
    int rc = a >= 0 && H5Awrite(a, H5T_NATIVE_UINT64, &v) >= 0 ? 0 : -1;
    if (a >= 0) H5Aclose(a);
    return rc;
}

/* Element i of a 1-D float64 / uint64 dataset (or of a float32 one, row-major) set to v, written back through its
 * filters (so its checksum is right: what a faulty node or a crafted file holds). */
static int set_elem(hid_t f, const char *name, hid_t mtype, size_t size, size_t i, const void *v) {
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) return -1;
    hid_t sp = H5Dget_space(d);
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    uint8_t *buf = n > 0 && (size_t)n > i ? malloc((size_t)n * size) : NULL;
    int rc = buf && H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0 ? 0 : -1;
    if (rc == 0) memcpy(buf + i * size, v, size);
    if (rc == 0 && H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) rc = -1;
    free(buf);
    if (sp >= 0) H5Sclose(sp);
    H5Dclose(d);
    return rc;
}
static int edit_nan_sum(hid_t f) {
    const double v = NAN;
    return set_elem(f, "/layers/1/ffn_abs_sum", H5T_NATIVE_DOUBLE, 8, 3, &v);
}
static int edit_negative_sum(hid_t f) {
    const double v = -2.5;
    return set_elem(f, "/layers/0/head_entropy_sum", H5T_NATIVE_DOUBLE, 8, 1, &v);
}
static int edit_inf_sum(hid_t f) {
    const double v = INFINITY;
    return set_elem(f, "/layers/0/in_sq_qkv", H5T_NATIVE_DOUBLE, 8, 0, &v);
}
static int edit_nan_reservoir(hid_t f) { // row 1 of the reservoir (hidden 16)
    const float v = NAN;
    return set_elem(f, "/embeddings/reservoir", H5T_NATIVE_FLOAT, 4, 16 + 5, &v);
}
static int edit_pos_count(hid_t f) { // a neuron positive on more tokens than went through the FFN
    const uint64_t v = UINT64_C(1) << 40;
    return set_elem(f, "/layers/0/ffn_pos_count", H5T_NATIVE_UINT64, 8, 2, &v);
}

/* A dataset of `dims` elements whose chunks were never written: a few bytes in the file that read as gigabytes of fill
 * values. dcpl_extra adds to the creation properties (0 on success). */
static int replace_ds_with(hid_t f, const char *name, hid_t type, hsize_t n, int (*dcpl_extra)(hid_t dcpl)) {
    if (H5Ldelete(f, name, H5P_DEFAULT) < 0) return -1;
    hsize_t dims[1] = {n};
    hid_t sp = H5Screate_simple(1, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t d = dcpl >= 0 && dcpl_extra(dcpl) == 0 ? H5Dcreate2(f, name, type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT) : -1;
    H5Sclose(sp);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (d < 0) return -1;
    H5Dclose(d);
    return 0;
}
static int chunked(hid_t dcpl) {
    hsize_t c[1] = {1 << 16};
    return H5Pset_chunk(dcpl, 1, c) < 0 || H5Pset_deflate(dcpl, 6) < 0 ? -1 : 0;
}
static int edit_batches_bomb(hid_t f) { // 2^26 batches claimed (1 GiB to allocate and fill) in a few hundred bytes
    const hsize_t n = (hsize_t)1 << 26;
    if (replace_ds_with(f, "/batches/latency_ns", H5T_STD_I64LE, n, chunked) < 0 ||
        replace_ds_with(f, "/batches/batch_size", H5T_STD_I32LE, n, chunked) < 0 ||
        replace_ds_with(f, "/batches/n_tokens", H5T_STD_I32LE, n, chunked) < 0)
        return -1;
    hid_t a = H5Aopen(f, "n_batches", H5P_DEFAULT);
    uint64_t v = n;
    int rc = a >= 0 && H5Awrite(a, H5T_NATIVE_UINT64, &v) >= 0 ? 0 : -1;
    if (a >= 0) H5Aclose(a);
    return rc;
}
static int external_file(hid_t dcpl) { // the data of another file (what a crafted dump would make us copy)
    return H5Pset_external(dcpl, "/etc/hostname", 0, 33 * 8) < 0 ? -1 : 0;
}
static int edit_external(hid_t f) { return replace_ds_with(f, "/tokens/seq_len_hist", H5T_STD_U64LE, 33, external_file); }

// Byte offset and size of the first chunk of a dataset (to corrupt its data).
static int chunk_location(const char *path, const char *ds, haddr_t *addr, hsize_t *size) {
    int ok = 0;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = f >= 0 ? H5Dopen2(f, ds, H5P_DEFAULT) : -1;
    if (d >= 0) {
        hsize_t off[2];
        unsigned mask;
        hid_t sp = H5Dget_space(d);
        ok = sp >= 0 && H5Dget_chunk_info(d, sp, 0, off, &mask, addr, size) >= 0;
        if (sp >= 0) H5Sclose(sp);
        H5Dclose(d);
    }
    if (f >= 0) H5Fclose(f);
    return ok;
}

// Changes random bytes of the dump `sample` (image img, n bytes) one at a time, writing to p.
static void flip_all(const char *sample, const char *p, uint8_t *img, size_t n) {
    seslm_telemetry_dump *orig = NULL;
    CHECK(seslm_telemetry_dump_read(sample, NULL, &orig) == SESLM_OK);
    int rejected = 0, tries = 256;
    tm_seed(11);
    for (int k = 0; img && orig && k < tries; k++) {
        size_t at = tm_rand_u32() % n;
        uint8_t old = img[at];
        img[at] ^= (uint8_t)(1 + tm_rand_u32() % 255);
        CHECK(tm_write_bytes(p, img, n));
        seslm_telemetry_dump *d = NULL;
        seslm_status st = seslm_telemetry_dump_read(p, NULL, &d);
        if (st != SESLM_OK) {
            rejected++;
            CHECK_MSG(strstr(seslm_last_error(), p) != NULL, "flip at %zu: %s", at, seslm_last_error());
        } else {
            const char *diff = dump_diff(orig, d);
            CHECK_MSG(diff == NULL, "byte %zu changed: accepted with a different %s", at, diff);
        }
        seslm_telemetry_dump_free(d);
        // whatever failed, every object the reader opened is closed again (files, groups, datasets,
        // attributes, datatypes, dataspaces): none is left to HDF5's shutdown
        ssize_t open_objs = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
        CHECK_MSG(open_objs == 0, "flip at %zu (%s): %zd HDF5 objects left open", at, st ? "rejected" : "read", open_objs);
        img[at] = old;
    }
    printf("random byte changes: %d of %d rejected, the rest in bytes HDF5 does not read\n", rejected, tries);
    CHECK(rejected >= tries / 2);
    seslm_telemetry_dump_free(orig);
}

static void test_reject(const char *sample, const char *sha) {
    char p[4096];
    // missing, a directory, empty, random bytes, a text file
    snprintf(p, sizeof p, "%s/does-not-exist.h5", g_root);
    expect_reject(p, NULL, "No such file", "missing file");
    expect_reject(g_root, NULL, "not a regular file", "directory");
    snprintf(p, sizeof p, "%s/empty.h5", g_root);
    CHECK(tm_write_bytes(p, "", 0));
    expect_reject(p, NULL, "not an HDF5 file", "empty file");
    uint8_t rnd[8192];
    tm_seed(5);
    for (size_t i = 0; i < sizeof rnd; i++) rnd[i] = (uint8_t)tm_rand_u32();
    snprintf(p, sizeof p, "%s/random.h5", g_root);
    CHECK(tm_write_bytes(p, rnd, sizeof rnd));
    expect_reject(p, NULL, "not an HDF5 file", "random bytes");
    // random bytes behind a real HDF5 signature
    memcpy(rnd, "\x89HDF\r\n\x1a\n", 8);
    CHECK(tm_write_bytes(p, rnd, sizeof rnd));
    expect_reject(p, NULL, NULL, "random bytes after the signature");

    // truncations
    size_t n = 0;
    uint8_t *img = slurp(sample, &n);
    CHECK(img && n > 4096);
    size_t cuts[] = {1, 7, 8, 47, 48, 100, 512, 1024, 2048, n / 4, n / 3, n / 2, 2 * n / 3, n - 4096, n - 100, n - 9,
                     n - 1};
    snprintf(p, sizeof p, "%s/truncated.h5", g_root);
    for (size_t i = 0; img && i < sizeof cuts / sizeof cuts[0]; i++) {
        CHECK(tm_write_bytes(p, img, cuts[i]));
        char what[64];
        snprintf(what, sizeof what, "truncated to %zu of %zu bytes", cuts[i], n);
        expect_reject(p, NULL, NULL, what);
    }
    // a HDF5 file with extra bytes appended is still the same HDF5 file: accepted
    // flipped bytes: every flip inside a dataset's chunk is caught by its checksum; no flip crashes
    haddr_t addr = 0;
    hsize_t csize = 0;
    CHECK(chunk_location(sample, "/tokens/counts", &addr, &csize) && csize > 0 && addr + csize <= n);
    snprintf(p, sizeof p, "%s/flipped.h5", g_root);
    if (img && csize > 0 && addr + csize <= n) {
        for (int k = 0; k < 4; k++) {
            size_t at = (size_t)addr + (size_t)(k * (csize - 1) / 3);
            img[at] ^= 0x5a;
            CHECK(tm_write_bytes(p, img, n));
            expect_reject(p, NULL, "/tokens/counts", "flipped byte in the token counts' chunk");
            img[at] ^= 0x5a;
        }
        CHECK(chunk_location(sample, "/layers/0/head_entropy_sum", &addr, &csize) && csize > 0);
        img[addr + csize / 2] ^= 0x01;
        CHECK(tm_write_bytes(p, img, n));
        expect_reject(p, NULL, "head_entropy_sum", "flipped bit in an uncompressed small dataset");
        img[addr + csize / 2] ^= 0x01;
    }
    // Any byte changed anywhere: rejected, or (a byte HDF5 never reads) the very same content. HDF5
    // 1.10 leaks internal blocks after a metadata checksum failure (and says "infinite loop closing
    // library" at exit), so this part runs in a child process that leaves with _exit: the leak check
    // of this process stays meaningful for our own code.
    fflush(stdout);
    fflush(stderr);
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        t_failures = 0;
        flip_all(sample, p, img, n);
        fflush(stdout);
        fflush(stderr);
        _exit(t_failures ? 1 : 0);
    }
    int status = 0;
    CHECK(child > 0 && waitpid(child, &status, 0) == child);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "byte-change child: status %d", status);
    free(img);

    // edited copies of a valid dump
    struct {
        int (*edit)(hid_t);
        const char *needle, *what;
    } edits[] = {
        {edit_version2, "schema_version 2 is not supported", "schema_version 2"},
        {edit_version_i64, "schema_version 7 is not supported", "schema_version 7 as int64"},
        {edit_no_version, "not a telemetry dump", "no schema_version"},
        {edit_missing_ds, "dataset /layers/1/ffn_sq_sum is missing", "missing dataset"},
        {edit_missing_group, "group /memory is missing", "missing group"},
        {edit_missing_attr, "attribute /n_tokens is missing", "missing attribute"},
        {edit_missing_layer_attr, "attribute /layers/0/exec_ns is missing", "missing layer attribute"},
        {edit_shape, "dataset /tokens/counts has shape (41), expected (40)", "wrong shape"},
        {edit_rank, "dataset /token_pairs/cms has 1 dimensions, expected 2", "wrong rank"},
        {edit_reservoir_cols, "dataset /embeddings/reservoir has shape (4, 15), expected (<=1048576, 16)",
         "wrong reservoir width"},
        {edit_dtype, "dataset /tokens/seq_len_hist has dtype int32, expected uint64", "wrong dtype"},
        {edit_pair_len, "dataset /token_pairs/second has shape (3), expected (16)", "pair arrays of different lengths"},
        {edit_attr_dtype, "attribute /n_tokens has dtype float64, expected uint64", "wrong attribute dtype"},
        {edit_counts_sum, "sums to", "inconsistent counts"},
        {edit_batches_bomb, "dataset /batches/latency_ns claims 536870912 bytes of data but stores 0",
         "a dataset far larger than its stored bytes"},
        {edit_external, "dataset /tokens/seq_len_hist is not stored in the file", "a dataset in another file"},
        // values with valid checksums that the planner and the drift check must not see
        {edit_nan_sum, "/layers/1/ffn_abs_sum[3] is nan", "a NaN activation sum"},
        {edit_negative_sum, "/layers/0/head_entropy_sum[1] is -2.5", "a negative entropy sum"},
        {edit_inf_sum, "/layers/0/in_sq_qkv[0] is inf", "an infinite input sum"},
        {edit_nan_reservoir, "/embeddings/reservoir: row 1 holds a non-finite value", "a NaN reservoir embedding"},
        {edit_pos_count, "/layers/0/ffn_pos_count[2] is 1099511627776, more than ffn_tokens", "a positive count beyond the tokens"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        snprintf(p, sizeof p, "%s/edited_%zu.h5", g_root, i);
        edited_copy(sample, p, edits[i].edit);
        expect_reject(p, NULL, edits[i].needle, edits[i].what);
    }

    // a model hash mismatch names both hashes
    const char *other = "0000000000000000000000000000000000000000000000000000000000000000";
    expect_reject(sample, other, other, "wrong model hash (expected)");
    expect_reject(sample, other, sha, "wrong model hash (recorded)");
    // and the sample itself still reads fine after all that
    seslm_telemetry_dump *d = NULL;
    CHECK_MSG(seslm_telemetry_dump_read(sample, sha, &d) == SESLM_OK, "%s", seslm_last_error());
    seslm_telemetry_dump_free(d);
}

int main(void) {
    g_root = tm_mkdtemp("telemetry_hdf5");
    tm_model full, p0, p1;
    tm_init(&full, 3);
    tm_prune(&p0, &full, 0, 2, 8);
    tm_prune(&p1, &p0, 1, 0, 0);
    seslm_model *m = write_and_load(&full, "full");
    seslm_model *mp = write_and_load(&p1, "pruned");

    test_names();
    char sample[4096] = "";
    test_roundtrip(m, mp, sample, sizeof sample);
    test_write_errors(m);
    test_reject(sample, seslm_model_weights_sha256(m));

    seslm_model_free(m);
    seslm_model_free(mp);
    tm_free(&full);
    tm_free(&p0);
    tm_free(&p1);
    tm_rmtree(g_root);
    free(g_root);
    return test_report("test_telemetry_hdf5");
}
