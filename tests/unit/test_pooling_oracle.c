/* test_pooling_oracle.c — the pooling modes, prompts and the tokenizer.json-only packaging of the real
 * all-MiniLM-L6-v2 against sentence-transformers (tests/fixtures/pooling, made by
 * tests/oracle/make_pooling_fixtures.sh): each case is the real weights with the case's modules.json,
 * 1_Pooling/config.json and config_sentence_transformers.json. Per input: cosine >= 0.99999 and max abs
 * error <= 1e-4 x max(1, |reference|). Then every configuration SE-SLM cannot reproduce must be refused
 * at load with a message that names it. The encoder's device code path, run by the cpu-devsim backend (the
 * reference ops on host memory), for 4 cases: the oracle's embeddings, and the embedding and the 3-layer
 * features bit for bit as cpu-ref. A missing model FAILS (CI fetches it). */
#include "seslm.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIM 384
#define MAXN 512

static const char *model_dir, *oracle = SESLM_SOURCE_DIR "/tests/fixtures/oracle",
                              *pool_fix = SESLM_SOURCE_DIR "/tests/fixtures/pooling";
static char *texts[MAXN];
static size_t text_lens[MAXN];
static int n_inputs, subset[MAXN], n_subset;
static char tmp_root[] = "/tmp/seslm_pool_XXXXXX";

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) free(b), b = NULL;
    fclose(f);
    if (b) b[n] = 0;
    if (len) *len = (size_t)n;
    return b;
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    CHECK_MSG(f != NULL, "cannot write %s", path);
    if (f) fputs(s, f), fclose(f);
}

static void copy_file(const char *from, const char *to) {
    size_t n;
    char *b = slurp(from, &n);
    if (!b) return; // optional files
    FILE *f = fopen(to, "wb");
    if (f) fwrite(b, 1, n, f), fclose(f);
    free(b);
}

static int load_inputs(void) {
    char path[4096];
    size_t len;
    snprintf(path, sizeof path, "%s/inputs.bin", oracle);
    char *bin = slurp(path, &len);
    if (!bin) return 0;
    for (size_t p = 0; p + 4 <= len && n_inputs < MAXN;) {
        const unsigned char *u = (const unsigned char *)bin + p;
        uint32_t l = u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
        p += 4;
        if (p + l > len) break;
        texts[n_inputs] = malloc(l + 1);
        memcpy(texts[n_inputs], bin + p, l);
        texts[n_inputs][l] = 0;
        text_lens[n_inputs++] = l;
        p += l;
    }
    free(bin);
    snprintf(path, sizeof path, "%s/manifest.json", pool_fix);
    char *s = slurp(path, NULL);
    cJSON *m = s ? cJSON_Parse(s) : NULL;
    free(s);
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(m, "subset")) if (n_subset < MAXN && v->valueint < n_inputs) subset[n_subset++] = v->valueint;
    cJSON_Delete(m);
    return n_inputs > 0 && n_subset > 0;
}

/* A model folder: the real model's files (symlinked) except those the case replaces or drops. */
static void make_model(const char *dst, const char *case_dir, const char *drop) {
    mkdir(dst, 0700);
    DIR *d = opendir(model_dir);
    struct dirent *de;
    char a[4096], b[4096];
    while (d && (de = readdir(d))) {
        const char *n = de->d_name;
        if (n[0] == '.' || !strcmp(n, "modules.json") || !strcmp(n, "1_Pooling") ||
            !strcmp(n, "config_sentence_transformers.json") || (drop && !strcmp(n, drop)))
            continue;
        snprintf(a, sizeof a, "%s/%s", model_dir, n);
        snprintf(b, sizeof b, "%s/%s", dst, n);
        char *real = realpath(a, NULL);
        CHECK(real && symlink(real, b) == 0);
        free(real);
    }
    if (d) closedir(d);
    snprintf(b, sizeof b, "%s/1_Pooling", dst);
    mkdir(b, 0700);
    const char *files[] = {"modules.json", "1_Pooling/config.json", "config_sentence_transformers.json"};
    for (int i = 0; i < 3; i++) {
        snprintf(a, sizeof a, "%s/%s", case_dir ? case_dir : model_dir, files[i]);
        snprintf(b, sizeof b, "%s/%s", dst, files[i]);
        copy_file(a, b);
    }
}

static double worst_cos = 1.0;

/* Embeds the subset (batches of 16, mixed lengths) and compares with want (n_subset, DIM). */
static int compare_limit = MAXN; // the slow plain-C backend checks the first 16 inputs only

