/* validate.h — the validation sandbox: judges a candidate model directory against its parent on real
 * data, both measured in the same run, and checks the result against gates (configs/gates.yaml,
 * docs/validation.md).
 *
 * Checks (each compares parent and candidate on the same inputs):
 *   - accuracy regression: cosine between the two models' embeddings of held-out domain text (mean and
 *     5th percentile); STS-B Spearman correlation of cosine vs gold; intent accuracy on CLINC150 and
 *     SNIPS of a logistic regression fitted on each model's own embeddings (same split);
 *   - domain benchmarks: the cosine check on the traffic the telemetry came from, and intent accuracy on
 *     labelled domain traffic (with the CLINC150 classifier of each model);
 *   - grounding: top-k retrieval over a passage set, recall@k of the candidate's list against the
 *     parent's (mean over queries);
 *   - latency p50 / p95 at batch 1 and 32 (parent and candidate interleaved, after warm-ups) and memory
 *     (bytes of model.safetensors; peak RSS of loading and running each model in a forked child). */
#ifndef SESLM_VALIDATE_H
#define SESLM_VALIDATE_H

#include "seslm.h"
#include "logreg.h"

#include <stdio.h>

// ---- metrics -----------------------------------------------------------------------------------

typedef enum {
    SESLM_VM_COSINE_MEAN,
    SESLM_VM_COSINE_P5,
    SESLM_VM_DOMAIN_COSINE_MEAN,
    SESLM_VM_DOMAIN_COSINE_P5,
    SESLM_VM_STSB_SPEARMAN,
    SESLM_VM_CLINC150_ACCURACY,
    SESLM_VM_SNIPS_ACCURACY,
    SESLM_VM_DOMAIN_INTENT_ACCURACY,
    SESLM_VM_RECALL_AGREEMENT,
    SESLM_VM_RECALL_AGREEMENT_MIN,
    SESLM_VM_LATENCY_B1_P50,
    SESLM_VM_LATENCY_B1_P95,
    SESLM_VM_LATENCY_B32_P50,
    SESLM_VM_LATENCY_B32_P95,
    SESLM_VM_WEIGHT_BYTES,
    SESLM_VM_PEAK_RSS,
    SESLM_VM_TRAFFIC_COSINE_MEAN,      // the served traffic's held-out slice (data.traffic)
    SESLM_VM_TRAFFIC_COSINE_P5,
    SESLM_VM_TRAFFIC_RECALL_AGREEMENT, // held-out traffic as queries against the node's KB (data.kb) or the passages
    SESLM_VM_FEEDBACK_INTENT_ACCURACY, // the node's labelled feedback (data.feedback), split 3:1
    // grounded answers on the grounded QA set (grounded.decoder; set by seslm_validate_set_grounded)
    SESLM_VM_GROUNDED_ANSWERED,        // questions the node answered (the check passed)
    SESLM_VM_GROUNDED_FOUND,           // answerable questions answered with the expected text
    SESLM_VM_GROUNDED_DECLINED,        // unanswerable questions declined (abstain or clarify)
    SESLM_VM_GROUNDED_HALLUCINATION,   // questions answered wrongly (unanswerable, or without the expected text)
    SESLM_VM_COUNT
} seslm_vmetric;

/* "stsb_spearman", ...; NULL for an out-of-range id. */
const char *seslm_vmetric_name(seslm_vmetric m);
/* A one-line description with the unit. */
const char *seslm_vmetric_what(seslm_vmetric m);
/* The id of a name, or -1. */
int seslm_vmetric_find(const char *name);

typedef struct {
    int measured;     // 0: the check did not run (sample size 0) or failed to produce a number
    double parent;    // the parent's value (1 for the agreement metrics: the parent agrees with itself)
    double candidate; // the candidate's value
    // timing metrics only (else 0): a ~95% interval of the candidate's value, and for the p50 metrics the
    // median of per-pair candidate/parent ratios (each pair measured back to back) with its interval
    int has_ci;
    double cand_lo, cand_hi, par_lo, par_hi;
    int paired;
    double ratio, ratio_lo, ratio_hi;
    int skipped;      // 1: not applicable in this run (no such data, or too little): its gates pass as skipped
} seslm_vvalue;

