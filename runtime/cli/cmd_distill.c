/* cmd_distill.c — `seslm distill`: train a pruned FP32 student to mimic its parent (distill.h). */
#include "cli.h"
#include "distill.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *HELP =
    "usage: seslm distill --student DIR --calibration FILE --out DIR [--parent DIR] [--general FILE]\n"
    "                     [--steps N] [--batch N] [--lr X] [--threads N] [--device cpu|cpu-ref|cuda]\n"
    "                     [--seed S] [--time-budget SEC] [options]\n"
    "\n"
    "Distils the parent into the student (docs/distill.md): the student (a pruned FP32 model from\n"
    "`seslm recompile --quantize none --embeddings f32`) is trained to reproduce the parent's sentence\n"
    "embeddings on label-free text: the calibration file (sampled served traffic, one sentence per line)\n"
    "and, with --general, a replay of general text so that what the domain never shows is not forgotten.\n"
    "Losses: 1 - cosine and relative MSE of the embedding (default), optionally MSE of the in-batch\n"
    "similarity matrix, MiniLM attention / value-relation KL on the last layer and per-layer hidden\n"
    "states (docs/distill.md measures them). AdamW with warm-up and cosine\n"
    "decay, global-norm clipping, fixed seeds. A slice of the calibration text is held out and the mean\n"
    "cosine to the parent on it is reported before and after; the best parameters on it (checked every\n"
    "steps/8 steps, the unchanged student included) are written. Checkpoints go to DIR/.ckpt (crash-safe):\n"
    "run the same command again after a crash or kill and it resumes where the last checkpoint was.\n"
    "DIR then holds the distilled student in the student's format; config.json's seslm_lineage gains\n"
    "\"distillation\". Quantize (INT8) afterwards. Prints a JSON summary; progress with ETA on stderr.\n"
    "\n"
    "  --student DIR        the FP32 student (INT8 / compressed students are refused)\n"
    "  --calibration FILE   training text, one sentence per line\n"
    "  --out DIR            output model directory: must not exist (or hold only an interrupted run's .ckpt)\n"
    "  --parent DIR         the teacher; default $SESLM_MODEL_DIR or models/all-MiniLM-L6-v2\n"
    "  --general FILE       general text replayed in every batch (--general-frac of it, default 0.25)\n"
    "  --steps N            optimiser steps (default 300; fewer when --time-budget cuts them)\n"
    "  --batch N            sentences per step (default 32)\n"
    "  --lr X               peak learning rate (default 3e-4)\n"
    "  --lr-gap G           scale the peak by the starting gap: lr x clamp((1 - held-out cosine before) / G,\n"
    "                       0.1, 1), so a student already close to its parent is not knocked away from it\n"
    "                       (default 0.05; 0 = --lr as given)\n"
    "  --max-tokens N       truncation per sentence (default 64)\n"
    "  --loss W_COS,W_MSE,W_SIM,W_ATTN[,W_HIDDEN]  loss weights (default 1,1,0,0,0; 0 turns a loss off)\n"
    "  --holdout X          share of the calibration text held out (default 0.1)\n"
    "  --augment X          share of each batch's calibration rows replaced by augmented views labelled by\n"
    "                       the parent in the step (token replacement, splicing, span deletion; default 0.5)\n"
    "  --int8-aware X       the student will be quantized to INT8 afterwards: run the last X of the steps\n"
    "                       with INT8 weights and activations simulated (gradients straight through), and\n"
    "                       measure and select on the INT8-rounded student (default 0; recompile uses 0.3)\n"
    "  --act-quant top1|token  with --int8-aware: the activations as the INT8 student will round them (default\n"
    "                       top1: each token's largest element kept in float, recompile's default)\n"
    "  --time-budget SEC    fit the schedule to SEC seconds of wall time (measured over the first steps) and\n"
    "                       stop (and save) if it is exceeded; default 170; 0 = run exactly --steps\n"
    "  --threads N          threads (default: all cores)\n"
    "  --device D           cpu (default) or cpu-ref; cuda is refused (the trainer is CPU-only for now)\n"
    "  --seed S             seed of batch sampling and the held-out split (default 13)\n"
    "  --checkpoint DIR     checkpoint directory (default OUT/.ckpt, removed when the run completes)\n"
    "  --checkpoint-every N steps between checkpoints (default 50; also every 120 s)\n"
    "  --quiet              no progress lines\n"
    "\n"
    "Exit status: 0 ok, 1 bad model / text / existing output / failed write, 2 usage error.\n";

static const char *CMD = "distill";

