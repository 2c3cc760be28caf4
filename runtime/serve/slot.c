/* slot.c — model slots: a loaded model with its encoder and telemetry, shared by reference count.
 *
 * The server's `current` pointer holds one reference; every request in flight holds one on the slot it
 * started with. A reload publishes a new slot under reg_mu and drops the server's reference to the
 * old one, so requests already running finish on the old model and the last to let go retires it. */
#include "serve_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void serve_model_id(const char *dir, const char *sha256, char *out, size_t cap) {
    char d[PATH_MAX];
    snprintf(d, sizeof d, "%s", dir);
    size_t n = strlen(d);
    while (n > 1 && d[n - 1] == '/') d[--n] = 0;
    const char *base = strrchr(d, '/');
    base = base ? base + 1 : d;
    char resolved[PATH_MAX];
    if ((!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) && realpath(d, resolved)) {
        const char *r = strrchr(resolved, '/');
        snprintf(d, sizeof d, "%s", r && r[1] ? r + 1 : resolved);
        base = d;
    }
    snprintf(out, cap, "%s@%.12s", *base ? base : "model", sha256 && *sha256 ? sha256 : "unknown");
}

void serve_slot_destroy(serve_slot *slot) {
    if (!slot) return;
    if (slot->e) seslm_encoder_set_telemetry(slot->e, NULL);
    seslm_telemetry_free(slot->tel[0]);
    seslm_telemetry_free(slot->tel[1]);
    seslm_encoder_free(slot->e);
    seslm_model_free(slot->m);
    free(slot);
}

seslm_status serve_slot_create(seslm_server *s, const char *dir, serve_slot **out) {
    *out = NULL;
    serve_slot *slot = calloc(1, sizeof *slot);
    if (!slot) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    atomic_init(&slot->refs, 1);
    atomic_init(&slot->tel_spare_busy, 0);
    atomic_init(&slot->rejected, 0);
    slot->srv = s;
    snprintf(slot->dir, sizeof slot->dir, "%s", dir);
    seslm_status st = seslm_model_load(&slot->m, dir);
    if (st != SESLM_OK) goto fail;
    const seslm_model_config *c = seslm_model_get_config(slot->m);
    slot->hidden = c->hidden;
    slot->max_seq = c->max_seq_len;
    int tl = seslm_tokenizer_options(seslm_model_tokenizer(slot->m))->max_len;
    slot->tok_cap = tl > slot->max_seq ? tl : slot->max_seq;
    // hashing the weights is lazy and not thread-safe: do it here, before anyone else sees the model
    const char *sha = seslm_model_weights_sha256(slot->m);
    if (!*sha) {
        st = seslm_fail(SESLM_ERR_IO, "%s: cannot hash model.safetensors", dir);
        goto fail;
    }
    serve_model_id(dir, sha, slot->id, sizeof slot->id);

    if (s->telemetry) {
        for (int i = 0; i < 2 && st == SESLM_OK; i++) st = seslm_telemetry_new(&slot->tel[i], slot->m, NULL);
        if (st != SESLM_OK) goto fail;
    }

    // encoder creation and the warm-up pass share the forward lock with the batcher: the backends keep
    // process-wide thread settings, and two passes at once would only fight over the cores
    seslm_encoder_opts eo = {.backend = s->o.backend, .n_threads = s->o.threads, .max_batch = s->o.max_batch,
                             .precision = s->o.precision};
    pthread_mutex_lock(&s->fwd_mu);
    st = seslm_encoder_new(&slot->e, slot->m, &eo);
    if (st == SESLM_OK) {
        const char *warm = "warm up the encoder";
        size_t wl = strlen(warm);
        float *tmp = malloc((size_t)slot->hidden * sizeof(float));
        if (!tmp) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
        else st = seslm_encoder_embed_texts(slot->e, &warm, &wl, 1, tmp);
        free(tmp);
    }
    pthread_mutex_unlock(&s->fwd_mu);
    if (st != SESLM_OK) {
        char why[600];
        snprintf(why, sizeof why, "%s", seslm_last_error());
        st = seslm_fail(st, "%s: warm-up failed: %s", dir, why);
        goto fail;
    }
    if (s->telemetry) { // the window starts when the slot goes live (the warm-up is not traffic)
        seslm_telemetry_reset(slot->tel[0]);
        seslm_encoder_set_telemetry(slot->e, slot->tel[0]);
        slot->tel_active = 0;
    }
    *out = slot;
    return SESLM_OK;
fail:
    serve_slot_destroy(slot);
    return st;
}

serve_slot *serve_slot_acquire(seslm_server *s) {
    pthread_mutex_lock(&s->reg_mu);
    serve_slot *slot = s->current;
    if (slot) atomic_fetch_add(&slot->refs, 1);
    pthread_mutex_unlock(&s->reg_mu);
    return slot;
}

void serve_slot_release(serve_slot *slot) {
    if (!slot) return;
    if (atomic_fetch_sub(&slot->refs, 1) == 1) serve_janitor_retire(slot->srv, slot);
}
