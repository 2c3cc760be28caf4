/* test_decoder_tiny.c — the decoder runtime on a tiny generated Llama GGUF (tests/fuzz/corpus_gguf/
 * tiny_llama.gguf, written by tests/fuzz/make_gguf_corpus.py with every weight type): no real model needed.
 *   - loading: hyperparameters, tied output, default system prompt from the chat template;
 *   - corrupt files: missing, truncated, tensor outside the file, wrong architecture -> IO / FORMAT;
 *   - tokenizer: merges by rank, digits split one by one (pre-tokenizer "smollm"), control tokens only
 *     with parse_special, byte round trip, invalid UTF-8 refused;
 *   - forward: fast kernels vs the plain-C reference; one batch vs token by token (the KV cache);
 *     context overflow refused; the layer stash (a pass resumed at a recorded layer input = the whole pass);
 *   - sampler: greedy = argmax, same seed = same draws, frequencies follow softmax(logits / T), a tiny
 *     top-p keeps only the best token;
 *   - generation: streamed pieces add up to the result; a stop string cuts the text before it; generated
 *     text is always well-formed UTF-8 (a sampled byte token that cuts a character becomes U+FFFD). */
#include "decoder.h"
#include "gguf.h"
#include "test.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TINY SESLM_SOURCE_DIR "/tests/fuzz/corpus_gguf/tiny_llama.gguf"

static int32_t tok_id(const seslm_llm *m, const char *s) { return bpe_lookup(seslm_llm_tokenizer(m), s, strlen(s)); }

/* util_utf8_repair: one U+FFFD per maximal ill-formed subpart (what Python's decode(errors="replace") gives),
 * well-formed text unchanged. */
static void test_utf8_repair(void) {
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain", "plain"},
        {"caf\xc3\xa9", "caf\xc3\xa9"},
        {"cut \xe2\x82", "cut \xef\xbf\xbd"},             // a character cut at the end (the bug seen)
        {"a\x80\x80" "b", "a\xef\xbf\xbd\xef\xbf\xbd" "b"},    // stray continuation bytes: one each
        {"\xc0\xafx", "\xef\xbf\xbd\xef\xbf\xbd" "x"},      // overlong '/'
        {"\xed\xa0\x80!", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd!"}, // a UTF-16 surrogate
        {"\xe2\x82" "A\xe2\x82\xac", "\xef\xbf\xbd" "A\xe2\x82\xac"}, // cut, then a whole euro sign
        {"\xff", "\xef\xbf\xbd"},
        {"\xf0\x9f\x98" "x\xf0\x9f\x98\x80", "\xef\xbf\xbd" "x\xf0\x9f\x98\x80"}, // a cut emoji, then a whole one
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[64];
        memset(out, 'Z', sizeof out);
        size_t n = util_utf8_repair(cases[i].in, strlen(cases[i].in), out);
        CHECK_MSG(n == strlen(cases[i].out) && strcmp(out, cases[i].out) == 0 && util_utf8_valid(out, n),
                  "repair case %zu", i);
    }
}

static void test_load_errors(void) {
    seslm_llm *m = NULL;
    CHECK(seslm_llm_load(&m, "/nonexistent/model.gguf") == SESLM_ERR_IO && m == NULL);
    CHECK(strstr(seslm_last_error(), "/nonexistent/model.gguf") != NULL);
    CHECK(seslm_llm_load(&m, SESLM_SOURCE_DIR "/tests/fuzz/corpus_gguf/truncated.gguf") == SESLM_ERR_FORMAT);
    CHECK(seslm_llm_load(&m, SESLM_SOURCE_DIR "/tests/fuzz/corpus_gguf/bad_offset.gguf") == SESLM_ERR_FORMAT);
    CHECK(strstr(seslm_last_error(), "outside the file") != NULL);
    CHECK(seslm_llm_load(&m, SESLM_SOURCE_DIR "/tests/fuzz/corpus_gguf/huge_count.gguf") == SESLM_ERR_FORMAT);
    // wrong architecture: patch "llama" in general.architecture's value
    FILE *f = fopen(TINY, "rb");
    CHECK(f != NULL);
    if (!f) return;
    static char buf[1 << 18];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    char *p = NULL;
    for (size_t i = 0; i + 5 < n && !p; i++)
        if (memcmp(buf + i, "llama", 5) == 0 && i > 20) p = buf + i; // first occurrence: the architecture value
    CHECK(p != NULL);
    if (p) p[4] = 'b';
    char path[] = "/tmp/test_decoder_tiny_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) return;
    CHECK(write(fd, buf, n) == (ssize_t)n);
    close(fd);
    CHECK(seslm_llm_load(&m, path) == SESLM_ERR_FORMAT);
    CHECK(strstr(seslm_last_error(), "architecture") != NULL);
    unlink(path);
}

