/* cli_registry.h — what the registry commands (registry, promote, approve, rollback, audit) share:
 * which registry, who acts, the governance policy, and telling a serving node to reload. */
#ifndef SESLM_CLI_REGISTRY_H
#define SESLM_CLI_REGISTRY_H

#include "governance.h"
#include "registry.h"

#include <stddef.h>

/* --registry URL, else $SESLM_REGISTRY, else runs/registry.db (its directory is created). */
const char *cli_registry_url(const char *flag);
/* The audit head file of an audit key file: $SESLM_AUDIT_HEAD_FILE, else "<key_file>.head" (in buf). */
const char *cli_audit_head_file(const char *key_file, char *buf, size_t cap);
/* Opens the registry (with $SESLM_AUDIT_KEY_FILE's key and head file, when set); prints the error and
 * returns NULL on failure. */
seslm_registry *cli_registry_open(const char *cmd, const char *flag);
/* --by NAME, else $SESLM_ACTOR, else the OS user name (written into buf). */
const char *cli_registry_actor(const char *flag, char *buf, size_t cap);
/* --policy FILE, else $SESLM_POLICY, else configs/governance.yaml when present, else the built-in
 * default (promotions to live need an approval). Returns 0 ok, 1 on a bad policy file (printed). */
int cli_registry_policy(const char *cmd, const char *flag, seslm_governance *g);
/* POST {"model": dir} to URL/admin/reload (http://host:port), with "Authorization: Bearer" when a token
 * is given (--admin-token-file F, else $SESLM_ADMIN_TOKEN). Returns 0 on HTTP 200, else 1 with the
 * reason in why. */
int cli_notify_reload(const char *url, const char *model_dir, const char *token_file, char *why, size_t cap);
/* Prints a malloc'd JSON text and a newline, and frees it. */
void cli_print_json_text(char *json);

#endif
