/* test_pool.c — the CPU thread pool (kernels/pool.h):
 *   - every item of [0, n) runs exactly once, for n from 0 to 1000, grains 1..7, thread caps, and thread
 *     ids stay below the cap (per-thread scratch depends on it);
 *   - 3000 jobs back to back with more threads than cores, with spinning and with immediate sleep
 *     (spin 0 µs), lose no item (the sleep / wake handshakes);
 *   - growing the pool after many jobs (workers born at a late generation) loses nothing;
 *   - a job started from inside a task, and two threads dispatching at once, run inline and complete;
 *   - after fork() the child (which has no workers) still completes jobs (validate_memory.c runs the model
 *     in a forked child); a hang is caught by an alarm in the child. */
#include "pool.h"
#include "test.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#define NMAX 1000

typedef struct {
    atomic_int hits[NMAX];
    atomic_int bad_tid;
    int cap;
} count_job;

static void count_task(void *ctx, int lo, int hi, int tid) {
    count_job *j = ctx;
    if (tid < 0 || tid >= j->cap) atomic_fetch_add(&j->bad_tid, 1);
    for (int i = lo; i < hi; i++) atomic_fetch_add(&j->hits[i], 1);
}

/* Runs one job; returns the number of items not hit exactly once (plus bad thread ids). */
static int run_count(int n, int grain, int max_threads) {
    static count_job j;
    for (int i = 0; i < NMAX; i++) atomic_store(&j.hits[i], 0);
    atomic_store(&j.bad_tid, 0);
    j.cap = max_threads > 0 && max_threads < seslm_pool_threads() ? max_threads : seslm_pool_threads();
    seslm_pool_for(n, grain, max_threads, count_task, &j);
    int bad = atomic_load(&j.bad_tid);
    for (int i = 0; i < NMAX; i++) bad += atomic_load(&j.hits[i]) != (i < n ? 1 : 0);
    return bad;
}

typedef struct {
    atomic_int sum;
} nest_job;

static void inner_task(void *ctx, int lo, int hi, int tid) {
    (void)tid;
    nest_job *j = ctx;
    atomic_fetch_add(&j->sum, hi - lo);
}

static void outer_task(void *ctx, int lo, int hi, int tid) {
    (void)tid;
    for (int i = lo; i < hi; i++) seslm_pool_for(10, 1, 0, inner_task, ctx); // inline: no deadlock
}

static void *dispatcher(void *arg) {
    int *bad = arg;
    for (int k = 0; k < 300; k++) {
        nest_job j = {0};
        seslm_pool_for(37, 1, 0, inner_task, &j);
        *bad += atomic_load(&j.sum) != 37;
    }
    return NULL;
}

int main(void) {
    CHECK(seslm_pool_set_threads(1) == 1);
    CHECK(run_count(100, 1, 0) == 0); // one thread: inline
    CHECK(seslm_pool_set_threads(4) == 4);
    for (int n = 0; n <= NMAX; n += (n < 40 ? 1 : 97))
        for (int grain = 1; grain <= 7; grain += 3)
            for (int cap = 0; cap <= 3; cap++) CHECK_MSG(run_count(n, grain, cap) == 0, "n %d grain %d cap %d", n, grain, cap);

    for (int spin = 0; spin <= 50; spin += 50) {
        seslm_pool_set_spin_us(spin);
        int bad = 0;
        for (int k = 0; k < 1500; k++) bad += run_count(1 + k % 97, 1, 0);
        CHECK_MSG(bad == 0, "spin %d us: %d items lost or repeated over 1500 jobs", spin, bad);
        usleep(2000); // let the workers fall asleep: the next job must wake them
        CHECK(run_count(50, 1, 0) == 0);
    }
    seslm_pool_set_spin_us(50);

    // more threads after many jobs: workers created at a late generation must wait for the next job
    // (not count themselves done with a stale one, which would end a job before its items ran)
    CHECK(seslm_pool_set_threads(7) == 7);
    int late = 0;
    for (int k = 0; k < 500; k++) late += run_count(200 + k % 13, 1, 0);
    CHECK_MSG(late == 0, "after growing to 7 threads: %d items lost or repeated", late);
    seslm_pool_set_threads(4);

    nest_job nj = {0};
    seslm_pool_for(8, 1, 0, outer_task, &nj);
    CHECK_MSG(atomic_load(&nj.sum) == 80, "nested jobs covered %d of 80 items", atomic_load(&nj.sum));

    int bad1 = 0, bad2 = 0;
    pthread_t a, b;
    pthread_create(&a, NULL, dispatcher, &bad1);
    pthread_create(&b, NULL, dispatcher, &bad2);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    CHECK_MSG(bad1 == 0 && bad2 == 0, "concurrent dispatchers: %d / %d wrong jobs", bad1, bad2);

    fflush(NULL);
    const pid_t pid = fork();
    if (pid == 0) {
        alarm(20); // a hang (waiting for the parent's workers) kills the child
        int bad = 0;
        for (int k = 0; k < 200; k++) bad += run_count(64, 1, 0);
        _exit(bad == 0 ? 0 : 3);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "forked child: status %d", status);
    CHECK(run_count(NMAX, 1, 0) == 0); // the parent's workers still serve
    return test_report("test_pool");
}
