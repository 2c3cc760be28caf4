/* cmd_intent.c — `seslm intent train|predict|learn`: the intent head on frozen sentence embeddings
 * (runtime/assist/intent.h, docs/intent.md). */
#include "cli.h"
#include "util.h"
#include "intent.h"
#include "labelled.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int cli_embed_all(const char *cmd, const cli_opts *o, seslm_model **model_out, float **out);

static const char *HELP =
    "usage: seslm intent train   --model DIR --data FILE [--data FILE...] --out HEAD [training options]\n"
    "       seslm intent predict --model DIR --head HEAD [--threshold P] [--min-in-scope A]\n"
    "                            [TEXT... | --input FILE]\n"
    "       seslm intent learn   --model DIR --head HEAD --text T --label L [--text T --label L ...]\n"
    "                            [--no-new-intents]\n"
    "\n"
    "An intent classifier on the frozen model's features, with calibrated confidences, an out-of-scope\n"
    "threshold and online learning. Its input is the output of the model's last 3 layers, each pooled as\n"
    "the model pools and normalised (0.4-2.2 points more accurate than the sentence embedding alone on\n"
    "CLINC150, SNIPS and Restaurant-8k; --feature-layers 1 for the embedding). By default its capacity is\n"
    "chosen from the data: a linear head whose L2 strength is chosen by stratified cross-validation,\n"
    "replaced by a 256-wide MLP only when that is better out of fold (docs/intent.md).\n"
    "\n"
    "train    reads labelled examples (--data: TSV whose header names a \"text\" and a \"label\" column,\n"
    "         headerless text TAB label lines, or JSON lines {\"text\", \"intent\"} as a serving node's\n"
    "         --feedback-log writes them; every line is checked first; --data again adds another\n"
    "         file's examples, e.g. the training set and a node's feedback log), embeds the texts and\n"
    "         trains the head (auto: cross-validated choice, temperature from out-of-fold logits; an\n"
    "         explicit --hidden: Adam, temperature fitted on a held-out part); writes HEAD (safetensors)\n"
    "         crash-safely and prints a JSON summary (with the selection made).\n"
    "           --hidden auto|W[,W...] \"auto\" (default), or hidden widths (\"\" or 0: a linear head\n"
    "                                 trained by Adam; 128,64 was the default before)\n"
    "           --epochs N            0 = automatic (default)     --batch-size N   (default 32)\n"
    "           --lr F                Adam learning rate (1e-3)   --weight-decay F (1e-4)\n"
    "           --seed N              (default 42)                --calib-frac F   (default 0.2)\n"
    "           --oos-threshold P     out of scope below this confidence (default 0: off)\n"
    "           --min-in-scope A      out of scope when in_scope (below) is under A (default 0: off; A = 0.05\n"
    "                                 rejects about 5% of in-scope inputs)\n"
    "           --replay-per-class N  examples kept per intent for online replay (default 16)\n"
    "           --feature-layers K    the head's input: the last K layers of the model (default 3, or\n"
    "                                 all it has if fewer; 1, the sentence embedding, for a model a LoRA\n"
    "                                 adapter was merged into). Recorded in HEAD: predict, learn and\n"
    "                                 seslm serve compute the same\n"
    "           --early-weight W      with K > 1: the earlier layers' weight against the last (default 0.7;\n"
    "                                 1: equal blocks; 0.001..10); folded into HEAD\n"
    "predict  prints one JSON line per input: {\"index\", \"intent\" (null when out of scope), \"top\",\n"
    "         \"confidence\", \"in_scope\", \"out_of_scope\", \"probabilities\": {label: p, ...}}. in_scope is\n"
    "         a conformal p-value: the share of the training examples, each scored by a head that did not\n"
    "         see it, whose scaled max logit is at most the input's (null for a head saved\n"
    "         before it); it ranks out-of-scope inputs better than the confidence. --threshold and\n"
    "         --min-in-scope override the head's out-of-scope thresholds.\n"
    "learn    online update from the given examples (a few Adam steps mixed with replayed examples);\n"
    "         a new label adds an intent unless --no-new-intents; HEAD is rewritten crash-safely.\n"
    "\n"
    "  --model DIR    model directory; default $SESLM_MODEL_DIR or models/all-MiniLM-L6-v2\n"
    "  --threads N    worker threads, 0 = all cores\n"
    "\n"
    "Exit status: 0 ok, 1 a file could not be read or written, 2 usage error or invalid input.\n";

