/* test_telemetry.c — the telemetry a window accumulates (runtime/telemetry/telemetry.c and the encoder hooks),
 * on a tiny random BERT (tests/tiny_model.h):
 *   (a) token counts, the sequence-length histogram, request / batch / sequence / token counters and
 *       the batch log equal what the test counts from the ids it feeds;
 *   (b) token pairs: with a sketch wide enough to have no collisions every estimate equals the exact
 *       count and the heavy hitters are exactly the pairs with their counts; with more distinct pairs
 *       than top_pairs the heaviest are kept (and no untracked pair outweighs a tracked one); with a
 *       narrow sketch every estimate is an upper bound;
 *   (c) the reservoir keeps min(n, R) rows, each one of the embeddings produced;
 *   (d) per-head attention entropy / max weight / output norms, FFN sums and input-channel sums of
 *       squares match an independent double-precision forward pass written here, for the "cpu" and
 *       "cpu-ref" backends, on the full model and on a pruned one (a layer with no heads / neurons);
 *   (e) telemetry off: counters stay zero and embeddings are bit-identical to telemetry on; reset
 *       clears everything; the hooks allocate nothing (malloc is counted where the build allows). */
#include "telemetry.h"
#include "test.h"
#include "tiny_runtime.h"

#include <math.h>
#include <stdatomic.h>

// ---- allocation counting (not under ASan, which owns malloc) --------------------------------------

#if defined(__SANITIZE_ADDRESS__)
#define COUNT_ALLOCS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define COUNT_ALLOCS 0
#endif
#endif
#ifndef COUNT_ALLOCS
#define COUNT_ALLOCS 1
#endif

static atomic_long g_allocs;
static atomic_int g_counting;

#if COUNT_ALLOCS
// glibc lets a program replace malloc; these forward to its allocator and count while g_counting.
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
void *malloc(size_t n) {
    if (atomic_load_explicit(&g_counting, memory_order_relaxed)) atomic_fetch_add(&g_allocs, 1);
    return __libc_malloc(n);
}
void *calloc(size_t n, size_t s) {
    if (atomic_load_explicit(&g_counting, memory_order_relaxed)) atomic_fetch_add(&g_allocs, 1);
    return __libc_calloc(n, s);
}
void *realloc(void *p, size_t n) {
    if (atomic_load_explicit(&g_counting, memory_order_relaxed)) atomic_fetch_add(&g_allocs, 1);
    return __libc_realloc(p, n);
}
void free(void *p) { __libc_free(p); }
#endif

// ---- model and encoder helpers --------------------------------------------------------------------

static char *g_root;

static seslm_model *write_and_load(const tm_model *tm, const char *sub) {
    return tr_write_and_load(g_root, sub, tm, NULL, "test_telemetry");
}


static seslm_encoder *encoder(const seslm_model *m, const char *backend, int max_batch) {
    seslm_encoder *e = NULL;
    seslm_encoder_opts o = {.backend = backend, .n_threads = 2, .max_batch = max_batch};
    CHECK_MSG(seslm_encoder_new(&e, m, &o) == SESLM_OK, "encoder %s: %s", backend, seslm_last_error());
    if (!e) exit(test_report("test_telemetry"));
    return e;
}

static seslm_telemetry *telemetry(const seslm_model *m, const seslm_telemetry_opts *o) {
    seslm_telemetry *t = NULL;
    CHECK_MSG(seslm_telemetry_new(&t, m, o) == SESLM_OK, "telemetry: %s", seslm_last_error());
    if (!t) exit(test_report("test_telemetry"));
    return t;
}

// A stream of ragged batches of random ids, kept for the checks.
#define MAXB 8
#define MAXL 32
#define MAXBATCH 64
typedef struct {
    int n_batches;
    int B[MAXBATCH];
    int len[MAXBATCH][MAXB];
    int32_t ids[MAXBATCH][MAXB][MAXL];
} stream;

static void make_stream(stream *s, int n_batches, int V, uint64_t seed) {
    tm_seed(seed);
    s->n_batches = n_batches;
    for (int k = 0; k < n_batches; k++) {
        s->B[k] = 1 + (int)(tm_rand_u32() % MAXB);
        for (int b = 0; b < s->B[k]; b++) {
            s->len[k][b] = 1 + (int)(tm_rand_u32() % MAXL);
            // skewed ids so that some tokens and pairs are frequent
            for (int i = 0; i < s->len[k][b]; i++) {
                uint32_t r = tm_rand_u32() % 100;
                s->ids[k][b][i] = (int32_t)(r < 40 ? 5 + r % 4 : tm_rand_u32() % (uint32_t)V);
            }
        }
    }
}

// Runs batch k of s; out (B, C).
static void run_batch(seslm_encoder *e, const stream *s, int k, float *out) {
    const int32_t *rows[MAXB];
    for (int b = 0; b < s->B[k]; b++) rows[b] = s->ids[k][b];
    seslm_status st = seslm_encoder_forward_ids(e, rows, s->len[k], s->B[k], out);
    CHECK_MSG(st == SESLM_OK, "forward: %s", seslm_last_error());
}

