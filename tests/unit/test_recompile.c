/* test_recompile.c — seslm_recompile on the tiny model (weight inheritance), both backends:
 *   * plan A (two heads of layer 0, four neurons of layer 1) and plan B (EVERY head of layer 0, every
 *     neuron and one head of layer 1): the student loads, its config reports the per-layer heads / FFN
 *     widths (num_attention_heads / intermediate_size keep the parent's values; lineage names the
 *     parent's sha256 and the plan), and its embeddings equal the PARENT's with the same heads / neurons
 *     masked (seslm_encoder_set_masks) within 1e-5 on several texts, with "cpu" and "cpu-ref";
 *   * a student of the student (plan C on A's student) equals the parent with the union masked, and its
 *     lineage nests the first one;
 *   * parameter count = parent - removed heads * (4 D C + 3 D) - removed neurons * (2 C + 1), also in
 *     the stats;
 *   * the tokenizer / sentence-transformers files are byte-identical (absent ones stay absent);
 *   * model.safetensors: data section 8-aligned, offsets contiguous;
 *   * an existing out dir is refused (and left untouched); an out-of-range head index, an unsorted
 *     index list and a neuron index past the width are rejected before anything is written; no
 *     temporary directory is left behind;
 *   * st_write on its own: mixed dtypes and odd sizes read back bit for bit by st_open (data section
 *     8-aligned, no holes, metadata kept), duplicate / empty names and a bad metadata object refused
 *     without leaving a file, an existing file replaced whole. */
#include "recompile.h"
#include "safetensors_write.h"
#include "seslm.h"
#include "test.h"
#include "tiny_model.h"

#include <cjson/cJSON.h>

static char *g_root;

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    if (b) b[len] = 0;
    fclose(f);
    *n = (size_t)len;
    return b;
}

static void sub(char *out, const char *name) { snprintf(out, 4096, "%s/%s", g_root, name); }

static void write_plan(const char *name, const char *layers_json) {
    char path[4096], txt[4096];
    sub(path, name);
    snprintf(txt, sizeof txt, "{\"format\": \"seslm-plan\", \"version\": 1, \"method\": \"test\", \"layers\": %s}\n",
             layers_json);
    CHECK(tm_write_text(g_root, name, txt));
}

static int read_plan(seslm_plan *pl, const seslm_model *m, const char *name) {
    char path[4096];
    sub(path, name);
    seslm_status st = seslm_plan_read_json(pl, seslm_model_get_config(m), path);
    CHECK_MSG(st == SESLM_OK, "read %s: %s", name, seslm_last_error());
    return st == SESLM_OK;
}

static int64_t params_of(const seslm_model *m) {
    seslm_param_group g[64];
    int n = seslm_model_param_groups(m, g, 64);
    int64_t p = 0;
    for (int i = 0; i < n && i < 64; i++) p += g[i].params;
    return p;
}

static const char *const texts[] = {"the cat sat on the mat.", "hello world", "a quick brown fox jumps over the lazy dog!",
                                    "it is good, it is bad?", "x"};
enum { NT = 5 };

static void embed(const seslm_model *m, const char *backend, const float *const *hm, const float *const *nm, float *out) {
    seslm_encoder *e = NULL;
    seslm_encoder_opts o = {.backend = backend, .n_threads = 1, .max_batch = NT};
    CHECK(seslm_encoder_new(&e, m, &o) == SESLM_OK);
    if (!e) return;
    if (hm || nm) CHECK(seslm_encoder_set_masks(e, hm, nm) == SESLM_OK);
    size_t lens[NT];
    for (int i = 0; i < NT; i++) lens[i] = strlen(texts[i]);
    CHECK(seslm_encoder_embed_texts(e, texts, lens, NT, out) == SESLM_OK);
    seslm_encoder_free(e);
}

static const char *const TOK_FILES[] = {"vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                        "sentence_bert_config.json", "modules.json", "1_Pooling/config.json",
                                        "config_sentence_transformers.json"};

/* Recompiles parent with the plan file into out and checks the student against the masked parent.
 * removed_h / removed_f: the heads / neurons removed, as PARENT-original masks of the root model root
 * (1 kept, 0 removed), compared through root_m. Returns the student (caller frees) or NULL. */