static void compare(seslm_encoder *e, const char *what, const float *want) {
    float out[16 * DIM];
    const int total = n_subset < compare_limit ? n_subset : compare_limit;
    const int S = TEST_ORACLE_STRIDE;
    for (int i = 0; i < total; i += 16 * S) {
        int pos[16], n = 0; // the subset positions of this batch
        for (int p = i; p < total && p < i + 16 * S && n < 16; p += S) pos[n++] = p;
        const char *bt[16];
        size_t bl[16];
        for (int k = 0; k < n; k++) bt[k] = texts[subset[pos[k]]], bl[k] = text_lens[subset[pos[k]]];
        for (int k = 0; k < n * DIM; k++) out[k] = NAN; // poison: an unwritten element fails
        seslm_status st = seslm_encoder_embed_texts(e, bt, bl, n, out);
        CHECK_MSG(st == SESLM_OK, "%s: %s", what, seslm_last_error());
        if (st != SESLM_OK) return;
        for (int k = 0; k < n; k++) {
            const float *g = out + (size_t)k * DIM, *w = want + (size_t)pos[k] * DIM;
            double ab = 0, aa = 0, bb = 0, mx = 0;
            int finite = 1;
            for (int c = 0; c < DIM; c++) {
                finite &= isfinite(g[c]);
                ab += (double)g[c] * w[c], aa += (double)g[c] * g[c], bb += (double)w[c] * w[c];
                mx = fmax(mx, fabs((double)g[c] - w[c]));
            }
            const double cs = finite ? ab / sqrt(aa * bb) : -2;
            worst_cos = fmin(worst_cos, cs);
            CHECK_MSG(finite && cs >= 0.99999 && mx <= 1e-4 * fmax(1.0, sqrt(bb)),
                      "%s: input %d: cosine %.8f, max abs err %.3g (|ref| %.3g)", what, subset[pos[k]], cs, mx, sqrt(bb));
        }
    }
}

static float *read_f32(const char *dir, const char *name) {
    char path[4096];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    float *f = (float *)slurp(path, &len);
    CHECK_MSG(f && len == (size_t)n_subset * DIM * sizeof(float), "%s: missing or wrong size", path);
    if (f && len != (size_t)n_subset * DIM * sizeof(float)) free(f), f = NULL;
    return f;
}

static void check_case(const char *name, const char *backend) {
    char cdir[2048], mdir[2048], what[256];
    snprintf(cdir, sizeof cdir, "%s/%s", pool_fix, name);
    snprintf(mdir, sizeof mdir, "%s/%s_%s", tmp_root, name, backend);
    make_model(mdir, cdir, NULL);
    seslm_model *m = NULL;
    seslm_encoder *e = NULL;
    seslm_status st = seslm_model_load(&m, mdir);
    CHECK_MSG(st == SESLM_OK, "%s: %s", name, seslm_last_error());
    if (st != SESLM_OK) return;
    seslm_encoder_opts o = {.backend = backend, .n_threads = 2, .max_batch = 16};
    CHECK(seslm_encoder_new(&e, m, &o) == SESLM_OK);
    float *want = read_f32(cdir, "embeddings.f32");
    snprintf(what, sizeof what, "%s [%s, pooling %s]", name, backend, seslm_pooling_name(seslm_model_get_config(m)->pooling));
    worst_cos = 1.0;
    if (e && want) compare(e, what, want);
    printf("%-40s worst cosine %.9f\n", what, worst_cos);
    free(want);
    if (e && seslm_model_get_config(m)->n_prompts > 0) { // default prompt = "query"; each named prompt
        CHECK(seslm_encoder_prompt(e) && strcmp(seslm_encoder_prompt(e), seslm_model_prompt(m, "query")) == 0);
        const char *names[] = {"query", "passage"};
        const int keep = compare_limit;
        compare_limit = 16; // (the default pass above covered the whole subset)
        for (int i = 0; i < 2; i++) {
            char f[64];
            snprintf(f, sizeof f, "embeddings_%s.f32", names[i]);
            CHECK(seslm_encoder_set_prompt(e, seslm_model_prompt(m, names[i])) == SESLM_OK);
            want = read_f32(cdir, f);
            snprintf(what, sizeof what, "%s [%s, prompt %s]", name, backend, names[i]);
            worst_cos = 1.0;
            if (want) compare(e, what, want);
            printf("%-40s worst cosine %.9f\n", what, worst_cos);
            free(want);
        }
        compare_limit = keep;
    }
    seslm_encoder_free(e);
    seslm_model_free(m);
}

