/* cmd_drift.c — `seslm drift`: has the traffic changed between two sets of telemetry dumps?
 * (pipeline/drift/drift.h, docs/drift.md) */
#include "cli.h"
#include "cli_telemetry.h"
#include "drift.h"
#include "s3_client.h"
#include "ingest.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *HELP =
    "usage: seslm drift --reference DIR|FILE|URL --current DIR|FILE|URL [--config FILE] [--model DIR]\n"
    "\n"
    "Merges the telemetry dumps of each side (as seslm ingest does; unreadable or foreign dumps are\n"
    "skipped and listed) and compares the current traffic with the reference: the embedding distribution\n"
    "(MMD with an RBF kernel and a permutation test, diagonal Frechet distance), the vocabulary\n"
    "(Jensen-Shannon divergence of token frequencies, rate of tokens never seen in the reference) and the\n"
    "predicted intents when recorded. Prints one JSON object: {\"drift\": true|false, \"checks\": {...}}.\n"
    "\n"
    "  --reference P  directory of dumps (final names only), one dump, or s3://BUCKET/PREFIX (every dump\n"
    "                 under PREFIX/ in an S3-compatible store, as seslm ingest reads it; docs/fleet.md)\n"
    "  --current P    the same, for the traffic to judge\n"
    "  --config FILE  thresholds (YAML, configs/drift.yaml; default: the built-in values, which are\n"
    "                 those of configs/drift.yaml)\n"
    "  --model DIR    the model every dump must have been recorded on (its weights' SHA-256); without it\n"
    "                 the reference's first readable dump sets the hash both sides must carry\n"
    "\n"
    "Exit status: 0 no drift, 1 drift, 2 usage error (bad option, unreadable or invalid --config),\n"
    "3 unreadable inputs (a side with no readable dump, a missing directory, the model failed to load).\n";

static int add_side(seslm_ingest *g, const char *path) {
    struct stat sb;
    if (seslm_s3_is_url(path)) {
        if (cli_ingest_add_source(g, path, "drift") != SESLM_OK) {
            cli_error("drift", "%s", seslm_last_error());
            return 0;
        }
    } else if (stat(path, &sb) != 0) {
        cli_error("drift", "cannot read %s: no such file or directory", path);
        return 0;
    } else {
        seslm_status st = S_ISDIR(sb.st_mode) ? seslm_ingest_add_dir(g, path) : seslm_ingest_add_file(g, path);
        if (st != SESLM_OK && (S_ISDIR(sb.st_mode) || st == SESLM_ERR_NOMEM)) {
            cli_error("drift", "%s", seslm_last_error());
            return 0;
        }
    }
    for (int i = 0; i < seslm_ingest_n_skipped(g); i++)
        fprintf(stderr, "seslm drift: warning: skipped %s\n", seslm_ingest_skipped(g, i).reason);
    for (int i = 0; i < seslm_ingest_n_duplicates(g); i++)
        fprintf(stderr, "seslm drift: warning: %s is a %s\n", seslm_ingest_duplicate(g, i).path,
                seslm_ingest_duplicate(g, i).reason);
    if (seslm_ingest_n_read(g) == 0) {
        cli_error("drift", "no readable dump in %s (%d skipped)", path, seslm_ingest_n_skipped(g));
        return 0;
    }
    return 1;
}