// Every counter and array of the view is zero.
static int view_is_zero(const seslm_telemetry_view *v) {
    int z = v->n_requests == 0 && v->n_batches == 0 && v->n_sequences == 0 && v->n_tokens == 0 &&
            v->n_batch_records == 0 && v->n_pairs == 0 && v->pairs_total == 0 && v->n_reservoir == 0 &&
            v->reservoir_seen == 0 && v->peak_rss_bytes == 0 && v->peak_device_bytes == 0;
    for (int i = 0; z && i < v->vocab_size; i++) z = v->token_counts[i] == 0;
    for (int i = 0; z && i <= v->max_seq_len; i++) z = v->seq_len_hist[i] == 0;
    for (size_t i = 0; z && i < (size_t)v->cms_width * v->cms_depth; i++) z = v->cms[i] == 0;
    for (int l = 0; z && l < v->n_layers; l++) {
        const seslm_layer_telemetry *L = &v->layers[l];
        z = L->exec_count == 0 && L->exec_ns == 0 && L->query_tokens == 0 && L->ffn_tokens == 0;
        for (int h = 0; z && h < L->n_heads; h++)
            z = L->head_entropy[h] == 0 && L->head_max_weight[h] == 0 && L->head_out_norm[h] == 0;
        for (int f = 0; z && f < L->ffn_dim; f++) z = L->ffn_pos[f] == 0 && L->ffn_abs[f] == 0 && L->ffn_sq[f] == 0;
        for (int c = 0; z && c < v->hidden; c++) z = L->in_sq_qkv[c] == 0 && L->in_sq_ffn_in[c] == 0;
        for (int a = 0; z && a < L->attn_dim; a++) z = L->in_sq_attn_out[a] == 0;
    }
    return z;
}

// ---- (a) counts -------------------------------------------------------------------------------------

static void test_counts(const seslm_model *m) {
    const seslm_model_config *c = seslm_model_get_config(m);
    const int V = c->vocab_size, S = c->max_seq_len;
    static stream s;
    make_stream(&s, 20, V, 1);
    seslm_telemetry *t = telemetry(m, NULL);
    seslm_encoder *e = encoder(m, "cpu", MAXB);
    seslm_encoder_set_telemetry(e, t);
    uint64_t counts[64] = {0}, hist[64] = {0}, ntok = 0, nseq = 0;
    float out[MAXB * 16];
    seslm_telemetry_view v;
    seslm_telemetry_snapshot(t, &v);
    const int64_t start = v.window_start_ns;
    for (int k = 0; k < s.n_batches; k++) {
        seslm_telemetry_count_request(t);
        run_batch(e, &s, k, out);
        for (int b = 0; b < s.B[k]; b++) {
            hist[s.len[k][b]]++;
            nseq++;
            ntok += (uint64_t)s.len[k][b];
            for (int i = 0; i < s.len[k][b]; i++) counts[s.ids[k][b][i]]++;
        }
    }
    // texts: the tokenizer's ids are what is counted
    static const char *const texts[] = {"the cat sat on the mat", "hello world!", "", "quick brown fox jumps"};
    CHECK(seslm_encoder_embed_texts(e, texts, NULL, 4, out) == SESLM_OK);
    for (int i = 0; i < 4; i++) {
        int32_t ids[64];
        int n = 0;
        CHECK(seslm_tokenizer_encode(seslm_model_tokenizer(m), texts[i], strlen(texts[i]), ids, 64, &n) == SESLM_OK);
        hist[n]++;
        nseq++;
        ntok += (uint64_t)n;
        for (int k = 0; k < n; k++) counts[ids[k]]++;
    }
    seslm_telemetry_snapshot(t, &v);
    CHECK(v.vocab_size == V && v.max_seq_len == S && v.hidden == c->hidden && v.n_layers == c->n_layers);
    CHECK_MSG(memcmp(v.token_counts, counts, (size_t)V * 8) == 0, "token counts differ");
    CHECK_MSG(memcmp(v.seq_len_hist, hist, (size_t)(S + 1) * 8) == 0, "sequence-length histogram differs");
    CHECK(v.n_tokens == ntok && v.n_sequences == nseq);
    CHECK(v.n_requests == (uint64_t)s.n_batches && v.n_batches == (uint64_t)s.n_batches + 1);
    CHECK(v.n_batch_records == s.n_batches + 1);
    uint64_t logged = 0;
    for (int k = 0; k < v.n_batch_records && k <= s.n_batches; k++) {
        int want_b = k < s.n_batches ? s.B[k] : 4, want_t = 0;
        for (int b = 0; k < s.n_batches && b < s.B[k]; b++) want_t += s.len[k][b];
        CHECK_MSG(v.batches[k].batch_size == want_b, "batch %d: size %d, expected %d", k, v.batches[k].batch_size,
                  want_b);
        if (k < s.n_batches)
            CHECK_MSG(v.batches[k].n_tokens == want_t, "batch %d: %d tokens, expected %d", k, v.batches[k].n_tokens,
                      want_t);
        CHECK(v.batches[k].latency_ns > 0);
        logged += (uint64_t)v.batches[k].n_tokens;
    }
    CHECK(logged == ntok);
    CHECK(v.window_start_ns == start && v.window_end_ns >= v.window_start_ns && v.window_start_ns > 1600000000000000000LL);
    CHECK(v.peak_rss_bytes > 0 && v.peak_device_bytes == 0);
    CHECK(v.model_sha256 && strcmp(v.model_sha256, seslm_model_weights_sha256(m)) == 0);
    CHECK(v.n_intents == 0);
    for (int l = 0; l < v.n_layers; l++) {
        const seslm_layer_telemetry *L = &v.layers[l];
        CHECK(L->exec_count == v.n_batches && L->exec_ns > 0);
        CHECK(L->query_tokens == ntok && L->ffn_tokens == ntok);
        CHECK(L->n_heads == c->layers[l].n_heads && L->attn_dim == L->n_heads * c->head_dim &&
              L->ffn_dim == c->layers[l].ffn_dim);
    }
    // the batch log keeps max_batches records; later batches are counted only
    seslm_telemetry *t2 = telemetry(m, &(seslm_telemetry_opts){.max_batches = 3});
    seslm_encoder_set_telemetry(e, t2);
    for (int k = 0; k < 5; k++) run_batch(e, &s, k, out);
    seslm_telemetry_snapshot(t2, &v);
    CHECK(v.n_batches == 5 && v.n_batch_records == 3 && v.batches[2].batch_size == s.B[2]);
    // reset clears everything and starts a new window
    seslm_telemetry_reset(t);
    seslm_telemetry_snapshot(t, &v);
    CHECK_MSG(view_is_zero(&v), "reset left counters");
    CHECK(v.window_start_ns >= start);
    seslm_encoder_free(e);
    seslm_telemetry_free(t);
    seslm_telemetry_free(t2);
}

