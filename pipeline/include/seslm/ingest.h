/* ingest.h — the first nightly stage: read any number of telemetry dumps (docs/telemetry.md), skip and
 * report the unreadable or foreign ones, and merge the rest into one window, streaming (one dump and
 * the merged state in memory, whatever the number of dumps). docs/drift.md describes the merge.
 *
 *   seslm_ingest *g; seslm_ingest_new(&g, &(seslm_ingest_opts){.expected_sha256 = sha});
 *   seslm_ingest_add_dir(g, "telemetry/");         // or seslm_ingest_add_file(g, path) per file
 *   const seslm_telemetry_view *v = seslm_ingest_view(g);   // NULL when nothing was merged
 *   seslm_ingest_write(g, "merged.h5");           // schema v1, node id "merged"
 *   seslm_ingest_free(g);
 */
#ifndef SESLM_INGEST_H
#define SESLM_INGEST_H

#include "telemetry.h"

#include <stdint.h>

typedef struct {
    const char *expected_sha256; // model hash every dump must carry; NULL: the first dump read sets it
    const char *node_id;         // node id of the merged dump (default "merged")
    uint64_t seed;               // reservoir merge sampling (default 0x5e51; fixed: reproducible merges)
    int reservoir;               // rows of the merged reservoir (0: 1024)
    int max_batches;             // per-batch records kept, in input order (0: 65536)
} seslm_ingest_opts;

typedef struct {
    const char *path;
    const char *reason; // the reader's message, or why the dump does not fit the merged ones
} seslm_ingest_skip;

typedef struct seslm_ingest seslm_ingest;

seslm_status seslm_ingest_new(seslm_ingest **out, const seslm_ingest_opts *opts);
void seslm_ingest_free(seslm_ingest *g);

/* Reads and merges one dump. A file that cannot be read, is not a valid dump, carries another model
 * hash or another model shape is skipped and recorded (returns its status; the merged state is
 * unchanged); the job goes on. Only SESLM_ERR_NOMEM leaves the merged state unusable. */
seslm_status seslm_ingest_add_file(seslm_ingest *g, const char *path);
/* As seslm_ingest_add_file, but the dump is reported (skips, duplicates, summary, messages) under name
 * instead of path: for a dump fetched into a temporary file from elsewhere (an s3:// URL). */
seslm_status seslm_ingest_add_file_as(seslm_ingest *g, const char *path, const char *name);
/* Records an input that could not even be fetched as skipped, with reason (as an unreadable file is). */
seslm_status seslm_ingest_add_skipped(seslm_ingest *g, const char *name, const char *reason);
/* Adds every dump of dir with a final name (seslm_telemetry_dump_is_final_name), in name order. Fails
 * (SESLM_ERR_IO) only when dir cannot be listed; bad files are skipped as above. */
seslm_status seslm_ingest_add_dir(seslm_ingest *g, const char *dir);

int seslm_ingest_n_read(const seslm_ingest *g);    // dumps merged
int seslm_ingest_n_skipped(const seslm_ingest *g); // dumps skipped
seslm_ingest_skip seslm_ingest_skipped(const seslm_ingest *g, int i);
/* Dumps not merged because their window was merged already (dump_identity.h: identical bytes, or the same
 * node, sequence number and window start): each with "duplicate of <first path> (<why>)". Not an error. */
int seslm_ingest_n_duplicates(const seslm_ingest *g);
seslm_ingest_skip seslm_ingest_duplicate(const seslm_ingest *g, int i);
/* Notes about merged dumps (e.g. a count-min sketch of another size or seed, not added). */
int seslm_ingest_n_notes(const seslm_ingest *g);
const char *seslm_ingest_note(const seslm_ingest *g, int i);
uint64_t seslm_ingest_n_rejected(const seslm_ingest *g);

/* The merged window (pointers owned by g, valid until the next add or free); NULL before the first
 * dump is merged. */
const seslm_telemetry_view *seslm_ingest_view(const seslm_ingest *g);
/* Writes the merged window as a dump (schema v1) to path (must not exist). SESLM_ERR_ARG when nothing
 * was merged. */
seslm_status seslm_ingest_write(const seslm_ingest *g, const char *path);

/* A JSON summary (cJSON object, caller deletes): files read, skipped (path and reason), notes and the
 * merged totals. */
struct cJSON;
struct cJSON *seslm_ingest_summary(const seslm_ingest *g);

/* Count-min estimate of the pair (first, second) in a sketch (docs/telemetry.md's hash). */
uint64_t seslm_cms_estimate(const uint32_t *cms, int width, int depth, uint64_t seed, uint32_t first,
                            uint32_t second);

#endif