static seslm_model *check_student(const seslm_model *parent, const char *plan_name, const char *out_name,
                                  const seslm_model *root_m, float hm[2][4], float nm[2][24], const int *want_h,
                                  const int *want_f) {
    seslm_plan pl;
    if (!read_plan(&pl, parent, plan_name)) return NULL;
    char out[4096];
    sub(out, out_name);
    seslm_recompile_stats s;
    seslm_status st = seslm_recompile_ex(parent, &pl, plan_name, out, &s);
    CHECK_MSG(st == SESLM_OK, "recompile %s: %s", plan_name, seslm_last_error());
    int hr = 0, nr = 0;
    for (int l = 0; l < pl.n_layers; l++) hr += pl.n_remove_heads[l], nr += pl.n_remove_neurons[l];
    seslm_plan_free(&pl);
    if (st != SESLM_OK) return NULL;
    seslm_model *m = NULL;
    st = seslm_model_load(&m, out);
    CHECK_MSG(st == SESLM_OK, "load student %s: %s", out_name, seslm_last_error());
    if (!m) return NULL;
    const seslm_model_config *c = seslm_model_get_config(m), *pc = seslm_model_get_config(parent);
    CHECK(c->n_layers == pc->n_layers && c->head_dim == pc->head_dim && c->hidden == pc->hidden);
    for (int l = 0; l < c->n_layers; l++)
        CHECK_MSG(c->layers[l].n_heads == want_h[l] && c->layers[l].ffn_dim == want_f[l],
                  "%s layer %d: %d heads / %d ffn, expected %d / %d", out_name, l, c->layers[l].n_heads,
                  c->layers[l].ffn_dim, want_h[l], want_f[l]);
    // parameters
    const int64_t C = c->hidden, D = c->head_dim;
    const int64_t want_p = params_of(parent) - hr * (4 * D * C + 3 * D) - nr * (2 * C + 1);
    CHECK_MSG(params_of(m) == want_p, "%s: %lld params, expected %lld", out_name, (long long)params_of(m),
              (long long)want_p);
    CHECK(s.params == want_p && s.params_parent == params_of(parent) && s.bytes == 4 * want_p);
    CHECK(s.heads_removed == hr && s.neurons_removed == nr);
    // weight inheritance: student == root model with the union of removals masked
    float want[NT * 16], got[NT * 16];
    const float *hmp[2] = {hm[0], hm[1]}, *nmp[2] = {nm[0], nm[1]};
    const char *backends[2] = {"cpu", "cpu-ref"};
    for (int b = 0; b < 2; b++) {
        embed(root_m, backends[b], hmp, nmp, want);
        embed(m, backends[b], NULL, NULL, got);
        float d = 0, moved = 0;
        float plain[NT * 16];
        embed(root_m, backends[b], NULL, NULL, plain);
        for (int i = 0; i < NT * (int)C; i++) d = fmaxf(d, fabsf(want[i] - got[i])), moved = fmaxf(moved, fabsf(plain[i] - got[i]));
        CHECK_MSG(d < 1e-5f, "%s %s: student vs masked parent differ by %g", out_name, backends[b], d);
        CHECK_MSG(moved > 1e-4f, "%s %s: the student equals the unpruned parent", out_name, backends[b]);
    }
    // files
    for (size_t i = 0; i < sizeof TOK_FILES / sizeof TOK_FILES[0]; i++) {
        char a[8400], bpath[8400];
        snprintf(a, sizeof a, "%s/%s", g_root, "parent");
        snprintf(bpath, sizeof bpath, "%s/%s", out, TOK_FILES[i]);
        snprintf(a + strlen(a), sizeof a - strlen(a), "/%s", TOK_FILES[i]);
        size_t na = 0, nb = 0;
        char *x = slurp(a, &na), *y = slurp(bpath, &nb);
        CHECK_MSG(x && y && na == nb && memcmp(x, y, na) == 0, "%s: %s not byte-identical", out_name, TOK_FILES[i]);
        free(x), free(y);
    }
    // config.json: original global sizes, lineage
    char path[8400];
    snprintf(path, sizeof path, "%s/config.json", out);
    size_t n = 0;
    char *txt = slurp(path, &n);
    cJSON *r = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    CHECK(r != NULL);
    if (r) {
        CHECK(cJSON_GetObjectItem(r, "num_attention_heads")->valueint == 4);
        CHECK(cJSON_GetObjectItem(r, "intermediate_size")->valueint == 24);
        CHECK(cJSON_GetObjectItem(r, "attention_head_size")->valueint == 4);
        cJSON *lin = cJSON_GetObjectItem(r, "seslm_lineage");
        CHECK(lin && strcmp(cJSON_GetObjectItem(lin, "parent_weights_sha256")->valuestring,
                            seslm_model_weights_sha256(parent)) == 0);
        CHECK(lin && strcmp(cJSON_GetObjectItem(lin, "plan")->valuestring, plan_name) == 0);
        // a pruned student must not pass for a stock BERT (transformers would misread it), and says what built it
        const cJSON *mt = cJSON_GetObjectItem(r, "model_type"), *arch = cJSON_GetObjectItem(r, "architectures");
        const cJSON *bld = lin ? cJSON_GetObjectItem(lin, "build") : NULL;
        CHECK(cJSON_IsString(mt) && strcmp(mt->valuestring, "seslm_bert") == 0);
        CHECK(cJSON_IsString(cJSON_GetArrayItem(arch, 0)) && strcmp(cJSON_GetArrayItem(arch, 0)->valuestring, "SeslmBertModel") == 0);
        CHECK(cJSON_IsString(cJSON_GetObjectItem(bld, "version")) && cJSON_IsString(cJSON_GetObjectItem(bld, "commit")) &&
              cJSON_IsString(cJSON_GetObjectItem(bld, "compiler")));
        cJSON_Delete(r);
    }
    // the data section starts 8-aligned, tensors back to back
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    uint8_t *img = (uint8_t *)slurp(path, &n);
    CHECK(img && n > 8);
    if (img) {
        uint64_t hl = 0;
        for (int i = 0; i < 8; i++) hl |= (uint64_t)img[i] << (8 * i);
        CHECK((8 + hl) % 8 == 0 && 8 + hl <= n);
        CHECK((int64_t)n == s.file_bytes);
        CHECK((int64_t)(n - 8 - hl) == s.bytes); // F32, no holes
        free(img);
    }
    return m;
}

