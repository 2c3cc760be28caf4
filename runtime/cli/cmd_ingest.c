/* cmd_ingest.c — `seslm ingest`: merge telemetry dumps into one (pipeline/ingest/ingest.h, docs/drift.md). */
#include "cli.h"
#include "cli_telemetry.h"
#include "ingest.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *HELP =
    "usage: seslm ingest --telemetry DIR|URL [--telemetry DIR|URL ...] [FILE ...] --out FILE\n"
    "                    [--model DIR | --sha256 HEX]\n"
    "                    [--node ID] [--reservoir N]\n"
    "\n"
    "Reads telemetry dumps (HDF5, docs/telemetry.md): every final-named dump (*.h5 not starting with '.')\n"
    "of each --telemetry DIR, and each FILE given. A dump that cannot be read, is not a valid dump, or was\n"
    "recorded on another model (hash) or model shape is skipped and reported; the others are merged by\n"
    "adding their counters, histograms, per-layer sums and sketches, with heavy hitters re-ranked and the\n"
    "embedding reservoirs merged into one uniform sample (docs/drift.md). Memory holds one dump and the\n"
    "merged state, whatever the number of dumps. The merged window is written to --out as one dump\n"
    "(schema 1, node id \"merged\") and a JSON summary is printed on standard output.\n"
    "\n"
    "  --telemetry DIR  a directory of dumps (repeatable), or s3://BUCKET/PREFIX: every dump under PREFIX/ in\n"
    "                   an S3-compatible store (as serving nodes upload them with seslm serve\n"
    "                   --telemetry-upload; e.g. s3://b/telemetry/2026-12-01 for one day; docs/fleet.md),\n"
    "                   downloaded one at a time; settings SESLM_S3_ENDPOINT, AWS_ACCESS_KEY_ID, ...\n"
    "  --out FILE       the merged dump (must not exist; its directory must)\n"
    "  --model DIR      the model whose weights' SHA-256 every dump must carry; default $SESLM_MODEL_DIR\n"
    "                   or models/all-MiniLM-L6-v2\n"
    "  --sha256 HEX     the expected model hash, instead of loading a model\n"
    "  --node ID        node id of the merged dump (default merged)\n"
    "  --reservoir N    rows of the merged embedding reservoir, 1..1000000 (default 1024)\n"
    "\n"
    "Exit status: 0 merged (skipped files included, see \"skipped\"), 1 the model or the output failed,\n"
    "2 usage error, 3 no readable dump (a directory or store that cannot be listed, or every file skipped).\n";

#define MAX_INPUTS 256