// ---- (b) token pairs ------------------------------------------------------------------------------

#define VMAX 64
static uint64_t g_pair[VMAX][VMAX];

static void count_pairs(const stream *s) {
    memset(g_pair, 0, sizeof g_pair);
    for (int k = 0; k < s->n_batches; k++)
        for (int b = 0; b < s->B[k]; b++)
            for (int i = 1; i < s->len[k][b]; i++) g_pair[s->ids[k][b][i - 1]][s->ids[k][b][i]]++;
}

static void feed(seslm_encoder *e, const stream *s) {
    float out[MAXB * 16];
    for (int k = 0; k < s->n_batches; k++) run_batch(e, s, k, out);
}

/* The heap is sorted and holds distinct pairs, each count between the true count and the current
 * estimate; n_pairs = min(distinct pairs, top_pairs). With exact (a sketch with no collisions): every
 * estimate and heap count is the true count, and no untracked pair is heavier than a tracked one. */
static void check_heavy_hitters(const char *what, seslm_telemetry *t, int V, int top_pairs, int exact) {
    seslm_telemetry_view v;
    seslm_telemetry_snapshot(t, &v);
    uint64_t total = 0, distinct = 0;
    for (int a = 0; a < V; a++)
        for (int b = 0; b < V; b++) {
            total += g_pair[a][b];
            distinct += g_pair[a][b] > 0;
            uint64_t est = seslm_telemetry_pair_estimate(t, (uint32_t)a, (uint32_t)b);
            CHECK_MSG(est >= g_pair[a][b], "%s: estimate of (%d, %d) %llu < true %llu", what, a, b,
                      (unsigned long long)est, (unsigned long long)g_pair[a][b]);
            if (exact)
                CHECK_MSG(est == g_pair[a][b], "%s: estimate of (%d, %d) %llu != true %llu", what, a, b,
                          (unsigned long long)est, (unsigned long long)g_pair[a][b]);
        }
    CHECK_MSG(v.pairs_total == total, "%s: pairs_total %llu, expected %llu", what, (unsigned long long)v.pairs_total,
              (unsigned long long)total);
    uint64_t want_n = distinct < (uint64_t)top_pairs ? distinct : (uint64_t)top_pairs;
    CHECK_MSG((uint64_t)v.n_pairs == want_n, "%s: %d pairs tracked, expected %llu", what, v.n_pairs,
              (unsigned long long)want_n);
    static uint8_t tracked[VMAX][VMAX];
    memset(tracked, 0, sizeof tracked);
    uint64_t min_tracked = UINT64_MAX;
    for (int i = 0; i < v.n_pairs; i++) {
        const seslm_token_pair *p = &v.pairs[i];
        CHECK(p->first < (uint32_t)V && p->second < (uint32_t)V);
        if (p->first >= (uint32_t)V || p->second >= (uint32_t)V) continue;
        CHECK_MSG(!tracked[p->first][p->second], "%s: pair (%u, %u) listed twice", what, p->first, p->second);
        tracked[p->first][p->second] = 1;
        uint64_t truth = g_pair[p->first][p->second];
        CHECK_MSG(p->count >= truth && truth > 0, "%s: pair (%u, %u) count %llu, true %llu", what, p->first, p->second,
                  (unsigned long long)p->count, (unsigned long long)truth);
        CHECK(p->count <= seslm_telemetry_pair_estimate(t, p->first, p->second));
        if (exact) CHECK(p->count == truth);
        if (i > 0)
            CHECK_MSG(v.pairs[i - 1].count > p->count ||
                          (v.pairs[i - 1].count == p->count &&
                           ((uint64_t)v.pairs[i - 1].first << 32 | v.pairs[i - 1].second) <
                               ((uint64_t)p->first << 32 | p->second)),
                      "%s: pairs not sorted at %d", what, i);
        min_tracked = p->count < min_tracked ? p->count : min_tracked;
    }
    if (exact) {
        int heavier = 0;
        for (int a = 0; a < V; a++)
            for (int b = 0; b < V; b++) heavier += !tracked[a][b] && g_pair[a][b] > min_tracked;
        CHECK_MSG(heavier == 0, "%s: %d untracked pairs are heavier than the lightest tracked one (%llu)", what,
                  heavier, (unsigned long long)min_tracked);
    }
}