static void test_tokenizer(const seslm_llm *m) {
    const bpe_tokenizer *t = seslm_llm_tokenizer(m);
    int32_t *ids = NULL;
    int n = 0;
    // "hello" <- he + ll -> hell + o; " world" <- Ġw + or, Ġwor + ld (Ġ: the byte alphabet's space)
    CHECK(bpe_encode(t, "hello world", 11, 0, &ids, &n) == SESLM_OK);
    CHECK(n == 2 && ids[0] == tok_id(m, "hello") && ids[1] == tok_id(m, "\xc4\xa0world"));
    free(ids);
    // the merge "1 2" exists, but the smollm pre-tokenizer puts every digit alone
    CHECK(bpe_encode(t, "12", 2, 0, &ids, &n) == SESLM_OK);
    CHECK(n == 2 && ids[0] == tok_id(m, "1") && ids[1] == tok_id(m, "2"));
    free(ids);
    const char *chat = "<|im_start|>hello";
    CHECK(bpe_encode(t, chat, strlen(chat), 1, &ids, &n) == SESLM_OK);
    CHECK(n == 2 && ids[0] == 1 && bpe_is_control(t, ids[0]) && ids[1] == tok_id(m, "hello"));
    free(ids);
    CHECK(bpe_encode(t, chat, strlen(chat), 0, &ids, &n) == SESLM_OK);
    CHECK(n > 5);
    for (int i = 0; i < n; i++) CHECK(ids[i] != 1);
    free(ids);
    // byte round trip on text with every kind of pre-token
    const char *texts[] = {"Hello,   world!\n\n\tcaf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac 3.14 don't", "   ", "a\001b",
                           "\xf0\x9f\x98\x80!", "x's y'll"};
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
        size_t L = strlen(texts[k]);
        CHECK(bpe_encode(t, texts[k], L, 0, &ids, &n) == SESLM_OK);
        char out[256];
        int o = 0;
        for (int i = 0; i < n; i++) o += bpe_token_bytes(t, ids[i], 0, out + o, (int)sizeof out - o);
        CHECK_MSG(o == (int)L && memcmp(out, texts[k], L) == 0, "round trip of text %zu", k);
        free(ids);
    }
    CHECK(bpe_encode(t, "ok \xc3\x28", 5, 0, &ids, &n) == SESLM_ERR_UTF8);
    CHECK(strstr(seslm_last_error(), "byte 3") != NULL);
    CHECK(bpe_token_bytes(t, -1, 0, NULL, 0) == -1);
}

