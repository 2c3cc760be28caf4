/* cmd_record.c — `seslm record`: run a text corpus through the model as a serving node would, with
 * telemetry on, and write one HDF5 dump (docs/telemetry.md) per window of N inputs. */
#include "cli.h"
#include "progress.h"
#include "telemetry.h"
#include "telemetry_hdf5.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *HELP =
    "usage: seslm record --input FILE --out DIR [--model DIR] [--window N] [--node ID] [--batch N]\n"
    "                    [--threads N] [--backend cpu|cpu-ref] [--progress] [--strict]\n"
    "\n"
    "Runs a corpus (one text per line) through the model as a serving node would, with telemetry on,\n"
    "and writes one telemetry dump (HDF5, schema in docs/telemetry.md) per window of N input lines,\n"
    "plus one for the remainder. Each dump is written crash-safe: a temporary file in DIR that is\n"
    "renamed to its final name \"<node>-<window start, UTC>-<seq>.h5\" once complete; seq continues after\n"
    "the node's highest one already in DIR. The paths of the dumps are printed on standard output as\n"
    "they are written.\n"
    "\n"
    "  --input FILE    one text per line (\"-\" reads standard input)\n"
    "  --out DIR       where the dumps go (created if missing; its parent must exist)\n"
    "  --model DIR     model directory; default $SESLM_MODEL_DIR or models/all-MiniLM-L6-v2\n"
    "  --window N      input lines per dump, 1..1000000000 (default 1000)\n"
    "  --node ID       node id in the dumps and their names, [A-Za-z0-9._-] (default: the host name)\n"
    "  --batch N       inputs per forward pass, 1..4096 (default 32)\n"
    "  --threads N     worker threads, 0 = all cores (default 0)\n"
    "  --backend NAME  cpu (default) or cpu-ref\n"
    "  --progress      report progress on standard error (default: when it is a terminal): on a terminal one\n"
    "                  updating line with rate and ETA, otherwise a plain line every SESLM_PROGRESS_SECONDS\n"
    "                  (10) seconds and at the end\n"
    "  --strict        stop at the first invalid line instead of skipping it\n"
    "\n"
    "A line that is not valid UTF-8 is skipped with a warning naming its line number and counted in the\n"
    "dump's n_rejected attribute, as a serving node refuses such a request. SIGINT / SIGTERM finish the\n"
    "current batch and write the partial window before exiting.\n"
    "\n"
    "Exit status: 0 ok (skipped lines included), 1 the model, input or output failed (or --strict hit\n"
    "an invalid line), 2 usage error, 128+signal when interrupted (after writing the last dump).\n";

#define MAX_WARNINGS 20

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) { g_stop = sig; }

// A default node id from the host name: invalid characters become '-', at most SESLM_NODE_ID_MAX.
static void default_node(char *out, size_t cap) {
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0) host[0] = 0;
    size_t n = 0;
    for (const char *p = host; *p && n + 1 < cap && n < SESLM_NODE_ID_MAX; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                 ((c == '.' || c == '-') && n > 0);
        if (ok) out[n++] = c;
        else if (n > 0) out[n++] = '-';
    }
    out[n] = 0;
    if (n == 0) snprintf(out, cap, "node");
}

// The highest dump sequence number of `node` among the dumps already in dir (0 if none).
static uint64_t last_seq(const char *dir, const char *node) {
    DIR *d = opendir(dir);
    uint64_t best = 0;
    const size_t nl = strlen(node);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        size_t len = strlen(n);
        if (!seslm_telemetry_dump_is_final_name(n) || strncmp(n, node, nl) != 0 || n[nl] != '-') continue;
        // then exactly "YYYYMMDDTHHMMSS.mmmZ-<digits>.h5" (so node "a" does not match "a-b-...")
        static const char pat[] = "ddddddddTdddddd.dddZ-";
        const char *p = n + nl + 1;
        int match = len > nl + 1 + sizeof pat - 1 + 3;
        for (size_t i = 0; match && i < sizeof pat - 1; i++)
            match = pat[i] == 'd' ? (p[i] >= '0' && p[i] <= '9') : p[i] == pat[i];
        if (!match) continue;
        char *end = NULL;
        unsigned long long v = strtoull(p + sizeof pat - 1, &end, 10);
        if (end == n + len - 3 && end > p + sizeof pat - 1 && v > best) best = v;
    }
    if (d) closedir(d);
    return best;
}

// Lines in a regular file (for the progress total); -1 when unknown.
static long long count_lines(const char *path) {
    if (strcmp(path, "-") == 0) return -1;
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) return -1;
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char buf[1 << 16];
    long long n = 0;
    size_t k;
    int last = '\n';
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) {
        for (size_t i = 0; i < k; i++) n += buf[i] == '\n';
        last = (unsigned char)buf[k - 1];
    }
    fclose(f);
    return n + (last != '\n');
}

