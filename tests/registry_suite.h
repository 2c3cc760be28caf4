/* registry_suite.h — the registry test suite, run against SQLite (test_registry_sqlite.c) and a real
 * PostgreSQL server (test_registry_pg.c). The including file defines
 *     static int raw_sql(const char *url, const char *sql);   // 0 ok, bypassing the registry
 * and calls suite_run(url, pg). */
#ifndef SESLM_REGISTRY_SUITE_H
#define SESLM_REGISTRY_SUITE_H

#include "governance.h"
#include "registry.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int raw_sql(const char *url, const char *sql);

static void fake_sha(char out[65], unsigned k) {
    for (int i = 0; i < 64; i++) out[i] = "0123456789abcdef"[(k * 2654435761u + (unsigned)i * 40503u) >> (i % 8) & 15];
    snprintf(out + 56, 9, "%08x", k);
}

static long long add(seslm_registry *r, unsigned k, long long parent, long long bytes, const char *metrics) {
    char sha[65], loc[128];
    fake_sha(sha, k);
    snprintf(loc, sizeof loc, "/store/sha256/%s", sha);
    seslm_registry_version_in v = {sha, NULL, loc, "{\"n_layers\":6}", metrics, NULL, NULL, "run-1", NULL,
                                   parent, bytes / 4, bytes};
    long long ver = 0;
    int existed = -1;
    seslm_status s = seslm_registry_add_version(r, &v, "tester", &ver, &existed);
    CHECK_MSG(s == SESLM_OK && existed == 0, "add %u: %s", k, seslm_last_error());
    return ver;
}

static long long alias_of(seslm_registry *r, const char *alias) {
    long long v = -1;
    CHECK_MSG(seslm_registry_alias_get(r, alias, &v) == SESLM_OK, "alias_get %s: %s", alias, seslm_last_error());
    return v;
}

static long long audit_rows(seslm_registry *r) {
    long long n = -1;
    char head[65];
    seslm_status s = seslm_registry_audit_verify(r, &n, head);
    CHECK_MSG(s == SESLM_OK, "audit verify: %s", seslm_last_error());
    return n;
}

static double num(const cJSON *o, const char *k) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(it) ? it->valuedouble : -12345;
}

