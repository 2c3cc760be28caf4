/* cmd_recompile.c — `seslm recompile`: apply a pruning plan to the weights, writing the student model. */
#include "arch_report.h"
#include "backend.h"
#include "calibrate.h"
#include "cli.h"
#include "model_verify.h"
#include "progress.h"
#include "parent.h"
#include "plan.h"
#include "profile.h"
#include "recompile.h"
#include "sparsity.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#if __has_include("distill.h")
#include "distill.h"
#define SESLM_HAVE_DISTILL 1
#endif
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
    "     run time (each token's largest element kept in float: --act-quant), int32 products (AVX-512 VNNI\n"
    "     where the CPU has it);\n"
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
    "  --act-quant top1|token  INT8 activations: per token with the token's largest element kept in float\n"
    "                       (default; an outlier such as [CLS]'s massive channel no longer sets the step of\n"
    "                       the whole row) or per token alone (max |x| / 127, students before 2026-12-05)\n"
    "  --embeddings int8|int4|pq8|pq4|f32  word-embedding table (default int8); int4: every row 4-bit with its\n"
    "                       own scale (two per byte), the frequent rows exact as with int8; pq8 / pq4: 4-bit\n"
    "                       rows only for the ids seen in --telemetry (count >= --rare-min) or in the\n"
    "                       --calibration text, the rare rest\n"
    "                       product-quantized (8- / 4-column sub-vectors, 256 centroids each, k-means on the\n"
    "                       rows themselves, fixed seed): 48 / 96 bytes a row for hidden 384\n"
    "  --exact-dtype int8|f32  the exact rows' storage (default int8 with int4/pq*, f32 with int8)\n"
    "  --position-dtype int8|f32  position and token-type embeddings (default int8 when --embeddings is\n"
    "                       compressed, else f32)\n"
    "  --rare-min N         pq*: ids seen fewer than N times are product-quantized (default 1: unseen)\n"
    "  --telemetry PATH     a dump or a directory of dumps: token frequencies for the exact rows\n"
    "  --exact-rows N       most frequent ids kept exact (default 1000; needs --telemetry)\n"
    "  --sparsity none|2:4  2:4 structured sparsity of the FFN weights (F32 only), kept only when the\n"
    "                       kernel benchmark on this machine shows it faster than the dense product the\n"
    "                       student would otherwise run at the batch of use; else dense, and the summary says why\n"
    "  --batch-of-use N     batch size the student will serve (default 32), x --tokens-per-text (default 16)\n"
    "  --config FILE        check the plan against this policy (configs/evolve.yaml); default the built-in\n"
    "                       policy (first and last layers protected, >= 4 heads and 256 neurons per layer)\n"
    "  --threads N          threads of the calibration pass (default: all cores)\n"
    "  --distill-steps N    distil the F32 student against the parent on the calibration text before\n"
    "                       quantizing (seslm distill's engine; 0 = no distillation, default)\n"
    "  --distill-general F  general text replayed during distillation (default none)\n"
    "  --distill-batch N    sentences per step (default 32)\n"
    "  --distill-time S     stop distilling after S seconds (default: no limit)\n"
    "  --distill-int8-aware X  with --quantize int8: the last X of the distillation steps simulate the INT8\n"
    "                       student (weights per channel, activations per token) and the best INT8-rounded\n"
    "                       student is kept (default 0.3; 0 = plain F32 distillation)\n"
    "  --no-master          do not keep the F32 student in DIR/master/ (see below)\n"
    "\n"
    "Order: slice -> reconstruct -> [distill] -> INT8 -> compressed embeddings. When the student is quantized\n"
    "or its embeddings compressed, DIR/master/ keeps the F32 student before quantization (config.json\n"
    "\"seslm_master\" records its sha256): the next evolution cycle plans and recompiles from it, so rounding\n"
    "errors never compound over generations (docs/recompile.md). --model may be such a student: its master is\n"
    "used, or, without one, its INT8 weights widened to F32.\n"
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

typedef struct {
    int steps, batch, threads;
    double time_s, int8_aware;             // int8_aware: distill.h int8_aware_frac when the student is INT8
    const char *general, *calibration, *parent_dir;
    int parent_widened;                     // the parent is an INT8 student widened in memory
    double cos_before, cos_after, seconds; // filled by the distill stage
    int done;
} dist_cfg;

