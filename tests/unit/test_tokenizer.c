/* test_tokenizer.c — the tokenizer against the reference ids of the fast HF tokenizer (fixtures in
 * tests/fixtures/oracle/), plus edge cases: special ids, empty and blank input, truncation, invalid
 * UTF-8, over-long words, accents, CJK, special tokens in the text, loader errors, and concurrent use.
 *
 * The model directory is $SESLM_MODEL_DIR if set, else the SESLM_MODEL_DIR compile definition. */
#include "seslm.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef SESLM_MODEL_DIR
#define SESLM_MODEL_DIR SESLM_SOURCE_DIR "/models/all-MiniLM-L6-v2"
#endif

#define ORACLE_DIR SESLM_SOURCE_DIR "/tests/fixtures/oracle"
#define CAP 4096

// ---------------------------------------------------------------------------------------------
// helpers

static const char *model_dir(void) {
    const char *env = getenv("SESLM_MODEL_DIR");
    return env && *env ? env : SESLM_MODEL_DIR;
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    for (size_t k; buf && (k = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += k;
        if (n == cap) buf = realloc(buf, (cap *= 2) + 1);
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

static int write_file(const char *dir, const char *name, const char *data, size_t len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    size_t w = fwrite(data, 1, len, f);
    fclose(f);
    return w == len;
}

static void remove_tree(const char *dir) {
    static const char *names[] = {"vocab.txt", "tokenizer_config.json", "sentence_bert_config.json"};
    char path[1024];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

// Encodes a NUL-terminated string; returns the status and fills ids / n.
static seslm_status enc(const seslm_tokenizer *tok, const char *s, int32_t *ids, int *n) {
    return seslm_tokenizer_encode(tok, s, strlen(s), ids, CAP, n);
}

static int32_t id_of(const seslm_tokenizer *tok, const char *token) { return seslm_tokenizer_lookup(tok, token); }

static int same_ids(const int32_t *a, int na, const int32_t *b, int nb) {
    return na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0;
}

// Checks that `s` encodes to [CLS] expected... [SEP] where expected are token strings.
static void check_tokens(const seslm_tokenizer *tok, const char *s, const char *const *expected, int n_expected) {
    int32_t ids[CAP];
    int n = 0;
    seslm_status st = enc(tok, s, ids, &n);
    CHECK_MSG(st == SESLM_OK, "encode(\"%s\"): %s", s, seslm_last_error());
    int ok = n == n_expected + 2;
    for (int i = 0; ok && i < n_expected; i++) ok = ids[i + 1] == id_of(tok, expected[i]);
    CHECK_MSG(ok, "encode(\"%s\") gave %d ids, want %d tokens starting \"%s\"", s, n, n_expected,
              n_expected ? expected[0] : "");
    if (!ok)
        for (int i = 0; i < n; i++) fprintf(stderr, "    %d %s\n", ids[i], seslm_tokenizer_token(tok, ids[i]));
}

// ---------------------------------------------------------------------------------------------
// (1) reference ids from the fast tokenizer

typedef struct {
    int n;
    char **text;   // exact bytes (from inputs.bin: JSON cannot carry a NUL through cJSON)
    size_t *len;
    int32_t **ids;
    int *n_ids;
    char **cat;
} oracle_set;

static void oracle_free(oracle_set *o) {
    for (int i = 0; i < o->n; i++) {
        if (o->text) free(o->text[i]);
        if (o->ids) free(o->ids[i]);
        if (o->cat) free(o->cat[i]);
    }
    free(o->text);
    free(o->len);
    free(o->ids);
    free(o->n_ids);
    free(o->cat);
}

// inputs.bin: per input a uint32 LE byte length and the UTF-8 bytes.
static int oracle_read_texts(oracle_set *o, const char *bin, size_t bin_len) {
    size_t pos = 0;
    for (int i = 0; i < o->n; i++) {
        if (pos + 4 > bin_len) return 0;
        const unsigned char *p = (const unsigned char *)bin + pos;
        size_t n = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 | (size_t)p[3] << 24;
        pos += 4;
        if (pos + n > bin_len) return 0;
        o->text[i] = malloc(n + 1);
        memcpy(o->text[i], bin + pos, n);
        o->text[i][n] = '\0';
        o->len[i] = n;
        pos += n;
    }
    return pos == bin_len;
}

// One JSON object per line; fills cat (inputs.jsonl, also checked against inputs.bin) or ids (ids.jsonl).
static int oracle_read_jsonl(oracle_set *o, char *data, int want_ids) {
    int i = 0;
    for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n"), i++) {
        if (i >= o->n) return 0;
        cJSON *j = cJSON_Parse(line);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
        int ok = cJSON_IsNumber(id) && id->valueint == i;
        if (ok && want_ids) {
            const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "input_ids"), *e;
            int n = cJSON_GetArraySize(arr), k = 0;
            o->ids[i] = malloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
            o->n_ids[i] = n;
            cJSON_ArrayForEach(e, arr) o->ids[i][k++] = (int32_t)e->valueint;
        } else if (ok) {
            const cJSON *cat = cJSON_GetObjectItemCaseSensitive(j, "cat");
            const cJSON *text = cJSON_GetObjectItemCaseSensitive(j, "text");
            ok = cJSON_IsString(cat) && cJSON_IsString(text) &&
                 strcmp(text->valuestring, o->text[i]) == 0; // equal up to a NUL inside the text
            o->cat[i] = strdup(ok ? cat->valuestring : "?");
        }
        cJSON_Delete(j);
        if (!ok) return 0;
    }
    return i == o->n;
}

static int oracle_load(oracle_set *o) {
    size_t bin_len;
    char *bin = read_all(ORACLE_DIR "/inputs.bin", &bin_len);
    char *inputs = read_all(ORACLE_DIR "/inputs.jsonl", NULL);
    char *ids = read_all(ORACLE_DIR "/ids.jsonl", NULL);
    int failures_before = t_failures;
    int ok = bin && inputs && ids;
    CHECK_MSG(ok, "oracle fixtures missing in %s (inputs.bin, inputs.jsonl, ids.jsonl): they are committed with "
                  "the repository; regenerate them with tests/oracle/make_fixtures.sh", ORACLE_DIR);
    if (ok) {
        for (const char *p = ids; *p; p++) o->n += (*p == '\n');
        o->text = calloc((size_t)o->n, sizeof *o->text);
        o->len = calloc((size_t)o->n, sizeof *o->len);
        o->ids = calloc((size_t)o->n, sizeof *o->ids);
        o->n_ids = calloc((size_t)o->n, sizeof *o->n_ids);
        o->cat = calloc((size_t)o->n, sizeof *o->cat);
        ok = o->n > 0;
        CHECK_MSG(ok && oracle_read_texts(o, bin, bin_len), "%s/inputs.bin: malformed or count != %d", ORACLE_DIR, o->n);
        CHECK_MSG(ok && oracle_read_jsonl(o, inputs, 0), "%s/inputs.jsonl: malformed or differs from inputs.bin",
                  ORACLE_DIR);
        CHECK_MSG(ok && oracle_read_jsonl(o, ids, 1), "%s/ids.jsonl: malformed", ORACLE_DIR);
    }
    free(bin);
    free(inputs);
    free(ids);
    return ok && t_failures == failures_before;
}

static void print_mismatch(const seslm_tokenizer *tok, const oracle_set *o, int i, const int32_t *got, int n) {
    fprintf(stderr, "  mismatch #%d [%s] \"%.200s\"\n    want:", i, o->cat[i], o->text[i]);
    for (int k = 0; k < o->n_ids[i] && k < 40; k++) fprintf(stderr, " %s", seslm_tokenizer_token(tok, o->ids[i][k]));
    fprintf(stderr, "\n    got: ");
    for (int k = 0; k < n && k < 40; k++) fprintf(stderr, " %s", seslm_tokenizer_token(tok, got[k]));
    fprintf(stderr, "\n");
}

static void test_oracle(const seslm_tokenizer *tok, const oracle_set *o) {
    int bad = 0;
    for (int i = 0; i < o->n; i++) {
        int32_t ids[CAP];
        int n = 0;
        seslm_status st = seslm_tokenizer_encode(tok, o->text[i], o->len[i], ids, CAP, &n);
        if (st != SESLM_OK || !same_ids(ids, n, o->ids[i], o->n_ids[i])) {
            if (bad < 10) print_mismatch(tok, o, i, ids, st == SESLM_OK ? n : 0);
            bad++;
        }
    }
    CHECK_MSG(bad == 0, "%d of %d oracle inputs differ from the reference tokenizer", bad, o->n);
    printf("oracle: %d inputs compared, %d differ\n", o->n, bad);
}

// ---------------------------------------------------------------------------------------------
// (2) behaviour on the real vocabulary

static void test_basics(const seslm_tokenizer *tok) {
    const seslm_tokenizer_opts *op = seslm_tokenizer_options(tok);
    CHECK(seslm_tokenizer_vocab_size(tok) == 30522);
    CHECK(op->do_lower_case == 1 && op->strip_accents == -1 && op->tokenize_chinese_chars == 1);
    CHECK_MSG(op->max_len == 256, "max_len %d (sentence_bert_config max_seq_length is 256)", op->max_len);
    CHECK(id_of(tok, "[CLS]") == 101 && id_of(tok, "[SEP]") == 102 && id_of(tok, "[UNK]") == 100);
    CHECK(id_of(tok, "[PAD]") == 0 && id_of(tok, "##ing") > 0 && id_of(tok, "no-such-token") == -1);
    CHECK(seslm_tokenizer_token(tok, 101) && strcmp(seslm_tokenizer_token(tok, 101), "[CLS]") == 0);
    CHECK(seslm_tokenizer_token(tok, -1) == NULL && seslm_tokenizer_token(tok, 30522) == NULL);

    int32_t ids[CAP];
    int n = -1;
    CHECK(seslm_tokenizer_encode(tok, NULL, 0, ids, CAP, &n) == SESLM_OK && n == 2 && ids[0] == 101 && ids[1] == 102);
    CHECK(enc(tok, "", ids, &n) == SESLM_OK && n == 2 && ids[0] == 101 && ids[1] == 102);
    CHECK(enc(tok, " \t\n\r \xE3\x80\x80\xC2\xA0\xE2\x80\xA8 ", ids, &n) == SESLM_OK && n == 2);
    CHECK(enc(tok, "\xE2\x80\x8B\xC2\xAD\x01\x7F", ids, &n) == SESLM_OK && n == 2); // ZWSP, soft hyphen, controls
    CHECK(seslm_tokenizer_encode(tok, "abc", 3, ids, 255, &n) == SESLM_ERR_ARG);       // cap < max_len
    CHECK(seslm_tokenizer_encode(tok, "abc", 3, NULL, CAP, &n) == SESLM_ERR_ARG);

    // a NUL byte inside the text is removed, not a terminator
    int32_t ids2[CAP];
    int n2 = 0;
    CHECK(seslm_tokenizer_encode(tok, "hello\0world", 11, ids, CAP, &n) == SESLM_OK);
    CHECK(enc(tok, "helloworld", ids2, &n2) == SESLM_OK && same_ids(ids, n, ids2, n2));

    const char *hello[] = {"hello", ",", "world", "!"};
    check_tokens(tok, "Hello, WORLD!", hello, 4);
    const char *unaff[] = {"una", "##ffa", "##ble"};
    check_tokens(tok, "unaffable", unaff, 3);
}

static void test_normalisation(const seslm_tokenizer *tok) {
    const char *cafe[] = {"cafe", "resume", "naive"};
    check_tokens(tok, "Caf\xC3\xA9 R\xC3\xA9sum\xC3\xA9 Na\xC3\xAFve", cafe, 3);              // precomposed
    check_tokens(tok, "Cafe\xCC\x81 Re\xCC\x81sume\xCC\x81 Nai\xCC\x88ve", cafe, 3);          // combining marks
    const char *istanbul[] = {"istanbul"};
    check_tokens(tok, "\xC4\xB0stanbul", istanbul, 1);                                      // U+0130: NFD, drop dot
    const char *cjk[] = {"中", "文", "abc"};
    check_tokens(tok, "\xE4\xB8\xAD\xE6\x96\x87" "abc", cjk, 3);                             // CJK split off
    const char *ext_b[] = {"a", "[UNK]", "b"};
    check_tokens(tok, "a\xF0\xAB\xA4\xA0" "b", ext_b, 3);                                  // U+2B920: CJK
    const char *ext_b2[] = {"[UNK]"};
    check_tokens(tok, "a\xF0\xAB\xA0\xA0" "b", ext_b2, 1);                                 // U+2B820: not CJK
    const char *sep[] = {"a", "[SEP]", "b", "[", "cl", "##s", "]"};
    check_tokens(tok, "a[SEP]b[cls]", sep, 7);                                              // specials: raw text only
    const char *sigma[] = {"σ", "##α", "##σ"};
    check_tokens(tok, "\xCE\xA3\xCE\x91\xCE\xA3", sigma, 3);                                // no final-sigma rule
}

static void test_long_words(const seslm_tokenizer *tok) {
    char word[512];
    int32_t ids[CAP];
    int n = 0;
    memset(word, 'a', 101);
    word[101] = '\0';
    CHECK(enc(tok, word, ids, &n) == SESLM_OK && n == 3 && ids[1] == 100); // 101 chars -> [UNK]
    word[100] = '\0';
    CHECK(enc(tok, word, ids, &n) == SESLM_OK && n > 3 && ids[1] != 100);  // 100 chars -> pieces
    // 100 two-byte chars is still one word of 100 chars: 'é' strips to 'e'
    for (int i = 0; i < 101; i++) memcpy(word + 2 * i, "\xC3\xA9", 2);
    word[202] = '\0';
    CHECK(enc(tok, word, ids, &n) == SESLM_OK && n == 3 && ids[1] == 100);
    word[200] = '\0';
    CHECK(enc(tok, word, ids, &n) == SESLM_OK && n > 3 && ids[1] != 100);
}

static void test_truncation(const seslm_tokenizer *tok) {
    int max_len = seslm_tokenizer_options(tok)->max_len;
    size_t len = 6 * 1000;
    char *text = malloc(len + 1);
    for (size_t i = 0; i < len; i += 6) memcpy(text + i, "word, ", 6);
    int32_t ids[CAP];
    int n = 0;
    CHECK(seslm_tokenizer_encode(tok, text, len, ids, max_len, &n) == SESLM_OK); // cap == max_len is enough
    CHECK_MSG(n == max_len && ids[0] == 101 && ids[n - 1] == 102 && ids[n - 2] == id_of(tok, ","),
              "n=%d last=%d", n, n ? ids[n - 1] : -1);
    // A multi-piece word cut by the limit: its first pieces are kept, as the reference truncates tokens.
    for (size_t i = 0; i < len; i += 6) memcpy(text + i, "a a a ", 6);
    memcpy(text + 2 * (size_t)(max_len - 4), "unaffable ", 10);
    CHECK(seslm_tokenizer_encode(tok, text, len, ids, CAP, &n) == SESLM_OK && n == max_len);
    CHECK(ids[n - 3] == id_of(tok, "una") && ids[n - 2] == id_of(tok, "##ffa") && ids[n - 1] == 102);
    // Bad UTF-8 beyond the truncation point is still rejected.
    text[len - 1] = (char)0xFF;
    CHECK(seslm_tokenizer_encode(tok, text, len, ids, CAP, &n) == SESLM_ERR_UTF8);
    free(text);
}

static void test_invalid_utf8(const seslm_tokenizer *tok) {
    static const struct {
        const char *what, *bytes;
        size_t offset;
    } cases[] = {
        {"overlong '/'", "ab\xC0\xAF", 2},
        {"overlong 3-byte", "\xE0\x80\xAF", 0},
        {"lone continuation byte", "abc \x80 def", 4},
        {"UTF-16 surrogate", "x\xED\xA0\x80y", 1},
        {"truncated sequence", "word \xE2\x82", 5},
        {"beyond U+10FFFF", "\xF4\x90\x80\x80", 0},
        {"0xFF byte", "ok \xFF", 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int32_t ids[CAP];
        int n = 7;
        seslm_status st = enc(tok, cases[i].bytes, ids, &n);
        char want[64];
        snprintf(want, sizeof want, "offset %zu", cases[i].offset);
        CHECK_MSG(st == SESLM_ERR_UTF8 && n == 0, "%s: status %s", cases[i].what, seslm_status_str(st));
        CHECK_MSG(strstr(seslm_last_error(), want) != NULL, "%s: message \"%s\" lacks \"%s\"", cases[i].what,
                  seslm_last_error(), want);
    }
}

// ---------------------------------------------------------------------------------------------
// concurrency: several threads encode the oracle set at once and must agree with one thread

typedef struct {
    const seslm_tokenizer *tok;
    const oracle_set *o;
    int bad;
} thread_job;

static void *thread_encode(void *arg) {
    thread_job *job = arg;
    for (int rep = 0; rep < 5; rep++)
        for (int i = 0; i < job->o->n; i++) {
            int32_t ids[CAP];
            int n = 0;
            if (seslm_tokenizer_encode(job->tok, job->o->text[i], job->o->len[i], ids, CAP, &n) != SESLM_OK ||
                !same_ids(ids, n, job->o->ids[i], job->o->n_ids[i]))
                job->bad++;
        }
    return NULL;
}

static void test_threads(const seslm_tokenizer *tok, const oracle_set *o) {
    enum { N_THREADS = 4 };
    pthread_t th[N_THREADS];
    thread_job jobs[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        jobs[i] = (thread_job){tok, o, 0};
        CHECK(pthread_create(&th[i], NULL, thread_encode, &jobs[i]) == 0);
    }
    int bad = 0;
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(th[i], NULL);
        bad += jobs[i].bad;
    }
    CHECK_MSG(bad == 0, "%d concurrent encodes differ from the reference", bad);
}

// Not a check (machines differ): tokens per second on the oracle set, for the record.
static void report_speed(const seslm_tokenizer *tok, const oracle_set *o) {
    struct timespec t0, t1;
    long tokens = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int rep = 0; rep < 20; rep++)
        for (int i = 0; i < o->n; i++) {
            int32_t ids[CAP];
            int n = 0;
            seslm_tokenizer_encode(tok, o->text[i], o->len[i], ids, CAP, &n);
            tokens += n;
        }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("speed: %.2f M tokens/s (one thread, oracle set)\n", (double)tokens / s * 1e-6);
}

// ---------------------------------------------------------------------------------------------
// (3) loading: errors and a tiny vocabulary

static void test_load_errors(void) {
    seslm_tokenizer *tok = (seslm_tokenizer *)1;
    seslm_status st = seslm_tokenizer_load(&tok, "/nonexistent/seslm-model", 0);
    CHECK_MSG(st == SESLM_ERR_IO && tok == NULL, "missing dir: %s", seslm_status_str(st));
    CHECK_MSG(strstr(seslm_last_error(), "/nonexistent/seslm-model") && strstr(seslm_last_error(), "vocab.txt") &&
                  strstr(seslm_last_error(), "tokenizer.json"), "message: %s",
              seslm_last_error());
    CHECK(seslm_tokenizer_load(NULL, "/tmp", 0) == SESLM_ERR_ARG);

    char dir[] = "/tmp/seslm_tok_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK_MSG(0, "mkdtemp failed");
        return;
    }
    static const struct {
        const char *what, *vocab, *config;
        seslm_status want;
    } cases[] = {
        {"empty vocab", "", NULL, SESLM_ERR_FORMAT},
        {"invalid UTF-8 token", "[CLS]\n[SEP]\n[UNK]\nbad\xC3\n", NULL, SESLM_ERR_FORMAT},
        {"no [UNK]", "[CLS]\n[SEP]\nword\n", NULL, SESLM_ERR_FORMAT},
        {"bad JSON config", "[CLS]\n[SEP]\n[UNK]\n", "{\"do_lower_case\": tru", SESLM_ERR_FORMAT},
        {"config not an object", "[CLS]\n[SEP]\n[UNK]\n", "[1, 2]", SESLM_ERR_FORMAT},
        {"minimal vocab", "[CLS]\n[SEP]\n[UNK]", NULL, SESLM_OK},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        remove_tree(dir);
        mkdir(dir, 0700);
        write_file(dir, "vocab.txt", cases[i].vocab, strlen(cases[i].vocab));
        if (cases[i].config) write_file(dir, "tokenizer_config.json", cases[i].config, strlen(cases[i].config));
        tok = NULL;
        st = seslm_tokenizer_load(&tok, dir, 0);
        CHECK_MSG(st == cases[i].want, "%s: got %s (%s)", cases[i].what, seslm_status_str(st), seslm_last_error());
        if (st != SESLM_OK) CHECK_MSG(strstr(seslm_last_error(), dir) != NULL, "%s: message \"%s\" lacks the path",
                                      cases[i].what, seslm_last_error());
        seslm_tokenizer_free(tok);
    }
    remove_tree(dir);
}