static void test_pairs(const seslm_model *m) {
    const int V = seslm_model_get_config(m)->vocab_size;
    static stream s, h;
    make_stream(&s, 24, V, 2);
    count_pairs(&s);
    seslm_encoder *e = encoder(m, "cpu", MAXB);
    struct {
        const char *what;
        seslm_telemetry_opts o;
        int exact;
    } cases[] = {
        {"wide sketch, every pair tracked", {.cms_width = 1 << 16, .cms_depth = 4, .top_pairs = 4096}, 1},
        {"wide sketch, top 8", {.cms_width = 1 << 16, .cms_depth = 4, .top_pairs = 8}, 1},
        {"wide sketch, top 100", {.cms_width = 1 << 16, .cms_depth = 3, .top_pairs = 100, .seed = 7}, 1},
        {"narrow sketch (collisions), top 8", {.cms_width = 16, .cms_depth = 2, .top_pairs = 8}, 0},
        {"narrow sketch (collisions), top 64", {.cms_width = 32, .cms_depth = 1, .top_pairs = 64}, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        seslm_telemetry *t = telemetry(m, &cases[i].o);
        seslm_encoder_set_telemetry(e, t);
        feed(e, &s);
        check_heavy_hitters(cases[i].what, t, V, cases[i].o.top_pairs, cases[i].exact);
        seslm_telemetry_free(t);
    }

    // Known heavy hitters: 8 pairs seen 20..27 times among ~300 pairs seen once or twice, all as
    // 2-token sequences in a shuffled order (light pairs fill the heap first and must be evicted).
    int32_t seqs[512][2];
    int n = 0;
    static const int32_t heavy[8][2] = {{5, 6}, {6, 5}, {7, 7}, {12, 13}, {2, 3}, {30, 1}, {39, 0}, {8, 9}};
    for (int i = 0; i < 8; i++)
        for (int k = 0; k < 20 + i; k++) seqs[n][0] = heavy[i][0], seqs[n++][1] = heavy[i][1];
    tm_seed(3);
    while (n < 8 * 60) {
        int32_t a = (int32_t)(tm_rand_u32() % (uint32_t)V), b = (int32_t)(tm_rand_u32() % (uint32_t)V);
        int is_heavy = 0;
        for (int i = 0; i < 8; i++) is_heavy |= heavy[i][0] == a && heavy[i][1] == b;
        if (is_heavy) continue;
        int seen = 0;
        for (int j = 0; j < n; j++) seen += seqs[j][0] == a && seqs[j][1] == b;
        if (seen >= 2) continue;
        seqs[n][0] = a, seqs[n++][1] = b;
    }
    // the first 40 are light (they fill an 8-slot heap), the rest shuffled
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(tm_rand_u32() % (uint32_t)(i + 1));
        int32_t a = seqs[i][0], b = seqs[i][1];
        seqs[i][0] = seqs[j][0], seqs[i][1] = seqs[j][1];
        seqs[j][0] = a, seqs[j][1] = b;
    }
    int lights_first = 0;
    for (int i = 0; i < n && lights_first < 40; i++) {
        int is_heavy = 0;
        for (int k = 0; k < 8; k++) is_heavy |= heavy[k][0] == seqs[i][0] && heavy[k][1] == seqs[i][1];
        if (!is_heavy) { // move it to the front
            int32_t a = seqs[i][0], b = seqs[i][1];
            seqs[i][0] = seqs[lights_first][0], seqs[i][1] = seqs[lights_first][1];
            seqs[lights_first][0] = a, seqs[lights_first][1] = b;
            lights_first++;
        }
    }
    h.n_batches = n / MAXB;
    for (int k = 0; k < h.n_batches; k++) {
        h.B[k] = MAXB;
        for (int b = 0; b < MAXB; b++) {
            h.len[k][b] = 2;
            h.ids[k][b][0] = seqs[k * MAXB + b][0];
            h.ids[k][b][1] = seqs[k * MAXB + b][1];
        }
    }
    count_pairs(&h);
    seslm_telemetry *t = telemetry(m, &(seslm_telemetry_opts){.cms_width = 1 << 16, .top_pairs = 8});
    seslm_encoder_set_telemetry(e, t);
    feed(e, &h);
    check_heavy_hitters("planted heavy hitters", t, V, 8, 1);
    seslm_telemetry_view v;
    seslm_telemetry_snapshot(t, &v);
    for (int i = 0; i < v.n_pairs; i++) { // heaviest first: (8, 9) x 27, (39, 0) x 26, ...
        CHECK_MSG((int32_t)v.pairs[i].first == heavy[7 - i][0] && (int32_t)v.pairs[i].second == heavy[7 - i][1] &&
                      v.pairs[i].count == (uint64_t)(27 - i),
                  "heavy hitter %d: (%u, %u) x %llu", i, v.pairs[i].first, v.pairs[i].second,
                  (unsigned long long)v.pairs[i].count);
    }
    seslm_telemetry_free(t);
    seslm_encoder_free(e);
}

