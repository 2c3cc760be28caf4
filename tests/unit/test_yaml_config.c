/* test_yaml_config.c — the YAML configuration loader (runtime/core/yaml_config.c):
 *   - a valid file: nested mappings as dotted keys, sequences, numbers, integers, booleans, strings,
 *     defaults for absent keys, key checking with exact names and "prefix.*";
 *   - bad values: a negative or out-of-range number, a non-number, a non-integer, a mapping where a
 *     scalar is expected, a bad boolean: each fails with "file:line: key: expected ..." naming the line;
 *   - an unknown key, a duplicate key, malformed YAML, a top level that is not a mapping, aliases,
 *     several documents: clear errors with the line;
 *   - a missing file; an empty string is an empty mapping, an empty (or comments-only) FILE an error, "{}"
 *     the explicit empty mapping;
 *   - configs/drift.yaml loads, and its values equal the built-in defaults (pipeline/drift/drift.c). */
#include "drift.h"
#include "test.h"

#include <sys/stat.h>
#include <unistd.h>
#include "yaml_config.h"

static seslm_yaml *load(const char *text) {
    seslm_yaml *y = NULL;
    seslm_status st = seslm_yaml_load_string(&y, "t.yaml", text, strlen(text));
    CHECK_MSG(st == SESLM_OK && y, "load failed: %s", seslm_last_error());
    return y;
}

// Loading `text` fails with a message containing `needle`.
static void expect_load_error(const char *text, const char *needle) {
    seslm_yaml *y = NULL;
    seslm_status st = seslm_yaml_load_string(&y, "t.yaml", text, strlen(text));
    CHECK_MSG(st == SESLM_ERR_FORMAT && !y, "accepted: %s", text);
    CHECK_MSG(strstr(seslm_last_error(), needle) != NULL, "message '%s' lacks '%s'", seslm_last_error(), needle);
    seslm_yaml_free(y);
}

static void expect_msg(seslm_status st, const char *needle) {
    CHECK_MSG(st == SESLM_ERR_FORMAT, "accepted (expected '%s')", needle);
    CHECK_MSG(strstr(seslm_last_error(), needle) != NULL, "message '%s' lacks '%s'", seslm_last_error(), needle);
}

