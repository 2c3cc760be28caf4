/* evolve_config.c — the evolve: section of the policy file (evolve_config.h). */
#include "evolve_config.h"
#include "recompile.h"

#include "plan.h"
#include "yaml_config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static seslm_status get_path(const seslm_yaml *y, const char *key, const char *def, char *out, size_t cap) {
    const char *v = NULL;
    seslm_status st = seslm_yaml_get_string(y, key, def, &v);
    if (st != SESLM_OK) return st;
    if (snprintf(out, cap, "%s", v) >= (int)cap)
        return seslm_fail(SESLM_ERR_FORMAT, "%s: %s: path too long", seslm_yaml_path(y), key);
    return SESLM_OK;
}

static seslm_status get_targets(const seslm_yaml *y, const char *key, const seslm_policy *pol, double *out, int *n,
                                const double *def, int n_def) {
    const int cnt = seslm_yaml_count(y, key);
    if (cnt < 0) return seslm_fail(SESLM_ERR_FORMAT, "%s: %s: expected a list of target ratios", seslm_yaml_path(y), key);
    if (cnt == 0) {
        memcpy(out, def, (size_t)n_def * sizeof *out);
        *n = n_def;
        return SESLM_OK;
    }
    if (cnt > SESLM_EVOLVE_MAX_CANDIDATES)
        return seslm_fail(SESLM_ERR_FORMAT, "%s: %s: at most %d candidates", seslm_yaml_path(y), key, SESLM_EVOLVE_MAX_CANDIDATES);
    for (int i = 0; i < cnt; i++) {
        char k[96];
        snprintf(k, sizeof k, "%s.%d", key, i);
        seslm_status st = seslm_yaml_get_double(y, k, 0.0, 0.40, 0.0, &out[i]);
        if (st != SESLM_OK) return st;
        int found = 0;
        for (int t = 0; t < pol->n_targets; t++) found |= fabs(pol->targets[t] - out[i]) < 1e-9;
        if (!found) {
            int line = 0;
            seslm_yaml_scalar(y, k, &line);
            return seslm_fail(SESLM_ERR_FORMAT, "%s:%d: %s: %g is not one of the policy's targets", seslm_yaml_path(y),
                              line, key, out[i]);
        }
    }
    *n = cnt;
    return SESLM_OK;
}

