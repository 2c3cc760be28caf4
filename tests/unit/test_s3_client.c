/* test_s3_client.c — the objstore layer's S3 client (runtime/objstore/s3_client.c) against a real
 * S3-compatible server (ci/s3-start.sh starts moto's S3 emulator and exports SESLM_TEST_S3_ENDPOINT;
 * skipped when unset), in a fresh bucket: put (memory, file descriptor from an offset) and get back byte
 * for byte; HEAD gives the size; keys with spaces, '&', '+', '<' and UTF-8 round-trip through PUT, GET and
 * LIST (the listing's XML entities decoded once); LIST returns exactly the keys under a prefix, sorted,
 * across pages (1001 keys: two ListObjectsV2 pages) and stops when asked; a missing key sets `missing`, a
 * missing bucket does not; DELETE removes; a dead endpoint is a clear error. */
#define _GNU_SOURCE
#include "s3_client.h"
#include "test.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    char **keys;
    long long *sizes;
    int n, cap, stop_at;
} listing;

static int collect(void *ud, const char *key, long long size) {
    listing *l = ud;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->keys = realloc(l->keys, (size_t)l->cap * sizeof *l->keys);
        l->sizes = realloc(l->sizes, (size_t)l->cap * sizeof *l->sizes);
    }
    l->keys[l->n] = strdup(key);
    l->sizes[l->n++] = size;
    return l->stop_at && l->n >= l->stop_at;
}

