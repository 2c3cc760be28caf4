/* test_validate_config.c — gates of the validation sandbox: evaluation at and around each threshold,
 * unmeasured metrics, the YAML configuration (configs/gates.yaml equals the built-in defaults; errors
 * name file:line). */
#include "test.h"
#include "validate.h"

static seslm_status load(seslm_validate_config *c, const char *text) {
    return seslm_validate_config_load_string(c, "t.yaml", text, strlen(text));
}

static void gate_eval(void) {
    seslm_gate_result r;
    seslm_vvalue v = {1, 0.80, 0.78, 0};
    seslm_gate g = {SESLM_VM_STSB_SPEARMAN, SESLM_GATE_MAX_DROP, 0.02, 0};
    seslm_gate_eval(&g, &v, &r);
    CHECK(r.pass && fabs(r.observed - 0.02) < 1e-12); // exactly at the threshold passes
    v.candidate = 0.7799;
    seslm_gate_eval(&g, &v, &r);
    CHECK(!r.pass && strstr(r.message, "drop 0.0201") != NULL);
    v.candidate = 0.9; // better than the parent: a negative drop passes
    seslm_gate_eval(&g, &v, &r);
    CHECK(r.pass);

    g = (seslm_gate){SESLM_VM_LATENCY_B1_P50, SESLM_GATE_MAX_RATIO, 0.80, 0};
    v = (seslm_vvalue){1, 10.0, 8.0, 0};
    seslm_gate_eval(&g, &v, &r);
    CHECK(r.pass && fabs(r.observed - 0.8) < 1e-12);
    v.candidate = 8.1;
    seslm_gate_eval(&g, &v, &r);
    CHECK(!r.pass && strstr(r.message, "ratio 0.810") != NULL);
    v.parent = 0; // no ratio without a parent value: fails, never divides by zero
    seslm_gate_eval(&g, &v, &r);
    CHECK(!r.pass);

    g = (seslm_gate){SESLM_VM_COSINE_MEAN, SESLM_GATE_MIN, 0.95, 0};
    v = (seslm_vvalue){1, 1.0, 0.95, 0};
    seslm_gate_eval(&g, &v, &r);
    CHECK(r.pass);
    v.candidate = 0.9499;
    seslm_gate_eval(&g, &v, &r);
    CHECK(!r.pass);
    g.kind = SESLM_GATE_MAX;
    seslm_gate_eval(&g, &v, &r);
    CHECK(r.pass);

    v.measured = 0; // a check that did not run fails its gate
    seslm_gate_eval(&g, &v, &r);
    CHECK(!r.pass && strstr(r.message, "not measured") != NULL);
    v = (seslm_vvalue){1, NAN, 0.5, 0};
    seslm_gate_eval(&g, &v, &r);
    CHECK(!r.pass);
    // a check with no data on this node (no traffic sample, too little feedback) is skipped: it passes
    // and says so, unlike a check that failed to run
    g = (seslm_gate){SESLM_VM_FEEDBACK_INTENT_ACCURACY, SESLM_GATE_MAX_DROP, 0.01, 0};
    v = (seslm_vvalue){0, NAN, NAN, 1};
    seslm_gate_eval(&g, &v, &r);
    CHECK(r.pass && r.skipped && strstr(r.message, "skipped") != NULL);
    v.skipped = 0;
    seslm_gate_eval(&g, &v, &r);
    CHECK(!r.pass && !r.skipped);
}

static void names(void) {
    for (int m = 0; m < SESLM_VM_COUNT; m++) {
        CHECK(seslm_vmetric_name((seslm_vmetric)m) != NULL && seslm_vmetric_what((seslm_vmetric)m) != NULL);
        CHECK(seslm_vmetric_find(seslm_vmetric_name((seslm_vmetric)m)) == m);
    }
    CHECK(seslm_vmetric_find("nope") == -1);
    CHECK(seslm_vmetric_name(SESLM_VM_COUNT) == NULL);
}

