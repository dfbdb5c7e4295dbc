"""Compare two sets of figure records number by number: a rerun against the committed records.

    python paper_figures/run_all.py --out /tmp/rerun          # a rerun of every full mode
    python paper_figures/compare_records.py --new /tmp/rerun [--old paper_figures] [NAME ...]

For every script NAME (default: every `NAME.json` in --new that --old also has), the two records'
`numbers` are walked together:
  * a seed statistic ({mean, std, ...}: a mean over seeds) counts as unchanged within k spreads
    when |mean_new - mean_old| <= k * spread, spread = the larger of the two seed stds;
  * every other number (what is computed without training, e.g. GD or least squares on the
    held-out sets; single trained values; training speeds) is counted identical or not, and the
    largest relative changes are listed.
Prints a line per script for the table in paper_figures/README.md, then the details.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
SKIP = {"configs", "devices", "published", "command", "python", "jax", "wall_s", "train_wall_s", "log", "versions"}


def leaves(record, path: str = ""):
    """(path, ("stat", mean, std) | ("num", value)) for every number in a record's `numbers`."""
    if isinstance(record, dict):
        if {"mean", "std"} <= set(record) and isinstance(record["mean"], (int, float)):
            yield path, ("stat", record["mean"], record["std"])
            return
        for key, value in record.items():
            if key not in SKIP:
                yield from leaves(value, f"{path}.{key}")
    elif isinstance(record, list) and record and all(isinstance(x, dict) for x in record):
        for i, value in enumerate(record):
            yield from leaves(value, f"{path}[{i}]")
    elif isinstance(record, (int, float)) and not isinstance(record, bool):
        yield path, ("num", record)


def compare(old: dict, new: dict) -> dict:
    """Counts and the largest moves between two records' numbers."""
    a, b = dict(leaves(old["numbers"])), dict(leaves(new["numbers"]))
    common = sorted(set(a) & set(b))
    stats = [(abs(b[k][1] - a[k][1]) / max(a[k][2], b[k][2], 1e-12), k, a[k][1], b[k][1])
             for k in common if a[k][0] == b[k][0] == "stat"]
    nums = [(abs(b[k][1] - a[k][1]) / max(abs(a[k][1]), 1e-12), k, a[k][1], b[k][1])
            for k in common if a[k][0] == b[k][0] == "num"]
    return {
        "stats": len(stats), "within_1": sum(z <= 1 for z, *_ in stats), "within_2": sum(z <= 2 for z, *_ in stats),
        "worst_stats": sorted(stats, reverse=True)[:4],
        "nums": len(nums), "identical": sum(r == 0 for r, *_ in nums), "worst_nums": sorted(nums, reverse=True)[:4],
        "only_old": sorted(set(a) - set(b)), "only_new": sorted(set(b) - set(a)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, default=HERE, help="the reference records (default paper_figures/)")
    parser.add_argument("--new", type=Path, required=True, help="the records to compare (a rerun: run_all.py --out DIR)")
    parser.add_argument("names", nargs="*", help="script names (default: every record in --new that --old has)")
    args = parser.parse_args(argv)
    names = args.names or sorted(p.stem for p in args.new.glob("*.json") if (args.old / p.name).exists())
    if not names:
        parser.error(f"no record in {args.new} has a counterpart in {args.old}")
    details = []
    print("| script | seed statistics within 1 / 2 spreads | numbers without training identical | train wall s (old -> new) |")
    print("|---|---|---|---|")
    for name in names:
        try:
            old, new = (json.loads((d / f"{name}.json").read_text()) for d in (args.old, args.new))
        except OSError as error:
            raise SystemExit(f"compare_records: {error}") from None
        c = compare(old, new)
        print(f"| {name} | {c['within_1']} / {c['within_2']} of {c['stats']} | {c['identical']} of {c['nums']} "
              f"| {old.get('train_wall_s')} -> {new.get('train_wall_s')} |")
        details.append(f"== {name}")
        details += [f"   {k}: {a:.6g} -> {b:.6g} ({z:.1f} spreads)" for z, k, a, b in c["worst_stats"]]
        details += [f"   {k}: {a:.6g} -> {b:.6g} ({r:.2%})" for r, k, a, b in c["worst_nums"]]
        if c["only_old"] or c["only_new"]:
            details.append(f"   only in old: {len(c['only_old'])}, only in new: {len(c['only_new'])}")
    print("", *details, sep="\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
