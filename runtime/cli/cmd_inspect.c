/* cmd_inspect.c — `seslm inspect`: validate telemetry dumps and summarise each as one JSON line. */
#include "cli.h"
#include "telemetry_hdf5.h"

#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *HELP =
    "usage: seslm inspect [--model DIR | --sha256 HEX] [--top N] FILE...\n"
    "\n"
    "Reads telemetry dumps (docs/telemetry.md), validating the schema version and the dtype and shape of\n"
    "every dataset, and prints one JSON line per file: its identity (node, model, window), counters,\n"
    "the most frequent tokens and token pairs, batch latency percentiles, per-layer means (attention\n"
    "entropy, max weight, head output norm, active FFN fraction), memory and reservoir size. A file that\n"
    "fails validation prints {\"path\": ..., \"ok\": false, \"error\": ...} and the error on stderr.\n"
    "\n"
    "  --model DIR   also require the dumps to be of this model's weights (and name the top tokens)\n"
    "  --sha256 HEX  also require the dumps to be of these weights (model.safetensors SHA-256)\n"
    "  --top N       tokens and pairs to list, 0..1000 (default 10)\n"
    "\n"
    "Exit status: 0 every file is a valid dump, 1 some file is not (or the model failed to load), 2 usage.\n";

static void json_num(double x) {
    if (isfinite(x)) printf("%.6g", x);
    else printf("null");
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

// Mean of sums[i] / denom as a JSON array (null where there is nothing to average).
static void json_means(const double *sums, int n, uint64_t denom) {
    putchar('[');
    for (int i = 0; i < n; i++) {
        if (i) putchar(',');
        if (denom) json_num(sums[i] / (double)denom);
        else printf("null");
    }
    putchar(']');
}

static void summarise(const char *path, const seslm_telemetry_dump *d, const seslm_tokenizer *tok, int top) {
    const seslm_telemetry_view *v = &d->v;
    printf("{\"path\":");
    cli_json_str(stdout, path);
    printf(",\"ok\":true,\"schema_version\":%d,\"node_id\":", d->schema_version);
    cli_json_str(stdout, d->meta.node_id);
    printf(",\"model_id\":");
    cli_json_str(stdout, d->meta.model_id);
    printf(",\"model_sha256\":\"%s\",\"dump_seq\":%llu,\"window_start_ns\":%lld,\"window_end_ns\":%lld,"
           "\"window_seconds\":",
           v->model_sha256, (unsigned long long)d->meta.seq, (long long)v->window_start_ns,
           (long long)v->window_end_ns);
    json_num((double)(v->window_end_ns - v->window_start_ns) * 1e-9);
    printf(",\"n_requests\":%llu,\"n_batches\":%llu,\"n_sequences\":%llu,\"n_tokens\":%llu,\"n_rejected\":%llu",
           (unsigned long long)v->n_requests, (unsigned long long)v->n_batches, (unsigned long long)v->n_sequences,
           (unsigned long long)v->n_tokens, (unsigned long long)d->meta.n_rejected);
    printf(",\"vocab_size\":%d,\"hidden\":%d,\"n_layers\":%d,\"max_seq_len\":%d,\"mean_seq_len\":", v->vocab_size,
           v->hidden, v->n_layers, v->max_seq_len);
    json_num(v->n_sequences ? (double)v->n_tokens / (double)v->n_sequences : NAN);

    // tokens: distinct count and the most frequent (partial selection over the counts)
    int distinct = 0;
    for (int i = 0; i < v->vocab_size; i++) distinct += v->token_counts[i] > 0;
    printf(",\"distinct_tokens\":%d,\"top_tokens\":[", distinct);
    int k = top < distinct ? top : distinct;
    int *picked = calloc((size_t)k + 1, sizeof *picked);
    for (int j = 0; picked && j < k; j++) {
        int best = -1;
        for (int i = 0; i < v->vocab_size; i++) {
            if (!v->token_counts[i]) continue;
            int used = 0;
            for (int q = 0; q < j && !used; q++) used = picked[q] == i;
            if (!used && (best < 0 || v->token_counts[i] > v->token_counts[best])) best = i;
        }
        picked[j] = best;
        printf("%s{\"id\":%d,", j ? "," : "", best);
        const char *s = tok ? seslm_tokenizer_token(tok, best) : NULL;
        if (s) {
            printf("\"token\":");
            cli_json_str(stdout, s);
            putchar(',');
        }
        printf("\"count\":%llu}", (unsigned long long)v->token_counts[best]);
    }
    free(picked);
    printf("],\"token_pairs\":{\"tracked\":%d,\"pairs_total\":%llu,\"cms_width\":%d,\"cms_depth\":%d,\"top\":[",
           v->n_pairs, (unsigned long long)v->pairs_total, v->cms_width, v->cms_depth);
    for (int i = 0; i < v->n_pairs && i < top; i++)
        printf("%s{\"first\":%u,\"second\":%u,\"count\":%llu}", i ? "," : "", v->pairs[i].first, v->pairs[i].second,
               (unsigned long long)v->pairs[i].count);

    // batches: latency percentiles over the logged batches
    printf("]},\"batches\":{\"records\":%d", v->n_batch_records);
    int64_t *lat = malloc(((size_t)v->n_batch_records + 1) * sizeof *lat);
    if (lat && v->n_batch_records > 0) {
        double sum = 0, bs = 0;
        for (int i = 0; i < v->n_batch_records; i++) {
            lat[i] = v->batches[i].latency_ns;
            sum += (double)lat[i];
            bs += v->batches[i].batch_size;
        }
        qsort(lat, (size_t)v->n_batch_records, sizeof *lat, cmp_i64);
        const int N = v->n_batch_records;
#define PCT(p) ((double)lat[(int)((p) * (N - 1) + 0.5)] * 1e-6)
        printf(",\"mean_batch_size\":");
        json_num(bs / N);
        printf(",\"latency_ms\":{\"mean\":");
        json_num(sum / N * 1e-6);
        printf(",\"p50\":");
        json_num(PCT(0.5));
        printf(",\"p90\":");
        json_num(PCT(0.9));
        printf(",\"p99\":");
        json_num(PCT(0.99));
        printf(",\"max\":");
        json_num((double)lat[N - 1] * 1e-6);
        putchar('}');
#undef PCT
    }
    free(lat);

    // layers: the documented means (sum / denominator)
    printf("},\"layers\":[");
    for (int l = 0; l < v->n_layers; l++) {
        const seslm_layer_telemetry *L = &v->layers[l];
        uint64_t pos = 0;
        for (int f = 0; f < L->ffn_dim; f++) pos += L->ffn_pos[f];
        printf("%s{\"n_heads\":%d,\"ffn_dim\":%d,\"exec_count\":%llu,\"exec_ms\":", l ? "," : "", L->n_heads,
               L->ffn_dim, (unsigned long long)L->exec_count);
        json_num((double)L->exec_ns * 1e-6);
        printf(",\"mean_head_entropy\":");
        json_means(L->head_entropy, L->n_heads, L->query_tokens);
        printf(",\"mean_head_max_weight\":");
        json_means(L->head_max_weight, L->n_heads, L->query_tokens);
        printf(",\"mean_head_out_norm\":");
        json_means(L->head_out_norm, L->n_heads, L->query_tokens);
        printf(",\"ffn_active_fraction\":");
        json_num(L->ffn_tokens && L->ffn_dim ? (double)pos / ((double)L->ffn_tokens * L->ffn_dim) : NAN);
        putchar('}');
    }
    printf("],\"memory\":{\"peak_rss_bytes\":%lld,\"peak_device_bytes\":%lld},\"reservoir\":{\"rows\":%d,"
           "\"seen\":%llu},\"intents\":%d,\"intent_counts\":{",
           (long long)v->peak_rss_bytes, (long long)v->peak_device_bytes, v->n_reservoir,
           (unsigned long long)v->reservoir_seen, v->n_intents);
    for (int i = 0; i < v->n_intents && v->intent_labels && v->intent_counts; i++) { // predictions per intent label
        if (i) putchar(',');
        cli_json_str(stdout, v->intent_labels[i] ? v->intent_labels[i] : "");
        printf(":%llu", (unsigned long long)v->intent_counts[i]);
    }
    printf("}}\n");
}

int cmd_inspect(int argc, char **argv) {
    const char *cmd = "inspect", *model_dir = NULL, *sha = NULL;
    int top = 10;
    const cli_arg args[] = {
        {"--model", CLI_ARG_STR, &model_dir, 0, 0},
        {"--sha256", CLI_ARG_STR, &sha, 0, 0},
        {"--top", CLI_ARG_INT, &top, 0, 1000},
        {NULL, 0, NULL, 0, 0},
    };
    cli_texts pos = {0};
    int prc = cli_parse_args(cmd, HELP, args, argc, argv, &pos);
    if (prc >= 0) {
        cli_texts_free(&pos);
        return prc;
    }
    char **files = pos.texts;
    const int n_files = pos.n;
    if (n_files == 0 || (model_dir && sha)) {
        if (n_files) cli_error(cmd, "give --model or --sha256, not both");
        else cli_error(cmd, "no FILE given (see seslm inspect --help)");
        cli_texts_free(&pos);
        return 2;
    }
    // HDF5 1.10 keeps a few internal blocks after reading corrupt metadata and complains about them in
    // its exit handler; every file is closed by then, so that handler has nothing to do.
    H5dont_atexit();
    seslm_model *m = NULL;
    if (model_dir) {
        if (seslm_model_load(&m, model_dir) != SESLM_OK) {
            cli_error(cmd, "%s", seslm_last_error());
            cli_texts_free(&pos);
            return 1;
        }
        sha = seslm_model_weights_sha256(m);
    }
    int rc = 0;
    for (int i = 0; i < n_files; i++) {
        seslm_telemetry_dump *d = NULL;
        if (seslm_telemetry_dump_read(files[i], sha, &d) != SESLM_OK) {
            const char *err = seslm_last_error();
            cli_error(cmd, "%s", err);
            printf("{\"path\":");
            cli_json_str(stdout, files[i]);
            printf(",\"ok\":false,\"error\":");
            cli_json_str(stdout, err);
            printf("}\n");
            rc = 1;
            continue;
        }
        summarise(files[i], d, m ? seslm_model_tokenizer(m) : NULL, top);
        seslm_telemetry_dump_free(d);
    }
    if (fflush(stdout) != 0) rc = 1;
    seslm_model_free(m);
    cli_texts_free(&pos);
    return rc;
}