static int count_tmp_entries(void) {
    DIR *d = opendir(g_root);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) n += strstr(de->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return n;
}

static void set_all(float hm[2][4], float nm[2][24]) {
    for (int l = 0; l < 2; l++) {
        for (int i = 0; i < 4; i++) hm[l][i] = 1;
        for (int i = 0; i < 24; i++) nm[l][i] = 1;
    }
}

static void test_st_write(void) {
    char path[4096];
    sub(path, "w.safetensors");
    const float f3[3] = {1.5f, -2.0f, 3.25f};
    const uint16_t h5[5] = {1, 2, 3, 4, 0xffff};
    const int32_t i2[2][2] = {{7, -8}, {9, 10}};
    const uint8_t u1[1] = {42};
    st_write_tensor t[5] = {{.name = "a.f32", .dtype = ST_F32, .ndim = 1, .shape = {3}, .data = f3},
                            {.name = "b \"quoted\"", .dtype = ST_F16, .ndim = 1, .shape = {5}, .data = h5},
                            {.name = "c", .dtype = ST_I32, .ndim = 2, .shape = {2, 2}, .data = i2},
                            {.name = "d", .dtype = ST_U8, .ndim = 1, .shape = {1}, .data = u1},
                            {.name = "e.empty", .dtype = ST_F32, .ndim = 2, .shape = {0, 4}, .data = NULL}};
    for (int round = 0; round < 2; round++) { // the second replaces the first
        CHECK_MSG(st_write(path, t, 5, round ? "{\"k\": \"v\"}" : NULL) == SESLM_OK, "st_write: %s", seslm_last_error());
        st_file f;
        memset(&f, 0, sizeof f);
        CHECK_MSG(st_open(&f, path) == SESLM_OK, "st_open: %s", seslm_last_error());
        CHECK(f.n_tensors == 5);
        const st_tensor *a = st_find(&f, "a.f32"), *b = st_find(&f, "b \"quoted\""), *c = st_find(&f, "c"),
                        *d = st_find(&f, "d"), *e = st_find(&f, "e.empty");
        CHECK(a && a->nbytes == 12 && memcmp(a->data, f3, 12) == 0);
        CHECK(b && b->dtype == ST_F16 && b->nbytes == 10 && memcmp(b->data, h5, 10) == 0);
        CHECK(c && c->ndim == 2 && c->shape[1] == 2 && memcmp(c->data, i2, 16) == 0);
        CHECK(d && d->nbytes == 1 && *(const uint8_t *)d->data == 42);
        CHECK(e && e->numel == 0);
        size_t n = 0;
        uint8_t *img = (uint8_t *)slurp(path, &n);
        uint64_t hl = 0;
        for (int i = 0; img && i < 8; i++) hl |= (uint64_t)img[i] << (8 * i);
        CHECK(img && (8 + hl) % 8 == 0 && n == 8 + hl + 12 + 10 + 16 + 1);
        CHECK(img && (round == 0) == (strstr((char *)img + 8, "\"k\":\"v\"") == NULL));
        free(img);
        st_close(&f);
    }
    st_write_tensor dup[2] = {{.name = "x", .dtype = ST_U8, .ndim = 1, .shape = {1}, .data = u1},
                              {.name = "x", .dtype = ST_U8, .ndim = 1, .shape = {1}, .data = u1}};
    char p2[4096];
    sub(p2, "dup.safetensors");
    CHECK(st_write(p2, dup, 2, NULL) == SESLM_ERR_ARG);
    dup[1].name = "";
    CHECK(st_write(p2, dup, 2, NULL) == SESLM_ERR_ARG);
    CHECK(st_write(p2, dup, 1, "[1]") == SESLM_ERR_ARG);
    CHECK(st_write(p2, dup, 1, "{\"n\": 1}") == SESLM_ERR_ARG);
    struct stat sb;
    CHECK(lstat(p2, &sb) != 0);
    CHECK(count_tmp_entries() == 0);
    unlink(path);
}

