/* cmd_kb.c — `seslm kb build|query`: a knowledge base of passages and grounded retrieval
 * (runtime/assist/retrieve.h, docs/intent.md). */
#include "cli.h"
#include "retrieve.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int cli_embed_all(const char *cmd, const cli_opts *o, seslm_model **model_out, float **out);

static const char *HELP =
    "usage: seslm kb build --model DIR --passages FILE --out KB\n"
    "       seslm kb query --model DIR --kb KB [-k N] [--threshold S] [TEXT... | --input FILE]\n"
    "\n"
    "build   embeds every line of FILE (one passage per line; blank lines are skipped) and writes the\n"
    "        knowledge base directory KB: passages.txt + index.safetensors (crash-safe).\n"
    "query   exact top-k passages by cosine similarity, one JSON line per query:\n"
    "        {\"index\", \"answer\": true|false, \"reason\", \"best_score\", \"passages\": [{\"rank\", \"passage\",\n"
    "        \"score\", \"text\"}, ...]}. The answer contract: answer is false (and reason says why) when\n"
    "        the best passage's similarity is below --threshold; only passages at or above it are\n"
    "        returned as grounding.\n"
    "\n"
    "  --model DIR      model directory; default $SESLM_MODEL_DIR or models/all-MiniLM-L6-v2\n"
    "  -k N             passages per query, 1..100 (default 3)\n"
    "  --threshold S    minimum cosine similarity to answer, -1..1 (default 0.5)\n"
    "  --threads N      worker threads, 0 = all cores\n"
    "\n"
    "Exit status: 0 ok, 1 a file could not be read or written, 2 usage error or invalid input.\n";

static int do_build(int argc, char **argv) {
    const char *passages = NULL, *out = NULL;
    const char *input = NULL; // refused: build reads --passages
    const cli_arg extra[] = {
        {"--passages", CLI_ARG_STR, &passages, 0, 0},
        {"--out", CLI_ARG_STR, &out, 0, 0},
        {"--input", CLI_ARG_STR, &input, 0, 0},
        {NULL, 0, NULL, 0, 0},
    };
    cli_opts o;
    int rc = cli_parse_common_with(&o, "kb", HELP, extra, argc - 1, argv + 1, 0);
    if (rc < 0 && input) {
        cli_error("kb", "build reads --passages FILE");
        rc = 2;
    }
    if (rc >= 0) {
        cli_opts_free(&o);
        return rc;
    }
    if (!passages || !out || o.texts.n) {
        cli_error("kb", "build needs --passages FILE and --out KB (and no TEXT arguments)");
        cli_opts_free(&o);
        return 2;
    }
    cli_texts all = {0};
    if (!cli_texts_read_file(&all, passages)) {
        cli_opts_free(&o);
        return 1;
    }
    for (int i = 0; i < all.n; i++) // blank lines are not passages
        if (all.lens[i] > 0 && strspn(all.texts[i], " \t") < all.lens[i]) {
            if (memchr(all.texts[i], 0, all.lens[i])) {
                cli_error("kb", "%s line %d: contains a NUL byte", passages, i + 1);
                rc = 2;
                break;
            }
            if (!cli_texts_add(&o.texts, all.texts[i], all.lens[i])) rc = 1;
        }
    cli_texts_free(&all);
    if (rc < 0 && o.texts.n == 0) {
        cli_error("kb", "%s has no passages", passages);
        rc = 2;
    }
    seslm_model *m = NULL;
    float *emb = NULL;
    if (rc < 0) {
        rc = cli_embed_all("kb", &o, &m, &emb);
        if (rc && strstr(seslm_last_error(), "UTF-8")) rc = 2;
    }
    if (rc == 0) {
        seslm_kb *kb = NULL;
        const int D = seslm_model_get_config(m)->hidden;
        if (seslm_kb_new(&kb, (const char *const *)o.texts.texts, o.texts.n, emb, D, seslm_model_weights_sha256(m)) != SESLM_OK) {
            cli_error("kb", "%s", seslm_last_error());
            rc = 2;
        } else if (seslm_kb_save(kb, out) != SESLM_OK) {
            cli_error("kb", "%s", seslm_last_error());
            rc = 1;
        } else {
            printf("{\"kb\":");
            cli_json_str(stdout, out);
            printf(",\"passages\":%d,\"dim\":%d}\n", o.texts.n, D);
        }
        seslm_kb_free(kb);
    }
    free(emb);
    seslm_model_free(m);
    cli_opts_free(&o);
    return rc;
}

