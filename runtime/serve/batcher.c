/* batcher.c — coalesces the texts of concurrent requests into forward passes.
 *
 * Connection threads tokenize their texts, queue one job each and sleep on the job's condition
 * variable. One batcher thread takes texts from the head of the queue, in order — up to max_batch texts
 * and up to max_batch_tokens tokens (the first text always fits), all from jobs bound to the same model
 * slot, a large job split over several passes — runs one forward pass, copies each job's rows out and
 * wakes the jobs that are complete. The token budget bounds a pass's cost (it grows with tokens, not
 * texts): a few long texts no longer make a full-count batch that holds every short request behind it.
 *
 * When to run: at once if no other request is being received (`arriving` == 0), else after up to
 * batch_wait_us from the head job's arrival, or as soon as max_batch texts or max_batch_tokens tokens
 * are queued. So a lone client never waits for company, and under concurrency the passes fill up. Between passes the batcher also
 * rotates the telemetry window of the live model (it is the only thread that touches it). */
#include "serve_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    serve_job *job;
    int first, count;
} seg;

void serve_arriving_add(seslm_server *s, int delta) {
    pthread_mutex_lock(&s->q_mu);
    s->arriving += delta;
    if (delta < 0) pthread_cond_signal(&s->q_cv);
    pthread_mutex_unlock(&s->q_mu);
}

int serve_batcher_submit(seslm_server *s, serve_job *job) {
    job->next = job->done = job->failed = job->finished = 0;
    job->first_ns = job->compute_ns = 0;
    job->err[0] = 0;
    job->qnext = NULL;
    job->span = serve_otlp_new_ref(s); // known before any pass runs: the batch spans link to it
    if (serve_cond_init_mono(&job->cv) != 0) {
        snprintf(job->err, sizeof job->err, "cannot create a condition variable");
        return -1;
    }
    pthread_mutex_lock(&s->q_mu);
    job->enq_ns = serve_now_mono_ns();
    if (s->q_tail) s->q_tail->qnext = job;
    else s->q_head = job;
    s->q_tail = job;
    s->q_texts += job->n;
    atomic_store(&s->queue_gauge, s->q_texts);
    pthread_cond_signal(&s->q_cv);
    while (!job->finished) pthread_cond_wait(&job->cv, &s->q_mu);
    pthread_mutex_unlock(&s->q_mu);
    pthread_cond_destroy(&job->cv);
    if (s->otlp) { // its span (otlp.c): queued, never waited for
        const int64_t now = serve_now_mono_ns(), real = serve_now_real_ns();
        serve_span sp = {.kind = SERVE_SPAN_REQUEST, .start_unix_ns = real - (now - job->enq_ns), .end_unix_ns = real,
                         .queue_ns = job->first_ns ? job->first_ns - job->enq_ns : now - job->enq_ns,
                         .compute_ns = job->compute_ns, .texts = job->n, .ok = !job->failed, .id = job->span};
        for (int i = 0; i < job->n; i++) sp.tokens += job->lens[i];
        snprintf(sp.model, sizeof sp.model, "%s", job->slot ? job->slot->id : "");
        serve_otlp_span(s, &sp);
    }
    return job->failed ? -1 : 0;
}

// Whether the texts queued for the head job's slot (up to the first job bound to another slot) fill a
// pass: max_batch texts or the token budget (q_mu held).
static int head_full(const seslm_server *s, int max_texts, int64_t max_tokens) {
    int n = 0;
    int64_t tok = 0;
    for (const serve_job *j = s->q_head; j && j->slot == s->q_head->slot && j->features == s->q_head->features;
         j = j->qnext)
        for (int k = j->next; k < j->n; k++) {
            if (++n >= max_texts || (tok += j->lens[k]) >= max_tokens) return 1;
        }
    return 0;
}

static void queue_remove(seslm_server *s, serve_job *job) {
    serve_job *prev = NULL;
    for (serve_job *j = s->q_head; j; prev = j, j = j->qnext) {
        if (j != job) continue;
        if (prev) prev->qnext = j->qnext;
        else s->q_head = j->qnext;
        if (s->q_tail == j) s->q_tail = prev;
        s->q_texts -= j->n - j->next;
        j->next = j->n;
        return;
    }
}

