/* cmd_generate.c — `seslm generate` (one completion, streamed) and `seslm chat` (a conversation on
 * standard input) with the GGUF decoder (runtime/decoder). */
#include "cli.h"
#include "decoder.h"
#include "telemetry_hdf5.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_STOP 16

static const char *GEN_HELP =
    "usage: seslm generate [--model FILE] [--prompt TEXT | --input FILE] [--chat | --special] [--max-tokens N]\n"
    "                      [--temperature T] [--top-p P] [--seed S] [--stop STR]... [--threads N]\n"
    "                      [--ctx N] [--backend cpu|cpu-ref] [--stats] [--telemetry-dir DIR [--node ID]]\n"
    "\n"
    "Generates text with a Llama-family GGUF decoder (SmolLM2-135M-Instruct: data/fetch_decoder.sh) and\n"
    "streams it to standard output as it is produced.\n"
    "\n"
    "  --model FILE       GGUF file; default $SESLM_DECODER_MODEL or models/SmolLM2-135M-Instruct.Q4_1.gguf\n"
    "  --prompt TEXT      the prompt (UTF-8)\n"
    "  --input FILE       read the prompt from FILE (\"-\" = standard input)\n"
    "  --chat             wrap the prompt as one user message in the model's chat template\n"
    "  --special          the prompt is already formatted: its control tokens (<|im_start|>, ...) are read as\n"
    "                     such, not as text (a grounded prompt as the node sends it, say)\n"
    "  --max-tokens N     at most N new tokens (default 128)\n"
    "  --temperature T    0 = greedy (default 0)\n"
    "  --top-p P          nucleus sampling mass in (0, 1] (default 1)\n"
    "  --seed S           random seed for sampling (default 0)\n"
    "  --stop STR         stop before STR (up to 16 times)\n"
    "  --threads N        worker threads, 0 = all cores (default 0)\n"
    "  --ctx N            context length in tokens (default 2048)\n"
    "  --backend B        cpu (fast kernels, default) or cpu-ref (plain-C reference kernels)\n"
    "  --stats            print token counts and speeds as JSON to standard error\n"
    "  --telemetry-dir D  record the run's telemetry (per layer: head output norms and attention entropy,\n"
    "                     SwiGLU neuron activity, input channel energies; tokens; latency) and write it as\n"
    "                     one HDF5 dump into D (created if missing; docs/telemetry.md); its path is printed\n"
    "                     on standard error\n"
    "  --node ID          node id of that dump, [A-Za-z0-9._-] (default \"generate\")\n"
    "\n"
    "Exit status: 0 ok, 1 bad model file or input (missing, corrupt, invalid UTF-8, too long) or the dump\n"
    "could not be written, 2 usage.\n";

static const char *CHAT_HELP =
    "usage: seslm chat [--model FILE] [--system TEXT] [--max-tokens N] [--temperature T] [--top-p P]\n"
    "                  [--seed S] [--threads N] [--ctx N]\n"
    "\n"
    "A conversation with the decoder: each line of standard input is a user message; the reply is\n"
    "streamed to standard output, followed by an empty line. The conversation stays in the KV cache.\n"
    "\n"
    "  --model FILE       GGUF file (as for seslm generate)\n"
    "  --system TEXT      system message (default: the chat template's own)\n"
    "  --max-tokens N     at most N tokens per reply (default 256)\n"
    "  --temperature T, --top-p P, --seed S, --threads N, --ctx N   as for seslm generate\n"
    "\n"
    "Exit status: 0 ok (end of input), 1 bad model file or input, 2 usage.\n";

typedef struct {
    const char *model, *prompt, *input, *system, *backend, *telemetry_dir, *node;
    int chat, special, max_tokens, threads, ctx, stats, seed_set;
    float temperature, top_p;
    uint64_t seed;
    const char *stop[MAX_STOP];
    int n_stop;
} gen_args;

