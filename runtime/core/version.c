/* version.c — provenance: what build produced an output (stamped into students, dumps, verdicts, registry
 * rows, /info and `seslm --version`). The commit comes from CMake at configure time. */
/* Whether the build made the CUDA backend plugin: known at configure time. Asking seslm_built_with_cuda()
 * here would dlopen the plugin (and cuBLAS) in every command that stamps its outputs, just to say so. */
#ifndef SESLM_CUDA_PLUGIN_BUILT
#define SESLM_CUDA_PLUGIN_BUILT 0
#endif
#include "seslm.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#ifndef SESLM_VERSION
#define SESLM_VERSION "0.0.0"
#endif
#ifndef SESLM_GIT_COMMIT
#define SESLM_GIT_COMMIT "unknown"
#endif
#ifndef SESLM_BUILD_TYPE
#define SESLM_BUILD_TYPE ""
#endif

const char *seslm_version(void) { return SESLM_VERSION; }
const char *seslm_build_commit(void) { return SESLM_GIT_COMMIT; }

const char *seslm_build_compiler(void) {
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#else
    return "unknown";
#endif
}

static char cpu_buf[512], info_buf[1024];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void feat(char *b, size_t cap, const char *name) {
    snprintf(b + strlen(b), cap - strlen(b), "%s%s", b[0] && b[strlen(b) - 1] != ' ' ? " " : "", name);
}

static void build_strings(void) {
    char built[200] = "", have[200] = "";
#if defined(__x86_64__) || defined(__i386__)
    feat(built, sizeof built, "x86_64");
#if defined(__AVX2__)
    feat(built, sizeof built, "avx2");
#endif
#if defined(__FMA__)
    feat(built, sizeof built, "fma");
#endif
#if defined(__AVX512F__)
    feat(built, sizeof built, "avx512f");
#endif
#if defined(__AVX512VNNI__)
    feat(built, sizeof built, "avx512vnni");
#endif
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) feat(have, sizeof have, "avx2");
    if (__builtin_cpu_supports("fma")) feat(have, sizeof have, "fma");
    if (__builtin_cpu_supports("avx512f")) feat(have, sizeof have, "avx512f");
    if (__builtin_cpu_supports("avx512vnni")) feat(have, sizeof have, "avx512vnni");
#elif defined(__aarch64__)
    feat(built, sizeof built, "aarch64");
#else
    feat(built, sizeof built, "generic");
#endif
    snprintf(cpu_buf, sizeof cpu_buf, "build: %s; cpu: %s", built, have[0] ? have : "(baseline)");
    char comp[128];
    snprintf(comp, sizeof comp, "%s", seslm_build_compiler());
    for (char *c = comp; *c; c++)
        if (*c == '"' || *c == '\\') *c = '\'';
    snprintf(info_buf, sizeof info_buf,
             "{\"version\":\"%s\",\"commit\":\"%s\",\"compiler\":\"%s\",\"build_type\":\"%s\",\"cpu_features\":\"%s\","
             "\"cuda\":%s}",
             SESLM_VERSION, SESLM_GIT_COMMIT, comp, SESLM_BUILD_TYPE, cpu_buf, SESLM_CUDA_PLUGIN_BUILT ? "true" : "false");
}

const char *seslm_build_cpu_features(void) {
    pthread_once(&once, build_strings);
    return cpu_buf;
}

const char *seslm_build_info_json(void) {
    pthread_once(&once, build_strings);
    return info_buf;
}