/* The device code path (cpu-devsim: the reference ops on host memory) for case `name`: the oracle's
 * embeddings (check_case), then the embedding and the features of the last 3 layers (the intent head's
 * input: earlier layers downloaded and pooled on the host) bit for bit against cpu-ref's host path, with
 * the case's default prompt. */
static void check_devsim(const char *name) {
    check_case(name, "cpu-devsim");
    char cdir[2048], mdir[2048];
    snprintf(cdir, sizeof cdir, "%s/%s", pool_fix, name);
    snprintf(mdir, sizeof mdir, "%s/%s_devsim_features", tmp_root, name);
    make_model(mdir, cdir, NULL);
    seslm_model *m = NULL;
    seslm_encoder *eh = NULL, *ed = NULL;
    CHECK_MSG(seslm_model_load(&m, mdir) == SESLM_OK, "%s: %s", name, seslm_last_error());
    if (!m) return;
    seslm_encoder_opts o = {.backend = "cpu-ref", .n_threads = 1, .max_batch = 16};
    CHECK(seslm_encoder_new(&eh, m, &o) == SESLM_OK);
    o.backend = "cpu-devsim";
    CHECK(seslm_encoder_new(&ed, m, &o) == SESLM_OK);
    enum { N = 8, K = 3 };
    const char *bt[N];
    size_t bl[N];
    for (int i = 0; i < N; i++) bt[i] = texts[subset[i]], bl[i] = text_lens[subset[i]];
    static float fh[N * K * DIM], fd[N * K * DIM];
    for (int k = 0; eh && ed && k <= K; k += K) { // k = 0: the embedding
        for (int i = 0; i < N * K * DIM; i++) fh[i] = NAN, fd[i] = NAN;
        const seslm_status sh = k ? seslm_encoder_features_texts(eh, bt, bl, N, k, fh) : seslm_encoder_embed_texts(eh, bt, bl, N, fh);
        const seslm_status sd = k ? seslm_encoder_features_texts(ed, bt, bl, N, k, fd) : seslm_encoder_embed_texts(ed, bt, bl, N, fd);
        const size_t nf = (size_t)N * (k ? k : 1) * DIM;
        int finite = 1;
        for (size_t i = 0; i < nf; i++) finite &= isfinite(fd[i]);
        CHECK_MSG(sh == SESLM_OK && sd == SESLM_OK && finite && memcmp(fh, fd, nf * sizeof(float)) == 0,
                  "%s, k = %d: the device code path differs from cpu-ref (%s)", name, k, seslm_last_error());
    }
    printf("%-40s device code path: embedding and 3-layer features bit for bit as cpu-ref\n", name);
    seslm_encoder_free(eh);
    seslm_encoder_free(ed);
    seslm_model_free(m);
}

