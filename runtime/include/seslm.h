/* seslm.h — public interface of libseslm.
 *
 * Library code never calls exit(): every fallible call returns a seslm_status and, on failure,
 * leaves a human-readable message in a thread-local buffer read with seslm_last_error().
 */
#ifndef SESLM_H
#define SESLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------------------------------------
// status and errors

typedef enum {
    SESLM_OK = 0,
    SESLM_ERR_ARG,      // invalid argument from the caller
    SESLM_ERR_IO,       // file missing, unreadable, short read, failed write
    SESLM_ERR_FORMAT,   // file present but malformed (bad header, bad JSON, truncated)
    SESLM_ERR_SHAPE,    // tensor shape / dtype / config mismatch
    SESLM_ERR_NOMEM,    // allocation failed
    SESLM_ERR_UTF8,     // input text is not valid UTF-8
    SESLM_ERR_LIMIT,    // request exceeds a configured limit (batch size, sequence length)
    SESLM_ERR_INTERNAL,
} seslm_status;

const char *seslm_status_str(seslm_status s);
/* Detailed message of the last failure on this thread ("" if none). */
const char *seslm_last_error(void);
/* Sets the thread-local message (printf-style) and returns `s`, so callers can `return seslm_fail(...)`. */
seslm_status seslm_fail(seslm_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

// ---------------------------------------------------------------------------------------------
// tokenizer: BERT BasicTokenizer + WordPiece, driven by vocab.txt and tokenizer_config.json

typedef struct seslm_tokenizer seslm_tokenizer;

typedef struct {
    int do_lower_case;          // lower-case (and, unless strip_accents == 0, strip accents)
    int strip_accents;          // -1: follow do_lower_case (HF "null"), 0: never, 1: always
    int tokenize_chinese_chars; // put spaces around CJK ideographs
    int max_len;                // truncation length including [CLS] and [SEP]
} seslm_tokenizer_opts;

/* Loads vocab.txt and tokenizer_config.json (optional) from a model directory. max_len comes from
 * sentence_bert_config.json "max_seq_length" when present, else tokenizer_config "model_max_length",
 * capped by max_pos (pass 0 for no cap). */
seslm_status seslm_tokenizer_load(seslm_tokenizer **out, const char *model_dir, int max_pos);
void seslm_tokenizer_free(seslm_tokenizer *tok);
const seslm_tokenizer_opts *seslm_tokenizer_options(const seslm_tokenizer *tok);
int seslm_tokenizer_vocab_size(const seslm_tokenizer *tok);
/* The token string for an id, or NULL if out of range. */
const char *seslm_tokenizer_token(const seslm_tokenizer *tok, int32_t id);
/* The id of a token string, or -1. */
int32_t seslm_tokenizer_lookup(const seslm_tokenizer *tok, const char *token);

/* Encodes `len` bytes of UTF-8 text to ids: [CLS] wordpieces... [SEP], truncated to max_len.
 * Writes at most `cap` ids to `ids` and the count to *n_ids. Invalid UTF-8 -> SESLM_ERR_UTF8.
 * cap must be >= max_len. */
seslm_status seslm_tokenizer_encode(const seslm_tokenizer *tok, const char *text, size_t len,
                                    int32_t *ids, int cap, int *n_ids);

/* As seslm_tokenizer_encode, and *n_full (may be NULL) gets the length the text would have without
 * truncation ([CLS] and [SEP] included): > max_len tells the caller the text was cut. */
seslm_status seslm_tokenizer_encode_full(const seslm_tokenizer *tok, const char *text, size_t len, int32_t *ids,
                                         int cap, int *n_ids, int *n_full);

// ---------------------------------------------------------------------------------------------
// model: BERT-family encoder with per-layer head counts and FFN widths

typedef struct {
    int n_heads;   // attention heads kept in this layer (0 allowed: attention contributes its bias only)
    int ffn_dim;   // intermediate width of this layer (0 allowed)
} seslm_layer_config;

/* Sentence-transformers pooling modes (1_Pooling/config.json); one mode per model (a concatenation of
 * several is refused at load). Over each sequence's tokens t = skip .. len-1 (skip: the prompt tokens when
 * include_prompt is false, else 0):
 *   MEAN: sum x_t / n;  MEAN_SQRT_LEN: sum x_t / sqrt(n);  MAX: per-column max;  CLS: x_skip (the first
 *   pooled token);  LASTTOKEN: x_{len-1};  WEIGHTEDMEAN: sum (t+1) x_t / sum (t+1). */
typedef enum {
    SESLM_POOL_MEAN = 0,
    SESLM_POOL_CLS,
    SESLM_POOL_MAX,
    SESLM_POOL_MEAN_SQRT_LEN,
    SESLM_POOL_WEIGHTEDMEAN,
    SESLM_POOL_LASTTOKEN,
} seslm_pooling;

/* The sentence-transformers name of a pooling mode ("mean", "cls", "max", "mean_sqrt_len_tokens",
 * "weightedmean", "lasttoken"). */
const char *seslm_pooling_name(seslm_pooling p);

typedef struct {
    char *name; // "query", "passage", ...
    char *text; // prepended to the input text before tokenization
} seslm_prompt;

typedef struct {
    int vocab_size;
    int hidden;           // C
    int n_layers;
    int head_dim;         // per-head width (hidden / num_attention_heads of the original model)
    int max_position;     // rows of the position-embedding table
    int type_vocab_size;
    int max_seq_len;      // truncation used for sentence embeddings
    int pad_token_id;
    float layer_norm_eps;
    int pooling_mean;     // 1: pooling == SESLM_POOL_MEAN (kept for older callers)
    char precision[8];    // config.json "seslm_precision": "fp32" (default), "bf16" or "int8": what an
                          // encoder computes F32-stored linear layers in unless its options say otherwise
    int normalize;        // 1: L2-normalise the pooled vector
    int act_top1;         // INT8 layers keep each token's largest input element in float: config.json
                          // "seslm_quantization": {"linear_activations": "int8-dynamic-per-token-symmetric-top1-float"}
    seslm_layer_config *layers; // n_layers entries
    seslm_pooling pooling;
    int include_prompt;   // 0: the prompt's tokens ([CLS] included) are left out of pooling
    seslm_prompt *prompts; // config_sentence_transformers.json "prompts" (n_prompts entries)
    int n_prompts;
    int default_prompt;   // index into prompts of "default_prompt_name", or -1
    int pooling_dim;      // the embedding dimension the Pooling config declares (0: none); must equal hidden
    int act_explicit;     // 1: config.json names how INT8 layers round (token or top1). Without it a model that
                          // stores INT8 layers rounds per token (as every student before top1 was validated), and
                          // one that stores none (its layers quantized at load: seslm_precision / --precision
                          // int8) rounds top1 (act_top1 = 1 after seslm_model_load)
} seslm_model_config;

/* config.json "seslm_quantization" "linear_activations" of an INT8 student: per token (max |x| / 127), or per
 * token with each token's largest element kept in float (kernels/quant.h seslm_quantize_rows_top1). */
#define SESLM_ACT_TOKEN "int8-dynamic-per-token-symmetric"
#define SESLM_ACT_TOP1 "int8-dynamic-per-token-symmetric-top1-float"

typedef struct seslm_model seslm_model;

seslm_status seslm_model_load(seslm_model **out, const char *model_dir);
void seslm_model_free(seslm_model *m);
const seslm_model_config *seslm_model_get_config(const seslm_model *m);
const seslm_tokenizer *seslm_model_tokenizer(const seslm_model *m);
/* The text of the prompt called `name` (config_sentence_transformers.json), or NULL. */
const char *seslm_model_prompt(const seslm_model *m, const char *name);
/* Hex SHA-256 of model.safetensors (65 bytes with NUL). */
const char *seslm_model_weights_sha256(const seslm_model *m);

typedef struct {
    char name[48];     // "embeddings", "layer.0.attention", "layer.0.ffn", ...
    int64_t params;
    int64_t bytes;     // as stored in model.safetensors (INT8 tensors with their scales)
} seslm_param_group;

/* Fills up to cap groups, returns the number of groups (call with cap 0 to size). */
int seslm_model_param_groups(const seslm_model *m, seslm_param_group *groups, int cap);

// ---------------------------------------------------------------------------------------------
// encoder: batched forward pass to sentence embeddings

typedef struct seslm_encoder seslm_encoder;

typedef struct {
    const char *backend;  // "cpu" (fast, default) or "cpu-ref" (plain C reference)
    int n_threads;        // 0: all cores
    int max_batch;        // workspace is sized for max_batch x max_seq_len
    int max_seq_len;      // 0: the model's; smaller values truncate as the reference tokenizer does
    const char *precision; // NULL: the model's config (seslm_precision), else "fp32", "bf16" or "int8":
                           // F32-stored linear weights are converted at load (BF16: vdpbf16ps products,
                           // FP32 accumulation; INT8: per-channel weights, per-token activations);
                           // layer norm, softmax, GELU stay FP32. INT8- or 2:4-stored layers stay as stored.
} seslm_encoder_opts;

seslm_status seslm_encoder_new(seslm_encoder **out, const seslm_model *m, const seslm_encoder_opts *opts);
void seslm_encoder_free(seslm_encoder *e);

/* Embeds `n` token sequences (ids[i] of length lens[i], 1 <= lens[i] <= max_seq_len, n <= max_batch).
 * out is (n, hidden), row-major. No allocation happens inside. */
seslm_status seslm_encoder_forward_ids(seslm_encoder *e, const int32_t *const *ids, const int *lens, int n,
                                       float *out);

/* Structural masks, for measuring what pruning would do without rewriting weights. head_mask[l] (or
 * head_mask NULL / head_mask[l] NULL: all kept) holds one factor in [0, 1] per head of layer l: a head
 * with 0 has its context columns zeroed before the attention output projection, exactly as if its V rows
 * and output-projection columns were zero. neuron_mask[l] holds one factor per FFN neuron of layer l,
 * applied to the activations after GELU (0: the neuron is removed). The masks are copied (the buffer is
 * allocated on the first call only); pass NULL, NULL to clear. A forward pass without masks is
 * unchanged, bit for bit, and the masked forward pass allocates nothing. Works with every backend. */
seslm_status seslm_encoder_set_masks(seslm_encoder *e, const float *const *head_mask, const float *const *neuron_mask);

/* The prompt prepended to every text by seslm_encoder_embed_texts (copied; NULL: none). A new encoder
 * starts with the model's default prompt (default_prompt_name), as sentence-transformers' encode() does.
 * With include_prompt false, its tokens are left out of pooling (in forward_ids too). */
seslm_status seslm_encoder_set_prompt(seslm_encoder *e, const char *prompt);
const char *seslm_encoder_prompt(const seslm_encoder *e);

/* Tokenizes and embeds n texts (n <= max_batch), each prefixed by the encoder's prompt. out is (n, hidden). */
seslm_status seslm_encoder_embed_texts(seslm_encoder *e, const char *const *texts, const size_t *text_lens,
                                       int n, float *out);

/* Features for a classifier head from the last k layers: out (n, k * hidden) holds, for each of layers
 * n_layers-k .. n_layers-1 in order, that layer's output pooled as the model pools (the prompt left out alike)
 * and L2-normalised, all times 1 / sqrt(k): unit rows whose last block is the embedding / sqrt(k) (k = 1: the
 * normalised embedding). The layers below the last keep what it abstracts away: a linear head on the last 3
 * of all-MiniLM-L6-v2 is 0.5-2 points more accurate than one on the embedding on CLINC150 and SNIPS
 * (bench/RESULTS.md 13). k outside 1..n_layers, or k > 1 on a device backend (its pass keeps no intermediate
 * layer): SESLM_ERR_ARG. */
seslm_status seslm_encoder_features_texts(seslm_encoder *e, const char *const *texts, const size_t *text_lens, int n,
                                          int k, float *out);
/* The same from token ids (as seslm_encoder_forward_ids takes them). */
seslm_status seslm_encoder_features_ids(seslm_encoder *e, const int32_t *const *ids, const int *lens, int n, int k,
                                        float *out);
/* 1 when the encoder runs on a device backend (cuda, cuda-fp16): features of k > 1 layers are refused there. */
int seslm_encoder_on_device(const seslm_encoder *e);

// ---------------------------------------------------------------------------------------------
// provenance

/* "0.1.0" */
const char *seslm_version(void);
/* The commit the build was configured from (git describe: "a1b2c3d4e5f6[-dirty]", or "unknown"). */
const char *seslm_build_commit(void);
/* Compiler and version ("gcc 12.2.0"). */
const char *seslm_build_compiler(void);
/* CPU features: those the build was compiled for and those of this machine (x86: avx2, fma, avx512f,
 * avx512vnni...) as "build: ... ; cpu: ...". */
const char *seslm_build_cpu_features(void);
/* One JSON object with all of the above and the CUDA flag: {"version": ..., "commit": ..., ...}. */
const char *seslm_build_info_json(void);

// ---------------------------------------------------------------------------------------------
// devices

/* 1 when the CUDA backend library (libseslm-cuda) can be loaded; the core loads it on first use. */
int seslm_built_with_cuda(void);
/* Visible CUDA GPUs (0 without a GPU, a driver, or a CUDA build). */
int seslm_gpu_count(void);
/* Writes a one-line description of GPU i; returns 0, or -1 if there is no such GPU. */
int seslm_gpu_describe(int i, char *buf, int cap);

#ifdef __cplusplus
}
#endif
#endif
