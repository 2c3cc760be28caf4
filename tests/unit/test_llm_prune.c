/* test_llm_prune.c — seslm recompile-decoder's library (pipeline/recompile/llm_prune.c) and the GGUF writer on
 * the tiny generated Llama (tests/fuzz/corpus_gguf/tiny_llama.gguf; every weight type appears):
 *   - nothing cut: the student file is the parent's weights byte for byte (every forward logit identical);
 *   - FFN neurons, KV groups and a layer cut: the student loads with the new shape, its plan lists what was
 *     kept, its logits are finite; with calibration, W_o / W_down are refitted and their biases written;
 *   - vocabulary cut: text made of kept tokens tokenizes to the same token strings; other text still
 *     encodes (bytes round trip); the special ids are renumbered and still found;
 *   - bad input: telemetry of another shape, options out of range, an unwritable output -> errors;
 *   - the writer: a duplicate key is refused; perplexity of a document is finite and positive;
 *   - healing (llm_heal.h): the SwiGLU FFN's gradients against central differences; training fits a known FFN
 *     and never returns weights worse on the held-out rows than it started from; on the tiny model a dropped
 *     layer's kept neighbour is trained, the plan records it, the student loads;
 *   - served prompts (seslm_llm_answers.h): the parent's answers are its greedy ones (argmax of an independent
 *     all-positions pass), their loss equals the log-softmax of that pass, and the layer choice adds it to
 *     the text's loss (the plan's parts sum to the cost, the cheapest layer goes); a bad prompt is refused. */
#include "decoder.h"
#include "gguf.h"
#include "llm_answers.h"
#include "llm_heal.h"
#include "llm_prune.h"
#include "qblock.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TINY SESLM_SOURCE_DIR "/tests/fuzz/corpus_gguf/tiny_llama.gguf"

static const char *DOCS[] = {"hello world", "hello hello world 12", "the world said hello", "ab ba hello"};

// telemetry of the tiny model on DOCS (one decode call per document)
static seslm_telemetry *record(const seslm_llm *m) {
    seslm_telemetry *t = NULL;
    seslm_llm_ctx *c = NULL;
    CHECK(seslm_llm_telemetry_new(&t, m, 64, NULL) == SESLM_OK);
    CHECK(seslm_llm_ctx_new(&c, m, 64, 0) == SESLM_OK);
    if (!t || !c) return t;
    CHECK(seslm_llm_ctx_set_telemetry(c, t) == SESLM_OK);
    for (size_t d = 0; d < sizeof DOCS / sizeof DOCS[0]; d++) {
        int32_t *ids = NULL;
        int n = 0;
        CHECK(bpe_encode(seslm_llm_tokenizer(m), DOCS[d], strlen(DOCS[d]), 0, &ids, &n) == SESLM_OK);
        seslm_llm_ctx_reset(c);
        CHECK(seslm_llm_decode(c, ids, n, NULL) == SESLM_OK);
        free(ids);
    }
    seslm_llm_ctx_free(c);
    return t;
}

// logits of every position of ids (malloc'd, n * V)
static float *all_logits(const char *path, const int32_t *ids, int n, int *V) {
    seslm_llm *m = NULL;
    seslm_llm_ctx *c = NULL;
    if (seslm_llm_load(&m, path) != SESLM_OK) return NULL;
    *V = seslm_llm_cfg(m)->n_vocab;
    float *z = malloc((size_t)n * (size_t)*V * sizeof *z);
    if (seslm_llm_ctx_new(&c, m, 64, 0) != SESLM_OK || !z || seslm_llm_decode_all(c, ids, n, z) != SESLM_OK) {
        free(z);
        z = NULL;
    }
    seslm_llm_ctx_free(c);
    seslm_llm_free(m);
    return z;
}

static void tmp_path(char *buf, size_t cap, const char *tag) {
    snprintf(buf, cap, "/tmp/test_llm_prune_%d_%s.gguf", (int)getpid(), tag);
    unlink(buf);
}

// the plan JSON a prune wrote (NULL, counted as a failed check, when missing or not JSON); cJSON_Delete it
static cJSON *read_plan(const char *path) {
    static char buf[1 << 16];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    cJSON *j = f ? cJSON_Parse(buf) : NULL;
    CHECK_MSG(j != NULL, "no plan at %s", path);
    return j;
}

static void test_identity(const seslm_telemetry_view *v) {
    char out[256];
    tmp_path(out, sizeof out, "id");
    seslm_llm_prune_opts o;
    seslm_llm_prune_opts_default(&o);
    seslm_llm_prune_summary s;
    CHECK(seslm_llm_prune(TINY, v, &o, out, NULL, &s) == SESLM_OK);
    CHECK(s.bytes_out == s.bytes_in && s.n_layer_out == s.n_layer_in && s.ffn_out == s.ffn_in && s.vocab_out == s.vocab_in);
    const int32_t ids[] = {3, 40, 77, 120, 5, 9, 200, 31};
    int Va = 0, Vb = 0;
    float *a = all_logits(TINY, ids, 8, &Va), *b = all_logits(out, ids, 8, &Vb);
    CHECK(a && b && Va == Vb);
    if (a && b) CHECK_MSG(memcmp(a, b, (size_t)8 * Va * sizeof *a) == 0, "an unpruned copy must compute the same logits");
    free(a), free(b);
    unlink(out);
}

