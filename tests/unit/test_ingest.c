/* test_ingest.c — merging telemetry dumps (pipeline/ingest/ingest.c) on a tiny random model:
 *   - merging the dumps of traffic A and traffic B equals one dump of A then B for every additive
 *     field: request / batch / sequence / token counters, token counts, the length histogram, pairs_total,
 *     the count-min sketch, the heavy hitters (exact here: the sketch has no collisions and every pair
 *     is tracked), per-layer counters (exact) and float sums (to rounding), the batch log (A's then
 *     B's records), reservoir_seen; window start = min, end = max; n_rejected summed;
 *   - the reservoir after the merge has min(R, total) rows, each a row of one of the inputs' reservoirs
 *     (R below the total: R rows; above it: every input row exactly once), and over 100 merge seeds the
 *     share of rows from each input matches its share of the embeddings seen (a uniform sample);
 *   - the merged window written with the HDF5 writer reads back (schema 1, node id "merged") equal;
 *   - a directory with both dumps, a corrupt (truncated) dump, a dump of another model hash and a
 *     temporary file: the temporary file is ignored, the two bad dumps are skipped with their reasons
 *     (naming the file), the two good ones merged; a missing directory fails; nothing merged -> no view;
 *   - a dump whose sketch has another width is merged without its sketch, with a note. */
#include "ingest.h"
#include <cjson/cJSON.h>
#include "profile.h"
#include "telemetry_hdf5.h"
#include "test.h"
#include "tiny_runtime.h"

static char *g_root;

static int feed(const seslm_model *m, seslm_telemetry *t, int n, uint64_t seed) { return tr_feed_random(m, t, n, seed, 1); }


static int near(double a, double b) { return fabs(a - b) <= 1e-9 * (fabs(a) + fabs(b)) + 1e-12; }

static int row_in(const float *row, const float *res, int n, int C) {
    for (int i = 0; i < n; i++)
        if (memcmp(row, res + (size_t)i * C, (size_t)C * sizeof *row) == 0) return 1;
    return 0;
}

// every additive field of the merged view m equals the one-window view w (A then B)
static void check_additive(const seslm_telemetry_view *m, const seslm_telemetry_view *w,
                           const seslm_telemetry_view *a, const seslm_telemetry_view *b) {
    CHECK(m->n_requests == w->n_requests && m->n_batches == w->n_batches);
    CHECK(m->n_sequences == w->n_sequences && m->n_tokens == w->n_tokens);
    CHECK(memcmp(m->token_counts, w->token_counts, (size_t)w->vocab_size * 8) == 0);
    CHECK(memcmp(m->seq_len_hist, w->seq_len_hist, (size_t)(w->max_seq_len + 1) * 8) == 0);
    CHECK(m->pairs_total == w->pairs_total);
    CHECK(m->cms_width == w->cms_width && m->cms_depth == w->cms_depth && m->seed == w->seed);
    CHECK(memcmp(m->cms, w->cms, (size_t)w->cms_width * w->cms_depth * 4) == 0);
    CHECK_MSG(m->n_pairs == w->n_pairs, "%d heavy hitters merged, %d in one window", m->n_pairs, w->n_pairs);
    int same_pairs = m->n_pairs == w->n_pairs;
    for (int i = 0; same_pairs && i < m->n_pairs; i++)
        same_pairs = m->pairs[i].first == w->pairs[i].first && m->pairs[i].second == w->pairs[i].second &&
                     m->pairs[i].count == w->pairs[i].count;
    CHECK_MSG(same_pairs, "heavy hitters differ from one window's");
    CHECK(m->reservoir_seen == w->reservoir_seen && m->reservoir_seen == m->n_sequences);
    CHECK(m->n_batch_records == a->n_batch_records + b->n_batch_records);
    int lat = 1;
    for (int i = 0; i < m->n_batch_records && lat; i++) {
        const seslm_batch_record *x = &m->batches[i],
                                 *y = i < a->n_batch_records ? &a->batches[i] : &b->batches[i - a->n_batch_records];
        const seslm_batch_record *z = &w->batches[i];
        lat = memcmp(x, y, sizeof *x) == 0 && x->batch_size == z->batch_size && x->n_tokens == z->n_tokens;
    }
    CHECK_MSG(lat, "batch log is not A's records then B's");
    CHECK(m->window_start_ns == (a->window_start_ns < b->window_start_ns ? a->window_start_ns : b->window_start_ns));
    CHECK(m->window_end_ns == (a->window_end_ns > b->window_end_ns ? a->window_end_ns : b->window_end_ns));
    CHECK(m->peak_rss_bytes == (a->peak_rss_bytes > b->peak_rss_bytes ? a->peak_rss_bytes : b->peak_rss_bytes));
    CHECK(strcmp(m->model_sha256, w->model_sha256) == 0);
    int lay = 1;
    for (int l = 0; l < w->n_layers; l++) {
        const seslm_layer_telemetry *x = &m->layers[l], *y = &w->layers[l];
        CHECK(x->exec_count == y->exec_count && x->query_tokens == y->query_tokens && x->ffn_tokens == y->ffn_tokens);
        CHECK(x->exec_ns == a->layers[l].exec_ns + b->layers[l].exec_ns);
        for (int h = 0; h < x->n_heads; h++)
            lay &= near(x->head_entropy[h], y->head_entropy[h]) && near(x->head_max_weight[h], y->head_max_weight[h]) &&
                   near(x->head_out_norm[h], y->head_out_norm[h]);
        for (int f = 0; f < x->ffn_dim; f++)
            lay &= x->ffn_pos[f] == y->ffn_pos[f] && near(x->ffn_abs[f], y->ffn_abs[f]) && near(x->ffn_sq[f], y->ffn_sq[f]);
        for (int c = 0; c < w->hidden; c++)
            lay &= near(x->in_sq_qkv[c], y->in_sq_qkv[c]) && near(x->in_sq_ffn_in[c], y->in_sq_ffn_in[c]);
        for (int c = 0; c < x->attn_dim; c++) lay &= near(x->in_sq_attn_out[c], y->in_sq_attn_out[c]);
    }
    CHECK_MSG(lay, "per-layer sums differ from one window's");
}

