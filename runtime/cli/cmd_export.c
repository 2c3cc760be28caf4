/* cmd_export.c — `seslm export`: a model (a student included) in a format other runtimes load. */
#include "cli.h"
#include "export_hf.h"
#include "export_onnx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *HELP =
    "usage: seslm export --model DIR --format onnx|hf [--int8] --out DIR\n"
    "\n"
    "Writes the model as OUT/model.onnx (opset 17): inputs input_ids and attention_mask (int64\n"
    "[batch, sequence], the ids of `seslm tokenize`), output sentence_embedding (float [batch, hidden]).\n"
    "The graph has the model's real per-layer head counts and FFN widths (a pruned student included),\n"
    "its pooling (mean, mean_sqrt_len_tokens, cls) and L2 normalisation inside. Weights are FP32 (INT8,\n"
    "2:4 and compressed embedding rows are dequantised); with --int8, a student's INT8 linear weights are\n"
    "kept INT8 with their per-channel scales and computed as SE-SLM does: activations quantized per\n"
    "token (Round/Clip), MatMulInteger (exact int32 sums), one rounding of sum * scales + bias. The\n"
    "tokenizer files are copied\n"
    "beside it. Check: tests/cli/test_export.sh runs it with onnxruntime against `seslm embed`.\n"
    "\n"
    "--format hf writes a Hugging Face / sentence-transformers folder (model.safetensors, config.json,\n"
    "modules.json, pooling, tokenizer files): a standard BertModel when every layer has the full head count\n"
    "and one FFN width and no layer is INT8, loaded by SentenceTransformer(OUT); otherwise config.json names\n"
    "model_type seslm_bert with per-layer shapes and OUT/modeling_seslm.py, loaded by\n"
    "SentenceTransformer(OUT, trust_remote_code=True). INT8 layers stay INT8 (weights + per-channel scales)\n"
    "and the modeling file computes them as SE-SLM does (per-token activation quantization, exact integer\n"
    "sums). Check: tests/cli/test_export_hf.sh with sentence-transformers against `seslm embed`.\n"
    "\n"
    "  --format onnx|hf\n"
    "  --int8          onnx: keep INT8 weights (hf keeps them always)\n"
    "\n"
    "Exit status: 0 ok, 1 the model cannot be loaded or exported, 2 usage error.\n";

static int copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb");
    if (!a) return errno == ENOENT ? 0 : -1;
    FILE *b = fopen(to, "wb");
    char buf[65536];
    size_t n;
    int rc = b ? 0 : -1;
    while (b && (n = fread(buf, 1, sizeof buf, a)) > 0)
        if (fwrite(buf, 1, n, b) != n) rc = -1;
    fclose(a);
    if (b && fclose(b) != 0) rc = -1;
    return rc;
}

int cmd_export(int argc, char **argv) {
    const char *model_dir = cli_default_model_dir(), *format = NULL, *out = NULL;
    int int8 = 0;
    const cli_arg args[] = {
        {"--model", CLI_ARG_STR, &model_dir, 0, 0},
        {"--format", CLI_ARG_STR, &format, 0, 0},
        {"--out", CLI_ARG_STR, &out, 0, 0},
        {"--int8", CLI_ARG_FLAG, &int8, 0, 0},
        {NULL, 0, NULL, 0, 0},
    };
    int prc = cli_parse_args("export", HELP, args, argc, argv, NULL);
    if (prc >= 0) return prc;
    if (!format || !out) {
        cli_error("export", "--format and --out are required (see seslm export --help)");
        return 2;
    }
    const int hf = strcmp(format, "hf") == 0;
    if (!hf && strcmp(format, "onnx") != 0) {
        cli_error("export", "format '%s' is not supported (onnx and hf are)", format);
        return 2;
    }
    seslm_model *m = NULL;
    if (seslm_model_load(&m, model_dir) != SESLM_OK) {
        cli_error("export", "%s", seslm_last_error());
        return 1;
    }
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        cli_error("export", "cannot create %s: %s", out, strerror(errno));
        seslm_model_free(m);
        return 1;
    }
    if (hf) {
        int custom = 0;
        int rc = seslm_export_hf(m, out, &custom) == SESLM_OK ? 0 : 1;
        if (rc) cli_error("export", "%s", seslm_last_error());
        else
            fprintf(stderr, "seslm export: wrote %s (%s)\n", out,
                    custom ? "model_type seslm_bert with modeling_seslm.py: load with trust_remote_code=True"
                           : "a standard BertModel");
        seslm_model_free(m);
        return rc;
    }
    char path[4200], from[4200];
    snprintf(path, sizeof path, "%s/model.onnx", out);
    int rc = 0;
    if (seslm_export_onnx(m, path, int8) != SESLM_OK) {
        cli_error("export", "%s", seslm_last_error());
        rc = 1;
    }
    const char *files[] = {"vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                           "sentence_bert_config.json", "config.json"};
    for (size_t i = 0; rc == 0 && i < sizeof files / sizeof files[0]; i++) {
        snprintf(from, sizeof from, "%s/%s", model_dir, files[i]);
        snprintf(path, sizeof path, "%s/%s", out, files[i]);
        if (copy_file(from, path) != 0) {
            cli_error("export", "cannot copy %s to %s", from, path);
            rc = 1;
        }
    }
    if (rc == 0) fprintf(stderr, "seslm export: wrote %s/model.onnx (%s weights)\n", out, int8 ? "INT8, MatMulInteger" : "FP32");
    seslm_model_free(m);
    return rc;
}
