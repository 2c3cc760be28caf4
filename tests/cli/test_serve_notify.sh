#!/usr/bin/env bash
# test_serve_notify.sh — readiness notification of `seslm serve` (sd_notify protocol); see test_serve_notify.py
set -euo pipefail
exec python3 "$(dirname "${BASH_SOURCE[0]}")/test_serve_notify.py" "$1" "$2"
