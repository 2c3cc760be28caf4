/* distill_loss.c — the distillation losses (distill_loss.h). */
#include "distill_loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double dl_embedding(const float *s_emb, const float *s_pool, const float *p_emb, const float *p_pool, int B, int C,
                    float w_cos, float w_mse, float w_sim, float *demb, float *dpooled, dl_parts *parts) {
    memset(demb, 0, (size_t)B * C * sizeof(float));
    memset(dpooled, 0, (size_t)B * C * sizeof(float));
    double lc = 0, lm = 0, ls = 0;
    for (int b = 0; b < B; b++) {
        const float *s = s_emb + (size_t)b * C, *p = p_emb + (size_t)b * C;
        const float *q = s_pool + (size_t)b * C, *r = p_pool + (size_t)b * C;
        double dot = 0, e2 = 0, r2 = 0;
        for (int c = 0; c < C; c++) {
            dot += (double)s[c] * p[c];
            e2 += ((double)q[c] - r[c]) * ((double)q[c] - r[c]);
            r2 += (double)r[c] * r[c];
        }
        r2 = r2 > 1e-12 ? r2 : 1e-12;
        lc += 1.0 - dot;
        lm += e2 / r2;
        for (int c = 0; c < C; c++) {
            demb[(size_t)b * C + c] += (float)(-w_cos * p[c] / B);
            dpooled[(size_t)b * C + c] += (float)(w_mse * 2.0 * ((double)q[c] - r[c]) / r2 / B);
        }
    }
    if (w_sim != 0.0f && B > 1) {
        // G = S_s - S_p (symmetric); L = (1/B) sum_ij G_ij^2; dL/ds_i = (4/B) sum_j G_ij s_j
        double *G = malloc((size_t)B * B * sizeof *G);
        if (G) {
            for (int i = 0; i < B; i++)
                for (int j = 0; j < B; j++) {
                    double ss = 0, pp = 0;
                    for (int c = 0; c < C; c++) {
                        ss += (double)s_emb[(size_t)i * C + c] * s_emb[(size_t)j * C + c];
                        pp += (double)p_emb[(size_t)i * C + c] * p_emb[(size_t)j * C + c];
                    }
                    G[(size_t)i * B + j] = ss - pp;
                    ls += (ss - pp) * (ss - pp);
                }
            for (int i = 0; i < B; i++)
                for (int c = 0; c < C; c++) {
                    double acc = 0;
                    for (int j = 0; j < B; j++) acc += G[(size_t)i * B + j] * s_emb[(size_t)j * C + c];
                    demb[(size_t)i * C + c] += (float)(w_sim * 4.0 * acc / B);
                }
            free(G);
        }
        ls /= B;
    }
    lc /= B, lm /= B;
    if (parts) parts->cos = lc, parts->mse = lm, parts->sim = ls;
    return w_cos * lc + w_mse * lm + w_sim * ls;
}

int dl_relation_heads(int As, int Hs, int Ap) {
    if (As <= 0 || Ap <= 0) return 0;
    if (Hs > 0 && As % Hs == 0 && Ap % Hs == 0) return Hs;
    const int cand[5] = {12, 8, 4, 2, 1};
    for (int i = 0; i < 5; i++)
        if (As % cand[i] == 0 && Ap % cand[i] == 0) return cand[i];
    return 1;
}

/* One relation (a, b) of one relation head in one sequence: rows a_i, b_j (stride floats apart) of width
 * d for the student (as, bs, ds) and parent (ap, bp, dp). Adds the KL sum over queries to *kl and
 * scale * (p_s - p_t) backpropagated into das / dbs (which may alias: the V-V relation). */
static double relation_kl(const float *as, const float *bs, int ss, int ds, const float *ap, const float *bp, int sp, int dp,
                          int L, double scale, float *das, float *dbs, float *ps, float *pt) {
    const double ks = 1.0 / sqrt((double)ds), kp = 1.0 / sqrt((double)dp);
    double kl = 0;
    for (int i = 0; i < L; i++) {
        double ms = -INFINITY, mp = -INFINITY;
        for (int j = 0; j < L; j++) {
            double x = 0, y = 0;
            for (int d = 0; d < ds; d++) x += (double)as[(size_t)i * ss + d] * bs[(size_t)j * ss + d];
            for (int d = 0; d < dp; d++) y += (double)ap[(size_t)i * sp + d] * bp[(size_t)j * sp + d];
            ps[j] = (float)(x * ks), pt[j] = (float)(y * kp);
            ms = ps[j] > ms ? ps[j] : ms;
            mp = pt[j] > mp ? pt[j] : mp;
        }
        double zs = 0, zp = 0;
        for (int j = 0; j < L; j++) zs += exp(ps[j] - ms), zp += exp(pt[j] - mp);
        const double lzs = log(zs) + ms, lzp = log(zp) + mp;
        for (int j = 0; j < L; j++) {
            const double lps = ps[j] - lzs, lpt = pt[j] - lzp, qt = exp(lpt);
            kl += qt * (lpt - lps);
            const double g = scale * (exp(lps) - qt) * ks; // d/d score, times the score scale
            for (int d = 0; d < ds; d++) {
                das[(size_t)i * ss + d] += (float)(g * bs[(size_t)j * ss + d]);
                dbs[(size_t)j * ss + d] += (float)(g * as[(size_t)i * ss + d]);
            }
        }
    }
    return kl;
}

double dl_relations(const float *qkv_s, int As, const float *qkv_p, int Ap, const int *off, const int *len, int B, int R,
                    float w, float *dqkv_s) {
    if (R <= 0 || As <= 0 || Ap <= 0 || w == 0.0f) return 0;
    int ntok = 0, maxL = 1;
    for (int b = 0; b < B; b++) ntok += len[b], maxL = len[b] > maxL ? len[b] : maxL;
    const int ds = As / R, dp = Ap / R, Ss = 3 * As, Sp = 3 * Ap;
    const double scale = w / (2.0 * R * (double)ntok);
    double total = 0;
    // each (sequence, relation head) writes its own rows x columns of dqkv_s: no races
#pragma omp parallel for schedule(dynamic) reduction(+ : total) if (B * R > 1)
    for (int br = 0; br < B * R; br++) {
        const int b = br / R, r = br % R, L = len[b];
        float *ps = malloc(2 * (size_t)maxL * sizeof(float));
        if (!ps) continue;
        float *pt = ps + maxL;
        const float *s0 = qkv_s + (size_t)off[b] * Ss + (size_t)r * ds, *p0 = qkv_p + (size_t)off[b] * Sp + (size_t)r * dp;
        float *g0 = dqkv_s + (size_t)off[b] * Ss + (size_t)r * ds;
        // attention: Q against K; value relation: V against V
        total += relation_kl(s0, s0 + As, Ss, ds, p0, p0 + Ap, Sp, dp, L, scale, g0, g0 + As, ps, pt);
        total += relation_kl(s0 + 2 * As, s0 + 2 * As, Ss, ds, p0 + 2 * Ap, p0 + 2 * Ap, Sp, dp, L, scale, g0 + 2 * As,
                             g0 + 2 * As, ps, pt);
        free(ps);
    }
    return w * total / (2.0 * R * (double)ntok);
}
