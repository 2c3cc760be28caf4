/* cmd_audit.c — `seslm audit verify|log`: check the hash chain of the registry's audit log, or print it. */
#include "cli.h"
#include "cli_registry.h"
#include "model_crypt.h"

#include <openssl/crypto.h>

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char *HELP =
    "usage: seslm audit verify [--registry URL]\n"
    "       seslm audit log [--limit N] [--registry URL]\n"
    "       seslm audit new-key FILE\n"
    "       seslm audit rotate-key [--previous-key-file F] [--reason TEXT] [--by NAME] [--registry URL]\n"
    "\n"
    "verify  recomputes every row's hash, sha256(prev_hash || canonical row), and the chain from the first\n"
    "        row; prints {\"rows\": N, \"head\": HASH} (with no key, keep HASH elsewhere to detect a removed tail).\n"
    "        A changed, removed or inserted row: exit 1 naming the first bad row. With $SESLM_AUDIT_KEY_FILE\n"
    "        (the anchor: a private key file the database never sees) it also checks each row's HMAC and\n"
    "        that the head carries one, so a chain rewritten and recomputed in the database fails; an\n"
    "        anchored log cannot be verified (nor written) without the key. The key's head file\n"
    "        ($SESLM_AUDIT_HEAD_FILE, default KEYFILE.head; written after every audit write, recorded by\n"
    "        verify when missing) must still name a row of the log: a removed tail, an emptied or a\n"
    "        replaced log fails (\"head_file_seq\": the row it vouched for).\n"
    "log     the last N rows (default all), oldest first, one JSON object per line: who, what, when, why.\n"
    "new-key writes a new random audit key into FILE (0600; never inside a model directory).\n"
    "rotate-key  anchors the log with the key of $SESLM_AUDIT_KEY_FILE: verifies it first under the\n"
    "        previous key (--previous-key-file; none when the log was not anchored yet), then appends an\n"
    "        \"audit-key\" row with the new key. Also how a log is anchored the first time.\n"
    "\n"
    "Exit status: 0 ok, 1 tampered log / registry failure / bad key, 2 usage error.\n";

static const char *CMD = "audit";

int cmd_audit(int argc, char **argv) {
    if (argc < 2 || cli_is_help(argv[1])) {
        fputs(HELP, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1], *url = NULL, *prev_file = NULL, *reason = NULL, *by = NULL;
    int limit = 0;
    if (!strcmp(sub, "new-key")) {
        if (argc != 3 || cli_is_help(argv[2])) {
            if (argc == 3) fputs(HELP, stdout);
            else cli_error(CMD, "new-key takes one FILE (see seslm audit --help)");
            return argc == 3 ? 0 : 2;
        }
        if (seslm_crypt_key_generate(argv[2]) != SESLM_OK) {
            cli_error(CMD, "%s", seslm_last_error());
            return 1;
        }
        unsigned char key[32];
        char id[17];
        if (seslm_crypt_key_load(key, argv[2]) != SESLM_OK) {
            cli_error(CMD, "%s", seslm_last_error());
            return 1;
        }
        seslm_registry_audit_key_id(key, id);
        OPENSSL_cleanse(key, sizeof key);
        printf("{\"key_file\":\"%s\",\"key_id\":\"%s\"}\n", argv[2], id);
        return 0;
    }
    if (strcmp(sub, "verify") != 0 && strcmp(sub, "log") != 0 && strcmp(sub, "rotate-key") != 0) {
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
        else if (!strcmp(argv[i], "--previous-key-file") && !strcmp(sub, "rotate-key")) prev_file = argv[++i];
        else if (!strcmp(argv[i], "--reason") && !strcmp(sub, "rotate-key")) reason = argv[++i];
        else if (!strcmp(argv[i], "--by") && !strcmp(sub, "rotate-key")) by = argv[++i];
        else if (!strcmp(argv[i], "--limit") && !strcmp(sub, "log")) {
            if (!cli_parse_int(CMD, "--limit", argv[++i], 1, 1 << 30, &limit)) return 2;
        } else {
            cli_error(CMD, "unknown option %s (see seslm audit --help)", argv[i]);
            return 2;
        }
    }
    if (!strcmp(sub, "rotate-key") && !(getenv("SESLM_AUDIT_KEY_FILE") && *getenv("SESLM_AUDIT_KEY_FILE"))) {
        cli_error(CMD, "rotate-key: set $SESLM_AUDIT_KEY_FILE to the new key (seslm audit new-key FILE makes one)");
        return 2;
    }
    seslm_registry *r = cli_registry_open(CMD, url);
    if (!r) return 1;
    int rc = 0;
    if (!strcmp(sub, "rotate-key")) {
        unsigned char prev[32];
        char user[256], prev_head[4096];
        if (prev_file && seslm_crypt_key_load(prev, prev_file) != SESLM_OK) {
            cli_error(CMD, "--previous-key-file: %s", seslm_last_error());
            rc = 1;
        } else if (seslm_registry_audit_rotate(r, prev_file ? prev : NULL,
                                               prev_file ? cli_audit_head_file(prev_file, prev_head, sizeof prev_head) : NULL,
                                               cli_registry_actor(by, user, sizeof user),
                                               reason ? reason : "audit key rotation") != SESLM_OK) {
            cli_error(CMD, "%s", seslm_last_error());
            rc = 1;
        } else {
            long long n = 0;
            char head[65];
            if (seslm_registry_audit_verify(r, &n, head) != SESLM_OK) {
                cli_error(CMD, "rotated, but the log does not verify under the new key: %s", seslm_last_error());
                rc = 1;
            } else {
                printf("{\"rows\":%lld,\"head\":\"%s\",\"anchored_from\":%lld,\"head_file_seq\":%lld,\"ok\":true}\n", n,
                       head, seslm_registry_audit_anchored_from(r), seslm_registry_audit_head_seq(r, NULL));
            }
        }
        OPENSSL_cleanse(prev, sizeof prev);
        seslm_registry_close(r);
        return rc;
    }
    if (!strcmp(sub, "verify")) {
        long long n = 0;
        char head[65];
        if (seslm_registry_audit_verify(r, &n, head) != SESLM_OK) {
            cli_error(CMD, "audit log FAILED verification after %lld good rows: %s", n > 0 ? n - 1 : 0, seslm_last_error());
            rc = 1;
        } else {
            long long af = seslm_registry_audit_anchored_from(r);
            int recorded = 0;
            long long hs = seslm_registry_audit_head_seq(r, &recorded);
            if (af)
                printf("{\"rows\":%lld,\"head\":\"%s\",\"anchored_from\":%lld,\"head_file_seq\":%lld%s,\"ok\":true}\n", n,
                       head, af, hs, recorded ? ",\"head_file_recorded\":true" : "");
            else printf("{\"rows\":%lld,\"head\":\"%s\",\"anchored\":false,\"ok\":true}\n", n, head);
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
