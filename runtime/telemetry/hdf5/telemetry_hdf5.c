/* telemetry_hdf5.c — telemetry dumps: the HDF5 writer (crash-safe, immutable files) and the
 * validating reader. The schema is docs/telemetry.md; keep the two in step. */
#include "telemetry_hdf5.h"

#include <hdf5.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_BYTES (256 * 1024) // target size of one chunk (whole rows) of a dataset
#define DEFLATE_LEVEL 4
// Attributes stay in the (checksummed) object header up to this many per object; the dense storage
// HDF5 switches to beyond 8 by default keeps them in a fractal heap whose blocks carry no checksum.
#define MAX_COMPACT_ATTRS 64

// ---- HDF5 session: one at a time, error printing off, messages collected ---------------------------

static pthread_mutex_t g_h5_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct {
    H5E_auto2_t func;
    void *data;
} h5_session;

/* HDF5's automatic error printing stays off for the whole process: every failure is reported through
 * seslm_last_error with HDF5's own reason (h5_why). Left on, it would also print, at exit, "HDF5:
 * infinite loop closing library" after any file with a corrupt object header was read: HDF5 1.10.x leaks
 * the header's prefix into its free lists when the checksum fails (HDFGroup/hdf5#3790, fixed in 1.14.5
 * by #4445), though every object this file opens is closed (test_telemetry_hdf5 checks
 * H5Fget_obj_count after each corrupt read). The leak is bounded: the free lists reuse the memory. */
static void h5_begin(h5_session *s) {
    pthread_mutex_lock(&g_h5_lock);
    s->func = NULL;
    s->data = NULL;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void h5_end(h5_session *s) {
    (void)s;
    H5Eclear2(H5E_DEFAULT);
    pthread_mutex_unlock(&g_h5_lock);
}

typedef struct {
    char inner[160]; // the innermost (most specific) message of the HDF5 error stack
} h5_why_buf;

static herr_t h5_walk(unsigned n, const H5E_error2_t *e, void *data) {
    h5_why_buf *w = data;
    if (n == 0 && e && e->desc) snprintf(w->inner, sizeof w->inner, "%s", e->desc);
    return 0;
}

// The HDF5 library's own reason for the last failure ("" if none), then clears its stack.
static const char *h5_why(h5_why_buf *w) {
    w->inner[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5_walk, w);
    H5Eclear2(H5E_DEFAULT);
    return w->inner;
}

static hid_t h5_fapl(int create) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return fapl;
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG); // closing the file closes every object left open
#if H5_VERSION_GE(1, 10, 7)
    H5Pset_file_locking(fapl, 0, 1); // dumps are immutable once renamed; no lock files on odd filesystems
#endif
    // The 1.10 file format: every piece of metadata (superblock, object headers, chunk indexes) has a
    // checksum, so a corrupt file fails cleanly instead of being parsed. Readable by HDF5 >= 1.10.
#if H5_VERSION_GE(1, 10, 2)
    if (create) H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110);
#else
    if (create) H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
#endif
    return fapl;
}

// ---- names ------------------------------------------------------------------------------------------

static int node_id_ok(const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > SESLM_NODE_ID_MAX || s[0] == '.' || s[0] == '-') return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return 0;
    }
    return 1;
}

seslm_status seslm_telemetry_dump_name(char *out, size_t cap, const char *node_id, int64_t window_start_ns,
                                       uint64_t seq) {
    if (!node_id_ok(node_id))
        return seslm_fail(SESLM_ERR_ARG,
                          "invalid node id '%s': use 1..%d characters of [A-Za-z0-9._-], not starting with '.' or '-'",
                          node_id ? node_id : "(null)", SESLM_NODE_ID_MAX);
    int64_t sec = window_start_ns / 1000000000, ns = window_start_ns % 1000000000;
    if (ns < 0) sec--, ns += 1000000000;
    time_t tt = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&tt, &tm)) return seslm_fail(SESLM_ERR_ARG, "window start %" PRId64 " ns is out of range", window_start_ns);
    int k = snprintf(out, cap, "%s-%04d%02d%02dT%02d%02d%02d.%03dZ-%06" PRIu64 ".h5", node_id, tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ns / 1000000), seq);
    if (k < 0 || (size_t)k >= cap) return seslm_fail(SESLM_ERR_ARG, "dump file name does not fit %zu bytes", cap);
    return SESLM_OK;
}

int seslm_telemetry_dump_is_final_name(const char *name) {
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    size_t n = strlen(base);
    return n > 3 && base[0] != '.' && strcmp(base + n - 3, ".h5") == 0;
}

// ---- writer -----------------------------------------------------------------------------------------

typedef struct {
    const char *path; // the temporary file being written
    seslm_status st;  // first failure
} wctx;

static int w_fail(wctx *w, const char *what, const char *name) {
    h5_why_buf b;
    const char *why = h5_why(&b);
    if (w->st == SESLM_OK)
        w->st = seslm_fail(SESLM_ERR_IO, "%s: cannot write %s '%s'%s%s", w->path, what, name, *why ? ": " : "", why);
    return -1;
}

/* A UTF-8 string type: fixed-length (n bytes, NUL-terminated) or, with n == 0, variable-length. The
 * writer uses fixed-length strings only: they are stored inside the checksummed object headers and
 * chunks, where variable-length ones would go to the unchecksummed global heap. */
static hid_t str_type(size_t n) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t >= 0 && (H5Tset_size(t, n ? n : H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0 ||
                   (n && H5Tset_strpad(t, H5T_STR_NULLTERM) < 0))) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

static int w_attr(wctx *w, hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *val) {
    if (w->st != SESLM_OK) return -1;
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = sp >= 0 ? H5Acreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT) : -1;
    herr_t e = a >= 0 ? H5Awrite(a, mtype, val) : -1;
    if (e < 0) w_fail(w, "attribute", name); // before the closes, which clear HDF5's error stack
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    return e < 0 ? -1 : 0;
}

static int w_u64(wctx *w, hid_t loc, const char *name, uint64_t v) {
    return w_attr(w, loc, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &v);
}
static int w_i64(wctx *w, hid_t loc, const char *name, int64_t v) {
    return w_attr(w, loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}
static int w_i32(wctx *w, hid_t loc, const char *name, int32_t v) {
    return w_attr(w, loc, name, H5T_STD_I32LE, H5T_NATIVE_INT32, &v);
}

static int w_str(wctx *w, hid_t loc, const char *name, const char *s) {
    if (w->st != SESLM_OK) return -1;
    const char *p = s ? s : "";
    hid_t t = str_type(strlen(p) + 1);
    if (t < 0) return w_fail(w, "attribute", name);
    int rc = w_attr(w, loc, name, t, t, p);
    H5Tclose(t);
    return rc;
}

static hid_t w_group(wctx *w, hid_t loc, const char *name) {
    if (w->st != SESLM_OK) return -1;
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    if (gcpl >= 0) {
        H5Pset_obj_track_times(gcpl, 0);
        H5Pset_attr_phase_change(gcpl, MAX_COMPACT_ATTRS, MAX_COMPACT_ATTRS - 1);
    }
    hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, gcpl >= 0 ? gcpl : H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) w_fail(w, "group", name);
    if (gcpl >= 0) H5Pclose(gcpl);
    return g;
}

/* A dataset of rank 1 or 2, always chunked so that every chunk carries a Fletcher-32 checksum (the
 * metadata is checksummed by the file format, see h5_fapl), so corruption anywhere is detected on
 * read. `big`: also shuffled and deflated. Zero-sized datasets get unlimited maximum dimensions (HDF5
 * needs that for an empty chunked extent) and nothing is written. */
