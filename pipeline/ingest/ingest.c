/* ingest.c — merge telemetry dumps by adding (see ingest.h, docs/drift.md "Ingest"). */
#include "ingest.h"
#include "dump_identity.h"

#include "telemetry_hdf5.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *path, *reason;
} skip_rec;

struct seslm_ingest {
    char sha[72];
    int have_sha;
    char node_id[SESLM_NODE_ID_MAX + 1];
    char model_id[256];
    uint64_t rng;
    int res_cap, max_batches, pair_cap;
    int have;           // a dump was merged
    seslm_telemetry_view v;
    uint64_t *token_counts, *seq_len_hist;
    seslm_batch_record *batches;
    seslm_token_pair *pairs;
    uint32_t *cms;
    float *reservoir, *res_tmp;
    seslm_layer_telemetry *layers;
    char **intent_labels;
    uint64_t *intent_counts;
    int n_intents;
    uint64_t n_rejected;
    int n_read;
    skip_rec *skips;
    int n_skips;
    char **notes;
    int n_notes;
    seslm_dump_identity *ids; // of the dumps merged, in order (ids_path beside)
    char **ids_path;
    int n_ids;
    skip_rec *dups;           // duplicates: path, and in reason "of <first>: <why>"
    int n_dups;
};

static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static uint64_t next_rand(seslm_ingest *g) {
    g->rng += 0x9e3779b97f4a7c15ull;
    return mix64(g->rng);
}

// uniform in [0, n)
static uint64_t rand_below(seslm_ingest *g, uint64_t n) { return n ? next_rand(g) % n : 0; }

uint64_t seslm_cms_estimate(const uint32_t *cms, int width, int depth, uint64_t seed, uint32_t first,
                            uint32_t second) {
    if (!cms || width <= 0 || depth <= 0) return 0;
    const uint64_t key = ((uint64_t)first << 32) | second;
    uint64_t best = UINT64_MAX;
    for (int r = 0; r < depth; r++) {
        uint64_t col = mix64(key ^ (seed + 0x9e3779b97f4a7c15ull * (uint64_t)(r + 1))) % (uint64_t)width;
        uint64_t c = cms[(size_t)r * width + col];
        if (c < best) best = c;
    }
    return best;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *c = malloc(n + 1);
    if (c) memcpy(c, s, n + 1);
    return c;
}

static seslm_status add_skip(seslm_ingest *g, const char *path, seslm_status st, const char *reason) {
    skip_rec *ns = realloc(g->skips, (size_t)(g->n_skips + 1) * sizeof *ns);
    if (!ns) return SESLM_ERR_NOMEM;
    g->skips = ns;
    ns[g->n_skips].path = dup_str(path);
    ns[g->n_skips].reason = dup_str(reason);
    g->n_skips++;
    return st;
}

static void add_note(seslm_ingest *g, const char *note) {
    char **nn = realloc(g->notes, (size_t)(g->n_notes + 1) * sizeof *nn);
    if (!nn) return;
    g->notes = nn;
    if ((nn[g->n_notes] = dup_str(note)) != NULL) g->n_notes++;
}

seslm_status seslm_ingest_new(seslm_ingest **out, const seslm_ingest_opts *opts) {
    *out = NULL;
    seslm_ingest_opts o = opts ? *opts : (seslm_ingest_opts){0};
    seslm_ingest *g = calloc(1, sizeof *g);
    if (!g) return seslm_fail(SESLM_ERR_NOMEM, "ingest: out of memory");
    if (o.expected_sha256) {
        snprintf(g->sha, sizeof g->sha, "%s", o.expected_sha256);
        g->have_sha = 1;
    }
    snprintf(g->node_id, sizeof g->node_id, "%s", o.node_id && *o.node_id ? o.node_id : "merged");
    g->rng = o.seed ? o.seed : 0x5e51;
    g->res_cap = o.reservoir > 0 ? o.reservoir : 1024;
    g->max_batches = o.max_batches > 0 ? o.max_batches : 65536;
    *out = g;
    return SESLM_OK;
}