/* Returns -1 to go on, else the exit code. */
static int parse_args(gen_args *a, const char *cmd, const char *help, int is_chat, int argc, char **argv) {
    memset(a, 0, sizeof *a);
    a->model = getenv("SESLM_DECODER_MODEL");
    if (!a->model || !*a->model) a->model = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    a->max_tokens = is_chat ? 256 : 128;
    a->top_p = 1.0f;
    a->ctx = 2048;
    a->backend = "cpu";
    int backend_i = 0, seed = 0;
    double temperature = 0, top_p = 1;
    cli_choice backend = {&backend_i, "cpu|cpu-ref"};
    cli_list stop = {a->stop, 0, MAX_STOP};
    const cli_arg common[] = { // both commands
        {"--model", CLI_ARG_STR, &a->model, 0, 0},
        {"--backend", CLI_ARG_CHOICE, &backend, 0, 0},
        {"--max-tokens", CLI_ARG_INT, &a->max_tokens, 0, 1 << 20},
        {"--threads", CLI_ARG_INT, &a->threads, 0, 1024},
        {"--ctx", CLI_ARG_INT, &a->ctx, 16, 1 << 20},
        {"--seed", CLI_ARG_INT, &seed, 0, 2147483647},
        {"--temperature", CLI_ARG_NUM, &temperature, 0, 100},
        {"--top-p", CLI_ARG_NUM, &top_p, 1e-6, 1},
    };
    const cli_arg gen_only[] = {
        {"--prompt", CLI_ARG_STR, &a->prompt, 0, 0},
        {"--input", CLI_ARG_STR, &a->input, 0, 0},
        {"--chat", CLI_ARG_FLAG, &a->chat, 0, 0},
        {"--special", CLI_ARG_FLAG, &a->special, 0, 0},
        {"--stats", CLI_ARG_FLAG, &a->stats, 0, 0},
        {"--stop", CLI_ARG_LIST, &stop, 0, 0},
        {"--telemetry-dir", CLI_ARG_STR, &a->telemetry_dir, 0, 0},
        {"--node", CLI_ARG_STR, &a->node, 0, 0},
    };
    const cli_arg chat_only[] = {{"--system", CLI_ARG_STR, &a->system, 0, 0}};
    enum { N_COMMON = sizeof common / sizeof common[0], N_GEN = sizeof gen_only / sizeof gen_only[0] };
    cli_arg args[N_COMMON + N_GEN + 1];
    memcpy(args, common, sizeof common);
    int n = N_COMMON;
    if (is_chat) args[n++] = chat_only[0];
    else
        for (int k = 0; k < N_GEN; k++) args[n++] = gen_only[k];
    args[n] = (cli_arg){NULL, 0, NULL, 0, 0};
    int prc = cli_parse_args(cmd, help, args, argc, argv, NULL);
    if (prc >= 0) return prc;
    a->n_stop = stop.n;
    for (int k = 0; k < a->n_stop; k++)
        if (!*a->stop[k]) {
            cli_error(cmd, "--stop: at most %d non-empty stop strings", MAX_STOP);
            return 2;
        }
    a->backend = backend_i ? "cpu-ref" : "cpu";
    a->seed = (uint64_t)seed;
    a->temperature = (float)temperature, a->top_p = (float)top_p;
    if (a->chat && a->special) {
        cli_error(cmd, "--chat formats the prompt, --special says it is formatted: give one of them");
        return 2;
    }
    if (!is_chat && !!a->prompt == !!a->input) {
        cli_error(cmd, "give exactly one of --prompt TEXT or --input FILE");
        return 2;
    }
    if (a->node && !a->telemetry_dir) {
        cli_error(cmd, "--node names the dump of --telemetry-dir: give both");
        return 2;
    }
    char name[256];
    if (a->node && seslm_telemetry_dump_name(name, sizeof name, a->node, 0, 0) != SESLM_OK) {
        cli_error(cmd, "--node: %s", seslm_last_error());
        return 2;
    }
    seslm_llm_set_threads(a->threads); // 0: all cores
    return -1;
}

