/* cli_telemetry.h — where `seslm ingest`, `drift` and `evolve` read telemetry dumps from: a directory or
 * an S3-compatible store (s3://BUCKET/PREFIX, docs/fleet.md). */
#ifndef SESLM_CLI_TELEMETRY_H
#define SESLM_CLI_TELEMETRY_H

#include "ingest.h"

/* Adds the dumps of source to g. For s3://BUCKET/PREFIX: every object under PREFIX/ whose name is a final
 * dump name, in key order, each downloaded into a private temporary directory, read from there (reported
 * under its s3:// URL: a corrupt or duplicate dump is skipped and listed exactly as a local one) and
 * deleted before the next, so disk holds one dump at a time; an object that cannot be downloaded is
 * listed as skipped. Anything else is a directory (seslm_ingest_add_dir).
 * Fails (SESLM_ERR_IO, or SESLM_ERR_ARG for a bad URL or missing settings) only when the source cannot be
 * listed at all, or SESLM_ERR_NOMEM; progress goes to stderr every 100 objects. */
seslm_status cli_ingest_add_source(seslm_ingest *g, const char *source, const char *cmd);

#endif