/* tokenizer.json without vocab.txt: the oracle's ids for every input, and its embeddings. */
static void check_tokenizer_json_only(void) {
    char mdir[2048], path[4096];
    snprintf(mdir, sizeof mdir, "%s/tokenizer_json_only", tmp_root);
    make_model(mdir, NULL, "vocab.txt");
    snprintf(path, sizeof path, "%s/vocab.txt", mdir);
    CHECK(access(path, F_OK) != 0);
    seslm_model *m = NULL;
    seslm_status st = seslm_model_load(&m, mdir);
    CHECK_MSG(st == SESLM_OK, "tokenizer.json-only: %s", seslm_last_error());
    if (st != SESLM_OK) return;
    snprintf(path, sizeof path, "%s/ids.jsonl", oracle);
    char *all = slurp(path, NULL);
    int same = 0, lines = 0;
    int32_t ids[512];
    for (char *s = all, *nl; s && *s; s = nl ? nl + 1 : NULL, lines++) {
        if ((nl = strchr(s, '\n'))) *nl = 0;
        cJSON *o = cJSON_Parse(s);
        const cJSON *id = cJSON_GetObjectItem(o, "id"), *w = cJSON_GetObjectItem(o, "input_ids");
        int n = 0, k = cJSON_IsNumber(id) ? id->valueint : -1;
        int ok = k >= 0 && k < n_inputs &&
                 seslm_tokenizer_encode(seslm_model_tokenizer(m), texts[k], text_lens[k], ids, 512, &n) == SESLM_OK &&
                 n == cJSON_GetArraySize(w);
        for (int t = 0; ok && t < n; t++) ok = ids[t] == cJSON_GetArrayItem(w, t)->valueint;
        CHECK_MSG(ok, "tokenizer.json-only: input %d: ids differ from the Hugging Face tokenizer", k);
        same += ok;
        cJSON_Delete(o);
    }
    free(all);
    CHECK(lines == n_inputs && same == n_inputs);
    printf("tokenizer.json only: ids identical on %d of %d inputs\n", same, n_inputs);
    // the untruncated lengths: the reference's own, for the inputs it truncated (oracle manifest.json)
    snprintf(path, sizeof path, "%s/manifest.json", oracle);
    char *ms = slurp(path, NULL);
    cJSON *man = ms ? cJSON_Parse(ms) : NULL;
    free(ms);
    const cJSON *full = cJSON_GetObjectItem(cJSON_GetObjectItem(man, "token_length_stats"), "truncated_inputs_full_length");
    int n_full_checked = 0;
    for (int k = 0; k < n_inputs; k++) {
        int32_t a[512], b[512];
        int na = 0, nb = 0, nf = 0;
        CHECK(seslm_tokenizer_encode(seslm_model_tokenizer(m), texts[k], text_lens[k], a, 512, &na) == SESLM_OK);
        CHECK(seslm_tokenizer_encode_full(seslm_model_tokenizer(m), texts[k], text_lens[k], b, 512, &nb, &nf) == SESLM_OK);
        CHECK_MSG(na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0, "input %d: encode_full stored other ids", k);
        char key[16];
        snprintf(key, sizeof key, "%d", k);
        const cJSON *want = cJSON_GetObjectItem(full, key);
        if (want) n_full_checked++;
        CHECK_MSG(want ? nf == want->valueint : nf == na, "input %d: full length %d, reference %d", k, nf,
                  want ? want->valueint : na);
    }
    CHECK(n_full_checked >= 10);
    printf("untruncated lengths equal the reference's on %d truncated inputs\n", n_full_checked);
    cJSON_Delete(man);
    // embeddings: the oracle rows of the subset
    snprintf(path, sizeof path, "%s/embeddings.f32", oracle);
    size_t len = 0;
    float *ref = (float *)slurp(path, &len), *want = malloc((size_t)n_subset * DIM * sizeof(float));
    CHECK(ref && len == (size_t)n_inputs * DIM * sizeof(float));
    seslm_encoder *e = NULL;
    seslm_encoder_opts o = {.backend = "cpu", .n_threads = 2, .max_batch = 16};
    CHECK(seslm_encoder_new(&e, m, &o) == SESLM_OK);
    if (ref && e && len == (size_t)n_inputs * DIM * sizeof(float)) {
        for (int i = 0; i < n_subset; i++) memcpy(want + (size_t)i * DIM, ref + (size_t)subset[i] * DIM, DIM * sizeof(float));
        worst_cos = 1.0;
        compare(e, "tokenizer.json only", want);
        printf("tokenizer.json only: embeddings worst cosine %.9f\n", worst_cos);
    }
    free(ref), free(want);
    seslm_encoder_free(e);
    seslm_model_free(m);
}

/* A configuration SE-SLM cannot reproduce: the load must fail with SESLM_ERR_FORMAT naming it. */
static void expect_refused(const char *tag, const char *file, const char *content, const char *drop, const char *needle) {
    char mdir[2048], path[4096];
    snprintf(mdir, sizeof mdir, "%s/refuse_%s", tmp_root, tag);
    make_model(mdir, NULL, drop);
    snprintf(path, sizeof path, "%s/%s", mdir, file);
    unlink(path); // (may be a symlink into the real model)
    write_text(path, content);
    seslm_model *m = NULL;
    seslm_status st = seslm_model_load(&m, mdir);
    CHECK_MSG(st == SESLM_ERR_FORMAT && strstr(seslm_last_error(), needle), "%s: status %d, message \"%s\" (want \"%s\")", tag,
              st, seslm_last_error(), needle);
    printf("refused %-22s %s\n", tag, st == SESLM_OK ? "(loaded!)" : seslm_last_error());
    seslm_model_free(m);
}

/* The real tokenizer.json with one field replaced. */
static char *tokenizer_json_with(const char *section, const char *key, cJSON *value) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", model_dir);
    char *s = slurp(path, NULL);
    cJSON *root = s ? cJSON_Parse(s) : NULL;
    free(s);
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(root, section), key, value);
    char *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}