typedef struct {
    const char *cmd;
    seslm_encoder *e;
    seslm_telemetry *t;
    int S, C, batch;
    int32_t *tok; // (batch, S)
    const int32_t **rows;
    int *lens, n; // pending inputs
    float *out;   // (batch, C)
    // window
    seslm_dump_meta meta;
    const char *out_dir;
    long long in_window;   // lines in the current window
    uint64_t rejected;     // lines rejected in the current window
    int dumps;
} rec;

static int flush_batch(rec *r) {
    if (r->n == 0) return 0;
    for (int i = 0; i < r->n; i++) seslm_telemetry_count_request(r->t); // one request per input line
    seslm_status st = seslm_encoder_forward_ids(r->e, r->rows, r->lens, r->n, r->out);
    r->n = 0;
    if (st != SESLM_OK) {
        cli_error(r->cmd, "%s", seslm_last_error());
        return 1;
    }
    return 0;
}

static int write_window(rec *r) {
    if (flush_batch(r)) return 1;
    if (r->in_window == 0) return 0;
    seslm_telemetry_view v;
    seslm_telemetry_snapshot(r->t, &v);
    r->meta.n_rejected = r->rejected;
    char path[PATH_MAX + 256];
    if (seslm_telemetry_dump_write(&v, &r->meta, r->out_dir, path, sizeof path) != SESLM_OK) {
        cli_error(r->cmd, "%s", seslm_last_error());
        return 1;
    }
    printf("%s\n", path);
    fflush(stdout);
    r->meta.seq++;
    r->dumps++;
    r->in_window = 0;
    r->rejected = 0;
    seslm_telemetry_reset(r->t);
    return 0;
}

// The progress line (progress.h): inputs done of the file's lines, with the dumps and rejected lines so far.
static void progress(seslm_progress *p, long long done, const rec *r, uint64_t rejected, int final) {
    seslm_progress_note(p, "%d dump%s, %llu rejected", r->dumps, r->dumps == 1 ? "" : "s", (unsigned long long)rejected);
    seslm_progress_update(p, done);
    if (final) seslm_progress_finish(p);
}