static void test_forward(const seslm_llm *m) {
    const int V = seslm_llm_cfg(m)->n_vocab;
    seslm_llm_ctx *fast = NULL, *ref = NULL, *step = NULL;
    CHECK(seslm_llm_ctx_new(&fast, m, 64, 0) == SESLM_OK);
    CHECK(seslm_llm_ctx_new(&ref, m, 64, 1) == SESLM_OK);
    CHECK(seslm_llm_ctx_new(&step, m, 64, 0) == SESLM_OK);
    if (!fast || !ref || !step) return;
    int32_t ids[12];
    for (int i = 0; i < 12; i++) ids[i] = 3 + (i * 37) % (V - 3);
    float *a = malloc((size_t)V * 4), *b = malloc((size_t)V * 4), *c = malloc((size_t)V * 4);
    for (int i = 0; i < V; i++) a[i] = b[i] = c[i] = NAN;
    CHECK(seslm_llm_decode(fast, ids, 12, a) == SESLM_OK);
    CHECK(seslm_llm_decode(ref, ids, 12, b) == SESLM_OK);
    for (int i = 0; i < 12; i++) CHECK(seslm_llm_decode(step, ids + i, 1, c) == SESLM_OK);
    CHECK(seslm_llm_ctx_pos(fast) == 12 && seslm_llm_ctx_pos(step) == 12);
    float maxd_ref = 0.0f, maxd_step = 0.0f, mag = 0.0f;
    int bad = 0;
    for (int i = 0; i < V; i++) {
        if (!(fabsf(a[i] - b[i]) < 1e30f) || !(fabsf(a[i] - c[i]) < 1e30f)) bad++;
        maxd_ref = fmaxf(maxd_ref, fabsf(a[i] - b[i]));
        maxd_step = fmaxf(maxd_step, fabsf(a[i] - c[i]));
        mag = fmaxf(mag, fabsf(b[i]));
    }
    CHECK_MSG(bad == 0, "%d logits NaN or unwritten", bad);
    CHECK_MSG(mag > 0.1f, "logits all near zero (%g): the test would prove nothing", (double)mag);
    CHECK_MSG(maxd_ref <= 1e-3f * (1.0f + mag), "fast vs reference: max |diff| %g", (double)maxd_ref);
    CHECK_MSG(maxd_step <= 1e-3f * (1.0f + mag), "batch vs token by token: max |diff| %g", (double)maxd_step);
    // the context is full at 64: 53 more do not fit, and the position stays
    int32_t many[53] = {0};
    CHECK(seslm_llm_decode(fast, many, 53, a) == SESLM_ERR_LIMIT && seslm_llm_ctx_pos(fast) == 12);
    int32_t badid = V;
    CHECK(seslm_llm_decode(fast, &badid, 1, a) == SESLM_ERR_ARG);
    seslm_llm_ctx_reset(fast);
    CHECK(seslm_llm_ctx_pos(fast) == 0);
    free(a);
    free(b);
    free(c);
    seslm_llm_ctx_free(fast);
    seslm_llm_ctx_free(ref);
    seslm_llm_ctx_free(step);
}

/* The layer stash: a pass that resumes at layer l from the recorded inputs gives the same logits, bit for bit, as
 * the whole pass with the same layers bypassed (two decode calls per sequence, two sequences); replays out of
 * step and stashes past their bound are refused. */
static void run_seqs(seslm_llm_ctx *c, const int32_t *ids, float *out, int V, seslm_status *st) {
    for (int s = 0; s < 2 && !*st; s++) { // a "prompt" of 7 tokens, then 5 more: each call's logits kept
        seslm_llm_ctx_reset(c);
        *st = seslm_llm_decode_all(c, ids + 12 * s, 7, out + (size_t)(12 * s) * V);
        if (!*st) *st = seslm_llm_decode_all(c, ids + 12 * s + 7, 5, out + (size_t)(12 * s + 7) * V);
    }
}

