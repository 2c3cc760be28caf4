/* progress.c — see progress.h. */
#include "progress.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void seslm_progress_init(seslm_progress *p, FILE *f, const char *label, const char *unit, int64_t total) {
    memset(p, 0, sizeof *p);
    p->f = f;
    snprintf(p->label, sizeof p->label, "%s", label);
    snprintf(p->unit, sizeof p->unit, "%s", unit ? unit : "");
    p->total = total;
    p->t0 = p->last = mono();
    p->tty = f && isatty(fileno(f));
    const char *q = getenv("SESLM_PROGRESS"), *s = getenv("SESLM_PROGRESS_SECONDS");
    p->quiet = !f || (q && strcmp(q, "0") == 0);
    p->interval = p->tty ? 0.2 : 10.0;
    if (s && atof(s) > 0) p->interval = atof(s);
}

static void fmt_secs(char *b, size_t cap, double s) {
    if (s < 60) snprintf(b, cap, "%.0f s", s);
    else if (s < 3600) snprintf(b, cap, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(b, cap, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
}

void seslm_progress_format(const seslm_progress *p, double now, char *buf, size_t cap) {
    const double dt = now - p->t0, rate = dt > 0 ? (double)p->done / dt : 0;
    char el[32], eta[32] = "";
    fmt_secs(el, sizeof el, dt);
    int n;
    if (p->total > 0) {
        n = snprintf(buf, cap, "%s %lld/%lld %s (%.0f%%)", p->label, (long long)p->done, (long long)p->total, p->unit,
                     100.0 * (double)p->done / (double)p->total);
        if (p->done > 0 && p->done < p->total) fmt_secs(eta, sizeof eta, (double)(p->total - p->done) / rate);
    } else {
        n = snprintf(buf, cap, "%s %lld %s", p->label, (long long)p->done, p->unit);
    }
    if (n < 0 || (size_t)n >= cap) return;
    snprintf(buf + n, cap - (size_t)n, ", %.1f %s/s, %s elapsed%s%s%s%s", rate, p->unit[0] ? p->unit : "units", el,
             eta[0] ? ", ETA " : "", eta, p->note[0] ? ", " : "", p->note);
}

void seslm_progress_note(seslm_progress *p, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->note, sizeof p->note, fmt, ap);
    va_end(ap);
}

void seslm_progress_say(seslm_progress *p, const char *fmt, ...) {
    if (!p->f) return;
    if (p->tty && p->open_line) fputs("\r\033[K", p->f); // the next update redraws the progress line
    p->open_line = 0;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->f, fmt, ap);
    va_end(ap);
    fputc('\n', p->f);
    fflush(p->f);
}

static void emit(seslm_progress *p, double now, int final) {
    char line[512];
    seslm_progress_format(p, now, line, sizeof line);
    if (p->tty) { // rewrite the one line; end it only at the finish
        fprintf(p->f, "\r%s\033[K%s", line, final ? "\n" : "");
        p->open_line = !final;
    } else {
        fprintf(p->f, "%s\n", line);
    }
    fflush(p->f);
    p->last = now;
}

void seslm_progress_update(seslm_progress *p, int64_t done) {
    p->done = done;
    if (p->quiet) return;
    const double now = mono();
    if (now - p->last >= p->interval || (p->total > 0 && done >= p->total && p->tty)) emit(p, now, 0);
}

void seslm_progress_finish(seslm_progress *p) {
    if (p->quiet) return;
    emit(p, mono(), 1);
}
