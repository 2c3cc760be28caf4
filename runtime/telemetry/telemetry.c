/* telemetry.c — per-window usage statistics of the encoder; see telemetry.h.
 *
 * Token pairs ("token paths") use a count-min sketch for estimates in bounded memory plus a min-heap
 * of the top-K pairs by estimate, indexed by an open-addressing hash table, so the K heaviest pairs
 * are known exactly as keys with their sketch estimate (Cormode & Muthukrishnan 2005). */
#include "telemetry.h"
#include "telemetry_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t mix64(uint64_t x) { // splitmix64 finaliser
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// ---- lifetime -------------------------------------------------------------------------------------

seslm_status seslm_telemetry_new(seslm_telemetry **out, const seslm_model *m, const seslm_telemetry_opts *opts) {
    *out = NULL;
    const seslm_model_config *c = seslm_model_get_config(m);
    int *heads = malloc((size_t)(c->n_layers + 1) * sizeof *heads), *ffn = malloc((size_t)(c->n_layers + 1) * sizeof *ffn);
    if (!heads || !ffn) {
        free(heads), free(ffn);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    for (int l = 0; l < c->n_layers; l++) heads[l] = c->layers[l].n_heads, ffn[l] = c->layers[l].ffn_dim;
    const seslm_telemetry_shape sh = {c->vocab_size, c->hidden, c->n_layers, c->max_seq_len, c->head_dim, heads, ffn,
                                      seslm_model_weights_sha256(m)};
    seslm_status st = seslm_telemetry_new_shape(out, &sh, opts);
    free(heads), free(ffn);
    return st;
}

seslm_status seslm_telemetry_new_shape(seslm_telemetry **out, const seslm_telemetry_shape *sh,
                                       const seslm_telemetry_opts *opts) {
    *out = NULL;
    seslm_telemetry_opts o = {.cms_width = 65536, .cms_depth = 4, .top_pairs = 1024, .reservoir = 1024,
                              .max_batches = 65536, .seed = 0x5e51a0c7ull};
    if (opts) {
        if (opts->cms_width) o.cms_width = opts->cms_width;
        if (opts->cms_depth) o.cms_depth = opts->cms_depth;
        if (opts->top_pairs) o.top_pairs = opts->top_pairs;
        if (opts->reservoir) o.reservoir = opts->reservoir;
        if (opts->max_batches) o.max_batches = opts->max_batches;
        if (opts->seed) o.seed = opts->seed;
    }
    if (o.cms_width < 16 || o.cms_width > (1 << 26) || o.cms_depth < 1 || o.cms_depth > 16 || o.top_pairs < 1 ||
        o.top_pairs > (1 << 20) || o.reservoir < 1 || o.reservoir > (1 << 20) || o.max_batches < 1)
        return seslm_fail(SESLM_ERR_ARG, "telemetry options out of range");
    if (sh->vocab_size < 1 || sh->hidden < 1 || sh->n_layers < 0 || sh->max_seq_len < 1 || sh->head_dim < 0 ||
        (sh->n_layers > 0 && (!sh->n_heads || !sh->ffn_dim)))
        return seslm_fail(SESLM_ERR_ARG, "telemetry shape out of range");
    for (int l = 0; l < sh->n_layers; l++)
        if (sh->n_heads[l] < 0 || sh->ffn_dim[l] < 0) return seslm_fail(SESLM_ERR_ARG, "telemetry shape out of range");
    seslm_telemetry *t = calloc(1, sizeof *t);
    if (!t) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    t->opts = o;
    t->vocab = sh->vocab_size;
    t->hidden = sh->hidden;
    t->n_layers = sh->n_layers;
    t->max_seq = sh->max_seq_len;
    t->model_sha = sh->model_sha256 ? sh->model_sha256 : "";
    int ok = 1;
#define ALLOC(p, n) ok = ok && ((p) = calloc((size_t)(n) + 1, sizeof *(p))) != NULL
    ALLOC(t->token_counts, t->vocab);
    ALLOC(t->seq_len_hist, t->max_seq + 1);
    ALLOC(t->batches, o.max_batches);
    ALLOC(t->cms, (size_t)o.cms_depth * o.cms_width);
    ALLOC(t->heap, o.top_pairs);
    t->index_cap = 1;
    while (t->index_cap < 2u * (uint32_t)o.top_pairs) t->index_cap <<= 1;
    ALLOC(t->index, t->index_cap);
    ALLOC(t->sorted, o.top_pairs);
    ALLOC(t->reservoir, (size_t)o.reservoir * t->hidden);
    ALLOC(t->layers, t->n_layers);
    for (int l = 0; ok && l < t->n_layers; l++) {
        seslm_layer_telemetry *L = &t->layers[l];
        L->n_heads = sh->n_heads[l];
        L->attn_dim = sh->n_heads[l] * sh->head_dim;
        L->ffn_dim = sh->ffn_dim[l];
        ALLOC(L->head_entropy, L->n_heads);
        ALLOC(L->head_max_weight, L->n_heads);
        ALLOC(L->head_out_norm, L->n_heads);
        ALLOC(L->ffn_pos, L->ffn_dim);
        ALLOC(L->ffn_abs, L->ffn_dim);
        ALLOC(L->ffn_sq, L->ffn_dim);
        ALLOC(L->in_sq_qkv, t->hidden);
        ALLOC(L->in_sq_attn_out, L->attn_dim);
        ALLOC(L->in_sq_ffn_in, t->hidden);
    }
#undef ALLOC
    if (!ok) {
        seslm_telemetry_free(t);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory sizing telemetry buffers");
    }
    seslm_telemetry_reset(t);
    *out = t;
    return SESLM_OK;
}

void seslm_telemetry_free(seslm_telemetry *t) {
    if (!t) return;
    for (int l = 0; t->layers && l < t->n_layers; l++) {
        seslm_layer_telemetry *L = &t->layers[l];
        free(L->head_entropy), free(L->head_max_weight), free(L->head_out_norm), free(L->ffn_pos);
        free(L->ffn_abs), free(L->ffn_sq), free(L->in_sq_qkv), free(L->in_sq_attn_out), free(L->in_sq_ffn_in);
    }
    free(t->layers), free(t->token_counts), free(t->seq_len_hist), free(t->batches), free(t->cms), free(t->heap);
    free(t->index), free(t->sorted), free(t->reservoir);
    free(t);
}

void seslm_telemetry_reset(seslm_telemetry *t) {
    memset(t->token_counts, 0, (size_t)t->vocab * sizeof *t->token_counts);
    memset(t->seq_len_hist, 0, (size_t)(t->max_seq + 1) * sizeof *t->seq_len_hist);
    memset(t->cms, 0, (size_t)t->opts.cms_depth * t->opts.cms_width * sizeof *t->cms);
    memset(t->index, 0xff, (size_t)t->index_cap * sizeof *t->index); // -1: empty slot
    t->n_heap = 0;
    t->pairs_total = 0;
    t->n_batches = t->n_requests = t->n_sequences = t->n_tokens = 0;
    t->n_reservoir = 0;
    t->reservoir_seen = 0;
    t->rng = t->opts.seed;
    t->peak_rss = 0;
    for (int l = 0; l < t->n_layers; l++) {
        seslm_layer_telemetry *L = &t->layers[l];
        L->exec_count = 0, L->exec_ns = 0, L->query_tokens = 0, L->ffn_tokens = 0;
        memset(L->head_entropy, 0, (size_t)L->n_heads * sizeof(double));
        memset(L->head_max_weight, 0, (size_t)L->n_heads * sizeof(double));
        memset(L->head_out_norm, 0, (size_t)L->n_heads * sizeof(double));
        memset(L->ffn_pos, 0, (size_t)L->ffn_dim * sizeof(uint64_t));
        memset(L->ffn_abs, 0, (size_t)L->ffn_dim * sizeof(double));
        memset(L->ffn_sq, 0, (size_t)L->ffn_dim * sizeof(double));
        memset(L->in_sq_qkv, 0, (size_t)t->hidden * sizeof(double));
        memset(L->in_sq_attn_out, 0, (size_t)L->attn_dim * sizeof(double));
        memset(L->in_sq_ffn_in, 0, (size_t)t->hidden * sizeof(double));
    }
    t->window_start = now_ns();
}

// ---- token pairs: count-min sketch + top-K heap -----------------------------------------------------

static uint32_t cms_col(const seslm_telemetry *t, int row, uint64_t key) {
    return (uint32_t)(mix64(key ^ (t->opts.seed + 0x9e3779b97f4a7c15ull * (uint64_t)(row + 1))) %
                      (uint64_t)t->opts.cms_width);
}

uint64_t seslm_telemetry_pair_estimate(const seslm_telemetry *t, uint32_t first, uint32_t second) {
    const uint64_t key = (uint64_t)first << 32 | second;
    uint64_t est = UINT64_MAX;
    for (int r = 0; r < t->opts.cms_depth; r++) {
        uint32_t v = t->cms[(size_t)r * t->opts.cms_width + cms_col(t, r, key)];
        est = v < est ? v : est;
    }
    return est;
}

// index: key -> heap slot, linear probing; deletion by backward shift keeps probe chains intact
static uint32_t idx_home(const seslm_telemetry *t, uint64_t key) { return (uint32_t)mix64(key) & (t->index_cap - 1); }

static int32_t *idx_find(seslm_telemetry *t, uint64_t key) {
    for (uint32_t i = idx_home(t, key);; i = (i + 1) & (t->index_cap - 1)) {
        if (t->index[i] < 0 || t->heap[t->index[i]].key == key) return &t->index[i];
    }
}

static void idx_delete(seslm_telemetry *t, uint64_t key) {
    uint32_t mask = t->index_cap - 1, i = (uint32_t)(idx_find(t, key) - t->index);
    if (t->index[i] < 0) return;
    for (uint32_t j = (i + 1) & mask; t->index[j] >= 0; j = (j + 1) & mask) {
        uint32_t h = idx_home(t, t->heap[t->index[j]].key);
        // move j back to i if its home is not cyclically within (i, j]
        if (((j - h) & mask) >= ((j - i) & mask)) {
            t->index[i] = t->index[j];
            i = j;
        }
    }
    t->index[i] = -1;
}

static void heap_swap(seslm_telemetry *t, int a, int b) {
    // find both index slots before the swap: idx_find matches slots through the heap entries
    int32_t *sa = idx_find(t, t->heap[a].key), *sb = idx_find(t, t->heap[b].key);
    tel_pair tmp = t->heap[a];
    t->heap[a] = t->heap[b];
    t->heap[b] = tmp;
    *sa = b;
    *sb = a;
}

static void heap_down(seslm_telemetry *t, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < t->n_heap && t->heap[l].count < t->heap[m].count) m = l;
        if (r < t->n_heap && t->heap[r].count < t->heap[m].count) m = r;
        if (m == i) return;
        heap_swap(t, i, m);
        i = m;
    }
}