static void listing_free(listing *l) {
    for (int i = 0; i < l->n; i++) free(l->keys[i]);
    free(l->keys), free(l->sizes);
    memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(void) {
    const char *endpoint = getenv("SESLM_TEST_S3_ENDPOINT");
    if (!endpoint || !endpoint[0]) TEST_SKIP_UNLESS("SESLM_REQUIRE_S3", "SESLM_TEST_S3_ENDPOINT is not set (eval \"$(ci/s3-start.sh)\")");
    setenv("SESLM_S3_ENDPOINT", endpoint, 1);
    setenv("AWS_REGION", "us-east-1", 1);
    const char *ak = getenv("SESLM_TEST_S3_ACCESS_KEY_ID"), *sk = getenv("SESLM_TEST_S3_SECRET_ACCESS_KEY");
    int auth = ak && ak[0] && sk && sk[0];
    setenv("AWS_ACCESS_KEY_ID", auth ? ak : "testing", 1);
    setenv("AWS_SECRET_ACCESS_KEY", auth ? sk : "testing-secret", 1);
    char bucket[64], url[128];
    snprintf(bucket, sizeof bucket, "seslm-client-%ld-%ld", (long)getpid(), (long)time(NULL));
    snprintf(url, sizeof url, "s3://%s/pre/fix/", bucket);

    seslm_s3 s3;
    CHECK_MSG(seslm_s3_open(&s3, url) == SESLM_OK, "%s", seslm_last_error());
    CHECK(!strcmp(s3.prefix, "pre/fix"));
    char key[1024];
    seslm_s3_key(&s3, "a/b.h5", key, sizeof key);
    CHECK(!strcmp(key, "pre/fix/a/b.h5"));

    // a missing bucket: a failure that is not "missing object"
    int missing = -1;
    char *data = NULL;
    size_t len = 0;
    CHECK(seslm_s3_get_mem(&s3, key, 1 << 20, &data, &len, &missing) == SESLM_ERR_IO && missing == 0);
    CHECK_MSG(strstr(seslm_last_error(), "bucket does not exist") != NULL, "%s", seslm_last_error());
    listing l = {0};
    CHECK(seslm_s3_list(&s3, "pre/", collect, &l) == SESLM_ERR_IO && l.n == 0);
    CHECK_MSG(seslm_s3_create_bucket(&s3) == SESLM_OK, "%s", seslm_last_error());

    // put / head / get, memory
    const char msg[] = "hello, fleet\n";
    CHECK_MSG(seslm_s3_put_mem(&s3, key, msg, sizeof msg - 1) == SESLM_OK, "%s", seslm_last_error());
    int exists = 0;
    long long size = -1;
    CHECK(seslm_s3_head(&s3, key, &exists, &size) == SESLM_OK && exists == 1 && size == (long long)sizeof msg - 1);
    CHECK(seslm_s3_get_mem(&s3, key, 1 << 20, &data, &len, &missing) == SESLM_OK && len == sizeof msg - 1 &&
          !memcmp(data, msg, len) && data[len] == 0);
    free(data);
    // a cap smaller than the object: refused, nothing returned
    CHECK(seslm_s3_get_mem(&s3, key, 4, &data, &len, NULL) == SESLM_ERR_IO && data == NULL);

    // put from a file descriptor at an offset (the MD5 covers exactly the bytes sent), get into one
    char tmpl[] = "/tmp/seslm_s3c_XXXXXX";
    int fd = mkstemp(tmpl);
    CHECK(fd >= 0);
    static unsigned char blob[300000];
    for (size_t i = 0; i < sizeof blob; i++) blob[i] = (unsigned char)(i * 2654435761u >> 13);
    CHECK(write(fd, blob, sizeof blob) == (ssize_t)sizeof blob);
    CHECK(lseek(fd, 1000, SEEK_SET) == 1000);
    seslm_s3_key(&s3, "blob.bin", key, sizeof key);
    CHECK_MSG(seslm_s3_put_fd(&s3, key, fd, (long long)sizeof blob - 1000) == SESLM_OK, "%s", seslm_last_error());
    close(fd);
    fd = open(tmpl, O_RDWR | O_TRUNC);
    long long got = 0;
    CHECK(seslm_s3_get_fd(&s3, key, fd, &got, &missing) == SESLM_OK && got == (long long)sizeof blob - 1000);
    unsigned char *back = malloc(sizeof blob);
    CHECK(pread(fd, back, sizeof blob, 0) == (ssize_t)sizeof blob - 1000 && !memcmp(back, blob + 1000, sizeof blob - 1000));
    free(back);
    close(fd);
    unlink(tmpl);

    // awkward keys round-trip through PUT, GET and LIST
    const char *odd[] = {"odd/a b.h5", "odd/x&y.h5", "odd/p+q.h5", "odd/l<t>.h5", "odd/caf\xc3\xa9.h5", "odd/q'uote\".h5"};
    const int n_odd = (int)(sizeof odd / sizeof odd[0]);
    for (int i = 0; i < n_odd; i++) {
        seslm_s3_key(&s3, odd[i], key, sizeof key);
        CHECK_MSG(seslm_s3_put_mem(&s3, key, odd[i], strlen(odd[i])) == SESLM_OK, "%s: %s", odd[i], seslm_last_error());
        CHECK(seslm_s3_get_mem(&s3, key, 1024, &data, &len, NULL) == SESLM_OK && len == strlen(odd[i]) &&
              !memcmp(data, odd[i], len));
        free(data);
    }
    CHECK_MSG(seslm_s3_list(&s3, "pre/fix/odd/", collect, &l) == SESLM_OK, "%s", seslm_last_error());
    CHECK(l.n == n_odd);
    char *want[16];
    for (int i = 0; i < n_odd; i++) {
        seslm_s3_key(&s3, odd[i], key, sizeof key);
        want[i] = strdup(key);
    }
    qsort(want, (size_t)n_odd, sizeof *want, cmp_str); // S3 lists in byte order
    for (int i = 0; i < n_odd && i < l.n; i++) {
        CHECK_MSG(!strcmp(l.keys[i], want[i]), "listed %s, expected %s", l.keys[i], want[i]);
        CHECK(l.sizes[i] == (long long)strlen(want[i]) - (long long)strlen("pre/fix/"));
    }
    for (int i = 0; i < n_odd; i++) free(want[i]);
    listing_free(&l);

    // a prefix lists only its own keys ("pre/fix/o" would also match "odd/"; "pre/fix/odd/" not "blob")
    CHECK(seslm_s3_list(&s3, "pre/fix/a/", collect, &l) == SESLM_OK && l.n == 1 && !strcmp(l.keys[0], "pre/fix/a/b.h5"));
    listing_free(&l);
    CHECK(seslm_s3_list(&s3, "nothing/", collect, &l) == SESLM_OK && l.n == 0);

    // pages: 1001 keys are two ListObjectsV2 pages (1000 a page); all listed, sorted, none twice
    for (int i = 0; i < 1001; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "many/k%05d", i);
        seslm_s3_key(&s3, rel, key, sizeof key);
        if (seslm_s3_put_mem(&s3, key, "", 0) != SESLM_OK) {
            CHECK_MSG(0, "put %s: %s", key, seslm_last_error());
            break;
        }
    }
    CHECK_MSG(seslm_s3_list(&s3, "pre/fix/many/", collect, &l) == SESLM_OK, "%s", seslm_last_error());
    CHECK_MSG(l.n == 1001, "listed %d of 1001", l.n);
    for (int i = 0; i < l.n; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "pre/fix/many/k%05d", i);
        if (strcmp(l.keys[i], rel) != 0) {
            CHECK_MSG(0, "key %d: %s, expected %s", i, l.keys[i], rel);
            break;
        }
    }
    listing_free(&l);
    l.stop_at = 3; // the callback stops the listing
    CHECK(seslm_s3_list(&s3, "pre/fix/many/", collect, &l) == SESLM_OK && l.n == 3);
    listing_free(&l);

    // missing object; delete
    seslm_s3_key(&s3, "no/such.h5", key, sizeof key);
    CHECK(seslm_s3_get_mem(&s3, key, 1024, &data, &len, &missing) == SESLM_ERR_IO && missing == 1);
    CHECK(seslm_s3_head(&s3, key, &exists, &size) == SESLM_OK && exists == 0 && size == -1);
    seslm_s3_key(&s3, "a/b.h5", key, sizeof key);
    CHECK(seslm_s3_delete(&s3, key) == SESLM_OK);
    CHECK(seslm_s3_head(&s3, key, &exists, NULL) == SESLM_OK && exists == 0);
    CHECK(seslm_s3_delete(&s3, key) == SESLM_OK); // already gone: not an error

    // a dead endpoint: a clear error naming it
    setenv("SESLM_S3_ENDPOINT", "http://127.0.0.1:1", 1);
    seslm_s3 dead;
    CHECK(seslm_s3_open(&dead, url) == SESLM_OK);
    CHECK(seslm_s3_list(&dead, "pre/", collect, &l) == SESLM_ERR_IO);
    CHECK_MSG(strstr(seslm_last_error(), "is the endpoint http://127.0.0.1:1 up?") != NULL, "%s", seslm_last_error());
    CHECK(seslm_s3_put_mem(&dead, key, "x", 1) == SESLM_ERR_IO);
    listing_free(&l);
    return test_report("test_s3_client");
}
