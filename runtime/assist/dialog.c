/* dialog.c — session state and the decision rules of dialog.h. */
#include "dialog.h"
#include "util.h"
#include "dialog_store.h"

#include <pthread.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct seslm_dialog {
    seslm_dialog_policy p;
    pthread_mutex_t mu; // guards the store's one connection and seq
    dialog_store *store;
    long long ttl_s;    // 0: sessions never expire
    long long fixed_now; // seslm_dialog_set_time; 0: the wall clock
    long long seq;      // last use order, for LRU eviction (continues from the store's after a restart)
};

static int name_ok(const char *s, int allow_empty) {
    size_t n = strlen(s);
    if (n == 0) return allow_empty;
    if (n >= SESLM_DIALOG_NAME) return 0;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c < 0x21 || *c == 0x7f) return 0;
    return 1;
}

/* A slot value is what a user said: valid UTF-8, no control characters (C0, DEL, C1), some text. */
static int value_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n >= SESLM_DIALOG_VALUE || !util_utf8_valid(s, n) || strspn(s, " \t") == n) return 0;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c < 0x20 || *c == 0x7f || (c[0] == 0xc2 && c[1] >= 0x80 && c[1] <= 0x9f)) return 0;
    return 1;
}

seslm_status seslm_dialog_new(seslm_dialog **out, const seslm_dialog_policy *p) { return seslm_dialog_open(out, p, NULL, 0); }

