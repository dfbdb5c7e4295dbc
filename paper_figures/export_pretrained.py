"""Ship finished runs as pretrained models: copy each run directory's config, summary, log and
final checkpoint into icl/pretrained/<experiment name>/ (`icl.pretrained`).

    python paper_figures/export_pretrained.py RUN_DIR [RUN_DIR ...]
    e.g. icl train fig1_one_layer --out /tmp/fig1 && python paper_figures/export_pretrained.py /tmp/fig1

A run must have finished (its summary.json written, every step trained); an existing model of the
same name is replaced.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from icl import pretrained, rundir

KEEP = (rundir.CONFIG, rundir.SUMMARY, rundir.LOG)


def export(run_dir: Path) -> Path:
    """Copy the finished run in `run_dir` into the package; returns the new directory."""
    summary_path = run_dir / rundir.SUMMARY
    if not summary_path.exists():
        raise SystemExit(f"{run_dir}: no {rundir.SUMMARY}; only a finished run can be shipped")
    summary = json.loads(summary_path.read_text())
    config = json.loads((run_dir / rundir.CONFIG).read_text())
    final = run_dir / "checkpoints" / str(summary["steps"])
    if not final.is_dir():
        raise SystemExit(f"{run_dir}: no checkpoint at the final step {summary['steps']}")
    target = pretrained.ROOT / config["name"]
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for name in KEEP:
        shutil.copy2(run_dir / name, staging / name)
    shutil.copytree(final, staging / "checkpoints" / final.name)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    for run_dir in parser.parse_args().run_dirs:
        target = export(run_dir)
        size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
        print(f"{run_dir} -> {target} ({size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
