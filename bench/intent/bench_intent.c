/* bench_intent.c — few-shot learning curves, out-of-scope detection and online-update latency of the
 * intent head (runtime/assist/intent.h) on a real data set, plus single-text embedding latency.
 *
 *   bench_intent --model DIR --name NAME --train TSV --test TSV [--oos TSV --val TSV --val-oos TSV]
 *                --shots 5,10,20,50 --seeds N --out DIR [--threads N] [--updates N] [--first-seed S]
 *                [--feature-layers K] [--early-weight W] [--stream TSV]
 *
 * Seeds S..S+N-1 (default S = 1): a long cell can be split over processes, each with its own --out.
 * --feature-layers K: the head's inputs are seslm_encoder_features_texts of the last K layers (K x hidden
 * wide) instead of the embeddings (K = 1, default); the peers read the same features. --early-weight W: the
 * head's weight of the earlier layers' blocks (default 0.7, as `seslm intent train`; 1: equal blocks).
 * --stream TSV: after each run's measures, its head learns every row of TSV online (seslm_intent_learn, one
 * labelled row at a time, as a node's feedback arrives; the rows in a seeded order) and the test split is
 * scored again: "stream_accuracy" (new intents in TSV are added; "stream_new_accuracy" on the test rows of
 * intents the training file lacks, "stream_known_accuracy" on the others; "ece_before" and "stream_ece": the
 * 15-bin expected calibration error of the test rows' confidences before and after). --online-lr F, --online-steps N,
 * --online-max-steps N, --online-replay N: the head's online learning rate, least and most steps per update,
 * replayed rows per step (defaults as seslm_intent_opts_default).
 *
 * Writes OUT/NAME_<split>.f32 (the embeddings, row-major float32, rows in TSV order) and
 * OUT/NAME_splits.txt (one line per run: "k seed i1 i2 ...", the training rows) so the scikit-learn
 * peer (peer_sklearn.py) trains on exactly the same features and examples. Prints one JSON line per
 * run and one for the latencies on stdout. */
#include "intent.h"
#include "seslm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    char **text, **label;
    int n;
} tsv;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int read_tsv(const char *path, tsv *t) {
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "r");
    if (!f) return fprintf(stderr, "bench_intent: cannot open %s\n", path), -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int ln = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        if (ln++ == 0) continue; // header: text<TAB>label
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = 0;
        t->text = realloc(t->text, (size_t)(t->n + 1) * sizeof(char *));
        t->label = realloc(t->label, (size_t)(t->n + 1) * sizeof(char *));
        t->text[t->n] = strdup(line);
        t->label[t->n] = strdup(tab + 1);
        t->n++;
    }
    free(line);
    fclose(f);
    return 0;
}

static int feature_layers = 1;

static float *embed_all(seslm_encoder *e, const tsv *t, int D) {
    float *X = malloc((size_t)t->n * D * sizeof(float));
    for (int i = 0; i < t->n; i += 32) {
        int nb = t->n - i < 32 ? t->n - i : 32;
        size_t lens[32];
        for (int k = 0; k < nb; k++) lens[k] = strlen(t->text[i + k]);
        const char *const *tx = (const char *const *)t->text + i;
        if ((feature_layers > 1 ? seslm_encoder_features_texts(e, tx, lens, nb, feature_layers, X + (size_t)i * D)
                                : seslm_encoder_embed_texts(e, tx, lens, nb, X + (size_t)i * D)) != SESLM_OK) {
            fprintf(stderr, "bench_intent: %s\n", seslm_last_error());
            exit(1);
        }
    }
    return X;
}

/* Reuses OUT/NAME_SPLIT.f32 when --reuse-embeddings and it has exactly n floats (same TSV, same model). */
static float *load_f32(const char *dir, const char *name, const char *split, size_t n) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s_%s.f32", dir, name, split);
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    float *X = malloc(n * sizeof(float) + 1);
    size_t got = X ? fread(X, sizeof(float), n + 1, f) : 0;
    fclose(f);
    if (got != n) {
        free(X);
        return NULL;
    }
    return X;
}

static void save_f32(const char *dir, const char *name, const char *split, const float *X, size_t n) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s_%s.f32", dir, name, split);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(X, sizeof(float), n, f) != n) {
        fprintf(stderr, "bench_intent: cannot write %s\n", p);
        exit(1);
    }
    fclose(f);
}

