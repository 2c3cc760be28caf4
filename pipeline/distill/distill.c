/* distill.c — the distillation trainer (distill.h): data, parent targets, the step loop (AdamW,
 * warm-up + cosine schedule, global-norm clipping), crash-safe checkpoints, and the distilled model's
 * files.
 *
 * Determinism: the batch of step t is drawn from a generator seeded by (seed, t) alone, the parent's
 * targets are recomputed identically, and a checkpoint holds the step, the trained parameters and both
 * Adam moments — so a run killed at any point and resumed computes the same numbers as an uninterrupted
 * one (with the same thread count: BLAS sums in a thread-dependent order).
 *
 * Memory bound: parameters + gradients (whole model) + 2 Adam moments (trained part) + the activations of
 * one batch of the student and, with the attention loss, of the parent (dmodel.h: (2C + 4A_l + F_l)
 * floats per token and layer) + the parent's cached embeddings (2C floats per sentence). */
#include "distill.h"
#include "progress.h"

#include "dmodel.h"
#include "distill_loss.h"
#include "calibrate.h"
#include "model_internal.h"
#include "safetensors_write.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void distill_opts_default(distill_opts *o) {
    memset(o, 0, sizeof *o);
    o->steps = 300;
    o->batch = 32;
    o->threads = 0;
    o->max_tokens = 64;
    o->lr = 3e-4f;
    o->weight_decay = 0.01f;
    o->warmup_frac = 0.06f;
    o->clip_norm = 1.0f;
    o->w_emb_cos = 1.0f;
    o->w_emb_mse = 1.0f;
    o->w_sim = 0.0f; // measured: costs held-out cosine at a fixed step count (docs/distill.md)
    o->w_attn = 0.0f;
    o->seed = 13;
    o->time_budget_s = 0;
    o->progress = 1;
    o->device = "cpu";
    o->general_frac = 0.25;
    o->holdout_frac = 0.1;
    o->checkpoint_every = 50;
    o->augment_frac = 0.5;
    o->lr_gap = 0.05;
}

// The peak learning rate for a student whose held-out cosine to its parent starts at cos0.
static float lr_peak_for(const distill_opts *o, double cos0) {
    if (!(o->lr_gap > 0) || !isfinite(cos0)) return o->lr;
    double f = (1.0 - cos0) / o->lr_gap;
    f = f < 0.1 ? 0.1 : f > 1 ? 1 : f;
    return (float)(o->lr * f);
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 0x100000001B3ull;
    return h;
}

// ---- the sentences -------------------------------------------------------------------------------

typedef struct {
    int n;
    int32_t **ids;
    int *len;
} token_set;

static void token_set_free(token_set *t) {
    for (int i = 0; i < t->n; i++) free(t->ids[i]);
    free(t->ids), free(t->len);
    memset(t, 0, sizeof *t);
}

/* Tokenizes the non-empty lines of path (at most max_lines), truncated to max_tokens keeping [SEP].
 * Lines the tokenizer refuses (invalid UTF-8) are skipped and counted in *skipped. */
static seslm_status token_set_read(token_set *t, const seslm_tokenizer *tok, const char *path, int max_lines,
                                   int max_tokens, int *skipped, uint64_t *hash) {
    memset(t, 0, sizeof *t);
    char **lines = NULL;
    int n = 0;
    seslm_status st = seslm_lines_read(path, max_lines, &lines, &n);
    if (st != SESLM_OK) return st;
    t->ids = calloc((size_t)n + 1, sizeof *t->ids);
    t->len = calloc((size_t)n + 1, sizeof *t->len);
    int32_t *buf = malloc(8192 * sizeof(int32_t));
    if (!t->ids || !t->len || !buf) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    *skipped = 0;
    for (int i = 0; st == SESLM_OK && i < n; i++) {
        int nid = 0;
        if (hash) *hash = fnv1a(*hash, lines[i], strlen(lines[i]) + 1);
        if (seslm_tokenizer_encode(tok, lines[i], strlen(lines[i]), buf, 8192, &nid) != SESLM_OK || nid < 2) {
            (*skipped)++;
            continue;
        }
        if (nid > max_tokens) buf[max_tokens - 1] = buf[nid - 1], nid = max_tokens;
        if (!(t->ids[t->n] = malloc((size_t)nid * sizeof(int32_t)))) {
            st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
            break;
        }
        memcpy(t->ids[t->n], buf, (size_t)nid * sizeof(int32_t));
        t->len[t->n++] = nid;
    }
    free(buf);
    seslm_lines_free(lines, n);
    if (st != SESLM_OK) token_set_free(t);
    return st;
}

// ---- the run's state -----------------------------------------------------------------------------

typedef struct {
    const distill_opts *o;
    const seslm_backend *be;
    seslm_model *pm, *sm;       // parent, student
    dm_model P, S;
    dm_acts as, ap;             // student / parent activations (ap only with the attention loss)
    int have_ap;
    token_set cal, gen;
    int *train, n_train, *hold, n_hold; // indices into cal
    float *p_emb, *p_pool;      // (cal.n + gen.n, C) parent targets: calibration rows first
    int maxtok;
    int32_t *aug_ids;           // (batch, maxtok) augmented views of this step's rows
    float *grad, *m, *v;        // grad (n_params); m, v (n_params - train_begin)
    float *demb, *dpool, *dqkv, *bt_emb, *bt_pool;
    float **dhid, *hs, *hp;     // hidden-state loss: per student layer (Ntok, C) gradients; two work rows
    int step, steps_eff;
    double loss_first, loss_last;
    float *wsave;               // (n trained) the F32 master while the student runs INT8-rounded (NULL: never)
    float *best;                // (n trained) the parameters with the best held-out cosine so far
    double best_cos;            // its held-out cosine (the student's own at the start)
    float lr_peak;              // the schedule's peak (opts lr scaled by the starting gap)
    int best_step;
    uint64_t run_key;
    char ckpt_dir[4096], ckpt_path[4200];
} run;

