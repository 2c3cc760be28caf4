/* fast.c — the fast CPU backend: FP32 matrix products through OpenBLAS (its own run-time CPU
 * dispatch), the other kernels as vectorisable loops compiled for AVX-512, AVX2 and baseline x86-64
 * with the clone picked at load time from the CPU's features (GCC target_clones), threads from our own
 * pool (pool.h: persistent workers, spin then futex sleep; OpenMP's spin-waiting made 2 threads 3-5x
 * slower than 1 whenever other processes wanted the cores).
 * Same math as ref.c; tests/unit/test_kernels_cpu.c compares the two. */
#include "backend.h"
#include "bf16.h"
#include "backward_internal.h"
#include "mathfun.h"
#include "pool.h"
#include "quant.h"
#include "sparse24.h"
#include "cpu_features.h"

#include <math.h>
#include <string.h>
#ifdef SESLM_HAVE_OPENBLAS
#include <cblas.h>
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SIMD_CLONES
#endif

static int g_threads = 1;

static int fast_supports_op(seslm_op op) { return op < SESLM_OP_COUNT; }

static void fast_set_threads(int n) {
    n = seslm_pool_set_threads(n);
#ifdef SESLM_HAVE_OPENBLAS
    // The hot path (packed weights) never calls BLAS. OpenBLAS (its OpenMP build) keeps its own threads
    // for what does: unpacked products (fast_linear without wp) and the recompile pipeline's least
    // squares. Those calls come from the caller's thread while the pool is idle (its workers sleep after
    // the spin), so the two sets of threads do not compete for the cores at the same time; calling sgemm
    // from inside pool workers instead would nest OpenBLAS's threads under ours.
    openblas_set_num_threads(n);
#endif
    g_threads = n;
}

// ---- row kernels (cloned per ISA) -------------------------------------------------------------

SIMD_CLONES static void row_add3(float *restrict y, const float *restrict a, const float *restrict b,
                                 const float *restrict c, int n) {
    for (int i = 0; i < n; i++) y[i] = a[i] + b[i] + c[i];
}

SIMD_CLONES static void row_layernorm(float *restrict x, const float *restrict r, const float *restrict g,
                                      const float *restrict beta, int C, float eps) {
    if (r)
        for (int c = 0; c < C; c++) x[c] += r[c];
    float mean = 0;
#pragma omp simd reduction(+ : mean)
    for (int c = 0; c < C; c++) mean += x[c];
    mean /= (float)C;
    float var = 0;
#pragma omp simd reduction(+ : var)
    for (int c = 0; c < C; c++) var += (x[c] - mean) * (x[c] - mean);
    var /= (float)C;
    const float rstd = 1.0f / sqrtf(var + eps);
    for (int c = 0; c < C; c++) x[c] = (x[c] - mean) * rstd * g[c] + beta[c];
}

SIMD_CLONES static void row_gelu(float *restrict x, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + seslm_erff(x[i] * 0.70710678118654752f));
}

SIMD_CLONES static void row_set(float *restrict y, const float *restrict b, int n) {
    for (int i = 0; i < n; i++) y[i] = b[i];
}

// One head of one sequence: sc (L, L) = q k^T * scale, row softmax, o = sc v. Rows of q/k/v are
// `stride` floats apart (the packed qkv matrix); o rows are `ostride` apart.
// In place: s (L) = exp(s - max s), unnormalised; returns 1 / sum. With ent != NULL, adds the row's
// entropy to *ent and its largest weight to *pmax: with t_j = s_j - max and Z = sum_j e^t_j,
// entropy = log Z - (sum_j e^t_j t_j) / Z and the largest weight is e^0 / Z = 1 / Z, so telemetry costs
// one log and one multiply-add per score.
SIMD_CLONES static float row_softmax(float *restrict s, int L, float *ent, float *pmax) {
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int j = 0; j < L; j++) mx = s[j] > mx ? s[j] : mx;
    float sum = 0, et = 0;
    if (ent) {
#pragma omp simd reduction(+ : sum, et)
        for (int j = 0; j < L; j++) {
            const float t = s[j] - mx;
            s[j] = seslm_expf(t);
            sum += s[j];
            et += s[j] * t;
        }
    } else {
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < L; j++) {
            s[j] = seslm_expf(s[j] - mx);
            sum += s[j];
        }
    }
    const float inv = 1.0f / sum;
    if (ent) {
        *ent += logf(sum) - et * inv;
        *pmax += inv;
    }
    return inv;
}