int cmd_record(int argc, char **argv) {
    const char *cmd = "record", *model_dir = cli_default_model_dir(), *input = NULL, *out_dir = NULL,
               *backend = "cpu", *node = NULL;
    int window = 1000, batch = 32, threads = 0, want_progress = 0, strict = 0;
    const cli_arg args[] = {
        {"--model", CLI_ARG_STR, &model_dir, 0, 0},
        {"--input", CLI_ARG_STR, &input, 0, 0},
        {"--out", CLI_ARG_STR, &out_dir, 0, 0},
        {"--node", CLI_ARG_STR, &node, 0, 0},
        {"--backend", CLI_ARG_STR, &backend, 0, 0},
        {"--window", CLI_ARG_INT, &window, 1, 1000000000},
        {"--batch", CLI_ARG_INT, &batch, 1, 4096},
        {"--threads", CLI_ARG_INT, &threads, 0, 1024},
        {"--progress", CLI_ARG_FLAG, &want_progress, 0, 0},
        {"--strict", CLI_ARG_FLAG, &strict, 0, 0},
        {NULL, 0, NULL, 0, 0},
    };
    int prc = cli_parse_args(cmd, HELP, args, argc, argv, NULL);
    if (prc >= 0) return prc;
    if (!input || !out_dir) {
        cli_error(cmd, "--input FILE and --out DIR are required (see seslm record --help)");
        return 2;
    }
    char node_buf[SESLM_NODE_ID_MAX + 1], name[256];
    if (!node) {
        default_node(node_buf, sizeof node_buf);
        node = node_buf;
    }
    if (seslm_telemetry_dump_name(name, sizeof name, node, 0, 0) != SESLM_OK) {
        cli_error(cmd, "%s", seslm_last_error());
        return 2;
    }
    struct stat sb;
    if (stat(out_dir, &sb) != 0) {
        if (errno != ENOENT || mkdir(out_dir, 0755) != 0) {
            cli_error(cmd, "cannot create the output directory %s: %s", out_dir, strerror(errno));
            return 1;
        }
    } else if (!S_ISDIR(sb.st_mode)) {
        cli_error(cmd, "%s is not a directory", out_dir);
        return 1;
    }
    FILE *in = strcmp(input, "-") == 0 ? stdin : fopen(input, "rb");
    if (!in) {
        cli_error(cmd, "cannot open %s: %s", input, strerror(errno));
        return 1;
    }
    const int tty = isatty(STDERR_FILENO);
    const int show = want_progress || tty;
    const long long total = show ? count_lines(input) : -1;

    seslm_model *m = NULL;
    seslm_encoder *e = NULL;
    seslm_telemetry *t = NULL;
    rec r = {.cmd = cmd, .batch = batch, .out_dir = out_dir};
    char *line = NULL;
    int rc = 1;
    if (seslm_model_load(&m, model_dir) != SESLM_OK) {
        cli_error(cmd, "%s", seslm_last_error());
        goto done;
    }
    const seslm_model_config *c = seslm_model_get_config(m);
    seslm_encoder_opts eo = {.backend = backend, .n_threads = threads, .max_batch = batch};
    if (seslm_encoder_new(&e, m, &eo) != SESLM_OK || seslm_telemetry_new(&t, m, NULL) != SESLM_OK) {
        cli_error(cmd, "%s", seslm_last_error());
        goto done;
    }
    seslm_encoder_set_telemetry(e, t);
    r.e = e, r.t = t, r.S = c->max_seq_len, r.C = c->hidden;
    r.tok = malloc((size_t)batch * r.S * sizeof *r.tok);
    r.rows = malloc((size_t)batch * sizeof *r.rows);
    r.lens = malloc((size_t)batch * sizeof *r.lens);
    r.out = malloc((size_t)batch * r.C * sizeof *r.out);
    if (!r.tok || !r.rows || !r.lens || !r.out) {
        cli_error(cmd, "out of memory");
        goto done;
    }
    // the model id: the model directory's name
    char real[PATH_MAX], model_id[256];
    const char *md = realpath(model_dir, real) ? real : model_dir;
    const char *base = strrchr(md, '/');
    snprintf(model_id, sizeof model_id, "%.255s", base && base[1] ? base + 1 : md);
    r.meta = (seslm_dump_meta){.node_id = node, .model_id = model_id, .seq = last_seq(out_dir, node) + 1};

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; // no SA_RESTART: a blocking read of stdin returns
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    const seslm_tokenizer *tok = seslm_model_tokenizer(m);
    size_t cap = 0;
    ssize_t n;
    long long line_no = 0, done_lines = 0;
    uint64_t rejected_total = 0;
    seslm_progress prog;
    seslm_progress_init(&prog, show ? stderr : NULL, "seslm record", "inputs", total > 0 ? total : 0);
    rc = 0;
    while (!g_stop && (n = getline(&line, &cap, in)) >= 0) {
        line_no++;
        if (n > 0 && line[n - 1] == '\n') n--;
        if (n > 0 && line[n - 1] == '\r') n--;
        int32_t *row = r.tok + (size_t)r.n * r.S;
        int len = 0;
        seslm_status st = seslm_tokenizer_encode(tok, line, (size_t)n, row, r.S, &len);
        if (st == SESLM_ERR_UTF8) {
            if (strict) {
                cli_error(cmd, "%s:%lld: %s", input, line_no, seslm_last_error());
                rc = 1;
                break;
            }
            if (rejected_total < MAX_WARNINGS && show)
                seslm_progress_say(&prog, "seslm record: warning: %s:%lld: not valid UTF-8, skipped", input, line_no);
            else if (rejected_total < MAX_WARNINGS)
                fprintf(stderr, "seslm record: warning: %s:%lld: not valid UTF-8, skipped\n", input, line_no);
            else if (rejected_total == MAX_WARNINGS)
                fprintf(stderr, "seslm record: warning: further invalid lines are skipped silently\n");
            r.rejected++;
            rejected_total++;
        } else if (st != SESLM_OK) {
            cli_error(cmd, "%s:%lld: %s", input, line_no, seslm_last_error());
            rc = 1;
            break;
        } else {
            if (len > c->max_seq_len) len = c->max_seq_len;
            r.rows[r.n] = row;
            r.lens[r.n] = len;
            r.n++;
        }
        r.in_window++;
        done_lines++;
        if ((r.n == batch && flush_batch(&r)) || (r.in_window == window && write_window(&r))) {
            rc = 1;
            break;
        }
        if (show) progress(&prog, done_lines, &r, rejected_total, 0);
    }
    if (rc == 0 && !g_stop && ferror(in)) {
        cli_error(cmd, "read error on %s: %s", input, strerror(errno));
        rc = 1;
    }
    if (rc == 0 && write_window(&r)) rc = 1; // the remainder (also after SIGINT / SIGTERM)
    if (show) progress(&prog, done_lines, &r, rejected_total, 1);
    if (rc == 0 && rejected_total)
        fprintf(stderr, "seslm record: %llu of %lld lines were not valid UTF-8 and were skipped\n",
                (unsigned long long)rejected_total, line_no);
    if (rc == 0 && r.dumps == 0) fprintf(stderr, "seslm record: no input, no dump written\n");
    if (rc == 0 && g_stop) {
        fprintf(stderr, "seslm record: interrupted by signal %d after %lld lines\n", (int)g_stop, line_no);
        rc = 128 + (int)g_stop;
    }
done:
    free(line);
    free(r.tok), free(r.rows), free(r.lens), free(r.out);
    seslm_encoder_free(e);
    seslm_telemetry_free(t);
    seslm_model_free(m);
    if (in != stdin) fclose(in);
    return rc;
}
