/* test_validate_report.c — the sandbox's outputs from a hand-made result: the JSON verdict parses and
 * carries every metric and gate; the JUnit XML escapes markup in paths and messages and counts the
 * failures; the Markdown report lists the gates; seslm_validate_write writes the three files
 * crash-safe (no temporary files left) and refuses an output path that is a file. */
#include "test.h"
#include "validate.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static char *render(void (*fn)(const seslm_validate_config *, const seslm_validate_result *, FILE *),
                    const seslm_validate_config *c, const seslm_validate_result *r) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    fn(c, r, f);
    fclose(f);
    return buf;
}

static void junit_fn(const seslm_validate_config *c, const seslm_validate_result *r, FILE *f) {
    (void)c;
    seslm_validate_junit(r, f);
}

int main(void) {
    seslm_validate_config c;
    seslm_validate_config_default(&c);
    seslm_validate_result *r = calloc(1, sizeof *r);
    snprintf(r->parent_dir, sizeof r->parent_dir, "models/a&b<c>\"d'");
    snprintf(r->candidate_dir, sizeof r->candidate_dir, "runs/student-20");
    r->parent_params = 22565376, r->candidate_params = 20458637;
    r->values[SESLM_VM_STSB_SPEARMAN] = (seslm_vvalue){.measured = 1, .parent = 0.8672, .candidate = 0.8400};
    r->values[SESLM_VM_WEIGHT_BYTES] = (seslm_vvalue){.measured = 1, .parent = 90868376, .candidate = 60000000};
    r->values[SESLM_VM_COSINE_MEAN] = (seslm_vvalue){.measured = 1, .parent = 1, .candidate = 0.97};
    seslm_gate g[3] = {{SESLM_VM_STSB_SPEARMAN, SESLM_GATE_MAX_DROP, 0.02, 3, 0},
                       {SESLM_VM_WEIGHT_BYTES, SESLM_GATE_MAX_RATIO, 0.70, 4, 0},
                       {SESLM_VM_RECALL_AGREEMENT, SESLM_GATE_MIN, 0.8, 5, 0}}; // not measured: fails
    r->pass = 1;
    for (int i = 0; i < 3; i++) {
        seslm_gate_eval(&g[i], &r->values[g[i].metric], &r->results[i]);
        r->pass &= r->results[i].pass;
    }
    r->n_results = 3;
    CHECK(!r->results[0].pass && r->results[1].pass && !r->results[2].pass && !r->pass);

    char *json = seslm_validate_verdict_json(&c, r);
    cJSON *v = cJSON_Parse(json);
    CHECK(v != NULL);
    CHECK(cJSON_IsFalse(cJSON_GetObjectItem(v, "pass")));
    CHECK(cJSON_GetObjectItem(v, "gates_failed")->valueint == 2 && cJSON_GetObjectItem(v, "gates_total")->valueint == 3);
    const cJSON *ms = cJSON_GetObjectItem(v, "metrics");
    CHECK(cJSON_GetArraySize(ms) == SESLM_VM_COUNT);
    const cJSON *wb = cJSON_GetObjectItem(ms, "weight_bytes");
    CHECK(fabs(cJSON_GetObjectItem(wb, "ratio")->valuedouble - 60000000.0 / 90868376) < 1e-9);
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(ms, "recall_agreement"), "candidate")));
    CHECK(!strcmp(cJSON_GetObjectItem(cJSON_GetObjectItem(v, "parent"), "dir")->valuestring, r->parent_dir));
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(v, "gates")) == 3);
    CHECK(cJSON_IsString(cJSON_GetObjectItem(cJSON_GetObjectItem(v, "seslm_build"), "commit"))); // provenance
    cJSON_Delete(v);
    free(json);

    char *x = render(junit_fn, &c, r);
    CHECK(strstr(x, "value=\"models/a&amp;b&lt;c&gt;&quot;d&apos;\"") != NULL);
    CHECK(strstr(x, "a&b") == NULL && strstr(x, "<c>") == NULL);
    CHECK(strstr(x, "tests=\"3\" failures=\"2\"") != NULL);
    int cases = 0, failures = 0;
    for (const char *p = x; (p = strstr(p, "<testcase ")); p++) cases++;
    for (const char *p = x; (p = strstr(p, "<failure ")); p++) failures++;
    CHECK(cases == 3 && failures == 2);
    CHECK(strstr(x, "name=\"stsb_spearman max_drop 0.02\"") != NULL);
    CHECK(strstr(x, " timestamp=\"20") != NULL && strstr(x, " hostname=\"") != NULL); // JUnit: when and where
    CHECK(strstr(x, "name=\"seslm_commit\"") != NULL);
    free(x);

    char *md = render(seslm_validate_report_md, &c, r);
    CHECK(strncmp(md, "# Validation: FAIL", 18) == 0);
    CHECK(strstr(md, "| **FAIL** | `stsb_spearman max_drop 0.02`") != NULL);
    CHECK(strstr(md, "| pass | `weight_bytes max_ratio 0.7`") != NULL);
    CHECK(strstr(md, "not measured") != NULL);
    free(md);

    char dir[] = "/tmp/seslm_test_validate_report.XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char out[256], path[320];
    snprintf(out, sizeof out, "%s/out", dir);
    CHECK_MSG(seslm_validate_write(&c, r, out) == SESLM_OK, "%s", seslm_last_error());
    CHECK_MSG(seslm_validate_write(&c, r, out) == SESLM_OK, "rewrite: %s", seslm_last_error()); // replaces
    const char *files[3] = {"verdict.json", "report.md", "junit.xml"};
    for (int i = 0; i < 3; i++) {
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", out, files[i]);
        CHECK_MSG(stat(path, &sb) == 0 && sb.st_size > 100, "%s", path);
    }
    DIR *d = opendir(out);
    int entries = 0;
    for (struct dirent *e; d && (e = readdir(d));) entries += e->d_name[0] != '.';
    if (d) closedir(d);
    CHECK_MSG(entries == 3, "%d entries in the output directory (temporary files left?)", entries);
    snprintf(path, sizeof path, "%s/afile", dir);
    FILE *f = fopen(path, "w");
    if (f) fclose(f);
    CHECK(seslm_validate_write(&c, r, path) == SESLM_ERR_IO);
    CHECK(strstr(seslm_last_error(), "afile") != NULL);
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", out, files[i]);
        unlink(path);
    }
    rmdir(out);
    snprintf(path, sizeof path, "%s/afile", dir);
    unlink(path);
    rmdir(dir);
    free(r);
    return test_report("test_validate_report");
}
