/* dialog_store.c — the SQLite store of dialog_store.h. Like the registry's backend
 * (pipeline/registry/registry_sqlite.c): WAL journal (a reader never blocks the writer), a busy timeout (a second
 * process on the same file waits instead of failing), BEGIN IMMEDIATE for every turn, synchronous=FULL
 * (a committed turn survives a power cut). Statements are prepared once and reused. */
#include "dialog_store.h"

#include <sqlite3.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int BUSY_TIMEOUT_MS = 30000;
static const int SCHEMA_VERSION = 1;

// the slots of a session: kind 0 = filled (name, value), kind 1 = missing (name, "")
static const char *SCHEMA =
    "CREATE TABLE IF NOT EXISTS dialog_sessions(id TEXT PRIMARY KEY, seq INTEGER NOT NULL, used_at INTEGER NOT NULL,"
    " goal TEXT NOT NULL, step TEXT NOT NULL, last_intent TEXT NOT NULL, last_action TEXT NOT NULL,"
    " turns INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS dialog_sessions_used ON dialog_sessions(used_at);"
    "CREATE INDEX IF NOT EXISTS dialog_sessions_seq ON dialog_sessions(seq);"
    "CREATE TABLE IF NOT EXISTS dialog_slots(session TEXT NOT NULL, kind INTEGER NOT NULL, pos INTEGER NOT NULL,"
    " name TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY(session, kind, pos));"
    "CREATE TABLE IF NOT EXISTS dialog_transitions(id INTEGER PRIMARY KEY, session TEXT NOT NULL, at INTEGER NOT NULL,"
    " goal TEXT NOT NULL, intent TEXT NOT NULL, step TEXT NOT NULL, n_missing INTEGER NOT NULL, action TEXT NOT NULL,"
    " outcome INTEGER);"
    "CREATE INDEX IF NOT EXISTS dialog_transitions_state ON dialog_transitions(goal, intent, step, n_missing, action);"
    "CREATE INDEX IF NOT EXISTS dialog_transitions_session ON dialog_transitions(session, id);";

enum {
    Q_LOAD, Q_SLOTS, Q_SAVE, Q_DEL_SLOTS, Q_ADD_SLOT, Q_DELETE, Q_COUNT, Q_MAXSEQ, Q_EVICT, Q_EXPIRE_SLOTS, Q_EXPIRE,
    Q_LOG, Q_STATS, Q_LAST, Q_OUTCOME, Q_N
};
static const char *const SQL[Q_N] = {
    [Q_LOAD] = "SELECT goal, step, last_intent, last_action, turns FROM dialog_sessions WHERE id = ?1",
    [Q_SLOTS] = "SELECT kind, name, value FROM dialog_slots WHERE session = ?1 ORDER BY kind, pos",
    [Q_SAVE] = "INSERT OR REPLACE INTO dialog_sessions(id, seq, used_at, goal, step, last_intent, last_action, turns)"
               " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [Q_DEL_SLOTS] = "DELETE FROM dialog_slots WHERE session = ?1",
    [Q_ADD_SLOT] = "INSERT INTO dialog_slots(session, kind, pos, name, value) VALUES(?1, ?2, ?3, ?4, ?5)",
    [Q_DELETE] = "DELETE FROM dialog_sessions WHERE id = ?1",
    [Q_COUNT] = "SELECT COUNT(*) FROM dialog_sessions",
    [Q_MAXSEQ] = "SELECT COALESCE(MAX(seq), 0) FROM dialog_sessions",
    [Q_EVICT] = "SELECT id FROM dialog_sessions ORDER BY seq LIMIT 1",
    [Q_EXPIRE_SLOTS] = "DELETE FROM dialog_slots WHERE session IN (SELECT id FROM dialog_sessions WHERE used_at < ?1)",
    [Q_EXPIRE] = "DELETE FROM dialog_sessions WHERE used_at < ?1",
    [Q_LOG] = "INSERT INTO dialog_transitions(session, at, goal, intent, step, n_missing, action)"
              " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [Q_STATS] = "SELECT COUNT(outcome), COALESCE(SUM(outcome), 0) FROM dialog_transitions"
                " WHERE goal = ?1 AND intent = ?2 AND step = ?3 AND n_missing = ?4 AND action = ?5",
    [Q_LAST] = "SELECT id, action FROM dialog_transitions WHERE session = ?1 ORDER BY id DESC LIMIT 1",
    [Q_OUTCOME] = "UPDATE dialog_transitions SET outcome = ?2 WHERE id = ?1",
};

