/* test_registry_pg.c — the registry suite (tests/registry_suite.h) against a real PostgreSQL server
 * (ci/pg-start.sh starts one and exports SESLM_TEST_PG_DSN; skipped when unset), in a fresh database
 * per run. Beyond the shared suite: a connection the server kills between two operations, or in the
 * middle of a promotion, is re-established and the transaction run again once (nothing half-written,
 * one audit row), and a dead server gives a clear error. */
#include "registry_suite.h"

#include <libpq-fe.h>

static const char *g_dsn;

static int raw_sql(const char *url, const char *sql) {
    PGconn *c = PQconnectdb(strncmp(url, "pg:", 3) == 0 ? url + 3 : url);
    int rc = PQstatus(c) == CONNECTION_OK ? 0 : 1;
    if (!rc) {
        PGresult *r = PQexec(c, sql);
        ExecStatusType s = PQresultStatus(r);
        rc = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK ? 0 : 1;
        PQclear(r);
    }
    PQfinish(c);
    return rc;
}

static void suite_lost_connection(const char *url) {
    seslm_registry *r = NULL;
    CHECK(seslm_registry_open(&r, url) == SESLM_OK);
    if (!r) return;
    long long a = add(r, 301, 0, 100, NULL), b = add(r, 302, 0, 100, NULL);
    CHECK(seslm_registry_promote(r, a, "live", NULL, "ops", NULL, NULL) == SESLM_OK);
    long long rows = audit_rows(r);
    const char *kill_all = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
                           "'seslm-registry' AND pid <> pg_backend_pid()";
    // a write after the server dropped us: one reconnect, the transaction runs once, completely
    CHECK(raw_sql(url, kill_all) == 0);
    long long old = 0;
    CHECK_MSG(seslm_registry_promote(r, b, "live", NULL, "ops", "after reconnect", &old) == SESLM_OK, "%s",
              seslm_last_error());
    CHECK(old == a && alias_of(r, "live") == b && alias_of(r, "previous") == a);
    CHECK(audit_rows(r) == rows + 1);
    // a read after the server dropped us
    CHECK(raw_sql(url, kill_all) == 0);
    CHECK(alias_of(r, "live") == b);
    // the connection dies in the middle of a promotion (between its two alias writes): the half-done
    // transaction is rolled back by the server, the runner reconnects and runs it again, once
    rows = audit_rows(r);
    setenv("SESLM_REGISTRY_TEST_PAUSE_MS", "1500", 1);
    pid_t killer = fork();
    if (killer == 0) {
        struct timespec ts = {0, 500000000};
        nanosleep(&ts, NULL);
        _exit(raw_sql(url, kill_all));
    }
    CHECK_MSG(seslm_registry_promote(r, a, "live", NULL, "ops", "mid-transaction loss", &old) == SESLM_OK, "%s",
              seslm_last_error());
    unsetenv("SESLM_REGISTRY_TEST_PAUSE_MS");
    int st = 0;
    waitpid(killer, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(old == b && alias_of(r, "live") == a && alias_of(r, "previous") == b);
    CHECK(audit_rows(r) == rows + 1);
    seslm_registry_close(r);
}

int main(void) {
    g_dsn = getenv("SESLM_TEST_PG_DSN");
    if (!g_dsn || !g_dsn[0]) TEST_SKIP_UNLESS("SESLM_REQUIRE_PG", "SESLM_TEST_PG_DSN is not set (eval \"$(ci/pg-start.sh)\" starts a server)");
    char db[64], url[1024], admin[1024];
    snprintf(db, sizeof db, "seslm_test_%d_%ld", (int)getpid(), (long)time(NULL));
    snprintf(admin, sizeof admin, "pg:%s", g_dsn);
    char sql[256];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
    if (raw_sql(admin, sql) != 0) {
        fprintf(stderr, "cannot create database %s on %s\n", db, g_dsn);
        return 1;
    }
    snprintf(url, sizeof url, "pg:%s dbname=%s", g_dsn, db);
    suite_basics(url);
    suite_tamper(url, 1);
    // a second fresh database for the process tests
    char db2[80];
    snprintf(db2, sizeof db2, "%s_b", db);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db2);
    CHECK(raw_sql(admin, sql) == 0);
    snprintf(url, sizeof url, "pg:%s dbname=%s", g_dsn, db2);
    suite_concurrent(url);
    suite_kill9(url);
    suite_lost_connection(url);
    // a dead server: a clear error, quickly
    seslm_registry *r = NULL;
    time_t t0 = time(NULL);
    CHECK(seslm_registry_open(&r, "pg:host=/nonexistent-socket-dir port=1 dbname=x connect_timeout=3") == SESLM_ERR_IO);
    CHECK(!r && strstr(seslm_last_error(), "cannot connect to PostgreSQL") != NULL);
    CHECK(time(NULL) - t0 < 10);
    CHECK(seslm_registry_open(&r, "postgresql://nobody@127.0.0.1:1/x?connect_timeout=3") == SESLM_ERR_IO && !r);
    for (int i = 0; i < 2; i++) {
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s%s WITH (FORCE)", db, i ? "_b" : "");
        CHECK(raw_sql(admin, sql) == 0);
    }
    return test_report("test_registry_pg");
}