static int parse_hidden(const char *v, seslm_intent_opts *o) {
    o->n_hidden = 0;
    if (!v) {
        cli_error("intent", "--hidden needs a value");
        return 0;
    }
    if (strcmp(v, "auto") == 0) {
        o->n_hidden = SESLM_INTENT_AUTO;
        return 1;
    }
    if (!*v || strcmp(v, "0") == 0) return 1;
    for (const char *p = v; *p;) {
        char *end = NULL;
        long w = strtol(p, &end, 10);
        if (end == p || w < 1 || w > 65536 || o->n_hidden == SESLM_INTENT_MAX_HIDDEN || (*end && *end != ',')) {
            cli_error("intent", "--hidden must be up to %d widths in 1..65536 separated by commas (got '%s')",
                      SESLM_INTENT_MAX_HIDDEN, v);
            return 0;
        }
        o->hidden[o->n_hidden++] = (int)w;
        p = *end ? end + 1 : end;
    }
    return 1;
}

// ---- the examples -------------------------------------------------------------------------------------

/* The labelled examples of --data (JSON lines, or TSV with or without a header: runtime/core/labelled.h), as
 * texts and labels; 0 ok, 1 unreadable, 2 malformed. Every line is checked before anything is embedded. */
static int read_examples(const char *path, cli_texts *texts, cli_texts *labels) {
    labelled_set ls;
    seslm_status st = labelled_read(&ls, path);
    if (st != SESLM_OK) {
        cli_error("intent", "%s", seslm_last_error());
        labelled_free(&ls);
        return st == SESLM_ERR_IO || st == SESLM_ERR_NOMEM ? 1 : 2;
    }
    if (ls.skipped_partial)
        fprintf(stderr, "intent: %s: its last line has no line end and is not JSON (a write cut short): skipped\n", path);
    for (int i = 0; i < ls.n; i++)
        if (!cli_texts_add(texts, ls.text[i], strlen(ls.text[i])) || !cli_texts_add(labels, ls.label[i], strlen(ls.label[i]))) {
            cli_error("intent", "out of memory");
            labelled_free(&ls);
            return 1;
        }
    labelled_free(&ls);
    return 0;
}

/* The head's inputs for t: features of the last k layers (k 1: the embeddings). */
static int embed(const char *model_dir, int threads, int k, cli_texts *t, seslm_model **m, float **X) {
    cli_opts o;
    memset(&o, 0, sizeof o);
    o.model_dir = model_dir;
    o.backend = "cpu";
    o.batch = 32;
    o.threads = threads;
    o.feature_layers = k;
    o.texts = *t;
    int rc = cli_embed_all("intent", &o, m, X);
    return rc ? (seslm_last_error()[0] && strstr(seslm_last_error(), "UTF-8") ? 2 : 1) : 0;
}

/* Whether the head takes this model's features (before anything is embedded). */
static int check_head_model(const seslm_intent_head *h, const seslm_model *m, const char *head_sha, const char *path) {
    const seslm_model_config *c = seslm_model_get_config(m);
    const int k = seslm_intent_feature_layers(h);
    if (k > c->n_layers || seslm_intent_input_dim(h) != k * c->hidden) {
        cli_error("intent", "%s takes %d-d inputs (%d layer%s), the model gives %d-d per layer and has %d layers", path,
                  seslm_intent_input_dim(h), k, k == 1 ? "" : "s", c->hidden, c->n_layers);
        return 2;
    }
    const char *sha = seslm_model_weights_sha256(m);
    if (head_sha[0] && sha[0] && strcmp(head_sha, sha) != 0)
        fprintf(stderr, "seslm intent: warning: %s was trained on embeddings of another model (weights %.12s, now %.12s)\n",
                path, head_sha, sha);
    return 0;
}

