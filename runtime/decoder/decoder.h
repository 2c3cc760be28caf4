/* decoder.h — the generative decoder: a Llama-family transformer (RMSNorm, rotary positions,
 * grouped-query attention, SwiGLU) read from a GGUF file, with its byte-level BPE tokenizer, ChatML chat
 * template, KV cache and sampler.
 *
 *   seslm_llm      the weights (mmap'd from the file, quantized blocks used in place) and tokenizer
 *   seslm_llm_ctx  one sequence: its KV cache (F16, as llama.cpp keeps it), position and scratch
 *
 * The forward pass of a batch of M new tokens at positions pos..pos+M-1 (C = n_embd, H heads of D,
 * G = H / H_kv query heads per KV head, F = n_ff):
 *   x (M, C) = token_embd rows
 *   per layer:  h = rmsnorm(x) * attn_norm
 *               q (M, H*D), k, v (M, H_kv*D) = h Wq^T, h Wk^T, h Wv^T;  rope(q, k) on pairs (2i, 2i+1)
 *               cache[pos..] = k, v;  a = softmax(q k^T / sqrt(D), causal) v  per head (KV head h / G)
 *               x += a Wo^T (+ bo)
 *               h = rmsnorm(x) * ffn_norm;  x += (silu(h Wg^T) * (h Wu^T)) Wd^T (+ bd)
 *   (bo, bd: optional biases, written by seslm recompile-decoder's reconstruction)
 *   logits (V) = rmsnorm(x_last) * output_norm . Wout^T   (Wout = token_embd when the file ties them)
 * Matrix products run on the block-quantized weights (qblock.h) with activations quantized per block
 * of 32, as llama.cpp's CPU backend computes them. */
#ifndef SESLM_DECODER_H
#define SESLM_DECODER_H

#include "bpe.h"
#include "seslm.h"
#include "seslm/telemetry.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx_train;
    float rope_base, rms_eps;
} seslm_llm_config;

typedef struct seslm_llm seslm_llm;
typedef struct seslm_llm_ctx seslm_llm_ctx;

/* Loads a GGUF file (general.architecture "llama"). IO when unreadable, FORMAT / SHAPE when malformed. */
seslm_status seslm_llm_load(seslm_llm **out, const char *path);
void seslm_llm_free(seslm_llm *m);
const seslm_llm_config *seslm_llm_cfg(const seslm_llm *m);
const bpe_tokenizer *seslm_llm_tokenizer(const seslm_llm *m);
/* The chat template's default system prompt (SmolLM2 adds one when the first message is not a system
 * message), or NULL when the template has none. */
const char *seslm_llm_default_system(const seslm_llm *m);
/* Layers bypassed in every forward pass from now on (skip: n_layer flags, kept by pointer; NULL: none):
 * how seslm recompile-decoder measures what removing a layer costs. Not for a model being served. */
void seslm_llm_set_layer_skip(seslm_llm *m, const uint8_t *skip);
/* Total bytes of the weights as stored. */
size_t seslm_llm_weight_bytes(const seslm_llm *m);
/* SHA-256 of the GGUF file, hex (computed on the first call; "" when the file is not mapped). */
const char *seslm_llm_sha256(const seslm_llm *m);

/* Telemetry of the decoder (issue 17 item 5): a telemetry object shaped like this model (its vocabulary,
 * n_embd, n_layer layers of n_head query heads and n_ff FFN neurons; sequences up to max_seq tokens, 0 = the
 * training context), and attaching it to a context (NULL: detach; ARG when made for another shape). Each
 * decode call then adds, as the encoder does: the tokens (one "sequence" per call: the prompt, then each
 * generated token), the call's latency, and per layer its time, each head's output norm, attention entropy
 * and largest weight per query token, each SwiGLU neuron's sum of squares, sum of |.| and count > 0, and the
 * sums of squares of the input channels of the Q/K/V, output and gate/up products. The HDF5 writer
 * (seslm_telemetry_dump_write) exports it as an encoder's window; the reservoir of pooled embeddings stays
 * empty. One context feeds one telemetry object at a time. */
seslm_status seslm_llm_telemetry_new(seslm_telemetry **out, const seslm_llm *m, int max_seq,
                                     const seslm_telemetry_opts *opts);

/* A sequence of at most n_ctx tokens. ref = 1 runs the plain-C reference kernels. */
/* Threads of the CPU kernels' pool that the decoder's products and attention run on (process-wide, shared
 * with the encoder's CPU backend; 0 = every CPU this process may use). Returns the count in effect. */
