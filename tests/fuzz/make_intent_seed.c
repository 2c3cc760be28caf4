/* make_intent_seed.c — writes the intent-head seeds of fuzz_model_files (tests/fuzz/make_model_files_corpus.sh
 * builds and runs it): a linear head from the auto fit (fit counts, the weights' RMS, the in-scope reference) and
 * a 4-wide MLP head, both on 8-dimensional inputs of 3 intents, 6 examples each. */
#include "seslm/intent.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: make_intent_seed LINEAR.safetensors MLP.safetensors\n");
        return 2;
    }
    enum { D = 8, N = 18 };
    float X[N * D];
    const char *labels[N];
    static const char *const NAMES[3] = {"greet", "book_flight", "weather"};
    unsigned s = 12345;
    for (int i = 0; i < N; i++) {
        labels[i] = NAMES[i % 3];
        for (int j = 0; j < D; j++) {
            s = s * 1103515245u + 12345u;
            X[i * D + j] = (float)((s >> 16) % 1000) / 1000.0f - 0.5f + (j == i % 3 ? 2.0f : 0.0f);
        }
    }
    for (int k = 0; k < 2; k++) {
        seslm_intent_opts o;
        seslm_intent_opts_default(&o);
        o.input_dim = D;
        if (k == 1) o.n_hidden = 1, o.hidden[0] = 4, o.epochs = 20;
        seslm_intent_head *h = NULL;
        if (seslm_intent_new(&h, &o) != SESLM_OK || seslm_intent_fit(h, X, labels, N) != SESLM_OK ||
            seslm_intent_save(h, argv[1 + k], NULL) != SESLM_OK) {
            fprintf(stderr, "make_intent_seed: %s\n", seslm_last_error());
            return 1;
        }
        seslm_intent_free(h);
    }
    return 0;
}
