/* embed_pq.c — product quantization of embedding rows (embed_pq.h). */
#include "embed_pq.h"

#include "pool.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// nearest of K centroids cen (K, d) to x (d); ties: the lowest index. *dist gets the squared distance.
static int nearest(const float *x, const float *cen, int K, int d, float *dist) {
    int best = 0;
    float bd = FLT_MAX;
    for (int k = 0; k < K; k++) {
        const float *c = cen + (size_t)k * d;
        float s = 0.0f;
        for (int j = 0; j < d; j++) {
            const float t = x[j] - c[j];
            s += t * t;
        }
        if (s < bd) bd = s, best = k;
    }
    if (dist) *dist = bd;
    return best;
}

void seslm_pq_encode(uint8_t *codes, const float *x, const float *book, int C, int d) {
    for (int s = 0; s < C / d; s++) codes[s] = (uint8_t)nearest(x + (size_t)s * d, book + (size_t)s * SESLM_PQ_K * d, SESLM_PQ_K, d, NULL);
}

typedef struct {
    float *book;
    uint8_t *codes;
    const float *rows;
    const int32_t *train; // (n_train) row indices
    int N, C, d, iters, n_train;
    uint64_t seed;
    double *sse;          // (S) per sub-space squared error of the encoded rows
    int failed;
} pq_job;

// one sub-space: k-means on the training rows' columns [s*d, s*d + d), then every row encoded
static void pq_subspace(void *ctx, int lo, int hi, int tid) {
    (void)tid;
    pq_job *J = ctx;
    const int d = J->d, K = SESLM_PQ_K, n = J->n_train;
    float *x = malloc(((size_t)n * d + 1) * sizeof *x), *dist = malloc(((size_t)n + 1) * sizeof *dist);
    int *assign = malloc(((size_t)n + 1) * sizeof *assign), *cnt = malloc((size_t)K * sizeof *cnt);
    double *sum = malloc((size_t)K * d * sizeof *sum);
    if (!x || !dist || !assign || !cnt || !sum) {
        __atomic_store_n(&J->failed, 1, __ATOMIC_RELAXED);
        free(x), free(dist), free(assign), free(cnt), free(sum);
        return;
    }
    for (int s = lo; s < hi; s++) {
        float *cen = J->book + (size_t)s * K * d;
        for (int i = 0; i < n; i++) memcpy(x + (size_t)i * d, J->rows + (size_t)J->train[i] * J->C + (size_t)s * d, (size_t)d * sizeof *x);
        // start: k-means++ (Arthur & Vassilvitskii 2007) -- each next centroid a training row drawn with
        // probability proportional to its squared distance to the nearest centroid so far (seeded per
        // sub-space); with at most K rows, the rows themselves
        uint64_t rs = J->seed ^ (0x51ED270B27F3A2C1ull * (uint64_t)(s + 1));
        if (n <= K) {
            for (int k = 0; k < K; k++) memcpy(cen + (size_t)k * d, x + (size_t)(k % n) * d, (size_t)d * sizeof *cen);
        } else {
            int pick = (int)(splitmix64(&rs) % (uint64_t)n);
            memcpy(cen, x + (size_t)pick * d, (size_t)d * sizeof *cen);
            for (int i = 0; i < n; i++) {
                float t = 0.0f;
                for (int j = 0; j < d; j++) t += (x[(size_t)i * d + j] - cen[j]) * (x[(size_t)i * d + j] - cen[j]);
                dist[i] = t;
            }
            for (int k = 1; k < K; k++) {
                double tot = 0;
                for (int i = 0; i < n; i++) tot += dist[i];
                const double u = (double)(splitmix64(&rs) >> 11) * 0x1.0p-53 * tot;
                double acc = 0;
                pick = -1;
                for (int i = 0; i < n && tot > 0; i++)
                    if ((acc += dist[i]) > u && dist[i] > 0) {
                        pick = i;
                        break;
                    }
                if (pick < 0) { // every row already a centroid (or rounding at the end): the farthest one
                    pick = 0;
                    for (int i = 1; i < n; i++)
                        if (dist[i] > dist[pick]) pick = i;
                }
                float *ck = cen + (size_t)k * d;
                memcpy(ck, x + (size_t)pick * d, (size_t)d * sizeof *cen);
                for (int i = 0; i < n; i++) {
                    float t = 0.0f;
                    for (int j = 0; j < d; j++) t += (x[(size_t)i * d + j] - ck[j]) * (x[(size_t)i * d + j] - ck[j]);
                    if (t < dist[i]) dist[i] = t;
                }
            }
        }
        for (int it = 0; it < J->iters && n > K; it++) {
            for (int i = 0; i < n; i++) assign[i] = nearest(x + (size_t)i * d, cen, K, d, &dist[i]);
            memset(cnt, 0, (size_t)K * sizeof *cnt);
            memset(sum, 0, (size_t)K * d * sizeof *sum);
            for (int i = 0; i < n; i++) {
                cnt[assign[i]]++;
                for (int j = 0; j < d; j++) sum[(size_t)assign[i] * d + j] += x[(size_t)i * d + j];
            }
            for (int k = 0; k < K; k++) {
                if (cnt[k] > 0) {
                    for (int j = 0; j < d; j++) cen[(size_t)k * d + j] = (float)(sum[(size_t)k * d + j] / cnt[k]);
                    continue;
                }
                // empty: the row farthest from its centroid moves here (and is no longer far)
                int far = 0;
                for (int i = 1; i < n; i++)
                    if (dist[i] > dist[far]) far = i;
                memcpy(cen + (size_t)k * d, x + (size_t)far * d, (size_t)d * sizeof *cen);
                dist[far] = 0.0f;
            }
        }
        double e = 0;
        for (int r = 0; r < J->N; r++) {
            float dd;
            J->codes[(size_t)r * (J->C / d) + s] = (uint8_t)nearest(J->rows + (size_t)r * J->C + (size_t)s * d, cen, K, d, &dd);
            e += dd;
        }
        J->sse[s] = e;
    }
    free(x), free(dist), free(assign), free(cnt), free(sum);
}

