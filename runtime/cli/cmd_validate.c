/* cmd_validate.c — `seslm validate`: judge a candidate model directory against its parent. */
#include "cli.h"
#include "decoder.h"
#include "grounded.h"
#include "validate.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *HELP =
    "usage: seslm validate --parent DIR --candidate DIR [--config FILE] [--out DIR] [--threads N]\n"
    "                      [--traffic FILE] [--kb DIR] [--feedback FILE] [--decoder GGUF] [--json] [--quiet]\n"
    "\n"
    "The validation sandbox: measures the candidate against its parent on real data, both in the same\n"
    "run on the same inputs, and checks the results against the gates of the config (docs/validation.md):\n"
    "  accuracy   cosine between the two models' embeddings of held-out text (mean, 5th percentile);\n"
    "             STS-B Spearman; CLINC150 and SNIPS intent accuracy of a logistic regression fitted\n"
    "             on each model's own embeddings (same split)\n"
    "  domain     the cosine check on domain traffic, intent accuracy on labelled domain traffic\n"
    "  grounding  top-k retrieval over a passage set: recall@k of the candidate against the parent\n"
    "  node       the node's own data: cosine and recall@k agreement (queries against its knowledge base)\n"
    "             on held-out served traffic, intent accuracy on its labelled feedback (when there is\n"
    "             enough); without that data those gates are skipped, and the report says so\n"
    "  grounded   with a decoder (--decoder or grounded.decoder): the grounded QA set (data/grounded/)\n"
    "             answered by the decoder from retrieved passages only, each answer checked for\n"
    "             hallucination with each model's embeddings: answered, found, declined and\n"
    "             hallucination rates (metrics grounded_*)\n"
    "  speed      latency p50 / p95 at batch 1 and 32 (interleaved, after warm-ups)\n"
    "  memory     bytes of model.safetensors; peak RSS of loading + running (forked child)\n"
    "Prints the Markdown report (or with --json the verdict) to standard output, progress to standard\n"
    "error. Data paths in the config are relative to the working directory (the repository root).\n"
    "\n"
    "  --parent DIR      the parent model directory\n"
    "  --candidate DIR   the candidate (a student of seslm recompile, or any model directory)\n"
    "  --config FILE     gates, data files and sample sizes (default: built-in, = configs/gates.yaml)\n"
    "  --out DIR         also write DIR/verdict.json, DIR/report.md, DIR/junit.xml (crash-safe)\n"
    "  --threads N       worker threads, 0 = all cores (overrides run.threads)\n"
    "  --traffic FILE    held-out served traffic, one text per line (overrides data.traffic)\n"
    "  --kb DIR          the node's knowledge base (seslm kb build; overrides data.kb)\n"
    "  --feedback FILE   labelled feedback (overrides data.feedback): a serving node's --feedback-log\n"
    "                    (JSON lines), or TSV with a text / label header, or text TAB label lines\n"
    "  --decoder GGUF    the decoder of the grounded QA check (overrides grounded.decoder)\n"
    "  --json            print the JSON verdict instead of the report\n"
    "  --quiet           no progress lines\n"
    "\n"
    "Exit status: 0 every gate passed, 1 a gate failed, 2 usage error, bad input (missing or malformed\n"
    "model, config or data file) or no verdict could be written, 3 inconclusive: no gate failed but a timing\n"
    "gate's ~95% interval straddles its threshold (the machine was too busy to decide): rerun.\n";

static const char *CMD = "validate";

/* The grounded QA set with the parent's and the candidate's embeddings (one decoder, answers shared where
 * the prompts agree); sets the grounded_* metrics and re-evaluates the gates. Per-question JSON lines go to
 * out_dir/grounded_{parent,candidate}.jsonl. */
