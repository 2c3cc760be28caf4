/* test_model_errors.c — bad model directories and bad encoder calls, on the tiny model of
 * tiny_model.h: every case must fail with the right SESLM_ERR_* and a message that names the problem
 * (the file, the tensor, both shapes, the limit), leave *out NULL, and never crash (run under ASan). */
#include "seslm.h"
#include "test.h"
#include "tiny_model.h"

#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

static char *g_root;
static tm_model g_full;
static int g_case;

// A fresh, valid model directory g_root/<n>; returns its path (static buffer, valid until the next call).
static const char *fresh(const tm_model *m, const tm_write_opts *o) {
    static char dir[4096];
    snprintf(dir, sizeof dir, "%s/case%03d", g_root, ++g_case);
    mkdir(dir, 0755);
    CHECK_MSG(tm_write(m ? m : &g_full, dir, o), "writing %s", dir);
    return dir;
}

/* Loads dir and expects status `want` and a message containing each of the NULL-terminated needles. */
static void expect_load(int line, const char *dir, seslm_status want, ...) {
    seslm_model *m = (seslm_model *)(uintptr_t)1; // must be reset to NULL
    seslm_fail(SESLM_OK, "%s", "");
    seslm_status st = seslm_model_load(&m, dir);
    const char *msg = seslm_last_error();
    CHECK_MSG(st == want, "line %d: %s: got %s (%s), expected %s", line, dir, seslm_status_str(st), msg,
              seslm_status_str(want));
    if (want != SESLM_OK) {
        CHECK_MSG(m == NULL, "line %d: *out not NULL on failure", line);
        CHECK_MSG(msg[0] != 0, "line %d: empty message", line);
    }
    va_list ap;
    va_start(ap, want);
    for (const char *needle; (needle = va_arg(ap, const char *)) != NULL;)
        CHECK_MSG(strstr(msg, needle) != NULL, "line %d: message '%s' lacks '%s'", line, msg, needle);
    va_end(ap);
    if (st == SESLM_OK) seslm_model_free(m);
}
#define LOAD_FAILS(dir, want, ...) expect_load(__LINE__, dir, want, __VA_ARGS__, (const char *)NULL)
#define LOAD_OK(dir) expect_load(__LINE__, dir, SESLM_OK, (const char *)NULL)

static void write_config(const char *dir, const tm_model *m, const char *extra) { CHECK(tm_write_config(m, dir, extra)); }

static void file_path(char *out, const char *dir, const char *name) { tm_path(out, 4096, dir, name); }

// ---- files missing, truncated, corrupt -------------------------------------------------------------