static void test_cut(const seslm_telemetry_view *v, int with_calib) {
    char out[256], plan[280];
    tmp_path(out, sizeof out, with_calib ? "cut_calib" : "cut");
    snprintf(plan, sizeof plan, "%s.plan.json", out);
    seslm_llm_prune_opts o;
    seslm_llm_prune_opts_default(&o);
    o.ffn_keep = 0.5; // 96 -> 64 (rounded up to 32s)
    o.kv_keep = 1;    // 2 KV groups -> 1: 4 heads -> 2
    if (with_calib) o.calib = DOCS, o.n_calib = 4, o.drop_layers = 1, o.ctx = 32;
    seslm_llm_prune_summary s;
    CHECK(seslm_llm_prune(TINY, v, &o, out, plan, &s) == SESLM_OK);
    CHECK(s.ffn_out == 64 && s.heads_out == 2 && s.kv_out == 1 && s.n_layer_out == (with_calib ? 1 : 2));
    CHECK(s.bytes_out < s.bytes_in);
    seslm_llm *m = NULL;
    CHECK_MSG(seslm_llm_load(&m, out) == SESLM_OK, "the student does not load: %s", seslm_last_error());
    if (!m) return;
    const seslm_llm_config *cf = seslm_llm_cfg(m);
    CHECK(cf->n_ff == 64 && cf->n_head == 2 && cf->n_head_kv == 1 && cf->head_dim == 16 && cf->n_embd == 64);
    CHECK(cf->n_layer == (with_calib ? 1 : 2));
    seslm_llm_free(m);
    gguf_file f;
    CHECK(gguf_open(&f, out) == SESLM_OK);
    CHECK((gguf_find_tensor(&f, "blk.0.ffn_down.bias") != NULL) == with_calib);
    CHECK((gguf_find_tensor(&f, "blk.0.attn_output.bias") != NULL) == with_calib);
    gguf_close(&f);
    const int32_t ids[] = {3, 40, 77, 120, 5};
    int V = 0;
    float *z = all_logits(out, ids, 5, &V);
    CHECK(z != NULL);
    int bad = 0;
    for (int i = 0; z && i < 5 * V; i++) bad += !isfinite(z[i]);
    CHECK_MSG(bad == 0, "%d non-finite logits", bad);
    free(z);
    // the plan: every parent layer, the kept units in range and increasing
    cJSON *j = read_plan(plan);
    if (j) {
        cJSON *ls = cJSON_GetObjectItem(j, "layers");
        CHECK(cJSON_GetArraySize(ls) == 2);
        int dropped = 0;
        for (int l = 0; l < cJSON_GetArraySize(ls); l++) {
            cJSON *e = cJSON_GetArrayItem(ls, l), *fn = cJSON_GetObjectItem(e, "ffn_neurons");
            dropped += cJSON_IsTrue(cJSON_GetObjectItem(e, "dropped"));
            CHECK(cJSON_GetArraySize(fn) == 64 && cJSON_GetArraySize(cJSON_GetObjectItem(e, "kv_groups")) == 1);
            for (int k = 1; k < cJSON_GetArraySize(fn); k++)
                CHECK(cJSON_GetArrayItem(fn, k)->valueint > cJSON_GetArrayItem(fn, k - 1)->valueint);
            CHECK(cJSON_GetArrayItem(fn, 63)->valueint < 96);
            if (with_calib) CHECK(cJSON_GetObjectItem(e, "loss_if_dropped") != NULL);
            if (with_calib && !cJSON_IsTrue(cJSON_GetObjectItem(e, "dropped"))) {
                cJSON *re = cJSON_GetObjectItem(e, "ffn_out_rel_err"), *rp = cJSON_GetObjectItem(e, "ffn_out_rel_err_plain");
                CHECK(re && rp);
                // the refit is the least-squares optimum over what plain slicing also spans: never worse
                if (re && rp) CHECK_MSG(re->valuedouble <= rp->valuedouble + 1e-9, "refit %g > plain %g", re->valuedouble, rp->valuedouble);
            }
        }
        CHECK(dropped == (with_calib ? 1 : 0));
        cJSON_Delete(j);
        unlink(plan);
    }
    unlink(out);
}

// a hand-chosen layer list needs no calibration text; the student keeps the other layer's weights exactly
static void test_drop_list(const seslm_telemetry_view *v) {
    char out[256];
    tmp_path(out, sizeof out, "droplist");
    seslm_llm_prune_opts o;
    seslm_llm_prune_opts_default(&o);
    const int drop[] = {0};
    o.drop_list = drop, o.n_drop_list = 1;
    seslm_llm_prune_summary s;
    CHECK(seslm_llm_prune(TINY, v, &o, out, NULL, &s) == SESLM_OK);
    CHECK(s.n_layer_out == 1);
    gguf_file a, b;
    CHECK(gguf_open(&a, TINY) == SESLM_OK);
    CHECK(gguf_open(&b, out) == SESLM_OK);
    const gguf_tensor *x = gguf_find_tensor(&a, "blk.1.ffn_down.weight"), *y = gguf_find_tensor(&b, "blk.0.ffn_down.weight");
    CHECK(x && y && x->nbytes == y->nbytes && memcmp(x->data, y->data, x->nbytes) == 0);
    CHECK(gguf_find_tensor(&b, "blk.1.ffn_down.weight") == NULL);
    uint32_t nl = 0;
    CHECK(gguf_get_u32(&b, "llama.block_count", &nl) == 0 && nl == 1);
    gguf_close(&a);
    gguf_close(&b);
    unlink(out);
}

