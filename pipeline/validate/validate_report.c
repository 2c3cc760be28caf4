/* validate_report.c — the sandbox's outputs: JSON verdict (machines), Markdown report (people) and
 * JUnit XML (CI), written crash-safe (validate.h). */
#include "validate.h"

#include "validate_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static cJSON *num_or_null(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

char *seslm_validate_verdict_json(const seslm_validate_config *c, const seslm_validate_result *r) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    cJSON_AddStringToObject(root, "schema", "seslm-validate-verdict/1");
    cJSON_AddBoolToObject(root, "pass", r->pass);
    cJSON_AddStringToObject(root, "verdict", r->pass ? "pass" : r->inconclusive ? "inconclusive" : "fail");
    int failed = 0, undecided = 0;
    for (int i = 0; i < r->n_results; i++) {
        failed += !r->results[i].pass && !r->results[i].inconclusive;
        undecided += r->results[i].inconclusive;
    }
    cJSON_AddNumberToObject(root, "gates_failed", failed);
    cJSON_AddNumberToObject(root, "gates_inconclusive", undecided);
    cJSON_AddNumberToObject(root, "gates_total", r->n_results);
    cJSON_AddItemToObject(root, "seslm_build", cJSON_Parse(seslm_build_info_json())); // provenance
    cJSON *p = cJSON_AddObjectToObject(root, "parent"), *q = cJSON_AddObjectToObject(root, "candidate");
    cJSON_AddStringToObject(p, "dir", r->parent_dir);
    cJSON_AddStringToObject(p, "weights_sha256", r->parent_sha256);
    cJSON_AddNumberToObject(p, "params", (double)r->parent_params);
    cJSON_AddStringToObject(q, "dir", r->candidate_dir);
    cJSON_AddStringToObject(q, "weights_sha256", r->candidate_sha256);
    cJSON_AddNumberToObject(q, "params", (double)r->candidate_params);
    cJSON *ms = cJSON_AddObjectToObject(root, "metrics");
    for (int m = 0; m < SESLM_VM_COUNT; m++) {
        const seslm_vvalue *v = &r->values[m];
        cJSON *o = cJSON_AddObjectToObject(ms, seslm_vmetric_name((seslm_vmetric)m));
        cJSON_AddBoolToObject(o, "measured", v->measured);
        cJSON_AddItemToObject(o, "parent", num_or_null(v->measured ? v->parent : NAN));
        cJSON_AddItemToObject(o, "candidate", num_or_null(v->measured ? v->candidate : NAN));
        cJSON_AddItemToObject(o, "delta", num_or_null(v->measured ? v->candidate - v->parent : NAN));
        cJSON_AddItemToObject(o, "ratio", num_or_null(v->measured && v->parent != 0 ? v->candidate / v->parent : NAN));
        cJSON_AddNumberToObject(o, "n", r->n_samples[m]);
        if (v->skipped) cJSON_AddBoolToObject(o, "skipped", 1);
        cJSON_AddStringToObject(o, "what", seslm_vmetric_what((seslm_vmetric)m));
        cJSON_AddStringToObject(o, "data", r->data[m]);
    }
    cJSON *lat = cJSON_AddObjectToObject(root, "latency_spread_ms");
    const char *bn[2] = {"batch1", "batch32"};
    for (int s = 0; s < 2; s++) {
        cJSON *b = cJSON_AddObjectToObject(lat, bn[s]);
        cJSON_AddNumberToObject(b, "repeats", r->lat_repeats[s]);
        cJSON_AddItemToObject(b, "parent_min", num_or_null(r->lat_repeats[s] ? r->lat_min[0][s] : NAN));
        cJSON_AddItemToObject(b, "parent_max", num_or_null(r->lat_repeats[s] ? r->lat_max[0][s] : NAN));
        cJSON_AddItemToObject(b, "candidate_min", num_or_null(r->lat_repeats[s] ? r->lat_min[1][s] : NAN));
        cJSON_AddItemToObject(b, "candidate_max", num_or_null(r->lat_repeats[s] ? r->lat_max[1][s] : NAN));
        // the paired view: per-pair candidate/parent ratios of wall and of CPU time, and min against min
        cJSON_AddItemToObject(b, "pair_ratio_median", num_or_null(r->lat_repeats[s] ? r->pair_ratio_med[s] : NAN));
        cJSON_AddItemToObject(b, "pair_ratio_min", num_or_null(r->lat_repeats[s] ? r->pair_ratio_min[s] : NAN));
        cJSON_AddItemToObject(b, "pair_ratio_max", num_or_null(r->lat_repeats[s] ? r->pair_ratio_max[s] : NAN));
        cJSON_AddItemToObject(b, "min_over_min_ratio", num_or_null(r->lat_repeats[s] ? r->min_ratio[s] : NAN));
        cJSON_AddItemToObject(b, "pair_cpu_ratio_median", num_or_null(r->lat_repeats[s] ? r->pair_cpu_ratio_med[s] : NAN));
        cJSON_AddItemToObject(b, "parent_cpu_p50", num_or_null(r->lat_repeats[s] ? r->cpu_p50[0][s] : NAN));
        cJSON_AddItemToObject(b, "candidate_cpu_p50", num_or_null(r->lat_repeats[s] ? r->cpu_p50[1][s] : NAN));
    }
    cJSON *gs = cJSON_AddArrayToObject(root, "gates");
    for (int i = 0; i < r->n_results; i++) {
        const seslm_gate_result *g = &r->results[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "metric", seslm_vmetric_name(g->gate.metric));
        cJSON_AddStringToObject(o, "kind", seslm_gate_kind_name(g->gate.kind));
        cJSON_AddNumberToObject(o, "threshold", g->gate.threshold);
        cJSON_AddItemToObject(o, "observed", num_or_null(g->observed));
        cJSON_AddBoolToObject(o, "pass", g->pass);
        cJSON_AddBoolToObject(o, "inconclusive", g->inconclusive);
        cJSON *iv = cJSON_AddArrayToObject(o, "interval"); // ~95%; null = unbounded on that side
        cJSON_AddItemToArray(iv, num_or_null(g->lo));
        cJSON_AddItemToArray(iv, num_or_null(g->hi));
        if (g->skipped) cJSON_AddBoolToObject(o, "skipped", 1);
        if (g->extra) cJSON_AddBoolToObject(o, "extra", 1); // reported, not gating (unless_traffic)
        cJSON_AddStringToObject(o, "message", g->message);
        cJSON_AddStringToObject(o, "data", r->data[g->gate.metric]);
        cJSON_AddItemToArray(gs, o);
    }
    cJSON *run = cJSON_AddObjectToObject(root, "run");
    cJSON_AddNumberToObject(run, "seconds", r->seconds);
    cJSON_AddNumberToObject(run, "threads", r->threads);
    cJSON_AddNumberToObject(run, "batch", c->batch);
    cJSON_AddNumberToObject(run, "classifier_C", c->lr.C);
    cJSON_AddNumberToObject(run, "retrieval_k", c->recall_k);
    cJSON_AddNumberToObject(run, "retrieval_tie_margin", c->recall_tie_margin);
    char *txt = cJSON_Print(root);
    cJSON_Delete(root);
    return txt;
}