// One head of one sequence. Rows of q/k/v are `stride` floats apart (the packed qkv matrix); o rows
// are `ostride` apart. K is first transposed to kt (D, L) so that the scores of a query are a sum of
// D scaled rows of kt: unit-stride FMAs over the keys, four queries at a time so each kt row loaded
// serves four score rows. Then a row softmax, and o_i = sum_j p_ij v_j over contiguous v rows.
// stats (2), when not NULL, receives the sums over queries of the entropy and the largest weight.
SIMD_CLONES static void head_attention(float *restrict o, int ostride, const float *restrict q,
                                       const float *restrict k, const float *restrict v, int stride, int L, int D,
                                       float *restrict work, float *restrict stats) {
    const float scale = 1.0f / sqrtf((float)D);
    float *restrict kt = work;                      // (D, L)
    float *restrict sc = work + (size_t)D * L;      // (4, L) score rows
    for (int j = 0; j < L; j++)
        for (int d = 0; d < D; d++) kt[(size_t)d * L + j] = k[(size_t)j * stride + d];
    float ent_sum = 0, pmax_sum = 0;
    for (int i0 = 0; i0 < L; i0 += 4) {
        const int nq = L - i0 < 4 ? L - i0 : 4;
        float *restrict s0 = sc, *restrict s1 = sc + L, *restrict s2 = sc + 2 * L, *restrict s3 = sc + 3 * L;
        for (int j = 0; j < 4 * L; j++) sc[j] = 0;
        const float *q0 = q + (size_t)i0 * stride;
        const float *q1 = nq > 1 ? q0 + stride : q0, *q2 = nq > 2 ? q0 + 2 * (size_t)stride : q0,
                    *q3 = nq > 3 ? q0 + 3 * (size_t)stride : q0;
        for (int d = 0; d < D; d++) {
            const float a0 = q0[d] * scale, a1 = q1[d] * scale, a2 = q2[d] * scale, a3 = q3[d] * scale;
            const float *restrict kr = kt + (size_t)d * L;
            for (int j = 0; j < L; j++) {
                s0[j] += a0 * kr[j];
                s1[j] += a1 * kr[j];
                s2[j] += a2 * kr[j];
                s3[j] += a3 * kr[j];
            }
        }
        for (int r = 0; r < nq; r++) {
            float *restrict s = sc + (size_t)r * L;
            const float inv = row_softmax(s, L, stats ? &ent_sum : NULL, &pmax_sum);
            float *restrict oi = o + (size_t)(i0 + r) * ostride;
            if (D == 32) { // MiniLM's head width: a fixed-size accumulator the compiler keeps in registers
                float acc[32] = {0};
                for (int j = 0; j < L; j++) {
                    const float *restrict vj = v + (size_t)j * stride;
                    for (int d = 0; d < 32; d++) acc[d] += s[j] * vj[d];
                }
                for (int d = 0; d < 32; d++) oi[d] = acc[d] * inv;
            } else {
                for (int d = 0; d < D; d++) oi[d] = 0;
                for (int j = 0; j < L; j++) {
                    const float *restrict vj = v + (size_t)j * stride;
                    for (int d = 0; d < D; d++) oi[d] += s[j] * vj[d];
                }
                for (int d = 0; d < D; d++) oi[d] *= inv;
            }
        }
    }
    if (stats) {
        stats[0] = ent_sum;
        stats[1] = pmax_sum;
    }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define ATTN_X86 1
#include "gelu_avx512.h"
// MiniLM's head width (D = 32) on AVX-512, register-blocked over 8 queries at a time: the scores of
// 8 queries x 32 keys are accumulated in 16 zmm over the 32 dimensions (kt zero-padded to Lp = L
// rounded up to 32 keys), and o for 8 queries in 16 zmm over the keys, so each kt / v load serves eight
// queries (per step: 2 loads + 8 broadcasts for 16 FMAs; the 4-query version did 5 loads per 4 FMAs and
// was load-bound: 46% of peak at 256 tokens).
#define AQ 8 // queries per block
__attribute__((target("avx512f"))) static void head_attention_d32_avx512(float *restrict o, int ostride,
                                                                        const float *restrict q,
                                                                        const float *restrict k,
                                                                        const float *restrict v, int stride, int L,
                                                                        float *restrict work,
                                                                        float *restrict stats) {
    const int Lp = (L + 31) & ~31;
    // K^T's rows are ldk floats apart, not Lp: at L = 512 (2 KiB rows) the 32 rows the score loop walks
    // map to 2 of the 64 L1 sets and evict each other (measured ~20% of attention time at 512 tokens)
    const int ldk = Lp + 16;
    const float scale = 0.17677669529663687f; // 1 / sqrt(32)
    float *restrict kt = work;                    // (32, ldk)
    float *restrict sc = work + 32 * (size_t)ldk; // (AQ, Lp)
    for (int j = 0; j < Lp; j++)
        for (int d = 0; d < 32; d++) kt[(size_t)d * ldk + j] = j < L ? k[(size_t)j * stride + d] * scale : 0.0f;
    float ent_sum = 0, pmax_sum = 0;
    for (int i0 = 0; i0 < L; i0 += AQ) {
        const int nq = L - i0 < AQ ? L - i0 : AQ;
        const float *qr[AQ];
        for (int r = 0; r < AQ; r++) qr[r] = q + (size_t)(i0 + (r < nq ? r : 0)) * stride;
        for (int j0 = 0; j0 < Lp; j0 += 32) {
            __m512 a[AQ][2];
            for (int r = 0; r < AQ; r++) a[r][0] = a[r][1] = _mm512_setzero_ps();
            for (int d = 0; d < 32; d++) {
                const __m512 k0 = _mm512_loadu_ps(kt + (size_t)d * ldk + j0);
                const __m512 k1 = _mm512_loadu_ps(kt + (size_t)d * ldk + j0 + 16);
#pragma GCC unroll 8
                for (int r = 0; r < AQ; r++) {
                    const __m512 qb = _mm512_set1_ps(qr[r][d]);
                    a[r][0] = _mm512_fmadd_ps(qb, k0, a[r][0]);
                    a[r][1] = _mm512_fmadd_ps(qb, k1, a[r][1]);
                }
            }
#pragma GCC unroll 8
            for (int r = 0; r < AQ; r++) {
                _mm512_storeu_ps(sc + (size_t)r * Lp + j0, a[r][0]);
                _mm512_storeu_ps(sc + (size_t)r * Lp + j0 + 16, a[r][1]);
            }
        }
        float inv[AQ] = {0};
        for (int r = 0; r < nq; r++) inv[r] = row_softmax(sc + (size_t)r * Lp, L, stats ? &ent_sum : NULL, &pmax_sum);
        __m512 c[AQ][2];
        for (int r = 0; r < AQ; r++) c[r][0] = c[r][1] = _mm512_setzero_ps();
        for (int j = 0; j < L; j++) {
            const float *vj = v + (size_t)j * stride;
            const __m512 v0 = _mm512_loadu_ps(vj), v1 = _mm512_loadu_ps(vj + 16);
#pragma GCC unroll 8
            for (int r = 0; r < AQ; r++) {
                const __m512 p = _mm512_set1_ps(sc[(size_t)r * Lp + j]);
                c[r][0] = _mm512_fmadd_ps(p, v0, c[r][0]);
                c[r][1] = _mm512_fmadd_ps(p, v1, c[r][1]);
            }
        }
        for (int r = 0; r < nq; r++) {
            float *oi = o + (size_t)(i0 + r) * ostride;
            const __m512 iv = _mm512_set1_ps(inv[r]);
            _mm512_storeu_ps(oi, _mm512_mul_ps(c[r][0], iv));
            _mm512_storeu_ps(oi + 16, _mm512_mul_ps(c[r][1], iv));
        }
    }
    if (stats) {
        stats[0] = ent_sum;
        stats[1] = pmax_sum;
    }
}

// e^x on 16 lanes: seslm_expf's range reduction and polynomial (mathfun.h), 2^n by vscalefps.
__attribute__((target("avx512f"))) static inline __m512 exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3365447504019f)), _mm512_set1_ps(88.3762626647949f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

__attribute__((target("avx512f"))) static void gelu_avx512(float *restrict x, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, gelu16(_mm512_loadu_ps(x + i)));
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(x + i, m, gelu16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

// 16 x 16 floats transposed in registers: r[i] (row i) becomes column i. Unpacks, in-lane shuffles, then
// 128-bit lane shuffles (64 shuffles; the scalar loop it replaced did 256 strided loads and stores).
__attribute__((target("avx512f"))) static inline void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
    }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
    }
}

// out[i] = the max (is_max) or the sum of v[i]'s 16 lanes, for 8 vectors at once: halves, then quarters of two
// vectors are merged into one register per level, then pairs and neighbours within each 128-bit lane. The
// pairing (lane i with i + 8, then i + 4, i + 2, i + 1) is that of _mm512_reduce_max_ps / _mm512_reduce_add_ps,
// so each result has the same bits as those give.
__attribute__((target("avx512f"))) static inline void reduce8_ps(const __m512 v[8], float out[8], int is_max) {
    __m512 h[4], q[2];
    for (int i = 0; i < 4; i++) {
        const __m512 lo = _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44), hi = _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xEE);
        h[i] = is_max ? _mm512_max_ps(hi, lo) : _mm512_add_ps(hi, lo);
    }
    for (int i = 0; i < 2; i++) { // 128-bit lane g of q[i]: vector 4 i + g's four partial results
        const __m512 a = _mm512_shuffle_f32x4(h[2 * i], h[2 * i + 1], 0x88), b = _mm512_shuffle_f32x4(h[2 * i], h[2 * i + 1], 0xDD);
        q[i] = is_max ? _mm512_max_ps(b, a) : _mm512_add_ps(b, a); // upper op lower, as the intrinsic (NaN order)
    }
    for (int i = 0; i < 2; i++) {
        const __m512 sw = _mm512_permute_ps(q[i], 0x4E);
        __m512 t = is_max ? _mm512_max_ps(q[i], sw) : _mm512_add_ps(q[i], sw);
        const __m512 sw1 = _mm512_permute_ps(t, 0xB1);
        t = is_max ? _mm512_max_ps(t, sw1) : _mm512_add_ps(t, sw1);
        float l[16];
        _mm512_storeu_ps(l, t);
        for (int g = 0; g < 4; g++) out[4 * i + g] = l[4 * g];
    }
}

