#!/usr/bin/env bash
# test_options.sh — the one option parser (runtime/cli/cli_args.c) gives every converted command the same
# behaviour: --help (exit 0), unknown option, missing value, integer / number out of range, a positional
# where none is taken (all exit 2 with the same messages), an option's value that starts with '-', and "--"
# ending the options. Every command and subcommand is on the table parser: each rejects an unknown option
# and an option without its value (exit 2) and prints --help (exit 0); the value kinds are checked once each.
#   bash tests/cli/test_options.sh <path to seslm> <model dir> <repo root>
set -uo pipefail
SESLM="$1"; MODEL="$2"
fail=0
check() { # check WANT_RC PATTERN ARGS...
    local want="$1" pat="$2"; shift 2
    local out rc
    out="$("$SESLM" "$@" 2>&1)"; rc=$?
    if [[ $rc -ne $want ]] || ! grep -qE -- "$pat" <<<"$out"; then
        echo "FAIL: seslm $* -> exit $rc (want $want), output: $(head -c 300 <<<"$out")"; fail=1
    fi
}
for c in embed similarity tokenize serve record drift evolve plan ingest; do
    check 0 "^usage: seslm $c" "$c" --help
    check 2 "^seslm $c: unknown option '--bogus' \(see seslm $c --help\)$" "$c" --bogus 1
done
for c in embed serve record; do
    check 2 "^seslm $c: --threads needs a value$" "$c" --threads
    check 2 "^seslm $c: --threads must be an integer in 0\.\.1024 \(got '-1'\)$" "$c" --threads -1
    check 2 "^seslm $c: --threads must be an integer in 0\.\.1024 \(got '2x'\)$" "$c" --threads 2x
done
check 2 "^seslm serve: --kb-threshold must be a number in \[-1, 1\] \(got '1\.5'\)$" serve --kb-threshold 1.5
check 2 "^seslm serve: --kb-threshold must be a number in \[-1, 1\] \(got 'nan'\)$" serve --kb-threshold nan
check 2 "^seslm serve: unexpected argument 'extra' \(see seslm serve --help\)$" serve extra
check 2 "^seslm drift: unexpected argument 'extra'" drift extra
check 2 "^seslm evolve: --config is required" evolve --threads 2
check 2 "^seslm plan: --calib-lines must be an integer in 1\.\.1048576 \(got '0'\)$" plan --calib-lines 0
# a repeatable option (ingest --telemetry DIR, at most 256) and FILE arguments
many=(); for i in $(seq 257); do many+=(--telemetry "d$i"); done
check 2 "^seslm ingest: at most 256 --telemetry options$" ingest --out x.h5 "${many[@]}"
check 2 "^seslm ingest: --out FILE and at least one --telemetry DIR or FILE are required" ingest a.h5 b.h5
# --device is an alias of --backend; a value may start with '-' (here a bad backend name, refused by the library)
check 1 "backend '-x'|unknown backend" embed --model "$MODEL" --device -x hello
# after "--" an argument that looks like an option is a text
out="$("$SESLM" tokenize --model "$MODEL" -- --help 2>&1)"
grep -q '"input_ids":\[101,' <<<"$out" || { echo "FAIL: '--' did not end the options: $out"; fail=1; }
# flags take no value: --progress then a positional is an unexpected argument, not the flag's value
check 2 "^seslm record: unexpected argument 'x'" record --progress x

