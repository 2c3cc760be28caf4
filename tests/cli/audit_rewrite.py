#!/usr/bin/env python3
"""audit_rewrite.py — what someone who can write the registry database (but has not the audit key) can do:
change one audit row, then recompute every hash after it so the chain verifies again.

    audit_rewrite.py sqlite PATH SEQ keep|drop|truncate      (SQLite file)
    audit_rewrite.py pg DSN SEQ keep|drop|truncate           (PostgreSQL, through psql)

keep: the HMAC column is left as it was (the attacker cannot recompute it); drop: it is cleared on every
row (the attacker pretends the log was never anchored); truncate: rows SEQ.. are deleted (a removed tail:
an older anchored row becomes the head; SEQ 1 empties the log). The chain is recomputed exactly as
pipeline/registry/registry_audit.c defines it: sha256(prev_hash || compact JSON [seq, at, actor, action,
target, reason, detail])."""
import hashlib, json, sqlite3, subprocess, sys

kind, where, seq0, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if mode == "truncate":
    if kind == "sqlite":
        db = sqlite3.connect(where)
        db.executescript("DROP TRIGGER IF EXISTS audit_log_no_delete;")
        n = db.execute("DELETE FROM audit_log WHERE seq >= ?", (seq0,)).rowcount
        db.commit()
    else:
        script = ("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change; DELETE FROM audit_log WHERE seq >= %d; "
                  "ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_change;" % seq0)
        subprocess.run(["psql", where, "-qAtc", script], check=True, capture_output=True)
        n = "the"
    print("deleted %s audit rows from row %d on" % (n, seq0), file=sys.stderr)
    sys.exit(0)
COLS = "seq, at, actor, action, target, reason, detail, prev_hash, hash"

if kind == "sqlite":
    db = sqlite3.connect(where)
    rows = db.execute(f"SELECT {COLS} FROM audit_log ORDER BY seq").fetchall()
else:
    q = f"SELECT json_agg(json_build_array({COLS}) ORDER BY seq) FROM audit_log"
    out = subprocess.run(["psql", where, "-qAtc", q], check=True, capture_output=True, text=True).stdout
    rows = [tuple(r) for r in json.loads(out)]

sql, prev = [], "0" * 64
for seq, at, actor, action, target, reason, detail, prev_hash, h in rows:
    if seq == seq0:
        actor = "mallory"
    canon = json.dumps([seq, at, actor, action, target, reason, detail], separators=(",", ":"), ensure_ascii=False)
    new = hashlib.sha256((prev + canon).encode()).hexdigest()
    if seq >= seq0:
        sql.append((actor, prev, new, seq))
    prev = new

if kind == "sqlite":
    db.executescript("DROP TRIGGER IF EXISTS audit_log_no_update; DROP TRIGGER IF EXISTS audit_log_no_delete;")
    for actor, p, h, seq in sql:
        db.execute("UPDATE audit_log SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?", (actor, p, h, seq))
    if mode == "drop":
        db.execute("UPDATE audit_log SET mac = NULL")
    db.commit()
else:
    script = ["ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change;"]
    for actor, p, h, seq in sql:
        script.append("UPDATE audit_log SET actor = '%s', prev_hash = '%s', hash = '%s' WHERE seq = %d;" % (actor, p, h, seq))
    if mode == "drop":
        script.append("UPDATE audit_log SET mac = NULL;")
    script.append("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_change;")
    subprocess.run(["psql", where, "-qAtc", "\n".join(script)], check=True, capture_output=True)
print("rewrote row %d and recomputed %d hashes (%s the HMACs)" % (seq0, len(sql), mode), file=sys.stderr)