static void maybe_rotate(seslm_server *s) {
    if (!s->telemetry || serve_now_mono_ns() < s->next_rotate_ns) return;
    serve_slot *slot = serve_slot_acquire(s);
    int ok = slot ? serve_telemetry_rotate(s, slot) : 1;
    serve_slot_release(slot);
    const int64_t now = serve_now_mono_ns(), window = (int64_t)s->o.window_seconds * 1000000000;
    if (!ok) { // the spare is still being written: keep this window open a second longer
        s->next_rotate_ns = now + 1000000000;
        return;
    }
    s->next_rotate_ns += window;
    if (s->next_rotate_ns <= now) s->next_rotate_ns = now + window;
}

/* The span of one forward pass (otlp.c): its own trace, a link to the request span of each job it ran texts
 * of (a pass serves requests of many traces, so no one of them is its parent). Called before the jobs are
 * woken: they (and their span ids) are alive. */
static void batch_span(seslm_server *s, const serve_slot *slot, const seg *segs, int nseg, const int *lens, int n,
                       int64_t t0, int64_t t1, int ok) {
    serve_span sp = {.kind = SERVE_SPAN_BATCH, .texts = n, .ok = ok, .compute_ns = t1 - t0};
    const int64_t real = serve_now_real_ns(), now = serve_now_mono_ns();
    sp.start_unix_ns = real - (now - t0), sp.end_unix_ns = real - (now - t1);
    for (int i = 0; i < n; i++) {
        sp.tokens += lens[i];
        if (lens[i] > sp.max_text_tokens) sp.max_text_tokens = lens[i];
    }
    snprintf(sp.model, sizeof sp.model, "%s", slot->id);
    sp.id = serve_otlp_new_ref(s);
    sp.links = malloc((size_t)nseg * sizeof *sp.links); // no memory: the span goes without its links
    for (int g = 0; sp.links && g < nseg; g++) sp.links[sp.n_links++] = segs[g].job->span;
    serve_otlp_span(s, &sp);
}

