/* safetensors.h — reader for the safetensors format (8-byte LE header length, JSON header, raw data).
 * The file is mmap'd read-only; tensors point into the mapping. Every offset and shape in the header
 * is validated against the file size before anything is dereferenced. */
#ifndef SESLM_SAFETENSORS_H
#define SESLM_SAFETENSORS_H

/* The other layers' libraries (assist, evolve) read and write safetensors too, so these are exported; the
 * shared libraries export only seslm_* names (cmake/seslm.map), hence the prefix under the short names. */
#define st_parse seslm_st_parse
#define st_open seslm_st_open
#define st_open_buffer seslm_st_open_buffer
#define st_close seslm_st_close
#define st_find seslm_st_find
#define st_dtype_size seslm_st_dtype_size
#define st_dtype_name seslm_st_dtype_name

#include "seslm.h"

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

typedef enum { ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL } st_dtype;

typedef struct {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    const void *data; // into the mapping (or the caller's buffer for st_parse)
    size_t nbytes;
} st_tensor;

typedef struct {
    void *map;          // mmap'd file, NULL when parsed from a caller buffer
    size_t map_len;
    int heap;           // map is an owned malloc'd buffer (a decrypted model): wiped and freed, not munmap'd
    st_tensor *tensors;
    int n_tensors;
    char *path;
} st_file;

/* Parses a complete safetensors image held in memory (used by st_open and by the fuzzer). */
seslm_status st_parse(st_file *f, const void *buf, size_t len, const char *what);
seslm_status st_open(st_file *f, const char *path);
/* Like st_open, from a malloc'd image (a model decrypted in memory) that f then owns, also on failure. */
seslm_status st_open_buffer(st_file *f, void *buf, size_t len, const char *path);
void st_close(st_file *f);
const st_tensor *st_find(const st_file *f, const char *name);
size_t st_dtype_size(st_dtype d);
const char *st_dtype_name(st_dtype d);

#endif
