/* test_dialog.c — the decision engine of runtime/assist/dialog.h with a policy parsed by runtime/assist/dialog_policy.c:
 * slot filling in order, confirmation / denial, out of scope and low confidence, goal switch, end,
 * independent sessions, LRU eviction, and policy errors reported with their line. */
#include "dialog_policy.h"
#include "test.h"

static const char *POLICY = "min_confidence: 0.5\n"
                            "confirm_intent: confirmation\n"
                            "deny_intent: correction\n"
                            "end_intent: end_conversation\n"
                            "max_sessions: 2\n"
                            "goals:\n"
                            "  - intent: request_data\n"
                            "    slots: [report_type, date]\n"
                            "    confirm: true\n"
                            "    action: fetch_data\n"
                            "  - intent: ask_question\n"
                            "    action: answer\n";

static seslm_dialog_decision turn(seslm_dialog *d, const char *sess, const char *intent, double conf, const char *k,
                                  const char *v) {
    seslm_dialog_decision dd;
    const char *keys[1] = {k}, *vals[1] = {v};
    seslm_status st = seslm_dialog_step(d, sess, intent, conf, keys, vals, k ? 1 : 0, &dd);
    CHECK_MSG(st == SESLM_OK, "%s", seslm_last_error());
    return dd;
}

int main(void) {
    seslm_dialog_policy p;
    CHECK(seslm_dialog_policy_load_string(&p, "policy.yaml", POLICY, strlen(POLICY)) == SESLM_OK);
    CHECK(p.n_goals == 2 && p.goals[0].n_slots == 2 && p.goals[0].confirm == 1 && p.goals[1].n_slots == 0);
    CHECK(strcmp(p.goals[0].slots[1], "date") == 0 && p.max_sessions == 2 && p.min_confidence == 0.5);
    seslm_dialog *d = NULL;
    CHECK(seslm_dialog_new(&d, &p) == SESLM_OK);
    seslm_dialog_policy_free(&p);

    // the seed's example: "I need my blood test results" with the report type known, the date missing
    seslm_dialog_decision r = turn(d, "s1", "request_data", 0.9, "report_type", "blood_test");
    CHECK(strcmp(r.action, "ask_missing_info") == 0 && strcmp(r.ask, "date") == 0);
    CHECK(strcmp(r.state.goal, "request_data") == 0 && strcmp(r.state.step, "waiting_for_date") == 0);
    CHECK(r.state.n_filled == 1 && r.state.n_missing == 1 && strcmp(r.state.missing[0], "date") == 0);
    // a low-confidence turn that brings the slot: the goal goes on
    r = turn(d, "s1", "ask_question", 0.2, "date", "2026-01-08");
    CHECK(strcmp(r.action, "confirm") == 0 && strcmp(r.state.step, "awaiting_confirmation") == 0 && r.state.n_missing == 0);
    // "no": the slots are asked again, in order
    r = turn(d, "s1", "correction", 0.8, NULL, NULL);
    CHECK(strcmp(r.action, "ask_missing_info") == 0 && strcmp(r.ask, "report_type") == 0 && r.state.n_filled == 0);
    r = turn(d, "s1", "request_data", 0.8, "report_type", "lipids");
    CHECK(strcmp(r.ask, "date") == 0 && strcmp(r.state.filled_value[0], "lipids") == 0);
    r = turn(d, "s1", NULL, 0.1, "date", "yesterday");
    CHECK(strcmp(r.action, "confirm") == 0);
    r = turn(d, "s1", "confirmation", 0.95, NULL, NULL);
    CHECK(strcmp(r.action, "fetch_data") == 0 && strcmp(r.state.step, "done") == 0 && r.state.turns == 6);
    r = turn(d, "s1", NULL, 0.3, NULL, NULL); // the goal is served: nothing to do
    CHECK(strcmp(r.action, "clarify") == 0);

    // another session is independent; out of scope with no goal -> clarify; a goal without slots
    r = turn(d, "s2", NULL, 0.9, NULL, NULL);
    CHECK(strcmp(r.action, "clarify") == 0 && r.state.goal[0] == 0 && r.state.turns == 1);
    r = turn(d, "s2", "ask_question", 0.7, "date", "ignored");
    CHECK(strcmp(r.action, "answer") == 0 && r.state.n_filled == 0);
    // a goal switch drops the old slots
    r = turn(d, "s2", "request_data", 0.9, "date", "today");
    CHECK(strcmp(r.ask, "report_type") == 0 && r.state.n_filled == 1);
    // end: the session is forgotten
    r = turn(d, "s2", "end_conversation", 0.9, NULL, NULL);
    CHECK(strcmp(r.action, "end") == 0 && r.ended == 1);
    r = turn(d, "s2", NULL, 0.9, NULL, NULL);
    CHECK(r.state.turns == 1);
    // max_sessions 2: a third session evicts the least recently used (s1)
    turn(d, "s3", NULL, 0.9, NULL, NULL);
    r = turn(d, "s1", NULL, 0.9, NULL, NULL);
    CHECK_MSG(r.state.turns == 1, "s1 should have been evicted (turns %d)", r.state.turns);
    // bad arguments
    seslm_dialog_decision dd;
    CHECK(seslm_dialog_step(d, "bad id!", NULL, 0, NULL, NULL, 0, &dd) == SESLM_ERR_ARG);
    const char *k[1] = {"x y"}, *v[1] = {"1"};
    CHECK(seslm_dialog_step(d, "s1", NULL, 0, k, v, 1, &dd) == SESLM_ERR_ARG);
    seslm_dialog_free(d);

    // policy errors name the line
    const char *bad1 = "goals:\n  - intent: a\n    action: b\nmin_confidense: 0.4\n";
    CHECK(seslm_dialog_policy_load_string(&p, "bad1.yaml", bad1, strlen(bad1)) == SESLM_ERR_FORMAT &&
          strstr(seslm_last_error(), "bad1.yaml:4") && strstr(seslm_last_error(), "unknown key"));
    const char *bad2 = "goals:\n  - intent: a\n";
    CHECK(seslm_dialog_policy_load_string(&p, "bad2.yaml", bad2, strlen(bad2)) == SESLM_ERR_FORMAT &&
          strstr(seslm_last_error(), "goals.0.action"));
    const char *bad3 = "goals:\n  - intent: a\n    action: b\n  - intent: a\n    action: c\n";
    CHECK(seslm_dialog_policy_load_string(&p, "bad3.yaml", bad3, strlen(bad3)) == SESLM_OK);
    CHECK(seslm_dialog_new(&d, &p) == SESLM_ERR_ARG && strstr(seslm_last_error(), "two goals"));
    seslm_dialog_policy_free(&p);
    // the shipped policy loads and is valid
    CHECK(seslm_dialog_policy_load(&p, SESLM_SOURCE_DIR "/configs/dialog.yaml") == SESLM_OK && p.n_goals >= 1);
    CHECK(seslm_dialog_new(&d, &p) == SESLM_OK);
    seslm_dialog_free(d);
    seslm_dialog_policy_free(&p);
    return test_report("test_dialog");
}
