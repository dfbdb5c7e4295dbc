"""results.json from the benchmark's cosmic-ray sessions.

    python report.py SESSIONS_DIR [--verdicts verdicts.json] [--rerun RERUN_DIR] > results.json

Per session (a group of modules sharing one test command) and in total: mutants generated,
out of scope (trainer.py outside the four functions), in string annotations (equivalent by
construction, not run), eligible (the rest), sampled, killed (tests failed), timed out (counted as killed, listed apart),
incompetent (the mutant could not run: an error before any test, counted as killed by cosmic-ray;
listed apart), survived, and the score = killed / (sampled - equivalent) with a 95 % Wilson
interval. Every survivor is listed with its file, line, operator, diff and verdict (from
--verdicts: {mutant id: {"verdict": "equivalent" | "needs a test", "why": ...}}; mutant id =
file:line:col:operator:occurrence). --rerun: sessions of the same mutants re-run after tests were
added (benchmarks/mutation/rerun.py); their outcome is reported as "after".
"""

import argparse
import json
import math
import sys
from pathlib import Path

from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import TestOutcome, WorkerOutcome


def wilson(k, n, z=1.959964):
    if n == 0:
        return [None, None]
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(centre - half, 4), round(centre + half, 4)]


def mutant_id(m):
    return f"{m.module_path}:{m.start_pos[0]}:{m.start_pos[1]}:{m.operator_name}:{m.occurrence}"


def read_session(path):
    with use_db(str(path), WorkDB.Mode.open) as db:
        items = {item.job_id: item for item in db.work_items}
        results = dict(db.results)
    rows = []
    for job_id, item in items.items():
        result = results.get(job_id)
        m = item.mutations[0]
        row = {"id": mutant_id(m), "file": str(m.module_path), "line": m.start_pos[0],
               "operator": m.operator_name, "occurrence": m.occurrence}
        if result is None:
            row["outcome"] = "pending"
        elif result.worker_outcome == WorkerOutcome.SKIPPED:
            text = result.output or ""
            row["outcome"] = ("out-of-scope" if "scope" in text else
                              "in-annotation" if "annotation" in text else "not-sampled")
        elif result.test_outcome == TestOutcome.SURVIVED:
            row["outcome"] = "survived"
        elif result.test_outcome == TestOutcome.INCOMPETENT or result.worker_outcome != WorkerOutcome.NORMAL:
            row["outcome"] = "incompetent"
        elif result.output == "timeout":
            row["outcome"] = "timeout"
        else:
            row["outcome"] = "killed"
        if result is not None and result.diff:
            row["diff"] = result.diff
        rows.append(row)
    return rows


def summarise(rows, verdicts):
    count = lambda *o: sum(r["outcome"] in o for r in rows)
    sampled = count("killed", "timeout", "incompetent", "survived", "pending")
    survivors = [r for r in rows if r["outcome"] == "survived"]
    equivalent = sum(verdicts.get(r["id"], {}).get("verdict") == "equivalent" for r in survivors)
    killed = count("killed", "timeout", "incompetent")
    done = sampled - count("pending")
    out = {"generated": len(rows), "out_of_scope": count("out-of-scope"),
           "in_string_annotations": count("in-annotation"),
           "eligible": len(rows) - count("out-of-scope", "in-annotation"), "sampled": sampled,
           "run": done, "killed": count("killed"), "timed_out": count("timeout"),
           "incompetent": count("incompetent"), "survived": len(survivors),
           "survived_equivalent": equivalent, "pending": count("pending")}
    n = done - equivalent
    out["score"] = round(killed / n, 4) if n else None
    out["score_ci95_wilson"] = wilson(killed, n)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("sessions")
    parser.add_argument("--verdicts")
    parser.add_argument("--rerun", help="JSON from rerun.py: {mutant id: outcome}")
    args = parser.parse_args()
    verdicts = json.loads(Path(args.verdicts).read_text()) if args.verdicts else {}
    rerun = json.loads(Path(args.rerun).read_text()) if args.rerun else {}

    sessions, all_rows, survivors, timeouts = {}, [], [], []
    sample_info = {}
    for path in sorted(Path(args.sessions).glob("*.sqlite")):
        rows = read_session(path)
        sessions[path.stem] = summarise(rows, verdicts)
        info = path.with_suffix(".sample.json")
        if info.exists():
            sample_info[path.stem] = json.loads(info.read_text())
        all_rows += rows
        for r in rows:
            if r["outcome"] == "timeout":
                timeouts.append({**r, "session": path.stem, **({"after": rerun[r["id"]]} if r["id"] in rerun else {})})
            if r["outcome"] == "survived":
                v = verdicts.get(r["id"], {"verdict": "unjudged"})
                entry = {**r, "session": path.stem, **v}
                if r["id"] in rerun:
                    entry["after"] = rerun[r["id"]]
                survivors.append(entry)
    total = summarise(all_rows, verdicts)
    # the score once the re-run survivors are counted as the re-run found them
    after_killed = sum(s.get("after") in ("killed", "timeout") for s in survivors)
    n = total["run"] - total["survived_equivalent"]
    killed_before = total["killed"] + total["timed_out"] + total["incompetent"]
    total["score_after_new_tests"] = round((killed_before + after_killed) / n, 4) if n else None
    total["score_after_ci95_wilson"] = wilson(killed_before + after_killed, n)
    # the strict reading: a timeout is not a kill (on a loaded machine it may hide a survivor) unless
    # the new tests kill the mutant outright
    total["score_timeouts_not_counted"] = round((total["killed"] + total["incompetent"]) / n, 4) if n else None
    strict = total["killed"] + total["incompetent"] + after_killed + sum(t.get("after") == "killed" for t in timeouts)
    total["score_after_timeouts_not_counted"] = round(strict / n, 4) if n else None
    total["score_after_timeouts_not_counted_ci95_wilson"] = wilson(strict, n)
    # stratified estimate: each session's score weighted by its eligible mutants
    weights = {k: v["eligible"] for k, v in sessions.items() if v["score"] is not None}
    w = sum(weights.values())
    total["score_stratified"] = round(sum(sessions[k]["score"] * weights[k] for k in weights) / w, 4) if w else None
    by_operator = {}
    for r in all_rows:
        if r["outcome"] in ("killed", "timeout", "incompetent", "survived"):
            op = r["operator"].split("/")[-1].split("_")[0]
            d = by_operator.setdefault(op, {"run": 0, "survived": 0})
            d["run"] += 1
            d["survived"] += r["outcome"] == "survived"
    json.dump({"total": total, "sessions": sessions, "sample": sample_info, "by_operator": by_operator,
               "survivors": survivors, "timeouts": timeouts}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