static uint64_t sm(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double quantile(double *v, int n, double q) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return v[(int)fmin(n - 1, floor(q * (n - 1) + 0.5))];
}

/* AUROC of "score higher for in-scope": P(score_in > score_oos) + 0.5 P(tie). */
/* Expected calibration error over 15 equal-width confidence bins (Guo et al. 2017): the mean |accuracy -
 * confidence| of the bins, weighted by their rows. */
static double ece15(const float *conf, const unsigned char *right, int n) {
    double acc[15] = {0}, cs[15] = {0}, cnt[15] = {0}, e = 0;
    for (int i = 0; i < n; i++) {
        int b = (int)(conf[i] * 15);
        b = b < 0 ? 0 : b > 14 ? 14 : b;
        acc[b] += right[i], cs[b] += conf[i], cnt[b]++;
    }
    for (int b = 0; b < 15; b++) e += fabs(acc[b] - cs[b]);
    return n ? e / n : 0;
}

static double auroc(const float *in, int nin, const float *oos, int noos) {
    double s = 0;
    for (int i = 0; i < nin; i++)
        for (int j = 0; j < noos; j++) s += in[i] > oos[j] ? 1 : in[i] == oos[j] ? 0.5 : 0;
    return s / ((double)nin * noos);
}

int main(int argc, char **argv) {
    const char *model = "models/all-MiniLM-L6-v2", *name = NULL, *trp = NULL, *tep = NULL, *oosp = NULL, *valp = NULL,
               *voosp = NULL, *out = "bench/out", *shots_s = "5,10,20,50", *streamp = NULL;
    int seeds = 3, threads = 2, updates = 200, reuse = 0, first_seed = 1;
    seslm_intent_opts base;
    seslm_intent_opts_default(&base);
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--name")) name = v;
        else if (!strcmp(a, "--train")) trp = v;
        else if (!strcmp(a, "--test")) tep = v;
        else if (!strcmp(a, "--oos")) oosp = v;
        else if (!strcmp(a, "--val")) valp = v;
        else if (!strcmp(a, "--val-oos")) voosp = v;
        else if (!strcmp(a, "--stream")) streamp = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--shots")) shots_s = v;
        else if (!strcmp(a, "--seeds")) seeds = atoi(v);
        else if (!strcmp(a, "--first-seed")) first_seed = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--updates")) updates = atoi(v);
        else if (!strcmp(a, "--reuse-embeddings")) reuse = atoi(v);
        else if (!strcmp(a, "--feature-layers")) feature_layers = atoi(v);
        else if (!strcmp(a, "--epochs")) base.epochs = atoi(v);
        else if (!strcmp(a, "--weight-decay")) base.weight_decay = (float)atof(v);
        else if (!strcmp(a, "--lr")) base.lr = (float)atof(v);
        else if (!strcmp(a, "--online-lr")) base.online_lr = (float)atof(v);
        else if (!strcmp(a, "--online-steps")) base.online_steps = atoi(v);
        else if (!strcmp(a, "--online-max-steps")) base.online_max_steps = atoi(v);
        else if (!strcmp(a, "--online-replay")) base.online_replay = atoi(v);
        else if (!strcmp(a, "--calib-frac")) base.calib_frac = (float)atof(v);
        else if (!strcmp(a, "--early-weight")) base.early_weight = (float)atof(v);
        else if (!strcmp(a, "--hidden") && !strcmp(v, "auto")) base.n_hidden = SESLM_INTENT_AUTO;
        else if (!strcmp(a, "--hidden")) {
            base.n_hidden = 0;
            for (const char *p = v; *p && base.n_hidden < SESLM_INTENT_MAX_HIDDEN;) {
                int w = atoi(p);
                if (w > 0) base.hidden[base.n_hidden++] = w;
                p = strchr(p, ',');
                if (!p) break;
                p++;
            }
        }
        else return fprintf(stderr, "bench_intent: unknown option %s\n", a), 2;
    }
    if (!name || !trp || !tep) return fprintf(stderr, "usage: see the comment at the top of bench_intent.c\n"), 2;
    tsv tr, te, oos = {0}, val = {0}, voos = {0}, sm_ = {0};
    if (read_tsv(trp, &tr) || read_tsv(tep, &te) || (oosp && read_tsv(oosp, &oos)) || (valp && read_tsv(valp, &val)) ||
        (voosp && read_tsv(voosp, &voos)) || (streamp && read_tsv(streamp, &sm_)))
        return 1;
    seslm_model *m = NULL;
    seslm_encoder *e = NULL;
    seslm_encoder_opts eo = {.backend = "cpu", .n_threads = threads, .max_batch = 32};
    if (seslm_model_load(&m, model) != SESLM_OK || seslm_encoder_new(&e, m, &eo) != SESLM_OK)
        return fprintf(stderr, "bench_intent: %s\n", seslm_last_error()), 1;
    if (feature_layers < 1 || feature_layers > seslm_model_get_config(m)->n_layers)
        return fprintf(stderr, "bench_intent: --feature-layers must be 1..%d\n", seslm_model_get_config(m)->n_layers), 2;
    const int D = seslm_model_get_config(m)->hidden * feature_layers;

    // single-text embedding latency (batch 1), the first up to 200 test texts, after 5 warm-up calls
    const int nl = te.n < 200 ? te.n : 200;
    double *lat = malloc((size_t)(nl > updates ? nl : updates) * sizeof(double));
    float tmp[4096];
    for (int i = 0; i < nl + 5; i++) {
        const char *s = te.text[i % nl];
        size_t len = strlen(s);
        double t0 = now_s();
        seslm_encoder_embed_texts(e, &s, &len, 1, tmp);
        if (i >= 5) lat[i - 5] = (now_s() - t0) * 1e3;
    }
    double emb_p50 = quantile(lat, nl, 0.5), emb_p90 = quantile(lat, nl, 0.9);

    double t0 = now_s();
