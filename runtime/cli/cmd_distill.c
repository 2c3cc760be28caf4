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
    "  --max-tokens N       truncation per sentence (default 64)\n"
    "  --loss W_COS,W_MSE,W_SIM,W_ATTN[,W_HIDDEN]  loss weights (default 1,1,0,0,0; 0 turns a loss off)\n"
    "  --holdout X          share of the calibration text held out (default 0.1)\n"
    "  --augment X          share of each batch's calibration rows replaced by augmented views labelled by\n"
    "                       the parent in the step (token replacement, splicing, span deletion; default 0.5)\n"
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

static int parse_float(const char *flag, const char *v, double lo, double hi, double *out) {
    if (!v) {
        cli_error(CMD, "%s needs a value", flag);
        return 0;
    }
    char *end = NULL;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi)) {
        cli_error(CMD, "%s must be a number in [%g, %g] (got '%s')", flag, lo, hi, v);
        return 0;
    }
    *out = x;
    return 1;
}

int cmd_distill(int argc, char **argv) {
    distill_opts o;
    distill_opts_default(&o);
    o.parent_dir = cli_default_model_dir();
    // the command's default fits issue 13's budget: a 40% student on 1,200 sentences in <= 3 minutes on
    // 2 cores (bench/RESULTS.md section 16); --time-budget 0 runs exactly --steps
    o.time_budget_s = 170;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double x = 0;
        if (cli_is_help(a)) {
            fputs(HELP, stdout);
            return 0;
        }
#define STR(flag, field)                              \
    if (strcmp(a, flag) == 0) {                       \
        if (!v) {                                     \
            cli_error(CMD, "%s needs a value", flag); \
            return 2;                                 \
        }                                             \
        field = v;                                    \
        i++;                                          \
        continue;                                     \
    }
        STR("--parent", o.parent_dir)
        STR("--student", o.student_dir)
        STR("--calibration", o.calibration)
        STR("--general", o.general)
        STR("--out", o.out_dir)
        STR("--checkpoint", o.checkpoint_dir)
        STR("--device", o.device)
#undef STR
        if (strcmp(a, "--steps") == 0) {
            if (!cli_parse_int(CMD, a, v, 1, 10000000, &o.steps)) return 2;
        } else if (strcmp(a, "--batch") == 0) {
            if (!cli_parse_int(CMD, a, v, 2, 1024, &o.batch)) return 2;
        } else if (strcmp(a, "--threads") == 0) {
            if (!cli_parse_int(CMD, a, v, 0, 1024, &o.threads)) return 2;
        } else if (strcmp(a, "--checkpoint-every") == 0) {
            if (!cli_parse_int(CMD, a, v, 1, 1000000, &o.checkpoint_every)) return 2;
        } else if (strcmp(a, "--max-tokens") == 0) {
            if (!cli_parse_int(CMD, a, v, 2, 512, &o.max_tokens)) return 2;
        } else if (strcmp(a, "--lr") == 0) {
            if (!parse_float(a, v, 1e-9, 0.5, &x)) return 2;
            o.lr = (float)x;
        } else if (strcmp(a, "--holdout") == 0) {
            if (!parse_float(a, v, 0, 0.5, &x)) return 2;
            o.holdout_frac = x;
        } else if (strcmp(a, "--augment") == 0) {
            if (!parse_float(a, v, 0, 1, &x)) return 2;
            o.augment_frac = x;
        } else if (strcmp(a, "--general-frac") == 0) {
            if (!parse_float(a, v, 0, 0.9, &x)) return 2;
            o.general_frac = x;
        } else if (strcmp(a, "--time-budget") == 0) {
            if (!parse_float(a, v, 0, 1e7, &x)) return 2;
            o.time_budget_s = x;
        } else if (strcmp(a, "--seed") == 0) {
            if (!parse_float(a, v, 0, 1e15, &x) || x != floor(x)) {
                if (x != floor(x)) cli_error(CMD, "--seed must be a whole number");
                return 2;
            }
            o.seed = (unsigned long long)x;
        } else if (strcmp(a, "--loss") == 0) {
            float w[5] = {0};
            char tail = 0;
            const int n = v ? sscanf(v, "%f,%f,%f,%f,%f%c", &w[0], &w[1], &w[2], &w[3], &w[4], &tail) : 0;
            if ((n != 4 && n != 5) || !(w[0] >= 0 && w[1] >= 0 && w[2] >= 0 && w[3] >= 0 && w[4] >= 0) ||
                w[0] + w[1] + w[2] + w[3] + w[4] <= 0) {
                cli_error(CMD, "--loss takes four or five weights >= 0, not all 0: W_COS,W_MSE,W_SIM,W_ATTN[,W_HIDDEN] "
                               "(got '%s')", v ? v : "");
                return 2;
            }
            o.w_emb_cos = w[0], o.w_emb_mse = w[1], o.w_sim = w[2], o.w_attn = w[3], o.w_hidden = w[4];
        } else if (strcmp(a, "--quiet") == 0) {
            o.progress = 0;
            continue;
        } else {
            cli_error(CMD, "unknown option '%s' (see seslm distill --help)", a);
            return 2;
        }
        i++;
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
           "\"seconds\": %.1f}\n",
           jo ? jo : "\"\"", rep.steps_done, rep.best_step, rep.resumed_from, rep.n_train, rep.n_holdout, rep.loss_first, rep.loss_last,
           rep.cos_before, rep.cos_after, rep.seconds);
    cJSON_free(jo);
    cJSON_Delete(js);
    return 0;
}
