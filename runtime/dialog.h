/* dialog.h — per-session conversation state and a rule-based decision engine (seed 002's "state
 * manager" and "decision engine"). The policy is data (configs/dialog.yaml, loaded by
 * pipeline/dialog_policy.c); this module only applies it:
 *
 *   intent (or out of scope) + slots the caller extracted  ->  session state  ->  action
 *
 * Actions: "clarify" (no usable intent and no goal in progress), "ask_missing_info" (the goal's first
 * missing slot is named), "confirm" (all slots filled and the goal asks for confirmation),
 * the goal's own action once confirmed or when no confirmation is needed (e.g. "fetch_data"), and
 * "end" (the end intent, or a goal whose action is "end"; the session is then forgotten).
 *
 * Sessions live in memory (up to max_sessions, least recently used evicted); they are not persisted.
 * All calls on one seslm_dialog are thread-safe (one mutex). docs/intent.md describes the rules. */
#ifndef SESLM_DIALOG_H
#define SESLM_DIALOG_H

#include "seslm.h"

#define SESLM_DIALOG_MAX_SLOTS 16
#define SESLM_DIALOG_NAME 64
#define SESLM_DIALOG_VALUE 256

typedef struct {
    char intent[SESLM_DIALOG_NAME];                      // the intent that starts this goal
    char action[SESLM_DIALOG_NAME];                      // action when complete (e.g. "fetch_data")
    int confirm;                                         // ask "confirm" before the action
    int n_slots;
    char slots[SESLM_DIALOG_MAX_SLOTS][SESLM_DIALOG_NAME]; // required slots, asked in this order
} seslm_dialog_goal;

typedef struct seslm_dialog_policy {
    int n_goals;
    seslm_dialog_goal *goals;
    double min_confidence;                  // below: treated as out of scope
    char confirm_intent[SESLM_DIALOG_NAME]; // answers "yes" to a confirmation ("" = none)
    char deny_intent[SESLM_DIALOG_NAME];    // answers "no": back to asking / clarify ("" = none)
    char end_intent[SESLM_DIALOG_NAME];     // ends the conversation ("" = none)
    int max_sessions;                       // default 10000
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
} seslm_dialog_state;

typedef struct {
    char action[SESLM_DIALOG_NAME];
    char ask[SESLM_DIALOG_NAME];   // the slot asked for by ask_missing_info, else ""
    seslm_dialog_state state;      // after the turn
    int ended;                     // the session was closed by this turn
} seslm_dialog_decision;

typedef struct seslm_dialog seslm_dialog;

/* Copies the policy (goals included); checks names and that goal intents are unique. */
seslm_status seslm_dialog_new(seslm_dialog **out, const seslm_dialog_policy *p);
void seslm_dialog_free(seslm_dialog *d);

/* One turn of session `session` (1..64 bytes of [A-Za-z0-9._-]). intent: the predicted label, or NULL
 * when out of scope; slot_keys / slot_values (n_slots): values the caller extracted this turn (only
 * slots of the current goal are kept; others are ignored). */
seslm_status seslm_dialog_step(seslm_dialog *d, const char *session, const char *intent, double confidence,
                               const char *const *slot_keys, const char *const *slot_values, int n_slots,
                               seslm_dialog_decision *out);

#endif