static void path_join(char *out, size_t cap, const char *a, const char *b) { snprintf(out, cap, "%s%s", a, b); }

/* The student: slice + reconstruct (F32) -> [distill] -> INT8 + compressed embeddings, the F32 student
 * kept as DIR/master/. Work happens in DIR.stage/ (a leftover of an interrupted run is removed first); DIR
 * appears by one rename, complete. Returns 1 ok, 0 failed (reported). */
static int build_student(const seslm_model *m, const seslm_plan *pl, const seslm_recompile_opts *ro, const char *out_dir,
                         seslm_recompile_stats *s, int keep_master, dist_cfg *dc) {
    const int post = ro->quantize_int8 || ro->compress_embeddings || ro->sparse24_ffn || ro->position_int8;
    if (!post && dc->steps == 0) { // slicing (+ reconstruction) only: the student is the F32 model
        if (seslm_recompile_run(m, pl, ro, out_dir, s) == SESLM_OK) return 1;
        cli_error(CMD, "%s", seslm_last_error());
        return 0;
    }
    struct stat sb;
    if (lstat(out_dir, &sb) == 0) {
        cli_error(CMD, "%s already exists; refusing to overwrite it", out_dir);
        return 0;
    }
    char stage[4200], f32[4300], dist[4300], fin[4300], mdir[4400];
    path_join(stage, sizeof stage, out_dir, ".stage");
    util_rmtree(stage);
    if (mkdir(stage, 0755) != 0) {
        cli_error(CMD, "cannot create %s: %s", stage, strerror(errno));
        return 0;
    }
    path_join(f32, sizeof f32, stage, "/f32");
    path_join(dist, sizeof dist, stage, "/distilled");
    path_join(fin, sizeof fin, stage, "/student");
    seslm_recompile_opts o1 = *ro;
    o1.quantize_int8 = 0, o1.compress_embeddings = 0, o1.sparse24_ffn = 0, o1.position_int8 = 0, o1.exact_int8 = 0;
    static seslm_recompile_stats s1;
    int ok = seslm_recompile_run(m, pl, &o1, f32, &s1) == SESLM_OK;
    if (!ok) cli_error(CMD, "%s", seslm_last_error());
    const char *master = f32;
#ifdef SESLM_HAVE_DISTILL
    char pf32[4300];
    path_join(pf32, sizeof pf32, stage, "/parent-f32");
    if (ok && dc->steps > 0 && seslm_model_is_quantized(m) == 0 && dc->parent_widened) {
        // the teacher is an INT8 student without master, widened in memory: the engine reads F32 model
        // directories, so write it out once as one (nothing removed, lineage kept)
        seslm_plan same;
        memset(&same, 0, sizeof same);
        const int L = seslm_model_get_config(m)->n_layers;
        same.n_layers = L;
        same.n_remove_heads = calloc((size_t)L + 1, sizeof(int));
        same.n_remove_neurons = calloc((size_t)L + 1, sizeof(int));
        same.remove_heads = calloc((size_t)L + 1, sizeof(int *));
        same.remove_neurons = calloc((size_t)L + 1, sizeof(int *));
        seslm_recompile_opts po = {.ridge = 1e-3, .keep_lineage = 1};
        ok = same.n_remove_heads && same.n_remove_neurons && same.remove_heads && same.remove_neurons &&
             seslm_recompile_run(m, &same, &po, pf32, NULL) == SESLM_OK;
        if (!ok) cli_error(CMD, "cannot write the widened parent for distillation: %s", seslm_last_error());
        free(same.n_remove_heads), free(same.n_remove_neurons), free(same.remove_heads), free(same.remove_neurons);
        dc->parent_dir = pf32;
    }
    if (ok && dc->steps > 0) {
        distill_opts d;
        distill_opts_default(&d);
        d.parent_dir = dc->parent_dir, d.student_dir = f32, d.calibration = dc->calibration, d.general = dc->general;
        d.out_dir = dist, d.steps = dc->steps, d.batch = dc->batch, d.threads = dc->threads, d.time_budget_s = dc->time_s;
        d.int8_aware_frac = ro->quantize_int8 ? dc->int8_aware : 0; // what will ship is rounded to INT8: train for it
        d.int8_act_token = ro->act_token;
        d.progress = 1;
        // the checkpoint lives beside DIR, outside the stage directory a rerun starts over: a killed recompile
        // redoes the (deterministic) slicing and reconstruction, then resumes the distillation from it
        char ckpt[4300];
        path_join(ckpt, sizeof ckpt, out_dir, ".distill-ckpt");
        d.checkpoint_dir = ckpt;
        distill_report rep;
        memset(&rep, 0, sizeof rep);
        char err[1024] = "";
        fprintf(stderr, "seslm recompile: distilling the F32 student (%d steps)\n", dc->steps);
        const int drc = distill_run(&d, &rep, err, sizeof err);
        if (drc != 0) {
            cli_error(CMD, "distillation failed: %s", err[0] ? err : "internal error");
            ok = 0;
        } else {
            dc->cos_before = rep.cos_before, dc->cos_after = rep.cos_after, dc->seconds = rep.seconds, dc->done = rep.steps_done;
            fprintf(stderr, "seslm recompile: distilled %d steps in %.1f s: held-out cosine %.4f -> %.4f\n", rep.steps_done,
                    rep.seconds, rep.cos_before, rep.cos_after);
            master = dist;
            util_rmtree(ckpt);
        }
    }
#endif
    seslm_model *mm = NULL;
    seslm_plan none;
    memset(&none, 0, sizeof none);
    if (ok && seslm_model_load(&mm, master) != SESLM_OK) ok = 0, cli_error(CMD, "%s", seslm_last_error());
    if (ok) { // quantization of the (distilled) F32 student: an empty plan, lineage kept as it is
        const seslm_model_config *mc = seslm_model_get_config(mm);
        none.n_layers = mc->n_layers;
        none.n_remove_heads = calloc((size_t)mc->n_layers + 1, sizeof(int));
        none.n_remove_neurons = calloc((size_t)mc->n_layers + 1, sizeof(int));
        none.remove_heads = calloc((size_t)mc->n_layers + 1, sizeof(int *));
        none.remove_neurons = calloc((size_t)mc->n_layers + 1, sizeof(int *));
        none.drop_layer = calloc((size_t)mc->n_layers + 1, sizeof(int));
        snprintf(none.method, sizeof none.method, "%s", pl->method);
        none.target = pl->target;
        seslm_recompile_opts o2 = *ro;
        o2.calib = NULL, o2.keep_lineage = 1;
        o2.master_sha256 = keep_master ? seslm_model_weights_sha256(mm) : NULL;
        o2.distill_steps = dc->done, o2.distill_cos_before = dc->cos_before, o2.distill_cos_after = dc->cos_after;
        static seslm_recompile_stats s2;
        ok = none.n_remove_heads && none.n_remove_neurons && none.remove_heads && none.remove_neurons && none.drop_layer &&
             seslm_recompile_run(mm, &none, &o2, fin, &s2) == SESLM_OK;
        if (!ok) cli_error(CMD, "%s", seslm_last_error());
        // the whole chain's figures: sizes of the final student, reconstruction of the first step
        *s = s1;
        s->bytes = s2.bytes, s->file_bytes = s2.file_bytes, s->exact_rows = s2.exact_rows;
        s->pq_rows = s2.pq_rows, s->q4_rows = s2.q4_rows, s->pq_row_cos = s2.pq_row_cos, s->pq_row_cos_int4 = s2.pq_row_cos_int4;
        s->quant_worst_rel_err = s2.quant_worst_rel_err, s->sparse24_layers = s2.sparse24_layers;
        free(none.n_remove_heads), free(none.n_remove_neurons), free(none.remove_heads), free(none.remove_neurons);
        free(none.drop_layer);
    }
    seslm_model_free(mm);
    path_join(mdir, sizeof mdir, fin, "/master");
    if (ok && keep_master && rename(master, mdir) != 0)
        ok = 0, cli_error(CMD, "cannot move the F32 master into %s: %s", mdir, strerror(errno));
    if (ok && rename(fin, out_dir) != 0) ok = 0, cli_error(CMD, "cannot rename %s to %s: %s", fin, out_dir, strerror(errno));
    util_rmtree(stage);
    return ok;
}

