/* error.c — status strings and the thread-local "last error" message. */
#include "seslm.h"

#include <stdarg.h>
#include <stdio.h>

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
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_last_error, sizeof g_last_error, fmt, ap);
    va_end(ap);
    return s;
}
