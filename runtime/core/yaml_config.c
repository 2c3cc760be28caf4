/* yaml_config.c — see yaml_config.h. The document is flattened into (dotted key, scalar or container,
 * line) entries while libyaml's event parser walks it. */
#include "yaml_config.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

enum { K_SCALAR, K_MAP, K_SEQ };

typedef struct {
    char *key;
    char *value; // scalars only
    int line, kind, count;
} entry;

struct seslm_yaml {
    char *path;
    entry *e;
    int n, cap;
};

typedef struct {
    int kind;     // K_MAP or K_SEQ
    char *prefix; // dotted key of the container ("" for the root)
    char *pending; // a mapping's key waiting for its value
    int entry;    // index of the container's entry (-1 for the root)
    int idx;      // next sequence index
    int key_line; // line of the pending key
} frame;

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *c = malloc(n + 1);
    if (c) memcpy(c, s, n + 1);
    return c;
}

static char *join(const char *prefix, const char *key) {
    size_t a = strlen(prefix), b = strlen(key);
    char *s = malloc(a + b + 2);
    if (!s) return NULL;
    if (a) {
        memcpy(s, prefix, a);
        s[a] = '.';
        memcpy(s + a + 1, key, b + 1);
    } else {
        memcpy(s, key, b + 1);
    }
    return s;
}

static int find(const seslm_yaml *y, const char *key) {
    for (int i = 0; i < y->n; i++)
        if (strcmp(y->e[i].key, key) == 0) return i;
    return -1;
}

// Takes ownership of key.
static int add(seslm_yaml *y, char *key, const char *value, int line, int kind) {
    if (!key) return -1;
    if (y->n == y->cap) {
        int cap = y->cap ? 2 * y->cap : 32;
        entry *ne = realloc(y->e, (size_t)cap * sizeof *ne);
        if (!ne) {
            free(key);
            return -1;
        }
        y->e = ne, y->cap = cap;
    }
    entry *e = &y->e[y->n];
    e->key = key;
    e->value = value ? dup_str(value) : NULL;
    e->line = line, e->kind = kind, e->count = 0;
    if (value && !e->value) {
        free(key);
        return -1;
    }
    return y->n++;
}

void seslm_yaml_free(seslm_yaml *y) {
    if (!y) return;
    for (int i = 0; i < y->n; i++) free(y->e[i].key), free(y->e[i].value);
    free(y->e);
    free(y->path);
    free(y);
}

const char *seslm_yaml_path(const seslm_yaml *y) { return y->path; }