static void write_view(const seslm_telemetry_view *v, const char *dir, const char *node, uint64_t rejected,
                       char *path, size_t cap) {
    seslm_dump_meta meta = {.node_id = node, .model_id = "tiny", .seq = 1, .n_rejected = rejected};
    CHECK_MSG(seslm_telemetry_dump_write(v, &meta, dir, path, cap) == SESLM_OK, "%s", seslm_last_error());
}

int main(void) {
    g_root = tm_mkdtemp("ingest");
    tm_model tm;
    tm_init(&tm, 5);
    char mdir[1024], ddir[1024], path_a[4096], path_b[4096], path_x[4096];
    snprintf(mdir, sizeof mdir, "%s/model", g_root);
    snprintf(ddir, sizeof ddir, "%s/dumps", g_root);
    mkdir(mdir, 0755);
    mkdir(ddir, 0755);
    CHECK(tm_write(&tm, mdir, NULL));
    seslm_model *m = NULL;
    CHECK_MSG(seslm_model_load(&m, mdir) == SESLM_OK, "%s", seslm_last_error());
    if (!m) return test_report("test_ingest");
    const char *sha = seslm_model_weights_sha256(m);
    const int C = seslm_model_get_config(m)->hidden;

    // traffic A, traffic B, and A then B in one window; every pair tracked, wide sketch
    seslm_telemetry_opts o = {.cms_width = 65536, .cms_depth = 4, .top_pairs = 4096, .reservoir = 16, .seed = 9};
    seslm_telemetry *ta = NULL, *tb = NULL, *tw = NULL;
    CHECK(seslm_telemetry_new(&ta, m, &o) == SESLM_OK && seslm_telemetry_new(&tb, m, &o) == SESLM_OK &&
          seslm_telemetry_new(&tw, m, &o) == SESLM_OK);
    if (!ta || !tb || !tw) return test_report("test_ingest");
    int na = feed(m, ta, 9, 101), nb = feed(m, tb, 7, 202);
    feed(m, tw, 9, 101);
    feed(m, tw, 7, 202);
    CHECK(na > 16 && nb > 16);
    seslm_telemetry_view va, vb, vw;
    seslm_telemetry_snapshot(ta, &va);
    seslm_telemetry_snapshot(tb, &vb);
    seslm_telemetry_snapshot(tw, &vw);
    write_view(&va, ddir, "node-a", 2, path_a, sizeof path_a);
    write_view(&vb, ddir, "node-b", 3, path_b, sizeof path_b);

    // ---- two files: merged == one window ----
    seslm_ingest *g = NULL;
    CHECK(seslm_ingest_new(&g, &(seslm_ingest_opts){.expected_sha256 = sha, .reservoir = 16}) == SESLM_OK);
    CHECK(seslm_ingest_view(g) == NULL);
    CHECK(seslm_ingest_add_file(g, path_a) == SESLM_OK);
    CHECK(seslm_ingest_add_file(g, path_b) == SESLM_OK);
    CHECK(seslm_ingest_n_read(g) == 2 && seslm_ingest_n_skipped(g) == 0 && seslm_ingest_n_notes(g) == 0);
    CHECK(seslm_ingest_n_rejected(g) == 5);
    const seslm_telemetry_view *mv = seslm_ingest_view(g);
    CHECK(mv != NULL);
    if (mv) {
        check_additive(mv, &vw, &va, &vb);
        // reservoir: min(R, total) = 16 rows, each from A's or B's reservoir, none twice
        CHECK(mv->n_reservoir == 16);
        int from = 1, dup = 0;
        for (int i = 0; i < mv->n_reservoir; i++) {
            const float *row = mv->reservoir + (size_t)i * C;
            from &= row_in(row, va.reservoir, va.n_reservoir, C) || row_in(row, vb.reservoir, vb.n_reservoir, C);
            dup |= row_in(row, mv->reservoir, i, C);
        }
        CHECK_MSG(from && !dup, "merged reservoir rows: from inputs %d, duplicates %d", from, dup);
        // write, read back
        char out[4096];
        snprintf(out, sizeof out, "%s/merged.h5", g_root);
        CHECK_MSG(seslm_ingest_write(g, out) == SESLM_OK, "%s", seslm_last_error());
        CHECK(seslm_ingest_write(g, out) != SESLM_OK); // never replaced
        seslm_telemetry_dump *d = NULL;
        CHECK_MSG(seslm_telemetry_dump_read(out, sha, &d) == SESLM_OK, "%s", seslm_last_error());
        if (d) {
            CHECK(d->schema_version == 1 && strcmp(d->meta.node_id, "merged") == 0 && d->meta.n_rejected == 5);
            CHECK(strcmp(d->meta.model_id, "tiny") == 0);
            check_additive(&d->v, &vw, &va, &vb);
            CHECK(d->v.n_reservoir == 16 && memcmp(d->v.reservoir, mv->reservoir, (size_t)16 * C * 4) == 0);
            seslm_telemetry_dump_free(d);
        }
    }
    seslm_ingest_free(g);

    // ---- the same window twice is counted once (issue 14): the same path twice, a byte copy under another
    // name, a re-write of the same node / sequence / window; reported as duplicates, the totals those of A ----
    {
        char d2[1200], d3[1200], copy[4400], cmd[16384], rew[4096];
        snprintf(d2, sizeof d2, "%s/dup", g_root);
        snprintf(d3, sizeof d3, "%s/dup-rewrite", g_root);
        mkdir(d2, 0755);
        mkdir(d3, 0755);
        const char *base = strrchr(path_a, '/') + 1; // "node-a-<time>-<seq>.h5" -> "node-c-<time>-<seq>.h5"
        snprintf(copy, sizeof copy, "%s/node-c%s", d2, base + strlen("node-a"));
        snprintf(cmd, sizeof cmd, "cp '%s' '%s' && cp '%s' '%s/'", path_a, copy, path_a, d2);
        CHECK(system(cmd) == 0);
        write_view(&va, d3, "node-a", 2, rew, sizeof rew);
        g = NULL;
        CHECK(seslm_ingest_new(&g, &(seslm_ingest_opts){.expected_sha256 = sha, .reservoir = 16}) == SESLM_OK);
        CHECK(seslm_ingest_add_file(g, path_a) == SESLM_OK);
        CHECK(seslm_ingest_add_file(g, path_a) == SESLM_OK);
        CHECK(seslm_ingest_add_file(g, copy) == SESLM_OK);
        CHECK(seslm_ingest_add_file(g, rew) == SESLM_OK);
        CHECK(seslm_ingest_n_read(g) == 1 && seslm_ingest_n_duplicates(g) == 3 && seslm_ingest_n_skipped(g) == 0);
        CHECK(strstr(seslm_ingest_duplicate(g, 0).reason, "identical bytes") != NULL);
        CHECK(strstr(seslm_ingest_duplicate(g, 2).reason, "same node 'node-a'") != NULL ||
              strstr(seslm_ingest_duplicate(g, 2).reason, "identical bytes") != NULL);
        CHECK(strcmp(seslm_ingest_duplicate(g, 1).path, copy) == 0);
        const seslm_telemetry_view *dv = seslm_ingest_view(g);
        CHECK(dv && dv->n_sequences == va.n_sequences && dv->n_tokens == va.n_tokens && dv->n_requests == va.n_requests);
        if (dv) CHECK(memcmp(dv->token_counts, va.token_counts, (size_t)va.vocab_size * 8) == 0);
        cJSON *j = seslm_ingest_summary(g);
        CHECK(j && cJSON_GetObjectItem(j, "files_duplicate") && cJSON_GetObjectItem(j, "files_duplicate")->valueint == 3);
        cJSON_Delete(j);
        seslm_ingest_free(g);
        // a directory of the dump and its copy: ingest and the planner's reader both count A once
        g = NULL;
        CHECK(seslm_ingest_new(&g, &(seslm_ingest_opts){.expected_sha256 = sha, .reservoir = 16}) == SESLM_OK);
        CHECK(seslm_ingest_add_dir(g, d2) == SESLM_OK);
        CHECK(seslm_ingest_n_read(g) == 1 && seslm_ingest_n_duplicates(g) == 1);
        seslm_ingest_free(g);
        seslm_telemetry_dump *pd = NULL;
        char pp[4400];
        CHECK_MSG(seslm_profile_read_telemetry(d2, sha, &pd, pp, sizeof pp) == SESLM_OK, "%s", seslm_last_error());
        CHECK(pd && pd->v.n_sequences == va.n_sequences && pd->v.n_tokens == va.n_tokens);
        CHECK(strstr(pp, "1 duplicates skipped") != NULL);
        seslm_telemetry_dump_free(pd);
    }

    // ---- uniformity: over many merge seeds, the rows taken from A average R * seenA / (seenA + seenB) ----
    {
        double from_a = 0;
        const int runs = 100;
        for (int r = 0; r < runs; r++) {
            CHECK(seslm_ingest_new(&g, &(seslm_ingest_opts){.expected_sha256 = sha, .reservoir = 16,
                                                            .seed = 1000 + (uint64_t)r}) == SESLM_OK);
            seslm_ingest_add_file(g, path_a);
            seslm_ingest_add_file(g, path_b);
            mv = seslm_ingest_view(g);
            for (int i = 0; mv && i < mv->n_reservoir; i++)
                from_a += row_in(mv->reservoir + (size_t)i * C, va.reservoir, va.n_reservoir, C);
            seslm_ingest_free(g);
        }
        from_a /= runs;
        const double want = 16.0 * na / (na + nb);
        CHECK_MSG(fabs(from_a - want) < 0.8, "rows from A: %.2f on average, expected %.2f", from_a, want);
    }

    // ---- reservoir larger than the total: every input row exactly once ----
    {
        seslm_telemetry *s1 = NULL, *s2 = NULL;
        CHECK(seslm_telemetry_new(&s1, m, &o) == SESLM_OK && seslm_telemetry_new(&s2, m, &o) == SESLM_OK);
        feed(m, s1, 2, 7);
        feed(m, s2, 2, 8);
        seslm_telemetry_view v1, v2;
        seslm_telemetry_snapshot(s1, &v1);
        seslm_telemetry_snapshot(s2, &v2);
        char sdir[4096], p1[4096], p2[4096];
        snprintf(sdir, sizeof sdir, "%s/small", g_root);
        mkdir(sdir, 0755);
        write_view(&v1, sdir, "s1", 0, p1, sizeof p1);
        write_view(&v2, sdir, "s2", 0, p2, sizeof p2);
        CHECK(seslm_ingest_new(&g, &(seslm_ingest_opts){.expected_sha256 = sha, .reservoir = 64}) == SESLM_OK);
        CHECK(seslm_ingest_add_dir(g, sdir) == SESLM_OK && seslm_ingest_n_read(g) == 2);
        mv = seslm_ingest_view(g);
        const int total = (int)(v1.reservoir_seen + v2.reservoir_seen);
        CHECK(total < 64 && v1.n_reservoir + v2.n_reservoir == total);
        CHECK_MSG(mv && mv->n_reservoir == total, "%d rows, expected %d", mv ? mv->n_reservoir : -1, total);
        int all = 1;
        for (int i = 0; mv && i < v1.n_reservoir; i++) all &= row_in(v1.reservoir + (size_t)i * C, mv->reservoir, mv->n_reservoir, C);
        for (int i = 0; mv && i < v2.n_reservoir; i++) all &= row_in(v2.reservoir + (size_t)i * C, mv->reservoir, mv->n_reservoir, C);
        CHECK(all);
        seslm_ingest_free(g);
        seslm_telemetry_free(s1);
        seslm_telemetry_free(s2);
    }

    // ---- a directory with a corrupt dump, a foreign dump and a temporary file ----
    {
        // truncated copy of A
        FILE *f = fopen(path_a, "rb");
        char buf[8192];
        size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
        if (f) fclose(f);
        snprintf(path_x, sizeof path_x, "%s/corrupt-20260101T000000.000Z-000001.h5", ddir);
        CHECK(n == sizeof buf && tm_write_bytes(path_x, buf, n));
        // another model hash
        seslm_telemetry_view vf = va;
        vf.model_sha256 = "0000000000000000000000000000000000000000000000000000000000000000";
        char path_f[4096];
        write_view(&vf, ddir, "foreign", 0, path_f, sizeof path_f);
        // a temporary file: not a final name, never read
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s/.node-a-x.h5.tmp.123", ddir);
        CHECK(tm_write_bytes(tmp, "junk", 4));
        CHECK(seslm_ingest_new(&g, &(seslm_ingest_opts){.expected_sha256 = sha, .reservoir = 16}) == SESLM_OK);
        CHECK_MSG(seslm_ingest_add_dir(g, ddir) == SESLM_OK, "%s", seslm_last_error());
        CHECK(seslm_ingest_n_read(g) == 2 && seslm_ingest_n_skipped(g) == 2);
        int saw_corrupt = 0, saw_foreign = 0;
        for (int i = 0; i < seslm_ingest_n_skipped(g); i++) {
            seslm_ingest_skip s = seslm_ingest_skipped(g, i);
            CHECK_MSG(strstr(s.reason, s.path) != NULL, "reason does not name the file: %s", s.reason);
            saw_corrupt |= strcmp(s.path, path_x) == 0;
            saw_foreign |= strcmp(s.path, path_f) == 0 && strstr(s.reason, "0000000000") != NULL;
        }
        CHECK(saw_corrupt && saw_foreign);
        mv = seslm_ingest_view(g);
        if (mv) check_additive(mv, &vw, &va, &vb);
        seslm_ingest_free(g);
        // a missing directory fails; a directory of only bad files merges nothing
        CHECK(seslm_ingest_new(&g, NULL) == SESLM_OK);
        char nodir[4096];
        snprintf(nodir, sizeof nodir, "%s/nope", g_root);
        CHECK(seslm_ingest_add_dir(g, nodir) == SESLM_ERR_IO && strstr(seslm_last_error(), nodir));
        CHECK(seslm_ingest_add_file(g, path_x) != SESLM_OK);
        CHECK(seslm_ingest_view(g) == NULL && seslm_ingest_n_skipped(g) == 1);
        CHECK(seslm_ingest_write(g, nodir) == SESLM_ERR_ARG);
        seslm_ingest_free(g);
    }

    // ---- another sketch size: merged without its sketch, noted ----
    {
        seslm_telemetry_opts o2 = o;
        o2.cms_width = 1024;
        seslm_telemetry *tc = NULL;
        CHECK(seslm_telemetry_new(&tc, m, &o2) == SESLM_OK);
        feed(m, tc, 3, 303);
        seslm_telemetry_view vc;
        seslm_telemetry_snapshot(tc, &vc);
        char cdir[4096], pc[4096];
        snprintf(cdir, sizeof cdir, "%s/cms", g_root);
        mkdir(cdir, 0755);
        write_view(&vc, cdir, "c", 0, pc, sizeof pc);
        CHECK(seslm_ingest_new(&g, &(seslm_ingest_opts){.expected_sha256 = sha}) == SESLM_OK);
        CHECK(seslm_ingest_add_file(g, path_a) == SESLM_OK && seslm_ingest_add_file(g, pc) == SESLM_OK);
        CHECK(seslm_ingest_n_read(g) == 2 && seslm_ingest_n_notes(g) == 1);
        CHECK(seslm_ingest_n_notes(g) == 1 && strstr(seslm_ingest_note(g, 0), "count-min sketch") != NULL);
        mv = seslm_ingest_view(g);
        CHECK(mv && mv->n_tokens == va.n_tokens + vc.n_tokens && mv->cms_width == 65536);
        CHECK(mv && memcmp(mv->cms, va.cms, (size_t)va.cms_width * va.cms_depth * 4) == 0);
        seslm_ingest_free(g);
        seslm_telemetry_free(tc);
    }

    seslm_telemetry_free(ta);
    seslm_telemetry_free(tb);
    seslm_telemetry_free(tw);
    seslm_model_free(m);
    tm_free(&tm);
    tm_rmtree(g_root);
    free(g_root);
    return test_report("test_ingest");
}
