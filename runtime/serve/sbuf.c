/* sbuf.c — the server's small helpers: a growing string buffer with JSON / Prometheus escaping, clocks. */
#include "serve_internal.h"
#include "util.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t serve_now_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t serve_now_real_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int serve_cond_init_mono(pthread_cond_t *cv) {
    pthread_condattr_t a;
    if (pthread_condattr_init(&a) != 0) return -1;
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
    return rc;
}

void serve_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ns) {
    struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000), .tv_nsec = (long)(deadline_ns % 1000000000)};
    pthread_cond_timedwait(cv, mu, &ts);
}

static int sb_reserve(sbuf *b, size_t extra) {
    if (b->oom) return 0;
    if (b->n + extra + 1 <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return 0;
    }
    b->p = p;
    b->cap = cap;
    return 1;
}

void sb_putn(sbuf *b, const char *s, size_t n) {
    if (!sb_reserve(b, n)) return;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    if ((size_t)k < sizeof tmp) {
        sb_putn(b, tmp, (size_t)k);
        return;
    }
    if (!sb_reserve(b, (size_t)k)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

// Length of the valid UTF-8 sequence at p (1..4), or 0 for an invalid byte (overlongs and surrogates too).
static int utf8_seq(const unsigned char *p) {
    if (p[0] < 0x80) return 1;
    int n = p[0] >= 0xc2 && p[0] <= 0xdf ? 2 : p[0] >= 0xe0 && p[0] <= 0xef ? 3 : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : 0;
    for (int i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    if (n == 3 && ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0))) return 0;
    if (n == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))) return 0;
    return n;
}

// Appends s with invalid UTF-8 bytes replaced by U+FFFD; esc(b, c) may write an escape for an ASCII byte
static void put_utf8(sbuf *b, const char *s, int (*esc)(sbuf *, unsigned char)) {
    for (const unsigned char *c = (const unsigned char *)s; *c;) {
        int n = utf8_seq(c);
        if (n == 0) {
            sb_putn(b, "\xef\xbf\xbd", 3);
            c++;
        } else if (n > 1 || !esc(b, *c)) {
            sb_putn(b, (const char *)c, (size_t)n);
            c += n;
        } else {
            c++;
        }
    }
}

static int json_esc(sbuf *b, unsigned char c) {
    switch (c) {
    case '"': sb_putn(b, "\\\"", 2); return 1;
    case '\\': sb_putn(b, "\\\\", 2); return 1;
    case '\n': sb_putn(b, "\\n", 2); return 1;
    case '\r': sb_putn(b, "\\r", 2); return 1;
    case '\t': sb_putn(b, "\\t", 2); return 1;
    default:
        if (c >= 0x20 && c != 0x7f) return 0;
        sb_printf(b, "\\u%04x", c);
        return 1;
    }
}

static int label_esc(sbuf *b, unsigned char c) {
    if (c == '\\') sb_putn(b, "\\\\", 2);
    else if (c == '"') sb_putn(b, "\\\"", 2);
    else if (c == '\n') sb_putn(b, "\\n", 2);
    else return 0;
    return 1;
}

void sb_json_str(sbuf *b, const char *s) {
    sb_putn(b, "\"", 1);
    put_utf8(b, s, json_esc);
    sb_putn(b, "\"", 1);
}

void sb_label_value(sbuf *b, const char *s) { put_utf8(b, s, label_esc); }

void sb_float(sbuf *b, float v) {
    if (!isfinite(v)) {
        sb_putn(b, "null", 4);
        return;
    }
    char tmp[32];
    int k = snprintf(tmp, sizeof tmp, "%.9g", (double)v);
    if (k > 0) sb_putn(b, tmp, (size_t)k);
}

int sb_error_json(sbuf *out, int code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sb_puts(out, "{\"error\":");
    sb_json_str(out, msg);
    sb_puts(out, "}\n");
    return code;
}

int sb_parse_json(const char *body, size_t len, cJSON **root_out, sbuf *out) {
    *root_out = NULL;
    char why[200];
    if (util_json_strict(body, len, 1, why, sizeof why)) return sb_error_json(out, 400, "%s", why);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!root) return sb_error_json(out, 400, "invalid JSON near byte %zu", end && end >= body ? (size_t)(end - body) : 0);
    for (const char *p = end; p && p < body + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return sb_error_json(out, 400, "invalid JSON: unexpected data after the value at byte %zu", (size_t)(p - body));
        }
    *root_out = root;
    return 0;
}
