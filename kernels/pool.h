/* pool.h — the CPU backends' own thread pool (replaces OpenMP in the hot path).
 *
 * Persistent workers, started once; between jobs a worker spins briefly (so back-to-back kernels of
 * one forward pass do not pay a wake-up) and then sleeps on a futex (so that, on a machine where other
 * processes want the cores, an idle worker gives its core away instead of burning its time slice).
 * Work over [0, n) is split into static contiguous ranges, one per thread; a thread that finishes its
 * own range takes items from the ends of the others' ranges, so a worker that the scheduler has
 * descheduled delays the call by at most the item it holds, not by its whole share.
 *
 * No per-call thread creation; a call from inside a pool task, or while another thread is using the
 * pool, runs inline on the caller (correct, just serial). Linux: futex; elsewhere: a condition variable. */
#ifndef SESLM_POOL_H
#define SESLM_POOL_H

/* fn handles items [lo, hi); tid in 0..threads-1 names the executing thread (per-thread scratch). */
typedef void (*seslm_pool_fn)(void *ctx, int lo, int hi, int tid);

/* Threads used by seslm_pool_for (the caller counts as one): n <= 0 means the CPUs this process may
 * run on. Workers are created on demand and kept. Returns the count now in effect. */
int seslm_pool_set_threads(int n);
int seslm_pool_threads(void);

/* Runs fn over [0, n) on up to max_threads threads (<= 0: all) and returns when every item is done.
 * `grain` (>= 1) is the smallest number of items handed out at once. */
void seslm_pool_for(int n, int grain, int max_threads, seslm_pool_fn fn, void *ctx);

/* How long an idle thread spins before sleeping, microseconds (default 50; env SESLM_POOL_SPIN_US). */
void seslm_pool_set_spin_us(int us);

#endif
