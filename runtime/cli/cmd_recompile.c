/* cmd_recompile.c — `seslm recompile`: apply a pruning plan to the weights, writing the student model. */
#include "arch_report.h"
#include "backend.h"
#include "calibrate.h"
#include "cli.h"
#include "model_verify.h"
#include "progress.h"
#include "plan.h"
#include "profile.h"
#include "recompile.h"
#include "sparsity.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char *HELP =
    "usage: seslm recompile --plan FILE --out DIR [--model DIR] [--calibration FILE] [--config FILE]\n"
    "                       [--quantize int8|none] [--embeddings int8|f32] [--telemetry PATH] [options]\n"
    "\n"
    "Rewrites the model into the smaller student model directory DIR (docs/pruning.md, docs/recompile.md):\n"
    "  1. graph rewrite: per layer, the plan's attention heads (rows of Q/K/V, columns of the output\n"
    "     projection) and FFN neurons (rows of the first, columns of the second dense layer) are cut out;\n"
    "     everything else is inherited (with steps 2-4 off the student equals the masked parent exactly);\n"
    "  2. reconstruction (with --calibration): the parent runs over the calibration text and each pruned\n"
    "     output projection is refitted by least squares (kept columns + bias) to the parent's output;\n"
    "  3. INT8 (--quantize int8, default): linear weights per output channel, activations per token at\n"
    "     run time, int32 products (AVX-512 VNNI where the CPU has it);\n"
    "  4. embedding compression (--embeddings int8, default): every word-embedding row INT8 with its own\n"
    "     scale, the most frequent ids (from --telemetry, plus the special tokens) kept exact in F32; the\n"
    "     tokenizer files are copied byte for byte and every id keeps a row.\n"
    "config.json gains \"seslm_layers\", \"seslm_quantization\" and \"seslm_lineage\". DIR is written through a\n"
    "temporary directory and renamed: it is complete or absent. Then DIR/arch_diff.{json,md,svg} get the\n"
    "architecture diff (heads / neurons kept per layer; params, bytes, FLOPs per component before and\n"
    "after). Prints a JSON summary.\n"
    "\n"
    "  --plan FILE          a plan-NN.json of seslm plan (or a hand-edited one)\n"
    "  --out DIR            the student model directory; must not exist\n"
    "  --model DIR          the parent; default $SESLM_MODEL_DIR or models/all-MiniLM-L6-v2\n"
    "  --calibration FILE   calibration text, one input per line (held-out evaluation text must differ)\n"
    "  --calibration-lines N  use the first N non-empty lines (default 512)\n"
    "  --ridge X            reconstruction ridge relative to the mean Gram diagonal (default 1e-3)\n"
    "  --quantize int8|none   linear weights (default int8)\n"
    "  --embeddings int8|f32  word-embedding table (default int8)\n"
    "  --telemetry PATH     a dump or a directory of dumps: token frequencies for the exact rows\n"
    "  --exact-rows N       most frequent ids kept exact (default 1000; needs --telemetry)\n"
    "  --sparsity none|2:4  2:4 structured sparsity of the FFN weights (F32 only), kept only when the\n"
    "                       kernel benchmark on this machine shows it faster than the dense product the\n"
    "                       student would otherwise run at the batch of use; else dense, and the summary says why\n"
    "  --batch-of-use N     batch size the student will serve (default 32), x --tokens-per-text (default 16)\n"
    "  --config FILE        check the plan against this policy (configs/evolve.yaml); default the built-in\n"
    "                       policy (first and last layers protected, >= 4 heads and 256 neurons per layer)\n"
    "  --threads N          threads of the calibration pass (default: all cores)\n"
    "\n"
    "Exit status: 0 ok, 1 bad plan / model / calibration / existing DIR / write failure, 2 usage error.\n";

static const char *CMD = "recompile";

