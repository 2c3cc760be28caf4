/* encoder_device.c — the device mirror of an encoder (encoder_device.h): one upload of every weight,
 * the workspace in device memory. Only backends with dev_alloc come here; CPU backends never do. */
#include "encoder_device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// dev_alloc'd buffer, remembered for encoder_device_free; NULL (message set) on failure
static void *dev_buf(encoder_device *d, size_t bytes) {
    if (d->n_bufs == d->cap_bufs) {
        int cap = d->cap_bufs ? 2 * d->cap_bufs : 64;
        void **p = realloc(d->bufs, (size_t)cap * sizeof *p);
        if (!p) {
            seslm_fail(SESLM_ERR_NOMEM, "out of memory");
            return NULL;
        }
        d->bufs = p, d->cap_bufs = cap;
    }
    void *b = d->be->dev_alloc(bytes ? bytes : 1);
    if (b) d->bufs[d->n_bufs++] = b;
    return b;
}

// device copy of n bytes of host memory (NULL host: NULL, no error); *ok cleared on failure
static void *dev_copy(encoder_device *d, const void *host, size_t bytes, int *ok) {
    if (!host || !*ok) return NULL;
    void *b = dev_buf(d, bytes);
    if (!b || d->be->dev_upload(b, host, bytes) != 0) {
        *ok = 0;
        return NULL;
    }
    return b;
}

