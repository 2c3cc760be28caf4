/* llm_prune.h — a smaller decoder from its telemetry (issue 17 item 5): the plan and the recompile of a
 * Llama-family GGUF file (runtime/decoder) into a student GGUF file that loads anywhere the parent does.
 *
 * What is cut, each ranked by what the served traffic says (a decoder telemetry dump, seslm generate
 * --telemetry-dir):
 *   - FFN neurons: the same count per layer (a multiple of 32, so ffn_down stays in whole blocks), the
 *     lowest mean a_n^2 (SwiGLU output energy on the traffic) of each layer;
 *   - KV groups: the same count per layer, a group (one K/V head and the query heads that read it) ranked
 *     by its query heads' mean output norm times the norm of their columns of W_o;
 *   - layers: the ones whose removal raises the calibration text's loss least (measured, needs
 *     calibration text), plus, with served prompts, the loss of the parent's answers to them;
 *   - vocabulary: tokens never seen in the traffic and not among the first vocab_general ids (byte-level
 *     BPE orders ids by merge, frequent first) lose their embedding row; the kept set is closed under the
 *     merges that build kept tokens, so any text the parent tokenized into kept tokens tokenizes the
 *     same, and other text falls back to shorter pieces (bytes at worst) -- nothing becomes unencodable.
 * Uniform counts per layer keep the file a plain llama GGUF (head_count, feed_forward_length scalars;
 * attention.key_length when the head count changes), so llama.cpp reads a student as it reads the parent.
 * Rows that are cut whole (Q/K/V and gate/up rows, embedding rows) are copied byte for byte; matrices
 * cut by column (W_o, W_down) are dequantized, cut and re-quantized to their type -- with calibration text
 * and reconstruct, first refitted by least squares to the parent's outputs on that text, with a bias that
 * takes the removed units' mean contribution (attn_output.bias / ffn_down.bias, which llama.cpp's llama
 * architecture reads as optional tensors). */
#ifndef SESLM_LLM_PRUNE_H
#define SESLM_LLM_PRUNE_H

#include "seslm.h"
#include "seslm/telemetry.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    double ffn_keep;          // fraction of each layer's FFN neurons kept, (0, 1] (rounded up to 32s)
    int kv_keep;              // KV groups kept per layer (0: all)
    int drop_layers;          // layers removed (needs calib), the cheapest by measured loss ...
    const int *drop_list;     // ... or exactly these parent layers (n_drop_list of them; no calib needed)
    int n_drop_list;
    int vocab_general;        // < 0: the whole vocabulary; else ids below it are kept, and every token seen
    uint64_t vocab_min_count; //   at least vocab_min_count times in the telemetry
    int embd_type;            // < 0: token_embd as the parent; else its ggml type (Q8_0 = 8, Q4_1 = 3, ...)
    const char *const *calib; // calibration documents: the layer choice and the reconstruction
    int n_calib;
    int reconstruct;          // with calib: refit W_o / W_down of pruned layers (and a bias) by least squares
    double ridge;             //   to the parent's outputs on calib (reconstruct.h; default 1e-3)
    int compensate;           // with calib and reconstruct: a dropped layer's mean contribution on calib goes into
                              //   the bias of the kept layer before it (default 1)
    int heal_steps;           // with calib and dropped layers: Adam steps that train the FFN of the kept layer before
                              //   each dropped span to output what the span added (llm_heal.h; 0: off, the default)
    int heal_tokens;          //   calibration tokens it trains on (a uniform sample; default 16384, 1/8 held out)
    float heal_lr;            //   peak learning rate (default 3e-4)
    int heal_type;            //   ggml type of the healed matrices (< 0: the parent's; Q8_0 = 8, ...)
    int ctx;                  // window of the calibration scoring (default 256)
    int verbose;              // progress lines on standard error
    const char *const *prompts; // served chat prompts ("\n" for newlines; may be NULL): with drop_layers, a layer's
    int n_prompts;              //   cost adds the loss of the parent's greedy answers to them (per answer token)
    int answer_tokens;          //   to the calibration text's (per token): what copying from a context needs
                                //   (llm_answers.h; answers up to answer_tokens tokens, default 24)
    int layer_type;           // < 0: every kept layer's matrices keep the parent's types; else re-quantized to this
                              //   ggml type (Q4_0 = 2: 10% fewer bytes than SmolLM2's Q4_1), the healed ones too
                              //   unless heal_type says otherwise. Distillation then trains them as stored
    const char *answers_cache; // a file of the parent's answers to served prompts, shared with distillation and
                               //   the other candidates of a cycle (NULL: none; pipeline/recompile/llm_answer_cache.h)
    int choice_whole_passes;  // 1: every probe of the layer choice runs the whole model (the reference the
                              //   default is checked against); 0: a probe that bypasses layer l resumes at l's
                              //   input recorded with the same layers before it (the same losses, ~35% less work)
} seslm_llm_prune_opts;

void seslm_llm_prune_opts_default(seslm_llm_prune_opts *o);

typedef struct {
    int n_layer_in, n_layer_out, ffn_in, ffn_out, heads_in, heads_out, kv_in, kv_out, vocab_in, vocab_out;
    size_t bytes_in, bytes_out; // tensor bytes
    int n_healed, n_heal_tried; // dropped spans whose kept neighbour was healed / trained (kept only if it helped)
} seslm_llm_prune_summary;

/* Reads the parent GGUF, ranks with the telemetry window (its shape must be the parent's), writes the
 * student to out_path (through out_path.tmp) and, when plan_path is not NULL, the plan as JSON (per layer:
 * the parent index, the kept KV groups and FFN neurons; the layers dropped with their measured loss; the
 * vocabulary kept). ARG for options out of range, SHAPE when the telemetry is of another shape. */
seslm_status seslm_llm_prune(const char *parent_path, const seslm_telemetry_view *tel, const seslm_llm_prune_opts *o,
                             const char *out_path, const char *plan_path, seslm_llm_prune_summary *sum);

#endif
