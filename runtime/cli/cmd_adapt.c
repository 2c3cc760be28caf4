/* cmd_adapt.c — `seslm adapt`: LoRA adapters trained on labelled feedback (SetFit-style pairs), merged
 * into a new model directory, and the eval gate that says whether it may go live (issue 18 §2, §3). */
#include "adapt.h"
#include "adapt_config.h"
#include "cli.h"
#include "intent.h"
#include "labelled.h"
#include "model_verify.h"
#include "parent.h"
#include "recompile.h"
#include "util.h"
#include "validate_stats.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char *HELP =
    "usage: seslm adapt --model DIR --feedback FILE --out DIR [options]\n"
    "       seslm adapt --config configs/adapt.yaml [options]   (the nightly job)\n"
    "\n"
    "Adapts the encoder to the intents of labelled feedback with LoRA (rank-r adapters on every layer's\n"
    "Q/K/V, attention-output and FFN projections), trained on pairs of examples in the manner of SetFit:\n"
    "same intent -> cosine 1, different intents -> cosine 0. Writes OUT/adapter.safetensors (the adapters),\n"
    "OUT/model/ (the adapters merged into the weights: same shapes as the base, tokenizer files\n"
    "byte-identical, lineage in config.json, and intent_head.safetensors: the default intent head fitted on\n"
    "all the feedback with the adapted embeddings, which a serving node swaps in with the model) and\n"
    "OUT/verdict.json, then gates it against the base in one\n"
    "run (docs/intent.md, \"Adapters\"):\n"
    "  - held-out feedback accuracy: the default intent head fitted on the training part of the feedback\n"
    "    with each model's embeddings, accuracy on the held-out part (cross-fitted by default: every\n"
    "    example, --folds); the adapted model must gain at least --min-gain (points), and the gain must not\n"
    "    be chance: McNemar's exact test on the held-out examples the two models disagree on, one-sided\n"
    "    p <= --max-p\n"
    "  - general quality: STS-B Spearman (data/eval/stsb_dev.tsv) may drop at most --max-stsb-drop points\n"
    "  - retrieval: recall@10 agreement with the base on data/eval/wiki_queries.txt over\n"
    "    data/eval/wiki_passages.txt at least --min-retrieval\n"
    "  - latency: the merged model must have the base's exact architecture (so the same cost); the\n"
    "    measured ratio is reported\n"
    "\n"
    "An INT8 student (seslm recompile / evolve) is adapted through its F32 master (DIR/master/, or the INT8\n"
    "weights widened to F32 when it has none): the merged projections are re-quantized per output channel as\n"
    "recompile quantizes, every other tensor (compressed embeddings included) is the base's byte for byte\n"
    "(so OUT/model/ runs at the base's speed), and OUT/model/master/ is the merged master when the base kept\n"
    "one (the next evolution cycle plans from it). 2:4-sparse students are refused.\n"
    "\n"
    "  --config FILE         a YAML file of these options (configs/adapt.yaml: the nightly job); flags\n"
    "                        given on the command line override it\n"
    "  --feedback FILE       labelled examples: TSV with a header naming \"text\" and \"label\" columns (or\n"
    "                        no header: text TAB label per line), or\n"
    "                        JSON lines {\"text\": ..., \"intent\": ...} (the body of POST /v1/feedback,\n"
    "                        what a node's --feedback-log writes); every line is checked first\n"
    "  --folds K             the gate cross-fitted on K folds (default 3): every example is held out once,\n"
    "                        predicted by an adapter and a head trained on the other K-1 folds, so the\n"
    "                        gate's test sees all the feedback (the power to tell a 1-2 point gain from\n"
    "                        chance with a few examples per intent); the adapter that ships is then trained\n"
    "                        on every example: K + 1 trainings. 0: one split by --holdout, one training\n"
    "  --holdout F           with --folds 0: share of each intent held out for the gate, never trained on\n"
    "                        (default 0.25)\n"
    "  --rank R              LoRA rank (default 8)          --alpha A   scale alpha/rank (default 16)\n"
    "  --steps N             optimiser steps (0: automatic) --pairs N   pairs per step (default 16)\n"
    "  --lr X                AdamW learning rate (5e-4)     --seed N    (default 42)\n"
    "  --threads N           CPU threads (0: all)           --max-tokens N (default 64)\n"
    "  --min-gain P          held-out accuracy gain needed, points (default 1)\n"
    "  --max-stsb-drop P     STS-B Spearman drop allowed, points (default 1)\n"
    "  --min-retrieval F     recall@10 agreement with the base (default 0.8)\n"
    "  --max-p P             the held-out gain's McNemar p-value, at most (default 0.05; 1 = no test)\n"
    "  --base-head-layers K  the gate's heads for the base read its last K layers, as the serving node's head\n"
    "                        does (0, default: as the base model's own intent_head.safetensors, else 3, the\n"
    "                        default of seslm intent train; 1 for a node serving an embedding head). The\n"
    "                        adapted model's heads read its embedding, what its adapters are trained on\n"
    "  --data-dir DIR        where stsb_dev.tsv, wiki_queries.txt, wiki_passages.txt are (default data/eval)\n"
    "  --general FILE        general text whose embeddings are anchored to the base's while adapting (keeps\n"
    "                        similarity and retrieval; default data/traffic/wiki_600.txt, none: \"-\"; use a\n"
    "                        sample of the node's served traffic where there is one)\n"
    "  --general-weight W    weight of the anchoring loss (default 8)\n"
    "  --objective inbatch|pairs|softmax  in-batch negatives: (anchor, positive) pairs of distinct intents,\n"
    "                        the other positives as negatives, cross-entropy over scaled cosines (default);\n"
    "                        pairs: SetFit's cosine loss on same / different-intent pairs; softmax: cross-\n"
    "                        entropy of a cosine classifier over the intents, trained with the adapters\n"
    "  --negatives near|random  in-batch: each batch holds an intent and its nearest intents (by the base's\n"
    "                        mean embeddings), so the negatives are the intents it is confused with\n"
    "                        (default near); random: intents drawn uniformly\n"
    "  --quiet               no progress lines\n"
    "\n"
    "Exit status: 0 the adapter passed every gate (register OUT/model and promote it like any model),\n"
    "1 a gate rejected it (the report says which), 2 usage error or bad input.\n";

