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
import os
import platform
import shutil
import time
from pathlib import Path

import jax

from icl import devices, pretrained, runs
from icl.config import ExperimentConfig
from icl.plots import band, pyplot  # noqa: F401  (the figure scripts use common.band / common.pyplot)

HERE = Path(__file__).resolve().parent


def parse_args(description: str) -> argparse.Namespace:
    devices.use_cpu_cores()  # before JAX starts: each core a device, for train.data_parallel="auto" (icl.devices)
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a few minutes on a 2-core CPU (smoke test)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default paper_figures/ or paper_figures/quick/)")
    parser.add_argument(
        "--steps", type=int, default=None,
        help="full mode with this many training steps instead of the paper's: an intermediate setting, "
        "labelled as such in the numbers file (raise it later to extend the same runs)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=None,
        help="full mode with this training batch instead of the paper's (an intermediate setting, labelled)",
    )
    parser.add_argument(
        "--pretrained", action="store_true",
        help="start from the models shipped with the package (icl.pretrained) where one has the run's exact config: "
        "no training for those runs",
    )
    args = parser.parse_args()
    args.out = args.out or (HERE / "quick" if args.quick else HERE)
    args.out.mkdir(parents=True, exist_ok=True)
    use_compilation_cache(args.out / "runs" / "xla-compilation-cache")
    args.started = time.perf_counter()
    return args


def use_compilation_cache(folder: Path) -> None:
    """Keep compiled XLA programs in `folder` (unless JAX_COMPILATION_CACHE_DIR says where):
    every `train.train` call builds its jitted programs anew, so a run trained in pieces, a resumed
    run and a rerun of the script compile each program once instead of once per call. Every
    program is kept, the small ones too (JAX keeps only those that took >= 1 s to compile by
    default; here most take 0.1-0.3 s, and a run in pieces compiles them again at every piece:
    claim 9's quick mode compiled 340 programs for 62 s)."""
    if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def run(config: ExperimentConfig, args: argparse.Namespace) -> tuple[dict, dict]:
    """Train `config` (or reuse the finished run) in <out>/runs/<config.name>; (summary, params).
    Adds the run's training wall time to args.train_wall_s (the numbers file reports the sum)."""
    run_dir = args.out / "runs" / config.name
    if getattr(args, "pretrained", False) and not run_dir.exists() and pretrained.matches(config):
        shutil.copytree(pretrained.path(config.name), run_dir)  # a finished run: train_run reuses it
    summary, trained = runs.train_run(config, run_dir)
    args.train_wall_s = getattr(args, "train_wall_s", 0.0) + float(summary.get("wall_s", 0.0))
    return summary, trained.params


def train_in_pieces(config: ExperimentConfig, args: argparse.Namespace, steps, measure, cache: str, init=None) -> dict:
    """`icl.runs.train_in_pieces` in <out>/runs/<config.name>."""
    return runs.train_in_pieces(config, args.out / "runs" / config.name, steps, measure, cache, init)


def save(fig, path: Path, title: str) -> None:
    """Title, tight layout, write the PNG at 100 dpi and free the figure."""
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot().close(fig)


def figure_paths(args: argparse.Namespace, name: str) -> tuple[Path, Path]:
    return args.out / f"{name}.png", args.out / f"{name}.json"


def write_numbers(args: argparse.Namespace, name: str, numbers: dict, configs: list[ExperimentConfig], published: dict | None = None,
                  **top_level) -> Path:
    """<out>/<name>.json: our numbers, the published ones, configs, mode, devices, versions, wall time
    (and `top_level` fields such as a claim's `verdict`)."""
    _, path = figure_paths(args, name)
    record = {
        "figure": name,
        "mode": mode(args),
        "command": f"python paper_figures/{name}.py" + (" --quick" if args.quick else "")
        + (f" --steps {args.steps}" if getattr(args, "steps", None) else "")
        + (f" --batch-size {args.batch_size}" if getattr(args, "batch_size", None) else ""),
        "wall_s": round(time.perf_counter() - args.started, 1),  # this invocation (reused runs are not retrained)
        # training time of every run used, as each run's summary recorded it when it trained
        "train_wall_s": round(getattr(args, "train_wall_s", 0.0), 1),
        "devices": [str(d) for d in jax.devices()],
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numbers": numbers,
        "published": published or {},
        **top_level,
        "configs": [c.to_dict() for c in configs],
    }
    path.write_text(json.dumps(record, indent=2))
    return path


def study_configs(study, args: argparse.Namespace):
    """The study's configs in the mode the arguments ask for (quick, full, or intermediate)."""
    return study.configs("quick" if args.quick else "full", args.steps, args.batch_size)


def announce(config: ExperimentConfig, args: argparse.Namespace, extra: str = "") -> None:
    """One line before a run trains: its name, mode, seeds, steps and batch (then `extra`)."""
    cfg = config.train
    print(f"{config.name}: {mode(args)}, {cfg.n_seeds} seeds, {cfg.steps} steps of batch {cfg.batch_size}{extra}", flush=True)


def mode(args: argparse.Namespace) -> str:
    """"quick", "full", or "intermediate (...)" when --steps / --batch-size override the paper's."""
    if args.quick:
        return "quick"
    changed = [f"{v} {k}" for k, v in (("steps", getattr(args, "steps", None)), ("batch", getattr(args, "batch_size", None))) if v]
    return f"intermediate ({', '.join(changed)})" if changed else "full"


stats = runs.stats  # the scripts' name for it