// ---- gates -------------------------------------------------------------------------------------

typedef enum {
    SESLM_GATE_MIN,       // candidate >= threshold
    SESLM_GATE_MAX,       // candidate <= threshold
    SESLM_GATE_MAX_DROP,  // parent - candidate <= threshold (quality may fall by at most this much)
    SESLM_GATE_MAX_RATIO, // candidate / parent <= threshold (latency / memory must shrink to this)
} seslm_gate_kind;

/* "min", "max", "max_drop", "max_ratio". */
const char *seslm_gate_kind_name(seslm_gate_kind k);

typedef struct {
    seslm_vmetric metric;
    seslm_gate_kind kind;
    double threshold;
    int line; // line of the threshold in the config (0: built-in default)
    int unless_traffic; // an extra check when the node's own held-out traffic is measured: reported, not gating
                        // (gates.<metric>.unless_traffic; the shipped sets of other domains, docs/validation.md)
} seslm_gate;

typedef struct {
    seslm_gate gate;
    int pass;
    int inconclusive; // a timing gate whose interval straddles the threshold: neither pass nor fail, rerun
    double observed; // the compared quantity: the candidate's value, the drop or the ratio (NaN if unmeasured)
    double lo, hi;   // its ~95% interval (timing gates; else both = observed)
    int skipped;     // the metric was not applicable (seslm_vvalue.skipped): passes, and says so
    int extra;       // unless_traffic with the node's traffic measured: evaluated and reported, not gating
    char message[320];
} seslm_gate_result;

/* Exit status / verdict of a validation that could not decide: some timing gate was inconclusive and no
 * gate failed outright. */
#define SESLM_VALIDATE_INCONCLUSIVE 3

/* Evaluates one gate on a metric's values. */
void seslm_gate_eval(const seslm_gate *g, const seslm_vvalue *v, seslm_gate_result *r);

// ---- configuration -----------------------------------------------------------------------------

#define SESLM_VALIDATE_MAX_GATES 64
#define SESLM_VALIDATE_MAX_DOMAIN 8

typedef struct {
    // data files (paths relative to the working directory)
    const char *stsb, *heldout, *clinc_train, *clinc_test, *snips_train, *snips_test;
    const char *passages, *queries, *latency_input;
    const char *domain_texts[SESLM_VALIDATE_MAX_DOMAIN];
    int n_domain_texts;
    const char *domain_intent_texts, *domain_intent_labels;
    // the node's own data (docs/validation.md "domain-aware gates"; "" = none: those gates are skipped)
    const char *traffic;   // held-out served traffic, one text per line (seslm evolve splits it off calibration)
    const char *kb;        // the node's knowledge base directory (seslm kb build): its passages.txt
    const char *feedback;  // labelled feedback, "text TAB label" lines (an optional "text TAB label" header)
    int traffic_n, traffic_queries_n, kb_passages_n, feedback_n, feedback_min;
    // sample sizes (0 skips the check); a file with fewer rows is used whole
    int stsb_pairs, heldout_n, intent_train, intent_test, domain_n, domain_intent_n, passages_n, queries_n;
    int recall_k;
    double recall_tie_margin; // a candidate passage the parent scores within this of its own k-th also agrees
    seslm_lr_opts lr;
    int warmup, repeats_b1, repeats_b32;
    int threads, batch;
    int measure_memory; // fork a child per model to measure peak RSS
    seslm_gate gates[SESLM_VALIDATE_MAX_GATES];
    int n_gates;
    // grounded answers (issue 17; docs/validation.md "Grounded answers"): run by `seslm validate` (the
    // program, over runtime/assist/grounded.h) when a decoder is configured; "" = none, not run
    const char *grounded_decoder;                   // GGUF decoder
    const char *grounded_qa, *grounded_passages;    // the QA set and the passages it is asked over
    int grounded_n, grounded_k, grounded_max_tokens; // questions (0: all), passages retrieved, answer bound
    double grounded_kb_threshold, grounded_min_support, grounded_clarify_support, grounded_min_coverage;
    void *owner; // the parsed YAML that owns the strings (NULL for the built-in defaults)
} seslm_validate_config;