static void test_stash(seslm_llm *m) {
    const int V = seslm_llm_cfg(m)->n_vocab, L = seslm_llm_cfg(m)->n_layer;
    seslm_llm_ctx *c = NULL;
    seslm_llm_stash *sp = NULL, *s0 = NULL, *tiny = NULL;
    CHECK(seslm_llm_ctx_new(&c, m, 64, 0) == SESLM_OK);
    CHECK(seslm_llm_stash_new(&sp, m, (size_t)1 << 24) == SESLM_OK && seslm_llm_stash_new(&s0, m, (size_t)1 << 24) == SESLM_OK);
    CHECK(seslm_llm_stash_new(&tiny, m, 1000) == SESLM_OK);
    if (!c || !sp || !s0 || !tiny) return;
    int32_t ids[24];
    for (int i = 0; i < 24; i++) ids[i] = 3 + (i * 53) % (V - 3);
    const size_t n = (size_t)24 * V;
    float *whole = malloc(n * 4), *got = malloc(n * 4);
    uint8_t skip0[2] = {1, 0}, skip1[2] = {0, 1}, both[2] = {1, 1};
    seslm_status st = SESLM_OK;
    // record: the parent's layer inputs, and those with layer 0 bypassed (the logits as a whole pass's)
    CHECK(seslm_llm_ctx_set_stash(c, sp, SESLM_LLM_STASH_RECORD, 0) == SESLM_OK);
    run_seqs(c, ids, got, V, &st);
    CHECK(st == SESLM_OK && seslm_llm_stash_complete(sp) && seslm_llm_stash_bytes(sp) == (size_t)24 * L * 64 * 4);
    seslm_llm_ctx_set_stash(c, NULL, SESLM_LLM_STASH_OFF, 0);
    run_seqs(c, ids, whole, V, &st);
    CHECK(st == SESLM_OK && memcmp(whole, got, n * 4) == 0);
    seslm_llm_set_layer_skip(m, skip0);
    CHECK(seslm_llm_ctx_set_stash(c, s0, SESLM_LLM_STASH_RECORD, 0) == SESLM_OK);
    run_seqs(c, ids, got, V, &st);
    seslm_llm_set_layer_skip(m, NULL);
    // resume at layer `from` with `skip`, recorded in `rec`: the same floats as the whole pass with `skip`
    struct {
        seslm_llm_stash *rec;
        const uint8_t *skip;
        int from;
    } cases[] = {{sp, NULL, 0}, {sp, NULL, 1}, {sp, skip0, 0}, {sp, skip1, 1}, {s0, skip0, 1}, {s0, both, 1}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases && !st; k++) {
        seslm_llm_set_layer_skip(m, cases[k].skip);
        seslm_llm_ctx_set_stash(c, NULL, SESLM_LLM_STASH_OFF, 0);
        run_seqs(c, ids, whole, V, &st);
        for (size_t i = 0; i < n; i++) got[i] = NAN;
        CHECK(seslm_llm_ctx_set_stash(c, cases[k].rec, SESLM_LLM_STASH_REPLAY, cases[k].from) == SESLM_OK);
        run_seqs(c, ids, got, V, &st);
        CHECK_MSG(st == SESLM_OK && memcmp(whole, got, n * 4) == 0, "case %zu: resumed at layer %d differs", k, cases[k].from);
        seslm_llm_set_layer_skip(m, NULL);
    }
    // the parent differs from a bypass (the test would prove nothing otherwise)
    seslm_llm_ctx_set_stash(c, NULL, SESLM_LLM_STASH_OFF, 0);
    run_seqs(c, ids, got, V, &st);
    CHECK(memcmp(whole, got, n * 4) != 0);
    // a replay out of step: other ids, or a call past the recorded ones
    CHECK(seslm_llm_ctx_set_stash(c, sp, SESLM_LLM_STASH_REPLAY, 1) == SESLM_OK);
    seslm_llm_ctx_reset(c);
    CHECK(seslm_llm_decode_all(c, ids + 1, 7, got) == SESLM_ERR_INTERNAL);
    CHECK(seslm_llm_ctx_set_stash(c, sp, SESLM_LLM_STASH_REPLAY, 1) == SESLM_OK);
    st = SESLM_OK;
    run_seqs(c, ids, got, V, &st);
    seslm_llm_ctx_reset(c);
    CHECK(st == SESLM_OK && seslm_llm_decode_all(c, ids, 7, got) == SESLM_ERR_INTERNAL);
    // bad arguments; a stash past its bound is incomplete and refuses replays
    CHECK(seslm_llm_ctx_set_stash(c, sp, SESLM_LLM_STASH_REPLAY, L) == SESLM_ERR_ARG);
    CHECK(seslm_llm_ctx_set_stash(c, NULL, SESLM_LLM_STASH_RECORD, 0) == SESLM_ERR_ARG);
    CHECK(seslm_llm_ctx_set_stash(c, tiny, SESLM_LLM_STASH_RECORD, 0) == SESLM_OK);
    st = SESLM_OK;
    run_seqs(c, ids, got, V, &st);
    CHECK(st == SESLM_OK && !seslm_llm_stash_complete(tiny)); // recording past the bound fails nothing
    CHECK(seslm_llm_ctx_set_stash(c, tiny, SESLM_LLM_STASH_REPLAY, 1) == SESLM_ERR_ARG);
    seslm_llm_ctx_set_stash(c, NULL, SESLM_LLM_STASH_OFF, 0);
    free(whole), free(got);
    seslm_llm_stash_free(sp), seslm_llm_stash_free(s0), seslm_llm_stash_free(tiny);
    seslm_llm_ctx_free(c);
}

