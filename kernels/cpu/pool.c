/* pool.c — persistent workers, spin-then-futex waits, static ranges with stealing (pool.h).
 *
 * One job at a time: the dispatcher writes the job, bumps `gen` and wakes sleepers; every worker
 * (participating or not) decrements `pending` once per generation, so the dispatcher can reuse the job
 * fields as soon as pending reaches 0. Sleep/wake handshakes (sleepers / main_sleeping against gen /
 * pending) are sequentially consistent: either the waker sees the sleeper counted, or the sleeper's
 * futex_wait sees the new value and returns at once. */
#define _GNU_SOURCE
#include "pool.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define POOL_MAX 256

typedef struct {
    _Atomic int next; // next unclaimed item of this range
    int end;
    char pad[64 - 2 * sizeof(int)]; // one cache line per range: claims do not bounce a shared line
} pool_range;

static struct {
    pthread_mutex_t mu; // serialises worker creation
    int nthreads;       // threads a job may use (caller included)
    _Atomic int nworkers;
    _Atomic unsigned gen;
    _Atomic int sleepers;
    _Atomic int pending;
    _Atomic int main_sleeping;
    atomic_flag busy;
    int spin_us;
    // the job of generation `gen`
    seslm_pool_fn fn;
    void *ctx;
    int nt, grain;
    pool_range r[POOL_MAX];
} P = {.mu = PTHREAD_MUTEX_INITIALIZER, .nthreads = 1, .busy = ATOMIC_FLAG_INIT, .spin_us = -1};

static _Thread_local int tl_in_pool; // nonzero on workers and on a dispatcher while it runs its share
// the generation current when worker t was created: it must wait for the next one, not run a stale job
// (written before pthread_create, which orders it before the worker's first read)
static unsigned start_gen[POOL_MAX + 1];

