/* cli_common.c — input collection and output helpers of the CLI. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *cli_default_model_dir(void) {
    const char *env = getenv("SESLM_MODEL_DIR");
    return env && *env ? env : "models/all-MiniLM-L6-v2";
}

void cli_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "seslm %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_is_help(const char *a) { return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0; }

int cli_parse_int(const char *cmd, const char *flag, const char *val, int lo, int hi, int *out) {
    if (!val) {
        cli_error(cmd, "%s needs a value", flag);
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long v = strtol(val, &end, 10);
    if (errno || end == val || *end || v < lo || v > hi) {
        cli_error(cmd, "%s must be an integer in %d..%d (got '%s')", flag, lo, hi, val);
        return 0;
    }
    *out = (int)v;
    return 1;
}

int cli_texts_add(cli_texts *t, const char *s, size_t len) {
    if ((t->n & (t->n - 1)) == 0) { // grow at powers of two
        size_t cap = t->n ? 2 * (size_t)t->n : 1;
        char **nt = realloc(t->texts, cap * sizeof *nt);
        if (!nt) return 0;
        t->texts = nt;
        size_t *nl = realloc(t->lens, cap * sizeof *nl);
        if (!nl) return 0;
        t->lens = nl;
    }
    char *c = malloc(len + 1);
    if (!c) return 0;
    memcpy(c, s, len);
    c[len] = 0;
    t->texts[t->n] = c;
    t->lens[t->n] = len;
    t->n++;
    return 1;
}

/* One input per line; the trailing "\n" or "\r\n" is not part of it. Embedded NUL bytes are kept
 * (the tokenizer drops them as HF does), so lengths are explicit. */
int cli_texts_read_file(cli_texts *t, const char *path) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "seslm: cannot open %s: %s\n", path, strerror(errno));
        return 0;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int ok = 1;
    while ((n = getline(&line, &cap, f)) >= 0) {
        if (n > 0 && line[n - 1] == '\n') n--;
        if (n > 0 && line[n - 1] == '\r') n--;
        if (!cli_texts_add(t, line, (size_t)n)) {
            fprintf(stderr, "seslm: out of memory reading %s\n", path);
            ok = 0;
            break;
        }
    }
    if (ok && ferror(f)) {
        fprintf(stderr, "seslm: read error on %s: %s\n", path, strerror(errno));
        ok = 0;
    }
    free(line);
    if (f != stdin) fclose(f);
    return ok;
}

void cli_texts_free(cli_texts *t) {
    for (int i = 0; i < t->n; i++) free(t->texts[i]);
    free(t->texts);
    free(t->lens);
    memset(t, 0, sizeof *t);
}

void cli_print_json_floats(FILE *f, const float *v, int n) {
    fputc('[', f);
    for (int i = 0; i < n; i++) fprintf(f, i ? ",%.9g" : "%.9g", (double)v[i]);
    fputc(']', f);
}

int cli_parse_common(cli_opts *o, const char *cmd, const char *help, int argc, char **argv, int need_text) {
    return cli_parse_common_with(o, cmd, help, NULL, argc, argv, need_text);
}

int cli_parse_common_with(cli_opts *o, const char *cmd, const char *help, const cli_arg *extra, int argc, char **argv,
                          int need_text) {
    memset(o, 0, sizeof *o);
    o->model_dir = cli_default_model_dir();
    o->backend = "cpu";
    o->batch = 32;
    const cli_arg args[] = {
        {"--model", CLI_ARG_STR, &o->model_dir, 0, 0},
        {"--input", CLI_ARG_STR, &o->input, 0, 0},
        {"--backend|--device", CLI_ARG_STR, &o->backend, 0, 0}, // --device cuda
        {"--batch", CLI_ARG_INT, &o->batch, 1, 4096},
        {"--threads", CLI_ARG_INT, &o->threads, 0, 1024},
        {"--precision", CLI_ARG_STR, &o->precision, 0, 0},
        {"--prompt-name", CLI_ARG_STR, &o->prompt_name, 0, 0},
        {"--prompt", CLI_ARG_STR, &o->prompt, 0, 0},
    };
    enum { N_COMMON = sizeof args / sizeof args[0], MAX_EXTRA = 24 };
    // the command's own options first (the first match wins: one may take over a common name, as kb build
    // does --input), then the common ones, then the end
    cli_arg all[MAX_EXTRA + N_COMMON + 1];
    int n = 0;
    for (; extra && extra->name && n < MAX_EXTRA; extra++) all[n++] = *extra;
    if (extra && extra->name) { // a programming error: never drop an option silently
        cli_error(cmd, "internal error: more than %d options of its own", MAX_EXTRA);
        return 1;
    }
    memcpy(all + n, args, sizeof args);
    n += N_COMMON;
    all[n] = (cli_arg){NULL, 0, NULL, 0, 0};
    int rc = cli_parse_args(cmd, help, all, argc, argv, &o->texts);
    if (rc >= 0) return rc;
    if (o->precision && strcmp(o->precision, "fp32") != 0 && strcmp(o->precision, "bf16") != 0 && strcmp(o->precision, "int8") != 0) {
        cli_error(cmd, "--precision must be fp32, bf16 or int8 (got '%s')", o->precision);
        return 2;
    }
    if (o->prompt && o->prompt_name) {
        cli_error(cmd, "give either --prompt or --prompt-name, not both");
        return 2;
    }
    if (o->input && o->texts.n) {
        cli_error(cmd, "give either TEXT arguments or --input FILE, not both");
        return 2;
    }
    if (o->input && !cli_texts_read_file(&o->texts, o->input)) return 1;
    if (need_text && o->texts.n == 0) {
        cli_error(cmd, "no input: give TEXT arguments or --input FILE (see seslm %s --help)", cmd);
        return 2;
    }
    return -1;
}

void cli_opts_free(cli_opts *o) { cli_texts_free(&o->texts); }

void cli_input_name(const cli_opts *o, int i, char *buf, size_t cap) {
    if (o->input)
        snprintf(buf, cap, "input %d (line %d of %s)", i, i + 1, strcmp(o->input, "-") == 0 ? "standard input" : o->input);
    else
        snprintf(buf, cap, "input %d", i);
}

void cli_json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

int cli_encoder_embed(void *user, const char *const *texts, int n, float *out) {
    cli_encoder *v = user;
    for (int i = 0; i < n; i += 32) {
        int c = n - i < 32 ? n - i : 32;
        size_t lens[32];
        for (int j = 0; j < c; j++) lens[j] = strlen(texts[i + j]);
        if (seslm_encoder_embed_texts(v->e, texts + i, lens, c, out + (size_t)i * v->dim) != SESLM_OK) return -1;
    }
    return 0;
}
