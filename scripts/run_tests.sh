#!/usr/bin/env bash
# Quick start (B): run the test suite (sets the environment up first if needed). Extra args go to pytest,
# e.g. `bash scripts/run_tests.sh -m slow` for the long checks (full Urban100 reference numbers).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh >/dev/null
. .venv/bin/activate
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# the architecture contracts (.importlinter): cli -> bench -> api -> methods -> core -> utils, rooms independent
lint-imports --no-cache | tail -n 6
python -m pytest -q -p no:cacheprovider "$@"