static int w_ds(wctx *w, hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims,
                const void *data, int big) {
    if (w->st != SESLM_OK) return -1;
    hsize_t maxd[2], chunk[2];
    size_t es = H5Tget_size(ftype);
    hsize_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    const int empty = n == 0;
    // chunk: whole trailing rows up to CHUNK_BYTES
    hsize_t per = CHUNK_BYTES / (es ? es : 1);
    if (per < 1) per = 1;
    if (rank == 1) {
        chunk[0] = dims[0] < per ? dims[0] : per;
    } else {
        chunk[1] = dims[1] < per ? dims[1] : per;
        hsize_t rows = per / (chunk[1] ? chunk[1] : 1);
        chunk[0] = dims[0] < rows ? dims[0] : rows;
    }
    for (int i = 0; i < rank; i++) {
        maxd[i] = empty ? H5S_UNLIMITED : dims[i];
        if (chunk[i] < 1) chunk[i] = 1;
    }
    hid_t sp = H5Screate_simple(rank, dims, maxd);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    herr_t e = sp >= 0 && dcpl >= 0 ? H5Pset_obj_track_times(dcpl, 0) : -1;
    if (e >= 0) e = H5Pset_chunk(dcpl, rank, chunk);
    if (e >= 0 && big) {
        if (H5Zfilter_avail(H5Z_FILTER_SHUFFLE) > 0) e = H5Pset_shuffle(dcpl);
        if (e >= 0 && H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0) e = H5Pset_deflate(dcpl, DEFLATE_LEVEL);
    }
    if (e >= 0) e = H5Pset_fletcher32(dcpl);
    hid_t d = e >= 0 ? H5Dcreate2(loc, name, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT) : -1;
    e = d >= 0 ? 0 : -1;
    if (d >= 0 && !empty) e = H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (e < 0) w_fail(w, "dataset", name); // before the closes, which clear HDF5's error stack
    // a chunked dataset's data may reach the file only when it is closed (the chunk cache is flushed):
    // a write that fails there must fail the dump too (found by tests/fault/run_faults.sh)
    if (d >= 0 && H5Dclose(d) < 0 && e >= 0) {
        e = -1;
        w_fail(w, "dataset", name);
    }
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    return e < 0 ? -1 : 0;
}

static int w_1d(wctx *w, hid_t loc, const char *name, hid_t ftype, hid_t mtype, uint64_t n, const void *data,
                int big) {
    hsize_t d[1] = {n};
    return w_ds(w, loc, name, ftype, mtype, 1, d, data, big);
}

static void w_close(hid_t *g) {
    if (*g >= 0) H5Gclose(*g);
    *g = -1;
}

static void write_contents(wctx *w, hid_t f, const seslm_telemetry_view *v, const seslm_dump_meta *meta) {
    // ---- root attributes
    unsigned maj = 0, min = 0, rel = 0;
    H5get_libversion(&maj, &min, &rel);
    char writer[256]; // provenance: the build that wrote the dump
    snprintf(writer, sizeof writer, "seslm %s (commit %s, %s; HDF5 %u.%u.%u)", seslm_version(), seslm_build_commit(),
             seslm_build_compiler(), maj, min, rel);
    w_i32(w, f, "schema_version", SESLM_TELEMETRY_SCHEMA_VERSION);
    w_str(w, f, "format", "seslm-telemetry");
    w_str(w, f, "writer", writer);
    w_str(w, f, "model_id", meta->model_id);
    w_str(w, f, "model_sha256", v->model_sha256);
    w_str(w, f, "node_id", meta->node_id);
    w_u64(w, f, "dump_seq", meta->seq);
    w_i64(w, f, "window_start_ns", v->window_start_ns);
    w_i64(w, f, "window_end_ns", v->window_end_ns);
    w_u64(w, f, "n_requests", v->n_requests);
    w_u64(w, f, "n_batches", v->n_batches);
    w_u64(w, f, "n_sequences", v->n_sequences);
    w_u64(w, f, "n_tokens", v->n_tokens);
    w_u64(w, f, "n_rejected", meta->n_rejected);
    w_i32(w, f, "vocab_size", v->vocab_size);
    w_i32(w, f, "hidden", v->hidden);
    w_i32(w, f, "n_layers", v->n_layers);
    w_i32(w, f, "max_seq_len", v->max_seq_len);

    // ---- /tokens
    hid_t g = w_group(w, f, "tokens");
    w_1d(w, g, "counts", H5T_STD_U64LE, H5T_NATIVE_UINT64, (uint64_t)v->vocab_size, v->token_counts, 1);
    w_1d(w, g, "seq_len_hist", H5T_STD_U64LE, H5T_NATIVE_UINT64, (uint64_t)v->max_seq_len + 1, v->seq_len_hist, 0);
    w_close(&g);

    // ---- /token_pairs
    g = w_group(w, f, "token_pairs");
    w_i32(w, g, "cms_width", v->cms_width);
    w_i32(w, g, "cms_depth", v->cms_depth);
    w_u64(w, g, "cms_seed", v->seed);
    w_u64(w, g, "pairs_total", v->pairs_total);
    {
        const size_t K = v->n_pairs > 0 ? (size_t)v->n_pairs : 0;
        uint32_t *first = malloc((K + 1) * sizeof *first), *second = malloc((K + 1) * sizeof *second);
        uint64_t *count = malloc((K + 1) * sizeof *count);
        if (!first || !second || !count) {
            if (w->st == SESLM_OK) w->st = seslm_fail(SESLM_ERR_NOMEM, "out of memory writing %s", w->path);
        } else {
            for (size_t i = 0; i < K; i++) {
                first[i] = v->pairs[i].first;
                second[i] = v->pairs[i].second;
                count[i] = v->pairs[i].count;
            }
            w_1d(w, g, "first", H5T_STD_U32LE, H5T_NATIVE_UINT32, K, first, 0);
            w_1d(w, g, "second", H5T_STD_U32LE, H5T_NATIVE_UINT32, K, second, 0);
            w_1d(w, g, "count", H5T_STD_U64LE, H5T_NATIVE_UINT64, K, count, 0);
        }
        free(first), free(second), free(count);
        hsize_t d[2] = {(hsize_t)v->cms_depth, (hsize_t)v->cms_width};
        w_ds(w, g, "cms", H5T_STD_U32LE, H5T_NATIVE_UINT32, 2, d, v->cms, 1);
    }
    w_close(&g);

    // ---- /layers/<i>
    g = w_group(w, f, "layers");
    for (int l = 0; l < v->n_layers && w->st == SESLM_OK; l++) {
        const seslm_layer_telemetry *L = &v->layers[l];
        char name[16];
        snprintf(name, sizeof name, "%d", l);
        hid_t lg = w_group(w, g, name);
        w_i32(w, lg, "n_heads", L->n_heads);
        w_i32(w, lg, "attn_dim", L->attn_dim);
        w_i32(w, lg, "ffn_dim", L->ffn_dim);
        w_u64(w, lg, "exec_count", L->exec_count);
        w_i64(w, lg, "exec_ns", L->exec_ns);
        w_u64(w, lg, "query_tokens", L->query_tokens);
        w_u64(w, lg, "ffn_tokens", L->ffn_tokens);
        const uint64_t H = (uint64_t)L->n_heads, F = (uint64_t)L->ffn_dim, A = (uint64_t)L->attn_dim,
                       C = (uint64_t)v->hidden;
        w_1d(w, lg, "head_entropy_sum", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, H, L->head_entropy, 0);
        w_1d(w, lg, "head_max_weight_sum", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, H, L->head_max_weight, 0);
        w_1d(w, lg, "head_out_norm_sum", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, H, L->head_out_norm, 0);
        w_1d(w, lg, "ffn_pos_count", H5T_STD_U64LE, H5T_NATIVE_UINT64, F, L->ffn_pos, 1);
        w_1d(w, lg, "ffn_abs_sum", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, F, L->ffn_abs, 1);
        w_1d(w, lg, "ffn_sq_sum", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, F, L->ffn_sq, 1);
        w_1d(w, lg, "in_sq_qkv", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, C, L->in_sq_qkv, 1);
        w_1d(w, lg, "in_sq_attn_out", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, A, L->in_sq_attn_out, 1);
        w_1d(w, lg, "in_sq_ffn_in", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, C, L->in_sq_ffn_in, 1);
        w_close(&lg);
    }
    w_close(&g);

    // ---- /batches
    g = w_group(w, f, "batches");
    {
        const size_t N = v->n_batch_records > 0 ? (size_t)v->n_batch_records : 0;
        int64_t *lat = malloc((N + 1) * sizeof *lat);
        int32_t *bs = malloc((N + 1) * sizeof *bs), *nt = malloc((N + 1) * sizeof *nt);
        if (!lat || !bs || !nt) {
            if (w->st == SESLM_OK) w->st = seslm_fail(SESLM_ERR_NOMEM, "out of memory writing %s", w->path);
        } else {
            for (size_t i = 0; i < N; i++) {
                lat[i] = v->batches[i].latency_ns;
                bs[i] = v->batches[i].batch_size;
                nt[i] = v->batches[i].n_tokens;
            }
            w_1d(w, g, "latency_ns", H5T_STD_I64LE, H5T_NATIVE_INT64, N, lat, 1);
            w_1d(w, g, "batch_size", H5T_STD_I32LE, H5T_NATIVE_INT32, N, bs, 1);
            w_1d(w, g, "n_tokens", H5T_STD_I32LE, H5T_NATIVE_INT32, N, nt, 1);
        }
        free(lat), free(bs), free(nt);
    }
    w_close(&g);

    // ---- /memory
    g = w_group(w, f, "memory");
    w_i64(w, g, "peak_rss_bytes", v->peak_rss_bytes);
    w_i64(w, g, "peak_device_bytes", v->peak_device_bytes);
    w_close(&g);

    // ---- /embeddings
    g = w_group(w, f, "embeddings");
    w_u64(w, g, "reservoir_seen", v->reservoir_seen);
    {
        hsize_t d[2] = {(hsize_t)(v->n_reservoir > 0 ? v->n_reservoir : 0), (hsize_t)v->hidden};
        w_ds(w, g, "reservoir", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d, v->reservoir, 1);
    }
    w_close(&g);

    // ---- /intents
    g = w_group(w, f, "intents");
    {
        const size_t N = v->n_intents > 0 ? (size_t)v->n_intents : 0;
        size_t width = 1; // fixed-length strings as wide as the longest label + its NUL
        for (size_t i = 0; i < N; i++)
            if (strlen(v->intent_labels[i]) + 1 > width) width = strlen(v->intent_labels[i]) + 1;
        char *buf = calloc(N * width + 1, 1);
        hid_t st = buf ? str_type(width) : -1;
        if (st < 0) {
            if (w->st == SESLM_OK) w->st = seslm_fail(SESLM_ERR_NOMEM, "out of memory writing %s", w->path);
        } else {
            for (size_t i = 0; i < N; i++) memcpy(buf + i * width, v->intent_labels[i], strlen(v->intent_labels[i]));
            w_1d(w, g, "labels", st, st, N, buf, 0);
            H5Tclose(st);
        }
        free(buf);
        w_1d(w, g, "counts", H5T_STD_U64LE, H5T_NATIVE_UINT64, N, v->intent_counts, 0);
    }
    w_close(&g);
}

