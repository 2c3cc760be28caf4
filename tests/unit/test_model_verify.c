/* test_model_verify.c — every load checks a model directory against what was recorded (model_verify.h):
 *   - a manifest (SHA256SUMS) written for a tiny model is the format of coreutils sha256sum (checked
 *     with `sha256sum -c` when it is installed) and the model loads; one flipped byte in any file, a
 *     file added, a file removed, or a manifest line edited are each refused, naming the file;
 *   - a directory in the content-addressed store (.../sha256/<hash>) loads only when its content hash
 *     is its name: a flipped byte, or an extra file, is refused even with no manifest;
 *   - the content hash skips excluded paths and agrees with the registry store's (seslm_store_hash_dir). */
#include "model_verify.h"
#include "store.h"
#include "test.h"
#include "tiny_model.h"

#include <sys/stat.h>
#include <unistd.h>

static void flip_byte(const char *path, long at) {
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (!f) return;
    fseek(f, at, at < 0 ? SEEK_END : SEEK_SET);
    int c = fgetc(f);
    fseek(f, -1, SEEK_CUR);
    fputc(c ^ 0x01, f);
    fclose(f);
}

static void write_text(const char *path, const char *txt) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(txt, f);
        fclose(f);
    }
}

static int loads(const char *dir) {
    seslm_model *m = NULL;
    seslm_status s = seslm_model_load(&m, dir);
    seslm_model_free(m);
    return s == SESLM_OK;
}

static void expect_refused(const char *dir, const char *want, const char *what) {
    seslm_model *m = NULL;
    seslm_status s = seslm_model_load(&m, dir);
    CHECK_MSG(s == SESLM_ERR_FORMAT && !m, "%s: loaded (status %d)", what, (int)s);
    CHECK_MSG(strstr(seslm_last_error(), want) != NULL, "%s: message '%s' lacks '%s'", what, seslm_last_error(), want);
    seslm_model_free(m);
}

int main(void) {
    char *tmp = tm_mkdtemp("verify");
    char dir[600], p[1200], q[1200];
    snprintf(dir, sizeof dir, "%s/m", tmp);
    mkdir(dir, 0755);
    tm_model tm;
    tm_init(&tm, 11);
    CHECK(tm_write(&tm, dir, NULL));
    tm_free(&tm);

    // no manifest, not in a store: loads unchecked
    const char *how = NULL;
    CHECK(model_verify_dir(dir, &how) == SESLM_OK && strcmp(how, "none") == 0);
    CHECK(loads(dir));

    // ---- manifest
    CHECK_MSG(model_manifest_write(dir) == SESLM_OK, "%s", seslm_last_error());
    CHECK(model_verify_dir(dir, &how) == SESLM_OK && strcmp(how, "manifest") == 0);
    CHECK(loads(dir));
    if (system("command -v sha256sum >/dev/null 2>&1") == 0) { // the independent check: coreutils
        snprintf(p, sizeof p, "cd '%s' && sha256sum --quiet -c SHA256SUMS", dir);
        CHECK_MSG(system(p) == 0, "sha256sum -c rejects the manifest");
        snprintf(p, sizeof p, "cd '%s' && test \"$(wc -l < SHA256SUMS)\" = \"$(find . -type f ! -name SHA256SUMS | wc -l)\"", dir);
        CHECK_MSG(system(p) == 0, "the manifest does not list every file");
    }
    const char *files[] = {"model.safetensors", "vocab.txt", "config.json", "1_Pooling/config.json"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        flip_byte(p, -2);
        expect_refused(dir, files[i], files[i]);
        CHECK(strstr(seslm_last_error(), "modified or corrupted") != NULL);
        flip_byte(p, -2);
        CHECK_MSG(loads(dir), "%s restored: %s", files[i], seslm_last_error());
    }
    snprintf(p, sizeof p, "%s/tokenizer.json", dir); // an added tokenizer file changes tokenization
    write_text(p, "{}");
    expect_refused(dir, "tokenizer.json is not listed", "added file");
    unlink(p);
    CHECK(loads(dir));
    snprintf(p, sizeof p, "%s/vocab.txt", dir);
    snprintf(q, sizeof q, "%s/vocab.moved", tmp);
    CHECK(rename(p, q) == 0);
    expect_refused(dir, "vocab.txt, which is missing", "removed file");
    CHECK(rename(q, p) == 0);
    snprintf(p, sizeof p, "%s/SHA256SUMS", dir);
    flip_byte(p, 3); // a hex digit of the first line: no longer the file's hash (or not hex)
    CHECK(!loads(dir));
    CHECK(model_manifest_write(dir) == SESLM_OK);
    CHECK(loads(dir));
    unlink(p);

    // ---- the content hash: exclusions, and the same value as the registry store's
    char h1[65], h2[65], h3[65];
    long long b1 = 0, b2 = 0;
    CHECK(model_dir_hash(dir, NULL, 0, h1, &b1) == SESLM_OK);
    CHECK(seslm_store_hash_dir(dir, h2, &b2) == SESLM_OK);
    CHECK(strcmp(h1, h2) == 0 && b1 == b2 && b1 > 0);
    const char *ex[] = {"vocab.txt"};
    CHECK(model_dir_hash(dir, ex, 1, h3, &b2) == SESLM_OK && strcmp(h3, h1) != 0 && b2 < b1);

    // ---- a directory of the store: named by its hash
    char store[700], sd[800];
    snprintf(store, sizeof store, "%s/store/sha256", tmp);
    snprintf(p, sizeof p, "%s/store", tmp);
    mkdir(p, 0755);
    mkdir(store, 0755);
    snprintf(sd, sizeof sd, "%s/%s", store, h1);
    CHECK(rename(dir, sd) == 0);
    CHECK(model_verify_dir(sd, &how) == SESLM_OK && strcmp(how, "store") == 0);
    CHECK(loads(sd));
    snprintf(p, sizeof p, "%s/model.safetensors", sd);
    flip_byte(p, -5);
    expect_refused(sd, "differs from the registered hash", "tampered store weights");
    flip_byte(p, -5);
    CHECK(loads(sd));
    snprintf(p, sizeof p, "%s/NOTE.txt", sd);
    write_text(p, "added later\n");
    expect_refused(sd, "differs from the registered hash", "file added in the store");
    unlink(p);
    // reached through a symbolic link (a "current" link to the live version): still checked
    snprintf(q, sizeof q, "%s/current", tmp);
    CHECK(symlink(sd, q) == 0);
    snprintf(p, sizeof p, "%s/vocab.txt", sd);
    flip_byte(p, 0);
    expect_refused(q, "differs from the registered hash", "tampered, through a link");
    flip_byte(p, 0);
    CHECK(loads(q));

    tm_rmtree(tmp);
    free(tmp);
    return test_report("test_model_verify");
}
