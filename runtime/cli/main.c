/* main.c — `seslm <command> [options]`: dispatch to the subcommands. */
#include "cli.h"

#include <string.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *what;
} commands[] = {
    {"embed", cmd_embed, "sentence embeddings, one JSON line per input"},
    {"similarity", cmd_similarity, "embed texts and print their cosine-similarity matrix"},
    {"tokenize", cmd_tokenize, "WordPiece token ids, one JSON line per input"},
    {"info", cmd_info, "architecture, parameter counts and bytes per component"},
    {"serve", cmd_serve, "HTTP embedding server with batching, metrics and hot reload"},
    {"record", cmd_record, "run a corpus with telemetry on, writing HDF5 telemetry dumps"},
    {"inspect", cmd_inspect, "validate telemetry dumps and summarise each as JSON"},
    {"ingest", cmd_ingest, "merge telemetry dumps into one, skipping and reporting bad ones"},
    {"drift", cmd_drift, "compare current telemetry with a reference: exit 1 on drift"},
    {"plan", cmd_plan, "profile telemetry, score heads / neurons / layers, write pruning plans"},
    {"recompile", cmd_recompile, "apply a pruning plan to the weights, writing the smaller student model"},
    {"intent", cmd_intent, "intent head on the embeddings: train, predict, learn online"},
    {"kb", cmd_kb, "knowledge base of passages: build, query with a grounded-answer threshold"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: seslm <command> [options]   (seslm <command> --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].what);
    fprintf(f, "\nThe model directory defaults to $SESLM_MODEL_DIR, else models/all-MiniLM-L6-v2.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (cli_is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "seslm: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
