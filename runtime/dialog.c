/* dialog.c — session state and the decision rules of dialog.h. */
#include "dialog.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char id[65];
    uint64_t used;
    seslm_dialog_state st;
} session;

struct seslm_dialog {
    seslm_dialog_policy p;
    pthread_mutex_t mu;
    session *s;
    int n, cap;
    uint64_t clock;
};

static int name_ok(const char *s, int allow_empty) {
    size_t n = strlen(s);
    if (n == 0) return allow_empty;
    if (n >= SESLM_DIALOG_NAME) return 0;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c < 0x21 || *c == 0x7f) return 0;
    return 1;
}

seslm_status seslm_dialog_new(seslm_dialog **out, const seslm_dialog_policy *p) {
    *out = NULL;
    if (p->n_goals < 0 || (p->n_goals && !p->goals)) return seslm_fail(SESLM_ERR_ARG, "dialog policy: bad goal list");
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
    pthread_mutex_init(&d->mu, NULL);
    *out = d;
    return SESLM_OK;
}

void seslm_dialog_free(seslm_dialog *d) {
    if (!d) return;
    pthread_mutex_destroy(&d->mu);
    free(d->p.goals);
    free(d->s);
    free(d);
}

static const seslm_dialog_goal *find_goal(const seslm_dialog *d, const char *intent) {
    for (int i = 0; intent && *intent && i < d->p.n_goals; i++)
        if (strcmp(d->p.goals[i].intent, intent) == 0) return &d->p.goals[i];
    return NULL;
}

/* The session's state, created when new (mu held); NULL when out of memory. */
static session *get_session(seslm_dialog *d, const char *id) {
    for (int i = 0; i < d->n; i++)
        if (strcmp(d->s[i].id, id) == 0) return &d->s[i];
    if (d->n == d->p.max_sessions) { // evict the least recently used
        int lru = 0;
        for (int i = 1; i < d->n; i++)
            if (d->s[i].used < d->s[lru].used) lru = i;
        d->s[lru] = d->s[--d->n];
    }
    if (d->n == d->cap) {
        int cap = d->cap ? 2 * d->cap : 16;
        session *ns = realloc(d->s, (size_t)cap * sizeof *ns);
        if (!ns) return NULL;
        d->s = ns;
        d->cap = cap;
    }
    session *s = &d->s[d->n++];
    memset(s, 0, sizeof *s);
    snprintf(s->id, sizeof s->id, "%s", id);
    snprintf(s->st.step, sizeof s->st.step, "initial");
    return s;
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

seslm_status seslm_dialog_step(seslm_dialog *d, const char *session_id, const char *intent, double confidence,
                               const char *const *slot_keys, const char *const *slot_values, int n_slots,
                               seslm_dialog_decision *out) {
    memset(out, 0, sizeof *out);
    if (!session_id || !session_id_ok(session_id))
        return seslm_fail(SESLM_ERR_ARG, "session id must be 1..64 characters of A-Z a-z 0-9 . _ -");
    if (n_slots < 0 || n_slots > SESLM_DIALOG_MAX_SLOTS)
        return seslm_fail(SESLM_ERR_ARG, "at most %d slots per turn", SESLM_DIALOG_MAX_SLOTS);
    for (int i = 0; i < n_slots; i++)
        if (!slot_keys[i] || !slot_values[i] || !name_ok(slot_keys[i], 0) || strlen(slot_values[i]) >= SESLM_DIALOG_VALUE)
            return seslm_fail(SESLM_ERR_ARG, "slot %d: a name of 1..%d printable characters and a value under %d bytes", i,
                              SESLM_DIALOG_NAME - 1, SESLM_DIALOG_VALUE);
    pthread_mutex_lock(&d->mu);
    session *s = get_session(d, session_id);
    if (!s) {
        pthread_mutex_unlock(&d->mu);
        return seslm_fail(SESLM_ERR_NOMEM, "out of memory");
    }
    s->used = ++d->clock;
    seslm_dialog_state *st = &s->st;
    st->turns++;
    const int usable = intent && *intent && confidence >= d->p.min_confidence;
    if (usable) snprintf(st->last_intent, sizeof st->last_intent, "%s", intent);
    const char *action = "clarify";
    int ended = 0;
    const seslm_dialog_goal *g = find_goal(d, st->goal);
    const seslm_dialog_goal *ng = usable ? find_goal(d, intent) : NULL;
    if (usable && d->p.end_intent[0] && strcmp(intent, d->p.end_intent) == 0) {
        action = "end";
        ended = 1;
    } else {
        if (ng && (ng != g || strcmp(st->step, "done") == 0)) { // a new goal (or the same one again)
            g = ng;
            snprintf(st->goal, sizeof st->goal, "%s", g->intent);
            st->n_filled = 0;
            snprintf(st->step, sizeof st->step, "initial");
        }
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
            if (strcmp(st->step, "done") == 0 && !ng) {
                action = "clarify"; // the goal was served; a new request must name one
            } else if (st->n_missing) {
                action = "ask_missing_info";
                snprintf(out->ask, sizeof out->ask, "%s", st->missing[0]);
                snprintf(st->step, sizeof st->step, "waiting_for_%.40s", st->missing[0]);
            } else if (g->confirm && !confirmed) {
                action = "confirm";
                snprintf(st->step, sizeof st->step, "awaiting_confirmation");
            } else {
                action = g->action;
                snprintf(st->step, sizeof st->step, "done");
                ended = strcmp(action, "end") == 0;
            }
        }
    }
    snprintf(out->action, sizeof out->action, "%s", action);
    out->state = *st;
    out->ended = ended;
    if (ended) *s = d->s[--d->n]; // forget the session
    pthread_mutex_unlock(&d->mu);
    return SESLM_OK;
}
