/* registry.h — the model registry: versions with lineage, evolution runs, aliases (live, previous,
 * candidate, ...), approvals and a hash-chained audit log, behind one interface with two backends
 * sharing one SQL schema (schema_version table + migrations):
 *
 *   "sqlite:PATH", or any plain PATH      embedded SQLite file (WAL, busy timeout, BEGIN IMMEDIATE)
 *   "postgresql://..." / "postgres://..."  PostgreSQL through libpq (SERIALIZABLE + retry)
 *   "pg:CONNINFO"                          PostgreSQL, libpq key=value connection string
 *
 * Every change is one transaction that also appends its audit row, so a change and its audit entry
 * commit together or not at all. A version is named by its number ("3" or "v3"), an alias ("live"),
 * or a prefix (>= 8 hex digits) of its content hash. Results meant for people and scripts come back as
 * malloc'd JSON text (free()). A handle holds one connection: one thread at a time (open one per
 * thread or process). docs/registry.md describes the schema and the commands. */
#ifndef SESLM_REGISTRY_H
#define SESLM_REGISTRY_H

#include "seslm.h"

#define SESLM_REGISTRY_SCHEMA_VERSION 2

typedef enum { SESLM_REGISTRY_SQLITE = 0, SESLM_REGISTRY_POSTGRES = 1 } seslm_registry_backend;

typedef struct seslm_registry seslm_registry;

/* Connects (or creates the SQLite file) and brings the schema up to this build's version. A database
 * of a newer schema is refused (SESLM_ERR_FORMAT). Errors never show a password from the URL. */
seslm_status seslm_registry_open(seslm_registry **out, const char *url);
void seslm_registry_close(seslm_registry *r);
seslm_registry_backend seslm_registry_backend_kind(const seslm_registry *r);
int seslm_registry_schema_version(seslm_registry *r);

/* One model version to record. Strings may be NULL (stored as NULL) except sha256 and location. */
typedef struct {
    const char *sha256;         // content hash of the model directory (seslm_store_put)
    const char *weights_sha256; // hash of model.safetensors, for lineage written by seslm recompile
    const char *location;       // where the artifact lives (the store directory)
    const char *arch_json;      // architecture summary (layers, heads, FFN widths, hidden, vocab)
    const char *metrics_json;   // validation metrics (a JSON object of numbers)
    const char *plan_json;      // the plan that produced it
    const char *config_text;    // the policy / config that produced it
    const char *run_id;         // the evolution run
    const char *note;
    long long parent;           // parent version, 0 for a root
    long long n_params, bytes;
} seslm_registry_version_in;

/* Records a version (ratios vs parent and root computed from their bytes), audited as "register".
 * A content hash already present is not an error: *existed = 1 and *version its number. */
seslm_status seslm_registry_add_version(seslm_registry *r, const seslm_registry_version_in *v, const char *actor,
                                        long long *version, int *existed);
/* The version whose model.safetensors hash is weights_sha256 (the newest if several), or 0. */
seslm_status seslm_registry_find_by_weights(seslm_registry *r, const char *weights_sha256, long long *version);
/* Records an evolution run: stages_json is an array of {"name","seconds",...}; outcome free text. */
seslm_status seslm_registry_add_run(seslm_registry *r, const char *run_id, const char *stages_json,
                                    const char *outcome, const char *started_at, const char *finished_at,
                                    const char *actor);

/* Resolves a version reference (number, vN, alias, hash prefix); unknown -> SESLM_ERR_ARG. */
seslm_status seslm_registry_resolve(seslm_registry *r, const char *ref, long long *version);
/* The version an alias points at, 0 when unset. */
seslm_status seslm_registry_alias_get(seslm_registry *r, const char *alias, long long *version);

seslm_status seslm_registry_show_json(seslm_registry *r, long long version, char **json);
seslm_status seslm_registry_list_json(seslm_registry *r, char **json);
/* The chain from version up to its root, version first. */
seslm_status seslm_registry_lineage_json(seslm_registry *r, long long version, char **json);
/* Architecture, size, ratio and metric deltas b - a. */
seslm_status seslm_registry_diff_json(seslm_registry *r, long long a, long long b, char **json);
seslm_status seslm_registry_runs_json(seslm_registry *r, char **json);
/* What an alias pointed at, when, set by whom and why: its promote / rollback audit rows, oldest first
 * (from the audit log, so the history is as tamper-evident as the log). */
seslm_status seslm_registry_history_json(seslm_registry *r, const char *alias, char **json);