int cmd_drift(int argc, char **argv) {
    const char *cmd = "drift", *ref = NULL, *cur = NULL, *config = NULL, *model_dir = NULL;
    const cli_arg args[] = {
        {"--reference", CLI_ARG_STR, &ref, 0, 0},
        {"--current", CLI_ARG_STR, &cur, 0, 0},
        {"--config", CLI_ARG_STR, &config, 0, 0},
        {"--model", CLI_ARG_STR, &model_dir, 0, 0},
        {NULL, 0, NULL, 0, 0},
    };
    int prc = cli_parse_args(cmd, HELP, args, argc, argv, NULL);
    if (prc >= 0) return prc;
    if (!ref || !cur) {
        cli_error(cmd, "--reference and --current are required (see seslm drift --help)");
        return 2;
    }
    seslm_drift_config cfg;
    seslm_drift_config_default(&cfg);
    if (config && seslm_drift_config_load(&cfg, config) != SESLM_OK) {
        cli_error(cmd, "%s", seslm_last_error());
        return 2;
    }
    char sha[72] = "";
    if (model_dir) {
        seslm_model *m = NULL;
        if (seslm_model_load(&m, model_dir) != SESLM_OK) {
            cli_error(cmd, "%s", seslm_last_error());
            return 3;
        }
        snprintf(sha, sizeof sha, "%s", seslm_model_weights_sha256(m));
        seslm_model_free(m);
    }
    seslm_ingest *gr = NULL, *gc = NULL;
    int rc = 3;
    if (seslm_ingest_new(&gr, &(seslm_ingest_opts){.expected_sha256 = sha[0] ? sha : NULL}) != SESLM_OK) goto done;
    if (!add_side(gr, ref)) goto done;
    if (!sha[0]) snprintf(sha, sizeof sha, "%s", seslm_ingest_view(gr)->model_sha256);
    if (seslm_ingest_new(&gc, &(seslm_ingest_opts){.expected_sha256 = sha}) != SESLM_OK) goto done;
    if (!add_side(gc, cur)) goto done;
    seslm_drift_result res;
    if (seslm_drift_compare(seslm_ingest_view(gr), seslm_ingest_view(gc), &cfg, &res) != SESLM_OK) {
        cli_error(cmd, "%s", seslm_last_error());
        goto done;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "drift", res.drift);
    cJSON *checks = cJSON_AddObjectToObject(j, "checks");
    for (int i = 0; i < SESLM_DRIFT_CHECKS; i++) {
        const seslm_drift_check *c = &res.checks[i];
        cJSON *o = cJSON_AddObjectToObject(checks, c->name);
        static const char *const state[] = {"ok", "fired", "skipped"};
        cJSON_AddStringToObject(o, "status", state[c->state]);
        cJSON_AddBoolToObject(o, "fired", c->state == SESLM_CHECK_FIRED);
        if (c->state != SESLM_CHECK_SKIPPED || c->value != 0) cJSON_AddNumberToObject(o, "value", c->value);
        cJSON_AddNumberToObject(o, "threshold", c->threshold);
        if (c->note[0]) cJSON_AddStringToObject(o, "note", c->note);
        if ((i == 2 || i == 3) && c->state != SESLM_CHECK_SKIPPED) {
            cJSON_AddNumberToObject(o, "observed", c->raw);
            cJSON_AddNumberToObject(o, "expected_without_drift", c->expected);
        }
        if (i == 0 && c->state != SESLM_CHECK_SKIPPED) {
            cJSON_AddNumberToObject(o, "p_value", res.mmd.p_value);
            cJSON_AddNumberToObject(o, "alpha", cfg.mmd_alpha);
            cJSON_AddNumberToObject(o, "permutations", res.mmd.permutations);
            cJSON_AddNumberToObject(o, "median_sq_distance", res.mmd.bandwidth);
            cJSON_AddNumberToObject(o, "n_reference", res.mmd.n_ref);
            cJSON_AddNumberToObject(o, "n_current", res.mmd.n_cur);
        }
    }
    cJSON_AddItemToObject(j, "reference", seslm_ingest_summary(gr));
    cJSON_AddItemToObject(j, "current", seslm_ingest_summary(gc));
    char *s = cJSON_PrintUnformatted(j);
    if (s) printf("%s\n", s);
    free(s);
    cJSON_Delete(j);
    rc = res.drift ? 1 : 0;
done:
    seslm_ingest_free(gr);
    seslm_ingest_free(gc);
    return rc;
}
