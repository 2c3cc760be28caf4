/* test_store_s3.c — the S3 artifact store (pipeline/registry/store_s3.c) against a real S3-compatible server
 * (ci/s3-start.sh starts moto's S3 emulator and exports SESLM_TEST_S3_ENDPOINT; skipped when unset), in
 * a fresh bucket per run: put; a second put uploads nothing; get gives the directory back byte for byte
 * with the same content hash; a model whose manifest is missing (an interrupted upload) is absent and
 * re-uploaded by the next put; a tampered object (same size, or another size) and a missing object are
 * refused on get with nothing left behind; an unknown model, a missing bucket and a dead endpoint give
 * clear errors; with the server's credentials (SESLM_TEST_S3_ACCESS_KEY_ID / _SECRET_ACCESS_KEY) every
 * request's signature is checked by the server and a wrong secret key gives a clear 403. Objects are
 * tampered with through libcurl directly, outside the store's code. */
#define _GNU_SOURCE
#include "store.h"
#include "store_s3.h"
#include "test.h"

#include <curl/curl.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void write_file(const char *path, const char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(data, 1, n, f);
    fclose(f);
}

static int same_file(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb) same = 0;
        if (ca == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

static size_t discard(char *p, size_t s, size_t n, void *u) {
    (void)p, (void)u;
    return s * n;
}

typedef struct {
    const char *d;
    size_t n, off;
} rd;

static size_t reader(char *buf, size_t s, size_t n, void *u) {
    rd *r = u;
    size_t k = r->n - r->off < s * n ? r->n - r->off : s * n;
    memcpy(buf, r->d + r->off, k);
    r->off += k;
    return k;
}

/* A raw request past the store's code, signed by libcurl as the test's user: PUT data or DELETE. */
static long raw(const char *method, const char *endpoint, const char *bucket, const char *key, const char *data, size_t n) {
    char url[2048];
    snprintf(url, sizeof url, "%s/%s/%s", endpoint, bucket, key);
    CURL *c = curl_easy_init();
    rd r = {data, n, 0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:s3");
    char up[512];
    snprintf(up, sizeof up, "%s:%s", getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"));
    curl_easy_setopt(c, CURLOPT_USERPWD, up);
    struct curl_slist *h = curl_slist_append(NULL, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (!strcmp(method, "PUT")) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, reader);
        curl_easy_setopt(c, CURLOPT_READDATA, &r);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)n);
    } else {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    long http = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    return http;
}

static int dir_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* No .seslm-fetch.* temporary directory left in dir. */
static int no_temp_left(const char *dir) {
    DIR *d = opendir(dir);
    int clean = 1;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) clean &= strncmp(e->d_name, ".seslm-fetch.", 13) != 0;
    if (d) closedir(d);
    return clean;
}

