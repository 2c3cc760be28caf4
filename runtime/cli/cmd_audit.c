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

static int audit_new_key(const char *file) {
    if (seslm_crypt_key_generate(file) != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        return 1;
    }
    unsigned char key[32];
    char id[17];
    if (seslm_crypt_key_load(key, file) != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        return 1;
    }
    seslm_registry_audit_key_id(key, id);
    OPENSSL_cleanse(key, sizeof key);
    printf("{\"key_file\":\"%s\",\"key_id\":\"%s\"}\n", file, id);
    return 0;
}

int cmd_audit(int argc, char **argv) {
    if (argc < 2 || cli_is_help(argv[1])) {
        fputs(HELP, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1], *url = NULL, *prev_file = NULL, *reason = NULL, *by = NULL;
    int limit = 0;
    if (!strcmp(sub, "new-key")) {
        const cli_arg none[] = {{NULL, 0, NULL, 0, 0}};
        cli_texts files = {0};
        int rc = cli_parse_args(CMD, HELP, none, argc - 1, argv + 1, &files);
        if (rc < 0 && files.n != 1) {
            cli_error(CMD, "new-key takes one FILE (see seslm audit --help)");
            rc = 2;
        }
        if (rc < 0) rc = audit_new_key(files.texts[0]);
        cli_texts_free(&files);
        return rc;
    }
    if (strcmp(sub, "verify") != 0 && strcmp(sub, "log") != 0 && strcmp(sub, "rotate-key") != 0) {
        cli_error(CMD, "unknown subcommand '%s' (see seslm audit --help)", sub);
        return 2;
    }
    // each subcommand takes its own options: --limit only for log, the rotation's for rotate-key
    const int rotate = !strcmp(sub, "rotate-key");
    const cli_arg log_args[] = {
        {"--registry", CLI_ARG_STR, &url, 0, 0},
        {"--limit", CLI_ARG_INT, &limit, 1, 1 << 30},
        {NULL, 0, NULL, 0, 0},
    };
    const cli_arg rotate_args[] = {
        {"--registry", CLI_ARG_STR, &url, 0, 0},
        {"--previous-key-file", CLI_ARG_STR, &prev_file, 0, 0},
        {"--reason", CLI_ARG_STR, &reason, 0, 0},
        {"--by", CLI_ARG_STR, &by, 0, 0},
        {NULL, 0, NULL, 0, 0},
    };
    const cli_arg verify_args[] = {
        {"--registry", CLI_ARG_STR, &url, 0, 0},
        {NULL, 0, NULL, 0, 0},
    };
    const cli_arg *args = rotate ? rotate_args : !strcmp(sub, "log") ? log_args : verify_args;
    int prc = cli_parse_args(CMD, HELP, args, argc - 1, argv + 1, NULL);
    if (prc >= 0) return prc;
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