int cmd_recompile(int argc, char **argv) {
    const char *model_dir = cli_default_model_dir(), *plan_path = NULL, *out_dir = NULL, *cfg_path = NULL;
    const char *calib_path = NULL, *tel_path = NULL, *dist_general = NULL;
    int dist_steps = 0, dist_batch = 32, keep_master = 1;
    double dist_time = 0, dist_int8 = 0.3;
    int calib_lines = 512, n_exact = 1000, threads = 0, quantize = 1, compress = 1, sparsity = 0, batch_use = 32,
        tok_per_text = 16, exact_int8 = -1, pos_int8 = -1, rare_min = 1;
    double ridge = 1e-3;
    int no_master = 0, quant_i = 0, sparse_i = 0, exact_i = -1, pos_i = -1, act_i = 0;
    const char *emb_s = NULL;
    cli_choice quant_c = {&quant_i, "int8|none"}, sparse_c = {&sparse_i, "none|2:4"};
    cli_choice exact_c = {&exact_i, "int8|f32"}, pos_c = {&pos_i, "int8|f32"}, act_c = {&act_i, "top1|token"};
    const cli_arg args[] = {
        {"--model", CLI_ARG_STR, &model_dir, 0, 0},
        {"--plan", CLI_ARG_STR, &plan_path, 0, 0},
        {"--out", CLI_ARG_STR, &out_dir, 0, 0},
        {"--config", CLI_ARG_STR, &cfg_path, 0, 0},
        {"--calibration", CLI_ARG_STR, &calib_path, 0, 0},
        {"--telemetry", CLI_ARG_STR, &tel_path, 0, 0},
        {"--quantize", CLI_ARG_CHOICE, &quant_c, 0, 0},
        {"--act-quant", CLI_ARG_CHOICE, &act_c, 0, 0},
        {"--embeddings", CLI_ARG_STR, &emb_s, 0, 0},
        {"--exact-dtype", CLI_ARG_CHOICE, &exact_c, 0, 0},
        {"--position-dtype", CLI_ARG_CHOICE, &pos_c, 0, 0},
        {"--rare-min", CLI_ARG_INT, &rare_min, 1, 2000000000},
        {"--sparsity", CLI_ARG_CHOICE, &sparse_c, 0, 0},
        {"--calibration-lines", CLI_ARG_INT, &calib_lines, 1, 1000000},
        {"--batch-of-use", CLI_ARG_INT, &batch_use, 1, 4096},
        {"--tokens-per-text", CLI_ARG_INT, &tok_per_text, 1, 512},
        {"--exact-rows", CLI_ARG_INT, &n_exact, 0, 10000000},
        {"--threads", CLI_ARG_INT, &threads, 0, 1024},
        {"--distill-steps", CLI_ARG_INT, &dist_steps, 0, 10000000},
        {"--distill-batch", CLI_ARG_INT, &dist_batch, 2, 4096},
        {"--distill-general", CLI_ARG_STR, &dist_general, 0, 0},
        {"--distill-time", CLI_ARG_NUM, &dist_time, 0, 1e9}, // seconds
        {"--distill-int8-aware", CLI_ARG_NUM, &dist_int8, 0, 1},
        {"--ridge", CLI_ARG_NUM, &ridge, 0, 1},
        {"--no-master", CLI_ARG_FLAG, &no_master, 0, 0},
        {NULL, 0, NULL, 0, 0},
    };
    int prc = cli_parse_args(CMD, HELP, args, argc, argv, NULL);
    if (prc >= 0) return prc;
    keep_master = !no_master;
    quantize = quant_i == 0;
    if (emb_s && (compress = seslm_embeddings_parse(emb_s)) < 0) {
        cli_error(CMD, "--embeddings must be one of int8|int4|f32|pq4|pq8 (got '%s')", emb_s);
        return 2;
    }
    if (exact_i >= 0) exact_int8 = exact_i == 0;
    if (pos_i >= 0) pos_int8 = pos_i == 0;
    sparsity = sparse_i == 1;
    if (!plan_path || !out_dir || !out_dir[0]) {
        cli_error(CMD, "--plan and --out are required (see seslm recompile --help)");
        return 2;
    }
    // without --config the built-in policy (seslm_policy_default: first and last layers protected, at
    // least 4 heads and 256 neurons kept per layer) still applies: a plan is never taken unchecked
    if (dist_steps > 0 && !calib_path) {
        cli_error(CMD, "--distill-steps needs --calibration (the text the student learns to embed as the parent does)");
        return 2;
    }
#ifndef SESLM_HAVE_DISTILL
    if (dist_steps > 0) {
        cli_error(CMD, "--distill-steps: this build has no distillation engine (pipeline/distill)");
        return 1;
    }
#endif
    seslm_policy pol;
    seslm_policy_default(&pol);
    if (cfg_path && seslm_policy_load(&pol, cfg_path) != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        return 1;
    }
    seslm_model *m = NULL;
    seslm_parent par = {0};
    seslm_plan pl;
    seslm_calibration cal;
    seslm_telemetry_dump *tel = NULL;
    char **lines = NULL;
    int n_lines = 0, have_plan = 0, have_cal = 0, rc = 1;
    uint8_t *seen = NULL; // ids of the calibration text (pq* rows)
    memset(&cal, 0, sizeof cal);
    if (seslm_parent_load(&par, model_dir) != SESLM_OK) goto fail;
    m = par.m;
    if (par.kind != SESLM_PARENT_F32)
        fprintf(stderr, "seslm recompile: %s is a recompiled student: weights from %s (%s)\n", model_dir, par.weights_dir,
                seslm_parent_kind_name(par.kind));
    const seslm_model_config *c = seslm_model_get_config(m);
    if (seslm_plan_read_json(&pl, c, plan_path) != SESLM_OK) goto fail;
    have_plan = 1;
    if (!check_plan_model(plan_path, par.served_sha256)) goto done;
    if (seslm_plan_validate(&pl, &pol, c) != SESLM_OK) {
        // a plan made under another policy (its own protected layers, minimums or never_drop) may fail the
        // built-in one: say which policy judged it
        if (!cfg_path) {
            cli_error(CMD, "%s (checked against the built-in policy: pass the policy the plan was made under, "
                           "e.g. --config configs/evolve.yaml)", seslm_last_error());
            rc = 1;
            goto done;
        }
        goto fail;
    }
    const char *base = strrchr(plan_path, '/');
    base = base ? base + 1 : plan_path;
    if (tel_path && seslm_profile_read_telemetry(tel_path, par.served_sha256, &tel, NULL, 0) != SESLM_OK)
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
    // pq*: the calibration text is served traffic too; its ids keep 4-bit rows even where the telemetry's
    // window never showed them (product quantization is for ids no traffic has used)
    if ((compress == SESLM_EMB_PQ4 || compress == SESLM_EMB_PQ8) && n_lines > 0) {
        const seslm_tokenizer *tok = seslm_model_tokenizer(m);
        const int V = c->vocab_size, cap = seslm_tokenizer_options(tok)->max_len + 2;
        int32_t *ids = malloc((size_t)cap * sizeof *ids);
        if (!ids || !(seen = calloc((size_t)V + 1, 1))) {
            free(ids);
            seslm_fail(SESLM_ERR_NOMEM, "out of memory");
            goto fail;
        }
        for (int i = 0; i < n_lines; i++) {
            int n = 0;
            if (seslm_tokenizer_encode(tok, lines[i], strlen(lines[i]), ids, cap, &n) != SESLM_OK) continue;
            for (int k = 0; k < n; k++)
                if (ids[k] >= 0 && ids[k] < V) seen[ids[k]] = 1;
        }
        free(ids);
    }
    const char *cbase = calib_path ? strrchr(calib_path, '/') : NULL;
    seslm_recompile_opts ro = {.plan_name = base, .calibration_name = cbase ? cbase + 1 : calib_path,
                               .calib = have_cal ? &cal : NULL, .ridge = ridge, .quantize_int8 = quantize, .act_token = act_i == 1,
                               .compress_embeddings = compress, .token_counts = tel ? tel->v.token_counts : NULL,
                               .n_exact = n_exact, .sparse24_ffn = sp_keep, .parent_dir = model_dir,
                               .exact_int8 = exact_int8 >= 0 ? exact_int8 : compress > SESLM_EMB_INT8,
                               .position_int8 = pos_int8 >= 0 ? pos_int8 : compress != 0, .rare_min = rare_min, .seen_ids = seen,
                               .parent_sha256 = par.served_sha256,
                               .parent_kind = seslm_parent_kind_name(par.kind)};
    static seslm_recompile_stats s;
    dist_cfg dc = {.steps = dist_steps, .batch = dist_batch, .threads = threads, .time_s = dist_time,
                   .int8_aware = dist_int8, .general = dist_general, .calibration = calib_path, .parent_dir = par.weights_dir,
                   .parent_widened = par.kind == SESLM_PARENT_WIDENED};
    if (!build_student(m, &pl, &ro, out_dir, &s, keep_master, &dc)) goto done;
    { // the architecture diff beside the weights (the student is complete already: a failure here is reported)
        seslm_model *stu = NULL;
        seslm_status rst = seslm_model_load(&stu, out_dir);
        if (rst == SESLM_OK) rst = seslm_arch_report_write_drop(m, stu, pl.drop_layer, out_dir, 32);
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
           "\"exact_dtype\":\"%s\",\"position_dtype\":\"%s\",\"pq_rows\":%d,\"q4_rows\":%d,\"pq_row_cos\":%.6f,"
           "\"pq_row_cos_int4\":%.6f,"
           "\"reconstruction\":%s,\"calibration_tokens\":%lld,\"refits_skipped\":%d,\"sparsity\":{\"requested\":\"%s\","
           "\"kept\":%s,\"reason\":",
           seslm_model_weights_sha256(m), (long long)s.params_parent, (long long)s.params, (long long)s.bytes_parent,
           (long long)s.bytes, (long long)s.file_bytes_parent, (long long)s.file_bytes,
           s.params_parent ? (double)s.params / (double)s.params_parent : 0.0, s.heads_removed, s.neurons_removed,
           s.bytes_parent ? (double)s.bytes / (double)s.bytes_parent : 0.0, quantize ? "int8" : "none",
           seslm_embeddings_name(compress), s.exact_rows, ro.exact_int8 ? "int8" : "f32", ro.position_int8 ? "int8" : "f32",
           s.pq_rows, s.q4_rows, s.pq_row_cos, s.pq_row_cos_int4, have_cal ? "\"least-squares\"" : "null",
           (long long)(have_cal ? cal.tokens : 0), s.refits_skipped, sparsity ? "2:4" : "none", sp_keep ? "true" : "false");
    cli_json_str(stdout, sp_reason);
    printf("},\"layers_removed\":%d,\"master\":%s,\"distill\":", s.layers_removed,
           keep_master && (quantize || compress || sp_keep || ro.position_int8) ? "\"master\"" : "null");
    if (dc.done > 0)
        printf("{\"steps\":%d,\"seconds\":%.1f,\"heldout_cos_before\":%.6f,\"heldout_cos_after\":%.6f}", dc.done, dc.seconds,
               dc.cos_before, dc.cos_after);
    else printf("null");
    printf(",\"layers\":[");
    if (s.refits_skipped)
        fprintf(stderr, "seslm recompile: warning: %d pruned projections left unfitted: %lld calibration tokens are "
                        "fewer than twice their kept inputs; give more calibration text\n",
                s.refits_skipped, (long long)cal.tokens);
    for (int l = 0; l < c->n_layers; l++) {
        if (pl.drop_layer && pl.drop_layer[l]) {
            printf("%s{\"layer\":%d,\"dropped\":true}", l ? "," : "", l);
            continue;
        }
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
    free(seen);
    if (have_plan) seslm_plan_free(&pl);
    if (have_cal) seslm_calibration_free(&cal);
    seslm_lines_free(lines, n_lines);
    seslm_telemetry_dump_free(tel);
    seslm_parent_free(&par);
    return rc;
}
