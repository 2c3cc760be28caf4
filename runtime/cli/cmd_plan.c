/* cmd_plan.c — `seslm plan`: telemetry -> profile -> importance scores -> candidate pruning plans. */
#include "cli.h"
#include "progress.h"
#include "plan.h"
#include "profile.h"
#include "score.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *HELP =
    "usage: seslm plan --telemetry FILE_OR_DIR --config FILE --calib FILE --out DIR [--model DIR]\n"
    "                  [--threads N] [--batch N] [--calib-lines N] [--compare FILE] [--quiet]\n"
    "\n"
    "Reads a telemetry dump (a directory: its newest dump), writes into DIR:\n"
    "  profile.json         dormant neurons, weak / near-uniform heads, rare ids, frequent pairs, layer cost\n"
    "  scores.json          importance of every head, neuron, layer and embedding row (per score method)\n"
    "  plan-<NN>.json       one pruning plan per target ratio of the policy (docs/pruning.md)\n"
    "and prints a summary table. Each plan is checked against the policy and measured by applying it\n"
    "as masks to the calibration text (mean and 5th-percentile cosine against the unpruned model).\n"
    "\n"
    "  --telemetry P    a dump (*.h5) or a directory of dumps of this model\n"
    "  --config FILE    the policy (configs/evolve.yaml)\n"
    "  --calib FILE     calibration text, one per line (the first score.calib_lines lines are used)\n"
    "  --out DIR        output directory (created if missing)\n"
    "  --model DIR      model directory; default $SESLM_MODEL_DIR or models/all-MiniLM-L6-v2\n"
    "  --threads N      worker threads, 0 = all cores (default 0)\n"
    "  --batch N        texts per forward pass, 1..4096 (default 32)\n"
    "  --calib-lines N  override score.calib_lines\n"
    "  --compare FILE   also build the plans of every score method and measure them on the held-out\n"
    "                   lines of FILE (the first calib-lines lines), printing a comparison\n"
    "  --quiet          no progress on standard error\n"
    "\n"
    "Exit status: 0 ok, 1 a file, the policy or a plan is invalid, 2 usage error.\n";

static const char *CMD = "plan";

// progress.h: one progress per stage (what), with an ETA; plain lines when standard error is a log
static void on_progress(void *ctx, const char *what, int done, int total) {
    seslm_progress *p = ctx;
    char label[96];
    snprintf(label, sizeof label, "seslm plan: %s", what);
    if (p->total != total || strcmp(p->label, label) != 0) seslm_progress_init(p, stderr, label, "", total);
    seslm_progress_update(p, done);
    if (done == total) seslm_progress_finish(p);
}

static int read_lines(const char *path, int limit, cli_texts *t) {
    cli_texts all = {0};
    if (!cli_texts_read_file(&all, path)) return 0;
    int ok = 1;
    for (int i = 0; ok && i < all.n && t->n < limit; i++)
        if (strspn(all.texts[i], " \t\f\v") < all.lens[i]) ok = cli_texts_add(t, all.texts[i], all.lens[i]); // blanks are no text
    cli_texts_free(&all);
    if (ok && t->n == 0) {
        cli_error(CMD, "%s: no line with text (empty, or only blank lines)", path);
        return 0;
    }
    return ok;
}

/* Moves every file of the finished work directory into out_dir (each rename atomic: a reader sees the
 * old file or the new one, never a part), then syncs out_dir. 1 ok. */
static int publish(const char *wdir, const char *out_dir) {
    DIR *d = opendir(wdir);
    if (!d) {
        cli_error(CMD, "cannot read %s: %s", wdir, strerror(errno));
        return 0;
    }
    int ok = 1;
    struct dirent *e;
    while (ok && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char a[4600], b[4600];
        snprintf(a, sizeof a, "%s/%s", wdir, e->d_name);
        snprintf(b, sizeof b, "%s/%s", out_dir, e->d_name);
        if (rename(a, b) != 0) {
            cli_error(CMD, "cannot move %s to %s: %s", a, b, strerror(errno));
            ok = 0;
        }
    }
    closedir(d);
    int fd = ok ? open(out_dir, O_RDONLY | O_DIRECTORY) : -1;
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    return ok;
}

