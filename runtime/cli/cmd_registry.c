/* cmd_registry.c — `seslm registry list|show|lineage|diff|register|fetch|runs|add-run`: the model registry. */
#include "cli.h"
#include "cli_registry.h"
#include "decoder.h"
#include "gguf.h"
#include "store.h"
#include "store_fetch.h"
#include "store_s3.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static const char *HELP =
    "usage: seslm registry <list|show|lineage|diff|register|fetch|history|runs|add-run> [options]\n"
    "\n"
    "  list                          every version (size, ratios, run) and every alias\n"
    "  show VERSION                  one version: hash, lineage, architecture, metrics, plan, config\n"
    "  lineage VERSION               the chain from VERSION up to its root\n"
    "  diff A B                      architecture, size, ratio and metric deltas B - A\n"
    "  register MODEL_DIR            copy MODEL_DIR into the content-addressed store and record it (an encoder's\n"
    "                                directory, or a decoder's: model.gguf, e.g. a seslm recompile-decoder student)\n"
    "      --parent VERSION|none     parent (default: found from config.json seslm_lineage, else none)\n"
    "      --metrics FILE            validation metrics, a JSON object of numbers (higher is better)\n"
    "      --plan FILE               the plan that produced it (JSON)\n"
    "      --config FILE             the policy / config that produced it (stored as text)\n"
    "      --run-id ID --note TEXT\n"
    "      --store DIR|s3://BUCKET/PREFIX   artifact store (default $SESLM_STORE, else runs/store); s3:// needs\n"
    "                                SESLM_S3_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY\n"
    "  fetch VERSION --out DIR       the stored model (local or S3 store) into the new directory DIR,\n"
    "                                its content hash checked\n"
    "  history [ALIAS]               what ALIAS (default live) pointed at, when, who, why\n"
    "  runs                          the evolution runs\n"
    "  add-run --run-id ID --stages FILE [--outcome TEXT] [--started T] [--finished T]\n"
    "                                record an evolution run (stages: JSON array of {name, seconds})\n"
    "\n"
    "VERSION: a number (3 or v3), an alias (live, previous, candidate, ...) or >= 8 hex digits of the hash.\n"
    "Common options:\n"
    "  --registry URL   sqlite:PATH or PATH (SQLite), postgresql://... or pg:CONNINFO (PostgreSQL);\n"
    "                   default $SESLM_REGISTRY, else runs/registry.db\n"
    "  --by NAME        who acts (default $SESLM_ACTOR, else the OS user)\n"
    "\n"
    "Output is JSON. Exit status: 0 ok, 1 registry / store / file failure, 2 usage error or unknown version.\n";

static const char *CMD = "registry";

typedef struct {
    const char *registry, *by, *parent, *metrics, *plan, *config, *run_id, *note, *store, *stages, *outcome, *started,
        *finished, *out;
    const char *pos[3];
    int n_pos;
} reg_opts;

/* argv[1] is the subcommand; its options and VERSION / MODEL_DIR arguments follow. */
static int parse(reg_opts *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    cli_list pos = {o->pos, 0, 3};
    const cli_arg args[] = {
        {"--registry", CLI_ARG_STR, &o->registry, 0, 0}, {"--by", CLI_ARG_STR, &o->by, 0, 0},
        {"--parent", CLI_ARG_STR, &o->parent, 0, 0},     {"--metrics", CLI_ARG_STR, &o->metrics, 0, 0},
        {"--plan", CLI_ARG_STR, &o->plan, 0, 0},         {"--config", CLI_ARG_STR, &o->config, 0, 0},
        {"--run-id", CLI_ARG_STR, &o->run_id, 0, 0},     {"--note", CLI_ARG_STR, &o->note, 0, 0},
        {"--store", CLI_ARG_STR, &o->store, 0, 0},       {"--stages", CLI_ARG_STR, &o->stages, 0, 0},
        {"--outcome", CLI_ARG_STR, &o->outcome, 0, 0},   {"--started", CLI_ARG_STR, &o->started, 0, 0},
        {"--finished", CLI_ARG_STR, &o->finished, 0, 0}, {"--out", CLI_ARG_STR, &o->out, 0, 0},
        {"", CLI_ARG_LIST, &pos, 0, 0},
        {NULL, 0, NULL, 0, 0},
    };
    int rc = cli_parse_args(CMD, HELP, args, argc - 1, argv + 1, NULL);
    o->n_pos = pos.n;
    return rc;
}