int seslm_llm_set_threads(int n);

seslm_status seslm_llm_ctx_new(seslm_llm_ctx **out, const seslm_llm *m, int n_ctx, int ref);
void seslm_llm_ctx_free(seslm_llm_ctx *c);
seslm_status seslm_llm_ctx_set_telemetry(seslm_llm_ctx *c, seslm_telemetry *t);
/* Calibration of a pruned student (pipeline/recompile/llm_prune.c): fn sees, in every forward pass, each
 * layer's inputs of W_o (what = SESLM_LLM_CAPTURE_ATTN: the attention output, (M, n_head * head_dim)) and of
 * W_down (SESLM_LLM_CAPTURE_FFN: the SwiGLU output, (M, n_ff)), on the decode thread; for healing a dropped span
 * (llm_heal.h) also the gate / up products' input (FFN_IN: the normed residual, (M, n_embd)) and the residual stream
 * after the attention (MID) and after the whole layer (OUT), both (M, n_embd). NULL: off. */
enum {
    SESLM_LLM_CAPTURE_ATTN = 0,
    SESLM_LLM_CAPTURE_FFN = 1,
    SESLM_LLM_CAPTURE_FFN_IN = 2,
    SESLM_LLM_CAPTURE_MID = 3,
    SESLM_LLM_CAPTURE_OUT = 4
};
typedef void (*seslm_llm_capture_fn)(void *user, int layer, int what, const float *x, int M, int K);
void seslm_llm_ctx_set_capture(seslm_llm_ctx *c, seslm_llm_capture_fn fn, void *user);
/* The layer stash (seslm recompile-decoder's layer choice): bypassing layer l changes nothing before it, so a
 * pass that bypasses l can resume at l's input as recorded by a pass with the same layers before l bypassed,
 * instead of running layers 0..l-1 again (the same floats: the layers after it run as in a whole pass).
 * RECORD: every decode call appends each layer's input, (n_layer, M, n_embd) floats, while max_bytes lasts
 * (beyond it the stash is incomplete and replays refuse); REPLAY from layer `from`: the k-th call after this one
 * must be the k-th recorded (same ids, same position: else INTERNAL) and starts at layer `from` from its stream.
 * Setting a mode rewinds to the first call; RECORD also empties the stash. OFF: whole passes. Not for serving. */
enum { SESLM_LLM_STASH_OFF = 0, SESLM_LLM_STASH_RECORD = 1, SESLM_LLM_STASH_REPLAY = 2 };
typedef struct seslm_llm_stash seslm_llm_stash;
seslm_status seslm_llm_stash_new(seslm_llm_stash **out, const seslm_llm *m, size_t max_bytes);
void seslm_llm_stash_free(seslm_llm_stash *s);
int seslm_llm_stash_complete(const seslm_llm_stash *s);
size_t seslm_llm_stash_bytes(const seslm_llm_stash *s);
seslm_status seslm_llm_ctx_set_stash(seslm_llm_ctx *c, seslm_llm_stash *s, int mode, int from);
void seslm_llm_ctx_reset(seslm_llm_ctx *c);
int seslm_llm_ctx_pos(const seslm_llm_ctx *c);
int seslm_llm_ctx_n_ctx(const seslm_llm_ctx *c);
const seslm_llm *seslm_llm_ctx_model(const seslm_llm_ctx *c);
/* Runs n tokens at the current position and advances it. logits (n_vocab floats) gets the last token's
 * logits when not NULL. LIMIT when the sequence would exceed n_ctx, ARG for an id out of range. */
seslm_status seslm_llm_decode(seslm_llm_ctx *c, const int32_t *ids, int n, float *logits);
/* The same, with every token's logits: logits (n, n_vocab), row i predicting the token after ids[i]. */
seslm_status seslm_llm_decode_all(seslm_llm_ctx *c, const int32_t *ids, int n, float *logits);

// ---------------------------------------------------------------------------------------------
// held-out perplexity (perplexity.c)

typedef struct {
    double nll;             // summed negative log-likelihood, nats
    uint64_t n_tokens;      // tokens scored
    uint64_t n_bytes;       // bytes of text they stand for
    int n_docs;
    double ppl;             // exp(nll / n_tokens)
    double bits_per_byte;   // nll / ln 2 / n_bytes: comparable across vocabularies
} seslm_ppl_result;