// ---- (c) reservoir --------------------------------------------------------------------------------

static void test_reservoir(const seslm_model *m) {
    const int C = seslm_model_get_config(m)->hidden;
    static stream s;
    make_stream(&s, 30, seslm_model_get_config(m)->vocab_size, 4);
    seslm_encoder *e = encoder(m, "cpu", MAXB);
    seslm_telemetry *t = telemetry(m, &(seslm_telemetry_opts){.reservoir = 5});
    seslm_encoder_set_telemetry(e, t);
    static float all[MAXBATCH * MAXB * 16];
    int n = 0;
    // fewer embeddings than slots: all kept, in order
    s.B[0] = 3;
    for (int b = 0; b < 3; b++) {
        s.len[0][b] = 4 + b;
        for (int i = 0; i < s.len[0][b]; i++) s.ids[0][b][i] = (int32_t)(5 + 3 * b + i);
    }
    run_batch(e, &s, 0, all);
    n = 3;
    seslm_telemetry_view v;
    seslm_telemetry_snapshot(t, &v);
    CHECK(v.n_reservoir == 3 && v.reservoir_seen == 3);
    CHECK_MSG(memcmp(v.reservoir, all, (size_t)3 * C * sizeof(float)) == 0, "reservoir rows != embeddings");
    for (int k = 1; k < s.n_batches; k++) {
        run_batch(e, &s, k, all + (size_t)n * C);
        n += s.B[k];
    }
    seslm_telemetry_snapshot(t, &v);
    CHECK(v.n_reservoir == 5 && v.reservoir_seen == (uint64_t)n);
    int idx[5], late = 0;
    for (int r = 0; r < v.n_reservoir; r++) {
        idx[r] = -1;
        for (int i = 0; i < n && idx[r] < 0; i++)
            if (memcmp(v.reservoir + (size_t)r * C, all + (size_t)i * C, (size_t)C * sizeof(float)) == 0) idx[r] = i;
        CHECK_MSG(idx[r] >= 0, "reservoir row %d is none of the %d embeddings", r, n);
        for (int q = 0; q < r; q++) CHECK_MSG(idx[q] != idx[r], "rows %d and %d hold the same embedding", q, r);
        late += idx[r] >= 5;
    }
    CHECK_MSG(late > 0, "no row was replaced after %d embeddings", n);
    // a second window with the same seed and inputs samples the same rows (deterministic)
    seslm_telemetry_reset(t);
    float again[MAXB * 16];
    for (int k = 0; k < s.n_batches; k++) run_batch(e, &s, k, again);
    seslm_telemetry_view v2;
    seslm_telemetry_snapshot(t, &v2);
    CHECK(v2.n_reservoir == 5 && v2.reservoir_seen == (uint64_t)n);
    CHECK(memcmp(v2.reservoir, all + (size_t)idx[0] * C, (size_t)C * sizeof(float)) == 0 || idx[0] < 3);
    seslm_telemetry_free(t);
    seslm_encoder_free(e);
}

// ---- (d) statistics vs an independent forward pass ---------------------------------------------------

