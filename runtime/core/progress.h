/* progress.h — progress of long work on a stream (standard error): on a terminal one line rewritten in
 * place (at most 5 times a second) with the rate and an ETA; otherwise, as in CI logs, a plain line every
 * SESLM_PROGRESS_SECONDS (default 10) seconds and at the end, never a carriage return. SESLM_PROGRESS=0
 * silences it. Not thread-safe: one updater. */
#ifndef SESLM_PROGRESS_H
#define SESLM_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct {
    FILE *f;
    char label[96];  // "seslm recompile: calibration"
    char unit[24];   // "texts"
    int64_t total;   // <= 0: unknown (no percentage, no ETA)
    int64_t done;
    double t0, last; // monotonic seconds
    double interval; // between two lines
    int tty, quiet, open_line;
    char note[160];  // appended to the line ("loss 0.0123"); seslm_progress_note
} seslm_progress;

void seslm_progress_init(seslm_progress *p, FILE *f, const char *label, const char *unit, int64_t total);
/* Records done units; prints when the interval has passed (always when done reaches total). */
void seslm_progress_update(seslm_progress *p, int64_t done);
/* Sets the text appended to the following lines (printf format; "" clears it). */
void seslm_progress_note(seslm_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints a message line (label-free, newline added) without breaking the progress line: on a terminal the
 * rewritten line is cleared first and redrawn at the next update. Printed even when progress is silenced. */
void seslm_progress_say(seslm_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the final line (on a terminal: ends the rewritten one). */
void seslm_progress_finish(seslm_progress *p);
/* Formats the line (without line end) into buf; exposed for tests. */
void seslm_progress_format(const seslm_progress *p, double now, char *buf, size_t cap);

#endif