// One block of up to QB queries (8, or 4 for a short last block: at 12 tokens, 8 + 4 rather than 8 + 8)
// against every key: scores, softmax in registers, p v. kt (32, 16 NB) as below.
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) void
attn_short_block(float *restrict o, int ostride, const float *restrict q, const float *restrict kt,
                 const float *restrict v, int stride, int L, int i0, int nq, const __mmask16 live[2],
                 float *restrict ent_sum, float *restrict pmax_sum, int stats, const int NB, const int QB) {
    const int W = 16 * NB;
    const float *qr[QB];
    for (int r = 0; r < QB; r++) qr[r] = q + (size_t)(i0 + (r < nq ? r : 0)) * stride;
    __m512 a[QB][2];
    for (int r = 0; r < QB; r++) a[r][0] = a[r][1] = _mm512_setzero_ps();
    for (int d = 0; d < 32; d++) {
        const __m512 k0 = _mm512_loadu_ps(kt + (size_t)d * W);
        const __m512 k1 = NB > 1 ? _mm512_loadu_ps(kt + (size_t)d * W + 16) : k0;
#pragma GCC unroll 8
        for (int r = 0; r < QB; r++) {
            const __m512 qb = _mm512_set1_ps(qr[r][d]);
            a[r][0] = _mm512_fmadd_ps(qb, k0, a[r][0]);
            if (NB > 1) a[r][1] = _mm512_fmadd_ps(qb, k1, a[r][1]);
        }
    }
    // softmax of each row in registers; the rows' maxima and sums are reduced 8 at a time (reduce8_ps: the
    // same pairing as _mm512_reduce_max / add_ps, so the same bits), where one reduction per row made each
    // row a serial chain of shuffles (perf: the softmax was most of this kernel at 10 tokens)
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __m512 s0[QB], s1[QB], rv[8];
    for (int r = 0; r < QB; r++) {
        s0[r] = _mm512_mask_blend_ps(live[0], ninf, a[r][0]);
        s1[r] = NB > 1 ? _mm512_mask_blend_ps(live[1], ninf, a[r][1]) : ninf;
        rv[r] = NB > 1 ? _mm512_max_ps(s0[r], s1[r]) : s0[r];
    }
    for (int r = QB; r < 8; r++) rv[r] = ninf;
    float mx[8], sum[8], p[QB][32], inv[QB];
    reduce8_ps(rv, mx, 1);
    for (int r = 0; r < QB; r++) {
        const __m512 m = _mm512_set1_ps(mx[r]);
        const __m512 e0 = _mm512_maskz_mov_ps(live[0], exp16(_mm512_sub_ps(s0[r], m)));
        const __m512 e1 = NB > 1 ? _mm512_maskz_mov_ps(live[1], exp16(_mm512_sub_ps(s1[r], m))) : _mm512_setzero_ps();
        _mm512_storeu_ps(p[r], e0);
        if (NB > 1) _mm512_storeu_ps(p[r] + 16, e1);
        rv[r] = _mm512_add_ps(e0, e1);
    }
    for (int r = QB; r < 8; r++) rv[r] = _mm512_setzero_ps();
    reduce8_ps(rv, sum, 0);
    for (int r = 0; r < QB; r++) {
        inv[r] = 1.0f / sum[r];
        if (stats && r < nq) { // entropy = log Z - (sum_j e^t_j t_j) / Z; largest weight 1 / Z
            const __m512 m = _mm512_set1_ps(mx[r]), t0 = _mm512_sub_ps(s0[r], m);
            const __m512 t1 = NB > 1 ? _mm512_sub_ps(s1[r], m) : _mm512_setzero_ps();
            const __m512 e0 = _mm512_loadu_ps(p[r]), e1 = NB > 1 ? _mm512_loadu_ps(p[r] + 16) : _mm512_setzero_ps();
            const __m512 et = _mm512_add_ps(_mm512_maskz_mul_ps(live[0], e0, t0),
                                            NB > 1 ? _mm512_maskz_mul_ps(live[1], e1, t1) : _mm512_setzero_ps());
            *ent_sum += logf(sum[r]) - _mm512_reduce_add_ps(et) * inv[r];
            *pmax_sum += inv[r];
        }
    }
    __m512 c[QB][2];
    for (int r = 0; r < QB; r++) c[r][0] = c[r][1] = _mm512_setzero_ps();
    for (int j = 0; j < L; j++) {
        const float *vj = v + (size_t)j * stride;
        const __m512 v0 = _mm512_loadu_ps(vj), v1 = _mm512_loadu_ps(vj + 16);
#pragma GCC unroll 8
        for (int r = 0; r < QB; r++) {
            const __m512 pr = _mm512_set1_ps(p[r][j]);
            c[r][0] = _mm512_fmadd_ps(pr, v0, c[r][0]);
            c[r][1] = _mm512_fmadd_ps(pr, v1, c[r][1]);
        }
    }
    for (int r = 0; r < nq; r++) {
        float *oi = o + (size_t)(i0 + r) * ostride;
        const __m512 iv = _mm512_set1_ps(inv[r]);
        _mm512_storeu_ps(oi, _mm512_mul_ps(c[r][0], iv));
        _mm512_storeu_ps(oi + 16, _mm512_mul_ps(c[r][1], iv));
    }
}

// Short sequences (L <= 32 keys: most served queries), D = 32, NB = ceil(L / 16) blocks of 16 keys: a
// query's scores fit NB zmm, so the softmax runs in registers (the row function's scalar tails cost as
// much as the products at this size), and K^T is built by register transposes of 16 x 16 blocks. 8 queries
// per block as above; kt (32, 16 NB) holds scale * K^T, zero past L.
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) void
head_attention_d32_short_nb(float *restrict o, int ostride, const float *restrict q, const float *restrict k,
                            const float *restrict v, int stride, int L, float *restrict work, float *restrict stats,
                            const int NB) {
    const int W = 16 * NB; // kt row width
    const __m512 scale = _mm512_set1_ps(0.17677669529663687f); // 1 / sqrt(32)
    float *restrict kt = work; // (32, W)
    for (int jb = 0; jb < NB; jb++)
        for (int d0 = 0; d0 < 32; d0 += 16) {
            __m512 r[16];
            for (int j = 0; j < 16; j++)
                r[j] = 16 * jb + j < L ? _mm512_loadu_ps(k + (size_t)(16 * jb + j) * stride + d0) : _mm512_setzero_ps();
            transpose16(r); // r[d] = keys 16 jb .. 16 jb + 15 of dimension d0 + d
            for (int d = 0; d < 16; d++) _mm512_storeu_ps(kt + (size_t)(d0 + d) * W + 16 * jb, _mm512_mul_ps(r[d], scale));
        }
    const __mmask16 live[2] = {(__mmask16)(L >= 16 ? 0xFFFFu : (1u << L) - 1u),
                               (__mmask16)(L >= 32 ? 0xFFFFu : L > 16 ? (1u << (L - 16)) - 1u : 0u)};
    float ent_sum = 0, pmax_sum = 0;
    for (int i0 = 0; i0 < L; i0 += AQ) {
        const int nq = L - i0 < AQ ? L - i0 : AQ;
        if (nq <= 4)
            attn_short_block(o, ostride, q, kt, v, stride, L, i0, nq, live, &ent_sum, &pmax_sum, stats != NULL, NB, 4);
        else
            attn_short_block(o, ostride, q, kt, v, stride, L, i0, nq, live, &ent_sum, &pmax_sum, stats != NULL, NB, AQ);
    }
    if (stats) {
        stats[0] = ent_sum;
        stats[1] = pmax_sum;
    }
}

__attribute__((target("avx512f"))) static void head_attention_d32_short(float *restrict o, int ostride,
                                                                       const float *restrict q,
                                                                       const float *restrict k,
                                                                       const float *restrict v, int stride,
                                                                       int L, float *restrict work,
                                                                       float *restrict stats) {
    if (L <= 16) head_attention_d32_short_nb(o, ostride, q, k, v, stride, L, work, stats, 1);
    else head_attention_d32_short_nb(o, ostride, q, k, v, stride, L, work, stats, 2);
}
#endif

// ---- ops ----------------------------------------------------------------------------------------

typedef struct {
    float *x;
    const int32_t *ids;
    const int *off, *len;
    int B;
    const seslm_embedding *word;
    const float *pos, *type;
    int C;
} embed_job;

