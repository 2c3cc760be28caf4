/* test_retrieve.c — the knowledge base: exact top-k against a brute-force full sort on random vectors,
 * save/load round trip, and refusal of a passages file that does not belong to the index. */
#include "retrieve.h"
#include "test.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t rs = 99;
static float frand(void) {
    rs = rs * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rs >> 11) * (1.0 / 9007199254740992.0) * 2 - 1);
}

static const float *g_scores;
static int by_score(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (g_scores[i] != g_scores[j]) return g_scores[i] > g_scores[j] ? -1 : 1;
    return i - j;
}

int main(void) {
    enum { N = 300, D = 24, K = 7 };
    static float emb[N * D], q[D], scores[N];
    static char text[N][32];
    const char *pass[N];
    for (int i = 0; i < N * D; i++) emb[i] = frand();
    for (int i = 0; i < N; i++) snprintf(text[i], sizeof text[i], "passage number %d", i), pass[i] = text[i];
    memcpy(emb + 17 * D, emb + 3 * D, D * sizeof(float)); // a tie: 3 must come before 17
    seslm_kb *kb = NULL;
    CHECK(seslm_kb_new(&kb, pass, N, emb, D, "feedbeef") == SESLM_OK);
    for (int trial = 0; trial < 20; trial++) {
        if (trial == 0) memcpy(q, emb + 3 * D, sizeof q);
        else
            for (int d = 0; d < D; d++) q[d] = frand();
        int order[N];
        double qn = 0;
        for (int d = 0; d < D; d++) qn += (double)q[d] * q[d];
        for (int i = 0; i < N; i++) { // reference: cosine in double, full sort
            double s = 0, rn = 0;
            for (int d = 0; d < D; d++) s += (double)emb[i * D + d] * q[d], rn += (double)emb[i * D + d] * emb[i * D + d];
            scores[i] = (float)(s / sqrt(rn * qn));
            order[i] = i;
        }
        g_scores = scores;
        qsort(order, N, sizeof(int), by_score);
        seslm_kb_hit hits[K];
        int n = seslm_kb_search(kb, q, K, hits);
        CHECK(n == K);
        int same = 1;
        for (int j = 0; j < K; j++) same &= hits[j].index == order[j] && fabsf(hits[j].score - scores[order[j]]) < 1e-5f;
        CHECK_MSG(same, "trial %d: top-%d differs from the full sort (first %d vs %d)", trial, K, hits[0].index, order[0]);
        if (trial == 0) CHECK(hits[0].index == 3 && hits[1].index == 17 && fabsf(hits[0].score - 1) < 1e-5f);
    }
    seslm_kb_hit big[N + 5];
    CHECK(seslm_kb_search(kb, q, N + 5, big) == N);

    char dir[] = "/tmp/seslm_test_kb_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    CHECK(seslm_kb_save(kb, dir) == SESLM_OK);
    seslm_kb *r = NULL;
    CHECK(seslm_kb_load(&r, dir) == SESLM_OK);
    if (r) {
        CHECK(seslm_kb_size(r) == N && seslm_kb_dim(r) == D && strcmp(seslm_kb_passage(r, 42), "passage number 42") == 0);
        CHECK(strcmp(seslm_kb_model_sha256(r), "feedbeef") == 0);
        seslm_kb_hit a[K], b[K];
        seslm_kb_search(kb, q, K, a);
        seslm_kb_search(r, q, K, b);
        CHECK(memcmp(a, b, sizeof a) == 0);
        seslm_kb_free(r);
    }
    char path[256];
    snprintf(path, sizeof path, "%s/passages.txt", dir);
    FILE *f = fopen(path, "a");
    fputs("an extra line\n", f);
    fclose(f);
    r = NULL;
    CHECK(seslm_kb_load(&r, dir) == SESLM_ERR_FORMAT && r == NULL && strstr(seslm_last_error(), "does not belong"));
    unlink(path);
    CHECK(seslm_kb_load(&r, dir) == SESLM_ERR_IO);
    // passages.txt a FIFO nothing writes to: refused at once (a node's start blocked on it before; alarm kills the
    // test if it comes back)
    CHECK(mkfifo(path, 0600) == 0);
    alarm(20);
    CHECK(seslm_kb_load(&r, dir) == SESLM_ERR_IO && r == NULL && strstr(seslm_last_error(), "not a regular file"));
    alarm(0);
    unlink(path);
    snprintf(path, sizeof path, "%s/index.safetensors", dir);
    unlink(path);
    rmdir(dir);
    const char *bad[1] = {"two\nlines"};
    CHECK(seslm_kb_new(&r, bad, 1, emb, D, NULL) == SESLM_ERR_ARG);
    float zero[D] = {0};
    CHECK(seslm_kb_new(&r, pass, 1, zero, D, NULL) == SESLM_ERR_ARG);
    // a row of subnormal floats (1 / |row| is beyond float's range) still becomes a finite unit vector
    float tiny[D];
    for (int d = 0; d < D; d++) tiny[d] = d % 2 ? 1e-44f : -2e-44f;
    CHECK(seslm_kb_new(&r, pass, 1, tiny, D, NULL) == SESLM_OK && r);
    if (r) {
        seslm_kb_hit h[1];
        float q[D];
        for (int d = 0; d < D; d++) q[d] = d % 2 ? 1.0f : -2.0f;
        CHECK(seslm_kb_search(r, q, 1, h) == 1);
        CHECK_MSG(h[0].score > 0.999f && h[0].score < 1.001f, "cosine of a subnormal row with itself: %g", h[0].score);
        seslm_kb_free(r);
        r = NULL;
    }
    seslm_kb_free(kb);
    return test_report("test_retrieve");
}
