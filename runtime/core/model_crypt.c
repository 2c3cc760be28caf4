/* model_crypt.c — chunked AES-256-GCM for model files at rest (model_crypt.h). */
#include "model_crypt.h"
#include "model_verify.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { HDR1 = 32, HDR = 64, NONCE = 12, TAG = 16 }; // v1 header 32 bytes; v2 adds the 32-byte bound digest
static const char MAGIC[8] = {'S', 'E', 'S', 'L', 'M', 'A', 'E', '1'};

// ---- keys -----------------------------------------------------------------------------------------

static int hex_val(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static int parse_hex_key(const char *s, size_t n, unsigned char key[32]) {
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ')) n--;
    if (n != 64) return 0;
    for (int i = 0; i < 32; i++) {
        int a = hex_val((unsigned char)s[2 * i]), b = hex_val((unsigned char)s[2 * i + 1]);
        if (a < 0 || b < 0) return 0;
        key[i] = (unsigned char)(a * 16 + b);
    }
    return 1;
}

static seslm_status key_from_file(unsigned char key[32], const char *path) {
    char *txt = NULL;
    size_t n = 0;
    seslm_status s = util_secret_file_check(path);
    if (s == SESLM_OK) s = util_read_file(path, &txt, &n, 4096, NULL);
    if (s != SESLM_OK) return s;
    int ok = parse_hex_key(txt, n, key);
    if (!ok && n == 32) {
        memcpy(key, txt, 32);
        ok = 1;
    }
    OPENSSL_cleanse(txt, n);
    free(txt);
    return ok ? SESLM_OK
              : seslm_fail(SESLM_ERR_FORMAT, "%s: a model key is 64 hex digits (or 32 raw bytes)", path);
}

seslm_status seslm_crypt_key_load(unsigned char key[32], const char *key_file) {
    if (key_file && key_file[0]) return key_from_file(key, key_file);
    const char *hex = getenv("SESLM_MODEL_KEY");
    if (hex && hex[0])
        return parse_hex_key(hex, strlen(hex), key)
                   ? SESLM_OK
                   : seslm_fail(SESLM_ERR_FORMAT, "$SESLM_MODEL_KEY: a model key is 64 hex digits");
    const char *f = getenv("SESLM_MODEL_KEY_FILE");
    if (f && f[0]) return key_from_file(key, f);
    return seslm_fail(SESLM_ERR_ARG, "no model key: give --key-file, or set $SESLM_MODEL_KEY (64 hex digits) or "
                                     "$SESLM_MODEL_KEY_FILE");
}

/* A directory that holds a model: config.json beside weights (plain or encrypted) or a manifest. */
static int is_model_dir(const char *d) {
    static const char *const W[] = {"model.safetensors", "model.safetensors.enc", "SHA256SUMS"};
    char p[PATH_MAX + 32];
    struct stat sb;
    snprintf(p, sizeof p, "%s/config.json", d);
    if (stat(p, &sb) != 0) return 0;
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", d, W[i]);
        if (stat(p, &sb) == 0) return 1;
    }
    return 0;
}

/* The model directory (any, at any depth) a key file would lie in, or NULL: the key file need not exist;
 * its directory is resolved and every ancestor looked at. */
static const char *key_in_model_dir(const char *key_file, char *buf, size_t cap) {
    char tmp[PATH_MAX], real[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", key_file);
    char *slash = strrchr(tmp, '/');
    if (!slash) snprintf(tmp, sizeof tmp, ".");
    else if (slash == tmp) tmp[1] = 0;
    else *slash = 0;
    if (!realpath(tmp, real)) return NULL;
    for (;;) {
        if (is_model_dir(real)) {
            snprintf(buf, cap, "%s", real);
            return buf;
        }
        char *s = strrchr(real, '/');
        if (!s || s == real) break;
        *s = 0;
    }
    return NULL;
}

seslm_status seslm_crypt_key_generate(const char *key_file) {
    char md[PATH_MAX];
    if (key_in_model_dir(key_file, md, sizeof md))
        return seslm_fail(SESLM_ERR_ARG, "%s would lie inside the model directory %s: keep keys apart from models "
                                         "(anyone given a copy of the model would get its key)", key_file, md);
    unsigned char k[32];
    char hex[66];
    if (RAND_bytes(k, 32) != 1) return seslm_fail(SESLM_ERR_INTERNAL, "no random bytes for a key");
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", k[i]);
    hex[64] = '\n';
    hex[65] = 0;
    OPENSSL_cleanse(k, sizeof k);
    int fd = open(key_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        OPENSSL_cleanse(hex, sizeof hex);
        return seslm_fail(SESLM_ERR_IO, "%s: %s", key_file, errno == EEXIST ? "already exists (not overwritten)" : strerror(errno));
    }
    int ok = write(fd, hex, 65) == 65 && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    OPENSSL_cleanse(hex, sizeof hex);
    if (!ok) {
        unlink(key_file);
        return seslm_fail(SESLM_ERR_IO, "%s: write failed", key_file);
    }
    return SESLM_OK;
}

static void key_id_bytes(const unsigned char key[32], unsigned char id[8]) {
    static const char TAGSTR[] = "seslm-model-key-id";
    unsigned char md[32];
    unsigned int n = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) && EVP_DigestUpdate(c, TAGSTR, sizeof TAGSTR - 1) &&
        EVP_DigestUpdate(c, key, 32) && EVP_DigestFinal_ex(c, md, &n))
        memcpy(id, md, 8);
    else
        memset(id, 0, 8);
    EVP_MD_CTX_free(c);
}