int cmd_distill(int argc, char **argv) {
    distill_opts o;
    distill_opts_default(&o);
    o.parent_dir = cli_default_model_dir();
    // the command's default fits issue 13's budget: a 40% student on 1,200 sentences in <= 3 minutes on
    // 2 cores (bench/RESULTS.md section 16); --time-budget 0 runs exactly --steps
    o.time_budget_s = 170;
    double lr = o.lr, seed = (double)o.seed;
    const char *loss = NULL;
    int quiet = 0, act_i = 0;
    cli_choice act_c = {&act_i, "top1|token"};
    const cli_arg args[] = {
        {"--parent", CLI_ARG_STR, &o.parent_dir, 0, 0},
        {"--student", CLI_ARG_STR, &o.student_dir, 0, 0},
        {"--calibration", CLI_ARG_STR, &o.calibration, 0, 0},
        {"--general", CLI_ARG_STR, &o.general, 0, 0},
        {"--out", CLI_ARG_STR, &o.out_dir, 0, 0},
        {"--checkpoint", CLI_ARG_STR, &o.checkpoint_dir, 0, 0},
        {"--device", CLI_ARG_STR, &o.device, 0, 0},
        {"--steps", CLI_ARG_INT, &o.steps, 1, 10000000},
        {"--batch", CLI_ARG_INT, &o.batch, 2, 1024},
        {"--threads", CLI_ARG_INT, &o.threads, 0, 1024},
        {"--checkpoint-every", CLI_ARG_INT, &o.checkpoint_every, 1, 1000000},
        {"--max-tokens", CLI_ARG_INT, &o.max_tokens, 2, 512},
        {"--lr", CLI_ARG_NUM, &lr, 1e-9, 0.5},
        {"--lr-gap", CLI_ARG_NUM, &o.lr_gap, 0, 1},
        {"--holdout", CLI_ARG_NUM, &o.holdout_frac, 0, 0.5},
        {"--augment", CLI_ARG_NUM, &o.augment_frac, 0, 1},
        {"--int8-aware", CLI_ARG_NUM, &o.int8_aware_frac, 0, 1},
        {"--act-quant", CLI_ARG_CHOICE, &act_c, 0, 0},
        {"--general-frac", CLI_ARG_NUM, &o.general_frac, 0, 0.9},
        {"--time-budget", CLI_ARG_NUM, &o.time_budget_s, 0, 1e7},
        {"--seed", CLI_ARG_NUM, &seed, 0, 1e15},
        {"--loss", CLI_ARG_STR, &loss, 0, 0},
        {"--quiet", CLI_ARG_FLAG, &quiet, 0, 0},
        {NULL, 0, NULL, 0, 0},
    };
    int prc = cli_parse_args(CMD, HELP, args, argc, argv, NULL);
    if (prc >= 0) return prc;
    if (seed != floor(seed)) {
        cli_error(CMD, "--seed must be a whole number");
        return 2;
    }
    o.seed = (unsigned long long)seed;
    o.int8_act_token = act_i == 1;
    o.lr = (float)lr;
    if (quiet) o.progress = 0;
    if (loss) {
        float w[5] = {0};
        char tail = 0;
        const int n = sscanf(loss, "%f,%f,%f,%f,%f%c", &w[0], &w[1], &w[2], &w[3], &w[4], &tail);
        if ((n != 4 && n != 5) || !(w[0] >= 0 && w[1] >= 0 && w[2] >= 0 && w[3] >= 0 && w[4] >= 0) ||
            w[0] + w[1] + w[2] + w[3] + w[4] <= 0) {
            cli_error(CMD, "--loss takes four or five weights >= 0, not all 0: W_COS,W_MSE,W_SIM,W_ATTN[,W_HIDDEN] "
                           "(got '%s')", loss);
            return 2;
        }
        o.w_emb_cos = w[0], o.w_emb_mse = w[1], o.w_sim = w[2], o.w_attn = w[3], o.w_hidden = w[4];
    }
    if (!o.student_dir || !o.calibration || !o.out_dir) {
        cli_error(CMD, "--student, --calibration and --out are required (see seslm distill --help)");
        return 2;
    }
    if (strcmp(o.device, "cpu") != 0 && strcmp(o.device, "cpu-ref") != 0 && strcmp(o.device, "cuda") != 0) {
        cli_error(CMD, "--device must be cpu, cpu-ref or cuda (got '%s')", o.device);
        return 2;
    }
    distill_report rep;
    char err[2048] = "";
    const int rc = distill_run(&o, &rep, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "seslm distill: %s\n", err);
        return 1;
    }
    cJSON *js = cJSON_CreateString(o.out_dir);
    char *jo = js ? cJSON_PrintUnformatted(js) : NULL;
    printf("{\"out\": %s, \"steps\": %d, \"best_step\": %d, \"resumed_from\": %d, \"train_sentences\": %d, \"holdout_sentences\": %d, "
           "\"loss_first\": %.6f, \"loss_last\": %.6f, \"holdout_cos_before\": %.6f, \"holdout_cos_after\": %.6f, "
           "\"lr_peak\": %.6g, \"seconds\": %.1f}\n",
           jo ? jo : "\"\"", rep.steps_done, rep.best_step, rep.resumed_from, rep.n_train, rep.n_holdout, rep.loss_first, rep.loss_last,
           rep.cos_before, rep.cos_after, rep.lr_peak, rep.seconds);
    cJSON_free(jo);
    cJSON_Delete(js);
    return 0;
}