seslm_status seslm_pq_train(float *book, uint8_t *codes, const float *rows, int N, int C, int d, int iters, int max_train,
                            uint64_t seed, double *mse) {
    if (N <= 0 || C <= 0 || d <= 0 || C % d || iters < 0)
        return seslm_fail(SESLM_ERR_ARG, "product quantization: %d rows of %d columns in sub-vectors of %d", N, C, d);
    const int S = C / d, n = max_train > 0 && max_train < N ? max_train : N;
    int32_t *train = malloc(((size_t)N + 1) * sizeof *train);
    double *sse = calloc((size_t)S, sizeof *sse);
    if (!train || !sse) {
        free(train), free(sse);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    // the training sample: a seeded partial shuffle of the row indices, then sorted (cache order)
    for (int i = 0; i < N; i++) train[i] = i;
    uint64_t rs = seed;
    for (int i = 0; i < n && n < N; i++) {
        const int j = i + (int)(splitmix64(&rs) % (uint64_t)(N - i));
        const int32_t t = train[i];
        train[i] = train[j], train[j] = t;
    }
    if (n < N) { // counting sort of the sample (indices < N)
        char *in = calloc((size_t)N, 1);
        if (!in) {
            free(train), free(sse);
            return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        }
        for (int i = 0; i < n; i++) in[train[i]] = 1;
        for (int i = 0, k = 0; i < N; i++)
            if (in[i]) train[k++] = i;
        free(in);
    }
    pq_job J = {.book = book, .codes = codes, .rows = rows, .train = train, .N = N, .C = C, .d = d, .iters = iters,
                .n_train = n, .seed = seed, .sse = sse};
    seslm_pool_for(S, 1, 0, pq_subspace, &J);
    double e = 0;
    for (int s = 0; s < S; s++) e += sse[s];
    free(train), free(sse);
    if (J.failed) return seslm_fail(SESLM_ERR_NOMEM, "out of memory training the product quantizer");
    if (mse) *mse = e / ((double)N * C);
    return SESLM_OK;
}