static void free_layers(seslm_layer_telemetry *L, int n) {
    for (int l = 0; L && l < n; l++) {
        free(L[l].head_entropy), free(L[l].head_max_weight), free(L[l].head_out_norm);
        free(L[l].ffn_pos), free(L[l].ffn_abs), free(L[l].ffn_sq);
        free(L[l].in_sq_qkv), free(L[l].in_sq_attn_out), free(L[l].in_sq_ffn_in);
    }
    free(L);
}

void seslm_ingest_free(seslm_ingest *g) {
    if (!g) return;
    free(g->token_counts), free(g->seq_len_hist), free(g->batches), free(g->pairs), free(g->cms);
    free(g->reservoir), free(g->res_tmp);
    free_layers(g->layers, g->v.n_layers);
    for (int i = 0; i < g->n_intents; i++) free(g->intent_labels[i]);
    free(g->intent_labels), free(g->intent_counts);
    for (int i = 0; i < g->n_skips; i++) free(g->skips[i].path), free(g->skips[i].reason);
    free(g->skips);
    for (int i = 0; i < g->n_notes; i++) free(g->notes[i]);
    free(g->notes);
    for (int i = 0; i < g->n_ids; i++) free(g->ids_path[i]);
    free(g->ids), free(g->ids_path);
    for (int i = 0; i < g->n_dups; i++) free(g->dups[i].path), free(g->dups[i].reason);
    free(g->dups);
    free(g);
}

static void *dup_mem(const void *src, size_t n, int *ok) {
    void *p = malloc(n ? n : 1);
    if (!p) *ok = 0;
    else if (n && src) memcpy(p, src, n);
    else if (n) memset(p, 0, n);
    return p;
}