static void suite_basics(const char *url) {
    seslm_registry *r = NULL;
    CHECK_MSG(seslm_registry_open(&r, url) == SESLM_OK, "open: %s", seslm_last_error());
    if (!r) exit(test_report("registry"));
    CHECK(seslm_registry_schema_version(r) == SESLM_REGISTRY_SCHEMA_VERSION);
    long long v1 = add(r, 1, 0, 1000, "{\"cos\":1.0,\"acc\":0.9}");
    long long v2 = add(r, 2, v1, 800, "{\"cos\":0.99,\"acc\":0.89}");
    long long v3 = add(r, 3, v2, 500, "{\"cos\":0.95,\"acc\":0.80}");
    CHECK(v1 == 1 && v2 == 2 && v3 == 3);
    // idempotent: the same content hash is the same version
    char sha[65];
    fake_sha(sha, 2);
    seslm_registry_version_in again = {sha, NULL, "/elsewhere", NULL, NULL, NULL, NULL, NULL, NULL, 0, 1, 1};
    long long ver = 0;
    int existed = 0;
    CHECK(seslm_registry_add_version(r, &again, "tester", &ver, &existed) == SESLM_OK && existed == 1 && ver == 2);
    // a missing parent is refused, nothing written
    fake_sha(sha, 99);
    seslm_registry_version_in orphan = {sha, NULL, "/x", NULL, NULL, NULL, NULL, NULL, NULL, 42, 1, 1};
    CHECK(seslm_registry_add_version(r, &orphan, "tester", &ver, &existed) == SESLM_ERR_ARG);
    CHECK(strstr(seslm_last_error(), "parent version 42") != NULL);
    // ratios vs parent and root
    char *json = NULL;
    CHECK(seslm_registry_show_json(r, v3, &json) == SESLM_OK);
    cJSON *j = cJSON_Parse(json);
    free(json);
    CHECK(fabs(num(j, "ratio_parent") - 500.0 / 800.0) < 1e-12 && fabs(num(j, "ratio_root") - 0.5) < 1e-12);
    CHECK(num(j, "parent") == 2 && num(j, "bytes") == 500);
    CHECK(cJSON_IsObject(cJSON_GetObjectItem(j, "metrics")));
    cJSON_Delete(j);
    CHECK(seslm_registry_lineage_json(r, v3, &json) == SESLM_OK);
    j = cJSON_Parse(json);
    free(json);
    CHECK(cJSON_GetArraySize(j) == 3 && num(cJSON_GetArrayItem(j, 2), "version") == 1);
    cJSON_Delete(j);
    CHECK(seslm_registry_diff_json(r, v1, v3, &json) == SESLM_OK);
    j = cJSON_Parse(json);
    free(json);
    const cJSON *md = cJSON_GetObjectItem(j, "metrics_delta");
    CHECK(fabs(num(md, "cos") + 0.05) < 1e-9 && fabs(num(md, "acc") + 0.10) < 1e-9 && num(j, "bytes_delta") == -500);
    cJSON_Delete(j);
    // resolving
    long long x = 0;
    CHECK(seslm_registry_resolve(r, "v2", &x) == SESLM_OK && x == 2);
    CHECK(seslm_registry_resolve(r, "3", &x) == SESLM_OK && x == 3);
    fake_sha(sha, 3);
    sha[12] = 0;
    CHECK(seslm_registry_resolve(r, sha, &x) == SESLM_OK && x == 3);
    CHECK(seslm_registry_resolve(r, "v9", &x) == SESLM_ERR_ARG);
    CHECK(seslm_registry_resolve(r, "nosuchalias", &x) == SESLM_ERR_ARG);

    // governance: live needs an approval; a big size drop for candidate too
    seslm_governance g;
    seslm_governance_default(&g);
    g.ratio_below = 0.7;
    long long old = -1;
    CHECK(seslm_registry_promote(r, v1, "live", &g, "ops", "first", &old) == SESLM_ERR_ARG);
    CHECK(strstr(seslm_last_error(), "refused") != NULL);
    CHECK(alias_of(r, "live") == 0);
    CHECK(seslm_registry_approve(r, v1, "live", "alice", "baseline") == SESLM_OK);
    CHECK(seslm_registry_approve(r, v1, "live", "", "baseline") == SESLM_ERR_ARG);
    CHECK(seslm_registry_promote(r, v1, "live", &g, "ops", "first", &old) == SESLM_OK && old == 0);
    CHECK(seslm_registry_promote(r, v1, "live", &g, "ops", "again", &old) == SESLM_ERR_ARG); // already live
    CHECK(seslm_registry_promote(r, v2, "candidate", &g, "ops", NULL, &old) == SESLM_OK);       // 0.8 >= 0.7
    // 500/800 = 0.625 < 0.7: needs an approval for candidate
    CHECK(seslm_registry_promote(r, v3, "candidate", &g, "ops", NULL, &old) == SESLM_ERR_ARG);
    CHECK(alias_of(r, "candidate") == 2);
    CHECK(seslm_registry_approve(r, v3, "candidate", "bob", "size drop reviewed") == SESLM_OK);
    CHECK(seslm_registry_promote(r, v3, "candidate", &g, "ops", NULL, &old) == SESLM_OK && old == 2);
    CHECK(alias_of(r, "candidate") == 3 && alias_of(r, "live") == 1);
    g.n_approval_aliases = 0;
    CHECK(seslm_registry_promote(r, v3, "live", &g, "ops", NULL, &old) == SESLM_ERR_ARG); // 500/1000 < 0.7
    CHECK(strstr(seslm_last_error(), "0.500") != NULL);
    g.ratio_below = 0;
    g.metric_drop = 0.02;
    CHECK(seslm_registry_promote(r, v3, "live", &g, "ops", NULL, &old) == SESLM_ERR_ARG); // cos -0.05, acc -0.10
    CHECK(seslm_registry_promote(r, v2, "live", &g, "ops", "small", &old) == SESLM_OK && old == v1); // drops 0.01
    CHECK(alias_of(r, "live") == v2 && alias_of(r, "previous") == v1);
    CHECK(seslm_registry_promote(r, v1, "previous", &g, "ops", NULL, &old) == SESLM_ERR_ARG);
    // rollback swaps, twice returns
    long long now = 0;
    CHECK(seslm_registry_rollback(r, &g, "ops", "bad latency", &now) == SESLM_OK && now == v1);
    CHECK(alias_of(r, "live") == v1 && alias_of(r, "previous") == v2);
    CHECK(seslm_registry_rollback(r, NULL, "ops", NULL, &now) == SESLM_OK && now == v2);
    CHECK(alias_of(r, "live") == v2 && alias_of(r, "previous") == v1);
    g.rollback_needs_approval = 1;
    CHECK(seslm_registry_rollback(r, &g, "ops", NULL, &now) == SESLM_OK); // v1 has a live approval
    CHECK(alias_of(r, "live") == v1);
    // a decoder in the same registry: it cannot take an encoder's live alias, it gets its own live-decoder
    // with its own previous-decoder and rollback, and the approval policy for live covers it
    {
        char dsha[65];
        long long d1 = 0, d2 = 0;
        int ex = 0;
        fake_sha(dsha, 41);
        seslm_registry_version_in dv = {dsha, NULL, "/store/d1", "{\"kind\":\"decoder\",\"n_layers\":30}", NULL, NULL,
                                        NULL, NULL, NULL, 0, 100, 400};
        CHECK(seslm_registry_add_version(r, &dv, "tester", &d1, &ex) == SESLM_OK);
        fake_sha(dsha, 42);
        dv.sha256 = dsha, dv.location = "/store/d2", dv.parent = d1;
        CHECK(seslm_registry_add_version(r, &dv, "tester", &d2, &ex) == SESLM_OK);
        g.rollback_needs_approval = 0, g.n_approval_aliases = 1; // "live"
        CHECK(seslm_registry_promote(r, d1, "live", NULL, "ops", NULL, &old) == SESLM_ERR_ARG);
        CHECK_MSG(strstr(seslm_last_error(), "live-decoder") != NULL, "%s", seslm_last_error());
        CHECK(alias_of(r, "live") == v1);
        CHECK(seslm_registry_alias_is_live("live-decoder") && seslm_registry_alias_is_live("live") &&
              !seslm_registry_alias_is_live("lively") && !seslm_registry_alias_is_live("candidate"));
        CHECK(seslm_registry_promote(r, d1, "live-decoder", &g, "ops", NULL, &old) == SESLM_ERR_ARG); // needs approval
        CHECK(seslm_registry_approve(r, d1, "live-decoder", "alice", "decoder baseline") == SESLM_OK);
        CHECK(seslm_registry_approve(r, d2, "live-decoder", "alice", "decoder student") == SESLM_OK);
        CHECK(seslm_registry_promote(r, d1, "live-decoder", &g, "ops", NULL, &old) == SESLM_OK && old == 0);
        CHECK(seslm_registry_promote(r, d2, "live-decoder", &g, "ops", NULL, &old) == SESLM_OK && old == d1);
        CHECK(alias_of(r, "live-decoder") == d2 && alias_of(r, "previous-decoder") == d1);
        CHECK(alias_of(r, "live") == v1 && alias_of(r, "previous") == v2); // the encoder's pair is untouched
        CHECK(seslm_registry_promote(r, v2, "live-decoder", NULL, "ops", NULL, &old) == SESLM_ERR_ARG); // kind
        CHECK(seslm_registry_promote(r, d1, "previous-decoder", NULL, "ops", NULL, &old) == SESLM_ERR_ARG);
        CHECK(seslm_registry_rollback_alias(r, "live-decoder", &g, "ops", "decoder drill", &now) == SESLM_OK && now == d1);
        CHECK(alias_of(r, "live-decoder") == d1 && alias_of(r, "previous-decoder") == d2 && alias_of(r, "live") == v1);
        CHECK(seslm_registry_rollback_alias(r, "candidate", &g, "ops", NULL, &now) == SESLM_ERR_ARG);
        CHECK(seslm_registry_rollback_alias(r, "live-none", &g, "ops", NULL, &now) == SESLM_ERR_ARG); // nothing there
    }
    // runs
    CHECK(seslm_registry_add_run(r, "run-1", "[{\"name\":\"plan\",\"seconds\":1.5}]", "ok", NULL, NULL, "job") == SESLM_OK);
    CHECK(seslm_registry_add_run(r, "run-1", "[]", "ok", NULL, NULL, "job") != SESLM_OK); // duplicate id
    CHECK(seslm_registry_runs_json(r, &json) == SESLM_OK && strstr(json, "\"plan\"") != NULL);
    free(json);

    // audit: every action above, in order, with actors and reasons
    long long n = audit_rows(r);
    CHECK_MSG(n == 25, "audit rows %lld", n);
    CHECK(seslm_registry_audit_json(r, 0, &json) == SESLM_OK);
    j = cJSON_Parse(json);
    free(json);
    static const char *const WANT[] = {"register", "register", "register", "promote_refused", "approve", "promote",
                                       "promote", "promote_refused", "approve", "promote", "promote_refused",
                                       "promote_refused", "promote", "rollback", "rollback", "rollback",
                                       "register", "register", "promote_refused", "approve", "approve", "promote",
                                       "promote", "rollback", "run"}; // a kind mismatch is a usage error, not audited
    for (int i = 0; i < 25 && i < cJSON_GetArraySize(j); i++) {
        const cJSON *row = cJSON_GetArrayItem(j, i);
        const char *act = cJSON_GetObjectItem(row, "action")->valuestring;
        CHECK_MSG(strcmp(act, WANT[i]) == 0, "audit row %d: %s, expected %s", i + 1, act, WANT[i]);
    }
    CHECK(strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 4), "actor")->valuestring, "alice") == 0);
    CHECK(strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 13), "reason")->valuestring, "bad latency") == 0);
    cJSON_Delete(j);
    seslm_registry_close(r);

    // the schema is migrated once; a newer schema is refused
    CHECK(seslm_registry_open(&r, url) == SESLM_OK && seslm_registry_schema_version(r) == SESLM_REGISTRY_SCHEMA_VERSION);
    seslm_registry_close(r);
    CHECK(raw_sql(url, "INSERT INTO schema_version (version, applied_at) VALUES (99, 'x')") == 0);
    r = NULL;
    CHECK(seslm_registry_open(&r, url) == SESLM_ERR_FORMAT && !r);
    CHECK(strstr(seslm_last_error(), "newer") != NULL);
    CHECK(raw_sql(url, "DELETE FROM schema_version WHERE version = 99") == 0);
}