static const char *CMD = "adapt";

// ---- labelled examples ----------------------------------------------------------------------------

typedef labelled_set labelled;

/* --feedback: JSON lines (a node's --feedback-log), or TSV with or without a header (runtime/core/labelled.h),
 * every line checked before anything is embedded. 1 ok, 0 error reported. */
static int read_feedback(const char *path, labelled *out) {
    if (labelled_read(out, path) != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        return 0;
    }
    if (out->skipped_partial)
        fprintf(stderr, "%s: %s: its last line has no line end and is not JSON (a write cut short): skipped\n", CMD, path);
    if (out->n < 4) {
        cli_error(CMD, "%s: %d labelled examples; the gate needs at least 4", path, out->n);
        return 0;
    }
    return 1;
}

/* Which rows the gate predicts, and with which model. fold[i] = -1: never held out (always trained on);
 * fold[i] = f >= 0: predicted by the head (and, cross-fitted, the adapter) trained without fold f.
 * K = 0, one split: per intent, a seeded shuffle, then floor(frac * count) rows held out in fold 0 (never
 * its last one); the adapter that ships is trained on the rest. K >= 2, cross-fitting: per intent, its rows in
 * shuffled order are dealt to the K folds, the deal continuing where the previous intent's stopped (so the
 * folds stay even); an intent with one example is never held out. Every other row is predicted once, by a
 * model that never saw it, and the adapter that ships is trained on every row. */
static void assign_folds(const labelled *l, double frac, int K, unsigned long long seed, int *fold) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    int *order = malloc((size_t)l->n * sizeof(int));
    for (int i = 0; i < l->n; i++) fold[i] = -1;
    if (!order) return; // nothing held out: the caller refuses to gate
    for (int i = 0; i < l->n; i++) order[i] = i;
    for (int i = l->n - 1; i > 0; i--) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        int j = (int)(s % (uint64_t)(i + 1)), t = order[i];
        order[i] = order[j], order[j] = t;
    }
    int deal = 0;
    for (int a = 0; a < l->n; a++) { // for each intent (at its first example in shuffled order)
        const char *lab = l->label[order[a]];
        int first = 1, count = 0;
        for (int b = 0; b < a; b++) first &= strcmp(l->label[order[b]], lab) != 0;
        if (!first) continue;
        for (int b = a; b < l->n; b++) count += strcmp(l->label[order[b]], lab) == 0;
        if (count < 2) continue;
        int take = K >= 2 ? count : (int)(frac * count);
        if (K < 2 && take >= count) take = count - 1;
        for (int b = a; b < l->n && take > 0; b++)
            if (strcmp(l->label[order[b]], lab) == 0) fold[order[b]] = K >= 2 ? deal++ % K : 0, take--;
    }
    free(order);
}

// ---- measuring --------------------------------------------------------------------------------------

static int embed_all(seslm_encoder *e, char *const *texts, int n, int C, float *out) {
    for (int i = 0; i < n; i += 32) {
        const int nb = n - i < 32 ? n - i : 32;
        if (seslm_encoder_embed_texts(e, (const char *const *)texts + i, NULL, nb, out + (size_t)i * C) != SESLM_OK) return 0;
    }
    return 1;
}

// The intent head's inputs: the features of the last k layers, k C wide (k 1: the embeddings).
static int features_all(seslm_encoder *e, char *const *texts, int n, int k, int C, float *out) {
    if (k <= 1) return embed_all(e, texts, n, C, out);
    for (int i = 0; i < n; i += 32) {
        const int nb = n - i < 32 ? n - i : 32;
        if (seslm_encoder_features_texts(e, (const char *const *)texts + i, NULL, nb, k, out + (size_t)i * k * C) != SESLM_OK)
            return 0;
    }
    return 1;
}

/* The default intent head fitted on the rows outside fold f, its answers on the rows of fold f: right[i] = 1
 * where it names row i's intent. 0 on failure. */
static int heldout_right(const float *X, char *const *labels, const int *fold, int f, int n, int C, int layers,
                         unsigned long long seed, unsigned char *right) {
    int ntr = 0;
    for (int i = 0; i < n; i++) ntr += fold[i] != f;
    float *Xtr = malloc((size_t)ntr * C * sizeof(float));
    const char **ltr = malloc((size_t)ntr * sizeof(char *));
    int ok = 0;
    if (Xtr && ltr) {
        for (int i = 0, k = 0; i < n; i++)
            if (fold[i] != f) memcpy(Xtr + (size_t)k * C, X + (size_t)i * C, (size_t)C * sizeof(float)), ltr[k++] = labels[i];
        seslm_intent_opts o;
        seslm_intent_opts_default(&o);
        o.input_dim = C, o.feature_layers = layers, o.seed = seed;
        seslm_intent_head *h = NULL;
        ok = seslm_intent_new(&h, &o) == SESLM_OK && seslm_intent_fit(h, Xtr, ltr, ntr) == SESLM_OK;
        for (int i = 0; ok && i < n; i++) {
            if (fold[i] != f) continue;
            seslm_intent_result r;
            right[i] = seslm_intent_predict(h, X + (size_t)i * C, NULL, &r) == SESLM_OK &&
                       strcmp(seslm_intent_label(h, r.index), labels[i]) == 0;
        }
        seslm_intent_free(h);
    }
    free(Xtr), free(ltr);
    return ok;
}