void seslm_crypt_key_id(const unsigned char key[32], char id[17]) {
    unsigned char b[8];
    key_id_bytes(key, b);
    for (int i = 0; i < 8; i++) snprintf(id + 2 * i, 3, "%02x", b[i]);
}

// ---- frames ---------------------------------------------------------------------------------------

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* One chunk, in either direction. aad = header || name || index || final. Returns 1 ok (decrypt: 1 when
 * the tag verifies). */
static int gcm_chunk(int enc, const unsigned char key[32], const unsigned char nonce[NONCE], const unsigned char *hdr,
                     int hdr_len, const char *name, uint64_t index, int final, const unsigned char *in, size_t n,
                     unsigned char *out, unsigned char tag[TAG]) {
    unsigned char tail[9];
    put_u64(tail, index);
    tail[8] = (unsigned char)(final ? 1 : 0);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int len = 0, ok = c != NULL;
    ok = ok && (enc ? EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL)
                    : EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL));
    ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE, NULL);
    ok = ok && (enc ? EVP_EncryptInit_ex(c, NULL, NULL, key, nonce) : EVP_DecryptInit_ex(c, NULL, NULL, key, nonce));
    const unsigned char *aad[3] = {hdr, (const unsigned char *)name, tail};
    const int aad_n[3] = {hdr_len, (int)strlen(name), 9};
    for (int i = 0; i < 3 && ok; i++)
        ok = enc ? EVP_EncryptUpdate(c, NULL, &len, aad[i], aad_n[i]) : EVP_DecryptUpdate(c, NULL, &len, aad[i], aad_n[i]);
    // at most 1 MiB-ish per chunk: fits an int
    if (ok && n) ok = enc ? EVP_EncryptUpdate(c, out, &len, in, (int)n) : EVP_DecryptUpdate(c, out, &len, in, (int)n);
    if (ok && !enc) ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG, tag);
    unsigned char fin[16];
    if (ok) ok = enc ? EVP_EncryptFinal_ex(c, fin, &len) : EVP_DecryptFinal_ex(c, fin, &len) > 0;
    if (ok && enc) ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG, tag);
    EVP_CIPHER_CTX_free(c);
    return ok;
}

static int read_all(int fd, void *p, size_t n) {
    unsigned char *b = p;
    while (n) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return 0;
        b += r;
        n -= (size_t)r;
    }
    return 1;
}

