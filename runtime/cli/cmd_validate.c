/* cmd_validate.c — `seslm validate`: judge a candidate model directory against its parent. */
#include "cli.h"
#include "validate.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *HELP =
    "usage: seslm validate --parent DIR --candidate DIR [--config FILE] [--out DIR] [--threads N]\n"
    "                      [--traffic FILE] [--kb DIR] [--feedback FILE] [--json] [--quiet]\n"
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
    "  --feedback FILE   labelled feedback, text TAB label per line (overrides data.feedback)\n"
    "  --json            print the JSON verdict instead of the report\n"
    "  --quiet           no progress lines\n"
    "\n"
    "Exit status: 0 every gate passed, 1 a gate failed, 2 usage error, bad input (missing or malformed\n"
    "model, config or data file) or no verdict could be written, 3 inconclusive: no gate failed but a timing\n"
    "gate's ~95% interval straddles its threshold (the machine was too busy to decide): rerun.\n";

static const char *CMD = "validate";

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

int cmd_validate(int argc, char **argv) {
    const char *parent = NULL, *cand = NULL, *cfg_path = NULL, *out_dir = NULL, *traffic = NULL, *kb = NULL,
               *feedback = NULL;
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
    seslm_validate_result *r = calloc(1, sizeof *r);
    if (!r) {
        seslm_validate_config_free(&c);
        cli_error(CMD, "out of memory");
        return 2;
    }
    int rc = 2;
    if (seslm_validate_run(&c, parent, cand, r, quiet ? NULL : stderr) != SESLM_OK) {
        cli_error(CMD, "no verdict: %s", seslm_last_error());
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