typedef struct {
    double stsb, embed_ms;
    unsigned char *right; // (n feedback rows) 1: a held-out row the head got right
    float *q, *p; // query / passage embeddings for retrieval agreement
} measures;

static int read_lines(const char *path, cli_texts *t) { return cli_texts_read_file(t, path); }

/* Where the adapted model's intent head goes and the out-of-scope thresholds it keeps; feature_layers: the
 * input of the base model's heads in the gate, what its node serves (the base head's choice; 3 without one, as
 * `seslm intent train`). The adapted model's heads, the gate's and the one it ships, read its embedding
 * (ADAPTED_LAYERS): the adapters are trained on the pooled last layer, and the layers below it move without being
 * trained for anything (CLINC150, the cross-fitted adapters of bench/RESULTS.md 13, 5 / 10 / 20 / 50 shots: the
 * 3-layer head -0.47 / -1.40 / +0.13 / -0.07 points against the embedding head on the adapted model). So the gate
 * compares what each side would serve. */
typedef struct {
    const char *path;
    float oos_threshold, min_in_scope;
    int feature_layers;
} head_out;

#define ADAPTED_LAYERS 1

/* The default intent head fitted on every feedback row (X: their embeddings by model m), saved as ho->path
 * bound to m's weights: a serving node that reloads to m answers with it (docs/intent.md "Adapters"). */
static int write_head(const seslm_model *m, const float *X, char *const *labels, int n, int C, unsigned long long seed,
                      const head_out *ho) {
    seslm_intent_opts o;
    seslm_intent_opts_default(&o);
    o.input_dim = C, o.feature_layers = ADAPTED_LAYERS, o.seed = seed;
    o.oos_threshold = ho->oos_threshold, o.min_in_scope = ho->min_in_scope;
    seslm_intent_head *h = NULL;
    int ok = seslm_intent_new(&h, &o) == SESLM_OK && seslm_intent_fit(h, X, (const char *const *)labels, n) == SESLM_OK &&
             seslm_intent_save(h, ho->path, seslm_model_weights_sha256(m)) == SESLM_OK;
    seslm_intent_free(h);
    if (!ok) cli_error(CMD, "the intent head for %s: %s", ho->path, seslm_last_error());
    return ok;
}

/* A base model that ships its own intent head (an earlier adapter's, or one a user placed there) passes its
 * out-of-scope thresholds on to the adapted model's head: a node that swaps to the adapted model rejects by
 * the same rules. No head: none (0). head_layers > 0 (--base-head-layers) says what the node serves instead of
 * the base head's own; it is checked against the base model here, before any adapter is trained. 1 ok, 0 error
 * (said). */
static int base_thresholds(const char *base_dir, int head_layers, head_out *ho) {
    char base_head[4300];
    snprintf(base_head, sizeof base_head, "%s/intent_head.safetensors", base_dir);
    struct stat st;
    ho->oos_threshold = 0, ho->min_in_scope = 0, ho->feature_layers = 3;
    seslm_model *m = NULL; // a shallower model: all its layers, as `seslm intent train` does
    const int L = seslm_model_load(&m, base_dir) == SESLM_OK ? seslm_model_get_config(m)->n_layers : 0;
    seslm_model_free(m);
    if (L > 0 && L < 3) ho->feature_layers = L;
    if (head_layers > 0 && L > 0 && head_layers > L) {
        cli_error(CMD, "--base-head-layers %d: the base model %s has %d layers", head_layers, base_dir, L);
        return 0;
    }
    if (stat(base_head, &st) != 0) {
        if (head_layers > 0) ho->feature_layers = head_layers;
        return 1;
    }
    seslm_intent_head *b = NULL;
    if (seslm_intent_load(&b, base_head, NULL) != SESLM_OK) {
        cli_error(CMD, "the base model's intent head (its out-of-scope thresholds): %s", seslm_last_error());
        return 0;
    }
    ho->oos_threshold = seslm_intent_oos_threshold(b), ho->min_in_scope = seslm_intent_min_in_scope(b);
    ho->feature_layers = head_layers > 0 ? head_layers : seslm_intent_feature_layers(b);
    seslm_intent_free(b);
    return 1;
}

/* One model: the held-out answers of its embeddings' intent head for folds f_lo..f_hi-1 (out->right), and with
 * general set, STS-B Spearman, the wiki embeddings and a timing (and, with head, its intent head on
 * every feedback row). */
