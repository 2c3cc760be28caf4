#!/usr/bin/env bash
# test_serve_soak.sh — a short soak of `seslm serve` (issue 14): mixed traffic (embed, intent, feedback,
# healthz, metrics), a reload every 10 s and a telemetry window of 5 s (dump rotation) for
# $SESLM_SOAK_SECONDS (default 90) seconds: no failed request, dumps written, and after warm-up (the first
# 20%) the RSS floor (minimum per 20 s window: reloads hold two models for a moment) grows by at most
# 16 MB and malloc's bytes in use (seslm_heap_bytes on /metrics) by at most 8 MB (tests/serve/soak.py).
# The 30-minute figures in bench/RESULTS.md come from SESLM_SOAK_SECONDS=1800.
#
#   bash tests/cli/test_serve_soak.sh <path to seslm> <model dir> <repo root>
set -u

. "$(dirname "$0")/lib.sh"
cli_test_init test_serve_soak "$@" -- curl

SECONDS_RUN=${SESLM_SOAK_SECONDS:-90}
TRAIN=$TMP/train.tsv
awk -F'\t' 'NR == 1 || n[$2]++ < 10' "$ROOT/data/intent/snips_train50.tsv" >"$TRAIN"
LABELS=$(awk -F'\t' 'NR > 1 {print $2}' "$TRAIN" | sort -u | head -3 | paste -sd, -)
HEAD=$TMP/head.safetensors
"$SESLM" intent train --model "$MODEL" --data "$TRAIN" --out "$HEAD" --seed 1 >/dev/null 2>"$TMP/train.err" ||
    { echo "test_serve_soak: intent train failed: $(cat "$TMP/train.err")" >&2; exit 1; }
mkdir -p "$TMP/tel"
# /v1/feedback needs a token (the safe default): the soak's feedback client has one
FTOKEN=soak-feedback-token-0123456789
(umask 077 && echo "$FTOKEN" >"$TMP/feedback.token")

LOG=$TMP/server.log
"$SESLM" serve --model "$MODEL" --port 0 --intent-head "$HEAD" --feedback-token-file "$TMP/feedback.token" \
    --telemetry-dir "$TMP/tel" --node soak \
    --window-seconds 5 >"$LOG" 2>&1 &
PID=$!
PORT=
for _ in $(seq 1 600); do
    PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$LOG" | head -1)
    [ -n "$PORT" ] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$PORT" ]; then
    echo "test_serve_soak: the server did not start:" >&2
    cat "$LOG" >&2
    exit 1
fi

# ASan's quarantine holds freed memory on purpose: the RSS bound is checked in the release run only
growth=16 heap_growth=8
if ldd "$SESLM" 2>/dev/null | grep -q libasan; then
    growth=100000 heap_growth=100000
    echo "test_serve_soak: sanitizer build: RSS not bounded here (the release run bounds it)"
fi
ok
python3 "$ROOT/tests/serve/soak.py" --port "$PORT" --pid "$PID" --seconds "$SECONDS_RUN" --clients 4 \
    --reload-every 10 --feedback-labels "$LABELS" --feedback-token "$FTOKEN" --telemetry-dir "$TMP/tel" --json "$TMP/soak.json" \
    --max-growth-mb "$growth" --max-heap-growth-mb "$heap_growth" ||
    fail "soak: see above"
[ -n "${SESLM_SOAK_FIGURES:-}" ] && cp "$TMP/soak.json" "$SESLM_SOAK_FIGURES"

kill -TERM "$PID"
wait "$PID"
rc=$?
PID=
ok
[ "$rc" = 0 ] || { grep -m3 -A25 "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error" "$LOG" >&2; fail "SIGTERM: exit $rc: $(tail -5 "$LOG")"; }
cli_test_done
