/* drift.c — drift checks between two telemetry windows (drift.h, docs/drift.md). */
#include "drift.h"

#include "yaml_config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void seslm_drift_config_default(seslm_drift_config *c) {
    *c = (seslm_drift_config){
        .mmd_alpha = 0.01,
        .mmd_min = 0.01,
        .mmd_permutations = 200,
        .mmd_max_sample = 300,
        .seed = 42,
        .frechet_max = 0.05,
        .min_embeddings = 20,
        .js_max = 0.10,
        .unseen_max = 0.05,
        .vocab_permutations = 20,
        .min_tokens = 200,
        .intent_js_max = 0.10,
    };
}

seslm_status seslm_drift_config_load(seslm_drift_config *c, const char *path) {
    seslm_drift_config_default(c);
    seslm_yaml *y = NULL;
    seslm_status st = seslm_yaml_load(&y, path);
    if (st != SESLM_OK) return st;
    static const char *const keys[] = {
        "embeddings.min_rows",        "embeddings.mmd.alpha",        "embeddings.mmd.min_mmd2",
        "embeddings.mmd.permutations", "embeddings.mmd.max_sample",  "embeddings.mmd.seed",
        "embeddings.frechet_diag.max", "vocabulary.js_excess_max",    "vocabulary.unseen_excess_max", "vocabulary.permutations",
        "vocabulary.min_tokens",       "intents.js_max",
    };
    long long perms = c->mmd_permutations, sample = c->mmd_max_sample, seed = (long long)c->seed,
              rows = c->min_embeddings, min_tokens = (long long)c->min_tokens, vperms = c->vocab_permutations;
    st = seslm_yaml_check_keys(y, keys, (int)(sizeof keys / sizeof keys[0]));
    if (st == SESLM_OK) st = seslm_yaml_get_int(y, "embeddings.min_rows", 2, 1000000, rows, &rows);
    if (st == SESLM_OK) st = seslm_yaml_get_double(y, "embeddings.mmd.alpha", 0, 1, c->mmd_alpha, &c->mmd_alpha);
    if (st == SESLM_OK) st = seslm_yaml_get_double(y, "embeddings.mmd.min_mmd2", 0, 2, c->mmd_min, &c->mmd_min);
    if (st == SESLM_OK) st = seslm_yaml_get_int(y, "embeddings.mmd.permutations", 1, 100000, perms, &perms);
    if (st == SESLM_OK) st = seslm_yaml_get_int(y, "embeddings.mmd.max_sample", 2, 100000, sample, &sample);
    if (st == SESLM_OK) st = seslm_yaml_get_int(y, "embeddings.mmd.seed", 0, INT64_MAX, seed, &seed);
    if (st == SESLM_OK)
        st = seslm_yaml_get_double(y, "embeddings.frechet_diag.max", 0, 1e9, c->frechet_max, &c->frechet_max);
    if (st == SESLM_OK) st = seslm_yaml_get_double(y, "vocabulary.js_excess_max", 0, 1, c->js_max, &c->js_max);
    if (st == SESLM_OK)
        st = seslm_yaml_get_double(y, "vocabulary.unseen_excess_max", 0, 1, c->unseen_max, &c->unseen_max);
    if (st == SESLM_OK) st = seslm_yaml_get_int(y, "vocabulary.permutations", 1, 10000, vperms, &vperms);
    if (st == SESLM_OK) st = seslm_yaml_get_int(y, "vocabulary.min_tokens", 0, INT64_MAX, min_tokens, &min_tokens);
    if (st == SESLM_OK) st = seslm_yaml_get_double(y, "intents.js_max", 0, 1, c->intent_js_max, &c->intent_js_max);
    c->mmd_permutations = (int)perms, c->mmd_max_sample = (int)sample, c->seed = (uint64_t)seed;
    c->min_embeddings = (int)rows, c->min_tokens = (uint64_t)min_tokens, c->vocab_permutations = (int)vperms;
    seslm_yaml_free(y);
    return st;
}

// ---- metrics ------------------------------------------------------------------------------------

static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static uint64_t rnd(uint64_t *s) {
    *s += 0x9e3779b97f4a7c15ull;
    return mix64(*s);
}