struct dialog_store {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *q[Q_N];
};

static seslm_status ds_fail(dialog_store *ds, const char *what) {
    return seslm_fail(SESLM_ERR_IO, "session store %s: %s: %s", ds->path, what, ds->db ? sqlite3_errmsg(ds->db) : "?");
}

/* The statement k, reset and with its bindings cleared; NULL on failure (message set). */
static sqlite3_stmt *q(dialog_store *ds, int k) {
    if (!ds->q[k] && sqlite3_prepare_v2(ds->db, SQL[k], -1, &ds->q[k], NULL) != SQLITE_OK) {
        ds_fail(ds, "cannot prepare a statement (is this a session store of another version?)");
        return NULL;
    }
    sqlite3_reset(ds->q[k]);
    sqlite3_clear_bindings(ds->q[k]);
    return ds->q[k];
}

static int bind_text(sqlite3_stmt *s, int i, const char *v) { return sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT); }

/* Runs a statement that returns no row. */
static seslm_status run(dialog_store *ds, sqlite3_stmt *s, const char *what) {
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? SESLM_OK : ds_fail(ds, what);
}

static seslm_status exec(dialog_store *ds, const char *sql, const char *what) {
    return sqlite3_exec(ds->db, sql, NULL, NULL, NULL) == SQLITE_OK ? SESLM_OK : ds_fail(ds, what);
}