#ifdef ATTN_X86
// One token's row from a compressed word table (seslm_embedding_row) + its position row + the type row, on
// AVX-512 (C a multiple of 32): the 4-bit and INT8 rows dequantized in registers, and the same operations in the
// same order as seslm_embedding_row and the portable sum (so the same bits: the product kept apart from the
// sum). The portable path ran at SSE width with a scalar nibble loop (perf: 2% of an INT8 student's batch of
// short queries).
__attribute__((target("avx512f"))) static void embed_row_avx512(float *restrict row, const seslm_embedding *w,
                                                                int32_t id, const float *restrict pos,
                                                                const float *restrict type, int C) {
    const int32_t slot = w->exact_slot[id], r = w->row_slot ? w->row_slot[id] : id;
    if (slot >= 0 || r < 0) { // exact rows and product-quantized ones (centroids copied): only the sums here
        const float *src = row;
        if (slot >= 0) src = w->exact + (size_t)slot * C;
        else seslm_embedding_row(row, w, id, C);
        for (int c = 0; c < C; c += 16)
            _mm512_storeu_ps(row + c, _mm512_add_ps(_mm512_add_ps(_mm512_loadu_ps(src + c), _mm512_loadu_ps(pos + c)),
                                                    _mm512_loadu_ps(type + c)));
        return;
    }
    const __m512 s = _mm512_set1_ps(w->scale[r]);
    if (w->q4) {
        const uint8_t *q = w->q4 + (size_t)r * (C / 2);
        const __m128i m4 = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
        for (int c = 0; c < C; c += 32) { // 16 bytes: columns c .. c + 31, low nibble first
            const __m128i by = _mm_loadu_si128((const __m128i *)(q + c / 2));
            const __m128i lo = _mm_and_si128(by, m4), hi = _mm_and_si128(_mm_srli_epi16(by, 4), m4);
            __m128i v[2] = {_mm_unpacklo_epi8(lo, hi), _mm_unpackhi_epi8(lo, hi)};
            for (int k = 0; k < 2; k++) {
                v[k] = _mm_sub_epi8(_mm_xor_si128(v[k], eight), eight); // two's-complement nibble
                const int c0 = c + 16 * k;
                __m512 d = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(v[k])), s);
                __asm__("" : "+v"(d)); // no FMA: this file is built with -ffp-contract=fast, the portable rows are not
                _mm512_storeu_ps(row + c0, _mm512_add_ps(_mm512_add_ps(d, _mm512_loadu_ps(pos + c0)),
                                                         _mm512_loadu_ps(type + c0)));
            }
        }
        return;
    }
    const int8_t *q = w->q + (size_t)r * C;
    for (int c = 0; c < C; c += 16) {
        __m512 d = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(q + c)))), s);
        __asm__("" : "+v"(d)); // no FMA (as above)
        _mm512_storeu_ps(row + c, _mm512_add_ps(_mm512_add_ps(d, _mm512_loadu_ps(pos + c)), _mm512_loadu_ps(type + c)));
    }
}

static int cpu_avx512f(void) { return cpu_has(CPU_AVX512F); }
#endif

// items: sequences
static void embed_task(void *ctx, int lo, int hi, int tid) {
    (void)tid;
    const embed_job *j = ctx;
    float *x = j->x;
    const int32_t *ids = j->ids;
    const seslm_embedding *word = j->word;
    const float *pos = j->pos, *type = j->type;
    const int C = j->C;
    for (int b = lo; b < hi; b++) {
        for (int p = 0; p < j->len[b]; p++) {
            int t = j->off[b] + p;
            float *row = x + (size_t)t * C;
            if (word->f32) {
                row_add3(row, word->f32 + (size_t)ids[t] * C, pos + (size_t)p * C, type, C);
            } else { // compressed table: the row (exact or dequantized) first, then the sum in place
#ifdef ATTN_X86
                if (C % 32 == 0 && cpu_avx512f()) {
                    embed_row_avx512(row, word, ids[t], pos + (size_t)p * C, type, C);
                    continue;
                }
#endif
                seslm_embedding_row(row, word, ids[t], C);
                const float *q = pos + (size_t)p * C;
                for (int c = 0; c < C; c++) row[c] = row[c] + q[c] + type[c];
            }
        }
    }
}

static void fast_embed(float *x, const int32_t *ids, const int *off, const int *len, int B,
                       const seslm_embedding *word, const float *pos, const float *type, int C) {
    embed_job j = {x, ids, off, len, B, word, pos, type, C};
    const int ntok = B ? off[B - 1] + len[B - 1] : 0;
    if (ntok > 32) seslm_pool_for(B, 1, 0, embed_task, &j);
    else embed_task(&j, 0, B, 0);
}

// y = x W^T from weights packed once at load into 32-column panels of W^T (seslm_weight_pack32).
// BLAS packs the whole weight matrix on every call, which at M ~ 10 costs more than the product
// itself (measured: 62% of batch-1 time in sgemm's packing), and a plain W^T walk stalls on strided
// loads (measured: 60% of cycles on the load). At 128 and ~350 rows it also beat OpenBLAS here.
// Each block of 4 rows x 32 columns keeps its accumulators in registers while it streams its panel
// (K x 32 contiguous floats); threads take disjoint panels. `nv` columns of the panel are stored.

