#!/usr/bin/env bash
# CI smoke test of the figure and claim scripts: every paper_figures/fig*.py and claim*.py --quick in turn (outputs go to
# paper_figures/quick/, not committed). Fails if any script fails; prints each one's wall time.
# Usage: bash paper_figures/run_quick.sh   (PYTHON=... to choose the interpreter; default python)
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
failed=()
shopt -s nullglob
scripts=(paper_figures/fig*.py paper_figures/claim*.py)
if [ ${#scripts[@]} -eq 0 ]; then
  echo "run_quick: no paper_figures/fig*.py or claim*.py found" >&2
  exit 1
fi
for script in "${scripts[@]}"; do
  echo "=== $script --quick"
  start=$(date +%s)
  if "$PYTHON" "$script" --quick; then
    echo "=== $script: ok in $(( $(date +%s) - start )) s"
  else
    echo "=== $script: FAILED after $(( $(date +%s) - start )) s" >&2
    failed+=("$script")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "run_quick: ${#failed[@]} of ${#scripts[@]} failed: ${failed[*]}" >&2
  exit 1
fi
echo "run_quick: all ${#scripts[@]} figure scripts passed"
