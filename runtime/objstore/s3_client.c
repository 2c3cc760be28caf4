/* s3_client.c — requests to an S3-compatible object store (s3_client.h): path-style URLs, AWS SigV4 by
 * libcurl (CURLOPT_AWS_SIGV4), Content-MD5 on uploads, ListObjectsV2 pages parsed from their XML. */
#define _GNU_SOURCE
#include "s3_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_ERR_BODY 4096
#define MAX_LIST_PAGE (16 << 20) // one ListObjectsV2 page (1000 keys) is far smaller

int seslm_s3_is_url(const char *url) { return url && strncmp(url, "s3://", 5) == 0; }

static void trim_slashes(char *s) {
    size_t n = strlen(s);
    while (n && s[n - 1] == '/') s[--n] = 0;
    size_t k = strspn(s, "/");
    if (k) memmove(s, s + k, strlen(s + k) + 1);
}

seslm_status seslm_s3_open(seslm_s3 *s3, const char *url) {
    memset(s3, 0, sizeof *s3);
    if (!seslm_s3_is_url(url)) return seslm_fail(SESLM_ERR_ARG, "s3: '%s' is not an s3://BUCKET/PREFIX URL", url ? url : "");
    const char *b = url + 5, *slash = strchr(b, '/');
    size_t bl = slash ? (size_t)(slash - b) : strlen(b);
    if (bl == 0 || bl >= sizeof s3->bucket) return seslm_fail(SESLM_ERR_ARG, "s3: '%s' names no bucket", url);
    memcpy(s3->bucket, b, bl);
    for (const char *p = s3->bucket; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
            return seslm_fail(SESLM_ERR_ARG, "s3: bucket name '%s' may hold only a-z, 0-9, '-' and '.'", s3->bucket);
    if (slash && snprintf(s3->prefix, sizeof s3->prefix, "%s", slash + 1) >= (int)sizeof s3->prefix)
        return seslm_fail(SESLM_ERR_ARG, "s3: prefix too long in '%s'", url);
    trim_slashes(s3->prefix);
    static const struct {
        const char *var;
        size_t off, cap;
        const char *dflt;
    } E[] = {{"SESLM_S3_ENDPOINT", offsetof(seslm_s3, endpoint), sizeof s3->endpoint, NULL},
             {"AWS_REGION", offsetof(seslm_s3, region), sizeof s3->region, "us-east-1"},
             {"AWS_ACCESS_KEY_ID", offsetof(seslm_s3, access_key), sizeof s3->access_key, NULL},
             {"AWS_SECRET_ACCESS_KEY", offsetof(seslm_s3, secret_key), sizeof s3->secret_key, NULL}};
    for (size_t i = 0; i < sizeof E / sizeof E[0]; i++) {
        const char *v = getenv(E[i].var);
        if (!v || !v[0]) v = E[i].dflt;
        if (!v) return seslm_fail(SESLM_ERR_ARG, "s3: %s is not set (needed for %s)", E[i].var, url);
        if (strlen(v) >= E[i].cap) return seslm_fail(SESLM_ERR_ARG, "s3: %s is too long", E[i].var);
        strcpy((char *)s3 + E[i].off, v);
    }
    if (strncmp(s3->endpoint, "http://", 7) != 0 && strncmp(s3->endpoint, "https://", 8) != 0)
        return seslm_fail(SESLM_ERR_ARG, "s3: SESLM_S3_ENDPOINT must start with http:// or https:// (got '%s')", s3->endpoint);
    size_t n = strlen(s3->endpoint);
    while (n && s3->endpoint[n - 1] == '/') s3->endpoint[--n] = 0;
    // ':' would end the user name in CURLOPT_USERPWD; AWS key ids never hold one
    if (strchr(s3->access_key, ':')) return seslm_fail(SESLM_ERR_ARG, "s3: AWS_ACCESS_KEY_ID holds a ':'");
    return SESLM_OK;
}

void seslm_s3_key(const seslm_s3 *s3, const char *rel, char *out, size_t cap) {
    snprintf(out, cap, "%s%s%s", s3->prefix, s3->prefix[0] ? "/" : "", rel);
}

/* ---- one HTTP request ---------------------------------------------------------------------------- */

typedef struct {
    // request body: a memory buffer or a file descriptor (neither: empty)
    const char *up;
    size_t up_len, up_off;
    int up_fd;
    // response body of a 2xx: into a memory buffer (grown) or a file descriptor; errors go to err
    char *down;
    size_t down_len, down_cap_max;
    int down_fd, want_mem, write_failed;
    char err[MAX_ERR_BODY + 1];
    size_t err_len;
    char md5_b64[32]; // Content-MD5 of the upload ("" none)
    long long content_length; // HEAD: the object's length (-1 unknown)
    CURL *curl;
} xfer;

static void xfer_init(xfer *x) {
    memset(x, 0, sizeof *x);
    x->up_fd = x->down_fd = -1;
    x->content_length = -1;
}

static size_t on_read(char *buf, size_t size, size_t nmemb, void *ud) {
    xfer *x = ud;
    size_t want = size * nmemb;
    if (x->up_fd >= 0) {
        ssize_t n;
        do n = read(x->up_fd, buf, want);
        while (n < 0 && errno == EINTR);
        return n < 0 ? CURL_READFUNC_ABORT : (size_t)n;
    }
    size_t left = x->up_len - x->up_off, n = left < want ? left : want;
    memcpy(buf, x->up + x->up_off, n);
    x->up_off += n;
    return n;
}

static size_t on_write(char *buf, size_t size, size_t nmemb, void *ud) {
    xfer *x = ud;
    size_t n = size * nmemb;
    long code = 0;
    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &code);
    if (code < 200 || code >= 300) { // an S3 error document: keep its start for the message
        size_t k = MAX_ERR_BODY - x->err_len < n ? MAX_ERR_BODY - x->err_len : n;
        memcpy(x->err + x->err_len, buf, k);
        x->err_len += k;
        x->err[x->err_len] = 0;
        return n;
    }
    if (x->want_mem) {
        if (x->down_len + n > x->down_cap_max) {
            x->write_failed = 1;
            return 0;
        }
        char *d = realloc(x->down, x->down_len + n + 1);
        if (!d) {
            x->write_failed = 1;
            return 0;
        }
        x->down = d;
        memcpy(x->down + x->down_len, buf, n);
        x->down_len += n;
        x->down[x->down_len] = 0;
        return n;
    }
    for (size_t off = 0; x->down_fd >= 0 && off < n;) {
        ssize_t w = write(x->down_fd, buf + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            x->write_failed = 1;
            return 0;
        }
        off += (size_t)w;
    }
    x->down_len += n;
    return n;
}

