/* cmd_perplexity.c — `seslm perplexity`: a GGUF decoder's held-out perplexity on text (decoder.h). */
#include "calibrate.h"
#include "cli.h"
#include "decoder.h"
#include "progress.h"

#include <stdio.h>
#include <stdlib.h>

static const char *HELP =
    "usage: seslm perplexity [--model FILE] --input FILE [--lines N] [--ctx N] [--threads N]\n"
    "                        [--backend cpu|cpu-ref]\n"
    "\n"
    "Scores every non-empty line of FILE as one document: each token predicted from the ones before it,\n"
    "from <|endoftext|> (else BOS, else EOS), in windows of --ctx tokens. Prints one JSON object:\n"
    "documents, tokens, bytes, nll (nats, summed), ppl = exp(nll / tokens) and bits_per_byte =\n"
    "nll / ln 2 / bytes. Per byte is what compares two models whose vocabularies differ (a student whose\n"
    "rare tokens were cut, seslm recompile-decoder). Progress goes to standard error.\n"
    "\n"
    "  --model FILE     GGUF file; default $SESLM_DECODER_MODEL or models/SmolLM2-135M-Instruct.Q4_1.gguf\n"
    "  --input FILE     text, one document per line\n"
    "  --lines N        only the first N non-empty lines (default: all)\n"
    "  --ctx N          window in tokens (default 512)\n"
    "  --threads N      worker threads, 0 = all cores (default 0)\n"
    "  --backend B      cpu (default) or cpu-ref (the plain-C reference kernels)\n"
    "\n"
    "Exit status: 0 ok, 1 bad model file or input (missing, invalid UTF-8, empty), 2 usage.\n";

typedef struct {
    seslm_progress *p;
} ppl_cb;

static int on_doc(void *user, int done, int total) {
    (void)total;
    seslm_progress_update(((ppl_cb *)user)->p, done);
    return 0;
}

int cmd_perplexity(int argc, char **argv) {
    const char *model = getenv("SESLM_DECODER_MODEL"), *input = NULL;
    if (!model || !*model) model = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    int lines = 0, ctx = 512, threads = 0, backend_i = 0;
    cli_choice backend = {&backend_i, "cpu|cpu-ref"};
    const cli_arg args[] = {
        {"--model", CLI_ARG_STR, &model, 0, 0},       {"--input", CLI_ARG_STR, &input, 0, 0},
        {"--lines", CLI_ARG_INT, &lines, 1, 1 << 24}, {"--ctx", CLI_ARG_INT, &ctx, 16, 1 << 20},
        {"--threads", CLI_ARG_INT, &threads, 0, 1024}, {"--backend", CLI_ARG_CHOICE, &backend, 0, 0},
        {NULL, 0, NULL, 0, 0},
    };
    int prc = cli_parse_args("perplexity", HELP, args, argc, argv, NULL);
    if (prc >= 0) return prc;
    if (!input) {
        cli_error("perplexity", "--input FILE is required");
        return 2;
    }
    seslm_llm_set_threads(threads);
    char **docs = NULL;
    int n = 0;
    if (seslm_lines_read(input, lines, &docs, &n) != SESLM_OK) {
        cli_error("perplexity", "cannot read %s: %s", input, seslm_last_error());
        return 1;
    }
    seslm_llm *m = NULL;
    seslm_llm_ctx *c = NULL;
    if (seslm_llm_load(&m, model) != SESLM_OK) {
        cli_error("perplexity", "cannot load %s: %s", model, seslm_last_error());
        seslm_lines_free(docs, n);
        return 1;
    }
    int cap = seslm_llm_cfg(m)->n_ctx_train;
    if (seslm_llm_ctx_new(&c, m, ctx < cap ? ctx : cap, backend_i) != SESLM_OK) {
        cli_error("perplexity", "context: %s", seslm_last_error());
        seslm_llm_free(m);
        seslm_lines_free(docs, n);
        return 1;
    }
    seslm_progress p;
    seslm_progress_init(&p, stderr, "seslm perplexity", "documents", n);
    ppl_cb cb = {&p};
    seslm_ppl_result r;
    seslm_status st = seslm_llm_perplexity(c, (const char *const *)docs, n, &r, on_doc, &cb);
    seslm_progress_finish(&p);
    int rc = 0;
    if (st) {
        cli_error("perplexity", "%s: %s", input, seslm_last_error());
        rc = 1;
    } else {
        printf("{\"model\": ");
        cli_json_str(stdout, model);
        printf(", \"input\": ");
        cli_json_str(stdout, input);
        printf(", \"documents\": %d, \"tokens\": %llu, \"bytes\": %llu, \"nll\": %.6f, \"ppl\": %.6f, "
               "\"bits_per_byte\": %.6f, \"vocab\": %d, \"weight_bytes\": %zu}\n",
               r.n_docs, (unsigned long long)r.n_tokens, (unsigned long long)r.n_bytes, r.nll, r.ppl, r.bits_per_byte,
               seslm_llm_cfg(m)->n_vocab, seslm_llm_weight_bytes(m));
    }
    seslm_llm_ctx_free(c);
    seslm_llm_free(m);
    seslm_lines_free(docs, n);
    return rc;
}
