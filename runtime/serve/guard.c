/* guard.c — what keeps slow or hostile clients from holding the server: an absolute deadline on each
 * request's headers and body (a slowloris client that sends one byte every few seconds never trips an
 * idle timeout), and a rate limit on log lines so a flood of bad connections cannot flood stderr.
 *
 * libmicrohttpd's own timeout is an idle timeout; the deadlines here are absolute. Every connection gets a
 * record (MHD's socket context) with the deadline of the phase it is in; a watchdog thread scans them
 * a few times a second and shuts down (shutdown(2), never close(2): MHD owns the descriptor and closes
 * it itself on the EOF that follows) the sockets past their deadline. Records are removed, under the same
 * mutex, when MHD reports the connection closed, so the watchdog never touches a descriptor MHD let go. */
#include "serve_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#define WATCHDOG_PERIOD_NS 100000000LL // 0.1 s: deadlines are kept to about this precision
#define LOG_WINDOW_NS 10000000000LL    // at most LOG_BURST lines per 10 s
#define LOG_BURST 10

struct serve_conn {
    int fd;
    int phase; // SERVE_PHASE_*
    int dead;  // shut down by the watchdog
    int64_t deadline_ns;
    struct serve_conn *prev, *next;
};

static void *watchdog_main(void *arg) {
    seslm_server *s = arg;
    pthread_mutex_lock(&s->g_mu);
    while (!s->g_stop) {
        int64_t now = serve_now_mono_ns();
        for (serve_conn *c = s->g_conns; c; c = c->next) {
            if (c->phase == SERVE_PHASE_NONE || now < c->deadline_ns) continue;
            if (c->fd >= 0) shutdown(c->fd, SHUT_RDWR);
            atomic_fetch_add(&s->g_timeouts[c->phase == SERVE_PHASE_BODY], 1);
            c->phase = SERVE_PHASE_NONE; // once; MHD now sees EOF and closes it
            c->dead = 1;
        }
        serve_cond_wait_until(&s->g_cv, &s->g_mu, now + WATCHDOG_PERIOD_NS);
    }
    pthread_mutex_unlock(&s->g_mu);
    return NULL;
}

seslm_status serve_guard_start(seslm_server *s) {
    s->g_stop = 0;
    if (pthread_create(&s->g_thread, NULL, watchdog_main, s) != 0)
        return seslm_fail(SESLM_ERR_INTERNAL, "cannot start the connection watchdog thread");
    s->g_up = 1;
    return SESLM_OK;
}

void serve_guard_stop(seslm_server *s) {
    if (!s->g_up) return;
    pthread_mutex_lock(&s->g_mu);
    s->g_stop = 1;
    pthread_cond_signal(&s->g_cv);
    pthread_mutex_unlock(&s->g_mu);
    pthread_join(s->g_thread, NULL);
    s->g_up = 0;
    // records of connections MHD still holds are freed as it reports them closed
}

serve_conn *serve_guard_open(seslm_server *s, int fd) {
    serve_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL; // the connection then simply has no deadline
    c->fd = fd;
    c->phase = SERVE_PHASE_HEADERS;
    c->deadline_ns = serve_now_mono_ns() + (int64_t)s->o.header_timeout_s * 1000000000;
    pthread_mutex_lock(&s->g_mu);
    c->next = s->g_conns;
    if (s->g_conns) s->g_conns->prev = c;
    s->g_conns = c;
    s->g_open++;
    pthread_mutex_unlock(&s->g_mu);
    return c;
}

void serve_guard_close(seslm_server *s, serve_conn *c) {
    if (!c) return;
    pthread_mutex_lock(&s->g_mu);
    if (c->prev) c->prev->next = c->next;
    else s->g_conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->g_open--;
    pthread_mutex_unlock(&s->g_mu);
    free(c);
}

void serve_guard_phase(seslm_server *s, serve_conn *c, int phase) {
    if (!c) return;
    int64_t secs = phase == SERVE_PHASE_HEADERS ? s->o.header_timeout_s : s->o.body_timeout_s;
    pthread_mutex_lock(&s->g_mu);
    if (!c->dead) { // a timed-out one stays timed out
        c->phase = phase;
        c->deadline_ns = serve_now_mono_ns() + secs * 1000000000;
    }
    pthread_mutex_unlock(&s->g_mu);
}

int serve_guard_open_count(seslm_server *s) {
    pthread_mutex_lock(&s->g_mu);
    int n = s->g_open;
    pthread_mutex_unlock(&s->g_mu);
    return n;
}

void serve_log_limited(seslm_server *s, const char *prefix, const char *fmt, va_list ap) {
    pthread_mutex_lock(&s->log_mu);
    int64_t now = serve_now_mono_ns();
    if (now - s->log_window_ns >= LOG_WINDOW_NS) {
        if (s->log_dropped)
            fprintf(stderr, "seslm serve: %llu more log lines like the ones above were dropped in the last %lld s\n",
                    (unsigned long long)s->log_dropped, (long long)((now - s->log_window_ns) / 1000000000));
        s->log_window_ns = now;
        s->log_in_window = 0;
        s->log_dropped = 0;
    }
    if (s->log_in_window < LOG_BURST) {
        s->log_in_window++;
        fputs(prefix, stderr);
        vfprintf(stderr, fmt, ap);
    } else {
        s->log_dropped++;
    }
    pthread_mutex_unlock(&s->log_mu);
}