static seslm_status fsync_path(const char *path, int dir) {
    int fd = open(path, O_RDONLY | (dir ? O_DIRECTORY : 0));
    if (fd < 0) return seslm_fail(SESLM_ERR_IO, "cannot open %s to sync it: %s", path, strerror(errno));
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    // a directory on a filesystem that cannot sync directories (EINVAL) is not an error
    if (rc != 0 && !(dir && (err == EINVAL || err == ENOTSUP)))
        return seslm_fail(SESLM_ERR_IO, "cannot sync %s: %s", path, strerror(err));
    return SESLM_OK;
}

static seslm_status check_view(const seslm_telemetry_view *v) {
    if (!v || v->vocab_size < 1 || v->hidden < 1 || v->n_layers < 0 || v->max_seq_len < 1 || v->cms_width < 1 ||
        v->cms_depth < 1 || v->n_pairs < 0 || v->n_reservoir < 0 || v->n_batch_records < 0 || v->n_intents < 0)
        return seslm_fail(SESLM_ERR_ARG, "telemetry view has invalid sizes");
    if (!v->token_counts || !v->seq_len_hist || !v->cms || (v->n_layers && !v->layers) || (v->n_pairs && !v->pairs) ||
        (v->n_reservoir && !v->reservoir) || (v->n_batch_records && !v->batches) ||
        (v->n_intents && (!v->intent_labels || !v->intent_counts)))
        return seslm_fail(SESLM_ERR_ARG, "telemetry view lacks a buffer");
    for (int i = 0; i < v->n_intents; i++)
        if (!v->intent_labels[i]) return seslm_fail(SESLM_ERR_ARG, "telemetry view: intent label %d is NULL", i);
    return SESLM_OK;
}

seslm_status seslm_telemetry_dump_write_path(const seslm_telemetry_view *v, const seslm_dump_meta *meta,
                                             const char *final_path) {
    if (!meta || !final_path || !*final_path) return seslm_fail(SESLM_ERR_ARG, "dump write: no metadata or path");
    if (!node_id_ok(meta->node_id))
        return seslm_fail(SESLM_ERR_ARG,
                          "invalid node id '%s': use 1..%d characters of [A-Za-z0-9._-], not starting with '.' or '-'",
                          meta->node_id ? meta->node_id : "(null)", SESLM_NODE_ID_MAX);
    seslm_status st = check_view(v);
    if (st != SESLM_OK) return st;
    // the temporary file goes beside the final one: ".<name>.tmp.<pid>" (rename stays in one filesystem)
    const char *slash = strrchr(final_path, '/');
    const size_t dlen = slash ? (size_t)(slash - final_path) : 0;
    const char *base = slash ? slash + 1 : final_path;
    if (!*base) return seslm_fail(SESLM_ERR_ARG, "dump path '%s' names a directory", final_path);
    char dir[4096], tmp[4096];
    if (dlen + 1 > sizeof dir) return seslm_fail(SESLM_ERR_ARG, "dump path too long");
    if (slash) {
        memcpy(dir, final_path, dlen);
        dir[dlen] = 0;
        if (dlen == 0) strcpy(dir, "/");
    } else {
        strcpy(dir, ".");
    }
    int k = snprintf(tmp, sizeof tmp, "%.*s%s.%s.tmp.%ld", (int)dlen, final_path, slash ? "/" : "", base,
                     (long)getpid());
    if (k < 0 || (size_t)k >= sizeof tmp) return seslm_fail(SESLM_ERR_ARG, "dump path too long");
    struct stat sb;
    if (lstat(final_path, &sb) == 0)
        return seslm_fail(SESLM_ERR_IO, "%s exists; dumps are never replaced", final_path);
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return seslm_fail(SESLM_ERR_IO, "dump directory %s does not exist", dir);

    h5_session s;
    h5_begin(&s);
    unlink(tmp); // a leftover of an earlier process with our pid
    wctx w = {.path = tmp, .st = SESLM_OK};
    hid_t fapl = h5_fapl(1);
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (fcpl >= 0) { // the root group's attributes: compact too
        H5Pset_obj_track_times(fcpl, 0);
        H5Pset_attr_phase_change(fcpl, MAX_COMPACT_ATTRS, MAX_COMPACT_ATTRS - 1);
    }
    hid_t f = fapl >= 0 && fcpl >= 0 ? H5Fcreate(tmp, H5F_ACC_EXCL, fcpl, fapl) : -1;
    // owner-only before anything is written: dumps hold samples of traffic (token counts, embeddings)
    if (f >= 0 && chmod(tmp, 0600) != 0) st = seslm_fail(SESLM_ERR_IO, "cannot chmod %s: %s", tmp, strerror(errno));
    if (f < 0) {
        h5_why_buf b;
        const char *why = h5_why(&b);
        st = seslm_fail(SESLM_ERR_IO, "cannot create %s%s%s", tmp, *why ? ": " : "", why);
        if (fapl >= 0) H5Pclose(fapl);
        if (fcpl >= 0) H5Pclose(fcpl);
        h5_end(&s);
        return st;
    }
    H5Pclose(fapl);
    H5Pclose(fcpl);
    write_contents(&w, f, v, meta);
    if (w.st == SESLM_OK && H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) w_fail(&w, "file", "(flush)");
    if (H5Fclose(f) < 0 && w.st == SESLM_OK) w_fail(&w, "file", "(close)");
    h5_end(&s);
    if (st == SESLM_OK) st = w.st;
    if (st == SESLM_OK) st = fsync_path(tmp, 0);
    if (st == SESLM_OK && meta->before_rename) meta->before_rename(meta->ctx, tmp, final_path);
    if (st == SESLM_OK && lstat(final_path, &sb) == 0)
        st = seslm_fail(SESLM_ERR_IO, "%s appeared while writing it; dumps are never replaced", final_path);
    if (st == SESLM_OK && rename(tmp, final_path) != 0)
        st = seslm_fail(SESLM_ERR_IO, "cannot rename %s to %s: %s", tmp, final_path, strerror(errno));
    if (st != SESLM_OK) {
        unlink(tmp);
        return st;
    }
    return fsync_path(dir, 1);
}

