/* bpe.h — byte-level BPE tokenizer (GPT-2 family) built from GGUF metadata, as llama.cpp runs it:
 *   tokenizer.ggml.model = "gpt2", tokenizer.ggml.tokens / token_type / merges, tokenizer.ggml.pre
 *   (the pre-tokenizer: "smollm", "starcoder", ... split digits one by one, then the GPT-2 regex
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S); "gpt2" without the digit
 *   split). Each pre-token's bytes are mapped to GPT-2's printable byte alphabet, then pairs are merged
 *   by rank (lowest first, leftmost on ties). With parse_special, control tokens written in the text
 *   ("<|im_start|>") become their ids instead of being spelled out. */
#ifndef SESLM_BPE_H
#define SESLM_BPE_H

/* The tests and the GGUF fuzzer call the tokenizer directly. The shared libraries export only seslm_* names
 * (cmake/seslm.map), so these are compiled under the prefixed names. */
#define bpe_load seslm_bpe_load
#define bpe_free seslm_bpe_free
#define bpe_vocab_size seslm_bpe_vocab_size
#define bpe_bos seslm_bpe_bos
#define bpe_eos seslm_bpe_eos
#define bpe_doc_start seslm_bpe_doc_start
#define bpe_lookup seslm_bpe_lookup
#define bpe_is_control seslm_bpe_is_control
#define bpe_encode seslm_bpe_encode
#define bpe_token_bytes seslm_bpe_token_bytes

#include "gguf.h"
#include "seslm.h"

#include <stddef.h>
#include <stdint.h>

typedef struct bpe_tokenizer bpe_tokenizer;

seslm_status bpe_load(bpe_tokenizer **out, const gguf_file *f, const char *name);
void bpe_free(bpe_tokenizer *t);

int bpe_vocab_size(const bpe_tokenizer *t);
int32_t bpe_bos(const bpe_tokenizer *t);
int32_t bpe_eos(const bpe_tokenizer *t);
/* The token a scored document starts from (perplexity, distillation windows): the document separator of GPT-2-family
 * vocabularies, <|endoftext|>, where the vocabulary has it (SmolLM2's BOS is the chat template's <|im_start|>), else
 * BOS, else EOS; -1 if none. */
int32_t bpe_doc_start(const bpe_tokenizer *t);
/* Id of the token whose text is exactly s (len bytes), or -1. */
int32_t bpe_lookup(const bpe_tokenizer *t, const char *s, size_t len);
/* 1 for control tokens (<|im_end|>...): they end a turn and print as nothing. */
int bpe_is_control(const bpe_tokenizer *t, int32_t id);

/* Encodes len bytes of UTF-8 into *ids (malloc'd, *n of them; free with free()). Invalid UTF-8 ->
 * SESLM_ERR_UTF8 naming the byte offset. */
seslm_status bpe_encode(const bpe_tokenizer *t, const char *text, size_t len, int parse_special, int32_t **ids,
                        int *n);
/* The bytes a token stands for (GPT-2 alphabet mapped back to bytes; control tokens give 0 bytes unless
 * special). Writes at most cap bytes, returns the full length (or -1 for an id out of range). */
int bpe_token_bytes(const bpe_tokenizer *t, int32_t id, int special, char *buf, int cap);

#endif
