/* test.h — a minimal assertion harness: every check prints file:line on failure and counts it. */
#ifndef SESLM_TEST_H
#define SESLM_TEST_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_failures = 0;
static int t_checks = 0;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        t_checks++;                                                                       \
        if (!(cond)) {                                                                    \
            t_failures++;                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);      \
        }                                                                                 \
    } while (0)

#define CHECK_MSG(cond, ...)                                                              \
    do {                                                                                  \
        t_checks++;                                                                       \
        if (!(cond)) {                                                                    \
            t_failures++;                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);      \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                          \
        }                                                                                 \
    } while (0)

/* ctest treats exit code 77 as "skipped" (SKIP_RETURN_CODE), used for "skipped: no GPU". */
#define TEST_SKIP(...)                                                                    \
    do {                                                                                  \
        printf("skipped: " __VA_ARGS__);                                                  \
        printf("\n");                                                                     \
        exit(77);                                                                         \
    } while (0)

/* A skip that CI may forbid: when the environment variable `require` is "1" (ci/test.sh sets
 * SESLM_REQUIRE_PG, _S3, _MODEL, and _GPU on a machine with one), what would be skipped is a failure. */
#define TEST_SKIP_UNLESS(require, ...)                                                    \
    do {                                                                                  \
        const char *req_ = getenv(require);                                               \
        if (req_ && strcmp(req_, "1") == 0) {                                             \
            fprintf(stderr, "FAILED: " require "=1 but this cannot run: " __VA_ARGS__);  \
            fputc('\n', stderr);                                                          \
            exit(1);                                                                      \
        }                                                                                 \
        TEST_SKIP(__VA_ARGS__);                                                           \
    } while (0)

static inline int test_report(const char *name) {
    if (t_failures) {
        fprintf(stderr, "%s: %d of %d checks FAILED\n", name, t_failures, t_checks);
        return 1;
    }
    printf("%s: %d checks passed\n", name, t_checks);
    return 0;
}

/* The real-model oracle tests compare every TEST_ORACLE_STRIDE-th input: 1 in the release build (every input),
 * 4 under AddressSanitizer, whose checks keep GCC from vectorising the kernels' loops (the attention ran ~60x
 * slower there); every code path still runs sanitized, on short and long inputs alike. */
#if defined(__SANITIZE_ADDRESS__)
#define TEST_ORACLE_STRIDE 4
#else
#define TEST_ORACLE_STRIDE 1
#endif

/* Source-tree paths handed in by CMake. */
#ifndef SESLM_SOURCE_DIR
#define SESLM_SOURCE_DIR "."
#endif
#endif
