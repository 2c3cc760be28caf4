/* bench_kernels.c — kernel micro-benchmarks of the linear layers at the model's shapes: dense F32 (panel
 * kernel), dense INT8 (VNNI) and 2:4 sparse F32, each pair interleaved in one run (pipeline/recompile/sparsity.c).
 *
 *   bench_kernels [--threads N] [--repeats R]
 *
 * One JSON line per (shape, M, dense kind): medians in ms, spread = (p90 - p10) / median, and the
 * achieved GFLOP/s of each (2 M N K; the sparse product does half the multiply-adds, counted as dense). */
#include "backend.h"
#include "quant.h"
#include "sparsity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    int threads = 2, repeats = 30;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            printf("usage: bench_kernels [--threads N] [--repeats R]\n");
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "bench_kernels: %s needs a value\n", argv[i]);
            return 2;
        }
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeats")) repeats = atoi(argv[++i]);
        else {
            fprintf(stderr, "bench_kernels: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    seslm_backend_cpu_fast()->set_threads(threads);
    // (N, K): fused QKV, attention output, FFN in, FFN out of MiniLM; M: one short sentence, 32 of them
    const int shapes[4][2] = {{1152, 384}, {384, 384}, {1536, 384}, {384, 1536}};
    const char *names[4] = {"qkv", "attn_out", "ffn_in", "ffn_out"};
    const int Ms[2] = {12, 384};
    for (int s = 0; s < 4; s++)
        for (int mi = 0; mi < 2; mi++)
            for (int q = 0; q < 2; q++) {
                seslm_sparse24_timing t;
                const int M = Ms[mi], N = shapes[s][0], K = shapes[s][1];
                if (seslm_sparse24_benchmark(&t, M, N, K, q, repeats) != SESLM_OK) {
                    fprintf(stderr, "bench_kernels: %s\n", seslm_last_error());
                    return 1;
                }
                const double gf = 2.0 * M * N * K / 1e6;
                printf("{\"shape\":\"%s\",\"M\":%d,\"N\":%d,\"K\":%d,\"threads\":%d,\"dense\":\"%s\",\"isa_int8\":\"%s\","
                       "\"dense_ms\":%.4f,\"dense_spread\":%.3f,\"sparse24_f32_ms\":%.4f,\"sparse_spread\":%.3f,"
                       "\"dense_gflops\":%.1f,\"sparse24_gflops_dense_equiv\":%.1f}\n",
                       names[s], M, N, K, threads, t.dense, seslm_qgemm_isa(), t.dense_ms, t.dense_spread, t.sparse_ms,
                       t.sparse_spread, gf / t.dense_ms, gf / t.sparse_ms);
                fflush(stdout);
            }
    return 0;
}