seslm_status seslm_telemetry_dump_write(const seslm_telemetry_view *v, const seslm_dump_meta *meta, const char *dir,
                                        char *path_out, size_t path_cap) {
    if (!meta || !dir || !*dir || !v) return seslm_fail(SESLM_ERR_ARG, "dump write: no view, metadata or directory");
    char name[256], path[4096];
    seslm_status st = seslm_telemetry_dump_name(name, sizeof name, meta->node_id, v->window_start_ns, meta->seq);
    if (st != SESLM_OK) return st;
    size_t dl = strlen(dir);
    int k = snprintf(path, sizeof path, "%s%s%s", dir, dir[dl - 1] == '/' ? "" : "/", name);
    if (k < 0 || (size_t)k >= sizeof path) return seslm_fail(SESLM_ERR_ARG, "dump path too long");
    st = seslm_telemetry_dump_write_path(v, meta, path);
    if (st == SESLM_OK && path_out) {
        if ((size_t)k >= path_cap) return seslm_fail(SESLM_ERR_ARG, "dump path does not fit %zu bytes", path_cap);
        memcpy(path_out, path, (size_t)k + 1);
    }
    return st;
}

// ---- reader -----------------------------------------------------------------------------------------

typedef struct {
    const char *path;
    seslm_status st;
    unsigned long long file_bytes; // the file's size: no dataset stores more than this
    hid_t dxpl;                    // the datasets' transfer properties (H5P_DEFAULT: checksums verified)
} rctx;

#define R_OK_(r) ((r)->st == SESLM_OK)

/* Owned storage behind a dump's view (the view's pointers are const). */
typedef struct {
    seslm_telemetry_dump d;
    uint64_t *token_counts, *seq_len_hist;
    seslm_batch_record *batches;
    seslm_token_pair *pairs;
    uint32_t *cms;
    float *reservoir;
    seslm_layer_telemetry *layers;
    int n_layers_alloc;
    char *model_sha256, *node_id, *model_id;
    char **intent_labels;
    int n_labels_alloc;
    uint64_t *intent_counts;
} dump_store;

typedef enum { K_UINT, K_INT, K_FLOAT } kind;

static const char *kind_name(kind k, size_t size) {
    static const char *u[] = {"uint8", "uint16", "?", "uint32", "?", "?", "?", "uint64"};
    static const char *s[] = {"int8", "int16", "?", "int32", "?", "?", "?", "int64"};
    if (k == K_FLOAT) return size == 4 ? "float32" : size == 8 ? "float64" : "float";
    if (size < 1 || size > 8) return "?";
    return k == K_UINT ? u[size - 1] : s[size - 1];
}

// Describes an HDF5 type as a dtype name ("uint64", "string", ...).
static void type_name(hid_t t, char *out, size_t cap) {
    H5T_class_t c = H5Tget_class(t);
    size_t sz = H5Tget_size(t);
    if (c == H5T_INTEGER) snprintf(out, cap, "%s", kind_name(H5Tget_sign(t) == H5T_SGN_NONE ? K_UINT : K_INT, sz));
    else if (c == H5T_FLOAT) snprintf(out, cap, "%s", kind_name(K_FLOAT, sz));
    else if (c == H5T_STRING) snprintf(out, cap, "string");
    else snprintf(out, cap, "HDF5 type class %d", (int)c);
}

static int type_is(hid_t t, kind k, size_t size) {
    H5T_class_t c = H5Tget_class(t);
    if (H5Tget_size(t) != size) return 0;
    if (k == K_FLOAT) return c == H5T_FLOAT;
    if (c != H5T_INTEGER) return 0;
    return (H5Tget_sign(t) == H5T_SGN_NONE) == (k == K_UINT);
}

static hid_t mem_type(kind k, size_t size) {
    if (k == K_FLOAT) return size == 4 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
    if (k == K_UINT) return size == 4 ? H5T_NATIVE_UINT32 : H5T_NATIVE_UINT64;
    return size == 4 ? H5T_NATIVE_INT32 : H5T_NATIVE_INT64;
}