static void *batcher_main(void *arg) {
    seslm_server *s = arg;
    const int B = s->o.max_batch;
    const int64_t budget = s->o.max_batch_tokens > 0 ? s->o.max_batch_tokens : INT64_MAX;
    seg *segs = s->bat_segs;
    const int32_t **rows = s->bat_rows;
    int *lens = s->bat_lens;
    float *out = NULL;
    size_t out_cap = 0;
    const int64_t wait_ns = (int64_t)s->o.batch_wait_us * 1000;

    pthread_mutex_lock(&s->q_mu);
    for (;;) {
        if (s->telemetry && serve_now_mono_ns() >= s->next_rotate_ns) {
            pthread_mutex_unlock(&s->q_mu);
            maybe_rotate(s);
            pthread_mutex_lock(&s->q_mu);
        }
        if (!s->q_head) {
            if (s->q_stop) break;
            if (s->telemetry) serve_cond_wait_until(&s->q_cv, &s->q_mu, s->next_rotate_ns);
            else pthread_cond_wait(&s->q_cv, &s->q_mu);
            continue;
        }
        // give requests that are still being received a moment to join this pass
        const int64_t deadline = s->q_head->enq_ns + wait_ns;
        while (!s->q_stop && s->arriving > 0 && !head_full(s, B, budget) && serve_now_mono_ns() < deadline)
            serve_cond_wait_until(&s->q_cv, &s->q_mu, deadline);

        serve_slot *slot = s->q_head->slot;
        const int feat = s->q_head->features, width = slot->hidden * (feat > 1 ? feat : 1); // (out's row width)
        int n = 0, nseg = 0, full = 0;
        int64_t ntok_pass = 0;
        for (serve_job *j = s->q_head; j && !full && n < B && j->slot == slot && j->features == feat; j = j->qnext) {
            int take = j->n - j->next < B - n ? j->n - j->next : B - n;
            for (int k = 0; k < take; k++) { // the token budget: in order, the first text of a pass always fits
                if (n + k > 0 && ntok_pass + j->lens[j->next + k] > budget) {
                    take = k;
                    full = 1;
                    break;
                }
                ntok_pass += j->lens[j->next + k];
            }
            if (take <= 0) continue;
            segs[nseg++] = (seg){j, j->next, take};
            for (int k = 0; k < take; k++) {
                rows[n + k] = j->ids + (size_t)(j->next + k) * j->cap;
                lens[n + k] = j->lens[j->next + k];
            }
            j->next += take;
            n += take;
        }
        while (s->q_head && s->q_head->next == s->q_head->n) { // fully scheduled jobs leave the queue
            s->q_head = s->q_head->qnext;
            if (!s->q_head) s->q_tail = NULL;
        }
        s->q_texts -= n;
        atomic_store(&s->queue_gauge, s->q_texts);
        pthread_mutex_unlock(&s->q_mu);

        seslm_status st = SESLM_OK;
        char err[512] = "";
        const size_t need = (size_t)n * width;
        if (need > out_cap) {
            float *o2 = realloc(out, need * sizeof(float));
            if (o2) {
                out = o2;
                out_cap = need;
            } else {
                st = seslm_fail(SESLM_ERR_NOMEM, "out of memory for a batch of %d", n);
            }
        }
        int64_t t0 = serve_now_mono_ns();
        if (st == SESLM_OK) {
            pthread_mutex_lock(&s->fwd_mu);
            st = feat > 1 ? seslm_encoder_features_ids(slot->e, rows, lens, n, feat, out)
                          : seslm_encoder_forward_ids(slot->e, rows, lens, n, out);
            pthread_mutex_unlock(&s->fwd_mu);
        }
        const int64_t t1 = serve_now_mono_ns();
        double secs = (double)(t1 - t0) * 1e-9;
        if (st != SESLM_OK) snprintf(err, sizeof err, "forward pass failed: %s", seslm_last_error());
        if (s->otlp) batch_span(s, slot, segs, nseg, lens, n, t0, t1, st == SESLM_OK);
        int64_t ntok = 0;
        for (int i = 0; i < n; i++) ntok += lens[i];
        if (st == SESLM_OK) {
            serve_metrics_batch(&s->metrics, slot->id, n, ntok, secs);
            for (int g = 0, r = 0; g < nseg; r += segs[g].count, g++)
                memcpy(segs[g].job->out + (size_t)segs[g].first * width, out + (size_t)r * width,
                       (size_t)segs[g].count * width * sizeof(float));
        }

        pthread_mutex_lock(&s->q_mu);
        for (int g = 0; g < nseg; g++) {
            serve_job *j = segs[g].job;
            if (j->finished) continue;
            if (!j->first_ns) j->first_ns = t0;
            j->compute_ns += serve_now_mono_ns() - t0;
            j->done += segs[g].count;
            if (st != SESLM_OK) {
                j->failed = 1;
                snprintf(j->err, sizeof j->err, "%s", err);
                queue_remove(s, j); // its remaining texts will not run
            }
            if (j->failed || j->done == j->n) {
                if (!j->failed && slot->tel[slot->tel_active]) seslm_telemetry_count_request(slot->tel[slot->tel_active]);
                j->finished = 1;
                pthread_cond_signal(&j->cv);
            }
        }
        atomic_store(&s->queue_gauge, s->q_texts);
    }
    pthread_mutex_unlock(&s->q_mu);
    free(out);
    return NULL;
}

seslm_status serve_batcher_start(seslm_server *s) {
    if (s->telemetry) s->next_rotate_ns = serve_now_mono_ns() + (int64_t)s->o.window_seconds * 1000000000;
    s->bat_segs = malloc((size_t)s->o.max_batch * sizeof(seg));
    s->bat_rows = malloc((size_t)s->o.max_batch * sizeof *s->bat_rows);
    s->bat_lens = malloc((size_t)s->o.max_batch * sizeof *s->bat_lens);
    if (!s->bat_segs || !s->bat_rows || !s->bat_lens) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    if (pthread_create(&s->batcher, NULL, batcher_main, s) != 0)
        return seslm_fail(SESLM_ERR_INTERNAL, "cannot start the batcher thread");
    s->batcher_up = 1;
    return SESLM_OK;
}

void serve_batcher_stop(seslm_server *s) {
    if (!s->batcher_up) return;
    pthread_mutex_lock(&s->q_mu);
    s->q_stop = 1;
    pthread_cond_broadcast(&s->q_cv);
    pthread_mutex_unlock(&s->q_mu);
    pthread_join(s->batcher, NULL);
    s->batcher_up = 0;
}

void serve_batcher_free(seslm_server *s) {
    free(s->bat_segs);
    free(s->bat_rows);
    free(s->bat_lens);
    s->bat_segs = NULL;
    s->bat_rows = NULL;
    s->bat_lens = NULL;
}
