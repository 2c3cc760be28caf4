#!/usr/bin/env bash
# test_options.sh — the one option parser (runtime/cli/cli_args.c) gives every converted command the same
# behaviour: --help (exit 0), unknown option, missing value, integer / number out of range, a positional
# where none is taken (all exit 2 with the same messages), an option's value that starts with '-', and "--"
# ending the options. Commands on the table parser: embed, similarity, tokenize (common options), serve,
# record, drift, evolve, plan, ingest.
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
[[ $fail -eq 0 ]] && echo "ok: one option parser, the same messages and exit codes across 9 commands"
exit $fail
