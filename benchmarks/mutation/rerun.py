"""Re-run the survivors of the benchmark's sessions with the tests added since (tests/test_mutants.py).

    python rerun.py SESSIONS_DIR --src SRC [--extra tests/test_mutants.py] > rerun.json

SRC is a clean copy of the code under test (with the new test file in it; run.sh's layout), NOT
the copy a running `cosmic-ray exec` is mutating: each survivor is applied there in place (cosmic-ray's
own `mutate_and_test`, which restores the file afterwards) and the extra test files run on it (the
session's own tests already let it through).  Prints {mutant id: outcome}, outcome in
killed / timeout / survived / incompetent. With --timeouts SECONDS: the mutants that timed out
are re-run instead, with the session's own tests and the longer timeout (a timeout on a loaded
machine may hide a survivor).
"""

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from cosmic_ray.config import load_config
from cosmic_ray.mutating import mutate_and_test
from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import TestOutcome, WorkerOutcome

sys.path.insert(0, str(Path(__file__).parent))
from report import mutant_id


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("sessions")
    parser.add_argument("--src", required=True)
    parser.add_argument("--extra", action="append", default=None)
    parser.add_argument("--only", action="append", default=[], help="mutant ids (default: every survivor)")
    parser.add_argument("--include-timeouts", action="store_true",
                        help="run the extra tests on the mutants that timed out too")
    parser.add_argument("--timeouts", type=float, default=None,
                        help="instead: re-run the mutants that timed out with the session's own tests and this timeout")
    args = parser.parse_args()
    extra = args.extra or ["tests/test_mutants.py"]
    configs = Path(__file__).parent / "configs"
    out = {}
    os.chdir(args.src)
    for path in sorted(Path(args.sessions).resolve().glob("*.sqlite")):
        config = load_config(configs / f"{path.stem}.toml")
        words = shlex.split(config.test_command)
        flags = [w for w in words[:words.index("pytest") + 1]]
        with use_db(str(path), WorkDB.Mode.open) as db:
            items = {item.job_id: item for item in db.work_items}
            if args.timeouts:
                survivors = [items[j] for j, r in db.results
                             if r.worker_outcome == WorkerOutcome.NORMAL and r.output == "timeout"]
            else:
                survivors = [items[j] for j, r in db.results
                             if r.worker_outcome == WorkerOutcome.NORMAL and (r.test_outcome == TestOutcome.SURVIVED or
                                                                             (args.include_timeouts and r.output == "timeout"))]
        for item in survivors:
            mid = mutant_id(item.mutations[0])
            if args.only and mid not in args.only:
                continue
            if args.timeouts:
                result = mutate_and_test(item.mutations, config.test_command, args.timeouts)
            else:
                result = mutate_and_test(item.mutations, shlex.join(flags + ["-x", "-q", "-p", "no:cacheprovider"] + extra),
                                         config.timeout)  # the session's own tests already let it through: only the new ones can kill it
            if result.worker_outcome != WorkerOutcome.NORMAL or result.test_outcome == TestOutcome.INCOMPETENT:
                outcome = "incompetent"
            elif result.test_outcome == TestOutcome.SURVIVED:
                outcome = "survived"
            else:
                outcome = "timeout" if result.output == "timeout" else "killed"
            out[mid] = outcome
            print(mid, outcome, file=sys.stderr, flush=True)
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
