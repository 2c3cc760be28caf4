// nccl_allreduce.cu — multi-GPU sums of calibration statistics (issue 8, part 5): every rank holds the
// statistics it accumulated over its shard of the calibration text (double arrays: sums of squares,
// Gram matrices, counts as doubles), and after the all-reduce every rank holds the totals. One process,
// one rank per visible GPU (ncclCommInitAll); with one GPU the same code runs with one rank.
//
// NCCL is loaded at run time (dlopen "libnccl.so.2"): the library and every binary keep no link-time
// dependency on it (libnccl is ~200 MB), and a machine without NCCL gets a clear error, not a failed
// start. Types and the two enum values used come from nccl.h when the compiler finds it; otherwise from
// the stable ABI below (ncclFloat64 = 8, ncclSum = 0 since NCCL 2.0).
#include "cuda_common.cuh"
#include "seslm.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#if __has_include(<nccl.h>)
#include <nccl.h>
#else
typedef struct ncclComm *ncclComm_t;
typedef int ncclResult_t;
typedef int ncclDataType_t;
typedef int ncclRedOp_t;
#define ncclSuccess 0
#define ncclFloat64 8
#define ncclSum 0
#endif

typedef struct {
    ncclResult_t (*comm_init_all)(ncclComm_t *, int, const int *);
    ncclResult_t (*all_reduce)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t);
    ncclResult_t (*group_start)(void);
    ncclResult_t (*group_end)(void);
    ncclResult_t (*comm_destroy)(ncclComm_t);
    const char *(*error_string)(ncclResult_t);
} nccl_api;

static int nccl_load(nccl_api *a) {
    void *h = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!h) h = dlopen("libnccl.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) return -1;
    a->comm_init_all = (ncclResult_t(*)(ncclComm_t *, int, const int *))dlsym(h, "ncclCommInitAll");
    a->all_reduce = (ncclResult_t(*)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t,
                                     cudaStream_t))dlsym(h, "ncclAllReduce");
    a->group_start = (ncclResult_t(*)(void))dlsym(h, "ncclGroupStart");
    a->group_end = (ncclResult_t(*)(void))dlsym(h, "ncclGroupEnd");
    a->comm_destroy = (ncclResult_t(*)(ncclComm_t))dlsym(h, "ncclCommDestroy");
    a->error_string = (const char *(*)(ncclResult_t))dlsym(h, "ncclGetErrorString");
    // the handle stays open: NCCL keeps threads and state for the process's lifetime
    return a->comm_init_all && a->all_reduce && a->group_start && a->group_end && a->comm_destroy && a->error_string ? 0 : -1;
}

extern "C" int seslm_cuda_device_count(void);

extern "C" int seslm_nccl_available(void) {
    nccl_api a;
    return nccl_load(&a) == 0;
}

extern "C" seslm_status seslm_nccl_allreduce_sum_f64(double *const *bufs, int n_ranks, size_t n) {
    const int n_dev = seslm_cuda_device_count();
    if (n_ranks < 1 || n_ranks > n_dev)
        return seslm_fail(SESLM_ERR_ARG, "all-reduce over %d ranks: %d GPU(s) visible (one rank per GPU)", n_ranks, n_dev);
    if (n == 0) return SESLM_OK;
    nccl_api api;
    if (nccl_load(&api) != 0) return seslm_fail(SESLM_ERR_ARG, "NCCL is not available (libnccl.so.2 not found)");
    int prev = 0;
    cudaGetDevice(&prev);
    ncclComm_t *comms = (ncclComm_t *)calloc((size_t)n_ranks, sizeof *comms);
    double **d = (double **)calloc((size_t)n_ranks, sizeof *d);
    cudaStream_t *st = (cudaStream_t *)calloc((size_t)n_ranks, sizeof *st);
    int *devs = (int *)calloc((size_t)n_ranks, sizeof *devs);
    seslm_status rc = comms && d && st && devs ? SESLM_OK : seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    for (int r = 0; rc == SESLM_OK && r < n_ranks; r++) {
        devs[r] = r;
        if (cudaCheck(cudaSetDevice(r)) || cudaCheck(cudaStreamCreate(&st[r])) ||
            cudaCheck(cudaMalloc((void **)&d[r], n * sizeof(double))) ||
            cudaCheck(cudaMemcpy(d[r], bufs[r], n * sizeof(double), cudaMemcpyHostToDevice)))
            rc = SESLM_ERR_INTERNAL;
    }
    ncclResult_t nr = ncclSuccess;
    int comms_ok = 0;
    if (rc == SESLM_OK) {
        nr = api.comm_init_all(comms, n_ranks, devs);
        comms_ok = nr == ncclSuccess;
    }
    if (comms_ok) {
        nr = api.group_start();
        for (int r = 0; nr == ncclSuccess && r < n_ranks; r++)
            nr = api.all_reduce(d[r], d[r], n, ncclFloat64, ncclSum, comms[r], st[r]);
        ncclResult_t ne = api.group_end();
        if (nr == ncclSuccess) nr = ne;
    }
    if (rc == SESLM_OK && nr != ncclSuccess)
        rc = seslm_fail(SESLM_ERR_INTERNAL, "NCCL: %s", api.error_string(nr));
    for (int r = 0; rc == SESLM_OK && r < n_ranks; r++) {
        if (cudaCheck(cudaSetDevice(r)) || cudaCheck(cudaStreamSynchronize(st[r])) ||
            cudaCheck(cudaMemcpy(bufs[r], d[r], n * sizeof(double), cudaMemcpyDeviceToHost)))
            rc = SESLM_ERR_INTERNAL;
    }
    for (int r = 0; r < n_ranks && d && st; r++) {
        cudaSetDevice(r);
        if (d[r]) cudaFree(d[r]);
        if (st[r]) cudaStreamDestroy(st[r]);
        if (comms_ok) api.comm_destroy(comms[r]);
    }
    cudaSetDevice(prev);
    if (rc == SESLM_ERR_INTERNAL && seslm_cuda_take_error() == 0) rc = seslm_fail(rc, "NCCL all-reduce failed");
    seslm_cuda_take_error(); // clear anything recorded during the clean-up
    free(comms), free(d), free(st), free(devs);
    return rc;
}
