/* safetensors_write.h — crash-safe writer for the safetensors format (the reader is safetensors.h).
 *
 * Layout: 8-byte little-endian header length, JSON header ({"__metadata__": {...}, name: {"dtype",
 * "shape", "data_offsets"}, ...}) padded with spaces so the data section starts at a multiple of 8,
 * then the tensors back to back, in the order given. The data section starts at a file offset that is a
 * multiple of 8, so with the mapping page-aligned every tensor is aligned to its element size (F32: 4).
 * Tensors are not padded to 8 bytes each: the format (and the reference Python reader) requires the
 * data section to be covered without holes.
 *
 * The file is written to a temporary file in the destination's directory, fsync'd, renamed over the
 * destination and the directory fsync'd: a crash leaves either the old file (or none) or the new one,
 * never a partial file. */
#ifndef SESLM_SAFETENSORS_WRITE_H
#define SESLM_SAFETENSORS_WRITE_H

/* Exported under seslm_ names, as the reader's (safetensors.h). */
#define st_write seslm_st_write
#define st_fsync_dir seslm_st_fsync_dir

#include "safetensors.h"

typedef struct {
    const char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data; // numel(shape) * st_dtype_size(dtype) bytes (may be NULL when that is 0)
} st_write_tensor;

/* Writes n tensors (names must be unique and non-empty) to path. metadata_json, when not NULL, is a
 * JSON object of string values stored as "__metadata__" (else {"format": "pt"}). */
seslm_status st_write(const char *path, const st_write_tensor *t, int n, const char *metadata_json);

/* fsync of a directory (after creating / renaming entries in it). */
seslm_status st_fsync_dir(const char *dir);

#endif