// The first dump: deep copy into owned buffers.
static seslm_status init_from(seslm_ingest *g, const seslm_telemetry_dump *d) {
    const seslm_telemetry_view *s = &d->v;
    int ok = 1;
    g->v = *s;
    g->token_counts = dup_mem(s->token_counts, (size_t)s->vocab_size * 8, &ok);
    g->seq_len_hist = dup_mem(s->seq_len_hist, (size_t)(s->max_seq_len + 1) * 8, &ok);
    int nb = s->n_batch_records < g->max_batches ? s->n_batch_records : g->max_batches;
    g->batches = dup_mem(NULL, (size_t)g->max_batches * sizeof *g->batches, &ok);
    if (ok && nb) memcpy(g->batches, s->batches, (size_t)nb * sizeof *g->batches);
    g->v.n_batch_records = nb;
    g->pair_cap = s->n_pairs > 1024 ? s->n_pairs : 1024;
    g->pairs = dup_mem(NULL, (size_t)g->pair_cap * 2 * sizeof *g->pairs, &ok); // room for merging candidates
    if (ok && s->n_pairs) memcpy(g->pairs, s->pairs, (size_t)s->n_pairs * sizeof *g->pairs);
    g->cms = dup_mem(s->cms, (size_t)s->cms_depth * s->cms_width * 4, &ok);
    const size_t C = (size_t)s->hidden;
    g->reservoir = dup_mem(NULL, (size_t)g->res_cap * C * 4, &ok);
    g->res_tmp = dup_mem(NULL, (size_t)g->res_cap * C * 4, &ok);
    g->layers = calloc((size_t)(s->n_layers > 0 ? s->n_layers : 1), sizeof *g->layers);
    if (!g->layers) ok = 0;
    for (int l = 0; ok && l < s->n_layers; l++) {
        const seslm_layer_telemetry *a = &s->layers[l];
        seslm_layer_telemetry *b = &g->layers[l];
        *b = *a;
        const size_t H = (size_t)a->n_heads, F = (size_t)a->ffn_dim, A = (size_t)a->attn_dim;
        b->head_entropy = dup_mem(a->head_entropy, H * 8, &ok);
        b->head_max_weight = dup_mem(a->head_max_weight, H * 8, &ok);
        b->head_out_norm = dup_mem(a->head_out_norm, H * 8, &ok);
        b->ffn_pos = dup_mem(a->ffn_pos, F * 8, &ok);
        b->ffn_abs = dup_mem(a->ffn_abs, F * 8, &ok);
        b->ffn_sq = dup_mem(a->ffn_sq, F * 8, &ok);
        b->in_sq_qkv = dup_mem(a->in_sq_qkv, C * 8, &ok);
        b->in_sq_attn_out = dup_mem(a->in_sq_attn_out, A * 8, &ok);
        b->in_sq_ffn_in = dup_mem(a->in_sq_ffn_in, C * 8, &ok);
    }
    if (!ok) return seslm_fail(SESLM_ERR_NOMEM, "ingest: out of memory");
    // the reservoir: a uniform subsample of at most res_cap rows
    int R = s->n_reservoir;
    int *idx = malloc((size_t)(R > 0 ? R : 1) * sizeof *idx);
    if (!idx) return seslm_fail(SESLM_ERR_NOMEM, "ingest: out of memory");
    for (int i = 0; i < R; i++) idx[i] = i;
    int keep = R < g->res_cap ? R : g->res_cap;
    for (int i = 0; i < keep; i++) { // partial Fisher-Yates
        int j = i + (int)rand_below(g, (uint64_t)(R - i));
        int t = idx[i];
        idx[i] = idx[j], idx[j] = t;
        memcpy(g->reservoir + (size_t)i * C, s->reservoir + (size_t)idx[i] * C, C * 4);
    }
    free(idx);
    g->v.n_reservoir = keep;
    snprintf(g->sha, sizeof g->sha, "%s", s->model_sha256 ? s->model_sha256 : "");
    g->have_sha = 1;
    snprintf(g->model_id, sizeof g->model_id, "%s", d->meta.model_id ? d->meta.model_id : "");
    g->v.model_sha256 = g->sha;
    g->n_intents = 0;
    g->v.n_intents = 0;
    g->v.intent_labels = NULL;
    g->v.intent_counts = NULL;
    g->n_rejected = d->meta.n_rejected;
    return SESLM_OK;
}

// Why dump d cannot be merged with the merged state (NULL: it can).
static const char *shape_mismatch(const seslm_ingest *g, const seslm_telemetry_view *s, char *buf, size_t cap) {
    const seslm_telemetry_view *m = &g->v;
    if (s->vocab_size != m->vocab_size || s->hidden != m->hidden || s->n_layers != m->n_layers ||
        s->max_seq_len != m->max_seq_len) {
        snprintf(buf, cap, "model shape (vocab %d, hidden %d, %d layers, max_seq_len %d) differs from the merged dumps'"
                 " (%d, %d, %d, %d)", s->vocab_size, s->hidden, s->n_layers, s->max_seq_len, m->vocab_size,
                 m->hidden, m->n_layers, m->max_seq_len);
        return buf;
    }
    for (int l = 0; l < s->n_layers; l++) {
        const seslm_layer_telemetry *a = &s->layers[l], *b = &m->layers[l];
        if (a->n_heads != b->n_heads || a->attn_dim != b->attn_dim || a->ffn_dim != b->ffn_dim) {
            snprintf(buf, cap, "layer %d has %d heads / %d neurons, the merged dumps %d / %d", l, a->n_heads,
                     a->ffn_dim, b->n_heads, b->ffn_dim);
            return buf;
        }
    }
    return NULL;
}

static int pair_cmp_id(const void *x, const void *y) {
    const seslm_token_pair *a = x, *b = y;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    return a->second < b->second ? -1 : a->second > b->second;
}