int main(void) {
    g_root = tm_mkdtemp("recompile");
    test_st_write();
    tm_model full;
    tm_init(&full, 11);
    char dir[4096];
    sub(dir, "parent");
    mkdir(dir, 0755);
    CHECK(tm_write(&full, dir, NULL));
    tm_free(&full);
    // the remaining tokenizer files, with bytes a text rewrite would change (CRLF, UTF-8, no final newline)
    CHECK(tm_write_text(dir, "tokenizer.json", "{\"version\": \"1.0\",\r\n \"note\": \"caf\xc3\xa9\"}"));
    CHECK(tm_write_text(dir, "special_tokens_map.json", "{\"cls_token\": \"[CLS]\"}\n\n"));
    CHECK(tm_write_text(dir, "sentence_bert_config.json", "{\"max_seq_length\": 24, \"do_lower_case\": false}"));
    CHECK(tm_write_text(dir, "config_sentence_transformers.json", "{\"__version__\": {\"x\": \"1\"}}\t\n"));
    seslm_model *parent = NULL;
    CHECK_MSG(seslm_model_load(&parent, dir) == SESLM_OK, "load parent: %s", seslm_last_error());
    if (!parent) return test_report("test_recompile");

    float hm[2][4], nm[2][24];
    // plan A: heads 1 and 3 of layer 0, neurons 0 5 6 20 of layer 1
    write_plan("plan-a.json", "[{\"layer\": 0, \"remove_heads\": [1, 3], \"remove_neurons\": []},"
                              " {\"layer\": 1, \"remove_heads\": [], \"remove_neurons\": [0, 5, 6, 20]}]");
    set_all(hm, nm);
    hm[0][1] = hm[0][3] = 0;
    nm[1][0] = nm[1][5] = nm[1][6] = nm[1][20] = 0;
    seslm_model *sa = check_student(parent, "plan-a.json", "student-a", parent, hm, nm, (int[]){2, 4}, (int[]){24, 20});

    // plan B: every head of layer 0; every neuron and head 2 of layer 1
    write_plan("plan-b.json", "[{\"layer\": 0, \"remove_heads\": [0, 1, 2, 3]},"
                              " {\"layer\": 1, \"remove_heads\": [2], \"remove_neurons\": [0, 1, 2, 3, 4, 5, 6, 7, 8,"
                              " 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23]}]");
    set_all(hm, nm);
    for (int i = 0; i < 4; i++) hm[0][i] = 0;
    hm[1][2] = 0;
    for (int i = 0; i < 24; i++) nm[1][i] = 0;
    seslm_model *sb = check_student(parent, "plan-b.json", "student-b", parent, hm, nm, (int[]){0, 3}, (int[]){24, 0});
    seslm_model_free(sb);

    // plan C on student A: its head 0 of layer 0 (the parent's head 0) and its neuron 19 of layer 1
    // (the parent's 23): equals the parent with the union masked; lineage nests A's
    if (sa) {
        write_plan("plan-c.json", "[{\"layer\": 0, \"remove_heads\": [0]}, {\"layer\": 1, \"remove_neurons\": [19]}]");
        set_all(hm, nm);
        hm[0][0] = hm[0][1] = hm[0][3] = 0;
        nm[1][0] = nm[1][5] = nm[1][6] = nm[1][20] = nm[1][23] = 0;
        seslm_model *sc = check_student(sa, "plan-c.json", "student-c", parent, hm, nm, (int[]){1, 4}, (int[]){24, 19});
        seslm_model_free(sc);
        char path[4096];
        sub(path, "student-c/config.json");
        size_t n = 0;
        char *txt = slurp(path, &n);
        cJSON *r = txt ? cJSON_Parse(txt) : NULL;
        cJSON *lin = r ? cJSON_GetObjectItem(r, "seslm_lineage") : NULL;
        cJSON *up = lin ? cJSON_GetObjectItem(lin, "parent") : NULL;
        CHECK_MSG(up && strcmp(cJSON_GetObjectItem(up, "parent_weights_sha256")->valuestring,
                               seslm_model_weights_sha256(parent)) == 0,
                  "student-c lineage does not nest student-a's");
        cJSON_Delete(r);
        free(txt);
        seslm_model_free(sa);
    }

    // an existing out dir is refused and left as it was
    seslm_plan pl;
    char out[4096], cfg_before[8400];
    sub(out, "student-a");
    snprintf(cfg_before, sizeof cfg_before, "%s/config.json", out);
    size_t n0 = 0, n1 = 0;
    char *before = slurp(cfg_before, &n0);
    if (read_plan(&pl, parent, "plan-b.json")) {
        CHECK(seslm_recompile(parent, &pl, out) == SESLM_ERR_IO);
        CHECK(strstr(seslm_last_error(), "exists") != NULL);
        sub(out, "empty");
        mkdir(out, 0755); // an empty directory too (rename(2) would replace it)
        CHECK(seslm_recompile(parent, &pl, out) == SESLM_ERR_IO);
        seslm_plan_free(&pl);
    }
    char *after = slurp(cfg_before, &n1);
    CHECK(before && after && n0 == n1 && memcmp(before, after, n0) == 0);
    free(before), free(after);

    // bad plans: nothing written
    const struct {
        const char *layers, *msg;
    } bad[] = {{"[{\"layer\": 1, \"remove_heads\": [4]}]", "does not exist"},
               {"[{\"layer\": 0, \"remove_heads\": [-1]}]", "does not exist"},
               {"[{\"layer\": 0, \"remove_heads\": [2, 1]}]", "increasing"},
               {"[{\"layer\": 1, \"remove_neurons\": [3, 3]}]", "increasing"},
               {"[{\"layer\": 1, \"remove_neurons\": [24]}]", "does not exist"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_plan("bad.json", bad[i].layers);
        if (!read_plan(&pl, parent, "bad.json")) continue;
        sub(out, "student-bad");
        seslm_status st = seslm_recompile(parent, &pl, out);
        CHECK_MSG(st == SESLM_ERR_ARG && strstr(seslm_last_error(), bad[i].msg), "bad plan %zu: %d %s", i, st,
                  seslm_last_error());
        struct stat sb2;
        CHECK(lstat(out, &sb2) != 0);
        seslm_plan_free(&pl);
    }
    CHECK(seslm_recompile(parent, NULL, out) == SESLM_ERR_ARG);
    CHECK_MSG(count_tmp_entries() == 0, "a temporary directory was left behind");

    seslm_model_free(parent);
    tm_rmtree(g_root);
    free(g_root);
    return test_report("test_recompile");
}
