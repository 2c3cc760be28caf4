/* util.h — small helpers shared by the runtime: whole-file reads with a size cap, crash-safe writes. */
#ifndef SESLM_UTIL_H
#define SESLM_UTIL_H

#include "seslm.h"

#include <stddef.h>

/* Reads a whole regular file into a NUL-terminated malloc'd buffer; fails beyond max_bytes, and on a
 * FIFO or device without blocking. *missing (may be NULL) tells a file that does not exist apart, for
 * optional files. Errors name the path. */
seslm_status util_read_file(const char *path, char **out, size_t *len, size_t max_bytes, int *missing);

/* Writes n bytes to path crash-safe: a temporary file beside it, fsync, rename over path, fsync of the
 * directory. A crash leaves the old file (or none) or the new one, never a part. */
seslm_status util_write_file_atomic(const char *path, const void *data, size_t n);

/* Removes a file or a directory tree (no symlinks followed). Best effort: errors are ignored. */
void util_rmtree(const char *path);

#endif
