/* util.c — see util.h. */
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

seslm_status util_read_file(const char *path, char **out, size_t *len, size_t max_bytes) {
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return seslm_fail(SESLM_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return seslm_fail(SESLM_ERR_IO, "%s: not a regular file", path);
    }
    if ((unsigned long long)sb.st_size > max_bytes) {
        fclose(f);
        return seslm_fail(SESLM_ERR_LIMIT, "%s: %lld bytes exceeds the %zu-byte limit", path, (long long)sb.st_size,
                          max_bytes);
    }
    char *buf = malloc((size_t)sb.st_size + 1);
    if (!buf) {
        fclose(f);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory reading %s", path);
    }
    size_t n = fread(buf, 1, (size_t)sb.st_size, f);
    int err = ferror(f);
    fclose(f);
    if (err || n != (size_t)sb.st_size) {
        free(buf);
        return seslm_fail(SESLM_ERR_IO, "%s: short read", path);
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return SESLM_OK;
}