static void fmt_value(char *b, size_t n, seslm_vmetric m, double v) {
    if (!isfinite(v)) snprintf(b, n, "-");
    else if (m == SESLM_VM_WEIGHT_BYTES || m == SESLM_VM_PEAK_RSS) snprintf(b, n, "%.1f MB", v / 1e6);
    else if (m >= SESLM_VM_LATENCY_B1_P50 && m <= SESLM_VM_LATENCY_B32_P95) snprintf(b, n, "%.2f ms", v);
    else snprintf(b, n, "%.4f", v);
}

void seslm_validate_report_md(const seslm_validate_config *c, const seslm_validate_result *r, FILE *f) {
    int failed = 0;
    for (int i = 0; i < r->n_results; i++) failed += !r->results[i].pass;
    fprintf(f, "# Validation: %s\n\n", r->pass ? "PASS" : r->inconclusive ? "INCONCLUSIVE (rerun)" : "FAIL");
    if (r->inconclusive)
        fprintf(f, "No gate failed, but a timing gate's interval straddles its threshold: the machine was too noisy to "
                   "decide. Rerun (on a quieter machine, or with more latency repeats).\n\n");
    fprintf(f, "- parent: `%s` (%lld parameters, weights sha256 %.16s...)\n", r->parent_dir, r->parent_params,
            r->parent_sha256);
    fprintf(f, "- candidate: `%s` (%lld parameters, weights sha256 %.16s...)\n", r->candidate_dir, r->candidate_params,
            r->candidate_sha256);
    fprintf(f, "- gates: %d of %d passed; run %.1f s, %d thread(s) (0 = all cores), batch %d\n\n",
            r->n_results - failed, r->n_results, r->seconds, r->threads, c->batch);
    fprintf(f, "## Gates\n\n| | gate | result | data |\n|---|---|---|---|\n");
    for (int i = 0; i < r->n_results; i++) {
        const seslm_gate_result *g = &r->results[i];
        fprintf(f, "| %s | `%s %s %g` | %s | %s |\n",
                g->skipped ? "skipped" : g->extra ? "extra" : g->pass ? "pass" : g->inconclusive ? "**inconclusive**" : "**FAIL**",
                seslm_vmetric_name(g->gate.metric), seslm_gate_kind_name(g->gate.kind), g->gate.threshold, g->message,
                r->data[g->gate.metric][0] ? r->data[g->gate.metric] : "-");
    }
    fprintf(f, "\n## Metrics (parent and candidate measured in this run, on the same inputs)\n\n");
    fprintf(f, "| metric | parent | candidate | candidate / parent | n | what |\n|---|---|---|---|---|---|\n");
    for (int m = 0; m < SESLM_VM_COUNT; m++) {
        const seslm_vvalue *v = &r->values[m];
        char a[32], b[32], q[32];
        fmt_value(a, sizeof a, (seslm_vmetric)m, v->measured ? v->parent : NAN);
        fmt_value(b, sizeof b, (seslm_vmetric)m, v->measured ? v->candidate : NAN);
        if (v->measured && v->parent != 0) snprintf(q, sizeof q, "%.3f", v->candidate / v->parent);
        else snprintf(q, sizeof q, "-");
        fprintf(f, "| %s | %s | %s | %s | %d | %s |\n", seslm_vmetric_name((seslm_vmetric)m), a, b, q, r->n_samples[m],
                seslm_vmetric_what((seslm_vmetric)m));
    }
    if (r->lat_repeats[0] || r->lat_repeats[1]) {
        fprintf(f, "\nLatency spread (min .. max of the timed calls, ms): ");
        const int bs[2] = {1, 32};
        for (int s = 0; s < 2; s++)
            if (r->lat_repeats[s])
                fprintf(f, "%sbatch %d (%d calls each): parent %.2f .. %.2f, candidate %.2f .. %.2f", s ? "; " : "",
                        bs[s], r->lat_repeats[s], r->lat_min[0][s], r->lat_max[0][s], r->lat_min[1][s],
                        r->lat_max[1][s]);
        fprintf(f, ".\n\nPaired view (each pair: parent and candidate back to back): ");
        for (int s = 0; s < 2; s++)
            if (r->lat_repeats[s])
                fprintf(f, "%sbatch %d: wall-time ratio median %.3f (min %.3f, max %.3f), min / min %.3f, CPU-time ratio "
                           "median %.3f (CPU ms per call: parent %.2f, candidate %.2f)",
                        s ? "; " : "", bs[s], r->pair_ratio_med[s], r->pair_ratio_min[s], r->pair_ratio_max[s],
                        r->min_ratio[s], r->pair_cpu_ratio_med[s], r->cpu_p50[0][s], r->cpu_p50[1][s]);
        fprintf(f, ".\n");
    }
}

