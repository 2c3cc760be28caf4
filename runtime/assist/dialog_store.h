/* dialog_store.h — the SQLite store behind runtime/assist/dialog.c (internal): session state (goal, step,
 * filled and missing slots, last action) and the transition log that the decision engine learns from.
 * One connection; the caller (dialog.c) serialises every call with its mutex and wraps each turn in
 * dialog_store_begin / dialog_store_commit so a turn is stored whole or not at all. */
#ifndef SESLM_DIALOG_STORE_H
#define SESLM_DIALOG_STORE_H

#include "dialog.h"

typedef struct dialog_store dialog_store;

/* path NULL: a private in-memory database. A file: WAL journal, synchronous=FULL, busy timeout. */
seslm_status dialog_store_open(dialog_store **out, const char *path);
void dialog_store_close(dialog_store *ds);

seslm_status dialog_store_begin(dialog_store *ds);
seslm_status dialog_store_commit(dialog_store *ds);
void dialog_store_rollback(dialog_store *ds);

/* Deletes the sessions last used before `before` (seconds). */
seslm_status dialog_store_expire(dialog_store *ds, long long before);
/* *found = 0 when the session is not stored (st untouched). */
seslm_status dialog_store_load(dialog_store *ds, const char *id, seslm_dialog_state *st, int *found);
/* Inserts or replaces the session; seq orders sessions by last use (LRU eviction). */
seslm_status dialog_store_save(dialog_store *ds, const char *id, const seslm_dialog_state *st, long long now, long long seq);
seslm_status dialog_store_delete(dialog_store *ds, const char *id);
seslm_status dialog_store_count(dialog_store *ds, long long *n);
seslm_status dialog_store_max_seq(dialog_store *ds, long long *seq);
/* Deletes the least recently used session. */
seslm_status dialog_store_evict_lru(dialog_store *ds);

/* Appends a transition: in state (goal, intent, step, n_missing) the engine chose action. */
seslm_status dialog_store_log(dialog_store *ds, const char *id, long long now, const char *goal, const char *intent,
                              const char *step, int n_missing, const char *action);
/* Outcomes recorded for action in that state: *n in all, *success of them successes. */
seslm_status dialog_store_stats(dialog_store *ds, const char *goal, const char *intent, const char *step, int n_missing,
                                const char *action, long long *n, long long *success);
/* Sets the outcome of the session's latest transition; action gets its action ("" when none). */
seslm_status dialog_store_set_outcome(dialog_store *ds, const char *id, int success, char *action);

#endif
