#!/usr/bin/env bash
# run.sh — the intent head vs scikit-learn on the same embeddings, in one run (bench/RESULTS.md §intent).
#
#   bench/intent/run.sh [--seeds N] [--threads N] [--shots 5,10,20,50] [--no-mlp] [--feature-layers K]
#
# --feature-layers K: the head's input, the last K layers' features (default 3, as `seslm intent train`;
# 1: the sentence embeddings); the peers get the same features.
# For SNIPS, CLINC150 and CLINC150's 10 domains (subsets in data/intent/, see its NOTICE.md; the domains on all
# 4,500 CLINC150 test rows since 2026-12-06: on 300 a cell moved 1-2 points with the test rows alone):
# build/bench/bench_intent embeds every text with our runtime, writes the embeddings and the few-shot training
# rows to bench/out/intent/, trains our head for each (k, seed) and measures latencies; then peer_sklearn.py trains the
# scikit-learn peers on exactly those rows and embeddings. All lines go to bench/out/intent/results.jsonl;
# report.py turns them into the markdown table.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
seeds=3 threads=2 shots=5,10,20,50 mlp=--mlp layers=3
while [ $# -gt 0 ]; do
    case "$1" in
    --seeds) seeds="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --shots) shots="$2"; shift 2 ;;
    --no-mlp) mlp=""; shift ;;
    --feature-layers) layers="$2"; shift 2 ;;
    -h|--help) sed -n 2,13p "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ -x build/bench/bench_intent ] || { cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j2; }
py=python3
[ -x .venv-intent/bin/python ] && py=.venv-intent/bin/python
$py -c "import sklearn" 2>/dev/null || { echo "run.sh: scikit-learn is needed: python3 -m venv .venv-intent && .venv-intent/bin/pip install scikit-learn" >&2; exit 1; }
out=bench/out/intent
mkdir -p "$out"
res=$out/results.jsonl
: >"$res"
d=data/intent
export OMP_NUM_THREADS=$threads
echo "== snips" >&2
build/bench/bench_intent --feature-layers "$layers" --name snips --train $d/snips_train50.tsv --test $d/snips_test700.tsv \
    --shots "$shots" --seeds "$seeds" --threads "$threads" --out "$out" | tee -a "$res"
OMP_NUM_THREADS=$threads $py bench/intent/peer_sklearn.py "$out" snips $d/snips_train50.tsv $d/snips_test700.tsv $mlp | tee -a "$res"
echo "== clinc150" >&2
build/bench/bench_intent --feature-layers "$layers" --name clinc150 --train $d/clinc150_train50.tsv --test $d/clinc150_test10.tsv \
    --oos $d/clinc150_oos_test300.tsv --val $d/clinc150_val3.tsv --val-oos $d/clinc150_oos_val100.tsv \
    --shots "$shots" --seeds "$seeds" --threads "$threads" --out "$out" | tee -a "$res"
OMP_NUM_THREADS=$threads $py bench/intent/peer_sklearn.py "$out" clinc150 $d/clinc150_train50.tsv $d/clinc150_test10.tsv \
    $d/clinc150_oos_test300.tsv $d/clinc150_val3.tsv $d/clinc150_oos_val100.tsv $mlp | tee -a "$res"
echo "== clinc150 domains (a third label set, held out from tuning)" >&2
build/bench/bench_intent --feature-layers "$layers" --name clinc150_domains --train $d/clinc150_domains_train50.tsv --test $d/clinc150_domains_test4500.tsv \
    --shots "$shots" --seeds "$seeds" --threads "$threads" --updates 0 --out "$out" | tee -a "$res"
OMP_NUM_THREADS=$threads $py bench/intent/peer_sklearn.py "$out" clinc150_domains $d/clinc150_domains_train50.tsv \
    $d/clinc150_domains_test4500.tsv $mlp | tee -a "$res"
$py bench/intent/report.py "$res"
