/* test_model_crypt.c — models encrypted at rest (runtime/core/model_crypt.c): a tiny model encrypted with
 * seslm_crypt_encrypt_dir loads only with its key and gives embeddings bit-identical to the plaintext
 * model's; no key, a wrong key, a flipped byte, a truncated file, swapped chunks, a changed header and a
 * renamed file are each refused with a clear message; round trips at the chunk-size edge cases; the
 * key file may not live inside the model directory. */
#include "model_crypt.h"
#include "test.h"
#include "tiny_model.h"

#include <sys/stat.h>
#include <unistd.h>

static unsigned char *read_all_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    *n = b && fread(b, 1, (size_t)len, f) == (size_t)len ? (size_t)len : 0;
    fclose(f);
    return b;
}

static void write_all_file(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(b, 1, n, f) == n);
    if (f) fclose(f);
}

static int embed(const char *dir, float *out) {
    seslm_model *m = NULL;
    if (seslm_model_load(&m, dir) != SESLM_OK) return 0;
    seslm_encoder *e = NULL;
    seslm_encoder_opts o = {.backend = "cpu-ref", .n_threads = 1, .max_batch = 2};
    int ok = seslm_encoder_new(&e, m, &o) == SESLM_OK;
    const char *texts[2] = {"the quick brown fox", "hello world"};
    size_t lens[2] = {strlen(texts[0]), strlen(texts[1])};
    ok = ok && seslm_encoder_embed_texts(e, texts, lens, 2, out) == SESLM_OK;
    seslm_encoder_free(e);
    seslm_model_free(m);
    return ok;
}

static void expect_refused(const char *dir, const char *want, const char *what) {
    seslm_model *m = NULL;
    seslm_status s = seslm_model_load(&m, dir);
    CHECK_MSG(s != SESLM_OK && !m, "%s: loaded", what);
    CHECK_MSG(strstr(seslm_last_error(), want) != NULL, "%s: message '%s' lacks '%s'", what, seslm_last_error(), want);
    seslm_model_free(m);
}

static void roundtrip(const char *tmp, const unsigned char *key, size_t n, unsigned chunk) {
    char in[600], out[600];
    snprintf(in, sizeof in, "%s/rt.bin", tmp);
    snprintf(out, sizeof out, "%s/rt.enc", tmp);
    unsigned char *b = malloc(n + 1);
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(i * 7 + 3);
    write_all_file(in, b, n);
    unsigned char bind[32], bound[32];
    for (int i = 0; i < 32; i++) bind[i] = (unsigned char)(n + i);
    CHECK(seslm_crypt_encrypt_file(key, in, out, "rt.bin", chunk, bind) == SESLM_OK);
    unsigned char *d = NULL;
    size_t dn = 99;
    int ver = 0;
    CHECK_MSG(seslm_crypt_decrypt_file(key, out, "rt.bin", &d, &dn, bound, &ver) == SESLM_OK, "%zu/%u: %s", n, chunk,
              seslm_last_error());
    CHECK(dn == n && (n == 0 || (d && memcmp(d, b, n) == 0)));
    CHECK(ver == 2 && memcmp(bound, bind, 32) == 0); // the bound digest comes back, authenticated
    seslm_crypt_buffer_free(d, dn);
    // the name is bound in: the same bytes under another name are refused
    CHECK(seslm_crypt_decrypt_file(key, out, "other.bin", &d, &dn, NULL, NULL) == SESLM_ERR_FORMAT);
    // the bound digest is authenticated: one bit changed in it fails every chunk
    size_t fn = 0;
    unsigned char *fb = read_all_file(out, &fn);
    if (fb && fn > 40) {
        fb[32 + 5] ^= 0x01;
        write_all_file(out, fb, fn);
        CHECK(seslm_crypt_decrypt_file(key, out, "rt.bin", &d, &dn, NULL, NULL) == SESLM_ERR_FORMAT);
    }
    free(fb);
    free(b);
}

