// cpu_features.h — which x86 vector extensions this CPU runs: asked of the CPU once per translation unit,
// one answer for every kernel file (private to kernels/cpu; the fast kernels pick their version from it).
// Off x86 (or on compilers without __builtin_cpu_supports) every bit is 0: the portable kernels run.
#pragma once

enum {
    CPU_AVX2_FMA = 1 << 0,    // AVX2 + FMA (every such CPU has F16C too)
    CPU_AVX512F = 1 << 1,     // AVX-512 foundation
    CPU_AVX512BW_VL = 1 << 2, // + byte/word and 256-bit forms (the INT8 / INT4 kernels need both)
    CPU_AVX512VNNI = 1 << 3,  // + vpdpbusd (implies the three above here)
    CPU_AVX512BF16 = 1 << 4,  // + vdpbf16ps (implies AVX512F here)
};

static inline int cpu_features(void) {
    static int f = -1; // benign race: every thread computes the same value
    if (f >= 0) return f;
    int v = 0;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) v |= CPU_AVX2_FMA;
    if (__builtin_cpu_supports("avx512f")) {
        v |= CPU_AVX512F;
        if (__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
            v |= CPU_AVX512BW_VL;
            if (__builtin_cpu_supports("avx512vnni")) v |= CPU_AVX512VNNI;
        }
        if (__builtin_cpu_supports("avx512bf16")) v |= CPU_AVX512BF16;
    }
#endif
    return f = v;
}

static inline int cpu_has(int bits) { return (cpu_features() & bits) == bits; }
