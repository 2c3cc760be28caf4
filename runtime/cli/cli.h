/* cli.h — shared pieces of the seslm command-line tool. Each subcommand lives in its own cmd_*.c,
 * takes (argc, argv) after the subcommand name and returns the process exit code:
 * 0 success, 1 runtime failure (bad file, bad input), 2 usage error. */
#ifndef SESLM_CLI_H
#define SESLM_CLI_H

#include "seslm.h"

#include <stddef.h>
#include <stdio.h>

typedef struct {
    char **texts;
    size_t *lens;
    int n;
} cli_texts;

/* Collects inputs: positional TEXT arguments, or the lines of --input FILE ("-" = stdin). */
int cli_texts_read_file(cli_texts *t, const char *path);
int cli_texts_add(cli_texts *t, const char *s, size_t len);
void cli_texts_free(cli_texts *t);

/* Prints "seslm <cmd>: <msg>" and the library's last error to stderr. */
void cli_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
int cli_is_help(const char *arg);
int cli_parse_int(const char *cmd, const char *flag, const char *val, int lo, int hi, int *out);
void cli_print_json_floats(FILE *f, const float *v, int n);
const char *cli_default_model_dir(void);

/* Options shared by the model-running commands. */
typedef struct {
    const char *model_dir;
    const char *input;   // --input FILE
    const char *backend; // --backend cpu|cpu-ref
    int batch;           // --batch N
    int threads;         // --threads N
    const char *precision; // --precision fp32|bf16|int8 (NULL: the model's config)
    cli_texts texts;     // positional TEXT arguments, then --input lines
    const char *prompt_name; // --prompt-name NAME (config_sentence_transformers.json)
    const char *prompt;      // --prompt TEXT
    int feature_layers;      // cli_embed_all: 0 / 1 the embeddings, k > 1 the features of the last k layers
    int feature_layers_flag; // 1: feature_layers is the user's --feature-layers, so more than the model has is a
                             // usage error (exit 2); 0: it comes from a head file (exit 1)
} cli_opts;

/* Parses --model, --input, --batch, --threads, --backend, --prompt[-name] and TEXT...; prints `help` for --help.
 * Returns -1 to continue, else the exit code to return (0 after --help, 2 on a usage error, 1 on
 * an unreadable input file). Requires at least one input when need_text. */
int cli_parse_common(cli_opts *o, const char *cmd, const char *help, int argc, char **argv, int need_text);
/* The same with the command's own options too (extra, NULL-terminated, at most 24; matched before the common
 * ones, so an entry of extra may take a common option's name over). */
struct cli_arg_s;
int cli_parse_common_with(cli_opts *o, const char *cmd, const char *help, const struct cli_arg_s *extra, int argc,
                          char **argv, int need_text);
void cli_opts_free(cli_opts *o);
/* Names input i for messages: "input 2 (line 3 of FILE)", or "input 2" for TEXT arguments; the index
 * is the "index" of the output lines. */
void cli_input_name(const cli_opts *o, int i, char *buf, size_t cap);

/* An encoder as a grounded-answer embedding callback (seslm_ground_embed_fn): texts in batches of 32. */
typedef struct {
    seslm_encoder *e;
    int dim;
} cli_encoder;
int cli_encoder_embed(void *user, const char *const *texts, int n, float *out);

/* Writes s as a quoted JSON string to f: " and \\ escaped, control bytes (and DEL) as \\u00XX, other bytes
 * (UTF-8) as they are. The one JSON string writer of the commands (the server's is sb_json_str). */
void cli_json_str(FILE *f, const char *s);

/* The option parser of the commands (cli_args.c): one table entry per option. */
typedef enum {
    CLI_ARG_STR,  // dst: const char **, the next argument
    CLI_ARG_INT,  // dst: int *, an integer in [lo, hi]
    CLI_ARG_NUM,  // dst: double *, a number in [lo, hi]
    CLI_ARG_FLAG, // dst: int *, set to 1; takes no value
    CLI_ARG_LIST, // dst: cli_list *, a repeatable option: each value appended (at most cap)
    CLI_ARG_CHOICE, // dst: cli_choice *, one of its values: *index = its position ("int8|none": 0 or 1)
} cli_arg_kind;

typedef struct {
    const char **items; // caller's array of cap pointers (the values point into argv)
    int n, cap;
} cli_list;

typedef struct {
    int *index;         // where the position of the value given goes
    const char *values; // "a|b|c"
} cli_choice;

typedef struct cli_arg_s {
    const char *name; // "--port"; aliases as "--backend|--device" or "--top|-k"; NULL ends the table
    cli_arg_kind kind;
    void *dst;
    double lo, hi;
} cli_arg;

/* Parses argv[1..argc) against args: an option's value is the next argument (even one starting with '-');
 * an argument "--x" is an option (unknown when the table lacks it), "-x" one only when the table names it;
 * --help / -h prints help (returns 0); after "--" every argument is positional; positional arguments go to
 * pos (copied), or when pos is NULL to the table's CLI_ARG_LIST entry named "" (pointers into argv; more
 * than its cap: "too many arguments"), else each is a usage error. Returns -1 to go on, 2 after a usage error (message printed: "--x
 * needs a value", "--x must be an integer in LO..HI (got 'v')", "--x must be a number in [LO, HI] (got
 * 'v')", "--x must be one of a|b (got 'v')", "unknown option '--x' (see seslm CMD --help)", "unexpected argument 'a' (...)"), 1 out of memory. */
int cli_parse_args(const char *cmd, const char *help, const cli_arg *args, int argc, char **argv, cli_texts *pos);

int cmd_tokenize(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_similarity(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_record(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_ingest(int argc, char **argv);
int cmd_evolve(int argc, char **argv);
int cmd_drift(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_recompile(int argc, char **argv);
int cmd_distill(int argc, char **argv);
int cmd_adapt(int argc, char **argv);
int cmd_registry(int argc, char **argv);
int cmd_promote(int argc, char **argv);
int cmd_approve(int argc, char **argv);
int cmd_rollback(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_encrypt(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_intent(int argc, char **argv);
int cmd_kb(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_recompile_decoder(int argc, char **argv);
int cmd_distill_decoder(int argc, char **argv);
int cmd_validate_decoder(int argc, char **argv);
int cmd_export(int argc, char **argv);

#endif
