#!/usr/bin/env bash
# make_decoder_fixtures.sh — regenerate tests/fixtures/decoder/ from llama.cpp (llama-cpp-python).
# Builds llama.cpp from source in a venv (.venv-oracle-decoder; tens of minutes on 2 cores), fetches the
# model (data/fetch_decoder.sh), and runs make_decoder_fixtures.py.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "$root"
venv="${SESLM_DECODER_VENV:-$root/.venv-oracle-decoder}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    # portable build: the fixtures must not depend on this CPU's instruction set choices more than needed
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
        "$venv/bin/pip" install -r tests/oracle/decoder/requirements.txt
fi
data/fetch_decoder.sh models/SmolLM2-135M-Instruct.Q4_1.gguf
"$venv/bin/python" tests/oracle/decoder/make_decoder_fixtures.py models/SmolLM2-135M-Instruct.Q4_1.gguf \
    tests/fixtures/decoder
