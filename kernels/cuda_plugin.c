/* cuda_plugin.c — loads libseslm-cuda on first use (cuda_plugin.h).
 * Search order: $SESLM_CUDA_LIBRARY; the plugin's versioned name through the dynamic loader (libseslm's
 * RUNPATH is $ORIGIN, so an installed or built libseslm finds the plugin beside itself); the folder of the
 * object that holds this code (a program that linked libseslm.a). */
#define _GNU_SOURCE // dladdr
#include "cuda_plugin.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SESLM_CUDA_PLUGIN
#define SESLM_CUDA_PLUGIN "libseslm-cuda.so"
#endif

static pthread_once_t plugin_once = PTHREAD_ONCE_INIT;
static seslm_cuda_plugin plugin;
static int plugin_ok;
static char plugin_why[512];

/* Opens the plugin; on failure, err gets the dynamic loader's message for the first place tried. */
static void *plugin_open(char *err, size_t cap) {
    const char *env = getenv("SESLM_CUDA_LIBRARY");
    const char *name = env && *env ? env : SESLM_CUDA_PLUGIN;
    void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (h) return h;
    const char *e = dlerror();
    snprintf(err, cap, "%s", e ? e : name);
    if (env && *env) return NULL;
    Dl_info info;
    if (dladdr((void *)&seslm_cuda_plugin_get, &info) && info.dli_fname) {
        const char *slash = strrchr(info.dli_fname, '/');
        if (slash) {
            char path[4096];
            int n = snprintf(path, sizeof path, "%.*s/%s", (int)(slash - info.dli_fname), info.dli_fname, name);
            if (n > 0 && (size_t)n < sizeof path && (h = dlopen(path, RTLD_NOW | RTLD_LOCAL))) return h;
        }
    }
    return NULL;
}

static void plugin_load(void) {
    char err[384];
    void *h = plugin_open(err, sizeof err);
    if (!h) {
        snprintf(plugin_why, sizeof plugin_why, "no CUDA support (the CUDA backend library could not be loaded: %s)", err);
        return;
    }
    // dlsym returns void *; POSIX guarantees it converts to a function pointer
    *(void **)&plugin.backend = dlsym(h, "seslm_backend_cuda");
    *(void **)&plugin.device_count = dlsym(h, "seslm_cuda_device_count");
    *(void **)&plugin.device_describe = dlsym(h, "seslm_cuda_device_describe");
    if (!plugin.backend || !plugin.device_count || !plugin.device_describe) {
        snprintf(plugin_why, sizeof plugin_why, "no CUDA support (%s lacks the seslm CUDA entry points)", SESLM_CUDA_PLUGIN);
        dlclose(h);
        return;
    }
    plugin_ok = 1; // never closed: backends and device memory outlive any caller
}

const seslm_cuda_plugin *seslm_cuda_plugin_get(const char **why) {
    pthread_once(&plugin_once, plugin_load);
    if (why) *why = plugin_ok ? "" : plugin_why;
    return plugin_ok ? &plugin : NULL;
}