seslm_status seslm_dialog_open(seslm_dialog **out, const seslm_dialog_policy *p, const char *db_path, long long ttl_s) {
    *out = NULL;
    if (ttl_s < 0) return seslm_fail(SESLM_ERR_ARG, "session TTL must be >= 0 seconds (0: never expire)");
    if (p->learn && (p->learn_min_count < 1 || !(p->learn_prior_success > 0) || !(p->learn_prior_failure > 0)))
        return seslm_fail(SESLM_ERR_ARG, "dialog policy: learning needs min_count >= 1 and positive prior counts");
    if (p->n_goals < 0 || (p->n_goals && !p->goals)) return seslm_fail(SESLM_ERR_ARG, "dialog policy: bad goal list");
    if (p->n_clarify_alternatives < 0 || p->n_clarify_alternatives > SESLM_DIALOG_MAX_ALTERNATIVES)
        return seslm_fail(SESLM_ERR_ARG, "dialog policy: at most %d clarify alternatives", SESLM_DIALOG_MAX_ALTERNATIVES);
    for (int k = 0; k < p->n_clarify_alternatives; k++)
        if (!name_ok(p->clarify_alternatives[k], 0))
            return seslm_fail(SESLM_ERR_ARG, "dialog policy: bad clarify alternative action name");
    if (!(p->min_confidence >= 0 && p->min_confidence <= 1))
        return seslm_fail(SESLM_ERR_ARG, "dialog policy: min_confidence must be in [0, 1]");
    if (!name_ok(p->confirm_intent, 1) || !name_ok(p->deny_intent, 1) || !name_ok(p->end_intent, 1))
        return seslm_fail(SESLM_ERR_ARG, "dialog policy: confirm / deny / end intent names must be printable words");
    for (int i = 0; i < p->n_goals; i++) {
        const seslm_dialog_goal *g = &p->goals[i];
        if (!name_ok(g->intent, 0) || !name_ok(g->action, 0))
            return seslm_fail(SESLM_ERR_ARG, "dialog policy: goal %d needs an intent and an action", i);
        if (g->n_slots < 0 || g->n_slots > SESLM_DIALOG_MAX_SLOTS)
            return seslm_fail(SESLM_ERR_ARG, "dialog policy: goal '%s' has more than %d slots", g->intent, SESLM_DIALOG_MAX_SLOTS);
        for (int k = 0; k < g->n_slots; k++)
            if (!name_ok(g->slots[k], 0)) return seslm_fail(SESLM_ERR_ARG, "dialog policy: goal '%s': bad slot name", g->intent);
        if (g->n_alternatives < 0 || g->n_alternatives > SESLM_DIALOG_MAX_ALTERNATIVES)
            return seslm_fail(SESLM_ERR_ARG, "dialog policy: goal '%s' has more than %d alternatives", g->intent,
                              SESLM_DIALOG_MAX_ALTERNATIVES);
        for (int k = 0; k < g->n_alternatives; k++)
            if (!name_ok(g->alternatives[k], 0))
                return seslm_fail(SESLM_ERR_ARG, "dialog policy: goal '%s': bad alternative action name", g->intent);
        if (g->confirm < 0 || g->confirm > 2 || g->n_ask_alternatives < 0 || g->n_ask_alternatives > SESLM_DIALOG_MAX_ALTERNATIVES)
            return seslm_fail(SESLM_ERR_ARG, "dialog policy: goal '%s': bad confirm mode or ask alternatives", g->intent);
        for (int k = 0; k < g->n_ask_alternatives; k++)
            if (!name_ok(g->ask_alternatives[k], 0) || strcmp(g->ask_alternatives[k], g->action) == 0)
                return seslm_fail(SESLM_ERR_ARG,
                                  "dialog policy: goal '%s': ask alternative '%s' is not a valid action other than the goal's",
                                  g->intent, g->ask_alternatives[k]);
        for (int j = 0; j < i; j++)
            if (strcmp(p->goals[j].intent, g->intent) == 0)
                return seslm_fail(SESLM_ERR_ARG, "dialog policy: intent '%s' starts two goals", g->intent);
    }
    seslm_dialog *d = calloc(1, sizeof *d);
    if (!d) return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    d->p = *p;
    if (d->p.max_sessions <= 0) d->p.max_sessions = 10000;
    d->p.goals = p->n_goals ? malloc((size_t)p->n_goals * sizeof *p->goals) : NULL;
    if (p->n_goals && !d->p.goals) {
        free(d);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    if (p->n_goals) memcpy(d->p.goals, p->goals, (size_t)p->n_goals * sizeof *p->goals);
    d->ttl_s = ttl_s;
    seslm_status st = dialog_store_open(&d->store, db_path);
    if (st == SESLM_OK) st = dialog_store_max_seq(d->store, &d->seq);
    if (st != SESLM_OK) {
        dialog_store_close(d->store);
        free(d->p.goals);
        free(d);
        return st;
    }
    pthread_mutex_init(&d->mu, NULL);
    *out = d;
    return SESLM_OK;
}

static long long now_s(const seslm_dialog *d) { return d->fixed_now ? d->fixed_now : (long long)time(NULL); }

void seslm_dialog_set_time(seslm_dialog *d, long long now) {
    pthread_mutex_lock(&d->mu);
    d->fixed_now = now;
    pthread_mutex_unlock(&d->mu);
}

void seslm_dialog_free(seslm_dialog *d) {
    if (!d) return;
    pthread_mutex_destroy(&d->mu);
    dialog_store_close(d->store);
    free(d->p.goals);
    free(d);
}

static const seslm_dialog_goal *find_goal(const seslm_dialog *d, const char *intent) {
    for (int i = 0; intent && *intent && i < d->p.n_goals; i++)
        if (strcmp(d->p.goals[i].intent, intent) == 0) return &d->p.goals[i];
    return NULL;
}

static void set_slot(seslm_dialog_state *st, const char *k, const char *v) {
    for (int i = 0; i < st->n_filled; i++)
        if (strcmp(st->filled_key[i], k) == 0) {
            snprintf(st->filled_value[i], SESLM_DIALOG_VALUE, "%s", v);
            return;
        }
    if (st->n_filled == SESLM_DIALOG_MAX_SLOTS) return;
    snprintf(st->filled_key[st->n_filled], SESLM_DIALOG_NAME, "%s", k);
    snprintf(st->filled_value[st->n_filled], SESLM_DIALOG_VALUE, "%s", v);
    st->n_filled++;
}

static int has_slot(const seslm_dialog_state *st, const char *k) {
    for (int i = 0; i < st->n_filled; i++)
        if (strcmp(st->filled_key[i], k) == 0) return 1;
    return 0;
}

static int session_id_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 64) return 0;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' ||
              *c == '-'))
            return 0;
    return 1;
}

/* Among a decision point's default action and the alternatives the policy allows there, the one with the
 * best smoothed success rate in this state: (successes + a) / (n + a + b) for an action with at least
 * min_count outcomes here, the prior mean a / (a + b) otherwise (too little evidence to count). Ties go
 * to the default, then to the listed order, so with no evidence the policy decides, and an alternative
 * is tried only once the default has done worse than the prior, or the alternative has done better.
 * goal_key is the state's goal ("" for none): outcomes are counted per (goal, intent, step, missing). */
static seslm_status choose_among(seslm_dialog *d, const char *goal_key, const char *intent, const char *step,
                                 int n_missing, const char *def, const char (*alts)[SESLM_DIALOG_NAME], int n_alts,
                                 const char **action) {
    *action = def;
    if (!d->p.learn || n_alts == 0) return SESLM_OK;
    const double a = d->p.learn_prior_success, b = d->p.learn_prior_failure;
    double best = -1;
    for (int i = -1; i < n_alts; i++) {
        const char *act = i < 0 ? def : alts[i];
        long long n = 0, ok = 0;
        seslm_status st = dialog_store_stats(d->store, goal_key, intent, step, n_missing, act, &n, &ok);
        if (st != SESLM_OK) return st;
        const double rate = n >= d->p.learn_min_count ? ((double)ok + a) / ((double)n + a + b) : a / (a + b);
        if (rate > best) {
            best = rate;
            *action = act;
        }
    }
    return SESLM_OK;
}