static int fail(char *err, size_t errlen, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

/* Forward of dm over sentences idx[0..n) of set in batches; writes emb / pooled rows (n, C). */
static void embed_set(const dm_model *dm, const seslm_backend *be, dm_acts *a, const token_set *set, const int *idx, int n,
                      int batch, float *emb, float *pool) {
    const int C = dm->C;
    for (int i0 = 0; i0 < n; i0 += batch) {
        const int nb = i0 + batch < n ? batch : n - i0;
        const int32_t *rows[4096];
        int lens[4096];
        for (int b = 0; b < nb; b++) {
            const int k = idx ? idx[i0 + b] : i0 + b;
            rows[b] = set->ids[k], lens[b] = set->len[k];
        }
        dm_forward(dm, be, a, rows, lens, nb);
        memcpy(emb + (size_t)i0 * C, a->emb, (size_t)nb * C * sizeof(float));
        if (pool) memcpy(pool + (size_t)i0 * C, a->pooled, (size_t)nb * C * sizeof(float));
    }
}

/* The INT8-aware phase: the student's weights rounded to INT8 (the F32 master saved in wsave) and its
 * activations rounded per token in the forward pass, as the quantized student will compute; int8_end
 * restores the master, which the optimiser updates with the gradients of the rounded model (STE). */
static void int8_begin(run *r) {
    const size_t off = r->S.train_begin, n = r->S.n_params - off;
    memcpy(r->wsave, r->S.params + off, n * sizeof(float));
    dm_fake_quant_weights(&r->S);
    r->S.fq_act = r->o->int8_act_token ? 1 : 2; // as the shipped student's INT8 layers will round (quant.h)
}

static void int8_end(run *r) {
    const size_t off = r->S.train_begin, n = r->S.n_params - off;
    memcpy(r->S.params + off, r->wsave, n * sizeof(float));
    r->S.fq_act = 0;
}

/* Mean cosine of the student to the parent's cached embeddings over the held-out sentences (the
 * INT8-rounded student when it will ship INT8). */
static double holdout_cos(run *r) {
    const int C = r->S.C;
    if (r->n_hold == 0) return NAN;
    float *e = malloc((size_t)r->n_hold * C * sizeof(float));
    if (!e) return NAN;
    if (r->wsave) int8_begin(r);
    embed_set(&r->S, r->be, &r->as, &r->cal, r->hold, r->n_hold, r->o->batch, e, NULL);
    if (r->wsave) int8_end(r);
    double s = 0;
    for (int i = 0; i < r->n_hold; i++) {
        const float *p = r->p_emb + (size_t)r->hold[i] * C;
        double d = 0;
        for (int c = 0; c < C; c++) d += (double)e[(size_t)i * C + c] * p[c];
        s += d;
    }
    free(e);
    return s / r->n_hold;
}

// ---- checkpoints ---------------------------------------------------------------------------------

typedef struct {
    char magic[8];      // "SESLMDC1"
    uint64_t run_key;   // what the run computes (models, data, options): a resume must match it
    int32_t step, steps_eff;
    uint64_t n_train;   // trained floats
    double loss_first, loss_last;
    double best_cos;
    int32_t best_step, pad;
    uint64_t body_hash; // FNV-1a of the four arrays
} ckpt_header;

static seslm_status write_all(int fd, const void *p, size_t n, const char *path) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return seslm_fail(SESLM_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        c += w, n -= (size_t)w;
    }
    return SESLM_OK;
}

/* temp file + fsync + rename + fsync of the directory: a kill at any point leaves the previous
 * checkpoint or the new one. */