static seslm_status run_grounded(const seslm_validate_config *c, const char *dirs[2], const char *out_dir,
                                 seslm_validate_result *r, FILE *progress) {
    seslm_llm *llm = NULL;
    seslm_status st = seslm_llm_load(&llm, c->grounded_decoder);
    if (st != SESLM_OK) return st;
    if (out_dir) mkdir(out_dir, 0755);
    seslm_ground_opts o;
    seslm_ground_opts_default(&o);
    o.min_support = c->grounded_min_support, o.clarify_support = c->grounded_clarify_support;
    o.max_tokens = c->grounded_max_tokens, o.min_coverage = c->grounded_min_coverage;
    seslm_ground_cache *cache = seslm_ground_cache_new();
    seslm_ground_eval_result res[2];
    seslm_validate_grounded g[2];
    memset(res, 0, sizeof res);
    for (int k = 0; k < 2 && st == SESLM_OK; k++) {
        seslm_model *m = NULL;
        cli_encoder v = {NULL, 0};
        seslm_encoder_opts eo = {.backend = "cpu", .n_threads = c->threads, .max_batch = 32};
        st = seslm_model_load(&m, dirs[k]);
        if (st == SESLM_OK) st = seslm_encoder_new(&v.e, m, &eo);
        if (st == SESLM_OK) v.dim = seslm_model_get_config(m)->hidden;
        FILE *log = NULL;
        if (st == SESLM_OK && out_dir) {
            char path[4096];
            snprintf(path, sizeof path, "%s/grounded_%s.jsonl", out_dir, k ? "candidate" : "parent");
            if (!(log = fopen(path, "w"))) st = seslm_fail(SESLM_ERR_IO, "cannot write %s", path);
        }
        if (st == SESLM_OK && progress) fprintf(progress, "validate: grounded QA with the %s's embeddings\n", k ? "candidate" : "parent");
        if (st == SESLM_OK)
            st = seslm_ground_eval(llm, v.dim, cli_encoder_embed, &v, c->grounded_qa, c->grounded_passages, c->grounded_k,
                                   c->grounded_kb_threshold, c->grounded_n, &o, cache, &res[k], log, progress);
        if (log) fclose(log);
        seslm_encoder_free(v.e);
        seslm_model_free(m);
        g[k] = (seslm_validate_grounded){res[k].n, res[k].n_answerable, res[k].n_unanswerable, res[k].answered,
                                         res[k].found, res[k].unans_declined, res[k].hallucinated};
    }
    seslm_ground_cache_free(cache);
    seslm_llm_free(llm);
    if (st != SESLM_OK) return st;
    const char *base = strrchr(c->grounded_decoder, '/');
    char data[512];
    snprintf(data, sizeof data,
             "%s: %d questions (%d answerable) over %s, top %d at >= %.2f; decoder %s, <= %d tokens, %d generated, "
             "%.0f s; candidate's raw decoder answers: %d found, %d unanswerable declined by the model itself",
             c->grounded_qa, res[1].n, res[1].n_answerable, c->grounded_passages, c->grounded_k,
             c->grounded_kb_threshold, base ? base + 1 : c->grounded_decoder, c->grounded_max_tokens,
             res[0].tokens + res[1].tokens, res[0].seconds + res[1].seconds, res[1].raw_found,
             res[1].raw_unans_declined);
    seslm_validate_set_grounded(c, r, &g[0], &g[1], data);
    return SESLM_OK;
}

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

