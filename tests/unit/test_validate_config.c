/* test_validate_config.c — gates of the validation sandbox: evaluation at and around each threshold,
 * unmeasured metrics, the YAML configuration (configs/gates.yaml equals the built-in defaults; errors
 * name file:line). */
#include "test.h"
#include "validate.h"
#include "validate_stats.h"

#include <stdint.h>
#include <stdlib.h>

static seslm_status load(seslm_validate_config *c, const char *text) {
    return seslm_validate_config_load_string(c, "t.yaml", text, strlen(text));
}

static void gate_eval(void) {
    seslm_gate_result r;
    seslm_vvalue v = {.measured = 1, .parent = 0.80, .candidate = 0.78};
    seslm_gate g = {SESLM_VM_STSB_SPEARMAN, SESLM_GATE_MAX_DROP, 0.02, 0, 0};
    seslm_gate_eval(&g, &v, &r);
    CHECK(r.pass && fabs(r.observed - 0.02) < 1e-12); // exactly at the threshold passes
    v.candidate = 0.7799;
    seslm_gate_eval(&g, &v, &r);
    CHECK(!r.pass && strstr(r.message, "drop 0.0201") != NULL);
    v.candidate = 0.9; // better than the parent: a negative drop passes
    seslm_gate_eval(&g, &v, &r);
    CHECK(r.pass);

    g = (seslm_gate){SESLM_VM_LATENCY_B1_P50, SESLM_GATE_MAX_RATIO, 0.80, 0, 0};
    v = (seslm_vvalue){.measured = 1, .parent = 10.0, .candidate = 8.0};
    seslm_gate_eval(&g, &v, &r);
    CHECK(r.pass && fabs(r.observed - 0.8) < 1e-12);
    v.candidate = 8.1;
    seslm_gate_eval(&g, &v, &r);
    CHECK(!r.pass && strstr(r.message, "ratio 0.810") != NULL);
    v.parent = 0; // no ratio without a parent value: fails, never divides by zero
    seslm_gate_eval(&g, &v, &r);
    CHECK(!r.pass);

    g = (seslm_gate){SESLM_VM_COSINE_MEAN, SESLM_GATE_MIN, 0.95, 0, 0};
    v = (seslm_vvalue){.measured = 1, .parent = 1.0, .candidate = 0.95};
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
    v = (seslm_vvalue){.measured = 1, .parent = NAN, .candidate = 0.5};
    seslm_gate_eval(&g, &v, &r);
    CHECK(!r.pass);
    // a check with no data on this node (no traffic sample, too little feedback) is skipped: it passes
    // and says so, unlike a check that failed to run
    g = (seslm_gate){SESLM_VM_FEEDBACK_INTENT_ACCURACY, SESLM_GATE_MAX_DROP, 0.01, 0, 0};
    v = (seslm_vvalue){.measured = 0, .parent = NAN, .candidate = NAN, .skipped = 1};
    seslm_gate_eval(&g, &v, &r);
    CHECK(r.pass && r.skipped && strstr(r.message, "skipped") != NULL);
    v.skipped = 0;
    seslm_gate_eval(&g, &v, &r);
    CHECK(!r.pass && !r.skipped);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double urand(void) { // xorshift64*, deterministic
    rng_state ^= rng_state >> 12, rng_state ^= rng_state << 25, rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}
static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Simulated timings of n pairs: a candidate `truth` times the parent's 10 ms, on a machine that is quiet
 * (hog 0) or busy (hog 1: a load factor 1..4 that changes between pairs and hits both halves of a pair,
 * plus a spike x3 on one side alone in 20% of pairs). Returns the gate's verdict: 1 pass, 0 fail, -1
 * inconclusive; *naive gets the verdict of the plain p50 ratio. */
static int simulate(double truth, int hog, int n, int *naive) {
    double t[2][400], ratio[400];
    for (int i = 0; i < n; i++) {
        double load = hog ? 1 + 3 * urand() : 1 + 0.02 * urand();
        for (int m = 0; m < 2; m++) {
            double x = (m ? truth * 10 : 10) * load * (1 + 0.05 * urand());
            if (hog && urand() < 0.1) x *= 3;
            t[m][i] = x;
        }
        ratio[i] = t[1][i] / t[0][i];
    }
    qsort(ratio, (size_t)n, sizeof *ratio, cmp_d);
    qsort(t[0], (size_t)n, sizeof(double), cmp_d);
    qsort(t[1], (size_t)n, sizeof(double), cmp_d);
    seslm_vvalue v = {.measured = 1, .parent = t[0][n / 2], .candidate = t[1][n / 2], .has_ci = 1, .paired = 1,
                      .ratio = ratio[n / 2]};
    seslm_stats_quantile_ci(t[0], n, 0.5, &v.par_lo, &v.par_hi);
    seslm_stats_quantile_ci(t[1], n, 0.5, &v.cand_lo, &v.cand_hi);
    seslm_stats_quantile_ci(ratio, n, 0.5, &v.ratio_lo, &v.ratio_hi);
    seslm_gate g = {SESLM_VM_LATENCY_B1_P50, SESLM_GATE_MAX_RATIO, 0.80, 0, 0};
    seslm_gate_result r;
    seslm_gate_eval(&g, &v, &r);
    CHECK(r.lo <= r.observed && r.observed <= r.hi);
    CHECK(!(r.pass && r.inconclusive));
    *naive = t[1][n / 2] / t[0][n / 2] <= 0.80;
    return r.inconclusive ? -1 : r.pass;
}

/* Timing gates decide on the interval of the paired ratio: a verdict never flips between a quiet and a busy
 * machine; at worst the busy run says "inconclusive". */
static void timing_gates(void) {
    const double truths[] = {0.5, 0.7, 0.78, 0.82, 0.9, 1.0, 1.3};
    int naive_flips = 0;
    for (int k = 0; k < 7; k++)
        for (int trial = 0; trial < 20; trial++) {
            int nq, nb;
            int quiet = simulate(truths[k], 0, 100, &nq), busy = simulate(truths[k], 1, 100, &nb);
            CHECK_MSG(quiet == busy || busy == -1 || quiet == -1, "truth %.2f trial %d: quiet %d busy %d", truths[k],
                      trial, quiet, busy);
            // a clear case is decided, and rightly, even on the busy machine
            if (truths[k] <= 0.7) CHECK_MSG(quiet == 1 && busy == 1, "truth %.2f: %d %d", truths[k], quiet, busy);
            if (truths[k] >= 0.9) CHECK_MSG(quiet == 0 && busy == 0, "truth %.2f: %d %d", truths[k], quiet, busy);
            naive_flips += nq != nb;
        }
    // the plain p50 ratio does flip (the reason for all this): near the threshold it goes both ways
    CHECK_MSG(naive_flips > 0, "the naive p50 ratio never flipped (%d)", naive_flips);

    // an absolute budget with an interval; a p95 ratio from the two intervals
    seslm_gate g = {SESLM_VM_LATENCY_B1_P95, SESLM_GATE_MAX, 12.0, 0, 0};
    seslm_vvalue v = {.measured = 1, .parent = 20, .candidate = 11, .has_ci = 1, .cand_lo = 10, .cand_hi = 13,
                      .par_lo = 18, .par_hi = 22};
    seslm_gate_result r;
    seslm_gate_eval(&g, &v, &r);
    CHECK(!r.pass && r.inconclusive && strstr(r.message, "INCONCLUSIVE") != NULL);
    v.cand_hi = 11.5;
    seslm_gate_eval(&g, &v, &r);
    CHECK(r.pass && !r.inconclusive);
    g.kind = SESLM_GATE_MAX_RATIO;
    g.threshold = 0.8;
    seslm_gate_eval(&g, &v, &r); // 10/22 .. 11.5/18 = 0.45 .. 0.64
    CHECK(r.pass && fabs(r.hi - 11.5 / 18) < 1e-12);
    v.cand_lo = 18.5, v.candidate = 19, v.cand_hi = 20; // 18.5/22 = 0.84 > 0.8: surely fails
    seslm_gate_eval(&g, &v, &r);
    CHECK(!r.pass && !r.inconclusive);
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
    for (int i = 0; i < d.n_gates; i++)
        for (int j = 0; j < f.n_gates; j++)
            if (f.gates[j].metric == d.gates[i].metric && f.gates[j].kind == d.gates[i].kind)
                CHECK_MSG(f.gates[j].unless_traffic == d.gates[i].unless_traffic, "unless_traffic of %s differs",
                          seslm_vmetric_name(d.gates[i].metric));
    CHECK(f.recall_tie_margin == d.recall_tie_margin && d.recall_tie_margin == 0.01);
    CHECK(f.lr.C == d.lr.C && f.lr.max_iter == d.lr.max_iter && f.lr.tol == d.lr.tol);
    CHECK(f.warmup == d.warmup && f.repeats_b1 == d.repeats_b1 && f.repeats_b32 == d.repeats_b32);
    CHECK(f.threads == d.threads && f.batch == d.batch && f.measure_memory == d.measure_memory);
    CHECK(!strcmp(f.traffic, d.traffic) && !strcmp(f.kb, d.kb) && !strcmp(f.feedback, d.feedback));
    CHECK(f.traffic_n == d.traffic_n && f.traffic_queries_n == d.traffic_queries_n && f.kb_passages_n == d.kb_passages_n);
    CHECK(f.feedback_n == d.feedback_n && f.feedback_min == d.feedback_min);
    CHECK(!strcmp(f.grounded_decoder, d.grounded_decoder) && !strcmp(f.grounded_qa, d.grounded_qa) &&
          !strcmp(f.grounded_passages, d.grounded_passages));
    CHECK(f.grounded_n == d.grounded_n && f.grounded_k == d.grounded_k && f.grounded_max_tokens == d.grounded_max_tokens);
    CHECK(f.grounded_kb_threshold == d.grounded_kb_threshold && f.grounded_min_support == d.grounded_min_support &&
          f.grounded_clarify_support == d.grounded_clarify_support && f.grounded_min_coverage == d.grounded_min_coverage);
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
    CHECK(load(&c, "grounded:\n  decoder: d.gguf\n  questions: 4\n  min_support: 0.7\n") == SESLM_OK);
    CHECK(!strcmp(c.grounded_decoder, "d.gguf") && c.grounded_n == 4 && c.grounded_min_support == 0.7 &&
          c.grounded_k == 3 && c.grounded_max_tokens == 48);
    seslm_validate_config_free(&c);
    CHECK(load(&c, "grounded:\n  max_tokens: 0\n") != SESLM_OK);
    CHECK(load(&c, "grounded:\n  decodr: x\n") != SESLM_OK && strstr(seslm_last_error(), "decodr"));
    seslm_validate_config_default(&c);
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

/* unless_traffic: with the node's held-out traffic measured, such a gate is reported ("extra") and does
 * not decide; without it, it gates as any other. */
static void extra_gates(void) {
    seslm_validate_config c;
    CHECK(load(&c, "gates:\n  cosine_mean:\n    min: 0.95\n    unless_traffic: true\n  stsb_spearman:\n    max_drop: 0.02\n"
                   "  traffic_cosine_mean:\n    min: 0.97\n") == SESLM_OK);
    CHECK(c.n_gates == 3);
    int seen = 0;
    for (int i = 0; i < c.n_gates; i++) {
        CHECK(c.gates[i].unless_traffic == (c.gates[i].metric == SESLM_VM_COSINE_MEAN));
        seen += c.gates[i].unless_traffic;
    }
    CHECK(seen == 1);
    static seslm_validate_result r;
    memset(&r, 0, sizeof r);
    const seslm_vmetric ms[3] = {SESLM_VM_COSINE_MEAN, SESLM_VM_STSB_SPEARMAN, SESLM_VM_TRAFFIC_COSINE_MEAN};
    const double cand[3] = {0.93, 0.86, 0.975};
    for (int i = 0; i < 3; i++) r.values[ms[i]] = (seslm_vvalue){.measured = 1, .parent = i == 1 ? 0.87 : 1.0, .candidate = cand[i]};
    seslm_validate_evaluate_gates(&c, &r); // cosine 0.93 < 0.95 but the node's traffic is measured
    CHECK(r.pass && r.n_results == 3);
    int extra = 0;
    for (int i = 0; i < r.n_results; i++)
        if (r.results[i].gate.metric == SESLM_VM_COSINE_MEAN) {
            extra = r.results[i].extra;
            CHECK(strstr(r.results[i].message, "would fail") != NULL);
        }
    CHECK(extra == 1);
    r.values[SESLM_VM_TRAFFIC_COSINE_MEAN].candidate = 0.96; // the node's own gate still decides
    seslm_validate_evaluate_gates(&c, &r);
    CHECK(!r.pass);
    r.values[SESLM_VM_TRAFFIC_COSINE_MEAN] = (seslm_vvalue){.skipped = 1}; // no traffic: the shipped gate gates
    seslm_validate_evaluate_gates(&c, &r);
    CHECK(!r.pass);
    for (int i = 0; i < r.n_results; i++) CHECK(!r.results[i].extra);
    seslm_validate_config_free(&c);
    // unless_traffic alone is no gate
    CHECK(load(&c, "gates:\n  cosine_mean:\n    unless_traffic: true\n  stsb_spearman:\n    max_drop: 0.02\n") != SESLM_OK);
    CHECK(strstr(seslm_last_error(), "unless_traffic") != NULL);
    CHECK(load(&c, "gates:\n  cosine_mean:\n    min: 0.9\n    unless_traffic: maybe\n") != SESLM_OK);
}

int main(void) {
    gate_eval();
    extra_gates();
    timing_gates();
    names();
    shipped_config_is_the_default();
    yaml();
    return test_report("test_validate_config");
}
