#!/usr/bin/env bash
# CI smoke test of the figure and claim scripts: every paper_figures/fig*.py and claim*.py --quick, two
# at a time (paper_figures/run_all.py; outputs go to paper_figures/quick/, not committed). Fails if any
# script fails; prints each one's wall time. It checks no number: paper_figures/check_quick.py (run
# after it in .ci/run) holds each script's headline numbers inside stated bands.
# Usage: bash paper_figures/run_quick.sh   (PYTHON=... to choose the interpreter; default python)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
exec "$PYTHON" paper_figures/run_all.py --quick --python "$PYTHON" "$@"