static void suite_tamper(const char *url, int pg) {
    seslm_registry *r = NULL;
    CHECK(seslm_registry_open(&r, url) == SESLM_OK);
    if (!r) return;
    long long n = audit_rows(r);
    CHECK(n > 5);
    // the table itself refuses changes ...
    CHECK(raw_sql(url, "UPDATE audit_log SET reason = 'nothing happened' WHERE seq = 4") != 0);
    CHECK(raw_sql(url, "DELETE FROM audit_log WHERE seq = 4") != 0);
    CHECK(audit_rows(r) == n);
    // ... and someone who bypasses that is caught by the hash chain
    CHECK(raw_sql(url, pg ? "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change"
                          : "DROP TRIGGER audit_log_no_update") == 0);
    CHECK(raw_sql(url, "UPDATE audit_log SET reason = 'nothing happened' WHERE seq = 4") == 0);
    char head[65];
    long long rows = 0;
    CHECK(seslm_registry_audit_verify(r, &rows, head) == SESLM_ERR_FORMAT);
    CHECK_MSG(strstr(seslm_last_error(), "audit row 4") != NULL && rows == 4, "%s (rows %lld)", seslm_last_error(), rows);
    CHECK(raw_sql(url, "UPDATE audit_log SET reason = 'first' WHERE seq = 4") == 0); // back to what it was
    CHECK(seslm_registry_audit_verify(r, &rows, head) == SESLM_OK);
    CHECK(raw_sql(url, "UPDATE audit_log SET hash = prev_hash WHERE seq = 3") == 0);
    CHECK(seslm_registry_audit_verify(r, &rows, head) == SESLM_ERR_FORMAT && strstr(seslm_last_error(), "row 3"));
    seslm_registry_close(r);
}