static void test_files(void) {
    char p[4096];
    const char *d = fresh(NULL, NULL);
    LOAD_OK(d);

    // missing directory: the path of what was looked for
    snprintf(p, sizeof p, "%s/no_such_model", g_root);
    LOAD_FAILS(p, SESLM_ERR_IO, "no_such_model/config.json", "No such file");

    // config.json and vocab.txt as FIFOs: refused at once (opening one for reading would otherwise wait
    // for a writer forever; the alarm turns a hang into a failure)
    for (int which = 0; which < 2; which++) {
        const char *name = which ? "vocab.txt" : "config.json";
        const char *fd = fresh(NULL, NULL);
        file_path(p, fd, name);
        CHECK(unlink(p) == 0 && mkfifo(p, 0600) == 0);
        alarm(10);
        LOAD_FAILS(fd, SESLM_ERR_IO, name, "not a regular file");
        alarm(0);
    }
    {
        seslm_model *m = (seslm_model *)(uintptr_t)1;
        CHECK(seslm_model_load(&m, NULL) == SESLM_ERR_ARG && m == NULL);
    }
    // the directory is a regular file
    file_path(p, d, "vocab.txt");
    LOAD_FAILS(p, SESLM_ERR_IO, "vocab.txt/config.json");

    // config.json missing / not JSON / not an object / a directory
    d = fresh(NULL, NULL);
    file_path(p, d, "config.json");
    unlink(p);
    LOAD_FAILS(d, SESLM_ERR_IO, "config.json", "No such file");
    tm_write_text(d, "config.json", "{\"hidden_size\": 16, \"num_hidden_layers\": 2,");
    LOAD_FAILS(d, SESLM_ERR_FORMAT, "config.json", "JSON");
    tm_write_text(d, "config.json", "hidden_size = 16\n");
    LOAD_FAILS(d, SESLM_ERR_FORMAT, "config.json", "JSON");
    tm_write_text(d, "config.json", "[16, 2, 4]");
    LOAD_FAILS(d, SESLM_ERR_FORMAT, "config.json", "not a JSON object");
    tm_write_text(d, "config.json", "");
    LOAD_FAILS(d, SESLM_ERR_FORMAT, "config.json");
    unlink(p);
    mkdir(p, 0755);
    LOAD_FAILS(d, SESLM_ERR_IO, "config.json", "not a regular file");
    rmdir(p);

    // model.safetensors missing / empty / a directory / truncated / corrupt
    d = fresh(NULL, NULL);
    file_path(p, d, "model.safetensors");
    size_t len = 0;
    uint8_t *img = tm_safetensors(&g_full, NULL, &len);
    unlink(p);
    LOAD_FAILS(d, SESLM_ERR_IO, "model.safetensors", "No such file");
    tm_write_bytes(p, "", 0);
    LOAD_FAILS(d, SESLM_ERR_FORMAT, "model.safetensors", "too short");
    unlink(p);
    mkdir(p, 0755);
    LOAD_FAILS(d, SESLM_ERR_IO, "model.safetensors", "not a regular file");
    rmdir(p);
    tm_write_bytes(p, img, len / 2);
    LOAD_FAILS(d, SESLM_ERR_FORMAT, "model.safetensors", "truncated");
    // a spread of cut points: the length field, inside the header, its last byte, the data, the last byte
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | img[i];
    size_t cuts[64];
    int nc = 0;
    for (size_t c = 0; c <= 9; c++) cuts[nc++] = c;
    cuts[nc++] = 8 + hlen / 2;
    cuts[nc++] = 8 + hlen - 1;
    cuts[nc++] = 8 + hlen;
    cuts[nc++] = 8 + hlen + 1;
    for (size_t c = 8 + hlen + 4093; c < len && nc < 60; c += 4093) cuts[nc++] = c;
    cuts[nc++] = len - 4;
    cuts[nc++] = len - 1;
    for (int i = 0; i < nc; i++) {
        tm_write_bytes(p, img, cuts[i]);
        seslm_model *m = NULL;
        seslm_status st = seslm_model_load(&m, d);
        CHECK_MSG(st == SESLM_ERR_FORMAT && m == NULL && strstr(seslm_last_error(), "model.safetensors"),
                  "cut at %zu of %zu: %s (%s)", cuts[i], len, seslm_status_str(st), seslm_last_error());
        seslm_model_free(m);
    }
    // a corrupt header (first byte of the JSON) and a corrupt length field
    uint8_t *bad = malloc(len);
    memcpy(bad, img, len);
    bad[8] = '#';
    tm_write_bytes(p, bad, len);
    LOAD_FAILS(d, SESLM_ERR_FORMAT, "model.safetensors", "JSON");
    memcpy(bad, img, len);
    bad[5] = 0x7f;
    tm_write_bytes(p, bad, len);
    LOAD_FAILS(d, SESLM_ERR_FORMAT, "model.safetensors", "header length");
    // trailing garbage after the data is harmless; the intact file loads again
    tm_write_bytes(p, img, len);
    LOAD_OK(d);
    free(bad);
    free(img);

    // vocab.txt missing / empty / without [CLS]; tokenizer_config.json corrupt
    d = fresh(NULL, NULL);
    file_path(p, d, "vocab.txt");
    unlink(p);
    LOAD_FAILS(d, SESLM_ERR_IO, "vocab.txt");
    tm_write_text(d, "vocab.txt", "");
    LOAD_FAILS(d, SESLM_ERR_FORMAT, "vocab.txt");
    {
        char v[2048] = "";
        for (int i = 0; i < TM_VOCAB; i++) {
            strcat(v, strcmp(tm_vocab[i], "[CLS]") == 0 ? "[CLZ]" : tm_vocab[i]);
            strcat(v, "\n");
        }
        tm_write_text(d, "vocab.txt", v);
        LOAD_FAILS(d, SESLM_ERR_FORMAT, "vocab.txt", "[CLS]");
    }
    d = fresh(NULL, NULL);
    tm_write_text(d, "tokenizer_config.json", "{\"do_lower_case\": tru");
    LOAD_FAILS(d, SESLM_ERR_FORMAT, "tokenizer_config.json");
}

