/* store_fetch.h — materialise a stored model (a registry version's location) as a local directory,
 * from either artifact store: the local content-addressed store (store.h) or an S3-compatible one
 * (store_s3.h, for locations s3://BUCKET/PREFIX/sha256/<hash>). */
#ifndef SESLM_STORE_FETCH_H
#define SESLM_STORE_FETCH_H

#include "seslm.h"

/* Copies the model at `location` into out_dir (which must not exist) through a temporary directory
 * beside it, checks that its content hash is sha256 (a tampered or corrupted artifact is refused with
 * SESLM_ERR_FORMAT and nothing is left), fsyncs, and renames it into place. */
seslm_status seslm_store_fetch(const char *location, const char *sha256, const char *out_dir);

#endif
