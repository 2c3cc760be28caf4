/* message.c — POST /v1/message {"session": "...", "text": "...", "slots": {"name": "value", ...},
 * "outcome": "success" | "failure"}: one conversation turn, intent -> state -> decision -> retrieval
 * (runtime/assist/dialog.h):
 *
 *   {"session", "intent": {"intent", "top", "confidence", "out_of_scope"}, "action", "policy_action", "ask",
 *    "state": {"goal", "step", "filled_slots", "missing_slots", "turns", "last_action"}, "ended",
 *    "context": null | {"answer", "reason", "passages"}, "model"}
 *
 * "outcome" (optional) is the caller's verdict on the session's previous action; it is recorded in the
 * transition log before the turn (and learned from). Without "text" the request only records it:
 *   {"session", "outcome", "action": the action it was recorded for}
 * (404 when the session has no logged action). The turn's state is committed before the answer.
 *
 * The context is attached when the action is a goal's own action (not clarify / ask_missing_info /
 * confirm / end) and the server has a knowledge base: the top 3 passages for the message's embedding,
 * under the same answer contract as /v1/retrieve. With a decoder (--decoder) the node also answers:
 * "reply" (ground.c) is the decoder's answer from those passages only, after the hallucination check, or
 * the node's abstention / request for clarification, with the passages cited; null on a turn without
 * context (the dialog's own clarify / ask / confirm / end). Without a decoder there is no "reply". */
#include "dialog.h"
#include "retrieve.h"
#include "serve_internal.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static int is_builtin(const char *a) {
    return !strcmp(a, "clarify") || !strcmp(a, "ask_missing_info") || !strcmp(a, "confirm") || !strcmp(a, "end");
}