#define H_MAX 8
#define F_MAX 64
#define C_MAX 64
typedef struct {
    double ent[H_MAX], maxw[H_MAX], onorm[H_MAX];
    double ffn_abs[F_MAX], ffn_sq[F_MAX];
    uint64_t pos_lo[F_MAX], pos_hi[F_MAX]; // pre-activations > +1e-4 / > -1e-4: bounds for ffn_pos
    double in_qkv[C_MAX], in_ao[C_MAX], in_ffn[C_MAX];
    uint64_t qtok, ftok;
} ref_layer;


/* One sequence through the model in double precision, accumulating every statistic into st. */
static void reference_seq(tm_model *m, const int32_t *ids, int n, ref_layer *st) {
    const int C = m->hidden, D = m->head_dim;
    static double x[MAXL * C_MAX], q[MAXL * C_MAX], k[MAXL * C_MAX], v[MAXL * C_MAX], ctx[MAXL * C_MAX],
        r[MAXL * C_MAX], h[MAXL * F_MAX];
    const float *we = tm_ref_w(m, "embeddings.word_embeddings.weight", 0), *pe = tm_ref_w(m, "embeddings.position_embeddings.weight", 0),
                *te = tm_ref_w(m, "embeddings.token_type_embeddings.weight", 0);
    for (int t = 0; t < n; t++)
        for (int c = 0; c < C; c++) x[t * C + c] = (double)we[ids[t] * C + c] + pe[t * C + c] + te[c];
    tm_ref_layernorm(x, n, C, tm_ref_w(m, "embeddings.LayerNorm.weight", 0), tm_ref_w(m, "embeddings.LayerNorm.bias", 0));
    for (int l = 0; l < m->n_layers; l++) {
        ref_layer *S = &st[l];
        const int H = m->l_heads[l], A = H * D, F = m->l_ffn[l];
        const float *ao_b = tm_ref_w(m, "encoder.layer.%d.attention.output.dense.bias", l);
        if (A > 0) {
            for (int i = 0; i < n * C; i++) S->in_qkv[i % C] += x[i] * x[i];
            tm_ref_linear(q, x, tm_ref_w(m, "encoder.layer.%d.attention.self.query.weight", l), tm_ref_w(m, "encoder.layer.%d.attention.self.query.bias", l), n, A, C);
            tm_ref_linear(k, x, tm_ref_w(m, "encoder.layer.%d.attention.self.key.weight", l), tm_ref_w(m, "encoder.layer.%d.attention.self.key.bias", l), n, A, C);
            tm_ref_linear(v, x, tm_ref_w(m, "encoder.layer.%d.attention.self.value.weight", l), tm_ref_w(m, "encoder.layer.%d.attention.self.value.bias", l), n, A, C);
            for (int hh = 0; hh < H; hh++)
                for (int i = 0; i < n; i++) {
                    double s[MAXL], mx = -INFINITY, sum = 0, ent = 0, pmax = 0, nrm = 0;
                    for (int j = 0; j < n; j++) {
                        double d = 0;
                        for (int e = 0; e < D; e++) d += q[i * A + hh * D + e] * k[j * A + hh * D + e];
                        s[j] = d / sqrt((double)D);
                        mx = fmax(mx, s[j]);
                    }
                    for (int j = 0; j < n; j++) sum += s[j] = exp(s[j] - mx);
                    for (int j = 0; j < n; j++) {
                        double p = s[j] / sum;
                        if (p > 0) ent -= p * log(p);
                        pmax = fmax(pmax, p);
                    }
                    S->ent[hh] += ent;
                    S->maxw[hh] += pmax;
                    for (int e = 0; e < D; e++) {
                        double acc = 0;
                        for (int j = 0; j < n; j++) acc += s[j] * v[j * A + hh * D + e];
                        ctx[i * A + hh * D + e] = acc / sum;
                        nrm += (acc / sum) * (acc / sum);
                    }
                    S->onorm[hh] += sqrt(nrm);
                }
            for (int i = 0; i < n * A; i++) S->in_ao[i % A] += ctx[i] * ctx[i];
            S->qtok += (uint64_t)n;
            tm_ref_linear(r, ctx, tm_ref_w(m, "encoder.layer.%d.attention.output.dense.weight", l), ao_b, n, C, A);
        } else {
            for (int t = 0; t < n; t++)
                for (int c = 0; c < C; c++) r[t * C + c] = ao_b[c];
        }
        for (int i = 0; i < n * C; i++) x[i] += r[i];
        tm_ref_layernorm(x, n, C, tm_ref_w(m, "encoder.layer.%d.attention.output.LayerNorm.weight", l),
           tm_ref_w(m, "encoder.layer.%d.attention.output.LayerNorm.bias", l));
        const float *f2_b = tm_ref_w(m, "encoder.layer.%d.output.dense.bias", l);
        if (F > 0) {
            for (int i = 0; i < n * C; i++) S->in_ffn[i % C] += x[i] * x[i];
            tm_ref_linear(h, x, tm_ref_w(m, "encoder.layer.%d.intermediate.dense.weight", l), tm_ref_w(m, "encoder.layer.%d.intermediate.dense.bias", l), n, F, C);
            for (int i = 0; i < n * F; i++) {
                S->pos_lo[i % F] += h[i] > 1e-4;
                S->pos_hi[i % F] += h[i] > -1e-4;
                h[i] = 0.5 * h[i] * (1.0 + erf(h[i] / sqrt(2.0)));
                S->ffn_abs[i % F] += fabs(h[i]);
                S->ffn_sq[i % F] += h[i] * h[i];
            }
            S->ftok += (uint64_t)n;
            tm_ref_linear(r, h, tm_ref_w(m, "encoder.layer.%d.output.dense.weight", l), f2_b, n, C, F);
        } else {
            for (int t = 0; t < n; t++)
                for (int c = 0; c < C; c++) r[t * C + c] = f2_b[c];
        }
        for (int i = 0; i < n * C; i++) x[i] += r[i];
        tm_ref_layernorm(x, n, C, tm_ref_w(m, "encoder.layer.%d.output.LayerNorm.weight", l), tm_ref_w(m, "encoder.layer.%d.output.LayerNorm.bias", l));
    }
}