int main(void) {
    const char *endpoint = getenv("SESLM_TEST_S3_ENDPOINT");
    if (!endpoint || !endpoint[0]) TEST_SKIP_UNLESS("SESLM_REQUIRE_S3", "SESLM_TEST_S3_ENDPOINT is not set (eval \"$(ci/s3-start.sh)\")");
    setenv("SESLM_S3_ENDPOINT", endpoint, 1);
    setenv("AWS_REGION", "us-east-1", 1);
    // ci/s3-start.sh runs moto with request authentication on and an IAM user allowed s3:*, so every
    // request's SigV4 signature is verified by the server; without its keys, signatures go unchecked
    const char *ak = getenv("SESLM_TEST_S3_ACCESS_KEY_ID"), *sk = getenv("SESLM_TEST_S3_SECRET_ACCESS_KEY");
    int auth = ak && ak[0] && sk && sk[0];
    setenv("AWS_ACCESS_KEY_ID", auth ? ak : "testing", 1);
    setenv("AWS_SECRET_ACCESS_KEY", auth ? sk : "testing-secret", 1);
    char secret[256];
    snprintf(secret, sizeof secret, "%s", getenv("AWS_SECRET_ACCESS_KEY"));
    char bucket[64], url[128];
    snprintf(bucket, sizeof bucket, "seslm-test-%ld-%ld", (long)getpid(), (long)time(NULL));
    snprintf(url, sizeof url, "s3://%s/models/v1/", bucket);

    seslm_s3 s3;
    CHECK_MSG(seslm_s3_open(&s3, url) == SESLM_OK, "%s", seslm_last_error());
    CHECK(!strcmp(s3.bucket, bucket) && !strcmp(s3.prefix, "models/v1"));
    CHECK_MSG(seslm_s3_create_bucket(&s3) == SESLM_OK, "%s", seslm_last_error());
    CHECK_MSG(seslm_s3_create_bucket(&s3) == SESLM_OK, "again: %s", seslm_last_error());

    // a model-like directory: a binary file (every byte value, 3 MB), text, a subdirectory
    char tmp[] = "/tmp/seslm_test_s3.XXXXXX";
    CHECK(mkdtemp(tmp) != NULL);
    char src[600], sub[700], p[900];
    snprintf(src, sizeof src, "%s/src", tmp);
    snprintf(sub, sizeof sub, "%s/1_Pooling", src);
    mkdir(src, 0755);
    mkdir(sub, 0755);
    size_t big = 3u << 20;
    char *blob = malloc(big);
    for (size_t i = 0; i < big; i++) blob[i] = (char)((i * 2654435761u) >> 13);
    snprintf(p, sizeof p, "%s/model.safetensors", src);
    write_file(p, blob, big);
    snprintf(p, sizeof p, "%s/config.json", src);
    write_file(p, "{\"hidden_size\": 384}\n", 21);
    snprintf(p, sizeof p, "%s/config.json", sub);
    write_file(p, "{\"pooling_mode_mean_tokens\": true}\n", 35);
    char want[65];
    long long want_bytes = 0;
    CHECK(seslm_store_hash_dir(src, want, &want_bytes) == SESLM_OK);

    // put
    char sha[65] = "", loc[1024] = "";
    long long bytes = 0;
    int existed = -1;
    CHECK_MSG(seslm_s3_put_dir(&s3, src, sha, &bytes, loc, sizeof loc, &existed) == SESLM_OK, "%s", seslm_last_error());
    CHECK(existed == 0 && !strcmp(sha, want) && bytes == want_bytes && bytes == (long long)big + 21 + 35);
    char want_loc[1024];
    snprintf(want_loc, sizeof want_loc, "s3://%s/models/v1/sha256/%s", bucket, want);
    CHECK_MSG(!strcmp(loc, want_loc), "%s", loc);
    char back_url[512], back_sha[65];
    CHECK(seslm_s3_split_location(loc, back_url, sizeof back_url, back_sha) == SESLM_OK);
    CHECK(!strcmp(back_sha, want));
    snprintf(p, sizeof p, "s3://%s/models/v1", bucket);
    CHECK(!strcmp(back_url, p));
    CHECK(seslm_s3_split_location("/runs/store/sha256/abc", back_url, sizeof back_url, back_sha) == SESLM_ERR_ARG);

    // a second put is idempotent: the manifest exists, nothing is uploaded (a deleted data object
    // would otherwise be restored: it stays missing, proving no upload happened)
    char key[900];
    snprintf(key, sizeof key, "models/v1/sha256/%s/config.json", want);
    CHECK(raw("DELETE", endpoint, bucket, key, NULL, 0) == 204);
    CHECK(seslm_s3_put_dir(&s3, src, sha, &bytes, loc, sizeof loc, &existed) == SESLM_OK);
    CHECK(existed == 1 && !strcmp(sha, want));
    // a missing object is refused on get, nothing left behind
    char out[700];
    snprintf(out, sizeof out, "%s/missing", tmp);
    CHECK(seslm_s3_get_dir(&s3, want, out) == SESLM_ERR_IO);
    CHECK_MSG(strstr(seslm_last_error(), "404") != NULL, "%s", seslm_last_error());
    CHECK(!dir_exists(out) && no_temp_left(tmp));
    CHECK(raw("PUT", endpoint, bucket, key, "{\"hidden_size\": 384}\n", 21) == 200); // restore it

    // get: byte for byte equal, same content hash
    snprintf(out, sizeof out, "%s/got", tmp);
    CHECK_MSG(seslm_s3_get_dir(&s3, want, out) == SESLM_OK, "%s", seslm_last_error());
    char got[65] = "";
    CHECK(seslm_store_hash_dir(out, got, NULL) == SESLM_OK && !strcmp(got, want));
    const char *rels[] = {"model.safetensors", "config.json", "1_Pooling/config.json"};
    for (int i = 0; i < 3; i++) {
        char a[1000], b[1000];
        snprintf(a, sizeof a, "%s/%s", src, rels[i]);
        snprintf(b, sizeof b, "%s/%s", out, rels[i]);
        CHECK_MSG(same_file(a, b), "%s differs", rels[i]);
    }
    snprintf(p, sizeof p, "%s/models/v1/sha256/%s.manifest.json", out, want);
    CHECK(access(p, F_OK) != 0); // the manifest is not part of the model directory
    // an existing output directory is refused
    CHECK(seslm_s3_get_dir(&s3, want, out) == SESLM_ERR_ARG);

    // an upload interrupted before its manifest (objects there, manifest not): the model is absent to
    // readers, and the next put uploads it again (not "existed") and completes it
    snprintf(key, sizeof key, "models/v1/sha256/%s.manifest.json", want);
    CHECK(raw("DELETE", endpoint, bucket, key, NULL, 0) == 204);
    snprintf(out, sizeof out, "%s/half", tmp);
    CHECK(seslm_s3_get_dir(&s3, want, out) == SESLM_ERR_IO && !dir_exists(out));
    CHECK_MSG(strstr(seslm_last_error(), "not in the store") != NULL, "%s", seslm_last_error());
    CHECK(seslm_s3_put_dir(&s3, src, sha, &bytes, loc, sizeof loc, &existed) == SESLM_OK && existed == 0);
    CHECK_MSG(seslm_s3_get_dir(&s3, want, out) == SESLM_OK, "%s", seslm_last_error());

    // tampered: one byte changed (same size: only the content hash can see it)
    blob[1000] ^= 1;
    snprintf(key, sizeof key, "models/v1/sha256/%s/model.safetensors", want);
    CHECK(raw("PUT", endpoint, bucket, key, blob, big) == 200);
    snprintf(out, sizeof out, "%s/tampered", tmp);
    CHECK(seslm_s3_get_dir(&s3, want, out) == SESLM_ERR_FORMAT);
    CHECK_MSG(strstr(seslm_last_error(), "tampered") != NULL, "%s", seslm_last_error());
    CHECK(!dir_exists(out) && no_temp_left(tmp));
    // tampered: truncated (the size in the manifest disagrees)
    CHECK(raw("PUT", endpoint, bucket, key, blob, big - 7) == 200);
    CHECK(seslm_s3_get_dir(&s3, want, out) == SESLM_ERR_FORMAT);
    CHECK_MSG(strstr(seslm_last_error(), "manifest says") != NULL, "%s", seslm_last_error());
    CHECK(!dir_exists(out) && no_temp_left(tmp));

    // unknown model / bad hash / missing bucket
    const char *other = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    CHECK(seslm_s3_get_dir(&s3, other, out) == SESLM_ERR_IO);
    CHECK_MSG(strstr(seslm_last_error(), "not in the store") != NULL, "%s", seslm_last_error());
    CHECK(seslm_s3_get_dir(&s3, "nothex", out) == SESLM_ERR_ARG);
    seslm_s3 nob;
    snprintf(p, sizeof p, "s3://%s-absent/x", bucket);
    CHECK(seslm_s3_open(&nob, p) == SESLM_OK);
    CHECK(seslm_s3_get_dir(&nob, want, out) == SESLM_ERR_IO);
    CHECK_MSG(strstr(seslm_last_error(), "NoSuchBucket") != NULL, "%s", seslm_last_error());
    CHECK(seslm_s3_put_dir(&nob, src, sha, &bytes, loc, sizeof loc, &existed) == SESLM_ERR_IO);
    CHECK_MSG(strstr(seslm_last_error(), "404") != NULL, "%s", seslm_last_error());

    // bad URLs and settings
    CHECK(seslm_s3_open(&nob, "s3://") == SESLM_ERR_ARG);
    CHECK(seslm_s3_open(&nob, "s3://Bad_Bucket/x") == SESLM_ERR_ARG);
    CHECK(seslm_s3_open(&nob, "/local/dir") == SESLM_ERR_ARG);
    unsetenv("AWS_SECRET_ACCESS_KEY");
    CHECK(seslm_s3_open(&nob, url) == SESLM_ERR_ARG);
    CHECK_MSG(strstr(seslm_last_error(), "AWS_SECRET_ACCESS_KEY") != NULL, "%s", seslm_last_error());
    setenv("AWS_SECRET_ACCESS_KEY", secret, 1);

    // a wrong secret key: the server refuses the signature (403) and the message says what to check
    if (auth) {
        setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret", 1);
        seslm_s3 wrong;
        CHECK(seslm_s3_open(&wrong, url) == SESLM_OK);
        snprintf(out, sizeof out, "%s/wrongkey", tmp);
        CHECK(seslm_s3_get_dir(&wrong, want, out) == SESLM_ERR_IO && !dir_exists(out) && no_temp_left(tmp));
        CHECK_MSG(strstr(seslm_last_error(), "HTTP 403") && strstr(seslm_last_error(), "AWS_SECRET_ACCESS_KEY"), "%s",
                  seslm_last_error());
        CHECK(seslm_s3_put_dir(&wrong, src, sha, &bytes, loc, sizeof loc, &existed) == SESLM_ERR_IO);
        CHECK_MSG(strstr(seslm_last_error(), "403") != NULL, "%s", seslm_last_error());
        CHECK(strstr(seslm_last_error(), "not-the-secret") == NULL);
        setenv("AWS_SECRET_ACCESS_KEY", secret, 1);
    } else {
        printf("note: SESLM_TEST_S3_ACCESS_KEY_ID unset: signatures not verified, 403 not tested\n");
    }

    // a dead endpoint: a clear error naming it, quickly (connection refused), secret never shown
    setenv("SESLM_S3_ENDPOINT", "http://127.0.0.1:1", 1);
    seslm_s3 dead;
    CHECK(seslm_s3_open(&dead, url) == SESLM_OK);
    CHECK(seslm_s3_put_dir(&dead, src, sha, &bytes, loc, sizeof loc, &existed) == SESLM_ERR_IO);
    CHECK_MSG(strstr(seslm_last_error(), "is the endpoint http://127.0.0.1:1 up?") != NULL, "%s", seslm_last_error());
    CHECK(strstr(seslm_last_error(), secret) == NULL);
    CHECK(seslm_s3_get_dir(&dead, want, out) == SESLM_ERR_IO && !dir_exists(out));

    free(blob);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    CHECK(system(cmd) == 0);
    return test_report("test_store_s3");
}
