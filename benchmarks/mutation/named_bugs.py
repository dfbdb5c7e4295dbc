"""Do the tests catch the bugs a reviewer once slipped past them? Apply each named one-line bug to a
temporary copy of the source, run the tests meant to catch it there, and record which failed.

    python benchmarks/mutation/named_bugs.py            # ~2 min on 2 cores; writes named_bugs.json

The library in this checkout is never modified: every mutant lives in its own copy of the
repository (icl/, tests/, pyproject.toml) under a temporary directory that is removed afterwards,
also on Ctrl-C. The tests run in that copy (`python -m pytest` with the copy as working
directory, so `import icl` finds the copy's package; checked before anything runs). First the
unmodified copy must pass the tests (else a "caught" bug would prove nothing); then each bug's
patch must apply at exactly one place (else the script stops: the source moved on), and the bug
counts as caught when at least one of its tests fails. The JSON records per bug: the patch (a
unified diff), the tests run, the ones that failed, pass/fail, and the time taken.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).with_name("named_bugs.json")
COPIED = ("icl", "tests", "pyproject.toml")


@dataclasses.dataclass(frozen=True)
class Bug:
    name: str
    file: str  # relative to the repository root
    old: str  # the exact text replaced (must occur once)
    new: str
    tests: tuple[str, ...]  # pytest node ids or files, relative to the root


OPTIMIZER_TESTS = ("tests/test_optimizer.py",)
BUGS = (
    Bug("gamma_star ignores weight_std (noise ratio computed with weight_std = 1)", "icl/solvers/optimal.py",
        "ratio = (noise_std / weight_std) ** 2", "ratio = (noise_std / 1.0) ** 2",
        ("tests/test_solvers.py::test_gamma_star_is_the_moment_solution",
         "tests/test_solvers.py::test_gamma_star_is_the_best_preconditioner",
         "tests/test_solvers.py::test_gamma_star_minimises_the_closed_form_loss")),
    Bug("optimizer warm-up removed", "icl/trainer.py",
        "schedule = optax.join_schedules([warmup, main], [config.warmup_steps])", "schedule = main",
        OPTIMIZER_TESTS),
    Bug("cosine schedule turned constant", "icl/trainer.py",
        "main = optax.cosine_decay_schedule(config.lr, decay_steps)", "main = optax.constant_schedule(config.lr)",
        OPTIMIZER_TESTS),
    Bug("AdamW weight decay ignored", "icl/trainer.py",
        "weight_decay=config.weight_decay)", "weight_decay=0.0)",
        OPTIMIZER_TESTS),
    Bug("gradient clipping moved after Adam", "icl/trainer.py",
        "optax.chain(optax.clip_by_global_norm(config.grad_clip), opt)", "optax.chain(opt, optax.clip_by_global_norm(config.grad_clip))",
        OPTIMIZER_TESTS),
)


def copy_repo(dest: Path) -> Path:
    """icl/, tests/ and pyproject.toml of this checkout (its working tree, as it is now) under dest."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in COPIED:
        src = ROOT / name
        (shutil.copytree(src, dest / name, ignore=ignore) if src.is_dir() else shutil.copy2(src, dest / name))
    return dest


def apply(bug: Bug, repo: Path) -> str:
    """Patch the copy in `repo`; return the unified diff. Refuses unless `bug.old` occurs once."""
    path = repo / bug.file
    text = path.read_text()
    count = text.count(bug.old)
    if count != 1:
        raise SystemExit(f"named_bugs: the patch of {bug.name!r} matches {count} places in {bug.file} (must be 1): update BUGS")
    mutated = text.replace(bug.old, bug.new)
    path.write_text(mutated)
    return "".join(difflib.unified_diff(text.splitlines(True), mutated.splitlines(True), f"a/{bug.file}", f"b/{bug.file}", n=0))


def pytest(repo: Path, tests: tuple[str, ...]) -> tuple[int, list[str], float, str]:
    """(exit code, failed node ids, seconds, output tail) of the tests, run in the copy."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf", *tests]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - start
    failed = sorted(set(re.findall(r"^FAILED (\S+)", done.stdout, flags=re.M)))
    return done.returncode, failed, round(seconds, 1), done.stdout[-1500:]


def check_imports_from(repo: Path) -> None:
    where = subprocess.run([sys.executable, "-c", "import icl; print(icl.__file__)"], cwd=repo, capture_output=True, text=True,
                           check=True).stdout.strip()
    if not Path(where).resolve().is_relative_to(repo.resolve()):
        raise SystemExit(f"named_bugs: `import icl` in the copy found {where}, not the copy: the mutants would not be tested")


def git_state() -> dict:
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.rstrip("\n")
    dirty = [line[3:] for line in git("status", "--porcelain", "--", *COPIED).splitlines()]
    return {"commit": git("rev-parse", "HEAD"), "uncommitted_files_in_copy": dirty}


def main() -> int:
    results, started = [], time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="named_bugs-") as tmp:  # removed on exit, also on Ctrl-C
        base = copy_repo(Path(tmp) / "clean")
        check_imports_from(base)
        all_tests = tuple(dict.fromkeys(t for bug in BUGS for t in bug.tests))
        code, failed, base_seconds, tail = pytest(base, all_tests)
        print(f"unmodified source: exit {code} in {base_seconds} s")
        if code != 0:
            print(tail)
            raise SystemExit("named_bugs: the tests fail on the unmodified source; fix that first")
        for i, bug in enumerate(BUGS):
            repo = copy_repo(Path(tmp) / f"mutant{i}")
            patch = apply(bug, repo)
            code, failed, seconds, tail = pytest(repo, bug.tests)
            caught = code != 0 and bool(failed)
            print(f"{'CAUGHT' if caught else 'MISSED'}  {bug.name}: {len(failed)} failing test(s), {seconds} s")
            results.append({"bug": bug.name, "file": bug.file, "patch": patch, "tests_run": list(bug.tests),
                            "caught": caught, "caught_by": failed, "pytest_exit_code": code, "seconds": seconds})
            shutil.rmtree(repo)
    report = {"script": "benchmarks/mutation/named_bugs.py", "date": started, **git_state(),
              "baseline": {"tests": list(all_tests), "exit_code": 0, "seconds": base_seconds},
              "all_caught": all(r["caught"] for r in results), "bugs": results}
    OUT.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}: {sum(r['caught'] for r in results)} of {len(results)} caught")
    return 0 if report["all_caught"] else 1


if __name__ == "__main__":
    sys.exit(main())