// Portable version (the compiler vectorises the j loops; GCC spills the accumulators, hence the
// hand-scheduled x86 versions below).
static void panel_kernel_c(float *restrict y, const float *restrict x, const float *restrict panel,
                            const float *restrict bias, int M, int N, int K, int n0, int nv) {
    float b[32] = {0};
    if (bias) memcpy(b, bias + n0, (size_t)nv * sizeof(float));
    for (int m0 = 0; m0 < M; m0 += 4) {
        const int mr = M - m0 < 4 ? M - m0 : 4;
        float acc[4][32];
        for (int r = 0; r < 4; r++)
            for (int j = 0; j < 32; j++) acc[r][j] = b[j];
        for (int k = 0; k < K; k++) {
            const float *restrict w = panel + (size_t)k * 32;
            for (int r = 0; r < mr; r++) {
                const float a = x[(size_t)(m0 + r) * K + k];
                for (int j = 0; j < 32; j++) acc[r][j] += a * w[j];
            }
        }
        for (int r = 0; r < mr; r++) memcpy(y + (size_t)(m0 + r) * N + n0, acc[r], (size_t)nv * sizeof(float));
    }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define PANEL_X86 1

// AVX-512: 4 rows x 32 columns = 8 zmm accumulators; per k two loads of W^T and four broadcasts.
__attribute__((target("avx512f"))) static void panel_kernel_avx512(float *restrict y, const float *restrict x,
                                                                   const float *restrict panel,
                                                                   const float *restrict bias, int M, int N, int K,
                                                                   int n0, int nv) {
    if (nv < 32) { // the last, partial panel: the portable version stores only nv columns
        panel_kernel_c(y, x, panel, bias, M, N, K, n0, nv);
        return;
    }
    const __m512 b0 = bias ? _mm512_loadu_ps(bias + n0) : _mm512_setzero_ps();
    const __m512 b1 = bias ? _mm512_loadu_ps(bias + n0 + 16) : _mm512_setzero_ps();
    for (int m0 = 0; m0 < M; m0 += 4) {
        const int mr = M - m0 < 4 ? M - m0 : 4;
        const float *x0 = x + (size_t)m0 * K;
        const float *x1 = mr > 1 ? x0 + K : x0, *x2 = mr > 2 ? x0 + 2 * (size_t)K : x0,
                    *x3 = mr > 3 ? x0 + 3 * (size_t)K : x0;
        __m512 c00 = b0, c01 = b1, c10 = b0, c11 = b1, c20 = b0, c21 = b1, c30 = b0, c31 = b1;
        const float *w = panel;
        for (int k = 0; k < K; k++, w += 32) {
            const __m512 w0 = _mm512_loadu_ps(w), w1 = _mm512_loadu_ps(w + 16);
            __m512 a = _mm512_set1_ps(x0[k]);
            c00 = _mm512_fmadd_ps(a, w0, c00), c01 = _mm512_fmadd_ps(a, w1, c01);
            a = _mm512_set1_ps(x1[k]);
            c10 = _mm512_fmadd_ps(a, w0, c10), c11 = _mm512_fmadd_ps(a, w1, c11);
            a = _mm512_set1_ps(x2[k]);
            c20 = _mm512_fmadd_ps(a, w0, c20), c21 = _mm512_fmadd_ps(a, w1, c21);
            a = _mm512_set1_ps(x3[k]);
            c30 = _mm512_fmadd_ps(a, w0, c30), c31 = _mm512_fmadd_ps(a, w1, c31);
        }
        float *yr = y + (size_t)m0 * N + n0;
        _mm512_storeu_ps(yr, c00), _mm512_storeu_ps(yr + 16, c01);
        if (mr > 1) _mm512_storeu_ps(yr + N, c10), _mm512_storeu_ps(yr + N + 16, c11);
        if (mr > 2) _mm512_storeu_ps(yr + 2 * (size_t)N, c20), _mm512_storeu_ps(yr + 2 * (size_t)N + 16, c21);
        if (mr > 3) _mm512_storeu_ps(yr + 3 * (size_t)N, c30), _mm512_storeu_ps(yr + 3 * (size_t)N + 16, c31);
    }
}

// AVX2 + FMA: 16 ymm registers, so 4 rows x 16 columns (8 accumulators) per pass, two passes.
__attribute__((target("avx2,fma"))) static void panel_half_avx2(float *restrict y, const float *restrict x,
                                                                 const float *restrict panel,
                                                                 const float *restrict b, int M, int N, int K,
                                                                 int n0) {
    const __m256 b0 = b ? _mm256_loadu_ps(b + n0) : _mm256_setzero_ps();
    const __m256 b1 = b ? _mm256_loadu_ps(b + n0 + 8) : _mm256_setzero_ps();
    for (int m0 = 0; m0 < M; m0 += 4) {
        const int mr = M - m0 < 4 ? M - m0 : 4;
        const float *x0 = x + (size_t)m0 * K;
        const float *x1 = mr > 1 ? x0 + K : x0, *x2 = mr > 2 ? x0 + 2 * (size_t)K : x0,
                    *x3 = mr > 3 ? x0 + 3 * (size_t)K : x0;
        __m256 c00 = b0, c01 = b1, c10 = b0, c11 = b1, c20 = b0, c21 = b1, c30 = b0, c31 = b1;
        const float *w = panel;
        for (int k = 0; k < K; k++, w += 32) {
            const __m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + 8);
            __m256 a = _mm256_broadcast_ss(x0 + k);
            c00 = _mm256_fmadd_ps(a, w0, c00), c01 = _mm256_fmadd_ps(a, w1, c01);
            a = _mm256_broadcast_ss(x1 + k);
            c10 = _mm256_fmadd_ps(a, w0, c10), c11 = _mm256_fmadd_ps(a, w1, c11);
            a = _mm256_broadcast_ss(x2 + k);
            c20 = _mm256_fmadd_ps(a, w0, c20), c21 = _mm256_fmadd_ps(a, w1, c21);
            a = _mm256_broadcast_ss(x3 + k);
            c30 = _mm256_fmadd_ps(a, w0, c30), c31 = _mm256_fmadd_ps(a, w1, c31);
        }
        float *yr = y + (size_t)m0 * N + n0;
        _mm256_storeu_ps(yr, c00), _mm256_storeu_ps(yr + 8, c01);
        if (mr > 1) _mm256_storeu_ps(yr + N, c10), _mm256_storeu_ps(yr + N + 8, c11);
        if (mr > 2) _mm256_storeu_ps(yr + 2 * (size_t)N, c20), _mm256_storeu_ps(yr + 2 * (size_t)N + 8, c21);
        if (mr > 3) _mm256_storeu_ps(yr + 3 * (size_t)N, c30), _mm256_storeu_ps(yr + 3 * (size_t)N + 8, c31);
    }
}

// one panel = two 16-column halves: the panel's rows are 32 floats apart
__attribute__((target("avx2,fma"))) static void panel_kernel_avx2(float *restrict y, const float *restrict x,
                                                                 const float *restrict panel,
                                                                 const float *restrict b, int M, int N, int K,
                                                                 int n0, int nv) {
    if (nv < 32) {
        panel_kernel_c(y, x, panel, b, M, N, K, n0, nv);
        return;
    }
    panel_half_avx2(y, x, panel, b, M, N, K, n0);
    panel_half_avx2(y, x, panel + 16, b, M, N, K, n0 + 16);
}
#endif

typedef void (*panel_fn)(float *restrict, const float *restrict, const float *restrict, const float *restrict, int,
                          int, int, int, int);

// Picked once from the CPU's features (the CI machine has AVX-512; others may have only AVX2).
static panel_fn panel_pick(void) {
#ifdef PANEL_X86
    if (cpu_has(CPU_AVX512F)) return panel_kernel_avx512;
    if (cpu_has(CPU_AVX2_FMA)) return panel_kernel_avx2;
#endif
    return panel_kernel_c;
}

// panel i of W: columns [32 i, min(32 i + 32, N))
static void panel_linear(float *restrict y, const float *restrict x, const float *restrict wp,
                         const float *restrict b, int M, int N, int K, int i) {
    static panel_fn fn; // benign race: every thread computes the same pointer
    if (!fn) fn = panel_pick();
    const int nv = N - 32 * i < 32 ? N - 32 * i : 32;
    fn(y, x, wp + (size_t)i * K * 32, b, M, N, K, 32 * i, nv);
}

typedef struct {
    float *y;
    const float *x;
    const seslm_weight *W;
    const float *b;
    int M;
    seslm_rows_post post; // applied to each finished panel, row by row (fused GELU); NULL: none
} linear_job;

// items: 32-column panels
static void panel_task(void *ctx, int lo, int hi, int tid) {
    (void)tid;
    const linear_job *j = ctx;
    const int N = j->W->N;
    for (int i = lo; i < hi; i++) {
        panel_linear(j->y, j->x, j->W->wp, j->b, j->M, N, j->W->K, i);
        if (!j->post) continue;
        const int nv = N - 32 * i < 32 ? N - 32 * i : 32;
        for (int m = 0; m < j->M; m++) j->post(j->y + (size_t)m * N + 32 * i, (size_t)nv);
    }
}

// items: blocks of 16 rows of an unpacked product
static void rows_task(void *ctx, int lo, int hi, int tid) {
    (void)tid;
    const linear_job *j = ctx;
    const int N = j->W->N, K = j->W->K, m0 = lo * 16, m1 = hi * 16 < j->M ? hi * 16 : j->M;
    float *y = j->y + (size_t)m0 * N;
    const float *x = j->x + (size_t)m0 * K, *b = j->b;
#ifdef SESLM_HAVE_OPENBLAS
    // y starts as the bias broadcast, then y = 1 * x W^T + 1 * y in one sgemm.
    if (b)
        for (int m = m0; m < m1; m++) row_set(y + (size_t)(m - m0) * N, b, N);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m1 - m0, N, K, 1.0f, x, K, j->W->w, K, b ? 1.0f : 0.0f, y, N);
#else
    const float *w = j->W->w;
    for (int m = 0; m < m1 - m0; m++)
        for (int n = 0; n < N; n++) {
            float acc = 0;
            for (int k = 0; k < K; k++) acc += x[(size_t)m * K + k] * w[(size_t)n * K + k];
            y[(size_t)m * N + n] = acc + (b ? b[n] : 0.0f);
        }
#endif
}

static void fast_gelu(float *x, size_t n);
static seslm_rows_post gelu_rows(void);

// INT8 weights from activations already quantized (q, s; rows ldq bytes apart, a multiple of 4): one fused
// int8 product + dequantization (qgemm.c), with `post` on each finished tile (fused GELU) when not NULL.
static void linear_q8_post(float *y, const int8_t *qa, const float *sa, int lda, const seslm_weight *W,
                           const float *b, int M, seslm_rows_post post) {
    const int N = W->N, K = W->K;
    if (W->qp) { // post is NULL or the GELU row function: GELU on the tiles' registers (qgemm.c)
        if (post) seslm_qgemm_fast_gelu(y, NULL, qa, lda, sa, W->qp, W->qsum, W->qscale, b, M, N, K, NULL, post);
        else seslm_qgemm_fast(NULL, y, qa, lda, sa, W->qp, W->qsum, W->qscale, b, M, N, K, NULL);
        return;
    }
    // not packed (a caller that skipped packing): the plain per-element product, one thread
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            int32_t s = 0;
            for (int k = 0; k < K; k++) s += (int32_t)qa[(size_t)m * lda + k] * W->q[(size_t)n * K + k];
            y[(size_t)m * N + n] = (float)s * (sa[m] * W->qscale[n]) + (b ? b[n] : 0.0f);
        }
    if (post) post(y, (size_t)M * N);
}

