/* main.c — `seslm <command> [options]`: dispatch to the subcommands. */
#include "cli.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Batch commands alternate long serial steps (solves, file work) with threaded kernels; libgomp's
 * default spin-waiting then burns the other cores (measured: recompile with calibration 17.6 s ->
 * 4.8 s on 2 cores). libgomp reads OMP_WAIT_POLICY once, at load, so these commands re-execute
 * themselves with it set to passive unless the user chose a policy. Serving keeps the spin (latency). */
static void batch_wait_policy(char **argv) {
    if (getenv("OMP_WAIT_POLICY")) return;
    // a failed setenv (no memory) must not exec: the new process would find the variable unset and exec
    // again, for ever (found by tests/fault/run_faults.sh: malloc #1 failing)
    if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
    if (setenv("SESLM_OMP_PASSIVE_AUTO", "1", 1) != 0) return; // (so seslm evolve can give its stages the default back)
    execv("/proc/self/exe", argv); // returns only on failure: run on with the default policy
}

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
    {"adapt", cmd_adapt, "LoRA adapters on labelled feedback, merged, gated against the base"},
    {"distill", cmd_distill, "train a pruned FP32 student to mimic its parent on calibration text"},
    {"evolve", cmd_evolve, "the whole evolution cycle (ingest .. validate, select) as one nightly job"},
    {"registry", cmd_registry, "model registry: list, show, lineage, diff, register (content-addressed store)"},
    {"promote", cmd_promote, "point an alias (live) at a version, governed by policy; optionally reload a node"},
    {"export", cmd_export, "write a model (a student included) as ONNX with its real per-layer shapes"},
    {"approve", cmd_approve, "record an approval of a version for an alias (who, why)"},
    {"rollback", cmd_rollback, "swap live and previous in one transaction; optionally reload a node"},
    {"audit", cmd_audit, "verify the registry's hash-chained audit log, or print it"},
    {"encrypt", cmd_encrypt, "write a copy of a model with its weights encrypted (AES-256-GCM)"},
    {"validate", cmd_validate, "judge a candidate model against its parent: quality, speed, memory gates"},
    {"intent", cmd_intent, "intent head on the embeddings: train, predict, learn online"},
    {"kb", cmd_kb, "knowledge base of passages: build, query with a grounded-answer threshold"},
    {"generate", cmd_generate, "generate text with a GGUF decoder (SmolLM2), streamed"},
    {"chat", cmd_chat, "a conversation with the GGUF decoder on standard input"},
    {"perplexity", cmd_perplexity, "a GGUF decoder's held-out perplexity (and bits per byte) on text"},
    {"validate-decoder", cmd_validate_decoder, "the gates of a decoder student against its parent: perplexity, bytes, latency, grounded QA"},
    {"recompile-decoder", cmd_recompile_decoder, "prune a GGUF decoder from its telemetry: KV groups, FFN neurons, layers, vocabulary"},
    {"distill-decoder", cmd_distill_decoder, "train a decoder student end to end to match its parent on calibration text"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: seslm <command> [options]   (seslm <command> --help for details; seslm --version [--json])\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].what);
    fprintf(f, "\nThe model directory defaults to $SESLM_MODEL_DIR, else models/all-MiniLM-L6-v2.\n");
}

/* OpenSSL 3 initialises itself lazily, on the first hash; when an allocation fails inside that
 * initialisation it can leave a NULL lock behind and crash later (tests/fault found it: promote died in
 * EVP_MD_fetch). Initialising it first, where a failure is reported, keeps a failed malloc an error. */
static int crypto_init(void) {
    if (!OPENSSL_init_crypto(0, NULL)) return 0;
    EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
    EVP_CIPHER *c = md ? EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL) : NULL;
    const int ok = md && c;
    EVP_MD_free(md);
    EVP_CIPHER_free(c);
    return ok;
}

/* Defined only by the fault-injection shim (tests/fault/fault_shim.c, LD_PRELOAD): faults are injected
 * from here on, past the third-party initialisation above. NULL in every normal run. */
extern void seslm_fault_pause(void) __attribute__((weak));
extern void seslm_fault_rearm(void) __attribute__((weak));

int main(int argc, char **argv) {
    if (seslm_fault_pause) seslm_fault_pause();
    if (!crypto_init()) {
        fprintf(stderr, "seslm: cannot initialise OpenSSL (out of memory?)\n");
        return 1;
    }
    if (seslm_fault_rearm) seslm_fault_rearm();
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) { // provenance (version.c)
        if (argc > 2 && strcmp(argv[2], "--json") == 0) {
            printf("%s\n", seslm_build_info_json());
        } else {
            printf("seslm %s (commit %s)\ncompiler %s\ncpu features %s\ncuda %s\n", seslm_version(),
                   seslm_build_commit(), seslm_build_compiler(), seslm_build_cpu_features(),
                   seslm_built_with_cuda() ? "built in" : "not built");
        }
        return 0;
    }
    if (cli_is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    static const char *const batch[] = {"plan", "recompile", "distill", "adapt", "evolve"};
    for (size_t i = 0; i < sizeof batch / sizeof batch[0]; i++)
        if (strcmp(argv[1], batch[i]) == 0) batch_wait_policy(argv);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "seslm: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