/* Resolves a reference; unknown is a usage error (2), a registry failure 1. */
static int resolve(seslm_registry *r, const char *ref, long long *v) {
    seslm_status s = seslm_registry_resolve(r, ref, v);
    if (s == SESLM_OK) return 0;
    cli_error(CMD, "%s", seslm_last_error());
    return s == SESLM_ERR_ARG ? 2 : 1;
}

static int json_file(const char *path, const char *what, int need_object, char **out) {
    *out = NULL;
    if (!path) return 0;
    size_t n = 0;
    if (util_read_file(path, out, &n, (size_t)16 << 20, NULL) != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        return 1;
    }
    if (!what) return 0; // stored as text
    cJSON *j = cJSON_ParseWithLength(*out, n);
    int ok = j && (need_object == 0 || (need_object == 1 && cJSON_IsObject(j)) || (need_object == 2 && cJSON_IsArray(j)));
    if (ok && need_object == 1) {
        const cJSON *it;
        cJSON_ArrayForEach(it, j) if (!cJSON_IsNumber(it)) ok = 0;
    }
    cJSON_Delete(j);
    if (!ok) {
        cli_error(CMD, "%s: %s", path, what);
        free(*out);
        *out = NULL;
        return 1;
    }
    return 0;
}

/* The architecture summary, parameters and bytes of a stored model, read by loading it. */
/* A decoder's directory holds model.gguf (seslm recompile-decoder's student, or its parent): its shape, bytes,
 * the file's hash and the parent's from the file's seslm.parent_sha256. 1 when the directory holds none. */
