/* store_s3.h — the registry's artifact store in an S3-compatible object store (the option beside the
 * local store of store.h), through the objstore layer's S3 client (s3_client.h):
 *
 *     s3://BUCKET/PREFIX/sha256/<hash>/<relative path>    one object per file of the model directory
 *     s3://BUCKET/PREFIX/sha256/<hash>.manifest.json      {"format", "sha256", "bytes", "files": [{path, size}]}
 *
 * The manifest is written LAST, so a model counts as present only when its manifest exists: a put that
 * dies half-way leaves orphan objects that a later put overwrites, never a model that looks complete.
 * <hash> is the content hash of seslm_store_hash_dir; a get verifies it before the directory appears.
 *
 * seslm_s3_open reads the connection settings (s3_client.h). */
#ifndef SESLM_STORE_S3_H
#define SESLM_STORE_S3_H

#include "s3_client.h" // seslm_s3: the connection (objstore layer)

#include <stddef.h>

/* Uploads model_dir: hashes it; when the manifest of that hash exists nothing is uploaded and
 * *existed = 1; else PUTs each file, hashes the directory again (a directory that changed while it was
 * uploaded is refused and no manifest is written), then PUTs the manifest. location gets the
 * s3://BUCKET/PREFIX/sha256/<hash> URL. */
seslm_status seslm_s3_put_dir(const seslm_s3 *s3, const char *model_dir, char sha256[65], long long *bytes,
                              char *location, size_t cap, int *existed);

/* Downloads the model of content hash sha256 into out_dir (which must not exist): reads the manifest
 * (absent: SESLM_ERR_IO "not in the store"), downloads every file into a temporary directory beside
 * out_dir, checks every size and the content hash (a mismatch — a tampered or corrupted object — is
 * refused with SESLM_ERR_FORMAT and nothing is left behind), fsyncs, and renames it to out_dir. */
seslm_status seslm_s3_get_dir(const seslm_s3 *s3, const char *sha256, const char *out_dir);

/* Splits a location "s3://BUCKET/PREFIX/sha256/<hash>" into the store URL (s3://BUCKET/PREFIX) and the
 * hash. SESLM_ERR_ARG when it has another form. */
seslm_status seslm_s3_split_location(const char *location, char *store_url, size_t cap, char sha256[65]);

#endif