static int pair_cmp_count(const void *x, const void *y) {
    const seslm_token_pair *a = x, *b = y;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    return pair_cmp_id(x, y);
}

// Heavy hitters: union of both lists, re-ranked by the merged sketch's estimates (or by summed counts
// when the sketch could not be merged), the heaviest pair_cap kept.
static seslm_status merge_pairs(seslm_ingest *g, const seslm_telemetry_view *s, int cms_merged) {
    int cap = s->n_pairs > g->pair_cap ? s->n_pairs : g->pair_cap;
    if (cap > g->pair_cap) {
        seslm_token_pair *np = realloc(g->pairs, (size_t)cap * 2 * sizeof *np);
        if (!np) return seslm_fail(SESLM_ERR_NOMEM, "ingest: out of memory");
        g->pairs = np, g->pair_cap = cap;
    }
    int n = g->v.n_pairs;
    memcpy(g->pairs + n, s->pairs, (size_t)s->n_pairs * sizeof *g->pairs);
    n += s->n_pairs;
    qsort(g->pairs, (size_t)n, sizeof *g->pairs, pair_cmp_id);
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (k > 0 && g->pairs[k - 1].first == g->pairs[i].first && g->pairs[k - 1].second == g->pairs[i].second) {
            g->pairs[k - 1].count += g->pairs[i].count;
            continue;
        }
        g->pairs[k++] = g->pairs[i];
    }
    if (cms_merged)
        for (int i = 0; i < k; i++)
            g->pairs[i].count = seslm_cms_estimate(g->cms, g->v.cms_width, g->v.cms_depth, g->v.seed,
                                                   g->pairs[i].first, g->pairs[i].second);
    qsort(g->pairs, (size_t)k, sizeof *g->pairs, pair_cmp_count);
    g->v.n_pairs = k < g->pair_cap ? k : g->pair_cap;
    return SESLM_OK;
}

// Merged reservoir = uniform sample of all embeddings offered to both: how many rows come from each side
// follows the hypergeometric law of drawing k from the union (seen counts), then each side's rows are a
// uniform subsample of its own uniform sample.
static void merge_reservoir(seslm_ingest *g, const seslm_telemetry_view *s) {
    const size_t C = (size_t)g->v.hidden;
    const uint64_t NA = g->v.reservoir_seen, NB = s->reservoir_seen;
    const int ra = g->v.n_reservoir, rb = s->n_reservoir;
    uint64_t total = NA + NB;
    int k = total < (uint64_t)g->res_cap ? (int)total : g->res_cap;
    if (k > ra + rb) k = ra + rb;
    uint64_t remA = NA, remB = NB;
    int ka = 0, kb = 0;
    for (int i = 0; i < k; i++) {
        int takeA = remA + remB > 0 && rand_below(g, remA + remB) < remA;
        if ((takeA && ka >= ra) || (!takeA && kb >= rb)) takeA = !takeA; // a side's sample is exhausted
        if (takeA) ka++, remA -= remA > 0;
        else kb++, remB -= remB > 0;
    }
    // choose ka of A's rows (in place: partial Fisher-Yates on rows) and kb of B's
    for (int i = 0; i < ka; i++) {
        int j = i + (int)rand_below(g, (uint64_t)(ra - i));
        memcpy(g->res_tmp + (size_t)i * C, g->reservoir + (size_t)j * C, C * 4);
        if (j != i) memcpy(g->reservoir + (size_t)j * C, g->reservoir + (size_t)i * C, C * 4);
    }
    int *idx = malloc((size_t)(rb > 0 ? rb : 1) * sizeof *idx);
    if (!idx) kb = 0; // out of memory: keep A's side only (still a valid, if smaller, sample)
    for (int i = 0; i < rb && idx; i++) idx[i] = i;
    for (int i = 0; i < kb; i++) {
        int j = i + (int)rand_below(g, (uint64_t)(rb - i));
        int t = idx[i];
        idx[i] = idx[j], idx[j] = t;
        memcpy(g->res_tmp + (size_t)(ka + i) * C, s->reservoir + (size_t)idx[i] * C, C * 4);
    }
    free(idx);
    float *t = g->reservoir;
    g->reservoir = g->res_tmp, g->res_tmp = t;
    g->v.n_reservoir = ka + kb;
    g->v.reservoir_seen = total;
}

