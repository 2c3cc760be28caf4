/* cmd_promote.c — `seslm promote`, `seslm approve`, `seslm rollback`: governed alias changes, each one
 * registry transaction with its audit row, optionally followed by a blue-green reload of a serving node. */
#include "cli.h"
#include "cli_registry.h"

#include "store.h"
#include "store_s3.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char *HELP_PROMOTE =
    "usage: seslm promote VERSION [--alias NAME] [--reason TEXT] [--by NAME] [--policy FILE]\n"
    "                     [--notify http://HOST:PORT [--admin-token-file F]] [--registry URL]\n"
    "\n"
    "Points an alias at VERSION in one transaction; for live, the model that was live becomes 'previous' in\n"
    "the same transaction, so `seslm rollback` can return to it. One registry holds encoders and decoders:\n"
    "each kind has its own live alias ('live', or 'live-KIND' such as live-decoder, with its own\n"
    "'previous-KIND'), and an alias never changes kind. Default alias: 'live', unless it holds a model of\n"
    "another kind, then 'live-KIND' (KIND: encoder or decoder). The policy (default\n"
    "$SESLM_POLICY, else configs/governance.yaml, else: live always needs an approval) says which promotions\n"
    "need an approval recorded with `seslm approve`; without one the promotion is refused. With --notify,\n"
    "a promotion to a live alias then asks the serving node to reload the new model from the store (POST\n"
    "/admin/reload; token from --admin-token-file or $SESLM_ADMIN_TOKEN). Every step is audited.\n"
    "Before any change the stored model is hashed and compared with its registered hash: a tampered or\n"
    "corrupted artifact is refused (exit 1; audited as \"refuse\", or as a notify with \"reloaded\": false),\n"
    "and the serving node checks the directory again as it loads it (docs/security.md).\n"
    "\n"
    "Exit status: 0 ok, 1 refused by the policy / registry failure / the node did not reload, 2 usage error\n"
    "or unknown version.\n";

static const char *HELP_APPROVE =
    "usage: seslm approve VERSION --by NAME --reason TEXT [--alias NAME] [--registry URL]\n"
    "\n"
    "Records that NAME approves promoting VERSION to the alias (default: the one `seslm promote VERSION`\n"
    "would use: 'live', or 'live-KIND' when live holds another kind of model), and why. Audited.\n"
    "Exit status: 0 ok, 1 registry failure, 2 usage error or unknown version.\n";

static const char *HELP_ROLLBACK =
    "usage: seslm rollback [--alias live|live-KIND] [--reason TEXT] [--by NAME] [--policy FILE]\n"
    "                      [--notify http://HOST:PORT [--admin-token-file F]] [--registry URL]\n"
    "\n"
    "Swaps live and previous (or live-KIND and previous-KIND, e.g. --alias live-decoder) in one\n"
    "transaction: the model that was live before the last promotion is live again (rolling back twice\n"
    "returns to where you started). With --notify the serving node reloads it without downtime. Audited.\n"
    "Exit status: 0 ok, 1 nothing to roll back to / refused / registry failure / no reload, 2 usage error.\n";

typedef struct {
    const char *registry, *by, *alias, *reason, *policy, *notify, *token_file;
    const char *pos[2];
    int n_pos;
} gov_opts;

static int parse(gov_opts *o, const char *cmd, const char *help, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    cli_list pos = {o->pos, 0, 2};
    const cli_arg args[] = {
        {"--registry", CLI_ARG_STR, &o->registry, 0, 0},
        {"--by", CLI_ARG_STR, &o->by, 0, 0},
        {"--alias", CLI_ARG_STR, &o->alias, 0, 0},
        {"--reason", CLI_ARG_STR, &o->reason, 0, 0},
        {"--policy", CLI_ARG_STR, &o->policy, 0, 0},
        {"--notify", CLI_ARG_STR, &o->notify, 0, 0},
        {"--admin-token-file", CLI_ARG_STR, &o->token_file, 0, 0},
        {"", CLI_ARG_LIST, &pos, 0, 0}, // VERSION (and for rollback nothing: checked by the command)
        {NULL, 0, NULL, 0, 0},
    };
    int rc = cli_parse_args(cmd, help, args, argc, argv, NULL);
    o->n_pos = pos.n;
    return rc;
}

/* Checks that the stored model of `version` is byte for byte what was registered: its directory's content
 * hash (store.h) equals the recorded sha256. 0 ok (an S3 location is checked by `registry fetch` as it
 * downloads), 1 with the reason in why. *loc_out (may be NULL) gets the location (malloc'd). */