// ---- config.json that does not match the tensors --------------------------------------------------

static void test_config(void) {
    const char *d = fresh(NULL, NULL);
    tm_model c = g_full; // shallow: only the numbers are changed for write_config

    // hidden_size 32 vs tensors of width 16: the first tensor checked, with both shapes
    c.hidden = 32;
    write_config(d, &c, NULL);
    LOAD_FAILS(d, SESLM_ERR_SHAPE, "model.safetensors", "embeddings.word_embeddings.weight", "[40, 16]", "[40, 32]");
    c = g_full;
    c.ffn = 20;
    write_config(d, &c, NULL);
    LOAD_FAILS(d, SESLM_ERR_SHAPE, "encoder.layer.0.intermediate.dense.weight", "[24, 16]", "[20, 16]");
    c = g_full;
    c.vocab = 50;
    write_config(d, &c, NULL);
    LOAD_FAILS(d, SESLM_ERR_SHAPE, "embeddings.word_embeddings.weight", "[40, 16]", "[50, 16]");
    c = g_full;
    c.max_pos = 64;
    write_config(d, &c, NULL);
    LOAD_FAILS(d, SESLM_ERR_SHAPE, "embeddings.position_embeddings.weight", "[32, 16]", "[64, 16]");
    c = g_full;
    c.type_vocab = 1;
    write_config(d, &c, NULL);
    LOAD_FAILS(d, SESLM_ERR_SHAPE, "embeddings.token_type_embeddings.weight", "[2, 16]", "[1, 16]");
    c = g_full;
    c.n_layers = 3;
    write_config(d, &c, NULL);
    LOAD_FAILS(d, SESLM_ERR_SHAPE, "encoder.layer.2.attention.self.query.weight", "missing");
    c = g_full;
    write_config(d, &c, "\"attention_head_size\": 8");
    LOAD_FAILS(d, SESLM_ERR_SHAPE, "encoder.layer.0.attention.self.query.weight", "[16, 16]", "[32, 16]");

    // sizes that make no sense: not divisible, zero, negative, not integers, absurd
    static const char *const nonsense[][2] = {
        {"\"num_attention_heads\": 3", "inconsistent"}, // 16 % 3 != 0
        {"\"num_hidden_layers\": 0", "inconsistent"},
        {"\"hidden_size\": -16", "inconsistent"},
        {"\"vocab_size\": 0", "inconsistent"},
        {"\"num_hidden_layers\": 100000", "inconsistent"},
        {"\"hidden_size\": 1e9", "inconsistent"},
        {"\"hidden_size\": 1e300", "hidden_size"},
        {"\"hidden_size\": -1e300", "hidden_size"},
        {"\"num_attention_heads\": 1e20", "num_attention_heads"},
        {"\"vocab_size\": 40.5", "vocab_size"},
        {"\"intermediate_size\": \"24\"", "intermediate_size"},
        {"\"max_position_embeddings\": null", "max_position"},
        {"\"attention_head_size\": 0", "attention_head_size"},
        {"\"attention_head_size\": 1073741824", "attention_head_size"},
        {"\"attention_head_size\": 4e12", "attention_head_size"},
        {"\"hidden_act\": \"relu\"", "hidden_act"},
        {"\"hidden_act\": \"gelu_new\"", "hidden_act"},
        {"\"hidden_act\": 1", "hidden_act"},
        {"\"position_embedding_type\": \"relative_key\"", "absolute"},
        {"\"seslm_quantization\": {\"linear_activations\": \"int4-per-token\"}", "linear_activations"},
        {"\"seslm_quantization\": {\"linear_activations\": 8}", "linear_activations"},
    };
    for (size_t i = 0; i < sizeof nonsense / sizeof nonsense[0]; i++) {
        // cJSON lookups find the first of duplicate members, so the bad one goes first
        char cfg[1024];
        snprintf(cfg, sizeof cfg,
                 "{%s, \"hidden_act\": \"gelu\", \"hidden_size\": 16, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
                 "\"intermediate_size\": 24, \"vocab_size\": 40, \"max_position_embeddings\": 32, \"type_vocab_size\": 2}",
                 nonsense[i][0]);
        tm_write_text(d, "config.json", cfg);
        expect_load(__LINE__ * 1000 + (int)i, d, SESLM_ERR_FORMAT, "config.json", nonsense[i][1], (const char *)NULL);
    }
    // the unsupported activation is named as such
    tm_write_text(d, "config.json",
                  "{\"hidden_act\": \"relu\", \"hidden_size\": 16, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
                  "\"intermediate_size\": 24, \"vocab_size\": 40, \"max_position_embeddings\": 32}");
    LOAD_FAILS(d, SESLM_ERR_FORMAT, "hidden_act", "not supported");
    // a required member missing
    tm_write_text(d, "config.json", "{\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"intermediate_size\": 24, "
                                    "\"vocab_size\": 40}");
    LOAD_FAILS(d, SESLM_ERR_FORMAT, "config.json", "hidden_size");
    // and the plain config loads again
    write_config(d, &g_full, NULL);
    LOAD_OK(d);

    // a vocabulary longer than the embedding table
    tm_model small;
    tm_copy(&small, &g_full);
    small.vocab = 30;
    tm_find(&small, "embeddings.word_embeddings.weight")->shape[0] = 30;
    d = fresh(&small, NULL);
    LOAD_FAILS(d, SESLM_ERR_SHAPE, "vocabulary has 40 tokens", "30");
    tm_free(&small);

    // sentence_bert_config.json: max_seq_length lowers the limit; absurd values are capped, not trusted
    d = fresh(NULL, NULL);
    static const struct {
        const char *json;
        int want;
    } msl[] = {{"{\"max_seq_length\": 8}", 8},     {"{\"max_seq_length\": 1000}", 32}, {"{\"max_seq_length\": 1e20}", 32},
               {"{\"max_seq_length\": -5}", 32},   {"{\"max_seq_length\": \"8\"}", 32}, {"{}", 32}};
    for (size_t i = 0; i < sizeof msl / sizeof msl[0]; i++) {
        tm_write_text(d, "sentence_bert_config.json", msl[i].json);
        seslm_model *m = NULL;
        CHECK_MSG(seslm_model_load(&m, d) == SESLM_OK, "%s: %s", msl[i].json, seslm_last_error());
        if (!m) continue;
        CHECK_MSG(seslm_model_get_config(m)->max_seq_len == msl[i].want, "%s: max_seq_len %d", msl[i].json,
                  seslm_model_get_config(m)->max_seq_len);
        seslm_model_free(m);
    }
}

