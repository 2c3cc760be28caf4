/* fuzz_model_files.c — libFuzzer target: the loaders of the files that sit beside a model, on arbitrary
 * bytes. The first byte picks the loader (modulo 11), the rest is the file, written to a private temporary
 * folder as the programs read it:
 *   0 a pruning plan (seslm_plan_read_json, against MiniLM's shape)
 *   1 an intent head (seslm_intent_load: safetensors + JSON metadata)
 *   2-6 a model directory's architecture (seslm_config_load): its config.json, or beside a valid one its
 *     modules.json, 1_Pooling/config.json, sentence_bert_config.json or config_sentence_transformers.json
 *   7-8 the tokenizer's files (seslm_tokenizer_load): a vocab.txt, or a tokenizer_config.json beside a small vocab
 *   9 a knowledge base's index.safetensors (seslm_kb_load) beside a fixed passages.txt of 3 lines
 *   10 a LoRA adapter (seslm_lora_load) for the tiny random model of tests/tiny_model.h
 * Invariants checked on every input (abort() on violation, which libFuzzer reports as a crash):
 *   - a failure is SESLM_ERR_FORMAT / SHAPE / ARG / IO / NOMEM with a non-empty message;
 *   - a plan that loads has one entry per layer; predicting its sizes and validating it against the default
 *     policy return a status, and one that validates has sorted indices inside each layer;
 *   - an intent head that loads predicts a finite distribution summing to 1 on a zero input, learns one
 *     example of its first intent (or fails cleanly), and saves and loads again with the same intents;
 *   - a config that loads has positive sizes and one layer entry per layer;
 *   - a tokenizer that loads has a vocabulary and a max_len in 2..512, and encodes a fixed text to at most max_len
 *     ids, each inside the vocabulary;
 *   - a knowledge base that loads has the 3 passages, and a search returns passages inside it, best first, with
 *     finite cosines in [-1, 1];
 *   - an adapter that loads has a rank in 1..256, and merged into the tiny model leaves every weight finite.
 * Seeds: tests/fuzz/corpus_model_files/ (written by tests/fuzz/make_model_files_corpus.sh). */
#include "fuzz_util.h"
#include "model_internal.h"
#include "intent.h"
#include "plan.h"
#include "lora.h"
#include "retrieve.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void fuzz_die(const char *what) {
    fprintf(stderr, "fuzz_model_files: invariant violated: %s (%s)\n", what, seslm_last_error());
    abort();
}

static void check_failure(seslm_status st) {
    if (st == SESLM_OK) return;
    if (st != SESLM_ERR_FORMAT && st != SESLM_ERR_SHAPE && st != SESLM_ERR_ARG && st != SESLM_ERR_IO &&
        st != SESLM_ERR_NOMEM)
        fuzz_die("unexpected status");
    if (!seslm_last_error()[0]) fuzz_die("a failure without a message");
}

// ---- the loaders ----------------------------------------------------------------------------------

static void check_sorted(const int *idx, int n, int hi, const char *what) {
    for (int i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= hi || (i && idx[i] <= idx[i - 1])) fuzz_die(what);
}

static void fuzz_plan(const uint8_t *p, size_t n) {
    seslm_model_config c;
    seslm_layer_config layers[6];
    fuzz_minilm(&c, layers);
    seslm_plan pl;
    seslm_status st = seslm_plan_read_json(&pl, &c, fuzz_write_file("files", "plan.json", p, n));
    check_failure(st);
    if (st == SESLM_OK) { // the structure loads; the rules are the validation's, which every user runs before use
        if (pl.n_layers != c.n_layers) fuzz_die("a plan with another layer count loaded");
        seslm_plan_predict(&pl, &c);
        seslm_policy pol;
        seslm_policy_default(&pol);
        st = seslm_plan_validate(&pl, &pol, &c);
        check_failure(st);
        for (int l = 0; st == SESLM_OK && l < pl.n_layers; l++) {
            check_sorted(pl.remove_heads[l], pl.n_remove_heads[l], layers[l].n_heads, "a head index out of order or range");
            check_sorted(pl.remove_neurons[l], pl.n_remove_neurons[l], layers[l].ffn_dim,
                         "a neuron index out of order or range");
        }
    }
    seslm_plan_free(&pl);
}

