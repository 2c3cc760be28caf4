/* validate_internal.h — pieces of the validation sandbox shared between its files (not public). */
#ifndef SESLM_VALIDATE_INTERNAL_H
#define SESLM_VALIDATE_INTERNAL_H

#include "seslm.h"

#include <stddef.h>

/* A text file of rows with `cols` TAB-separated fields (cols 1: the whole line). Empty lines are
 * skipped; a row with another number of fields fails with "path:line: ...". */
typedef struct {
    char *buf;
    char **f; // n * cols field pointers into buf
    int n, cols;
} vtable;

seslm_status vtable_read(vtable *t, const char *path, int cols);
void vtable_free(vtable *t);
const char *vtable_get(const vtable *t, int row, int col);

/* m indices spread evenly over [0, n): floor(i * n / m), i < m (all of them when m >= n); returns
 * the count written (min(m, n)). Deterministic: the same sample for parent and candidate, every run. */
int validate_pick(int n, int m, int *idx);

/* Peak resident memory (bytes) of loading model_dir and embedding the n texts (n <= 32) in a forked
 * child: its peak RSS minus its RSS at the start (the sandbox's own footprint, the same for every
 * model). Pass threads = 1 when this process may already have run OpenMP code: libgomp's thread pool
 * does not survive fork, and a single-threaded child never touches it. */
seslm_status validate_peak_rss(const char *model_dir, const char *const *texts, int n, int threads,
                               long long *bytes);

/* Crash-safe write of a whole buffer: temp file in the same directory, fsync, rename, fsync dir. */
seslm_status validate_write_file(const char *path, const char *data, size_t len);

#endif