// ---- train ----------------------------------------------------------------------------------------------

/* The default input of a head for the model in dir: its last 3 layers, all of them when it has fewer; its
 * embedding (1) when config.json's seslm_lineage names an adapter: LoRA adapters are trained on the pooled
 * last layer and move the layers below untrained, where a 3-layer head loses to the embedding one
 * (docs/intent.md "Adapters"). */
static int default_layers(const char *dir, const seslm_model *m) {
    char p[4200], *txt = NULL;
    size_t len = 0;
    snprintf(p, sizeof p, "%s/config.json", dir);
    int k = seslm_model_get_config(m)->n_layers < 3 ? seslm_model_get_config(m)->n_layers : 3;
    if (util_read_file(p, &txt, &len, 1 << 22, NULL) == SESLM_OK) {
        cJSON *j = cJSON_ParseWithLength(txt, len);
        if (cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "seslm_lineage"), "adapter")) k = 1;
        cJSON_Delete(j);
    }
    free(txt);
    return k;
}

static int do_train(int argc, char **argv) {
    const char *model_dir = cli_default_model_dir(), *out = NULL;
    const char *data_v[64];
    cli_list data_l = {data_v, 0, 64}; // --data, repeatable
    int threads = 0;
    seslm_intent_opts o;
    seslm_intent_opts_default(&o);
    const char *hidden = NULL;
    int seed = (int)o.seed, feature_layers = 0; // 0: default_layers
    double lr = o.lr, weight_decay = o.weight_decay, calib_frac = o.calib_frac, oos = o.oos_threshold,
           min_in_scope = o.min_in_scope, early_weight = o.early_weight;
    const cli_arg args[] = {
        {"--model", CLI_ARG_STR, &model_dir, 0, 0},
        {"--data", CLI_ARG_LIST, &data_l, 0, 0},
        {"--out", CLI_ARG_STR, &out, 0, 0},
        {"--threads", CLI_ARG_INT, &threads, 0, 1024},
        {"--hidden", CLI_ARG_STR, &hidden, 0, 0},
        {"--epochs", CLI_ARG_INT, &o.epochs, 0, 100000},
        {"--batch-size", CLI_ARG_INT, &o.batch, 1, 65536},
        {"--replay-per-class", CLI_ARG_INT, &o.replay_per_class, 1, 100000},
        {"--seed", CLI_ARG_INT, &seed, 0, 2147483647},
        {"--lr", CLI_ARG_NUM, &lr, 1e-9, 1},
        {"--weight-decay", CLI_ARG_NUM, &weight_decay, 0, 10},
        {"--calib-frac", CLI_ARG_NUM, &calib_frac, 0, 0.5},
        {"--oos-threshold", CLI_ARG_NUM, &oos, 0, 1},
        {"--min-in-scope", CLI_ARG_NUM, &min_in_scope, 0, 1},
        {"--feature-layers", CLI_ARG_INT, &feature_layers, 1, 64},
        {"--early-weight", CLI_ARG_NUM, &early_weight, 1e-3, 10},
        {NULL, 0, NULL, 0, 0},
    };
    int prc = cli_parse_args("intent", HELP, args, argc - 1, argv + 1, NULL);
    if (prc >= 0) return prc;
    if (hidden && !parse_hidden(hidden, &o)) return 2;
    o.seed = (uint64_t)seed;
    o.lr = (float)lr;
    o.weight_decay = (float)weight_decay;
    o.calib_frac = (float)calib_frac;
    o.early_weight = (float)early_weight;
    o.oos_threshold = (float)oos;
    o.min_in_scope = (float)min_in_scope;
    if (data_l.n == 0 || !out) {
        cli_error("intent", "train needs --data FILE and --out HEAD");
        return 2;
    }
    cli_texts texts = {0}, labels = {0};
    int rc = 0;
    for (int i = 0; rc == 0 && i < data_l.n; i++) rc = read_examples(data_v[i], &texts, &labels);
    seslm_model *m = NULL;
    float *X = NULL;
    seslm_intent_head *h = NULL;
    double t0 = util_now_s(), t1 = 0;
    if (rc == 0) { // (the model is loaded twice, briefly: its layer count decides k before embedding)
        seslm_model *probe = NULL;
        if (seslm_model_load(&probe, model_dir) != SESLM_OK) {
            cli_error("intent", "%s", seslm_last_error());
            rc = 1;
        } else {
            const int L = seslm_model_get_config(probe)->n_layers;
            if (feature_layers == 0) feature_layers = default_layers(model_dir, probe);
            if (feature_layers > L) {
                cli_error("intent", "--feature-layers %d: the model has %d layers", feature_layers, L);
                rc = 2;
            }
            seslm_model_free(probe);
        }
    }
    if (rc == 0) rc = embed(model_dir, threads, feature_layers, &texts, &m, &X);
    if (rc == 0) {
        o.feature_layers = feature_layers;
        o.input_dim = seslm_model_get_config(m)->hidden * feature_layers;
        t1 = util_now_s();
        if (seslm_intent_new(&h, &o) != SESLM_OK || seslm_intent_fit(h, X, (const char *const *)labels.texts, texts.n) != SESLM_OK) {
            cli_error("intent", "%s", seslm_last_error());
            rc = 2;
        }
    }
    if (rc == 0) {
        int right = 0;
        for (int i = 0; i < texts.n; i++) {
            seslm_intent_result r;
            if (seslm_intent_predict(h, X + (size_t)i * o.input_dim, NULL, &r) == SESLM_OK &&
                strcmp(seslm_intent_label(h, r.index), labels.texts[i]) == 0)
                right++;
        }
        double t2 = util_now_s();
        if (seslm_intent_save(h, out, seslm_model_weights_sha256(m)) != SESLM_OK) {
            cli_error("intent", "%s", seslm_last_error());
            rc = 1;
        } else {
            printf("{\"head\":");
            cli_json_str(stdout, out);
            const seslm_intent_selection *sel = seslm_intent_get_selection(h);
            const seslm_intent_opts *ho = seslm_intent_options(h);
            printf(",\"examples\":%d,\"intents\":%d,\"temperature\":%.6g,\"train_accuracy\":%.6f,"
                   "\"in_scope_reference\":%d,\"feature_layers\":%d,\"embed_seconds\":%.3f,\"train_seconds\":%.3f,"
                   "\"hidden\":[",
                   texts.n, seslm_intent_n_classes(h), (double)seslm_intent_temperature(h), (double)right / texts.n,
                   seslm_intent_in_scope_reference(h), feature_layers, t1 - t0, t2 - t1);
            for (int k = 0; k < ho->n_hidden; k++) printf(k ? ",%d" : "%d", ho->hidden[k]);
            float olr, owd; // what feedback will step with (sized to this fit)
            seslm_intent_online_rate(h, &olr, &owd);
            printf("],\"online_lr\":%.6g,\"online_weight_decay\":%.6g", (double)olr, (double)owd);
            if (sel->folds > 0) { // the automatic selection: what it chose and why
                printf(",\"selection\":{\"folds\":%d,\"C\":%.6g,\"cv_accuracy\":", sel->folds, sel->C);
                if (isnan(sel->cv_accuracy)) printf("null");
                else printf("%.6f", sel->cv_accuracy);
                printf(",\"mlp_cv_accuracy\":");
                if (isnan(sel->mlp_cv_accuracy)) printf("null");
                else printf("%.6f", sel->mlp_cv_accuracy);
                printf(",\"mlp\":%s,\"early_weight\":%.6g}", sel->mlp ? "true" : "false", sel->early_weight);
            }
            printf("}\n");
        }
    }
    seslm_intent_free(h);
    free(X);
    seslm_model_free(m);
    cli_texts_free(&texts);
    cli_texts_free(&labels);
    return rc;
}