static void test_sampler(void) {
    enum { V = 4 };
    float logits[V];
    seslm_sampler s;
    seslm_sampler_opts greedy = {0.0f, 1.0f, 1};
    CHECK(seslm_sampler_init(&s, &greedy, V) == SESLM_OK);
    float l0[V] = {0.5f, 2.0f, 2.0f, -1.0f};
    memcpy(logits, l0, sizeof logits);
    CHECK(seslm_sampler_pick(&s, logits) == 1); // lowest id on ties
    seslm_sampler_free(&s);
    seslm_sampler_opts bad = {-1.0f, 1.0f, 1};
    CHECK(seslm_sampler_init(&s, &bad, V) == SESLM_ERR_ARG);
    // T = 1: token 1 has probability 3/4 when its logit is ln 3 above the others (two at -inf)
    seslm_sampler_opts t1 = {1.0f, 1.0f, 7};
    seslm_sampler s2;
    CHECK(seslm_sampler_init(&s, &t1, V) == SESLM_OK);
    CHECK(seslm_sampler_init(&s2, &t1, V) == SESLM_OK);
    int hits = 0, same = 0;
    for (int i = 0; i < 4000; i++) {
        float la[V] = {0.0f, logf(3.0f), -INFINITY, -INFINITY}, lb[V];
        memcpy(lb, la, sizeof la);
        int32_t x = seslm_sampler_pick(&s, la), y = seslm_sampler_pick(&s2, lb);
        hits += x == 1;
        same += x == y;
        CHECK(x == 0 || x == 1);
    }
    CHECK_MSG(fabs(hits / 4000.0 - 0.75) < 0.03, "token 1 drawn %d of 4000 times (expected ~3000)", hits);
    CHECK(same == 4000);
    seslm_sampler_free(&s);
    seslm_sampler_free(&s2);
    // top-p 0.5 of {0.75, 0.25}: only the best token remains
    seslm_sampler_opts tp = {1.0f, 0.5f, 3};
    CHECK(seslm_sampler_init(&s, &tp, V) == SESLM_OK);
    int only_best = 1;
    for (int i = 0; i < 500; i++) {
        float la[V] = {0.0f, logf(3.0f), -INFINITY, -INFINITY};
        only_best &= seslm_sampler_pick(&s, la) == 1;
    }
    CHECK(only_best);
    seslm_sampler_free(&s);
}

typedef struct {
    char buf[4096];
    size_t n;
    int calls;
} collect;
static int on_text(void *u, const char *t, size_t n) {
    collect *c = u;
    if (c->n + n < sizeof c->buf) memcpy(c->buf + c->n, t, n);
    c->n += n;
    c->calls++;
    return 0;
}