// linear_q8_post for activations from seslm_quantize_rows_top1 (ti, tv): the top terms are added to each
// tile before post (so before GELU), on the packed weights; unpacked: the plain product, the terms, post.
static void linear_q8_top1(float *y, const int8_t *qa, const float *sa, int lda, const int32_t *ti, const float *tv,
                           const seslm_weight *W, const float *b, int M, seslm_rows_post post) {
    const int N = W->N, K = W->K;
    if (W->qp) {
        seslm_qgemm_fast_top1(y, qa, lda, sa, ti, tv, W->qp, W->qsum, W->qscale, b, M, N, K, NULL, post);
        return;
    }
    linear_q8_post(y, qa, sa, lda, W, b, M, NULL);
    seslm_q8_add_top1_ref(y, N, ti, tv, W->q, K, W->qscale, M, N);
    if (post) post(y, (size_t)M * N);
}

static void fast_linear_q8in(float *y, const int8_t *q, const float *s, int ldq, const seslm_weight *W,
                             const float *b, int M, int gelu) {
    linear_q8_post(y, q, s, ldq, W, b, M, gelu ? gelu_rows() : NULL);
}

typedef struct {
    int8_t *qa;
    float *sa;
    const float *x;
    int K, lda;
    const uint32_t *amax; // each row's max |x| when known (seslm_qgemm_fast_gelu), else NULL
    int32_t *top_idx;     // not NULL: seslm_quantize_rows_top1 into these (amax NULL)
    float *top_val;
} quant_job;

// items: rows
static void quant_task(void *ctx, int lo, int hi, int tid) {
    (void)tid;
    const quant_job *j = ctx;
    int8_t *q = j->qa + (size_t)lo * j->lda;
    const float *x = j->x + (size_t)lo * j->K;
    if (j->top_idx) seslm_quantize_rows_top1(q, j->sa + lo, j->top_idx + lo, j->top_val + lo, x, hi - lo, j->K, j->lda);
    else if (j->amax) seslm_quantize_rows_amax(q, j->sa + lo, x, hi - lo, j->K, j->lda, j->amax + lo);
    else seslm_quantize_rows(q, j->sa + lo, x, hi - lo, j->K, j->lda);
}

static void quant_rows(const quant_job *qj, int M) {
    if (M >= 64) seslm_pool_for(M, 16, 0, quant_task, (void *)qj);
    else quant_task((void *)qj, 0, M, 0);
}

// GELU(dequantized q W^T + b) with each row's max |y| from the product's tiles, then y quantized per token
// into (qy, sy) in one pass over y (the unfused path scans it twice: once for the maximum, once to round).
static void fast_linear_gelu_q8out(float *y, int8_t *qy, float *sy, int ldqy, const int8_t *q, const float *s,
                                   int ldq, const seslm_weight *W, const float *b, int M) {
    uint32_t *amax = W->qp ? seslm_quant_scratch((size_t)M * sizeof *amax) : NULL;
    if (amax)
        seslm_qgemm_fast_gelu(y, amax, q, ldq, s, W->qp, W->qsum, W->qscale, b, M, W->N, W->K, NULL, gelu_rows());
    else // not packed, or no scratch: the unfused pair (a NaN scale marks a row it could not finish)
        linear_q8_post(y, q, s, ldq, W, b, M, gelu_rows());
    const quant_job qj = {qy, sy, y, W->N, ldqy, amax, NULL, NULL};
    quant_rows(&qj, M);
}

// INT8 weights: quantize x per token into the calling thread's scratch (rows padded to a multiple of 4
// bytes for the VNNI kernel; rows split over the pool at batch sizes), then the product above.
static void fast_linear_q8(float *y, const float *x, const seslm_weight *W, const float *b, int M,
                           seslm_rows_post post) {
    const int N = W->N, K = W->K, lda = (K + 3) & ~3;
    const size_t qa_bytes = ((size_t)M * lda + 63) & ~(size_t)63;
    const size_t top_bytes = W->act_top1 ? (size_t)M * (sizeof(int32_t) + sizeof(float)) : 0;
    char *ws = seslm_quant_scratch(qa_bytes + (size_t)M * sizeof(float) + top_bytes + 64);
    if (!ws) { // out of memory: NaN, never stale numbers
        for (size_t i = 0; i < (size_t)M * N; i++) y[i] = NAN;
        return;
    }
    int8_t *qa = (int8_t *)ws;
    float *sa = (float *)(ws + qa_bytes);
    if (W->act_top1) { // each token's largest element stays float (quant.h seslm_quantize_rows_top1)
        int32_t *ti = (int32_t *)(sa + M);
        float *tv = (float *)(ti + M);
        const quant_job qj = {qa, sa, x, K, lda, NULL, ti, tv};
        quant_rows(&qj, M);
        linear_q8_top1(y, qa, sa, lda, ti, tv, W, b, M, post);
        return;
    }
    const quant_job qj = {qa, sa, x, K, lda, NULL, NULL, NULL};
    quant_rows(&qj, M);
    linear_q8_post(y, qa, sa, lda, W, b, M, post);
}

// y = x W^T + b, then post(y) when not NULL: fused into the tiles of the packed INT8 and F32 products,
// a pass of its own otherwise (BF16, 2:4 sparse, unpacked; post is then fast_gelu's row function).
static void linear_post(float *y, const float *x, const seslm_weight *W, const float *b, int M,
                        seslm_rows_post post) {
    if (W->qscale) {
        fast_linear_q8(y, x, W, b, M, post);
        return;
    }
    if (post && !W->wp) {
        linear_post(y, x, W, b, M, NULL);
        fast_gelu(y, (size_t)M * W->N);
        return;
    }
    if (W->bwp || W->bw) { // BF16: vdpbf16ps panels when packed, else the reference loop
        if (W->bwp) seslm_bf16_linear_fast(y, x, W->bwp, b, M, W->N, W->K, NULL);
        else seslm_bf16_linear_ref(y, x, W->bw, b, M, W->N, W->K);
        return;
    }
    if (W->sv) { // 2:4 sparse: the panel kernel when packed, else the reference loop
        if (W->sp) seslm_sparse24_linear_fast(y, x, W->sp, b, M, W->N, W->K);
        else seslm_sparse24_linear_ref(y, x, W->sv, W->si, b, M, W->N, W->K);
        return;
    }
    const int N = W->N, K = W->K;
    const int np = (N + 31) / 32;
    linear_job j = {y, x, W, b, M, post};
    if (W->wp) { // measured faster than OpenBLAS sgemm at every batch shape of this model (bench/RESULTS.md)
        if (np > 1 && (long)N * K > 65536) seslm_pool_for(np, 1, 0, panel_task, &j);
        else panel_task(&j, 0, np, 0);
        return;
    }
#ifdef SESLM_HAVE_OPENBLAS
    rows_task(&j, 0, (M + 15) / 16, 0); // one sgemm on OpenBLAS's own threads
#else
    seslm_pool_for((M + 15) / 16, 1, 0, rows_task, &j); // row blocks of 16 over the pool
#endif
}

typedef struct {
    float *x;
    const float *r, *g, *beta;
    int C;
    float eps;
    size_t n;
} rows_job;

