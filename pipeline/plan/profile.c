/* profile.c — the structural profile of a telemetry window (profile.h). */
#include "profile.h"
#include "dump_identity.h"

#include "telemetry_hdf5.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

double seslm_profile_mean_seq_len(const seslm_telemetry_view *v) {
    return v->n_sequences ? (double)v->n_tokens / (double)v->n_sequences : 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

seslm_status seslm_profile_write_json(const seslm_telemetry_view *v, const seslm_policy *p, const seslm_tokenizer *tok,
                                      const char *path) {
    cJSON *r = cJSON_CreateObject();
    const double msl = seslm_profile_mean_seq_len(v);
    cJSON_AddStringToObject(r, "format", "seslm-profile");
    cJSON_AddNumberToObject(r, "version", 1);
    cJSON_AddStringToObject(r, "model_sha256", v->model_sha256 ? v->model_sha256 : "");
    cJSON_AddNumberToObject(r, "sequences", (double)v->n_sequences);
    cJSON_AddNumberToObject(r, "tokens", (double)v->n_tokens);
    cJSON_AddNumberToObject(r, "mean_seq_len", msl);
    cJSON *th = cJSON_AddObjectToObject(r, "thresholds");
    cJSON_AddNumberToObject(th, "dormant_rate", p->dormant_rate);
    cJSON_AddNumberToObject(th, "dormant_abs", p->dormant_abs);
    cJSON_AddNumberToObject(th, "uniform_entropy", p->uniform_entropy);
    cJSON_AddNumberToObject(th, "low_head_norm", p->low_head_norm);
    cJSON_AddNumberToObject(th, "rare_count", p->rare_count);
    cJSON *layers = cJSON_AddArrayToObject(r, "layers");
    const double uniform = msl > 1 ? log(msl) : 0;
    for (int l = 0; l < v->n_layers; l++) {
        const seslm_layer_telemetry *T = &v->layers[l];
        cJSON *lj = cJSON_CreateObject();
        cJSON_AddNumberToObject(lj, "layer", l);
        cJSON_AddNumberToObject(lj, "exec_count", (double)T->exec_count);
        cJSON_AddNumberToObject(lj, "mean_exec_ns", T->exec_count ? (double)T->exec_ns / (double)T->exec_count : 0);
        const double qt = T->query_tokens ? (double)T->query_tokens : 1, ft = T->ffn_tokens ? (double)T->ffn_tokens : 1;
        double *norms = malloc(((size_t)T->n_heads + 1) * sizeof(double)), median = 0;
        if (norms && T->n_heads) {
            for (int h = 0; h < T->n_heads; h++) norms[h] = T->head_out_norm[h] / qt;
            qsort(norms, (size_t)T->n_heads, sizeof(double), cmp_double);
            median = norms[T->n_heads / 2];
        }
        free(norms);
        cJSON *heads = cJSON_AddArrayToObject(lj, "heads");
        cJSON *low = cJSON_AddArrayToObject(lj, "low_contribution_heads");
        cJSON *uni = cJSON_AddArrayToObject(lj, "near_uniform_heads");
        for (int h = 0; h < T->n_heads; h++) {
            cJSON *hj = cJSON_CreateObject();
            double ent = T->head_entropy[h] / qt, norm = T->head_out_norm[h] / qt;
            cJSON_AddNumberToObject(hj, "head", h);
            cJSON_AddNumberToObject(hj, "mean_entropy", ent);
            cJSON_AddNumberToObject(hj, "entropy_vs_uniform", uniform > 0 ? ent / uniform : 0);
            cJSON_AddNumberToObject(hj, "mean_max_weight", T->head_max_weight[h] / qt);
            cJSON_AddNumberToObject(hj, "mean_out_norm", norm);
            cJSON_AddItemToArray(heads, hj);
            if (T->query_tokens && norm < p->low_head_norm * median) cJSON_AddItemToArray(low, cJSON_CreateNumber(h));
            if (T->query_tokens && uniform > 0 && ent >= p->uniform_entropy * uniform)
                cJSON_AddItemToArray(uni, cJSON_CreateNumber(h));
        }
        cJSON *dorm = cJSON_AddArrayToObject(lj, "dormant_neurons");
        double rate_sum = 0;
        for (int f = 0; f < T->ffn_dim; f++) {
            double rate = T->ffn_pos[f] / ft, mabs = T->ffn_abs[f] / ft;
            rate_sum += rate;
            if (T->ffn_tokens && (rate < p->dormant_rate || mabs < p->dormant_abs))
                cJSON_AddItemToArray(dorm, cJSON_CreateNumber(f));
        }
        cJSON_AddNumberToObject(lj, "mean_activation_rate", T->ffn_dim ? rate_sum / T->ffn_dim : 0);
        cJSON_AddNumberToObject(lj, "n_dormant_neurons", cJSON_GetArraySize(dorm));
        cJSON_AddItemToArray(layers, lj);
    }
    cJSON *voc = cJSON_AddObjectToObject(r, "vocabulary");
    int seen = 0, rare = 0;
    cJSON *rare_ids = cJSON_CreateArray();
    for (int i = 0; i < v->vocab_size; i++) {
        if (v->token_counts[i]) seen++;
        if (v->token_counts[i] < (uint64_t)p->rare_count) {
            rare++;
            cJSON_AddItemToArray(rare_ids, cJSON_CreateNumber(i));
        }
    }
    cJSON_AddNumberToObject(voc, "size", v->vocab_size);
    cJSON_AddNumberToObject(voc, "ids_seen", seen);
    cJSON_AddNumberToObject(voc, "rare_ids", rare);
    cJSON_AddStringToObject(voc, "note", "rare rows are compression candidates; ids are never removed");
    cJSON_AddItemToObject(voc, "rare_id_list", rare_ids);
    cJSON *pairs = cJSON_AddArrayToObject(r, "frequent_pairs");
    for (int i = 0; i < v->n_pairs && i < p->top_pairs; i++) {
        cJSON *pj = cJSON_CreateObject();
        cJSON_AddNumberToObject(pj, "first", v->pairs[i].first);
        cJSON_AddNumberToObject(pj, "second", v->pairs[i].second);
        if (tok) {
            const char *a = seslm_tokenizer_token(tok, (int32_t)v->pairs[i].first);
            const char *b = seslm_tokenizer_token(tok, (int32_t)v->pairs[i].second);
            cJSON_AddStringToObject(pj, "first_token", a ? a : "");
            cJSON_AddStringToObject(pj, "second_token", b ? b : "");
        }
        cJSON_AddNumberToObject(pj, "count", (double)v->pairs[i].count);
        cJSON_AddItemToArray(pairs, pj);
    }
    char *txt = cJSON_Print(r);
    cJSON_Delete(r);
    if (!txt) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    FILE *f = fopen(path, "w");
    int ok = f && fputs(txt, f) >= 0 && fputc('\n', f) != EOF;
    if (f) ok &= fclose(f) == 0;
    free(txt);
    return ok ? SESLM_OK : seslm_fail(SESLM_ERR_IO, "cannot write %s", path);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

#define ADDV(dst, src, n)                                                                                           \
    do {                                                                                                            \
        for (size_t i_ = 0; i_ < (size_t)(n); i_++) (dst)[i_] += (src)[i_];                                         \
    } while (0)

/* Adds the counters of b into a (the dump's own buffers: a is ours until freed). The sketch, heavy
 * hitters, reservoir and batch records stay a's (the newest window's). */
static seslm_status dump_add(seslm_telemetry_dump *a, const seslm_telemetry_dump *b, const char *bpath) {
    seslm_telemetry_view *x = &a->v;
    const seslm_telemetry_view *y = &b->v;
    if (x->vocab_size != y->vocab_size || x->n_layers != y->n_layers || x->hidden != y->hidden ||
        x->max_seq_len != y->max_seq_len)
        return seslm_fail(SESLM_ERR_SHAPE, "%s: a dump of a different model shape; cannot be summed", bpath);
    for (int l = 0; l < x->n_layers; l++) {
        const seslm_layer_telemetry *q = &y->layers[l];
        const seslm_layer_telemetry *p0 = &x->layers[l];
        if (p0->n_heads != q->n_heads || p0->ffn_dim != q->ffn_dim || p0->attn_dim != q->attn_dim)
            return seslm_fail(SESLM_ERR_SHAPE, "%s: layer %d has another structure; cannot be summed", bpath, l);
    }
    x->window_start_ns = y->window_start_ns < x->window_start_ns ? y->window_start_ns : x->window_start_ns;
    x->n_requests += y->n_requests, x->n_batches += y->n_batches, x->n_sequences += y->n_sequences;
    x->n_tokens += y->n_tokens, x->pairs_total += y->pairs_total;
    ADDV((uint64_t *)x->token_counts, y->token_counts, x->vocab_size);
    ADDV((uint64_t *)x->seq_len_hist, y->seq_len_hist, x->max_seq_len + 1);
    for (int l = 0; l < x->n_layers; l++) {
        seslm_layer_telemetry *p = (seslm_layer_telemetry *)&x->layers[l];
        const seslm_layer_telemetry *q = &y->layers[l];
        const int H = p->n_heads, A = p->attn_dim, F = p->ffn_dim, C = x->hidden;
        p->exec_count += q->exec_count, p->exec_ns += q->exec_ns;
        p->query_tokens += q->query_tokens, p->ffn_tokens += q->ffn_tokens;
        if (H) {
            ADDV(p->head_entropy, q->head_entropy, H);
            ADDV(p->head_max_weight, q->head_max_weight, H);
            ADDV(p->head_out_norm, q->head_out_norm, H);
            ADDV(p->in_sq_qkv, q->in_sq_qkv, C);
            ADDV(p->in_sq_attn_out, q->in_sq_attn_out, A);
        }
        if (F) {
            ADDV(p->ffn_pos, q->ffn_pos, F);
            ADDV(p->ffn_abs, q->ffn_abs, F);
            ADDV(p->ffn_sq, q->ffn_sq, F);
            ADDV(p->in_sq_ffn_in, q->in_sq_ffn_in, C);
        }
    }
    return SESLM_OK;
}

seslm_status seslm_profile_read_telemetry(const char *file_or_dir, const char *expected_sha256,
                                          seslm_telemetry_dump **out, char *path_out, size_t cap) {
    *out = NULL;
    struct stat sb;
    if (stat(file_or_dir, &sb) != 0) return seslm_fail(SESLM_ERR_IO, "cannot open %s", file_or_dir);
    if (!S_ISDIR(sb.st_mode)) {
        if (path_out && cap) snprintf(path_out, cap, "%s", file_or_dir);
        return seslm_telemetry_dump_read(file_or_dir, expected_sha256, out);
    }
    DIR *d = opendir(file_or_dir);
    if (!d) return seslm_fail(SESLM_ERR_IO, "cannot read directory %s", file_or_dir);
    char **names = NULL;
    size_t n = 0, ncap = 0;
    seslm_status st = SESLM_OK;
    for (struct dirent *de; st == SESLM_OK && (de = readdir(d));) {
        if (!seslm_telemetry_dump_is_final_name(de->d_name)) continue;
        if (n == ncap) {
            ncap = ncap ? 2 * ncap : 16;
            char **t = realloc(names, ncap * sizeof *names);
            if (!t) {
                st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
                break;
            }
            names = t;
        }
        if (!(names[n] = strdup(de->d_name))) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        else n++;
    }
    closedir(d);
    if (st == SESLM_OK && n == 0) st = seslm_fail(SESLM_ERR_IO, "%s: no telemetry dump (*.h5) in the directory", file_or_dir);
    if (st == SESLM_OK) qsort(names, n, sizeof *names, cmp_str);
    // the newest (greatest name: node, then window start) is the base; the others are added to it
    char path[4096];
    seslm_telemetry_dump *base = NULL;
    // the same window under two names (a copy) is summed once (dump_identity.h)
    seslm_dump_identity *ids = st == SESLM_OK ? calloc(n ? n : 1, sizeof *ids) : NULL;
    char **id_names = st == SESLM_OK ? calloc(n ? n : 1, sizeof *id_names) : NULL;
    size_t n_ids = 0, n_dup = 0;
    if (st == SESLM_OK && (!ids || !id_names)) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    for (size_t k = n; st == SESLM_OK && k-- > 0;) {
        snprintf(path, sizeof path, "%s/%s", file_or_dir, names[k]);
        seslm_telemetry_dump *dd = NULL;
        st = seslm_telemetry_dump_read(path, expected_sha256, &dd);
        if (st == SESLM_OK) st = seslm_dump_identity_of(path, dd, &ids[n_ids]);
        if (st != SESLM_OK) {
            seslm_telemetry_dump_free(dd);
            break;
        }
        char why[256];
        size_t j = 0;
        while (j < n_ids && !seslm_dump_identity_same(&ids[j], &ids[n_ids], why, sizeof why)) j++;
        if (j < n_ids) {
            fprintf(stderr, "seslm: telemetry: %s duplicates %s (%s): not counted twice\n", path, id_names[j], why);
            n_dup++;
            seslm_telemetry_dump_free(dd);
            continue;
        }
        id_names[n_ids++] = names[k];
        if (!base) base = dd;
        else {
            st = dump_add(base, dd, path);
            seslm_telemetry_dump_free(dd);
        }
    }
    for (size_t k = 0; k < n; k++) free(names[k]);
    free(names);
    free(ids);
    free(id_names);
    if (st != SESLM_OK) {
        seslm_telemetry_dump_free(base);
        return st;
    }
    if (path_out && cap) {
        if (n == 1) snprintf(path_out, cap, "%s", path);
        else if (n_dup) snprintf(path_out, cap, "%s (%zu dumps summed, %zu duplicates skipped)", file_or_dir, n - n_dup, n_dup);
        else snprintf(path_out, cap, "%s (%zu dumps summed)", file_or_dir, n);
    }
    *out = base;
    return SESLM_OK;
}