# every command and subcommand (all on the table parser now): --help exits 0 with the usage on standard
# output; an unknown option and an option without its value exit 2, naming the option. Each entry is
# "WORDS|NAME|OPTION": the command words, the name in messages, an option that takes a value.
every=(
    "embed|embed|--threads" "similarity|similarity|--model" "tokenize|tokenize|--model" "info|info|--model"
    "serve|serve|--port" "record|record|--input" "inspect|inspect|--top" "ingest|ingest|--out"
    "drift|drift|--reference" "plan|plan|--telemetry" "recompile|recompile|--plan" "adapt|adapt|--rank"
    "distill|distill|--student" "evolve|evolve|--config" "export|export|--out" "encrypt|encrypt|--key-file"
    "validate|validate|--parent" "promote|promote|--alias" "approve|approve|--by" "rollback|rollback|--reason"
    "registry list|registry|--registry" "registry show|registry|--by" "audit verify|audit|--registry"
    "audit log|audit|--limit" "audit rotate-key|audit|--reason" "intent train|intent|--data"
    "intent predict|intent|--head" "intent learn|intent|--text" "kb build|kb|--passages" "kb query|kb|-k"
    "generate|generate|--prompt" "chat|chat|--system"
)
n_every=0
for e in "${every[@]}"; do
    IFS='|' read -r words name opt <<<"$e"
    read -r -a w <<<"$words"
    check 0 "^usage: seslm " "${w[@]}" --help
    check 2 "^seslm $name: unknown option '--bogus' \(see seslm $name --help\)$" "${w[@]}" --bogus 1
    check 2 "^seslm $name: $opt needs a value$" "${w[@]}" "$opt"
    n_every=$((n_every + 1))
done
# --help goes to standard output (a pager or grep sees it), nothing to standard error
for c in recompile "intent learn" "audit verify" promote encrypt; do
    read -r -a w <<<"$c"
    err="$("$SESLM" "${w[@]}" --help 2>&1 >/dev/null)"
    [[ -z $err ]] || { echo "FAIL: seslm $c --help wrote to standard error: $err"; fail=1; }
done
# the kinds the converted commands added: a choice, a short option, open intervals, positionals
check 2 "^seslm recompile: --quantize must be one of int8\|none \(got 'int4'\)$" recompile --plan p --out o --quantize int4
check 2 "^seslm recompile: --embeddings must be one of int8\|int4\|f32\|pq4\|pq8 \(got ''\)$" recompile --embeddings ""
check 2 "^seslm generate: --backend must be one of cpu\|cpu-ref \(got 'gpu'\)$" generate --prompt a --backend gpu
check 2 "^seslm kb: -k must be an integer in 1\.\.100 \(got '0'\)$" kb query --kb x -k 0
check 2 "^seslm kb: --threshold must be a number in \[-1, 1\] \(got '2'\)$" kb query --kb x --threshold 2 q
check 2 "^seslm adapt: --holdout must be a number in \(0, 0\.9\), ends excluded \(got 0\)$" adapt --holdout 0
check 2 "^seslm adapt: --lr must be a number in \(0, 1\), ends excluded \(got 1\)$" adapt --lr 1
check 2 "^seslm distill: --seed must be a whole number$" distill --seed 1.5
check 2 "^seslm intent: --lr must be a number in \[1e-09, 1\] \(got '0'\)$" intent train --lr 0
check 2 "^seslm intent: --hidden must be up to" intent train --hidden 0,x
check 2 "^seslm promote: too many arguments: 'c' \(see seslm promote --help\)$" promote a b c
check 2 "^seslm registry: too many arguments: 'd'" registry diff a b c d
check 2 "^seslm encrypt: too many arguments" encrypt a b c
check 2 "^seslm encrypt: IN_DIR and OUT_DIR are required" encrypt a
check 2 "^seslm audit: new-key takes one FILE" audit new-key
check 2 "^seslm audit: unknown option '--bogus'" audit new-key --bogus
check 2 "^seslm audit: unknown option '--limit'" audit verify --limit 3
check 2 "^seslm info: unexpected argument 'x'" info x
check 2 "^seslm validate: --threads must be an integer in 0\.\.1024 \(got 'x'\)$" validate --threads x
check 2 "^seslm intent: learn needs --head HEAD and 1\.\.64 pairs" intent learn --head h --text a
check 2 "^seslm intent: --text must not be empty$" intent learn --head h --text "" --label a
check 2 "^seslm kb: build reads --passages FILE$" kb build --input x
[[ $fail -eq 0 ]] && echo "ok: one option parser, the same messages and exit codes across $n_every commands and subcommands"
exit $fail