static seslm_status ckpt_save(run *r) {
    const size_t off = r->S.train_begin, n = r->S.n_params - off;
    ckpt_header h = {.run_key = r->run_key, .step = r->step, .steps_eff = r->steps_eff, .n_train = n,
                     .loss_first = r->loss_first, .loss_last = r->loss_last, .best_cos = r->best_cos,
                     .best_step = r->best_step};
    memcpy(h.magic, "SESLMDC2", 8);
    uint64_t hh = 0xCBF29CE484222325ull;
    hh = fnv1a(hh, r->S.params + off, n * sizeof(float));
    hh = fnv1a(hh, r->m, n * sizeof(float));
    hh = fnv1a(hh, r->v, n * sizeof(float));
    hh = fnv1a(hh, r->best, n * sizeof(float));
    h.body_hash = hh;
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s/state.bin.tmp", r->ckpt_dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return seslm_fail(SESLM_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    seslm_status st = write_all(fd, &h, sizeof h, tmp);
    if (st == SESLM_OK) st = write_all(fd, r->S.params + off, n * sizeof(float), tmp);
    if (st == SESLM_OK) st = write_all(fd, r->m, n * sizeof(float), tmp);
    if (st == SESLM_OK) st = write_all(fd, r->v, n * sizeof(float), tmp);
    if (st == SESLM_OK) st = write_all(fd, r->best, n * sizeof(float), tmp);
    if (st == SESLM_OK && fsync(fd) != 0) st = seslm_fail(SESLM_ERR_IO, "fsync %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && st == SESLM_OK) st = seslm_fail(SESLM_ERR_IO, "close %s: %s", tmp, strerror(errno));
    if (st == SESLM_OK && rename(tmp, r->ckpt_path) != 0)
        st = seslm_fail(SESLM_ERR_IO, "rename %s: %s", tmp, strerror(errno));
    if (st == SESLM_OK) st = st_fsync_dir(r->ckpt_dir);
    if (st != SESLM_OK) unlink(tmp);
    return st;
}

/* 1: resumed; 0: no checkpoint; -1: a checkpoint that does not belong to this run, or damaged (message). */
static int ckpt_load(run *r) {
    FILE *f = fopen(r->ckpt_path, "rb");
    if (!f) return 0;
    const size_t off = r->S.train_begin, n = r->S.n_params - off;
    ckpt_header h;
    int ok = fread(&h, sizeof h, 1, f) == 1 && memcmp(h.magic, "SESLMDC2", 8) == 0;
    if (!ok) {
        fclose(f);
        seslm_fail(SESLM_ERR_FORMAT, "%s is not a distillation checkpoint", r->ckpt_path);
        return -1;
    }
    if (h.run_key != r->run_key || h.n_train != n) {
        fclose(f);
        seslm_fail(SESLM_ERR_ARG, "%s belongs to another run (different models, data or options); remove it to start "
                                  "over, or rerun with the same options to resume", r->ckpt_path);
        return -1;
    }
    float *p = malloc(n * sizeof(float));
    ok = p && fread(p, sizeof(float), n, f) == n && fread(r->m, sizeof(float), n, f) == n &&
         fread(r->v, sizeof(float), n, f) == n && fread(r->best, sizeof(float), n, f) == n;
    fclose(f);
    uint64_t hh = 0xCBF29CE484222325ull;
    if (ok) {
        hh = fnv1a(hh, p, n * sizeof(float));
        hh = fnv1a(hh, r->m, n * sizeof(float));
        hh = fnv1a(hh, r->v, n * sizeof(float));
        hh = fnv1a(hh, r->best, n * sizeof(float));
    }
    if (!ok || hh != h.body_hash) {
        free(p);
        memset(r->m, 0, n * sizeof(float)), memset(r->v, 0, n * sizeof(float));
        seslm_fail(SESLM_ERR_FORMAT, "%s is truncated or damaged; remove it to start over", r->ckpt_path);
        return -1;
    }
    memcpy(r->S.params + off, p, n * sizeof(float));
    free(p);
    r->step = h.step, r->steps_eff = h.steps_eff, r->loss_first = h.loss_first, r->loss_last = h.loss_last;
    r->best_cos = h.best_cos, r->best_step = h.best_step;
    return 1;
}

// ---- one step ------------------------------------------------------------------------------------

static float lr_at(const distill_opts *o, float peak, int step, int total) {
    const int warm = (int)(o->warmup_frac * total);
    if (step < warm) return peak * (float)(step + 1) / (float)warm;
    const double t = total > warm ? (double)(step - warm) / (double)(total - warm) : 1.0;
    return (float)(peak * 0.5 * (1.0 + cos(M_PI * (t < 1 ? t : 1)))); // cosine down to 0
}

/* 1 where weight decay applies (the matrices), 0 for biases, LayerNorms. */
static int decays(const dm_model *dm, size_t i) {
    for (int l = 0; l < dm->L; l++) {
        const dm_layer *y = &dm->ly[l];
        const size_t C = (size_t)dm->C, A = (size_t)y->A, F = (size_t)y->F;
        if ((i >= y->qkv_w && i < y->qkv_w + 3 * A * C) || (i >= y->ao_w && i < y->ao_w + C * A) ||
            (i >= y->ff1_w && i < y->ff1_w + F * C) || (i >= y->ff2_w && i < y->ff2_w + C * F))
            return 1;
    }
    return 0;
}

/* One augmented view of sentence k of set (its training rows: pick[0..npick), NULL = all) into out (room
 * for r->maxtok ids); returns its length. Views stay inside the text's vocabulary and shape: the parent
 * labels them in the step, so the student sees many more inputs than the sample holds (TinyBERT's
 * augmentation, on token ids instead of words). ids[0] / ids[n-1] are [CLS] / [SEP] and are kept. */
static int augment_view(const run *r, const token_set *set, const int *pick, int npick, int k, uint64_t *rs, int32_t *out) {
    const int32_t *a = set->ids[k];
    const int na = set->len[k], ia = na - 2, room = r->maxtok - 2; // inner tokens
#define PICK() (pick ? pick[splitmix64(rs) % (uint64_t)npick] : (int)(splitmix64(rs) % (uint64_t)npick))
    int n = 0;
    out[n++] = a[0];
    const int op = (int)(splitmix64(rs) % 3);
    if (op == 1) { // splice: a prefix of this sentence + a suffix of another
        const int k2 = PICK();
        const int32_t *b = set->ids[k2];
        const int ib = set->len[k2] - 2;
        const int pa = ia > 0 ? 1 + (int)(splitmix64(rs) % (uint64_t)ia) : 0;
        const int sb = ib > 0 ? (int)(splitmix64(rs) % (uint64_t)ib) : 0;
        for (int i = 0; i < pa && n - 1 < room; i++) out[n++] = a[1 + i];
        for (int i = sb; i < ib && n - 1 < room; i++) out[n++] = b[1 + i];
    } else if (op == 2 && ia >= 2) { // delete a span of up to half the inner tokens
        const int dl = 1 + (int)(splitmix64(rs) % (uint64_t)(ia / 2));
        const int d0 = (int)(splitmix64(rs) % (uint64_t)(ia - dl + 1));
        for (int i = 0; i < ia && n - 1 < room; i++)
            if (i < d0 || i >= d0 + dl) out[n++] = a[1 + i];
    } else { // replace 15% of the inner tokens by tokens drawn from the same text (its unigram law)
        for (int i = 0; i < ia && n - 1 < room; i++) {
            int32_t t = a[1 + i];
            if (splitmix64(rs) % 100 < 15) {
                const int k2 = PICK();
                const int i2 = set->len[k2] - 2;
                if (i2 > 0) t = set->ids[k2][1 + (int)(splitmix64(rs) % (uint64_t)i2)];
            }
            out[n++] = t;
        }
    }
#undef PICK
    if (n == 1 && ia > 0) out[n++] = a[1]; // never an empty sentence
    out[n++] = a[na - 1];
    return n;
}

static double train_step(run *r, char *decay_flags, dl_parts *parts_out) {
    const distill_opts *o = r->o;
    dm_model *S = &r->S;
    const int C = S->C, B = o->batch;
    uint64_t rs = o->seed * 0x9E3779B97F4A7C15ull ^ (uint64_t)(r->step + 1) * 0xD1B54A32D192ED03ull;
    const int n_gen = r->gen.n > 0 ? (int)(B * o->general_frac + 0.5) : 0;
    const int32_t *rows[4096];
    int lens[4096], tidx[4096];
    for (int b = 0; b < B; b++) { // calibration rows (tidx into cal) then general rows (cal.n + k)
        if (b < B - n_gen || n_gen == 0) {
            const int k = r->train[splitmix64(&rs) % (uint64_t)r->n_train];
            rows[b] = r->cal.ids[k], lens[b] = r->cal.len[k], tidx[b] = k;
        } else {
            const int k = (int)(splitmix64(&rs) % (uint64_t)r->gen.n);
            rows[b] = r->gen.ids[k], lens[b] = r->gen.len[k], tidx[b] = r->cal.n + k;
        }
    }
    for (int b = 0; b < B; b++) {
        memcpy(r->bt_emb + (size_t)b * C, r->p_emb + (size_t)tidx[b] * C, (size_t)C * sizeof(float));
        memcpy(r->bt_pool + (size_t)b * C, r->p_pool + (size_t)tidx[b] * C, (size_t)C * sizeof(float));
    }
    // augmented views: a share of the calibration rows and of the general rows become perturbed copies,
    // labelled by the parent now; they are gathered first in (B, maxtok) aug_ids for one parent forward
    if (r->aug_ids && o->augment_frac > 0) {
        const int n_cal = n_gen > 0 ? B - n_gen : B;
        const int a_cal = (int)(n_cal * o->augment_frac + 0.5), a_gen = (int)(n_gen * o->augment_frac + 0.5);
        const int32_t *arows[4096];
        int alens[4096], at[4096], na = 0;
        for (int b = 0; b < B; b++) {
            const int is_gen = b >= n_cal;
            if (is_gen ? b - n_cal >= a_gen : b >= a_cal) continue;
            int32_t *v = r->aug_ids + (size_t)na * r->maxtok;
            lens[b] = is_gen ? augment_view(r, &r->gen, NULL, r->gen.n, tidx[b] - r->cal.n, &rs, v)
                             : augment_view(r, &r->cal, r->train, r->n_train, tidx[b], &rs, v);
            rows[b] = v;
            arows[na] = v, alens[na] = lens[b], at[na++] = b;
        }
        if (na > 0) {
            dm_forward(&r->P, r->be, &r->ap, arows, alens, na); // (na, C) targets
            for (int i = 0; i < na; i++) {
                memcpy(r->bt_emb + (size_t)at[i] * C, r->ap.emb + (size_t)i * C, (size_t)C * sizeof(float));
                memcpy(r->bt_pool + (size_t)at[i] * C, r->ap.pooled + (size_t)i * C, (size_t)C * sizeof(float));
            }
        }
    }
    const int int8_phase = r->wsave && r->step >= r->steps_eff - (int)(o->int8_aware_frac * r->steps_eff + 0.5);
    if (int8_phase) int8_begin(r); // until the backward pass is done
    dm_forward(S, r->be, &r->as, rows, lens, B);
    dl_parts parts = {0};
    double loss = dl_embedding(r->as.emb, r->as.pooled, r->bt_emb, r->bt_pool, B, C, o->w_emb_cos, o->w_emb_mse, o->w_sim,
                               r->demb, r->dpool, &parts);
    const float *dq = NULL;
    if (r->have_ap) { // MiniLM relations: last student layer against the parent's last layer
        dm_forward(&r->P, r->be, &r->ap, rows, lens, B);
        const dm_layer *ls = &S->ly[S->L - 1], *lp = &r->P.ly[r->P.L - 1];
        memset(r->dqkv, 0, (size_t)r->as.ntok * 3 * ls->A * sizeof(float));
        loss += dl_relations(r->as.qkv[S->L - 1], ls->A, r->ap.qkv[r->P.L - 1], lp->A, r->as.off, r->as.len, B,
                             dl_relation_heads(ls->A, ls->H, lp->A), o->w_attn, r->dqkv);
        dq = r->dqkv;
        parts.attn = loss - (o->w_emb_cos * parts.cos + o->w_emb_mse * parts.mse + o->w_sim * parts.sim);
    }
    if (o->w_hidden > 0) { // every student layer against its mapped parent layer
        const int Ls = S->L, Lp = r->P.L, ntok = r->as.ntok;
        const double norm = (double)ntok * C * Ls;
        double lh = 0;
        for (int l = 0; l < Ls; l++) {
            const int lp = (l + 1) * Lp / Ls - 1;
            dm_layer_output(S, r->be, &r->as, l, r->hs);
            dm_layer_output(&r->P, r->be, &r->ap, lp < 0 ? 0 : lp, r->hp);
            for (size_t i = 0; i < (size_t)ntok * C; i++) {
                const double d = (double)r->hs[i] - r->hp[i];
                lh += d * d;
                r->dhid[l][i] = (float)(2.0 * o->w_hidden * d / norm);
            }
        }
        parts.hid = lh / norm;
        loss += o->w_hidden * parts.hid;
    }
    *parts_out = parts;
    const size_t off = S->train_begin, n = S->n_params - off;
    memset(r->grad + off, 0, n * sizeof(float));
    dm_backward(S, r->be, &r->as, r->demb, r->dpool, dq, o->w_hidden > 0 ? (const float *const *)r->dhid : NULL, r->grad,
                0);
    if (int8_phase) int8_end(r);
    // global-norm clipping
    double g2 = 0;
    for (size_t i = 0; i < n; i++) g2 += (double)r->grad[off + i] * r->grad[off + i];
    const double gn = sqrt(g2);
    const float clip = o->clip_norm > 0 && gn > o->clip_norm ? (float)(o->clip_norm / gn) : 1.0f;
    // AdamW (decoupled weight decay on the matrices)
    const float lr = lr_at(o, r->lr_peak, r->step, r->steps_eff), b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    const float c1 = 1.0f - powf(b1, (float)(r->step + 1)), c2 = 1.0f - powf(b2, (float)(r->step + 1));
    float *p = S->params + off, *g = r->grad + off;
    const float wd = o->weight_decay;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i] * clip;
        r->m[i] = b1 * r->m[i] + (1 - b1) * gi;
        r->v[i] = b2 * r->v[i] + (1 - b2) * gi * gi;
        const float mh = r->m[i] / c1, vh = r->v[i] / c2;
        p[i] -= lr * (mh / (sqrtf(vh) + eps) + (decay_flags[i] ? wd * p[i] : 0.0f));
    }
    return loss;
}