// every kept layer's matrices re-quantized to one type (Q8_0; the tiny model mixes F32 / F16 / Q4_0 / Q4_1 / Q8_0):
// each value within half a Q8_0 step (and its F16 scale's rounding) of the parent's, the shapes and norms as they were, the bytes that type gives
static void test_layer_type(const seslm_telemetry_view *v) {
    char out[256];
    tmp_path(out, sizeof out, "ltype");
    seslm_llm_prune_opts o;
    seslm_llm_prune_opts_default(&o);
    o.layer_type = QB_Q8_0;
    seslm_llm_prune_summary s;
    CHECK(seslm_llm_prune(TINY, v, &o, out, NULL, &s) == SESLM_OK);
    gguf_file a, b;
    CHECK(gguf_open(&a, TINY) == SESLM_OK);
    CHECK(gguf_open(&b, out) == SESLM_OK);
    static const char *mats[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    int n_conv = 0, worst_ok = 1;
    for (int l = 0; l < 2; l++) {
        char n[96];
        snprintf(n, sizeof n, "blk.%d.attn_norm.weight", l);
        const gguf_tensor *x = gguf_find_tensor(&a, n), *y = gguf_find_tensor(&b, n);
        CHECK(x && y && x->type == y->type && x->nbytes == y->nbytes && memcmp(x->data, y->data, x->nbytes) == 0);
        for (int k = 0; k < 7; k++) {
            snprintf(n, sizeof n, "blk.%d.%s.weight", l, mats[k]);
            x = gguf_find_tensor(&a, n), y = gguf_find_tensor(&b, n);
            CHECK_MSG(x && y && y->type == QB_Q8_0 && y->ne[0] == x->ne[0] && y->ne[1] == x->ne[1], "%s", n);
            if (!x || !y || y->type != QB_Q8_0) continue;
            n_conv += x->type != QB_Q8_0;
            const int K = (int)x->ne[0];
            CHECK(y->nbytes == qb_row_bytes(QB_Q8_0, K) * (size_t)y->ne[1]);
            float *ra = malloc((size_t)K * sizeof *ra), *rb = malloc((size_t)K * sizeof *rb);
            for (int64_t r = 0; ra && rb && r < x->ne[1]; r++) {
                qb_dequantize_row(x->type, x->data + (size_t)r * qb_row_bytes(x->type, K), ra, K);
                qb_dequantize_row(QB_Q8_0, y->data + (size_t)r * qb_row_bytes(QB_Q8_0, K), rb, K);
                for (int j0 = 0; j0 < K; j0 += 32) {
                    float amax = 0.0f;
                    for (int j = j0; j < j0 + 32; j++) amax = fmaxf(amax, fabsf(ra[j]));
                    for (int j = j0; j < j0 + 32; j++)
                        if (!(fabsf(ra[j] - rb[j]) <= 0.5f * amax / 127.0f + 1e-3f * amax + 1e-7f)) { // + the F16 scale's rounding
                            if (worst_ok) fprintf(stderr, "%s row %lld col %d: %g -> %g (block max %g)\n", n, (long long)r, j, ra[j], rb[j], amax);
                            worst_ok = 0;
                        }
                }
            }
            free(ra), free(rb);
        }
    }
    CHECK_MSG(worst_ok, "a re-quantized value is more than half a Q8_0 step from the parent's");
    CHECK(n_conv >= 10); // 12 of the 14 matrices were of other types
    gguf_close(&b);
    unlink(out);

    // with an FFN cut, W_down (cut by column, re-quantized anyway) goes straight to the layer type: its bytes are the
    // parent's kept columns quantized once, not first back to the parent's Q4_1 and then again
    o.ffn_keep = 0.5;
    char plan[280];
    snprintf(plan, sizeof plan, "%s.plan.json", out);
    CHECK(seslm_llm_prune(TINY, v, &o, out, plan, &s) == SESLM_OK);
    cJSON *j = read_plan(plan);
    CHECK(gguf_open(&b, out) == SESLM_OK);
    const gguf_tensor *x = gguf_find_tensor(&a, "blk.0.ffn_down.weight"), *y = gguf_find_tensor(&b, "blk.0.ffn_down.weight");
    cJSON *fn = j ? cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "layers"), 0), "ffn_neurons") : NULL;
    CHECK(x && y && fn && x->type != QB_Q8_0 && y->type == QB_Q8_0 && y->ne[0] == cJSON_GetArraySize(fn));
    if (x && y && fn && y->type == QB_Q8_0) {
        const int K = (int)x->ne[0], K2 = (int)y->ne[0];
        float *row = malloc((size_t)K * sizeof *row), *sel = malloc((size_t)K2 * sizeof *sel);
        uint8_t *want = malloc(qb_row_bytes(QB_Q8_0, K2));
        int same = row && sel && want;
        for (int64_t r = 0; same && r < y->ne[1]; r++) {
            qb_dequantize_row(x->type, x->data + (size_t)r * qb_row_bytes(x->type, K), row, K);
            for (int i = 0; i < K2; i++) sel[i] = row[cJSON_GetArrayItem(fn, i)->valueint];
            qb_quantize_weight_row(QB_Q8_0, sel, want, K2);
            same = memcmp(want, y->data + (size_t)r * qb_row_bytes(QB_Q8_0, K2), qb_row_bytes(QB_Q8_0, K2)) == 0;
        }
        CHECK_MSG(same, "W_down of a cut layer was not quantized once, straight to the layer type");
        free(row), free(sel), free(want);
    }
    cJSON_Delete(j);
    gguf_close(&a);
    gguf_close(&b);
    unlink(out);
    unlink(plan);
}