static void shipped_config_is_the_default(void) {
    seslm_validate_config d, f;
    seslm_validate_config_default(&d);
    CHECK_MSG(seslm_validate_config_load(&f, SESLM_SOURCE_DIR "/configs/gates.yaml") == SESLM_OK, "%s",
              seslm_last_error());
    CHECK(f.n_gates == d.n_gates);
    for (int i = 0; i < d.n_gates && i < f.n_gates; i++) {
        int found = 0;
        for (int j = 0; j < f.n_gates; j++)
            found |= f.gates[j].metric == d.gates[i].metric && f.gates[j].kind == d.gates[i].kind &&
                     f.gates[j].threshold == d.gates[i].threshold;
        CHECK_MSG(found, "default gate %s %s %g missing from configs/gates.yaml", seslm_vmetric_name(d.gates[i].metric),
                  seslm_gate_kind_name(d.gates[i].kind), d.gates[i].threshold);
        CHECK(f.gates[i].line > 0);
    }
    CHECK(!strcmp(f.stsb, d.stsb) && !strcmp(f.clinc_train, d.clinc_train) && !strcmp(f.passages, d.passages));
    CHECK(!strcmp(f.snips_test, d.snips_test) && !strcmp(f.latency_input, d.latency_input));
    CHECK(f.n_domain_texts == d.n_domain_texts);
    for (int i = 0; i < d.n_domain_texts && i < f.n_domain_texts; i++) CHECK(!strcmp(f.domain_texts[i], d.domain_texts[i]));
    CHECK(f.stsb_pairs == d.stsb_pairs && f.intent_train == d.intent_train && f.intent_test == d.intent_test);
    CHECK(f.heldout_n == d.heldout_n && f.domain_n == d.domain_n && f.passages_n == d.passages_n);
    CHECK(f.queries_n == d.queries_n && f.recall_k == d.recall_k && f.domain_intent_n == d.domain_intent_n);
    CHECK(f.lr.C == d.lr.C && f.lr.max_iter == d.lr.max_iter && f.lr.tol == d.lr.tol);
    CHECK(f.warmup == d.warmup && f.repeats_b1 == d.repeats_b1 && f.repeats_b32 == d.repeats_b32);
    CHECK(f.threads == d.threads && f.batch == d.batch && f.measure_memory == d.measure_memory);
    CHECK(!strcmp(f.traffic, d.traffic) && !strcmp(f.kb, d.kb) && !strcmp(f.feedback, d.feedback));
    CHECK(f.traffic_n == d.traffic_n && f.traffic_queries_n == d.traffic_queries_n && f.kb_passages_n == d.kb_passages_n);
    CHECK(f.feedback_n == d.feedback_n && f.feedback_min == d.feedback_min);
    seslm_validate_config_free(&f);
}

static void yaml(void) {
    seslm_validate_config c;
    // a gates section replaces the defaults
    CHECK(load(&c, "samples:\n  stsb_pairs: 20\ngates:\n  stsb_spearman:\n    max_drop: 0.05\n"
                   "  cosine_mean:\n    min: 0.9\n    max: 1.5\n") == SESLM_OK);
    CHECK(c.n_gates == 3 && c.stsb_pairs == 20 && c.intent_train == 1500);
    CHECK(c.gates[0].metric == SESLM_VM_COSINE_MEAN || c.gates[0].metric == SESLM_VM_STSB_SPEARMAN);
    int lines = 0;
    for (int i = 0; i < c.n_gates; i++) lines += c.gates[i].line;
    CHECK(lines == 5 + 7 + 8);
    seslm_validate_config_free(&c);
    CHECK(load(&c, "data:\n  domain_texts:\n    - a.txt\n    - b.txt\n    - c.txt\n") == SESLM_OK);
    CHECK(c.n_domain_texts == 3 && !strcmp(c.domain_texts[2], "c.txt"));
    CHECK(c.n_gates == 13); // no gates section: the defaults
    seslm_validate_config_free(&c);

    static const struct {
        const char *yaml, *want;
    } bad[] = {
        {"samples:\n  stsb_pairs: 10\n  stsb_pair: 3\n", "t.yaml:3: samples.stsb_pair: unknown key"},
        {"gates:\n  stsb_spearmann:\n    max_drop: 0.02\n", "t.yaml:2: gates.stsb_spearmann: unknown key"},
        {"gates:\n  stsb_spearman:\n    max_dorp: 0.02\n", "t.yaml:3: gates.stsb_spearman.max_dorp: unknown key"},
        {"gates:\n  stsb_spearman:\n    max_drop: two\n", "t.yaml:3: gates.stsb_spearman.max_drop"},
        {"gates:\n  weight_bytes:\n    max_ratio: -0.7\n", "t.yaml:3: gates.weight_bytes.max_ratio"},
        {"gates:\n  cosine_mean: 0.95\n", "t.yaml:2: gates.cosine_mean: expected a mapping"},
        {"gates:\n", "no gate listed"},
        {"samples:\n  queries: -1\n", "t.yaml:2: samples.queries"},
        {"retrieval:\n  k: 1000\n", "t.yaml:2: retrieval.k"},
        {"classifier:\n  C: 0\n", "t.yaml:2: classifier.C"},
        {"run:\n  measure_memory: maybe\n", "t.yaml:2: run.measure_memory"},
        {"data:\n  domain_texts: [a, b, c, d, e, f, g, h, i]\n", "at most 8"},
        {"data: [1, 2\n", "t.yaml:"},
        {"samples:\n  feedback_min: 1\n", "t.yaml:2: samples.feedback_min"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        seslm_status st = load(&c, bad[i].yaml);
        CHECK_MSG(st == SESLM_ERR_FORMAT, "case %zu: status %d", i, st);
        CHECK_MSG(strstr(seslm_last_error(), bad[i].want) != NULL, "case %zu: message '%s' lacks '%s'", i,
                  seslm_last_error(), bad[i].want);
        CHECK(c.owner == NULL && c.n_gates == 13); // a failed load leaves the defaults, nothing to free
    }
    CHECK(seslm_validate_config_load(&c, "/nonexistent/gates.yaml") != SESLM_OK);
    CHECK(strstr(seslm_last_error(), "/nonexistent/gates.yaml") != NULL);
}

int main(void) {
    gate_eval();
    names();
    shipped_config_is_the_default();
    yaml();
    return test_report("test_validate_config");
}