static void futex_wait(volatile void *addr, unsigned val) {
#ifdef __linux__
    syscall(SYS_futex, (void *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
#else
    (void)addr, (void)val;
    struct timespec ts = {0, 50000};
    nanosleep(&ts, NULL);
#endif
}

static void futex_wake(volatile void *addr) {
#ifdef __linux__
    syscall(SYS_futex, (void *)addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    (void)addr;
#endif
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int spin_us(void) {
    if (P.spin_us < 0) {
        const char *s = getenv("SESLM_POOL_SPIN_US");
        int v = s ? atoi(s) : 50;
        P.spin_us = v < 0 ? 0 : v;
    }
    return P.spin_us;
}

void seslm_pool_set_spin_us(int us) { P.spin_us = us < 0 ? 0 : us; }

// Spins until *a != val or the spin budget is spent; returns the last value read.
static unsigned spin_while_equal(_Atomic unsigned *a, unsigned val) {
    unsigned v = atomic_load(a);
    if (v != val) return v;
    const int64_t budget = (int64_t)spin_us() * 1000;
    if (budget == 0) return v;
    const int64_t t0 = now_ns();
    for (int i = 1;; i++) {
        CPU_RELAX();
        if ((v = atomic_load_explicit(a, memory_order_acquire)) != val) return atomic_load(a);
        if ((i & 63) == 0 && now_ns() - t0 > budget) return v;
    }
}

// Claims and runs chunks of range r until it is empty. Guided chunks: each claim takes a quarter of
// what is left (at least the grain), so the last claims are small and a thread that finishes first finds
// work to take instead of waiting out a quarter of the other's range (fixed quarter-size chunks left up
// to that much imbalance at every op: measured as spin time in perf, ~5% of a batch of short inputs).
static void range_drain(pool_range *r, int tid) {
    for (;;) {
        const int left = r->end - atomic_load_explicit(&r->next, memory_order_relaxed);
        if (left <= 0) return;
        int chunk = (left + 3) / 4;
        if (chunk < P.grain) chunk = P.grain;
        const int i = atomic_fetch_add_explicit(&r->next, chunk, memory_order_relaxed);
        if (i >= r->end) return;
        P.fn(P.ctx, i, i + chunk < r->end ? i + chunk : r->end, tid);
    }
}

// Own range first, then whatever the others have not claimed.
static void job_run(int tid) {
    const int nt = P.nt;
    if (tid >= nt) return;
    for (int k = 0; k < nt; k++) range_drain(&P.r[(tid + k) % nt], tid);
}

static void *worker_main(void *arg) {
    const int tid = (int)(intptr_t)arg;
    tl_in_pool = 1;
    unsigned seen = start_gen[tid];
    for (;;) {
        unsigned g = spin_while_equal(&P.gen, seen);
        if (g == seen) {
            atomic_fetch_add(&P.sleepers, 1);
            while ((g = atomic_load(&P.gen)) == seen) futex_wait(&P.gen, seen);
            atomic_fetch_sub(&P.sleepers, 1);
        }
        seen = g;
        job_run(tid);
        if (atomic_fetch_sub(&P.pending, 1) == 1 && atomic_load(&P.main_sleeping)) futex_wake(&P.pending);
    }
    return NULL;
}

static int cpus_available(void) {
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

// In a forked child only the forking thread exists: forget the parent's workers (the next job starts
// new ones). pipeline/validate/validate_memory.c runs the model in a forked child.
static void pool_atfork_child(void) {
    atomic_store(&P.nworkers, 0);
    atomic_store(&P.sleepers, 0);
    atomic_store(&P.pending, 0);
    atomic_store(&P.main_sleeping, 0);
    atomic_flag_clear(&P.busy);
    pthread_mutex_init(&P.mu, NULL);
}

static void pool_register_atfork(void) { pthread_atfork(NULL, NULL, pool_atfork_child); }

// Starts workers up to nthreads - 1 (fewer if thread creation fails: the pool then uses what it has).
// Called by the dispatcher while it holds `busy`, so no job is in flight.
static void workers_ensure(int want) {
    if (atomic_load(&P.nworkers) >= want) return;
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, pool_register_atfork);
    pthread_mutex_lock(&P.mu);
    while (atomic_load(&P.nworkers) < want) {
        const int w = atomic_load(&P.nworkers);
        // a new worker must not mistake the current generation for a job: it starts from gen as it is
        // now, and no job is in flight (the caller holds `busy`)
        start_gen[w + 1] = atomic_load(&P.gen);
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_t th;
        const int rc = pthread_create(&th, &at, worker_main, (void *)(intptr_t)(w + 1));
        pthread_attr_destroy(&at);
        if (rc != 0) break;
        atomic_fetch_add(&P.nworkers, 1);
    }
    pthread_mutex_unlock(&P.mu);
}

int seslm_pool_set_threads(int n) {
    if (n <= 0) n = cpus_available();
    if (n > POOL_MAX) n = POOL_MAX;
    P.nthreads = n;
    return n;
}

int seslm_pool_threads(void) { return P.nthreads; }

void seslm_pool_for(int n, int grain, int max_threads, seslm_pool_fn fn, void *ctx) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int nt = P.nthreads;
    if (max_threads > 0 && nt > max_threads) nt = max_threads;
    if (nt > (n + grain - 1) / grain) nt = (n + grain - 1) / grain;
    if (nt <= 1 || tl_in_pool || atomic_flag_test_and_set(&P.busy)) {
        fn(ctx, 0, n, 0);
        return;
    }
    workers_ensure(nt - 1);
    const int nw = atomic_load(&P.nworkers);
    if (nt > nw + 1) nt = nw + 1;
    if (nt <= 1) {
        atomic_flag_clear(&P.busy);
        fn(ctx, 0, n, 0);
        return;
    }
    P.fn = fn, P.ctx = ctx, P.nt = nt, P.grain = grain;
    for (int t = 0; t < nt; t++) {
        atomic_store_explicit(&P.r[t].next, (int)((int64_t)n * t / nt), memory_order_relaxed);
        P.r[t].end = (int)((int64_t)n * (t + 1) / nt);
    }
    atomic_store(&P.pending, nw);
    atomic_fetch_add(&P.gen, 1); // publishes the job (seq_cst)
    if (atomic_load(&P.sleepers) > 0) futex_wake(&P.gen);
    tl_in_pool = 1;
    job_run(0);
    tl_in_pool = 0;
    // wait for every worker to have seen this generation: spin, then sleep
    const int64_t budget = (int64_t)spin_us() * 1000, t0 = now_ns();
    for (int i = 1; atomic_load(&P.pending) != 0; i++) {
        CPU_RELAX();
        if ((i & 63) == 0 && now_ns() - t0 > budget) {
            atomic_store(&P.main_sleeping, 1);
            int v;
            while ((v = atomic_load(&P.pending)) != 0) futex_wait(&P.pending, (unsigned)v);
            atomic_store(&P.main_sleeping, 0);
            break;
        }
    }
    atomic_flag_clear(&P.busy);
}