static int do_query(int argc, char **argv) {
    const char *kbdir = NULL;
    int topk = 3;
    double threshold = 0.5;
    const cli_arg extra[] = {
        {"--kb", CLI_ARG_STR, &kbdir, 0, 0},
        {"-k", CLI_ARG_INT, &topk, 1, 100},
        {"--threshold", CLI_ARG_NUM, &threshold, -1, 1},
        {NULL, 0, NULL, 0, 0},
    };
    cli_opts o;
    int rc = cli_parse_common_with(&o, "kb", HELP, extra, argc - 1, argv + 1, 1);
    if (rc >= 0) {
        cli_opts_free(&o);
        return rc;
    }
    if (!kbdir) {
        cli_error("kb", "query needs --kb KB");
        cli_opts_free(&o);
        return 2;
    }
    seslm_kb *kb = NULL;
    if (seslm_kb_load(&kb, kbdir) != SESLM_OK) {
        cli_error("kb", "%s", seslm_last_error());
        cli_opts_free(&o);
        return 1;
    }
    seslm_model *m = NULL;
    float *q = NULL;
    rc = cli_embed_all("kb", &o, &m, &q);
    if (rc && strstr(seslm_last_error(), "UTF-8")) rc = 2; // invalid input, not a failed file
    if (rc == 0 && seslm_model_get_config(m)->hidden != seslm_kb_dim(kb)) {
        cli_error("kb", "%s holds %d-d embeddings, the model gives %d-d", kbdir, seslm_kb_dim(kb), seslm_model_get_config(m)->hidden);
        rc = 2;
    }
    if (rc == 0 && seslm_kb_model_sha256(kb)[0] && strcmp(seslm_kb_model_sha256(kb), seslm_model_weights_sha256(m)) != 0)
        fprintf(stderr, "seslm kb: warning: %s was built with another model (weights %.12s)\n", kbdir, seslm_kb_model_sha256(kb));
    seslm_kb_hit hits[100];
    for (int i = 0; rc == 0 && i < o.texts.n; i++) {
        int n = seslm_kb_search(kb, q + (size_t)i * seslm_kb_dim(kb), topk, hits);
        const int answer = n > 0 && hits[0].score >= threshold;
        printf("{\"index\":%d,\"answer\":%s,\"best_score\":%.6f,\"threshold\":%.6g,\"reason\":", i, answer ? "true" : "false",
               n ? (double)hits[0].score : -1.0, threshold);
        int above = 0;
        while (above < n && hits[above].score >= threshold) above++;
        char why[256];
        if (answer) snprintf(why, sizeof why, "grounded in %d passage(s) at or above the threshold", above);
        else snprintf(why, sizeof why, "no passage is similar enough: the best scores %.3f, below the threshold %.3f",
                      n ? (double)hits[0].score : -1.0, threshold);
        cli_json_str(stdout, why);
        printf(",\"passages\":[");
        int shown = 0;
        for (int j = 0; answer && j < n && hits[j].score >= threshold; j++, shown++) {
            printf(shown ? ",{\"rank\":%d,\"passage\":%d,\"score\":%.6f,\"text\":" : "{\"rank\":%d,\"passage\":%d,\"score\":%.6f,\"text\":",
                   j + 1, hits[j].index, (double)hits[j].score);
            cli_json_str(stdout, seslm_kb_passage(kb, hits[j].index));
            putchar('}');
        }
        printf("]}\n");
    }
    if (rc == 0 && fflush(stdout) != 0) rc = 1;
    free(q);
    seslm_model_free(m);
    seslm_kb_free(kb);
    cli_opts_free(&o);
    return rc;
}

int cmd_kb(int argc, char **argv) {
    if (argc < 2) {
        fputs(HELP, stderr);
        return 2;
    }
    if (cli_is_help(argv[1])) {
        fputs(HELP, stdout);
        return 0;
    }
    if (strcmp(argv[1], "build") == 0) return do_build(argc, argv);
    if (strcmp(argv[1], "query") == 0) return do_query(argc, argv);
    cli_error("kb", "unknown subcommand '%s' (build or query)", argv[1]);
    return 2;
}
