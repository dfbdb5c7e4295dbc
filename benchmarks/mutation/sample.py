"""Restrict a cosmic-ray session to the benchmark's mutants: a cosmic-ray filter (it marks the
other work items SKIPPED, as cr-filter-* do).

    python sample.py SESSION.sqlite --n N --seed SEED [--functions FILE:NAME,NAME...]

1. `--functions icl/trainer.py:build_optimizer,data_keys,...`: mutants in that file outside the
   named top-level functions are skipped (the issue covers only those functions of trainer.py).
   Mutants inside annotations of a module with `from __future__ import annotations` are skipped as
   equivalent (annotations there are never evaluated) and counted apart.
2. Of the mutants left, a uniform random sample of N (random.Random(SEED).sample over the mutants
   ordered by file, position, operator and occurrence, so the sample is a function of the session
   and the seed) is kept; the rest are skipped. N <= 0 keeps them all.

Prints the counts as JSON: generated (work items cosmic-ray init made), eligible (after 1), sampled.
"""

import argparse
import ast
import json
import random
from pathlib import Path

from cosmic_ray.work_db import WorkDB, WorkResultStorage, use_db
from cosmic_ray.work_item import WorkerOutcome, WorkResult


def function_lines(path, names):
    tree = ast.parse(Path(path).read_text())
    spans = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in names:
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            spans.append((first, node.end_lineno))
    missing = set(names) - {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    if missing:
        raise SystemExit(f"{path}: no top-level function(s) {sorted(missing)}")
    return spans


def annotation_spans(path):
    """(start, end) positions ((line, col) pairs) of the annotations in a module that has
    `from __future__ import annotations`: there they are strings, never evaluated, so a mutant
    inside one is equivalent by construction. Empty for other modules (their annotations run)."""
    tree = ast.parse(Path(path).read_text())
    future = any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and
                 any(a.name == "annotations" for a in n.names) for n in tree.body)
    if not future:
        return []
    nodes = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            nodes.append(node.returns)
            a = node.args
            for arg in a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg]:
                nodes.append(arg and arg.annotation)
        elif isinstance(node, ast.AnnAssign):
            nodes.append(node.annotation)
    return [((n.lineno, n.col_offset), (n.end_lineno, n.end_col_offset)) for n in nodes if n is not None]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("session")
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--functions", action="append", default=[])
    parser.add_argument("--extend", action="store_true",
                        help="add N more mutants, drawn uniformly (with SEED) from those not yet sampled")
    args = parser.parse_args()
    if args.extend:
        return extend(args)

    restrict = {}
    for spec in args.functions:
        path, names = spec.split(":")
        restrict[Path(path)] = function_lines(path, names.split(","))

    with use_db(args.session, WorkDB.Mode.open) as db:
        items = list(db.work_items)
        done = {job_id for job_id, _ in db.results}
        eligible, out_of_scope = [], []
        # cosmic-ray's job ids are random uuids: order by what the mutant is, not by id
        items.sort(key=lambda item: (str(item.mutations[0].module_path), item.mutations[0].start_pos,
                                     item.mutations[0].operator_name, item.mutations[0].occurrence))
        annotations, in_annotation = {}, []
        for item in items:
            mutation = item.mutations[0]
            path = Path(mutation.module_path)
            if path not in annotations:
                annotations[path] = annotation_spans(path)
            spans = restrict.get(path)
            line = mutation.start_pos[0]
            pos = tuple(mutation.start_pos)
            if spans is not None and not any(a <= line <= b for a, b in spans):
                out_of_scope.append(item.job_id)
            elif any(a <= pos < b for a, b in annotations[path]):
                in_annotation.append(item.job_id)
            else:
                eligible.append(item.job_id)
        keep = set(eligible) if args.n <= 0 or args.n >= len(eligible) else set(
            random.Random(args.seed).sample(eligible, args.n))
        outside = [j for j in out_of_scope if j not in done]
        if outside:
            db.set_multiple_results(outside, WorkResult(
                worker_outcome=WorkerOutcome.SKIPPED, output="out of scope: outside the named functions"))
        skip = [j for j in eligible if j not in keep and j not in done]
        skip_annotations = [j for j in in_annotation if j not in done]
        if skip_annotations:
            db.set_multiple_results(skip_annotations, WorkResult(
                worker_outcome=WorkerOutcome.SKIPPED, output="equivalent: in a string annotation"))
        if skip:
            db.set_multiple_results(skip, WorkResult(
                worker_outcome=WorkerOutcome.SKIPPED, output="not in the benchmark's sample"))
        print(json.dumps({"session": Path(args.session).stem, "generated": len(items),
                          "in_annotations": len(in_annotation), "eligible": len(eligible), "sampled": len(keep), "seed": args.seed}))


def extend(args):
    """Un-skip N more mutants drawn uniformly from the in-scope ones left out of the sample so far:
    the union of the rounds is a uniform sample without replacement of the eligible mutants."""
    with use_db(args.session, WorkDB.Mode.open) as db:
        items = sorted(db.work_items, key=lambda item: (str(item.mutations[0].module_path), item.mutations[0].start_pos,
                                                        item.mutations[0].operator_name, item.mutations[0].occurrence))
        results = dict(db.results)
        left = [i.job_id for i in items if results.get(i.job_id) is not None
                and results[i.job_id].output == "not in the benchmark's sample"]
        chosen = random.Random(args.seed).sample(left, min(args.n, len(left)))
        with db._session_maker.begin() as session:  # cosmic-ray has no API to drop a result
            session.query(WorkResultStorage).filter(WorkResultStorage.job_id.in_(chosen)).delete()
    print(json.dumps({"session": Path(args.session).stem, "extend": len(chosen), "seed": args.seed,
                      "left_before": len(left)}))


if __name__ == "__main__":
    main()