// k of n indices, uniformly without replacement (partial Fisher-Yates); idx has room for n
static void pick(int *idx, int n, int k, uint64_t *s) {
    for (int i = 0; i < n; i++) idx[i] = i;
    for (int i = 0; i < k; i++) {
        int j = i + (int)(rnd(s) % (uint64_t)(n - i));
        int t = idx[i];
        idx[i] = idx[j], idx[j] = t;
    }
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

// MMD^2 (biased) of the split given by lab (1: X side) over kernel K (N x N), nx rows labelled 1.
static double mmd2_of(const float *K, const unsigned char *lab, int N, int nx) {
    double sxx = 0, syy = 0, sxy = 0;
    for (int i = 0; i < N; i++) {
        const float *row = K + (size_t)i * N;
        double a = 0, b = 0;
        for (int j = 0; j < N; j++) {
            if (lab[j]) a += row[j];
            else b += row[j];
        }
        if (lab[i]) sxx += a, sxy += b;
        else syy += b;
    }
    const double ny = N - nx;
    return sxx / ((double)nx * nx) + syy / (ny * ny) - 2 * sxy / ((double)nx * ny);
}

seslm_status seslm_drift_mmd(const float *X, int n, const float *Y, int m, int d, int permutations, int max_sample,
                             uint64_t seed, seslm_mmd_result *out) {
    memset(out, 0, sizeof *out);
    if (n < 2 || m < 2 || d <= 0) return seslm_fail(SESLM_ERR_ARG, "MMD needs at least 2 rows on each side");
    if (max_sample < 2) max_sample = 2;
    const int nx = n < max_sample ? n : max_sample, ny = m < max_sample ? m : max_sample, N = nx + ny;
    int *ix = malloc((size_t)n * sizeof *ix), *iy = malloc((size_t)m * sizeof *iy);
    float *Z = malloc((size_t)N * d * sizeof *Z), *K = malloc((size_t)N * N * sizeof *K);
    float *dd = malloc(((size_t)N * (N - 1) / 2 + 1) * sizeof *dd);
    double *sq = malloc((size_t)N * sizeof *sq);
    unsigned char *lab = malloc((size_t)N);
    if (!ix || !iy || !Z || !K || !dd || !sq || !lab) {
        free(ix), free(iy), free(Z), free(K), free(dd), free(sq), free(lab);
        return seslm_fail(SESLM_ERR_NOMEM, "MMD: out of memory");
    }
    uint64_t s = seed ^ 0x6d6d64ull;
    pick(ix, n, nx, &s);
    pick(iy, m, ny, &s);
    for (int i = 0; i < nx; i++) memcpy(Z + (size_t)i * d, X + (size_t)ix[i] * d, (size_t)d * sizeof *Z);
    for (int i = 0; i < ny; i++) memcpy(Z + (size_t)(nx + i) * d, Y + (size_t)iy[i] * d, (size_t)d * sizeof *Z);
    for (int i = 0; i < N; i++) {
        double a = 0;
        for (int k = 0; k < d; k++) a += (double)Z[(size_t)i * d + k] * Z[(size_t)i * d + k];
        sq[i] = a;
    }
    size_t nd = 0;
    for (int i = 0; i < N; i++) {
        K[(size_t)i * N + i] = 0;
        for (int j = i + 1; j < N; j++) {
            const float *a = Z + (size_t)i * d, *b = Z + (size_t)j * d;
            float dot = 0;
            for (int k = 0; k < d; k++) dot += a[k] * b[k];
            double dist = sq[i] + sq[j] - 2.0 * dot;
            float v = dist > 0 ? (float)dist : 0.0f;
            K[(size_t)i * N + j] = K[(size_t)j * N + i] = v;
            dd[nd++] = v;
        }
    }
    qsort(dd, nd, sizeof *dd, cmp_float);
    double med = nd ? dd[nd / 2] : 1.0;
    if (!(med > 1e-12)) med = 1e-12;
    for (size_t i = 0; i < (size_t)N * N; i++) K[i] = (float)exp(-K[i] / med);
    for (int i = 0; i < N; i++) lab[i] = i < nx;
    const double obs = mmd2_of(K, lab, N, nx);
    int ge = 0;
    for (int p = 0; p < permutations; p++) {
        // a random relabelling with nx ones: shuffle lab
        for (int i = N - 1; i > 0; i--) {
            int j = (int)(rnd(&s) % (uint64_t)(i + 1));
            unsigned char t = lab[i];
            lab[i] = lab[j], lab[j] = t;
        }
        if (mmd2_of(K, lab, N, nx) >= obs - 1e-12) ge++;
    }
    out->mmd2 = obs;
    out->p_value = (1.0 + ge) / (1.0 + permutations);
    out->bandwidth = med;
    out->n_ref = nx, out->n_cur = ny, out->permutations = permutations;
    free(ix), free(iy), free(Z), free(K), free(dd), free(sq), free(lab);
    return SESLM_OK;
}

double seslm_drift_frechet_diag(const float *X, int n, const float *Y, int m, int d) {
    if (n < 1 || m < 1) return 0;
    double total = 0;
    for (int k = 0; k < d; k++) {
        double sx = 0, sxx = 0, sy = 0, syy = 0;
        for (int i = 0; i < n; i++) sx += X[(size_t)i * d + k], sxx += (double)X[(size_t)i * d + k] * X[(size_t)i * d + k];
        for (int i = 0; i < m; i++) sy += Y[(size_t)i * d + k], syy += (double)Y[(size_t)i * d + k] * Y[(size_t)i * d + k];
        double mx = sx / n, my = sy / m;
        double vx = sxx / n - mx * mx, vy = syy / m - my * my;
        double dx = sqrt(vx > 0 ? vx : 0), dy = sqrt(vy > 0 ? vy : 0);
        total += (mx - my) * (mx - my) + (dx - dy) * (dx - dy);
    }
    return total;
}

double seslm_drift_js(const uint64_t *p, const uint64_t *q, int n) {
    double sp = 0, sq = 0;
    for (int i = 0; i < n; i++) sp += (double)p[i], sq += (double)q[i];
    if (sp <= 0 || sq <= 0) return 0;
    double js = 0;
    for (int i = 0; i < n; i++) {
        double a = p[i] / sp, b = q[i] / sq, mm = 0.5 * (a + b);
        if (a > 0) js += 0.5 * a * log2(a / mm);
        if (b > 0) js += 0.5 * b * log2(b / mm);
    }
    return js < 0 ? 0 : js > 1 ? 1 : js;
}

double seslm_drift_unseen_rate(const uint64_t *ref, const uint64_t *cur, int n) {
    double tot = 0, unseen = 0;
    for (int i = 0; i < n; i++) {
        tot += (double)cur[i];
        if (ref[i] == 0) unseen += (double)cur[i];
    }
    return tot > 0 ? unseen / tot : 0;
}

seslm_status seslm_drift_vocab_null(const uint64_t *ref, const uint64_t *cur, int n, int permutations, uint64_t seed,
                                    double *js_mean, double *unseen_mean) {
    *js_mean = *unseen_mean = 0;
    double tr = 0, tc = 0;
    for (int i = 0; i < n; i++) tr += (double)ref[i], tc += (double)cur[i];
    if (tr <= 0 || tc <= 0 || permutations < 1) return SESLM_OK;
    const double cap = (double)(1 << 21), f = tr + tc > cap ? cap / (tr + tc) : 1.0;
    // the pooled tokens (thinned by f), and the reference's share of them
    size_t T = 0, nr = 0;
    for (int i = 0; i < n; i++) T += (size_t)llround(ref[i] * f) + (size_t)llround(cur[i] * f);
    for (int i = 0; i < n; i++) nr += (size_t)llround(ref[i] * f);
    uint32_t *pool = malloc((T ? T : 1) * sizeof *pool);
    uint64_t *a = calloc((size_t)n, sizeof *a), *b = calloc((size_t)n, sizeof *b);
    if (!pool || !a || !b) {
        free(pool), free(a), free(b);
        return seslm_fail(SESLM_ERR_NOMEM, "drift: out of memory");
    }
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        size_t c = (size_t)llround(ref[i] * f) + (size_t)llround(cur[i] * f);
        for (size_t j = 0; j < c; j++) pool[k++] = (uint32_t)i;
    }
    uint64_t s = seed ^ 0x766f63ull;
    for (int p = 0; p < permutations; p++) {
        memset(a, 0, (size_t)n * sizeof *a);
        memset(b, 0, (size_t)n * sizeof *b);
        for (size_t i = 0; i < nr && i + 1 < T; i++) { // the first nr of a random permutation
            size_t j = i + (size_t)(rnd(&s) % (uint64_t)(T - i));
            uint32_t t = pool[i];
            pool[i] = pool[j], pool[j] = t;
        }
        for (size_t i = 0; i < T; i++) (i < nr ? a : b)[pool[i]]++;
        *js_mean += seslm_drift_js(a, b, n);
        *unseen_mean += seslm_drift_unseen_rate(a, b, n);
    }
    *js_mean /= permutations, *unseen_mean /= permutations;
    free(pool), free(a), free(b);
    return SESLM_OK;
}

