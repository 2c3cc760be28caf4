/* cmd_distill_decoder.c — `seslm distill-decoder`: end-to-end distillation of a decoder student against its
 * parent on calibration text (pipeline/distill/llm_distill.c), e.g. to train a student of an earlier cycle further. */
#include "calibrate.h"
#include "cli.h"
#include "llm_distill.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *HELP =
    "usage: seslm distill-decoder --parent FILE --student FILE --calibration FILE --out FILE [--steps N]\n"
    "                             [--lr X] [--tokens N] [--seq N] [--ce-weight X] [--hidden-loss]\n"
    "                             [--special] [--answer-tokens N] [--prompts FILE [--prompt-lines N]]\n"
    "                             [--text-share X] [--max-minutes M] [--answers-cache FILE]\n"
    "                             [--calibration-lines N] [--seed N]\n"
    "\n"
    "Trains every layer of a GGUF decoder student (seslm recompile-decoder's, with the parent's vocabulary and\n"
    "width) on the calibration text: the loss mixes the KL divergence of its next-token distribution from its\n"
    "parent's and the cross-entropy of the text's next tokens (--ce-weight), back-propagated through the output\n"
    "matrix, RMSNorm, rotary grouped-query attention and SwiGLU; Adam, warm-up and cosine decay. The token table\n"
    "and output norm stay frozen. The pass runs on the weights as\n"
    "they will be stored (each matrix quantized to its type in the file, the F32 copy learning: quantization-\n"
    "aware). One document in 8 is held out: the weights with the lowest held-out cross-entropy per token (what\n"
    "held-out perplexity measures) are kept, and FILE is written (through FILE.tmp) only when they beat the\n"
    "student as given. Prints a JSON summary. docs/decoder.md.\n"
    "\n"
    "  --parent FILE         the parent GGUF (its final hidden states are the targets)\n"
    "  --student FILE        the student GGUF to train\n"
    "  --calibration FILE    text, one document per line (the served kind, not the held-out text)\n"
    "  --calibration-lines N use the first N lines (default 512)\n"
    "  --out FILE            where the trained student goes (may be --student)\n"
    "  --steps N             Adam steps (default 100)\n"
    "  --lr X                peak learning rate (default 5e-5)\n"
    "  --tokens N            tokens per step (default 1024)\n"
    "  --seq N               tokens per sequence at most (default 64; 512 with --prompts)\n"
    "  --ce-weight X         weight of the cross-entropy in the loss, the KL's is 1 - X (default 0.5)\n"
    "  --hidden-loss         the mean squared difference of the final hidden states instead (selected on it)\n"
    "  --special             calibration lines may hold special tokens (chat-formatted prompts as the node serves\n"
    "                        them, <|im_start|>...) and \\n for a newline; such lines get no start token\n"
    "  --answer-tokens N     append the parent's greedy continuation of each line, up to N tokens (to its end of\n"
    "                        turn): the student learns the parent's answers to the served prompts (default 0).\n"
    "                        With --special only lines that end by opening the assistant's turn are answered,\n"
    "                        each kept one sequence with its answer (its last --seq tokens: make --seq cover the\n"
    "                        prompts); other lines (text, <|endoftext|> first) are scored as they are\n"
    "  --prompts FILE        served chat prompts, one per line (\\n for newlines; bench/decoder/grounded_prompts.py\n"
    "                        writes grounded ones), distilled beside the calibration text with the parent's\n"
    "                        answers (--answer-tokens, default 48 here): each prompt one sequence with its answer,\n"
    "                        the text plain. A student trained on text alone loses the chat format and the\n"
    "                        copying from a context (bench/RESULTS.md 17)\n"
    "  --prompt-lines N      use the first N prompts (default all, at most 1,000,000)\n"
    "  --text-share X        with both prompts and plain text: each step takes about X of its tokens from the\n"
    "                        text and the rest from the prompts, and the held-out selection weights the two\n"
    "                        kinds' losses alike (0 < X < 1; default: sequences as they come, mostly prompts,\n"
    "                        which are ~10x longer than text lines)\n"
    "  --max-minutes M       a time budget for the steps (a nightly window): from the pace of the steps so far the\n"
    "                        schedule is shortened to the steps that fit, so it still decays and ends evaluated\n"
    "                        (\"budget_cut\" in the summary; default: none)\n"
    "  --answers-cache FILE  keep the parent's answers in FILE (created when missing; keyed by the parent's\n"
    "                        weights, the prompt and --answer-tokens): a later run reuses them instead of asking\n"
    "                        the parent again (~1 s a prompt on 2 cores)\n"
    "  --seed N              batch order (default 1)\n"
    "\n"
    "Exit status: 0 ok (written or, when training did not help, left alone: see \"kept\"), 1 bad model or text,\n"
    "2 usage.\n";

