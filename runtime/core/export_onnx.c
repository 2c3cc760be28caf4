/* export_onnx.c — writes an ONNX ModelProto by hand: the protobuf wire format is varints, fixed32 and
 * length-prefixed fields, and the few messages used here have stable field numbers (onnx/onnx.proto):
 *   ModelProto      ir_version 1, producer_name 2, producer_version 3, graph 7, opset_import 8
 *   OperatorSetId   domain 1, version 2
 *   GraphProto      node 1, name 2, initializer 5, input 11, output 12
 *   NodeProto       input 1, output 2, name 3, op_type 4, attribute 5
 *   AttributeProto  name 1, f 2, i 3, ints 8, type 20 (FLOAT 1, INT 2, INTS 7)
 *   TensorProto     dims 1, data_type 2 (FLOAT 1, INT8 3, INT64 7), name 8, raw_data 9
 *   ValueInfoProto  name 1, type 2;  TypeProto tensor_type 1;  Tensor elem_type 1, shape 2;
 *   TensorShapeProto dim 1;  Dimension dim_value 1, dim_param 2
 * The graph mirrors encoder.c: embeddings + LayerNorm, per layer attention with its own head count (none:
 * the output bias only) and FFN with its own width (none: the bias only), exact GELU (Erf), INT8 layers with
 * SE-SLM's per-token activation quantization (fake-quantized: Round/Clip), then pooling
 * and normalisation as the model's sentence-transformers pipeline. Checked by tests/cli/test_export.sh with
 * onnxruntime against `seslm embed`. */
#include "export_onnx.h"
#include "backend.h"
#include "model_internal.h"
#include "sparse24.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *p;
    size_t n, cap;
    int oom;
} pb;

