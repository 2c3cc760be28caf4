/* pooling.c — sentence-transformers pooling of token embeddings, every mode, in plain C on host memory.
 * The backends' pool op covers mean and [CLS] (the common, fast path); this covers the rest, and the
 * prompt-excluding variants, exactly as sentence_transformers.models.Pooling computes them for
 * right-padded batches (its reference: sentence_transformer/modules/pooling.py, _forward_padded). */
#include "pooling.h"

#include <math.h>

void seslm_pool_host(seslm_pooling mode, float *out, const float *x, const int *off, const int *len, int skip, int B,
                     int C, int normalize) {
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * C;
        const float *xb = x + (size_t)off[b] * C; // (len[b], C)
        const int L = len[b], s = skip < L ? skip : L; // tokens s .. L-1 are pooled
        const int n = L - s;
        for (int c = 0; c < C; c++) {
            double acc = 0, w = 0;
            float v = 0;
            switch (mode) {
            case SESLM_POOL_CLS: // first pooled token (argmax of the mask: token 0 when none is left)
                v = xb[(size_t)(n > 0 ? s : 0) * C + c];
                break;
            case SESLM_POOL_LASTTOKEN: // last token of the mask (the prompt only masks the front)
                v = n > 0 ? xb[(size_t)(L - 1) * C + c] : 0.0f;
                break;
            case SESLM_POOL_MAX:
                v = n > 0 ? xb[(size_t)s * C + c] : -INFINITY;
                for (int t = s + 1; t < L; t++) v = fmaxf(v, xb[(size_t)t * C + c]);
                break;
            case SESLM_POOL_WEIGHTEDMEAN: // weight t+1: a prompt keeps the other tokens' position weights
                for (int t = s; t < L; t++) acc += (double)(t + 1) * xb[(size_t)t * C + c], w += t + 1;
                v = (float)(acc / fmax(w, 1e-9));
                break;
            case SESLM_POOL_MEAN:
            case SESLM_POOL_MEAN_SQRT_LEN:
                for (int t = s; t < L; t++) acc += xb[(size_t)t * C + c];
                w = fmax((double)n, 1e-9);
                v = (float)(acc / (mode == SESLM_POOL_MEAN ? w : sqrt(w)));
                break;
            }
            o[c] = v;
        }
        if (normalize) { // torch.nn.functional.normalize: x / max(||x||, 1e-12)
            double nrm = 0;
            for (int c = 0; c < C; c++) nrm += (double)o[c] * o[c];
            const double inv = 1.0 / fmax(sqrt(nrm), 1e-12);
            for (int c = 0; c < C; c++) o[c] = (float)(o[c] * inv);
        }
    }
}