static int verify_stored(seslm_registry *r, long long version, char **loc_out, char *why, size_t cap) {
    char *json = NULL;
    if (loc_out) *loc_out = NULL;
    if (seslm_registry_show_json(r, version, &json) != SESLM_OK) {
        snprintf(why, cap, "%s", seslm_last_error());
        return 1;
    }
    cJSON *j = cJSON_Parse(json);
    free(json);
    const cJSON *loc = cJSON_GetObjectItemCaseSensitive(j, "location"), *sha = cJSON_GetObjectItemCaseSensitive(j, "sha256");
    int rc = 0;
    char got[65];
    if (!cJSON_IsString(loc) || !cJSON_IsString(sha)) {
        snprintf(why, cap, "v%lld has no location or hash", version);
        rc = 1;
    } else if (!seslm_s3_is_url(loc->valuestring)) {
        if (seslm_store_hash_dir(loc->valuestring, got, NULL) != SESLM_OK) {
            snprintf(why, cap, "the stored model of v%lld cannot be read: %s", version, seslm_last_error());
            rc = 1;
        } else if (strcmp(got, sha->valuestring) != 0) {
            snprintf(why, cap, "the stored model %s of v%lld hashes to %s, not its registered %s: tampered or corrupted",
                     loc->valuestring, version, got, sha->valuestring);
            rc = 1;
        }
    }
    if (!rc && loc_out && !(*loc_out = strdup(loc->valuestring))) {
        snprintf(why, cap, "out of memory");
        rc = 1;
    }
    cJSON_Delete(j);
    return rc;
}

/* Audits a reload that was refused or failed: {"version", "node", "reloaded": false, "error"}. */
static void audit_notify(const char *cmd, seslm_registry *r, const gov_opts *o, const char *alias, long long version,
                         const char *actor, int ok, const char *why) {
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "version", (double)version);
    cJSON_AddStringToObject(d, "node", o->notify);
    cJSON_AddBoolToObject(d, "reloaded", ok);
    if (!ok) cJSON_AddStringToObject(d, "error", why);
    char *detail = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    if (seslm_registry_audit(r, actor, "notify", alias, NULL, detail) != SESLM_OK)
        cli_error(cmd, "could not audit the reload: %s", seslm_last_error());
    free(detail);
}

/* Tells the serving node to load version's stored model, once it is verified; audits the outcome.
 * 0 ok, 1 failed. */
static int notify(const char *cmd, seslm_registry *r, const gov_opts *o, const char *alias, long long version,
                  const char *actor) {
    char why[1024] = "", *loc = NULL;
    int rc = verify_stored(r, version, &loc, why, sizeof why);
    if (!rc) rc = cli_notify_reload(o->notify, loc, o->token_file, why, sizeof why);
    free(loc);
    audit_notify(cmd, r, o, alias, version, actor, rc == 0, why);
    if (rc) cli_error(cmd, "v%lld is '%s' in the registry, but the serving node did not reload: %s", version, alias, why);
    return rc;
}

/* The kind of version v ("decoder" when its arch says so, else "encoder"); 0 ok, else 1 with the error. */
static int version_kind(seslm_registry *r, long long v, char *kind, size_t cap) {
    char *json = NULL;
    snprintf(kind, cap, "encoder");
    if (seslm_registry_show_json(r, v, &json) != SESLM_OK) return 1;
    cJSON *j = cJSON_Parse(json);
    free(json);
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "arch"), "kind");
    if (cJSON_IsString(k) && k->valuestring[0]) snprintf(kind, cap, "%s", k->valuestring);
    cJSON_Delete(j);
    return 0;
}

/* The alias a promotion of v goes to when none is named: 'live', unless live holds a model of another kind,
 * then 'live-KIND', so an encoder and a decoder share a registry without one replacing the other. */
static int default_alias(const char *cmd, seslm_registry *r, long long v, char *buf, size_t cap) {
    char kv[32], kl[32];
    long long live = 0;
    snprintf(buf, cap, "live");
    if (version_kind(r, v, kv, sizeof kv)) {
        cli_error(cmd, "%s", seslm_last_error());
        return 1;
    }
    if (seslm_registry_alias_get(r, "live", &live) != SESLM_OK) {
        cli_error(cmd, "%s", seslm_last_error());
        return 1;
    }
    if (live <= 0) return 0;
    if (version_kind(r, live, kl, sizeof kl)) {
        cli_error(cmd, "%s", seslm_last_error());
        return 1;
    }
    if (strcmp(kv, kl) != 0) snprintf(buf, cap, "live-%s", kv);
    return 0;
}

static int resolve(const char *cmd, seslm_registry *r, const char *ref, long long *v) {
    seslm_status s = seslm_registry_resolve(r, ref, v);
    if (s == SESLM_OK) return 0;
    cli_error(cmd, "%s", seslm_last_error());
    return s == SESLM_ERR_ARG ? 2 : 1;
}