static int stream_out(void *user, const char *text, size_t len) {
    (void)user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0;
}

static int load(const char *cmd, const gen_args *a, seslm_llm **m, seslm_llm_ctx **c) {
    if (seslm_llm_load(m, a->model) != SESLM_OK) {
        cli_error(cmd, "%s", seslm_last_error());
        return 1;
    }
    int n_ctx = a->ctx < seslm_llm_cfg(*m)->n_ctx_train ? a->ctx : seslm_llm_cfg(*m)->n_ctx_train;
    if (seslm_llm_ctx_new(c, *m, n_ctx, strcmp(a->backend, "cpu-ref") == 0) != SESLM_OK) {
        cli_error(cmd, "%s", seslm_last_error());
        seslm_llm_free(*m);
        return 1;
    }
    return 0;
}

int cmd_generate(int argc, char **argv) {
    gen_args a;
    int rc = parse_args(&a, "generate", GEN_HELP, 0, argc, argv);
    if (rc >= 0) return rc;
    char *prompt = NULL;
    size_t plen = 0;
    if (a.input) {
        seslm_status st;
        if (strcmp(a.input, "-") == 0) {
            size_t cap = 0;
            st = SESLM_OK;
            for (;;) {
                if (plen + 4096 + 1 > cap) {
                    cap = (plen + 4096 + 1) * 2;
                    char *p = realloc(prompt, cap);
                    if (!p) {
                        st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
                        break;
                    }
                    prompt = p;
                }
                size_t got = fread(prompt + plen, 1, 4096, stdin);
                plen += got;
                if (got == 0) break;
            }
            if (prompt) prompt[plen] = 0;
        } else {
            st = util_read_file(a.input, &prompt, &plen, (size_t)64 << 20, NULL);
        }
        if (st != SESLM_OK) {
            cli_error("generate", "%s", seslm_last_error());
            free(prompt);
            return 1;
        }
    } else {
        prompt = strdup(a.prompt);
        plen = strlen(a.prompt);
    }
    seslm_llm *m = NULL;
    seslm_llm_ctx *c = NULL;
    if (load("generate", &a, &m, &c)) {
        free(prompt);
        return 1;
    }
    seslm_telemetry *tel = NULL;
    if (a.telemetry_dir) {
        struct stat sb;
        int bad = 0;
        if (stat(a.telemetry_dir, &sb) != 0) {
            if (errno != ENOENT || mkdir(a.telemetry_dir, 0755) != 0) {
                cli_error("generate", "cannot create the telemetry directory %s: %s", a.telemetry_dir, strerror(errno));
                bad = 1;
            }
        } else if (!S_ISDIR(sb.st_mode)) {
            cli_error("generate", "--telemetry-dir %s is not a directory", a.telemetry_dir);
            bad = 1;
        }
        if (!bad && (seslm_llm_telemetry_new(&tel, m, a.ctx, NULL) != SESLM_OK ||
                     seslm_llm_ctx_set_telemetry(c, tel) != SESLM_OK)) {
            cli_error("generate", "telemetry: %s", seslm_last_error());
            bad = 1;
        }
        if (bad) {
            seslm_telemetry_free(tel);
            free(prompt);
            seslm_llm_ctx_free(c);
            seslm_llm_free(m);
            return 1;
        }
        seslm_telemetry_count_request(tel);
    }
    if (a.chat) {
        seslm_chat_msg msg = {"user", prompt};
        char *p = seslm_chat_format(m, &msg, 1, 1);
        free(prompt);
        prompt = p;
        plen = p ? strlen(p) : 0;
    }
    seslm_gen_opts go = {.max_tokens = a.max_tokens,
                         .sampling = {a.temperature, a.top_p, a.seed},
                         .stop = a.stop,
                         .n_stop = a.n_stop,
                         .parse_special = a.chat || a.special,
                         .on_text = stream_out};
    seslm_gen_result r;
    rc = 0;
    if (!prompt) {
        cli_error("generate", "out of memory");
        rc = 1;
    } else if (seslm_generate(c, prompt, plen, &go, &r) != SESLM_OK) {
        cli_error("generate", "%s", seslm_last_error());
        rc = 1;
    } else {
        fputc('\n', stdout);
        if (a.stats)
            fprintf(stderr,
                    "{\"prompt_tokens\":%d,\"generated_tokens\":%d,\"finish\":\"%s\",\"prompt_ms\":%.2f,"
                    "\"gen_ms\":%.2f,\"prompt_cpu_ms\":%.2f,\"gen_cpu_ms\":%.2f,\"prompt_tok_per_s\":%.2f,"
                    "\"gen_tok_per_s\":%.2f}\n",
                    r.n_prompt, r.n_gen, r.finish, r.prompt_ms, r.gen_ms, r.prompt_cpu_ms, r.gen_cpu_ms,
                    r.prompt_ms > 0 ? r.n_prompt * 1e3 / r.prompt_ms : 0.0,
                    r.gen_ms > 0 && r.n_gen > 1 ? (r.n_gen - 1) * 1e3 / r.gen_ms : 0.0);
        seslm_gen_result_free(&r);
    }
    if (tel && rc == 0) { // the window as one dump (written to a temporary name, synced, then renamed)
        seslm_telemetry_view v;
        seslm_telemetry_snapshot(tel, &v);
        const char *base = strrchr(a.model, '/');
        seslm_dump_meta meta = {.node_id = a.node ? a.node : "generate", .model_id = base ? base + 1 : a.model, .seq = 1};
        char path[4096];
        if (seslm_telemetry_dump_write(&v, &meta, a.telemetry_dir, path, sizeof path) != SESLM_OK) {
            cli_error("generate", "telemetry dump: %s", seslm_last_error());
            rc = 1;
        } else {
            fprintf(stderr, "generate: telemetry dump %s\n", path);
        }
    }
    seslm_telemetry_free(tel);
    free(prompt);
    seslm_llm_ctx_free(c);
    seslm_llm_free(m);
    return rc;
}

