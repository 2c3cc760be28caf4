/* grounded.h — grounded answers (issue 17 item 4): the decoder answers a question from retrieved passages
 * only ("Answer ONLY using the context"), and a hallucination check scores every sentence of the answer
 * against those passages before the node says it.
 *
 * The check (seslm_ground_check_answer), per answer sentence:
 *   support   the highest cosine similarity between the sentence's embedding and the embedding of any
 *             sentence of the passages (the serving encoder; a sentence of fewer than
 *             SESLM_GROUND_SHORT_WORDS words is embedded with the question in front of it, since a bare
 *             "Ulster." carries no meaning of its own);
 *   numbers   every number written in digits ("1999", "3.5", "1,200") must occur in the passages;
 *   entities  every capitalised word (a named-entity proxy: not the sentence's first word when that is a
 *             common sentence opener, not "I") must occur in the passages as a whole word, case-blind.
 *   coverage  (with a question) at least min_coverage of the question's terms must occur in the passages:
 *             an answer drawn from a passage about the question's subject but not its point ("When did X
 *             marry?" over "X died in 1991") is grounded sentence by sentence and still no answer.
 *   claim     each sentence is scored without a framing preamble ("The answer to this question is: 1949."
 *             is the claim "1949.", short, so embedded with the question);
 *   novelty   (with a question) some sentence must hold a term the question does not: "The Vanir dwell." for
 *             "In which land do the Vanir dwell?" restates it and answers nothing (not applied when the
 *             answer may repeat the question: "... Ulster or Munster?", yes/no questions).
 * Verdict: the model declined by itself ("I don't know", "not mentioned", ...) or an empty answer:
 * abstain; the passages do not cover the question: abstain; the answer only restates the question: abstain; a number or entity absent from the passages: abstain (a fabricated fact); lowest sentence
 * support < min_support: clarify when it is still >= clarify_support, else abstain; otherwise answer.
 * The passages cited are those holding the best-matching sentence of some answer sentence. */
#ifndef SESLM_GROUNDED_H
#define SESLM_GROUNDED_H

#include "seslm.h"

#include <stddef.h>
#include <stdio.h>

#define SESLM_GROUND_MAX_SENTENCES 16 // answer sentences checked (more: the rest count as unsupported)
#define SESLM_GROUND_MAX_PASSAGES 16
#define SESLM_GROUND_SHORT_WORDS 4

struct seslm_llm;

/* Embeds n texts into out (n, dim): 0 ok, non-zero on failure (with seslm_last_error set). */
typedef int (*seslm_ground_embed_fn)(void *user, const char *const *texts, int n, float *out);

typedef struct {
    double min_support;     // a sentence is supported at or above this cosine (default 0.60)
    double clarify_support; // below min_support but at or above this (and no fabricated number or entity):
                            // ask for clarification instead of abstaining (default 0.45)
    int max_tokens;         // bound on the decoder's answer (default 48)
    double min_coverage;    // share of the question's terms the passages must contain (default 0.75)
} seslm_ground_opts;

void seslm_ground_opts_default(seslm_ground_opts *o);

typedef enum { SESLM_GROUND_ANSWER = 0, SESLM_GROUND_ABSTAIN = 1, SESLM_GROUND_CLARIFY = 2 } seslm_ground_verdict;
/* "answer", "abstain", "clarify" */
const char *seslm_ground_verdict_name(seslm_ground_verdict v);

#define SESLM_GROUND_BAD_NUMBER 1
#define SESLM_GROUND_BAD_ENTITY 2

typedef struct {
    int n_sentences;
    char *sentence[SESLM_GROUND_MAX_SENTENCES]; // malloc'd copies (seslm_ground_check_free)
    float support[SESLM_GROUND_MAX_SENTENCES];
    int passage[SESLM_GROUND_MAX_SENTENCES]; // the passage of the best-matching context sentence
    int flags[SESLM_GROUND_MAX_SENTENCES];   // SESLM_GROUND_BAD_NUMBER | SESLM_GROUND_BAD_ENTITY
    char missing[SESLM_GROUND_MAX_SENTENCES][48]; // the first number / entity not found in the passages
    float min_support;                       // over the sentences (0 when there are none)
    float coverage;                          // share of the question's terms found in the passages
    int declined;                            // the model said it cannot answer from the context
    int cited[SESLM_GROUND_MAX_PASSAGES];    // 1: the passage supports some sentence (verdict answer)
    seslm_ground_verdict verdict;
    char why[256];
    int restates;                            // no sentence says anything the question does not (abstain)
} seslm_ground_check;

void seslm_ground_check_free(seslm_ground_check *r);

/* Splits text into sentences (ends: . ! ? followed by a space or the end, and newlines; not a decimal point,
 * a single-letter initial or a common abbreviation). Writes up to cap (start, length) pairs, trimmed,
 * skipping pieces without a letter or digit; returns the count. */
