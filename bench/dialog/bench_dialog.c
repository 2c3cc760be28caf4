/* bench_dialog.c — cost of one conversation turn (seslm_dialog_step) with the session store in memory
 * and in an SQLite file (WAL, synchronous=FULL: every turn is fsynced before it returns), and of a
 * turn that consults the learned ranking (a goal with an alternative and a few hundred logged outcomes).
 *
 *   build/bench/bench_dialog [DIR (for the file; default /tmp)] [TURNS per run (default 500)]
 *
 * Prints per store: the median and min / max over 5 runs of the mean microseconds per turn. */
#include "dialog_policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static const char *POLICY = "goals:\n  - intent: request_data\n    slots: [report_type, date]\n    action: fetch_data\n"
                            "    alternatives: [handoff]\n";

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    const int turns = argc > 2 ? atoi(argv[2]) : 500;
    char db[512];
    snprintf(db, sizeof db, "%s/bench_dialog_%d.db", dir, (int)getpid());
    seslm_dialog_policy p;
    if (seslm_dialog_policy_load_string(&p, "bench.yaml", POLICY, strlen(POLICY)) != SESLM_OK) return 1;
    for (int mode = 0; mode < 2; mode++) {
        double runs[5];
        for (int r = 0; r < 5; r++) {
            seslm_dialog *d = NULL;
            if (seslm_dialog_open(&d, &p, mode ? db : NULL, 86400) != SESLM_OK) {
                fprintf(stderr, "bench_dialog: %s\n", seslm_last_error());
                return 1;
            }
            const char *k[2] = {"report_type", "date"}, *v[2] = {"blood_test", "2026-01-08"};
            double t0 = now_us();
            for (int i = 0; i < turns; i++) {
                char sess[32];
                snprintf(sess, sizeof sess, "s%d", i % 50);
                seslm_dialog_decision dd;
                // every other turn completes the goal: a learned-ranking decision, then an outcome
                if (seslm_dialog_step(d, sess, "request_data", 0.9, k, v, i % 2 ? 2 : 1, &dd) != SESLM_OK) return 1;
                char act[SESLM_DIALOG_NAME];
                if (i % 2 && seslm_dialog_outcome(d, sess, i % 3 == 0, act) != SESLM_OK) return 1;
            }
            runs[r] = (now_us() - t0) / turns;
            seslm_dialog_free(d);
        }
        qsort(runs, 5, sizeof runs[0], cmp);
        printf("%-7s turns=%d  us/turn (incl. outcome on every other turn): median %.1f  min %.1f  max %.1f\n",
               mode ? "file" : "memory", turns, runs[2], runs[0], runs[4]);
    }
    char wal[600], shm[600];
    snprintf(wal, sizeof wal, "%s-wal", db);
    snprintf(shm, sizeof shm, "%s-shm", db);
    unlink(db);
    unlink(wal);
    unlink(shm);
    seslm_dialog_policy_free(&p);
    return 0;
}