// A hand-made vocabulary: WordPiece greedy matching, options from the config, max_len capping.
static void test_tiny_vocab(void) {
    char dir[] = "/tmp/seslm_tok_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK_MSG(0, "mkdtemp failed");
        return;
    }
    const char *vocab = "[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\nun\r\n##aff\r\n##able\r\naff\r\n##a\r\n##f\r\nÉ\r\n";
    const char *config = "{\"do_lower_case\": false, \"model_max_length\": 1000000000000000019884624838656,"
                         " \"cls_token\": {\"content\": \"[CLS]\"}}";
    const char *st_config = "{\"max_seq_length\": 8}";
    write_file(dir, "vocab.txt", vocab, strlen(vocab));
    write_file(dir, "tokenizer_config.json", config, strlen(config));

    seslm_tokenizer *tok = NULL;
    CHECK_MSG(seslm_tokenizer_load(&tok, dir, 0) == SESLM_OK, "%s", seslm_last_error());
    if (tok) {
        const seslm_tokenizer_opts *op = seslm_tokenizer_options(tok);
        CHECK(seslm_tokenizer_vocab_size(tok) == 11 && op->do_lower_case == 0 && op->strip_accents == -1);
        CHECK_MSG(op->max_len == 512, "max_len %d: the 1e30 sentinel means no limit -> 512", op->max_len);
        CHECK(seslm_tokenizer_lookup(tok, "##able") == 6); // CRLF stripped
        int32_t ids[CAP];
        int n = 0;
        CHECK(enc(tok, "unaffable affa", ids, &n) == SESLM_OK && n == 7);
        CHECK(ids[0] == 2 && ids[1] == 4 && ids[2] == 5 && ids[3] == 6 && ids[4] == 7 && ids[5] == 8 && ids[6] == 3);
        CHECK(enc(tok, "Un \xC3\x89", ids, &n) == SESLM_OK && n == 4 && ids[1] == 1 && ids[2] == 10); // cased
        CHECK(enc(tok, "unx", ids, &n) == SESLM_OK && n == 3 && ids[1] == 1); // undecomposable -> [UNK]
        seslm_tokenizer_free(tok);
    }
    write_file(dir, "sentence_bert_config.json", st_config, strlen(st_config));
    tok = NULL;
    CHECK(seslm_tokenizer_load(&tok, dir, 0) == SESLM_OK && tok && seslm_tokenizer_options(tok)->max_len == 8);
    seslm_tokenizer_free(tok);
    tok = NULL;
    CHECK(seslm_tokenizer_load(&tok, dir, 6) == SESLM_OK && tok && seslm_tokenizer_options(tok)->max_len == 6);
    if (tok) {
        int32_t ids[8];
        int n = 0;
        CHECK(seslm_tokenizer_encode(tok, "un un un un un un", 17, ids, 6, &n) == SESLM_OK && n == 6 && ids[5] == 3);
    }
    seslm_tokenizer_free(tok);
    remove_tree(dir);
}

