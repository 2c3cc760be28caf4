/* fault_shim.c — an LD_PRELOAD library that makes one chosen system call fail, in the manner of
 * SQLite's fault-injection tests: every call of the selected kinds is counted, and the N-th fails.
 *
 *   SESLM_FAULT_OPS   comma list of: write (write, pwrite, pwrite64, writev on regular files), fsync
 *                     (fsync, fdatasync), rename (rename, renameat, renameat2), malloc (malloc, calloc,
 *                     realloc, posix_memalign, aligned_alloc); every kind is counted from main() on
 *   SESLM_FAULT_AT    the 1-based number of the counted call that fails (0 or unset: none, just count)
 *   SESLM_FAULT_MODE  eio | enospc | short (a write stores half its bytes and says so) | enomem | kill
 *                     (SIGKILL at that moment: kill -9 at a write point, before the call runs)
 *   SESLM_FAULT_COUNT where to write, at exit, how many calls were counted (the driver iterates over them)
 *
 * Only calls on regular files count as writes, so stdout, pipes and sockets are left alone. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum { OP_WRITE = 1, OP_FSYNC = 2, OP_RENAME = 4, OP_MALLOC = 8 };
enum { M_EIO, M_ENOSPC, M_SHORT, M_ENOMEM, M_KILL };

static int g_ops, g_mode, g_armed;
static long g_at;
static atomic_long g_count;
static char g_count_path[4096];
static __thread int t_inside; // a counted call made by the shim itself (or by dlsym) is not counted

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static void write_count(void) {
    if (!g_count_path[0]) return;
    t_inside = 1;
    int fd = open(g_count_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        char b[32];
        int n = snprintf(b, sizeof b, "%ld\n", (long)atomic_load(&g_count));
        if (write(fd, b, (size_t)n) < 0) { /* nothing to do */ }
        close(fd);
    }
    t_inside = 0;
}

__attribute__((constructor)) static void shim_init(void) {
    const char *ops = getenv("SESLM_FAULT_OPS"), *at = getenv("SESLM_FAULT_AT"), *mode = getenv("SESLM_FAULT_MODE"),
               *cp = getenv("SESLM_FAULT_COUNT");
    if (ops) {
        if (strstr(ops, "write")) g_ops |= OP_WRITE;
        if (strstr(ops, "fsync")) g_ops |= OP_FSYNC;
        if (strstr(ops, "rename")) g_ops |= OP_RENAME;
        if (strstr(ops, "malloc")) g_ops |= OP_MALLOC;
    }
    g_at = at ? atol(at) : 0;
    g_mode = !mode ? M_EIO
             : !strcmp(mode, "enospc") ? M_ENOSPC
             : !strcmp(mode, "short")  ? M_SHORT
             : !strcmp(mode, "enomem") ? M_ENOMEM
             : !strcmp(mode, "kill")   ? M_KILL
                                       : M_EIO;
    if (cp) snprintf(g_count_path, sizeof g_count_path, "%s", cp);
    atexit(write_count);
}

/* Counting starts with main(): the constructors of the libraries run before it (libquadmath's loops for
 * ever when its first calloc fails), and they are not ours to test. */
static int (*g_main)(int, char **, char **);
static int wrap_main(int argc, char **argv, char **env) {
    g_armed = 1;
    return g_main(argc, argv, env);
}

int __libc_start_main(int (*main)(int, char **, char **), int argc, char **argv, void (*init)(void),
                      void (*fini)(void), void (*rtld_fini)(void), void *stack_end) {
    int (*real)(int (*)(int, char **, char **), int, char **, void (*)(void), void (*)(void), void (*)(void),
                void *) = (int (*)(int (*)(int, char **, char **), int, char **, void (*)(void), void (*)(void),
                                   void (*)(void), void *))dlsym(RTLD_NEXT, "__libc_start_main");
    g_main = main;
    return real(wrap_main, argc, argv, init, fini, rtld_fini, stack_end);
}

/* Called by the program (weak references in runtime/cli/main.c): pause before its third-party libraries
 * are initialised, re-arm after: counting restarts there. OpenSSL 3 initialises itself on first use and, when an allocation
 * fails inside that, returns success and later dereferences a NULL lock — like the constructors above,
 * not ours to test; the program initialises it first and then re-arms the count. */
void seslm_fault_pause(void) { g_armed = 0; }
void seslm_fault_rearm(void) {
    atomic_store(&g_count, 0);
    g_armed = 1;
}

/* 1 when this call is the one to fail (kill mode never returns). */
static int hit(int op) {
    if (!g_armed || t_inside || !(g_ops & op)) return 0;
    long n = atomic_fetch_add(&g_count, 1) + 1;
    if (g_at <= 0 || n != g_at) return 0;
    if (g_mode == M_KILL) {
        write_count();
        raise(SIGKILL);
    }
    return 1;
}

