/* cmd_embed.c — `seslm embed`: one JSON line with the sentence embedding per input. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char *HELP =
    "usage: seslm embed [--model DIR] [--batch N] [--threads N] [--backend cpu|cpu-ref|cuda|cuda-fp16]\n"
    "                   [--precision fp32|bf16|int8] [--prompt-name NAME | --prompt TEXT]\n"
    "                   [TEXT... | --input FILE]\n"
    "\n"
    "Computes sentence embeddings as the model's sentence-transformers pipeline does (its pooling mode\n"
    "from 1_Pooling/config.json, L2-normalised when modules.json ends in Normalize) and prints one JSON\n"
    "line per input, in input order:\n"
    "  {\"index\": 0, \"embedding\": [0.0123, ...]}\n"
    "\n"
    "  --model DIR     model directory; default $SESLM_MODEL_DIR or models/all-MiniLM-L6-v2\n"
    "  --input FILE    one input per line (\"-\" reads standard input)\n"
    "  --batch N       inputs per forward pass, 1..4096 (default 32)\n"
    "  --threads N     worker threads, 0 = all cores (default 0)\n"
    "  --prompt-name NAME  prepend the prompt NAME of config_sentence_transformers.json (e.g. query);\n"
    "                  without it, its default_prompt_name applies, as in sentence-transformers\n"
    "  --prompt TEXT   prepend TEXT instead (\"\" for no prompt)\n"
    "  --feature-layers K  print {\"index\": 0, \"features\": [...]} instead: the outputs of the last K layers,\n"
    "                  each pooled as the model pools, L2-normalised and divided by sqrt(K), concatenated\n"
    "                  (K x hidden floats: the input of an intent head trained with --feature-layers K)\n"
    "  --backend NAME  cpu (fast, default) or cpu-ref (plain-C reference, slow)\n"
    "                  or cuda / cuda-fp16 (GPU, FP32 / FP16 matrix products; --device is the same);\n"
    "                  cpu-devsim: the GPU code path run by cpu-ref's ops on host memory (for tests)\n"
    "  --precision P   fp32, bf16 or int8: the linear layers' arithmetic (F32-stored weights converted at\n"
    "                  load; bf16 = AVX-512 BF16 products with FP32 sums). Default: the model's config.json\n"
    "                  \"seslm_precision\", else fp32. Layer norm, softmax and GELU stay FP32. int8\n"
    "                  weights round per output channel, activations per token with each token's largest\n"
    "                  element kept in float (docs/recompile.md step 3), unless config.json's\n"
    "                  seslm_quantization.linear_activations says per token alone.\n"
    "\n"
    "Exit status: 0 ok, 1 the model could not be loaded or an input is invalid, 2 usage error.\n";

/* Shared by embed, similarity and intent: loads the model and embeds all texts into out (n, C), or with
 * o->feature_layers k > 1 computes their features of the last k layers into out (n, k C). */