/* The turn's rules on st (loaded or new); fills out->action / ask / policy_action and *ended. */
static seslm_status decide(seslm_dialog *d, seslm_dialog_state *st, const char *intent, double confidence,
                           const char *const *slot_keys, const char *const *slot_values, int n_slots,
                           seslm_dialog_decision *out, char *log_step) {
    st->turns++;
    const int usable = intent && *intent && confidence >= d->p.min_confidence;
    if (usable) snprintf(st->last_intent, sizeof st->last_intent, "%s", intent);
    const char *action = "clarify", *policy_action = NULL;
    int ended = 0, clarify = 0;
    const seslm_dialog_goal *g = find_goal(d, st->goal);
    const seslm_dialog_goal *ng = usable ? find_goal(d, intent) : NULL;
    if (usable && d->p.end_intent[0] && strcmp(intent, d->p.end_intent) == 0) {
        action = "end";
        ended = 1;
        snprintf(log_step, SESLM_DIALOG_NAME, "%s", st->step);
    } else {
        if (ng && (ng != g || strcmp(st->step, "done") == 0)) { // a new goal (or the same one again)
            g = ng;
            snprintf(st->goal, sizeof st->goal, "%s", g->intent);
            st->n_filled = 0;
            snprintf(st->step, sizeof st->step, "initial");
        }
        snprintf(log_step, SESLM_DIALOG_NAME, "%s", st->step); // the state the action is taken in
        if (!g) st->n_missing = 0, clarify = 1;
        if (g) {
            for (int i = 0; i < n_slots; i++)
                for (int k = 0; k < g->n_slots; k++)
                    if (strcmp(slot_keys[i], g->slots[k]) == 0) set_slot(st, slot_keys[i], slot_values[i]);
            int confirmed = 0;
            if (usable && strcmp(st->step, "awaiting_confirmation") == 0) {
                if (d->p.confirm_intent[0] && strcmp(intent, d->p.confirm_intent) == 0) confirmed = 1;
                else if (d->p.deny_intent[0] && strcmp(intent, d->p.deny_intent) == 0) st->n_filled = 0; // ask again
            }
            st->n_missing = 0;
            for (int k = 0; k < g->n_slots; k++)
                if (!has_slot(st, g->slots[k])) snprintf(st->missing[st->n_missing++], SESLM_DIALOG_NAME, "%s", g->slots[k]);
            const char *lintent = usable ? intent : "";
            int need_confirm = g->confirm && !confirmed;
            if (need_confirm && g->confirm == 2 && !st->n_missing && strcmp(st->step, "done") != 0) {
                // confirm: optional -> confirming or acting at once is learned (confirming by default)
                const char *act = NULL;
                seslm_status r = choose_among(d, g->intent, lintent, log_step, 0, "confirm",
                                              (const char(*)[SESLM_DIALOG_NAME])g->action, 1, &act);
                if (r != SESLM_OK) return r;
                need_confirm = strcmp(act, "confirm") == 0;
                policy_action = "confirm";
            }
            if (strcmp(st->step, "done") == 0 && !ng) {
                clarify = 1; // the goal was served; a new request must name one
            } else if (st->n_missing) {
                // a required slot is missing: ask for it, or an allowed alternative (never the goal's action)
                policy_action = "ask_missing_info";
                seslm_status r = choose_among(d, g->intent, lintent, log_step, st->n_missing, "ask_missing_info",
                                              (const char(*)[SESLM_DIALOG_NAME])g->ask_alternatives,
                                              g->n_ask_alternatives, &action);
                if (r != SESLM_OK) return r;
                if (strcmp(action, "ask_missing_info") == 0) snprintf(out->ask, sizeof out->ask, "%s", st->missing[0]);
                snprintf(st->step, sizeof st->step, "waiting_for_%.40s", st->missing[0]);
            } else if (need_confirm) {
                action = "confirm";
                snprintf(st->step, sizeof st->step, "awaiting_confirmation");
            } else {
                if (!policy_action) policy_action = g->action;
                seslm_status r = choose_among(d, g->intent, lintent, log_step, st->n_missing, g->action,
                                              (const char(*)[SESLM_DIALOG_NAME])g->alternatives, g->n_alternatives,
                                              &action);
                if (r != SESLM_OK) return r;
                snprintf(st->step, sizeof st->step, "done");
                ended = strcmp(action, "end") == 0;
            }
        }
    }
    if (clarify) { // no goal to pursue: clarify, or an alternative the policy allows (e.g. a hand-off)
        policy_action = "clarify";
        seslm_status r = choose_among(d, st->goal, usable ? intent : "", log_step, st->n_missing, "clarify",
                                      (const char(*)[SESLM_DIALOG_NAME])d->p.clarify_alternatives,
                                      d->p.n_clarify_alternatives, &action);
        if (r != SESLM_OK) return r;
    }
    snprintf(out->action, sizeof out->action, "%s", action);
    snprintf(out->policy_action, sizeof out->policy_action, "%s", policy_action ? policy_action : action);
    snprintf(st->last_action, sizeof st->last_action, "%s", action);
    out->ended = ended;
    return SESLM_OK;
}

