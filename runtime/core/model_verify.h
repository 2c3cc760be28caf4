/* model_verify.h — integrity of a model directory: its content hash, its manifest, and the check every
 * load runs (seslm_model_load calls model_verify_dir before reading anything).
 *
 * Content hash (the registry's identity of a model, store.h): SHA-256 over the directory's regular files
 * in byte order of their relative paths, each as  path NUL size NUL bytes ; symbolic links followed,
 * subdirectories included, at most 8 levels and 4096 files.
 *
 * Manifest: a file SHA256SUMS in the model directory, one line per other file, "<sha256>  <path>\n"
 * in the same order (the format of coreutils `sha256sum`, so `cd DIR && sha256sum -c SHA256SUMS` checks
 * it too). seslm recompile writes it; when present, every file of the directory must be listed and match,
 * and no listed file may be missing.
 *
 * What a load checks (model_verify_dir):
 *   - a directory in the content-addressed store (.../sha256/<64 hex digits>, after resolving links):
 *     its content hash must equal its name, which is the hash the registry recorded;
 *   - otherwise, a directory holding SHA256SUMS: the manifest;
 *   - otherwise (a model as downloaded): nothing; register it, or write a manifest, to have it checked. */
#ifndef SESLM_MODEL_VERIFY_H
#define SESLM_MODEL_VERIFY_H

/* seslm recompile (the program) and the tests call these. The shared libraries export only seslm_* names
 * (cmake/seslm.map), so these are compiled under the prefixed names. */
#define model_dir_hash seslm_model_dir_hash
#define model_manifest_write seslm_model_manifest_write
#define model_verify_dir seslm_model_verify_dir

#include "seslm.h"

#define SESLM_MANIFEST_NAME "SHA256SUMS"

/* The content hash of dir (hex + NUL) over every file except those whose relative path is in
 * exclude[0..n_exclude); *bytes (may be NULL) their total size. */
seslm_status model_dir_hash(const char *dir, const char *const *exclude, int n_exclude, char sha256[65],
                            long long *bytes);

/* Writes dir/SHA256SUMS (crash-safe) listing every other file of dir. */
seslm_status model_manifest_write(const char *dir);

/* The load-time check above. SESLM_ERR_FORMAT naming the file (manifest) or both hashes (store) when
 * the directory is not what was recorded. *how (may be NULL) gets "store", "manifest" or "none". */
seslm_status model_verify_dir(const char *dir, const char **how);

#endif
