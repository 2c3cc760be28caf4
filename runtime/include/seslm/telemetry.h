/* telemetry.h — what the runtime observes about itself while it serves, accumulated per window in
 * buffers sized once at creation (nothing is allocated per request). The HDF5 writer
 * (telemetry_hdf5.c) exports a window as one dump; docs/telemetry.md is the schema.
 *
 * Attach a telemetry object to an encoder with seslm_encoder_set_telemetry(); detach (NULL) to switch
 * it off. One telemetry object is fed by one encoder at a time (the caller serialises forward passes
 * per encoder, which the encoder's workspace already requires). */
#ifndef SESLM_TELEMETRY_H
#define SESLM_TELEMETRY_H

#include "seslm.h"

#include <stdint.h>

typedef struct {
    int cms_width;      // count-min sketch columns for token pairs (default 65536)
    int cms_depth;      // rows (default 4)
    int top_pairs;      // heavy-hitter token pairs kept exactly (default 1024)
    int reservoir;      // pooled embeddings kept in the uniform reservoir sample (default 1024)
    int max_batches;    // per-batch records kept per window (default 65536; later batches are counted only)
    uint64_t seed;      // reservoir sampling and sketch hashing
} seslm_telemetry_opts;

typedef struct {
    uint32_t first, second; // token ids, in this order, adjacent in a sequence
    uint64_t count;         // estimated count (count-min upper bound)
} seslm_token_pair;

typedef struct {
    int64_t latency_ns;
    int32_t batch_size;
    int32_t n_tokens;
} seslm_batch_record;

/* Per layer; arrays are sized by the model's per-layer structure (H heads, A = H*D, F). */
typedef struct {
    int n_heads, attn_dim, ffn_dim;
    uint64_t exec_count;     // forward passes through this layer
    int64_t exec_ns;         // summed wall time
    uint64_t query_tokens;   // tokens that attended (denominator of the per-head means)
    double *head_entropy;    // (H) sum over query tokens of the attention distribution's entropy (nats)
    double *head_max_weight; // (H) sum of the largest attention weight of each query token
    double *head_out_norm;   // (H) sum of the L2 norm of the head's output vector per token
    uint64_t ffn_tokens;     // tokens through the FFN
    uint64_t *ffn_pos;       // (F) activations > 0 after GELU
    double *ffn_abs;         // (F) sum |activation|
    double *ffn_sq;          // (F) sum activation^2
    double *in_sq_qkv;       // (C) sum of squares of each input channel of the Q/K/V projections
    double *in_sq_attn_out;  // (A) ... of the attention output projection
    double *in_sq_ffn_in;    // (C) ... of the first FFN projection
    // the second FFN projection's input channels are the FFN neurons: their sums of squares are ffn_sq
} seslm_layer_telemetry;

typedef struct seslm_telemetry seslm_telemetry;

seslm_status seslm_telemetry_new(seslm_telemetry **out, const seslm_model *m, const seslm_telemetry_opts *opts);

/* The same for any transformer described by its shape (the decoder's: decoder.h seslm_llm_telemetry_new). */
typedef struct {
    int vocab_size, hidden, n_layers, max_seq_len, head_dim;
    const int *n_heads;       // (n_layers) query heads
    const int *ffn_dim;       // (n_layers) FFN neurons
    const char *model_sha256; // SHA-256 of the weights; kept by pointer: must outlive the telemetry object
} seslm_telemetry_shape;
seslm_status seslm_telemetry_new_shape(seslm_telemetry **out, const seslm_telemetry_shape *shape,
                                       const seslm_telemetry_opts *opts);
void seslm_telemetry_free(seslm_telemetry *t);
/* Clears every counter and starts a new window at the current time. */
void seslm_telemetry_reset(seslm_telemetry *t);

void seslm_encoder_set_telemetry(seslm_encoder *e, seslm_telemetry *t);

// ---- read access (for the exporters and tests) --------------------------------------------------

typedef struct {
    int64_t window_start_ns, window_end_ns; // Unix time, ns
    uint64_t n_requests, n_batches, n_sequences, n_tokens;
    int vocab_size, hidden, n_layers, max_seq_len;
    const uint64_t *token_counts;   // (vocab_size)
    const uint64_t *seq_len_hist;   // (max_seq_len + 1): sequences of each token length
    int n_batch_records;
    const seslm_batch_record *batches;
    int n_pairs;                    // heavy hitters, sorted by count descending
    const seslm_token_pair *pairs;
    int cms_width, cms_depth;
    uint64_t seed;                  // the options' seed: hashes the sketch's columns (docs/telemetry.md)
    const uint32_t *cms;            // (cms_depth, cms_width)
    uint64_t pairs_total;           // adjacent pairs observed
    int n_reservoir;                // rows filled
    uint64_t reservoir_seen;        // embeddings offered to the reservoir
    const float *reservoir;         // (n_reservoir, hidden)
    const seslm_layer_telemetry *layers; // (n_layers)
    int64_t peak_rss_bytes;
    int64_t peak_device_bytes;      // 0 on the CPU
    const char *model_sha256;       // SHA-256 of the weights the window was observed on
    int n_intents;                  // predicted-intent counts (slot for the intent head; 0 until loaded)
    const char *const *intent_labels;
    const uint64_t *intent_counts;
} seslm_telemetry_view;

/* Fills a view of the current window (pointers stay valid until the next reset or free). Sorts the
 * heavy hitters and stamps window_end_ns with the current time. */
void seslm_telemetry_snapshot(seslm_telemetry *t, seslm_telemetry_view *v);

/* Estimated count of the token pair (first, second) from the count-min sketch. */
uint64_t seslm_telemetry_pair_estimate(const seslm_telemetry *t, uint32_t first, uint32_t second);

/* Records one request (a caller-level call that may span several batches). */
void seslm_telemetry_count_request(seslm_telemetry *t);

#endif