/* Percent-encodes s; keep: characters besides the unreserved ones left as they are ("/" in a key path:
 * SigV4 signs the path as sent). */
static void encode(const char *s, const char *keep, char *out, size_t cap) {
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && o + 4 < cap; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("-._~", *p) ||
            (keep && strchr(keep, *p)))
            out[o++] = (char)*p;
        else
            o += (size_t)snprintf(out + o, cap - o, "%%%02X", *p);
    }
    out[o] = 0;
}

/* The text of <tag>...</tag> from body at or after *from (NULL: none); *from moves past it. */
static const char *xml_text(const char *body, const char *tag, char *out, size_t cap, const char **from) {
    char open[64], close[64];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *a = strstr(from && *from ? *from : body, open), *b = a ? strstr(a, close) : NULL;
    if (!a || !b) return NULL;
    a += strlen(open);
    // XML entities (a key may hold & < > ' "); numeric ones as bytes below 256 only
    size_t o = 0;
    for (const char *p = a; p < b && o + 1 < cap;) {
        static const struct {
            const char *ent;
            char c;
        } E[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&apos;", '\''}, {"&quot;", '"'}};
        int done = 0;
        for (size_t i = 0; *p == '&' && i < sizeof E / sizeof E[0]; i++)
            if (!strncmp(p, E[i].ent, strlen(E[i].ent))) {
                out[o++] = E[i].c, p += strlen(E[i].ent), done = 1;
                break;
            }
        if (!done && p[0] == '&' && p[1] == '#') {
            char *end = NULL;
            long v = p[2] == 'x' ? strtol(p + 3, &end, 16) : strtol(p + 2, &end, 10);
            if (end && *end == ';' && v > 0 && v < 256) out[o++] = (char)v, p = end + 1, done = 1;
        }
        if (!done) out[o++] = *p++;
    }
    out[o] = 0;
    if (from) *from = b + strlen(close);
    return out;
}

static void error_code(const char *body, char *code, size_t cap) {
    code[0] = 0;
    if (body) xml_text(body, "Code", code, cap, NULL);
}

static size_t on_header(char *buf, size_t size, size_t nmemb, void *ud) {
    xfer *x = ud;
    size_t n = size * nmemb;
    if (n > 15 && !strncasecmp(buf, "Content-Length:", 15)) x->content_length = strtoll(buf + 15, NULL, 10);
    return n;
}

/* Performs METHOD on KEY (NULL: the bucket itself) with an optional query (already encoded, its
 * parameters in sorted order as SigV4 signs them). *http gets the status (0: no response). A transport
 * failure (refused connection, timeout, DNS) is reported here; HTTP statuses are for the caller. */
static seslm_status s3_request(const seslm_s3 *s3, const char *method, const char *key, const char *query, xfer *x,
                               long long up_size, long *http) {
    *http = 0;
    char enc[3 * 1024 + 1] = "", sigv4[128], userpwd[520], md5h[64];
    if (key) encode(key, "/", enc, sizeof enc);
    size_t ul = strlen(s3->endpoint) + strlen(s3->bucket) + strlen(enc) + (query ? strlen(query) : 0) + 8;
    char *url = malloc(ul);
    if (!url) return seslm_fail(SESLM_ERR_NOMEM, "s3: out of memory");
    snprintf(url, ul, "%s/%s%s%s%s%s", s3->endpoint, s3->bucket, key ? "/" : "", enc, query ? "?" : "", query ? query : "");
    snprintf(sigv4, sizeof sigv4, "aws:amz:%s:s3", s3->region);
    snprintf(userpwd, sizeof userpwd, "%s:%s", s3->access_key, s3->secret_key);
    CURL *c = curl_easy_init();
    if (!c) {
        free(url);
        return seslm_fail(SESLM_ERR_NOMEM, "s3: curl_easy_init failed");
    }
    x->curl = c;
    char cerr[CURL_ERROR_SIZE] = "";
    // the body is not hashed into the signature (S3 accepts UNSIGNED-PAYLOAD); uploads carry their MD5,
    // which the store checks, and readers check content hashes of their own
    struct curl_slist *h = curl_slist_append(NULL, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    if (h && x->md5_b64[0]) {
        snprintf(md5h, sizeof md5h, "Content-MD5: %s", x->md5_b64);
        struct curl_slist *h2 = curl_slist_append(h, md5h);
        if (h2) h = h2;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_AWS_SIGV4, sigv4);
    curl_easy_setopt(c, CURLOPT_USERPWD, userpwd);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    // a stalled transfer (< 1 KiB/s for 60 s) fails instead of hanging
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    if (!strcmp(method, "PUT")) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, x);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)up_size);
    } else if (!strcmp(method, "HEAD")) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (!strcmp(method, "DELETE")) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
    }
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, http);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    x->curl = NULL;
    seslm_status s = SESLM_OK;
    if (x->write_failed)
        s = seslm_fail(SESLM_ERR_IO, "s3: %s %s: cannot store the response (disk full or too large)", method, url);
    else if (rc != CURLE_OK)
        s = seslm_fail(SESLM_ERR_IO, "s3: %s %s failed: %s (is the endpoint %s up?)", method, url,
                       cerr[0] ? cerr : curl_easy_strerror(rc), s3->endpoint);
    free(url);
    return s;
}

