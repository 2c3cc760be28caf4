/* workers.c — the bounded pool that runs requests which compute (embed, intent, feedback, retrieve,
 * message, reload). The HTTP poll thread only parses and routes; it suspends such a connection, hands the
 * request here and goes on answering everything else, so /healthz and /metrics stay fast however many
 * slow clients or long requests are open. The queue is bounded: when full, the caller answers 503. */
#include "serve_internal.h"

#include <stdlib.h>

static void *worker_main(void *arg) {
    seslm_server *s = arg;
    pthread_mutex_lock(&s->w_mu);
    for (;;) {
        while (s->w_n == 0 && !s->w_stop) pthread_cond_wait(&s->w_cv, &s->w_mu);
        if (s->w_n == 0) break; // stopping, and nothing left to run
        void *task = s->w_ring[s->w_head];
        s->w_head = (s->w_head + 1) % s->w_cap;
        s->w_n--;
        pthread_mutex_unlock(&s->w_mu);
        s->w_run(s, task);
        pthread_mutex_lock(&s->w_mu);
    }
    pthread_mutex_unlock(&s->w_mu);
    return NULL;
}

seslm_status serve_workers_start(seslm_server *s, int n, int queue_cap, void (*run)(seslm_server *, void *)) {
    s->w_ring = calloc((size_t)queue_cap, sizeof *s->w_ring);
    s->w_threads = calloc((size_t)n, sizeof *s->w_threads);
    if (!s->w_ring || !s->w_threads) return seslm_fail(SESLM_ERR_NOMEM, "out of memory for %d workers", n);
    s->w_cap = queue_cap;
    s->w_run = run;
    s->w_stop = 0;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&s->w_threads[i], NULL, worker_main, s) != 0) {
            serve_workers_stop(s);
            return seslm_fail(SESLM_ERR_INTERNAL, "cannot start request worker %d of %d", i + 1, n);
        }
        s->w_up++;
    }
    return SESLM_OK;
}

int serve_workers_submit(seslm_server *s, void *task) {
    pthread_mutex_lock(&s->w_mu);
    int ok = !s->w_stop && s->w_up > 0 && s->w_n < s->w_cap;
    if (ok) {
        s->w_ring[(s->w_head + s->w_n) % s->w_cap] = task;
        s->w_n++;
        pthread_cond_signal(&s->w_cv);
    }
    pthread_mutex_unlock(&s->w_mu);
    return ok ? 0 : -1;
}

int serve_workers_queued(seslm_server *s) {
    pthread_mutex_lock(&s->w_mu);
    int n = s->w_n;
    pthread_mutex_unlock(&s->w_mu);
    return n;
}

void serve_workers_stop(seslm_server *s) {
    pthread_mutex_lock(&s->w_mu);
    s->w_stop = 1; // what is queued still runs: every suspended connection gets its answer
    pthread_cond_broadcast(&s->w_cv);
    pthread_mutex_unlock(&s->w_mu);
    for (int i = 0; i < s->w_up; i++) pthread_join(s->w_threads[i], NULL);
    s->w_up = 0;
    free(s->w_threads);
    free(s->w_ring);
    s->w_threads = NULL;
    s->w_ring = NULL;
}