seslm_status seslm_dialog_step(seslm_dialog *d, const char *session_id, const char *intent, double confidence,
                               const char *const *slot_keys, const char *const *slot_values, int n_slots,
                               seslm_dialog_decision *out) {
    memset(out, 0, sizeof *out);
    if (!session_id || !session_id_ok(session_id))
        return seslm_fail(SESLM_ERR_ARG, "session id must be 1..64 characters of A-Z a-z 0-9 . _ -");
    if (n_slots < 0 || n_slots > SESLM_DIALOG_MAX_SLOTS)
        return seslm_fail(SESLM_ERR_ARG, "at most %d slots per turn", SESLM_DIALOG_MAX_SLOTS);
    for (int i = 0; i < n_slots; i++)
        if (!slot_keys[i] || !slot_values[i] || !name_ok(slot_keys[i], 0) || !value_ok(slot_values[i]))
            return seslm_fail(SESLM_ERR_ARG,
                              "slot %d: a name of 1..%d printable characters and a value of 1..%d bytes of UTF-8 text "
                              "without control characters, not only white space", i, SESLM_DIALOG_NAME - 1,
                              SESLM_DIALOG_VALUE - 1);
    pthread_mutex_lock(&d->mu);
    const long long now = now_s(d);
    seslm_dialog_state st;
    char log_step[SESLM_DIALOG_NAME] = "";
    int found = 0;
    // the whole turn is one transaction: the new state and its transition are committed together,
    // before the caller answers, or (on any failure) nothing of the turn is kept
    seslm_status r = dialog_store_begin(d->store);
    if (r == SESLM_OK && d->ttl_s > 0) r = dialog_store_expire(d->store, now - d->ttl_s);
    if (r == SESLM_OK) r = dialog_store_load(d->store, session_id, &st, &found);
    if (r == SESLM_OK && !found) {
        memset(&st, 0, sizeof st);
        snprintf(st.step, sizeof st.step, "initial");
        long long n = 0;
        r = dialog_store_count(d->store, &n);
        for (; r == SESLM_OK && n >= d->p.max_sessions; n--) r = dialog_store_evict_lru(d->store);
    }
    if (r == SESLM_OK) r = decide(d, &st, intent, confidence, slot_keys, slot_values, n_slots, out, log_step);
    const int usable = intent && *intent && confidence >= d->p.min_confidence;
    if (r == SESLM_OK)
        r = dialog_store_log(d->store, session_id, now, st.goal, usable ? intent : "", log_step, st.n_missing, out->action);
    if (r == SESLM_OK) r = out->ended ? dialog_store_delete(d->store, session_id)
                                      : dialog_store_save(d->store, session_id, &st, now, ++d->seq);
    if (r == SESLM_OK) r = dialog_store_commit(d->store);
    if (r != SESLM_OK) dialog_store_rollback(d->store);
    pthread_mutex_unlock(&d->mu);
    if (r == SESLM_OK) out->state = st;
    else memset(out, 0, sizeof *out);
    return r;
}

seslm_status seslm_dialog_outcome(seslm_dialog *d, const char *session, int success, char *action) {
    action[0] = 0;
    if (!session || !session_id_ok(session))
        return seslm_fail(SESLM_ERR_ARG, "session id must be 1..64 characters of A-Z a-z 0-9 . _ -");
    pthread_mutex_lock(&d->mu);
    seslm_status r = dialog_store_begin(d->store);
    if (r == SESLM_OK) r = dialog_store_set_outcome(d->store, session, success, action);
    if (r == SESLM_OK) r = dialog_store_commit(d->store);
    if (r != SESLM_OK) dialog_store_rollback(d->store);
    pthread_mutex_unlock(&d->mu);
    return r;
}