// ---- predict ---------------------------------------------------------------------------------------------

static int do_predict(int argc, char **argv) {
    const char *head = NULL;
    double threshold = -1, min_in_scope = -1; // -1: the head's own
    const cli_arg extra[] = {
        {"--head", CLI_ARG_STR, &head, 0, 0},
        {"--threshold", CLI_ARG_NUM, &threshold, 0, 1},
        {"--min-in-scope", CLI_ARG_NUM, &min_in_scope, 0, 1},
        {NULL, 0, NULL, 0, 0},
    };
    cli_opts o;
    int rc = cli_parse_common_with(&o, "intent", HELP, extra, argc - 1, argv + 1, 1);
    if (rc >= 0) {
        cli_opts_free(&o);
        return rc;
    }
    if (!head) {
        cli_error("intent", "predict needs --head HEAD");
        cli_opts_free(&o);
        return 2;
    }
    seslm_intent_head *h = NULL;
    char head_sha[65];
    if (seslm_intent_load(&h, head, head_sha) != SESLM_OK) {
        cli_error("intent", "%s", seslm_last_error());
        cli_opts_free(&o);
        return 1;
    }
    if (threshold >= 0) seslm_intent_set_oos_threshold(h, (float)threshold);
    if (min_in_scope >= 0) seslm_intent_set_min_in_scope(h, (float)min_in_scope);
    seslm_model *m = NULL;
    float *X = NULL;
    o.feature_layers = seslm_intent_feature_layers(h); // what the head was trained on
    rc = cli_embed_all("intent", &o, &m, &X);
    if (rc && strstr(seslm_last_error(), "UTF-8")) rc = 2; // invalid input, not a failed file
    if (rc == 0) rc = check_head_model(h, m, head_sha, head);
    const int C = seslm_intent_n_classes(h), D = seslm_intent_input_dim(h);
    float *p = rc == 0 ? malloc((size_t)C * sizeof(float)) : NULL;
    if (rc == 0 && !p) rc = 1;
    for (int i = 0; rc == 0 && i < o.texts.n; i++) {
        seslm_intent_result r;
        if (seslm_intent_predict(h, X + (size_t)i * D, p, &r) != SESLM_OK) {
            cli_error("intent", "%s", seslm_last_error());
            rc = 1;
            break;
        }
        printf("{\"index\":%d,\"intent\":", i);
        if (r.out_of_scope) printf("null");
        else cli_json_str(stdout, seslm_intent_label(h, r.index));
        printf(",\"top\":");
        cli_json_str(stdout, seslm_intent_label(h, r.index));
        printf(",\"confidence\":%.6f,\"in_scope\":", (double)r.confidence);
        if (isnan(r.in_scope)) printf("null");
        else printf("%.6f", (double)r.in_scope);
        printf(",\"out_of_scope\":%s,\"probabilities\":{", r.out_of_scope ? "true" : "false");
        for (int j = 0; j < C; j++) {
            if (j) putchar(',');
            cli_json_str(stdout, seslm_intent_label(h, j));
            printf(":%.6f", (double)p[j]);
        }
        printf("}}\n");
    }
    if (rc == 0 && fflush(stdout) != 0) rc = 1;
    free(p);
    free(X);
    seslm_model_free(m);
    seslm_intent_free(h);
    cli_opts_free(&o);
    return rc;
}

