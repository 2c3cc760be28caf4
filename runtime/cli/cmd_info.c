/* cmd_info.c — `seslm info`: architecture, parameter count and bytes per component. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char *HELP =
    "usage: seslm info [--model DIR] [--json]\n"
    "\n"
    "Loads the model (checking every tensor against config.json) and prints its architecture: hidden\n"
    "size, layers, per-layer heads and FFN width, vocabulary, max sequence length, pooling, parameter\n"
    "count and bytes per component (embeddings, attention and FFN of each layer), and the SHA-256 of\n"
    "model.safetensors. --json prints the same as one JSON object.\n"
    "\n"
    "Exit status: 0 ok, 1 the model could not be loaded, 2 usage error.\n";

int cmd_info(int argc, char **argv) {
    const char *dir = cli_default_model_dir();
    int json = 0;
    const cli_arg args[] = {
        {"--model", CLI_ARG_STR, &dir, 0, 0},
        {"--json", CLI_ARG_FLAG, &json, 0, 0},
        {NULL, 0, NULL, 0, 0},
    };
    int rc = cli_parse_args("info", HELP, args, argc, argv, NULL);
    if (rc >= 0) return rc;
    seslm_model *m = NULL;
    if (seslm_model_load(&m, dir) != SESLM_OK) {
        cli_error("info", "%s", seslm_last_error());
        return 1;
    }
    const seslm_model_config *c = seslm_model_get_config(m);
    int ng = seslm_model_param_groups(m, NULL, 0);
    seslm_param_group *g = calloc((size_t)ng, sizeof *g);
    if (!g) {
        seslm_model_free(m);
        return 1;
    }
    seslm_model_param_groups(m, g, ng);
    int64_t total = 0, bytes = 0;
    for (int i = 0; i < ng; i++) {
        total += g[i].params;
        bytes += g[i].bytes;
    }
    const char *sha = seslm_model_weights_sha256(m);
    if (json) {
        printf("{\"model_dir\":\"%s\",\"hidden\":%d,\"layers\":%d,\"head_dim\":%d,\"vocab_size\":%d,"
               "\"max_position\":%d,\"max_seq_len\":%d,\"pooling\":\"%s\",\"normalize\":%s,\"params\":%lld,"
               "\"bytes\":%lld,\"weights_sha256\":\"%s\",\"per_layer\":[",
               dir, c->hidden, c->n_layers, c->head_dim, c->vocab_size, c->max_position, c->max_seq_len,
               seslm_pooling_name(c->pooling), c->normalize ? "true" : "false", (long long)total, (long long)bytes,
               sha);
        for (int l = 0; l < c->n_layers; l++)
            printf("%s{\"heads\":%d,\"ffn_dim\":%d}", l ? "," : "", c->layers[l].n_heads, c->layers[l].ffn_dim);
        printf("],\"groups\":[");
        for (int i = 0; i < ng; i++)
            printf("%s{\"name\":\"%s\",\"params\":%lld,\"bytes\":%lld}", i ? "," : "", g[i].name,
                   (long long)g[i].params, (long long)g[i].bytes);
        printf("]}\n");
    } else {
        printf("model          %s\n", dir);
        printf("weights sha256 %s\n", sha);
        printf("hidden %d, layers %d, head dim %d, vocab %d, positions %d, max seq len %d\n", c->hidden,
               c->n_layers, c->head_dim, c->vocab_size, c->max_position, c->max_seq_len);
        printf("pooling %s%s\n\n", seslm_pooling_name(c->pooling), c->normalize ? " + L2 normalise" : "");
        printf("%-20s %6s %8s %12s %12s\n", "component", "heads", "ffn", "params", "bytes");
        for (int i = 0; i < ng; i++) {
            int l = -1;
            if (sscanf(g[i].name, "layer.%d", &l) == 1 && strstr(g[i].name, "attention"))
                printf("%-20s %6d %8s %12lld %12lld\n", g[i].name, c->layers[l].n_heads, "", (long long)g[i].params,
                       (long long)g[i].bytes);
            else if (l >= 0)
                printf("%-20s %6s %8d %12lld %12lld\n", g[i].name, "", c->layers[l].ffn_dim, (long long)g[i].params,
                       (long long)g[i].bytes);
            else
                printf("%-20s %6s %8s %12lld %12lld\n", g[i].name, "", "", (long long)g[i].params,
                       (long long)g[i].bytes);
        }
        printf("%-20s %6s %8s %12lld %12lld\n", "total", "", "", (long long)total, (long long)bytes);
    }
    free(g);
    seslm_model_free(m);
    return 0;
}
