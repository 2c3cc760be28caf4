#!/usr/bin/env bash
# test.sh — build and run the whole test suite, as CI does:
#   1. release build (CUDA sources compiled when nvcc is present) + ctest; the ctest install_tree installs
#      into a temporary prefix, builds a small C program with `pkg-config --cflags --libs seslm` against
#      the installed core, runs it on the real model, checks with ldd that it pulls in no HTTP, SQL or
#      curl library, and pip-installs ./python (tests/install/test_install.sh); deploy_files lints the
#      Dockerfile, the Kubernetes manifests and the systemd units (tests/deploy/test_deploy.sh)
#   2. ASan + UBSan build + ctest: every test (the real-model parity tests included) but the whole training /
#      evolution runs labelled "long" (tests/CMakeLists.txt: test_adapt, test_decoder_evolve, test_evolve, 657-1063 s
#      each sanitized on 2 cores, which put CI past its 90 minutes); their code runs sanitized in unit tests and shorter CLI tests
#   3. libFuzzer targets (clang) run for a bounded time
# Installs missing packages and fetches the real model first.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
jobs="$(nproc)"
fuzz_seconds="${SESLM_FUZZ_SECONDS:-60}"
# the test venvs download several GB of wheels; a fresh CI disk has no room to keep a second copy in ~/.cache/pip
export PIP_NO_CACHE_DIR=1
# ctest runs $(nproc) tests at once, each with its own threads: OpenMP's spinning waits (GCC's default) then take
# the cores the other tests need (a fifth of the CPU time in perf on 2 cores); sleeping waits cost no test time
export OMP_WAIT_POLICY=PASSIVE

ci/install-deps.sh
data/fetch_model.sh models/all-MiniLM-L6-v2
data/fetch_decoder.sh models/SmolLM2-135M-Instruct.Q4_1.gguf

# a throwaway PostgreSQL cluster for the registry tests (tests needing it skip without SESLM_TEST_PG_DSN)
pg_env=$(ci/pg-start.sh) # a failure stops CI here (eval "$(...)" would hide it)
eval "$pg_env"
trap 'ci/pg-stop.sh' EXIT
# a throwaway S3-compatible server (moto) for the S3 store tests (they skip without SESLM_TEST_S3_ENDPOINT)
s3_env=$(ci/s3-start.sh)
eval "$s3_env"
trap 'ci/pg-stop.sh; ci/s3-stop.sh' EXIT

# what this CI provides must run: a test that would skip for want of it fails instead (tests/test.h
# TEST_SKIP_UNLESS, tests/cli/lib.sh cli_skip); ci/check_skips.sh then allows only the GPU tests to skip,
# and those only on a machine without a GPU
export SESLM_REQUIRE_PG=1 SESLM_REQUIRE_S3=1 SESLM_REQUIRE_MODEL=1
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    export SESLM_REQUIRE_GPU=1
fi

echo "== release build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs" | tee build/ctest.log
ci/check_skips.sh build/ctest.log

echo "== ASan + UBSan build"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSESLM_SANITIZE=ON
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 LSAN_OPTIONS=suppressions=$root/ci/lsan.supp \
    ctest --test-dir build-asan --output-on-failure -j"$jobs" -LE long | tee build-asan/ctest.log
ci/check_skips.sh build-asan/ctest.log

echo "== fuzzing (${fuzz_seconds}s per target)"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DSESLM_FUZZ=ON -DSESLM_FUZZ_SECONDS="$fuzz_seconds"
cmake --build build-fuzz -j"$jobs" --target fuzz_tokenizer fuzz_safetensors fuzz_gguf fuzz_config fuzz_model_files fuzz_serve_api fuzz_labelled fuzz_telemetry
ctest --test-dir build-fuzz --output-on-failure -L fuzz

echo "== all tests passed"