seslm_status encoder_device_init(encoder_device *d, const seslm_backend *be, const seslm_model *m,
                                 const seslm_weight *lin, float *const *qkv_b, int max_tokens, int max_batch,
                                 int Amax, int Fmax) {
    memset(d, 0, sizeof *d);
    d->be = be;
    const seslm_model_config *c = &m->cfg;
    const int L = c->n_layers, C = c->hidden, V = c->vocab_size;
    const size_t fc = (size_t)C * sizeof(float);
    d->n_lin = 4 * L;
    d->lin = calloc((size_t)d->n_lin + 1, sizeof *d->lin);
    d->lw = calloc((size_t)L + 1, sizeof *d->lw);
    d->qkv_b = calloc((size_t)L + 1, sizeof *d->qkv_b);
    if (!d->lin || !d->lw || !d->qkv_b) {
        encoder_device_free(d);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    int ok = 1;
    for (int i = 0; ok && i < d->n_lin; i++)
        if (be->weight_upload(&d->lin[i], &lin[i]) != 0) ok = 0;
    for (int l = 0; ok && l < L; l++) {
        const int A = c->layers[l].n_heads * c->head_dim, F = c->layers[l].ffn_dim;
        const seslm_layer_weights *w = &m->lw[l];
        seslm_layer_weights *o = &d->lw[l];
        if (A) {
            d->qkv_b[l] = dev_copy(d, qkv_b[l], 3 * (size_t)A * sizeof(float), &ok);
        }
        o->ao_b = dev_copy(d, w->ao_b, fc, &ok);
        o->ln1_g = dev_copy(d, w->ln1_g, fc, &ok);
        o->ln1_b = dev_copy(d, w->ln1_b, fc, &ok);
        if (F) o->ff1_b = dev_copy(d, w->ff1_b, (size_t)F * sizeof(float), &ok);
        o->ff2_b = dev_copy(d, w->ff2_b, fc, &ok);
        o->ln2_g = dev_copy(d, w->ln2_g, fc, &ok);
        o->ln2_b = dev_copy(d, w->ln2_b, fc, &ok);
    }
    const seslm_embedding *we = &m->word;
    if (we->f32) {
        d->word.f32 = dev_copy(d, we->f32, (size_t)V * fc, &ok);
    } else {
        int E = 0; // rows of the exact table: one past the largest slot
        for (int v = 0; v < V; v++) E = we->exact_slot[v] + 1 > E ? we->exact_slot[v] + 1 : E;
        const size_t Vq = we->row_slot ? (size_t)we->n_rows : (size_t)V; // rows of q / q4
        if (we->q4 && Vq) d->word.q4 = dev_copy(d, we->q4, Vq * (C / 2), &ok);
        else if (we->q && Vq) d->word.q = dev_copy(d, we->q, Vq * C, &ok);
        if (Vq) d->word.scale = dev_copy(d, we->scale, Vq * sizeof(float), &ok);
        if (we->row_slot) {
            d->word.row_slot = dev_copy(d, we->row_slot, (size_t)V * sizeof(int32_t), &ok);
            d->word.n_rows = we->n_rows, d->word.n_pq = we->n_pq, d->word.pq_dim = we->pq_dim;
            if (we->n_pq) {
                d->word.pq_codes = dev_copy(d, we->pq_codes, (size_t)we->n_pq * (C / we->pq_dim), &ok);
                d->word.pq_book = dev_copy(d, we->pq_book, (size_t)C * 256 * sizeof(float), &ok);
            }
        }
        d->word.exact_slot = dev_copy(d, we->exact_slot, (size_t)V * sizeof(int32_t), &ok);
        d->word.exact = E ? dev_copy(d, we->exact, (size_t)E * fc, &ok) : NULL;
    }
    d->pos = dev_copy(d, m->pos_emb, (size_t)c->max_position * fc, &ok);
    d->type = dev_copy(d, m->type_emb, fc, &ok); // only type 0 is read
    d->emb_ln_g = dev_copy(d, m->emb_ln_g, fc, &ok);
    d->emb_ln_b = dev_copy(d, m->emb_ln_b, fc, &ok);
    if (ok) {
        const size_t T = (size_t)max_tokens, Bm = (size_t)max_batch;
        void *p[10] = {
            d->ids = dev_buf(d, T * sizeof(int32_t)), d->off = dev_buf(d, Bm * sizeof(int)),
            d->len = dev_buf(d, Bm * sizeof(int)),    d->ones = dev_buf(d, Bm * sizeof(int)),
            d->x = dev_buf(d, T * fc),                d->tmp = dev_buf(d, T * fc),
            d->qkv = dev_buf(d, T * (3 * (size_t)Amax + 1) * sizeof(float)),
            d->ctx = dev_buf(d, T * ((size_t)Amax + 1) * sizeof(float)),
            d->ffn = dev_buf(d, T * ((size_t)Fmax + 1) * sizeof(float)),
            d->out = dev_buf(d, Bm * fc),
        };
        for (int i = 0; i < 10; i++) ok &= p[i] != NULL;
    }
    if (ok) { // [CLS] pooling reads a window of 1 row per sequence
        int *ones = malloc(((size_t)max_batch + 1) * sizeof(int));
        if (!ones) ok = 0, seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        for (int b = 0; ok && b < max_batch; b++) ones[b] = 1;
        if (ok && be->dev_upload(d->ones, ones, (size_t)max_batch * sizeof(int)) != 0) ok = 0;
        free(ones);
    }
    // the uploads are queued on this thread's stream: wait, so that another thread may run the encoder
    if (ok && be->dev_download(NULL, NULL, 0) != 0) ok = 0;
    const char *env = getenv("SESLM_CUDA_GRAPHS");
    d->graphs_off = env && strcmp(env, "0") == 0;
    if (!ok) {
        char why[512];
        snprintf(why, sizeof why, "%s", seslm_last_error());
        encoder_device_free(d);
        return seslm_fail(SESLM_ERR_NOMEM, "%s backend: uploading the model / sizing the device workspace for %d tokens: %s",
                          be->name, max_tokens, why);
    }
    return SESLM_OK;
}

static void graphs_clear(encoder_device *d) {
    for (int i = 0; i < (int)(sizeof d->graphs / sizeof d->graphs[0]); i++) {
        if (d->graphs[i].exec && d->be->replay_free) d->be->replay_free(d->graphs[i].exec);
        memset(&d->graphs[i], 0, sizeof d->graphs[i]);
    }
}

void encoder_device_free(encoder_device *d) {
    if (!d || !d->be) return;
    graphs_clear(d);
    for (int i = 0; d->lin && i < d->n_lin; i++) d->be->weight_free(&d->lin[i]);
    for (int i = 0; i < d->n_bufs; i++) d->be->dev_free(d->bufs[i]);
    free(d->bufs);
    free(d->lin);
    free(d->lw);
    free(d->qkv_b);
    memset(d, 0, sizeof *d);
}

seslm_status encoder_device_set_masks(encoder_device *d, const float *mask_buf, size_t n) {
    int ok = 1;
    graphs_clear(d);
    if (!d->mask && !(d->mask = dev_buf(d, (n + 1) * sizeof(float)))) return SESLM_ERR_NOMEM;
    if (d->be->dev_upload(d->mask, mask_buf, n * sizeof(float)) != 0) ok = 0;
    return ok ? SESLM_OK : SESLM_ERR_INTERNAL;
}

seslm_status encoder_device_run(encoder_device *d, int B, int ntok, void (*queue)(void *ctx), void *ctx) {
    const seslm_backend *be = d->be;
    const int n_slots = (int)(sizeof d->graphs / sizeof d->graphs[0]);
    if (!be->capture_begin || d->graphs_off) {
        queue(ctx);
        return SESLM_OK;
    }
    int k = -1;
    for (int i = 0; i < n_slots; i++)
        if (d->graphs[i].seen && d->graphs[i].B == B && d->graphs[i].ntok == ntok) k = i;
    if (k >= 0 && d->graphs[k].exec)
        return be->replay(d->graphs[k].exec) == 0 ? SESLM_OK : SESLM_ERR_INTERNAL;
    if (k < 0) { // first time for this shape: run as is (grows scratch, creates handles), remember it
        k = d->graph_next++ % n_slots;
        if (d->graphs[k].exec) be->replay_free(d->graphs[k].exec);
        d->graphs[k].B = B, d->graphs[k].ntok = ntok, d->graphs[k].seen = 1, d->graphs[k].exec = NULL;
        queue(ctx);
        return SESLM_OK;
    }
    // second time: record once, then replay; a failed recording turns graphs off for this encoder
    if (be->capture_begin() != 0) {
        d->graphs_off = 1;
        queue(ctx);
        return SESLM_OK;
    }
    queue(ctx);
    if (!(d->graphs[k].exec = be->capture_end())) {
        d->graphs_off = 1;
        queue(ctx);
        return SESLM_OK;
    }
    return be->replay(d->graphs[k].exec) == 0 ? SESLM_OK : SESLM_ERR_INTERNAL;
}
