#!/usr/bin/env bash
# Mutation-testing benchmark over the numeric core (cosmic-ray 8.7.0). Reproduces the run from a
# clean checkout in a temporary directory; never touches the working tree it is started from.
#
#   benchmarks/mutation/run.sh [OUT_DIR]         # default OUT_DIR: /tmp/icl-mutation
#
# Environment:
#   PYTHON_ENV  a venv with icl-gd's dependencies and pytest (default: .venv of this checkout);
#               the copy is put first on PYTHONPATH, so an editable install elsewhere is shadowed.
#   CR_ENV      a venv with cosmic-ray (default: created at $OUT_DIR/crvenv, pip install cosmic-ray==8.7.0)
#   SEED        the sample's seed (default 20261207)
#   SAMPLE      "session=n ..." sample sizes (n <= 0: every mutant); default below
#   REPO        the checkout to take the commit from (default: the one holding this script)
#   REV         the commit to test (default HEAD); EXTRA_TESTS: test files copied from the
#               working tree on top of the commit (default: none)
#   NICE        niceness of the whole run (default 15); the run uses one worker.
#
# Writes OUT_DIR/sessions/*.sqlite (cosmic-ray's sessions), OUT_DIR/rerun.json (the survivors and
# timeouts against tests/test_mutants.py, when the checkout has it; RERUN=0 skips) and
# OUT_DIR/results.json (benchmarks/mutation/report.py, with verdicts.json). Each mutant runs the session's test command (configs/*.toml:
# the test files that cover the module, -x, a per-mutant timeout) in a fresh process.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=${REPO:-$(git -C "$here" rev-parse --show-toplevel)}
out=${1:-/tmp/icl-mutation}
seed=${SEED:-20261207}
rev=${REV:-HEAD}
nice=${NICE:-15}
sample=${SAMPLE:-"solvers_linear=25 solvers_baselines=25 solvers_registry=15 compare=15 constructions=15 trainer=15 tasks=40"}
python_env=${PYTHON_ENV:-$repo/.venv}

mkdir -p "$out"
src="$out/src"
rm -rf "$src" && mkdir -p "$src"
git -C "$repo" archive "$rev" | tar -x -C "$src"
for f in ${EXTRA_TESTS:-}; do cp "$repo/$f" "$src/$f"; done
# the benchmark itself (configs, sampler) comes from next to this script, committed or not
mkdir -p "$src/benchmarks/mutation" && cp -r "$here"/configs "$here"/sample.py "$src/benchmarks/mutation/"

cr_env=${CR_ENV:-$out/crvenv}
if [ ! -x "$cr_env/bin/cosmic-ray" ]; then
    python3 -m venv "$cr_env"
    "$cr_env/bin/pip" install -q cosmic-ray==8.7.0
fi

export PATH="$python_env/bin:$PATH" PYTHONPATH="$src" PYTHONDONTWRITEBYTECODE=1 JAX_PLATFORMS=cpu
export JAX_COMPILATION_CACHE_DIR="$out/xla-cache" JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 \
    JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0
python -c "import icl, sys; assert icl.__file__.startswith('$src'), icl.__file__"

cd "$src"
mkdir -p "$out/sessions"
for entry in $sample; do
    name=${entry%%=*}; n=${entry#*=}
    session="$out/sessions/$name.sqlite"
    cfg="benchmarks/mutation/configs/$name.toml"
    if [ ! -f "$session" ]; then
        nice -n "$nice" "$cr_env/bin/cosmic-ray" init "$cfg" "$session"
        functions=()
        [ "$name" = trainer ] && functions=(--functions icl/trainer.py:build_optimizer,data_keys,heldout_key,init_params)
        "$cr_env/bin/python" benchmarks/mutation/sample.py "$session" --n "$n" --seed "$seed" "${functions[@]}" \
            | tee "$out/sessions/$name.sample.json"
    fi
    start=$(date +%s)
    nice -n "$nice" "$cr_env/bin/cosmic-ray" exec "$cfg" "$session"
    echo "{\"session\": \"$name\", \"exec_seconds\": $(( $(date +%s) - start ))}" >> "$out/sessions/timing.jsonl"
done

# The survivors (and timeouts) against the tests written for them, in a second clean copy (the first
# is restored after each mutant by cosmic-ray, but a killed run could leave one applied).
report_args=(--verdicts "$here/verdicts.json")
if [ "${RERUN:-1}" = 1 ] && [ -f "$repo/tests/test_mutants.py" ]; then
    rerun_src="$out/src-rerun"
    rm -rf "$rerun_src" && mkdir -p "$rerun_src"
    git -C "$repo" archive "$rev" | tar -x -C "$rerun_src"
    for f in ${EXTRA_TESTS:-} tests/test_mutants.py; do cp "$repo/$f" "$rerun_src/$f"; done
    PYTHONPATH="$rerun_src" nice -n "$nice" "$cr_env/bin/python" "$here/rerun.py" "$out/sessions" --src "$rerun_src" \
        --include-timeouts > "$out/rerun.json"
    report_args+=(--rerun "$out/rerun.json")
fi
"$cr_env/bin/python" "$here/report.py" "$out/sessions" "${report_args[@]}" > "$out/results.json"
echo "wrote $out/results.json"
