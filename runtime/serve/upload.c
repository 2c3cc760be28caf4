/* upload.c — the serving node's fleet telemetry upload (docs/fleet.md): every dump the telemetry thread
 * has written to the local telemetry directory is copied to an S3-compatible store, as
 *
 *     s3://BUCKET/PREFIX/<YYYY-MM-DD of the window start, UTC>/<node>/<dump file name>
 *
 * The local directory stays the spool: a dump is written there first (crash-safe, by the dump writer),
 * and only after its upload succeeded is an empty marker ".<name>.uploaded" written beside it (a hidden
 * name: readers of the directory skip it). A dump without a marker is pending: while the store is down
 * or refuses it, it stays, and the uploader tries again after 1, 2, 4, ... x retry_s (at most 64 x),
 * and at the next start. The dump itself is never deleted or changed here, so a store that is down costs
 * disk, never data. A re-upload after a lost marker PUTs the same bytes under the same key (idempotent).
 *
 * One thread; woken by the telemetry thread after each dump and by its retry timer. Requests never wait
 * on it. */
#define _GNU_SOURCE
#include "serve_internal.h"

#include "s3_client.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct serve_upload {
    seslm_s3 s3;
    char dir[PATH_MAX], url[1024];
    pthread_mutex_t mu;
    pthread_cond_t cv; // CLOCK_MONOTONIC
    pthread_t thread;
    int kicked, stop, up;
    int64_t retry_ns, backoff_ns, retry_at_ns; // retry_at_ns 0: nothing to retry
    atomic_ullong ok, failed;
    atomic_int pending;
};

/* The object key of a dump: PREFIX/<date>/<node>/<name> from "<node>-YYYYMMDDTHHMMSS.mmmZ-<seq><ext>"
 * (a name of another form goes to PREFIX/undated/<name>). */
static void dump_key(const seslm_s3 *s3, const char *name, char *out, size_t cap) {
    char rel[1200];
    const char *ext = serve_dump_extension();
    size_t n = strlen(name), el = strlen(ext), e = n > el ? n - el : 0, q = e;
    while (q > 0 && name[q - 1] >= '0' && name[q - 1] <= '9') q--;
    // name[q..e): the sequence number; before it "-", the 20-character window start, "-", the node (1..64)
    int ok = q < e && q >= 1 + 20 + 1 + 1 && name[q - 1] == '-';
    const char *ts = ok ? name + q - 1 - 20 : name;
    ok = ok && ts[-1] == '-' && ts[8] == 'T' && ts[19] == 'Z' && (ts - 1 - name) <= 64;
    for (int i = 0; ok && i < 8; i++) ok = ts[i] >= '0' && ts[i] <= '9';
    if (ok)
        snprintf(rel, sizeof rel, "%.4s-%.2s-%.2s/%.*s/%s", ts, ts + 4, ts + 6, (int)(ts - 1 - name), name, name);
    else
        snprintf(rel, sizeof rel, "undated/%s", name);
    seslm_s3_key(s3, rel, out, cap);
}

static int is_dump_name(const char *name) {
    const char *ext = serve_dump_extension();
    size_t n = strlen(name), el = strlen(ext);
    return n > el && name[0] != '.' && strcmp(name + n - el, ext) == 0;
}

static int final_filter(const struct dirent *de) { return is_dump_name(de->d_name); }