static void test_vocab(const seslm_telemetry_view *v, const seslm_llm *parent) {
    char out[256];
    tmp_path(out, sizeof out, "vocab");
    seslm_llm_prune_opts o;
    seslm_llm_prune_opts_default(&o);
    o.vocab_general = 0; // only what the traffic used (+ bytes, specials, the pieces that build them)
    seslm_llm_prune_summary s;
    CHECK(seslm_llm_prune(TINY, v, &o, out, NULL, &s) == SESLM_OK);
    CHECK_MSG(s.vocab_out < s.vocab_in, "vocabulary %d of %d", s.vocab_out, s.vocab_in);
    seslm_llm *m = NULL;
    CHECK_MSG(seslm_llm_load(&m, out) == SESLM_OK, "%s", seslm_last_error());
    if (!m) return;
    const bpe_tokenizer *tp = seslm_llm_tokenizer(parent), *ts = seslm_llm_tokenizer(m);
    CHECK(seslm_llm_cfg(m)->n_vocab == s.vocab_out);
    CHECK(bpe_lookup(ts, "<|im_end|>", 10) >= 0 && bpe_eos(ts) == bpe_lookup(ts, "<|im_end|>", 10));
    // traffic text: the same tokens (as strings) in the same order
    for (size_t d = 0; d < sizeof DOCS / sizeof DOCS[0]; d++) {
        int32_t *a = NULL, *b = NULL;
        int na = 0, nb = 0;
        CHECK(bpe_encode(tp, DOCS[d], strlen(DOCS[d]), 0, &a, &na) == SESLM_OK);
        CHECK(bpe_encode(ts, DOCS[d], strlen(DOCS[d]), 0, &b, &nb) == SESLM_OK);
        CHECK_MSG(na == nb, "doc %zu: %d tokens before, %d after", d, na, nb);
        for (int i = 0; i < na && na == nb; i++) {
            char x[64], y[64];
            int lx = bpe_token_bytes(tp, a[i], 1, x, 64), ly = bpe_token_bytes(ts, b[i], 1, y, 64);
            CHECK(lx == ly && memcmp(x, y, (size_t)lx) == 0);
        }
        free(a), free(b);
    }
    // other text still encodes, to the same bytes
    const char *other = "Zebra quartz 987 caf\xc3\xa9!";
    int32_t *ids = NULL;
    int n = 0;
    CHECK(bpe_encode(ts, other, strlen(other), 0, &ids, &n) == SESLM_OK);
    char buf[128];
    int o2 = 0;
    for (int i = 0; i < n; i++) o2 += bpe_token_bytes(ts, ids[i], 0, buf + o2, (int)sizeof buf - o2);
    CHECK(o2 == (int)strlen(other) && memcmp(buf, other, (size_t)o2) == 0);
    free(ids);
    // perplexity runs on the student
    seslm_llm_ctx *c = NULL;
    CHECK(seslm_llm_ctx_new(&c, m, 32, 0) == SESLM_OK);
    seslm_ppl_result r;
    if (c) {
        CHECK(seslm_llm_perplexity(c, DOCS, 4, &r, NULL, NULL) == SESLM_OK);
        CHECK(r.n_docs == 4 && r.n_tokens > 0 && r.n_bytes > 0 && r.ppl > 1.0 && isfinite(r.bits_per_byte));
    }
    seslm_llm_ctx_free(c);
    seslm_llm_free(m);
    unlink(out);
}