static void xml_escaped(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default:
            if ((unsigned char)*s < 0x20 && *s != '\n' && *s != '\t') fputc(' ', f); // not allowed in XML 1.0
            else fputc(*s, f);
        }
    }
}

void seslm_validate_junit(const seslm_validate_result *r, FILE *f) {
    int failed = 0, skipped = 0; // an inconclusive gate is reported skipped: neither passed nor failed
    for (int i = 0; i < r->n_results; i++) {
        failed += !r->results[i].pass && !r->results[i].inconclusive;
        skipped += r->results[i].inconclusive;
    }
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f, "<testsuites name=\"seslm validate\" tests=\"%d\" failures=\"%d\" errors=\"0\" time=\"%.3f\">\n",
            r->n_results, failed, r->seconds);
    // timestamp (ISO 8601, UTC, written when the report is) and hostname: where and when the gates ran
    char host[256] = "", stamp[32] = "";
    if (gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "unknown");
    time_t now = time(NULL);
    struct tm tmv;
    if (gmtime_r(&now, &tmv)) strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tmv);
    fprintf(f, "  <testsuite name=\"gates\" tests=\"%d\" failures=\"%d\" errors=\"0\" skipped=\"%d\" time=\"%.3f\" "
               "timestamp=\"%s\" hostname=\"",
            r->n_results, failed, skipped, r->seconds, stamp);
    xml_escaped(f, host);
    fprintf(f, "\">\n");
    fprintf(f, "    <properties>\n      <property name=\"seslm_version\" value=\"%s\"/>\n      <property name=\"seslm_commit\" value=\"",
            seslm_version());
    xml_escaped(f, seslm_build_commit());
    fprintf(f, "\"/>\n      <property name=\"parent\" value=\"");
    xml_escaped(f, r->parent_dir);
    fprintf(f, "\"/>\n      <property name=\"candidate\" value=\"");
    xml_escaped(f, r->candidate_dir);
    fprintf(f, "\"/>\n    </properties>\n");
    for (int i = 0; i < r->n_results; i++) {
        const seslm_gate_result *g = &r->results[i];
        fprintf(f, "    <testcase classname=\"seslm.validate.gates\" name=\"%s %s %g\" time=\"0\"",
                seslm_vmetric_name(g->gate.metric), seslm_gate_kind_name(g->gate.kind), g->gate.threshold);
        if (g->pass) {
            fprintf(f, ">\n      <system-out>");
            xml_escaped(f, g->message);
            fprintf(f, "</system-out>\n    </testcase>\n");
        } else if (g->inconclusive) {
            fprintf(f, ">\n      <skipped message=\"");
            xml_escaped(f, g->message);
            fprintf(f, "\"/>\n    </testcase>\n");
        } else {
            fprintf(f, ">\n      <failure type=\"gate\" message=\"");
            xml_escaped(f, g->message);
            fprintf(f, "\">");
            xml_escaped(f, g->message);
            fprintf(f, "</failure>\n    </testcase>\n");
        }
    }
    fprintf(f, "  </testsuite>\n</testsuites>\n");
}