/* Governance, from configs/governance.yaml (seslm_governance_load in governance.h). */
typedef struct seslm_governance seslm_governance;

/* Records an approval of `version` for `alias` by `by` with `reason` (both required). */
seslm_status seslm_registry_approve(seslm_registry *r, long long version, const char *alias, const char *by,
                                    const char *reason);
/* Points alias at version in one transaction; for a live alias ("live", or "live-NAME": one per kind of
 * model, e.g. "live-decoder" beside an encoder's "live"), the version it held becomes "previous"
 * ("previous-NAME") in the same transaction (no reader sees zero or two live models). Refused with
 * SESLM_ERR_ARG when gov (may be NULL: no policy) requires an approval that is missing, when version is
 * already there, or when the alias holds a model of another kind (encoder / decoder: arch "kind"). *old
 * gets the version the alias held (0 none). */
seslm_status seslm_registry_promote(seslm_registry *r, long long version, const char *alias,
                                    const seslm_governance *gov, const char *actor, const char *reason, long long *old);
/* Swaps live and previous in one transaction; *now_live gets the new live version. */
seslm_status seslm_registry_rollback(seslm_registry *r, const seslm_governance *gov, const char *actor,
                                     const char *reason, long long *now_live);
/* The same for any live alias: swaps "live-NAME" and "previous-NAME" (alias NULL: "live"). */
seslm_status seslm_registry_rollback_alias(seslm_registry *r, const char *alias, const seslm_governance *gov,
                                           const char *actor, const char *reason, long long *now_live);
/* 1 when alias is "live" or "live-NAME" (promotions keep its previous model for a rollback). */
int seslm_registry_alias_is_live(const char *alias);

/* Anchors the audit log outside the database: with a key (32 bytes, e.g. from $SESLM_AUDIT_KEY_FILE,
 * a file the database never sees), every appended row also stores mac = "<key id>:<HMAC-SHA256(key,
 * seq ':' hash)>", and seslm_registry_audit_verify checks the head's mac, so a chain rewritten and
 * recomputed by someone who can write the database (but has not the key) fails verification. Once the
 * log is anchored, appending without the key, or with another key, is refused (SESLM_ERR_FORMAT); rotation
 * is seslm_registry_audit_rotate. key NULL: no key. */
seslm_status seslm_registry_set_audit_key(seslm_registry *r, const unsigned char key[32]);
/* The head kept outside the database (with the key, e.g. "<key file>.head"; NULL: none): after every
 * committed audit write it records (row 1's hash, the last seq, its hash) under the key's HMAC, and verify
 * and every later write require the database to still hold that row, so a removed tail (the last rows
 * deleted), an emptied or a replaced log fails. One file per registry. */
seslm_status seslm_registry_set_audit_head_file(seslm_registry *r, const char *path);
/* After a successful verify with a key and a head file: the row the head file vouched for (0: none);
 * *recorded_now = 1 when there was no head file and verify wrote it from the verified log. */
long long seslm_registry_audit_head_seq(const seslm_registry *r, int *recorded_now);
/* Key rotation: verifies the whole log under the previous key (NULL when the log was not anchored yet),
 * against its head file previous_head_file (NULL: none), and appends an "audit-key" row anchored with the
 * key set by seslm_registry_set_audit_key (its head then recorded in the current head file). */
seslm_status seslm_registry_audit_rotate(seslm_registry *r, const unsigned char previous[32], const char *previous_head_file,
                                         const char *actor, const char *reason);
/* The 16 hex digits naming an audit key (not secret). */
void seslm_registry_audit_key_id(const unsigned char key[32], char id[17]);

/* Appends an audit row on its own (actions outside the registry, e.g. "notify"). */
seslm_status seslm_registry_audit(seslm_registry *r, const char *actor, const char *action, const char *target,
                                  const char *reason, const char *detail_json);
/* Recomputes the hash chain: SESLM_ERR_FORMAT naming the first bad row when a row was changed,
 * removed or inserted; with a key, also each row's HMAC and the head file (a removed tail). *n_rows gets
 * the rows checked, head (65 bytes) the last hash. */
seslm_status seslm_registry_audit_verify(seslm_registry *r, long long *n_rows, char *head);
/* After a successful verify: the first row anchored with the current key (0: none, no key given). */
long long seslm_registry_audit_anchored_from(const seslm_registry *r);
/* The last `limit` rows (0: all), oldest first. */
seslm_status seslm_registry_audit_json(seslm_registry *r, long long limit, char **json);

#endif
