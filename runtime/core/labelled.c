/* labelled.c — labelled examples from JSON lines or TSV, checked line by line (labelled.h). */
#include "labelled.h"

#include "util.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- the set --------------------------------------------------------------------------------------

void labelled_free(labelled_set *l) {
    if (!l) return;
    for (int i = 0; i < l->n; i++) free(l->text[i]), free(l->label[i]);
    free(l->text), free(l->label);
    memset(l, 0, sizeof *l);
}

int labelled_add(labelled_set *l, const char *t, size_t tn, const char *lab, size_t ln) {
    if (l->n == l->cap) {
        if (l->cap > INT_MAX / 2) return 0;
        const int c = l->cap ? 2 * l->cap : 256;
        char **a = realloc(l->text, (size_t)c * sizeof *a);
        if (!a) return 0;
        l->text = a;
        char **b = realloc(l->label, (size_t)c * sizeof *b);
        if (!b) return 0;
        l->label = b, l->cap = c;
    }
    char *ts = malloc(tn + 1), *ls = malloc(ln + 1);
    if (!ts || !ls) {
        free(ts), free(ls);
        return 0;
    }
    memcpy(ts, t, tn), ts[tn] = 0;
    memcpy(ls, lab, ln), ls[ln] = 0;
    l->text[l->n] = ts, l->label[l->n] = ls;
    l->n++;
    return 1;
}

// ---- the label rule (the intent head's: runtime/assist/intent.c calls it) ------------------------

seslm_status labelled_label_check(const char *s, size_t n) {
    if (n == 0 || n > LABELLED_MAX_LABEL)
        return seslm_fail(SESLM_ERR_ARG, "intent label must have 1..%d bytes (got %zu)", LABELLED_MAX_LABEL, n);
    if (memchr(s, 0, n) || !util_utf8_valid(s, n)) return seslm_fail(SESLM_ERR_ARG, "intent label is not valid UTF-8");
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] == 0x7f || (p[i] == 0xc2 && i + 1 < n && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f))
            return seslm_fail(SESLM_ERR_ARG, "intent label contains a control character");
    if (isspace(p[0]) || isspace(p[n - 1])) {
        size_t sp = 0;
        while (sp < n && (p[sp] == ' ' || p[sp] == '\t')) sp++;
        return seslm_fail(SESLM_ERR_ARG, "intent label \"%.*s\" starts or ends with white space%s", (int)(n > 64 ? 64 : n), s,
                          sp == n ? " (or is only white space)" : "");
    }
    return SESLM_OK;
}

// ---- one example ----------------------------------------------------------------------------------

/* Checks and appends one example of line `line`. */
static seslm_status add_checked(labelled_set *out, const char *name, int line, const char *t, size_t tn, const char *lab,
                                size_t ln) {
    if (tn == 0) return seslm_fail(SESLM_ERR_FORMAT, "%s:%d: the text is empty", name, line);
    if (!util_utf8_valid(t, tn)) return seslm_fail(SESLM_ERR_UTF8, "%s:%d: the text is not valid UTF-8", name, line);
    if (labelled_label_check(lab, ln) != SESLM_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", seslm_last_error());
        return seslm_fail(SESLM_ERR_FORMAT, "%s:%d: %s", name, line, why);
    }
    if (out->n == INT_MAX) return seslm_fail(SESLM_ERR_LIMIT, "%s: more than %d examples", name, INT_MAX);
    return labelled_add(out, t, tn, lab, ln) ? SESLM_OK : seslm_fail(SESLM_ERR_NOMEM, "%s: out of memory", name);
}

/* One JSON line (NUL-terminated, n bytes): 1 parsed (*st the example's status), 0 not JSON (why says what). The
 * serving node's strictness first: no \u0000 (cJSON would cut the text there), no lone surrogate, no raw control
 * byte, UTF-8 throughout. */
static int json_line(labelled_set *out, const char *name, int line, const char *s, size_t n, seslm_status *st, char *why,
                     size_t cap) {
    if (util_json_strict(s, n, 1, why, cap)) return 0;
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    if (!o) {
        snprintf(why, cap, "not a JSON object (a file whose first line is JSON must be JSON lines throughout)");
        return 0;
    }
    while (end && end < s + n && (*end == ' ' || *end == '\t')) end++;
    if (!end || end != s + n) {
        cJSON_Delete(o);
        snprintf(why, cap, "not a JSON object (something follows it)");
        return 0;
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "text"), *lab = cJSON_GetObjectItemCaseSensitive(o, "intent");
    if (!lab) lab = cJSON_GetObjectItemCaseSensitive(o, "label");
    if (!cJSON_IsObject(o) || !cJSON_IsString(t) || !cJSON_IsString(lab))
        *st = seslm_fail(SESLM_ERR_FORMAT, "%s:%d: a JSON line must be an object with a \"text\" string and an \"intent\" "
                                           "(or \"label\") string", name, line);
    else
        *st = add_checked(out, name, line, t->valuestring, strlen(t->valuestring), lab->valuestring,
                          strlen(lab->valuestring));
    cJSON_Delete(o);
    return 1;
}

/* Splits a TSV line in place: the number of fields; *a = field ia, *b = field ib (NULL when absent). */
static int tsv_fields(char *s, int ia, int ib, char **a, char **b) {
    int nf = 0;
    *a = *b = NULL;
    for (char *p = s;; nf++) {
        if (nf == ia) *a = p;
        if (nf == ib) *b = p;
        char *tab = strchr(p, '\t');
        if (!tab) return nf + 1;
        *tab = 0;
        p = tab + 1;
    }
}