int main(void) {
    // ---- a valid file ----
    const char *doc = "# comment\n"
                      "name: drift check\n"           // 2
                      "ratio: 0.25\n"                 // 3
                      "count: 12\n"                   // 4
                      "on: yes\n"                     // 5
                      "nested:\n"                     // 6
                      "  inner:\n"                    // 7
                      "    x: -1.5e-3\n"              // 8
                      "    flag: False\n"             // 9
                      "  list: [a, b, c]\n"           // 10
                      "  block:\n"                    // 11
                      "    - 1\n"                     // 12
                      "    - 2\n"                     // 13
                      "negative: -3\n"                // 14
                      "text: \"0.5\"\n"               // 15
                      "empty:\n";                     // 16
    seslm_yaml *y = load(doc);
    if (!y) return test_report("test_yaml_config");
    double d = 0;
    long long i = 0;
    int b = -1, line = 0;
    const char *s = NULL;
    CHECK(seslm_yaml_get_double(y, "ratio", 0, 1, 9, &d) == SESLM_OK && d == 0.25);
    CHECK(seslm_yaml_get_double(y, "nested.inner.x", -1, 1, 9, &d) == SESLM_OK && d == -1.5e-3);
    CHECK(seslm_yaml_get_double(y, "count", 0, 100, 9, &d) == SESLM_OK && d == 12); // an integer is a number
    CHECK(seslm_yaml_get_int(y, "count", 0, 100, 9, &i) == SESLM_OK && i == 12);
    CHECK(seslm_yaml_get_bool(y, "on", 0, &b) == SESLM_OK && b == 1);
    CHECK(seslm_yaml_get_bool(y, "nested.inner.flag", 1, &b) == SESLM_OK && b == 0);
    CHECK(seslm_yaml_get_string(y, "name", NULL, &s) == SESLM_OK && s && strcmp(s, "drift check") == 0);
    CHECK(seslm_yaml_get_double(y, "text", 0, 1, 9, &d) == SESLM_OK && d == 0.5); // a quoted number is a number
    CHECK(seslm_yaml_get_string(y, "empty", "def", &s) == SESLM_OK && s && strcmp(s, "") == 0);
    CHECK(seslm_yaml_count(y, "nested.list") == 3 && seslm_yaml_count(y, "nested.block") == 2);
    CHECK(seslm_yaml_count(y, "nested") == -1 && seslm_yaml_count(y, "absent") == 0);
    CHECK((s = seslm_yaml_scalar(y, "nested.list.1", &line)) && strcmp(s, "b") == 0 && line == 10);
    CHECK((s = seslm_yaml_scalar(y, "nested.block.1", &line)) && strcmp(s, "2") == 0 && line == 13);
    CHECK(seslm_yaml_scalar(y, "nested", NULL) == NULL && seslm_yaml_has(y, "nested"));
    CHECK(!seslm_yaml_has(y, "nested.nope"));
    // absent keys give the defaults
    CHECK(seslm_yaml_get_double(y, "absent", 0, 1, 0.75, &d) == SESLM_OK && d == 0.75);
    CHECK(seslm_yaml_get_int(y, "nested.absent", 0, 10, 7, &i) == SESLM_OK && i == 7);
    CHECK(seslm_yaml_get_bool(y, "absent", 1, &b) == SESLM_OK && b == 1);
    CHECK(seslm_yaml_get_string(y, "absent", "dflt", &s) == SESLM_OK && strcmp(s, "dflt") == 0);

    // ---- bad values: file:line: key: expected ... ----
    expect_msg(seslm_yaml_get_double(y, "negative", 0, 1, 0, &d), "t.yaml:14: negative: expected a number in [0, 1], got '-3'");
    expect_msg(seslm_yaml_get_double(y, "ratio", 0.5, 1, 0, &d), "t.yaml:3: ratio: expected a number in [0.5, 1], got '0.25'");
    expect_msg(seslm_yaml_get_double(y, "name", 0, 1, 0, &d), "t.yaml:2: name: expected a number");
    expect_msg(seslm_yaml_get_double(y, "empty", 0, 1, 0, &d), "t.yaml:16: empty: expected a number");
    expect_msg(seslm_yaml_get_int(y, "ratio", 0, 10, 0, &i), "t.yaml:3: ratio: expected an integer in [0, 10], got '0.25'");
    expect_msg(seslm_yaml_get_int(y, "count", 0, 10, 0, &i), "t.yaml:4: count: expected an integer in [0, 10], got '12'");
    expect_msg(seslm_yaml_get_double(y, "nested.inner", 0, 1, 0, &d), "t.yaml:7: nested.inner: expected a number, got a mapping");
    expect_msg(seslm_yaml_get_bool(y, "count", 0, &b), "t.yaml:4: count: expected true or false, got '12'");
    expect_msg(seslm_yaml_get_string(y, "nested.list", NULL, &s), "t.yaml:10: nested.list: expected a string, got a sequence");

    // ---- unknown keys ----
    const char *all[] = {"name", "ratio", "count", "on", "nested.inner.x", "nested.inner.flag", "nested.list.*",
                         "nested.block.*", "negative", "text", "empty"};
    CHECK_MSG(seslm_yaml_check_keys(y, all, 11) == SESLM_OK, "%s", seslm_last_error());
    const char *some[] = {"name", "ratio", "count", "on", "nested.*", "negative", "text"};
    expect_msg(seslm_yaml_check_keys(y, some, 7), "t.yaml:16: empty: unknown key");
    const char *fewer[] = {"name", "ratio", "count", "on", "nested.inner.x", "nested.list.*", "nested.block.*",
                           "negative", "text", "empty"};
    expect_msg(seslm_yaml_check_keys(y, fewer, 10), "t.yaml:9: nested.inner.flag: unknown key");
    seslm_yaml_free(y);

    // ---- malformed documents ----
    expect_load_error("a: 1\nb: [1, 2\nc: 3\n", "t.yaml:");
    expect_load_error("a: 1\n  b: 2\n", "t.yaml:2:");
    expect_load_error("a: 1\na: 2\n", "t.yaml:2: a: duplicate key");
    expect_load_error("- 1\n- 2\n", "t.yaml:1: expected a mapping");
    expect_load_error("just a scalar\n", "expected a mapping");
    expect_load_error("a: &x 1\nb: *x\n", "t.yaml:2: aliases");
    expect_load_error("a: 1\n---\nb: 2\n", "t.yaml:2: more than one YAML document");
    expect_load_error("a: 1\n? [x, y]\n: 2\n", "keys must be plain scalars");
    expect_load_error("a.b: 1\n", "invalid key 'a.b'");
    expect_load_error("a:\n\tb: 1\n", "t.yaml:2:");
    // empty files are empty mappings
    y = load("");
    CHECK(y && !seslm_yaml_has(y, "a"));
    seslm_yaml_free(y);
    y = load("# only a comment\n");
    CHECK(y != NULL);
    seslm_yaml_free(y);
    // ... but a config FILE that says nothing is an error, not "run on the defaults"; {} is explicit
    {
        char fn[] = "/tmp/test_yaml_empty_XXXXXX";
        int fd = mkstemp(fn);
        CHECK(fd >= 0);
        const char *bodies[] = {"", "\n\n", "# only a comment\n  # another\n", "---\n", "  \n---\n# x\n"};
        for (int i = 0; i < 5; i++) {
            FILE *f = fopen(fn, "wb");
            fputs(bodies[i], f);
            fclose(f);
            y = NULL;
            CHECK_MSG(seslm_yaml_load(&y, fn) == SESLM_ERR_FORMAT && !y, "body %d loaded", i);
            CHECK(strstr(seslm_last_error(), "is empty") && strstr(seslm_last_error(), fn));
        }
        FILE *f = fopen(fn, "wb");
        fputs("# defaults on purpose\n{}\n", f);
        fclose(f);
        CHECK_MSG(seslm_yaml_load(&y, fn) == SESLM_OK && y && !seslm_yaml_has(y, "a"), "%s", seslm_last_error());
        seslm_yaml_free(y);
        close(fd);
        unlink(fn);
    }
    // a missing file
    CHECK(seslm_yaml_load(&y, "/nonexistent/x.yaml") == SESLM_ERR_IO && !y);
    CHECK(strstr(seslm_last_error(), "/nonexistent/x.yaml") != NULL);
    // a directory fails; a FIFO nothing writes to reads as empty at once (fopen of it blocked forever; alarm kills
    // the test if it comes back); a pipe with a writer (what `--config <(...)` passes) is read
    CHECK(seslm_yaml_load(&y, "/tmp") == SESLM_ERR_IO && !y && strstr(seslm_last_error(), "not a regular file"));
    {
        char dir[] = "/tmp/test_yaml_fifo_XXXXXX", fifo[64];
        CHECK(mkdtemp(dir) != NULL);
        snprintf(fifo, sizeof fifo, "%s/config.yaml", dir);
        CHECK(mkfifo(fifo, 0600) == 0);
        alarm(20);
        CHECK(seslm_yaml_load(&y, fifo) == SESLM_ERR_FORMAT && !y && strstr(seslm_last_error(), "is empty"));
        alarm(0);
        unlink(fifo);
        rmdir(dir);
        int pfd[2];
        CHECK(pipe(pfd) == 0);
        const char body[] = "a: 1\nb: two\n";
        CHECK(write(pfd[1], body, sizeof body - 1) == (ssize_t)(sizeof body - 1));
        close(pfd[1]);
        char dev[64];
        snprintf(dev, sizeof dev, "/dev/fd/%d", pfd[0]);
        alarm(20);
        CHECK_MSG(seslm_yaml_load(&y, dev) == SESLM_OK && y && seslm_yaml_has(y, "b"), "%s", seslm_last_error());
        alarm(0);
        seslm_yaml_free(y);
        y = NULL;
        close(pfd[0]);
    }

    // ---- configs/drift.yaml: loads, and holds the built-in defaults ----
    seslm_drift_config def, c;
    seslm_drift_config_default(&def);
    seslm_status st = seslm_drift_config_load(&c, SESLM_SOURCE_DIR "/configs/drift.yaml");
    CHECK_MSG(st == SESLM_OK, "configs/drift.yaml: %s", seslm_last_error());
    CHECK(c.mmd_alpha == def.mmd_alpha && c.mmd_min == def.mmd_min && c.mmd_permutations == def.mmd_permutations);
    CHECK(c.mmd_max_sample == def.mmd_max_sample && c.seed == def.seed && c.frechet_max == def.frechet_max);
    CHECK(c.min_embeddings == def.min_embeddings && c.js_max == def.js_max && c.unseen_max == def.unseen_max);
    CHECK(c.min_tokens == def.min_tokens && c.intent_js_max == def.intent_js_max);
    CHECK(c.vocab_permutations == def.vocab_permutations);
    // a drift config with a bad value and an unknown key
    char path[] = "/tmp/seslm_yaml_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0) {
        FILE *f = fdopen(fd, "w");
        fputs("embeddings:\n  mmd:\n    alpha: 1.5\n", f);
        fclose(f);
        expect_msg(seslm_drift_config_load(&c, path), ":3: embeddings.mmd.alpha: expected a number in [0, 1], got '1.5'");
        f = fopen(path, "w");
        fputs("vocabulary:\n  js_excess_max: 0.2\n  jsmax: 0.3\n", f);
        fclose(f);
        expect_msg(seslm_drift_config_load(&c, path), ":3: vocabulary.jsmax: unknown key");
        f = fopen(path, "w");
        fputs("vocabulary:\n  unseen_excess_max: -0.1\n", f);
        fclose(f);
        expect_msg(seslm_drift_config_load(&c, path), ":2: vocabulary.unseen_excess_max: expected a number in [0, 1]");
        remove(path);
    }
    return test_report("test_yaml_config");
}
