#!/usr/bin/env bash
# install-deps.sh — install what SE-SLM needs on Debian 12 (idempotent; only missing packages are installed).
# Runs apt-get as root, or through sudo when not root.
set -euo pipefail

pkgs=(build-essential cmake pkg-config curl ca-certificates python3 python3-venv
      libutf8proc-dev libcjson-dev libopenblas-openmp-dev liblapacke-dev libssl-dev
      clang libclang-rt-14-dev)
# `seslm serve`: libmicrohttpd; promtool (in Debian's prometheus package) lints /metrics in the tests
pkgs+=(libmicrohttpd-dev prometheus)
# telemetry dumps: the HDF5 C library; h5dump (hdf5-tools) reads them back in tests/cli/test_record.sh
pkgs+=(libhdf5-dev hdf5-tools)
# pipeline configuration files (configs/*.yaml): libyaml
pkgs+=(libyaml-dev)
# model registry: SQLite (embedded) and PostgreSQL (libpq; the server for the registry tests, ci/pg-start.sh)
pkgs+=(libsqlite3-dev libpq-dev postgresql sqlite3)
# S3-compatible artifact store: libcurl (AWS SigV4 signing)
pkgs+=(libcurl4-openssl-dev)

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all packages present"
    exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The prometheus package is here for promtool only: never leave its server enabled or running.
if printf '%s\n' "${missing[@]}" | grep -qx prometheus; then
    $sudo update-rc.d prometheus disable >/dev/null 2>&1 || true
    $sudo invoke-rc.d prometheus stop >/dev/null 2>&1 || true
    if [ -d /run/systemd/system ]; then $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true; fi
fi
# The postgresql package is here for ci/pg-start.sh's throwaway clusters: never leave Debian's default
# cluster enabled or running.
if printf '%s\n' "${missing[@]}" | grep -qx postgresql; then
    $sudo update-rc.d postgresql disable >/dev/null 2>&1 || true
    $sudo invoke-rc.d postgresql stop >/dev/null 2>&1 || true
    if [ -d /run/systemd/system ]; then $sudo systemctl disable --now postgresql >/dev/null 2>&1 || true; fi
fi