static void test_errors(const seslm_telemetry_view *v) {
    char out[256];
    tmp_path(out, sizeof out, "err");
    seslm_llm_prune_opts o;
    seslm_llm_prune_opts_default(&o);
    seslm_llm_prune_summary s;
    seslm_telemetry_view bad = *v;
    bad.n_layers = v->n_layers + 1;
    CHECK(seslm_llm_prune(TINY, &bad, &o, out, NULL, &s) == SESLM_ERR_SHAPE);
    CHECK(seslm_llm_prune(TINY, NULL, &o, out, NULL, &s) == SESLM_ERR_SHAPE);
    o.ffn_keep = 0.0;
    CHECK(seslm_llm_prune(TINY, v, &o, out, NULL, &s) == SESLM_ERR_ARG);
    seslm_llm_prune_opts_default(&o);
    o.kv_keep = 3; // of 2
    CHECK(seslm_llm_prune(TINY, v, &o, out, NULL, &s) == SESLM_ERR_ARG);
    seslm_llm_prune_opts_default(&o);
    o.drop_layers = 1; // without calibration text
    CHECK(seslm_llm_prune(TINY, v, &o, out, NULL, &s) == SESLM_ERR_ARG);
    CHECK(access(out, F_OK) != 0);
    seslm_llm_prune_opts_default(&o);
    const int bad_layer[] = {2}, both[] = {0, 1};
    o.drop_list = bad_layer, o.n_drop_list = 1; // of layers 0..1
    CHECK(seslm_llm_prune(TINY, v, &o, out, NULL, &s) == SESLM_ERR_ARG);
    o.drop_list = both, o.n_drop_list = 2; // nothing would be left
    CHECK(seslm_llm_prune(TINY, v, &o, out, NULL, &s) == SESLM_ERR_ARG);
    CHECK(access(out, F_OK) != 0);
    seslm_llm_prune_opts_default(&o);
    CHECK(seslm_llm_prune(TINY, v, &o, "/nonexistent/dir/x.gguf", NULL, &s) == SESLM_ERR_IO);
    CHECK(seslm_llm_prune("/nonexistent.gguf", v, &o, out, NULL, &s) == SESLM_ERR_IO);
    // the writer refuses a duplicate key
    gguf_writer *w = gguf_writer_new();
    CHECK(w && gguf_w_u32(w, "a.b", 1) == 0 && gguf_w_u32(w, "a.b", 2) != 0 && gguf_w_str(w, "a.c", "x") == 0);
    gguf_writer_free(w);
}

// the weight quantizers invert the dequantizers within half a step of each block
static void test_quantize_weights(void) {
    float x[64], y[64];
    for (int i = 0; i < 64; i++) x[i] = sinf((float)i * 0.7f) * (i % 7 == 0 ? 3.0f : 1.0f);
    const int types[] = {QB_Q4_0, QB_Q4_1, QB_Q8_0, QB_F16, QB_F32};
    const float tol[] = {3.0f / 8.0f / 2.0f * 1.01f + 1e-3f, 6.0f / 15.0f / 2.0f * 1.01f + 1e-3f, 3.0f / 127.0f + 1e-3f, 2e-3f, 0.0f};
    uint8_t buf[512];
    for (int k = 0; k < 5; k++) {
        CHECK(qb_quantize_weight_row(types[k], x, buf, 64) == 0);
        qb_dequantize_row(types[k], buf, y, 64);
        float worst = 0.0f;
        for (int i = 0; i < 64; i++) worst = fmaxf(worst, fabsf(x[i] - y[i]));
        CHECK_MSG(worst <= tol[k], "%s: worst error %g > %g", qb_type_name(types[k]), (double)worst, (double)tol[k]);
    }
    CHECK(qb_quantize_weight_row(QB_Q4_1, x, buf, 40) == -1);
    CHECK(qb_quantize_weight_row(QB_Q8_1, x, buf, 64) == -1);
}

// ---- healing ----

