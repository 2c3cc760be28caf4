#!/usr/bin/env bash
# test_man_completion.sh — the man page generated from the help texts lists every command of
# `seslm --help` with its help, renders without groff warnings; the bash completion completes commands,
# options and sub-commands from the program itself.
#   bash tests/cli/test_man_completion.sh <path to seslm> <model dir> <repo root>
set -euo pipefail
SESLM="$1"; ROOT="$3"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
python3 "$ROOT/docs/man/gen_man.py" "$SESLM" 0.0.0 > "$tmp/seslm.1"
warn="$(groff -man -Tutf8 -ww -z "$tmp/seslm.1" 2>&1)"
[[ -z "$warn" ]] || { echo "FAIL: groff warnings: $warn"; exit 1; }
cmds="$("$SESLM" --help | awk '/^commands:/{on=1; next} on && /^  [a-z]/{print $1}')"
[[ $(wc -w <<<"$cmds") -ge 20 ]] || { echo "FAIL: few commands in seslm --help: $cmds"; exit 1; }
for c in $cmds; do
    grep -qx ".SS $c" "$tmp/seslm.1" || { echo "FAIL: man page lacks command $c"; exit 1; }
done
# an option of each command's help is in the page (the help text, not only the name)
grep -q -- '--batch-wait-us' "$tmp/seslm.1" && grep -q -- '--session-db' "$tmp/seslm.1" || { echo "FAIL: serve options missing"; exit 1; }
echo "ok: man page has $(wc -w <<<"$cmds") commands, no groff warnings"

source "$ROOT/runtime/cli/seslm.bash-completion"
complete_line() { COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMPREPLY=(); _seslm; echo "${COMPREPLY[*]}"; }
expect() { local want="$1"; shift; local got; got="$(complete_line "$SESLM" "$@")"
           [[ "$got" == "$want" ]] || { echo "FAIL: completing '$*': got '$got', want '$want'"; exit 1; }; }
expect "embed" em
expect "registry" regi
expect "--backend --batch" embed --ba
expect "list lineage" registry l
expect "build query" kb ""
expect "--session-db --session-ttl" serve --session
touch "$tmp/corpus-a.txt"
expect "$tmp/corpus-a.txt" embed --input "$tmp/corpus-"
echo "ok: bash completion of commands, options, sub-commands and files"