static int errno_of_mode(void) { return g_mode == M_ENOSPC ? ENOSPC : g_mode == M_ENOMEM ? ENOMEM : EIO; }

static int is_regular(int fd) {
    struct stat sb;
    return fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode);
}

#define REAL(name)                                                                                           \
    static __typeof__(name) *real_##name;                                                                    \
    if (!real_##name) {                                                                                      \
        t_inside++;                                                                                          \
        real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name);                                           \
        t_inside--;                                                                                          \
    }

ssize_t write(int fd, const void *buf, size_t n) {
    REAL(write);
    if (n > 0 && (g_ops & OP_WRITE) && !t_inside && is_regular(fd) && hit(OP_WRITE)) {
        if (g_mode == M_SHORT && n > 1) return real_write(fd, buf, n / 2);
        errno = errno_of_mode();
        return -1;
    }
    return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    REAL(pwrite);
    if (n > 0 && (g_ops & OP_WRITE) && !t_inside && is_regular(fd) && hit(OP_WRITE)) {
        if (g_mode == M_SHORT && n > 1) return real_pwrite(fd, buf, n / 2, off);
        errno = errno_of_mode();
        return -1;
    }
    return real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
    REAL(pwrite64);
    if (n > 0 && (g_ops & OP_WRITE) && !t_inside && is_regular(fd) && hit(OP_WRITE)) {
        if (g_mode == M_SHORT && n > 1) return real_pwrite64(fd, buf, n / 2, off);
        errno = errno_of_mode();
        return -1;
    }
    return real_pwrite64(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
    REAL(writev);
    if (cnt > 0 && (g_ops & OP_WRITE) && !t_inside && is_regular(fd) && hit(OP_WRITE)) {
        if (g_mode == M_SHORT && iov[0].iov_len > 1) {
            struct iovec half = {iov[0].iov_base, iov[0].iov_len / 2};
            return real_writev(fd, &half, 1);
        }
        errno = errno_of_mode();
        return -1;
    }
    return real_writev(fd, iov, cnt);
}

int fsync(int fd) {
    REAL(fsync);
    if (hit(OP_FSYNC)) {
        errno = errno_of_mode();
        return -1;
    }
    return real_fsync(fd);
}

int fdatasync(int fd) {
    REAL(fdatasync);
    if (hit(OP_FSYNC)) {
        errno = errno_of_mode();
        return -1;
    }
    return real_fdatasync(fd);
}

int rename(const char *a, const char *b) {
    REAL(rename);
    if (hit(OP_RENAME)) {
        errno = errno_of_mode();
        return -1;
    }
    return real_rename(a, b);
}

int renameat(int da, const char *a, int db, const char *b) {
    REAL(renameat);
    if (hit(OP_RENAME)) {
        errno = errno_of_mode();
        return -1;
    }
    return real_renameat(da, a, db, b);
}

int renameat2(int da, const char *a, int db, const char *b, unsigned flags) {
    REAL(renameat2);
    if (hit(OP_RENAME)) {
        errno = errno_of_mode();
        return -1;
    }
    return real_renameat2(da, a, db, b, flags);
}

// malloc: glibc's own entry points underneath (no dlsym, which itself allocates). Allocations made by
// HDF5 itself are not failed: on an allocation failure in H5I_register it calls exit(-1) (HDF5 1.10), a
// library's choice no caller can handle; ours around it are (SESLM_FAULT_SKIP_LIBS, default "libhdf5").
static int from_skipped_lib(const void *ret) {
    const char *skip = getenv("SESLM_FAULT_SKIP_LIBS");
    if (!skip) skip = "libhdf5";
    if (!*skip) return 0;
    Dl_info di;
    t_inside++;
    int in = dladdr(ret, &di) && di.dli_fname && strstr(di.dli_fname, skip) != NULL;
    t_inside--;
    return in;
}
#define malloc_hit() ((g_ops & OP_MALLOC) && g_armed && !t_inside && !from_skipped_lib(__builtin_return_address(0)) && hit(OP_MALLOC))

void *malloc(size_t n) {
    if (malloc_hit()) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_malloc(n);
}

void *calloc(size_t a, size_t b) {
    if (malloc_hit()) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n) {
    if (n && malloc_hit()) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_realloc(p, n);
}

int posix_memalign(void **out, size_t align, size_t n) {
    if (malloc_hit()) return ENOMEM;
    void *p = __libc_memalign(align, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

void *aligned_alloc(size_t align, size_t n) {
    if (malloc_hit()) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_memalign(align, n);
}