/* Two processes promote concurrently: every promotion is serialised, none lost. */
static void suite_concurrent(const char *url) {
    seslm_registry *r = NULL;
    CHECK(seslm_registry_open(&r, url) == SESLM_OK);
    if (!r) return;
    long long a[2], b[2];
    a[0] = add(r, 101, 0, 100, NULL);
    a[1] = add(r, 102, 0, 100, NULL);
    b[0] = add(r, 103, 0, 100, NULL);
    b[1] = add(r, 104, 0, 100, NULL);
    long long rows_before = audit_rows(r);
    seslm_registry_close(r);
    enum { N = 25 };
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            seslm_registry *c = NULL;
            if (seslm_registry_open(&c, url) != SESLM_OK) _exit(100);
            int ok = 0;
            for (int i = 0; i < N; i++) {
                long long v = k == 0 ? a[i & 1] : b[i & 1];
                if (seslm_registry_promote(c, v, "live", NULL, k ? "proc-b" : "proc-a", NULL, NULL) == SESLM_OK) ok++;
                else if (!strstr(seslm_last_error(), "already")) {
                    fprintf(stderr, "promote: %s\n", seslm_last_error());
                    _exit(101);
                }
            }
            seslm_registry_close(c);
            _exit(ok);
        }
    }
    int total = 0;
    for (int k = 0; k < 2; k++) {
        int st = 0;
        waitpid(kids[k], &st, 0);
        CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) <= N, "child %d: status %d", k, st);
        if (WIFEXITED(st) && WEXITSTATUS(st) <= N) total += WEXITSTATUS(st);
    }
    CHECK(seslm_registry_open(&r, url) == SESLM_OK);
    if (!r) return;
    CHECK_MSG(total >= N, "only %d promotions succeeded", total);
    long long rows = audit_rows(r);
    CHECK_MSG(rows == rows_before + total, "audit rows %lld, expected %lld", rows, rows_before + total);
    // replay the promote rows: each one's "old" is the previous one's "version" (no lost update)
    char *json = NULL;
    CHECK(seslm_registry_audit_json(r, total, &json) == SESLM_OK);
    cJSON *j = cJSON_Parse(json), *it;
    free(json);
    long long live = -1, prev = -1;
    int broken = 0, n = 0;
    cJSON_ArrayForEach(it, j) {
        const cJSON *d = cJSON_GetObjectItem(it, "detail");
        CHECK(strcmp(cJSON_GetObjectItem(it, "action")->valuestring, "promote") == 0);
        long long v = (long long)num(d, "version"), o = (long long)num(d, "old");
        if (n++ && o != live) broken++;
        prev = o;
        live = v;
    }
    cJSON_Delete(j);
    CHECK_MSG(broken == 0, "%d promotions saw a stale live model", broken);
    CHECK(alias_of(r, "live") == live && alias_of(r, "previous") == prev);
    CHECK(raw_sql(url, "SELECT 1") == 0);
    seslm_registry_close(r);
}