seslm_status seslm_yaml_load_string(seslm_yaml **out, const char *name, const char *text, size_t len) {
    *out = NULL;
    seslm_yaml *y = calloc(1, sizeof *y);
    if (!y || !(y->path = dup_str(name))) {
        free(y);
        return seslm_fail(SESLM_ERR_NOMEM, "%s: out of memory", name);
    }
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        seslm_yaml_free(y);
        return seslm_fail(SESLM_ERR_NOMEM, "%s: cannot initialise the YAML parser", name);
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    frame st[64];
    int depth = 0, docs = 0, done = 0;
    seslm_status rc = SESLM_OK;
    char msg[512] = "";
    int line = 0;
    while (!done && rc == SESLM_OK) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            line = (int)(p.problem_mark.line + 1);
            snprintf(msg, sizeof msg, "%s%s%s", p.problem ? p.problem : "syntax error", p.context ? " " : "",
                     p.context ? p.context : "");
            rc = SESLM_ERR_FORMAT;
            break;
        }
        line = (int)ev.start_mark.line + 1;
        frame *top = depth ? &st[depth - 1] : NULL;
        char *key = NULL; // the key a value at this event gets
        int is_value = 0, key_line = line;
        if (ev.type == YAML_SCALAR_EVENT || ev.type == YAML_MAPPING_START_EVENT ||
            ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_ALIAS_EVENT) {
            if (!top) {
                if (ev.type != YAML_MAPPING_START_EVENT) {
                    snprintf(msg, sizeof msg, "expected a mapping (key: value lines) at the top level");
                    rc = SESLM_ERR_FORMAT;
                }
            } else if (top->kind == K_MAP && !top->pending) {
                if (ev.type != YAML_SCALAR_EVENT) {
                    snprintf(msg, sizeof msg, "keys must be plain scalars");
                    rc = SESLM_ERR_FORMAT;
                } else {
                    const char *k = (const char *)ev.data.scalar.value;
                    if (!*k || strchr(k, '.')) {
                        snprintf(msg, sizeof msg, "invalid key '%.100s' (empty or containing '.')", k);
                        rc = SESLM_ERR_FORMAT;
                    } else if ((top->key_line = line), !(top->pending = join(top->prefix, k))) {
                        rc = SESLM_ERR_NOMEM;
                    } else if (find(y, top->pending) >= 0) {
                        snprintf(msg, sizeof msg, "%.200s: duplicate key", top->pending);
                        rc = SESLM_ERR_FORMAT;
                    }
                }
            } else {
                is_value = 1;
                if (top->kind == K_MAP) {
                    key_line = top->key_line;
                    key = top->pending;
                    top->pending = NULL;
                } else {
                    char idx[32];
                    snprintf(idx, sizeof idx, "%d", top->idx++);
                    key = join(top->prefix, idx);
                    if (!key) rc = SESLM_ERR_NOMEM;
                }
            }
        }
        if (rc == SESLM_OK) switch (ev.type) {
            case YAML_DOCUMENT_START_EVENT:
                if (++docs > 1) {
                    snprintf(msg, sizeof msg, "more than one YAML document");
                    rc = SESLM_ERR_FORMAT;
                }
                break;
            case YAML_STREAM_END_EVENT: done = 1; break;
            case YAML_ALIAS_EVENT:
                snprintf(msg, sizeof msg, "aliases (*name) are not supported");
                rc = SESLM_ERR_FORMAT;
                break;
            case YAML_SCALAR_EVENT:
                if (is_value && add(y, key, (const char *)ev.data.scalar.value, line, K_SCALAR) < 0)
                    rc = SESLM_ERR_NOMEM;
                key = NULL;
                if (is_value && top->kind == K_SEQ && rc == SESLM_OK) y->e[top->entry].count = top->idx;
                break;
            case YAML_MAPPING_START_EVENT:
            case YAML_SEQUENCE_START_EVENT: {
                int kind = ev.type == YAML_MAPPING_START_EVENT ? K_MAP : K_SEQ;
                if (depth == (int)(sizeof st / sizeof st[0])) {
                    snprintf(msg, sizeof msg, "nested too deeply");
                    rc = SESLM_ERR_FORMAT;
                    break;
                }
                int ei = -1;
                char *prefix = NULL;
                if (top) {
                    prefix = dup_str(key);
                    ei = add(y, key, NULL, key_line, kind); // a container's line is its key's
                    key = NULL;
                    if (ei < 0 || !prefix) {
                        free(prefix);
                        rc = SESLM_ERR_NOMEM;
                        break;
                    }
                } else if (!(prefix = dup_str(""))) {
                    rc = SESLM_ERR_NOMEM;
                    break;
                }
                st[depth++] = (frame){.kind = kind, .prefix = prefix, .entry = ei};
                break;
            }
            case YAML_MAPPING_END_EVENT:
            case YAML_SEQUENCE_END_EVENT:
                depth--;
                free(st[depth].prefix);
                free(st[depth].pending);
                if (st[depth].kind == K_SEQ && st[depth].entry >= 0) y->e[st[depth].entry].count = st[depth].idx;
                break;
            default: break;
            }
        free(key);
        yaml_event_delete(&ev);
    }
    while (depth > 0) {
        depth--;
        free(st[depth].prefix);
        free(st[depth].pending);
    }
    yaml_parser_delete(&p);
    if (rc != SESLM_OK) {
        if (rc == SESLM_ERR_NOMEM) seslm_fail(rc, "%s: out of memory", name);
        else seslm_fail(rc, "%s:%d: %s", name, line, msg);
        seslm_yaml_free(y);
        return rc;
    }
    *out = y;
    return SESLM_OK;
}

