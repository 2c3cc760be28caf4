/* validate_memory.c — peak RSS of loading and running a model, measured in a forked child, and the
 * crash-safe file writer of the sandbox (validate_internal.h).
 *
 * Why a child: the validating process holds both models, so its own peak says nothing about one of
 * them. A forked child starts with the parent's pages, so it first resets its high-water mark
 * (/proc/self/clear_refs "5", Linux >= 4.0) and reads its current RSS, then loads and runs the model
 * and reads the high-water mark again (VmHWM in /proc/self/status); the difference is the model's. */
#include "validate_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

// VmRSS / VmHWM of this process in bytes (-1 when /proc is unavailable)
static long long proc_status_kb(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long long v = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            v = atoll(line + n + 1);
            break;
        }
    fclose(f);
    return v < 0 ? -1 : v * 1024;
}

static void child(int fd, const char *model_dir, const char *const *texts, int n, int threads) {
    long long msg[2] = {-1, 0}; // peak bytes, or -1 and an error status
    int cfd = open("/proc/self/clear_refs", O_WRONLY);
    int reset = cfd >= 0 && write(cfd, "5", 1) == 1;
    if (cfd >= 0) close(cfd);
    long long base = proc_status_kb("VmRSS");
    seslm_model *m = NULL;
    seslm_encoder *e = NULL;
    float *out = NULL;
    size_t lens[32];
    seslm_status st = seslm_model_load(&m, model_dir);
    if (st == SESLM_OK) {
        seslm_encoder_opts o = {.backend = "cpu", .n_threads = threads, .max_batch = 32};
        st = seslm_encoder_new(&e, m, &o);
    }
    if (st == SESLM_OK && !(out = malloc((size_t)32 * seslm_model_get_config(m)->hidden * sizeof *out)))
        st = SESLM_ERR_NOMEM;
    for (int i = 0; i < n && i < 32; i++) lens[i] = strlen(texts[i]);
    if (st == SESLM_OK && n > 0) st = seslm_encoder_embed_texts(e, texts, lens, n < 32 ? n : 32, out);
    if (st == SESLM_OK) {
        long long hwm = reset ? proc_status_kb("VmHWM") : -1;
        if (hwm < 0 || base < 0) { // no /proc: ru_maxrss (KiB on Linux) includes what fork inherited
            struct rusage ru;
            getrusage(RUSAGE_SELF, &ru);
            hwm = (long long)ru.ru_maxrss * 1024, base = 0;
        }
        msg[0] = hwm - base;
    } else {
        msg[1] = st;
    }
    if (write(fd, msg, sizeof msg) != (ssize_t)sizeof msg) _exit(3);
    _exit(0); // no cleanup: the process ends, and atexit handlers belong to the parent
}

seslm_status validate_peak_rss(const char *model_dir, const char *const *texts, int n, int threads,
                               long long *bytes) {
    *bytes = -1;
    int fds[2];
    if (pipe(fds) != 0) return seslm_fail(SESLM_ERR_IO, "peak RSS of %s: pipe: %s", model_dir, strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]), close(fds[1]);
        return seslm_fail(SESLM_ERR_IO, "peak RSS of %s: fork: %s", model_dir, strerror(errno));
    }
    if (pid == 0) {
        close(fds[0]);
        child(fds[1], model_dir, texts, n, threads);
    }
    close(fds[1]);
    long long msg[2] = {-1, SESLM_ERR_INTERNAL};
    ssize_t got = 0;
    while (got < (ssize_t)sizeof msg) {
        ssize_t r = read(fds[0], (char *)msg + got, sizeof msg - (size_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += r;
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (got != (ssize_t)sizeof msg || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return seslm_fail(SESLM_ERR_INTERNAL, "peak RSS of %s: the measuring child died (status %d)", model_dir,
                          status);
    if (msg[0] < 0)
        return seslm_fail((seslm_status)msg[1], "peak RSS of %s: the model failed to load or run in the child (%s)",
                          model_dir, seslm_status_str((seslm_status)msg[1]));
    *bytes = msg[0];
    return SESLM_OK;
}

seslm_status validate_write_file(const char *path, const char *data, size_t len) {
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16), *dir = malloc(pl + 1);
    if (!tmp || !dir) {
        free(tmp), free(dir);
        return seslm_fail(SESLM_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(tmp, pl + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    seslm_status st = SESLM_OK;
    if (fd < 0) {
        st = seslm_fail(SESLM_ERR_IO, "%s: cannot create a temporary file: %s", path, strerror(errno));
    } else {
        size_t off = 0;
        while (st == SESLM_OK && off < len) {
            ssize_t w = write(fd, data + off, len - off);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) st = seslm_fail(SESLM_ERR_IO, "%s: write: %s", tmp, strerror(errno));
            else off += (size_t)w;
        }
        if (st == SESLM_OK && fchmod(fd, 0644) != 0) st = seslm_fail(SESLM_ERR_IO, "%s: chmod: %s", tmp, strerror(errno));
        if (st == SESLM_OK && fsync(fd) != 0) st = seslm_fail(SESLM_ERR_IO, "%s: fsync: %s", tmp, strerror(errno));
        if (close(fd) != 0 && st == SESLM_OK) st = seslm_fail(SESLM_ERR_IO, "%s: close: %s", tmp, strerror(errno));
        if (st == SESLM_OK && rename(tmp, path) != 0)
            st = seslm_fail(SESLM_ERR_IO, "%s: rename: %s", path, strerror(errno));
        if (st != SESLM_OK) unlink(tmp);
    }
    if (st == SESLM_OK) { // make the rename itself durable
        memcpy(dir, path, pl + 1);
        int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    free(tmp), free(dir);
    return st;
}