static void test_generate(const seslm_llm *m) {
    seslm_chat_msg msg = {"user", "hello world"};
    char *p = seslm_chat_format(m, &msg, 1, 1);
    CHECK(p && strcmp(p, "<|im_start|>system\nYou are tiny.<|im_end|>\n<|im_start|>user\nhello world<|im_end|>\n"
                         "<|im_start|>assistant\n") == 0);
    seslm_chat_msg two[2] = {{"system", "S"}, {"user", "U"}};
    char *q = seslm_chat_format(m, two, 2, 0);
    CHECK(q && strcmp(q, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n") == 0);
    free(q);
    seslm_llm_ctx *c = NULL;
    CHECK(seslm_llm_ctx_new(&c, m, 128, 0) == SESLM_OK);
    if (!c || !p) return;
    collect col = {0};
    seslm_gen_opts o = {.max_tokens = 24, .sampling = {0.0f, 1.0f, 0}, .parse_special = 1, .on_text = on_text,
                        .user = &col};
    seslm_gen_result r;
    CHECK(seslm_generate(c, p, strlen(p), &o, &r) == SESLM_OK);
    CHECK_MSG(col.n == r.len && memcmp(col.buf, r.text, r.len) == 0, "streamed %zu bytes \"%.*s\", result %zu \"%s\"",
              col.n, (int)col.n, col.buf, r.len, r.text);
    CHECK(r.n_prompt > 10 && r.n_gen > 0);
    if (r.len >= 4) {
        // stop at a string from the middle of the greedy text: the result is the text before it
        char stop[3] = {r.text[r.len / 2], r.text[r.len / 2 + 1], 0};
        const char *stops[1] = {stop};
        size_t cut = (size_t)(strstr(r.text, stop) - r.text);
        seslm_gen_opts o2 = o;
        collect col2 = {0};
        o2.user = &col2;
        o2.stop = stops;
        o2.n_stop = 1;
        seslm_gen_result r2;
        seslm_llm_ctx_reset(c);
        if (memchr(stop, 0, 2) == NULL) {
            CHECK(seslm_generate(c, p, strlen(p), &o2, &r2) == SESLM_OK);
            CHECK_MSG(r2.len == cut && memcmp(r2.text, r.text, cut) == 0 && strcmp(r2.finish, "stop") == 0,
                      "stop string cut at %zu, expected %zu", r2.len, cut);
            CHECK(col2.n == r2.len);
            seslm_gen_result_free(&r2);
        }
    }
    seslm_gen_result_free(&r);
    // ignore_eos (validate-decoder's latency rounds): exactly max_tokens tokens, whatever the model picks; the text
    // before the first end token is the same as without it
    {
        seslm_gen_opts o3 = {.max_tokens = 40, .sampling = {0.0f, 1.0f, 0}, .parse_special = 1, .ignore_eos = 1};
        seslm_gen_opts o4 = o3;
        o4.ignore_eos = 0;
        seslm_gen_result r3, r4;
        seslm_llm_ctx_reset(c);
        CHECK(seslm_generate(c, p, strlen(p), &o3, &r3) == SESLM_OK);
        seslm_llm_ctx_reset(c);
        CHECK(seslm_generate(c, p, strlen(p), &o4, &r4) == SESLM_OK);
        CHECK_MSG(r3.n_gen == 40 && strcmp(r3.finish, "length") == 0, "ignore_eos: %d tokens, finish %s", r3.n_gen, r3.finish);
        CHECK(r4.n_gen <= 40 && r3.len >= r4.len && memcmp(r3.text, r4.text, r4.len) == 0);
        seslm_gen_result_free(&r3);
        seslm_gen_result_free(&r4);
    }
    // hot sampling picks byte tokens that make no character (the tiny vocabulary holds all 256 bytes): the
    // text and every streamed piece stay well-formed UTF-8, the same bytes both ways, and some runs needed repair
    {
        int repaired = 0, runs = 0;
        for (uint64_t seed = 1; seed <= 60; seed++) {
            collect cs = {0};
            seslm_gen_opts oh = {.max_tokens = 6, .sampling = {8.0f, 1.0f, seed}, .parse_special = 1,
                                 .on_text = on_text, .user = &cs};
            seslm_gen_result rh;
            seslm_llm_ctx_reset(c);
            if (seslm_generate(c, p, strlen(p), &oh, &rh) != SESLM_OK) {
                CHECK_MSG(0, "seed %llu: %s", (unsigned long long)seed, seslm_last_error());
                continue;
            }
            runs++;
            CHECK_MSG(util_utf8_valid(rh.text, rh.len) && strlen(rh.text) == rh.len, "seed %llu: ill-formed text",
                      (unsigned long long)seed);
            CHECK(cs.n == rh.len && memcmp(cs.buf, rh.text, rh.len) == 0);
            if (strstr(rh.text, "\xef\xbf\xbd")) repaired++;
            seslm_gen_result_free(&rh);
        }
        CHECK_MSG(runs == 60 && repaired > 0, "%d runs, %d repaired: the sweep never hit a cut character", runs, repaired);
    }
    // an invalid prompt
    seslm_llm_ctx_reset(c);
    CHECK(seslm_generate(c, "\xff", 1, &o, &r) == SESLM_ERR_UTF8);
    free(p);
    seslm_llm_ctx_free(c);
}

int main(void) {
    test_utf8_repair();
    test_load_errors();
    seslm_llm *m = NULL;
    CHECK(seslm_llm_load(&m, TINY) == SESLM_OK);
    if (!m) {
        fprintf(stderr, "%s\n", seslm_last_error());
        return test_report("test_decoder_tiny");
    }
    const seslm_llm_config *cf = seslm_llm_cfg(m);
    CHECK(cf->n_layer == 2 && cf->n_embd == 64 && cf->n_head == 4 && cf->n_head_kv == 2 && cf->n_ff == 96);
    CHECK(cf->head_dim == 16 && cf->n_ctx_train == 256 && cf->rope_base == 10000.0f);
    CHECK(seslm_llm_default_system(m) && strcmp(seslm_llm_default_system(m), "You are tiny.") == 0);
    test_tokenizer(m);
    test_forward(m);
    test_stash(m);
    test_sampler();
    test_generate(m);
    seslm_llm_free(m);
    return test_report("test_decoder_tiny");
}
