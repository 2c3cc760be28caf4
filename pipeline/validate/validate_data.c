/* validate_data.c — reading the evaluation files of the sandbox (validate_internal.h). */
#include "validate_internal.h"

#include "util.h"

#include <stdlib.h>
#include <string.h>

seslm_status vtable_read(vtable *t, const char *path, int cols) {
    memset(t, 0, sizeof *t);
    t->cols = cols;
    size_t len = 0;
    seslm_status st = util_read_file(path, &t->buf, &len, (size_t)256 << 20, NULL);
    if (st != SESLM_OK) return st;
    int cap = 0, line = 0;
    char *p = t->buf, *end = t->buf + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        line++;
        if (e > p && e[-1] == '\r') e[-1] = '\0', e--;
        *e = '\0';
        if (e > p) {
            if (t->n == cap) {
                cap = cap ? 2 * cap : 256;
                char **nf = realloc(t->f, (size_t)cap * cols * sizeof *nf);
                if (!nf) {
                    vtable_free(t);
                    return seslm_fail(SESLM_ERR_NOMEM, "%s: out of memory", path);
                }
                t->f = nf;
            }
            char **row = t->f + (size_t)t->n * cols;
            row[0] = p;
            int k = 1;
            for (char *q = p; *q; q++)
                if (*q == '\t' && cols > 1) {
                    if (k == cols) {
                        k++;
                        break;
                    }
                    *q = '\0';
                    row[k++] = q + 1;
                }
            if (k != cols) {
                vtable_free(t);
                return seslm_fail(SESLM_ERR_FORMAT, "%s:%d: expected %d tab-separated field%s, got %d", path, line,
                                  cols, cols > 1 ? "s" : "", k);
            }
            for (int i = 0; i < cols; i++)
                if (!row[i][0]) {
                    vtable_free(t);
                    return seslm_fail(SESLM_ERR_FORMAT, "%s:%d: field %d is empty", path, line, i + 1);
                }
            t->n++;
        }
        p = e + 1;
        if (!nl) break;
    }
    if (t->n == 0) {
        vtable_free(t);
        return seslm_fail(SESLM_ERR_FORMAT, "%s: no rows", path);
    }
    return SESLM_OK;
}

void vtable_free(vtable *t) {
    free(t->buf);
    free(t->f);
    memset(t, 0, sizeof *t);
}

const char *vtable_get(const vtable *t, int row, int col) { return t->f[(size_t)row * t->cols + col]; }

int validate_pick(int n, int m, int *idx) {
    if (m > n) m = n;
    for (int i = 0; i < m; i++) idx[i] = (int)((long long)i * n / m);
    return m;
}
