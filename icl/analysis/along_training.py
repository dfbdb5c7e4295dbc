"""A run measured along its training: trained exactly as `icl.train.train` trains it (the same
initialisation, keys and chunks of eval_every steps, so the same weights), with a measurement of
the parameters after every chunk, and cached as an .npz file.

Used by the studies that need more than the training log keeps (weights, distances to several
predictors along the way): `icl.analysis.saddle_to_saddle`, `icl.analysis.transient_ridge`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from icl import precision
from icl.config import ExperimentConfig
from icl.trainer import Trainer

# make_measure(trainer) -> measure(params [S, ...], train_losses [S] or None at step 0) -> {name: [S, ...]}
MeasureMaker = Callable[[Trainer], Callable[[dict, "np.ndarray | None"], dict]]


def record(config: ExperimentConfig, make_measure: MeasureMaker) -> dict:
    """Train `config` chunk by chunk and measure after every chunk (and at step 0, with
    train_losses None). Runs in the run's dtype (`precision.at_dtype`), as `icl.train.train`,
    whatever the caller's x64 setting; `make_measure(trainer)` is called inside that scope, so the
    tasks it samples have the run's dtype. Returns {"steps" [R] (0 first), each measured name
    stacked over the R records [R, S, ...], "wall_s" (training and measuring, compilation included)}."""
    cfg = config.train
    with precision.at_dtype(cfg.dtype):
        trainer = Trainer(config)
        params, opt_state = trainer.init()
        keys = trainer.keys()
        measure = make_measure(trainer)
        rows: dict[str, list] = {"steps": []}

        def keep(step, p, train_losses):
            rows["steps"].append(step)
            for name, value in measure(p, train_losses).items():
                rows.setdefault(name, []).append(np.asarray(value))

        t0 = time.perf_counter()
        keep(0, params, None)
        step = 0
        while step < cfg.steps:
            n = min(cfg.eval_every, cfg.steps - step)
            params, opt_state, losses = trainer.train_chunk(params, opt_state, keys, step, n)
            step += n
            keep(step, params, np.asarray(losses).mean(0))
        out = {k: np.asarray(v) for k, v in rows.items()}
        out["wall_s"] = time.perf_counter() - t0
    return out


def cached(path: Path | None, config: ExperimentConfig, compute: Callable[[], dict], **extra) -> dict:
    """`compute()` (a dict of arrays and a float "wall_s"), saved to `path` (.npz, with the run's
    config.json beside it) and reused while the config and the `extra` arguments it was computed
    with (JSON values, stored in the file) are the same; `path` None: no cache."""
    key = json.dumps({"config": json.loads(config.to_json()), **extra}, sort_keys=True)
    if path is not None and path.exists():
        with np.load(path) as data:
            if "cache_key" in data.files and str(data["cache_key"]) == key:
                out = {k: data[k] for k in data.files if k != "cache_key"}
                out["wall_s"] = float(out["wall_s"])
                return out
    out = compute()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, cache_key=np.asarray(key), **out)
        (path.parent / "config.json").write_text(config.to_json())
    return out
