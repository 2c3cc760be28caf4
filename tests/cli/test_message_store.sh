#!/usr/bin/env bash
# test_message_store.sh — POST /v1/message with `seslm serve --session-db FILE` on the real model: a
# conversation started before a restart goes on after it (the state was committed before the answer);
# "outcome" marks a session's last action, and after min_count failures of the policy's action the
# allowed alternative is chosen, still after a second restart (the transition log is in the same file);
# concurrent clients on different sessions lose no turn;
# an outcome alone, an unknown session, a bad outcome, a file that is not a database and a bad TTL give
# clear errors.
#
#   bash tests/cli/test_message_store.sh <path to seslm> <model dir> <repo root>
set -u

. "$(dirname "$0")/lib.sh"
cli_test_init test_message_store "$@"

cat >"$TMP/turns.tsv" <<'TSV'
text	label
I need my blood test results	request_data
show me my lab report	request_data
can I get my test results from last week	request_data
send me the report	request_data
I want to see my cholesterol numbers	request_data
get my latest x-ray report	request_data
goodbye	end_conversation
thanks, bye	end_conversation
that's all for today	end_conversation
see you later	end_conversation
TSV
HEAD=$TMP/head.safetensors
"$SESLM" intent train --model "$MODEL" --data "$TMP/turns.tsv" --out "$HEAD" --calib-frac 0 --seed 2 >/dev/null 2>"$TMP/e" ||
    { cat "$TMP/e" >&2; exit 1; }
cat >"$TMP/policy.yaml" <<'YAML'
min_confidence: 0.3
end_intent: end_conversation
learning:
  enabled: true
  min_count: 2
goals:
  - intent: request_data
    slots: [report_type, date]
    action: fetch_data
    alternatives: [handoff]
YAML
DB=$TMP/sessions.db
SERVE=(serve --model "$MODEL" --port 0 --intent-head "$HEAD" --dialog-policy "$TMP/policy.yaml")

printf 'this is not an SQLite database, just text that is long enough to have a header...........\n' >"$TMP/junk.db"
expect 1 "junk.db.*not a database" "a file that is not a database" -- "${SERVE[@]}" --session-db "$TMP/junk.db"
expect 1 "cannot open" "an unwritable path" -- "${SERVE[@]}" --session-db "$TMP/no/such/dir/s.db"
expect 2 "session-ttl" "bad TTL" -- "${SERVE[@]}" --session-db "$DB" --session-ttl -5
grep -q "^this is not" "$TMP/junk.db" || fail "the junk file was changed"
# an existing store readable by others is made private when opened
(umask 022 && sqlite3 "$DB" "PRAGMA user_version=0;" && [ "$(stat -c %a "$DB")" = 644 ]) || fail "could not make a 0644 database"


N_START=0
start() {
    # a new log each time: the background shell truncates a reused one only when it gets to run, after
    # which the old "listening on" line could already have been read
    N_START=$((N_START + 1))
    LOG=$TMP/server$N_START.log
    "$SESLM" "${SERVE[@]}" --session-db "$DB" >"$LOG" 2>&1 &
    PID=$!
    PORT=
    for _ in $(seq 1 600); do
        PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$LOG" | head -1)
        [ -n "$PORT" ] && break
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$PORT" ] || { cat "$LOG" >&2; exit 1; }
    URL=http://127.0.0.1:$PORT
    ok # conversations are user data: owner-only, WAL included
    for f in "$DB" "$DB-wal"; do
        [ ! -e "$f" ] || [ "$(stat -c %a "$f")" = 600 ] || fail "$f has mode $(stat -c %a "$f")"
    done
}
stop() {
    kill -TERM "$PID"
    wait "$PID" || fail "server exit after SIGTERM"
    PID=
}
# client PHASE: the checks of one phase, against $URL
client() {
    python3 - "$URL" "$1" <<'PY'
import http.client, json, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1]); phase = sys.argv[2]
def msg(obj, want=200):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    c.request("POST", "/v1/message", body=json.dumps(obj) if not isinstance(obj, str) else obj)
    r = c.getresponse()
    o = json.loads(r.read())
    assert r.status == want, (r.status, o)
    return o
full = {"report_type": "blood_test", "date": "2026-01-08"}
if phase == "1":
    o = msg({"session": "u1", "text": "I need my blood test results", "slots": {"report_type": "blood_test"}})
    assert o["action"] == "ask_missing_info" and o["ask"] == "date", o
    # no evidence yet: the policy's action
    o = msg({"session": "v1", "text": "show me my lab report", "slots": full})
    assert o["intent"]["intent"] == "request_data" and o["action"] == "fetch_data", o
    assert o["policy_action"] == "fetch_data" and o["state"]["last_action"] == "fetch_data", o
    o = msg({"session": "v1", "outcome": "failure"})
    assert o == {"session": "v1", "outcome": "failure", "action": "fetch_data"}, o
elif phase == "2":
    # after a restart: u1 goes on where it was (report_type kept, date asked)
    o = msg({"session": "u1", "text": "send me the report", "slots": {"date": "2026-01-08"}})
    assert o["state"]["turns"] == 2 and o["state"]["filled_slots"] == {"report_type": "blood_test", "date": "2026-01-08"}, o
    assert o["action"] == "fetch_data" and o["state"]["goal"] == "request_data", o
    # one failure logged before the restart (< min_count 2): still the policy's action; a second failure
    o = msg({"session": "v2", "text": "show me my lab report", "slots": full})
    assert o["action"] == "fetch_data", o
    o = msg({"session": "v3", "text": "show me my lab report", "slots": full, "outcome": "failure"}, 404)
    assert "no logged action" in o["error"], o
    o = msg({"session": "v2", "text": "show me my lab report", "slots": full, "outcome": "failure"})
    # the outcome is recorded before the turn: this turn already sees 2 failures of fetch_data
    assert o["action"] == "handoff" and o["policy_action"] == "fetch_data", o
    for bad in ['{"session": "v2", "outcome": "maybe"}', '{"session": "v2", "outcome": 1}', '{"outcome": "success"}',
                '{"session": "bad id", "outcome": "success"}']:
        e = msg(bad, 400)
        assert isinstance(e["error"], str) and e["error"], e
elif phase == "3":
    o = msg({"session": "w1", "text": "I want to see my cholesterol numbers", "slots": full})
    assert o["action"] == "handoff", o
    o = msg({"session": "w1", "outcome": "success"})
    assert o["action"] == "handoff", o
    # concurrent turns on different sessions: every turn is counted, none lost or mixed up
    import threading
    bad = []
    def talk(i):
        try:
            for t in range(6):
                o = msg({"session": "c%d" % i, "text": "show me my lab report", "slots": {"report_type": "r%d" % i}})
                if o["state"]["turns"] != t + 1 or o["state"]["filled_slots"] != {"report_type": "r%d" % i}:
                    bad.append(o)
        except Exception as e:
            bad.append(repr(e))
    th = [threading.Thread(target=talk, args=(i,)) for i in range(8)]
    for t in th: t.start()
    for t in th: t.join()
    assert not bad, bad[:2]
print("test_message_store: phase", phase, "ok")
PY
}

start
ok
client 1 || fail "phase 1 (before the restart)"
stop
[ -s "$DB" ] || fail "no session store at $DB"
start
ok
client 2 || fail "phase 2 (the session goes on after a restart; outcomes change the action)"
stop
start
ok
client 3 || fail "phase 3 (learning survives a restart)"
stop
cli_test_done