int main(void) {
    char *tmp = tm_mkdtemp("crypt");
    char plain[600], enc[600], keyf[600], key2f[600], p[700];
    snprintf(plain, sizeof plain, "%s/plain", tmp);
    snprintf(enc, sizeof enc, "%s/enc", tmp);
    snprintf(keyf, sizeof keyf, "%s/model.key", tmp);
    snprintf(key2f, sizeof key2f, "%s/other.key", tmp);
    mkdir(plain, 0755);
    tm_model tm;
    tm_init(&tm, 7);
    CHECK(tm_write(&tm, plain, NULL));
    tm_free(&tm);
    unsetenv("SESLM_MODEL_KEY");
    unsetenv("SESLM_MODEL_KEY_FILE");

    unsigned char key[32], key2[32];
    CHECK(seslm_crypt_key_generate(keyf) == SESLM_OK);
    CHECK(seslm_crypt_key_generate(keyf) == SESLM_ERR_IO); // never overwritten
    struct stat sb;
    CHECK(stat(keyf, &sb) == 0 && (sb.st_mode & 0777) == 0600);
    CHECK(seslm_crypt_key_generate(key2f) == SESLM_OK);
    CHECK(seslm_crypt_key_load(key, keyf) == SESLM_OK && seslm_crypt_key_load(key2, key2f) == SESLM_OK);
    CHECK(memcmp(key, key2, 32) != 0);
    CHECK(seslm_crypt_key_load(key2, NULL) == SESLM_ERR_ARG); // no key anywhere

    // a key inside the model directory is refused; so is an existing output
    snprintf(p, sizeof p, "%s/inside.key", plain);
    CHECK(seslm_crypt_key_generate(p) == SESLM_ERR_ARG); // never written into a model directory
    CHECK(strstr(seslm_last_error(), "inside the model directory") != NULL);
    CHECK(stat(p, &sb) != 0);
    snprintf(p, sizeof p, "%s/1_Pooling/inside.key", plain); // nor anywhere below one
    CHECK(seslm_crypt_key_generate(p) == SESLM_ERR_ARG);
    CHECK(stat(p, &sb) != 0);
    snprintf(p, sizeof p, "%s/inside.key", plain);
    {
        FILE *kf = fopen(p, "w"); // put there by hand: encrypt refuses to use it
        CHECK(kf != NULL);
        if (kf) fclose(kf);
    }
    CHECK(seslm_crypt_encrypt_dir(key, plain, enc, p, 256) == SESLM_ERR_ARG);
    CHECK(strstr(seslm_last_error(), "inside the model directory") != NULL);
    unlink(p);
    // a key readable by others is refused, unless explicitly allowed
    chmod(key2f, 0644);
    CHECK(seslm_crypt_key_load(key2, key2f) == SESLM_ERR_ARG && strstr(seslm_last_error(), "chmod 600"));
    setenv("SESLM_INSECURE_SECRET_FILES", "1", 1);
    CHECK(seslm_crypt_key_load(key2, key2f) == SESLM_OK);
    unsetenv("SESLM_INSECURE_SECRET_FILES");
    chmod(key2f, 0600);
    CHECK(stat(enc, &sb) != 0);
    CHECK_MSG(seslm_crypt_encrypt_dir(key, plain, enc, keyf, 256) == SESLM_OK, "%s", seslm_last_error());
    CHECK(seslm_crypt_encrypt_dir(key, plain, enc, keyf, 256) == SESLM_ERR_IO);
    snprintf(p, sizeof p, "%s/model.safetensors", enc);
    CHECK(stat(p, &sb) != 0); // no plaintext weights
    snprintf(p, sizeof p, "%s/model.safetensors.enc", enc);
    size_t n = 0;
    unsigned char *orig = read_all_file(p, &n);
    CHECK(orig && n > 4 * (256 + 28));
    // the plaintext header names its tensors: none of that is visible
    int leak = 0;
    for (size_t i = 0; orig && i + 10 < n; i++) leak |= memcmp(orig + i, "embeddings", 10) == 0;
    CHECK(!leak);

    // with the key: bit-identical embeddings and the same weights hash
    float a[2 * 16], b[2 * 16];
    CHECK(embed(plain, a));
    expect_refused(enc, "no model key", "no key");
    setenv("SESLM_MODEL_KEY_FILE", keyf, 1);
    CHECK_MSG(embed(enc, b), "%s", seslm_last_error());
    CHECK(memcmp(a, b, sizeof a) == 0);
    seslm_model *m1 = NULL, *m2 = NULL;
    CHECK(seslm_model_load(&m1, plain) == SESLM_OK && seslm_model_load(&m2, enc) == SESLM_OK);
    if (m1 && m2) CHECK(strcmp(seslm_model_weights_sha256(m1), seslm_model_weights_sha256(m2)) == 0);
    seslm_model_free(m1);
    seslm_model_free(m2);
    char hex[65];
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", key[i]);
    unsetenv("SESLM_MODEL_KEY_FILE");
    setenv("SESLM_MODEL_KEY", hex, 1);
    CHECK(embed(enc, b) && memcmp(a, b, sizeof a) == 0);

    // a wrong key
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", key2[i]);
    setenv("SESLM_MODEL_KEY", hex, 1);
    expect_refused(enc, "wrong key", "wrong key");
    setenv("SESLM_MODEL_KEY", "not-hex", 1);
    expect_refused(enc, "64 hex digits", "malformed key");
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", key[i]);
    setenv("SESLM_MODEL_KEY", hex, 1);

    if (orig) {
        unsigned char *t = malloc(n);
        const size_t H = 64; // the header (version 2)
        // one flipped bit in the ciphertext of chunk 2
        memcpy(t, orig, n);
        t[H + 2 * (256 + 28) + 12 + 100] ^= 0x01;
        write_all_file(p, t, n);
        expect_refused(enc, "authentication failed in chunk 2", "flipped byte");
        // a flipped bit in a tag
        memcpy(t, orig, n);
        t[H + 256 + 12 + 3] ^= 0x80;
        write_all_file(p, t, n);
        expect_refused(enc, "authentication failed in chunk 0", "flipped tag");
        // truncated: the last chunk cut off
        write_all_file(p, orig, n - 100);
        expect_refused(enc, "truncated", "truncated");
        // chunks 0 and 1 swapped (both full)
        memcpy(t, orig, n);
        memcpy(t + H, orig + H + 284, 284);
        memcpy(t + H + 284, orig + H, 284);
        write_all_file(p, t, n);
        expect_refused(enc, "authentication failed in chunk 0", "reordered");
        // the header's chunk size changed (and the file still "fits": 256 -> 256 is the only fit, so any
        // change is a size mismatch or a failed tag)
        memcpy(t, orig, n);
        t[13] ^= 0x01;
        write_all_file(p, t, n);
        expect_refused(enc, "model.safetensors.enc", "changed header");
        // restored: loads again
        write_all_file(p, orig, n);
        CHECK(embed(enc, b) && memcmp(a, b, sizeof a) == 0);
        // the clear files are authenticated too: an edited vocabulary, an edited config, an added tokenizer
        // file, a removed pooling file are each refused (issue 14)
        const char *clear[] = {"vocab.txt", "config.json", "1_Pooling/config.json"};
        char cp[800];
        for (int i = 0; i < 3; i++) {
            snprintf(cp, sizeof cp, "%s/%s", enc, clear[i]);
            size_t cn = 0;
            unsigned char *cb = read_all_file(cp, &cn);
            CHECK(cb && cn > 2);
            if (!cb || cn <= 2) continue;
            cb[cn / 2] ^= 0x20;
            write_all_file(cp, cb, cn);
            expect_refused(enc, "changed, added or removed after encryption", clear[i]);
            cb[cn / 2] ^= 0x20;
            write_all_file(cp, cb, cn);
            free(cb);
        }
        snprintf(cp, sizeof cp, "%s/tokenizer.json", enc);
        write_all_file(cp, (const unsigned char *)"{}", 2);
        expect_refused(enc, "changed, added or removed after encryption", "added tokenizer.json");
        unlink(cp);
        CHECK(embed(enc, b) && memcmp(a, b, sizeof a) == 0);
        free(t);
    }
    free(orig);

    // chunk-size edge cases
    roundtrip(tmp, key, 0, 256);
    roundtrip(tmp, key, 1, 256);
    roundtrip(tmp, key, 256, 256);
    roundtrip(tmp, key, 512, 256);
    roundtrip(tmp, key, 700, 256);
    roundtrip(tmp, key, 100000, 4096);

    unsetenv("SESLM_MODEL_KEY");
    tm_rmtree(tmp);
    free(tmp);
    return test_report("test_model_crypt");
}