/* Renders through a memory stream, then writes the whole buffer crash-safe. */
static seslm_status write_rendered(const char *dir, const char *name, const seslm_validate_config *c,
                                   const seslm_validate_result *r, int which) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return seslm_fail(SESLM_ERR_NOMEM, "%s: out of memory", path);
    if (which == 0) seslm_validate_report_md(c, r, f);
    else seslm_validate_junit(r, f);
    fclose(f);
    seslm_status st = validate_write_file(path, buf, len);
    free(buf);
    return st;
}

seslm_status seslm_validate_write(const seslm_validate_config *c, const seslm_validate_result *r, const char *dir) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return seslm_fail(SESLM_ERR_IO, "%s: cannot create the output directory: %s", dir, strerror(errno));
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) return seslm_fail(SESLM_ERR_IO, "%s is not a directory", dir);
    char *json = seslm_validate_verdict_json(c, r);
    if (!json) return seslm_fail(SESLM_ERR_NOMEM, "verdict.json: out of memory");
    char path[4096];
    snprintf(path, sizeof path, "%s/verdict.json", dir);
    size_t n = strlen(json);
    seslm_status st = SESLM_OK;
    char *withnl = malloc(n + 2);
    if (!withnl) st = seslm_fail(SESLM_ERR_NOMEM, "verdict.json: out of memory");
    else {
        memcpy(withnl, json, n);
        withnl[n] = '\n';
        st = validate_write_file(path, withnl, n + 1);
        free(withnl);
    }
    free(json);
    if (st == SESLM_OK) st = write_rendered(dir, "report.md", c, r, 0);
    if (st == SESLM_OK) st = write_rendered(dir, "junit.xml", c, r, 1);
    return st;
}
