/* cli_args.c — the one option parser of the commands (cli.h: cli_parse_args): a table of options, each
 * with its kind, destination and range, instead of a strcmp chain per command. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* "--backend|--device" matches either name. */
static int arg_matches(const char *names, const char *a) {
    size_t n = strlen(a);
    for (const char *p = names; *p;) {
        size_t len = strcspn(p, "|");
        if (len == n && strncmp(p, a, n) == 0) return 1;
        p += len + (p[len] == '|');
    }
    return 0;
}

/* The index of v in "a|b|c", or -1. */
static int choice_index(const char *choices, const char *v) {
    size_t n = strlen(v);
    int k = 0;
    for (const char *p = choices; *p; k++) {
        size_t len = strcspn(p, "|");
        if (len == n && strncmp(p, v, n) == 0) return k;
        p += len + (p[len] == '|');
    }
    return -1;
}

static int arg_set(const char *cmd, const cli_arg *o, const char *a, const char *v) {
    switch (o->kind) {
    case CLI_ARG_FLAG:
        *(int *)o->dst = 1;
        return 1;
    case CLI_ARG_STR:
        *(const char **)o->dst = v;
        return 1;
    case CLI_ARG_LIST: {
        cli_list *l = o->dst;
        if (l->n == l->cap) {
            cli_error(cmd, "at most %d %s options", l->cap, a);
            return 0;
        }
        l->items[l->n++] = v;
        return 1;
    }
    case CLI_ARG_CHOICE: {
        const cli_choice *c = o->dst;
        int k = choice_index(c->values, v);
        if (k < 0) {
            cli_error(cmd, "%s must be one of %s (got '%s')", a, c->values, v);
            return 0;
        }
        *c->index = k;
        return 1;
    }
    case CLI_ARG_INT:
        return cli_parse_int(cmd, a, v, (int)o->lo, (int)o->hi, (int *)o->dst);
    case CLI_ARG_NUM: {
        char *end = NULL;
        errno = 0;
        double d = strtod(v, &end);
        if (errno || end == v || *end || !(d >= o->lo && d <= o->hi)) { // (NaN fails the range)
            cli_error(cmd, "%s must be a number in [%g, %g] (got '%s')", a, o->lo, o->hi, v);
            return 0;
        }
        *(double *)o->dst = d;
        return 1;
    }
    }
    return 0;
}

int cli_parse_args(const char *cmd, const char *help, const cli_arg *args, int argc, char **argv, cli_texts *pos) {
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && cli_is_help(a)) {
            fputs(help, stdout);
            return 0;
        }
        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        const cli_arg *o = NULL;
        if (!only_pos && a[0] == '-' && a[1]) { // "-" alone is a positional (standard input)
            o = args;
            while (o->name && !arg_matches(o->name, a)) o++;
            if (!o->name && a[1] == '-') {
                cli_error(cmd, "unknown option '%s' (see seslm %s --help)", a, cmd);
                return 2;
            }
            if (!o->name) o = NULL; // "-x" is an option only when the table names it
        }
        if (o) {
            const char *v = NULL;
            if (o->kind != CLI_ARG_FLAG) {
                if (i + 1 >= argc) {
                    cli_error(cmd, "%s needs a value", a);
                    return 2;
                }
                v = argv[++i];
            }
            if (!arg_set(cmd, o, a, v)) return 2;
            continue;
        }
        if (!pos) { // the table's "" entry (a list) takes them without copying; without one, none is taken
            for (o = args; o->name && o->name[0]; o++) {}
            if (!o->name || o->kind != CLI_ARG_LIST) {
                cli_error(cmd, "unexpected argument '%s' (see seslm %s --help)", a, cmd);
                return 2;
            }
            cli_list *l = o->dst;
            if (l->n == l->cap) {
                cli_error(cmd, "too many arguments: '%s' (see seslm %s --help)", a, cmd);
                return 2;
            }
            l->items[l->n++] = a;
            continue;
        }
        if (!cli_texts_add(pos, a, strlen(a))) {
            cli_error(cmd, "out of memory");
            return 1;
        }
    }
    return -1;
}