static void pb_raw(pb *b, const void *d, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q, b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void pb_varint(pb *b, uint64_t v) {
    uint8_t t[10];
    int k = 0;
    do {
        t[k++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    pb_raw(b, t, (size_t)k);
}
static void pb_key(pb *b, int field, int wt) { pb_varint(b, ((uint64_t)field << 3) | (uint64_t)wt); }
static void pb_int(pb *b, int field, int64_t v) { pb_key(b, field, 0), pb_varint(b, (uint64_t)v); }
static void pb_bytes(pb *b, int field, const void *d, size_t n) { pb_key(b, field, 2), pb_varint(b, n), pb_raw(b, d, n); }
static void pb_str(pb *b, int field, const char *s) { pb_bytes(b, field, s, strlen(s)); }
static void pb_msg(pb *b, int field, pb *sub) { // appends sub as a nested message and frees it
    pb_bytes(b, field, sub->p, sub->n);
    b->oom |= sub->oom;
    free(sub->p);
    memset(sub, 0, sizeof *sub);
}
static void pb_f32(pb *b, int field, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint8_t t[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
    pb_key(b, field, 5), pb_raw(b, t, 4);
}

// ---- graph building ------------------------------------------------------------------------------

typedef struct {
    pb g;     // GraphProto under construction (nodes, initializers)
    int top1; // INT8 layers keep each token's largest input element in float (quant.h seslm_quantize_rows_top1)
} gb;

/* One node; ins / outs NULL-terminated; attrs: written by the caller into a (may be NULL). */
static void node(gb *G, const char *op, const char *const *ins, const char *const *outs, pb *attrs) {
    pb n = {0};
    for (int i = 0; ins[i]; i++) pb_str(&n, 1, ins[i]);
    for (int i = 0; outs[i]; i++) pb_str(&n, 2, outs[i]);
    pb_str(&n, 3, outs[0]);
    pb_str(&n, 4, op);
    if (attrs && attrs->n) pb_raw(&n, attrs->p, attrs->n), n.oom |= attrs->oom;
    if (attrs) free(attrs->p), memset(attrs, 0, sizeof *attrs);
    pb_msg(&G->g, 1, &n);
}
static void attr_int(pb *a, const char *name, int64_t v) {
    pb x = {0};
    pb_str(&x, 1, name), pb_int(&x, 3, v), pb_int(&x, 20, 2);
    pb_msg(a, 5, &x);
}
static void attr_float(pb *a, const char *name, float v) {
    pb x = {0};
    pb_str(&x, 1, name), pb_f32(&x, 2, v), pb_int(&x, 20, 1);
    pb_msg(a, 5, &x);
}
static void attr_ints(pb *a, const char *name, const int64_t *v, int n) {
    pb x = {0};
    pb_str(&x, 1, name);
    for (int i = 0; i < n; i++) pb_int(&x, 8, v[i]);
    pb_int(&x, 20, 7);
    pb_msg(a, 5, &x);
}

static void init_tensor(gb *G, const char *name, int dtype, const int64_t *dims, int nd, const void *data, size_t bytes) {
    pb t = {0};
    for (int i = 0; i < nd; i++) pb_int(&t, 1, dims[i]);
    pb_int(&t, 2, dtype);
    pb_str(&t, 8, name);
    pb_bytes(&t, 9, data, bytes); // little-endian raw data (this runtime is little-endian)
    pb_msg(&G->g, 5, &t);
}
static void init_f32(gb *G, const char *name, const float *v, int64_t d0, int64_t d1) {
    int64_t dims[2] = {d0, d1};
    init_tensor(G, name, 1, dims, d1 > 0 ? 2 : 1, v, (size_t)(d1 > 0 ? d0 * d1 : d0) * 4);
}
static void init_i64(gb *G, const char *name, const int64_t *v, int n) {
    int64_t d = n;
    init_tensor(G, name, 7, &d, 1, v, (size_t)n * 8);
}
static void init_scalar(gb *G, const char *name, float v) { init_tensor(G, name, 1, NULL, 0, &v, 4); }

#define N(...) ((const char *const[]){__VA_ARGS__, NULL})

// ---- weights: (N, K) row-major of the model -> float, whatever the stored form ---------------------

static float *weight_rows(const float *f, const int8_t *q, const float *s, const float *sv, const uint8_t *si, int Nr,
                          int K) {
    float *w = malloc((size_t)Nr * K * sizeof(float));
    if (!w) return NULL;
    if (f) {
        memcpy(w, f, (size_t)Nr * K * sizeof(float));
    } else if (q) {
        for (size_t i = 0; i < (size_t)Nr * K; i++) w[i] = q[i] * s[i / (size_t)K];
    } else if (sv) {
        seslm_sparse24_expand(w, sv, si, Nr, K);
    } else {
        free(w);
        return NULL;
    }
    return w;
}

/* y = x W^T + b with W (Nr, K) stored as the initializer W^T (K, Nr); int8: INT8 + per-output-column scale
 * with the activations quantized per token into MatMulInteger (exact int32 sums). Writes the output name to out (64 bytes); 0 when out of memory. */
static int linear(gb *G, const char *x, const char *stem, const float *f, const int8_t *q, const float *s, const float *sv,
                  const uint8_t *si, const float *bias, int Nr, int K, int int8, char *out) {
    char wn[64], bn[64], mm[64];
    snprintf(wn, sizeof wn, "%s.weight_t", stem);
    snprintf(bn, sizeof bn, "%s.bias", stem);
    if (int8 && q) { // the exact INT8 weights and per-output-channel scales SE-SLM stores, transposed (K, N)
        int8_t *t = malloc((size_t)Nr * K);
        if (!t) return 0;
        for (int n = 0; n < Nr; n++)
            for (int k = 0; k < K; k++) t[(size_t)k * Nr + n] = q[(size_t)n * K + k];
        int64_t dims[2] = {K, Nr};
        char qn[64], sn[64];
        snprintf(qn, sizeof qn, "%s.weight_t_int8", stem);
        snprintf(sn, sizeof sn, "%s.weight_scale", stem);
        init_tensor(G, qn, 3, dims, 2, t, (size_t)Nr * K);
        init_f32(G, sn, s, Nr, 0);
        free(t);
    } else {
        float *w = weight_rows(f, q, s, sv, si, Nr, K);
        if (!w) return 0;
        float *t = malloc((size_t)Nr * K * sizeof(float));
        if (!t) return free(w), 0;
        for (int n = 0; n < Nr; n++)
            for (int k = 0; k < K; k++) t[(size_t)k * Nr + n] = w[(size_t)n * K + k];
        init_f32(G, wn, t, K, Nr);
        free(t), free(w);
    }
    init_f32(G, bn, bias, Nr, 0);
    char xq[64], xt[64], xrest[64];
    snprintf(xq, sizeof xq, "%s", x);
    if (q && G->top1) { // the row's first largest |x| (ArgMax picks the first) is split off: x = x_rest + x_top
        char ab0[64], ix[64], rg[64], eq[64], oh[64];
        snprintf(ab0, 64, "%s.t_abs", stem), snprintf(ix, 64, "%s.t_idx", stem), snprintf(rg, 64, "%s.k_range", stem);
        snprintf(eq, 64, "%s.t_eq", stem), snprintf(oh, 64, "%s.t_onehot", stem);
        snprintf(xt, 64, "%s.x_top", stem), snprintf(xrest, 64, "%s.x_rest", stem);
        int64_t *r = malloc((size_t)K * sizeof *r);
        if (!r) return 0;
        for (int k = 0; k < K; k++) r[k] = k;
        init_i64(G, rg, r, K);
        free(r);
        node(G, "Abs", N(x), N(ab0), NULL);
        pb a = {0};
        attr_int(&a, "axis", -1), attr_int(&a, "keepdims", 1), attr_int(&a, "select_last_index", 0);
        node(G, "ArgMax", N(ab0), N(ix), &a); // [B, S, 1] int64
        node(G, "Equal", N(ix, rg), N(eq), NULL);
        a = (pb){0}, attr_int(&a, "to", 1), node(G, "Cast", N(eq), N(oh), &a);
        node(G, "Mul", N(x, oh), N(xt), NULL);     // x at t, 0 elsewhere (exact)
        node(G, "Sub", N(x, xt), N(xrest), NULL);  // 0 at t, x elsewhere (exact)
        x = xrest;
    }
    if (q) { // SE-SLM quantizes the activations per token (quant.h): q = clip(round_even(x * (127 / s')), ±127), s' = max|x|
        char ab[64], am[64], as[64], inv[64], xs[64], xr[64], xc[64], sc[64];
        snprintf(ab, 64, "%s.x_abs", stem), snprintf(am, 64, "%s.x_amax", stem), snprintf(as, 64, "%s.x_amax_safe", stem);
        snprintf(inv, 64, "%s.x_inv", stem), snprintf(xs, 64, "%s.x_scaled", stem), snprintf(xr, 64, "%s.x_round", stem);
        snprintf(xc, 64, "%s.x_clip", stem), snprintf(sc, 64, "%s.x_scale", stem);
        node(G, "Abs", N(x), N(ab), NULL);
        pb a = {0};
        const int64_t last[1] = {-1};
        attr_ints(&a, "axes", last, 1), attr_int(&a, "keepdims", 1);
        node(G, "ReduceMax", N(ab), N(am), &a);
        node(G, "Max", N(am, "c_tiny"), N(as), NULL); // a zero row stays zero (no 0 / 0)
        node(G, "Div", N("c_127", as), N(inv), NULL);
        node(G, "Mul", N(x, inv), N(xs), NULL);
        node(G, "Round", N(xs), N(xr), NULL); // half to even, as round_even
        node(G, "Clip", N(xr, "c_m127", "c_127"), N(xc), NULL);
        node(G, "Div", N(as, "c_127"), N(sc), NULL); // [B, S, 1]
        if (int8) { // exact int32 sums (MatMulInteger), dequantized as SE-SLM: (float)acc * (s_x * s_w) + b
            char x8[64], acc[64], accd[64], ss[64], prod[64], bd[64], sumd[64];
            snprintf(x8, 64, "%s.x_int8", stem), snprintf(acc, 64, "%s.acc", stem), snprintf(accd, 64, "%s.acc_f", stem);
            snprintf(ss, 64, "%s.scale_xw", stem), snprintf(prod, 64, "%s.acc_d", stem);
            snprintf(bd, 64, "%s.bias_d", stem), snprintf(sumd, 64, "%s.out_d", stem);
            a = (pb){0}, attr_int(&a, "to", 3), node(G, "Cast", N(xc), N(x8), &a);
            char qn[64], sn[64];
            snprintf(qn, sizeof qn, "%s.weight_t_int8", stem);
            snprintf(sn, sizeof sn, "%s.weight_scale", stem);
            node(G, "MatMulInteger", N(x8, qn), N(acc), NULL);
            a = (pb){0}, attr_int(&a, "to", 1), node(G, "Cast", N(acc), N(accd), &a); // int32 -> float rounds as (float)acc
            node(G, "Mul", N(sc, sn), N(ss), NULL);                                   // s_x * s_w in float
            // acc * scale + b with one rounding, as the kernels' FMA: the product of a float (<= 2^25 integer) and a
            // float is exact in double, the sum rounds once there, then to float
            a = (pb){0}, attr_int(&a, "to", 11), node(G, "Cast", N(accd), N(prod), &a);
            char sd[64], pd[64];
            snprintf(sd, 64, "%s.scale_d", stem), snprintf(pd, 64, "%s.mul_d", stem);
            a = (pb){0}, attr_int(&a, "to", 11), node(G, "Cast", N(ss), N(sd), &a);
            node(G, "Mul", N(prod, sd), N(pd), NULL);
            a = (pb){0}, attr_int(&a, "to", 11), node(G, "Cast", N(bn), N(bd), &a);
            node(G, "Add", N(pd, bd), N(sumd), NULL);
            snprintf(out, 64, "%s.out", stem);
            if (!G->top1) {
                a = (pb){0}, attr_int(&a, "to", 1), node(G, "Cast", N(sumd), N(out), &a);
                return 1;
            }
            // + x_t * (s_w[n] * q[n, t]), rounded as seslm_q8_add_top1_ref: W^T's row t gathered (int8), widened,
            // times the scales, times x_t (the row sum of x_top: one nonzero, exact)
            char o0[64], ix[64], g4[64], g3[64], gf[64], wd[64], tv[64], cr[64];
            snprintf(o0, 64, "%s.out0", stem), snprintf(ix, 64, "%s.t_idx", stem), snprintf(g4, 64, "%s.t_w4", stem);
            snprintf(g3, 64, "%s.t_w", stem), snprintf(gf, 64, "%s.t_wf", stem), snprintf(wd, 64, "%s.t_wd", stem);
            snprintf(tv, 64, "%s.t_val", stem), snprintf(cr, 64, "%s.t_term", stem);
            a = (pb){0}, attr_int(&a, "to", 1), node(G, "Cast", N(sumd), N(o0), &a);
            a = (pb){0}, attr_int(&a, "axis", 0), node(G, "Gather", N(qn, ix), N(g4), &a); // [B, S, 1, N]
            node(G, "Squeeze", N(g4, "c_axes2"), N(g3), NULL);                           // [B, S, N]
            a = (pb){0}, attr_int(&a, "to", 1), node(G, "Cast", N(g3), N(gf), &a);
            node(G, "Mul", N(sn, gf), N(wd), NULL);
            a = (pb){0}, attr_int(&a, "keepdims", 1);
            node(G, "ReduceSum", N(xt, "c_axes2"), N(tv), &a); // [B, S, 1]; opset 13+: axes is an input
            node(G, "Mul", N(tv, wd), N(cr), NULL);
            node(G, "Add", N(o0, cr), N(out), NULL);
            return 1;
        }
        snprintf(xq, sizeof xq, "%s.x_q", stem);
        node(G, "Mul", N(xc, sc), N(xq), NULL);
        if (G->top1) { // fake-quantized rest + the exact top element, then the float product
            char x2[64];
            snprintf(x2, 64, "%s.x_q_top", stem);
            node(G, "Add", N(xq, xt), N(x2), NULL);
            snprintf(xq, sizeof xq, "%s", x2);
        }
    }
    snprintf(mm, sizeof mm, "%s.mm", stem);
    node(G, "MatMul", N(xq, wn), N(mm), NULL);
    snprintf(out, 64, "%s.out", stem);
    node(G, "Add", N(mm, bn), N(out), NULL);
    return 1;
}

static void layernorm(gb *G, const char *x, const char *stem, const float *g, const float *b, int C, float eps, char *out) {
    char gn[64], bn[64];
    snprintf(gn, sizeof gn, "%s.gamma", stem);
    snprintf(bn, sizeof bn, "%s.beta", stem);
    init_f32(G, gn, g, C, 0);
    init_f32(G, bn, b, C, 0);
    snprintf(out, 64, "%s.ln", stem);
    pb a = {0};
    attr_int(&a, "axis", -1);
    attr_float(&a, "epsilon", eps);
    node(G, "LayerNormalization", N(x, gn, bn), N(out), &a);
}

static void value_info(pb *g, int field, const char *name, int elem, const char *d0, const char *d1, int64_t d1v) {
    pb vi = {0}, type = {0}, tt = {0}, shape = {0}, dim = {0};
    pb_str(&dim, 2, d0);
    pb_msg(&shape, 1, &dim);
    if (d1) pb_str(&dim, 2, d1);
    else pb_int(&dim, 1, d1v);
    pb_msg(&shape, 1, &dim);
    pb_int(&tt, 1, elem);
    pb_msg(&tt, 2, &shape);
    pb_msg(&type, 1, &tt);
    pb_str(&vi, 1, name);
    pb_msg(&vi, 2, &type);
    pb_msg(g, field, &vi);
}

seslm_status seslm_export_onnx(const seslm_model *m, const char *path, int int8) {
    const seslm_model_config *c = &m->cfg;
    const int C = c->hidden, D = c->head_dim, V = c->vocab_size;
    if (strcmp(c->precision, "fp32") != 0) // F32 weights computed in BF16 / INT8 at load: not what this graph does
        return seslm_fail(SESLM_ERR_ARG, "%s computes its F32 weights in %s (seslm_precision): the ONNX export reproduces "
                                         "fp32 only (an INT8 student stores its INT8 weights: recompile --quantize int8)",
                          m->dir, c->precision);
    gb G = {.top1 = c->act_top1};
    pb *g = &G.g;
    pb_str(g, 2, "seslm");
    seslm_status st = SESLM_OK;
    char x[64], t1[64];
    // embeddings: word rows (dequantised / exact rows restored) + positions [0, S) + token type 0
    float *word = malloc((size_t)V * C * sizeof(float));
    if (!word) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    // every table layout (INT8, 4-bit, product-quantized rows) read as the kernels read it (backend.h)
    for (int v = 0; v < V; v++) seslm_embedding_row(word + (size_t)v * C, &m->word, v, C);
    init_f32(&G, "word_embeddings", word, V, C);
    free(word);
    init_f32(&G, "position_embeddings", m->pos_emb, c->max_position, C);
    init_f32(&G, "token_type_row0", m->type_emb, C, 0);
    const int64_t zero[1] = {0}, one[1] = {1}, axis1[1] = {1}, heads_shape[4] = {0, 0, -1, D};
    init_i64(&G, "c_zero", zero, 1);
    init_i64(&G, "c_one", one, 1);
    init_i64(&G, "c_axis1", axis1, 1);
    init_scalar(&G, "c_neg_big", -1e9f);
    init_scalar(&G, "c_1", 1.0f);
    init_scalar(&G, "c_half", 0.5f);
    init_scalar(&G, "c_inv_sqrt2", (float)(1.0 / sqrt(2.0)));
    init_scalar(&G, "c_inv_sqrt_d", (float)(1.0 / sqrt((double)D)));
    int any_q = 0; // (constants only where used: onnxruntime warns about unused initializers)
    for (int l = 0; l < c->n_layers; l++)
        any_q |= m->lw[l].q_q || m->lw[l].ao_q || m->lw[l].ff1_q || m->lw[l].ff2_q;
    if (any_q) {
        init_scalar(&G, "c_127", 127.0f);
        init_scalar(&G, "c_m127", -127.0f);
        init_scalar(&G, "c_tiny", 1e-30f);
    }
    pb a = {0};
    node(&G, "Gather", N("word_embeddings", "input_ids"), N("emb_word"), NULL);
    node(&G, "Shape", N("input_ids"), N("ids_shape"), NULL);
    node(&G, "Gather", N("ids_shape", "c_one"), N("seq_len"), NULL); // [1]
    node(&G, "Slice", N("position_embeddings", "c_zero", "seq_len", "c_zero"), N("emb_pos"), NULL);
    node(&G, "Add", N("emb_word", "emb_pos"), N("emb_wp"), NULL);
    node(&G, "Add", N("emb_wp", "token_type_row0"), N("emb_sum"), NULL);
    layernorm(&G, "emb_sum", "embeddings", m->emb_ln_g, m->emb_ln_b, C, c->layer_norm_eps, x);
    // attention bias from the mask: (mask - 1) * 1e9 -> [B, 1, 1, S]; mask as float [B, S, 1] for pooling
    a = (pb){0};
    attr_int(&a, "to", 1);
    node(&G, "Cast", N("attention_mask"), N("mask_f"), &a);
    node(&G, "Sub", N("c_1", "mask_f"), N("mask_inv"), NULL);
    node(&G, "Mul", N("mask_inv", "c_neg_big"), N("mask_bias2"), NULL);
    const int64_t ax12[2] = {1, 2};
    init_i64(&G, "c_axes12", ax12, 2);
    node(&G, "Unsqueeze", N("mask_bias2", "c_axes12"), N("mask_bias"), NULL);
    init_i64(&G, "c_axes2", (const int64_t[]){2}, 1);
    node(&G, "Unsqueeze", N("mask_f", "c_axes2"), N("mask_3d"), NULL);
    init_i64(&G, "c_heads_shape", heads_shape, 4);
    for (int l = 0; l < c->n_layers && st == SESLM_OK; l++) {
        const seslm_layer_weights *w = &m->lw[l];
        const int H = c->layers[l].n_heads, A = H * D, F = c->layers[l].ffn_dim;
        char stem[64], q[64], k[64], v[64], ctx[64], att[64];
        int ok = 1;
        if (A > 0) {
            snprintf(stem, sizeof stem, "layer%d.q", l);
            ok &= linear(&G, x, stem, w->q_w, w->q_q, w->q_s, NULL, NULL, w->q_b, A, C, int8, q);
            snprintf(stem, sizeof stem, "layer%d.k", l);
            ok &= linear(&G, x, stem, w->k_w, w->k_q, w->k_s, NULL, NULL, w->k_b, A, C, int8, k);
            snprintf(stem, sizeof stem, "layer%d.v", l);
            ok &= linear(&G, x, stem, w->v_w, w->v_q, w->v_s, NULL, NULL, w->v_b, A, C, int8, v);
            char qh[64], kh[64], vh[64], qt[64], kt[64], vt[64], sc[64], sc2[64], sc3[64], pr[64], cx[64], cxt[64];
            snprintf(qh, 64, "l%d.qh", l), snprintf(kh, 64, "l%d.kh", l), snprintf(vh, 64, "l%d.vh", l);
            snprintf(qt, 64, "l%d.qt", l), snprintf(kt, 64, "l%d.kt", l), snprintf(vt, 64, "l%d.vt", l);
            snprintf(sc, 64, "l%d.scores", l), snprintf(sc2, 64, "l%d.scaled", l), snprintf(sc3, 64, "l%d.masked", l);
            snprintf(pr, 64, "l%d.probs", l), snprintf(cx, 64, "l%d.ctx_h", l), snprintf(cxt, 64, "l%d.ctx_t", l);
            node(&G, "Reshape", N(q, "c_heads_shape"), N(qh), NULL); // [B, S, H, D]
            node(&G, "Reshape", N(k, "c_heads_shape"), N(kh), NULL);
            node(&G, "Reshape", N(v, "c_heads_shape"), N(vh), NULL);
            const int64_t p_q[4] = {0, 2, 1, 3}, p_k[4] = {0, 2, 3, 1};
            a = (pb){0}, attr_ints(&a, "perm", p_q, 4), node(&G, "Transpose", N(qh), N(qt), &a); // [B, H, S, D]
            a = (pb){0}, attr_ints(&a, "perm", p_k, 4), node(&G, "Transpose", N(kh), N(kt), &a); // [B, H, D, S]
            a = (pb){0}, attr_ints(&a, "perm", p_q, 4), node(&G, "Transpose", N(vh), N(vt), &a);
            node(&G, "MatMul", N(qt, kt), N(sc), NULL); // [B, H, S, S]
            node(&G, "Mul", N(sc, "c_inv_sqrt_d"), N(sc2), NULL);
            node(&G, "Add", N(sc2, "mask_bias"), N(sc3), NULL);
            a = (pb){0}, attr_int(&a, "axis", -1), node(&G, "Softmax", N(sc3), N(pr), &a);
            node(&G, "MatMul", N(pr, vt), N(cx), NULL); // [B, H, S, D]
            a = (pb){0}, attr_ints(&a, "perm", p_q, 4), node(&G, "Transpose", N(cx), N(cxt), &a); // [B, S, H, D]
            char shp[64], ctx_flat[64];
            snprintf(shp, 64, "l%d.ctx_shape", l), snprintf(ctx_flat, 64, "l%d.ctx", l);
            init_i64(&G, shp, (const int64_t[]){0, 0, A}, 3);
            node(&G, "Reshape", N(cxt, shp), N(ctx_flat), NULL);
            snprintf(stem, sizeof stem, "layer%d.attn_out", l);
            ok &= linear(&G, ctx_flat, stem, w->ao_w, w->ao_q, w->ao_s, NULL, NULL, w->ao_b, C, A, int8, att);
            snprintf(ctx, 64, "%s", att);
        } else { // no head left: the attention block adds its output bias only
            snprintf(ctx, 64, "layer%d.attn_bias", l);
            init_f32(&G, ctx, w->ao_b, C, 0);
        }
        snprintf(t1, 64, "l%d.res1", l);
        node(&G, "Add", N(x, ctx), N(t1), NULL);
        snprintf(stem, sizeof stem, "layer%d.ln1", l);
        layernorm(&G, t1, stem, w->ln1_g, w->ln1_b, C, c->layer_norm_eps, x);
        char ffo[64];
        if (F > 0) {
            char h[64], h1[64], h2[64], h3[64], h4[64];
            snprintf(stem, sizeof stem, "layer%d.ffn_in", l);
            ok &= linear(&G, x, stem, w->ff1_w, w->ff1_q, w->ff1_s, w->ff1_sv, w->ff1_si, w->ff1_b, F, C, int8, h);
            snprintf(h1, 64, "l%d.g1", l), snprintf(h2, 64, "l%d.g2", l), snprintf(h3, 64, "l%d.g3", l), snprintf(h4, 64, "l%d.gelu", l);
            node(&G, "Mul", N(h, "c_inv_sqrt2"), N(h1), NULL); // gelu(h) = 0.5 h (1 + erf(h / sqrt 2))
            node(&G, "Erf", N(h1), N(h2), NULL);
            node(&G, "Add", N(h2, "c_1"), N(h3), NULL);
            char h5[64];
            snprintf(h5, 64, "l%d.g5", l);
            node(&G, "Mul", N(h, h3), N(h5), NULL);
            node(&G, "Mul", N(h5, "c_half"), N(h4), NULL);
            snprintf(stem, sizeof stem, "layer%d.ffn_out", l);
            ok &= linear(&G, h4, stem, w->ff2_w, w->ff2_q, w->ff2_s, w->ff2_sv, w->ff2_si, w->ff2_b, C, F, int8, ffo);
        } else {
            snprintf(ffo, 64, "layer%d.ffn_bias", l);
            init_f32(&G, ffo, w->ff2_b, C, 0);
        }
        snprintf(t1, 64, "l%d.res2", l);
        node(&G, "Add", N(x, ffo), N(t1), NULL);
        snprintf(stem, sizeof stem, "layer%d.ln2", l);
        layernorm(&G, t1, stem, w->ln2_g, w->ln2_b, C, c->layer_norm_eps, x);
        if (!ok) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory writing layer %d", l);
    }
    // pooling (x [B, S, C], mask_3d [B, S, 1]), as sentence-transformers
    const char *pooled = "pooled";
    switch (c->pooling) {
    case SESLM_POOL_MEAN:
    case SESLM_POOL_MEAN_SQRT_LEN:
        node(&G, "Mul", N(x, "mask_3d"), N("masked_x"), NULL);
        a = (pb){0}, attr_int(&a, "keepdims", 0), node(&G, "ReduceSum", N("masked_x", "c_axis1"), N("sum_x"), &a);
        a = (pb){0}, attr_int(&a, "keepdims", 0), node(&G, "ReduceSum", N("mask_3d", "c_axis1"), N("count"), &a);
        if (c->pooling == SESLM_POOL_MEAN_SQRT_LEN) node(&G, "Sqrt", N("count"), N("count_s"), NULL);
        node(&G, "Div", N("sum_x", c->pooling == SESLM_POOL_MEAN ? "count" : "count_s"), N(pooled), NULL);
        break;
    case SESLM_POOL_CLS: // below
        break;
    default:
        st = seslm_fail(SESLM_ERR_ARG, "ONNX export of pooling mode '%s' is not implemented (mean, mean_sqrt_len, cls are)",
                        seslm_pooling_name(c->pooling));
    }
    if (c->pooling == SESLM_POOL_CLS) { // x[:, 0, :]
        a = (pb){0}, attr_int(&a, "axis", 1);
        node(&G, "Gather", N(x, "c_zero_scalar"), N(pooled), &a);
        init_tensor(&G, "c_zero_scalar", 7, NULL, 0, zero, 8);
    }
    if (c->pooling != SESLM_POOL_MEAN && c->pooling != SESLM_POOL_MEAN_SQRT_LEN && c->pooling != SESLM_POOL_CLS) {
        free(G.g.p);
        return st;
    }
    if (c->normalize) {
        a = (pb){0}, attr_int(&a, "axis", -1), attr_int(&a, "p", 2);
        node(&G, "LpNormalization", N(pooled), N("sentence_embedding"), &a);
    } else {
        node(&G, "Identity", N(pooled), N("sentence_embedding"), NULL);
    }
    value_info(g, 11, "input_ids", 7, "batch", "sequence", 0);
    value_info(g, 11, "attention_mask", 7, "batch", "sequence", 0);
    value_info(g, 12, "sentence_embedding", 1, "batch", NULL, C);
    pb model = {0}, ops = {0};
    pb_int(&model, 1, 8); // IR version 8 (opset 17)
    pb_str(&model, 2, "seslm");
    pb_str(&model, 3, seslm_version());
    pb_str(&ops, 1, "");
    pb_int(&ops, 2, 17);
    pb_msg(&model, 8, &ops);
    pb_msg(&model, 7, g);
    if (st == SESLM_OK && model.oom) st = seslm_fail(SESLM_ERR_NOMEM, "out of memory building the ONNX graph");
    if (st == SESLM_OK) st = util_write_file_atomic(path, model.p, model.n);
    free(model.p);
    return st;
}
