"""Runs as data: train a config into a directory (or reuse the finished run), load a finished run
(config, summary, log, per-seed models), and stack / unstack parameters over seeds.

Parameters of a run are one pytree whose leaves carry a leading seed axis [S, ...] (the layout
`icl.train` trains and checkpoints); `unstack_seeds` gives one tree per seed and `stack_seeds` the
inverse. Scripts and notebooks use this module rather than the run directory's files.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from icl import rundir, train
from icl.config import ExperimentConfig
from icl.trainer import stack_seeds, unstack_seeds  # noqa: F401  (part of this API)


def initial_params(config: ExperimentConfig) -> dict:
    """The untrained parameters of every seed of `config`, stacked [S, ...]."""
    return stack_seeds([train.init_params(config, seed) for seed in train.seeds_of(config)])


@dataclasses.dataclass(frozen=True)
class Run:
    """A run directory read back: its config, summary (None before the run finished), evaluation
    log records, and the parameters [S, ...] of checkpoint `step`."""

    path: Path
    config: ExperimentConfig
    summary: dict | None
    log: list[dict]
    params: dict
    step: int

    def models(self) -> list:
        """The model of every seed (callables on a `Batch`)."""
        return train.seed_models(self.config, self.params)

    def curve(self, key: str = "loss") -> tuple[list[int], list]:
        """(steps, values) of one logged metric, e.g. "loss", "ref_loss", "model_cos", "train_loss"."""
        rows = [r for r in self.log if key in r and "step" in r]
        return [r["step"] for r in rows], [r[key] for r in rows]


def load(run_dir: str | Path, config: ExperimentConfig | None = None, step: int | None = None) -> Run:
    """The run in `run_dir` at checkpoint `step` (default the latest). A float64 run's parameters
    are float64 arrays, but the library leaves the process's x64 setting alone: compute with them
    inside `icl.precision.at_dtype("float64")`, or JAX casts them to float32 on the way in."""
    path = Path(run_dir)
    config, params, step = train.load_params(path, config, step)
    summary_path = path / rundir.SUMMARY
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return Run(path, config, summary, rundir.read_log(path), params, step)


def train_run(config: ExperimentConfig, run_dir: str | Path) -> tuple[dict, Run]:
    """Train `config` in `run_dir` to its last step, quietly (a finished run is reused); returns
    (summary, the run loaded at its last checkpoint)."""
    summary = train.train(config, Path(run_dir), progress=False, echo=lambda *_: None)
    return summary, load(run_dir, config)


def train_or_last_good(config: ExperimentConfig, run_dir: str | Path,
                       train_fn: Callable[[ExperimentConfig], tuple[dict, dict]] | None = None) -> tuple[dict, dict, str | None]:
    """(summary, params [S, ...], None) of the finished run, trained by `train_fn(config)` (default
    `train_run` into `run_dir`); a run that diverges gives ({"diverged_at_checkpoint": step},
    the params of its last good checkpoint, the error message)."""
    try:
        if train_fn is None:
            summary, run = train_run(config, run_dir)
            return summary, run.params, None
        summary, params = train_fn(config)
        return summary, params, None
    except train.TrainingDiverged as error:
        print(f"  {config.name}: {error}", flush=True)
        _, params, step = train.load_params(Path(run_dir), config)
        return {"diverged_at_checkpoint": step}, params, str(error)


def train_in_pieces(config: ExperimentConfig, run_dir: str | Path, steps, measure: Callable[[int, dict], Any],
                    cache: str, init: Callable[[], dict] | None = None) -> dict:
    """Train `config` in pieces (`train.train(..., until_step=s)` for each s of `steps`) and record
    `measure(step, params)` (JSON-able) at each; returns {str(step): measurement}, cached in
    <run_dir>/<cache> so reruns skip measured steps. Step 0 uses `init()` (skipped when None).
    A finished run keeps only its last checkpoints: steps it can no longer read are skipped."""
    run_dir = Path(run_dir)
    path = run_dir / cache
    pieces = json.loads(path.read_text()) if path.exists() else {}
    for step in steps:
        if str(step) in pieces or (step == 0 and init is None):
            continue
        if step == 0:
            params = init()
        else:
            train.train(config, run_dir, until_step=step, progress=False, echo=lambda *_: None)
            try:
                _, params, _ = train.load_params(run_dir, config, step=step)
            except Exception as error:  # noqa: BLE001  (the checkpoint of that step is gone)
                print(f"  step {step}: no checkpoint to read ({type(error).__name__}); skipped")
                continue
        pieces[str(step)] = measure(step, params)
        path.parent.mkdir(parents=True, exist_ok=True)
        rundir.write_atomic(path, json.dumps(pieces))
    return pieces


def stats(values) -> dict:
    """{"mean", "std", "min", "max", "values"} over seeds (the last axis) of a list or array."""
    values = np.asarray(values, dtype=float)
    return {
        "mean": values.mean(-1).tolist(), "std": values.std(-1).tolist(),
        "min": values.min(-1).tolist(), "max": values.max(-1).tolist(), "values": values.tolist(),
    }
