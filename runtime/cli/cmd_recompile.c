/* cmd_recompile.c — `seslm recompile`: apply a pruning plan to the weights, writing the student model. */
#include "cli.h"
#include "plan.h"
#include "recompile.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char *HELP =
    "usage: seslm recompile --plan FILE --out DIR [--model DIR] [--config FILE]\n"
    "\n"
    "Applies a pruning plan (seslm plan) to the model's weights and writes the student model directory\n"
    "DIR: per layer, the planned attention heads (rows of Q/K/V, columns of the output projection) and\n"
    "FFN neurons (rows of the first, columns of the second dense layer) are cut out; everything else is\n"
    "inherited unchanged, so the student equals the parent with those heads / neurons masked. config.json\n"
    "gains \"seslm_layers\" (per-layer structure) and \"seslm_lineage\"; the tokenizer files are copied\n"
    "byte for byte. DIR is written through a temporary directory and renamed: it is complete or absent.\n"
    "Prints a JSON summary (parameters and bytes of parent and student, per-layer heads / FFN width).\n"
    "\n"
    "  --plan FILE    a plan-NN.json of seslm plan (or a hand-edited one)\n"
    "  --out DIR      the student model directory; must not exist\n"
    "  --model DIR    the parent; default $SESLM_MODEL_DIR or models/all-MiniLM-L6-v2\n"
    "  --config FILE  also check the plan against this policy (configs/evolve.yaml)\n"
    "\n"
    "Exit status: 0 ok, 1 bad plan / model / existing DIR / write failure, 2 usage error.\n";

static const char *CMD = "recompile";

static void json_string(const char *v) {
    cJSON *j = cJSON_CreateString(v);
    char *t = j ? cJSON_PrintUnformatted(j) : NULL;
    fputs(t ? t : "\"\"", stdout);
    free(t);
    cJSON_Delete(j);
}

/* The plan's "model_sha256", when present and non-empty, must be the parent's. */
static int check_plan_model(const char *plan_path, const char *sha) {
    char *txt = NULL;
    size_t n = 0;
    if (util_read_file(plan_path, &txt, &n, (size_t)64 << 20, NULL) != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        return 0;
    }
    cJSON *r = cJSON_ParseWithLength(txt, n);
    free(txt);
    const cJSON *s = r ? cJSON_GetObjectItemCaseSensitive(r, "model_sha256") : NULL;
    int ok = !cJSON_IsString(s) || !s->valuestring[0] || strcmp(s->valuestring, sha) == 0;
    if (!ok)
        cli_error(CMD, "%s was made for another model (model_sha256 %.16s..., this model %.16s...)", plan_path,
                  s->valuestring, sha);
    cJSON_Delete(r);
    return ok;
}

int cmd_recompile(int argc, char **argv) {
    const char *model_dir = cli_default_model_dir(), *plan_path = NULL, *out_dir = NULL, *cfg_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            fputs(HELP, stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            cli_error(CMD, "%s needs a value (or unknown option; see seslm recompile --help)", a);
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--model") == 0) model_dir = v;
        else if (strcmp(a, "--plan") == 0) plan_path = v;
        else if (strcmp(a, "--out") == 0) out_dir = v;
        else if (strcmp(a, "--config") == 0) cfg_path = v;
        else {
            cli_error(CMD, "unknown option %s (see seslm recompile --help)", a);
            return 2;
        }
    }
    if (!plan_path || !out_dir || !out_dir[0]) {
        cli_error(CMD, "--plan and --out are required (see seslm recompile --help)");
        return 2;
    }
    seslm_policy pol;
    if (cfg_path && seslm_policy_load(&pol, cfg_path) != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        return 1;
    }
    seslm_model *m = NULL;
    seslm_plan pl;
    int have_plan = 0, rc = 1;
    if (seslm_model_load(&m, model_dir) != SESLM_OK) goto fail;
    const seslm_model_config *c = seslm_model_get_config(m);
    if (seslm_plan_read_json(&pl, c, plan_path) != SESLM_OK) goto fail;
    have_plan = 1;
    if (!check_plan_model(plan_path, seslm_model_weights_sha256(m))) goto done;
    if (cfg_path && seslm_plan_validate(&pl, &pol, c) != SESLM_OK) goto fail;
    const char *base = strrchr(plan_path, '/');
    base = base ? base + 1 : plan_path;
    seslm_recompile_stats s;
    if (seslm_recompile_ex(m, &pl, base, out_dir, &s) != SESLM_OK) goto fail;
    printf("{\"parent\":");
    json_string(model_dir);
    printf(",\"student\":");
    json_string(out_dir);
    printf(",\"plan\":");
    json_string(plan_path);
    printf(",\"parent_sha256\":\"%s\",\"params_parent\":%lld,\"params\":%lld,\"bytes_parent\":%lld,\"bytes\":%lld,"
           "\"file_bytes_parent\":%lld,\"file_bytes\":%lld,\"params_ratio\":%.6f,\"heads_removed\":%d,"
           "\"neurons_removed\":%d,\"layers\":[",
           seslm_model_weights_sha256(m), (long long)s.params_parent, (long long)s.params, (long long)s.bytes_parent,
           (long long)s.bytes, (long long)s.file_bytes_parent, (long long)s.file_bytes,
           s.params_parent ? (double)s.params / (double)s.params_parent : 0.0, s.heads_removed, s.neurons_removed);
    for (int l = 0; l < c->n_layers; l++)
        printf("%s{\"layer\":%d,\"heads_parent\":%d,\"heads\":%d,\"ffn_parent\":%d,\"ffn\":%d}", l ? "," : "", l,
               c->layers[l].n_heads, c->layers[l].n_heads - pl.n_remove_heads[l], c->layers[l].ffn_dim,
               c->layers[l].ffn_dim - pl.n_remove_neurons[l]);
    printf("]}\n");
    rc = 0;
    goto done;
fail:
    cli_error(CMD, "%s", seslm_last_error());
    rc = 1;
done:
    if (have_plan) seslm_plan_free(&pl);
    seslm_model_free(m);
    return rc;
}
