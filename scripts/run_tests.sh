#!/usr/bin/env bash
# README command 2: set everything up, then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
# Test files are spread over TEST_WORKERS processes (default 2, this machine's cores; 0 = one
# process); each file stays in one process, so its module-scoped fixtures are built once. Files go
# out in collection order, slowest first (tests/conftest.py), not xdist's tests-per-file order.
workers=${TEST_WORKERS:-2}
if [ "$workers" = 0 ]; then
  exec .venv/bin/python -m pytest -q -ra --durations=15 "$@"
fi
exec .venv/bin/python -m pytest -q -ra --durations=15 -n "$workers" --dist loadfile --no-loadscope-reorder "$@"