static double g_worst; // largest relative error seen

// |got - want| <= tol * (|want| + 1): float kernels against double sums of up to a few hundred terms
static void check_close(const char *what, int l, const char *field, const double *got, const double *want, int n) {
    for (int i = 0; i < n; i++) {
        double err = fabs(got[i] - want[i]) / (fabs(want[i]) + 1);
        if (err > g_worst) g_worst = err;
        CHECK_MSG(err <= 2e-4, "%s: layer %d %s[%d] = %.9g, reference %.9g", what, l, field, i, got[i], want[i]);
    }
}

static void test_stats(const seslm_model *m, tm_model *tm, const char *what) {
    static stream s;
    make_stream(&s, 12, tm->vocab, 5);
    static ref_layer ref[TM_MAX_LAYERS];
    memset(ref, 0, sizeof ref);
    uint64_t ntok = 0;
    for (int k = 0; k < s.n_batches; k++)
        for (int b = 0; b < s.B[k]; b++) {
            reference_seq(tm, s.ids[k][b], s.len[k][b], ref);
            ntok += (uint64_t)s.len[k][b];
        }
    static const char *backends[2] = {"cpu", "cpu-ref"};
    seslm_telemetry *t[2];
    for (int bi = 0; bi < 2; bi++) {
        char name[96];
        snprintf(name, sizeof name, "%s/%s", what, backends[bi]);
        seslm_encoder *e = encoder(m, backends[bi], MAXB);
        t[bi] = telemetry(m, NULL);
        seslm_encoder_set_telemetry(e, t[bi]);
        feed(e, &s);
        seslm_encoder_free(e);
        seslm_telemetry_view v;
        seslm_telemetry_snapshot(t[bi], &v);
        for (int l = 0; l < tm->n_layers; l++) {
            const seslm_layer_telemetry *L = &v.layers[l];
            const ref_layer *R = &ref[l];
            const int H = tm->l_heads[l], F = tm->l_ffn[l], A = H * tm->head_dim, C = tm->hidden;
            CHECK(L->n_heads == H && L->ffn_dim == F && L->attn_dim == A);
            CHECK_MSG(L->query_tokens == R->qtok && L->ffn_tokens == R->ftok, "%s: layer %d token counts", name, l);
            CHECK(L->exec_count == (uint64_t)s.n_batches);
            CHECK(R->qtok == (A > 0 ? ntok : 0) && R->ftok == (F > 0 ? ntok : 0));
            check_close(name, l, "head_entropy", L->head_entropy, R->ent, H);
            check_close(name, l, "head_max_weight", L->head_max_weight, R->maxw, H);
            check_close(name, l, "head_out_norm", L->head_out_norm, R->onorm, H);
            check_close(name, l, "ffn_abs", L->ffn_abs, R->ffn_abs, F);
            check_close(name, l, "ffn_sq", L->ffn_sq, R->ffn_sq, F);
            check_close(name, l, "in_sq_qkv", L->in_sq_qkv, R->in_qkv, A > 0 ? C : 0);
            check_close(name, l, "in_sq_attn_out", L->in_sq_attn_out, R->in_ao, A);
            check_close(name, l, "in_sq_ffn_in", L->in_sq_ffn_in, R->in_ffn, F > 0 ? C : 0);
            for (int f = 0; f < F; f++)
                CHECK_MSG(L->ffn_pos[f] >= R->pos_lo[f] && L->ffn_pos[f] <= R->pos_hi[f],
                          "%s: layer %d ffn_pos[%d] = %llu, reference %llu..%llu", name, l, f,
                          (unsigned long long)L->ffn_pos[f], (unsigned long long)R->pos_lo[f],
                          (unsigned long long)R->pos_hi[f]);
            // a layer without heads / neurons observes nothing there
            for (int c = 0; A == 0 && c < C; c++) CHECK(L->in_sq_qkv[c] == 0);
            for (int c = 0; F == 0 && c < C; c++) CHECK(L->in_sq_ffn_in[c] == 0);
            // sanity of the values themselves: entropies within [0, log len], weights within (0, 1]
            for (int hh = 0; hh < H; hh++) {
                CHECK(L->head_entropy[hh] >= 0 && L->head_entropy[hh] <= (double)ntok * log(MAXL));
                CHECK(L->head_max_weight[hh] > 0 && L->head_max_weight[hh] <= (double)ntok + 1e-3);
            }
        }
    }
    // cpu and cpu-ref agree on the discrete counters exactly
    seslm_telemetry_view a, b;
    seslm_telemetry_snapshot(t[0], &a);
    seslm_telemetry_snapshot(t[1], &b);
    CHECK(memcmp(a.token_counts, b.token_counts, (size_t)a.vocab_size * 8) == 0);
    CHECK(a.n_tokens == b.n_tokens && a.pairs_total == b.pairs_total && a.n_pairs == b.n_pairs);
    CHECK(memcmp(a.cms, b.cms, (size_t)a.cms_width * a.cms_depth * 4) == 0);
    seslm_telemetry_free(t[0]);
    seslm_telemetry_free(t[1]);
}