// ---- tensors missing, of the wrong dtype or shape --------------------------------------------------

static void test_tensors(void) {
    tm_model m;
    // missing tensors: an embedding, a layer norm of the last layer, an FFN bias
    static const char *const gone[] = {"embeddings.LayerNorm.bias", "encoder.layer.1.output.LayerNorm.bias",
                                       "encoder.layer.0.intermediate.dense.bias",
                                       "encoder.layer.1.attention.output.dense.weight"};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++) {
        tm_copy(&m, &g_full);
        tm_remove(&m, gone[i]);
        const char *d = fresh(&m, NULL);
        char want[160];
        snprintf(want, sizeof want, "'%s' is missing", gone[i]);
        LOAD_FAILS(d, SESLM_ERR_SHAPE, want, "model.safetensors");
        tm_free(&m);
    }
    // wrong dtypes: integer data where floats belong (same byte size, so the file itself is valid)
    static const char *const dts[] = {"I32", "U8", "BOOL", "I16", "F64"};
    for (size_t i = 0; i < sizeof dts / sizeof dts[0]; i++) {
        tm_copy(&m, &g_full);
        tm_tensor *t = tm_find(&m, "encoder.layer.0.attention.self.key.weight");
        // keep the byte count consistent with the dtype: 4-byte types as they are, others resized
        snprintf(t->dtype, sizeof t->dtype, "%s", dts[i]);
        if (strcmp(dts[i], "I32") != 0) {
            // a (A, C) tensor of a 1/2/8-byte dtype written from 4-byte floats: adjust the last dim
            int64_t bytes = t->shape[0] * t->shape[1] * 4;
            int es = strcmp(dts[i], "I16") == 0 ? 2 : strcmp(dts[i], "F64") == 0 ? 8 : 1;
            t->shape[1] = bytes / es / t->shape[0];
        }
        const char *d = fresh(&m, NULL);
        char want[64];
        snprintf(want, sizeof want, "dtype %s", dts[i]);
        if (strcmp(dts[i], "I32") == 0)
            LOAD_FAILS(d, SESLM_ERR_SHAPE, "encoder.layer.0.attention.self.key.weight", want, "F32, F16 or BF16");
        else // the shape no longer matches either; either complaint names the tensor
            LOAD_FAILS(d, SESLM_ERR_SHAPE, "encoder.layer.0.attention.self.key.weight");
        tm_free(&m);
    }
    // the same shape check for F16 files and 1-D tensors, and a 2-D tensor where a 1-D one belongs
    tm_copy(&m, &g_full);
    tm_find(&m, "encoder.layer.1.attention.output.LayerNorm.weight")->ndim = 2; // (16, 1)
    const char *d = fresh(&m, &(tm_write_opts){.dtype = "F16"});
    LOAD_FAILS(d, SESLM_ERR_SHAPE, "encoder.layer.1.attention.output.LayerNorm.weight", "[16, 1]", "[16]");
    tm_free(&m);
    tm_copy(&m, &g_full);
    tm_tensor *t = tm_find(&m, "encoder.layer.0.output.dense.weight"); // (16, 24) written as (24, 16)
    t->shape[0] = 24;
    t->shape[1] = 16;
    d = fresh(&m, &(tm_write_opts){.dtype = "BF16"});
    LOAD_FAILS(d, SESLM_ERR_SHAPE, "encoder.layer.0.output.dense.weight", "[24, 16]", "[16, 24]");
    tm_free(&m);

    // seslm_layers: wrong count, not an array, bad entries, and shapes that do not match the entries
    d = fresh(NULL, NULL);
    static const char *const bad_layers[][2] = {
        {"\"seslm_layers\": [{\"num_attention_heads\": 4}]", "seslm_layers must be an array of 2"},
        {"\"seslm_layers\": [{}, {}, {}]", "seslm_layers must be an array of 2"},
        {"\"seslm_layers\": []", "seslm_layers"},
        {"\"seslm_layers\": {\"0\": {}}", "seslm_layers"},
        {"\"seslm_layers\": [{}, 5]", "seslm_layers[1] is invalid"},
        {"\"seslm_layers\": [{}, {\"num_attention_heads\": -1}]", "seslm_layers[1]"},
        {"\"seslm_layers\": [{\"intermediate_size\": -24}, {}]", "seslm_layers[0]"},
        {"\"seslm_layers\": [{\"intermediate_size\": 2.5}, {}]", "seslm_layers[0]"},
        {"\"seslm_layers\": [{\"num_attention_heads\": 1e10}, {}]", "seslm_layers[0]"},
        {"\"seslm_layers\": [{\"num_attention_heads\": \"4\"}, {}]", "seslm_layers[0]"},
    };
    for (size_t i = 0; i < sizeof bad_layers / sizeof bad_layers[0]; i++) {
        write_config(d, &g_full, bad_layers[i][0]);
        expect_load(__LINE__ * 1000 + (int)i, d, SESLM_ERR_FORMAT, "config.json", bad_layers[i][1], (const char *)NULL);
    }
    // per-layer sizes that the (full) tensors do not have
    write_config(d, &g_full, "\"seslm_layers\": [{\"num_attention_heads\": 2, \"intermediate_size\": 24}, {}]");
    LOAD_FAILS(d, SESLM_ERR_SHAPE, "encoder.layer.0.attention.self.query.weight", "[16, 16]", "[8, 16]");
    write_config(d, &g_full, "\"seslm_layers\": [{}, {\"num_attention_heads\": 4, \"intermediate_size\": 12}]");
    LOAD_FAILS(d, SESLM_ERR_SHAPE, "encoder.layer.1.intermediate.dense.weight", "[24, 16]", "[12, 16]");
    // a pruned file (layer 1 without attention weights) under a config that expects them
    tm_model p;
    tm_prune(&p, &g_full, 1, 0, 24);
    d = fresh(&p, NULL);
    LOAD_OK(d);
    p.per_layer = 0;
    write_config(d, &p, NULL);
    LOAD_FAILS(d, SESLM_ERR_SHAPE, "encoder.layer.1.attention.self.query.weight", "missing");
    tm_free(&p);
    // an unpruned layer declared as entries with defaults loads (missing members default to the globals)
    d = fresh(NULL, NULL);
    write_config(d, &g_full, "\"seslm_layers\": [{}, {\"num_attention_heads\": 4}]");
    LOAD_OK(d);
}

