#!/usr/bin/env bash
# gate.sh — the quality / speed / memory gate MLOps pipelines call on a candidate model: runs
# `seslm validate` (the validation sandbox, docs/validation.md) and leaves a JUnit XML where the
# pipeline wants it. The exit status is seslm validate's: 0 every gate passed, 1 a gate failed,
# 2 bad usage / input (nothing judged), 3 inconclusive (a timing gate could not decide on a busy machine:
# rerun; neither deploy nor reject).
set -u

usage() {
    cat <<'USAGE'
usage: ci/gate.sh --candidate DIR [--parent DIR] [--config FILE] [--junit PATH] [--out DIR]
                  [--seslm PATH] [--threads N]

Validates the candidate model directory against its parent and writes the gate results as JUnit XML.

  --candidate DIR  the model to judge (required)
  --parent DIR     the model it must beat or match (default models/all-MiniLM-L6-v2)
  --config FILE    gates, data and sample sizes (default configs/gates.yaml)
  --junit PATH     where the JUnit XML goes (default OUT/junit.xml)
  --out DIR        verdict.json, report.md and junit.xml (default: a new temporary directory,
                   printed on standard error)
  --seslm PATH     the seslm binary (default $SESLM, else build/seslm)
  --threads N      worker threads (default: the config's)

Run from the repository root (the config's data paths are relative to it).
Exit status: 0 pass, 1 a gate failed, 2 usage error or bad input.
USAGE
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seslm=${SESLM:-$root/build/seslm}
parent=$root/models/all-MiniLM-L6-v2
config=$root/configs/gates.yaml
candidate='' junit='' out='' threads=''
while [ $# -gt 0 ]; do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    --candidate | --parent | --config | --junit | --out | --seslm | --threads)
        if [ $# -lt 2 ]; then
            echo "gate.sh: $1 needs a value" >&2
            exit 2
        fi
        case "$1" in
        --candidate) candidate=$2 ;;
        --parent) parent=$2 ;;
        --config) config=$2 ;;
        --junit) junit=$2 ;;
        --out) out=$2 ;;
        --seslm) seslm=$2 ;;
        --threads) threads=$2 ;;
        esac
        shift 2 ;;
    *)
        echo "gate.sh: unknown argument '$1' (ci/gate.sh --help)" >&2
        exit 2 ;;
    esac
done
if [ -z "$candidate" ]; then
    echo "gate.sh: --candidate DIR is required (ci/gate.sh --help)" >&2
    exit 2
fi
if [ ! -x "$seslm" ]; then
    echo "gate.sh: no seslm binary at $seslm (build first: cmake -S . -B build && cmake --build build)" >&2
    exit 2
fi
if [ -z "$out" ]; then
    out=$(mktemp -d "${TMPDIR:-/tmp}/seslm-gate.XXXXXX") || exit 2
    echo "gate.sh: outputs in $out" >&2
fi
args=(validate --parent "$parent" --candidate "$candidate" --config "$config" --out "$out")
[ -n "$threads" ] && args+=(--threads "$threads")
"$seslm" "${args[@]}"
rc=$?
if [ -n "$junit" ] && [ -f "$out/junit.xml" ] && { [ "$rc" -le 1 ] || [ "$rc" -eq 3 ]; }; then
    mkdir -p "$(dirname "$junit")" && cp "$out/junit.xml" "$junit.tmp.$$" && mv -f "$junit.tmp.$$" "$junit" || {
        echo "gate.sh: cannot write $junit" >&2
        exit 2
    }
fi
exit "$rc"
