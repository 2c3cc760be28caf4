/* janitor.c — the server's telemetry thread: writes closed telemetry windows as dump files and frees
 * retired model slots, so neither the batcher nor a connection thread ever waits on the disk.
 *
 * Rotation (every window_seconds, by the batcher between passes): the slot's spare telemetry object is
 * reset and attached to the encoder, and the one that was attached is queued here with a reference
 * on its slot. Retirement (the last reference to a slot is dropped: after a reload, or at shutdown): the
 * open window is written as a final dump and the slot freed. One thread does all the writing, in
 * order, so the dump writer never runs concurrently with itself. */
#include "serve_internal.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TJ_ROTATE, TJ_RETIRE };

struct serve_tjob {
    int kind;
    serve_slot *slot;
    seslm_telemetry *tel; // TJ_ROTATE: the closed window
    uint64_t rejected;    // TJ_ROTATE: inputs refused in it
    serve_tjob *next;
};

static void enqueue(seslm_server *s, serve_tjob *j) {
    atomic_fetch_add(&s->j_pending, 1);
    pthread_mutex_lock(&s->j_mu);
    if (s->j_tail) s->j_tail->next = j;
    else s->j_head = j;
    s->j_tail = j;
    pthread_cond_signal(&s->j_cv);
    pthread_mutex_unlock(&s->j_mu);
}

static void write_window(seslm_server *s, serve_slot *slot, seslm_telemetry *t, uint64_t rejected) {
    char path[PATH_MAX + 256] = "", err[600] = "";
    serve_dump_info info = {.node = s->node, .model_id = slot->id, .seq = ++s->dump_seq, .n_rejected = rejected};
    char **il = NULL;
    uint64_t *ic = NULL;
    info.n_intents = serve_intent_take_counts(s, &il, &ic);
    info.intent_labels = (const char *const *)il;
    info.intent_counts = ic;
    int rc = serve_dump_write(t, s->tel_dir, &info, path, sizeof path, err, sizeof err);
    serve_intent_free_counts(il, ic, info.n_intents);
    if (rc != 0) fprintf(stderr, "seslm serve: telemetry dump failed: %s\n", err);
    else fprintf(stderr, "seslm serve: telemetry window of %s written to %s\n", slot->id, path);
    if (rc == 0) serve_upload_kick(s);
    serve_metrics_dump(&s->metrics, rc == 0);
}

static void *janitor_main(void *arg) {
    seslm_server *s = arg;
    pthread_mutex_lock(&s->j_mu);
    for (;;) {
        while (!s->j_head && !s->j_stop) pthread_cond_wait(&s->j_cv, &s->j_mu);
        serve_tjob *j = s->j_head;
        if (!j) break; // stopping and drained
        s->j_head = j->next;
        if (!s->j_head) s->j_tail = NULL;
        pthread_mutex_unlock(&s->j_mu);
        if (j->kind == TJ_ROTATE) {
            write_window(s, j->slot, j->tel, j->rejected);
            atomic_store(&j->slot->tel_spare_busy, 0);
            serve_slot_release(j->slot); // may retire it: that queues a job behind this one
        } else {
            if (s->telemetry && j->slot->tel[j->slot->tel_active])
                write_window(s, j->slot, j->slot->tel[j->slot->tel_active], atomic_exchange(&j->slot->rejected, 0));
            serve_slot_destroy(j->slot);
        }
        free(j);
#if defined(__GLIBC__)
        // give the freed pages back: a reload frees the old model's tokenizer and buffers (tens of thousands of
        // small blocks) and a dump HDF5's working memory, in the arenas of whichever threads allocated them;
        // glibc returns only the top of a heap, so the holes stayed resident and RSS crept up by ~100 MB/hour
        // under the soak's reloads (malloc's in-use bytes flat, its free bytes growing: bench/RESULTS.md 14)
        malloc_trim(0);
#endif
        atomic_fetch_sub(&s->j_pending, 1); // written (or failed) and counted in the metrics
        pthread_mutex_lock(&s->j_mu);
    }
    pthread_mutex_unlock(&s->j_mu);
    return NULL;
}

int serve_telemetry_rotate(seslm_server *s, serve_slot *slot) {
    if (!slot->tel[0]) return 1;
    if (atomic_load(&slot->tel_spare_busy)) return 0;
    serve_tjob *j = calloc(1, sizeof *j);
    if (!j) return 0;
    const int old = slot->tel_active, nw = 1 - old;
    seslm_telemetry_reset(slot->tel[nw]);
    seslm_encoder_set_telemetry(slot->e, slot->tel[nw]); // the batcher runs every pass: none is running now
    slot->tel_active = nw;
    atomic_store(&slot->tel_spare_busy, 1);
    atomic_fetch_add(&slot->refs, 1);
    *j = (serve_tjob){TJ_ROTATE, slot, slot->tel[old], atomic_exchange(&slot->rejected, 0), NULL};
    enqueue(s, j);
    return 1;
}

void serve_janitor_retire(seslm_server *s, serve_slot *slot) {
    serve_tjob *j = s->janitor_up ? calloc(1, sizeof *j) : NULL;
    if (!j) { // no telemetry thread (start-up failure) or no memory: free here, without a dump
        serve_slot_destroy(slot);
        return;
    }
    *j = (serve_tjob){TJ_RETIRE, slot, NULL, 0, NULL};
    enqueue(s, j);
}

seslm_status serve_janitor_start(seslm_server *s) {
    if (pthread_create(&s->janitor, NULL, janitor_main, s) != 0)
        return seslm_fail(SESLM_ERR_INTERNAL, "cannot start the telemetry thread");
    s->janitor_up = 1;
    return SESLM_OK;
}

void serve_janitor_stop(seslm_server *s) {
    if (!s->janitor_up) return;
    pthread_mutex_lock(&s->j_mu);
    s->j_stop = 1;
    pthread_cond_broadcast(&s->j_cv);
    pthread_mutex_unlock(&s->j_mu);
    pthread_join(s->janitor, NULL);
    s->janitor_up = 0;
}
