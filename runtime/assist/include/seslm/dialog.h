/* dialog.h — per-session conversation state and a rule-based decision engine (seed 002's "state
 * manager" and "decision engine"). The policy is data (configs/dialog.yaml, loaded by
 * runtime/assist/dialog_policy.c); this module only applies it:
 *
 *   intent (or out of scope) + slots the caller extracted  ->  session state  ->  action
 *
 * Actions: "clarify" (no usable intent and no goal in progress), "ask_missing_info" (the goal's first
 * missing slot is named), "confirm" (all slots filled and the goal asks for confirmation),
 * the goal's own action once confirmed or when no confirmation is needed (e.g. "fetch_data"), and
 * "end" (the end intent, or a goal whose action is "end"; the session is then forgotten).
 *
 * Sessions live in an SQLite store (runtime/assist/dialog_store.c): in memory by default, or a file given to
 * seslm_dialog_open, where every turn's state change is committed before seslm_dialog_step returns (a
 * restart loses no session). Up to max_sessions are kept (least recently used evicted) and sessions idle
 * longer than the TTL expire. Every turn is logged as a transition (goal, intent, step, missing-slot
 * count -> action); seslm_dialog_outcome marks a session's last action a success or a failure, and where
 * the policy allows alternatives, the engine picks the one with the best smoothed success rate in that
 * state (learning.* in the policy; the policy's choice until there is evidence) at four decision points:
 * clarify (`clarify_alternatives`), asking for a missing slot (a goal's `ask_alternatives`), confirming
 * (a goal with `confirm: optional` may act without confirming) and the goal's action (`alternatives`).
 * The rules stay hard limits: only listed actions are chosen, a goal's action never runs with a required
 * slot missing, and `confirm: true` is never skipped. All calls on one seslm_dialog are thread-safe (one mutex, one connection).
 * docs/intent.md describes the rules. */
#ifndef SESLM_DIALOG_H
#define SESLM_DIALOG_H

#include "seslm.h"

#define SESLM_DIALOG_MAX_SLOTS 16
#define SESLM_DIALOG_NAME 64
#define SESLM_DIALOG_VALUE 256
#define SESLM_DIALOG_MAX_ALTERNATIVES 8

typedef struct {
    char intent[SESLM_DIALOG_NAME];                      // the intent that starts this goal
    char action[SESLM_DIALOG_NAME];                      // action when complete (e.g. "fetch_data")
    int confirm;                                         // 0: no; 1: always ask "confirm" first (a hard rule);
                                                         // 2 ("optional"): learning may act without confirming
    int n_slots;
    char slots[SESLM_DIALOG_MAX_SLOTS][SESLM_DIALOG_NAME]; // required slots, asked in this order
    int n_alternatives;                                  // other actions allowed in place of `action`
    char alternatives[SESLM_DIALOG_MAX_ALTERNATIVES][SESLM_DIALOG_NAME];
    int n_ask_alternatives;                              // actions allowed in place of asking for a missing slot
    char ask_alternatives[SESLM_DIALOG_MAX_ALTERNATIVES][SESLM_DIALOG_NAME]; // (never the goal's action)
} seslm_dialog_goal;

typedef struct seslm_dialog_policy {
    int n_goals;
    seslm_dialog_goal *goals;
    double min_confidence;                  // below: treated as out of scope
    char confirm_intent[SESLM_DIALOG_NAME]; // answers "yes" to a confirmation ("" = none)
    char deny_intent[SESLM_DIALOG_NAME];    // answers "no": back to asking / clarify ("" = none)
    char end_intent[SESLM_DIALOG_NAME];     // ends the conversation ("" = none)
    int max_sessions;                       // default 10000
    int n_clarify_alternatives;             // actions allowed in place of "clarify" (e.g. "handoff")
    char clarify_alternatives[SESLM_DIALOG_MAX_ALTERNATIVES][SESLM_DIALOG_NAME];
    // learning from outcomes (learning.* in the YAML): re-ranks a goal's action and its alternatives
    int learn;                              // 0: always the policy's action
    int learn_min_count;                    // outcomes an action needs in a state before its rate counts (>= 1)
    double learn_prior_success;             // Beta prior (a, b): the rate is (successes + a) / (n + a + b)
    double learn_prior_failure;
} seslm_dialog_policy;

typedef struct {
    char goal[SESLM_DIALOG_NAME];  // "" when none
    char step[SESLM_DIALOG_NAME];  // "initial", "waiting_for_<slot>", "awaiting_confirmation", "done"
    char last_intent[SESLM_DIALOG_NAME];
    int n_filled;
    char filled_key[SESLM_DIALOG_MAX_SLOTS][SESLM_DIALOG_NAME];
    char filled_value[SESLM_DIALOG_MAX_SLOTS][SESLM_DIALOG_VALUE];
    int n_missing;
    char missing[SESLM_DIALOG_MAX_SLOTS][SESLM_DIALOG_NAME];
    int turns;
    char last_action[SESLM_DIALOG_NAME]; // the action of the previous turn ("" before the first)
} seslm_dialog_state;

typedef struct {
    char action[SESLM_DIALOG_NAME];
    char ask[SESLM_DIALOG_NAME];   // the slot asked for by ask_missing_info, else ""
    seslm_dialog_state state;      // after the turn
    int ended;                     // the session was closed by this turn
    char policy_action[SESLM_DIALOG_NAME]; // what the policy alone would do (differs when learning re-ranked)
} seslm_dialog_decision;

typedef struct seslm_dialog seslm_dialog;

/* Copies the policy (goals included); checks names and that goal intents are unique. Sessions in memory. */
seslm_status seslm_dialog_new(seslm_dialog **out, const seslm_dialog_policy *p);
/* Same, with the sessions and the transition log in the SQLite file db_path (NULL: in memory), created
 * when absent; ttl_s > 0 expires sessions idle longer than that (0: never). A file that is not a session
 * store, or that cannot be created or written, fails with SESLM_ERR_IO and a message naming it. */
seslm_status seslm_dialog_open(seslm_dialog **out, const seslm_dialog_policy *p, const char *db_path, long long ttl_s);
/* Records the outcome of session's last logged action (success 1 / 0). *action (SESLM_DIALOG_NAME bytes)
 * gets that action, or "" when the session has no logged action (nothing is recorded then). */
seslm_status seslm_dialog_outcome(seslm_dialog *d, const char *session, int success, char *action);
/* For tests: the clock in seconds used for the TTL (0: the wall clock). */
void seslm_dialog_set_time(seslm_dialog *d, long long now_s);
void seslm_dialog_free(seslm_dialog *d);

/* One turn of session `session` (1..64 bytes of [A-Za-z0-9._-]). intent: the predicted label, or NULL
 * when out of scope; slot_keys / slot_values (n_slots): values the caller extracted this turn (only
 * slots of the current goal are kept; others are ignored). */
seslm_status seslm_dialog_step(seslm_dialog *d, const char *session, const char *intent, double confidence,
                               const char *const *slot_keys, const char *const *slot_values, int n_slots,
                               seslm_dialog_decision *out);

#endif
