/* cmd_encrypt.c — `seslm encrypt`: write an encrypted copy of a model directory (model_crypt.h). */
#include "cli.h"
#include "model_crypt.h"

#include <openssl/crypto.h>
#include <string.h>
#include <unistd.h>

static const char *HELP =
    "usage: seslm encrypt [--key-file F [--generate-key]] [--chunk-bytes N] IN_DIR OUT_DIR\n"
    "\n"
    "Writes OUT_DIR (must not exist; through a temporary directory, renamed when complete) with\n"
    "model.safetensors encrypted with AES-256-GCM in authenticated 1 MiB chunks as model.safetensors.enc,\n"
    "the config / tokenizer / pooling files in clear, and encryption.json (format, key id). Other weight\n"
    "formats in IN_DIR (onnx/, pytorch_model.bin) are not copied. Every command loads OUT_DIR like any\n"
    "model when the key is in $SESLM_MODEL_KEY (64 hex digits) or the file $SESLM_MODEL_KEY_FILE; the\n"
    "weights are decrypted into memory only. A wrong key or a modified file is refused; the files in clear\n"
    "(config, tokenizer, pooling) are authenticated with the weights: an edited or added one is refused too.\n"
    "\n"
    "  --key-file F      the key (64 hex digits); default $SESLM_MODEL_KEY, then $SESLM_MODEL_KEY_FILE.\n"
    "                    Keep it apart from models: a key file inside any model directory is refused,\n"
    "                    as is one that group or others may read (docs/security.md)\n"
    "  --generate-key    first write a new random key into F (mode 0600; an existing F is refused)\n"
    "  --chunk-bytes N   plaintext bytes per authenticated chunk (default 1048576)\n"
    "\n"
    "Prints {\"model\": OUT_DIR, \"key_id\": ...}. Exit status: 0 ok, 1 bad input / key / write failure,\n"
    "2 usage error.\n";

static const char *CMD = "encrypt";

static int encrypt_dir(const char *key_file, int generate, int chunk, const char *in_dir, const char *out_dir);

int cmd_encrypt(int argc, char **argv) {
    const char *key_file = NULL;
    int generate = 0, chunk = (int)SESLM_CRYPT_DEFAULT_CHUNK;
    const cli_arg args[] = {
        {"--key-file", CLI_ARG_STR, &key_file, 0, 0},
        {"--generate-key", CLI_ARG_FLAG, &generate, 0, 0},
        {"--chunk-bytes", CLI_ARG_INT, &chunk, 16, 64 << 20},
        {NULL, 0, NULL, 0, 0},
    };
    cli_texts pos = {0};
    int rc = cli_parse_args(CMD, HELP, args, argc, argv, &pos);
    if (rc < 0 && pos.n != 2) {
        cli_error(CMD, pos.n > 2 ? "too many arguments (see seslm encrypt --help)"
                                 : "IN_DIR and OUT_DIR are required (see seslm encrypt --help)");
        rc = 2;
    }
    if (rc < 0) rc = encrypt_dir(key_file, generate, chunk, pos.texts[0], pos.texts[1]);
    cli_texts_free(&pos);
    return rc;
}

static int encrypt_dir(const char *key_file, int generate, int chunk, const char *in_dir, const char *out_dir) {
    if (generate && !key_file) {
        cli_error(CMD, "--generate-key needs --key-file F");
        return 2;
    }
    if (generate && seslm_crypt_key_generate(key_file) != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        return 1;
    }
    unsigned char key[SESLM_CRYPT_KEY_BYTES];
    if (seslm_crypt_key_load(key, key_file) != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        return 1;
    }
    char id[17];
    seslm_crypt_key_id(key, id);
    seslm_status s = seslm_crypt_encrypt_dir(key, in_dir, out_dir, key_file, (unsigned)chunk);
    OPENSSL_cleanse(key, sizeof key);
    if (s != SESLM_OK) {
        cli_error(CMD, "%s", seslm_last_error());
        if (generate) unlink(key_file); // the key this run created protects nothing now
        return 1;
    }
    printf("{\"model\":\"%s\",\"key_id\":\"%s\",\"cipher\":\"AES-256-GCM\",\"chunk_bytes\":%d}\n", out_dir, id, chunk);
    return 0;
}