static seslm_status merge_intents(seslm_ingest *g, const seslm_telemetry_view *s) {
    for (int i = 0; i < s->n_intents; i++) {
        int j = 0;
        while (j < g->n_intents && strcmp(g->intent_labels[j], s->intent_labels[i]) != 0) j++;
        if (j == g->n_intents) {
            char **nl = realloc(g->intent_labels, (size_t)(j + 1) * sizeof *nl);
            if (nl) g->intent_labels = nl;
            uint64_t *nc = realloc(g->intent_counts, (size_t)(j + 1) * sizeof *nc);
            if (nc) g->intent_counts = nc;
            if (!nl || !nc || !(nl[j] = dup_str(s->intent_labels[i])))
                return seslm_fail(SESLM_ERR_NOMEM, "ingest: out of memory");
            g->intent_counts[j] = 0;
            g->n_intents++;
        }
        g->intent_counts[j] += s->intent_counts[i];
    }
    g->v.n_intents = g->n_intents;
    g->v.intent_labels = (const char *const *)g->intent_labels;
    g->v.intent_counts = g->intent_counts;
    return SESLM_OK;
}

static seslm_status merge(seslm_ingest *g, const seslm_telemetry_dump *d, const char *path) {
    const seslm_telemetry_view *s = &d->v;
    seslm_telemetry_view *m = &g->v;
    if (s->window_start_ns < m->window_start_ns) m->window_start_ns = s->window_start_ns;
    if (s->window_end_ns > m->window_end_ns) m->window_end_ns = s->window_end_ns;
    m->n_requests += s->n_requests, m->n_batches += s->n_batches;
    m->n_sequences += s->n_sequences, m->n_tokens += s->n_tokens;
    g->n_rejected += d->meta.n_rejected;
    for (int i = 0; i < s->vocab_size; i++) g->token_counts[i] += s->token_counts[i];
    for (int i = 0; i <= s->max_seq_len; i++) g->seq_len_hist[i] += s->seq_len_hist[i];
    int nb = s->n_batch_records;
    if (nb > g->max_batches - m->n_batch_records) nb = g->max_batches - m->n_batch_records;
    if (nb > 0) memcpy(g->batches + m->n_batch_records, s->batches, (size_t)nb * sizeof *g->batches);
    if (nb > 0) m->n_batch_records += nb;
    int cms_ok = s->cms_width == m->cms_width && s->cms_depth == m->cms_depth && s->seed == m->seed;
    if (cms_ok) {
        const size_t n = (size_t)s->cms_depth * s->cms_width;
        for (size_t i = 0; i < n; i++) {
            uint64_t c = (uint64_t)g->cms[i] + s->cms[i];
            g->cms[i] = c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
        }
    } else {
        char note[1024];
        snprintf(note, sizeof note,
                 "%.800s: count-min sketch %dx%d seed %llu differs from the merged %dx%d seed %llu: its cells are "
                 "not added (its heavy hitters are, by their own counts)",
                 path, s->cms_depth, s->cms_width, (unsigned long long)s->seed, m->cms_depth, m->cms_width,
                 (unsigned long long)m->seed);
        add_note(g, note);
    }
    m->pairs_total += s->pairs_total;
    seslm_status st = merge_pairs(g, s, cms_ok);
    if (st != SESLM_OK) return st;
    merge_reservoir(g, s);
    for (int l = 0; l < s->n_layers; l++) {
        const seslm_layer_telemetry *a = &s->layers[l];
        seslm_layer_telemetry *b = &g->layers[l];
        b->exec_count += a->exec_count, b->exec_ns += a->exec_ns;
        b->query_tokens += a->query_tokens, b->ffn_tokens += a->ffn_tokens;
        for (int h = 0; h < a->n_heads; h++) {
            b->head_entropy[h] += a->head_entropy[h];
            b->head_max_weight[h] += a->head_max_weight[h];
            b->head_out_norm[h] += a->head_out_norm[h];
        }
        for (int f = 0; f < a->ffn_dim; f++) {
            b->ffn_pos[f] += a->ffn_pos[f];
            b->ffn_abs[f] += a->ffn_abs[f];
            b->ffn_sq[f] += a->ffn_sq[f];
        }
        for (int c = 0; c < s->hidden; c++) b->in_sq_qkv[c] += a->in_sq_qkv[c], b->in_sq_ffn_in[c] += a->in_sq_ffn_in[c];
        for (int c = 0; c < a->attn_dim; c++) b->in_sq_attn_out[c] += a->in_sq_attn_out[c];
    }
    if (s->peak_rss_bytes > m->peak_rss_bytes) m->peak_rss_bytes = s->peak_rss_bytes;
    if (s->peak_device_bytes > m->peak_device_bytes) m->peak_device_bytes = s->peak_device_bytes;
    return merge_intents(g, s);
}