/* Scores each document (UTF-8 text) from <|endoftext|> (else BOS, else EOS), every token
 * predicted from the ones before it, in windows of the context's n_ctx tokens. progress (may be NULL)
 * is called after each document; non-zero stops. UTF8 names the document. */
/* -log softmax(logits)[target] over V logits, summed in double (a 49,152-wide row in float loses the small terms). */
double seslm_llm_token_nll(const float *logits, int V, int target);
seslm_status seslm_llm_perplexity(seslm_llm_ctx *c, const char *const *docs, int n_docs, seslm_ppl_result *r,
                                  int (*progress)(void *user, int done, int total), void *user);

// ---------------------------------------------------------------------------------------------
// sampling

typedef struct {
    float temperature; // 0: greedy (argmax, lowest id on ties)
    float top_p;       // nucleus: keep the most probable tokens whose mass reaches top_p (1: all)
    uint64_t seed;
} seslm_sampler_opts;

typedef struct {
    seslm_sampler_opts o;
    uint64_t state; // xorshift64*
    float *probs;
    int32_t *idx;
    int n;
} seslm_sampler;

seslm_status seslm_sampler_init(seslm_sampler *s, const seslm_sampler_opts *o, int n_vocab);
void seslm_sampler_free(seslm_sampler *s);
/* Picks a token from logits (n_vocab; the values are modified). */
int32_t seslm_sampler_pick(seslm_sampler *s, float *logits);

// ---------------------------------------------------------------------------------------------
// chat template and generation

typedef struct {
    const char *role;    // "system", "user", "assistant"
    const char *content;
} seslm_chat_msg;

/* ChatML prompt of the messages (plus the default system message when the template has one and the
 * first message is not "system"), ending with "<|im_start|>assistant\n" when add_generation_prompt.
 * malloc'd, NUL-terminated; NULL when out of memory. */
char *seslm_chat_format(const seslm_llm *m, const seslm_chat_msg *msgs, int n, int add_generation_prompt);

typedef struct {
    int max_tokens;
    seslm_sampler_opts sampling;
    const char *const *stop; // stop strings: generation ends before the first occurrence of any
    int n_stop;
    int parse_special;       // prompt: control tokens written in text become their ids (chat prompts)
    int ignore_eos;          // do not stop at the end-of-turn / end-of-sequence token (speed measurements: every
                             // model generates max_tokens tokens; those tokens add no text)
    /* called with each new piece of text as soon as it cannot be part of a stop string or of a cut
     * character; always well-formed UTF-8 (ill-formed bytes become U+FFFD); return non-zero to stop early.
     * May be NULL. */
    int (*on_text)(void *user, const char *text, size_t len);
    void *user;
} seslm_gen_opts;

typedef struct {
    char *text;          // the whole generated text (malloc'd; stop strings excluded; well-formed UTF-8, as
                         // on_text got it: ill-formed bytes become U+FFFD)
    size_t len;
    int n_prompt, n_gen; // token counts
    const char *finish;  // "stop" (end-of-sequence token or stop string), "length", "callback"
    double prompt_ms, gen_ms;         // wall clock
    double prompt_cpu_ms, gen_cpu_ms; // CPU time of the process (all threads)
} seslm_gen_result;

/* Tokenizes the prompt, runs it, then samples up to max_tokens tokens (ending at the end-of-turn /
 * end-of-sequence token). UTF8 for an invalid prompt, LIMIT when the prompt does not fit the context. */
seslm_status seslm_generate(seslm_llm_ctx *c, const char *prompt, size_t len, const seslm_gen_opts *o,
                            seslm_gen_result *r);
void seslm_gen_result_free(seslm_gen_result *r);

// ---------------------------------------------------------------------------------------------
// served prompts as the pipeline reads them (distillation, the layer choice of recompile-decoder)

/* A served prompt file holds one chat prompt per line with "\n" (two characters) for a newline: turns them
 * back into newlines, in place. */
void seslm_prompt_unescape(char *text);
/* Appends m's greedy continuation of ids (n tokens) to it, up to k tokens, stopping after an end token
 * (<|im_end|>, <|endoftext|>, EOS) and at the training context; *ids is realloc'd. NOMEM, or the
 * decoder's status. */
seslm_status seslm_llm_continue_greedy(const seslm_llm *m, int32_t **ids, int *n, int k);

#endif
