#!/bin/bash
# make_telemetry_corpus.sh BUILD_DIR — (re)writes the seed corpus of fuzz_telemetry (tests/fuzz/corpus_telemetry/):
# three dumps of the tiny random model written by make_telemetry_seed.c against BUILD_DIR's shared libraries (a
# window with data and intent labels, an empty window, a pruned model's), each about 17 KB. The regress_* seeds are
# inputs the fuzzer found (kept so that every CI run replays them); this script leaves them alone.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: make_telemetry_corpus.sh BUILD_DIR}" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
inc=()
for d in "$root"/runtime/*/include "$root"/pipeline/*/include "$root"/runtime/include "$root"/runtime/telemetry/hdf5/include; do
  inc+=(-I "$d")
done
cc -std=c11 -O1 -D_GNU_SOURCE "${inc[@]}" -I "$root/tests" -I "$root/runtime/include/seslm" \
   "$here/make_telemetry_seed.c" -o "$tmp/make_telemetry_seed" -L"$build" -lseslm-telemetry-hdf5 -lseslm \
   -Wl,-rpath,"$build" -lm
mkdir -p "$here/corpus_telemetry"
"$tmp/make_telemetry_seed" "$tmp"
for n in full empty pruned; do cp "$tmp/$n.h5" "$here/corpus_telemetry/$n"; done
