/* dump.c — how the server writes one closed telemetry window into the telemetry directory.
 *
 * The format of record is the HDF5 dump of telemetry_hdf5.h (crash-safe, immutable, named
 * "<node>-<window start>-<seq>.h5"). A build without that writer falls back to a JSON summary of the
 * window under the same naming scheme, so rotation and flushing still work end to end. */
#include "serve_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__has_include)
#if __has_include("telemetry_hdf5.h")
#define SERVE_HAVE_HDF5 1
#include "telemetry_hdf5.h"
#endif
#endif

#ifdef SERVE_HAVE_HDF5

const char *serve_dump_extension(void) { return ".h5"; }

int serve_dump_write(seslm_telemetry *t, const char *dir, const serve_dump_info *info, char *path_out,
                     size_t path_cap, char *err, size_t err_cap) {
    seslm_telemetry_view v;
    seslm_telemetry_snapshot(t, &v);
    v.n_intents = info->n_intents; // the intents slot: counts kept by the server's intent head
    v.intent_labels = info->intent_labels;
    v.intent_counts = info->intent_counts;
    seslm_dump_meta meta = {.node_id = info->node, .model_id = info->model_id, .seq = info->seq,
                            .n_rejected = info->n_rejected};
    if (seslm_telemetry_dump_write(&v, &meta, dir, path_out, path_cap) != SESLM_OK) {
        snprintf(err, err_cap, "%s", seslm_last_error());
        return -1;
    }
    return 0;
}

#else

const char *serve_dump_extension(void) { return ".json"; }

int serve_dump_write(seslm_telemetry *t, const char *dir, const serve_dump_info *info, char *path_out,
                     size_t path_cap, char *err, size_t err_cap) {
    seslm_telemetry_view v;
    seslm_telemetry_snapshot(t, &v);
    time_t start = (time_t)(v.window_start_ns / 1000000000);
    struct tm tm;
    gmtime_r(&start, &tm);
    char path[PATH_MAX + 128], tmp[PATH_MAX + 160];
    snprintf(path, sizeof path, "%s/%s-%04d%02d%02dT%02d%02d%02d.%03dZ-%06llu.json", dir, info->node, tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(v.window_start_ns / 1000000 % 1000),
             (unsigned long long)info->seq);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    sbuf b = {0};
    sb_puts(&b, "{\"format\":\"seslm-telemetry-summary-v1\",\"node_id\":");
    sb_json_str(&b, info->node);
    sb_puts(&b, ",\"model_id\":");
    sb_json_str(&b, info->model_id);
    sb_puts(&b, ",\"model_sha256\":");
    sb_json_str(&b, v.model_sha256 ? v.model_sha256 : "");
    sb_printf(&b,
              ",\"window_start_ns\":%lld,\"window_end_ns\":%lld,\"n_requests\":%llu,\"n_batches\":%llu,"
              "\"n_sequences\":%llu,\"n_tokens\":%llu,\"n_rejected\":%llu,\"pairs_total\":%llu,\"peak_rss_bytes\":%lld}\n",
              (long long)v.window_start_ns, (long long)v.window_end_ns, (unsigned long long)v.n_requests,
              (unsigned long long)v.n_batches, (unsigned long long)v.n_sequences, (unsigned long long)v.n_tokens,
              (unsigned long long)info->n_rejected, (unsigned long long)v.pairs_total, (long long)v.peak_rss_bytes);
    FILE *f = b.oom ? NULL : fopen(tmp, "wb");
    int ok = f && fwrite(b.p, 1, b.n, f) == b.n;
    if (f) ok &= fclose(f) == 0;
    free(b.p);
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, err_cap, "cannot write %s: %s", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    if (path_out) snprintf(path_out, path_cap, "%s", path);
    return 0;
}

#endif