static int r_fail(rctx *r, seslm_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static int r_fail(rctx *r, seslm_status s, const char *fmt, ...) {
    if (r->st != SESLM_OK) return -1;
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    h5_why_buf b;
    const char *why = h5_why(&b);
    if (*why) r->st = seslm_fail(s, "%s: %s (HDF5: %s)", r->path, msg, why);
    else r->st = seslm_fail(s, "%s: %s", r->path, msg);
    return -1;
}

/* The result of H5Lexists / H5Aexists: 1 present; 0 missing; < 0 unreadable (corrupt metadata). */
static int r_exists(rctx *r, htri_t rc, const char *what, const char *where, const char *name) {
    if (rc > 0) return 0;
    if (rc == 0) return r_fail(r, SESLM_ERR_FORMAT, "%s %s%s is missing", what, where, name);
    return r_fail(r, SESLM_ERR_FORMAT, "cannot look up %s %s%s (corrupt file)", what, where, name);
}

static hid_t r_group(rctx *r, hid_t loc, const char *where, const char *name) {
    if (!R_OK_(r) || r_exists(r, H5Lexists(loc, name, H5P_DEFAULT), "group", where, name) < 0) return -1;
    H5O_info_t oi;
    if (H5Oget_info_by_name(loc, name, &oi, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_GROUP) {
        r_fail(r, SESLM_ERR_FORMAT, "%s%s is not a group", where, name);
        return -1;
    }
    hid_t g = H5Gopen2(loc, name, H5P_DEFAULT);
    if (g < 0) r_fail(r, SESLM_ERR_FORMAT, "cannot open group %s%s", where, name);
    return g;
}

/* A scalar numeric attribute of exactly the documented dtype. */
static int r_attr(rctx *r, hid_t loc, const char *where, const char *name, kind k, size_t size, void *out) {
    if (!R_OK_(r) || r_exists(r, H5Aexists(loc, name), "attribute", where, name) < 0) return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return r_fail(r, SESLM_ERR_FORMAT, "cannot open attribute %s%s", where, name);
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    int rc = 0;
    char got[48] = "?";
    if (t >= 0) type_name(t, got, sizeof got);
    if (t < 0 || !type_is(t, k, size)) {
        rc = r_fail(r, SESLM_ERR_SHAPE, "attribute %s%s has dtype %s, expected %s", where, name, got,
                    kind_name(k, size));
    } else if (sp < 0 || H5Sget_simple_extent_type(sp) != H5S_SCALAR) {
        rc = r_fail(r, SESLM_ERR_SHAPE, "attribute %s%s is not a scalar", where, name);
    } else if (H5Aread(a, mem_type(k, size), out) < 0) {
        rc = r_fail(r, SESLM_ERR_FORMAT, "cannot read attribute %s%s", where, name);
    }
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    return rc;
}

static int r_u64(rctx *r, hid_t loc, const char *where, const char *name, uint64_t *out) {
    return r_attr(r, loc, where, name, K_UINT, 8, out);
}
static int r_i64(rctx *r, hid_t loc, const char *where, const char *name, int64_t *out) {
    return r_attr(r, loc, where, name, K_INT, 8, out);
}
// an int32 attribute in [lo, hi]
static int r_i32(rctx *r, hid_t loc, const char *where, const char *name, int lo, int hi, int *out) {
    int32_t v = 0;
    if (r_attr(r, loc, where, name, K_INT, 4, &v) < 0) return -1;
    if (v < lo || v > hi)
        return r_fail(r, SESLM_ERR_FORMAT, "attribute %s%s = %d is outside %d..%d", where, name, (int)v, lo, hi);
    *out = v;
    return 0;
}

/* A scalar string attribute (variable-length or fixed); *out is malloc'd. */
static int r_str(rctx *r, hid_t loc, const char *where, const char *name, char **out) {
    *out = NULL;
    if (!R_OK_(r) || r_exists(r, H5Aexists(loc, name), "attribute", where, name) < 0) return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return r_fail(r, SESLM_ERR_FORMAT, "cannot open attribute %s%s", where, name);
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    int rc = 0;
    if (t < 0 || H5Tget_class(t) != H5T_STRING) {
        char got[48] = "?";
        if (t >= 0) type_name(t, got, sizeof got);
        rc = r_fail(r, SESLM_ERR_SHAPE, "attribute %s%s has dtype %s, expected string", where, name, got);
    } else if (sp < 0 || H5Sget_simple_extent_type(sp) != H5S_SCALAR) {
        rc = r_fail(r, SESLM_ERR_SHAPE, "attribute %s%s is not a scalar", where, name);
    } else if (H5Tis_variable_str(t) > 0) {
        hid_t mt = str_type(0);
        char *s = NULL;
        if (mt < 0 || H5Aread(a, mt, &s) < 0) {
            rc = r_fail(r, SESLM_ERR_FORMAT, "cannot read attribute %s%s", where, name);
        } else {
            *out = strdup(s ? s : "");
            if (!*out) rc = r_fail(r, SESLM_ERR_NOMEM, "out of memory");
        }
        if (s) H5free_memory(s);
        if (mt >= 0) H5Tclose(mt);
    } else {
        size_t n = H5Tget_size(t);
        hid_t mt = H5Tcopy(t);
        char *s = n < (1u << 20) ? calloc(n + 1, 1) : NULL;
        if (!s) rc = r_fail(r, SESLM_ERR_FORMAT, "attribute %s%s: string of %zu bytes", where, name, n);
        else if (mt < 0 || H5Aread(a, mt, s) < 0) rc = r_fail(r, SESLM_ERR_FORMAT, "cannot read attribute %s%s", where, name);
        if (rc == 0) *out = s;
        else free(s);
        if (mt >= 0) H5Tclose(mt);
    }
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    return rc;
}

#define ANY_DIM ((hsize_t)-1)

/* A dataset's data is read into memory of its logical size, which its dataspace claims. A corrupt or crafted file
 * can claim billions of elements in a few bytes (chunks never written read as fill values), and the reader would
 * allocate and fill gigabytes for a file of kilobytes. Every dataset the writer makes has all its chunks written,
 * deflated or stored as they are, and deflate compresses at most 1032:1. So a dataset whose logical size is more
 * than DEFLATE_MAX_RATIO times the bytes it stores (or that stores more than the file holds) is not one this
 * program wrote: refused as corrupt before anything is allocated (datasets of up to 1 MiB are not checked). Nor does
 * the writer make external or virtual datasets, whose bytes come from other files. */
#define DEFLATE_MAX_RATIO 1100ull
static int r_storage_ok(rctx *r, hid_t d, const char *where, const char *name, unsigned long long logical) {
    // the data must be in this file: an external or virtual dataset would have the reader copy another file's bytes
    hid_t pl = H5Dget_create_plist(d);
    const H5D_layout_t lay = pl >= 0 ? H5Pget_layout(pl) : H5D_LAYOUT_ERROR;
    const int ext = pl >= 0 ? H5Pget_external_count(pl) : -1;
    if (pl >= 0) H5Pclose(pl);
    if ((lay != H5D_CONTIGUOUS && lay != H5D_CHUNKED && lay != H5D_COMPACT) || ext != 0)
        return r_fail(r, SESLM_ERR_FORMAT, "dataset %s%s is not stored in the file (external or virtual layout)", where,
                      name);
    if (logical <= (1ull << 20)) return 0;
    const unsigned long long stored = (unsigned long long)H5Dget_storage_size(d);
    if (stored > r->file_bytes)
        return r_fail(r, SESLM_ERR_FORMAT, "dataset %s%s claims %llu stored bytes in a file of %llu (corrupt file)", where,
                      name, stored, r->file_bytes);
    if (logical / DEFLATE_MAX_RATIO > stored)
        return r_fail(r, SESLM_ERR_FORMAT,
                      "dataset %s%s claims %llu bytes of data but stores %llu, more than compression can account for "
                      "(corrupt or crafted file)", where, name, logical, stored);
    return 0;
}

/* A dataset of exactly the documented dtype and rank; dims[i] == ANY_DIM takes the file's extent (up
 * to max_any elements along it) and is replaced by it. *out is malloc'd (never NULL on success). */
static int r_ds(rctx *r, hid_t loc, const char *where, const char *name, kind k, size_t size, int rank, hsize_t *dims,
                hsize_t max_any, void **out) {
    *out = NULL;
    if (!R_OK_(r) || r_exists(r, H5Lexists(loc, name, H5P_DEFAULT), "dataset", where, name) < 0) return -1;
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0) return r_fail(r, SESLM_ERR_FORMAT, "cannot open dataset %s%s", where, name);
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
    int rc = 0;
    char got[48] = "?";
    if (t >= 0) type_name(t, got, sizeof got);
    hsize_t fd[H5S_MAX_RANK];
    int frank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (t < 0 || !type_is(t, k, size)) {
        rc = r_fail(r, SESLM_ERR_SHAPE, "dataset %s%s has dtype %s, expected %s", where, name, got, kind_name(k, size));
    } else if (frank != rank || H5Sget_simple_extent_dims(sp, fd, NULL) != rank) {
        rc = r_fail(r, SESLM_ERR_SHAPE, "dataset %s%s has %d dimensions, expected %d", where, name, frank, rank);
    } else {
        hsize_t n = 1;
        char want[64] = "", have[64] = "";
        int bad = 0;
        for (int i = 0; i < rank; i++) {
            if (dims[i] == ANY_DIM) {
                if (fd[i] > max_any) bad = 1;
                snprintf(want + strlen(want), sizeof want - strlen(want), "%s<=%llu", i ? ", " : "",
                         (unsigned long long)max_any);
            } else {
                if (fd[i] != dims[i]) bad = 1;
                snprintf(want + strlen(want), sizeof want - strlen(want), "%s%llu", i ? ", " : "",
                         (unsigned long long)dims[i]);
            }
            snprintf(have + strlen(have), sizeof have - strlen(have), "%s%llu", i ? ", " : "", (unsigned long long)fd[i]);
        }
        if (bad) {
            rc = r_fail(r, SESLM_ERR_SHAPE, "dataset %s%s has shape (%s), expected (%s)", where, name, have, want);
        } else {
            for (int i = 0; i < rank; i++) {
                dims[i] = fd[i];
                n *= fd[i];
            }
            void *buf = NULL;
            if (n >= ((hsize_t)1 << 40) / size) rc = r_fail(r, SESLM_ERR_FORMAT, "dataset %s%s is too large", where, name);
            else if ((rc = r_storage_ok(r, d, where, name, (unsigned long long)n * size)) == 0 &&
                     !(buf = malloc((size_t)n * size + size)))
                rc = r_fail(r, SESLM_ERR_NOMEM, "out of memory for dataset %s%s", where, name);
            else if (n > 0 && H5Dread(d, mem_type(k, size), H5S_ALL, H5S_ALL, r->dxpl, buf) < 0)
                rc = r_fail(r, SESLM_ERR_FORMAT, "cannot read dataset %s%s (corrupt or truncated file)", where, name);
            if (rc == 0) *out = buf;
            else free(buf);
        }
    }
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    H5Dclose(d);
    return rc;
}

/* /intents/labels: a 1-D dataset of n fixed-length strings. */
static int r_labels(rctx *r, hid_t loc, const char *where, const char *name, hsize_t n, char ***out) {
    *out = NULL;
    if (!R_OK_(r) || r_exists(r, H5Lexists(loc, name, H5P_DEFAULT), "dataset", where, name) < 0) return -1;
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0) return r_fail(r, SESLM_ERR_FORMAT, "cannot open dataset %s%s", where, name);
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
    int rc = 0;
    hsize_t fd[H5S_MAX_RANK];
    size_t width = t >= 0 ? H5Tget_size(t) : 0;
    char **labels = calloc((size_t)n + 1, sizeof *labels);
    if (!labels) {
        rc = r_fail(r, SESLM_ERR_NOMEM, "out of memory");
    } else if (t < 0 || H5Tget_class(t) != H5T_STRING || H5Tis_variable_str(t) != 0 || width < 1 || width > 65536) {
        char got[48] = "?";
        if (t >= 0) type_name(t, got, sizeof got);
        rc = r_fail(r, SESLM_ERR_SHAPE, "dataset %s%s has dtype %s, expected fixed-length string", where, name, got);
    } else if (sp < 0 || H5Sget_simple_extent_ndims(sp) != 1 || H5Sget_simple_extent_dims(sp, fd, NULL) != 1 ||
               fd[0] != n) {
        rc = r_fail(r, SESLM_ERR_SHAPE, "dataset %s%s does not have shape (%llu)", where, name, (unsigned long long)n);
    } else if (n > 0 && r_storage_ok(r, d, where, name, (unsigned long long)n * width) != 0) {
        rc = -1;
    } else if (n > 0) {
        hid_t mt = H5Tcopy(t);
        char *raw = calloc((size_t)n * width + 1, 1);
        if (!raw) {
            rc = r_fail(r, SESLM_ERR_NOMEM, "out of memory");
        } else if (mt < 0 || H5Dread(d, mt, H5S_ALL, H5S_ALL, r->dxpl, raw) < 0) {
            rc = r_fail(r, SESLM_ERR_FORMAT, "cannot read dataset %s%s (corrupt or truncated file)", where, name);
        } else {
            for (hsize_t i = 0; i < n && rc == 0; i++)
                if (!(labels[i] = strndup(raw + i * width, width))) rc = r_fail(r, SESLM_ERR_NOMEM, "out of memory");
        }
        free(raw);
        if (mt >= 0) H5Tclose(mt);
    }
    if (rc == 0) {
        *out = labels;
    } else if (labels) {
        for (hsize_t i = 0; i < n; i++) free(labels[i]);
        free(labels);
    }
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    H5Dclose(d);
    return rc;
}