static int measure(const char *model_dir, int threads, const labelled *fb, const int *fold, int f_lo, int f_hi,
                   int general, const cli_texts *sa, const cli_texts *sb, const double *gold, const cli_texts *qs,
                   const cli_texts *ps, unsigned long long seed, int layers, const head_out *head, measures *out) {
    seslm_model *m = NULL;
    seslm_encoder *e = NULL;
    if (seslm_model_load(&m, model_dir) != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        return 0;
    }
    seslm_encoder_opts eo = {.backend = "cpu", .n_threads = threads, .max_batch = 32, .max_seq_len = 128};
    int ok = seslm_encoder_new(&e, m, &eo) == SESLM_OK;
    const int C = seslm_model_get_config(m)->hidden, XC = C * layers; // XC: the heads' input width
    float *X = ok ? malloc((size_t)fb->n * XC * sizeof(float)) : NULL;
    const int ns = general ? sa->n : 0;
    float *A = ok ? malloc((size_t)(ns + 1) * C * sizeof(float)) : NULL, *B = ok ? malloc((size_t)(ns + 1) * C * sizeof(float)) : NULL;
    double *pred = ok ? malloc((size_t)(ns + 1) * sizeof(double)) : NULL;
    out->q = ok && general ? malloc((size_t)qs->n * C * sizeof(float)) : NULL;
    out->p = ok && general ? malloc((size_t)ps->n * C * sizeof(float)) : NULL;
    out->right = ok ? calloc((size_t)fb->n, 1) : NULL;
    ok = ok && X && A && B && pred && (!general || (out->q && out->p)) && out->right;
    ok = ok && features_all(e, fb->text, fb->n, layers, C, X);
    for (int f = f_lo; ok && f < f_hi; f++) ok = heldout_right(X, fb->label, fold, f, fb->n, XC, layers, seed, out->right);
    if (ok && head && !write_head(m, X, fb->label, fb->n, XC, seed, head)) {
        free(X), free(A), free(B), free(pred);
        seslm_encoder_free(e);
        seslm_model_free(m);
        return 0;
    }
    if (!general) goto finish;
    const double t0 = (double)clock() / CLOCKS_PER_SEC;
    ok = ok && embed_all(e, sa->texts, sa->n, C, A) && embed_all(e, sb->texts, sb->n, C, B);
    out->embed_ms = ((double)clock() / CLOCKS_PER_SEC - t0) * 1e3 / (2.0 * (sa->n > 0 ? sa->n : 1)); // CPU ms per text
    if (ok) {
        for (int i = 0; i < sa->n; i++) {
            double d = 0;
            for (int c = 0; c < C; c++) d += (double)A[(size_t)i * C + c] * B[(size_t)i * C + c];
            pred[i] = d;
        }
        out->stsb = seslm_stats_spearman(pred, gold, sa->n);
    }
    ok = ok && embed_all(e, qs->texts, qs->n, C, out->q) && embed_all(e, ps->texts, ps->n, C, out->p);
finish:
    if (!ok) cli_error(CMD, "%s: %s", model_dir, seslm_last_error());
    free(X), free(A), free(B), free(pred);
    seslm_encoder_free(e);
    seslm_model_free(m);
    return ok;
}

static void top10(const float *q, const float *P, int np, int C, int *idx) {
    double best[10];
    for (int k = 0; k < 10; k++) best[k] = -INFINITY, idx[k] = -1;
    for (int j = 0; j < np; j++) {
        double d = 0;
        for (int c = 0; c < C; c++) d += (double)q[c] * P[(size_t)j * C + c];
        if (d <= best[9]) continue;
        int k = 9;
        while (k > 0 && best[k - 1] < d) best[k] = best[k - 1], idx[k] = idx[k - 1], k--;
        best[k] = d, idx[k] = j;
    }
}

static double retrieval_agreement(const measures *a, const measures *b, int nq, int np, int C) {
    double s = 0;
    for (int i = 0; i < nq; i++) {
        int ia[10], ib[10], same = 0;
        top10(a->q + (size_t)i * C, a->p, np, C, ia);
        top10(b->q + (size_t)i * C, b->p, np, C, ib);
        for (int x = 0; x < 10; x++)
            for (int y = 0; y < 10; y++) same += ia[x] == ib[y] && ia[x] >= 0;
        s += same / 10.0;
    }
    return nq ? s / nq : NAN;
}

/* The STS-B file: sentence 1 <TAB> sentence 2 <TAB> gold score. */
static int read_stsb(const char *path, cli_texts *a, cli_texts *b, double **gold) {
    cli_texts lines = {0};
    if (!read_lines(path, &lines)) return 0;
    *gold = malloc((size_t)(lines.n + 1) * sizeof(double));
    int ok = *gold != NULL;
    for (int i = 0; ok && i < lines.n; i++) {
        char *l = lines.texts[i], *t1 = strchr(l, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        if (!t2) {
            cli_error(CMD, "%s:%d: sentence <TAB> sentence <TAB> score expected", path, i + 1);
            ok = 0;
            break;
        }
        (*gold)[a->n] = atof(t2 + 1);
        ok = cli_texts_add(a, l, (size_t)(t1 - l)) && cli_texts_add(b, t1 + 1, (size_t)(t2 - t1 - 1));
    }
    cli_texts_free(&lines);
    return ok;
}

// ---- training -----------------------------------------------------------------------------------

/* Adapters trained on the feedback rows outside fold f (f = INT_MIN: every row) of the F32 model m. */
static seslm_status train_rows(const adapt_opts *o, const seslm_model *m, const labelled *fb, const int *fold, int f,
                               lora *lo, adapt_report *rep) {
    const char **tt = malloc((size_t)fb->n * sizeof(char *)), **tl = malloc((size_t)fb->n * sizeof(char *));
    int ntr = 0;
    for (int i = 0; tt && tl && i < fb->n; i++)
        if (fold[i] != f) tt[ntr] = fb->text[i], tl[ntr++] = fb->label[i];
    seslm_status st = tt && tl ? adapt_train(o, m, tt, tl, ntr, lo, rep) : seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    free(tt), free(tl);
    return st;
}

/* The adapters merged into dir in the base's own format (INT8 bases re-quantized), lineage in config.json. */
static seslm_status write_model(const seslm_parent *par, const seslm_model *served, const lora *lo, const char *dir,
                                const char *lineage) {
    return served ? adapt_write_served(served, par->m, par->kind == SESLM_PARENT_MASTER, lo, dir, lineage)
                  : adapt_write_merged(par->m, lo, dir, lineage);
}

// ---- the command --------------------------------------------------------------------------------

/* The value of --config in argv (NULL: none): the file is read before the flags, which override it. */
static const char *config_arg(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) path = argv[++i];
    return path;
}