static void fuzz_intent(const uint8_t *p, size_t n) {
    seslm_intent_head *h = NULL;
    char sha[65];
    seslm_status st = seslm_intent_load(&h, fuzz_write_file("files", "head.safetensors", p, n), sha);
    check_failure(st);
    if (st != SESLM_OK) {
        if (h) fuzz_die("a failed load returned a head");
        return;
    }
    const int D = seslm_intent_input_dim(h), C = seslm_intent_n_classes(h);
    float *x = calloc((size_t)D, sizeof(float)), *probs = malloc((size_t)(C > 0 ? C : 1) * sizeof(float));
    if (!x || !probs) fuzz_die("out of memory");
    seslm_intent_result r;
    st = seslm_intent_predict(h, x, probs, &r);
    check_failure(st);
    if (st == SESLM_OK) {
        double sum = 0;
        for (int j = 0; j < C; j++) {
            if (!(probs[j] >= 0 && probs[j] <= 1)) fuzz_die("a probability outside [0, 1] (or NaN)");
            sum += probs[j];
        }
        if (fabs(sum - 1) > 1e-3) fuzz_die("the probabilities do not sum to 1");
        if (r.index < 0 || r.index >= C) fuzz_die("a prediction outside the intents");
    }
    if (C >= 1) {
        const char *label = seslm_intent_label(h, 0);
        x[0] = 1;
        check_failure(seslm_intent_learn(h, x, &label, 1, 0, NULL));
    }
    char again[128];
    fuzz_path("files", "again.safetensors", again, sizeof again);
    st = seslm_intent_save(h, again, sha[0] ? sha : NULL);
    check_failure(st);
    if (st == SESLM_OK) {
        seslm_intent_head *h2 = NULL;
        st = seslm_intent_load(&h2, again, NULL);
        if (st != SESLM_OK) fuzz_die("a head saved after loading does not load again");
        if (seslm_intent_n_classes(h2) != seslm_intent_n_classes(h)) fuzz_die("the intents changed on a save and load");
        for (int j = 0; j < seslm_intent_n_classes(h); j++)
            if (strcmp(seslm_intent_label(h, j), seslm_intent_label(h2, j)) != 0) fuzz_die("a label changed");
        seslm_intent_free(h2);
    }
    free(x), free(probs);
    seslm_intent_free(h);
}

/* The files a model directory's architecture is read from (seslm_config_load): kind 0 is config.json itself, the
 * others are written beside a valid MiniLM config.json. */
static const char *const MODEL_FILES[5] = {"config.json", "modules.json", "1_Pooling/config.json",
                                           "sentence_bert_config.json", "config_sentence_transformers.json"};

static void fuzz_config(int kind, const uint8_t *p, size_t n) {
    static const char minilm_json[] =
        "{\"hidden_size\": 384, \"num_hidden_layers\": 6, \"num_attention_heads\": 12, \"intermediate_size\": 1536, "
        "\"vocab_size\": 30522, \"max_position_embeddings\": 512, \"hidden_act\": \"gelu\"}";
    char path[128];
    for (int k = 0; k < 5; k++) unlink(fuzz_path("files", MODEL_FILES[k], path, sizeof path)); // each input starts clean
    mkdir(fuzz_path("files", "1_Pooling", path, sizeof path), 0755);
    if (kind) fuzz_write_file("files", "config.json", (const uint8_t *)minilm_json, sizeof minilm_json - 1);
    fuzz_write_file("files", MODEL_FILES[kind], p, n);
    seslm_model_config c;
    seslm_status st = seslm_config_load(&c, fuzz_dir("files"));
    check_failure(st);
    if (st == SESLM_OK) {
        if (c.hidden <= 0 || c.n_layers <= 0 || c.vocab_size <= 0 || c.head_dim <= 0 || !c.layers)
            fuzz_die("a config with a non-positive size loaded");
        for (int l = 0; l < c.n_layers; l++)
            if (c.layers[l].n_heads < 0 || c.layers[l].ffn_dim < 0) fuzz_die("a negative layer size");
    }
    seslm_config_free(&c); // a failed load leaves nothing, or what it had filled, to free
}

/* The tokenizer's files: kind 0 a vocab.txt (no tokenizer_config.json), kind 1 a tokenizer_config.json beside the
 * small vocabulary of tests/fuzz/vocab_small. One that loads encodes a fixed text to ids inside its vocabulary. */
static void fuzz_tokenizer_files(int kind, const uint8_t *p, size_t n) {
    char path[128];
    static const char *const FILES[3] = {"vocab.txt", "tokenizer_config.json", "sentence_bert_config.json"};
    for (int k = 0; k < 3; k++) unlink(fuzz_path("files", FILES[k], path, sizeof path));
    if (kind == 1) {
        FILE *f = fopen(SESLM_FUZZ_DIR "/vocab_small/vocab.txt", "rb");
        static uint8_t vocab[1 << 16];
        const size_t nv = f ? fread(vocab, 1, sizeof vocab, f) : 0;
        if (f) fclose(f);
        if (!nv) fuzz_die("cannot read tests/fuzz/vocab_small/vocab.txt");
        fuzz_write_file("files", "vocab.txt", vocab, nv);
    }
    fuzz_write_file("files", FILES[kind], p, n);
    seslm_tokenizer *tok = NULL;
    seslm_status st = seslm_tokenizer_load(&tok, fuzz_dir("files"), 512);
    check_failure(st == SESLM_ERR_UTF8 ? SESLM_ERR_FORMAT : st); // a vocabulary line that is not UTF-8
    if (st != SESLM_OK) return;
    const int V = seslm_tokenizer_vocab_size(tok), L = seslm_tokenizer_options(tok)->max_len;
    if (V < 1 || L < 2 || L > 512) fuzz_die("a tokenizer with no vocabulary or a bad max_len loaded");
    static const char text[] = "Hello, world! The naïve café's 東京 tokens: [CLS] ##ing 12345 \xf0\x9f\x99\x82";
    int32_t ids[512];
    int nid = 0, full = 0;
    st = seslm_tokenizer_encode_full(tok, text, sizeof text - 1, ids, 512, &nid, &full);
    check_failure(st);
    if (st == SESLM_OK) {
        if (nid < 0 || nid > L || full < nid) fuzz_die("an encoding longer than max_len");
        for (int i = 0; i < nid; i++)
            if (ids[i] < 0 || ids[i] >= V) fuzz_die("an id outside the vocabulary");
    }
    seslm_tokenizer_free(tok);
}

