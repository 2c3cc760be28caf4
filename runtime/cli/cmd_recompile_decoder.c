/* cmd_recompile_decoder.c — `seslm recompile-decoder`: a smaller GGUF decoder from its telemetry
 * (pipeline/recompile/llm_prune.c). */
#include "calibrate.h"
#include "cli.h"
#include "decoder.h"
#include "llm_distill.h"
#include "llm_prune.h"
#include "profile.h"
#include "qblock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *HELP =
    "usage: seslm recompile-decoder --model FILE --telemetry PATH --out FILE [--ffn-keep F] [--kv-keep N]\n"
    "                               [--drop-layers N --calibration FILE | --drop L1,L2,...] [--vocab-general N]\n"
    "                               [--vocab-min-count N] [--embd-type keep|q8_0|q4_1|q4_0] [--layer-type T]\n"
    "                               [--plan-out FILE]\n"
    "                               [--heal-steps N [--heal-tokens N] [--heal-lr X] [--heal-type T]]\n"
    "                               [--distill-steps N [--distill-lr X] [--distill-tokens N] [--distill-seq N]\n"
    "                               [--distill-ce-weight X] [--distill-special] [--distill-answer-tokens N]\n"
    "                               [--distill-text-share X] [--distill-max-minutes M]]\n"
    "                               [--prompts FILE [--choice-prompts N]] [--choice-whole-passes]\n"
    "\n"
    "Writes a pruned copy of a Llama-family GGUF decoder, planned from what its served traffic used\n"
    "(telemetry dumps of seslm generate --telemetry-dir, or seslm serve --decoder). docs/decoder.md:\n"
    "  FFN neurons   the same count per layer, a layer's weakest by mean energy on the traffic\n"
    "  KV groups     the same count per layer (a K/V head and the query heads that read it), by their\n"
    "                heads' mean output norm x the norm of their W_o columns\n"
    "  layers        those whose bypass raises the calibration text's loss least (measured), plus with\n"
    "                --prompts the loss of the parent's own answers to the served prompts\n"
    "  vocabulary    tokens never seen in the traffic and not among the first N ids lose their row; the kept\n"
    "                set is closed under the merges that build kept tokens, so text tokenized into kept\n"
    "                tokens tokenizes the same and other text falls back to shorter pieces\n"
    "Counts stay uniform across layers, so the student is a plain llama GGUF file (llama.cpp reads it).\n"
    "Rows cut whole are copied byte for byte; W_o and W_down, cut by column, are re-quantized to their type.\n"
    "The output is written through FILE.tmp and renamed. Prints a JSON summary; the plan (the parent's\n"
    "indices of everything kept, each layer's measured loss) goes to --plan-out (default FILE.plan.json).\n"
    "\n"
    "  --model FILE          the parent GGUF (default $SESLM_DECODER_MODEL or models/SmolLM2-135M-Instruct.Q4_1.gguf)\n"
    "  --telemetry PATH      a dump, or a directory whose dumps are summed (of this parent's weights)\n"
    "  --out FILE            the student GGUF; must not exist\n"
    "  --ffn-keep F          fraction of FFN neurons kept per layer, (0, 1] (default 1)\n"
    "  --kv-keep N           KV groups kept per layer (default: all)\n"
    "  --drop-layers N       remove the N layers whose removal costs least (default 0; needs --calibration)\n"
    "  --drop L1,L2,...      remove exactly these layers (0-based, the parent's numbering; e.g. from an\n"
    "                        earlier plan's loss_if_dropped)\n"
    "  --calibration FILE    text, one document per line (the served kind; not the held-out text): the layer\n"
    "                        choice, and the reconstruction of every matrix cut by column: W_o and W_down\n"
    "                        refitted by least squares to the parent's outputs on it, plus a bias\n"
    "  --calibration-lines N use the first N lines (default 512)\n"
    "  --no-reconstruct      with --calibration: cut W_o / W_down columns without the refit, and drop layers\n"
    "                        without compensation\n"
    "  --no-compensate       with --calibration: a dropped layer's mean output on the calibration text is not\n"
    "                        added to the bias of the kept layer before it (it is by default)\n"
    "  --heal-steps N        with dropped layers and --calibration: train the FFN of the kept layer before each\n"
    "                        dropped span for N Adam steps to output what the span added to the residual\n"
    "                        stream, on the parent's activations over the calibration text (a local\n"
    "                        distillation); kept only when its held-out error, as stored, beats the mean's\n"
    "                        (default 300 when layers are dropped with --calibration and no FFN cut, else 0;\n"
    "                        0 turns it off; not with --ffn-keep < 1)\n"
    "  --heal-tokens N       calibration tokens sampled for it, 1/8 held out (default 16384)\n"
    "  --heal-lr X           its peak learning rate (default 3e-4)\n"
    "  --heal-type T         storage of the healed matrices: keep (the parent's, default), q8_0, q4_1, q4_0\n"
    "  --distill-steps N     with --calibration: then train every kept layer of the student together for N Adam\n"
    "                        steps on the calibration text, to the parent's next-token distributions and the\n"
    "                        text's next tokens (seslm distill-decoder; 1 document in 8 held out); the file is\n"
    "                        rewritten only when its held-out cross-entropy, as stored, beats the student's\n"
    "                        (default 0: off; not with --vocab-general)\n"
    "  --distill-ce-weight X weight of the text's cross-entropy in that loss, the KL's 1 - X (default 0.5)\n"
    "  --distill-special     calibration lines may be chat-formatted served prompts (special tokens, \\n for\n"
    "                        newlines; seslm distill-decoder --special)\n"
    "  --distill-answer-tokens N  the parent's greedy answer to each line, up to N tokens, is distilled too\n"
    "                        (with --distill-special: to each chat prompt, kept whole with its answer)\n"
    "  --distill-lr X        its peak learning rate (default 5e-5)\n"
    "  --distill-tokens N    tokens per step (default 1024)\n"
    "  --distill-seq N       tokens per sequence at most (default 64; 512 with --prompts)\n"
    "  --distill-text-share X  with --prompts: about X of each step's tokens from the calibration text, the rest\n"
    "                        from the prompts, and the held-out selection weighted alike (0 < X < 1; default:\n"
    "                        as they come, mostly prompts; seslm distill-decoder --text-share)\n"
    "  --distill-max-minutes M  a time budget for the distillation's steps: the schedule is shortened to the steps\n"
    "                        that fit at the pace measured (seslm distill-decoder --max-minutes; default: none)\n"
    "  --prompts FILE        served chat prompts, one per line (\\n for newlines; bench/decoder/grounded_prompts.py\n"
    "                        writes grounded ones). With --drop-layers, the layer choice adds to each layer's\n"
    "                        cost what its bypass costs the parent's greedy answers to the first --choice-prompts\n"
    "                        of them (nats per answer token, answers up to 24 tokens): plain text does not see\n"
    "                        the layers that copy from a context. With --distill-steps, every prompt is\n"
    "                        distilled beside the calibration text with the parent's answer\n"
    "                        (--distill-answer-tokens, default 48 here), each one sequence with its answer\n"
    "                        (seslm distill-decoder --prompts). --distill-prompts FILE is the same option\n"
    "  --choice-prompts N    prompts the layer choice answers and scores (default 32; 0: text only)\n"
    "  --choice-whole-passes every probe of the layer choice runs the whole model (the reference; by default a\n"
    "                        probe that bypasses layer l resumes at l's input recorded once per step: the same\n"
    "                        losses for ~35% less work, up to 1 GiB of recorded inputs for the text and 1 for\n"
    "                        the answers, beyond which whole passes are used)\n"
    "  --answers-cache FILE  keep the parent's answers to the prompts in FILE (created when missing; keyed by the\n"
    "                        parent's weights): the layer choice, the distillation and the next candidates reuse\n"
    "                        them instead of asking the parent again (~1 s a prompt on 2 cores)\n"
    "  --ridge X             reconstruction ridge relative to the mean Gram diagonal (default 1e-3)\n"
    "  --vocab-general N     keep ids below N and every token seen in the traffic (default: keep all)\n"
    "  --vocab-min-count N   seen at least N times (default 1)\n"
    "  --embd-type T         token_embd storage: keep (default), q8_0, q4_1, q4_0\n"
    "  --layer-type T        every kept layer's matrices: keep (the parent's, default), q8_0, q4_1, q4_0 (SmolLM2\n"
    "                        is Q4_1: q4_0 stores 10% fewer bytes; healing and distillation train the matrices\n"
    "                        as stored in it)\n"
    "  --ctx N               window of the calibration scoring (default 256)\n"
    "\n"
    "Exit status: 0 ok, 1 bad model, telemetry or calibration file, or the write failed, 2 usage.\n";

