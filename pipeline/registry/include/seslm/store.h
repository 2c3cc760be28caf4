/* store.h — the content-addressed local artifact store of the registry:
 *
 *     <root>/sha256/<hash>/...      one model directory, named by its content hash
 *
 * The content hash of a model directory is SHA-256 over its regular files in byte order of their
 * relative paths, each as  path NUL size NUL bytes  (so renaming, moving or changing any file changes
 * it). Symbolic links are followed; subdirectories (1_Pooling/) are included. */
#ifndef SESLM_STORE_H
#define SESLM_STORE_H

#include "seslm.h"

#include <stddef.h>

/* The content hash of a model directory (hex, 65 bytes with NUL); *bytes (may be NULL) the total size. */
seslm_status seslm_store_hash_dir(const char *dir, char sha256[65], long long *bytes);

/* Copies model_dir into the store, crash-safe: hashes it in place; when that hash is already stored
 * nothing is written and *existed = 1 (idempotent); else copies it into <root>/sha256/.tmp.XXXXXX while
 * hashing again (a directory that changed meanwhile is refused), every file and directory fsync'd, then
 * renames it to <root>/sha256/<hash> (a directory there is complete or absent).
 * path gets the stored directory. */
seslm_status seslm_store_put(const char *root, const char *model_dir, char sha256[65], char *path, size_t cap,
                             int *existed);

#endif
