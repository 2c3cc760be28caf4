#!/usr/bin/env bash
# registry_bench.sh — what the registry and encryption cost, end to end through the CLI:
#   1. `seslm promote` (a process per promotion: open + schema check + the promotion transaction +
#      audit row), alternating between two versions, on SQLite and on PostgreSQL (when
#      SESLM_TEST_PG_DSN is set: eval "$(ci/pg-start.sh)") in the same run;
#      (baseline: starting the process alone);
#   2. loading the real model: plaintext (mmap) vs encrypted (decrypt into memory), `seslm info`.
# Prints medians and min..max in milliseconds. Usage: bench/registry_bench.sh [N promotions] [N loads]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
S=$root/build/seslm
M=${SESLM_MODEL_DIR:-$root/models/all-MiniLM-L6-v2}
N=${1:-40}
L=${2:-7}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/seslm_regbench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/m1"
for f in config.json model.safetensors vocab.txt tokenizer_config.json special_tokens_map.json \
    sentence_bert_config.json modules.json; do [ -f "$M/$f" ] && cp "$M/$f" "$tmp/m1/"; done
[ -d "$M/1_Pooling" ] && cp -r "$M/1_Pooling" "$tmp/m1/"
cp -r "$tmp/m1" "$tmp/m2" && echo v2 >"$tmp/m2/NOTE"
printf 'version: 1\napproval:\n  always_for: []\n' >"$tmp/open.yaml"

ms() { date +%s%N; }
stats() { python3 -c 'import statistics,sys; v=sorted(float(x) for x in sys.stdin.read().split()); print("median %.1f ms  (min %.1f, max %.1f, n %d)" % (statistics.median(v), v[0], v[-1], len(v)))'; }

bench_promote() { # NAME URL
    export SESLM_REGISTRY=$2 SESLM_STORE=$tmp/store SESLM_POLICY=$tmp/open.yaml
    "$S" registry register "$tmp/m1" >/dev/null
    "$S" registry register "$tmp/m2" >/dev/null
    : >"$tmp/t"
    for i in $(seq 1 "$N"); do
        t0=$(ms)
        "$S" promote $((i % 2 + 1)) --reason bench >/dev/null
        echo "$(( ($(ms) - t0) / 1000 ))" | awk '{print $1/1000}' >>"$tmp/t"
    done
    printf '%-12s promote: ' "$1"
    stats <"$tmp/t"
    "$S" audit verify >/dev/null
}

echo "== seslm promote, $N promotions each ($(nproc) cores, $(uname -m))"
: >"$tmp/b"
for i in $(seq 1 "$N"); do
    t0=$(ms)
    "$S" audit --help >/dev/null
    echo "$(( ($(ms) - t0) / 1000 ))" | awk '{print $1/1000}' >>"$tmp/b"
done
printf '%-12s process start (seslm audit --help): ' baseline
stats <"$tmp/b"
bench_promote sqlite "sqlite:$tmp/registry.db"
if [ -n "${SESLM_TEST_PG_DSN:-}" ]; then
    db=seslm_bench_$$
    psql "$SESLM_TEST_PG_DSN" -qAtc "CREATE DATABASE $db" >/dev/null
    bench_promote postgresql "pg:$SESLM_TEST_PG_DSN dbname=$db"
    psql "$SESLM_TEST_PG_DSN" -qAtc "DROP DATABASE $db WITH (FORCE)" >/dev/null
else
    echo "postgresql   skipped (SESLM_TEST_PG_DSN unset)"
fi

echo "== model load, $L runs each, interleaved (seslm info --json)"
"$S" encrypt --key-file "$tmp/key" --generate-key "$tmp/m1" "$tmp/enc" >/dev/null
: >"$tmp/p"
: >"$tmp/e"
for i in $(seq 1 "$L"); do
    t0=$(ms); "$S" info --model "$tmp/m1" --json >/dev/null; echo "$(( ($(ms) - t0) / 1000 ))" | awk '{print $1/1000}' >>"$tmp/p"
    t0=$(ms); SESLM_MODEL_KEY_FILE=$tmp/key "$S" info --model "$tmp/enc" --json >/dev/null
    echo "$(( ($(ms) - t0) / 1000 ))" | awk '{print $1/1000}' >>"$tmp/e"
done
printf '%-12s load: ' plaintext; stats <"$tmp/p"
printf '%-12s load: ' encrypted; stats <"$tmp/e"