int cmd_validate(int argc, char **argv) {
    const char *parent = NULL, *cand = NULL, *cfg_path = NULL, *out_dir = NULL, *traffic = NULL, *kb = NULL,
               *feedback = NULL, *decoder = NULL;
    int threads = -1, json = 0, quiet = 0;
    const cli_arg args[] = {
        {"--parent", CLI_ARG_STR, &parent, 0, 0},
        {"--candidate", CLI_ARG_STR, &cand, 0, 0},
        {"--config", CLI_ARG_STR, &cfg_path, 0, 0},
        {"--out", CLI_ARG_STR, &out_dir, 0, 0},
        {"--threads", CLI_ARG_INT, &threads, 0, 1024},
        {"--traffic", CLI_ARG_STR, &traffic, 0, 0},
        {"--kb", CLI_ARG_STR, &kb, 0, 0},
        {"--feedback", CLI_ARG_STR, &feedback, 0, 0},
        {"--decoder", CLI_ARG_STR, &decoder, 0, 0},
        {"--json", CLI_ARG_FLAG, &json, 0, 0},
        {"--quiet", CLI_ARG_FLAG, &quiet, 0, 0},
        {NULL, 0, NULL, 0, 0},
    };
    int prc = cli_parse_args(CMD, HELP, args, argc, argv, NULL);
    if (prc >= 0) return prc;
    if (!parent || !cand) {
        cli_error(CMD, "--parent DIR and --candidate DIR are required (seslm validate --help)");
        return 2;
    }
    for (int m = 0; m < 2; m++) {
        const char *d = m ? cand : parent;
        if (!is_dir(d)) {
            cli_error(CMD, "%s %s is not a model directory", m ? "--candidate" : "--parent", d);
            return 2;
        }
    }
    struct stat sb;
    if (out_dir && stat(out_dir, &sb) == 0 && !S_ISDIR(sb.st_mode)) { // say so now, not after minutes of work
        cli_error(CMD, "--out %s exists and is not a directory", out_dir);
        return 2;
    }
    seslm_validate_config c;
    if (cfg_path) {
        if (seslm_validate_config_load(&c, cfg_path) != SESLM_OK) {
            cli_error(CMD, "%s", seslm_last_error());
            return 2;
        }
    } else {
        seslm_validate_config_default(&c);
    }
    if (threads >= 0) c.threads = threads;
    if (traffic) c.traffic = traffic;
    if (kb) c.kb = kb;
    if (feedback) c.feedback = feedback;
    if (decoder) c.grounded_decoder = decoder;
    if (c.grounded_decoder[0] && access(c.grounded_decoder, R_OK) != 0) { // say so now, not after minutes of work
        cli_error(CMD, "decoder %s is not readable (data/fetch_decoder.sh)", c.grounded_decoder);
        seslm_validate_config_free(&c);
        return 2;
    }
    seslm_validate_result *r = calloc(1, sizeof *r);
    if (!r) {
        seslm_validate_config_free(&c);
        cli_error(CMD, "out of memory");
        return 2;
    }
    int rc = 2;
    const char *dirs[2] = {parent, cand};
    if (seslm_validate_run(&c, parent, cand, r, quiet ? NULL : stderr) != SESLM_OK) {
        cli_error(CMD, "no verdict: %s", seslm_last_error());
    } else if (c.grounded_decoder[0] && run_grounded(&c, dirs, out_dir, r, quiet ? NULL : stderr) != SESLM_OK) {
        cli_error(CMD, "no verdict: grounded QA: %s", seslm_last_error());
    } else if (out_dir && seslm_validate_write(&c, r, out_dir) != SESLM_OK) {
        cli_error(CMD, "cannot write the outputs: %s", seslm_last_error());
    } else {
        if (json) {
            char *t = seslm_validate_verdict_json(&c, r);
            if (t) puts(t);
            free(t);
        } else {
            seslm_validate_report_md(&c, r, stdout);
        }
        if (!quiet) {
            int failed = 0;
            for (int i = 0; i < r->n_results; i++) failed += !r->results[i].pass;
            fprintf(stderr, "validate: %s (%d of %d gates failed)%s%s\n",
                    r->pass ? "PASS" : r->inconclusive ? "INCONCLUSIVE: a timing gate could not decide on this machine, rerun"
                                                       : "FAIL",
                    failed,
                    r->n_results, out_dir ? "; outputs in " : "", out_dir ? out_dir : "");
        }
        rc = r->pass ? 0 : r->inconclusive ? SESLM_VALIDATE_INCONCLUSIVE : 1;
    }
    free(r);
    seslm_validate_config_free(&c);
    return rc;
}
