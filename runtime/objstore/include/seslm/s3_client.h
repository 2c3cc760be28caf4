/* s3_client.h — a small client of S3-compatible object stores (AWS S3, MinIO, Ceph RGW, moto) over
 * libcurl, which signs every request with AWS Signature V4. The objstore layer: used by the registry's
 * model store (store_s3.h) and by the serving node's telemetry upload (docs/fleet.md); the core never
 * links curl.
 *
 *   seslm_s3 s3; seslm_s3_open(&s3, "s3://bucket/some/prefix");     // settings from the environment
 *   char key[1024]; seslm_s3_key(&s3, "a/b.h5", key, sizeof key);     // "some/prefix/a/b.h5"
 *   seslm_s3_put_fd(&s3, key, fd, size);  seslm_s3_get_fd(&s3, key, fd, &got, &missing);
 *   seslm_s3_list(&s3, "some/prefix/", on_object, ud);                  // every key under it, in order
 *
 * Connection settings come from the environment: SESLM_S3_ENDPOINT (e.g. http://127.0.0.1:9000;
 * path-style URLs, ENDPOINT/BUCKET/KEY), AWS_REGION (default us-east-1), AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY. Error messages never contain the secret key. Every function may be called from
 * any thread (each request has its own curl handle). */
#ifndef SESLM_S3_CLIENT_H
#define SESLM_S3_CLIENT_H

#include "seslm.h"

#include <stddef.h>

typedef struct {
    char endpoint[512]; // scheme://host[:port], no trailing slash
    char region[64];
    char access_key[256];
    char secret_key[256];
    char bucket[256];
    char prefix[512]; // no leading or trailing slash; may be empty
} seslm_s3;

/* 1 when url starts with "s3://". */
int seslm_s3_is_url(const char *url);

/* Parses s3://BUCKET[/PREFIX] and reads the endpoint, region and credentials from the environment.
 * A missing endpoint or credential is SESLM_ERR_ARG naming the variable. */
seslm_status seslm_s3_open(seslm_s3 *s3, const char *url);

/* The object key of rel under the store's prefix ("PREFIX/rel", or "rel" without a prefix). */
void seslm_s3_key(const seslm_s3 *s3, const char *rel, char *out, size_t cap);

/* Creates the bucket (PUT bucket); a bucket that already exists and is ours is not an error. */
seslm_status seslm_s3_create_bucket(const seslm_s3 *s3);

/* HEAD key: *exists 1 (and *size its length, when size is not NULL) or 0 (404). */
seslm_status seslm_s3_head(const seslm_s3 *s3, const char *key, int *exists, long long *size);

/* PUT key from size bytes read from fd (at its current offset), or from memory. The upload carries its
 * Content-MD5, so the store refuses bytes damaged on the way (BadDigest). */
seslm_status seslm_s3_put_fd(const seslm_s3 *s3, const char *key, int fd, long long size);
seslm_status seslm_s3_put_mem(const seslm_s3 *s3, const char *key, const void *data, size_t len);

/* GET key into fd (*got: the bytes written) or into a new NUL-terminated buffer of at most max bytes
 * (the caller frees *data). An object that does not exist in an existing bucket sets *missing = 1 (may
 * be NULL) and returns SESLM_ERR_IO; every failure says why (HTTP status and S3 error code). */
seslm_status seslm_s3_get_fd(const seslm_s3 *s3, const char *key, int fd, long long *got, int *missing);
seslm_status seslm_s3_get_mem(const seslm_s3 *s3, const char *key, size_t max, char **data, size_t *len,
                              int *missing);

/* DELETE key (an absent key is not an error). */
seslm_status seslm_s3_delete(const seslm_s3 *s3, const char *key);

/* Calls fn for every object whose key starts with key_prefix (a full key prefix, e.g. from seslm_s3_key),
 * in the store's order (ascending UTF-8 key), page after page (ListObjectsV2). fn returns 0 to go on,
 * non-zero to stop (seslm_s3_list then returns SESLM_OK). */
typedef int (*seslm_s3_list_fn)(void *ud, const char *key, long long size);
seslm_status seslm_s3_list(const seslm_s3 *s3, const char *key_prefix, seslm_s3_list_fn fn, void *ud);

#endif
