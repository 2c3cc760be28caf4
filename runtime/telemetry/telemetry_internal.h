/* telemetry_internal.h — the telemetry object's layout and the hooks the encoder calls. */
#ifndef SESLM_TELEMETRY_INTERNAL_H
#define SESLM_TELEMETRY_INTERNAL_H

#include "telemetry.h"

typedef struct {
    uint64_t key; // first << 32 | second
    uint64_t count;
} tel_pair;

struct seslm_telemetry {
    seslm_telemetry_opts opts;
    int vocab, hidden, n_layers, max_seq;
    const char *model_sha;
    int64_t window_start;
    uint64_t n_requests, n_batches, n_sequences, n_tokens;
    uint64_t *token_counts;  // (vocab)
    uint64_t *seq_len_hist;  // (max_seq + 1)
    seslm_batch_record *batches; // (max_batches)
    uint32_t *cms;           // (depth, width)
    tel_pair *heap;          // (top_pairs) min-heap by count
    int n_heap;
    int32_t *index;          // (index_cap) heap slot or -1
    uint32_t index_cap;
    seslm_token_pair *sorted; // (top_pairs) snapshot output
    uint64_t pairs_total;
    float *reservoir;        // (reservoir, hidden)
    int n_reservoir;
    uint64_t reservoir_seen, rng;
    seslm_layer_telemetry *layers;
    int64_t peak_rss;
};

void tel_observe_tokens(seslm_telemetry *t, const int32_t *ids, const int *off, const int *len, int B);
void tel_observe_embeddings(seslm_telemetry *t, const float *emb, int B);
void tel_observe_batch(seslm_telemetry *t, int64_t latency_ns, int batch_size, int n_tokens);

#endif
