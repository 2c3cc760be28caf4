/* telemetry_hdf5.h — one telemetry window as one immutable HDF5 file ("dump"), and the reader that
 * validates a dump and loads everything in it. The schema (version 1) is docs/telemetry.md.
 *
 * Writing is crash-safe: the dump is written to a temporary name in the destination directory
 * (".<final name>.tmp.<pid>"), flushed, closed and fsync'ed, then renamed to its final name and the
 * directory is fsync'ed. A process killed at any point leaves either no file or a whole file under a
 * final name (plus, possibly, a hidden temporary file that readers and the ingest ignore). A dump is
 * never replaced: writing to a final name that exists fails.
 *
 * The writer allocates (it runs at window rotation, not per request). HDF5's own error printing is
 * switched off during these calls; failures come back as seslm_status with seslm_last_error().
 * The calls are serialised by a process-wide lock (the HDF5 build need not be thread-safe). */
#ifndef SESLM_TELEMETRY_HDF5_H
#define SESLM_TELEMETRY_HDF5_H

#include "telemetry.h"

#include <stddef.h>
#include <stdint.h>

#define SESLM_TELEMETRY_SCHEMA_VERSION 1
#define SESLM_NODE_ID_MAX 64 // bytes of a node id, [A-Za-z0-9._-], not starting with '.' or '-'

/* What a dump records besides the window itself. */
typedef struct {
    const char *node_id;  // the serving node (required; see SESLM_NODE_ID_MAX)
    const char *model_id; // human-readable model name, e.g. the model directory's basename ("" allowed)
    uint64_t seq;         // per-node dump sequence number (part of the file name)
    uint64_t n_rejected;  // inputs refused during the window (invalid UTF-8, ...): not in any counter
    // For tests: called after the temporary file is complete and synced, before the rename.
    void (*before_rename)(void *ctx, const char *tmp_path, const char *final_path);
    void *ctx;
} seslm_dump_meta;

/* The final file name of a dump: "<node>-<YYYYMMDDTHHMMSS.mmmZ>-<seq, 6+ digits>.h5", the time being
 * the window start in UTC. Fails on an invalid node id or a name that does not fit cap. */
seslm_status seslm_telemetry_dump_name(char *out, size_t cap, const char *node_id, int64_t window_start_ns,
                                       uint64_t seq);

/* Writes the window v as a dump named seslm_telemetry_dump_name(...) in dir (which must exist) and
 * copies the final path to path_out (may be NULL). */
seslm_status seslm_telemetry_dump_write(const seslm_telemetry_view *v, const seslm_dump_meta *meta, const char *dir,
                                        char *path_out, size_t path_cap);

/* Same, to an explicit final path (its directory must exist; the temporary file goes beside it). */
seslm_status seslm_telemetry_dump_write_path(const seslm_telemetry_view *v, const seslm_dump_meta *meta,
                                             const char *final_path);

/* Everything a dump holds. `v` points into buffers owned by the dump (v.model_sha256 included);
 * meta.before_rename is NULL. Free with seslm_telemetry_dump_free. */
typedef struct {
    int schema_version;
    seslm_telemetry_view v;
    seslm_dump_meta meta;
    char writer[64]; // the "writer" attribute, e.g. "seslm 0.1.0" (informational)
} seslm_telemetry_dump;

/* Reads and validates a dump: the schema version (only 1 is read), the model hash when
 * expected_model_sha256 is not NULL, and the presence, dtype and shape of every group, dataset and
 * attribute of the schema. A missing, truncated, corrupt or foreign file fails with a message naming
 * the file and what is wrong (SESLM_ERR_IO: cannot open; SESLM_ERR_FORMAT: not a valid dump or wrong
 * version; SESLM_ERR_SHAPE: a dataset of the wrong dtype or shape; SESLM_ERR_ARG: model mismatch). */
seslm_status seslm_telemetry_dump_read(const char *path, const char *expected_model_sha256,
                                       seslm_telemetry_dump **out);
void seslm_telemetry_dump_free(seslm_telemetry_dump *d);

/* 1 if a file name is a dump's final name (ends in ".h5" and does not start with '.'): what the ingest
 * picks up. Temporary files (".<name>.tmp.<pid>") are not. */
int seslm_telemetry_dump_is_final_name(const char *name);

#endif