int cmd_distill_decoder(int argc, char **argv) {
    const char *CMD = "distill-decoder";
    const char *parent = NULL, *student = NULL, *calib = NULL, *out = NULL;
    int lines_max = 512, seed = 1;
    double lr = 5e-5, ce = 0.5, share = -1.0, minutes = 0.0;
    int hidden = 0, special = 0, answer = -1, prompt_lines = 1000000;
    const char *prompts = NULL, *cache = NULL;
    seslm_llm_distill_opts o;
    seslm_llm_distill_opts_default(&o);
    o.steps = 100;
    const cli_arg args[] = {
        {"--parent", CLI_ARG_STR, &parent, 0, 0},
        {"--student", CLI_ARG_STR, &student, 0, 0},
        {"--calibration", CLI_ARG_STR, &calib, 0, 0},
        {"--calibration-lines", CLI_ARG_INT, &lines_max, 1, 1 << 20},
        {"--out", CLI_ARG_STR, &out, 0, 0},
        {"--steps", CLI_ARG_INT, &o.steps, 1, 1 << 24},
        {"--lr", CLI_ARG_NUM, &lr, 1e-8, 1},
        {"--tokens", CLI_ARG_INT, &o.batch_tokens, 16, 1 << 20},
        {"--seq", CLI_ARG_INT, &o.seq, 2, 4096},
        {"--seed", CLI_ARG_INT, &seed, 0, 1 << 30},
        {"--ce-weight", CLI_ARG_NUM, &ce, 0, 1},
        {"--hidden-loss", CLI_ARG_FLAG, &hidden, 0, 0},
        {"--special", CLI_ARG_FLAG, &special, 0, 0},
        {"--answer-tokens", CLI_ARG_INT, &answer, 0, 4096},
        {"--prompts", CLI_ARG_STR, &prompts, 0, 0},
        {"--prompt-lines", CLI_ARG_INT, &prompt_lines, 1, 1000000},
        {"--text-share", CLI_ARG_NUM, &share, 0.001, 0.999},
        {"--max-minutes", CLI_ARG_NUM, &minutes, 1e-9, 1e6},
        {"--answers-cache", CLI_ARG_STR, &cache, 0, 0},
        {NULL, 0, NULL, 0, 0},
    };
    int prc = cli_parse_args(CMD, HELP, args, argc, argv, NULL);
    if (prc >= 0) return prc;
    if (!parent || !student || !calib || !out) {
        cli_error(CMD, "--parent, --student, --calibration and --out are required (see seslm distill-decoder --help)");
        return 2;
    }
    if (o.seq > o.batch_tokens) { // 0 (not given): chosen by seslm_llm_distill
        cli_error(CMD, "--seq must not exceed --tokens");
        return 2;
    }
    o.lr = (float)lr, o.seed = (uint64_t)seed, o.verbose = 1, o.ce_weight = (float)ce, o.hidden_loss = hidden;
    o.special = special, o.answer_tokens = answer, o.text_share = (float)share, o.max_seconds = minutes * 60.0;
    o.answers_cache = cache;
    char **lines = NULL;
    int n_lines = 0;
    if (seslm_lines_read(calib, lines_max, &lines, &n_lines) != SESLM_OK) {
        cli_error(CMD, "cannot read %s: %s", calib, seslm_last_error());
        return 1;
    }
    char **plines = NULL;
    int n_plines = 0;
    if (prompts && seslm_lines_read(prompts, prompt_lines, &plines, &n_plines) != SESLM_OK) {
        cli_error(CMD, "cannot read %s: %s", prompts, seslm_last_error());
        seslm_lines_free(lines, n_lines);
        return 1;
    }
    o.prompts = (const char *const *)plines, o.n_prompts = n_plines;
    seslm_llm_distill_result r;
    seslm_status st = seslm_llm_distill(parent, student, (const char *const *)lines, n_lines, &o, out, &r);
    seslm_lines_free(lines, n_lines);
    seslm_lines_free(plines, n_plines);
    if (st) {
        cli_error(CMD, "%s", seslm_last_error());
        return st == SESLM_ERR_ARG ? 2 : 1;
    }
    printf("{\"out\": ");
    cli_json_str(stdout, out);
    printf(", \"steps\": %d, \"train_tokens\": %lld, \"val_tokens\": %lld, \"held_out_loss_start\": %.6g, "
           "\"held_out_loss_trained\": %.6g, \"held_out_loss_stored\": %.6g",
           r.steps, r.train_tokens, r.val_tokens, r.val_start, r.val_trained, r.val_stored);
    // the trained weights' loss on each kind, when both were held out (JSON has no NaN)
    if (r.val_text == r.val_text && r.val_prompts == r.val_prompts)
        printf(", \"held_out_text\": %.6g, \"held_out_prompts\": %.6g", r.val_text, r.val_prompts);
    printf(", \"seen_text\": %lld, \"seen_prompts\": %lld", r.seen_text, r.seen_prompts);
    printf(", \"answers_cached\": %lld, \"answers_computed\": %lld", r.answers_cached, r.answers_computed);
    printf(", \"budget_cut\": %s, \"train_seconds\": %.1f", r.budget_cut ? "true" : "false", r.train_seconds);
    printf(", \"kept\": %s}\n", r.kept ? "true" : "false");
    return 0;
}
