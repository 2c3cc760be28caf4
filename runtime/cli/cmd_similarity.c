/* cmd_similarity.c — `seslm similarity`: embed texts and print their cosine-similarity matrix. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int cli_embed_all(const char *cmd, const cli_opts *o, seslm_model **model_out, float **out);

static const char *HELP =
    "usage: seslm similarity [--model DIR] [--batch N] [--threads N] [--json] [TEXT... | --input FILE]\n"
    "\n"
    "Embeds the inputs and prints the matrix of cosine similarities between them (a table for people,\n"
    "or with --json one JSON object {\"texts\": [...], \"cosine\": [[...], ...]}).\n"
    "\n"
    "  --model DIR    model directory; default $SESLM_MODEL_DIR or models/all-MiniLM-L6-v2\n"
    "  --input FILE   one input per line (\"-\" reads standard input)\n"
    "  --batch N      inputs per forward pass (default 32)\n"
    "  --threads N    worker threads, 0 = all cores\n"
    "  --json         machine-readable output\n"
    "\n"
    "Exit status: 0 ok, 1 the model could not be loaded or an input is invalid, 2 usage error.\n";

static double cosine(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / fmax(sqrt(aa) * sqrt(bb), 1e-12);
}

int cmd_similarity(int argc, char **argv) {
    int json = 0;
    const cli_arg extra[] = {{"--json", CLI_ARG_FLAG, &json, 0, 0}, {NULL, 0, NULL, 0, 0}};
    cli_opts o;
    int rc = cli_parse_common_with(&o, "similarity", HELP, extra, argc, argv, 1);
    if (rc >= 0) {
        cli_opts_free(&o);
        return rc;
    }
    seslm_model *m = NULL;
    float *emb = NULL;
    rc = cli_embed_all("similarity", &o, &m, &emb);
    if (rc == 0) {
        const int C = seslm_model_get_config(m)->hidden, n = o.texts.n;
        if (json) {
            printf("{\"texts\":[");
            for (int i = 0; i < n; i++) {
                if (i) putchar(',');
                cli_json_str(stdout, o.texts.texts[i]);
            }
            printf("],\"cosine\":[");
            for (int i = 0; i < n; i++) {
                printf(i ? ",[" : "[");
                for (int j = 0; j < n; j++) printf(j ? ",%.6f" : "%.6f", cosine(emb + (size_t)i * C, emb + (size_t)j * C, C));
                printf("]");
            }
            printf("]}\n");
        } else {
            for (int i = 0; i < n; i++) printf("[%d] %s\n", i, o.texts.texts[i]);
            printf("\ncosine similarity\n     ");
            for (int j = 0; j < n; j++) printf(" %6d", j);
            printf("\n");
            for (int i = 0; i < n; i++) {
                printf("[%2d] ", i);
                for (int j = 0; j < n; j++) printf(" %6.3f", cosine(emb + (size_t)i * C, emb + (size_t)j * C, C));
                printf("\n");
            }
        }
    }
    free(emb);
    seslm_model_free(m);
    cli_opts_free(&o);
    return rc;
}
