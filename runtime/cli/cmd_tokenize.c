/* cmd_tokenize.c — `seslm tokenize`: one JSON line of ids (and the mask) per input. */
#include "cli.h"

#include <stdlib.h>

static const char *HELP =
    "usage: seslm tokenize [--model DIR] [TEXT... | --input FILE]\n"
    "\n"
    "Tokenizes each input with the model's BERT WordPiece tokenizer ([CLS] ... [SEP], truncated at the\n"
    "model's max sequence length) and prints one JSON line per input:\n"
    "  {\"index\": 0, \"input_ids\": [101, ...], \"attention_mask\": [1, ...]}\n"
    "\n"
    "  --model DIR    model directory (vocab.txt, tokenizer_config.json); default $SESLM_MODEL_DIR or\n"
    "                 models/all-MiniLM-L6-v2\n"
    "  --input FILE   one input per line (\"-\" reads standard input)\n"
    "\n"
    "Exit status: 0 ok, 1 a file could not be read or an input is not valid UTF-8, 2 usage error.\n";

int cmd_tokenize(int argc, char **argv) {
    cli_opts o;
    int rc = cli_parse_common(&o, "tokenize", HELP, argc, argv, 1);
    if (rc >= 0) {
        cli_opts_free(&o);
        return rc;
    }
    seslm_tokenizer *tok = NULL;
    if (seslm_tokenizer_load(&tok, o.model_dir, 0) != SESLM_OK) {
        cli_error("tokenize", "%s", seslm_last_error());
        cli_opts_free(&o);
        return 1;
    }
    int cap = seslm_tokenizer_options(tok)->max_len;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    rc = ids ? 0 : 1;
    for (int i = 0; ids && i < o.texts.n; i++) {
        int n = 0;
        if (seslm_tokenizer_encode(tok, o.texts.texts[i], o.texts.lens[i], ids, cap, &n) != SESLM_OK) {
            char where[4200];
            cli_input_name(&o, i, where, sizeof where);
            cli_error("tokenize", "%s: %s", where, seslm_last_error());
            rc = 1;
            continue;
        }
        printf("{\"index\":%d,\"input_ids\":[", i);
        for (int k = 0; k < n; k++) printf(k ? ",%d" : "%d", ids[k]);
        printf("],\"attention_mask\":[");
        for (int k = 0; k < n; k++) printf(k ? ",1" : "1");
        printf("]}\n");
    }
    free(ids);
    seslm_tokenizer_free(tok);
    cli_opts_free(&o);
    return rc;
}