// ---- the comparison -------------------------------------------------------------------------------

static void set_check(seslm_drift_check *c, const char *name, double value, double thr, int fired) {
    c->name = name, c->value = value, c->threshold = thr;
    c->state = fired ? SESLM_CHECK_FIRED : SESLM_CHECK_OK;
    c->note[0] = 0;
    if (!isfinite(value)) { // NaN compares false with any threshold: fail safe, a check never goes quiet on it
        c->state = SESLM_CHECK_FIRED;
        snprintf(c->note, sizeof c->note, "the statistic is not finite (non-finite inputs?): reported as drift");
    }
}

static void skip_check(seslm_drift_check *c, const char *name, double thr, const char *note) {
    c->name = name, c->value = 0, c->threshold = thr, c->state = SESLM_CHECK_SKIPPED;
    snprintf(c->note, sizeof c->note, "%s", note);
}

seslm_status seslm_drift_compare(const seslm_telemetry_view *ref, const seslm_telemetry_view *cur,
                                 const seslm_drift_config *c, seslm_drift_result *r) {
    memset(r, 0, sizeof *r);
    if (ref->hidden != cur->hidden || ref->vocab_size != cur->vocab_size)
        return seslm_fail(SESLM_ERR_SHAPE, "drift: the reference (hidden %d, vocab %d) and the current window (%d, %d)"
                          " come from different models", ref->hidden, ref->vocab_size, cur->hidden, cur->vocab_size);
    const int d = ref->hidden;
    char note[160];
    // embeddings
    if (ref->n_reservoir < c->min_embeddings || cur->n_reservoir < c->min_embeddings) {
        snprintf(note, sizeof note, "insufficient data: %d reference and %d current embeddings, %d needed",
                 ref->n_reservoir, cur->n_reservoir, c->min_embeddings);
        skip_check(&r->checks[0], "embedding_mmd", c->mmd_alpha, note);
        skip_check(&r->checks[1], "embedding_frechet_diag", c->frechet_max, note);
    } else {
        seslm_status st = seslm_drift_mmd(ref->reservoir, ref->n_reservoir, cur->reservoir, cur->n_reservoir, d,
                                          c->mmd_permutations, c->mmd_max_sample, c->seed, &r->mmd);
        if (st != SESLM_OK) return st;
        set_check(&r->checks[0], "embedding_mmd", r->mmd.mmd2, c->mmd_min,
                  r->mmd.p_value < c->mmd_alpha && r->mmd.mmd2 >= c->mmd_min);
        double fd = seslm_drift_frechet_diag(ref->reservoir, ref->n_reservoir, cur->reservoir, cur->n_reservoir, d);
        if (c->frechet_max > 0) set_check(&r->checks[1], "embedding_frechet_diag", fd, c->frechet_max, fd > c->frechet_max);
        else {
            skip_check(&r->checks[1], "embedding_frechet_diag", 0, "no threshold configured (reported only)");
            r->checks[1].value = fd;
        }
    }
    // vocabulary
    if (ref->n_tokens < c->min_tokens || cur->n_tokens < c->min_tokens) {
        snprintf(note, sizeof note, "insufficient data: %llu reference and %llu current tokens, %llu needed",
                 (unsigned long long)ref->n_tokens, (unsigned long long)cur->n_tokens,
                 (unsigned long long)c->min_tokens);
        skip_check(&r->checks[2], "vocabulary_js", c->js_max, note);
        skip_check(&r->checks[3], "unseen_token_rate", c->unseen_max, note);
    } else {
        double js = seslm_drift_js(ref->token_counts, cur->token_counts, ref->vocab_size);
        double un = seslm_drift_unseen_rate(ref->token_counts, cur->token_counts, ref->vocab_size);
        double js0 = 0, un0 = 0;
        seslm_status st = seslm_drift_vocab_null(ref->token_counts, cur->token_counts, ref->vocab_size,
                                                 c->vocab_permutations, c->seed, &js0, &un0);
        if (st != SESLM_OK) return st;
        set_check(&r->checks[2], "vocabulary_js", js - js0, c->js_max, js - js0 > c->js_max);
        set_check(&r->checks[3], "unseen_token_rate", un - un0, c->unseen_max, un - un0 > c->unseen_max);
        r->checks[2].raw = js, r->checks[2].expected = js0;
        r->checks[3].raw = un, r->checks[3].expected = un0;
    }
    // intents: counts aligned by label
    if (ref->n_intents == 0 || cur->n_intents == 0) {
        skip_check(&r->checks[4], "intent_js", c->intent_js_max, "not recorded");
    } else {
        const int n = ref->n_intents + cur->n_intents;
        uint64_t *a = calloc((size_t)n, sizeof *a), *b = calloc((size_t)n, sizeof *b);
        if (!a || !b) {
            free(a), free(b);
            return seslm_fail(SESLM_ERR_NOMEM, "drift: out of memory");
        }
        for (int i = 0; i < ref->n_intents; i++) a[i] = ref->intent_counts[i];
        int extra = 0;
        for (int j = 0; j < cur->n_intents; j++) {
            int i = 0;
            while (i < ref->n_intents && strcmp(ref->intent_labels[i], cur->intent_labels[j]) != 0) i++;
            if (i == ref->n_intents) i = ref->n_intents + extra++;
            b[i] += cur->intent_counts[j];
        }
        double js = seslm_drift_js(a, b, ref->n_intents + extra);
        set_check(&r->checks[4], "intent_js", js, c->intent_js_max, js > c->intent_js_max);
        free(a), free(b);
    }
    for (int i = 0; i < SESLM_DRIFT_CHECKS; i++) r->drift |= r->checks[i].state == SESLM_CHECK_FIRED;
    return SESLM_OK;
}