static int decoder_summary(const char *dir, char **arch, long long *params, long long *bytes, char wsha[65],
                           char parent_wsha[65]) {
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/model.gguf", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return 1;
    fclose(f);
    seslm_llm *m = NULL;
    if (seslm_llm_load(&m, path) != SESLM_OK) return -1;
    const seslm_llm_config *c = seslm_llm_cfg(m);
    snprintf(wsha, 65, "%s", seslm_llm_sha256(m));
    *bytes = (long long)seslm_llm_weight_bytes(m);
    const long long L = c->n_layer, C = c->n_embd, A = (long long)c->n_head * c->head_dim;
    const long long KV = (long long)c->n_head_kv * c->head_dim;
    *params = (long long)c->n_vocab * C + L * (2 * C * A + 2 * C * KV + 3 * C * c->n_ff + 2 * C) + C;
    cJSON *a = cJSON_CreateObject();
    cJSON_AddStringToObject(a, "kind", "decoder");
    cJSON_AddNumberToObject(a, "hidden", C);
    cJSON_AddNumberToObject(a, "n_layers", (double)L);
    cJSON_AddNumberToObject(a, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(a, "vocab_size", c->n_vocab);
    cJSON_AddNumberToObject(a, "max_seq_len", c->n_ctx_train);
    cJSON_AddNumberToObject(a, "kv_heads", c->n_head_kv);
    cJSON *heads = cJSON_AddArrayToObject(a, "heads"), *ffn = cJSON_AddArrayToObject(a, "ffn");
    for (int l = 0; l < c->n_layer; l++) {
        cJSON_AddItemToArray(heads, cJSON_CreateNumber(c->n_head));
        cJSON_AddItemToArray(ffn, cJSON_CreateNumber(c->n_ff));
    }
    *arch = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    seslm_llm_free(m);
    gguf_file g;
    parent_wsha[0] = 0;
    if (gguf_open(&g, path) == SESLM_OK) {
        gguf_str ps;
        if (gguf_get_str(&g, "seslm.parent_sha256", &ps) == 0 && ps.len == 64) snprintf(parent_wsha, 65, "%.64s", ps.s);
        gguf_close(&g);
    }
    return 0;
}

static int model_summary(const char *dir, char **arch, long long *params, long long *bytes, char wsha[65],
                         char parent_wsha[65]) {
    seslm_model *m = NULL;
    parent_wsha[0] = 0;
    int d = decoder_summary(dir, arch, params, bytes, wsha, parent_wsha);
    if (d <= 0) {
        if (d < 0) cli_error(CMD, "%s", seslm_last_error());
        return -d;
    }
    if (seslm_model_load(&m, dir) != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        return 1;
    }
    const seslm_model_config *c = seslm_model_get_config(m);
    int ng = seslm_model_param_groups(m, NULL, 0);
    seslm_param_group *g = calloc((size_t)ng + 1, sizeof *g);
    *params = *bytes = 0;
    if (g) {
        seslm_model_param_groups(m, g, ng);
        for (int i = 0; i < ng; i++) *params += g[i].params, *bytes += g[i].bytes;
        free(g);
    }
    snprintf(wsha, 65, "%s", seslm_model_weights_sha256(m));
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "hidden", c->hidden);
    cJSON_AddNumberToObject(a, "n_layers", c->n_layers);
    cJSON_AddNumberToObject(a, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(a, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(a, "max_seq_len", c->max_seq_len);
    cJSON *heads = cJSON_AddArrayToObject(a, "heads"), *ffn = cJSON_AddArrayToObject(a, "ffn");
    for (int l = 0; l < c->n_layers; l++) {
        cJSON_AddItemToArray(heads, cJSON_CreateNumber(c->layers[l].n_heads));
        cJSON_AddItemToArray(ffn, cJSON_CreateNumber(c->layers[l].ffn_dim));
    }
    *arch = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    seslm_model_free(m);
    // seslm recompile writes the parent's weight hash into config.json: the lineage link
    char path[PATH_MAX + 16], *txt = NULL;
    size_t n = 0;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (util_read_file(path, &txt, &n, (size_t)4 << 20, NULL) == SESLM_OK) {
        cJSON *j = cJSON_ParseWithLength(txt, n);
        const cJSON *lin = cJSON_GetObjectItemCaseSensitive(j, "seslm_lineage");
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(lin, "parent_weights_sha256");
        if (cJSON_IsString(p) && strlen(p->valuestring) == 64) snprintf(parent_wsha, 65, "%s", p->valuestring);
        cJSON_Delete(j);
        free(txt);
    }
    return 0;
}

static int do_register(seslm_registry *r, reg_opts *o, const char *actor) {
    if (o->n_pos != 1) {
        cli_error(CMD, "register needs one MODEL_DIR");
        return 2;
    }
    char *metrics = NULL, *plan = NULL, *config = NULL, *arch = NULL;
    int rc = json_file(o->metrics, "expected a JSON object of numbers", 1, &metrics);
    if (!rc) rc = json_file(o->plan, "expected JSON", 0, &plan);
    if (!rc) rc = json_file(o->config, NULL, 0, &config);
    long long parent = 0;
    if (!rc && o->parent && strcmp(o->parent, "none") != 0) rc = resolve(r, o->parent, &parent);
    const char *store = o->store ? o->store : getenv("SESLM_STORE");
    if (!store || !store[0]) store = "runs/store";
    char sha[65], loc[PATH_MAX], abs_loc[PATH_MAX], wsha[65], pwsha[65];
    long long params = 0, bytes = 0;
    int existed_store = 0, existed = 0;
    long long version = 0;
    // load it first: a directory that is no model is refused before anything is copied
    if (!rc) rc = model_summary(o->pos[0], &arch, &params, &bytes, wsha, pwsha);
    if (!rc && seslm_s3_is_url(store)) { // the location recorded is the s3:// URL of the model
        seslm_s3 s3;
        if (seslm_s3_open(&s3, store) != SESLM_OK ||
            seslm_s3_put_dir(&s3, o->pos[0], sha, NULL, abs_loc, sizeof abs_loc, &existed_store) != SESLM_OK) {
            cli_error(CMD, "%s", seslm_last_error());
            rc = 1;
        }
    } else if (!rc && seslm_store_put(store, o->pos[0], sha, loc, sizeof loc, &existed_store) != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        rc = 1;
    } else if (!rc && !realpath(loc, abs_loc)) {
        snprintf(abs_loc, sizeof abs_loc, "%s", loc);
    }
    if (!rc && !o->parent && pwsha[0] && seslm_registry_find_by_weights(r, pwsha, &parent) != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        rc = 1;
    }
    if (!rc) {
        seslm_registry_version_in v = {sha, wsha, abs_loc, arch, metrics, plan, config, o->run_id, o->note,
                                       parent, params, bytes};
        if (seslm_registry_add_version(r, &v, actor, &version, &existed) != SESLM_OK) {
            cli_error(CMD, "%s", seslm_last_error());
            rc = 1;
        }
    }
    if (!rc) {
        char *json = NULL;
        if (seslm_registry_show_json(r, version, &json) != SESLM_OK) {
            cli_error(CMD, "%s", seslm_last_error());
            rc = 1;
        } else {
            cJSON *j = cJSON_Parse(json);
            free(json);
            cJSON_AddBoolToObject(j, "existed", existed);
            cJSON_DeleteItemFromObject(j, "plan");
            cJSON_DeleteItemFromObject(j, "config");
            cli_print_json_text(cJSON_PrintUnformatted(j));
            cJSON_Delete(j);
        }
    }
    free(metrics);
    free(plan);
    free(config);
    free(arch);
    return rc;
}

/* registry fetch VERSION --out DIR: the version's stored model, from its recorded location. */
static int do_fetch(seslm_registry *r, long long version, const char *out) {
    char *json = NULL;
    if (seslm_registry_show_json(r, version, &json) != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        return 1;
    }
    cJSON *j = cJSON_Parse(json);
    free(json);
    const cJSON *loc = cJSON_GetObjectItemCaseSensitive(j, "location"), *sha = cJSON_GetObjectItemCaseSensitive(j, "sha256");
    int rc = 0;
    seslm_status st;
    if (!cJSON_IsString(loc) || !cJSON_IsString(sha)) {
        cli_error(CMD, "v%lld has no location or hash", version);
        rc = 1;
    } else if ((st = seslm_store_fetch(loc->valuestring, sha->valuestring, out)) != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        rc = st == SESLM_ERR_ARG ? 2 : 1; // an existing --out is a usage error
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "version", (double)version);
        cJSON_AddStringToObject(o, "sha256", sha->valuestring);
        cJSON_AddStringToObject(o, "from", loc->valuestring);
        cJSON_AddStringToObject(o, "out", out);
        cli_print_json_text(cJSON_PrintUnformatted(o));
        cJSON_Delete(o);
    }
    cJSON_Delete(j);
    return rc;
}

int cmd_registry(int argc, char **argv) {
    if (argc < 2 || cli_is_help(argv[1])) {
        fputs(HELP, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    static const char *const SUBS[] = {"list", "show", "lineage", "diff", "register", "history", "runs", "add-run", "fetch"};
    int known = 0;
    for (size_t i = 0; i < sizeof SUBS / sizeof SUBS[0]; i++) known |= strcmp(sub, SUBS[i]) == 0;
    if (!known) {
        cli_error(CMD, "unknown subcommand '%s' (see seslm registry --help)", sub);
        return 2;
    }
    reg_opts o;
    int rc = parse(&o, argc, argv);
    if (rc >= 0) return rc;
    int need = !strcmp(sub, "show") || !strcmp(sub, "lineage") || !strcmp(sub, "fetch") ? 1 : !strcmp(sub, "diff") ? 2 : -1;
    if (need >= 0 && o.n_pos != need) {
        cli_error(CMD, "%s needs %d VERSION argument%s", sub, need, need > 1 ? "s" : "");
        return 2;
    }
    if (!strcmp(sub, "fetch") && (!o.out || !o.out[0])) {
        cli_error(CMD, "fetch needs --out DIR");
        return 2;
    }
    if (!strcmp(sub, "add-run") && (!o.run_id || !o.stages)) {
        cli_error(CMD, "add-run needs --run-id and --stages");
        return 2;
    }
    seslm_registry *r = cli_registry_open(CMD, o.registry);
    if (!r) return 1;
    char user[256], *json = NULL;
    const char *actor = cli_registry_actor(o.by, user, sizeof user);
    seslm_status s = SESLM_OK;
    long long a = 0, b = 0;
    rc = 0;
    if (!strcmp(sub, "register")) {
        rc = do_register(r, &o, actor);
    } else if (!strcmp(sub, "list")) {
        s = seslm_registry_list_json(r, &json);
    } else if (!strcmp(sub, "history")) {
        if (o.n_pos > 1) {
            cli_error(CMD, "history takes at most one ALIAS");
            rc = 2;
        } else {
            s = seslm_registry_history_json(r, o.n_pos ? o.pos[0] : "live", &json);
        }
    } else if (!strcmp(sub, "runs")) {
        s = seslm_registry_runs_json(r, &json);
    } else if (!strcmp(sub, "add-run")) {
        char *stages = NULL;
        rc = json_file(o.stages, "expected a JSON array of stages", 2, &stages);
        if (!rc) s = seslm_registry_add_run(r, o.run_id, stages, o.outcome, o.started, o.finished, actor);
        if (!rc && s == SESLM_OK) printf("{\"run_id\":\"%s\",\"recorded\":true}\n", o.run_id);
        free(stages);
    } else if ((rc = resolve(r, o.pos[0], &a)) == 0 && (need < 2 || (rc = resolve(r, o.pos[1], &b)) == 0)) {
        if (!strcmp(sub, "fetch")) rc = do_fetch(r, a, o.out);
        else if (!strcmp(sub, "show")) s = seslm_registry_show_json(r, a, &json);
        else if (!strcmp(sub, "lineage")) s = seslm_registry_lineage_json(r, a, &json);
        else s = seslm_registry_diff_json(r, a, b, &json);
    }
    if (s != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        rc = 1;
    } else if (json) {
        cli_print_json_text(json);
    }
    seslm_registry_close(r);
    return rc;
}
