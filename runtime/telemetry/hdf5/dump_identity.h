/* dump_identity.h — which telemetry window a dump file is, so the same window is never counted twice
 * (issue 14: the same dump passed twice, or copied under two names, doubled every count).
 *
 * Two dumps are the same window when their bytes are identical (SHA-256 of the file), or when they carry
 * the same node id, dump sequence number and window start (the HDF5 attributes a node writes once per
 * window: a second file with them is a copy, perhaps re-packed, of the first). */
#ifndef SESLM_DUMP_IDENTITY_H
#define SESLM_DUMP_IDENTITY_H

#include "telemetry_hdf5.h"

#include <stddef.h>

typedef struct {
    char file_sha256[65];
    char node_id[SESLM_NODE_ID_MAX + 1];
    uint64_t seq;
    int64_t window_start_ns;
} seslm_dump_identity;

/* The identity of the dump d read from path (the file is hashed). */
seslm_status seslm_dump_identity_of(const char *path, const seslm_telemetry_dump *d, seslm_dump_identity *id);

/* 1 when a and b are the same window, with the reason ("identical bytes" / "same node, sequence number
 * and window start") in why; else 0. */
int seslm_dump_identity_same(const seslm_dump_identity *a, const seslm_dump_identity *b, char *why, size_t cap);

#endif