/* The message for an HTTP status that is not 2xx. */
static seslm_status http_fail(const seslm_s3 *s3, const char *method, const char *key, long http, const xfer *x) {
    char code[128];
    error_code(x->err, code, sizeof code);
    const char *hint = http == 403                                    ? " (access denied: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and AWS_REGION)"
                       : http == 404 && !strcmp(code, "NoSuchBucket") ? " (the bucket does not exist)"
                       : http == 404 && !strcmp(code, "NoSuchKey")    ? " (the object is missing)"
                       : http == 404                                  ? " (not found)"
                       : !strcmp(code, "BadDigest") || !strcmp(code, "InvalidDigest") ? " (the bytes were damaged on the way)"
                                                                      : "";
    return seslm_fail(SESLM_ERR_IO, "s3: %s s3://%s/%s: HTTP %ld%s%s%s", method, s3->bucket, key ? key : "", http,
                      code[0] ? " " : "", code, hint);
}

seslm_status seslm_s3_create_bucket(const seslm_s3 *s3) {
    xfer x;
    xfer_init(&x);
    long http;
    seslm_status s = s3_request(s3, "PUT", NULL, NULL, &x, 0, &http);
    if (s != SESLM_OK) return s;
    char code[128];
    error_code(x.err, code, sizeof code);
    if ((http >= 200 && http < 300) || (http == 409 && !strcmp(code, "BucketAlreadyOwnedByYou"))) return SESLM_OK;
    return http_fail(s3, "PUT bucket", NULL, http, &x);
}

