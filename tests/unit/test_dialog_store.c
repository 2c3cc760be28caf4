/* test_dialog_store.c — the SQLite session store of runtime/assist/dialog.h: a session's state (goal, step,
 * filled and missing slots, last action) round-trips; closing and reopening the file (a restart)
 * continues the conversation where it was; idle sessions expire after the TTL; LRU eviction survives a
 * reopen; a file that is not a database, an unwritable path, and a bad TTL give clear errors; several
 * threads on different sessions lose no turn. */
#include "dialog_policy.h"
#include "test.h"

#include <sys/stat.h>

#include <pthread.h>
#include <unistd.h>

static const char *POLICY = "min_confidence: 0.5\n"
                            "confirm_intent: confirmation\n"
                            "end_intent: end_conversation\n"
                            "max_sessions: 3\n"
                            "goals:\n"
                            "  - intent: request_data\n"
                            "    slots: [report_type, date]\n"
                            "    confirm: true\n"
                            "    action: fetch_data\n";

static seslm_dialog_decision turn(seslm_dialog *d, const char *sess, const char *intent, const char *k, const char *v) {
    seslm_dialog_decision dd;
    const char *keys[1] = {k}, *vals[1] = {v};
    seslm_status st = seslm_dialog_step(d, sess, intent, 0.9, keys, vals, k ? 1 : 0, &dd);
    CHECK_MSG(st == SESLM_OK, "%s", seslm_last_error());
    return dd;
}

typedef struct {
    seslm_dialog *d;
    int id;
    int fails;
} worker;

static void *work(void *arg) {
    worker *w = arg;
    char sess[32];
    snprintf(sess, sizeof sess, "t%d", w->id);
    for (int i = 0; i < 50; i++) {
        seslm_dialog_decision dd;
        if (seslm_dialog_step(w->d, sess, NULL, 0, NULL, NULL, 0, &dd) != SESLM_OK || dd.state.turns != i + 1) w->fails++;
    }
    return NULL;
}