// ---- encoder calls ---------------------------------------------------------------------------------

static double max_diff(const float *a, const float *b, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static void test_encoder(void) {
    const char *d = fresh(NULL, NULL);
    seslm_model *m = NULL;
    CHECK_MSG(seslm_model_load(&m, d) == SESLM_OK, "%s", seslm_last_error());
    if (!m) return;
    const int C = 16;
    seslm_encoder *e = (seslm_encoder *)(uintptr_t)1;

    // construction
    seslm_encoder_opts o = {.backend = "gpu9", .max_batch = 2};
    CHECK(seslm_encoder_new(&e, m, &o) == SESLM_ERR_ARG && e == NULL);
    CHECK(strstr(seslm_last_error(), "unknown backend 'gpu9'") && strstr(seslm_last_error(), "cpu-ref"));
    static const int bad_batch[] = {0, -1, 4097, 1 << 30};
    for (int i = 0; i < 4; i++) {
        o = (seslm_encoder_opts){.backend = "cpu", .max_batch = bad_batch[i]};
        e = (seslm_encoder *)(uintptr_t)1;
        CHECK(seslm_encoder_new(&e, m, &o) == SESLM_ERR_ARG && e == NULL);
        CHECK(strstr(seslm_last_error(), "max_batch") != NULL);
    }
    o = (seslm_encoder_opts){.backend = "cpu", .max_batch = 2, .max_seq_len = 1};
    CHECK(seslm_encoder_new(&e, m, &o) == SESLM_ERR_ARG && e == NULL && strstr(seslm_last_error(), "max_seq_len"));
    CHECK(seslm_encoder_new(&e, m, NULL) == SESLM_OK && e != NULL); // defaults
    seslm_encoder_free(e);
    seslm_encoder_free(NULL);

    for (int k = 0; k < 2; k++) {
        o = (seslm_encoder_opts){.backend = k ? "cpu-ref" : "cpu", .n_threads = 1, .max_batch = 2};
        CHECK(seslm_encoder_new(&e, m, &o) == SESLM_OK);
        if (!e) continue;
        static const int32_t s0[] = {2, 12, 13, 3}, s1[] = {2, 7, 9, 10, 5, 11, 3};
        const int32_t *rows[3] = {s0, s1, s0};
        int lens[3] = {4, 7, 4};
        float good[3 * 16], out[3 * 16];
        CHECK(seslm_encoder_forward_ids(e, rows, lens, 2, good) == SESLM_OK);

        // batch size
        CHECK(seslm_encoder_forward_ids(e, rows, lens, 3, out) == SESLM_ERR_LIMIT);
        CHECK(strstr(seslm_last_error(), "batch of 3") && strstr(seslm_last_error(), "1..2"));
        CHECK(seslm_encoder_forward_ids(e, rows, lens, 0, out) == SESLM_ERR_LIMIT);
        CHECK(seslm_encoder_forward_ids(e, rows, lens, -1, out) == SESLM_ERR_LIMIT);
        // sequence lengths: 0, negative, over the model's 32
        static const int32_t longrow[40] = {2};
        static const int bad_len[] = {0, -3, 33, 1 << 30};
        for (int i = 0; i < 4; i++) {
            const int32_t *r2[2] = {s0, longrow};
            int l2[2] = {4, bad_len[i]};
            CHECK(seslm_encoder_forward_ids(e, r2, l2, 2, out) == SESLM_ERR_LIMIT);
            char want[64];
            snprintf(want, sizeof want, "sequence 1 has %d tokens", bad_len[i]);
            CHECK_MSG(strstr(seslm_last_error(), want) && strstr(seslm_last_error(), "1..32"), "%s", seslm_last_error());
        }
        // ids outside the vocabulary
        static const int32_t bad_id[] = {40, -1, INT32_MAX, INT32_MIN};
        for (int i = 0; i < 4; i++) {
            int32_t r[4] = {2, 5, bad_id[i], 3};
            const int32_t *r2[2] = {s0, r};
            int l2[2] = {4, 4};
            CHECK(seslm_encoder_forward_ids(e, r2, l2, 2, out) == SESLM_ERR_ARG);
            char want[64];
            snprintf(want, sizeof want, "position 2: token id %d is outside 0..39", bad_id[i]);
            CHECK_MSG(strstr(seslm_last_error(), want) && strstr(seslm_last_error(), "sequence 1"), "%s",
                      seslm_last_error());
        }
        // the failures left the encoder usable: same result as before
        memset(out, 0, sizeof out);
        CHECK(seslm_encoder_forward_ids(e, rows, lens, 2, out) == SESLM_OK);
        CHECK(max_diff(out, good, 2 * C) == 0);

        // texts: too many, invalid UTF-8 (each kind), then empty / NUL-containing / explicit lengths
        const char *texts[3] = {"hello world", "cat", "dog"};
        CHECK(seslm_encoder_embed_texts(e, texts, NULL, 3, out) == SESLM_ERR_LIMIT);
        CHECK(strstr(seslm_last_error(), "batch of 3 texts") != NULL);
        CHECK(seslm_encoder_embed_texts(e, texts, NULL, 0, out) == SESLM_ERR_LIMIT);
        static const char *const invalid[] = {
            "bad \xff byte",       "lone \x80 continuation", "cut \xe2\x82",      "overlong \xc0\xaf",
            "overlong3 \xe0\x80\xaf", "surrogate \xed\xa0\x80", "too big \xf4\x90\x80\x80", "\xfe\xfe",
            "\xc3",                "ok \xc3\xa9 then \xc3(",
        };
        for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
            const char *tt[2] = {"fine text", invalid[i]};
            seslm_status st = seslm_encoder_embed_texts(e, tt, NULL, 2, out);
            CHECK_MSG(st == SESLM_ERR_UTF8, "invalid[%zu]: %s", i, seslm_status_str(st));
            CHECK_MSG(strstr(seslm_last_error(), "text 1") && strstr(seslm_last_error(), "UTF-8"), "invalid[%zu]: '%s'",
                      i, seslm_last_error());
        }
        // the empty text is [CLS] [SEP]
        const char *empty[1] = {""};
        static const int32_t cls_sep[] = {2, 3};
        const int32_t *rcs[1] = {cls_sep};
        int lcs[1] = {2};
        float a[16], b[16];
        CHECK(seslm_encoder_embed_texts(e, empty, NULL, 1, a) == SESLM_OK);
        CHECK(seslm_encoder_forward_ids(e, rcs, lcs, 1, b) == SESLM_OK);
        CHECK(max_diff(a, b, C) <= 1e-6);
        // explicit lengths: a prefix of the text, and a text with an embedded NUL (valid UTF-8)
        const char *hw[1] = {"hello world"};
        const char *h[1] = {"hello"};
        size_t five[1] = {5};
        CHECK(seslm_encoder_embed_texts(e, hw, five, 1, a) == SESLM_OK);
        CHECK(seslm_encoder_embed_texts(e, h, NULL, 1, b) == SESLM_OK);
        CHECK(max_diff(a, b, C) <= 1e-6);
        const char *nul[1] = {"cat\0dog"};
        size_t seven[1] = {7};
        CHECK(seslm_encoder_embed_texts(e, nul, seven, 1, a) == SESLM_OK);
        // a text far longer than 32 tokens is truncated, not refused
        static char longtext[4000];
        for (int i = 0; i < 400; i++) memcpy(longtext + 8 * i, "the cat ", 8);
        longtext[3200] = 0;
        const char *lt[1] = {longtext};
        CHECK(seslm_encoder_embed_texts(e, lt, NULL, 1, a) == SESLM_OK);
        seslm_encoder_free(e);
    }

    // an encoder with a lower max_seq_len refuses longer id sequences and truncates texts
    o = (seslm_encoder_opts){.backend = "cpu", .max_batch = 1, .max_seq_len = 8};
    CHECK(seslm_encoder_new(&e, m, &o) == SESLM_OK);
    if (e) {
        static const int32_t nine[9] = {2, 5, 6, 7, 8, 9, 10, 11, 3};
        const int32_t *r[1] = {nine};
        int l[1] = {9};
        float out[16];
        CHECK(seslm_encoder_forward_ids(e, r, l, 1, out) == SESLM_ERR_LIMIT && strstr(seslm_last_error(), "1..8"));
        const char *t[1] = {"the cat sat on the mat the dog sat on the mat"};
        CHECK(seslm_encoder_embed_texts(e, t, NULL, 1, out) == SESLM_OK);
        seslm_encoder_free(e);
    }
    seslm_model_free(m);
}

/* A message that wraps the previous one ("context: %s", seslm_last_error()) keeps it whole: seslm_fail once
 * formatted into the buffer it was reading from, which garbled the inner message. */
static void test_nested_message(void) {
    seslm_fail(SESLM_ERR_UTF8, "invalid UTF-8 at byte offset 37");
    seslm_fail(SESLM_ERR_INTERNAL, "grounded check: embedding failed: %s", seslm_last_error());
    CHECK_MSG(strcmp(seslm_last_error(), "grounded check: embedding failed: invalid UTF-8 at byte offset 37") == 0,
              "nested message: \"%s\"", seslm_last_error());
    seslm_fail(SESLM_ERR_IO, "%s / %s", seslm_last_error(), seslm_last_error());
    const char *want = "grounded check: embedding failed: invalid UTF-8 at byte offset 37 / grounded";
    CHECK(strncmp(seslm_last_error(), want, strlen(want)) == 0);
}

int main(void) {
    test_nested_message();
    g_root = tm_mkdtemp("errors");
    tm_init(&g_full, 3);
    test_files();
    test_config();
    test_tensors();
    test_encoder();
    tm_free(&g_full);
    tm_rmtree(g_root);
    free(g_root);
    return test_report("test_model_errors");
}