/* The built-in defaults (identical to configs/gates.yaml). */
void seslm_validate_config_default(seslm_validate_config *c);
/* Defaults overridden by the file. A "gates" section replaces the default gates entirely (the gates
 * checked are exactly those listed). Unknown keys and bad values fail with "file:line: key: ...". */
seslm_status seslm_validate_config_load(seslm_validate_config *c, const char *path);
/* Same, from a buffer (name is used in messages). */
seslm_status seslm_validate_config_load_string(seslm_validate_config *c, const char *name, const char *text,
                                               size_t len);
void seslm_validate_config_free(seslm_validate_config *c);

// ---- running -----------------------------------------------------------------------------------

typedef struct {
    char parent_dir[1024], candidate_dir[1024];
    char parent_sha256[65], candidate_sha256[65];
    long long parent_params, candidate_params;
    seslm_vvalue values[SESLM_VM_COUNT];
    int n_samples[SESLM_VM_COUNT]; // inputs behind each metric
    char data[SESLM_VM_COUNT][512]; // which data each metric used (files, rows), for the report
    // latency spread: min and max of the per-call times (ms), [model][batch 1 / 32]
    double lat_min[2][2], lat_max[2][2];
    int lat_repeats[2];
    // per-pair candidate/parent ratios of wall time: median, min, max, and of CPU time (all threads): median;
    // CPU time per call (ms, median) [model][batch 1 / 32]
    double pair_ratio_med[2], pair_ratio_min[2], pair_ratio_max[2], pair_cpu_ratio_med[2], min_ratio[2];
    double cpu_p50[2][2];
    double seconds; // wall time of the whole run
    int threads;
    seslm_gate_result results[SESLM_VALIDATE_MAX_GATES];
    int n_results;
    int pass;         // every gate passed
    int inconclusive; // no gate failed but a timing gate could not decide (verdict "inconclusive", rerun)
} seslm_validate_result;

/* Runs every check and evaluates the gates. SESLM_OK means everything was measured (r->pass says
 * whether the gates passed); a missing / malformed data file or model fails with its name. Progress
 * lines go to `progress` (may be NULL). Memory is measured first, in forked children, before this
 * process loads anything. */
seslm_status seslm_validate_run(const seslm_validate_config *c, const char *parent_dir, const char *candidate_dir,
                                seslm_validate_result *r, FILE *progress);

/* Counts of one run of the grounded QA set (runtime/assist/grounded.h seslm_ground_eval, run by the
 * program: this layer does not reach the decoder). */
typedef struct {
    int n, n_answerable, n_unanswerable, answered, found, unans_declined, hallucinated;
} seslm_validate_grounded;

/* Sets the grounded_* metrics from the runs with the parent's and the candidate's embeddings (the same
 * decoder), describes their data, and evaluates the gates again. Without it those metrics are skipped. */
/* Evaluates c's gates on r's values into r->results / r->pass / r->inconclusive (seslm_validate_run does;
 * exposed for seslm_validate_set_grounded's callers and the tests). */
void seslm_validate_evaluate_gates(const seslm_validate_config *c, seslm_validate_result *r);

void seslm_validate_set_grounded(const seslm_validate_config *c, seslm_validate_result *r,
                                 const seslm_validate_grounded *parent, const seslm_validate_grounded *candidate,
                                 const char *data);

/* Writes verdict.json, report.md and junit.xml into dir (created if absent), each crash-safe
 * (temporary file, fsync, rename). */
seslm_status seslm_validate_write(const seslm_validate_config *c, const seslm_validate_result *r, const char *dir);
/* The Markdown report to f. */
void seslm_validate_report_md(const seslm_validate_config *c, const seslm_validate_result *r, FILE *f);
/* The JUnit XML (one testsuite, one testcase per gate) to f. */
void seslm_validate_junit(const seslm_validate_result *r, FILE *f);
/* The JSON verdict, malloc'd (free()); NULL when out of memory. */
char *seslm_validate_verdict_json(const seslm_validate_config *c, const seslm_validate_result *r);

#endif
