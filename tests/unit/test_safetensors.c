/* test_safetensors.c — the safetensors reader on hand-made images: a valid file (names, dtypes,
 * shapes, data pointers), every truncation of it, and each way a header can be wrong. Every failure
 * must come back as SESLM_ERR_FORMAT / SESLM_ERR_IO with a message naming the file and (where there is
 * one) the tensor; nothing may read outside the buffer (run under ASan: images are copied into
 * exactly-sized heap blocks). */
#include "safetensors.h"
#include "test.h"
#include "tiny_model.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define WHAT "mem.safetensors"

static char *g_dir;

// 8-byte little-endian header length + header bytes + data
static uint8_t *raw_image(const char *header, size_t hlen, const void *data, size_t dlen, size_t *len) {
    uint8_t *img = malloc(8 + hlen + dlen + 1);
    for (int i = 0; i < 8; i++) img[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(img + 8, header, hlen);
    if (dlen) memcpy(img + 8 + hlen, data, dlen);
    *len = 8 + hlen + dlen;
    return img;
}

// Parses a private, exactly-sized copy (so ASan sees any byte read past the end); the copy is freed.
static seslm_status parse_copy(const uint8_t *img, size_t len) {
    uint8_t *copy = malloc(len ? len : 1);
    if (len) memcpy(copy, img, len);
    st_file f;
    memset(&f, 0, sizeof f);
    seslm_status st = st_parse(&f, copy, len, WHAT);
    if (st == SESLM_OK)
        for (int i = 0; i < f.n_tensors; i++) // touch every tensor's bytes
            if (f.tensors[i].nbytes) {
                volatile uint8_t a = ((const uint8_t *)f.tensors[i].data)[0];
                volatile uint8_t b = ((const uint8_t *)f.tensors[i].data)[f.tensors[i].nbytes - 1];
                (void)a;
                (void)b;
            }
    st_close(&f);
    CHECK(f.tensors == NULL && f.n_tensors == 0);
    free(copy);
    return st;
}

// A header must fail with FORMAT and a message containing the file name and `needle`.
static void expect_bad(int line, const char *header, size_t dlen, const char *needle) {
    static const uint8_t zeros[256];
    size_t len;
    uint8_t *img = raw_image(header, strlen(header), zeros, dlen, &len);
    seslm_fail(SESLM_OK, "%s", ""); // clear
    seslm_status st = parse_copy(img, len);
    const char *msg = seslm_last_error();
    CHECK_MSG(st == SESLM_ERR_FORMAT, "line %d: header %s: got %s", line, header, seslm_status_str(st));
    CHECK_MSG(strstr(msg, WHAT) != NULL, "line %d: message '%s' does not name the file", line, msg);
    CHECK_MSG(!needle || strstr(msg, needle) != NULL, "line %d: message '%s' lacks '%s'", line, msg, needle);
    free(img);
}
#define BAD(h, dlen, needle) expect_bad(__LINE__, h, dlen, needle)

static void expect_good(int line, const char *header, size_t dlen, int n_tensors) {
    static const uint8_t zeros[256];
    size_t len;
    uint8_t *img = raw_image(header, strlen(header), zeros, dlen, &len);
    st_file f;
    memset(&f, 0, sizeof f);
    seslm_status st = st_parse(&f, img, len, WHAT);
    CHECK_MSG(st == SESLM_OK, "line %d: header %s: %s", line, header, seslm_last_error());
    CHECK_MSG(f.n_tensors == n_tensors, "line %d: %d tensors, expected %d", line, f.n_tensors, n_tensors);
    st_close(&f);
    free(img);
}
#define GOOD(h, dlen, n) expect_good(__LINE__, h, dlen, n)

// ---- a valid file --------------------------------------------------------------------------------

static float g_a[6] = {1, 2, 3, 4, 5, 6};
static uint16_t g_b[4] = {0x3c00, 0x4000, 0xc000, 0x0001};
static int64_t g_c = -42;
static const int64_t sh_a[2] = {2, 3}, sh_b[1] = {4}, sh_e[2] = {0, 5}, sh_big[3] = {0, 1LL << 40, 1LL << 40};

static uint8_t *valid_image(size_t *len) {
    tm_st_entry e[] = {
        {"a", "F32", 2, sh_a, g_a, sizeof g_a},
        {"layer.b \"quoted\"", "F16", 1, sh_b, g_b, sizeof g_b},
        {"c", "I64", 0, NULL, &g_c, sizeof g_c},
        {"empty", "U8", 2, sh_e, NULL, 0},
        {"zero_dim_huge", "BF16", 3, sh_big, NULL, 0},
    };
    return tm_st_image(e, 5, 0, len);
}

static void test_valid(void) {
    size_t len;
    uint8_t *img = valid_image(&len);
    st_file f;
    memset(&f, 0, sizeof f);
    CHECK_MSG(st_parse(&f, img, len, WHAT) == SESLM_OK, "%s", seslm_last_error());
    CHECK(f.n_tensors == 5 && f.map == NULL);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | img[i];
    const uint8_t *data = img + 8 + hlen;
    const st_tensor *a = st_find(&f, "a"), *b = st_find(&f, "layer.b \"quoted\""), *c = st_find(&f, "c"),
                    *e = st_find(&f, "empty"), *z = st_find(&f, "zero_dim_huge");
    CHECK(a && b && c && e && z);
    CHECK(st_find(&f, "__metadata__") == NULL && st_find(&f, "A") == NULL && st_find(&f, "") == NULL);
    if (a && b && c && e && z) {
        CHECK(a->dtype == ST_F32 && a->ndim == 2 && a->shape[0] == 2 && a->shape[1] == 3 && a->numel == 6);
        CHECK(a->nbytes == 24 && a->data == data && memcmp(a->data, g_a, 24) == 0);
        CHECK(b->dtype == ST_F16 && b->ndim == 1 && b->shape[0] == 4 && b->numel == 4 && b->nbytes == 8);
        CHECK(b->data == data + 24 && memcmp(b->data, g_b, 8) == 0);
        CHECK(c->dtype == ST_I64 && c->ndim == 0 && c->numel == 1 && c->nbytes == 8 && c->data == data + 32);
        CHECK(memcmp(c->data, &g_c, 8) == 0);
        CHECK(e->dtype == ST_U8 && e->ndim == 2 && e->numel == 0 && e->nbytes == 0);
        CHECK(z->dtype == ST_BF16 && z->ndim == 3 && z->numel == 0 && z->shape[2] == (1LL << 40));
    }
    st_close(&f);
    CHECK(f.n_tensors == 0 && f.tensors == NULL);
    st_close(&f); // twice is harmless
    st_close(NULL);

    // the dtype table
    static const struct {
        st_dtype d;
        const char *n;
        size_t s;
    } dt[] = {{ST_F32, "F32", 4}, {ST_F16, "F16", 2}, {ST_BF16, "BF16", 2}, {ST_F64, "F64", 8}, {ST_I64, "I64", 8},
              {ST_I32, "I32", 4}, {ST_I16, "I16", 2}, {ST_I8, "I8", 1},     {ST_U8, "U8", 1},   {ST_BOOL, "BOOL", 1}};
    for (size_t i = 0; i < sizeof dt / sizeof dt[0]; i++) {
        CHECK(st_dtype_size(dt[i].d) == dt[i].s);
        CHECK(strcmp(st_dtype_name(dt[i].d), dt[i].n) == 0);
        char h[160];
        snprintf(h, sizeof h, "{\"t\":{\"dtype\":\"%s\",\"shape\":[3],\"data_offsets\":[0,%zu]}}", dt[i].n, 3 * dt[i].s);
        GOOD(h, 3 * dt[i].s, 1);
    }

    // every truncation of the valid file fails cleanly (header or data cut)
    int bad = 0;
    for (size_t n = 0; n < len; n++) {
        seslm_status st = parse_copy(img, n);
        if (st != SESLM_ERR_FORMAT || !strstr(seslm_last_error(), WHAT)) {
            if (bad++ < 5) fprintf(stderr, "truncated to %zu of %zu bytes: %s (%s)\n", n, len, seslm_status_str(st),
                                   seslm_last_error());
        }
    }
    CHECK_MSG(bad == 0, "%d truncations were not rejected", bad);
    CHECK(parse_copy(img, len) == SESLM_OK);
    // extra bytes after the last tensor are tolerated
    uint8_t *longer = malloc(len + 3);
    memcpy(longer, img, len);
    memset(longer + len, 0xab, 3);
    CHECK(parse_copy(longer, len + 3) == SESLM_OK);
    free(longer);
    free(img);
}

// ---- the header-length field ---------------------------------------------------------------------

static void set_hlen(uint8_t *img, uint64_t v) {
    for (int i = 0; i < 8; i++) img[i] = (uint8_t)(v >> (8 * i));
}

static void test_header_length(void) {
    size_t len;
    uint8_t *img = valid_image(&len);
    static const uint64_t bad[] = {0, 1, UINT64_MAX, (uint64_t)1 << 63, ((uint64_t)1 << 32) + 2, 100u * 1024 * 1024 + 1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        set_hlen(img, bad[i]);
        CHECK_MSG(parse_copy(img, len) == SESLM_ERR_FORMAT, "hlen %llu", (unsigned long long)bad[i]);
        CHECK(strstr(seslm_last_error(), "header length") != NULL);
    }
    // larger than the file, by one byte and by a lot
    set_hlen(img, len - 8 + 1);
    CHECK(parse_copy(img, len) == SESLM_ERR_FORMAT && strstr(seslm_last_error(), "header length"));
    set_hlen(img, len);
    CHECK(parse_copy(img, len) == SESLM_ERR_FORMAT);
    // shorter than the JSON: the header is then cut mid-object
    set_hlen(img, 10);
    CHECK(parse_copy(img, len) == SESLM_ERR_FORMAT && strstr(seslm_last_error(), "JSON"));
    free(img);
    // fewer than 8 bytes in all
    static const uint8_t tiny[7] = {2, 0, 0, 0, 0, 0, 0};
    for (size_t n = 0; n <= 7; n++) CHECK(parse_copy(tiny, n) == SESLM_ERR_FORMAT);
    CHECK(strstr(seslm_last_error(), "too short") != NULL);
}

// ---- malformed headers ---------------------------------------------------------------------------

static void test_bad_headers(void) {
    // not JSON / not an object
    BAD("{not json}", 0, "JSON");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 4, "JSON"); // unterminated
    BAD("[1, 2, 3]", 0, "JSON object");
    BAD("\"a string\"", 0, "JSON object");
    BAD("null", 0, "JSON object");
    BAD("42", 0, "JSON object");
    BAD("        ", 0, "JSON");
    {
        // NUL bytes in the header: cJSON skips them as whitespace between tokens, and a NUL inside a
        // name cuts the C string; either way the result must be consistent (and in bounds)
        const char h[] = "{\"a\":{\"dtype\":\"F32\",\0\"shape\":[1],\"data_offsets\":[0,4]},"
                         "\"b\0x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[4,5]}}";
        size_t len;
        uint8_t *img = raw_image(h, sizeof h - 1, "\0\0\0\0\0", 5, &len);
        st_file f;
        memset(&f, 0, sizeof f);
        seslm_status st = st_parse(&f, img, len, WHAT);
        CHECK(st == SESLM_ERR_FORMAT || (st == SESLM_OK && f.n_tensors == 2 && st_find(&f, "a") &&
                                         st_find(&f, "a")->nbytes == 4 && st_find(&f, "b") &&
                                         st_find(&f, "b")->nbytes == 1));
        st_close(&f);
        free(img);
    }
    // entries that are not tensor objects, or lack a field
    BAD("{\"t\":5}", 0, "'t' is not an object");
    BAD("{\"t\":[1,2]}", 0, "'t'");
    BAD("{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "'t' lacks dtype");
    BAD("{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "'t' lacks");
    BAD("{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "'t' lacks");
    BAD("{\"t\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "'t' lacks");
    BAD("{\"t\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4, "'t' lacks");
    BAD("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{\"a\":0}}}", 4, "'t' lacks");
    BAD("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}", 4, "'t' lacks");
    BAD("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8, "'t' lacks");
    BAD("{\"ok\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"t\":{\"dtype\":\"F32\"}}", 4, "'t' lacks");
    // unknown dtypes
    BAD("{\"t\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4, "unsupported dtype 'F8_E4M3'");
    BAD("{\"t\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "'f32'");
    BAD("{\"t\":{\"dtype\":\"\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "'t' has unsupported dtype");
    // numbers: negative, fractional, beyond 2^53, huge, not numbers
    BAD("{\"t\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,1]}}", 1, "'t' has a bad shape");
    BAD("{\"t\":{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,1]}}", 1, "'t' has a bad shape");
    BAD("{\"t\":{\"dtype\":\"U8\",\"shape\":[9007199254740994],\"data_offsets\":[0,1]}}", 1, "bad shape");
    BAD("{\"t\":{\"dtype\":\"U8\",\"shape\":[1e300],\"data_offsets\":[0,1]}}", 1, "bad shape");
    BAD("{\"t\":{\"dtype\":\"U8\",\"shape\":[1e999],\"data_offsets\":[0,1]}}", 1, "bad shape");
    BAD("{\"t\":{\"dtype\":\"U8\",\"shape\":[\"1\"],\"data_offsets\":[0,1]}}", 1, "bad shape");
    BAD("{\"t\":{\"dtype\":\"U8\",\"shape\":[null],\"data_offsets\":[0,1]}}", 1, "bad shape");
    BAD("{\"t\":{\"dtype\":\"U8\",\"shape\":[[1]],\"data_offsets\":[0,1]}}", 1, "bad shape");
    BAD("{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}", 1, "'t' has bad data_offsets");
    BAD("{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1.5]}}", 2, "bad data_offsets");
    BAD("{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,\"1\"]}}", 1, "bad data_offsets");
    BAD("{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[9007199254740994,9007199254740995]}}", 1,
        "bad data_offsets");
    BAD("{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1e20]}}", 1, "bad data_offsets");
    // end < begin, beyond the data, span not numel * size
    BAD("{\"t\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,0]}}", 8, "bad data_offsets");
    BAD("{\"t\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,28]}}", 24, "ends at byte 28 of a 24-byte");
    BAD("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[9007199254740988,9007199254740992]}}", 24,
        "'t' ends at byte");
    BAD("{\"t\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 24, "6 elements of F32 need 24 bytes, offsets give 20");
    BAD("{\"t\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[4,24]}}", 24, "need 24 bytes");
    BAD("{\"t\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[0,4]}}", 4, "1 elements of F16 need 2 bytes");
    BAD("{\"t\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,4]}}", 4, "need 0 bytes");
    // shape overflow: the element count, and the byte count
    BAD("{\"t\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,4]}}", 4, "'t' shape overflows");
    BAD("{\"t\":{\"dtype\":\"U8\",\"shape\":[2147483648,2147483648,4],\"data_offsets\":[0,4]}}", 4, "overflows");
    BAD("{\"t\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4, "overflows");
    // element counts that fit int64 but whose byte counts do not (dims are at most 2^53 each)
    BAD("{\"t\":{\"dtype\":\"F32\",\"shape\":[4503599627370496,512],\"data_offsets\":[0,4]}}", 4,
        "'t': 2305843009213693952 elements of F32 overflow");
    BAD("{\"t\":{\"dtype\":\"F64\",\"shape\":[9007199254740992,128],\"data_offsets\":[0,8]}}", 8, "'t'");
    BAD("{\"t\":{\"dtype\":\"F32\",\"shape\":[9007199254740992,1024],\"data_offsets\":[0,4]}}", 4, "overflow");
    BAD("{\"t\":{\"dtype\":\"U8\",\"shape\":[9007199254740992,1024],\"data_offsets\":[0,4]}}", 4, "'t' shape overflows");
    BAD("{\"t\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1, "'t' has 9 dims");
    // duplicate names
    BAD("{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},\"t\":{\"dtype\":\"U8\",\"shape\":[1],"
        "\"data_offsets\":[1,2]}}",
        2, "'t' appears twice");

    // accepted: __metadata__ of any form is ignored, empty header, zero-sized tensors, up to 8 dims
    GOOD("{}", 0, 0);
    GOOD("{}", 16, 0);
    GOOD("{\"__metadata__\":{\"format\":\"pt\",\"x\":[1,2]}}", 0, 0);
    GOOD("{\"__metadata__\":\"free text\",\"t\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, 1);
    GOOD("{\"t\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},\"__metadata__\":{}}", 2, 1);
    GOOD("{\"t\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,2],\"data_offsets\":[0,2]}}", 2, 1);
    GOOD("{\"t\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[2,2]}}", 2, 1);
    GOOD("{\"t\":{\"dtype\":\"U8\",\"shape\":[2.0],\"data_offsets\":[0,2.0]}}", 2, 1);
    GOOD("  {\"t\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}   \n", 2, 1);
}

// ---- st_open on files ---------------------------------------------------------------------------

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "test_safetensors: st_open hung (FIFO?)\n";
    if (write(2, msg, sizeof msg - 1) < 0) _exit(1);
    _exit(1);
}

static void write_file(const char *path, const void *data, size_t n) { CHECK(tm_write_bytes(path, data, n)); }

static void test_open(void) {
    char path[4096];
    st_file f;
    // missing file: IO, the path in the message
    tm_path(path, sizeof path, g_dir, "missing.safetensors");
    CHECK(st_open(&f, path) == SESLM_ERR_IO);
    CHECK(strstr(seslm_last_error(), path) && strstr(seslm_last_error(), "No such file"));
    CHECK(f.map == NULL && f.tensors == NULL);
    // a directory
    CHECK(st_open(&f, g_dir) == SESLM_ERR_IO);
    CHECK(strstr(seslm_last_error(), g_dir) && strstr(seslm_last_error(), "not a regular file"));
    // an empty file, a 7-byte file
    tm_path(path, sizeof path, g_dir, "empty.safetensors");
    write_file(path, "", 0);
    CHECK(st_open(&f, path) == SESLM_ERR_FORMAT);
    CHECK(strstr(seslm_last_error(), path) && strstr(seslm_last_error(), "too short"));
    write_file(path, "\x02\0\0\0\0\0\0", 7);
    CHECK(st_open(&f, path) == SESLM_ERR_FORMAT && strstr(seslm_last_error(), path));
    // a FIFO must not block the loader
    tm_path(path, sizeof path, g_dir, "fifo.safetensors");
    if (mkfifo(path, 0600) == 0) {
        signal(SIGALRM, on_alarm);
        alarm(10);
        CHECK(st_open(&f, path) == SESLM_ERR_IO && strstr(seslm_last_error(), "not a regular file"));
        alarm(0);
    }
    // the valid file, mapped
    size_t len;
    uint8_t *img = valid_image(&len);
    tm_path(path, sizeof path, g_dir, "valid.safetensors");
    write_file(path, img, len);
    CHECK_MSG(st_open(&f, path) == SESLM_OK, "%s", seslm_last_error());
    CHECK(f.n_tensors == 5 && f.map != NULL && f.map_len == len && f.path && strcmp(f.path, path) == 0);
    const st_tensor *a = st_find(&f, "a");
    CHECK(a && (const uint8_t *)a->data > (const uint8_t *)f.map &&
          (const uint8_t *)a->data + a->nbytes <= (const uint8_t *)f.map + f.map_len && memcmp(a->data, g_a, 24) == 0);
    st_close(&f);
    CHECK(f.map == NULL && f.path == NULL && f.n_tensors == 0);
    // every truncation on disk: FORMAT (never a crash), the path in the message, nothing left open
    tm_path(path, sizeof path, g_dir, "cut.safetensors");
    int bad = 0;
    for (size_t n = 0; n < len; n++) {
        write_file(path, img, n);
        seslm_status st = st_open(&f, path);
        if (st != SESLM_ERR_FORMAT || !strstr(seslm_last_error(), path) || f.map || f.tensors) bad++;
    }
    CHECK_MSG(bad == 0, "%d on-disk truncations not rejected cleanly", bad);
    // a corrupt byte in the header (the closing brace) -> FORMAT
    uint8_t *corrupt = malloc(len);
    memcpy(corrupt, img, len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | corrupt[i];
    corrupt[8] = 'x';
    write_file(path, corrupt, len);
    CHECK(st_open(&f, path) == SESLM_ERR_FORMAT && strstr(seslm_last_error(), "JSON"));
    CHECK(hlen % 8 == 0); // the writer pads like the reference writers
    free(corrupt);
    free(img);
}

int main(void) {
    g_dir = tm_mkdtemp("st");
    test_valid();
    test_header_length();
    test_bad_headers();
    test_open();
    tm_rmtree(g_dir);
    free(g_dir);
    return test_report("test_safetensors");
}