int main(void) {
    umask(022); // (the default of most shells: files would be 0644 unless created private)
    char dir[] = "/tmp/test_dialog_store_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char db[256], path2[300];
    snprintf(db, sizeof db, "%s/sessions.db", dir);
    seslm_dialog_policy p;
    CHECK(seslm_dialog_policy_load_string(&p, "policy.yaml", POLICY, strlen(POLICY)) == SESLM_OK);

    // round trip, then a restart (close + reopen the file) continues the session
    seslm_dialog *d = NULL;
    CHECK_MSG(seslm_dialog_open(&d, &p, db, 0) == SESLM_OK, "%s", seslm_last_error());
    seslm_dialog_decision r = turn(d, "s1", "request_data", "report_type", "blood test \"é\"");
    CHECK(strcmp(r.action, "ask_missing_info") == 0 && strcmp(r.ask, "date") == 0);
    { // conversations are user data: created owner-only whatever the umask, the WAL too
        struct stat sb;
        char wal[300];
        snprintf(wal, sizeof wal, "%s-wal", db);
        CHECK(stat(db, &sb) == 0 && (sb.st_mode & 0777) == 0600);
        CHECK(stat(wal, &sb) != 0 || (sb.st_mode & 0777) == 0600);
    }
    seslm_dialog_free(d);
    d = NULL;
    CHECK_MSG(seslm_dialog_open(&d, &p, db, 0) == SESLM_OK, "%s", seslm_last_error());
    r = turn(d, "s1", NULL, NULL, NULL); // nothing new: the stored state is what the turn sees
    CHECK(strcmp(r.action, "ask_missing_info") == 0 && r.state.turns == 2);
    CHECK(strcmp(r.state.goal, "request_data") == 0 && strcmp(r.state.step, "waiting_for_date") == 0);
    CHECK(r.state.n_filled == 1 && strcmp(r.state.filled_key[0], "report_type") == 0 &&
          strcmp(r.state.filled_value[0], "blood test \"é\"") == 0);
    CHECK(r.state.n_missing == 1 && strcmp(r.state.missing[0], "date") == 0);
    CHECK(strcmp(r.state.last_action, "ask_missing_info") == 0 && strcmp(r.state.last_intent, "request_data") == 0);
    r = turn(d, "s1", NULL, "date", "2026-01-08");
    CHECK(strcmp(r.action, "confirm") == 0);
    seslm_dialog_free(d);
    CHECK_MSG(seslm_dialog_open(&d, &p, db, 0) == SESLM_OK, "%s", seslm_last_error());
    r = turn(d, "s1", "confirmation", NULL, NULL);
    CHECK_MSG(strcmp(r.action, "fetch_data") == 0 && r.state.turns == 4, "%s after restart", r.action);
    // the end forgets the session, in the file too
    r = turn(d, "s1", "end_conversation", NULL, NULL);
    CHECK(r.ended == 1);
    seslm_dialog_free(d);
    CHECK(seslm_dialog_open(&d, &p, db, 0) == SESLM_OK);
    r = turn(d, "s1", NULL, NULL, NULL);
    CHECK(r.state.turns == 1 && r.state.goal[0] == 0);

    // LRU eviction (max_sessions 3) across a reopen: the order of last use is kept
    turn(d, "a", NULL, NULL, NULL);
    turn(d, "b", NULL, NULL, NULL);
    turn(d, "s1", NULL, NULL, NULL); // s1 is now the most recent; a is the least
    seslm_dialog_free(d);
    CHECK(seslm_dialog_open(&d, &p, db, 0) == SESLM_OK);
    turn(d, "c", NULL, NULL, NULL); // evicts a
    r = turn(d, "b", NULL, NULL, NULL);
    CHECK_MSG(r.state.turns == 2, "b should have been kept (turns %d)", r.state.turns);
    r = turn(d, "a", NULL, NULL, NULL);
    CHECK_MSG(r.state.turns == 1, "a should have been evicted (turns %d)", r.state.turns);
    seslm_dialog_free(d);

    // TTL: a session idle longer than the TTL starts over; one used within it goes on
    CHECK(seslm_dialog_open(&d, &p, db, 100) == SESLM_OK);
    seslm_dialog_set_time(d, 1000000);
    turn(d, "old", "request_data", "date", "today");
    seslm_dialog_set_time(d, 1000090);
    turn(d, "young", "request_data", NULL, NULL);
    seslm_dialog_set_time(d, 1000150); // old idle 150 s > 100; young 60 s
    r = turn(d, "young", NULL, NULL, NULL);
    CHECK(r.state.turns == 2 && strcmp(r.state.goal, "request_data") == 0);
    r = turn(d, "old", NULL, NULL, NULL);
    CHECK_MSG(r.state.turns == 1 && r.state.goal[0] == 0, "old should have expired (turns %d)", r.state.turns);
    seslm_dialog_free(d);

    // concurrent turns on different sessions, on the file and in memory: none lost (every turn counted)
    p.max_sessions = 100;
    for (int round = 0; round < 2; round++) {
        d = NULL;
        CHECK(seslm_dialog_open(&d, &p, round ? NULL : db, 0) == SESLM_OK);
        pthread_t th[4];
        worker w[4];
        for (int i = 0; i < 4; i++) {
            w[i] = (worker){d, i, 0};
            pthread_create(&th[i], NULL, work, &w[i]);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            CHECK_MSG(w[i].fails == 0, "round %d thread %d: %d bad turns", round, i, w[i].fails);
        }
        seslm_dialog_free(d);
    }

    // errors: a file that is not a database; a path that cannot be created; a bad TTL
    snprintf(path2, sizeof path2, "%s/garbage.db", dir);
    FILE *f = fopen(path2, "wb");
    CHECK(f != NULL);
    for (int i = 0; f && i < 200; i++) fputs("this is not an SQLite file. ", f);
    if (f) fclose(f);
    d = NULL;
    CHECK(seslm_dialog_open(&d, &p, path2, 0) == SESLM_ERR_IO && d == NULL);
    CHECK_MSG(strstr(seslm_last_error(), path2) && strstr(seslm_last_error(), "not a database"), "%s", seslm_last_error());
    snprintf(path2, sizeof path2, "%s/no/such/dir/s.db", dir);
    CHECK(seslm_dialog_open(&d, &p, path2, 0) == SESLM_ERR_IO && d == NULL);
    CHECK_MSG(strstr(seslm_last_error(), path2) && strstr(seslm_last_error(), "cannot open"), "%s", seslm_last_error());
    CHECK(seslm_dialog_open(&d, &p, dir, 0) == SESLM_ERR_IO && d == NULL); // a directory
    CHECK(seslm_dialog_open(&d, &p, NULL, -1) == SESLM_ERR_ARG && strstr(seslm_last_error(), "TTL"));
    // the stored file was not damaged by any of this
    CHECK(seslm_dialog_open(&d, &p, db, 0) == SESLM_OK);
    r = turn(d, "t0", NULL, NULL, NULL);
    CHECK_MSG(r.state.turns == 51, "t0 turns %d", r.state.turns);
    seslm_dialog_free(d);
    seslm_dialog_policy_free(&p);

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    return test_report("test_dialog_store");
}