int cmd_promote(int argc, char **argv) {
    const char *CMD = "promote";
    gov_opts o;
    int rc = parse(&o, CMD, HELP_PROMOTE, argc, argv);
    if (rc >= 0) return rc;
    if (o.n_pos != 1) {
        cli_error(CMD, "one VERSION is required (see seslm promote --help)");
        return 2;
    }
    seslm_governance g;
    if (cli_registry_policy(CMD, o.policy, &g)) return 1;
    seslm_registry *r = cli_registry_open(CMD, o.registry);
    if (!r) return 1;
    char user[256], defalias[48];
    const char *actor = cli_registry_actor(o.by, user, sizeof user), *alias = o.alias;
    long long v = 0, old = 0;
    rc = resolve(CMD, r, o.pos[0], &v);
    if (!rc && !alias) {
        rc = default_alias(CMD, r, v, defalias, sizeof defalias);
        alias = defalias;
    }
    if (!alias) alias = "live";
    char why[1024];
    if (!rc && verify_stored(r, v, NULL, why, sizeof why)) { // never point an alias at a tampered artifact
        cli_error(CMD, "refused: %s", why);
        if (o.notify) audit_notify(CMD, r, &o, alias, v, actor, 0, why);
        else if (seslm_registry_audit(r, actor, "refuse", alias, why, NULL) != SESLM_OK)
            cli_error(CMD, "could not audit the refusal: %s", seslm_last_error());
        rc = 1;
    }
    if (!rc && seslm_registry_promote(r, v, alias, &g, actor, o.reason, &old) != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        rc = 1;
    }
    if (!rc) {
        printf("{\"alias\":\"%s\",\"version\":%lld,\"old\":", alias, v);
        if (old) printf("%lld}\n", old);
        else printf("null}\n");
        fflush(stdout);
        if (o.notify && seslm_registry_alias_is_live(alias)) rc = notify(CMD, r, &o, alias, v, actor);
        else if (o.notify)
            fprintf(stderr, "seslm promote: --notify ignored: serving nodes follow live aliases (live, live-KIND), not '%s'\n", alias);
    }
    seslm_registry_close(r);
    return rc;
}

int cmd_approve(int argc, char **argv) {
    const char *CMD = "approve";
    gov_opts o;
    int rc = parse(&o, CMD, HELP_APPROVE, argc, argv);
    if (rc >= 0) return rc;
    if (o.n_pos != 1 || !o.by || !o.by[0] || !o.reason || !o.reason[0]) {
        cli_error(CMD, "VERSION, --by NAME and --reason TEXT are required (see seslm approve --help)");
        return 2;
    }
    seslm_registry *r = cli_registry_open(CMD, o.registry);
    if (!r) return 1;
    long long v = 0;
    char defalias[48];
    const char *alias = o.alias;
    rc = resolve(CMD, r, o.pos[0], &v);
    if (!rc && !alias) {
        rc = default_alias(CMD, r, v, defalias, sizeof defalias);
        alias = defalias;
    }
    if (!rc) {
        seslm_status s = seslm_registry_approve(r, v, alias, o.by, o.reason);
        if (s != SESLM_OK) {
            cli_error(CMD, "%s", seslm_last_error());
            rc = s == SESLM_ERR_ARG ? 2 : 1;
        } else {
            printf("{\"approved\":%lld,\"alias\":\"%s\",\"by\":", v, alias);
            cJSON *b = cJSON_CreateString(o.by);
            char *t = cJSON_PrintUnformatted(b);
            printf("%s}\n", t ? t : "\"\"");
            free(t);
            cJSON_Delete(b);
        }
    }
    seslm_registry_close(r);
    return rc;
}

int cmd_rollback(int argc, char **argv) {
    const char *CMD = "rollback";
    gov_opts o;
    int rc = parse(&o, CMD, HELP_ROLLBACK, argc, argv);
    if (rc >= 0) return rc;
    const char *alias = o.alias ? o.alias : "live";
    if (o.n_pos != 0) {
        cli_error(CMD, "rollback takes no VERSION: it swaps live and previous (see seslm rollback --help)");
        return 2;
    }
    if (!seslm_registry_alias_is_live(alias)) {
        cli_error(CMD, "--alias: rollback swaps a live alias (live or live-KIND, e.g. live-decoder), not '%s'", alias);
        return 2;
    }
    seslm_governance g;
    if (cli_registry_policy(CMD, o.policy, &g)) return 1;
    seslm_registry *r = cli_registry_open(CMD, o.registry);
    if (!r) return 1;
    char user[256];
    const char *actor = cli_registry_actor(o.by, user, sizeof user);
    long long now = 0;
    if (seslm_registry_rollback_alias(r, alias, &g, actor, o.reason, &now) != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        rc = 1;
    } else {
        printf("{\"alias\":\"%s\",\"version\":%lld}\n", alias, now);
        fflush(stdout);
        rc = o.notify ? notify(CMD, r, &o, alias, now, actor) : 0;
    }
    seslm_registry_close(r);
    return rc;
}