seslm_status dialog_store_open(dialog_store **out, const char *path) {
    *out = NULL;
    dialog_store *ds = calloc(1, sizeof *ds);
    if (!ds || !(ds->path = strdup(path ? path : ":memory:"))) {
        free(ds);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    seslm_status st = SESLM_OK;
    // conversations are user data: a new file is created owner-only (SQLite gives its -wal and -shm files
    // the database file's mode); an existing one readable by others is made private once it proved to be
    // a session store (below)
    if (path) {
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) close(fd); // (any error other than "exists" is SQLite's to report)
    }
    if (st == SESLM_OK &&
        sqlite3_open_v2(path ? path : ":memory:", &ds->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
        st = ds_fail(ds, "cannot open");
    if (st == SESLM_OK) sqlite3_busy_timeout(ds->db, BUSY_TIMEOUT_MS);
    // the first statements read the header: a file that is not SQLite fails here ("file is not a database")
    if (st == SESLM_OK && path) st = exec(ds, "PRAGMA journal_mode=WAL", "cannot use the file");
    if (st == SESLM_OK) st = exec(ds, "PRAGMA synchronous=FULL", "cannot use the file");
    int version = -1;
    if (st == SESLM_OK) {
        sqlite3_stmt *s = NULL;
        if (sqlite3_prepare_v2(ds->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK || sqlite3_step(s) != SQLITE_ROW)
            st = ds_fail(ds, "cannot read the schema version");
        else version = sqlite3_column_int(s, 0);
        sqlite3_finalize(s);
    }
    if (st == SESLM_OK && version > SCHEMA_VERSION)
        st = seslm_fail(SESLM_ERR_IO, "session store %s: schema version %d is newer than this build's (%d)", ds->path, version,
                        SCHEMA_VERSION);
    if (st == SESLM_OK) st = exec(ds, "BEGIN IMMEDIATE", "cannot write (read-only or locked?)");
    if (st == SESLM_OK) st = exec(ds, SCHEMA, "cannot create the tables");
    if (st == SESLM_OK) st = exec(ds, "PRAGMA user_version=1", "cannot set the schema version");
    if (st == SESLM_OK) st = exec(ds, "COMMIT", "cannot write (read-only?)");
    // a file of another program that happens to have tables of these names but other columns
    for (int k = 0; st == SESLM_OK && k < Q_N; k++)
        if (!q(ds, k)) st = SESLM_ERR_IO;
    for (int k = 0; st == SESLM_OK && path && k < 3; k++) { // the file, its -wal and -shm
        char f[4200];
        struct stat sb;
        snprintf(f, sizeof f, "%s%s", path, k == 0 ? "" : k == 1 ? "-wal" : "-shm");
        if (stat(f, &sb) == 0 && (sb.st_mode & 077) && chmod(f, sb.st_mode & 0700) != 0)
            st = seslm_fail(SESLM_ERR_IO, "session store %s: mode %04o, and chmod 600 failed: %s", f,
                            (unsigned)(sb.st_mode & 07777), strerror(errno));
    }
    if (st != SESLM_OK) {
        dialog_store_close(ds);
        return st;
    }
    *out = ds;
    return SESLM_OK;
}

void dialog_store_close(dialog_store *ds) {
    if (!ds) return;
    for (int k = 0; k < Q_N; k++) sqlite3_finalize(ds->q[k]);
    if (ds->db && !sqlite3_get_autocommit(ds->db)) sqlite3_exec(ds->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(ds->db);
    free(ds->path);
    free(ds);
}

seslm_status dialog_store_begin(dialog_store *ds) { return exec(ds, "BEGIN IMMEDIATE", "cannot start a transaction"); }
seslm_status dialog_store_commit(dialog_store *ds) { return exec(ds, "COMMIT", "cannot commit"); }
void dialog_store_rollback(dialog_store *ds) {
    if (!sqlite3_get_autocommit(ds->db)) sqlite3_exec(ds->db, "ROLLBACK", NULL, NULL, NULL);
}

seslm_status dialog_store_expire(dialog_store *ds, long long before) {
    sqlite3_stmt *s = q(ds, Q_EXPIRE_SLOTS);
    if (!s) return SESLM_ERR_IO;
    sqlite3_bind_int64(s, 1, before);
    seslm_status st = run(ds, s, "cannot expire sessions");
    if (st != SESLM_OK || !(s = q(ds, Q_EXPIRE))) return st != SESLM_OK ? st : SESLM_ERR_IO;
    sqlite3_bind_int64(s, 1, before);
    return run(ds, s, "cannot expire sessions");
}

static void copy_col(sqlite3_stmt *s, int i, char *dst, size_t cap) {
    const unsigned char *v = sqlite3_column_text(s, i);
    snprintf(dst, cap, "%s", v ? (const char *)v : "");
}

seslm_status dialog_store_load(dialog_store *ds, const char *id, seslm_dialog_state *st, int *found) {
    *found = 0;
    sqlite3_stmt *s = q(ds, Q_LOAD);
    if (!s) return SESLM_ERR_IO;
    bind_text(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(s);
        return SESLM_OK;
    }
    if (rc != SQLITE_ROW) {
        sqlite3_reset(s);
        return ds_fail(ds, "cannot read a session");
    }
    memset(st, 0, sizeof *st);
    copy_col(s, 0, st->goal, sizeof st->goal);
    copy_col(s, 1, st->step, sizeof st->step);
    copy_col(s, 2, st->last_intent, sizeof st->last_intent);
    copy_col(s, 3, st->last_action, sizeof st->last_action);
    st->turns = sqlite3_column_int(s, 4);
    sqlite3_reset(s);
    if (!(s = q(ds, Q_SLOTS))) return SESLM_ERR_IO;
    bind_text(s, 1, id);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (sqlite3_column_int(s, 0) == 0 && st->n_filled < SESLM_DIALOG_MAX_SLOTS) {
            copy_col(s, 1, st->filled_key[st->n_filled], SESLM_DIALOG_NAME);
            copy_col(s, 2, st->filled_value[st->n_filled++], SESLM_DIALOG_VALUE);
        } else if (sqlite3_column_int(s, 0) == 1 && st->n_missing < SESLM_DIALOG_MAX_SLOTS) {
            copy_col(s, 1, st->missing[st->n_missing++], SESLM_DIALOG_NAME);
        }
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) return ds_fail(ds, "cannot read a session's slots");
    *found = 1;
    return SESLM_OK;
}

seslm_status dialog_store_save(dialog_store *ds, const char *id, const seslm_dialog_state *st, long long now, long long seq) {
    sqlite3_stmt *s = q(ds, Q_SAVE);
    if (!s) return SESLM_ERR_IO;
    bind_text(s, 1, id);
    sqlite3_bind_int64(s, 2, seq);
    sqlite3_bind_int64(s, 3, now);
    bind_text(s, 4, st->goal);
    bind_text(s, 5, st->step);
    bind_text(s, 6, st->last_intent);
    bind_text(s, 7, st->last_action);
    sqlite3_bind_int(s, 8, st->turns);
    seslm_status r = run(ds, s, "cannot write a session");
    if (r != SESLM_OK) return r;
    if (!(s = q(ds, Q_DEL_SLOTS))) return SESLM_ERR_IO;
    bind_text(s, 1, id);
    if ((r = run(ds, s, "cannot write a session's slots")) != SESLM_OK) return r;
    for (int kind = 0; kind < 2; kind++) {
        const int n = kind ? st->n_missing : st->n_filled;
        for (int i = 0; i < n; i++) {
            if (!(s = q(ds, Q_ADD_SLOT))) return SESLM_ERR_IO;
            bind_text(s, 1, id);
            sqlite3_bind_int(s, 2, kind);
            sqlite3_bind_int(s, 3, i);
            bind_text(s, 4, kind ? st->missing[i] : st->filled_key[i]);
            bind_text(s, 5, kind ? "" : st->filled_value[i]);
            if ((r = run(ds, s, "cannot write a session's slots")) != SESLM_OK) return r;
        }
    }
    return SESLM_OK;
}

seslm_status dialog_store_delete(dialog_store *ds, const char *id) {
    sqlite3_stmt *s = q(ds, Q_DEL_SLOTS);
    if (!s) return SESLM_ERR_IO;
    bind_text(s, 1, id);
    seslm_status r = run(ds, s, "cannot delete a session");
    if (r != SESLM_OK || !(s = q(ds, Q_DELETE))) return r != SESLM_OK ? r : SESLM_ERR_IO;
    bind_text(s, 1, id);
    return run(ds, s, "cannot delete a session");
}

static seslm_status one_int(dialog_store *ds, int k, long long *v, const char *what) {
    sqlite3_stmt *s = q(ds, k);
    if (!s) return SESLM_ERR_IO;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) *v = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? SESLM_OK : ds_fail(ds, what);
}

seslm_status dialog_store_count(dialog_store *ds, long long *n) { return one_int(ds, Q_COUNT, n, "cannot count sessions"); }
seslm_status dialog_store_max_seq(dialog_store *ds, long long *seq) { return one_int(ds, Q_MAXSEQ, seq, "cannot read sessions"); }

seslm_status dialog_store_evict_lru(dialog_store *ds) {
    sqlite3_stmt *s = q(ds, Q_EVICT);
    if (!s) return SESLM_ERR_IO;
    char id[80] = "";
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) copy_col(s, 0, id, sizeof id);
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return ds_fail(ds, "cannot read sessions");
    return id[0] ? dialog_store_delete(ds, id) : SESLM_OK;
}

seslm_status dialog_store_log(dialog_store *ds, const char *id, long long now, const char *goal, const char *intent,
                              const char *step, int n_missing, const char *action) {
    sqlite3_stmt *s = q(ds, Q_LOG);
    if (!s) return SESLM_ERR_IO;
    bind_text(s, 1, id);
    sqlite3_bind_int64(s, 2, now);
    bind_text(s, 3, goal);
    bind_text(s, 4, intent);
    bind_text(s, 5, step);
    sqlite3_bind_int(s, 6, n_missing);
    bind_text(s, 7, action);
    return run(ds, s, "cannot log a transition");
}

seslm_status dialog_store_stats(dialog_store *ds, const char *goal, const char *intent, const char *step, int n_missing,
                                const char *action, long long *n, long long *success) {
    sqlite3_stmt *s = q(ds, Q_STATS);
    if (!s) return SESLM_ERR_IO;
    bind_text(s, 1, goal);
    bind_text(s, 2, intent);
    bind_text(s, 3, step);
    sqlite3_bind_int(s, 4, n_missing);
    bind_text(s, 5, action);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *n = sqlite3_column_int64(s, 0);
        *success = sqlite3_column_int64(s, 1);
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? SESLM_OK : ds_fail(ds, "cannot read the transition log");
}

seslm_status dialog_store_set_outcome(dialog_store *ds, const char *id, int success, char *action) {
    action[0] = 0;
    sqlite3_stmt *s = q(ds, Q_LAST);
    if (!s) return SESLM_ERR_IO;
    bind_text(s, 1, id);
    long long tid = 0;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        tid = sqlite3_column_int64(s, 0);
        copy_col(s, 1, action, SESLM_DIALOG_NAME);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return ds_fail(ds, "cannot read the transition log");
    if (rc == SQLITE_DONE) return SESLM_OK;
    if (!(s = q(ds, Q_OUTCOME))) return SESLM_ERR_IO;
    sqlite3_bind_int64(s, 1, tid);
    sqlite3_bind_int(s, 2, success ? 1 : 0);
    return run(ds, s, "cannot record an outcome");
}
