/* fuzz_config.c — libFuzzer target: every YAML configuration loader on arbitrary bytes.
 *
 * The first byte picks the loader (modulo 8), the rest is the file:
 *   0 the generic reader (yaml_config.h: load, typed getters, sequences, the key check)
 *   1 the pruning policy        2 the validation gates   3 the dialog policy   4 evolve
 *   5 drift                     6 governance             7 adapt
 * The string loaders read a private heap copy of exactly the file's size (ASan sees a read past its end);
 * the path loaders read it from a file in a private temporary folder, as the programs do. Invariants
 * checked on every input (abort() on violation, which libFuzzer reports as a crash):
 *   - a failure is SESLM_ERR_FORMAT / ARG / IO / NOMEM with a non-empty message;
 *   - a policy that loads holds to the cap its loader promises, and checking it against MiniLM's shape
 *     returns a status (never crashes);
 *   - a loaded configuration is freed without a leak (ASan's leak check runs at exit).
 * Seeds: tests/fuzz/corpus_config/ (the shipped configs/ files, each behind its selector byte; written by
 * tests/fuzz/make_config_corpus.sh). */
#include "adapt_config.h"
#include "dialog_policy.h"
#include "drift.h"
#include "evolve_config.h"
#include "fuzz_util.h"
#include "governance.h"
#include "plan.h"
#include "validate.h"
#include "yaml_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fuzz_die(const char *what) {
    fprintf(stderr, "fuzz_config: invariant violated: %s (%s)\n", what, seslm_last_error());
    abort();
}

static void check_failure(seslm_status st) {
    if (st == SESLM_OK) return;
    if (st != SESLM_ERR_FORMAT && st != SESLM_ERR_ARG && st != SESLM_ERR_IO && st != SESLM_ERR_NOMEM)
        fuzz_die("unexpected status");
    if (!seslm_last_error()[0]) fuzz_die("a failure without a message");
}

static void generic(const char *text, size_t n) {
    seslm_yaml *y = NULL;
    seslm_status st = seslm_yaml_load_string(&y, "fuzz.yaml", text, n);
    check_failure(st);
    if (st != SESLM_OK) return;
    static const char *const KEYS[] = {"a", "a.b", "a.0", "a.1", "b", "b.c.d", "version", "gates", "gates.0", ""};
    for (size_t k = 0; k < sizeof KEYS / sizeof KEYS[0]; k++) {
        double d;
        long long i;
        int b, line = 0;
        const char *s;
        (void)seslm_yaml_has(y, KEYS[k]);
        s = seslm_yaml_scalar(y, KEYS[k], &line);
        if (s && line < 1) fuzz_die("a scalar without a line");
        const int cnt = seslm_yaml_count(y, KEYS[k]);
        if (cnt < -1) fuzz_die("a negative count");
        check_failure(seslm_yaml_get_double(y, KEYS[k], -1e9, 1e9, 0, &d));
        check_failure(seslm_yaml_get_int(y, KEYS[k], -1000, 1000, 0, &i));
        check_failure(seslm_yaml_get_bool(y, KEYS[k], 0, &b));
        s = NULL;
        const seslm_status gs = seslm_yaml_get_string(y, KEYS[k], "", &s);
        check_failure(gs);
        if (gs == SESLM_OK && !s) fuzz_die("get_string gave NULL");
    }
    static const char *const ALLOWED[] = {"a", "a.*", "b.c", "version"};
    check_failure(seslm_yaml_check_keys(y, ALLOWED, 4));
    seslm_yaml_free(y);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int kind = data[0] % 8;
    const uint8_t *body = data + 1;
    const size_t n = size - 1;
    char *text = malloc(n + 1); // NUL-terminated for the loaders that take a C string
    if (!text) return 0;
    memcpy(text, body, n);
    text[n] = 0;
    seslm_status st = SESLM_OK;
    switch (kind) {
    case 0: generic(text, n); break;
    case 1: {
        seslm_policy p;
        seslm_policy_default(&p);
        st = seslm_policy_load_string(&p, text);
        check_failure(st);
        if (st == SESLM_OK) {
            if (!(p.cap > 0) || p.cap > SESLM_PLAN_HARD_CAP + 1e-12) fuzz_die("a policy with a cap outside (0, 0.40] loaded");
            for (int t = 0; t < p.n_targets; t++)
                if (!(p.targets[t] > 0) || p.targets[t] > p.cap + 1e-12) fuzz_die("a policy target outside (0, cap] loaded");
            seslm_model_config c;
            seslm_layer_config layers[6];
            fuzz_minilm(&c, layers);
            int prot[6];
            check_failure(seslm_policy_check_model(&p, &c, prot));
            check_failure(seslm_policy_undroppable(&p, &c, prot));
        }
        break;
    }
    case 2: {
        seslm_validate_config c;
        seslm_validate_config_default(&c);
        st = seslm_validate_config_load_string(&c, "fuzz.yaml", text, n);
        check_failure(st);
        seslm_validate_config_free(&c);
        break;
    }
    case 3: {
        seslm_dialog_policy p;
        memset(&p, 0, sizeof p);
        st = seslm_dialog_policy_load_string(&p, "fuzz.yaml", text, n);
        check_failure(st);
        seslm_dialog_policy_free(&p);
        break;
    }
    case 4: {
        seslm_evolve_config c;
        check_failure(seslm_evolve_config_load(&c, fuzz_write_file("config", "c.yaml", body, n)));
        break;
    }
    case 5: {
        seslm_drift_config c;
        seslm_drift_config_default(&c);
        check_failure(seslm_drift_config_load(&c, fuzz_write_file("config", "c.yaml", body, n)));
        break;
    }
    case 6: {
        seslm_governance g;
        check_failure(seslm_governance_load(&g, fuzz_write_file("config", "c.yaml", body, n)));
        break;
    }
    case 7: {
        adapt_config c;
        adapt_config_defaults(&c);
        check_failure(adapt_config_load(&c, fuzz_write_file("config", "c.yaml", body, n)));
        break;
    }
    }
    free(text);
    return 0;
}