int cli_embed_all(const char *cmd, const cli_opts *o, seslm_model **model_out, float **out) {
    *out = NULL;
    seslm_model *m = NULL;
    if (seslm_model_load(&m, o->model_dir) != SESLM_OK) {
        cli_error(cmd, "%s", seslm_last_error());
        return 1;
    }
    const int k = o->feature_layers > 1 ? o->feature_layers : 1, C = seslm_model_get_config(m)->hidden * k;
    if (k > seslm_model_get_config(m)->n_layers) { // said before any input is read
        if (o->feature_layers_flag)
            cli_error(cmd, "--feature-layers %d: the model %s has %d layers", k, o->model_dir,
                      seslm_model_get_config(m)->n_layers);
        else // a head trained on a deeper model
            cli_error(cmd, "the head reads the last %d layers; the model %s has %d layers", k, o->model_dir,
                      seslm_model_get_config(m)->n_layers);
        seslm_model_free(m);
        return o->feature_layers_flag ? 2 : 1;
    }
    seslm_encoder *e = NULL;
    seslm_encoder_opts eo = {.backend = o->backend, .n_threads = o->threads, .max_batch = o->batch,
                             .precision = o->precision};
    if (seslm_encoder_new(&e, m, &eo) != SESLM_OK) {
        cli_error(cmd, "%s", seslm_last_error());
        seslm_model_free(m);
        return 1;
    }
    int rc = 0;
    const char *prompt = o->prompt;
    if (o->prompt_name && !(prompt = seslm_model_prompt(m, o->prompt_name))) {
        const seslm_model_config *c = seslm_model_get_config(m);
        char names[1024] = "";
        for (int i = 0; i < c->n_prompts; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", c->prompts[i].name);
        cli_error(cmd, "%s has no prompt named '%s' (config_sentence_transformers.json has: %s)", o->model_dir,
                  o->prompt_name, names[0] ? names : "none");
        rc = 1;
    }
    if (rc == 0 && prompt && seslm_encoder_set_prompt(e, prompt[0] ? prompt : NULL) != SESLM_OK) {
        cli_error(cmd, "prompt: %s", seslm_last_error());
        rc = 1;
    }
    float *emb = rc ? NULL : malloc((size_t)o->texts.n * C * sizeof(float));
    if (rc == 0 && !emb) rc = 1;
    if (rc == 0 && !emb) cli_error(cmd, "out of memory for %d embeddings", o->texts.n);
    for (int i = 0; rc == 0 && i < o->texts.n; i += o->batch) {
        int nb = o->texts.n - i < o->batch ? o->texts.n - i : o->batch;
        const char *const *tx = (const char *const *)o->texts.texts + i;
        if ((k > 1 ? seslm_encoder_features_texts(e, tx, o->texts.lens + i, nb, k, emb + (size_t)i * C)
                   : seslm_encoder_embed_texts(e, tx, o->texts.lens + i, nb, emb + (size_t)i * C)) != SESLM_OK) {
            // the library says "text <b>: ..." with b counted within this batch: name the input itself
            const char *msg = seslm_last_error();
            int b = -1, skip = 0;
            if (sscanf(msg, "text %d: %n", &b, &skip) == 1 && skip > 0 && b >= 0 && b < nb) {
                char where[4200];
                cli_input_name(o, i + b, where, sizeof where);
                cli_error(cmd, "%s: %s", where, msg + skip);
            } else {
                cli_error(cmd, "inputs %d..%d: %s", i, i + nb - 1, msg);
            }
            rc = 1;
        }
    }
    seslm_encoder_free(e);
    if (rc) {
        free(emb);
        seslm_model_free(m);
        return rc;
    }
    *model_out = m;
    *out = emb;
    return 0;
}

int cmd_embed(int argc, char **argv) {
    cli_opts o;
    int layers = 1;
    const cli_arg extra[] = {{"--feature-layers", CLI_ARG_INT, &layers, 1, 64}, {NULL, 0, NULL, 0, 0}};
    int rc = cli_parse_common_with(&o, "embed", HELP, extra, argc, argv, 1);
    if (rc >= 0) {
        cli_opts_free(&o);
        return rc;
    }
    o.feature_layers = layers;
    o.feature_layers_flag = 1;
    seslm_model *m = NULL;
    float *emb = NULL;
    rc = cli_embed_all("embed", &o, &m, &emb);
    if (rc == 0) {
        const int C = seslm_model_get_config(m)->hidden * layers;
        for (int i = 0; i < o.texts.n; i++) {
            printf(layers > 1 ? "{\"index\":%d,\"features\":" : "{\"index\":%d,\"embedding\":", i);
            cli_print_json_floats(stdout, emb + (size_t)i * C, C);
            printf("}\n");
        }
        if (fflush(stdout) != 0) rc = 1;
    }
    free(emb);
    seslm_model_free(m);
    cli_opts_free(&o);
    return rc;
}
