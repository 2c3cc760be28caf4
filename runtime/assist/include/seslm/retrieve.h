/* retrieve.h — a knowledge base of passages embedded with the serving model, exact top-k retrieval by
 * cosine similarity, and the grounded-answer contract: answer only when the best passage is at least
 * `threshold` similar to the query, else refuse and say why.
 *
 * On disk a knowledge base is a directory: passages.txt (one passage per line, UTF-8) and
 * index.safetensors (tensor "embeddings" (n, dim) F32, L2-normalised rows in the order of the lines;
 * "__metadata__" holds the format, the model's weights SHA-256 and the SHA-256 of passages.txt, so a
 * passages file that does not belong to the index is refused). Both files are written crash-safely
 * (temp file + fsync + rename), passages first. A loaded knowledge base is read-only and may be
 * queried from many threads at once. docs/intent.md describes the contract. */
#ifndef SESLM_RETRIEVE_H
#define SESLM_RETRIEVE_H

#include "seslm.h"

typedef struct seslm_kb seslm_kb;

typedef struct {
    int index;   // passage number (line of passages.txt, from 0)
    float score; // cosine similarity to the query
} seslm_kb_hit;

/* A knowledge base from n passages (no newline inside) and their embeddings (n, dim); rows are
 * normalised on the way in. */
seslm_status seslm_kb_new(seslm_kb **out, const char *const *passages, int n, const float *emb, int dim,
                          const char *model_sha256);
seslm_status seslm_kb_save(const seslm_kb *kb, const char *dir);
seslm_status seslm_kb_load(seslm_kb **out, const char *dir);
void seslm_kb_free(seslm_kb *kb);

int seslm_kb_size(const seslm_kb *kb);
int seslm_kb_dim(const seslm_kb *kb);
const char *seslm_kb_passage(const seslm_kb *kb, int i);
const char *seslm_kb_model_sha256(const seslm_kb *kb); // "" when not recorded

/* Exact top-k by cosine similarity (the query need not be normalised): writes min(k, n) hits, best
 * first (ties: lower index first), and returns their number. */
int seslm_kb_search(const seslm_kb *kb, const float *query, int k, seslm_kb_hit *hits);

#endif