seslm_status seslm_s3_head(const seslm_s3 *s3, const char *key, int *exists, long long *size) {
    xfer x;
    xfer_init(&x);
    long http;
    seslm_status s = s3_request(s3, "HEAD", key, NULL, &x, 0, &http);
    if (s != SESLM_OK) return s;
    *exists = http >= 200 && http < 300;
    if (size) *size = *exists ? x.content_length : -1;
    if (*exists || http == 404) return SESLM_OK;
    return http_fail(s3, "HEAD", key, http, &x);
}

/* Base64 of the MD5 of the bytes (fd from its offset: read with pread, the offset is left alone). */
static seslm_status md5_b64(int fd, long long size, const void *mem, size_t len, char out[32]) {
    unsigned char d[16];
    unsigned int dl = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1;
    if (ok && fd >= 0) {
        off_t at = lseek(fd, 0, SEEK_CUR);
        char buf[1 << 16];
        ok = at >= 0;
        for (long long done = 0; ok && done < size;) {
            size_t want = size - done < (long long)sizeof buf ? (size_t)(size - done) : sizeof buf;
            ssize_t n = pread(fd, buf, want, at + done);
            if (n < 0 && errno == EINTR) continue;
            ok = n > 0 && EVP_DigestUpdate(ctx, buf, (size_t)n) == 1;
            done += n > 0 ? n : 0;
        }
    } else if (ok) {
        ok = EVP_DigestUpdate(ctx, mem, len) == 1;
    }
    ok = ok && EVP_DigestFinal_ex(ctx, d, &dl) == 1 && dl == 16;
    EVP_MD_CTX_free(ctx);
    if (!ok) return seslm_fail(SESLM_ERR_IO, "s3: cannot read the bytes to upload (MD5)");
    EVP_EncodeBlock((unsigned char *)out, d, 16); // 24 characters and a NUL
    return SESLM_OK;
}

seslm_status seslm_s3_put_fd(const seslm_s3 *s3, const char *key, int fd, long long size) {
    xfer x;
    xfer_init(&x);
    x.up_fd = fd;
    seslm_status s = md5_b64(fd, size, NULL, 0, x.md5_b64);
    long http = 0;
    if (s == SESLM_OK) s = s3_request(s3, "PUT", key, NULL, &x, size, &http);
    if (s == SESLM_OK && (http < 200 || http >= 300)) s = http_fail(s3, "PUT", key, http, &x);
    return s;
}

seslm_status seslm_s3_put_mem(const seslm_s3 *s3, const char *key, const void *data, size_t len) {
    xfer x;
    xfer_init(&x);
    x.up = data, x.up_len = len;
    seslm_status s = md5_b64(-1, 0, data, len, x.md5_b64);
    long http = 0;
    if (s == SESLM_OK) s = s3_request(s3, "PUT", key, NULL, &x, (long long)len, &http);
    if (s == SESLM_OK && (http < 200 || http >= 300)) s = http_fail(s3, "PUT", key, http, &x);
    return s;
}

/* After a GET: the status for http (missing set on 404 NoSuchKey). */
static seslm_status get_result(const seslm_s3 *s3, const char *key, long http, const xfer *x, int *missing) {
    if (http >= 200 && http < 300) return SESLM_OK;
    char code[128];
    error_code(x->err, code, sizeof code);
    if (missing) *missing = http == 404 && strcmp(code, "NoSuchBucket") != 0;
    return http_fail(s3, "GET", key, http, x);
}

seslm_status seslm_s3_get_fd(const seslm_s3 *s3, const char *key, int fd, long long *got, int *missing) {
    if (missing) *missing = 0;
    xfer x;
    xfer_init(&x);
    x.down_fd = fd;
    long http;
    seslm_status s = s3_request(s3, "GET", key, NULL, &x, 0, &http);
    if (got) *got = (long long)x.down_len;
    return s != SESLM_OK ? s : get_result(s3, key, http, &x, missing);
}

