/* score.h — importance of every prunable structure of the encoder: attention heads, FFN neurons, whole
 * layers and embedding rows, behind one interface (a table of named methods). Higher = more important.
 *
 *   activation  Wanda / FLAP style, from telemetry: a head scores sum over its output-projection input
 *               columns j of ||Wo[:, j]||_2 * sqrt(in_sq_attn_out[j] / query_tokens); a neuron f scores
 *               ||W2[:, f]||_2 * sqrt(ffn_sq[f] / ffn_tokens) (the RMS size of what it adds to the
 *               residual stream). A layer scores the sum of its heads and neurons.
 *   measured    on calibration text: mask the unit (each head; neurons in contiguous groups; each layer as
 *               all heads + all neurons) and measure the mean 1 - cosine of the sentence embedding against
 *               the unmasked model. A neuron gets its group's deviation / group size.
 *   hybrid      heads and layers as "measured", neurons as "activation" (the best on our model, and 6x
 *               cheaper than "measured": docs/pruning.md).
 * All methods give embedding row i the token frequency count_i from the telemetry (0 without it): rows
 * are candidates for compression only, the id space never changes. */
#ifndef SESLM_SCORE_H
#define SESLM_SCORE_H

#include "seslm.h"
#include "telemetry.h"

/* Calibration set: texts and the unmasked model's embeddings of them. */
typedef struct {
    seslm_encoder *e;       // not owned; max_batch >= batch
    int n, batch, hidden;
    const char *const *texts;
    const size_t *lens;
    float *base, *cur;      // (n, hidden)
    float *cos;             // (n) last evaluation
} seslm_calib;

seslm_status seslm_calib_init(seslm_calib *c, seslm_encoder *e, int hidden, const char *const *texts,
                              const size_t *lens, int n, int batch);
void seslm_calib_free(seslm_calib *c);
/* Embeds the calibration set with the masks (seslm_encoder_set_masks arguments) and compares with the
 * base: mean cosine and the 5th-percentile cosine (either pointer may be NULL). Clears the masks after. */
seslm_status seslm_calib_eval(seslm_calib *c, const float *const *head_mask, const float *const *neuron_mask,
                              double *mean_cos, double *p5_cos);

typedef struct {
    const seslm_model *m;
    const seslm_telemetry_view *tel; // required by "activation"; optional otherwise (embedding rows)
    seslm_calib *calib;              // required by "measured"
    int neuron_groups;               // "measured": groups per layer (0: 64; capped at the layer's width)
    void (*progress)(void *ctx, const char *what, int done, int total); // may be NULL
    void *progress_ctx;
} seslm_score_ctx;

typedef struct {
    char method[32];
    int n_layers, vocab_size;
    int *n_heads, *ffn_dim;  // (n_layers)
    double **head;           // [layer][head]
    double **neuron;         // [layer][neuron]
    double *layer;           // (n_layers)
    double *emb_row;         // (vocab_size)
} seslm_scores;

typedef struct {
    const char *name;
    const char *what;
    seslm_status (*score)(const seslm_score_ctx *ctx, seslm_scores *out); // out allocated by the caller
} seslm_score_method;

/* The methods, n set to their count. */
const seslm_score_method *seslm_score_methods(int *n);
const seslm_score_method *seslm_score_method_find(const char *name);

seslm_status seslm_scores_alloc(seslm_scores *s, const seslm_model_config *c);
void seslm_scores_free(seslm_scores *s);
/* Runs method `name` into a freshly allocated s. */
seslm_status seslm_score_run(const char *name, const seslm_score_ctx *ctx, seslm_scores *s);

/* Writes the scores of several methods as one JSON file:
 * {"format":"seslm-scores","version":1,"methods":{"<name>":{"layers":[{"layer":l,"score":x,"heads":[...],
 *  "neurons":[...]}...],"embedding_rows":[count per id]}}} */
seslm_status seslm_scores_write_json(const seslm_scores *const *s, int n, const char *path);

#endif