// ---- output --------------------------------------------------------------------------------------

static const char *const COPY_FILES[] = {
    "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "sentence_bert_config.json",
    "modules.json", "1_Pooling/config.json", "config_sentence_transformers.json", "arch_report.json",
};

static seslm_status copy_model_files(const char *src, const char *dst) {
    for (size_t i = 0; i < sizeof COPY_FILES / sizeof COPY_FILES[0]; i++) {
        char a[8400], b[8400];
        snprintf(a, sizeof a, "%s/%s", src, COPY_FILES[i]);
        snprintf(b, sizeof b, "%s/%s", dst, COPY_FILES[i]);
        char *buf = NULL;
        size_t n = 0;
        int missing = 0;
        seslm_status st = util_read_file(a, &buf, &n, (size_t)1 << 30, &missing);
        if (st != SESLM_OK) {
            if (missing) continue;
            return st;
        }
        if (strchr(COPY_FILES[i], '/')) {
            char d[8400];
            snprintf(d, sizeof d, "%s", b);
            *strrchr(d, '/') = 0;
            if (mkdir(d, 0755) != 0 && errno != EEXIST) {
                free(buf);
                return seslm_fail(SESLM_ERR_IO, "cannot create %s: %s", d, strerror(errno));
            }
        }
        st = util_write_file_atomic(b, buf, n);
        free(buf);
        if (st != SESLM_OK) return st;
    }
    return SESLM_OK;
}

