/* test_registry_sqlite.c — the registry suite (tests/registry_suite.h) on the embedded SQLite backend:
 * versions, lineage, ratios, governance, rollback, audit order; tampering detected; two processes
 * promoting concurrently lose no update; kill -9 inside a promotion leaves nothing of it; an
 * unopenable file is a clear error. Also the content-addressed store. */
#include "registry_suite.h"
#include "store.h"

#include <sqlite3.h>
#include <sys/stat.h>

static int raw_sql(const char *url, const char *sql) {
    sqlite3 *db = NULL;
    int rc = sqlite3_open(url + 7, &db); // "sqlite:" prefix
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(db, 10000);
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    }
    sqlite3_close(db);
    return rc;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_store(const char *tmp) {
    char src[512], sub[600], store[512], path[1024], p2[1024], sha[65], sha2[65], sha3[65];
    snprintf(src, sizeof src, "%s/model", tmp);
    snprintf(sub, sizeof sub, "%s/1_Pooling", src);
    snprintf(store, sizeof store, "%s/store", tmp);
    mkdir(src, 0755);
    mkdir(sub, 0755);
    char f[1200];
    snprintf(f, sizeof f, "%s/config.json", src);
    write_file(f, "{\"hidden_size\": 4}\n");
    snprintf(f, sizeof f, "%s/config.json", sub);
    write_file(f, "{\"pooling_mode_mean_tokens\": true}\n");
    int existed = -1;
    CHECK_MSG(seslm_store_put(store, src, sha, path, sizeof path, &existed) == SESLM_OK, "%s", seslm_last_error());
    CHECK(existed == 0 && strstr(path, sha) != NULL);
    snprintf(f, sizeof f, "%s/1_Pooling/config.json", path);
    struct stat st;
    CHECK(stat(f, &st) == 0 && st.st_size == 35);
    // idempotent, and the same hash as hashing in place
    CHECK(seslm_store_put(store, src, sha2, p2, sizeof p2, &existed) == SESLM_OK && existed == 1 && !strcmp(sha, sha2));
    long long bytes = 0;
    CHECK(seslm_store_hash_dir(src, sha3, &bytes) == SESLM_OK && !strcmp(sha, sha3) && bytes == 19 + 35);
    CHECK(seslm_store_hash_dir(path, sha3, NULL) == SESLM_OK && !strcmp(sha, sha3));
    // renaming a file changes the hash
    char g[1200];
    snprintf(g, sizeof g, "%s/config2.json", src);
    snprintf(f, sizeof f, "%s/config.json", src);
    CHECK(rename(f, g) == 0);
    CHECK(seslm_store_hash_dir(src, sha3, NULL) == SESLM_OK && strcmp(sha, sha3) != 0);
    // no temporary directory is left behind
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "ls -a %s/sha256 | grep -q tmp", store);
    CHECK(system(cmd) != 0);
    CHECK(seslm_store_put(store, "/nonexistent/model", sha, path, sizeof path, &existed) == SESLM_ERR_IO);
}

int main(void) {
    char tmp[] = "/tmp/seslm_test_registry.XXXXXX";
    if (!mkdtemp(tmp)) return 1;
    char url[600];
    snprintf(url, sizeof url, "sqlite:%s/registry.db", tmp);
    suite_basics(url);
    suite_tamper(url, 0);
    snprintf(url, sizeof url, "sqlite:%s/registry2.db", tmp);
    suite_concurrent(url);
    suite_kill9(url);
    test_store(tmp);
    // a registry that cannot be opened: a clear error naming it
    seslm_registry *r = NULL;
    CHECK(seslm_registry_open(&r, "sqlite:/nonexistent/dir/registry.db") == SESLM_ERR_IO && !r);
    CHECK(strstr(seslm_last_error(), "/nonexistent/dir/registry.db") != NULL);
    snprintf(url, sizeof url, "%s/not-a-db", tmp);
    write_file(url, "this is not an SQLite database, just some text that is long enough to have a header......\n");
    CHECK(seslm_registry_open(&r, url) == SESLM_ERR_IO && !r);
    CHECK(strstr(seslm_last_error(), "not a database") != NULL);
    CHECK(seslm_registry_open(&r, "") == SESLM_ERR_ARG);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return test_report("test_registry_sqlite");
}