seslm_status seslm_s3_get_mem(const seslm_s3 *s3, const char *key, size_t max, char **data, size_t *len,
                              int *missing) {
    if (missing) *missing = 0;
    *data = NULL, *len = 0;
    xfer x;
    xfer_init(&x);
    x.want_mem = 1, x.down_cap_max = max;
    long http;
    seslm_status s = s3_request(s3, "GET", key, NULL, &x, 0, &http);
    if (s == SESLM_OK) s = get_result(s3, key, http, &x, missing);
    if (s == SESLM_OK && !x.down && !(x.down = calloc(1, 1))) s = seslm_fail(SESLM_ERR_NOMEM, "s3: out of memory");
    if (s != SESLM_OK) {
        free(x.down);
        return s;
    }
    *data = x.down, *len = x.down_len;
    return SESLM_OK;
}

seslm_status seslm_s3_delete(const seslm_s3 *s3, const char *key) {
    xfer x;
    xfer_init(&x);
    long http;
    seslm_status s = s3_request(s3, "DELETE", key, NULL, &x, 0, &http);
    if (s == SESLM_OK && (http < 200 || http >= 300) && http != 404) s = http_fail(s3, "DELETE", key, http, &x);
    return s;
}

seslm_status seslm_s3_list(const seslm_s3 *s3, const char *key_prefix, seslm_s3_list_fn fn, void *ud) {
    char token[2048] = "", enc_prefix[3 * 1024 + 1], enc_token[3 * 2048 + 1], query[3 * 1024 + 3 * 2048 + 64];
    encode(key_prefix ? key_prefix : "", NULL, enc_prefix, sizeof enc_prefix);
    for (int page = 0;; page++) {
        // parameters in sorted order (continuation-token < list-type < prefix), encoded as SigV4 signs them
        if (token[0]) {
            encode(token, NULL, enc_token, sizeof enc_token);
            snprintf(query, sizeof query, "continuation-token=%s&list-type=2&prefix=%s", enc_token, enc_prefix);
        } else {
            snprintf(query, sizeof query, "list-type=2&prefix=%s", enc_prefix);
        }
        xfer x;
        xfer_init(&x);
        x.want_mem = 1, x.down_cap_max = MAX_LIST_PAGE;
        long http;
        seslm_status s = s3_request(s3, "GET", NULL, query, &x, 0, &http);
        if (s == SESLM_OK && (http < 200 || http >= 300)) s = http_fail(s3, "LIST", key_prefix, http, &x);
        if (s != SESLM_OK) {
            free(x.down);
            return s;
        }
        const char *body = x.down ? x.down : "", *at = body;
        char trunc[16] = "";
        xml_text(body, "IsTruncated", trunc, sizeof trunc, NULL);
        int more = !strcmp(trunc, "true");
        if (more && !xml_text(body, "NextContinuationToken", token, sizeof token, NULL)) {
            free(x.down);
            return seslm_fail(SESLM_ERR_FORMAT, "s3: LIST s3://%s/%s: a truncated page without a continuation token",
                              s3->bucket, key_prefix ? key_prefix : "");
        }
        char entry[8192], key[2048], size[32];
        int stop = 0;
        // each <Contents> entry cut out raw, so its <Key>'s entities are decoded exactly once
        while (!stop) {
            const char *c0 = strstr(at, "<Contents>"), *c1 = c0 ? strstr(c0, "</Contents>") : NULL;
            if (!c0 || !c1) break;
            size_t n = (size_t)(c1 - c0);
            if (n >= sizeof entry) n = sizeof entry - 1;
            memcpy(entry, c0, n);
            entry[n] = 0;
            at = c1 + strlen("</Contents>");
            if (!xml_text(entry, "Key", key, sizeof key, NULL)) continue;
            long long sz = xml_text(entry, "Size", size, sizeof size, NULL) ? strtoll(size, NULL, 10) : -1;
            stop = fn(ud, key, sz) != 0;
        }
        free(x.down);
        if (stop || !more) return SESLM_OK;
        if (page > 1000000) return seslm_fail(SESLM_ERR_FORMAT, "s3: LIST never ends");
    }
}