int cmd_plan(int argc, char **argv) {
    const char *model_dir = cli_default_model_dir(), *tel_path = NULL, *cfg_path = NULL, *calib_path = NULL,
               *out_dir = NULL, *cmp_path = NULL;
    int threads = 0, batch = 32, calib_lines = 0, quiet = 0;
    const cli_arg args[] = {
        {"--model", CLI_ARG_STR, &model_dir, 0, 0},
        {"--telemetry", CLI_ARG_STR, &tel_path, 0, 0},
        {"--config", CLI_ARG_STR, &cfg_path, 0, 0},
        {"--calib", CLI_ARG_STR, &calib_path, 0, 0},
        {"--out", CLI_ARG_STR, &out_dir, 0, 0},
        {"--compare", CLI_ARG_STR, &cmp_path, 0, 0},
        {"--threads", CLI_ARG_INT, &threads, 0, 1024},
        {"--batch", CLI_ARG_INT, &batch, 1, 4096},
        {"--calib-lines", CLI_ARG_INT, &calib_lines, 1, 1 << 20},
        {"--quiet", CLI_ARG_FLAG, &quiet, 0, 0},
        {NULL, 0, NULL, 0, 0},
    };
    int prc = cli_parse_args(CMD, HELP, args, argc, argv, NULL);
    if (prc >= 0) return prc;
    if (!tel_path || !cfg_path || !calib_path || !out_dir) {
        cli_error(CMD, "--telemetry, --config, --calib and --out are required (see seslm plan --help)");
        return 2;
    }
    seslm_policy pol;
    if (seslm_policy_load(&pol, cfg_path) != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        return 1;
    }
    if (calib_lines) pol.calib_lines = calib_lines;
    // everything is written into a temporary directory beside --out and moved in only when all of it is
    // there: a failed run leaves --out as it was (issue 14: no half-written output)
    char wdir[4200];
    const int created = mkdir(out_dir, 0755) == 0;
    if (!created && errno != EEXIST) {
        cli_error(CMD, "cannot create %s: %s", out_dir, strerror(errno));
        return 1;
    }
    snprintf(wdir, sizeof wdir, "%s/.plan.tmp.XXXXXX", out_dir);
    if (!mkdtemp(wdir)) {
        cli_error(CMD, "cannot create a temporary directory in %s: %s", out_dir, strerror(errno));
        return 1;
    }
    int rc = 1;
    seslm_model *m = NULL;
    seslm_encoder *e = NULL;
    seslm_telemetry_dump *dump = NULL;
    cli_texts calib = {0}, held = {0};
    seslm_calib cal = {0}, hcal = {0};
    seslm_scores sc[4];
    int n_sc = 0;
    char path[4400], dump_path[4096];
    if (seslm_model_load(&m, model_dir) != SESLM_OK) goto fail;
    const seslm_model_config *c = seslm_model_get_config(m);
    if (seslm_policy_check_model(&pol, c, NULL) != SESLM_OK) goto fail;
    if (seslm_profile_read_telemetry(tel_path, seslm_model_weights_sha256(m), &dump, dump_path, sizeof dump_path) != SESLM_OK)
        goto fail;
    if (!quiet) fprintf(stderr, "seslm plan: telemetry %s (%llu sequences)\n", dump_path, (unsigned long long)dump->v.n_sequences);
    const double msl = seslm_profile_mean_seq_len(&dump->v);
    snprintf(path, sizeof path, "%s/profile.json", wdir);
    if (seslm_profile_write_json(&dump->v, &pol, seslm_model_tokenizer(m), path) != SESLM_OK) goto fail;
    if (!read_lines(calib_path, pol.calib_lines, &calib)) {
        rc = 1;
        goto done;
    }
    seslm_encoder_opts eo = {.backend = "cpu", .n_threads = threads, .max_batch = batch};
    if (seslm_encoder_new(&e, m, &eo) != SESLM_OK) goto fail;
    if (seslm_calib_init(&cal, e, c->hidden, (const char *const *)calib.texts, calib.lens, calib.n, batch) != SESLM_OK)
        goto fail;
    if (!quiet) fprintf(stderr, "seslm plan: %d calibration texts\n", calib.n);
    seslm_progress prog = {0};
    seslm_score_ctx sctx = {.m = m, .tel = &dump->v, .calib = &cal, .neuron_groups = pol.neuron_groups,
                            .progress = quiet ? NULL : on_progress, .progress_ctx = &prog};
    // always the cheap activation score and the policy's method; every method with --compare
    int nmeth = 0, mi_policy = 0;
    const seslm_score_method *meths = seslm_score_methods(&nmeth);
    for (int k = 0; k < nmeth && n_sc < 4; k++) {
        const char *name = meths[k].name;
        if (!cmp_path && strcmp(name, "activation") != 0 && strcmp(name, pol.method) != 0) continue;
        if (!quiet) fprintf(stderr, "seslm plan: scoring with '%s'\n", name);
        if (seslm_score_run(name, &sctx, &sc[n_sc]) != SESLM_OK) goto fail;
        if (strcmp(name, pol.method) == 0) mi_policy = n_sc;
        n_sc++;
    }
    const seslm_scores *sp[4] = {&sc[0], &sc[1], &sc[2], &sc[3]};
    snprintf(path, sizeof path, "%s/scores.json", wdir);
    if (seslm_scores_write_json(sp, n_sc, path) != SESLM_OK) goto fail;
    printf("%-10s %-10s %7s %10s %9s %15s %8s %8s\n", "candidate", "method", "target", "prunable-%", "total-%",
           "MFLOPs/token", "mean-cos", "p5-cos");
    for (int t = 0; t < pol.n_targets; t++) {
        seslm_plan pl;
        if (seslm_plan_build(&pl, &pol, c, &sc[mi_policy], pol.targets[t], msl) != SESLM_OK) goto fail;
        seslm_status st = seslm_plan_validate(&pl, &pol, c);
        if (st == SESLM_OK) st = seslm_plan_measure(&pl, c, &cal);
        char name[64];
        snprintf(name, sizeof name, "plan-%02d", (int)(pol.targets[t] * 100 + 0.5));
        snprintf(path, sizeof path, "%s/%s.json", wdir, name);
        if (st == SESLM_OK) st = seslm_plan_write_json(&pl, seslm_model_weights_sha256(m), path);
        if (st == SESLM_OK)
            printf("%-10s %-10s %6.0f%% %9.1f%% %8.1f%% %7.2f/%-7.2f %8.4f %8.4f\n", name, pl.method, 100 * pl.target,
                   100.0 * (double)(pl.params_parent - pl.params) / (double)pl.prunable_parent,
                   100.0 * (double)(pl.params_parent - pl.params) / (double)pl.params_parent, pl.flops / 1e6,
                   pl.flops_parent / 1e6, pl.mean_cos, pl.p5_cos);
        seslm_plan_free(&pl);
        if (st != SESLM_OK) goto fail;
    }
    if (cmp_path) { // held-out comparison of the methods: the lines after the calibration ones
        cli_texts all = {0};
        if (!read_lines(cmp_path, 1 << 30, &all)) goto done;
        for (int i = calib.n; i < all.n && held.n < calib.n; i++) cli_texts_add(&held, all.texts[i], all.lens[i]);
        cli_texts_free(&all);
        if (held.n == 0 || seslm_calib_init(&hcal, e, c->hidden, (const char *const *)held.texts, held.lens, held.n,
                                            batch) != SESLM_OK) {
            cli_error(CMD, "--compare: no held-out lines after the first %d", calib.n);
            goto done;
        }
        printf("\nheld-out comparison (%d texts):\n%-8s %-10s %8s %8s %8s\n", held.n, "target", "method", "heads", "mean-cos",
               "p5-cos");
        for (int t = 0; t < pol.n_targets; t++)
            for (int k = 0; k < n_sc; k++) {
                seslm_plan pl;
                if (seslm_plan_build(&pl, &pol, c, &sc[k], pol.targets[t], msl) != SESLM_OK) goto fail;
                seslm_status st = seslm_plan_measure(&pl, c, &hcal);
                int nh = 0;
                for (int l = 0; l < pl.n_layers; l++) nh += pl.n_remove_heads[l];
                if (st == SESLM_OK)
                    printf("%7.0f%% %-10s %8d %8.4f %8.4f\n", 100 * pl.target, sc[k].method, nh, pl.mean_cos, pl.p5_cos);
                // heads only: the 20%-of-heads comparison of docs/pruning.md
                for (int l = 0; l < pl.n_layers; l++) pl.n_remove_neurons[l] = 0;
                if (st == SESLM_OK) st = seslm_plan_measure(&pl, c, &hcal);
                if (st == SESLM_OK)
                    printf("%7.0f%% %-10s %8s %8.4f %8.4f\n", 100 * pl.target, "(heads)", "", pl.mean_cos, pl.p5_cos);
                seslm_plan_free(&pl);
                if (st != SESLM_OK) goto fail;
            }
    }
    rc = publish(wdir, out_dir) ? 0 : 1;
    goto done;
fail:
    cli_error(CMD, "%s", seslm_last_error());
    rc = 1;
done:
    util_rmtree(wdir); // (empty after a publish)
    if (rc && created) rmdir(out_dir); // a directory this run made, and left empty
    for (int k = 0; k < n_sc; k++) seslm_scores_free(&sc[k]);
    seslm_calib_free(&cal);
    seslm_calib_free(&hcal);
    cli_texts_free(&calib);
    cli_texts_free(&held);
    seslm_encoder_free(e);
    seslm_telemetry_dump_free(dump);
    seslm_model_free(m);
    return rc;
}