static float frand(uint64_t *s) { // uniform in [-1, 1)
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((*s >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

static void fill(float *x, size_t n, float scale, uint64_t *s) {
    for (size_t i = 0; i < n; i++) x[i] = scale * frand(s);
}

// the analytic gradients of seslm_llm_heal_batch against central differences of its loss
static void test_heal_grad(void) {
    enum { C = 8, F = 12, B = 5 };
    uint64_t s = 7;
    float wg[F * C], wu[F * C], wd[C * F], bd[C], X[B * C], Y[B * C], R[B];
    float gg[F * C] = {0}, gu[F * C] = {0}, gd[C * F] = {0}, gb[C] = {0}, work[5 * B * F + B * C];
    fill(wg, F * C, 0.8f, &s), fill(wu, F * C, 0.8f, &s), fill(wd, C * F, 0.5f, &s), fill(bd, C, 0.3f, &s);
    fill(X, B * C, 1.0f, &s), fill(Y, B * C, 1.0f, &s);
    for (int i = 0; i < B; i++) R[i] = 0.5f + 0.25f * (float)i;
    const double l0 = seslm_llm_heal_batch(wg, wu, wd, bd, C, F, X, Y, R, B, gg, gu, gd, gb, work);
    CHECK(isfinite(l0) && l0 > 0.0);
    float *P[4] = {wg, wu, wd, bd}, *G[4] = {gg, gu, gd, gb};
    const int n[4] = {F * C, F * C, C * F, C};
    int bad = 0, checked = 0;
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < n[k]; i += 3) {
            const float keep = P[k][i], h = 1e-2f;
            float dummy[4][F * C];
            P[k][i] = keep + h;
            const double lp = seslm_llm_heal_batch(wg, wu, wd, bd, C, F, X, Y, R, B, dummy[0], dummy[1], dummy[2], dummy[3], work);
            P[k][i] = keep - h;
            const double lm = seslm_llm_heal_batch(wg, wu, wd, bd, C, F, X, Y, R, B, dummy[0], dummy[1], dummy[2], dummy[3], work);
            P[k][i] = keep;
            const double fd = (lp - lm) / (2.0 * h), an = G[k][i];
            checked++;
            if (!(fabs(fd - an) <= 2e-4 + 2e-2 * fabs(an))) {
                if (bad++ < 5) CHECK_MSG(0, "tensor %d [%d]: analytic %g, central difference %g", k, i, an, fd);
            }
        }
    CHECK(checked > 90);
    CHECK_MSG(bad == 0, "%d of %d gradients off", bad, checked);
}

// training fits a known FFN (the target is a teacher's output) from a perturbed start
static void test_heal_fit(void) {
    enum { C = 16, F = 32, N = 640, NV = 80 };
    uint64_t s = 11;
    float *tw = malloc(sizeof(float) * (3 * F * C + C)), *sw = malloc(sizeof(float) * (3 * F * C + C));
    float *X = malloc(sizeof(float) * N * C), *Y = malloc(sizeof(float) * N * C), *R = malloc(sizeof(float) * N);
    if (!tw || !sw || !X || !Y || !R) {
        CHECK(0);
        return;
    }
    fill(tw, 3 * F * C + C, 0.5f, &s);
    fill(X, N * C, 1.0f, &s);
    for (int i = 0; i < N; i++) R[i] = 1.0f;
    const float *tg = tw, *tu = tw + F * C, *td = tw + 2 * F * C, *tb = tw + 3 * F * C;
    // Y = the teacher's output, in plain C (double): wd (silu(wg x) * (wu x)) + bd
    for (int i = 0; i < N; i++) {
        double a[F];
        for (int f = 0; f < F; f++) {
            double gs = 0.0, us = 0.0;
            for (int c = 0; c < C; c++) gs += (double)tg[f * C + c] * X[i * C + c], us += (double)tu[f * C + c] * X[i * C + c];
            a[f] = gs / (1.0 + exp(-gs)) * us;
        }
        for (int c = 0; c < C; c++) {
            double y = tb[c];
            for (int f = 0; f < F; f++) y += (double)td[c * F + f] * a[f];
            Y[i * C + c] = (float)y;
        }
    }
    CHECK(seslm_llm_heal_mse(tg, tu, td, tb, C, F, X, Y, R, 0, N) < 1e-9); // the fast products agree with plain C
    for (int i = 0; i < 3 * F * C + C; i++) sw[i] = tw[i] + 0.3f * frand(&s);
    float *g = sw, *u = sw + F * C, *d = sw + 2 * F * C, *b = sw + 3 * F * C;
    seslm_llm_heal_opts o;
    seslm_llm_heal_opts_default(&o);
    o.steps = 0;
    double v0 = 0, v1 = 0;
    float before = sw[5];
    CHECK(seslm_llm_heal_ffn(g, u, d, b, C, F, X, Y, R, N, NV, &o, &v0, &v1) == SESLM_OK);
    CHECK(v0 > 0.0 && v1 == v0 && sw[5] == before);
    o.steps = 400, o.batch = 64, o.lr = 1e-2f;
    CHECK(seslm_llm_heal_ffn(g, u, d, b, C, F, X, Y, R, N, NV, &o, &v0, &v1) == SESLM_OK);
    CHECK_MSG(v1 < 0.2 * v0, "held-out error %g -> %g", v0, v1);
    CHECK(fabs(seslm_llm_heal_mse(g, u, d, b, C, F, X, Y, R, N - NV, N) - v1) <= 1e-6 * (1.0 + v1)); // the weights returned
    // a learning rate that diverges: the weights returned are never worse than the start
    for (int i = 0; i < 3 * F * C + C; i++) sw[i] = tw[i] + 0.3f * frand(&s);
    o.lr = 50.0f, o.steps = 50;
    CHECK(seslm_llm_heal_ffn(g, u, d, b, C, F, X, Y, R, N, NV, &o, &v0, &v1) == SESLM_OK);
    CHECK(v1 <= v0);
    CHECK(seslm_llm_heal_ffn(g, u, d, b, C, F, X, Y, R, 10, 10, &o, &v0, &v1) == SESLM_ERR_ARG);
    free(tw), free(sw), free(X), free(Y), free(R);
}

// a dropped layer healed on the tiny model
static void test_heal_prune(const seslm_telemetry_view *v) {
    char out[256], plan[300];
    tmp_path(out, sizeof out, "heal");
    snprintf(plan, sizeof plan, "%s.plan.json", out);
    static const char *words[] = {"hello", "world", "said", "the", "ab", "ba", "12", "cat", "sat"};
    char docs[48][64];
    const char *calib[48];
    uint64_t s = 3;
    for (int i = 0; i < 48; i++) {
        docs[i][0] = 0;
        for (int w = 0; w < 6; w++) {
            strcat(docs[i], words[(unsigned)((frand(&s) + 1.0f) * 4.5f) % 9]);
            strcat(docs[i], " ");
        }
        calib[i] = docs[i];
    }
    seslm_llm_prune_opts o;
    seslm_llm_prune_opts_default(&o);
    const int drop[] = {1};
    o.drop_list = drop, o.n_drop_list = 1;
    o.calib = calib, o.n_calib = 48;
    o.heal_steps = 40, o.heal_lr = 1e-2f;
    seslm_llm_prune_summary sm;
    CHECK(seslm_llm_prune(TINY, v, &o, out, plan, &sm) == SESLM_OK);
    CHECK(sm.n_heal_tried == 1 && sm.n_layer_out == 1);
    cJSON *pj = read_plan(plan), *l0 = cJSON_GetArrayItem(cJSON_GetObjectItem(pj, "layers"), 0);
    cJSON *h = cJSON_GetObjectItem(l0, "heal");
    CHECK_MSG(h != NULL, "the plan records the healing of layer 0");
    const double m0 = cJSON_GetNumberValue(cJSON_GetObjectItem(h, "held_out_mse_start"));
    const double m2 = cJSON_GetNumberValue(cJSON_GetObjectItem(h, "held_out_mse_stored"));
    CHECK(m0 > 0.0 && isfinite(m2));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(h, "kept")) == (m2 < m0) && sm.n_healed == (m2 < m0));
    cJSON_Delete(pj);
    gguf_file a, b;
    CHECK(gguf_open(&a, TINY) == SESLM_OK);
    CHECK(gguf_open(&b, out) == SESLM_OK);
    const gguf_tensor *x = gguf_find_tensor(&a, "blk.0.ffn_gate.weight"), *y = gguf_find_tensor(&b, "blk.0.ffn_gate.weight");
    CHECK(x && y && x->type == y->type && x->nbytes == y->nbytes);
    if (x && y && sm.n_healed) CHECK(memcmp(x->data, y->data, x->nbytes) != 0); // trained
    CHECK(gguf_find_tensor(&b, "blk.0.ffn_down.bias") != NULL);
    gguf_close(&a);
    gguf_close(&b);
    int32_t ids[3] = {1, 2, 3};
    int V = 0;
    float *z = all_logits(out, ids, 3, &V);
    CHECK(z != NULL);
    for (int i = 0; z && i < 3 * V; i++)
        if (!isfinite(z[i])) {
            CHECK_MSG(0, "non-finite logit at %d", i);
            break;
        }
    free(z);
    unlink(out), unlink(plan);
    // not with an FFN cut; not on too few tokens
    o.ffn_keep = 0.5;
    CHECK(seslm_llm_prune(TINY, v, &o, out, NULL, &sm) == SESLM_ERR_ARG);
    o.ffn_keep = 1.0, o.heal_tokens = 10;
    CHECK(seslm_llm_prune(TINY, v, &o, out, NULL, &sm) == SESLM_ERR_ARG);
    CHECK(access(out, F_OK) != 0);
}

