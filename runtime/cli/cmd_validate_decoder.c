/* cmd_validate_decoder.c — `seslm validate-decoder`: the gates of a decoder student (seslm recompile-decoder)
 * against its parent, both measured in one run on the same inputs: held-out perplexity, bytes, decode
 * latency, and the grounded QA set (answers found, unanswerable questions declined, hallucinations). */
#include "calibrate.h"
#include "cli.h"
#include "decoder.h"
#include "grounded.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *HELP =
    "usage: seslm validate-decoder --parent GGUF --candidate GGUF --heldout FILE [--lines N] [--rounds N]\n"
    "                              [--tokens N] [--max-ppl-increase X] [--max-bytes-ratio X]\n"
    "                              [--max-latency-ratio X] [--encoder DIR] [--qa FILE --passages FILE]\n"
    "                              [--no-grounded] [--grounded-log PREFIX] [--threads N] [--out FILE]\n"
    "\n"
    "Judges a decoder student against its parent, both in this run on the same inputs (docs/decoder.md):\n"
    "  perplexity  held-out text (one document per line; not the telemetry or calibration text), scored\n"
    "              as seslm perplexity does; the increase is per parent token, exp((nll_c - nll_p) / n_p) - 1,\n"
    "              so a student with a cut vocabulary is charged for the longer token sequences it reads\n"
    "  bytes       the weights' bytes, candidate / parent\n"
    "  latency     decode time per generated token at batch 1 (greedy, --tokens tokens from a fixed chat\n"
    "              prompt), the two models alternating for --rounds rounds; the median of the rounds' ratios\n"
    "  grounded    the grounded QA set answered by each decoder from passages retrieved with --encoder, each\n"
    "              answer checked for hallucination (docs/grounded.md): the candidate must find at least as\n"
    "              many answers, decline at least as many unanswerable questions and hallucinate no more\n"
    "Prints the verdict as JSON (and writes it to --out FILE); progress to standard error.\n"
    "\n"
    "  --max-ppl-increase X   default 0.05\n"
    "  --max-bytes-ratio X    default 0.70\n"
    "  --max-latency-ratio X  default 0.80\n"
    "  --lines N              held-out documents (default 300)\n"
    "  --rounds N             latency rounds (default 5); --tokens N per round (default 64)\n"
    "  --encoder DIR          the retrieval encoder (default $SESLM_MODEL_DIR or models/all-MiniLM-L6-v2)\n"
    "  --qa FILE, --passages FILE   default data/grounded/qa.tsv, data/grounded/passages.txt\n"
    "  --grounded-log PREFIX  each model's answers, one JSON line per question (id, question, passages, prompt,\n"
    "                         raw answer, verdict, support), to PREFIX.parent.jsonl and PREFIX.candidate.jsonl:\n"
    "                         which question a student answers worse than its parent\n"
    "\n"
    "Exit status: 0 every gate passed, 1 a gate failed, 2 usage error or bad input (a model, text or QA file\n"
    "missing or malformed).\n";