seslm_status seslm_evolve_config_load(seslm_evolve_config *c, const char *path) {
    memset(c, 0, sizeof *c);
    seslm_policy pol;
    seslm_status st = seslm_policy_load(&pol, path);
    if (st != SESLM_OK) return st;
    seslm_yaml *y = NULL;
    if ((st = seslm_yaml_load(&y, path)) != SESLM_OK) return st;
    static const char *const keys[] = {
        "evolve.model", "evolve.telemetry", "evolve.out", "evolve.calibration", "evolve.calibration_lines",
        "evolve.candidates", "evolve.candidates.*", "evolve.quantize", "evolve.embeddings", "evolve.exact_rows",
        "evolve.gates", "evolve.threads", "evolve.select", "evolve.drift", "evolve.drift.reference",
        "evolve.drift.config", "evolve.drift.micro_candidates", "evolve.drift.micro_candidates.*",
        "evolve.drift.micro_calibration", "evolve", "evolve.layer_candidates", "evolve.layer_candidates.*",
        "evolve.heldout_fraction", "evolve.root", "evolve.root_gates", "evolve.kb", "evolve.feedback", "evolve.distill",
        "evolve.distill.steps", "evolve.distill.batch", "evolve.distill.time_s", "evolve.distill.general",
        "evolve.distill.int8_aware", "evolve.adapt", "evolve.adapt.enabled", "evolve.adapt.config", "evolve.adapt.feedback",
        "evolve.intent", "evolve.intent.data", "evolve.intent.head",
        "drop_layers", "drop_layers.*",
        "evolve.decoder", "evolve.decoder.drop_layers", "evolve.decoder.drop_layers.*", "evolve.decoder.embd_type",
        "evolve.decoder.layer_type",
        "evolve.decoder.heal_steps", "evolve.decoder.distill_steps", "evolve.decoder.distill_lr",
        "evolve.decoder.distill_special", "evolve.decoder.distill_answer_tokens", "evolve.decoder.distill_seq", "evolve.decoder.choice_prompts",
        "evolve.decoder.distill_prompts", "evolve.decoder.distill_text_share", "evolve.decoder.distill_minutes", "evolve.decoder.max_ppl_increase", "evolve.decoder.max_bytes_ratio",
        "evolve.decoder.max_latency_ratio", "evolve.decoder.rounds", "evolve.decoder.grounded", "evolve.decoder.heldout_lines",
        // the policy's own keys (plan.c checks them)
        "version", "targets", "targets.*", "cap", "protected_layers", "protected_layers.*", "never_drop", "never_drop.*", "min_heads", "min_ffn",
        "score", "score.*", "profile", "profile.*"};
    st = seslm_yaml_check_keys(y, keys, (int)(sizeof keys / sizeof keys[0]));
    long long v = 0;
    const char *s = NULL;
    if (st == SESLM_OK) st = get_path(y, "evolve.model", "models/all-MiniLM-L6-v2", c->model, sizeof c->model);
    if (st == SESLM_OK) st = get_path(y, "evolve.telemetry", "runs/telemetry", c->telemetry, sizeof c->telemetry);
    if (st == SESLM_OK) st = get_path(y, "evolve.out", "runs/evolve", c->out, sizeof c->out);
    if (st == SESLM_OK) st = get_path(y, "evolve.calibration", "", c->calibration, sizeof c->calibration);
    if (st == SESLM_OK && (st = seslm_yaml_get_int(y, "evolve.calibration_lines", 1, 1000000, 400, &v)) == SESLM_OK)
        c->calibration_lines = (int)v;
    if (st == SESLM_OK) st = get_targets(y, "evolve.candidates", &pol, c->candidates, &c->n_candidates, pol.targets, pol.n_targets);
    if (st == SESLM_OK && (st = seslm_yaml_get_string(y, "evolve.quantize", "int8", &s)) == SESLM_OK) {
        if (strcmp(s, "int8") && strcmp(s, "none"))
            st = seslm_fail(SESLM_ERR_FORMAT, "%s: evolve.quantize: expected int8 or none, got '%s'", path, s);
        c->quantize = strcmp(s, "int8") == 0;
    }
    if (st == SESLM_OK && (st = seslm_yaml_get_string(y, "evolve.embeddings", "int8", &s)) == SESLM_OK) {
        const int e = seslm_embeddings_parse(s);
        if (e < 0)
            st = seslm_fail(SESLM_ERR_FORMAT, "%s: evolve.embeddings: expected int8, int4, pq8, pq4 or f32, got '%s'", path, s);
        c->embeddings_int8 = e; // recompile.h SESLM_EMB_*
    }
    const int nl = seslm_yaml_count(y, "evolve.layer_candidates");
    if (st == SESLM_OK && (nl < 0 || nl > SESLM_EVOLVE_MAX_CANDIDATES))
        st = seslm_fail(SESLM_ERR_FORMAT, "%s: evolve.layer_candidates: expected a list of at most %d layer counts", path,
                        SESLM_EVOLVE_MAX_CANDIDATES);
    for (int i = 0; st == SESLM_OK && i < nl; i++) {
        char k[64];
        snprintf(k, sizeof k, "evolve.layer_candidates.%d", i);
        if ((st = seslm_yaml_get_int(y, k, 1, 1000, 1, &v)) == SESLM_OK) c->layer_candidates[i] = (int)v;
    }
    if (st == SESLM_OK) c->n_layer_candidates = nl;
    if (st == SESLM_OK) st = seslm_yaml_get_double(y, "evolve.heldout_fraction", 0.0, 0.5, 0.2, &c->heldout_fraction);
    if (st == SESLM_OK) st = get_path(y, "evolve.root", "", c->root, sizeof c->root);
    if (st == SESLM_OK) st = get_path(y, "evolve.root_gates", "", c->root_gates, sizeof c->root_gates);
    if (st == SESLM_OK) st = get_path(y, "evolve.kb", "", c->kb, sizeof c->kb);
    if (st == SESLM_OK) st = get_path(y, "evolve.feedback", "", c->feedback, sizeof c->feedback);
    if (st == SESLM_OK && (st = seslm_yaml_get_int(y, "evolve.distill.steps", 0, 10000000, 0, &v)) == SESLM_OK)
        c->distill_steps = (int)v;
    if (st == SESLM_OK && (st = seslm_yaml_get_int(y, "evolve.distill.batch", 2, 4096, 32, &v)) == SESLM_OK)
        c->distill_batch = (int)v;
    if (st == SESLM_OK) st = seslm_yaml_get_double(y, "evolve.distill.time_s", 0.0, 1e7, 0.0, &c->distill_time_s);
    if (st == SESLM_OK) st = seslm_yaml_get_double(y, "evolve.distill.int8_aware", 0.0, 1.0, 0.3, &c->distill_int8_aware);
    if (st == SESLM_OK) st = get_path(y, "evolve.distill.general", "", c->distill_general, sizeof c->distill_general);
    if (st == SESLM_OK && (st = seslm_yaml_get_int(y, "evolve.exact_rows", 0, 10000000, 1000, &v)) == SESLM_OK)
        c->exact_rows = (int)v;
    if (st == SESLM_OK) st = get_path(y, "evolve.gates", "configs/gates.yaml", c->gates, sizeof c->gates);
    if (st == SESLM_OK && (st = seslm_yaml_get_int(y, "evolve.threads", 0, 1024, 0, &v)) == SESLM_OK) c->threads = (int)v;
    if (st == SESLM_OK) st = get_path(y, "evolve.select", "weight_bytes", c->select, sizeof c->select);
    if (st == SESLM_OK) st = get_path(y, "evolve.drift.reference", "", c->drift_reference, sizeof c->drift_reference);
    if (st == SESLM_OK) st = get_path(y, "evolve.drift.config", "configs/drift.yaml", c->drift_config, sizeof c->drift_config);
    if (st == SESLM_OK) st = get_path(y, "evolve.drift.micro_calibration", "", c->micro_calibration, sizeof c->micro_calibration);
    if (st == SESLM_OK) {
        const double def = c->n_candidates ? c->candidates[0] : 0.1;
        st = get_targets(y, "evolve.drift.micro_candidates", &pol, c->micro_candidates, &c->n_micro, &def, 1);
    }
    if (st == SESLM_OK) st = seslm_yaml_get_bool(y, "evolve.adapt.enabled", 0, &c->adapt_enabled);
    if (st == SESLM_OK) st = get_path(y, "evolve.adapt.config", "configs/adapt.yaml", c->adapt_config, sizeof c->adapt_config);
    if (st == SESLM_OK) st = get_path(y, "evolve.adapt.feedback", "", c->adapt_feedback, sizeof c->adapt_feedback);
    if (st == SESLM_OK) st = get_path(y, "evolve.intent.data", "", c->intent_data, sizeof c->intent_data);
    if (st == SESLM_OK) st = get_path(y, "evolve.intent.head", "", c->intent_head, sizeof c->intent_head);
    // the decoder cycle
    const int nd = seslm_yaml_count(y, "evolve.decoder.drop_layers");
    if (st == SESLM_OK && (nd < 0 || nd > SESLM_EVOLVE_MAX_CANDIDATES))
        st = seslm_fail(SESLM_ERR_FORMAT, "%s: evolve.decoder.drop_layers: expected a list of at most %d layer counts", path,
                        SESLM_EVOLVE_MAX_CANDIDATES);
    for (int i = 0; st == SESLM_OK && i < nd; i++) {
        char k[64];
        snprintf(k, sizeof k, "evolve.decoder.drop_layers.%d", i);
        if ((st = seslm_yaml_get_int(y, k, 1, 1000, 1, &v)) == SESLM_OK) c->dec_drop[i] = (int)v;
    }
    if (st == SESLM_OK) {
        c->n_dec_drop = nd ? nd : 2;
        if (!nd) c->dec_drop[0] = 2, c->dec_drop[1] = 3;
    }
    if (st == SESLM_OK && (st = seslm_yaml_get_string(y, "evolve.decoder.embd_type", "q4_1", &s)) == SESLM_OK) {
        if (strcmp(s, "keep") && strcmp(s, "q8_0") && strcmp(s, "q4_1") && strcmp(s, "q4_0"))
            st = seslm_fail(SESLM_ERR_FORMAT, "%s: evolve.decoder.embd_type: expected keep, q8_0, q4_1 or q4_0, got '%s'", path, s);
        else snprintf(c->dec_embd_type, sizeof c->dec_embd_type, "%s", s);
    }
    if (st == SESLM_OK && (st = seslm_yaml_get_string(y, "evolve.decoder.layer_type", "keep", &s)) == SESLM_OK) {
        if (strcmp(s, "keep") && strcmp(s, "q8_0") && strcmp(s, "q4_1") && strcmp(s, "q4_0"))
            st = seslm_fail(SESLM_ERR_FORMAT, "%s: evolve.decoder.layer_type: expected keep, q8_0, q4_1 or q4_0, got '%s'", path, s);
        else snprintf(c->dec_layer_type, sizeof c->dec_layer_type, "%s", s);
    }
    if (st == SESLM_OK && (st = seslm_yaml_get_int(y, "evolve.decoder.heal_steps", 0, 1000000, 300, &v)) == SESLM_OK)
        c->dec_heal_steps = (int)v;
    if (st == SESLM_OK && (st = seslm_yaml_get_int(y, "evolve.decoder.distill_steps", 0, 1000000, 0, &v)) == SESLM_OK)
        c->dec_distill_steps = (int)v;
    if (st == SESLM_OK) st = seslm_yaml_get_double(y, "evolve.decoder.distill_lr", 1e-8, 1.0, 1e-4, &c->dec_distill_lr);
    if (st == SESLM_OK) st = seslm_yaml_get_bool(y, "evolve.decoder.distill_special", 0, &c->dec_distill_special);
    if (st == SESLM_OK && (st = seslm_yaml_get_int(y, "evolve.decoder.distill_answer_tokens", -1, 4096, -1, &v)) == SESLM_OK)
        c->dec_distill_answer = (int)v;
    if (st == SESLM_OK && (st = seslm_yaml_get_int(y, "evolve.decoder.distill_seq", 0, 4096, 0, &v)) == SESLM_OK)
        c->dec_distill_seq = (int)v;
    if (st == SESLM_OK && (st = seslm_yaml_get_int(y, "evolve.decoder.choice_prompts", 0, 1000000, 32, &v)) == SESLM_OK)
        c->dec_choice_prompts = (int)v;
    if (st == SESLM_OK)
        st = get_path(y, "evolve.decoder.distill_prompts", "", c->dec_distill_prompts, sizeof c->dec_distill_prompts);
    if (st == SESLM_OK) st = seslm_yaml_get_double(y, "evolve.decoder.distill_text_share", 0.0, 0.999, 0.0, &c->dec_distill_text_share);
    if (st == SESLM_OK) st = seslm_yaml_get_double(y, "evolve.decoder.distill_minutes", 0.0, 1e6, 0.0, &c->dec_distill_minutes);
    if (st == SESLM_OK) st = seslm_yaml_get_double(y, "evolve.decoder.max_ppl_increase", 0.0, 100.0, 0.05, &c->dec_max_ppl_increase);
    if (st == SESLM_OK) st = seslm_yaml_get_double(y, "evolve.decoder.max_bytes_ratio", 0.0, 10.0, 0.70, &c->dec_max_bytes_ratio);
    if (st == SESLM_OK) st = seslm_yaml_get_double(y, "evolve.decoder.max_latency_ratio", 0.0, 10.0, 0.80, &c->dec_max_latency_ratio);
    if (st == SESLM_OK && (st = seslm_yaml_get_int(y, "evolve.decoder.rounds", 1, 1000, 5, &v)) == SESLM_OK) c->dec_rounds = (int)v;
    if (st == SESLM_OK && (st = seslm_yaml_get_int(y, "evolve.decoder.heldout_lines", 1, 10000000, 300, &v)) == SESLM_OK)
        c->dec_heldout_lines = (int)v;
    if (st == SESLM_OK) st = seslm_yaml_get_bool(y, "evolve.decoder.grounded", 1, &c->dec_grounded);
    seslm_yaml_free(y);
    return st;
}