int cmd_adapt(int argc, char **argv) {
    static adapt_config cf; // static: the option strings point into it
    adapt_config_defaults(&cf);
    const char *config = config_arg(argc, argv);
    if (config && adapt_config_load(&cf, config) != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        return 2;
    }
    const char *model = cf.model[0] ? cf.model : NULL, *feedback = cf.feedback[0] ? cf.feedback : NULL,
               *out = cf.out[0] ? cf.out : NULL, *data_dir = cf.data_dir, *general = cf.general;
    adapt_opts o;
    adapt_opts_default(&o);
    o.rank = cf.rank, o.steps = cf.steps, o.pairs = cf.pairs, o.threads = cf.threads, o.max_tokens = cf.max_tokens;
    double holdout = cf.holdout, min_gain = cf.min_gain, max_stsb_drop = cf.max_stsb_drop, min_retrieval = cf.min_retrieval;
    double max_p = cf.max_p;
    int quiet = 0, folds = cf.folds, base_head_layers = cf.base_head_layers;
    // the order of ADAPT_PAIRS / ADAPT_INBATCH / ADAPT_SOFTMAX
    int objective_i = strcmp(cf.objective, "pairs") == 0 ? ADAPT_PAIRS : strcmp(cf.objective, "softmax") == 0 ? ADAPT_SOFTMAX : ADAPT_INBATCH;
    cli_choice objective = {&objective_i, "pairs|inbatch|softmax"};
    int negatives_i = strcmp(cf.negatives, "random") == 0 ? ADAPT_NEG_RANDOM : ADAPT_NEG_NEAR; // the enum's order
    cli_choice negatives = {&negatives_i, "random|near"};
    double w_general = cf.general_weight, alpha = cf.alpha, lr = cf.lr, seed = (double)cf.seed;
    const cli_arg args[] = {
        {"--config", CLI_ARG_STR, &config, 0, 0},
        {"--model", CLI_ARG_STR, &model, 0, 0},
        {"--feedback", CLI_ARG_STR, &feedback, 0, 0},
        {"--out", CLI_ARG_STR, &out, 0, 0},
        {"--data-dir", CLI_ARG_STR, &data_dir, 0, 0},
        {"--objective", CLI_ARG_CHOICE, &objective, 0, 0},
        {"--negatives", CLI_ARG_CHOICE, &negatives, 0, 0},
        {"--general", CLI_ARG_STR, &general, 0, 0},
        {"--general-weight", CLI_ARG_NUM, &w_general, 0, 1000},
        {"--holdout", CLI_ARG_NUM, &holdout, 0, 0.9}, // (ends excluded below)
        {"--folds", CLI_ARG_INT, &folds, 0, 20},
        {"--base-head-layers", CLI_ARG_INT, &base_head_layers, 0, 64},
        {"--rank", CLI_ARG_INT, &o.rank, 1, 256},
        {"--alpha", CLI_ARG_NUM, &alpha, 0, 1e4},
        {"--steps", CLI_ARG_INT, &o.steps, 0, 1000000},
        {"--pairs", CLI_ARG_INT, &o.pairs, 1, 512},
        {"--lr", CLI_ARG_NUM, &lr, 0, 1},
        {"--seed", CLI_ARG_NUM, &seed, 0, 1e19},
        {"--threads", CLI_ARG_INT, &o.threads, 0, 1024},
        {"--max-tokens", CLI_ARG_INT, &o.max_tokens, 2, 512},
        {"--min-gain", CLI_ARG_NUM, &min_gain, -100, 100},
        {"--max-stsb-drop", CLI_ARG_NUM, &max_stsb_drop, 0, 100},
        {"--min-retrieval", CLI_ARG_NUM, &min_retrieval, 0, 1},
        {"--max-p", CLI_ARG_NUM, &max_p, 0, 1},
        {"--quiet", CLI_ARG_FLAG, &quiet, 0, 0},
        {NULL, 0, NULL, 0, 0},
    };
    int prc = cli_parse_args(CMD, HELP, args, argc, argv, NULL);
    if (prc >= 0) return prc;
    // open intervals: a hold-out of 0 measures nothing; a zero scale or rate trains nothing
    const struct { const char *name; double x, lo, hi; } open_ends[] = {
        {"--holdout", holdout, 0, 0.9}, {"--alpha", alpha, 0, 1e4}, {"--lr", lr, 0, 1}};
    for (size_t k = 0; k < sizeof open_ends / sizeof open_ends[0]; k++)
        if (!(open_ends[k].x > open_ends[k].lo && open_ends[k].x < open_ends[k].hi)) {
            cli_error(CMD, "%s must be a number in (%g, %g), ends excluded (got %g)", open_ends[k].name, open_ends[k].lo,
                      open_ends[k].hi, open_ends[k].x);
            return 2;
        }
    if (folds == 1) {
        cli_error(CMD, "--folds must be 0 (one split by --holdout) or 2..20 (cross-fitted gate), got 1");
        return 2;
    }
    if (seed != floor(seed)) {
        cli_error(CMD, "--seed must be a whole number (got %g)", seed);
        return 2;
    }
    o.objective = objective_i, o.negatives = negatives_i;
    if (general && !strcmp(general, "-")) general = NULL;
    o.w_general = (float)w_general, o.alpha = (float)alpha, o.lr = (float)lr, o.seed = (unsigned long long)seed;
    if (!model || !feedback || !out) {
        cli_error(CMD, "--model, --feedback and --out are required, as flags or in --config (see seslm adapt --help)");
        return 2;
    }
    o.progress = !quiet;
    labelled fb = {0};
    if (!read_feedback(feedback, &fb)) {
        labelled_free(&fb);
        return 2;
    }
    int *fold = calloc((size_t)fb.n, sizeof(int));
    char stsb_path[4096], q_path[4096], p_path[4096];
    snprintf(stsb_path, sizeof stsb_path, "%s/stsb_dev.tsv", data_dir);
    snprintf(q_path, sizeof q_path, "%s/wiki_queries.txt", data_dir);
    snprintf(p_path, sizeof p_path, "%s/wiki_passages.txt", data_dir);
    cli_texts sa = {0}, sb = {0}, qs = {0}, ps = {0}, gen = {0};
    double *gold = NULL;
    unsigned char *cf_right = NULL; // cross-fitted: the fold models' answers on the rows they never saw
    int rc = 2, hidden = 0;
    const char *base_format = "f32";
    if (!fold || !read_stsb(stsb_path, &sa, &sb, &gold) || !read_lines(q_path, &qs) || !read_lines(p_path, &ps)) goto done;
    if (general && !read_lines(general, &gen)) goto done;
    o.general = (const char *const *)gen.texts, o.n_general = gen.n;
    assign_folds(&fb, holdout, folds, o.seed, fold);
    const int K = folds >= 2 ? folds : 1; // the folds the gate predicts
    int nho = 0;
    for (int i = 0; i < fb.n; i++) nho += fold[i] >= 0;
    const int ntr = folds >= 2 ? fb.n : fb.n - nho; // the rows the adapter that ships is trained on
    if (nho == 0) {
        cli_error(CMD, "%s: no intent has 2 or more examples to hold one out: the gate cannot measure anything", feedback);
        goto done;
    }
    head_out ho = {0}; // a damaged base head fails here, before any training
    if (!base_thresholds(model, base_head_layers, &ho)) goto done; // (--base-head-layers: what the node serves)
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        cli_error(CMD, "cannot create %s: %s", out, strerror(errno));
        goto done;
    }
    // the weights the adapters are trained on: the base itself when it is F32, else its F32 master (or the
    // base widened to F32); the merged model is then written back in the base's own format (INT8)
    seslm_parent par;
    if (seslm_parent_load(&par, model) != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        goto done;
    }
    const seslm_model *m = par.m;
    hidden = seslm_model_get_config(m)->hidden;
    seslm_model *served = NULL;
    if (par.kind != SESLM_PARENT_F32 && seslm_model_load(&served, model) != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        seslm_parent_free(&par);
        goto done;
    }
    base_format = par.kind == SESLM_PARENT_F32 ? "f32" : seslm_model_is_quantized(served) ? "int8" : "f32 (master kept)";
    if (!quiet && par.kind != SESLM_PARENT_F32)
        fprintf(stderr, "adapt: %s is quantized: training on its %s (%s), the merged model re-quantized as the base is\n",
                model, seslm_parent_kind_name(par.kind), par.weights_dir);
    lora lo;
    adapt_report rep;
    seslm_status st = SESLM_OK;
    char merged[4200], path[4200], cfdir[4200];
    snprintf(merged, sizeof merged, "%s/model", out);
    snprintf(cfdir, sizeof cfdir, "%s/crossfit", out);
    if (!quiet)
        fprintf(stderr, folds >= 2 ? "adapt: the adapter: training on all %d examples\n"
                                   : "adapt: %d examples for training, %d held out for the gate\n",
                ntr, nho);
    st = train_rows(&o, m, &fb, fold, folds >= 2 ? INT_MIN : 0, &lo, &rep);
    if (st == SESLM_OK) {
        char lin[2400];
        snprintf(lin, sizeof lin,
                 "{\"method\":\"lora-setfit\",\"objective\":\"%s\",\"negatives\":\"%s\",\"general\":\"%s\",\"general_weight\":%g,\"rank\":%d,\"alpha\":%g,\"steps\":%d,\"pairs\":%d,\"lr\":%g,\"seed\":%llu,"
                 "\"feedback\":\"%s\",\"examples_train\":%d,\"examples_holdout\":%d,\"gate\":\"%s\",\"folds\":%d,\"loss_first\":%.6f,\"loss_last\":%.6f,"
                 "\"base_format\":\"%s\",\"trained_on\":\"%s\"}",
                 adapt_objective_name(o.objective), o.negatives == ADAPT_NEG_NEAR ? "near" : "random", general ? general : "", (double)o.w_general, o.rank, (double)o.alpha, rep.steps_done, o.pairs, (double)o.lr, o.seed, feedback, ntr, nho,
                 folds >= 2 ? "crossfit" : "holdout", folds >= 2 ? folds : 0, rep.loss_first, rep.loss_last, base_format, seslm_parent_kind_name(par.kind));
        snprintf(path, sizeof path, "%s/adapter.safetensors", out);
        st = lora_save(&lo, path, par.served_sha256);
        if (st == SESLM_OK) st = write_model(&par, served, &lo, merged, lin);
        lora_free(&lo);
    }
    // cross-fitting: one adapter per fold, trained without it, answers for its rows (after the adapter that ships,
    // so that bad input or an occupied --out fails before the longer part)
    if (st == SESLM_OK && folds >= 2) {
        cf_right = calloc((size_t)fb.n, 1);
        if (!cf_right) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        util_rmtree(cfdir); // a crashed run's leftovers (only this command writes there)
        if (st == SESLM_OK && mkdir(cfdir, 0755) != 0) st = seslm_fail(SESLM_ERR_IO, "cannot create %s: %s", cfdir, strerror(errno));
        for (int f = 0; f < K && st == SESLM_OK; f++) {
            int nf = 0;
            for (int i = 0; i < fb.n; i++) nf += fold[i] == f;
            if (!quiet)
                fprintf(stderr, "adapt: gate fold %d/%d: training on %d examples, %d held out\n", f + 1, K, fb.n - nf, nf);
            char fdir[4300];
            snprintf(fdir, sizeof fdir, "%s/fold-%d", cfdir, f);
            adapt_report frep;
            st = train_rows(&o, m, &fb, fold, f, &lo, &frep);
            if (st == SESLM_ERR_ARG) { // the whole feedback trained; two thirds of it cannot
                char why[512];
                snprintf(why, sizeof why, "%s", seslm_last_error());
                st = seslm_fail(SESLM_ERR_ARG, "too few examples to cross-fit the gate on %d folds (fold %d: %s): use "
                                               "--folds 0 (one split by --holdout) or more feedback", K, f + 1, why);
            }
            if (st != SESLM_OK) break;
            st = write_model(&par, served, &lo, fdir, "{\"method\":\"lora-setfit\",\"gate_fold\":true}");
            lora_free(&lo);
            measures mf = {0};
            if (st == SESLM_OK && !measure(fdir, o.threads, &fb, fold, f, f + 1, 0, &sa, &sb, gold, &qs, &ps, o.seed, ADAPTED_LAYERS, NULL, &mf))
                st = seslm_fail(SESLM_ERR_IO, "measuring %s failed", fdir);
            for (int i = 0; st == SESLM_OK && i < fb.n; i++)
                if (fold[i] == f) cf_right[i] = mf.right[i];
            free(mf.right);
            util_rmtree(fdir);
        }
        util_rmtree(cfdir);
        if (st != SESLM_OK) { // no verdict: take back the adapter this run wrote, so --out can be used again
            util_rmtree(merged);
            remove(path);
        }
    }
    seslm_model_free(served);
    seslm_parent_free(&par);
    if (st != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        goto done;
    }
    // the gate: base and adapted measured in one run
    if (!quiet) fprintf(stderr, "adapt: measuring the base and the adapted model\n");
    measures mb = {0}, ma = {0};
    // the adapted model carries the head fitted on its embeddings of all the feedback (a node swaps to it with
    // the model); the directory's SHA256SUMS, if the base format has one, is written again to list it
    char head_path[4300], sums[4300];
    snprintf(head_path, sizeof head_path, "%s/intent_head.safetensors", merged);
    snprintf(sums, sizeof sums, "%s/%s", merged, SESLM_MANIFEST_NAME);
    struct stat sst;
    const int has_sums = stat(sums, &sst) == 0;
    // cross-fitted, the shipped adapter saw every row: its held-out answers are the fold models'
    ho.path = head_path;
    if (!measure(model, o.threads, &fb, fold, 0, K, 1, &sa, &sb, gold, &qs, &ps, o.seed, ho.feature_layers, NULL, &mb) ||
        !measure(merged, o.threads, &fb, fold, 0, folds >= 2 ? 0 : 1, 1, &sa, &sb, gold, &qs, &ps, o.seed, ADAPTED_LAYERS,
                 &ho, &ma) ||
        (has_sums && model_manifest_write(merged) != SESLM_OK && (cli_error(CMD, "%s", seslm_last_error()), 1))) {
        free(mb.q), free(mb.p), free(ma.q), free(ma.p), free(mb.right), free(ma.right);
        goto done;
    }
    if (cf_right) memcpy(ma.right, cf_right, (size_t)fb.n);
    const int C = hidden;
    double agree = retrieval_agreement(&mb, &ma, qs.n, ps.n, C);
    // the held-out rows the two models disagree on: a gain of a few examples out of ~100 is chance
    int wins = 0, losses = 0, right_b = 0, right_a = 0;
    for (int i = 0; i < fb.n; i++)
        if (fold[i] >= 0) {
            wins += ma.right[i] && !mb.right[i], losses += mb.right[i] && !ma.right[i];
            right_b += mb.right[i], right_a += ma.right[i];
        }
    const double acc_b = (double)right_b / nho, acc_a = (double)right_a / nho;
    const double gain = 100 * (acc_a - acc_b), drop = 100 * (mb.stsb - ma.stsb);
    const double p_gain = seslm_stats_mcnemar_greater(wins, losses);
    const int pass_acc = gain >= min_gain && (max_p >= 1 || p_gain <= max_p), pass_stsb = drop <= max_stsb_drop, pass_ret = agree >= min_retrieval;
    const int accepted = pass_acc && pass_stsb && pass_ret; // same architecture: by construction of the merge
    cJSON *v = cJSON_CreateObject();
    cJSON_AddBoolToObject(v, "accepted", accepted);
    cJSON_AddStringToObject(v, "base", model);
    cJSON_AddStringToObject(v, "adapted", merged);
    cJSON_AddStringToObject(v, "format", base_format); // the base's, which the merged model keeps
    cJSON *ih = cJSON_AddObjectToObject(v, "intent_head"); // what a serving node swaps in with the model
    cJSON_AddStringToObject(ih, "path", head_path);
    cJSON_AddNumberToObject(ih, "examples", fb.n);
    cJSON_AddStringToObject(ih, "fitted_on", "every feedback row (training and held out), the adapted embeddings");
    cJSON_AddNumberToObject(ih, "feature_layers", ADAPTED_LAYERS);
    cJSON *hi = cJSON_AddObjectToObject(v, "head_inputs"); // what the gate's heads read on each side
    cJSON_AddNumberToObject(hi, "base_feature_layers", ho.feature_layers);
    cJSON_AddNumberToObject(hi, "adapted_feature_layers", ADAPTED_LAYERS);
    cJSON *gm = cJSON_AddObjectToObject(v, "heldout"); // how the gate held feedback out
    cJSON_AddStringToObject(gm, "method", folds >= 2 ? "crossfit" : "holdout");
    if (folds >= 2) cJSON_AddNumberToObject(gm, "folds", folds);
    else cJSON_AddNumberToObject(gm, "share", holdout);
    cJSON_AddNumberToObject(gm, "examples", nho);
    cJSON *tr = cJSON_AddObjectToObject(v, "training");
    cJSON_AddNumberToObject(tr, "examples", ntr);
    cJSON_AddNumberToObject(tr, "steps", rep.steps_done);
    cJSON_AddNumberToObject(tr, "seconds", rep.seconds);
    cJSON_AddNumberToObject(tr, "loss_first", rep.loss_first);
    cJSON_AddNumberToObject(tr, "loss_last", rep.loss_last);
    cJSON *mc = cJSON_AddObjectToObject(v, "heldout_gain_test");
    cJSON_AddStringToObject(mc, "test", "McNemar exact, one-sided");
    cJSON_AddNumberToObject(mc, "wins", wins);     // held-out rows only the adapted model got right
    cJSON_AddNumberToObject(mc, "losses", losses); // ... only the base got right
    cJSON_AddNumberToObject(mc, "p_value", p_gain);
    cJSON_AddNumberToObject(mc, "max_p", max_p);
    cJSON_AddBoolToObject(mc, "pass", max_p >= 1 || p_gain <= max_p);
    cJSON *g = cJSON_AddArrayToObject(v, "gates");
    struct {
        const char *name, *data, *rule;
        double base, adapted, value, threshold;
        int pass;
    } rows[] = {
        {"heldout_feedback_accuracy_gain", feedback, "min (points); McNemar p <= max_p", 100 * acc_b, 100 * acc_a, gain, min_gain, pass_acc},
        {"stsb_spearman_drop", stsb_path, "max (points)", 100 * mb.stsb, 100 * ma.stsb, drop, max_stsb_drop, pass_stsb},
        {"retrieval_recall10_agreement", q_path, "min", 1, agree, agree, min_retrieval, pass_ret},
        {"latency_same_architecture", "config.json", "merged weights, identical shapes", mb.embed_ms, ma.embed_ms,
         mb.embed_ms > 0 ? ma.embed_ms / mb.embed_ms : NAN, 1, 1},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "gate", rows[i].name);
        cJSON_AddStringToObject(r, "data", rows[i].data);
        cJSON_AddStringToObject(r, "rule", rows[i].rule);
        cJSON_AddNumberToObject(r, "base", rows[i].base);
        cJSON_AddNumberToObject(r, "adapted", rows[i].adapted);
        cJSON_AddNumberToObject(r, "value", rows[i].value);
        cJSON_AddNumberToObject(r, "threshold", rows[i].threshold);
        cJSON_AddBoolToObject(r, "pass", rows[i].pass);
        cJSON_AddItemToArray(g, r);
    }
    char *txt = cJSON_Print(v);
    cJSON_Delete(v);
    free(mb.q), free(mb.p), free(ma.q), free(ma.p), free(mb.right), free(ma.right);
    snprintf(path, sizeof path, "%s/verdict.json", out);
    FILE *vf = txt ? fopen(path, "w") : NULL;
    if (!vf || fputs(txt, vf) < 0 || fclose(vf) != 0) {
        cli_error(CMD, "cannot write %s", path);
        free(txt);
        goto done;
    }
    puts(txt);
    free(txt);
    fprintf(stderr, "adapt: %s (held-out accuracy %+.2f points, %d wins / %d losses, McNemar p %.3g; STS-B %+.2f, "
                    "retrieval agreement %.3f)\n",
            accepted ? "ACCEPTED" : "REJECTED", gain, wins, losses, p_gain, -drop, agree);
    rc = accepted ? 0 : 1;
done:
    free(fold), free(gold), free(cf_right);
    cli_texts_free(&sa), cli_texts_free(&sb), cli_texts_free(&qs), cli_texts_free(&ps), cli_texts_free(&gen);
    labelled_free(&fb);
    return rc;
}