static seslm_status write_config(run *r, const distill_report *rep, const char *out_dir) {
    char path[8400];
    snprintf(path, sizeof path, "%s/config.json", r->sm->dir);
    char *buf = NULL;
    size_t n = 0;
    seslm_status st = util_read_file(path, &buf, &n, 16 << 20, NULL);
    if (st != SESLM_OK) return st;
    cJSON *root = cJSON_ParseWithLength(buf, n);
    free(buf);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return seslm_fail(SESLM_ERR_FORMAT, "%s: not a JSON object", path);
    }
    cJSON *lin = cJSON_GetObjectItemCaseSensitive(root, "seslm_lineage");
    if (!cJSON_IsObject(lin)) {
        cJSON_DeleteItemFromObjectCaseSensitive(root, "seslm_lineage");
        lin = cJSON_AddObjectToObject(root, "seslm_lineage");
    }
    cJSON_DeleteItemFromObjectCaseSensitive(lin, "distillation");
    cJSON *d = cJSON_AddObjectToObject(lin, "distillation");
    const distill_opts *o = r->o;
    cJSON_AddStringToObject(d, "teacher_weights_sha256", seslm_model_weights_sha256(r->pm));
    cJSON_AddStringToObject(d, "student_weights_sha256", seslm_model_weights_sha256(r->sm));
    cJSON_AddStringToObject(d, "calibration", o->calibration);
    if (o->general) cJSON_AddStringToObject(d, "general", o->general);
    cJSON_AddNumberToObject(d, "calibration_sentences", r->n_train);
    cJSON_AddNumberToObject(d, "holdout_sentences", r->n_hold);
    cJSON_AddNumberToObject(d, "general_sentences", r->gen.n);
    cJSON_AddNumberToObject(d, "augment", o->augment_frac);
    cJSON_AddNumberToObject(d, "int8_aware", o->int8_aware_frac); // > 0: the holdout cosines are the INT8-rounded student's
    cJSON_AddNumberToObject(d, "steps", rep->steps_done);
    cJSON_AddNumberToObject(d, "batch", o->batch);
    cJSON_AddNumberToObject(d, "lr", r->lr_peak);
    cJSON_AddNumberToObject(d, "lr_base", o->lr);
    cJSON_AddNumberToObject(d, "lr_gap", o->lr_gap);
    cJSON_AddNumberToObject(d, "seed", (double)o->seed);
    char lw[160];
    snprintf(lw, sizeof lw, "cos %g, mse %g, sim %g, attn %g, hidden %g", o->w_emb_cos, o->w_emb_mse, o->w_sim, o->w_attn,
             o->w_hidden);
    cJSON_AddStringToObject(d, "loss_weights", lw);
    cJSON_AddNumberToObject(d, "holdout_cos_before", rep->cos_before);
    cJSON_AddNumberToObject(d, "holdout_cos_after", rep->cos_after);
    char *txt = cJSON_Print(root);
    cJSON_Delete(root);
    if (!txt) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    snprintf(path, sizeof path, "%s/config.json", out_dir);
    size_t len = strlen(txt);
    char *full = malloc(len + 2);
    if (!full) {
        free(txt);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    memcpy(full, txt, len);
    full[len] = '\n';
    free(txt);
    st = util_write_file_atomic(path, full, len + 1);
    free(full);
    return st;
}

/* model.safetensors: the student's tensors in its order, the trained ones as F32 from the parameters,
 * anything else (position_ids, ...) byte for byte. */
static seslm_status write_weights(run *r, const char *out_dir) {
    const st_file *f = &r->sm->st;
    st_write_tensor *t = calloc((size_t)f->n_tensors + 1, sizeof *t);
    if (!t) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < f->n_tensors; i++) {
        const st_tensor *s = &f->tensors[i];
        size_t off, numel;
        t[i].name = s->name;
        t[i].ndim = s->ndim;
        memcpy(t[i].shape, s->shape, sizeof t[i].shape);
        if (dm_tensor_slot(&r->S, s->name, &off, &numel) == 0 && (int64_t)numel == s->numel) {
            t[i].dtype = ST_F32;
            t[i].data = r->S.params + off;
        } else {
            t[i].dtype = s->dtype;
            t[i].data = s->data;
        }
    }
    char path[8400];
    snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
    seslm_status st = st_write(path, t, f->n_tensors, NULL);
    free(t);
    return st;
}

// ---- the run -------------------------------------------------------------------------------------

