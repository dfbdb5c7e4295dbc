"""Plumbing shared by the figure scripts: modes, run directories and the numbers file.

Every script is `python paper_figures/<figure>.py [--quick]`:
  full mode  (default) the paper's step counts and seeds; writes paper_figures/<figure>.png and
             paper_figures/<figure>.json (committed, shown in paper_figures/README.md);
  --quick    minutes on a 2-core CPU (CI runs it as a smoke test); writes to paper_figures/quick/
             (not committed) so it never overwrites the record.
Training goes through `icl.train.train` into `<out>/runs/<run name>` (resumable: rerunning a script
reuses finished runs). The numbers file states the configs, seeds, steps, devices and wall time.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax

from icl import train
from icl.config import ExperimentConfig

HERE = Path(__file__).resolve().parent


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a few minutes on a 2-core CPU (smoke test)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default paper_figures/ or paper_figures/quick/)")
    args = parser.parse_args()
    args.out = args.out or (HERE / "quick" if args.quick else HERE)
    args.out.mkdir(parents=True, exist_ok=True)
    args.started = time.perf_counter()
    return args


def run(config: ExperimentConfig, args: argparse.Namespace) -> tuple[dict, dict]:
    """Train `config` (or reuse the finished run) in <out>/runs/<config.name>; (summary, params)."""
    run_dir = args.out / "runs" / config.name
    summary = train.train(config, run_dir, progress=False, echo=lambda *_: None)
    _, params, _ = train.load_params(run_dir, config)
    return summary, params


def figure_paths(args: argparse.Namespace, name: str) -> tuple[Path, Path]:
    return args.out / f"{name}.png", args.out / f"{name}.json"


def write_numbers(args: argparse.Namespace, name: str, numbers: dict, configs: list[ExperimentConfig], published: dict | None = None) -> Path:
    """<out>/<name>.json: our numbers, the published ones, configs, mode, devices, versions, wall time."""
    _, path = figure_paths(args, name)
    record = {
        "figure": name,
        "mode": "quick" if args.quick else "full",
        "command": f"python paper_figures/{name}.py" + (" --quick" if args.quick else ""),
        "wall_s": round(time.perf_counter() - args.started, 1),
        "devices": [str(d) for d in jax.devices()],
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numbers": numbers,
        "published": published or {},
        "configs": [c.to_dict() for c in configs],
    }
    path.write_text(json.dumps(record, indent=2))
    return path