int seslm_ground_split(const char *text, size_t *starts, size_t *lens, int cap);

/* The terms check of one sentence against the context: 0 when every number and capitalised word occurs in
 * it, else SESLM_GROUND_BAD_NUMBER / _ENTITY with the first missing term copied to missing (cap bytes). */
int seslm_ground_terms(const char *sentence, size_t len, const char *context, char *missing, size_t cap);

/* The share of the question's terms (words of 3+ letters that are not question filler such as "when",
 * "year", "did"; numbers) that occur in the context, a word matching any context word with its first
 * min(len, 5) letters; 1 when the question has no such term. The first missing term goes to missing. */
double seslm_ground_coverage(const char *question, const char *context, char *missing, size_t cap);

/* The claim of an answer sentence: *off, *n select it without a framing preamble ("The answer is:",
 * "According to the context,", ...) and the quotes around what follows; the whole sentence when it has none
 * (or nothing but it). The support and terms checks score the claim, not the frame. */
void seslm_ground_claim(const char *sentence, size_t len, size_t *off, size_t *n);

/* Content terms of claim (words of 3+ letters that are neither question nor answer filler such as "answer",
 * "context"; numbers) that the question does not hold, a word matching its inflections (the first min(5, both
 * lengths) letters, at least 4: "moved" is "move"): 0 when the claim only restates the question. 1 when question
 * is NULL. */
int seslm_ground_new_terms(const char *claim, size_t len, const char *question);

/* 1 when the answer says it cannot answer ("I don't know", "not mentioned", ...). */
int seslm_ground_is_decline(const char *answer);

/* The hallucination check of answer against n passages (n <= SESLM_GROUND_MAX_PASSAGES); question may be
 * NULL. embed gives dim-dimensional vectors. ARG for bad arguments; the embedder's status on failure. */
seslm_status seslm_ground_check_answer(const char *question, const char *answer, const char *const *passages,
                                       int n, int dim, seslm_ground_embed_fn embed, void *user,
                                       const seslm_ground_opts *o, seslm_ground_check *r);

/* The decoder's chat prompt: the system instruction ("Answer ONLY using the context ...") and the
 * numbered passages with the question. malloc'd; NULL when out of memory. */
char *seslm_ground_prompt(const struct seslm_llm *m, const char *question, const char *const *passages, int n);

/* Greedy generation of at most max_tokens tokens from the prompt: *text malloc'd. The decoder is used by
 * one thread at a time (callers serialise). */
seslm_status seslm_ground_generate(struct seslm_llm *m, const char *prompt, int max_tokens, char **text,
                                   int *n_prompt, int *n_gen);

/* What the node says for a verdict: the answer itself, or the abstention / clarification text. */
const char *seslm_ground_abstain_text(void);
const char *seslm_ground_clarify_text(void);

// ---- the grounded QA set (data/grounded/) ------------------------------------------------------

/* Rates over a question set: answerable questions should be answered with the expected text (found),
 * unanswerable ones declined; hallucinated = answered (verdict answer) but wrong: an answerable question
 * answered without the expected text, or an unanswerable one answered at all. */
typedef struct {
    int n, n_answerable, n_unanswerable;
    int answered, declined, clarified;     // the node's verdicts
    int found;                             // answerable, verdict answer, expected text in the answer
    int raw_found;                         // answerable, expected text in the raw decoder answer (no check)
    int unans_declined;                    // unanswerable, verdict abstain or clarify
    int raw_unans_declined;                // unanswerable, the raw decoder answer declines by itself
    int hallucinated;
    double seconds;
    int tokens;                            // generated tokens in all
} seslm_ground_eval_result;

/* Answers already generated, by prompt: a second run over the same prompts (another encoder retrieving
 * the same passages) reuses them instead of generating again (greedy: the answer would be the same). */
typedef struct seslm_ground_cache seslm_ground_cache;
seslm_ground_cache *seslm_ground_cache_new(void);
void seslm_ground_cache_free(seslm_ground_cache *c);

/* Runs the QA set qa_path (TSV: id, question, expected answer ("" when unanswerable), with a header
 * line) over the passages of passages_path (one per line): per question the top k passages by the
 * embedding (at or above kb_threshold), the grounded answer and the check. At most max_q questions
 * (0: all). Per question one JSON line goes to log (may be NULL): id, question, passages, prompt, raw
 * answer, verdict, said text, support. Progress to progress (may be NULL). cache may be NULL. */
seslm_status seslm_ground_eval(struct seslm_llm *m, int dim, seslm_ground_embed_fn embed, void *user,
                               const char *qa_path, const char *passages_path, int k, double kb_threshold,
                               int max_q, const seslm_ground_opts *o, seslm_ground_cache *cache,
                               seslm_ground_eval_result *res, FILE *log, FILE *progress);

#endif