static void refresh_view(seslm_ingest *g) {
    g->v.token_counts = g->token_counts;
    g->v.seq_len_hist = g->seq_len_hist;
    g->v.batches = g->batches;
    g->v.pairs = g->pairs;
    g->v.cms = g->cms;
    g->v.reservoir = g->reservoir;
    g->v.layers = g->layers;
    g->v.model_sha256 = g->sha;
}

/* reason with every occurrence of path written as name (the reader's messages name the file it opened) */
static void as_name(char *reason, size_t cap, const char *path, const char *name) {
    size_t pl = strlen(path);
    if (!pl || !strcmp(path, name)) return;
    char out[1400];
    size_t o = 0;
    for (const char *r = reason; *r && o + 1 < sizeof out;) {
        if (!strncmp(r, path, pl)) {
            o += (size_t)snprintf(out + o, sizeof out - o, "%s", name);
            if (o >= sizeof out) o = sizeof out - 1;
            r += pl;
        } else {
            out[o++] = *r++;
        }
    }
    out[o] = 0;
    size_t n = o < cap ? o : cap - 1; // (cap > 0: the callers' buffers)
    memcpy(reason, out, n);
    reason[n] = 0;
}

seslm_status seslm_ingest_add_file(seslm_ingest *g, const char *path) { return seslm_ingest_add_file_as(g, path, path); }

seslm_status seslm_ingest_add_skipped(seslm_ingest *g, const char *name, const char *reason) {
    if (add_skip(g, name, SESLM_ERR_IO, reason) == SESLM_ERR_NOMEM) return seslm_fail(SESLM_ERR_NOMEM, "ingest: out of memory");
    return SESLM_OK;
}

