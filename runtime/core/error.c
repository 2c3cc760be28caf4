/* error.c — status strings and the thread-local "last error" message. */
#include "seslm.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char g_last_error[1024];

const char *seslm_status_str(seslm_status s) {
    switch (s) {
    case SESLM_OK: return "ok";
    case SESLM_ERR_ARG: return "invalid argument";
    case SESLM_ERR_IO: return "i/o error";
    case SESLM_ERR_FORMAT: return "malformed file";
    case SESLM_ERR_SHAPE: return "shape or dtype mismatch";
    case SESLM_ERR_NOMEM: return "out of memory";
    case SESLM_ERR_UTF8: return "invalid UTF-8";
    case SESLM_ERR_LIMIT: return "limit exceeded";
    case SESLM_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

const char *seslm_last_error(void) { return g_last_error; }

seslm_status seslm_fail(seslm_status s, const char *fmt, ...) {
    // callers often wrap the previous message ("...: %s", seslm_last_error()): formatting straight into
    // g_last_error would read the buffer it is writing (undefined; seen as a garbled message), so format
    // beside it and copy
    char buf[sizeof g_last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    memcpy(g_last_error, buf, sizeof buf);
    return s;
}