seslm_status seslm_yaml_load(seslm_yaml **out, const char *path) {
    *out = NULL;
    FILE *f = NULL; // a directory fails; a pipe (--config <(...)) is read, a FIFO with no writer as empty, at once
    seslm_status ost = util_fopen_read(path, 1, &f);
    if (ost != SESLM_OK) return ost;
    size_t cap = 4096, n = 0, k;
    char *buf = malloc(cap);
    while (buf && (k = fread(buf + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            char *nb = cap < ((size_t)1 << 24) ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb, cap *= 2;
        }
    }
    int err = ferror(f);
    fclose(f);
    if (!buf) return seslm_fail(SESLM_ERR_NOMEM, "%s: too large or out of memory", path);
    if (err) {
        free(buf);
        return seslm_fail(SESLM_ERR_IO, "%s: read error", path);
    }
    // a config file that says nothing is a mistake (a truncated copy, a failed template), not a wish for
    // the defaults: those come from giving no file, or from an explicit "{}"
    int says_something = 0;
    for (size_t i = 0; i < n && !says_something;) {
        size_t j = i;
        while (j < n && (buf[j] == ' ' || buf[j] == '\t' || buf[j] == '\r')) j++;
        const int marker = n - j >= 3 && (!memcmp(buf + j, "---", 3) || !memcmp(buf + j, "...", 3));
        says_something = j < n && buf[j] != '\n' && buf[j] != '#' && !marker;
        while (j < n && buf[j] != '\n') j++;
        i = j + 1;
    }
    seslm_status st = says_something ? seslm_yaml_load_string(out, path, buf, n)
                                     : seslm_fail(SESLM_ERR_FORMAT,
                                                  "%s is empty (%s): a config file must set something; write {} to "
                                                  "take every default on purpose",
                                                  path, n ? "only comments or blank lines" : "0 bytes");
    free(buf);
    return st;
}

int seslm_yaml_has(const seslm_yaml *y, const char *key) { return find(y, key) >= 0; }

const char *seslm_yaml_scalar(const seslm_yaml *y, const char *key, int *line) {
    int i = find(y, key);
    if (i < 0 || y->e[i].kind != K_SCALAR) return NULL;
    if (line) *line = y->e[i].line;
    return y->e[i].value;
}

int seslm_yaml_count(const seslm_yaml *y, const char *key) {
    int i = find(y, key);
    if (i < 0) return 0;
    return y->e[i].kind == K_SEQ ? y->e[i].count : -1;
}

static const char *kind_name(int k) { return k == K_MAP ? "a mapping" : "a sequence"; }

// The scalar entry at key, or NULL with *rc set (SESLM_OK: absent; else the error).
static const entry *scalar_entry(const seslm_yaml *y, const char *key, const char *expected, seslm_status *rc) {
    *rc = SESLM_OK;
    int i = find(y, key);
    if (i < 0) return NULL;
    const entry *e = &y->e[i];
    if (e->kind != K_SCALAR) {
        *rc = seslm_fail(SESLM_ERR_FORMAT, "%s:%d: %s: expected %s, got %s", y->path, e->line, key, expected,
                         kind_name(e->kind));
        return NULL;
    }
    return e;
}

seslm_status seslm_yaml_get_double(const seslm_yaml *y, const char *key, double lo, double hi, double def,
                                   double *out) {
    seslm_status rc;
    const entry *e = scalar_entry(y, key, "a number", &rc);
    if (!e) {
        if (rc == SESLM_OK) *out = def;
        return rc;
    }
    char *end = NULL;
    errno = 0;
    double v = strtod(e->value, &end);
    int ok = *e->value && end && *end == 0 && errno == 0 && isfinite(v) && !strpbrk(e->value, "xX");
    if (!ok || v < lo || v > hi)
        return seslm_fail(SESLM_ERR_FORMAT, "%s:%d: %s: expected a number in [%g, %g], got '%.100s'", y->path,
                          e->line, key, lo, hi, e->value);
    *out = v;
    return SESLM_OK;
}

seslm_status seslm_yaml_get_int(const seslm_yaml *y, const char *key, long long lo, long long hi, long long def,
                                long long *out) {
    seslm_status rc;
    const entry *e = scalar_entry(y, key, "an integer", &rc);
    if (!e) {
        if (rc == SESLM_OK) *out = def;
        return rc;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(e->value, &end, 10);
    if (!*e->value || !end || *end || errno || v < lo || v > hi)
        return seslm_fail(SESLM_ERR_FORMAT, "%s:%d: %s: expected an integer in [%lld, %lld], got '%.100s'", y->path,
                          e->line, key, lo, hi, e->value);
    *out = v;
    return SESLM_OK;
}

seslm_status seslm_yaml_get_bool(const seslm_yaml *y, const char *key, int def, int *out) {
    seslm_status rc;
    const entry *e = scalar_entry(y, key, "true or false", &rc);
    if (!e) {
        if (rc == SESLM_OK) *out = def;
        return rc;
    }
    static const char *const t[] = {"true", "yes", "on"}, *const f[] = {"false", "no", "off"};
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(e->value, t[i]) == 0) return *out = 1, SESLM_OK;
        if (strcasecmp(e->value, f[i]) == 0) return *out = 0, SESLM_OK;
    }
    return seslm_fail(SESLM_ERR_FORMAT, "%s:%d: %s: expected true or false, got '%.100s'", y->path, e->line, key,
                      e->value);
}

seslm_status seslm_yaml_get_string(const seslm_yaml *y, const char *key, const char *def, const char **out) {
    seslm_status rc;
    const entry *e = scalar_entry(y, key, "a string", &rc);
    if (!e) {
        if (rc == SESLM_OK) *out = def;
        return rc;
    }
    *out = e->value;
    return SESLM_OK;
}

static int allowed_key(const char *key, const char *const *allowed, int n) {
    for (int i = 0; i < n; i++) {
        const char *a = allowed[i];
        size_t la = strlen(a);
        if (strcmp(a, key) == 0) return 1;
        if (la >= 2 && strcmp(a + la - 2, ".*") == 0 && strncmp(key, a, la - 1) == 0) return 1; // under prefix
        // a container on the way to an allowed key: key is a prefix of a followed by '.'
        size_t lk = strlen(key);
        if (lk < la && strncmp(a, key, lk) == 0 && a[lk] == '.') return 1;
    }
    return 0;
}

seslm_status seslm_yaml_check_keys(const seslm_yaml *y, const char *const *allowed, int n) {
    for (int i = 0; i < y->n; i++)
        if (!allowed_key(y->e[i].key, allowed, n))
            return seslm_fail(SESLM_ERR_FORMAT, "%s:%d: %s: unknown key", y->path, y->e[i].line, y->e[i].key);
    return SESLM_OK;
}