static void check_refusals(void) {
    const char *mods_dense =
        "[{\"idx\":0,\"name\":\"0\",\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"},"
        "{\"idx\":1,\"name\":\"1\",\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.models.Pooling\"},"
        "{\"idx\":2,\"name\":\"2\",\"path\":\"2_Dense\",\"type\":\"sentence_transformers.models.Dense\"}]";
    const char *mods_order =
        "[{\"idx\":0,\"name\":\"0\",\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"},"
        "{\"idx\":1,\"name\":\"1\",\"path\":\"2_Normalize\",\"type\":\"sentence_transformers.models.Normalize\"},"
        "{\"idx\":2,\"name\":\"2\",\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.models.Pooling\"}]";
    expect_refused("two_legacy_modes", "1_Pooling/config.json",
                   "{\"word_embedding_dimension\":384,\"pooling_mode_mean_tokens\":true,\"pooling_mode_max_tokens\":true}", NULL,
                   "2 pooling modes are enabled");
    expect_refused("mode_list", "1_Pooling/config.json", "{\"pooling_mode\":[\"cls\",\"mean\"]}", NULL, "pooling modes are enabled");
    expect_refused("unknown_mode", "1_Pooling/config.json", "{\"pooling_mode\":\"attention\"}", NULL, "unknown pooling_mode");
    expect_refused("dimension", "1_Pooling/config.json", "{\"word_embedding_dimension\":768,\"pooling_mode_mean_tokens\":true}", NULL,
                   "differs from the model's hidden size");
    expect_refused("dense_module", "modules.json", mods_dense, NULL, "sentence_transformers.models.Dense");
    expect_refused("normalize_first", "modules.json", mods_order, NULL, "Transformer -> Pooling -> [Normalize]");
    expect_refused("bad_default_prompt", "config_sentence_transformers.json",
                   "{\"prompts\":{\"query\":\"q: \"},\"default_prompt_name\":\"passage\"}", NULL, "default_prompt_name");
    char *tj = tokenizer_json_with("model", "type", cJSON_CreateString("BPE"));
    expect_refused("tokenizer_bpe", "tokenizer.json", tj, "vocab.txt", "model type \"BPE\"");
    free(tj);
    tj = tokenizer_json_with("normalizer", "lowercase", cJSON_CreateFalse());
    expect_refused("tokenizer_contradicts", "tokenizer.json", tj, "vocab.txt", "contradicts tokenizer_config.json");
    free(tj);
    tj = tokenizer_json_with("pre_tokenizer", "type", cJSON_CreateString("Metaspace"));
    expect_refused("tokenizer_pretok", "tokenizer.json", tj, "vocab.txt", "pre_tokenizer \"Metaspace\"");
    free(tj);
}

int main(void) {
    model_dir = getenv("SESLM_MODEL_DIR") ? getenv("SESLM_MODEL_DIR") : SESLM_MODEL_DIR;
    if (!load_inputs()) {
        fprintf(stderr, "cannot read the fixtures (%s, %s)\n", oracle, pool_fix);
        return 1;
    }
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/model.safetensors", model_dir);
    if (access(probe, R_OK) != 0) {
        fprintf(stderr, "no real model at %s: run data/fetch_model.sh first\n", model_dir);
        return 1;
    }
    if (!mkdtemp(tmp_root)) return 1;
    const char *cases[] = {"mean_raw", "cls", "max", "mean_sqrt_len", "weightedmean", "lasttoken", "max_normalized",
                           "prompt_mean", "prompt_excluded_mean", "prompt_excluded_cls", "prompt_excluded_weightedmean"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_case(cases[i], "cpu");
    compare_limit = 16; // the plain-C backend reaches the same pooling (host pooling, prompt skipped)
    check_case("prompt_excluded_cls", "cpu-ref");
    // the device code path, where it pools on the device (mean, [CLS]) and where it pools on the host (max,
    // a prompt left out of the mean)
    const char *dev_cases[] = {"mean_raw", "cls", "max", "prompt_excluded_mean"};
    for (size_t i = 0; i < sizeof dev_cases / sizeof dev_cases[0]; i++) check_devsim(dev_cases[i]);
    check_tokenizer_json_only();
    check_refusals();
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_root);
    for (int i = 0; i < n_inputs; i++) free(texts[i]);
    return test_report("test_pooling_oracle");
}
