/* test_distill_loss.c — the distillation losses (distill_loss.h) against central finite differences:
 * the embedding losses (1 - cos, relative MSE, in-batch similarity MSE) with respect to the student's
 * normalised and pooled embeddings, and the MiniLM relation KL with respect to the student's last-layer
 * qkv, with student and parent of different widths (relation heads) over a ragged batch. Plus the
 * values at the fixed point: student == parent gives loss 0 and zero gradients. */
#include "distill_loss.h"
#include "test.h"

#include <stdint.h>

static uint64_t rng = 0x243F6A8885A308D3ull;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / (1 << 24))) * 2.0f - 1.0f;
}
static void normalise(float *v, int B, int C) {
    for (int b = 0; b < B; b++) {
        double n = 0;
        for (int c = 0; c < C; c++) n += (double)v[b * C + c] * v[b * C + c];
        for (int c = 0; c < C; c++) v[b * C + c] = (float)(v[b * C + c] / sqrt(n));
    }
}

enum { B = 4, C = 6 };

static void test_embedding(void) {
    float s[B * C], q[B * C], p[B * C], r[B * C], de[B * C], dp[B * C];
    for (int i = 0; i < B * C; i++) s[i] = frand(), p[i] = frand(), q[i] = frand() * 2, r[i] = frand() * 2;
    normalise(s, B, C), normalise(p, B, C);
    const float w[3] = {0.7f, 1.3f, 0.9f};
    dl_parts parts;
    dl_embedding(s, q, p, r, B, C, w[0], w[1], w[2], de, dp, &parts);
    CHECK(parts.cos > 0 && parts.mse > 0 && parts.sim > 0);
    // the loss is a function of s (as free coordinates: the normalisation is the model's) and q
    const float eps = 1e-3f;
    float tde[B * C], tdp[B * C];
    int bad = 0;
    for (int i = 0; i < B * C; i++)
        for (int which = 0; which < 2; which++) {
            float *x = which ? q : s, keep = x[i];
            x[i] = keep + eps;
            const double lp = dl_embedding(s, q, p, r, B, C, w[0], w[1], w[2], tde, tdp, NULL);
            x[i] = keep - eps;
            const double lm = dl_embedding(s, q, p, r, B, C, w[0], w[1], w[2], tde, tdp, NULL);
            x[i] = keep;
            const double num = (lp - lm) / (2 * eps), an = which ? dp[i] : de[i];
            if (!(fabs(num - an) <= 1e-3 + 1e-2 * fabs(an))) {
                if (bad++ < 3) fprintf(stderr, "  d%s[%d]: analytic %.6g numeric %.6g\n", which ? "pooled" : "emb", i, an, num);
            }
        }
    CHECK_MSG(bad == 0, "embedding losses: %d gradients differ from finite differences", bad);
    // at the parent: zero loss, zero gradient
    double l0 = dl_embedding(p, r, p, r, B, C, 1, 1, 1, de, dp, &parts);
    CHECK(fabs(l0 - 0) < 1e-6 && fabs(parts.sim) < 1e-9);
    double g = 0;
    for (int i = 0; i < B * C; i++) g += fabs(dp[i]);
    CHECK(g == 0);
}

static void test_relations(void) {
    const int len[3] = {1, 4, 6}, off[3] = {0, 1, 5}, nb = 3, ntok = 11, As = 8, Ap = 12, R = 4;
    const size_t ns = (size_t)ntok * 3 * As, np = (size_t)ntok * 3 * Ap;
    float *s = malloc(ns * sizeof *s), *p = malloc(np * sizeof *p), *d = calloc(ns, sizeof *d), *t = calloc(ns, sizeof *t);
    for (size_t i = 0; i < ns; i++) s[i] = frand() * 1.5f;
    for (size_t i = 0; i < np; i++) p[i] = frand() * 1.5f;
    const double l = dl_relations(s, As, p, Ap, off, len, nb, R, 0.8f, d);
    CHECK(l > 0 && isfinite(l));
    const float eps = 1e-3f;
    int bad = 0;
    for (size_t i = 0; i < ns; i++) {
        const float keep = s[i];
        s[i] = keep + eps;
        const double lp = dl_relations(s, As, p, Ap, off, len, nb, R, 0.8f, t);
        s[i] = keep - eps;
        const double lm = dl_relations(s, As, p, Ap, off, len, nb, R, 0.8f, t);
        s[i] = keep;
        const double num = (lp - lm) / (2 * eps);
        if (!(fabs(num - d[i]) <= 1e-4 + 1e-2 * fabs(d[i]))) {
            if (bad++ < 3) fprintf(stderr, "  dqkv[%zu]: analytic %.6g numeric %.6g\n", i, d[i], num);
        }
    }
    CHECK_MSG(bad == 0, "relation KL: %d of %zu gradients differ from finite differences", bad, ns);
    // the student equal to the parent (same width): KL 0
    float *z = calloc(np, sizeof *z);
    CHECK(fabs(dl_relations(p, Ap, p, Ap, off, len, nb, 12, 1.0f, z)) < 1e-9);
    CHECK(dl_relation_heads(224, 7, 384) == 8 && dl_relation_heads(384, 12, 384) == 12 && dl_relation_heads(0, 0, 384) == 0);
    free(s), free(p), free(d), free(t), free(z);
}

int main(void) {
    test_embedding();
    test_relations();
    return test_report("test_distill_loss");
}