/* kill -9 in the middle of a promotion (between its two alias writes): nothing of it remains. */
static void suite_kill9(const char *url) {
    seslm_registry *r = NULL;
    CHECK(seslm_registry_open(&r, url) == SESLM_OK);
    if (!r) return;
    long long live = alias_of(r, "live"), prev = alias_of(r, "previous"), rows = audit_rows(r);
    long long target = add(r, 201, 0, 100, NULL);
    rows++;
    seslm_registry_close(r);
    pid_t kid = fork();
    if (kid == 0) {
        setenv("SESLM_REGISTRY_TEST_PAUSE_MS", "20000", 1);
        seslm_registry *c = NULL;
        if (seslm_registry_open(&c, url) != SESLM_OK) _exit(100);
        seslm_registry_promote(c, target, "live", NULL, "doomed", NULL, NULL);
        _exit(0);
    }
    struct timespec ts = {1, 500000000};
    nanosleep(&ts, NULL);
    kill(kid, SIGKILL);
    int st = 0;
    waitpid(kid, &st, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    CHECK(seslm_registry_open(&r, url) == SESLM_OK);
    if (!r) return;
    CHECK(alias_of(r, "live") == live && alias_of(r, "previous") == prev);
    CHECK(audit_rows(r) == rows);
    long long old = 0;
    CHECK_MSG(seslm_registry_promote(r, target, "live", NULL, "survivor", NULL, &old) == SESLM_OK, "%s", seslm_last_error());
    CHECK(old == live && alias_of(r, "live") == target && alias_of(r, "previous") == live);
    CHECK(audit_rows(r) == rows + 1);
    seslm_registry_close(r);
}

#endif