seslm_status seslm_ingest_add_file_as(seslm_ingest *g, const char *path, const char *name) {
    seslm_telemetry_dump *d = NULL;
    seslm_status st = seslm_telemetry_dump_read(path, g->have_sha ? g->sha : NULL, &d);
    if (st != SESLM_OK) {
        char reason[1024];
        snprintf(reason, sizeof reason, "%s", seslm_last_error());
        as_name(reason, sizeof reason, path, name);
        if (add_skip(g, name, st, reason) == SESLM_ERR_NOMEM) return seslm_fail(SESLM_ERR_NOMEM, "ingest: out of memory");
        return st;
    }
    // the same window twice (the same file given twice, or a copy under another name) is counted once
    seslm_dump_identity id;
    if ((st = seslm_dump_identity_of(path, d, &id)) != SESLM_OK) {
        char reason[1024];
        snprintf(reason, sizeof reason, "%s", seslm_last_error());
        seslm_telemetry_dump_free(d);
        as_name(reason, sizeof reason, path, name);
        if (add_skip(g, name, st, reason) == SESLM_ERR_NOMEM) return seslm_fail(SESLM_ERR_NOMEM, "ingest: out of memory");
        return st;
    }
    for (int i = 0; i < g->n_ids; i++) {
        char why[256], reason[1400];
        if (!seslm_dump_identity_same(&g->ids[i], &id, why, sizeof why)) continue;
        snprintf(reason, sizeof reason, "duplicate of %s (%s): not counted twice", g->ids_path[i], why);
        seslm_telemetry_dump_free(d);
        skip_rec *nd = realloc(g->dups, (size_t)(g->n_dups + 1) * sizeof *nd);
        if (!nd) return seslm_fail(SESLM_ERR_NOMEM, "ingest: out of memory");
        g->dups = nd;
        nd[g->n_dups].path = dup_str(name);
        nd[g->n_dups].reason = dup_str(reason);
        g->n_dups++;
        return SESLM_OK;
    }
    {
        seslm_dump_identity *ni = realloc(g->ids, (size_t)(g->n_ids + 1) * sizeof *ni);
        char **np = ni ? realloc(g->ids_path, (size_t)(g->n_ids + 1) * sizeof *np) : NULL;
        if (ni) g->ids = ni;
        if (!np) {
            seslm_telemetry_dump_free(d);
            return seslm_fail(SESLM_ERR_NOMEM, "ingest: out of memory");
        }
        g->ids_path = np;
    }
    if (!g->have) {
        st = init_from(g, d);
        if (st == SESLM_OK) g->have = 1, g->n_read++;
        if (st == SESLM_OK) st = merge_intents(g, &d->v);
    } else {
        char buf[512];
        const char *why = shape_mismatch(g, &d->v, buf, sizeof buf);
        if (why) {
            st = add_skip(g, name, SESLM_ERR_SHAPE, why);
            seslm_telemetry_dump_free(d);
            if (st == SESLM_ERR_NOMEM) return seslm_fail(st, "ingest: out of memory");
            return seslm_fail(st, "%s: %s", name, why);
        }
        st = merge(g, d, name);
        if (st == SESLM_OK) g->n_read++;
    }
    if (st == SESLM_OK) {
        g->ids[g->n_ids] = id;
        g->ids_path[g->n_ids] = dup_str(name);
        g->n_ids++;
    }
    refresh_view(g);
    seslm_telemetry_dump_free(d);
    return st;
}

static int final_filter(const struct dirent *de) { return seslm_telemetry_dump_is_final_name(de->d_name); }

seslm_status seslm_ingest_add_dir(seslm_ingest *g, const char *dir) {
    struct dirent **names = NULL;
    int n = scandir(dir, &names, final_filter, alphasort);
    if (n < 0) return seslm_fail(SESLM_ERR_IO, "cannot list %s: %s", dir, strerror(errno));
    seslm_status rc = SESLM_OK;
    for (int i = 0; i < n; i++) {
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        if (rc == SESLM_OK && seslm_ingest_add_file(g, path) == SESLM_ERR_NOMEM) rc = SESLM_ERR_NOMEM;
        free(names[i]);
    }
    free(names);
    if (rc != SESLM_OK) return seslm_fail(rc, "ingest: out of memory");
    return SESLM_OK;
}

