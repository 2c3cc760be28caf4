/* llm_answer_cache.h — the parent's greedy answers to served prompts, kept in a file between stages.
 *
 * Every stage that trains or chooses on served prompts asks the parent for its greedy answer to each of them: the
 * layer choice of recompile-decoder (llm_answers.c) and each candidate's distillation (llm_distill.c). On 2 cores
 * that is ~1 s a prompt, ~5.5 min for 400, paid again by every candidate of a cycle. The answers depend only on
 * the parent's weights, the prompt's tokens and the answer limit, so they are cached under exactly that key:
 *
 *     file  = "SESLMANS" u32 version (1) char[64] parent weights' SHA-256 (hex) u32 n_entries, then per entry
 *             u64 FNV-1a of the prompt ids, u32 prompt tokens, u32 answer limit, u32 answer tokens, i32 answer[]
 *
 * (little-endian). Greedy answers are prefixes of each other, so an answer asked with a limit k serves every smaller
 * limit, and, when it ended before k (its end of turn), every limit: the layer choice's 24-token answers serve the
 * distillation's 48 when they are shorter. A file of another parent, of another version, or that does not parse is not used: the answers
 * are computed again and the file is rewritten (atomically) when the cache is closed; a cache is an optimisation and
 * never fails a job. The answers are greedy, so a cached one is the one the parent would give. */
#ifndef SESLM_LLM_ANSWER_CACHE_H
#define SESLM_LLM_ANSWER_CACHE_H

#include "decoder.h"

#include <stdint.h>

typedef struct seslm_llm_answer_cache seslm_llm_answer_cache;

/* Opens path for the parent's answers (the file need not exist). NOMEM only; a file it cannot use is reported
 * on standard error when verbose and replaced when closed. */
seslm_status seslm_llm_answer_cache_open(const char *path, const seslm_llm *parent, int verbose, seslm_llm_answer_cache **out);

/* seslm_llm_continue_greedy through the cache (c may be NULL: no cache): *ids (the prompt, n tokens) gets the
 * parent's greedy continuation of up to k tokens appended. */
seslm_status seslm_llm_answer_cache_greedy(seslm_llm_answer_cache *c, const seslm_llm *parent, int32_t **ids, int *n, int k);

/* Answers found in the cache, and computed, since it was opened. */
void seslm_llm_answer_cache_counts(const seslm_llm_answer_cache *c, long long *hits, long long *misses);

/* Writes the file when answers were added (through path.tmp, renamed) and frees the cache; NULL is a no-op. A
 * failed write is reported (IO) but leaves any earlier file whole. */
seslm_status seslm_llm_answer_cache_close(seslm_llm_answer_cache *c);

#endif