/* Everything after the options: the inputs merged into out. Returns the exit code. */
static int ingest_run(const char *cmd, const char *model_dir, const char *sha, const char *out, const char *node,
                      int reservoir, const char *const *dirs, int n_dirs, const char *const *files, int n_files) {
    if (!out || (n_dirs == 0 && n_files == 0)) {
        cli_error(cmd, "--out FILE and at least one --telemetry DIR or FILE are required (see seslm ingest --help)");
        return 2;
    }
    if (sha && (strlen(sha) != 64 || strspn(sha, "0123456789abcdef") != 64)) {
        cli_error(cmd, "--sha256 must be 64 lower-case hex digits");
        return 2;
    }
    char sha_buf[72];
    if (!sha) {
        seslm_model *m = NULL;
        if (seslm_model_load(&m, model_dir) != SESLM_OK) {
            cli_error(cmd, "%s", seslm_last_error());
            return 1;
        }
        snprintf(sha_buf, sizeof sha_buf, "%s", seslm_model_weights_sha256(m));
        seslm_model_free(m);
        sha = sha_buf;
    }
    struct stat sb;
    if (stat(out, &sb) == 0) {
        cli_error(cmd, "%s exists (a dump is never replaced)", out);
        return 1;
    }
    seslm_ingest *g = NULL;
    if (seslm_ingest_new(&g, &(seslm_ingest_opts){.expected_sha256 = sha, .node_id = node, .reservoir = reservoir}) !=
        SESLM_OK) {
        cli_error(cmd, "%s", seslm_last_error());
        return 1;
    }
    int rc = 0;
    for (int i = 0; i < n_dirs && rc == 0; i++) {
        seslm_status st = cli_ingest_add_source(g, dirs[i], cmd); // a directory, or s3://BUCKET/PREFIX
        if (st == SESLM_ERR_NOMEM) rc = 1;
        else if (st != SESLM_OK) rc = 3;
        if (st != SESLM_OK) cli_error(cmd, "%s", seslm_last_error());
    }
    for (int i = 0; i < n_files && rc == 0; i++)
        if (seslm_ingest_add_file(g, files[i]) == SESLM_ERR_NOMEM) {
            cli_error(cmd, "%s", seslm_last_error());
            rc = 1;
        }
    for (int i = 0; rc == 0 && i < seslm_ingest_n_skipped(g); i++)
        fprintf(stderr, "seslm ingest: warning: skipped %s\n", seslm_ingest_skipped(g, i).reason);
    for (int i = 0; rc == 0 && i < seslm_ingest_n_duplicates(g); i++)
        fprintf(stderr, "seslm ingest: warning: %s is a %s\n", seslm_ingest_duplicate(g, i).path,
                seslm_ingest_duplicate(g, i).reason);
    if (rc == 0 && seslm_ingest_n_read(g) == 0) {
        cli_error(cmd, "no readable dump (%d skipped)", seslm_ingest_n_skipped(g));
        rc = 3;
    }
    if (rc == 0 && seslm_ingest_write(g, out) != SESLM_OK) {
        cli_error(cmd, "%s", seslm_last_error());
        rc = 1;
    }
    cJSON *j = seslm_ingest_summary(g);
    if (j) {
        cJSON_AddBoolToObject(j, "ok", rc == 0);
        if (rc == 0) cJSON_AddStringToObject(j, "out", out);
        char *s = cJSON_PrintUnformatted(j);
        if (s) printf("%s\n", s);
        free(s);
        cJSON_Delete(j);
    }
    seslm_ingest_free(g);
    return rc;
}

int cmd_ingest(int argc, char **argv) {
    const char *cmd = "ingest", *model_dir = cli_default_model_dir(), *sha = NULL, *out = NULL, *node = NULL;
    const char *dirs[MAX_INPUTS], *files[MAX_INPUTS];
    int n_dirs = 0, n_files = 0, reservoir = 1024;
    cli_list dl = {dirs, 0, MAX_INPUTS};
    cli_texts pos = {0}; // FILE arguments
    const cli_arg args[] = {
        {"--telemetry", CLI_ARG_LIST, &dl, 0, 0},
        {"--out", CLI_ARG_STR, &out, 0, 0},
        {"--model", CLI_ARG_STR, &model_dir, 0, 0},
        {"--sha256", CLI_ARG_STR, &sha, 0, 0},
        {"--node", CLI_ARG_STR, &node, 0, 0},
        {"--reservoir", CLI_ARG_INT, &reservoir, 1, 1000000},
        {NULL, 0, NULL, 0, 0},
    };
    int rc = cli_parse_args(cmd, HELP, args, argc, argv, &pos);
    if (rc < 0 && pos.n > MAX_INPUTS) {
        cli_error(cmd, "at most %d FILE arguments (use --telemetry DIR)", MAX_INPUTS);
        rc = 2;
    }
    if (rc < 0) {
        for (int i = 0; i < pos.n; i++) files[i] = pos.texts[i];
        n_dirs = dl.n;
        n_files = pos.n;
        rc = ingest_run(cmd, model_dir, sha, out, node, reservoir, dirs, n_dirs, files, n_files);
    }
    cli_texts_free(&pos);
    return rc;
}