static const char *CMD = "validate-decoder";

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int cmd_validate_decoder(int argc, char **argv) {
    const char *parent = NULL, *cand = NULL, *heldout = NULL, *out = NULL, *glog = NULL;
    const char *encoder = cli_default_model_dir(), *qa = "data/grounded/qa.tsv", *passages = "data/grounded/passages.txt";
    int lines = 300, rounds = 5, tokens = 64, no_grounded = 0, threads = 0;
    double max_ppl = 0.05, max_bytes = 0.70, max_lat = 0.80;
    const cli_arg args[] = {
        {"--parent", CLI_ARG_STR, &parent, 0, 0},
        {"--candidate", CLI_ARG_STR, &cand, 0, 0},
        {"--heldout", CLI_ARG_STR, &heldout, 0, 0},
        {"--lines", CLI_ARG_INT, &lines, 1, 1 << 24},
        {"--rounds", CLI_ARG_INT, &rounds, 1, 1000},
        {"--tokens", CLI_ARG_INT, &tokens, 4, 4096},
        {"--max-ppl-increase", CLI_ARG_NUM, &max_ppl, 0, 100},
        {"--max-bytes-ratio", CLI_ARG_NUM, &max_bytes, 0, 10},
        {"--max-latency-ratio", CLI_ARG_NUM, &max_lat, 0, 10},
        {"--encoder", CLI_ARG_STR, &encoder, 0, 0},
        {"--qa", CLI_ARG_STR, &qa, 0, 0},
        {"--passages", CLI_ARG_STR, &passages, 0, 0},
        {"--no-grounded", CLI_ARG_FLAG, &no_grounded, 0, 0},
        {"--threads", CLI_ARG_INT, &threads, 0, 1024},
        {"--out", CLI_ARG_STR, &out, 0, 0},
        {"--grounded-log", CLI_ARG_STR, &glog, 0, 0},
        {NULL, 0, NULL, 0, 0},
    };
    int prc = cli_parse_args(CMD, HELP, args, argc, argv, NULL);
    if (prc >= 0) return prc;
    if (!parent || !cand || !heldout) {
        cli_error(CMD, "--parent GGUF, --candidate GGUF and --heldout FILE are required");
        return 2;
    }
    seslm_llm_set_threads(threads);
    const char *paths[2] = {parent, cand};
    seslm_llm *m[2] = {NULL, NULL};
    seslm_llm_ctx *c[2] = {NULL, NULL};
    char **docs = NULL;
    int n_docs = 0, rc = 2;
    seslm_ppl_result ppl[2];
    seslm_ground_eval_result g[2];
    memset(g, 0, sizeof g);
    double ratios[1000], ms_tok[2][1000];
    if (seslm_lines_read(heldout, lines, &docs, &n_docs) != SESLM_OK) {
        cli_error(CMD, "cannot read %s: %s", heldout, seslm_last_error());
        return 2;
    }
    for (int k = 0; k < 2; k++) {
        if (seslm_llm_load(&m[k], paths[k]) != SESLM_OK || seslm_llm_ctx_new(&c[k], m[k], 512, 0) != SESLM_OK) {
            cli_error(CMD, "cannot load %s: %s", paths[k], seslm_last_error());
            goto done;
        }
    }
    // perplexity
    for (int k = 0; k < 2; k++) {
        fprintf(stderr, "%s: perplexity of the %s on %d documents\n", CMD, k ? "candidate" : "parent", n_docs);
        if (seslm_llm_perplexity(c[k], (const char *const *)docs, n_docs, &ppl[k], NULL, NULL) != SESLM_OK) {
            cli_error(CMD, "%s on %s: %s", paths[k], heldout, seslm_last_error());
            goto done;
        }
    }
    // latency: alternating rounds, the parent first in even rounds
    seslm_chat_msg msg = {"user", "Write a short paragraph about the history of the Roman Empire."};
    for (int r = 0; r < rounds; r++) {
        for (int j = 0; j < 2; j++) {
            int k = (r + j) % 2;
            char *prompt = seslm_chat_format(m[k], &msg, 1, 1);
            // ignore_eos: both generate exactly `tokens` tokens, so a student that ends its answer sooner (or at once)
            // is timed on as many tokens as its parent
            seslm_gen_opts go = {.max_tokens = tokens, .parse_special = 1, .ignore_eos = 1, .sampling = {0.0f, 1.0f, 0}};
            seslm_gen_result res;
            memset(&res, 0, sizeof res);
            seslm_llm_ctx_reset(c[k]);
            seslm_status st = prompt ? seslm_generate(c[k], prompt, strlen(prompt), &go, &res) : SESLM_ERR_NOMEM;
            free(prompt);
            if (st != SESLM_OK || res.n_gen < 2) {
                cli_error(CMD, "generation with %s: %s", paths[k],
                          st != SESLM_OK ? seslm_last_error() : "fewer than 2 tokens generated: no decode time to measure");
                seslm_gen_result_free(&res);
                goto done;
            }
            ms_tok[k][r] = res.gen_ms / res.n_gen;
            seslm_gen_result_free(&res);
        }
        ratios[r] = ms_tok[1][r] / ms_tok[0][r];
        fprintf(stderr, "%s: latency round %d/%d: %.3f vs %.3f ms/token\n", CMD, r + 1, rounds, ms_tok[1][r], ms_tok[0][r]);
    }
    qsort(ratios, (size_t)rounds, sizeof *ratios, cmp_d);
    const double lat_ratio = rounds % 2 ? ratios[rounds / 2] : 0.5 * (ratios[rounds / 2 - 1] + ratios[rounds / 2]);
    // grounded QA
    if (!no_grounded) {
        seslm_model *em = NULL;
        cli_encoder v = {NULL, 0};
        seslm_encoder_opts eo = {.backend = "cpu", .n_threads = threads, .max_batch = 32};
        if (seslm_model_load(&em, encoder) != SESLM_OK || seslm_encoder_new(&v.e, em, &eo) != SESLM_OK) {
            cli_error(CMD, "cannot load the encoder %s: %s", encoder, seslm_last_error());
            seslm_model_free(em);
            goto done;
        }
        v.dim = seslm_model_get_config(em)->hidden;
        seslm_ground_opts go;
        seslm_ground_opts_default(&go);
        seslm_status st = SESLM_OK;
        for (int k = 0; k < 2 && !st; k++) {
            fprintf(stderr, "%s: grounded QA answered by the %s\n", CMD, k ? "candidate" : "parent");
            char lp[4096];
            FILE *lf = NULL;
            if (glog) {
                snprintf(lp, sizeof lp, "%s.%s.jsonl", glog, k ? "candidate" : "parent");
                if (!(lf = fopen(lp, "w"))) {
                    st = seslm_fail(SESLM_ERR_IO, "cannot write %s", lp);
                    break;
                }
            }
            st = seslm_ground_eval(m[k], v.dim, cli_encoder_embed, &v, qa, passages, 3, 0.30, 0, &go, NULL, &g[k], lf, NULL);
            if (lf && (ferror(lf) | fclose(lf)) && !st) st = seslm_fail(SESLM_ERR_IO, "cannot write %s", lp);
        }
        seslm_encoder_free(v.e);
        seslm_model_free(em);
        if (st) {
            cli_error(CMD, "grounded QA (%s, %s): %s", qa, passages, seslm_last_error());
            goto done;
        }
    }
    {
        const double ppl_inc = exp((ppl[1].nll - ppl[0].nll) / (double)ppl[0].n_tokens) - 1.0;
        const double bytes_ratio = (double)seslm_llm_weight_bytes(m[1]) / (double)seslm_llm_weight_bytes(m[0]);
        const int pass_ppl = ppl_inc <= max_ppl, pass_bytes = bytes_ratio <= max_bytes, pass_lat = lat_ratio <= max_lat;
        const int pass_g = no_grounded || (g[1].found >= g[0].found && g[1].unans_declined >= g[0].unans_declined &&
                                           g[1].hallucinated <= g[0].hallucinated);
        const int pass = pass_ppl && pass_bytes && pass_lat && pass_g;
        char *js = NULL;
        size_t jl = 0;
        FILE *f = open_memstream(&js, &jl);
        if (!f) goto done;
        fprintf(f, "{\"verdict\": \"%s\", \"parent\": ", pass ? "pass" : "fail");
        cli_json_str(f, parent);
        fprintf(f, ", \"candidate\": ");
        cli_json_str(f, cand);
        fprintf(f, ", \"gates\": [");
        fprintf(f, "{\"name\": \"heldout_ppl_increase\", \"value\": %.6f, \"max\": %g, \"pass\": %s, "
                   "\"parent\": {\"ppl\": %.4f, \"bits_per_byte\": %.6f, \"tokens\": %llu}, "
                   "\"candidate\": {\"ppl\": %.4f, \"bits_per_byte\": %.6f, \"tokens\": %llu}}, ",
                ppl_inc, max_ppl, pass_ppl ? "true" : "false", ppl[0].ppl, ppl[0].bits_per_byte,
                (unsigned long long)ppl[0].n_tokens, ppl[1].ppl, ppl[1].bits_per_byte, (unsigned long long)ppl[1].n_tokens);
        fprintf(f, "{\"name\": \"bytes_ratio\", \"value\": %.6f, \"max\": %g, \"pass\": %s, \"parent\": %zu, \"candidate\": %zu}, ",
                bytes_ratio, max_bytes, pass_bytes ? "true" : "false", seslm_llm_weight_bytes(m[0]), seslm_llm_weight_bytes(m[1]));
        fprintf(f, "{\"name\": \"decode_latency_ratio\", \"value\": %.6f, \"max\": %g, \"pass\": %s, \"rounds\": %d, "
                   "\"ratio_min\": %.4f, \"ratio_max\": %.4f}",
                lat_ratio, max_lat, pass_lat ? "true" : "false", rounds, ratios[0], ratios[rounds - 1]);
        if (!no_grounded)
            fprintf(f, ", {\"name\": \"grounded_qa\", \"pass\": %s, \"questions\": %d, "
                       "\"parent\": {\"found\": %d, \"unanswerable_declined\": %d, \"hallucinated\": %d}, "
                       "\"candidate\": {\"found\": %d, \"unanswerable_declined\": %d, \"hallucinated\": %d}}",
                    pass_g ? "true" : "false", g[0].n, g[0].found, g[0].unans_declined, g[0].hallucinated, g[1].found,
                    g[1].unans_declined, g[1].hallucinated);
        fprintf(f, "]}\n");
        fclose(f);
        fputs(js, stdout);
        if (out) {
            FILE *o = fopen(out, "w");
            if (!o || fputs(js, o) < 0 || fclose(o) != 0) {
                cli_error(CMD, "cannot write %s: %s", out, seslm_last_error());
                free(js);
                goto done;
            }
        }
        free(js);
        rc = pass ? 0 : 1;
    }
done:
    for (int k = 0; k < 2; k++) {
        seslm_llm_ctx_free(c[k]);
        seslm_llm_free(m[k]);
    }
    seslm_lines_free(docs, n_docs);
    return rc;
}
