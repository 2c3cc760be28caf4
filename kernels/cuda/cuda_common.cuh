// cuda_common.cuh — what every kernel file shares: cudaCheck (records the first failure of this
// thread; library code never exits) and the launch-error check after every <<< >>>.
#pragma once
#include <cuda_runtime.h>

#include "cuda_kernels.h"

extern "C" int seslm_cuda_note(cudaError_t e, const char *what, const char *file, int line);
// Records a failed call (0: ok, -1: failed); usable in conditions.
#define cudaCheck(call) seslm_cuda_note((call), #call, __FILE__, __LINE__)
// After every kernel launch: a bad configuration shows up here, a fault at the next sync.
#define cudaCheckLaunch(name) seslm_cuda_note(cudaGetLastError(), name, __FILE__, __LINE__)

static inline cudaStream_t cu_stream(void) { return (cudaStream_t)seslm_cuda_stream(); }
static inline unsigned cu_blocks(size_t n, unsigned per) { return (unsigned)((n + per - 1) / per); }

// Warp-wide sum / max over all 32 lanes.
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