int serve_message_handle(seslm_server *s, const char *body, size_t len, sbuf *out, char *model_id) {
    model_id[0] = 0;
    if (!s->dialog) return sb_error_json(out, 404, "no dialog policy is loaded (start the server with --dialog-policy FILE)");
    if (len == 0) return sb_error_json(out, 400, "empty body: send {\"session\": \"...\", \"text\": \"...\"}");
    cJSON *root = NULL;
    const int perr = sb_parse_json(body, len, &root, out);
    if (perr) return perr;
    int code = 0, ns = 0, outcome = -1;
    const char *session = NULL, *text = NULL, *keys[SESLM_DIALOG_MAX_SLOTS], *vals[SESLM_DIALOG_MAX_SLOTS];
    if (!cJSON_IsObject(root)) code = sb_error_json(out, 400, "the body must be a JSON object {\"session\", \"text\", \"slots\"}");
    for (const cJSON *f = code ? NULL : root->child; f && !code; f = f->next) {
        if (!strcmp(f->string, "session") || !strcmp(f->string, "text")) {
            if (!cJSON_IsString(f) || !*f->valuestring) code = sb_error_json(out, 400, "\"%s\" must be a non-empty string", f->string);
            else if (f->string[0] == 's') session = f->valuestring;
            else text = f->valuestring;
        } else if (!strcmp(f->string, "slots")) {
            if (!cJSON_IsObject(f)) code = sb_error_json(out, 400, "\"slots\" must be an object of strings");
            for (const cJSON *v = code ? NULL : f->child; v && !code; v = v->next) {
                if (!cJSON_IsString(v)) code = sb_error_json(out, 400, "slot \"%.64s\" must be a string", v->string);
                else if (ns == SESLM_DIALOG_MAX_SLOTS) code = sb_error_json(out, 400, "at most %d slots", SESLM_DIALOG_MAX_SLOTS);
                else keys[ns] = v->string, vals[ns++] = v->valuestring;
            }
        } else if (!strcmp(f->string, "outcome")) {
            if (cJSON_IsString(f) && !strcmp(f->valuestring, "success")) outcome = 1;
            else if (cJSON_IsString(f) && !strcmp(f->valuestring, "failure")) outcome = 0;
            else code = sb_error_json(out, 400, "\"outcome\" must be \"success\" or \"failure\"");
        } else {
            code = sb_error_json(out, 400,
                              "unknown field \"%.100s\" (the fields are \"session\", \"text\", \"slots\", \"outcome\")",
                              f->string);
        }
    }
    if (!code && (!session || (!text && outcome < 0))) code = sb_error_json(out, 400, "missing field \"%s\"", session ? "text" : "session");
    char prev[SESLM_DIALOG_NAME] = "";
    if (!code && outcome >= 0) {
        seslm_status ost = seslm_dialog_outcome(s->dialog, session, outcome, prev);
        if (ost != SESLM_OK) code = sb_error_json(out, ost == SESLM_ERR_ARG ? 400 : 500, "%s", seslm_last_error());
        else if (!prev[0])
            code = sb_error_json(out, 404, "session \"%s\" has no logged action to give an outcome for", session);
    }
    if (!code && !text) { // an outcome alone
        sb_puts(out, "{\"session\":");
        sb_json_str(out, session);
        sb_printf(out, ",\"outcome\":\"%s\",\"action\":", outcome ? "success" : "failure");
        sb_json_str(out, prev);
        sb_puts(out, "}\n");
        cJSON_Delete(root);
        return 200;
    }
    char label[160] = "";
    float conf = 0, *x = NULL; // x: the text's embedding, by the model the head answers for (the KB search below)
    int oos = 0, D = 0;
    if (!code) code = serve_intent_classify_text(s, text, &x, &D, label, sizeof label, &conf, &oos, model_id, out);
    seslm_dialog_decision dd;
    seslm_status dst = code ? SESLM_OK : seslm_dialog_step(s->dialog, session, oos ? NULL : label, conf, keys, vals, ns, &dd);
    if (dst != SESLM_OK) code = sb_error_json(out, dst == SESLM_ERR_ARG ? 400 : 500, "%s", seslm_last_error());
    if (code) {
        free(x);
        cJSON_Delete(root);
        return code;
    }
    const seslm_dialog_state *st = &dd.state;
    sb_puts(out, "{\"session\":");
    sb_json_str(out, session);
    sb_puts(out, ",\"intent\":{\"intent\":");
    if (oos) sb_puts(out, "null");
    else sb_json_str(out, label);
    sb_puts(out, ",\"top\":");
    sb_json_str(out, label);
    sb_printf(out, ",\"confidence\":%.6f,\"out_of_scope\":%s},\"action\":", (double)conf, oos ? "true" : "false");
    sb_json_str(out, dd.action);
    sb_puts(out, ",\"policy_action\":");
    sb_json_str(out, dd.policy_action);
    sb_puts(out, ",\"ask\":");
    if (dd.ask[0]) sb_json_str(out, dd.ask);
    else sb_puts(out, "null");
    sb_puts(out, ",\"state\":{\"goal\":");
    if (st->goal[0]) sb_json_str(out, st->goal);
    else sb_puts(out, "null");
    sb_puts(out, ",\"step\":");
    sb_json_str(out, st->step);
    sb_puts(out, ",\"filled_slots\":{");
    for (int i = 0; i < st->n_filled; i++) {
        if (i) sb_putn(out, ",", 1);
        sb_json_str(out, st->filled_key[i]);
        sb_putn(out, ":", 1);
        sb_json_str(out, st->filled_value[i]);
    }
    sb_puts(out, "},\"missing_slots\":[");
    for (int i = 0; i < st->n_missing; i++) {
        if (i) sb_putn(out, ",", 1);
        sb_json_str(out, st->missing[i]);
    }
    sb_printf(out, "],\"turns\":%d,\"last_action\":", st->turns);
    sb_json_str(out, st->last_action);
    sb_printf(out, "},\"ended\":%s,\"context\":", dd.ended ? "true" : "false");
    sbuf reply = {0};
    int reply_code = -1; // -1: no grounded reply this turn
    if (s->kb && !is_builtin(dd.action) && seslm_kb_dim(s->kb) == D) {
        seslm_kb_hit hits[3];
        const double thr = s->o.kb_threshold;
        int n = seslm_kb_search(s->kb, x, 3, hits), above = 0;
        while (above < n && hits[above].score >= thr) above++;
        char why[256];
        if (above) snprintf(why, sizeof why, "grounded in %d passage(s) at or above the threshold", above);
        else snprintf(why, sizeof why, "no passage is similar enough: the best scores %.3f, below the threshold %.3f",
                      n ? (double)hits[0].score : -1.0, thr);
        sb_printf(out, "{\"answer\":%s,\"reason\":", above ? "true" : "false");
        sb_json_str(out, why);
        sb_puts(out, ",\"passages\":[");
        for (int j = 0; j < above; j++) {
            sb_printf(out, "%s{\"rank\":%d,\"passage\":%d,\"score\":%.6f,\"text\":", j ? "," : "", j + 1, hits[j].index,
                      (double)hits[j].score);
            sb_json_str(out, seslm_kb_passage(s->kb, hits[j].index));
            sb_putn(out, "}", 1);
        }
        sb_puts(out, "]}");
        if (s->chat) {
            int ids[3];
            for (int j = 0; j < above; j++) ids[j] = hits[j].index;
            reply_code = serve_ground_reply(s, text, ids, above, &reply);
        }
    } else {
        sb_puts(out, "null");
    }
    if (reply_code > 0) { // the generation or its check failed: the error, not a half answer
        out->n = 0;
        sb_putn(out, reply.p, reply.n);
        free(reply.p);
        free(x);
        cJSON_Delete(root);
        return reply_code;
    }
    if (s->chat) { // with a decoder the turn says something: the grounded reply, or null for the dialog's own ask
        sb_puts(out, ",\"reply\":");
        if (reply_code == 0) sb_putn(out, reply.p, reply.n);
        else sb_puts(out, "null");
    }
    free(reply.p);
    sb_puts(out, ",\"model\":");
    sb_json_str(out, model_id);
    sb_puts(out, "}\n");
    free(x);
    cJSON_Delete(root);
    return 200;
}