// ---- a knowledge base's index ----------------------------------------------------------------------

// The passages.txt the seeds' index was built for (its SHA-256 is in their metadata: make_model_files_corpus.sh).
static const char KB_PASSAGES[] = "the kitchen opens at noon\nwe seat groups of up to twelve\nparking is free after six\n";

static void fuzz_kb(const uint8_t *p, size_t n) {
    char dir[128], path[160];
    fuzz_path("files", "kb", dir, sizeof dir);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/passages.txt", dir);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(KB_PASSAGES, 1, sizeof KB_PASSAGES - 1, f) != sizeof KB_PASSAGES - 1 || fclose(f) != 0)
        fuzz_die("cannot write passages.txt");
    fuzz_write_file("files", "kb/index.safetensors", p, n);
    seslm_kb *kb = NULL;
    seslm_status st = seslm_kb_load(&kb, dir);
    check_failure(st);
    if (st != SESLM_OK) {
        if (kb) fuzz_die("a failed load returned a knowledge base");
        return;
    }
    const int N = seslm_kb_size(kb), D = seslm_kb_dim(kb);
    if (N != 3 || D < 1) fuzz_die("a knowledge base of another size loaded");
    float *q = malloc((size_t)D * sizeof(float));
    if (!q) fuzz_die("out of memory");
    for (int d = 0; d < D; d++) q[d] = (float)((d % 3) - 1) + 0.5f;
    seslm_kb_hit hits[3];
    const int k = seslm_kb_search(kb, q, 3, hits);
    if (k != 3) fuzz_die("a search over 3 passages did not return 3");
    for (int i = 0; i < k; i++) {
        if (hits[i].index < 0 || hits[i].index >= N) fuzz_die("a hit outside the passages");
        if (!(hits[i].score >= -1.001f && hits[i].score <= 1.001f)) fuzz_die("a cosine outside [-1, 1] (or NaN)");
        if (i && hits[i].score > hits[i - 1].score) fuzz_die("hits not best first");
    }
    free(q);
    seslm_kb_free(kb);
}

// ---- a LoRA adapter ----------------------------------------------------------------------------------

// The tiny random model (hidden 16, 2 layers, 4 heads of 4, FFN 24) as the trainable encoder, made once.
static dm_model *tiny_dm(void) {
    static dm_model dm;
    static seslm_model *m;
    if (!m) {
        char dir[128];
        fuzz_path("files", "tiny", dir, sizeof dir);
        mkdir(dir, 0755);
        tm_model tm;
        tm_init(&tm, 3);
        if (!tm_write(&tm, dir, NULL) || seslm_model_load(&m, dir) != SESLM_OK || dm_init(&dm, m) != SESLM_OK)
            fuzz_die("cannot make the tiny model");
        tm_free(&tm);
    }
    return &dm;
}

static void fuzz_lora(const uint8_t *p, size_t n) {
    dm_model *dm = tiny_dm();
    lora lo;
    memset(&lo, 0, sizeof lo);
    char sha[65];
    seslm_status st = lora_load(&lo, dm, fuzz_write_file("files", "adapter.safetensors", p, n), sha);
    check_failure(st);
    if (st != SESLM_OK) {
        if (lo.params || lo.t) fuzz_die("a failed load kept adapters");
        return;
    }
    if (lo.rank < 1 || lo.rank > 256 || !(lo.scale > 0)) fuzz_die("an adapter with a rank or scale out of range");
    float *keep = malloc(dm->n_params * sizeof(float));
    if (!keep) fuzz_die("out of memory");
    memcpy(keep, dm->params, dm->n_params * sizeof(float));
    lora_apply(&lo, dm);
    for (size_t i = 0; i < dm->n_params; i++)
        if (!isfinite(dm->params[i])) fuzz_die("a merged weight is not finite");
    memcpy(dm->params, keep, dm->n_params * sizeof(float));
    free(keep);
    lora_free(&lo);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int kind = data[0] % 11;
    if (kind == 0) fuzz_plan(data + 1, size - 1);
    else if (kind == 1) fuzz_intent(data + 1, size - 1);
    else if (kind < 7) fuzz_config(kind - 2, data + 1, size - 1);
    else if (kind < 9) fuzz_tokenizer_files(kind - 7, data + 1, size - 1);
    else if (kind == 9) fuzz_kb(data + 1, size - 1);
    else fuzz_lora(data + 1, size - 1);
    return 0;
}