/* The plan's "model_sha256", when present and non-empty, must be the parent's. */
static int check_plan_model(const char *plan_path, const char *sha) {
    char *txt = NULL;
    size_t n = 0;
    if (util_read_file(plan_path, &txt, &n, (size_t)64 << 20, NULL) != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        return 0;
    }
    cJSON *r = cJSON_ParseWithLength(txt, n);
    free(txt);
    const cJSON *s = r ? cJSON_GetObjectItemCaseSensitive(r, "model_sha256") : NULL;
    int ok = !cJSON_IsString(s) || !s->valuestring[0] || strcmp(s->valuestring, sha) == 0;
    if (!ok)
        cli_error(CMD, "%s was made for another model (model_sha256 %.16s..., this model %.16s...)", plan_path,
                  s->valuestring, sha);
    cJSON_Delete(r);
    return ok;
}

// progress.h: a rewritten line with an ETA on a terminal, plain periodic lines in logs
static void calib_progress(void *ctx, int done, int total) {
    seslm_progress *p = ctx;
    if (p->total != total) seslm_progress_init(p, stderr, "seslm recompile: calibration", "texts", total);
    seslm_progress_update(p, done);
    if (done == total) seslm_progress_finish(p);
}

static int parse_int(const char *v, int lo, int hi, int *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi) return 0;
    *out = (int)x;
    return 1;
}

