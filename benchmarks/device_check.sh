#!/usr/bin/env bash
# The one device check of icl-gd on a machine with an accelerator (made for one GPU; jax, flax,
# optax and orbax already installed, no network). Runs icl verify, a precision check, the default
# job, the speed benchmark and as many figures' full modes as fit in the budget, and writes
# $OUT/device_check.json (or ./device_check/ when OUT is unset). Usage:
#   bash benchmarks/device_check.sh [BUDGET_S]        (default 480 s; run directories under $SCRATCH)
# matplotlib and tqdm, if missing, are installed from benchmarks/wheelhouse/ when it exists
# (prepare it on a machine with network: pip download matplotlib tqdm -d benchmarks/wheelhouse).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-device_check}"
PYTHON="${PYTHON:-python}"
if ! "$PYTHON" -c "import matplotlib, tqdm" 2>/dev/null && [ -d benchmarks/wheelhouse ]; then
  "$PYTHON" -m pip install -q --no-index --find-links benchmarks/wheelhouse matplotlib tqdm || true
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT.gpu.txt" 2>&1 || true
mkdir -p "$OUT" && mv "$OUT.gpu.txt" "$OUT/gpu.txt"
exec "$PYTHON" benchmarks/device_check.py --out "$OUT" --scratch "${SCRATCH:-/tmp/icl_device_check}" --budget-s "${1:-480}"
