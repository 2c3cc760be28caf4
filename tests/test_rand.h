/* test_rand.h — the seeded generator of the synthetic-data tests (test_intent*.c): a 64-bit LCG for uniforms in
 * [0, 1) and Box-Muller for normals, so each test draws the same data on every machine. Seed it first. */
#ifndef SESLM_TEST_RAND_H
#define SESLM_TEST_RAND_H

#include <math.h>
#include <stdint.h>

static uint64_t test_rand_state = 1;

static inline void test_rand_seed(uint64_t s) { test_rand_state = s; }
static inline double urand(void) {
    test_rand_state = test_rand_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(test_rand_state >> 11) * (1.0 / 9007199254740992.0);
}
static inline double nrand(void) {
    double u = urand() + 1e-12, v = urand();
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

#endif
