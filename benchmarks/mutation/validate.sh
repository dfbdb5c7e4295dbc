#!/usr/bin/env bash
# A fresh sample, disjoint from run.sh's, run WITH tests/test_mutants.py added to each session's
# tests: the unbiased estimate of the score after the new tests (run.sh's "after" is measured on
# the very mutants the tests were written for). Run after run.sh, with the same OUT_DIR.
#
#   benchmarks/mutation/validate.sh [OUT_DIR]     # default /tmp/icl-mutation; needs OUT_DIR/src-rerun
#
# SEED (default 20261208) and SAMPLE ("session=n ...", default below) as in run.sh; CR_ENV and
# PYTHON_ENV too. Writes OUT_DIR/validation/{*.sqlite, configs/, timing.jsonl, results.json}.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-/tmp/icl-mutation}
seed=${SEED:-20261208}
sample=${SAMPLE:-"solvers_registry=10 trainer=10 tasks=15 solvers_baselines=8"}
nice=${NICE:-15}
cr_env=${CR_ENV:-$out/crvenv}
src="$out/src-rerun"   # the clean copy with tests/test_mutants.py that run.sh made
val="$out/validation"
repo=${REPO:-$(git -C "$here" rev-parse --show-toplevel)}
python_env=${PYTHON_ENV:-$repo/.venv}
mkdir -p "$val/configs"

export PATH="$python_env/bin:$PATH" PYTHONPATH="$src" PYTHONDONTWRITEBYTECODE=1 JAX_PLATFORMS=cpu
export JAX_COMPILATION_CACHE_DIR="$out/xla-cache" JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 \
    JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0
cd "$src"
for entry in $sample; do
    name=${entry%%=*}; n=${entry#*=}
    # the session's tests with tests/test_mutants.py first (and, under -k, selected too)
    sed -e 's#-p no:xdist #-p no:xdist tests/test_mutants.py #' -e "s/-k '\(.*\)'\"/-k '\1 or test_mutants'\"/" \
        "$here/configs/$name.toml" > "$val/configs/$name.toml"
    if [ ! -f "$val/$name.sqlite" ]; then
        cp "$out/sessions/$name.sqlite" "$val/$name.sqlite"
        # run.sh's mutants are not in this sample: mark them skipped, then draw n from the rest
        "$cr_env/bin/python" - "$val/$name.sqlite" <<'EOF'
import sys
from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import WorkResult, WorkerOutcome
with use_db(sys.argv[1], WorkDB.Mode.open) as db:
    ran = [j for j, r in db.results if r.worker_outcome != WorkerOutcome.SKIPPED]
    db.set_multiple_results(ran, WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output="round 1 (not in this sample)"))
EOF
        "$cr_env/bin/python" "$here/sample.py" "$val/$name.sqlite" --n "$n" --seed "$seed" --extend | tee "$val/$name.sample.json"
    fi
    start=$(date +%s)
    nice -n "$nice" "$cr_env/bin/cosmic-ray" exec "$val/configs/$name.toml" "$val/$name.sqlite"
    echo "{\"session\": \"$name\", \"exec_seconds\": $(( $(date +%s) - start ))}" >> "$val/timing.jsonl"
done
"$cr_env/bin/python" "$here/report.py" "$val" --verdicts "$here/verdicts.json" > "$val/results.json"
echo "wrote $val/results.json"
