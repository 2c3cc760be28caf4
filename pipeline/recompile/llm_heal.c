/* llm_heal.c — a kept SwiGLU FFN trained to stand in for a dropped span of layers (llm_heal.h). */
#include "llm_heal.h"

#include "backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void seslm_llm_heal_opts_default(seslm_llm_heal_opts *o) {
    memset(o, 0, sizeof *o);
    o->batch = 256;
    o->lr = 3e-4f;
    o->seed = 1;
}

// ---- the FFN, forward and backward, on the fast CPU backend's products ----

typedef struct {
    float *g, *u, *a, *y; // (B, F) gate and up products, the SwiGLU output; (B, C) the output
} ffn_acts;

static float silu(float g) { return g / (1.0f + expf(-g)); }

// y (B, C) = wd (silu(wg x) * (wu x)) + bd for x (B, C)
static void ffn_forward(const seslm_backend *be, ffn_acts *t, const float *wg, const float *wu, const float *wd,
                        const float *bd, int C, int F, const float *x, int B) {
    const seslm_weight Wg = {.w = wg, .N = F, .K = C}, Wu = {.w = wu, .N = F, .K = C}, Wd = {.w = wd, .N = C, .K = F};
    be->linear(t->g, x, &Wg, NULL, B); // (B, F)
    be->linear(t->u, x, &Wu, NULL, B); // (B, F)
    for (size_t i = 0; i < (size_t)B * F; i++) t->a[i] = silu(t->g[i]) * t->u[i];
    be->linear(t->y, t->a, &Wd, bd, B); // (B, C)
}

double seslm_llm_heal_mse(const float *wg, const float *wu, const float *wd, const float *bd, int C, int F, const float *X,
                    const float *Y, const float *R, int lo, int hi) {
    enum { B = 256 };
    const seslm_backend *be = seslm_backend_cpu_fast();
    ffn_acts t;
    float *buf = malloc(((size_t)3 * B * F + (size_t)B * C) * sizeof(float));
    if (!buf || hi <= lo) {
        free(buf);
        return NAN;
    }
    t.g = buf, t.u = t.g + (size_t)B * F, t.a = t.u + (size_t)B * F, t.y = t.a + (size_t)B * F;
    double se = 0.0;
    for (int r = lo; r < hi; r += B) {
        const int nb = hi - r < B ? hi - r : B;
        ffn_forward(be, &t, wg, wu, wd, bd, C, F, X + (size_t)r * C, nb);
        for (int i = 0; i < nb; i++) {
            double row = 0.0;
            for (int c = 0; c < C; c++) {
                const double e = (double)t.y[(size_t)i * C + c] - Y[(size_t)(r + i) * C + c];
                row += e * e;
            }
            se += R ? row * R[r + i] : row;
        }
    }
    free(buf);
    return se / ((double)(hi - lo) * C);
}

// ---- Adam ----

static void adam(float *p, const float *g, float *m, float *v, size_t n, float lr, int t) {
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    const float c1 = 1.0f - powf(b1, (float)t), c2 = 1.0f - powf(b2, (float)t);
    for (size_t i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        p[i] -= lr * (m[i] / c1) / (sqrtf(v[i] / c2) + eps);
    }
}

/* One batch: the loss sum_i R_i ||y_i - Y_i||^2 / (B C) and its gradients, accumulated. work (5 B F + B C floats):
 * g, u, a, da, dg (B, F) and y (B, C). */
double seslm_llm_heal_batch(const float *wg, const float *wu, const float *wd, const float *bd, int C, int F, const float *X,
                      const float *Y, const float *R, int B, float *gg, float *gu, float *gd, float *gb, float *work) {
    const seslm_backend *be = seslm_backend_cpu_fast();
    ffn_acts t;
    t.g = work, t.u = t.g + (size_t)B * F, t.a = t.u + (size_t)B * F, t.y = t.a + (size_t)B * F;
    float *da = t.y + (size_t)B * C, *dg = da + (size_t)B * F, *dy = t.y; // dy overwrites y in place
    ffn_forward(be, &t, wg, wu, wd, bd, C, F, X, B);
    const float k2 = 2.0f / ((float)B * (float)C);
    double se = 0.0;
    for (int i = 0; i < B; i++) {
        const float r = R ? R[i] : 1.0f;
        for (int c = 0; c < C; c++) {
            const size_t k = (size_t)i * C + c;
            const float e = t.y[k] - Y[k];
            se += (double)e * e * r;
            dy[k] = k2 * r * e;
        }
    }
    memset(da, 0, (size_t)B * F * sizeof *da);
    be->linear_backward(da, gd, gb, dy, t.a, wd, B, C, F); // da (B, F) += dy wd; gd (C, F) += dy^T a; gb += sum dy
    for (size_t i = 0; i < (size_t)B * F; i++) {           // a = silu(g) u: du = da silu(g), dg = da u silu'(g)
        const float g = t.g[i], sg = 1.0f / (1.0f + expf(-g)), d = da[i];
        da[i] = d * g * sg; // du, kept in da
        dg[i] = d * t.u[i] * sg * (1.0f + g * (1.0f - sg));
    }
    be->linear_backward(NULL, gg, NULL, dg, X, wg, B, F, C); // gg (F, C) += dg^T x
    be->linear_backward(NULL, gu, NULL, da, X, wu, B, F, C); // gu (F, C) += du^T x
    return se / ((double)B * C);
}

