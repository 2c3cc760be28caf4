/* test_dialog_learn.c — learning from logged transitions (runtime/assist/dialog.h): with no evidence the
 * policy's action is chosen; fewer than learning.min_count outcomes change nothing; after repeated
 * failures of the policy's action A an allowed alternative B is tried, and after B's successes B stays
 * chosen in that state (and only in that state); the evidence survives a reopen of the store; with
 * learning.enabled false the policy's action is always chosen; outcomes for an unknown session record
 * nothing; policy errors for the new keys name their line. */
#include "dialog_policy.h"
#include "test.h"

#include <unistd.h>

static const char *POLICY = "min_confidence: 0.5\n"
                            "learning:\n"
                            "  enabled: true\n"
                            "  min_count: 3\n"
                            "goals:\n"
                            "  - intent: ask_question\n"
                            "    action: fetch_data\n"
                            "    alternatives: [handoff, end]\n"
                            "  - intent: request_data\n"
                            "    slots: [date]\n"
                            "    action: fetch_data\n"
                            "    alternatives: [handoff]\n";

static int n_sess = 0;

/* A fresh session asking a question: the action chosen in state (ask_question, ask_question, initial, 0). */
static seslm_dialog_decision ask(seslm_dialog *d, const char *intent, char *sess) {
    snprintf(sess, 32, "u%d", n_sess++);
    seslm_dialog_decision dd;
    seslm_status st = seslm_dialog_step(d, sess, intent, 0.9, NULL, NULL, 0, &dd);
    CHECK_MSG(st == SESLM_OK, "%s", seslm_last_error());
    return dd;
}

static void outcome(seslm_dialog *d, const char *sess, int ok, const char *want_action) {
    char act[SESLM_DIALOG_NAME];
    CHECK_MSG(seslm_dialog_outcome(d, sess, ok, act) == SESLM_OK, "%s", seslm_last_error());
    CHECK_MSG(strcmp(act, want_action) == 0, "outcome recorded for '%s', expected '%s'", act, want_action);
}

int main(void) {
    char dir[] = "/tmp/test_dialog_learn_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char db[256], sess[32];
    snprintf(db, sizeof db, "%s/sessions.db", dir);
    seslm_dialog_policy p;
    CHECK(seslm_dialog_policy_load_string(&p, "policy.yaml", POLICY, strlen(POLICY)) == SESLM_OK);
    CHECK(p.learn == 1 && p.learn_min_count == 3 && p.learn_prior_success == 1 && p.learn_prior_failure == 1);
    CHECK(p.goals[0].n_alternatives == 2 && strcmp(p.goals[0].alternatives[1], "end") == 0);
    seslm_dialog *d = NULL;
    CHECK_MSG(seslm_dialog_open(&d, &p, db, 0) == SESLM_OK, "%s", seslm_last_error());

    // no evidence: the policy's action
    seslm_dialog_decision r = ask(d, "ask_question", sess);
    CHECK(strcmp(r.action, "fetch_data") == 0 && strcmp(r.policy_action, "fetch_data") == 0);
    // an outcome is for the session's last action; an unknown session records nothing
    outcome(d, sess, 0, "fetch_data");
    outcome(d, "nobody", 0, "");
    // 2 failures < min_count 3: still the policy's action
    r = ask(d, "ask_question", sess);
    CHECK(strcmp(r.action, "fetch_data") == 0);
    outcome(d, sess, 0, "fetch_data");
    r = ask(d, "ask_question", sess);
    CHECK_MSG(strcmp(r.action, "fetch_data") == 0, "%s with 2 outcomes", r.action);
    outcome(d, sess, 0, "fetch_data");
    // 3 failures: A's rate (0 + 1) / (3 + 2) = 0.2 is below the prior 0.5: the first alternative is tried
    r = ask(d, "ask_question", sess);
    CHECK_MSG(strcmp(r.action, "handoff") == 0 && strcmp(r.policy_action, "fetch_data") == 0, "%s after 3 failures", r.action);
    CHECK(strcmp(r.state.last_action, "handoff") == 0);
    outcome(d, sess, 1, "handoff");
    for (int i = 0; i < 4; i++) {
        r = ask(d, "ask_question", sess);
        CHECK_MSG(strcmp(r.action, "handoff") == 0, "turn %d: %s", i, r.action);
        outcome(d, sess, 1, "handoff");
    }
    // other states are not affected: another goal, and the same goal reached through another step
    r = ask(d, "request_data", sess);
    CHECK(strcmp(r.action, "ask_missing_info") == 0);
    const char *k[1] = {"date"}, *v[1] = {"today"};
    CHECK(seslm_dialog_step(d, "rd", "request_data", 0.9, k, v, 1, &r) == SESLM_OK);
    CHECK_MSG(strcmp(r.action, "fetch_data") == 0, "%s in an untouched state", r.action);
    // a restart keeps the evidence
    seslm_dialog_free(d);
    d = NULL;
    CHECK(seslm_dialog_open(&d, &p, db, 0) == SESLM_OK);
    r = ask(d, "ask_question", sess);
    CHECK_MSG(strcmp(r.action, "handoff") == 0, "%s after reopen", r.action);
    // B fails from now on: once its rate falls below the prior 0.5 of the untried alternative "end",
    // that one is tried (B: 5 successes; after f failures (5+1)/(5+f+2) < 0.5 when f > 5)
    int back = -1;
    for (int f = 1; f <= 30 && back < 0; f++) {
        outcome(d, sess, 0, r.action);
        r = ask(d, "ask_question", sess);
        if (strcmp(r.action, "handoff") != 0) back = f;
    }
    CHECK_MSG(back == 6, "B was left after %d failures (expected 6)", back);
    CHECK_MSG(strcmp(r.action, "end") == 0 && r.ended == 1, "%s", r.action);
    seslm_dialog_free(d);
    seslm_dialog_policy_free(&p);

    // learning off: the same evidence changes nothing
    const char *off = "learning:\n  enabled: false\ngoals:\n  - intent: ask_question\n    action: fetch_data\n"
                      "    alternatives: [handoff]\n";
    CHECK(seslm_dialog_policy_load_string(&p, "off.yaml", off, strlen(off)) == SESLM_OK && p.learn == 0);
    CHECK(seslm_dialog_open(&d, &p, db, 0) == SESLM_OK);
    for (int i = 0; i < 3; i++) {
        r = ask(d, "ask_question", sess);
        CHECK(strcmp(r.action, "fetch_data") == 0);
        outcome(d, sess, 0, "fetch_data");
    }
    seslm_dialog_free(d);
    seslm_dialog_policy_free(&p);

    // policy errors
    const char *bad1 = "learning:\n  min_count: 0\ngoals:\n  - intent: a\n    action: b\n";
    CHECK(seslm_dialog_policy_load_string(&p, "bad1.yaml", bad1, strlen(bad1)) == SESLM_ERR_FORMAT &&
          strstr(seslm_last_error(), "bad1.yaml:2"));
    const char *bad2 = "learning:\n  enabeld: true\n";
    CHECK(seslm_dialog_policy_load_string(&p, "bad2.yaml", bad2, strlen(bad2)) == SESLM_ERR_FORMAT &&
          strstr(seslm_last_error(), "unknown key"));
    const char *bad3 = "goals:\n  - intent: a\n    action: b\n    alternatives: c\n";
    CHECK_MSG(seslm_dialog_policy_load_string(&p, "bad3.yaml", bad3, strlen(bad3)) == SESLM_ERR_FORMAT &&
                  strstr(seslm_last_error(), "alternatives"),
              "%s", seslm_last_error());

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    return test_report("test_dialog_learn");
}