// ---- the file ------------------------------------------------------------------------------------

seslm_status labelled_parse(labelled_set *out, const char *buf, size_t len, const char *name) {
    memset(out, 0, sizeof *out);
    char *s = malloc(len + 1); // one line at a time, NUL-terminated
    if (!s) return seslm_fail(SESLM_ERR_NOMEM, "%s: out of memory", name);
    seslm_status st = SESLM_OK;
    int line = 0, tcol = -1, lcol = -1;
    const char *p = buf, *end = buf + len;
    while (st == SESLM_OK && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl ? nl : end) - p);
        const int terminated = nl != NULL;
        memcpy(s, p, n), s[n] = 0;
        p = nl ? nl + 1 : end;
        if (line == INT_MAX) {
            st = seslm_fail(SESLM_ERR_LIMIT, "%s: too many lines", name);
            break;
        }
        line++;
        if (n && s[n - 1] == '\r') s[--n] = 0;
        if (n == 0) continue;
        if (memchr(s, 0, n)) {
            st = seslm_fail(SESLM_ERR_FORMAT, "%s:%d: contains a NUL byte", name, line);
            break;
        }
        if (!out->form) { // the first line with content says which form the file is in
            size_t i = strspn(s, " \t");
            if (s[i] == '{') out->form = LABELLED_JSONL;
            else {
                out->form = LABELLED_TSV_HEADER;
                const char *f = s;
                int lab = -1, intent = -1;
                for (int k = 0;; k++) { // the header's columns: the first "text", the first "label" else "intent"
                    const size_t fl = strcspn(f, "\t");
                    if (fl == 4 && !memcmp(f, "text", 4) && tcol < 0) tcol = k;
                    if (fl == 5 && !memcmp(f, "label", 5) && lab < 0) lab = k;
                    if (fl == 6 && !memcmp(f, "intent", 6) && intent < 0) intent = k;
                    if (!f[fl]) break;
                    f += fl + 1;
                }
                lcol = lab >= 0 ? lab : intent;
                if (tcol >= 0 && lcol >= 0) continue; // a header
                if (tcol >= 0 || lcol >= 0) { // a header naming one of them ("sentence TAB label") is not a row
                    st = seslm_fail(SESLM_ERR_FORMAT, "%s:%d: the header line must name a \"text\" and a \"label\" (or "
                                                      "\"intent\") column, tab-separated", name, line);
                    break;
                }
                char *a, *b;
                if (tsv_fields(s, 0, 1, &a, &b) != 2) {
                    st = seslm_fail(SESLM_ERR_FORMAT, "%s:%d: not labelled examples: a TSV file's header line must name "
                                                      "a \"text\" and a \"label\" column, or every line be exactly text TAB "
                                                      "label; JSON lines start with '{'", name, line);
                    break;
                }
                out->form = LABELLED_TSV_PLAIN;
                st = add_checked(out, name, line, a, strlen(a), b, strlen(b));
                continue;
            }
        }
        if (out->form == LABELLED_JSONL) {
            char why[200];
            if (!json_line(out, name, line, s, n, &st, why, sizeof why)) {
                if (!terminated) { // the unacknowledged tail a crash mid-write leaves
                    out->skipped_partial = 1;
                    break;
                }
                st = seslm_fail(SESLM_ERR_FORMAT, "%s:%d: %s", name, line, why);
            }
        } else if (out->form == LABELLED_TSV_PLAIN) {
            char *a, *b;
            const int nf = tsv_fields(s, 0, 1, &a, &b);
            if (nf != 2)
                st = seslm_fail(SESLM_ERR_FORMAT, "%s:%d: %d tab-separated fields; a file without a header needs exactly "
                                                  "text TAB label on every line", name, line, nf);
            else st = add_checked(out, name, line, a, strlen(a), b, strlen(b));
        } else {
            char *a, *b;
            const int nf = tsv_fields(s, tcol, lcol, &a, &b);
            if (!a || !b)
                st = seslm_fail(SESLM_ERR_FORMAT, "%s:%d: %d tab-separated field%s, the header names column %d", name, line,
                                nf, nf == 1 ? "" : "s", (tcol > lcol ? tcol : lcol) + 1);
            else st = add_checked(out, name, line, a, strlen(a), b, strlen(b));
        }
    }
    free(s);
    if (st == SESLM_OK && out->n == 0)
        st = seslm_fail(SESLM_ERR_FORMAT, "%s: no labelled examples%s", name,
                        out->skipped_partial               ? " (its one line has no line end and is not JSON)"
                        : out->form == LABELLED_TSV_HEADER ? " (a header but no rows)"
                        : len                              ? ""
                                                           : " (the file is empty)");
    return st;
}

seslm_status labelled_read(labelled_set *out, const char *path) {
    memset(out, 0, sizeof *out);
    char *buf = NULL;
    size_t len = 0;
    seslm_status st = util_read_file(path, &buf, &len, LABELLED_MAX_FILE, NULL);
    if (st == SESLM_ERR_IO) { // "cannot open PATH: No such file or directory"
        char why[512];
        snprintf(why, sizeof why, "%s", seslm_last_error());
        return seslm_fail(st, "cannot open %s", why);
    }
    if (st != SESLM_OK) return st;
    st = labelled_parse(out, buf, len, path);
    free(buf);
    return st;
}