int cmd_chat(int argc, char **argv) {
    gen_args a;
    int rc = parse_args(&a, "chat", CHAT_HELP, 1, argc, argv);
    if (rc >= 0) return rc;
    seslm_llm *m = NULL;
    seslm_llm_ctx *c = NULL;
    if (load("chat", &a, &m, &c)) return 1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int turn = 0;
    rc = 0;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (n == 0) continue;
        // first turn: the whole template; later turns: close the previous reply and add the new message
        seslm_chat_msg msgs[2];
        int k = 0;
        if (turn == 0 && a.system) msgs[k++] = (seslm_chat_msg){"system", a.system};
        msgs[k++] = (seslm_chat_msg){"user", line};
        char *p = NULL;
        if (turn == 0) {
            p = seslm_chat_format(m, msgs, k, 1);
        } else {
            size_t L = strlen(line) + 64;
            p = malloc(L);
            if (p) snprintf(p, L, "<|im_end|>\n<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n", line);
        }
        if (!p) {
            cli_error("chat", "out of memory");
            rc = 1;
            break;
        }
        seslm_gen_opts go = {.max_tokens = a.max_tokens,
                             .sampling = {a.temperature, a.top_p, a.seed + (uint64_t)turn},
                             .parse_special = 1,
                             .on_text = stream_out};
        seslm_gen_result r;
        seslm_status st = seslm_generate(c, p, strlen(p), &go, &r);
        free(p);
        if (st == SESLM_ERR_UTF8) {
            cli_error("chat", "message %d: %s", turn + 1, seslm_last_error());
            rc = 1;
            continue;
        }
        if (st != SESLM_OK) {
            cli_error("chat", "%s", seslm_last_error());
            rc = 1;
            break;
        }
        fputs("\n\n", stdout);
        fflush(stdout);
        seslm_gen_result_free(&r);
        turn++;
    }
    free(line);
    seslm_llm_ctx_free(c);
    seslm_llm_free(m);
    return rc;
}