seslm_status seslm_crypt_encrypt_file(const unsigned char key[32], const char *in, const char *out, const char *name,
                                      unsigned chunk_bytes, const unsigned char bind[32]) {
    if (chunk_bytes < 16 || chunk_bytes > (64u << 20)) return seslm_fail(SESLM_ERR_ARG, "chunk size %u out of range", chunk_bytes);
    int fi = open(in, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat sb;
    if (fi < 0 || fstat(fi, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        if (fi >= 0) close(fi);
        return seslm_fail(SESLM_ERR_IO, "%s: not a readable regular file", in);
    }
    char tmp[PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", out);
    int fo = mkstemp(tmp);
    if (fo < 0) {
        close(fi);
        return seslm_fail(SESLM_ERR_IO, "cannot create a temporary file beside %s: %s", out, strerror(errno));
    }
    fchmod(fo, 0600);
    unsigned char hdr[HDR];
    memcpy(hdr, MAGIC, 8);
    put_u32(hdr + 8, 2);
    put_u32(hdr + 12, chunk_bytes);
    key_id_bytes(key, hdr + 16);
    uint64_t total = (uint64_t)sb.st_size;
    put_u64(hdr + 24, total);
    if (bind) memcpy(hdr + HDR1, bind, 32);
    else memset(hdr + HDR1, 0, 32);
    unsigned char *pb = malloc(chunk_bytes), *cb = malloc(chunk_bytes);
    seslm_status s = pb && cb ? SESLM_OK : seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    if (s == SESLM_OK && !util_write_all(fo, hdr, HDR)) s = seslm_fail(SESLM_ERR_IO, "%s: write failed", tmp);
    uint64_t done = 0;
    for (uint64_t idx = 0; s == SESLM_OK; idx++) {
        size_t n = total - done < chunk_bytes ? (size_t)(total - done) : chunk_bytes;
        int final = done + n == total;
        unsigned char nonce[NONCE], tag[TAG];
        if (n && !read_all(fi, pb, n)) s = seslm_fail(SESLM_ERR_IO, "%s: short read (changed while encrypting?)", in);
        else if (RAND_bytes(nonce, NONCE) != 1) s = seslm_fail(SESLM_ERR_INTERNAL, "no random bytes for a nonce");
        else if (!gcm_chunk(1, key, nonce, hdr, HDR, name, idx, final, pb, n, cb, tag))
            s = seslm_fail(SESLM_ERR_INTERNAL, "AES-256-GCM encryption failed");
        else if (!util_write_all(fo, nonce, NONCE) || !util_write_all(fo, cb, n) || !util_write_all(fo, tag, TAG))
            s = seslm_fail(SESLM_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
        done += n;
        if (final) break;
    }
    if (pb) OPENSSL_cleanse(pb, chunk_bytes);
    free(pb);
    free(cb);
    close(fi);
    if (s == SESLM_OK && fsync(fo) != 0) s = seslm_fail(SESLM_ERR_IO, "%s: fsync: %s", tmp, strerror(errno));
    if (close(fo) != 0 && s == SESLM_OK) s = seslm_fail(SESLM_ERR_IO, "%s: close: %s", tmp, strerror(errno));
    if (s == SESLM_OK && rename(tmp, out) != 0) s = seslm_fail(SESLM_ERR_IO, "rename %s -> %s: %s", tmp, out, strerror(errno));
    if (s != SESLM_OK) unlink(tmp);
    return s;
}

void seslm_crypt_buffer_free(void *buf, size_t len) {
    if (!buf) return;
    OPENSSL_cleanse(buf, len);
    free(buf);
}

seslm_status seslm_crypt_decrypt_file(const unsigned char key[32], const char *in, const char *name, unsigned char **buf,
                                      size_t *len, unsigned char bound[32], int *version_out) {
    *buf = NULL;
    *len = 0;
    if (version_out) *version_out = 0;
    int fd = open(in, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        if (fd >= 0) close(fd);
        return seslm_fail(SESLM_ERR_IO, "%s: not a readable regular file", in);
    }
    unsigned char hdr[HDR];
    if (sb.st_size < HDR1 || !read_all(fd, hdr, HDR1) || memcmp(hdr, MAGIC, 8) != 0) {
        close(fd);
        return seslm_fail(SESLM_ERR_FORMAT, "%s: not an SE-SLM encrypted file (bad header)", in);
    }
    uint32_t version = get_u32(hdr + 8), chunk = get_u32(hdr + 12);
    const int hdr_len = version == 2 ? HDR : HDR1;
    if (version == 2 && (sb.st_size < HDR || !read_all(fd, hdr + HDR1, HDR - HDR1))) {
        close(fd);
        return seslm_fail(SESLM_ERR_FORMAT, "%s: truncated header", in);
    }
    uint64_t total = get_u64(hdr + 24);
    unsigned char want_id[8];
    key_id_bytes(key, want_id);
    char have[17], mine[17];
    for (int i = 0; i < 8; i++) snprintf(have + 2 * i, 3, "%02x", hdr[16 + i]), snprintf(mine + 2 * i, 3, "%02x", want_id[i]);
    seslm_status s = SESLM_OK;
    uint64_t n_chunks = 0;
    if ((version != 1 && version != 2) || chunk < 16 || chunk > (64u << 20) || total > (uint64_t)1 << 40)
        s = seslm_fail(SESLM_ERR_FORMAT, "%s: unsupported encrypted-file header (version %u, chunk %u)", in, version, chunk);
    else if (memcmp(want_id, hdr + 16, 8) != 0)
        s = seslm_fail(SESLM_ERR_ARG, "%s: wrong key (this key's id is %s, the file was encrypted with key id %s)", in,
                       mine, have);
    // the number of chunks: full chunks, then the final one with the rest (possibly empty only for an empty file)
    if (s == SESLM_OK) n_chunks = total == 0 ? 1 : (total + chunk - 1) / chunk;
    uint64_t expect = (uint64_t)hdr_len + n_chunks * (NONCE + TAG) + total;
    if (s == SESLM_OK && (uint64_t)sb.st_size != expect)
        s = seslm_fail(SESLM_ERR_FORMAT, "%s: %lld bytes, expected %llu for %llu plaintext bytes: truncated or extended", in,
                       (long long)sb.st_size, (unsigned long long)expect, (unsigned long long)total);
    unsigned char *out = NULL, *cb = NULL;
    if (s == SESLM_OK) {
        out = malloc(total ? (size_t)total : 1);
        cb = malloc(chunk);
        if (!out || !cb) s = seslm_fail(SESLM_ERR_NOMEM, "%s: out of memory for %llu bytes", in, (unsigned long long)total);
    }
    uint64_t done = 0;
    for (uint64_t idx = 0; s == SESLM_OK && idx < n_chunks; idx++) {
        size_t n = total - done < chunk ? (size_t)(total - done) : chunk;
        int final = idx + 1 == n_chunks;
        unsigned char nonce[NONCE], tag[TAG];
        if (!read_all(fd, nonce, NONCE) || !read_all(fd, cb, n) || !read_all(fd, tag, TAG))
            s = seslm_fail(SESLM_ERR_IO, "%s: short read in chunk %llu", in, (unsigned long long)idx);
        else if (!gcm_chunk(0, key, nonce, hdr, hdr_len, name, idx, final, cb, n, out + done, tag))
            s = seslm_fail(SESLM_ERR_FORMAT,
                           "%s: authentication failed in chunk %llu of %llu: the file was modified, truncated, reordered "
                           "or renamed (the key id matches)",
                           in, (unsigned long long)idx, (unsigned long long)n_chunks);
        done += n;
    }
    close(fd);
    free(cb);
    if (s != SESLM_OK) {
        seslm_crypt_buffer_free(out, total);
        return s;
    }
    *buf = out;
    *len = (size_t)total;
    static const unsigned char none[32];
    if (bound) memcpy(bound, version == 2 ? hdr + HDR1 : none, 32);
    if (version_out) *version_out = (int)version;
    return SESLM_OK;
}

// ---- directories ----------------------------------------------------------------------------------

seslm_status seslm_crypt_clear_digest(const char *dir, unsigned char digest[32]) {
    static const char *const ex[] = {"model.safetensors.enc", "encryption.json", SESLM_MANIFEST_NAME};
    char hex[65];
    seslm_status s = model_dir_hash(dir, ex, 3, hex, NULL);
    for (int i = 0; s == SESLM_OK && i < 32; i++) digest[i] = (unsigned char)(hex_val(hex[2 * i]) * 16 + hex_val(hex[2 * i + 1]));
    return s;
}

/* The files copied in clear: architecture, tokenizer and pooling descriptions, no weights. Other weight
 * formats in a model directory (onnx/, pytorch_model.bin, ...) are not copied: they would hold the
 * weights in clear. */
static const char *const CLEAR_FILES[] = {"config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json",
                                          "special_tokens_map.json", "sentence_bert_config.json", "modules.json",
                                          "config_sentence_transformers.json", "1_Pooling/config.json"};

static seslm_status copy_clear(const char *src, const char *dst) {
    char *txt = NULL;
    size_t n = 0;
    seslm_status s = util_read_file(src, &txt, &n, (size_t)64 << 20, NULL);
    if (s != SESLM_OK) return s;
    int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) s = seslm_fail(SESLM_ERR_IO, "%s: %s", dst, strerror(errno));
    else {
        if (!util_write_all(fd, txt, n) || fsync(fd) != 0) s = seslm_fail(SESLM_ERR_IO, "%s: write failed", dst);
        if (close(fd) != 0 && s == SESLM_OK) s = seslm_fail(SESLM_ERR_IO, "%s: close failed", dst);
    }
    free(txt);
    return s;
}

static int path_inside(const char *file, const char *dir) {
    char a[PATH_MAX], b[PATH_MAX];
    if (!realpath(file, a) || !realpath(dir, b)) return 0;
    size_t n = strlen(b);
    return strncmp(a, b, n) == 0 && (a[n] == '/' || a[n] == 0);
}

static void rm_dir_flat(const char *dir) {
    char p[PATH_MAX + 64];
    for (size_t i = 0; i < sizeof CLEAR_FILES / sizeof CLEAR_FILES[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, CLEAR_FILES[i]);
        unlink(p);
    }
    const char *more[] = {"model.safetensors.enc", "encryption.json"};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, more[i]);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/1_Pooling", dir);
    rmdir(p);
    rmdir(dir);
}

static seslm_status fsync_dir(const char *d) {
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return seslm_fail(SESLM_ERR_IO, "%s: %s", d, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    return rc == 0 ? SESLM_OK : seslm_fail(SESLM_ERR_IO, "fsync %s: %s", d, strerror(errno));
}

seslm_status seslm_crypt_encrypt_dir(const unsigned char key[32], const char *in_dir, const char *out_dir,
                                     const char *key_file, unsigned chunk_bytes) {
    struct stat sb;
    char p[PATH_MAX + 64], q[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/model.safetensors", in_dir);
    if (stat(p, &sb) != 0 || !S_ISREG(sb.st_mode)) return seslm_fail(SESLM_ERR_IO, "%s: no model.safetensors", in_dir);
    if (lstat(out_dir, &sb) == 0) return seslm_fail(SESLM_ERR_IO, "%s already exists (not overwritten)", out_dir);
    char md[PATH_MAX];
    if (key_file && path_inside(key_file, in_dir))
        return seslm_fail(SESLM_ERR_ARG, "the key file %s lies inside the model directory: keep keys apart from models", key_file);
    if (key_file && key_in_model_dir(key_file, md, sizeof md))
        return seslm_fail(SESLM_ERR_ARG, "the key file %s lies inside the model directory %s: keep keys apart from models",
                          key_file, md);
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", out_dir);
    if (!mkdtemp(tmp)) return seslm_fail(SESLM_ERR_IO, "cannot create a temporary directory beside %s: %s", out_dir, strerror(errno));
    chmod(tmp, 0755);
    seslm_status s = SESLM_OK;
    for (size_t i = 0; s == SESLM_OK && i < sizeof CLEAR_FILES / sizeof CLEAR_FILES[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", in_dir, CLEAR_FILES[i]);
        if (stat(p, &sb) != 0) continue; // optional files
        snprintf(q, sizeof q, "%s/%s", tmp, CLEAR_FILES[i]);
        if (strchr(CLEAR_FILES[i], '/')) {
            char d[PATH_MAX + 64];
            snprintf(d, sizeof d, "%s/1_Pooling", tmp);
            mkdir(d, 0755);
        }
        s = copy_clear(p, q);
    }
    // every clear file is bound into the weights' authentication: a changed vocab.txt or config.json (or
    // one added) fails the load as a changed weight would (seslm_crypt_clear_digest)
    unsigned char bind[32];
    if (s == SESLM_OK) s = seslm_crypt_clear_digest(tmp, bind);
    snprintf(p, sizeof p, "%s/model.safetensors", in_dir);
    snprintf(q, sizeof q, "%s/model.safetensors.enc", tmp);
    if (s == SESLM_OK) s = seslm_crypt_encrypt_file(key, p, q, "model.safetensors", chunk_bytes, bind);
    if (s == SESLM_OK) {
        char id[17], js[512];
        seslm_crypt_key_id(key, id);
        int n = snprintf(js, sizeof js,
                         "{\n  \"format\": \"seslm-aead-v2\",\n  \"cipher\": \"AES-256-GCM\",\n  \"chunk_bytes\": %u,\n"
                         "  \"files\": [\"model.safetensors.enc\"],\n  \"authenticated_clear_files\": \"all others\",\n"
                         "  \"key_id\": \"%s\"\n}\n",
                         chunk_bytes, id);
        snprintf(q, sizeof q, "%s/encryption.json", tmp);
        int fd = open(q, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 || !util_write_all(fd, js, (size_t)n) || fsync(fd) != 0) s = seslm_fail(SESLM_ERR_IO, "%s: write failed", q);
        if (fd >= 0) close(fd);
    }
    if (s == SESLM_OK) {
        snprintf(p, sizeof p, "%s/1_Pooling", tmp);
        if (stat(p, &sb) == 0) s = fsync_dir(p);
    }
    if (s == SESLM_OK) s = fsync_dir(tmp);
    if (s == SESLM_OK && rename(tmp, out_dir) != 0) s = seslm_fail(SESLM_ERR_IO, "rename %s -> %s: %s", tmp, out_dir, strerror(errno));
    if (s != SESLM_OK) {
        rm_dir_flat(tmp);
        return s;
    }
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", out_dir);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) *slash = 0;
    else snprintf(parent, sizeof parent, "%s", slash ? "/" : ".");
    fsync_dir(parent);
    if (key_file && path_inside(key_file, out_dir)) // cannot happen (it did not exist), but say so if it does
        return seslm_fail(SESLM_ERR_ARG, "the key file lies inside %s", out_dir);
    return SESLM_OK;
}
