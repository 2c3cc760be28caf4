/* embed_pq.h — product quantization of embedding rows (Jégou, Douze, Schmid 2011), for the rare rows of a
 * compressed word table (backend.h seslm_embedding: pq_codes / pq_book).
 *
 * Each row (C columns) is cut into S = C / d sub-vectors of d columns; sub-space s has its own 256
 * centroids, trained by Lloyd's k-means on the rows themselves, and a row is stored as S one-byte
 * centroid indices: d = 8 gives C / 8 bytes a row (48 for MiniLM's 384) against C / 2 + 4 for 4-bit rows.
 *
 * Deterministic: the start is k-means++ with a fixed seed, ties go to the lowest centroid index,
 * an empty cluster takes the training row farthest from its centroid (lowest row index on ties), sums
 * are in double; sub-spaces are independent, so the thread count does not change a bit. */
#ifndef SESLM_EMBED_PQ_H
#define SESLM_EMBED_PQ_H

#include "seslm.h"

#include <stdint.h>

#define SESLM_PQ_K 256 // centroids per sub-space (one byte per code)

/* Trains on rows (N, C) -- at most max_train of them, a fixed-seed sample, when N is larger (0: all) --
 * with `iters` Lloyd iterations, then encodes all N rows. book (S * 256, d), codes (N, S), S = C / d
 * (C % d == 0). A sub-space with fewer than 256 distinct training rows gets repeated centroids.
 * Returns SESLM_ERR_ARG for bad sizes, SESLM_ERR_NOMEM. mse (may be NULL): mean squared error per
 * element of the N encoded rows. */
seslm_status seslm_pq_train(float *book, uint8_t *codes, const float *rows, int N, int C, int d, int iters, int max_train,
                            uint64_t seed, double *mse);

/* The nearest centroid of each sub-vector of x (C) under book: codes (S). */
void seslm_pq_encode(uint8_t *codes, const float *x, const float *book, int C, int d);

#endif
