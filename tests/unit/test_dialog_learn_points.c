/* test_dialog_learn_points.c — learning beyond the goal's final action (issue 18 §4): at the clarify,
 * ask and confirm decision points the policy's choice holds until it has failed often enough, then an
 * allowed alternative is tried; the rules stay hard limits (confirm: true is never skipped, an ask
 * alternative can never be the goal's action, only listed actions are ever chosen). */
#include "dialog_policy.h"
#include "test.h"

#include <unistd.h>

static const char *POLICY = "min_confidence: 0.5\n"
                            "confirm_intent: yes\n"
                            "clarify_alternatives: [handoff]\n"
                            "learning:\n"
                            "  min_count: 3\n"
                            "goals:\n"
                            "  - intent: request_data\n"
                            "    slots: [date]\n"
                            "    action: fetch_data\n"
                            "    ask_alternatives: [ask_all_missing]\n"
                            "  - intent: order\n"
                            "    action: place_order\n"
                            "    confirm: optional\n"
                            "  - intent: transfer\n"
                            "    action: send_money\n"
                            "    confirm: true\n";

static int n_sess = 0;

static seslm_dialog_decision turn(seslm_dialog *d, const char *intent, double conf, char *sess) {
    snprintf(sess, 32, "s%d", n_sess++);
    seslm_dialog_decision r;
    seslm_status st = seslm_dialog_step(d, sess, intent, conf, NULL, NULL, 0, &r);
    CHECK_MSG(st == SESLM_OK, "%s", seslm_last_error());
    return r;
}

static void fail(seslm_dialog *d, const char *sess, const char *want) {
    char act[SESLM_DIALOG_NAME];
    CHECK(seslm_dialog_outcome(d, sess, 0, act) == SESLM_OK);
    CHECK_MSG(strcmp(act, want) == 0, "outcome for '%s', expected '%s'", act, want);
}

/* The first action at a decision point, then n failures of it, then the action chosen next. */
static void fails_then(seslm_dialog *d, const char *intent, double conf, const char *first, int n, const char *then,
                       const char *policy_action) {
    char sess[32];
    for (int i = 0; i < n; i++) {
        seslm_dialog_decision r = turn(d, intent, conf, sess);
        CHECK_MSG(strcmp(r.action, first) == 0, "%s: failure %d: %s, expected %s", intent ? intent : "(none)", i, r.action, first);
        fail(d, sess, first);
    }
    seslm_dialog_decision r = turn(d, intent, conf, sess);
    CHECK_MSG(strcmp(r.action, then) == 0 && strcmp(r.policy_action, policy_action) == 0,
              "%s after %d failures of %s: %s (policy %s), expected %s", intent ? intent : "(none)", n, first, r.action,
              r.policy_action, then);
}

int main(void) {
    char dir[] = "/tmp/test_dialog_points_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char db[256], sess[32];
    snprintf(db, sizeof db, "%s/sessions.db", dir);
    seslm_dialog_policy p;
    CHECK_MSG(seslm_dialog_policy_load_string(&p, "policy.yaml", POLICY, strlen(POLICY)) == SESLM_OK, "%s", seslm_last_error());
    CHECK(p.n_clarify_alternatives == 1 && p.goals[0].n_ask_alternatives == 1 && p.goals[1].confirm == 2 &&
          p.goals[2].confirm == 1);
    seslm_dialog *d = NULL;
    CHECK_MSG(seslm_dialog_open(&d, &p, db, 0) == SESLM_OK, "%s", seslm_last_error());

    // clarify: an unusable turn with no goal -> clarify, until clarifying has failed 3 times -> handoff
    fails_then(d, NULL, 0.0, "clarify", 3, "handoff", "clarify");
    // (a low-confidence intent is the same state: no goal, no usable intent)
    seslm_dialog_decision r = turn(d, "request_data", 0.2, sess);
    CHECK_MSG(strcmp(r.action, "handoff") == 0, "low confidence: %s", r.action);

    // ask: a missing slot -> ask_missing_info naming it; after 3 failures the allowed alternative, with no
    // slot named, in the same waiting step (the goal's action is never chosen with the slot missing)
    r = turn(d, "request_data", 0.9, sess);
    CHECK(strcmp(r.action, "ask_missing_info") == 0 && strcmp(r.ask, "date") == 0);
    fail(d, sess, "ask_missing_info");
    fails_then(d, "request_data", 0.9, "ask_missing_info", 2, "ask_all_missing", "ask_missing_info");
    r = turn(d, "request_data", 0.9, sess);
    CHECK(strcmp(r.action, "ask_all_missing") == 0 && r.ask[0] == 0 && strcmp(r.state.step, "waiting_for_date") == 0);
    // the slot given: the goal's action, as ever
    const char *k[1] = {"date"}, *v[1] = {"2026-01-08"};
    CHECK(seslm_dialog_step(d, sess, "request_data", 0.9, k, v, 1, &r) == SESLM_OK && strcmp(r.action, "fetch_data") == 0);

    // confirm: optional -> confirm first; once confirming has failed 3 times, act at once
    fails_then(d, "order", 0.9, "confirm", 3, "place_order", "confirm");
    r = turn(d, "order", 0.9, sess);
    CHECK(strcmp(r.action, "place_order") == 0 && strcmp(r.state.step, "done") == 0);

    // confirm: true is a hard rule: any number of failures keep it
    fails_then(d, "transfer", 0.9, "confirm", 8, "confirm", "confirm");
    seslm_dialog_free(d);
    seslm_dialog_policy_free(&p);

    // learning off: the policy's choices everywhere
    const char *off = "learning:\n  enabled: false\nclarify_alternatives: [handoff]\n"
                      "goals:\n  - intent: order\n    action: place_order\n    confirm: optional\n";
    CHECK(seslm_dialog_policy_load_string(&p, "off.yaml", off, strlen(off)) == SESLM_OK);
    CHECK(seslm_dialog_open(&d, &p, NULL, 0) == SESLM_OK);
    fails_then(d, NULL, 0.0, "clarify", 5, "clarify", "clarify");
    fails_then(d, "order", 0.9, "confirm", 5, "confirm", "confirm");
    seslm_dialog_free(d);
    seslm_dialog_policy_free(&p);

    // hard limits in the policy file: an ask alternative may not be the goal's action
    const char *bad = "goals:\n  - intent: a\n    slots: [x]\n    action: b\n    ask_alternatives: [b]\n";
    CHECK_MSG(seslm_dialog_policy_load_string(&p, "bad.yaml", bad, strlen(bad)) == SESLM_ERR_FORMAT &&
                  strstr(seslm_last_error(), "never runs with a required slot missing"),
              "%s", seslm_last_error());
    const char *bad2 = "clarify_alternatives: handoff\n";
    CHECK(seslm_dialog_policy_load_string(&p, "bad2.yaml", bad2, strlen(bad2)) == SESLM_ERR_FORMAT &&
          strstr(seslm_last_error(), "clarify_alternatives"));
    const char *bad3 = "goals:\n  - intent: a\n    action: b\n    confirm: maybe\n";
    CHECK(seslm_dialog_policy_load_string(&p, "bad3.yaml", bad3, strlen(bad3)) == SESLM_ERR_FORMAT);

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    return test_report("test_dialog_learn_points");
}