int cmd_recompile(int argc, char **argv) {
    const char *model_dir = cli_default_model_dir(), *plan_path = NULL, *out_dir = NULL, *cfg_path = NULL;
    const char *calib_path = NULL, *tel_path = NULL;
    int calib_lines = 512, n_exact = 1000, threads = 0, quantize = 1, compress = 1, sparsity = 0, batch_use = 32,
        tok_per_text = 16;
    double ridge = 1e-3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            fputs(HELP, stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            cli_error(CMD, "%s needs a value (or unknown option; see seslm recompile --help)", a);
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--model") == 0) model_dir = v;
        else if (strcmp(a, "--plan") == 0) plan_path = v;
        else if (strcmp(a, "--out") == 0) out_dir = v;
        else if (strcmp(a, "--config") == 0) cfg_path = v;
        else if (strcmp(a, "--calibration") == 0) calib_path = v;
        else if (strcmp(a, "--telemetry") == 0) tel_path = v;
        else if (strcmp(a, "--quantize") == 0 && (strcmp(v, "int8") == 0 || strcmp(v, "none") == 0))
            quantize = strcmp(v, "int8") == 0;
        else if (strcmp(a, "--embeddings") == 0 && (strcmp(v, "int8") == 0 || strcmp(v, "f32") == 0))
            compress = strcmp(v, "int8") == 0;
        else if (strcmp(a, "--sparsity") == 0 && (strcmp(v, "none") == 0 || strcmp(v, "2:4") == 0))
            sparsity = strcmp(v, "2:4") == 0;
        else if ((strcmp(a, "--calibration-lines") == 0 && parse_int(v, 1, 1000000, &calib_lines)) ||
                 (strcmp(a, "--batch-of-use") == 0 && parse_int(v, 1, 4096, &batch_use)) ||
                 (strcmp(a, "--tokens-per-text") == 0 && parse_int(v, 1, 512, &tok_per_text)) ||
                 (strcmp(a, "--exact-rows") == 0 && parse_int(v, 0, 10000000, &n_exact)) ||
                 (strcmp(a, "--threads") == 0 && parse_int(v, 0, 1024, &threads)))
            ;
        else if (strcmp(a, "--ridge") == 0) {
            char *end;
            ridge = strtod(v, &end);
            if (!*v || *end || !(ridge >= 0 && ridge <= 1)) {
                cli_error(CMD, "--ridge wants a number in [0, 1] (got '%s')", v);
                return 2;
            }
        } else if (strcmp(a, "--quantize") == 0 || strcmp(a, "--embeddings") == 0 || strcmp(a, "--calibration-lines") == 0 ||
                   strcmp(a, "--sparsity") == 0 || strcmp(a, "--batch-of-use") == 0 || strcmp(a, "--tokens-per-text") == 0 ||
                   strcmp(a, "--exact-rows") == 0 || strcmp(a, "--threads") == 0) {
            cli_error(CMD, "bad value '%s' for %s (see seslm recompile --help)", v, a);
            return 2;
        } else {
            cli_error(CMD, "unknown option %s (see seslm recompile --help)", a);
            return 2;
        }
    }
    if (!plan_path || !out_dir || !out_dir[0]) {
        cli_error(CMD, "--plan and --out are required (see seslm recompile --help)");
        return 2;
    }
    // without --config the built-in policy (seslm_policy_default: first and last layers protected, at
    // least 4 heads and 256 neurons kept per layer) still applies: a plan is never taken unchecked
    seslm_policy pol;
    seslm_policy_default(&pol);
    if (cfg_path && seslm_policy_load(&pol, cfg_path) != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        return 1;
    }
    seslm_model *m = NULL;
    seslm_plan pl;
    seslm_calibration cal;
    seslm_telemetry_dump *tel = NULL;
    char **lines = NULL;
    int n_lines = 0, have_plan = 0, have_cal = 0, rc = 1;
    memset(&cal, 0, sizeof cal);
    if (seslm_model_load(&m, model_dir) != SESLM_OK) goto fail;
    const seslm_model_config *c = seslm_model_get_config(m);
    if (seslm_plan_read_json(&pl, c, plan_path) != SESLM_OK) goto fail;
    have_plan = 1;
    if (!check_plan_model(plan_path, seslm_model_weights_sha256(m))) goto done;
    if (seslm_plan_validate(&pl, &pol, c) != SESLM_OK) goto fail;
    const char *base = strrchr(plan_path, '/');
    base = base ? base + 1 : plan_path;
    if (tel_path && seslm_profile_read_telemetry(tel_path, seslm_model_weights_sha256(m), &tel, NULL, 0) != SESLM_OK)
        goto fail;
    if (calib_path) {
        if (seslm_lines_read(calib_path, calib_lines, &lines, &n_lines) != SESLM_OK) goto fail;
        seslm_progress calib_prog = {0};
        if (seslm_calibration_collect(&cal, m, (const char *const *)lines, n_lines, 8, threads, calib_progress, &calib_prog) !=
            SESLM_OK)
            goto fail;
        have_cal = 1;
    }
    // 2:4 only where it pays: the FFN products at the student's mean width, timed against the dense kind
    char sp_reason[512] = "not requested";
    int sp_keep = 0;
    if (sparsity) {
        int64_t nf = 0;
        for (int l = 0; l < c->n_layers; l++) nf += c->layers[l].ffn_dim - pl.n_remove_neurons[l];
        const int F = (int)((nf / (c->n_layers ? c->n_layers : 1) + 3) / 4 * 4), M = batch_use * tok_per_text;
        seslm_sparse24_timing t1, t2;
        seslm_backend_get("cpu")->set_threads(threads);
        if (F <= 0 || seslm_sparse24_benchmark(&t1, M, F, c->hidden, quantize, 15) != SESLM_OK ||
            seslm_sparse24_benchmark(&t2, M, c->hidden, F, quantize, 15) != SESLM_OK) {
            snprintf(sp_reason, sizeof sp_reason, "benchmark failed: %s", F <= 0 ? "no FFN left" : seslm_last_error());
        } else {
            const double d = t1.dense_ms + t2.dense_ms, sp = t1.sparse_ms + t2.sparse_ms;
            sp_keep = sp < 0.95 * d && !quantize; // a 5% margin: a tie in a noisy timing is not a win
            snprintf(sp_reason, sizeof sp_reason,
                     "FFN products at %d rows (batch %d x %d tokens): 2:4 sparse F32 %.3f ms vs dense %s %.3f ms%s", M,
                     batch_use, tok_per_text, sp, quantize ? "INT8" : "F32", d,
                     sp_keep ? ": kept"
                     : sp < 0.95 * d ? ": faster, but 2:4 is not combined with INT8: dense INT8 kept"
                              : ": not 5% faster, dense kept");
        }
        fprintf(stderr, "seslm recompile: 2:4 sparsity: %s\n", sp_reason);
    }
    const char *cbase = calib_path ? strrchr(calib_path, '/') : NULL;
    seslm_recompile_opts ro = {.plan_name = base, .calibration_name = cbase ? cbase + 1 : calib_path,
                               .calib = have_cal ? &cal : NULL, .ridge = ridge, .quantize_int8 = quantize,
                               .compress_embeddings = compress, .token_counts = tel ? tel->v.token_counts : NULL,
                               .n_exact = n_exact, .sparse24_ffn = sp_keep};
    static seslm_recompile_stats s;
    if (seslm_recompile_run(m, &pl, &ro, out_dir, &s) != SESLM_OK) goto fail;
    { // the architecture diff beside the weights (the student is complete already: a failure here is reported)
        seslm_model *stu = NULL;
        seslm_status rst = seslm_model_load(&stu, out_dir);
        if (rst == SESLM_OK) rst = seslm_arch_report_write(m, stu, out_dir, 32);
        seslm_model_free(stu);
        // last: the manifest every later load checks the student against (model_verify.h)
        if (rst == SESLM_OK) rst = model_manifest_write(out_dir);
        if (rst != SESLM_OK) {
            cli_error(CMD, "student written, but its architecture report or manifest failed: %s", seslm_last_error());
            goto done;
        }
    }
    printf("{\"parent\":");
    cli_json_str(stdout, model_dir);
    printf(",\"student\":");
    cli_json_str(stdout, out_dir);
    printf(",\"plan\":");
    cli_json_str(stdout, plan_path);
    printf(",\"parent_sha256\":\"%s\",\"params_parent\":%lld,\"params\":%lld,\"bytes_parent\":%lld,\"bytes\":%lld,"
           "\"file_bytes_parent\":%lld,\"file_bytes\":%lld,\"params_ratio\":%.6f,\"heads_removed\":%d,"
           "\"neurons_removed\":%d,\"bytes_ratio\":%.6f,\"quantize\":\"%s\",\"embeddings\":\"%s\",\"exact_rows\":%d,"
           "\"reconstruction\":%s,\"calibration_tokens\":%lld,\"refits_skipped\":%d,\"sparsity\":{\"requested\":\"%s\","
           "\"kept\":%s,\"reason\":",
           seslm_model_weights_sha256(m), (long long)s.params_parent, (long long)s.params, (long long)s.bytes_parent,
           (long long)s.bytes, (long long)s.file_bytes_parent, (long long)s.file_bytes,
           s.params_parent ? (double)s.params / (double)s.params_parent : 0.0, s.heads_removed, s.neurons_removed,
           s.bytes_parent ? (double)s.bytes / (double)s.bytes_parent : 0.0, quantize ? "int8" : "none",
           compress ? "int8" : "f32", s.exact_rows, have_cal ? "\"least-squares\"" : "null",
           (long long)(have_cal ? cal.tokens : 0), s.refits_skipped, sparsity ? "2:4" : "none", sp_keep ? "true" : "false");
    cli_json_str(stdout, sp_reason);
    printf("},\"layers\":[");
    if (s.refits_skipped)
        fprintf(stderr, "seslm recompile: warning: %d pruned projections left unfitted: %lld calibration tokens are "
                        "fewer than twice their kept inputs; give more calibration text\n",
                s.refits_skipped, (long long)cal.tokens);
    for (int l = 0; l < c->n_layers; l++) {
        printf("%s{\"layer\":%d,\"heads_parent\":%d,\"heads\":%d,\"ffn_parent\":%d,\"ffn\":%d", l ? "," : "", l,
               c->layers[l].n_heads, c->layers[l].n_heads - pl.n_remove_heads[l], c->layers[l].ffn_dim,
               c->layers[l].ffn_dim - pl.n_remove_neurons[l]);
        if (have_cal)
            printf(",\"attn_out_rel_err\":{\"sliced\":%.6f,\"refit\":%.6f},\"ffn_out_rel_err\":{\"sliced\":%.6f,\"refit\":%.6f}",
                   s.attn_err_plain[l], s.attn_err_fit[l], s.ffn_err_plain[l], s.ffn_err_fit[l]);
        printf("}");
    }
    printf("]}\n");
    rc = 0;
    goto done;
fail:
    cli_error(CMD, "%s", seslm_last_error());
    rc = 1;
done:
    if (have_plan) seslm_plan_free(&pl);
    if (have_cal) seslm_calibration_free(&cal);
    seslm_lines_free(lines, n_lines);
    seslm_telemetry_dump_free(tel);
    seslm_model_free(m);
    return rc;
}
