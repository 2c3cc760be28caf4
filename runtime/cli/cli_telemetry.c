/* cli_telemetry.c — telemetry sources of ingest / drift / evolve (cli_telemetry.h): directories, files,
 * and fleets' dumps in an S3-compatible store (docs/fleet.md). */
#define _GNU_SOURCE
#include "cli_telemetry.h"

#include "s3_client.h"
#include "telemetry_hdf5.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    char **keys;
    int n, cap, oom;
} key_list;

static int on_object(void *ud, const char *key, long long size) {
    (void)size;
    key_list *l = ud;
    if (!seslm_telemetry_dump_is_final_name(key)) return 0; // markers, temporary files, other objects
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **k = realloc(l->keys, (size_t)cap * sizeof *k);
        if (!k) return l->oom = 1;
        l->keys = k, l->cap = cap;
    }
    if (!(l->keys[l->n] = strdup(key))) return l->oom = 1;
    l->n++;
    return 0;
}

static seslm_status add_s3(seslm_ingest *g, const char *url, const char *cmd) {
    seslm_s3 s3;
    seslm_status st = seslm_s3_open(&s3, url);
    if (st != SESLM_OK) return st;
    // every key under PREFIX/ (the trailing slash: s3://b/tel does not also read s3://b/telemetry-old/)
    char prefix[1024] = "";
    if (s3.prefix[0]) snprintf(prefix, sizeof prefix, "%s/", s3.prefix);
    key_list l = {0};
    st = seslm_s3_list(&s3, prefix, on_object, &l);
    if (st == SESLM_OK && l.oom) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory listing %s", url);
    if (st != SESLM_OK) {
        char why[1200];
        snprintf(why, sizeof why, "%s", seslm_last_error());
        for (int i = 0; i < l.n; i++) free(l.keys[i]);
        free(l.keys);
        return seslm_fail(st, "cannot list %s: %s", url, why);
    }
    fprintf(stderr, "seslm %s: %d dump(s) under %s\n", cmd, l.n, url);
    const char *tmpdir = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/seslm-s3-telemetry.XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(dir)) st = seslm_fail(SESLM_ERR_IO, "cannot create a temporary directory %s: %s", dir, strerror(errno));
    for (int i = 0; st == SESLM_OK && i < l.n; i++) {
        char name[2400], path[4200];
        snprintf(name, sizeof name, "s3://%s/%s", s3.bucket, l.keys[i]);
        snprintf(path, sizeof path, "%s/dump.h5", dir);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
            st = seslm_fail(SESLM_ERR_IO, "cannot create %s: %s", path, strerror(errno));
            break;
        }
        long long got = 0;
        seslm_status gs = seslm_s3_get_fd(&s3, l.keys[i], fd, &got, NULL);
        if (close(fd) != 0 && gs == SESLM_OK) gs = seslm_fail(SESLM_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        if (gs != SESLM_OK) { // gone since the listing, or the store failed: listed as skipped, the job goes on
            char why[4200];
            snprintf(why, sizeof why, "%s: cannot download: %s", name, seslm_last_error());
            if (seslm_ingest_add_skipped(g, name, why) == SESLM_ERR_NOMEM) st = SESLM_ERR_NOMEM;
        } else if (seslm_ingest_add_file_as(g, path, name) == SESLM_ERR_NOMEM) {
            st = SESLM_ERR_NOMEM;
        }
        unlink(path);
        if ((i + 1) % 100 == 0) fprintf(stderr, "seslm %s: %d/%d dumps of %s read\n", cmd, i + 1, l.n, url);
    }
    if (st == SESLM_ERR_NOMEM) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    rmdir(dir);
    for (int i = 0; i < l.n; i++) free(l.keys[i]);
    free(l.keys);
    return st;
}

seslm_status cli_ingest_add_source(seslm_ingest *g, const char *source, const char *cmd) {
    if (seslm_s3_is_url(source)) return add_s3(g, source, cmd);
    return seslm_ingest_add_dir(g, source); // (a missing directory: "cannot list", as before)
}