static void heap_up(seslm_telemetry *t, int i) {
    while (i > 0 && t->heap[(i - 1) / 2].count > t->heap[i].count) {
        heap_swap(t, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void pair_observe(seslm_telemetry *t, uint32_t first, uint32_t second) {
    const uint64_t key = (uint64_t)first << 32 | second;
    uint64_t est = UINT64_MAX;
    for (int r = 0; r < t->opts.cms_depth; r++) {
        uint32_t *c = &t->cms[(size_t)r * t->opts.cms_width + cms_col(t, r, key)];
        if (*c < UINT32_MAX) (*c)++; // saturate rather than wrap
        est = *c < est ? *c : est;
    }
    t->pairs_total++;
    int32_t *slot = idx_find(t, key);
    if (*slot >= 0) { // tracked: its estimate only grows, so it sinks toward the leaves
        t->heap[*slot].count = est;
        heap_down(t, *slot);
    } else if (t->n_heap < t->opts.top_pairs) {
        int i = t->n_heap++;
        t->heap[i] = (tel_pair){key, est};
        *slot = i;
        heap_up(t, i);
    } else if (est > t->heap[0].count) { // evict the lightest tracked pair
        idx_delete(t, t->heap[0].key);
        t->heap[0] = (tel_pair){key, est};
        *idx_find(t, key) = 0;
        heap_down(t, 0);
    }
}

// ---- observation hooks (called by the encoder) -------------------------------------------------

void tel_observe_tokens(seslm_telemetry *t, const int32_t *ids, const int *off, const int *len, int B) {
    for (int b = 0; b < B; b++) {
        const int32_t *s = ids + off[b];
        t->seq_len_hist[len[b] <= t->max_seq ? len[b] : t->max_seq]++;
        t->n_tokens += (uint64_t)len[b];
        for (int i = 0; i < len[b]; i++) t->token_counts[s[i]]++;
        for (int i = 1; i < len[b]; i++) pair_observe(t, (uint32_t)s[i - 1], (uint32_t)s[i]);
    }
    t->n_sequences += (uint64_t)B;
}

void tel_observe_embeddings(seslm_telemetry *t, const float *emb, int B) {
    const int C = t->hidden, R = t->opts.reservoir;
    for (int b = 0; b < B; b++) { // Vitter's algorithm R
        t->reservoir_seen++;
        int64_t slot = -1;
        if (t->n_reservoir < R) {
            slot = t->n_reservoir++;
        } else {
            t->rng = mix64(t->rng + 0x9e3779b97f4a7c15ull);
            uint64_t j = t->rng % t->reservoir_seen;
            if (j < (uint64_t)R) slot = (int64_t)j;
        }
        if (slot >= 0) memcpy(t->reservoir + (size_t)slot * C, emb + (size_t)b * C, (size_t)C * sizeof(float));
    }
}

void tel_observe_batch(seslm_telemetry *t, int64_t latency_ns, int batch_size, int n_tokens) {
    if (t->n_batches < (uint64_t)t->opts.max_batches)
        t->batches[t->n_batches] = (seslm_batch_record){latency_ns, batch_size, n_tokens};
    t->n_batches++;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0 && (int64_t)ru.ru_maxrss * 1024 > t->peak_rss)
        t->peak_rss = (int64_t)ru.ru_maxrss * 1024;
}

void seslm_telemetry_count_request(seslm_telemetry *t) { t->n_requests++; }

// ---- snapshot -------------------------------------------------------------------------------------

static int pair_cmp(const void *a, const void *b) {
    const seslm_token_pair *x = a, *y = b;
    if (x->count != y->count) return x->count < y->count ? 1 : -1;
    if (x->first != y->first) return x->first < y->first ? -1 : 1;
    return (x->second > y->second) - (x->second < y->second);
}

void seslm_telemetry_snapshot(seslm_telemetry *t, seslm_telemetry_view *v) {
    for (int i = 0; i < t->n_heap; i++)
        t->sorted[i] = (seslm_token_pair){(uint32_t)(t->heap[i].key >> 32), (uint32_t)t->heap[i].key, t->heap[i].count};
    qsort(t->sorted, (size_t)t->n_heap, sizeof *t->sorted, pair_cmp);
    memset(v, 0, sizeof *v);
    v->window_start_ns = t->window_start;
    v->window_end_ns = now_ns();
    v->n_requests = t->n_requests;
    v->n_batches = t->n_batches;
    v->n_sequences = t->n_sequences;
    v->n_tokens = t->n_tokens;
    v->vocab_size = t->vocab;
    v->hidden = t->hidden;
    v->n_layers = t->n_layers;
    v->max_seq_len = t->max_seq;
    v->token_counts = t->token_counts;
    v->seq_len_hist = t->seq_len_hist;
    v->n_batch_records = t->n_batches < (uint64_t)t->opts.max_batches ? (int)t->n_batches : t->opts.max_batches;
    v->batches = t->batches;
    v->n_pairs = t->n_heap;
    v->pairs = t->sorted;
    v->cms_width = t->opts.cms_width;
    v->cms_depth = t->opts.cms_depth;
    v->seed = t->opts.seed;
    v->cms = t->cms;
    v->pairs_total = t->pairs_total;
    v->n_reservoir = t->n_reservoir;
    v->reservoir_seen = t->reservoir_seen;
    v->reservoir = t->reservoir;
    v->layers = t->layers;
    v->peak_rss_bytes = t->peak_rss;
    v->peak_device_bytes = 0;
    v->model_sha256 = t->model_sha;
}
