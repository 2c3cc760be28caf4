/* util.h — small helpers shared by the runtime: whole-file reads with a size cap, crash-safe writes. */
#ifndef SESLM_UTIL_H
#define SESLM_UTIL_H

/* The other layers and the program use these too, so they are exported; the shared libraries export only
 * seslm_* names (cmake/seslm.map), hence the prefix under the short names. */
#define util_read_file seslm_util_read_file
#define util_write_file_atomic seslm_util_write_file_atomic
#define util_secret_file_check seslm_util_secret_file_check
#define util_read_secret_line seslm_util_read_secret_line
#define util_utf8_valid seslm_util_utf8_valid
#define util_utf8_repair seslm_util_utf8_repair
#define util_rmtree seslm_util_rmtree
#define util_now_s seslm_util_now_s
#define util_write_all seslm_util_write_all
#define util_dir_files seslm_util_dir_files
#define util_dir_files_free seslm_util_dir_files_free
#define util_json_strict seslm_util_json_strict
#define util_fopen_read seslm_util_fopen_read

#include "seslm.h"

#include <stddef.h>
#include <stdio.h>

/* Reads a whole regular file into a NUL-terminated malloc'd buffer; fails beyond max_bytes, and on a
 * FIFO or device without blocking. *missing (may be NULL) tells a file that does not exist apart, for
 * optional files. Errors name the path. */
seslm_status util_read_file(const char *path, char **out, size_t *len, size_t max_bytes, int *missing);

/* Opens a regular file for reading ("rb"); a directory, FIFO or device fails without blocking (fopen of a FIFO
 * waits for a writer forever: a mistyped path would hang a node's start). allow_pipe: a pipe or FIFO is read too
 * (`--config <(envsubst < t.yaml)`), opened without waiting; with no writer it reads as empty at once. Errors name
 * the path. */
seslm_status util_fopen_read(const char *path, int allow_pipe, FILE **out);

/* Writes all n bytes to fd (again after a short write or EINTR): 1, or 0 with errno set. */
int util_write_all(int fd, const void *p, size_t n);

/* Writes n bytes to path crash-safe: a temporary file beside it, fsync, rename over path, fsync of the
 * directory. A crash leaves the old file (or none) or the new one, never a part. */
seslm_status util_write_file_atomic(const char *path, const void *data, size_t n);

/* Secret files (model keys, admin / feedback tokens, the audit key) must be private: a regular file that
 * neither group nor others may read or write. Anything else is refused (SESLM_ERR_ARG, saying how to fix
 * it), unless $SESLM_INSECURE_SECRET_FILES=1 (an explicit override for setups that guard the file another
 * way; docs/security.md). */
seslm_status util_secret_file_check(const char *path);

/* Reads a secret token: the first line of a private file (util_secret_file_check), without the line end;
 * an empty token is refused. `what` names it in messages ("admin token"). */
seslm_status util_read_secret_line(const char *path, const char *what, char *buf, size_t cap);

/* 1 when s[0..n) is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above
 * U+10FFFF), else 0. */
int util_utf8_valid(const char *s, size_t n);

/* Writes s[0..n) to out with every ill-formed UTF-8 sequence (a stray continuation byte, a cut or overlong
 * sequence, a surrogate) replaced by U+FFFD, NUL-terminated; returns the bytes written (not the NUL). out must
 * hold 3 n + 1 bytes and must not overlap s. Generated text passes through it: a byte-level token can cut a
 * character, and an answer that is not UTF-8 must not reach JSON or the encoder's tokenizer. */
size_t util_utf8_repair(const char *s, size_t n, char *out);

/* Removes a file or a directory tree (no symlinks followed). Best effort: errors are ignored. */
void util_rmtree(const char *path);

/* Every regular file under root (symbolic links followed) as a path relative to root, in byte order of the
 * paths: *rel (n of them; util_dir_files_free). Subdirectories at most max_depth levels deep and at most
 * max_files files, else SESLM_ERR_LIMIT; anything that is neither a file nor a directory: SESLM_ERR_FORMAT.
 * The one listing behind a model directory's content hash, its manifest and the registry's copy of it. */
seslm_status util_dir_files(const char *root, int max_files, int max_depth, char ***rel, int *n);
void util_dir_files_free(char **rel, int n);

/* What cJSON lets through and RFC 8259 does not: invalid UTF-8 (checked when check_utf8), control bytes outside
 * strings (a NUL before the body), raw control bytes inside strings, and escapes no C string can hold (\u0000, lone
 * surrogates). 0 ok, else -1 with the reason in why. The serving node runs it on every JSON body before cJSON (its
 * /v1/embed checks each text's UTF-8 itself, to name it), and the labelled-examples reader on every JSON line. */
int util_json_strict(const char *body, size_t len, int check_utf8, char *why, size_t cap);

/* Seconds on the monotonic clock (for elapsed times and ETAs; not the time of day). */
double util_now_s(void);

#endif
