// cuda_runtime_glue.cu — errors, device memory, the per-thread stream and scratch for the CUDA kernels.
// A failed CUDA call is recorded (the first per thread, with its call text and place) instead of
// ending the process; the forward pass reports it at its one synchronisation point (the download of
// the pooled output), as a seslm_fail message.
#include "cuda_common.cuh"
#include "seslm.h"

#include <stdio.h>

static thread_local char t_err[512];
static thread_local int t_failed;
// this thread's stream: created on first use (a blocking stream, so it still orders against legacy
// default-stream calls such as a plain cudaMemcpy); a created stream, unlike the per-thread default
// stream, can always be captured into a CUDA graph. Never destroyed (one per thread that used CUDA).
static thread_local cudaStream_t t_stream;
static thread_local int t_stream_ready;
static thread_local void *t_scratch;
static thread_local size_t t_scratch_bytes;

extern "C" int seslm_cuda_note(cudaError_t e, const char *what, const char *file, int line) {
    if (e == cudaSuccess) return 0;
    if (!t_failed) {
        snprintf(t_err, sizeof t_err, "CUDA error %s (%s) in %s at %s:%d", cudaGetErrorName(e), cudaGetErrorString(e),
                 what, file, line);
        t_failed = 1;
    }
    return -1;
}

extern "C" {

int seslm_cuda_take_error(void) {
    if (!t_failed) return 0;
    t_failed = 0;
    seslm_fail(SESLM_ERR_INTERNAL, "%s", t_err);
    return -1;
}

int seslm_cuda_sync(void) {
    cudaCheck(cudaStreamSynchronize(cu_stream()));
    return seslm_cuda_take_error();
}

void *seslm_cuda_alloc(size_t bytes) {
    void *p = NULL;
    if (cudaCheck(cudaMalloc(&p, bytes ? bytes : 1)) != 0) {
        cudaGetLastError();
        seslm_cuda_take_error();
        return NULL;
    }
    return p;
}

void seslm_cuda_free(void *p) {
    if (p) cudaCheck(cudaFree(p));
}

int seslm_cuda_upload(void *dst, const void *src, size_t bytes) {
    if (bytes == 0) return 0;
    cudaCheck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cu_stream()));
    return t_failed ? seslm_cuda_take_error() : 0;
}

int seslm_cuda_download(void *dst, const void *src, size_t bytes) {
    if (bytes) cudaCheck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cu_stream()));
    return seslm_cuda_sync();
}

int seslm_cuda_memset(void *dst, int byte, size_t bytes) {
    cudaCheck(cudaMemsetAsync(dst, byte, bytes, cu_stream()));
    return t_failed ? seslm_cuda_take_error() : 0;
}

// A grown scratch buffer is never freed: a recorded CUDA graph (encoder_device.c) may still name the old
// one. Each growth at least doubles, so the retired buffers add up to less than the live one.
#define SCRATCH_RETIRED_MAX 48
static thread_local void *t_retired[SCRATCH_RETIRED_MAX];
static thread_local int t_n_retired;

void *seslm_cuda_scratch(size_t bytes) {
    if (bytes <= t_scratch_bytes) return t_scratch;
    size_t want = 2 * t_scratch_bytes > bytes ? 2 * t_scratch_bytes : bytes + bytes / 4;
    void *p = NULL;
    if (t_n_retired == SCRATCH_RETIRED_MAX || cudaCheck(cudaMalloc(&p, want)) != 0) return NULL;
    if (t_scratch) t_retired[t_n_retired++] = t_scratch;
    t_scratch = p, t_scratch_bytes = want;
    return t_scratch;
}

void seslm_cuda_scratch_release(void) {
    cudaCheck(cudaStreamSynchronize(cu_stream()));
    for (int i = 0; i < t_n_retired; i++) cudaCheck(cudaFree(t_retired[i]));
    if (t_scratch) cudaCheck(cudaFree(t_scratch));
    t_n_retired = 0, t_scratch = NULL, t_scratch_bytes = 0;
}

void *seslm_cuda_stream(void) {
    if (!t_stream_ready) {
        cudaStream_t s = NULL;
        t_stream = cudaCheck(cudaStreamCreate(&s)) == 0 ? s : cudaStreamPerThread;
        t_stream_ready = 1;
    }
    return (void *)t_stream;
}

void seslm_cuda_set_stream(void *stream) {
    if (stream) t_stream = (cudaStream_t)stream, t_stream_ready = 1;
    else t_stream_ready = 0; // back to this thread's own stream (a new one)
}

// ---- CUDA graphs: record the ops queued on this thread's stream once, replay them --------------------

int seslm_cuda_capture_begin(void) {
    if (t_failed) return -1; // never capture on top of a failure; it stays recorded for the next sync
    cudaCheck(cudaStreamBeginCapture(cu_stream(), cudaStreamCaptureModeThreadLocal));
    return seslm_cuda_take_error();
}

void *seslm_cuda_capture_end(void) {
    cudaGraph_t g = NULL;
    cudaGraphExec_t x = NULL;
    cudaCheck(cudaStreamEndCapture(cu_stream(), &g));
    if (!t_failed && g) cudaCheck(cudaGraphInstantiate(&x, g, 0));
    if (g) cudaGraphDestroy(g);
    if (t_failed) { // a launch or call failed while recording: nothing ran, nothing is kept
        cudaGetLastError();
        if (x) cudaGraphExecDestroy(x);
        seslm_cuda_take_error(); // the message stays readable through seslm_last_error()
        return NULL;
    }
    return (void *)x;
}

int seslm_cuda_replay(void *graph) {
    cudaCheck(cudaGraphLaunch((cudaGraphExec_t)graph, cu_stream()));
    return seslm_cuda_take_error();
}

void seslm_cuda_replay_free(void *graph) {
    if (graph) cudaCheck(cudaGraphExecDestroy((cudaGraphExec_t)graph));
}

} // extern "C"