// ---- learn ---------------------------------------------------------------------------------------------

static int do_learn(int argc, char **argv) {
    const char *model_dir = cli_default_model_dir(), *head = NULL;
    int threads = 0, allow_new = 1;
    cli_texts texts = {0}, labels = {0};
    enum { MAX_PAIRS = 1024 }; // (more than 64 is refused below, with the rule)
    const char *text_v[MAX_PAIRS], *label_v[MAX_PAIRS];
    cli_list text_l = {text_v, 0, MAX_PAIRS}, label_l = {label_v, 0, MAX_PAIRS};
    int no_new = 0;
    const cli_arg args[] = {
        {"--model", CLI_ARG_STR, &model_dir, 0, 0},
        {"--head", CLI_ARG_STR, &head, 0, 0},
        {"--threads", CLI_ARG_INT, &threads, 0, 1024},
        {"--text", CLI_ARG_LIST, &text_l, 0, 0},
        {"--label", CLI_ARG_LIST, &label_l, 0, 0},
        {"--no-new-intents", CLI_ARG_FLAG, &no_new, 0, 0},
        {NULL, 0, NULL, 0, 0},
    };
    int rc = cli_parse_args("intent", HELP, args, argc - 1, argv + 1, NULL);
    if (rc >= 0) return rc;
    rc = 0;
    allow_new = !no_new;
    for (int t = 0; rc == 0 && t < 2; t++) {
        const cli_list *l = t ? &label_l : &text_l;
        for (int i = 0; rc == 0 && i < l->n; i++) {
            if (!*l->items[i]) {
                cli_error("intent", "%s must not be empty", t ? "--label" : "--text");
                rc = 2;
            } else if (!cli_texts_add(t ? &labels : &texts, l->items[i], strlen(l->items[i]))) {
                rc = 1;
            }
        }
    }
    if (rc == 0 && (!head || texts.n == 0 || texts.n != labels.n || texts.n > 64)) {
        cli_error("intent", "learn needs --head HEAD and 1..64 pairs of --text T --label L (got %d texts, %d labels)",
                  texts.n, labels.n);
        rc = 2;
    }
    seslm_intent_head *h = NULL;
    seslm_model *m = NULL;
    float *X = NULL;
    char head_sha[65] = "";
    if (rc == 0 && seslm_intent_load(&h, head, head_sha) != SESLM_OK) {
        cli_error("intent", "%s", seslm_last_error());
        rc = 1;
    }
    if (rc == 0) rc = embed(model_dir, threads, seslm_intent_feature_layers(h), &texts, &m, &X);
    if (rc == 0) rc = check_head_model(h, m, head_sha, head);
    if (rc == 0) {
        const int before = seslm_intent_n_classes(h);
        int steps = 0;
        double t0 = util_now_s();
        if (seslm_intent_learn(h, X, (const char *const *)labels.texts, texts.n, allow_new, &steps) != SESLM_OK) {
            cli_error("intent", "%s", seslm_last_error());
            rc = 2;
        } else {
            double t1 = util_now_s();
            if (seslm_intent_save(h, head, head_sha[0] ? head_sha : seslm_model_weights_sha256(m)) != SESLM_OK) {
                cli_error("intent", "%s", seslm_last_error());
                rc = 1;
            } else {
                printf("{\"learned\":%d,\"new_intents\":%d,\"intents\":%d,\"steps\":%d,\"update_ms\":%.3f}\n", texts.n,
                       seslm_intent_n_classes(h) - before, seslm_intent_n_classes(h), steps, (t1 - t0) * 1e3);
            }
        }
    }
    free(X);
    seslm_model_free(m);
    seslm_intent_free(h);
    cli_texts_free(&texts);
    cli_texts_free(&labels);
    return rc;
}

int cmd_intent(int argc, char **argv) {
    if (argc < 2) {
        fputs(HELP, stderr);
        return 2;
    }
    if (cli_is_help(argv[1])) {
        fputs(HELP, stdout);
        return 0;
    }
    if (strcmp(argv[1], "train") == 0) return do_train(argc, argv);
    if (strcmp(argv[1], "predict") == 0) return do_predict(argc, argv);
    if (strcmp(argv[1], "learn") == 0) return do_learn(argc, argv);
    cli_error("intent", "unknown subcommand '%s' (train, predict or learn)", argv[1]);
    return 2;
}