// ---- (e) telemetry off, and no allocation in the hooks ---------------------------------------------

static long count_allocs_forward(seslm_encoder *e, const stream *s) {
    float out[MAXB * 16];
    run_batch(e, s, 0, out); // warm-up (thread pools, BLAS buffers)
    atomic_store(&g_allocs, 0);
    atomic_store(&g_counting, 1);
    for (int k = 0; k < s->n_batches; k++) run_batch(e, s, k, out);
    atomic_store(&g_counting, 0);
    return atomic_load(&g_allocs);
}

static void test_off(const seslm_model *m) {
    const int C = seslm_model_get_config(m)->hidden;
    static stream s;
    make_stream(&s, 10, seslm_model_get_config(m)->vocab_size, 6);
    static const char *backends[2] = {"cpu", "cpu-ref"};
    for (int bi = 0; bi < 2; bi++) {
        seslm_encoder *on = encoder(m, backends[bi], MAXB), *off = encoder(m, backends[bi], MAXB);
        seslm_telemetry *t = telemetry(m, NULL), *unused = telemetry(m, NULL);
        seslm_encoder_set_telemetry(on, t);
        seslm_encoder_set_telemetry(off, unused);
        seslm_encoder_set_telemetry(off, NULL); // attached, then switched off
        float a[MAXB * 16], b[MAXB * 16];
        for (int k = 0; k < s.n_batches; k++) {
            run_batch(on, &s, k, a);
            run_batch(off, &s, k, b);
            CHECK_MSG(memcmp(a, b, (size_t)s.B[k] * C * sizeof(float)) == 0, "%s: batch %d: telemetry changed the "
                      "embeddings", backends[bi], k);
        }
        seslm_telemetry_view v;
        seslm_telemetry_snapshot(unused, &v);
        CHECK_MSG(view_is_zero(&v), "%s: a detached telemetry object counted something", backends[bi]);
        seslm_telemetry_snapshot(t, &v);
        CHECK(!view_is_zero(&v) && v.n_sequences > 0);
        if (COUNT_ALLOCS) {
            long n_on = count_allocs_forward(on, &s), n_off = count_allocs_forward(off, &s);
            printf("%s: allocations in %d forward passes: %ld with telemetry, %ld without\n", backends[bi],
                   s.n_batches, n_on, n_off);
            CHECK_MSG(n_on == n_off, "%s: telemetry allocates (%ld vs %ld)", backends[bi], n_on, n_off);
            CHECK_MSG(n_on == 0, "%s: the forward pass allocates (%ld)", backends[bi], n_on);
        }
        seslm_telemetry_free(t);
        seslm_telemetry_free(unused);
        seslm_encoder_free(on);
        seslm_encoder_free(off);
    }
}

int main(void) {
    g_root = tm_mkdtemp("telemetry");
    tm_model full, p0, p1;
    tm_init(&full, 11);
    tm_prune(&p0, &full, 0, 3, 10);
    tm_prune(&p1, &p0, 1, 0, 0);
    seslm_model *m = write_and_load(&full, "full");
    seslm_model *mp = write_and_load(&p1, "pruned");

    test_counts(m);
    test_pairs(m);
    test_reservoir(m);
    test_stats(m, &full, "full");
    test_stats(mp, &p1, "pruned");
    printf("statistics vs the double-precision reference: worst relative error %.3g\n", g_worst);
    test_off(m);

    seslm_model_free(m);
    seslm_model_free(mp);
    tm_free(&full);
    tm_free(&p0);
    tm_free(&p1);
    tm_rmtree(g_root);
    free(g_root);
    return test_report("test_telemetry");
}