seslm_status seslm_llm_heal_ffn(float *wg, float *wu, float *wd, float *bd, int C, int F, const float *X, const float *Y,
                          const float *R, int n, int n_val, const seslm_llm_heal_opts *o, double *val0, double *val1) {
    const int n_tr = n - n_val, B = o->batch > 0 ? o->batch : 256;
    if (n_tr < 1 || n_val < 1 || C < 1 || F < 1) return seslm_fail(SESLM_ERR_ARG, "healing needs training and held-out rows (%d, %d)", n_tr, n_val);
    *val0 = *val1 = seslm_llm_heal_mse(wg, wu, wd, bd, C, F, X, Y, R, n_tr, n);
    if (!isfinite(*val0)) return seslm_fail(SESLM_ERR_NOMEM, "out of memory (or a non-finite activation) in the healing");
    if (o->steps <= 0) return SESLM_OK;
    const size_t nm = (size_t)F * C, np = 3 * nm + (size_t)C; // parameters: wg | wu | wd | bd
    float *P = malloc(np * sizeof *P), *Gr = malloc(np * sizeof *Gr), *M1 = calloc(np, sizeof *M1), *M2 = calloc(np, sizeof *M2);
    float *best = malloc(np * sizeof *best), *work = malloc(((size_t)5 * B * F + (size_t)3 * B * C + B) * sizeof *work);
    int *order = malloc((size_t)n_tr * sizeof *order);
    if (!P || !Gr || !M1 || !M2 || !best || !work || !order) {
        free(P), free(Gr), free(M1), free(M2), free(best), free(work), free(order);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory for the healing of an FFN (%d x %d)", F, C);
    }
    memcpy(P, wg, nm * sizeof *P), memcpy(P + nm, wu, nm * sizeof *P), memcpy(P + 2 * nm, wd, nm * sizeof *P);
    memcpy(P + 3 * nm, bd, (size_t)C * sizeof *P);
    memcpy(best, P, np * sizeof *P);
    float *xb = work + (size_t)5 * B * F + (size_t)B * C, *yb = xb + (size_t)B * C, *rb = yb + (size_t)B * C;
    uint64_t rs = o->seed ? o->seed : 1;
    for (int i = 0; i < n_tr; i++) order[i] = i;
    int cursor = n_tr; // reshuffled when exhausted
    const int warm = o->steps / 20 > 0 ? o->steps / 20 : 1, every = o->steps / 10 > 0 ? o->steps / 10 : 1;
    double best_val = *val0, run_loss = 0.0;
    for (int s = 1; s <= o->steps; s++) {
        // the batch: the next B rows of a shuffled pass over the training rows
        for (int i = 0; i < B; i++) {
            if (cursor >= n_tr) {
                for (int k = n_tr - 1; k > 0; k--) {
                    const int j = (int)(seslm_llm_heal_rng(&rs) % (uint64_t)(k + 1)), tmp = order[k];
                    order[k] = order[j], order[j] = tmp;
                }
                cursor = 0;
            }
            memcpy(xb + (size_t)i * C, X + (size_t)order[cursor] * C, (size_t)C * sizeof *xb);
            memcpy(yb + (size_t)i * C, Y + (size_t)order[cursor] * C, (size_t)C * sizeof *yb);
            rb[i] = R ? R[order[cursor]] : 1.0f;
            cursor++;
        }
        memset(Gr, 0, np * sizeof *Gr);
        run_loss += seslm_llm_heal_batch(P, P + nm, P + 2 * nm, P + 3 * nm, C, F, xb, yb, rb, B, Gr, Gr + nm, Gr + 2 * nm, Gr + 3 * nm, work);
        // warm-up, then cosine decay to 10% of the peak
        const float lr = s <= warm ? o->lr * (float)s / (float)warm
                                   : o->lr * (0.1f + 0.45f * (1.0f + cosf(3.14159265f * (float)(s - warm) / (float)(o->steps - warm + 1))));
        adam(P, Gr, M1, M2, np, lr, s);
        if (s % every == 0 || s == o->steps) {
            const double val = seslm_llm_heal_mse(P, P + nm, P + 2 * nm, P + 3 * nm, C, F, X, Y, R, n_tr, n);
            if (isfinite(val) && val < best_val) best_val = val, memcpy(best, P, np * sizeof *P);
            if (o->verbose)
                fprintf(stderr, "seslm recompile-decoder: heal step %d/%d: train %.5g, held-out %.5g (start %.5g)\n", s, o->steps,
                        run_loss / every, val, *val0);
            run_loss = 0.0;
        }
    }
    memcpy(wg, best, nm * sizeof *wg), memcpy(wu, best + nm, nm * sizeof *wu), memcpy(wd, best + 2 * nm, nm * sizeof *wd);
    memcpy(bd, best + 3 * nm, (size_t)C * sizeof *bd);
    *val1 = best_val;
    free(P), free(Gr), free(M1), free(M2), free(best), free(work), free(order);
    return SESLM_OK;
}