int seslm_ingest_n_read(const seslm_ingest *g) { return g->n_read; }
int seslm_ingest_n_skipped(const seslm_ingest *g) { return g->n_skips; }
int seslm_ingest_n_duplicates(const seslm_ingest *g) { return g->n_dups; }
seslm_ingest_skip seslm_ingest_duplicate(const seslm_ingest *g, int i) {
    seslm_ingest_skip r = {NULL, NULL};
    if (i >= 0 && i < g->n_dups) r.path = g->dups[i].path, r.reason = g->dups[i].reason;
    return r;
}
seslm_ingest_skip seslm_ingest_skipped(const seslm_ingest *g, int i) {
    return (seslm_ingest_skip){g->skips[i].path ? g->skips[i].path : "?", g->skips[i].reason ? g->skips[i].reason : "?"};
}
int seslm_ingest_n_notes(const seslm_ingest *g) { return g->n_notes; }
const char *seslm_ingest_note(const seslm_ingest *g, int i) { return g->notes[i]; }
uint64_t seslm_ingest_n_rejected(const seslm_ingest *g) { return g->n_rejected; }

const seslm_telemetry_view *seslm_ingest_view(const seslm_ingest *g) { return g->have ? &g->v : NULL; }

seslm_status seslm_ingest_write(const seslm_ingest *g, const char *path) {
    if (!g->have) return seslm_fail(SESLM_ERR_ARG, "ingest: no dump was merged, nothing to write to %s", path);
    seslm_dump_meta meta = {.node_id = g->node_id, .model_id = g->model_id, .seq = 1, .n_rejected = g->n_rejected};
    return seslm_telemetry_dump_write_path(&g->v, &meta, path);
}

cJSON *seslm_ingest_summary(const seslm_ingest *g) {
    cJSON *o = cJSON_CreateObject(), *sk = cJSON_CreateArray(), *notes = cJSON_CreateArray();
    if (!o || !sk || !notes) {
        cJSON_Delete(o), cJSON_Delete(sk), cJSON_Delete(notes);
        return NULL;
    }
    cJSON_AddNumberToObject(o, "files_read", g->n_read);
    cJSON_AddNumberToObject(o, "files_skipped", g->n_skips);
    for (int i = 0; i < g->n_skips; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "path", g->skips[i].path ? g->skips[i].path : "?");
        cJSON_AddStringToObject(e, "reason", g->skips[i].reason ? g->skips[i].reason : "?");
        cJSON_AddItemToArray(sk, e);
    }
    cJSON_AddItemToObject(o, "skipped", sk);
    cJSON_AddNumberToObject(o, "files_duplicate", g->n_dups);
    cJSON *du = cJSON_AddArrayToObject(o, "duplicates");
    for (int i = 0; du && i < g->n_dups; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "path", g->dups[i].path ? g->dups[i].path : "?");
        cJSON_AddStringToObject(e, "reason", g->dups[i].reason ? g->dups[i].reason : "?");
        cJSON_AddItemToArray(du, e);
    }
    for (int i = 0; i < g->n_notes; i++) cJSON_AddItemToArray(notes, cJSON_CreateString(g->notes[i]));
    cJSON_AddItemToObject(o, "notes", notes);
    if (g->have) {
        const seslm_telemetry_view *v = &g->v;
        cJSON_AddStringToObject(o, "model_sha256", g->sha);
        cJSON *t = cJSON_AddObjectToObject(o, "totals");
        // integers printed exactly (a double would round the nanosecond times)
        const struct {
            const char *k;
            long long v;
        } f[] = {{"n_requests", (long long)v->n_requests},     {"n_batches", (long long)v->n_batches},
                 {"n_sequences", (long long)v->n_sequences},   {"n_tokens", (long long)v->n_tokens},
                 {"n_rejected", (long long)g->n_rejected},     {"pairs_total", (long long)v->pairs_total},
                 {"reservoir_rows", v->n_reservoir},           {"reservoir_seen", (long long)v->reservoir_seen},
                 {"window_start_ns", v->window_start_ns},      {"window_end_ns", v->window_end_ns}};
        for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
            char buf[32];
            snprintf(buf, sizeof buf, "%lld", f[i].v);
            cJSON_AddRawToObject(t, f[i].k, buf);
        }
    }
    return o;
}