void seslm_telemetry_dump_free(seslm_telemetry_dump *d) {
    if (!d) return;
    dump_store *s = (dump_store *)d; // d is the first member
    free(s->token_counts), free(s->seq_len_hist), free(s->batches), free(s->pairs), free(s->cms);
    free(s->reservoir);
    for (int l = 0; s->layers && l < s->n_layers_alloc; l++) {
        seslm_layer_telemetry *L = &s->layers[l];
        free(L->head_entropy), free(L->head_max_weight), free(L->head_out_norm), free(L->ffn_pos);
        free(L->ffn_abs), free(L->ffn_sq), free(L->in_sq_qkv), free(L->in_sq_attn_out), free(L->in_sq_ffn_in);
    }
    free(s->layers);
    free(s->model_sha256), free(s->node_id), free(s->model_id);
    for (int i = 0; s->intent_labels && i < s->n_labels_alloc; i++) free(s->intent_labels[i]);
    free(s->intent_labels);
    free(s->intent_counts);
    free(s);
}

static int is_hex64(const char *s) {
    if (!s || strlen(s) != 64) return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

/* Sums over `terms` tokens of non-negative quantities (entropies, norms, squares): each finite and not negative.
 * A rounding error of another backend (at most 1e-6 a term) is tolerated and set to 0. */
static void r_sums_ok(rctx *r, const char *where, const char *name, double *x, hsize_t n, uint64_t terms) {
    const double slack = -1e-6 * (1.0 + (double)terms);
    for (hsize_t j = 0; R_OK_(r) && j < n; j++) {
        if (!isfinite(x[j]) || x[j] < slack)
            r_fail(r, SESLM_ERR_FORMAT, "%s%s[%llu] is %g: these sums are finite and not negative", where, name,
                   (unsigned long long)j, x[j]);
        else if (x[j] < 0)
            x[j] = 0;
    }
}

static void read_contents(rctx *r, hid_t f, dump_store *s, const char *expected_sha) {
    seslm_telemetry_dump *d = &s->d;
    seslm_telemetry_view *v = &d->v;
    // ---- version first, tolerant of its dtype, so that a newer file gets a clear message
    htri_t has_version = H5Aexists(f, "schema_version");
    if (has_version < 0) {
        r_fail(r, SESLM_ERR_FORMAT, "cannot read the root group's attributes (corrupt file)");
        return;
    } else if (has_version == 0) {
        r_fail(r, SESLM_ERR_FORMAT, "not a telemetry dump: no schema_version attribute at the root");
        return;
    }
    {
        hid_t a = H5Aopen(f, "schema_version", H5P_DEFAULT);
        hid_t t = a >= 0 ? H5Aget_type(a) : -1, sp = a >= 0 ? H5Aget_space(a) : -1;
        long long ver = -1;
        if (t < 0 || H5Tget_class(t) != H5T_INTEGER || sp < 0 || H5Sget_simple_extent_npoints(sp) != 1 ||
            H5Aread(a, H5T_NATIVE_LLONG, &ver) < 0)
            r_fail(r, SESLM_ERR_FORMAT, "attribute schema_version is not a scalar integer");
        if (sp >= 0) H5Sclose(sp);
        if (t >= 0) H5Tclose(t);
        if (a >= 0) H5Aclose(a);
        if (!R_OK_(r)) return;
        if (ver != SESLM_TELEMETRY_SCHEMA_VERSION) {
            r_fail(r, SESLM_ERR_FORMAT, "schema_version %lld is not supported (this reader reads version %d)", ver,
                   SESLM_TELEMETRY_SCHEMA_VERSION);
            return;
        }
        d->schema_version = (int)ver;
    }
    char *fmt = NULL, *writer = NULL;
    r_str(r, f, "/", "format", &fmt);
    if (R_OK_(r) && strcmp(fmt, "seslm-telemetry") != 0)
        r_fail(r, SESLM_ERR_FORMAT, "attribute format is '%s', expected 'seslm-telemetry'", fmt);
    free(fmt);
    r_str(r, f, "/", "writer", &writer);
    if (writer) snprintf(d->writer, sizeof d->writer, "%s", writer);
    free(writer);
    r_i32(r, f, "/", "schema_version", 1, 1, &d->schema_version); // and now its dtype
    r_str(r, f, "/", "model_sha256", &s->model_sha256);
    if (R_OK_(r) && !is_hex64(s->model_sha256))
        r_fail(r, SESLM_ERR_FORMAT, "attribute model_sha256 '%.80s' is not 64 lower-case hex digits", s->model_sha256);
    if (R_OK_(r) && expected_sha && strcmp(expected_sha, s->model_sha256) != 0) {
        r_fail(r, SESLM_ERR_ARG, "recorded on model weights sha256 %s, expected %s", s->model_sha256, expected_sha);
        return;
    }
    r_str(r, f, "/", "model_id", &s->model_id);
    r_str(r, f, "/", "node_id", &s->node_id);
    r_u64(r, f, "/", "dump_seq", &d->meta.seq);
    r_i64(r, f, "/", "window_start_ns", &v->window_start_ns);
    r_i64(r, f, "/", "window_end_ns", &v->window_end_ns);
    r_u64(r, f, "/", "n_requests", &v->n_requests);
    r_u64(r, f, "/", "n_batches", &v->n_batches);
    r_u64(r, f, "/", "n_sequences", &v->n_sequences);
    r_u64(r, f, "/", "n_tokens", &v->n_tokens);
    r_u64(r, f, "/", "n_rejected", &d->meta.n_rejected);
    r_i32(r, f, "/", "vocab_size", 1, 1 << 24, &v->vocab_size);
    r_i32(r, f, "/", "hidden", 1, 1 << 16, &v->hidden);
    r_i32(r, f, "/", "n_layers", 0, 1024, &v->n_layers);
    r_i32(r, f, "/", "max_seq_len", 1, 1 << 20, &v->max_seq_len);
    if (!R_OK_(r)) return;
    v->model_sha256 = s->model_sha256;
    d->meta.node_id = s->node_id;
    d->meta.model_id = s->model_id;
    const hsize_t V = (hsize_t)v->vocab_size, C = (hsize_t)v->hidden;
    void *p;

    // ---- /tokens
    hid_t g = r_group(r, f, "/", "tokens");
    hsize_t dims[2] = {V, 0};
    r_ds(r, g, "/tokens/", "counts", K_UINT, 8, 1, dims, 0, &p);
    s->token_counts = p;
    dims[0] = (hsize_t)v->max_seq_len + 1;
    r_ds(r, g, "/tokens/", "seq_len_hist", K_UINT, 8, 1, dims, 0, &p);
    s->seq_len_hist = p;
    if (g >= 0) H5Gclose(g);
    if (!R_OK_(r)) return;
    v->token_counts = s->token_counts;
    v->seq_len_hist = s->seq_len_hist;
    uint64_t sum = 0;
    for (hsize_t i = 0; i < V; i++) sum += s->token_counts[i];
    if (sum != v->n_tokens)
        r_fail(r, SESLM_ERR_FORMAT, "/tokens/counts sums to %" PRIu64 ", n_tokens is %" PRIu64, sum, v->n_tokens);
    sum = 0;
    for (int i = 0; i <= v->max_seq_len; i++) sum += s->seq_len_hist[i];
    if (sum != v->n_sequences)
        r_fail(r, SESLM_ERR_FORMAT, "/tokens/seq_len_hist sums to %" PRIu64 ", n_sequences is %" PRIu64, sum,
               v->n_sequences);

    // ---- /token_pairs
    g = r_group(r, f, "/", "token_pairs");
    r_i32(r, g, "/token_pairs/", "cms_width", 1, 1 << 26, &v->cms_width);
    r_i32(r, g, "/token_pairs/", "cms_depth", 1, 64, &v->cms_depth);
    r_u64(r, g, "/token_pairs/", "cms_seed", &v->seed);
    r_u64(r, g, "/token_pairs/", "pairs_total", &v->pairs_total);
    uint32_t *first = NULL, *second = NULL;
    uint64_t *count = NULL;
    hsize_t K = ANY_DIM;
    r_ds(r, g, "/token_pairs/", "first", K_UINT, 4, 1, &K, 1u << 24, &p);
    first = p;
    r_ds(r, g, "/token_pairs/", "second", K_UINT, 4, 1, &K, 0, &p);
    second = p;
    r_ds(r, g, "/token_pairs/", "count", K_UINT, 8, 1, &K, 0, &p);
    count = p;
    if (R_OK_(r)) {
        dims[0] = (hsize_t)v->cms_depth;
        dims[1] = (hsize_t)v->cms_width;
        r_ds(r, g, "/token_pairs/", "cms", K_UINT, 4, 2, dims, 0, &p);
        s->cms = p;
        v->cms = s->cms;
    }
    if (R_OK_(r)) {
        v->n_pairs = (int)K;
        s->pairs = malloc(((size_t)K + 1) * sizeof *s->pairs);
        if (!s->pairs) r_fail(r, SESLM_ERR_NOMEM, "out of memory");
        for (hsize_t i = 0; R_OK_(r) && i < K; i++) {
            s->pairs[i] = (seslm_token_pair){first[i], second[i], count[i]};
            if (first[i] >= V || second[i] >= V)
                r_fail(r, SESLM_ERR_FORMAT, "/token_pairs: pair %llu has a token id outside the vocabulary",
                       (unsigned long long)i);
        }
        v->pairs = s->pairs;
    }
    free(first), free(second), free(count);
    if (g >= 0) H5Gclose(g);

    // ---- /layers/<i>
    g = r_group(r, f, "/", "layers");
    if (R_OK_(r) && v->n_layers > 0) {
        s->layers = calloc((size_t)v->n_layers, sizeof *s->layers);
        if (!s->layers) r_fail(r, SESLM_ERR_NOMEM, "out of memory");
        else s->n_layers_alloc = v->n_layers;
    }
    for (int l = 0; R_OK_(r) && l < v->n_layers; l++) {
        seslm_layer_telemetry *L = &s->layers[l];
        char name[16], where[48];
        snprintf(name, sizeof name, "%d", l);
        snprintf(where, sizeof where, "/layers/%d/", l);
        hid_t lg = r_group(r, g, "/layers/", name);
        r_i32(r, lg, where, "n_heads", 0, 1 << 12, &L->n_heads);
        r_i32(r, lg, where, "attn_dim", 0, 1 << 20, &L->attn_dim);
        r_i32(r, lg, where, "ffn_dim", 0, 1 << 22, &L->ffn_dim);
        if (R_OK_(r) && (L->n_heads == 0 ? L->attn_dim != 0 : L->attn_dim % L->n_heads != 0))
            r_fail(r, SESLM_ERR_FORMAT, "%s: attn_dim %d is not a multiple of n_heads %d", where, L->attn_dim,
                   L->n_heads);
        r_u64(r, lg, where, "exec_count", &L->exec_count);
        r_i64(r, lg, where, "exec_ns", &L->exec_ns);
        r_u64(r, lg, where, "query_tokens", &L->query_tokens);
        r_u64(r, lg, where, "ffn_tokens", &L->ffn_tokens);
        const hsize_t H = (hsize_t)L->n_heads, F = (hsize_t)L->ffn_dim, A = (hsize_t)L->attn_dim;
#define RD(field, nm, k, sz, n)                                                                        \
    do {                                                                                               \
        hsize_t dd = (n);                                                                              \
        r_ds(r, lg, where, nm, k, sz, 1, &dd, 0, &p);                                                  \
        L->field = p;                                                                                  \
    } while (0)
        RD(head_entropy, "head_entropy_sum", K_FLOAT, 8, H);
        RD(head_max_weight, "head_max_weight_sum", K_FLOAT, 8, H);
        RD(head_out_norm, "head_out_norm_sum", K_FLOAT, 8, H);
        RD(ffn_pos, "ffn_pos_count", K_UINT, 8, F);
        RD(ffn_abs, "ffn_abs_sum", K_FLOAT, 8, F);
        RD(ffn_sq, "ffn_sq_sum", K_FLOAT, 8, F);
        RD(in_sq_qkv, "in_sq_qkv", K_FLOAT, 8, C);
        RD(in_sq_attn_out, "in_sq_attn_out", K_FLOAT, 8, A);
        RD(in_sq_ffn_in, "in_sq_ffn_in", K_FLOAT, 8, C);
#undef RD
        // the planner ranks heads and neurons by these sums and the drift check reads them: a NaN or a negative
        // sum (a faulty node, or a crafted file with valid checksums) would rank arbitrarily or switch a check off
        r_sums_ok(r, where, "head_entropy_sum", L->head_entropy, H, L->query_tokens);
        r_sums_ok(r, where, "head_max_weight_sum", L->head_max_weight, H, L->query_tokens);
        r_sums_ok(r, where, "head_out_norm_sum", L->head_out_norm, H, L->query_tokens);
        r_sums_ok(r, where, "ffn_abs_sum", L->ffn_abs, F, L->ffn_tokens);
        r_sums_ok(r, where, "ffn_sq_sum", L->ffn_sq, F, L->ffn_tokens);
        r_sums_ok(r, where, "in_sq_qkv", L->in_sq_qkv, C, L->query_tokens);
        r_sums_ok(r, where, "in_sq_attn_out", L->in_sq_attn_out, A, L->query_tokens);
        r_sums_ok(r, where, "in_sq_ffn_in", L->in_sq_ffn_in, C, L->ffn_tokens);
        for (hsize_t j = 0; R_OK_(r) && j < F; j++)
            if (L->ffn_pos[j] > L->ffn_tokens)
                r_fail(r, SESLM_ERR_FORMAT, "%sffn_pos_count[%llu] is %" PRIu64 ", more than ffn_tokens %" PRIu64, where,
                       (unsigned long long)j, L->ffn_pos[j], L->ffn_tokens);
        if (R_OK_(r) && L->exec_ns < 0) r_fail(r, SESLM_ERR_FORMAT, "%sexec_ns is negative", where);
        if (lg >= 0) H5Gclose(lg);
    }
    v->layers = s->layers;
    if (g >= 0) H5Gclose(g);

    // ---- /batches
    g = r_group(r, f, "/", "batches");
    {
        hsize_t N = ANY_DIM;
        int64_t *lat = NULL;
        int32_t *bs = NULL, *nt = NULL;
        r_ds(r, g, "/batches/", "latency_ns", K_INT, 8, 1, &N, INT32_MAX, &p);
        lat = p;
        r_ds(r, g, "/batches/", "batch_size", K_INT, 4, 1, &N, 0, &p);
        bs = p;
        r_ds(r, g, "/batches/", "n_tokens", K_INT, 4, 1, &N, 0, &p);
        nt = p;
        if (R_OK_(r) && N > v->n_batches)
            r_fail(r, SESLM_ERR_FORMAT, "/batches holds %llu records but n_batches is %" PRIu64,
                   (unsigned long long)N, v->n_batches);
        if (R_OK_(r)) {
            s->batches = malloc(((size_t)N + 1) * sizeof *s->batches);
            if (!s->batches) r_fail(r, SESLM_ERR_NOMEM, "out of memory");
            for (hsize_t i = 0; s->batches && i < N; i++) s->batches[i] = (seslm_batch_record){lat[i], bs[i], nt[i]};
            v->n_batch_records = (int)N;
            v->batches = s->batches;
        }
        free(lat), free(bs), free(nt);
    }
    if (g >= 0) H5Gclose(g);

    // ---- /memory
    g = r_group(r, f, "/", "memory");
    r_i64(r, g, "/memory/", "peak_rss_bytes", &v->peak_rss_bytes);
    r_i64(r, g, "/memory/", "peak_device_bytes", &v->peak_device_bytes);
    if (g >= 0) H5Gclose(g);

    // ---- /embeddings
    g = r_group(r, f, "/", "embeddings");
    r_u64(r, g, "/embeddings/", "reservoir_seen", &v->reservoir_seen);
    dims[0] = ANY_DIM;
    dims[1] = C;
    r_ds(r, g, "/embeddings/", "reservoir", K_FLOAT, 4, 2, dims, 1u << 20, &p);
    s->reservoir = p;
    if (R_OK_(r)) {
        v->n_reservoir = (int)dims[0];
        v->reservoir = s->reservoir;
        for (size_t i = 0; R_OK_(r) && i < (size_t)dims[0] * C; i++)
            if (!isfinite(s->reservoir[i]))
                r_fail(r, SESLM_ERR_FORMAT, "/embeddings/reservoir: row %zu holds a non-finite value", i / (size_t)C);
        if ((uint64_t)v->n_reservoir > v->reservoir_seen)
            r_fail(r, SESLM_ERR_FORMAT, "/embeddings/reservoir has %d rows but reservoir_seen is %" PRIu64,
                   v->n_reservoir, v->reservoir_seen);
    }
    if (g >= 0) H5Gclose(g);

    // ---- /intents
    g = r_group(r, f, "/", "intents");
    {
        hsize_t N = ANY_DIM;
        r_ds(r, g, "/intents/", "counts", K_UINT, 8, 1, &N, 1u << 20, &p);
        s->intent_counts = p;
        if (R_OK_(r)) {
            r_labels(r, g, "/intents/", "labels", N, &s->intent_labels);
            if (R_OK_(r)) {
                s->n_labels_alloc = (int)N;
                v->n_intents = (int)N;
                v->intent_labels = (const char *const *)s->intent_labels;
                v->intent_counts = s->intent_counts;
            }
        }
    }
    if (g >= 0) H5Gclose(g);
}

seslm_status seslm_telemetry_dump_read(const char *path, const char *expected_model_sha256,
                                       seslm_telemetry_dump **out) {
    *out = NULL;
    if (!path) return seslm_fail(SESLM_ERR_ARG, "dump read: no path");
    struct stat sb;
    if (stat(path, &sb) != 0) return seslm_fail(SESLM_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode)) return seslm_fail(SESLM_ERR_IO, "%s is not a regular file", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return seslm_fail(SESLM_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    close(fd);
    dump_store *s = calloc(1, sizeof *s);
    if (!s) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    rctx r = {.path = path, .st = SESLM_OK, .file_bytes = (unsigned long long)sb.st_size, .dxpl = H5P_DEFAULT};
    h5_session hs;
    h5_begin(&hs);
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    // fuzz builds only (tests/fuzz/fuzz_telemetry.c): the datasets' Fletcher-32 checksums are not verified, so
    // that a mutated value reaches the checks below instead of failing its checksum
    r.dxpl = H5Pcreate(H5P_DATASET_XFER);
    if (r.dxpl < 0 || H5Pset_edc_check(r.dxpl, H5Z_DISABLE_EDC) < 0) r_fail(&r, SESLM_ERR_NOMEM, "dataset transfer properties");
#endif
    hid_t fapl = h5_fapl(0);
    hid_t f = -1;
#if H5_VERSION_GE(1, 12, 0)
    htri_t is_h5 = H5Fis_accessible(path, fapl);
#else
    htri_t is_h5 = H5Fis_hdf5(path);
#endif
    if (is_h5 <= 0) {
        r_fail(&r, SESLM_ERR_FORMAT, "not an HDF5 file, or a truncated or corrupt one");
    } else {
        f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
        if (f < 0) r_fail(&r, SESLM_ERR_FORMAT, "cannot open as HDF5 (truncated or corrupt file)");
    }
    if (fapl >= 0) H5Pclose(fapl);
    if (f >= 0) {
        if (r.st == SESLM_OK) read_contents(&r, f, s, expected_model_sha256);
        if (H5Fclose(f) < 0 && r.st == SESLM_OK) r_fail(&r, SESLM_ERR_FORMAT, "cannot close the file");
    }
    if (r.dxpl >= 0 && r.dxpl != H5P_DEFAULT) H5Pclose(r.dxpl);
    h5_end(&hs);
    if (r.st != SESLM_OK) {
        seslm_telemetry_dump_free(&s->d);
        return r.st;
    }
    *out = &s->d;
    return SESLM_OK;
}