/* Uploads one dump and writes its marker. */
static seslm_status upload_one(serve_upload *u, const char *name) {
    char path[PATH_MAX + 300], key[2048];
    snprintf(path, sizeof path, "%s/%s", u->dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        seslm_status s = seslm_fail(SESLM_ERR_IO, "cannot read %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return s;
    }
    dump_key(&u->s3, name, key, sizeof key);
    seslm_status s = seslm_s3_put_fd(&u->s3, key, fd, (long long)st.st_size);
    close(fd);
    if (s != SESLM_OK) return s;
    char marker[PATH_MAX + 320];
    snprintf(marker, sizeof marker, "%s/.%s.uploaded", u->dir, name);
    int mf = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (mf < 0) return seslm_fail(SESLM_ERR_IO, "uploaded, but cannot write the marker %s: %s", marker, strerror(errno));
    close(mf);
    fprintf(stderr, "seslm serve: telemetry dump %s uploaded to s3://%s/%s\n", name, u->s3.bucket, key);
    return SESLM_OK;
}

/* One pass over the spool: uploads every pending dump, in name order; stops at the first failure (the
 * store is likely down: the next pass comes after the back-off). Returns the dumps still pending. */
static int upload_pass(serve_upload *u) {
    struct dirent **names = NULL;
    int n = scandir(u->dir, &names, final_filter, alphasort), left = 0, failed = 0;
    if (n < 0) {
        fprintf(stderr, "seslm serve: telemetry upload: cannot list %s: %s\n", u->dir, strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char marker[PATH_MAX + 320];
        snprintf(marker, sizeof marker, "%s/.%s.uploaded", u->dir, names[i]->d_name);
        struct stat st;
        if (stat(marker, &st) == 0) continue;
        if (failed) {
            left++;
            continue;
        }
        if (upload_one(u, names[i]->d_name) == SESLM_OK) {
            atomic_fetch_add(&u->ok, 1);
        } else {
            atomic_fetch_add(&u->failed, 1);
            fprintf(stderr, "seslm serve: telemetry upload of %s failed (kept locally, retried later): %s\n",
                    names[i]->d_name, seslm_last_error());
            failed = 1;
            left++;
        }
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    atomic_store(&u->pending, left);
    return failed ? (left ? left : 1) : 0;
}

static void *upload_main(void *arg) {
    serve_upload *u = arg;
    pthread_mutex_lock(&u->mu);
    u->kicked = 1; // dumps left by an earlier run
    while (!u->stop) {
        if (!u->kicked) {
            if (u->retry_at_ns) serve_cond_wait_until(&u->cv, &u->mu, u->retry_at_ns);
            else pthread_cond_wait(&u->cv, &u->mu);
            if (u->stop) break;
            if (!u->kicked && !(u->retry_at_ns && serve_now_mono_ns() >= u->retry_at_ns)) continue;
        }
        u->kicked = 0;
        pthread_mutex_unlock(&u->mu);
        int left = upload_pass(u);
        pthread_mutex_lock(&u->mu);
        if (left != 0) { // back off: 1, 2, 4 ... 64 x retry_s
            u->retry_at_ns = serve_now_mono_ns() + u->backoff_ns;
            if (u->backoff_ns < 64 * u->retry_ns) u->backoff_ns *= 2;
        } else {
            u->retry_at_ns = 0;
            u->backoff_ns = u->retry_ns;
        }
    }
    pthread_mutex_unlock(&u->mu);
    return NULL;
}

seslm_status serve_upload_start(seslm_server *s) {
    const char *url = s->o.telemetry_upload;
    if (!url || !*url) return SESLM_OK;
    if (!s->telemetry)
        return seslm_fail(SESLM_ERR_ARG, "a telemetry upload (%s) needs a local telemetry directory to spool the dumps", url);
    // libcurl's global state is set up here, on the starting thread, before any thread of ours uses it
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return seslm_fail(SESLM_ERR_INTERNAL, "curl_global_init failed");
    serve_upload *u = calloc(1, sizeof *u);
    if (!u) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    seslm_status st = seslm_s3_open(&u->s3, url);
    if (st != SESLM_OK) {
        char why[1024];
        snprintf(why, sizeof why, "%s", seslm_last_error());
        free(u);
        return seslm_fail(st, "telemetry upload: %s", why);
    }
    snprintf(u->dir, sizeof u->dir, "%s", s->tel_dir);
    snprintf(u->url, sizeof u->url, "%s", url);
    u->retry_ns = u->backoff_ns = (int64_t)(s->o.upload_retry_s > 0 ? s->o.upload_retry_s : 10) * 1000000000;
    pthread_mutex_init(&u->mu, NULL);
    if (serve_cond_init_mono(&u->cv) != 0 || pthread_create(&u->thread, NULL, upload_main, u) != 0) {
        pthread_mutex_destroy(&u->mu);
        free(u);
        return seslm_fail(SESLM_ERR_INTERNAL, "cannot start the telemetry upload thread");
    }
    u->up = 1;
    s->upload = u;
    fprintf(stderr, "seslm serve: telemetry dumps of %s are uploaded to %s\n", s->tel_dir, url);
    return SESLM_OK;
}

void serve_upload_kick(seslm_server *s) {
    serve_upload *u = s->upload;
    if (!u) return;
    pthread_mutex_lock(&u->mu);
    u->kicked = 1;
    pthread_cond_signal(&u->cv);
    pthread_mutex_unlock(&u->mu);
}

void serve_upload_stop(seslm_server *s) {
    serve_upload *u = s->upload;
    if (!u) return;
    pthread_mutex_lock(&u->mu);
    u->stop = 1;
    pthread_cond_signal(&u->cv);
    pthread_mutex_unlock(&u->mu);
    pthread_join(u->thread, NULL);
    // the last window was written after the thread's last pass: one more try (a failure leaves it
    // pending for the next start; each request is bounded by the client's timeouts)
    int left = upload_pass(u);
    if (left > 0)
        fprintf(stderr, "seslm serve: %d telemetry dump(s) not uploaded yet; kept in %s for the next start\n", left, u->dir);
    pthread_cond_destroy(&u->cv);
    pthread_mutex_destroy(&u->mu);
    free(u);
    s->upload = NULL;
}

void serve_upload_render(seslm_server *s, sbuf *b) {
    serve_upload *u = s->upload;
    if (!u) return;
    sb_printf(b, "# HELP seslm_telemetry_uploads_total Telemetry dumps uploaded to the object store, by result.\n"
                 "# TYPE seslm_telemetry_uploads_total counter\n"
                 "seslm_telemetry_uploads_total{result=\"success\"} %llu\n"
                 "seslm_telemetry_uploads_total{result=\"failure\"} %llu\n"
                 "# HELP seslm_telemetry_upload_pending Dumps in the telemetry directory not uploaded yet (last pass).\n"
                 "# TYPE seslm_telemetry_upload_pending gauge\n"
                 "seslm_telemetry_upload_pending %d\n",
              (unsigned long long)atomic_load(&u->ok), (unsigned long long)atomic_load(&u->failed),
              atomic_load(&u->pending));
}
