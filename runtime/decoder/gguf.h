/* gguf.h — reading GGUF files (llama.cpp's model format, versions 2 and 3).
 *
 * Layout: "GGUF" u32 version, u64 n_tensors, u64 n_kv; n_kv metadata pairs (string key, u32 type,
 * value); n_tensors infos (string name, u32 n_dims, u64 dims[n_dims], u32 ggml type, u64 offset); the
 * tensor data from the next multiple of general.alignment (default 32). Strings are u64 length + bytes.
 * All integers little-endian.
 *
 * gguf_parse reads an image already in memory (mapped, or a fuzzer's buffer) and checks everything
 * against its size before use: lengths, counts, array sizes, tensor extents (dims product times type
 * size inside the data section, with overflow checks), unique names, known types. Values point into
 * the image; nothing is copied except the index. */
#ifndef SESLM_GGUF_H
#define SESLM_GGUF_H

/* The tests and the GGUF fuzzer call the reader directly. The shared libraries export only seslm_* names
 * (cmake/seslm.map), so these are compiled under the prefixed names. */
#define gguf_parse seslm_gguf_parse
#define gguf_open seslm_gguf_open
#define gguf_close seslm_gguf_close
#define gguf_find_kv seslm_gguf_find_kv
#define gguf_find_tensor seslm_gguf_find_tensor
#define gguf_get_u32 seslm_gguf_get_u32
#define gguf_get_f32 seslm_gguf_get_f32
#define gguf_get_bool seslm_gguf_get_bool
#define gguf_get_str seslm_gguf_get_str
#define gguf_arr_int seslm_gguf_arr_int
#define gguf_arr_f32 seslm_gguf_arr_f32

#include "seslm.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    GGUF_U8 = 0, GGUF_I8, GGUF_U16, GGUF_I16, GGUF_U32, GGUF_I32, GGUF_F32, GGUF_BOOL, GGUF_STRING,
    GGUF_ARRAY, GGUF_U64, GGUF_I64, GGUF_F64, GGUF_TYPE_COUNT
} gguf_type;

typedef struct {
    const char *s; // not NUL-terminated
    size_t len;
} gguf_str;

typedef struct {
    gguf_str key;
    int type;        // gguf_type
    int arr_type;    // element type of an array
    uint64_t n;      // array length (1 for scalars)
    const uint8_t *data; // scalar value, or first array element (strings: first u64 length)
    gguf_str *strs;  // arrays of strings: the n strings, indexed at parse time (else NULL)
    size_t nbytes;   // the value's bytes from data on, as stored (a writer copies them unchanged)
} gguf_kv;

#define GGUF_MAX_DIMS 4
typedef struct {
    gguf_str name;
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS]; // ne[0] is the row length (innermost), as in ggml
    int type;                  // qb_type
    const uint8_t *data;
    size_t nbytes;
} gguf_tensor;

typedef struct {
    const uint8_t *base;
    size_t size;
    uint32_t version;
    gguf_kv *kv;
    int n_kv;
    gguf_tensor *tensors;
    int n_tensors;
    size_t alignment;
    void *map;       // mmap'd image when opened from a file (gguf_open), else NULL
    size_t map_size;
} gguf_file;

/* Parses an image of `size` bytes; `name` is used in messages. FORMAT on any inconsistency. */
seslm_status gguf_parse(gguf_file *f, const void *image, size_t size, const char *name);
/* mmaps `path` read-only and parses it. IO when missing / unreadable. */
seslm_status gguf_open(gguf_file *f, const char *path);
void gguf_close(gguf_file *f);

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);
/* Typed getters: 0 and *out set when the key exists with a compatible scalar type, else -1. */
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out); // any integer type in range
int gguf_get_f32(const gguf_file *f, const char *key, float *out);    // f32 or f64
int gguf_get_bool(const gguf_file *f, const char *key, int *out);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out);
/* Element i of an integer / float array as int64 / float (no range check beyond i < n). */
int64_t gguf_arr_int(const gguf_kv *kv, uint64_t i);
float gguf_arr_f32(const gguf_kv *kv, uint64_t i);

// ---------------------------------------------------------------------------------------------
// writing (a pruned decoder: pipeline/recompile/llm_prune.c)

#define gguf_writer_new seslm_gguf_writer_new
#define gguf_writer_free seslm_gguf_writer_free
#define gguf_w_copy_kv seslm_gguf_w_copy_kv
#define gguf_w_u32 seslm_gguf_w_u32
#define gguf_w_str seslm_gguf_w_str
#define gguf_w_arr_str seslm_gguf_w_arr_str
#define gguf_w_arr_i32 seslm_gguf_w_arr_i32
#define gguf_w_arr_f32 seslm_gguf_w_arr_f32
#define gguf_w_tensor seslm_gguf_w_tensor
#define gguf_w_write seslm_gguf_w_write

/* Metadata in the order added (a key added twice is refused), tensors in the order added; the file is
 * written to PATH.tmp, flushed and renamed, so a crash never leaves a half-written model under PATH.
 * Tensor data is referenced, not copied, unless `owned` (then freed with the writer). */
typedef struct gguf_writer gguf_writer;
gguf_writer *gguf_writer_new(void);
void gguf_writer_free(gguf_writer *w);
int gguf_w_copy_kv(gguf_writer *w, const gguf_kv *kv);
int gguf_w_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_w_str(gguf_writer *w, const char *key, const char *s);
int gguf_w_arr_str(gguf_writer *w, const char *key, const gguf_str *s, uint64_t n);
int gguf_w_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n);
int gguf_w_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n);
int gguf_w_tensor(gguf_writer *w, const char *name, int n_dims, const int64_t *ne, int type, const void *data,
                  size_t nbytes, int owned);
seslm_status gguf_w_write(gguf_writer *w, const char *path);

#endif