int cmd_recompile_decoder(int argc, char **argv) {
    const char *drop_list = NULL;
    const char *model = getenv("SESLM_DECODER_MODEL"), *telemetry = NULL, *out = NULL, *plan_out = NULL, *calib = NULL;
    if (!model || !*model) model = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    seslm_llm_prune_opts o;
    seslm_llm_prune_opts_default(&o);
    o.heal_steps = -1; // auto: below
    int no_recon = 0, no_comp = 0, calib_lines = 512, vocab_general = -1, min_count = 1, embd_i = 0, heal_i = 0, layer_i = 0;
    double ffn_keep = 1.0, heal_lr = 3e-4, distill_lr = 5e-5, distill_ce = 0.5, distill_share = -1.0, distill_minutes = 0.0;
    int distill_special = 0, distill_answer = -1;
    const char *distill_prompts = NULL; // --prompts (or its older name --distill-prompts)
    const char *answers_cache = NULL;
    int choice_prompts = 32, choice_whole = 0;
    seslm_llm_distill_opts dopt;
    seslm_llm_distill_opts_default(&dopt);
    cli_choice embd = {&embd_i, "keep|q8_0|q4_1|q4_0"}, heal_ty = {&heal_i, "keep|q8_0|q4_1|q4_0"},
               layer_ty = {&layer_i, "keep|q8_0|q4_1|q4_0"};
    const cli_arg args[] = {
        {"--model", CLI_ARG_STR, &model, 0, 0},
        {"--telemetry", CLI_ARG_STR, &telemetry, 0, 0},
        {"--out", CLI_ARG_STR, &out, 0, 0},
        {"--plan-out", CLI_ARG_STR, &plan_out, 0, 0},
        {"--ffn-keep", CLI_ARG_NUM, &ffn_keep, 0.01, 1},
        {"--kv-keep", CLI_ARG_INT, &o.kv_keep, 1, 1 << 16},
        {"--drop-layers", CLI_ARG_INT, &o.drop_layers, 0, 1 << 16},
        {"--drop", CLI_ARG_STR, &drop_list, 0, 0},
        {"--calibration", CLI_ARG_STR, &calib, 0, 0},
        {"--calibration-lines", CLI_ARG_INT, &calib_lines, 1, 1 << 20},
        {"--no-reconstruct", CLI_ARG_FLAG, &no_recon, 0, 0},
        {"--no-compensate", CLI_ARG_FLAG, &no_comp, 0, 0},
        {"--ridge", CLI_ARG_NUM, &o.ridge, 0, 1},
        {"--vocab-general", CLI_ARG_INT, &vocab_general, 0, 1 << 24},
        {"--vocab-min-count", CLI_ARG_INT, &min_count, 1, 1 << 30},
        {"--embd-type", CLI_ARG_CHOICE, &embd, 0, 0},
        {"--layer-type", CLI_ARG_CHOICE, &layer_ty, 0, 0},
        {"--ctx", CLI_ARG_INT, &o.ctx, 16, 1 << 16},
        {"--heal-steps", CLI_ARG_INT, &o.heal_steps, 0, 1 << 24},
        {"--heal-tokens", CLI_ARG_INT, &o.heal_tokens, 64, 1 << 24},
        {"--heal-lr", CLI_ARG_NUM, &heal_lr, 1e-7, 1},
        {"--heal-type", CLI_ARG_CHOICE, &heal_ty, 0, 0},
        {"--distill-steps", CLI_ARG_INT, &dopt.steps, 0, 1 << 24},
        {"--distill-lr", CLI_ARG_NUM, &distill_lr, 1e-8, 1},
        {"--distill-tokens", CLI_ARG_INT, &dopt.batch_tokens, 16, 1 << 20},
        {"--distill-seq", CLI_ARG_INT, &dopt.seq, 2, 4096},
        {"--distill-ce-weight", CLI_ARG_NUM, &distill_ce, 0, 1},
        {"--distill-text-share", CLI_ARG_NUM, &distill_share, 0.001, 0.999},
        {"--distill-max-minutes", CLI_ARG_NUM, &distill_minutes, 1e-9, 1e6},
        {"--distill-special", CLI_ARG_FLAG, &distill_special, 0, 0},
        {"--distill-answer-tokens", CLI_ARG_INT, &distill_answer, 0, 4096},
        {"--distill-prompts", CLI_ARG_STR, &distill_prompts, 0, 0},
        {"--prompts", CLI_ARG_STR, &distill_prompts, 0, 0},
        {"--choice-prompts", CLI_ARG_INT, &choice_prompts, 0, 1 << 20},
        {"--choice-whole-passes", CLI_ARG_FLAG, &choice_whole, 0, 0},
        {"--answers-cache", CLI_ARG_STR, &answers_cache, 0, 0},
        {NULL, 0, NULL, 0, 0},
    };
    int prc = cli_parse_args("recompile-decoder", HELP, args, argc, argv, NULL);
    if (prc >= 0) return prc;
    if (!telemetry || !out) {
        cli_error("recompile-decoder", "--telemetry PATH and --out FILE are required");
        return 2;
    }
    if (o.drop_layers > 0 && !calib) {
        cli_error("recompile-decoder", "--drop-layers needs --calibration FILE (the loss of each layer's removal is measured)");
        return 2;
    }
    int drops[256], n_drops = 0;
    for (const char *p = drop_list; p && *p;) {
        char *end = NULL;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 65535 || n_drops == 256 || (*end && *end != ',')) {
            cli_error("recompile-decoder", "--drop: a comma-separated list of layer numbers (got '%s')", drop_list);
            return 2;
        }
        drops[n_drops++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (o.heal_steps < 0) // auto: heal what is dropped whenever it can
        o.heal_steps = calib && !no_recon && (o.drop_layers > 0 || drop_list) && ffn_keep >= 1.0 ? 300 : 0;
    if (dopt.steps > 0 && !calib) {
        cli_error("recompile-decoder", "--distill-steps needs --calibration FILE (the student learns the parent's outputs on it)");
        return 2;
    }
    if (dopt.steps > 0 && vocab_general >= 0) {
        cli_error("recompile-decoder", "--distill-steps does not combine with --vocab-general (it needs the parent's vocabulary)");
        return 2;
    }
    if (dopt.steps > 0 && dopt.seq > dopt.batch_tokens) {
        cli_error("recompile-decoder", "--distill-seq must not exceed --distill-tokens");
        return 2;
    }
    if (o.heal_steps > 0 && !calib) {
        cli_error("recompile-decoder", "--heal-steps needs --calibration FILE (it trains on the parent's activations over it)");
        return 2;
    }
    if (n_drops && o.drop_layers) {
        cli_error("recompile-decoder", "give --drop-layers N or --drop LIST, not both");
        return 2;
    }
    o.drop_list = drops, o.n_drop_list = n_drops;
    o.choice_whole_passes = choice_whole;
    struct stat sb;
    if (stat(out, &sb) == 0) {
        cli_error("recompile-decoder", "%s exists: give a new --out", out);
        return 2;
    }
    static const int embd_types[] = {-1, QB_Q8_0, QB_Q4_1, QB_Q4_0};
    o.embd_type = embd_types[embd_i];
    o.heal_type = embd_types[heal_i];
    o.layer_type = embd_types[layer_i];
    o.heal_lr = (float)heal_lr;
    o.ffn_keep = ffn_keep;
    o.vocab_general = vocab_general;
    o.vocab_min_count = (uint64_t)min_count;
    o.verbose = 1;
    o.reconstruct = !no_recon;
    o.compensate = !no_comp;
    char plan_buf[4096];
    if (!plan_out) {
        snprintf(plan_buf, sizeof plan_buf, "%s.plan.json", out);
        plan_out = plan_buf;
    }
    seslm_llm *m = NULL;
    if (seslm_llm_load(&m, model) != SESLM_OK) {
        cli_error("recompile-decoder", "cannot load %s: %s", model, seslm_last_error());
        return 1;
    }
    char sha[65];
    snprintf(sha, sizeof sha, "%s", seslm_llm_sha256(m));
    seslm_llm_free(m);
    seslm_telemetry_dump *d = NULL;
    char read_from[4200];
    if (seslm_profile_read_telemetry(telemetry, sha, &d, read_from, sizeof read_from) != SESLM_OK) {
        cli_error("recompile-decoder", "telemetry %s: %s", telemetry, seslm_last_error());
        return 1;
    }
    char **lines = NULL;
    int n_lines = 0;
    if (calib && seslm_lines_read(calib, calib_lines, &lines, &n_lines) != SESLM_OK) {
        cli_error("recompile-decoder", "cannot read %s: %s", calib, seslm_last_error());
        seslm_telemetry_dump_free(d);
        return 1;
    }
    o.calib = (const char *const *)lines, o.n_calib = n_lines;
    char **plines = NULL;
    int n_plines = 0;
    if (distill_prompts && seslm_lines_read(distill_prompts, 1000000, &plines, &n_plines) != SESLM_OK) {
        cli_error("recompile-decoder", "cannot read %s: %s", distill_prompts, seslm_last_error());
        seslm_telemetry_dump_free(d);
        seslm_lines_free(lines, n_lines);
        return 1;
    }
    if (o.drop_layers > 0 && choice_prompts > 0 && n_plines > 0) // the layer choice answers the first few
        o.prompts = (const char *const *)plines, o.n_prompts = n_plines < choice_prompts ? n_plines : choice_prompts;
    o.answers_cache = answers_cache;
    seslm_llm_prune_summary s;
    seslm_status st = seslm_llm_prune(model, &d->v, &o, out, plan_out, &s);
    seslm_telemetry_dump_free(d);
    seslm_llm_distill_result dr;
    memset(&dr, 0, sizeof dr);
    if (!st && dopt.steps > 0) {
        dopt.lr = (float)distill_lr, dopt.ce_weight = (float)distill_ce, dopt.text_share = (float)distill_share;
        dopt.max_seconds = distill_minutes * 60.0;
        dopt.special = distill_special, dopt.answer_tokens = distill_answer; // -1: by whether there are prompts
        dopt.prompts = (const char *const *)plines, dopt.n_prompts = n_plines;
        dopt.answers_cache = answers_cache;
        dopt.verbose = 1;
        st = seslm_llm_distill(model, out, (const char *const *)lines, n_lines, &dopt, out, &dr);
        if (st) { // the student as pruned stays: a failed distillation never leaves a half-written file
            char why[512];
            snprintf(why, sizeof why, "%s", seslm_last_error());
            cli_error("recompile-decoder", "%s: distillation: %s (the pruned student was kept)", out, why);
            seslm_lines_free(lines, n_lines);
            seslm_lines_free(plines, n_plines);
            return st == SESLM_ERR_ARG ? 2 : 1;
        }
    }
    seslm_lines_free(lines, n_lines);
    seslm_lines_free(plines, n_plines);
    if (st) {
        cli_error("recompile-decoder", "%s: %s", out, seslm_last_error());
        return st == SESLM_ERR_ARG ? 2 : 1;
    }
    printf("{\"out\": ");
    cli_json_str(stdout, out);
    printf(", \"plan\": ");
    cli_json_str(stdout, plan_out);
    printf(", \"telemetry\": ");
    cli_json_str(stdout, read_from);
    printf(", \"layers\": [%d, %d], \"heads\": [%d, %d], \"kv_heads\": [%d, %d], \"ffn\": [%d, %d], \"vocab\": [%d, %d], "
           "\"healed\": [%d, %d], \"bytes\": [%zu, %zu], \"bytes_ratio\": %.4f",
           s.n_layer_in, s.n_layer_out, s.heads_in, s.heads_out, s.kv_in, s.kv_out, s.ffn_in, s.ffn_out, s.vocab_in,
           s.vocab_out, s.n_healed, s.n_heal_tried, s.bytes_in, s.bytes_out,
           s.bytes_in ? (double)s.bytes_out / (double)s.bytes_in : 0.0);
    if (dopt.steps > 0)
        printf(", \"distill\": {\"steps\": %d, \"train_tokens\": %lld, \"val_tokens\": %lld, \"held_out_loss_start\": %.6g, "
               "\"held_out_loss_trained\": %.6g, \"held_out_loss_stored\": %.6g",
               dr.steps, dr.train_tokens, dr.val_tokens, dr.val_start, dr.val_trained, dr.val_stored);
    if (dopt.steps > 0 && dr.val_text == dr.val_text && dr.val_prompts == dr.val_prompts) // both kinds held out
        printf(", \"held_out_text\": %.6g, \"held_out_prompts\": %.6g", dr.val_text, dr.val_prompts);
    if (dopt.steps > 0) printf(", \"seen_text\": %lld, \"seen_prompts\": %lld", dr.seen_text, dr.seen_prompts);
    if (dopt.steps > 0) printf(", \"answers_cached\": %lld, \"answers_computed\": %lld", dr.answers_cached, dr.answers_computed);
    if (dopt.steps > 0)
        printf(", \"budget_cut\": %s, \"train_seconds\": %.1f, \"kept\": %s}", dr.budget_cut ? "true" : "false", dr.train_seconds,
               dr.kept ? "true" : "false");
    printf("}\n");
    return 0;
}