#ifdef ATTN_X86
// A row of NV * 16 floats (MiniLM's 384 = 24 zmm) held in registers: read x (+ r) once, the mean and the
// centred variance from the registers, write once. The looped row function makes four passes over
// memory with one dependent accumulator per reduction (perf: 4% of an INT8 student's batch). Every loop
// is unrolled: rolled, GCC kept v[] on the stack and copied it with `rep movsq` (a third of the op's time).
// With q, the output row is also quantized from the registers (seslm_quantize_rows's row: the same amax,
// non-finite probe, 127 / amax and round-to-nearest-even conversion, so the same bytes) for an INT8
// product that reads it next: no second pass over the row.
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) void
row_layernorm_regs(float *restrict x, const float *restrict r, const float *restrict g, const float *restrict beta,
                   float eps, const int NV, int8_t *restrict q, float *restrict qs, int ldq) {
    __m512 v[NV];
    __m512 s[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
#pragma GCC unroll 32
    for (int i = 0; i < NV; i++) {
        v[i] = _mm512_loadu_ps(x + 16 * i);
        if (r) v[i] = _mm512_add_ps(v[i], _mm512_loadu_ps(r + 16 * i));
        s[i & 3] = _mm512_add_ps(s[i & 3], v[i]);
    }
    const float C = (float)(16 * NV);
    const __m512 mean = _mm512_set1_ps(
        _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3]))) / C);
    for (int k = 0; k < 4; k++) s[k] = _mm512_setzero_ps();
#pragma GCC unroll 32
    for (int i = 0; i < NV; i++) {
        v[i] = _mm512_sub_ps(v[i], mean);
        s[i & 3] = _mm512_fmadd_ps(v[i], v[i], s[i & 3]);
    }
    const float var = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3]))) / C;
    const __m512 rstd = _mm512_set1_ps(1.0f / sqrtf(var + eps));
    __m512 am = _mm512_setzero_ps(), pr = _mm512_setzero_ps();
#pragma GCC unroll 32
    for (int i = 0; i < NV; i++) {
        v[i] = _mm512_fmadd_ps(_mm512_mul_ps(v[i], rstd), _mm512_loadu_ps(g + 16 * i), _mm512_loadu_ps(beta + 16 * i));
        _mm512_storeu_ps(x + 16 * i, v[i]);
        if (!q) continue;
        am = _mm512_max_ps(am, _mm512_abs_ps(v[i]));
        pr = _mm512_add_ps(pr, _mm512_sub_ps(v[i], v[i])); // 0, or NaN for a NaN or an infinity
    }
    if (!q) return;
    const float amax = _mm512_reduce_max_ps(am);
    const int nonfinite = _mm512_reduce_add_ps(pr) != 0.0f;
    if (!(amax > 0.0f) || nonfinite) {
        memset(q, 0, (size_t)ldq);
        *qs = nonfinite ? NAN : 0.0f;
        return;
    }
    const __m512 inv = _mm512_set1_ps(127.0f / amax);
    const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
#pragma GCC unroll 32
    for (int i = 0; i < NV; i++) {
        const __m512i qi = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v[i], inv)), lo), hi);
        _mm_storeu_si128((__m128i *)(q + 16 * i), _mm512_cvtepi32_epi8(qi));
    }
    if (ldq > 16 * NV) memset(q + 16 * NV, 0, (size_t)(ldq - 16 * NV));
    *qs = amax / 127.0f;
}

__attribute__((target("avx512f"))) static void row_layernorm_384(float *restrict x, const float *restrict r,
                                                                 const float *restrict g, const float *restrict beta,
                                                                 float eps) {
    row_layernorm_regs(x, r, g, beta, eps, 24, NULL, NULL, 0);
}

__attribute__((target("avx512f"))) static void row_layernorm_384_q8(float *restrict x, const float *restrict r,
                                                                    const float *restrict g,
                                                                    const float *restrict beta, float eps,
                                                                    int8_t *restrict q, float *restrict qs, int ldq) {
    row_layernorm_regs(x, r, g, beta, eps, 24, q, qs, ldq);
}
#endif

static void layernorm_task(void *ctx, int lo, int hi, int tid) {
    (void)tid;
    const rows_job *j = ctx;
    const int C = j->C;
#ifdef ATTN_X86
    if (C == 384 && cpu_avx512f()) {
        for (int m = lo; m < hi; m++)
            row_layernorm_384(j->x + (size_t)m * C, j->r ? j->r + (size_t)m * C : NULL, j->g, j->beta, j->eps);
        return;
    }
#endif
    for (int m = lo; m < hi; m++)
        row_layernorm(j->x + (size_t)m * C, j->r ? j->r + (size_t)m * C : NULL, j->g, j->beta, C, j->eps);
}

static void fast_add_layernorm(float *x, const float *r, const float *g, const float *beta, int M, int C,
                               float eps) {
    rows_job j = {x, r, g, beta, C, eps, 0};
    if (M > 8) seslm_pool_for(M, 4, 0, layernorm_task, &j);
    else layernorm_task(&j, 0, M, 0);
}

typedef struct {
    rows_job ln;
    int8_t *q;
    float *s;
    int ldq;
} lnq_job;

// items: rows; each block of rows normalised, then quantized while it is in L1
static void lnq_task(void *ctx, int lo, int hi, int tid) {
    lnq_job *j = ctx;
    const int C = j->ln.C;
#ifdef ATTN_X86
    if (C == 384 && cpu_avx512f()) { // quantized from the registers (row_layernorm_regs)
        const rows_job *l = &j->ln;
        for (int m = lo; m < hi; m++)
            row_layernorm_384_q8(l->x + (size_t)m * C, l->r ? l->r + (size_t)m * C : NULL, l->g, l->beta, l->eps,
                                 j->q + (size_t)m * j->ldq, j->s + m, j->ldq);
        return;
    }
#endif
    layernorm_task(&j->ln, lo, hi, tid);
    seslm_quantize_rows(j->q + (size_t)lo * j->ldq, j->s + lo, j->ln.x + (size_t)lo * C, hi - lo, C, j->ldq);
}

static void fast_add_layernorm_q8(float *x, const float *r, const float *g, const float *beta, int M, int C, float eps,
                                  int8_t *q, float *s, int ldq) {
    lnq_job j = {{x, r, g, beta, C, eps, 0}, q, s, ldq};
    if (M > 8) seslm_pool_for(M, 4, 0, lnq_task, &j);
    else lnq_task(&j, 0, M, 0);
}

// The GELU row function: AVX-512 intrinsics where the CPU has them, else the cloned loop.
static seslm_rows_post gelu_rows(void) {
    static seslm_rows_post fn; // benign race: every thread computes the same pointer
    if (fn) return fn;
#ifdef ATTN_X86
    if (cpu_has(CPU_AVX512F)) return fn = gelu_avx512;
#endif
    return fn = row_gelu;
}

#define GELU_CHUNK 4096
static void gelu_task(void *ctx, int lo, int hi, int tid) {
    (void)tid;
    const rows_job *j = ctx;
    const size_t a = (size_t)lo * GELU_CHUNK, e = (size_t)hi * GELU_CHUNK < j->n ? (size_t)hi * GELU_CHUNK : j->n;
    gelu_rows()(j->x + a, e - a);
}

static void fast_gelu(float *x, size_t n) {
    const long nchunks = (long)((n + GELU_CHUNK - 1) / GELU_CHUNK);
    rows_job j = {x, NULL, NULL, NULL, 0, 0, n};
    if (nchunks > 4) seslm_pool_for((int)nchunks, 1, 0, gelu_task, &j);
    else gelu_task(&j, 0, (int)nchunks, 0);
}

static void fast_linear(float *y, const float *x, const seslm_weight *W, const float *b, int M) {
    linear_post(y, x, W, b, M, NULL);
}

// GELU on each tile / panel of the product while it is in cache, not a pass of its own over (M, N)
static void fast_linear_gelu(float *y, const float *x, const seslm_weight *W, const float *b, int M) {
    linear_post(y, x, W, b, M, gelu_rows());
}

typedef struct {
    float *out;
    const float *qkv;
    const int *off, *len;
    int H, D;
    float *scratch;
    size_t per;
    float *stats;
    int use_d32;
} attn_job;

