/* model_crypt.h — models encrypted at rest: AES-256-GCM (OpenSSL EVP) in chunked frames.
 *
 * An encrypted file is a 64-byte header then chunks:
 *     header  "SESLMAE1" | u32 version (2) | u32 chunk bytes | 8-byte key id | u64 plaintext bytes  (LE)
 *             | 32-byte bound digest (v2; version 1 files had a 32-byte header without it)
 *     chunk   12-byte random nonce | ciphertext (chunk bytes; the last chunk the rest, maybe 0) | 16-byte tag
 * Each chunk authenticates, as additional data, the header, the file's name, its own index and whether
 * it is the last: changing, truncating, extending, reordering or swapping chunks or files, or changing
 * the header, fails authentication. The bound digest authenticates what travels beside the weights in
 * clear: seslm encrypt sets it to seslm_crypt_clear_digest of the model directory (config.json, vocab.txt,
 * tokenizer and pooling files), and a load recomputes it: an edited tokenizer file is refused like an
 * edited weight. Loads refuse version 1 files (their clear files are not authenticated). The key id (the first 8 bytes of SHA-256("seslm-model-key-id" || key))
 * tells "wrong key" apart from "tampered file" in messages; it does not reveal the key.
 *
 * seslm encrypt writes model.safetensors as model.safetensors.enc (plus encryption.json describing it);
 * seslm_model_load decrypts it into memory only, with the key from $SESLM_MODEL_KEY (64 hex digits) or
 * the file named by $SESLM_MODEL_KEY_FILE. The key is never written beside the model. */
#ifndef SESLM_MODEL_CRYPT_H
#define SESLM_MODEL_CRYPT_H

#include "seslm.h"

#include <stddef.h>

#define SESLM_CRYPT_KEY_BYTES 32
#define SESLM_CRYPT_DEFAULT_CHUNK (1u << 20)

/* Reads a key: key_file (64 hex digits, or 32 raw bytes), else $SESLM_MODEL_KEY (hex), else the file
 * $SESLM_MODEL_KEY_FILE. SESLM_ERR_ARG when none is set. */
seslm_status seslm_crypt_key_load(unsigned char key[SESLM_CRYPT_KEY_BYTES], const char *key_file);
/* Writes a fresh random key as 64 hex digits into a new file (mode 0600; an existing file is refused). */
seslm_status seslm_crypt_key_generate(const char *key_file);
/* 16 hex digits naming the key. */
void seslm_crypt_key_id(const unsigned char key[SESLM_CRYPT_KEY_BYTES], char id[17]);

/* Encrypts in -> out (written crash-safe: temp file, fsync, rename); name is bound into every chunk. */
seslm_status seslm_crypt_encrypt_file(const unsigned char key[SESLM_CRYPT_KEY_BYTES], const char *in, const char *out,
                                      const char *name, unsigned chunk_bytes, const unsigned char bind[32]);
/* Decrypts a whole file into a malloc'd buffer (free with seslm_crypt_buffer_free: it is wiped). */
seslm_status seslm_crypt_decrypt_file(const unsigned char key[SESLM_CRYPT_KEY_BYTES], const char *in,
                                      const char *name, unsigned char **buf, size_t *len, unsigned char bound[32],
                                      int *version);
/* The digest bound into an encrypted model: the content hash (model_verify.h) of dir without
 * model.safetensors.enc, encryption.json and SHA256SUMS, as 32 bytes. */
seslm_status seslm_crypt_clear_digest(const char *dir, unsigned char digest[32]);
void seslm_crypt_buffer_free(void *buf, size_t len);

/* Copies in_dir to out_dir (must not exist; written through a temporary directory and renamed) with
 * model.safetensors encrypted as model.safetensors.enc, and encryption.json. Refuses a key_file that
 * lies inside either directory. */
seslm_status seslm_crypt_encrypt_dir(const unsigned char key[SESLM_CRYPT_KEY_BYTES], const char *in_dir,
                                     const char *out_dir, const char *key_file, unsigned chunk_bytes);

#endif