// Loads a tokenizer from a temporary directory holding `vocab` and, if given, `config`.
static seslm_tokenizer *load_tiny(char *dir, const char *vocab, const char *config) {
    seslm_tokenizer *tok = NULL;
    write_file(dir, "vocab.txt", vocab, strlen(vocab));
    if (config) write_file(dir, "tokenizer_config.json", config, strlen(config));
    seslm_status st = seslm_tokenizer_load(&tok, dir, 0);
    CHECK_MSG(st == SESLM_OK, "%s", seslm_last_error());
    return tok;
}

// Normalisation details that the real vocabulary cannot show (the characters are not in it).
static void test_tiny_normalisation(void) {
    char dir[] = "/tmp/seslm_tok_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK_MSG(0, "mkdtemp failed");
        return;
    }
    int32_t ids[CAP];
    int n = 0;
    // NFD reorders combining marks by class: U+1D16D (class 226) goes after U+1D165 (class 216).
    seslm_tokenizer *tok = load_tiny(dir, "[CLS]\n[SEP]\n[UNK]\nx\n##\xF0\x9D\x85\xA5\n##\xF0\x9D\x85\xAD\n", NULL);
    if (tok) {
        CHECK(enc(tok, "x\xF0\x9D\x85\xAD\xF0\x9D\x85\xA5", ids, &n) == SESLM_OK && n == 5);
        CHECK(ids[1] == 3 && ids[2] == 4 && ids[3] == 5);
        seslm_tokenizer_free(tok);
    }
    remove_tree(dir);
    mkdir(dir, 0700);
    // Lower-casing without accent stripping: U+0130 becomes "i" + U+0307 (Rust to_lowercase).
    tok = load_tiny(dir, "[CLS]\n[SEP]\n[UNK]\ni\n##\xCC\x87\n",
                    "{\"do_lower_case\": true, \"strip_accents\": false}");
    if (tok) {
        CHECK(seslm_tokenizer_options(tok)->strip_accents == 0);
        CHECK(enc(tok, "\xC4\xB0", ids, &n) == SESLM_OK && n == 4 && ids[1] == 3 && ids[2] == 4);
        seslm_tokenizer_free(tok);
    }
    remove_tree(dir);
}

// ---------------------------------------------------------------------------------------------

int main(void) {
    test_load_errors();
    test_tiny_vocab();
    test_tiny_normalisation();

    seslm_tokenizer *tok = NULL;
    const char *dir = model_dir();
    if (seslm_tokenizer_load(&tok, dir, 512) != SESLM_OK) {
        fprintf(stderr, "cannot load the tokenizer from %s: %s\n(run data/fetch_model.sh, or set SESLM_MODEL_DIR)\n",
                dir, seslm_last_error());
        return 1;
    }
    test_basics(tok);
    test_normalisation(tok);
    test_long_words(tok);
    test_truncation(tok);
    test_invalid_utf8(tok);

    oracle_set o = {0};
    if (oracle_load(&o)) {
        test_oracle(tok, &o);
        test_threads(tok, &o);
        report_speed(tok, &o);
    }
    oracle_free(&o);
    seslm_tokenizer_free(tok);
    return test_report("test_tokenizer");
}