static int is_dir(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

/* out_dir must not exist, be empty, or hold only an interrupted run's .ckpt. */
static int out_dir_usable(const char *out_dir, const char *ckpt_name) {
    if (!is_dir(out_dir)) {
        struct stat s;
        return stat(out_dir, &s) != 0; // absent: fine; a file: not
    }
    char p[8400];
    snprintf(p, sizeof p, "%s/%s", out_dir, ckpt_name);
    if (is_dir(p)) return 1;
    snprintf(p, sizeof p, "%s/model.safetensors", out_dir);
    struct stat s;
    if (stat(p, &s) == 0) return 0;
    snprintf(p, sizeof p, "%s/config.json", out_dir);
    return stat(p, &s) != 0;
}

static void run_free(run *r) {
    dm_acts_free(&r->as);
    dm_acts_free(&r->ap);
    free(r->aug_ids);
    dm_free(&r->P);
    dm_free(&r->S);
    token_set_free(&r->cal);
    token_set_free(&r->gen);
    free(r->train), free(r->hold), free(r->p_emb), free(r->p_pool);
    free(r->grad), free(r->m), free(r->v), free(r->wsave), free(r->best), free(r->demb), free(r->dpool), free(r->dqkv), free(r->bt_emb), free(r->bt_pool);
    for (int l = 0; r->dhid && l < r->S.L; l++) free(r->dhid[l]);
    free(r->dhid), free(r->hs), free(r->hp);
    seslm_model_free(r->pm);
    seslm_model_free(r->sm);
}

int distill_run(const distill_opts *o, distill_report *rep, char *err, size_t errlen) {
    distill_report rr;
    memset(&rr, 0, sizeof rr);
    if (!rep) rep = &rr;
    memset(rep, 0, sizeof *rep);
    rep->cos_before = rep->cos_after = NAN;
    if (!o || !o->parent_dir || !o->student_dir || !o->calibration || !o->out_dir)
        return fail(err, errlen, 1, "distill: parent, student, calibration and out are required");
    if (o->steps < 1 || o->steps > 10000000) return fail(err, errlen, 1, "steps must be in 1..10000000 (got %d)", o->steps);
    if (o->batch < 2 || o->batch > 1024) return fail(err, errlen, 1, "batch must be in 2..1024 (got %d)", o->batch);
    if (o->max_tokens < 0 || o->max_tokens == 1 || o->max_tokens > 512)
        return fail(err, errlen, 1, "max_tokens must be 0 or in 2..512 (got %d)", o->max_tokens);
    if (!(o->lr > 0 && o->lr < 1)) return fail(err, errlen, 1, "lr must be in (0, 1) (got %g)", o->lr);
    if (!(o->lr_gap >= 0 && o->lr_gap <= 1)) return fail(err, errlen, 1, "lr_gap must be in [0, 1] (got %g)", o->lr_gap);
    if (!(o->weight_decay >= 0 && o->weight_decay < 1) || !(o->warmup_frac >= 0 && o->warmup_frac < 1) ||
        !(o->clip_norm >= 0) || !(o->general_frac >= 0 && o->general_frac < 1) ||
        !(o->holdout_frac >= 0 && o->holdout_frac < 0.9) || !(o->time_budget_s >= 0) ||
        !(o->augment_frac >= 0 && o->augment_frac <= 1) || !(o->int8_aware_frac >= 0 && o->int8_aware_frac <= 1))
        return fail(err, errlen, 1, "weight_decay, warmup_frac, general_frac must be in [0, 1), holdout_frac in [0, 0.9), "
                                    "augment and int8_aware in [0, 1], clip_norm and time_budget >= 0");
    if (!(o->w_emb_cos >= 0 && o->w_emb_mse >= 0 && o->w_sim >= 0 && o->w_attn >= 0 && o->w_hidden >= 0) ||
        o->w_emb_cos + o->w_emb_mse + o->w_sim + o->w_attn + o->w_hidden <= 0)
        return fail(err, errlen, 1, "loss weights must be >= 0 and not all 0");
    if (o->threads < 0 || o->threads > 1024) return fail(err, errlen, 1, "threads must be in 0..1024 (got %d)", o->threads);
    const char *dev = o->device ? o->device : "cpu";
    if (strcmp(dev, "cpu") != 0 && strcmp(dev, "cpu-ref") != 0)
        return fail(err, errlen, 1, "device '%s': distillation runs on the CPU backends (cpu, cpu-ref); the CUDA backward "
                                    "kernels exist (kernels/cuda/backward.cu) but the trainer does not drive them yet", dev);
    run R;
    memset(&R, 0, sizeof R);
    R.o = o;
    R.be = seslm_backend_get(dev);
    if (!R.be || !R.be->linear_backward) return fail(err, errlen, 2, "backend '%s' has no backward ops", dev);
    R.be->set_threads(o->threads);
#ifdef _OPENMP
    // the backward ops and the optimiser loop use OpenMP; the forward ops the backend's own threads
    omp_set_num_threads(o->threads > 0 ? o->threads : omp_get_num_procs());
#endif
    int code = 1;
    char msg[9000] = "";
#define BAD(c, ...)                                       \
    do {                                                  \
        code = (c);                                       \
        snprintf(msg, sizeof msg, __VA_ARGS__);           \
        goto done;                                        \
    } while (0)
    if (o->checkpoint_dir) snprintf(R.ckpt_dir, sizeof R.ckpt_dir, "%s", o->checkpoint_dir);
    else snprintf(R.ckpt_dir, sizeof R.ckpt_dir, "%s/.ckpt", o->out_dir);
    if (!out_dir_usable(o->out_dir, ".ckpt"))
        BAD(1, "%s exists and holds a model (or is not a directory); choose a new output directory", o->out_dir);
    if (seslm_model_load(&R.pm, o->parent_dir) != SESLM_OK) BAD(1, "parent: %s", seslm_last_error());
    if (seslm_model_load(&R.sm, o->student_dir) != SESLM_OK) BAD(1, "student: %s", seslm_last_error());
    {
        const seslm_model_config *pc = &R.pm->cfg, *sc = &R.sm->cfg;
        if (pc->hidden != sc->hidden || pc->vocab_size != sc->vocab_size || pc->head_dim != sc->head_dim)
            BAD(1, "student (hidden %d, vocab %d, head dim %d) does not match the parent (%d, %d, %d): not a student of it",
                sc->hidden, sc->vocab_size, sc->head_dim, pc->hidden, pc->vocab_size, pc->head_dim);
    }
    if (dm_init(&R.S, R.sm) != SESLM_OK) BAD(1, "student: %s", seslm_last_error());
    if (dm_init(&R.P, R.pm) != SESLM_OK) BAD(1, "parent: %s", seslm_last_error());
    const int maxtok = o->max_tokens > 0 && o->max_tokens < R.sm->cfg.max_seq_len ? o->max_tokens : R.sm->cfg.max_seq_len;
    const int C = R.S.C;
    int skipped = 0, gskipped = 0;
    uint64_t key = 0xCBF29CE484222325ull;
    if (token_set_read(&R.cal, R.sm->tok, o->calibration, 200000, maxtok, &skipped, &key) != SESLM_OK)
        BAD(1, "calibration: %s", seslm_last_error());
    if (R.cal.n < 2) BAD(1, "%s: %d usable sentences (%d refused by the tokenizer); need at least 2", o->calibration,
                         R.cal.n, skipped);
    if (o->general && token_set_read(&R.gen, R.sm->tok, o->general, 20000, maxtok, &gskipped, &key) != SESLM_OK)
        BAD(1, "general: %s", seslm_last_error());
    if (o->general && R.gen.n == 0) BAD(1, "%s: no usable sentences", o->general);
    // the held-out slice: a seeded shuffle of the calibration sentences, the last holdout_frac of it
    {
        int *perm = malloc((size_t)R.cal.n * sizeof(int));
        R.train = malloc((size_t)R.cal.n * sizeof(int));
        R.hold = malloc((size_t)R.cal.n * sizeof(int));
        if (!perm || !R.train || !R.hold) {
            free(perm);
            BAD(2, "out of memory");
        }
        uint64_t s = o->seed ^ 0xA5A5A5A5ull;
        for (int i = 0; i < R.cal.n; i++) perm[i] = i;
        for (int i = R.cal.n - 1; i > 0; i--) {
            const int j = (int)(splitmix64(&s) % (uint64_t)(i + 1)), t = perm[i];
            perm[i] = perm[j], perm[j] = t;
        }
        R.n_hold = (int)(R.cal.n * o->holdout_frac);
        if (o->holdout_frac > 0 && R.n_hold == 0) R.n_hold = 1;
        R.n_train = R.cal.n - R.n_hold;
        memcpy(R.train, perm, (size_t)R.n_train * sizeof(int));
        memcpy(R.hold, perm + R.n_train, (size_t)R.n_hold * sizeof(int));
        free(perm);
    }
    rep->n_train = R.n_train, rep->n_holdout = R.n_hold;
    // the run key: models, data and every option that changes the numbers
    key = fnv1a(key, seslm_model_weights_sha256(R.pm), 64);
    key = fnv1a(key, seslm_model_weights_sha256(R.sm), 64);
    {
        const double kv[] = {o->steps, o->batch, maxtok, o->lr, o->weight_decay, o->warmup_frac, o->clip_norm, o->w_emb_cos,
                             o->w_emb_mse, o->w_sim, o->w_attn, o->w_hidden, (double)o->seed, o->general_frac, o->holdout_frac,
                             o->time_budget_s > 0, o->augment_frac, o->int8_aware_frac, o->lr_gap};
        key = fnv1a(key, kv, sizeof kv);
        key = fnv1a(key, dev, strlen(dev));
    }
    R.run_key = key;
    const int big = o->batch > 64 ? o->batch : 64;
    if (dm_acts_init(&R.as, &R.S, o->batch * maxtok, big, maxtok, o->threads > 0 ? o->threads : 64) != SESLM_OK)
        BAD(2, "%s", seslm_last_error());
    R.have_ap = (o->w_attn > 0 && R.S.ly[R.S.L - 1].A > 0 && R.P.ly[R.P.L - 1].A > 0) || o->w_hidden > 0;
    if (o->w_hidden > 0) {
        const size_t tc = (size_t)o->batch * maxtok * C;
        R.hs = malloc(tc * sizeof(float));
        R.hp = malloc(tc * sizeof(float));
        R.dhid = calloc((size_t)R.S.L + 1, sizeof(float *));
        if (!R.hs || !R.hp || !R.dhid) BAD(2, "out of memory");
        for (int l = 0; l < R.S.L; l++)
            if (!(R.dhid[l] = malloc(tc * sizeof(float)))) BAD(2, "out of memory");
    }
    R.maxtok = maxtok;
    const int need_ap = R.have_ap || o->augment_frac > 0;
    if (o->augment_frac > 0 && !(R.aug_ids = malloc((size_t)o->batch * maxtok * sizeof(int32_t)))) BAD(2, "out of memory");
    if (need_ap && dm_acts_init(&R.ap, &R.P, o->batch * maxtok, o->batch, maxtok, o->threads > 0 ? o->threads : 64) != SESLM_OK)
        BAD(2, "%s", seslm_last_error());
    {
        const size_t ntot = (size_t)R.cal.n + R.gen.n, nt = R.S.n_params - R.S.train_begin;
        R.p_emb = malloc(ntot * C * sizeof(float));
        R.p_pool = malloc(ntot * C * sizeof(float));
        R.grad = calloc(R.S.n_params, sizeof(float));
        R.m = calloc(nt, sizeof(float));
        R.v = calloc(nt, sizeof(float));
        R.best = malloc(nt * sizeof(float));
        if (o->int8_aware_frac > 0 && !(R.wsave = malloc(nt * sizeof(float)))) BAD(2, "out of memory");
        R.demb = malloc((size_t)o->batch * C * sizeof(float));
        R.dpool = malloc((size_t)o->batch * C * sizeof(float));
        R.bt_emb = malloc((size_t)o->batch * C * sizeof(float));
        R.bt_pool = malloc((size_t)o->batch * C * sizeof(float));
        R.dqkv = malloc(((size_t)o->batch * maxtok * 3 * R.S.Amax + 1) * sizeof(float));
        if (!R.p_emb || !R.p_pool || !R.grad || !R.m || !R.v || !R.best || !R.demb || !R.dpool || !R.bt_emb || !R.bt_pool || !R.dqkv)
            BAD(2, "out of memory for %zu trained parameters", nt);
    }
    const double t0 = util_now_s();
    // the parent's targets for every sentence (it is fixed: computed once)
    {
        dm_acts tmp;
        if (dm_acts_init(&tmp, &R.P, 64 * maxtok, 64, maxtok, o->threads > 0 ? o->threads : 64) != SESLM_OK)
            BAD(2, "%s", seslm_last_error());
        embed_set(&R.P, R.be, &tmp, &R.cal, NULL, R.cal.n, 64, R.p_emb, R.p_pool);
        if (R.gen.n)
            embed_set(&R.P, R.be, &tmp, &R.gen, NULL, R.gen.n, 64, R.p_emb + (size_t)R.cal.n * C,
                      R.p_pool + (size_t)R.cal.n * C);
        dm_acts_free(&tmp);
    }
    if (o->progress) {
        // the memory bound of the run (dmodel.h): both models' parameters, gradients, Adam moments, one
        // batch of activations (and the parent's with the attention / hidden losses), the cached targets
        const int nth = o->threads > 0 ? o->threads : 64;
        const double mb = ((double)(R.S.n_params + R.P.n_params + R.S.n_params + (R.wsave ? 3 : 2) * (R.S.n_params - R.S.train_begin)) * 4 +
                           (double)dm_acts_bytes(&R.S, o->batch * maxtok, big, maxtok, nth) +
                           (R.have_ap || o->augment_frac > 0 ? (double)dm_acts_bytes(&R.P, o->batch * maxtok, o->batch, maxtok, nth) : 0) +
                           (double)(R.cal.n + R.gen.n) * 2 * C * 4) / 1048576.0;
        fprintf(stderr, "distill: %d calibration sentences (%d held out, %d skipped), %d general; parent targets in %.1fs; "
                        "memory bound %.0f MB\n", R.cal.n, R.n_hold, skipped, R.gen.n, util_now_s() - t0, mb);
    }
    rep->cos_before = holdout_cos(&R);
    R.lr_peak = rep->lr_peak = lr_peak_for(o, rep->cos_before);
    if (o->progress && R.lr_peak != o->lr)
        fprintf(stderr, "distill: held-out cosine %.4f before training: peak lr %.2e (%.2e scaled by the gap %.4f / %g)\n",
                rep->cos_before, R.lr_peak, o->lr, 1 - rep->cos_before, o->lr_gap);
    // model selection on the held-out slice: the best of the student itself and the evaluated steps is
    // written (distillation never returns a student further from its parent than it started)
    memcpy(R.best, R.S.params + R.S.train_begin, (R.S.n_params - R.S.train_begin) * sizeof(float));
    R.best_cos = isfinite(rep->cos_before) ? rep->cos_before : -2.0;
    R.best_step = 0;
    // resume
    if (mkdir(R.ckpt_dir, 0755) != 0 && errno != EEXIST && !is_dir(R.ckpt_dir)) {
        // out_dir may not exist yet
        if (mkdir(o->out_dir, 0755) != 0 && errno != EEXIST) BAD(1, "cannot create %s: %s", o->out_dir, strerror(errno));
        if (mkdir(R.ckpt_dir, 0755) != 0 && errno != EEXIST) BAD(1, "cannot create %s: %s", R.ckpt_dir, strerror(errno));
    }
    snprintf(R.ckpt_path, sizeof R.ckpt_path, "%s/state.bin", R.ckpt_dir);
    R.steps_eff = o->steps;
    {
        const int rc = ckpt_load(&R);
        if (rc < 0) BAD(1, "%s", seslm_last_error());
        if (rc > 0) {
            rep->resumed_from = R.step;
            if (o->progress) fprintf(stderr, "distill: resuming at step %d of %d (%s)\n", R.step, R.steps_eff, R.ckpt_path);
        }
    }
    char *decay_flags = malloc(R.S.n_params - R.S.train_begin + 1);
    if (!decay_flags) BAD(2, "out of memory");
    for (size_t i = R.S.train_begin; i < R.S.n_params; i++) decay_flags[i - R.S.train_begin] = (char)decays(&R.S, i);
    const double ts = util_now_s();
    double last_ckpt = ts;
    const int ckpt_every = o->checkpoint_every > 0 ? o->checkpoint_every : 50, start = R.step;
    seslm_progress prog;
    seslm_progress_init(&prog, o->progress ? stderr : NULL, "distill:", "steps", R.steps_eff - start);
    int stopped_by_budget = 0;
    while (R.step < R.steps_eff) {
        dl_parts parts;
        const double loss = train_step(&R, decay_flags, &parts);
        if (!isfinite(loss)) {
            free(decay_flags);
            BAD(2, "loss is not finite at step %d (lower --lr)", R.step);
        }
        if (R.step == 0) R.loss_first = loss;
        R.loss_last = loss;
        R.step++;
        const double el = util_now_s() - ts, per = el / (R.step - start);
        // a time budget: after 3 timed steps, fit the schedule to the steps that fit (kept in the checkpoint)
        if (o->time_budget_s > 0 && R.step - start == 3 && start == 0) {
            const double left = o->time_budget_s - (util_now_s() - t0) - 2.0 * per - 0.05 * o->time_budget_s;
            int fit = R.step + (int)(left / per);
            if (fit < R.step) fit = R.step;
            if (fit < R.steps_eff) R.steps_eff = fit;
        }
        if (o->progress) { // progress.h: one updating line on a terminal, a plain line every 10 s in a log
            prog.total = R.steps_eff - start; // a time budget may have shortened the schedule
            seslm_progress_note(&prog, "step %d/%d, loss %.5f (1-cos %.4f mse %.4f sim %.4f attn %.4f hid %.4f), lr %.2e, %.2f s/step",
                                R.step, R.steps_eff, loss, parts.cos, parts.mse, parts.sim, parts.attn, parts.hid,
                                lr_at(o, R.lr_peak, R.step - 1, R.steps_eff), per);
            seslm_progress_update(&prog, R.step - start);
        }
        const int budget_hit = o->time_budget_s > 0 && util_now_s() - t0 > o->time_budget_s;
        const int eval_every = R.steps_eff >= 40 ? R.steps_eff / 8 : 5;
        if (R.n_hold > 0 && (R.step % eval_every == 0 || R.step == R.steps_eff || budget_hit)) {
            const double c = holdout_cos(&R);
            if (c > R.best_cos) {
                R.best_cos = c, R.best_step = R.step;
                memcpy(R.best, R.S.params + R.S.train_begin, (R.S.n_params - R.S.train_begin) * sizeof(float));
            }
            if (o->progress)
                seslm_progress_say(&prog, "distill: step %d held-out cosine %.4f (best %.4f at step %d)", R.step, c,
                                   R.best_cos, R.best_step);
        }
        if (R.step % ckpt_every == 0 || budget_hit || util_now_s() - last_ckpt > 120) {
            if (ckpt_save(&R) != SESLM_OK) {
                free(decay_flags);
                BAD(1, "checkpoint: %s", seslm_last_error());
            }
            last_ckpt = util_now_s();
        }
        if (budget_hit && R.step < R.steps_eff) {
            stopped_by_budget = 1;
            break;
        }
    }
    free(decay_flags);
    if (o->progress && R.step > start) seslm_progress_finish(&prog);
    rep->steps_done = R.step;
    rep->loss_first = R.loss_first, rep->loss_last = R.loss_last;
    if (R.n_hold > 0) { // the selected parameters
        memcpy(R.S.params + R.S.train_begin, R.best, (R.S.n_params - R.S.train_begin) * sizeof(float));
        rep->best_step = R.best_step;
    } else {
        rep->best_step = R.step;
    }
    rep->cos_after = holdout_cos(&R);
    if (o->progress)
        fprintf(stderr, "distill: %d steps%s; held-out cosine%s to the parent %.4f -> %.4f (parameters of step %d)\n",
                R.step, stopped_by_budget ? " (time budget reached)" : "", R.wsave ? " of the INT8-rounded student" : "",
                rep->cos_before, rep->cos_after,
                rep->best_step);
    if (mkdir(o->out_dir, 0755) != 0 && errno != EEXIST) BAD(1, "cannot create %s: %s", o->out_dir, strerror(errno));
    if (copy_model_files(R.sm->dir, o->out_dir) != SESLM_OK || write_weights(&R, o->out_dir) != SESLM_OK ||
        write_config(&R, rep, o->out_dir) != SESLM_OK)
        BAD(1, "writing %s: %s", o->out_dir, seslm_last_error());
    if (st_fsync_dir(o->out_dir) != SESLM_OK) BAD(1, "%s", seslm_last_error());
    if (!o->checkpoint_dir) util_rmtree(R.ckpt_dir); // the model is complete: the default checkpoint is spent
    rep->seconds = util_now_s() - t0;
    code = 0;
done:
    run_free(&R);
    if (code) fail(err, errlen, code, "%s", msg);
    return code;
#undef BAD
}