#define EMB(t, split) ((t).n ? (reuse ? load_f32(out, name, split, (size_t)(t).n * D) : NULL) : NULL)
    float *Xtr = EMB(tr, "train"), *Xte = EMB(te, "test"), *Xoos = EMB(oos, "oos"), *Xval = EMB(val, "val"),
          *Xvoos = EMB(voos, "val_oos"), *Xsm = EMB(sm_, "stream");
    if (!Xtr) Xtr = embed_all(e, &tr, D);
    if (!Xte) Xte = embed_all(e, &te, D);
    if (!Xoos && oos.n) Xoos = embed_all(e, &oos, D);
    if (!Xval && val.n) Xval = embed_all(e, &val, D);
    if (!Xvoos && voos.n) Xvoos = embed_all(e, &voos, D);
    if (!Xsm && sm_.n) Xsm = embed_all(e, &sm_, D);
    const int n_emb = tr.n + te.n + oos.n + val.n + voos.n + sm_.n;
    double emb_s = now_s() - t0;
    save_f32(out, name, "train", Xtr, (size_t)tr.n * D);
    save_f32(out, name, "test", Xte, (size_t)te.n * D);
    if (Xoos) save_f32(out, name, "oos", Xoos, (size_t)oos.n * D);
    if (Xval) save_f32(out, name, "val", Xval, (size_t)val.n * D);
    if (Xvoos) save_f32(out, name, "val_oos", Xvoos, (size_t)voos.n * D);
    if (Xsm) save_f32(out, name, "stream", Xsm, (size_t)sm_.n * D);

    // classes of the training file, in first-appearance order; rows of each
    char **cls = NULL;
    int C = 0, *cy = malloc((size_t)tr.n * sizeof(int));
    for (int i = 0; i < tr.n; i++) {
        int j = 0;
        while (j < C && strcmp(cls[j], tr.label[i]) != 0) j++;
        if (j == C) cls = realloc(cls, (size_t)(C + 1) * sizeof(char *)), cls[C++] = tr.label[i];
        cy[i] = j;
    }
    char sp[4096];
    snprintf(sp, sizeof sp, "%s/%s_splits.txt", out, name);
    FILE *splits = fopen(sp, "w");
    int shots[16], ns = 0;
    for (const char *p = shots_s; *p && ns < 16;) {
        shots[ns++] = atoi(p);
        p = strchr(p, ',');
        if (!p) break;
        p++;
    }
    int *idx = malloc((size_t)tr.n * sizeof(int)), *perm = malloc((size_t)tr.n * sizeof(int));
    const char **labs = malloc((size_t)tr.n * sizeof(char *));
    float *Xk = malloc((size_t)tr.n * D * sizeof(float));
    float *sin_ = malloc((size_t)(te.n + 1) * sizeof(float)), *soos = malloc((size_t)(oos.n + 1) * sizeof(float));
    float *cte = malloc((size_t)(te.n + 1) * sizeof(float)); // the test rows' confidences and correctness
    unsigned char *okte = malloc((size_t)te.n + 1);
    float *pin = malloc((size_t)(te.n + 1) * sizeof(float)), *pout = malloc((size_t)(oos.n + 1) * sizeof(float));
    seslm_intent_head *last = NULL;
    char impl[128] = "seslm-auto"; // the default head: capacity chosen by cross-validation
    if (base.n_hidden != SESLM_INTENT_AUTO) {
        snprintf(impl, sizeof impl, "seslm-mlp");
        for (int i = 0; i < base.n_hidden; i++) snprintf(impl + strlen(impl), sizeof impl - strlen(impl), "-%d", base.hidden[i]);
        if (base.n_hidden == 0) snprintf(impl + strlen(impl), sizeof impl - strlen(impl), "-linear");
    }
    if (feature_layers > 1) snprintf(impl + strlen(impl), sizeof impl - strlen(impl), "-f%d", feature_layers);
    if (base.epochs) snprintf(impl + strlen(impl), sizeof impl - strlen(impl), "-e%d", base.epochs);
    if (base.weight_decay != 1e-4f) snprintf(impl + strlen(impl), sizeof impl - strlen(impl), "-wd%g", (double)base.weight_decay);
    for (int si = 0; si < ns; si++) {
        for (int seed = first_seed; seed < first_seed + seeds; seed++) {
            // k rows per class: a seeded shuffle of all rows, then the first k of each class
            uint64_t rs = (uint64_t)seed * 1000003u + (uint64_t)shots[si];
            for (int i = 0; i < tr.n; i++) perm[i] = i;
            for (int i = tr.n - 1; i > 0; i--) {
                int j = (int)(sm(&rs) % (uint64_t)(i + 1)), t = perm[i];
                perm[i] = perm[j], perm[j] = t;
            }
            int *cnt = calloc((size_t)C, sizeof(int)), n = 0;
            for (int q = 0; q < tr.n; q++) {
                int i = perm[q];
                if (cnt[cy[i]]++ < shots[si]) idx[n++] = i;
            }
            free(cnt);
            fprintf(splits, "%d %d", shots[si], seed);
            for (int q = 0; q < n; q++) {
                fprintf(splits, " %d", idx[q]);
                memcpy(Xk + (size_t)q * D, Xtr + (size_t)idx[q] * D, (size_t)D * sizeof(float));
                labs[q] = tr.label[idx[q]];
            }
            fprintf(splits, "\n");
            seslm_intent_opts o = base;
            o.input_dim = D, o.feature_layers = feature_layers; // the head knows its input is k layers' features
            o.seed = (uint64_t)seed;
            seslm_intent_head *h = NULL;
            double f0 = now_s();
            if (seslm_intent_new(&h, &o) != SESLM_OK || seslm_intent_fit(h, Xk, labs, n) != SESLM_OK)
                return fprintf(stderr, "bench_intent: %s\n", seslm_last_error()), 1;
            double fit_s = now_s() - f0;
            int right = 0;
            for (int i = 0; i < te.n; i++) {
                seslm_intent_result r;
                seslm_intent_predict(h, Xte + (size_t)i * D, NULL, &r);
                okte[i] = strcmp(seslm_intent_label(h, r.index), te.label[i]) == 0;
                right += okte[i];
                sin_[i] = cte[i] = r.confidence;
            }
            printf("{\"dataset\":\"%s\",\"impl\":\"%s\",\"k\":%d,\"seed\":%d,\"n_train\":%d,\"accuracy\":%.6f,"
                   "\"fit_seconds\":%.3f,\"temperature\":%.4f",
                   name, impl, shots[si], seed, n, (double)right / te.n, fit_s, (double)seslm_intent_temperature(h));
            const seslm_intent_selection *sel = seslm_intent_get_selection(h);
            if (sel->folds > 0)
                printf(",\"C\":%g,\"folds\":%d,\"mlp\":%d,\"mlp_cv_accuracy\":%.4f,\"cv_accuracy\":%.4f", sel->C,
                       sel->folds, sel->mlp, isnan(sel->mlp_cv_accuracy) ? -1.0 : sel->mlp_cv_accuracy,
                       isnan(sel->cv_accuracy) ? -1.0 : sel->cv_accuracy);
            float olr, owd;
            seslm_intent_online_rate(h, &olr, &owd);
            printf(",\"online_lr\":%.4g", (double)olr);
            if (Xoos) { // the in-scope p-value (conformal, scaled max logit) at a fixed level, no tuning on oos rows
                int rin = 0, roos = 0;
                for (int i = 0; i < te.n; i++) {
                    seslm_intent_result r;
                    seslm_intent_predict(h, Xte + (size_t)i * D, NULL, &r);
                    pin[i] = r.in_scope, rin += r.in_scope < 0.05f;
                }
                for (int i = 0; i < oos.n; i++) {
                    seslm_intent_result r;
                    seslm_intent_predict(h, Xoos + (size_t)i * D, NULL, &r);
                    pout[i] = r.in_scope, roos += r.in_scope < 0.05f;
                }
                if (!isnan(pin[0]))
                    printf(",\"in_scope_auroc\":%.6f,\"in_scope_reject_inscope_05\":%.6f,\"in_scope_oos_recall_05\":%.6f",
                           auroc(pin, te.n, pout, oos.n), (double)rin / te.n, (double)roos / oos.n);
            }
            if (Xoos && Xval && Xvoos) {
                for (int i = 0; i < oos.n; i++) {
                    seslm_intent_result r;
                    seslm_intent_predict(h, Xoos + (size_t)i * D, NULL, &r);
                    soos[i] = r.confidence;
                }
                // a threshold on the validation split: maximise (in-scope accuracy + oos recall) / 2, for the
                // confidence (score 0) and the in-scope p-value (score 1); then both on the test split
                float *cv = malloc((size_t)(val.n + voos.n) * sizeof(float));
                int *okv = malloc((size_t)val.n * sizeof(int));
                for (int score = 0; score < 2; score++) {
                    for (int i = 0; i < val.n; i++) {
                        seslm_intent_result r;
                        seslm_intent_predict(h, Xval + (size_t)i * D, NULL, &r);
                        cv[i] = score ? r.in_scope : r.confidence;
                        okv[i] = strcmp(seslm_intent_label(h, r.index), val.label[i]) == 0;
                    }
                    for (int i = 0; i < voos.n; i++) {
                        seslm_intent_result r;
                        seslm_intent_predict(h, Xvoos + (size_t)i * D, NULL, &r);
                        cv[val.n + i] = score ? r.in_scope : r.confidence;
                    }
                    if (score && isnan(cv[0])) break;
                    double best = -1, thr = 0;
                    for (int c = 0; c < val.n + voos.n; c++) {
                        double t = cv[c], a = 0, rc = 0;
                        for (int i = 0; i < val.n; i++) a += okv[i] && cv[i] >= t;
                        for (int i = 0; i < voos.n; i++) rc += cv[val.n + i] < t;
                        double sc = a / val.n + rc / voos.n;
                        if (sc > best) best = sc, thr = t;
                    }
                    const float *sti = score ? pin : sin_, *sto = score ? pout : soos;
                    double ia = 0, orc = 0;
                    for (int i = 0; i < te.n; i++) {
                        seslm_intent_result r;
                        seslm_intent_predict(h, Xte + (size_t)i * D, NULL, &r);
                        ia += sti[i] >= thr && strcmp(seslm_intent_label(h, r.index), te.label[i]) == 0;
                    }
                    for (int i = 0; i < oos.n; i++) orc += sto[i] < thr;
                    if (score)
                        printf(",\"in_scope_threshold\":%.6f,\"in_scope_inscope_accuracy\":%.6f,\"in_scope_oos_recall\":%.6f",
                               thr, ia / te.n, orc / oos.n);
                    else
                        printf(",\"oos_auroc\":%.6f,\"oos_threshold\":%.6f,\"inscope_accuracy\":%.6f,\"oos_recall\":%.6f",
                               auroc(sin_, te.n, soos, oos.n), thr, ia / te.n, orc / oos.n);
                }
                free(cv), free(okv);
            }
            if (Xsm) { // online learning on the stream's rows, one at a time in a seeded order; then the test again
                int *ord = malloc((size_t)sm_.n * sizeof(int)), steps = 0, total = 0;
                for (int i = 0; i < sm_.n; i++) ord[i] = i;
                uint64_t ss = (uint64_t)seed * 7919u + 17u;
                for (int i = sm_.n - 1; i > 0; i--) {
                    int j = (int)(sm(&ss) % (uint64_t)(i + 1)), t = ord[i];
                    ord[i] = ord[j], ord[j] = t;
                }
                double s0 = now_s();
                for (int q = 0; q < sm_.n; q++) {
                    const char *l = sm_.label[ord[q]];
                    if (seslm_intent_learn(h, Xsm + (size_t)ord[q] * D, &l, 1, 1, &steps) != SESLM_OK)
                        return fprintf(stderr, "bench_intent: %s\n", seslm_last_error()), 1;
                    total += steps;
                }
                double stream_s = now_s() - s0;
                int ok = 0, nnew = 0, oknew = 0; // and on the test rows of intents the pool lacks (learned online)
                const double ece0 = ece15(cte, okte, te.n);
                for (int i = 0; i < te.n; i++) {
                    seslm_intent_result r;
                    seslm_intent_predict(h, Xte + (size_t)i * D, NULL, &r);
                    const int right = strcmp(seslm_intent_label(h, r.index), te.label[i]) == 0;
                    okte[i] = (unsigned char)right, cte[i] = r.confidence;
                    int known = 0;
                    for (int c = 0; c < C && !known; c++) known = strcmp(cls[c], te.label[i]) == 0;
                    ok += right, nnew += !known, oknew += !known && right;
                }
                printf(",\"stream_rows\":%d,\"stream_accuracy\":%.6f,\"stream_seconds\":%.2f,\"stream_steps_mean\":%.2f",
                       sm_.n, (double)ok / te.n, stream_s, (double)total / sm_.n);
                // calibration of the confidences on the test rows, before and after (the temperature is the fit's)
                printf(",\"ece_before\":%.4f,\"stream_ece\":%.4f", ece0, ece15(cte, okte, te.n));
                if (nnew)
                    printf(",\"stream_new_rows\":%d,\"stream_new_accuracy\":%.6f,\"stream_known_accuracy\":%.6f", nnew,
                           (double)oknew / nnew, (double)(ok - oknew) / (te.n - nnew));
                free(ord);
            }
            printf("}\n");
            fflush(stdout);
            seslm_intent_free(last);
            last = h;
        }
    }
    fclose(splits);

    // online updates on the last head: test examples with their true label, one at a time (known
    // intents), then new intents (labels the head has not seen)
    double *steps = malloc((size_t)updates * sizeof(double));
    int fixed = 0, nu = updates < te.n ? updates : te.n;
    for (int u = 0; u < nu; u++) {
        const float *x = Xte + (size_t)u * D;
        const char *l = te.label[u];
        int st = 0;
        double u0 = now_s();
        if (seslm_intent_learn(last, x, &l, 1, 1, &st) != SESLM_OK) return fprintf(stderr, "%s\n", seslm_last_error()), 1;
        lat[u] = (now_s() - u0) * 1e3;
        steps[u] = st;
        seslm_intent_result r;
        seslm_intent_predict(last, x, NULL, &r);
        fixed += strcmp(seslm_intent_label(last, r.index), l) == 0;
    }
    double up50 = quantile(lat, nu, 0.5), up90 = quantile(lat, nu, 0.9), upmax = quantile(lat, nu, 1.0),
           st50 = quantile(steps, nu, 0.5);
    double nlat[20];
    for (int u = 0; u < 20; u++) {
        char lab[32];
        snprintf(lab, sizeof lab, "new_intent_%d", u);
        const char *l = lab;
        double u0 = now_s();
        seslm_intent_learn(last, Xte + (size_t)(u * 7 % te.n) * D, &l, 1, 1, NULL);
        nlat[u] = (now_s() - u0) * 1e3;
    }
    printf("{\"dataset\":\"%s\",\"impl\":\"%s\",\"latency\":true,\"threads\":%d,\"embed_ms_p50\":%.3f,"
           "\"embed_ms_p90\":%.3f,\"embed_texts_per_s_batch32\":%.1f,\"update_ms_p50\":%.3f,\"update_ms_p90\":%.3f,"
           "\"update_ms_max\":%.3f,\"update_steps_p50\":%.0f,\"updates\":%d,\"learned_after_update\":%.4f," // -1: no updates
           "\"new_intent_update_ms_p50\":%.3f,\"classes_at_updates\":%d}\n",
           name, impl, threads, emb_p50, emb_p90, n_emb / emb_s, up50, up90, upmax, st50, nu, nu ? (double)fixed / nu : -1.0,
           quantile(nlat, 20, 0.5), seslm_intent_n_classes(last));
    seslm_intent_free(last);
    seslm_encoder_free(e);
    seslm_model_free(m);
    return 0;
}
