/* cmd_audit.c — `seslm audit verify|log`: check the hash chain of the registry's audit log, or print it. */
#include "cli.h"
#include "cli_registry.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char *HELP =
    "usage: seslm audit verify [--registry URL]\n"
    "       seslm audit log [--limit N] [--registry URL]\n"
    "\n"
    "verify  recomputes every row's hash, sha256(prev_hash || canonical row), and the chain from the first\n"
    "        row; prints {\"rows\": N, \"head\": HASH} (keep HASH elsewhere to detect a removed tail later).\n"
    "        A changed, removed or inserted row: exit 1 naming the first bad row.\n"
    "log     the last N rows (default all), oldest first, one JSON object per line: who, what, when, why.\n"
    "\n"
    "Exit status: 0 ok, 1 tampered log / registry failure, 2 usage error.\n";

static const char *CMD = "audit";

int cmd_audit(int argc, char **argv) {
    if (argc < 2 || cli_is_help(argv[1])) {
        fputs(HELP, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1], *url = NULL;
    int limit = 0;
    if (strcmp(sub, "verify") != 0 && strcmp(sub, "log") != 0) {
        cli_error(CMD, "unknown subcommand '%s' (see seslm audit --help)", sub);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(HELP, stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            cli_error(CMD, "%s needs a value (or unknown option; see seslm audit --help)", argv[i]);
            return 2;
        }
        if (!strcmp(argv[i], "--registry")) url = argv[++i];
        else if (!strcmp(argv[i], "--limit") && !strcmp(sub, "log")) {
            if (!cli_parse_int(CMD, "--limit", argv[++i], 1, 1 << 30, &limit)) return 2;
        } else {
            cli_error(CMD, "unknown option %s (see seslm audit --help)", argv[i]);
            return 2;
        }
    }
    seslm_registry *r = cli_registry_open(CMD, url);
    if (!r) return 1;
    int rc = 0;
    if (!strcmp(sub, "verify")) {
        long long n = 0;
        char head[65];
        if (seslm_registry_audit_verify(r, &n, head) != SESLM_OK) {
            cli_error(CMD, "audit log FAILED verification after %lld good rows: %s", n > 0 ? n - 1 : 0, seslm_last_error());
            rc = 1;
        } else {
            printf("{\"rows\":%lld,\"head\":\"%s\",\"ok\":true}\n", n, head);
        }
    } else {
        char *json = NULL;
        if (seslm_registry_audit_json(r, limit, &json) != SESLM_OK) {
            cli_error(CMD, "%s", seslm_last_error());
            rc = 1;
        } else {
            cJSON *a = cJSON_Parse(json), *it;
            cJSON_ArrayForEach(it, a) {
                char *t = cJSON_PrintUnformatted(it);
                if (t) printf("%s\n", t);
                free(t);
            }
            cJSON_Delete(a);
            free(json);
        }
    }
    seslm_registry_close(r);
    return rc;
}