// items: (sequence, head) pairs; each thread has its own scratch slice
static void attn_task(void *ctx, int lo, int hi, int tid) {
    const attn_job *j = ctx;
    const int H = j->H, D = j->D, HD = H * D, S = 3 * HD;
    float *work = j->scratch + (size_t)tid * j->per;
    for (int bh = lo; bh < hi; bh++) {
        const int b = bh / H, h = bh % H;
        const float *base = j->qkv + (size_t)j->off[b] * S + h * D;
        float *o = j->out + (size_t)j->off[b] * HD + h * D, *st = j->stats ? j->stats + 2 * bh : NULL;
#ifdef ATTN_X86
        if (j->use_d32 && j->len[b] <= 32) {
            head_attention_d32_short(o, HD, base, base + HD, base + 2 * HD, S, j->len[b], work, st);
            continue;
        }
        if (j->use_d32) {
            head_attention_d32_avx512(o, HD, base, base + HD, base + 2 * HD, S, j->len[b], work, st);
            continue;
        }
#endif
        head_attention(o, HD, base, base + HD, base + 2 * HD, S, j->len[b], D, work, st);
    }
}

static void fast_attention(float *out, const float *qkv, const int *off, const int *len, int B, int H, int D,
                           float *scratch, size_t scratch_floats, float *stats) {
    int maxL = 0;
    for (int b = 0; b < B; b++) maxL = len[b] > maxL ? len[b] : maxL;
    const size_t per = ((size_t)maxL + 48) * (D + 8) + 64; // as seslm_attention_scratch_floats
    int use_d32 = 0;
#ifdef ATTN_X86
    use_d32 = D == 32 && cpu_has(CPU_AVX512F);
#endif
    int nt = (int)(scratch_floats / per);
    if (nt < 1) nt = 1; // caller sized scratch with seslm_attention_scratch_floats
    if (nt > g_threads) nt = g_threads;
    attn_job j = {out, qkv, off, len, H, D, scratch, per, stats, use_d32};
    if (B * H > 1) seslm_pool_for(B * H, 1, nt, attn_task, &j);
    else attn_task(&j, 0, B * H, 0);
}

static void pool_rows(float *out, const float *x, const int *off, const int *len, int b0, int b1, int C,
                      int normalize) {
    for (int b = b0; b < b1; b++) {
        float *o = out + (size_t)b * C;
        for (int c = 0; c < C; c++) o[c] = 0;
        for (int p = 0; p < len[b]; p++) {
            const float *r = x + (size_t)(off[b] + p) * C;
            for (int c = 0; c < C; c++) o[c] += r[c];
        }
        float nrm = 0;
        for (int c = 0; c < C; c++) {
            o[c] /= (float)len[b];
            nrm += o[c] * o[c];
        }
        if (normalize) {
            const float inv = 1.0f / fmaxf(sqrtf(nrm), 1e-12f);
            for (int c = 0; c < C; c++) o[c] *= inv;
        }
    }
}

typedef struct {
    float *out;
    const float *x;
    const int *off, *len;
    int C, normalize;
} pool_job;

static void pool_task(void *ctx, int lo, int hi, int tid) {
    (void)tid;
    const pool_job *j = ctx;
    pool_rows(j->out, j->x, j->off, j->len, lo, hi, j->C, j->normalize);
}

static void fast_pool(float *out, const float *x, const int *off, const int *len, int B, int C, int normalize) {
    pool_job j = {out, x, off, len, C, normalize};
    if (B > 4) seslm_pool_for(B, 1, 0, pool_task, &j);
    else pool_task(&j, 0, B, 0);
}

// Per-column accumulators: threads own disjoint column blocks of at most 64 columns and walk all
// rows. Rows are summed in float over chunks of 64 (full-width SIMD; a 64-term float sum is exact to
// ~1e-6 relative) and each chunk's sums are added to the double totals, which keeps telemetry within
// its 5% budget at long sequences (double accumulation per element measured +8% at 128 tokens).
#define COL_CHUNK 64
SIMD_CLONES static void col_block_stats(const float *restrict x, int M, int N, int n0, int n1, double *restrict sq,
                                        double *restrict abs, uint64_t *restrict pos) {
    const int w = n1 - n0;
    for (int m0 = 0; m0 < M; m0 += COL_CHUNK) {
        const int m1 = M - m0 < COL_CHUNK ? M : m0 + COL_CHUNK;
        float fs[64] = {0}, fa[64] = {0}, fp[64] = {0};
        for (int m = m0; m < m1; m++) {
            const float *restrict r = x + (size_t)m * N + n0;
#pragma omp simd
            for (int j = 0; j < w; j++) {
                fs[j] += r[j] * r[j];
                fa[j] += fabsf(r[j]);
                fp[j] += r[j] > 0 ? 1.0f : 0.0f;
            }
        }
        for (int j = 0; j < w; j++) sq[n0 + j] += fs[j];
        if (abs)
            for (int j = 0; j < w; j++) abs[n0 + j] += fa[j];
        if (pos)
            for (int j = 0; j < w; j++) pos[n0 + j] += (uint64_t)fp[j]; // counts <= 64: exact in float
    }
}

typedef struct {
    const float *x;
    int M, N;
    double *sq, *abs, *norms;
    uint64_t *pos;
    int H, D;
} stats_job;

static void col_stats_task(void *ctx, int lo, int hi, int tid) {
    (void)tid;
    const stats_job *j = ctx;
    const int blk = 64, N = j->N;
    for (int b = lo; b < hi; b++)
        col_block_stats(j->x, j->M, N, b * blk, b * blk + blk < N ? b * blk + blk : N, j->sq, j->abs, j->pos);
}

static void fast_col_stats(const float *x, int M, int N, double *sq, double *abs, uint64_t *pos) {
    const int blk = 64, nblk = (N + blk - 1) / blk;
    stats_job j = {x, M, N, sq, abs, NULL, pos, 0, 0};
    if (nblk > 1 && (long)M * N > 16384) seslm_pool_for(nblk, 1, 0, col_stats_task, &j);
    else col_stats_task(&j, 0, nblk, 0);
}

SIMD_CLONES static float vec_norm(const float *restrict v, int D) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int d = 0; d < D; d++) s += v[d] * v[d];
    return sqrtf(s);
}

static void head_norms_task(void *ctx, int lo, int hi, int tid) {
    (void)tid;
    const stats_job *j = ctx;
    const int H = j->H, D = j->D;
    for (int h = lo; h < hi; h++) {
        double acc = 0;
        for (int m = 0; m < j->M; m++) acc += vec_norm(j->x + (size_t)m * H * D + (size_t)h * D, D);
        j->norms[h] += acc;
    }
}

static void fast_head_norms(const float *ctx, int M, int H, int D, double *norms) {
    stats_job j = {ctx, M, 0, NULL, NULL, norms, NULL, H, D};
    if (H > 1 && M > 16) seslm_pool_for(H, 1, 0, head_norms_task, &j);
    else head_norms_task(&j, 0, H, 0);
}

static const seslm_backend g_fast = {
    .name = "cpu",
    .wants_packed = 1,
    .supports_op = fast_supports_op,
    .set_threads = fast_set_threads,
    .embed = fast_embed,
    .linear = fast_linear,
    .linear_gelu = fast_linear_gelu,
    .add_layernorm = fast_add_layernorm,
    .gelu = fast_gelu,
    .attention = fast_attention,
    .pool = fast_pool,
    .col_stats = fast_col_stats,
    .head_norms = fast_head_norms,
    .embed_backward = fast_embed_backward,
    .linear_backward = fast_linear_backward,
    .layernorm_backward = fast_layernorm_backward,
    .gelu_backward = fast_gelu_backward,
    .attention_backward = fast_attention_backward,
    .pool_backward = fast_pool_backward,
    .l2norm_backward = fast_l2norm_backward,
    .add_layernorm_q8 = fast_add_layernorm_q8,
    .linear_q8in = fast_linear_q8in,
    .linear_gelu_q8out = fast_linear_gelu_q8out,
};

const seslm_backend *seslm_backend_cpu_fast(void) { return &g_fast; }
