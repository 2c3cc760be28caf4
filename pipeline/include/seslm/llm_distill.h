/* llm_distill.h — end-to-end distillation of a decoder student against its parent (issue 17 item 5).
 *
 * A student from `seslm recompile-decoder` (layers dropped, healed neighbours, a 4-bit table) loses what the
 * parent's removed structure computed. Healing trains one FFN at a time on the parent's activations; this trains
 * every kept layer together, through the whole network, so each layer also learns to correct the errors of the
 * layers below it (which healing cannot see):
 *
 *     loss = mean over tokens of KL(softmax(y_p E_p^T) || softmax(y_s E_s^T)),   y = rmsnorm(x_last) * output_norm
 *
 * x_s, x_p: the student's and the parent's residual stream after their last layer, E their output matrices (the
 * token table when tied; a student's may be stored at 4 bits): the parent's next-token distribution is what the
 * student learns, as held-out perplexity measures it. (hidden_loss: the mean squared difference of y_s and y_p
 * instead; cheaper, but measured on SmolLM2 it lowered that error without lowering perplexity.) The parent's y_p
 * are computed once over the calibration text. The student runs in F32 (its weights dequantized), with a plain-C forward pass that keeps every
 * activation and a backward pass through RMSNorm, rotary grouped-query causal attention and SwiGLU (the matrix
 * products through CBLAS); AdamW-free Adam (no decay), warm-up then cosine decay, gradients clipped to norm 1. The
 * token table and the output norm stay frozen. Trained: each kept layer's norms, Q / K / V / O, gate / up / down and
 * the O and down biases (added as zeros when the student has none: llama.cpp reads them).
 *
 * Every steps / 10 steps the held-out loss (1 document in 8, never trained on) is measured and the best weights kept;
 * at the end they are quantized back to each matrix's type in the student file, measured again as stored, and the
 * file is rewritten only if that beats the student's own held-out loss. */
#ifndef SESLM_LLM_DISTILL_H
#define SESLM_LLM_DISTILL_H

#include "seslm.h"

#include <stdint.h>

typedef struct {
    int steps;        // Adam steps (0: nothing is done)
    int batch_tokens; // tokens per step, about (default 1024)
    int seq;          // tokens per sequence at most, the start token included (default 0: 64, or with prompts
                      //    min(512, batch_tokens), so that a served prompt stays whole with its answer)
    float lr;         // peak learning rate (default 5e-5)
    uint64_t seed;    // batch order
    float ce_weight;  // the loss: (1 - ce_weight) KL + ce_weight cross-entropy on the text's next tokens (default 0.5)
    int special;       // 1: the documents may hold special tokens (<|im_start|> ...: chat-formatted served prompts) and
                       //    the two characters \n stand for a newline (a prompt is one line of the file)
    int answer_tokens; // -1 (the default): 48 with prompts, else 0.
                       // > 0: the parent's greedy continuation of each document, up to this many tokens (stopping
                       //    at its end-of-turn / end-of-text token), is appended to it: the student learns the answers.
                       //    With special: only documents that end by opening the assistant's turn (served chat
                       //    prompts) are answered, and each stays one sequence with its answer (the last seq tokens
                       //    when longer): other lines (text, "<|endoftext|>" first) are scored as they are
    const char *const *prompts; // served chat prompts (n_prompts; \n for newlines) distilled beside the text documents:
    int n_prompts;              //    parsed with special tokens, answered by the parent (answer_tokens) and kept whole;
                                //    the text documents stay plain (their start token, no answers). The two kinds are
                                //    interleaved evenly (the held-out 1 in 8 holds both)
    float text_share; // (0, 1): each batch takes about this share of its tokens from the plain text and the rest from
                      //    the served prompts (both drawn in shuffled order, each kind cycling on its own), and the
                      //    held-out selection weights the two kinds' losses alike. Served prompts are ~10x longer
                      //    than text lines, so as they come (negative, the default) a batch is mostly prompts.
                      //    Only with both kinds (prompts, or --special lines that get answers, beside text)
    int hidden_loss;  // 1: the mean squared error of the normed final hidden states instead of the KL divergence
    int verbose;      // progress lines on standard error
    double max_seconds; // > 0: a time budget for the steps (a nightly window): from the pace of the steps run so far
                        //    (held-out evaluations included), the schedule is shortened to the steps that fit,
                        //    so warm-up, cosine decay and the last evaluation still happen; at least 3 steps run.
                        //    0 (the default): no budget
    const char *answers_cache; // a file of the parent's answers (answer_tokens) to the prompts, kept between runs
                               //    and candidates (NULL: none; pipeline/recompile/llm_answer_cache.h)
} seslm_llm_distill_opts;

void seslm_llm_distill_opts_default(seslm_llm_distill_opts *o);

typedef struct {
    double val_start;   // held-out cross-entropy per next token of the student as given (hidden_loss: that loss)
    double val_trained; // the best evaluated weights (the pass runs on them as stored: quantization-aware)
    double val_stored;  // the same, quantized to the file's types
    double val_text, val_prompts; // the best weights' held-out loss on the text and on the served prompts (NAN when
                                  //    that kind is absent); with a text share val_trained weights them by it
    int kept;           // 1: the file was rewritten
    int steps;          // steps run
    long long train_tokens, val_tokens;
    long long seen_text, seen_prompts; // tokens the steps trained on, of plain text and of served prompts (with their
                                       //    answers), repeats counted: what the batches were made of
    int budget_cut;     // 1: max_seconds shortened the schedule (steps < opts.steps)
    double train_seconds; // wall time of the steps and their evaluations
    long long answers_cached, answers_computed; // the parent's answers taken from answers_cache / computed
} seslm_llm_distill_result;

/* Distils student_path (a GGUF decoder with the parent's vocabulary and width) against parent_path on the
 * documents (UTF-8 text, each started with <|endoftext|> as seslm perplexity does), and rewrites out_path (through
 * out_path.tmp; may be student_path) when it helps. ARG for bad options or too little text, SHAPE when the two
 * models do not share vocabulary and width. */
seslm_status seslm_llm_distill(const char *parent_path, const char *student_path, const char *const *docs, int n_docs,
                               const seslm_llm_distill_opts *o, const char *out_path, seslm_llm_distill_result *res);

/* For the tests: loss and gradient of the loss w.r.t. every parameter for one batch, on the student's own F32
 * weights, and the same loss with one parameter moved by eps (central differences). Exposed through
 * seslm_llm_distill_gradcheck, which compares n_probe random parameters; returns the worst relative error. */
seslm_status seslm_llm_distill_gradcheck(const char *parent_path, const char *student_path, const char *const *docs,
                                         int n_docs, int kl, int n_probe, double *worst_rel, double *loss);

#endif