// ---- served prompts: the parent's answers and the layer choice that scores them ----

static void test_answers(const seslm_telemetry_view *v, const seslm_llm *m) {
    const char *prompts[] = {"hello world", "the world said\\nhello", "ab ba"};
    seslm_llm_answers a;
    CHECK(seslm_llm_answers_build(&a, m, prompts, 3, 5, NULL, 0) == SESLM_OK);
    CHECK(a.n == 3);
    seslm_llm_ctx *c = NULL;
    CHECK(seslm_llm_ctx_new(&c, m, a.max_len, 0) == SESLM_OK);
    double nll = -1.0;
    CHECK(c && seslm_llm_answers_nll(c, &a, &nll) == SESLM_OK);
    double ref = 0.0;
    for (int i = 0; i < a.n; i++) {
        const int np = a.n_prompt[i], n = np + a.n_answer[i];
        CHECK(a.n_answer[i] >= 1 && a.n_answer[i] <= 5);
        int V = 0;
        float *z = all_logits(TINY, a.ids + a.off[i], n, &V); // one pass over prompt + answer
        CHECK(z != NULL);
        for (int j = np - 1; z && j < n - 1; j++) {
            const float *r = z + (size_t)j * V;
            int best = 0;
            double mx = r[0], s = 0.0;
            for (int t = 1; t < V; t++) best = r[t] > r[best] ? t : best, mx = r[t] > mx ? r[t] : mx;
            for (int t = 0; t < V; t++) s += exp(r[t] - mx);
            CHECK_MSG(a.ids[a.off[i] + j + 1] == best, "prompt %d: answer token %d is not the argmax", i, j - np + 1);
            ref += mx + log(s) - r[a.ids[a.off[i] + j + 1]];
        }
        free(z);
    }
    CHECK_MSG(fabs(nll - ref) <= 1e-4 * (1.0 + fabs(ref)), "answers' nll %g vs one pass %g", nll, ref);
    const double parent_per_token = ref / (double)a.n_answer_tokens; // what the plan's answer_loss must say
    CHECK(nll > 0.0);
    seslm_llm_ctx_free(c);
    seslm_llm_answers_free(&a);
    // the "\\n" of the file became a newline: the prompt tokenizes as the text with a newline does
    const char *esc[] = {"a\\nb"};
    CHECK(seslm_llm_answers_build(&a, m, esc, 1, 2, NULL, 0) == SESLM_OK);
    int32_t *ids = NULL;
    int n = 0;
    CHECK(bpe_encode(seslm_llm_tokenizer(m), "a\nb", 3, 1, &ids, &n) == SESLM_OK);
    CHECK(a.n == 1 && a.n_prompt[0] == n && memcmp(a.ids, ids, (size_t)n * sizeof *ids) == 0);
    free(ids);
    seslm_llm_answers_free(&a);
    // the layer choice with them: each layer's cost is its text part plus its answer part; the cheapest goes
    char out[256], plan[280];
    tmp_path(out, sizeof out, "answers");
    snprintf(plan, sizeof plan, "%s.plan.json", out);
    seslm_llm_prune_opts o;
    seslm_llm_prune_opts_default(&o);
    o.calib = DOCS, o.n_calib = 4, o.drop_layers = 1, o.ctx = 32, o.heal_steps = 0;
    o.prompts = prompts, o.n_prompts = 3, o.answer_tokens = 5;
    seslm_llm_prune_summary s;
    CHECK_MSG(seslm_llm_prune(TINY, v, &o, out, plan, &s) == SESLM_OK, "%s", seslm_last_error());
    CHECK(s.n_layer_out == 1);
    cJSON *j = read_plan(plan);
    if (j) {
        cJSON *ls = cJSON_GetObjectItem(j, "layers");
        double cost[2] = {0, 0};
        int dropped = -1, any_answer = 0;
        for (int l = 0; l < 2 && l < cJSON_GetArraySize(ls); l++) {
            cJSON *e = cJSON_GetArrayItem(ls, l), *tc = cJSON_GetObjectItem(e, "text_loss_if_dropped"),
                  *ac = cJSON_GetObjectItem(e, "answer_loss_if_dropped"), *lc = cJSON_GetObjectItem(e, "loss_if_dropped");
            CHECK(tc && ac && lc);
            if (!tc || !ac || !lc) continue;
            cost[l] = lc->valuedouble;
            any_answer |= ac->valuedouble != 0.0;
            CHECK_MSG(fabs(lc->valuedouble - tc->valuedouble - ac->valuedouble) <= 1e-9, "layer %d: %g != %g + %g", l,
                      lc->valuedouble, tc->valuedouble, ac->valuedouble);
            if (cJSON_IsTrue(cJSON_GetObjectItem(e, "dropped"))) dropped = l;
        }
        CHECK(any_answer); // bypassing a layer of a random model moves its answers' loss
        cJSON *al = cJSON_GetObjectItem(j, "answer_loss"), *cl = cJSON_GetObjectItem(j, "calibration_loss");
        CHECK(al && cl && cl->valuedouble > 0.0);
        if (al) CHECK_MSG(fabs(al->valuedouble - parent_per_token) <= 1e-4 * (1.0 + parent_per_token), "plan's answer_loss %g vs %g",
                          al->valuedouble, parent_per_token);
        CHECK(dropped == (cost[1] < cost[0] ? 1 : 0));
        cJSON_Delete(j);
        unlink(plan);
        // the probes resumed at each layer's recorded input (the default) give the same costs, to the bit, as
        // whole passes
        o.choice_whole_passes = 1;
        CHECK_MSG(seslm_llm_prune(TINY, v, &o, out, plan, &s) == SESLM_OK, "%s", seslm_last_error());
        o.choice_whole_passes = 0;
        cJSON *w = read_plan(plan);
        cJSON *wl = w ? cJSON_GetObjectItem(w, "layers") : NULL;
        for (int l = 0; l < 2 && wl && l < cJSON_GetArraySize(wl); l++) {
            cJSON *lc = cJSON_GetObjectItem(cJSON_GetArrayItem(wl, l), "loss_if_dropped");
            CHECK_MSG(lc && lc->valuedouble == cost[l], "layer %d: whole passes %.17g, resumed %.17g", l,
                      lc ? lc->valuedouble : NAN, cost[l]);
        }
        CHECK(w != NULL);
        cJSON_Delete(w);
        unlink(plan);
    }
    unlink(out);
    // a prompt that is not UTF-8: refused, named, nothing written
    const char *bad[] = {"hello", "bad \xff byte"};
    o.prompts = bad, o.n_prompts = 2;
    CHECK(seslm_llm_prune(TINY, v, &o, out, plan, &s) == SESLM_ERR_UTF8);
    CHECK(strstr(seslm_last_error(), "served prompt 2") != NULL);
    CHECK(access(out, F_OK) != 0);
}

int main(void) {
    test_quantize_weights();
    test_heal_grad();
    test_heal_fit();
    seslm_llm *m = NULL;
    CHECK(seslm_llm_load(&m, TINY) == SESLM_OK);
    if (!m) return test_report("test_llm_prune");
    seslm_telemetry *t = record(m);
    if (t) {
        seslm_telemetry_view v;
        seslm_telemetry_snapshot(t, &v);
        test_identity(&v);
        test_cut(&v, 0);
        test_cut(&v, 1);
        test_drop_list(&v);
        test_layer_type(&v);
        test_vocab(&v, m);
        test_errors(&v);
        test_heal_prune(&v);
        test_answers(&v, m);
        seslm_telemetry_free(t);
    }
    seslm_llm_free(m);
    return test_report("test_llm_prune");
}
