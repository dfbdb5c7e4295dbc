"""The training loop: train (or resume) one experiment in a run directory, many seeds in one
program, and compare the result with the solvers.

A run directory holds `config.json`, `log.jsonl` (one line per evaluation), `checkpoints/`
(orbax; the last two kept) and, at the end, `summary.json`; what each promises, and what a crash,
Ctrl-C or a second process can and cannot do to it: `icl.rundir`. What runs on the devices (the
compiled train chunk, the mesh, the keys, the final table): `icl.trainer`, whose names are
re-exported here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import platform
import signal
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from icl import compare, models, rundir
from icl.checks import first_line
from icl.config import ExperimentConfig
from icl.rundir import CheckpointMismatch
from icl.trainer import (  # noqa: F401  (re-exported: the public training API lives in icl.train)
    HeldOut,
    ModelSpec,
    Trainer,
    build_optimizer,
    data_keys,
    final_table,
    heldout_key,
    init_params,
    make_mesh,
    model_spec,
    seeds_of,
    stack_seeds,
    unstack_seeds,
)

LOG, SUMMARY, CONFIG = rundir.LOG, rundir.SUMMARY, rundir.CONFIG


class TrainingDiverged(RuntimeError):
    """The loss became non-finite; the last good checkpoint is kept."""


# -- the loop -----------------------------------------------------------------------------------
def _versions() -> dict:
    import flax  # noqa: PLC0415

    return {"python": platform.python_version(), "jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__}


def _devices() -> list[str]:
    return [str(d) for d in jax.devices()]


class _Interrupts:
    """SIGTERM and the first Ctrl-C ask the loop to checkpoint and stop at the end of the current
    chunk. A second Ctrl-C aborts at once (the last checkpoint stays), except while a checkpoint is
    being written: then it is deferred until the write has finished, so a save is never cut."""

    def __init__(self, echo):
        self.echo, self.requested, self.saving, self.abort = echo, None, False, False

    def __enter__(self):
        self._old = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, sig, _frame):
        if self.requested is None:
            self.requested = sig
            if sig == signal.SIGINT:
                self.echo("\ninterrupt: checkpointing at the end of this chunk (Ctrl-C again to stop without it)")
        elif sig == signal.SIGINT:
            if self.saving:
                self.abort = True
            else:
                raise KeyboardInterrupt

    def __exit__(self, *_):
        for sig, old in self._old.items():
            signal.signal(sig, old)


class _Stopped(Exception):
    """The loop stopped on a signal after checkpointing."""


def _first_nonfinite(losses: np.ndarray, metrics: dict) -> tuple[str, int] | None:
    """(what, seed index) of the first non-finite training or held-out loss in a chunk."""
    for what, values in (("training loss", losses), ("held-out loss", np.asarray(metrics["loss"]))):
        bad = np.argwhere(~np.isfinite(np.atleast_1d(values)))
        if len(bad):
            return what, int(bad[0][-1])
    return None


def _open_log(run_dir: Path, start: int, main_process: bool, echo) -> tuple[Any, float]:
    """The log opened for appending after `start`, and the wall time the run had spent up to it.
    Records after `start` (written before a kill that lost their checkpoint) are dropped, since
    the resumed run writes them again; a log missing records up to `start` gets a `log_gap` event."""
    if not main_process:
        return open(os.devnull, "a"), 0.0
    path = run_dir / rundir.LOG
    if start == 0:
        path.unlink(missing_ok=True)  # a start that failed before its first checkpoint
        return open(path, "a"), 0.0
    records = [r for r in rundir.read_log(run_dir) if r.get("step", 0) <= start]
    logged_step, wall = rundir.last_logged(records)
    if logged_step < start:
        records.append({"event": "log_gap", "from_step": logged_step, "to_step": start})
        echo(f"warning: {path} has no records from step {logged_step} to {start} (deleted or cut); the gap is marked in it")
    records.append({"event": "resumed", "step": start})
    rundir.write_atomic(path, "".join(json.dumps(r) + "\n" for r in records))
    return open(path, "a"), wall


def _finished_summary(run_dir: Path, config: ExperimentConfig, step: int) -> dict | None:
    """The summary of a run finished at `step`, if it exists and was made for this config's table."""
    path = run_dir / rundir.SUMMARY
    if not path.exists():
        return None
    summary = json.loads(path.read_text())
    same_table = (summary.get("steps") == step and summary.get("n_tasks") == config.train.final_eval_tasks
                  and list(summary.get("solvers", {})) == list(config.compare_against))
    return summary if same_table else None


def train(
    config: ExperimentConfig,
    run_dir: str | Path,
    *,
    until_step: int | None = None,
    progress: bool = True,
    echo=print,
) -> dict:
    """Train (or resume) the run in `run_dir`; return its summary.

    Resumes from the newest readable checkpoint in `run_dir` (exactly: the result equals an
    uninterrupted run's). `until_step` stops early at that step with a checkpoint (to train in
    pieces). On a non-finite training or held-out loss it raises `TrainingDiverged`; the
    checkpoints on disk are all of finite states. SIGTERM or Ctrl-C checkpoint the last completed
    chunk and stop (SystemExit 143 / KeyboardInterrupt). What the directory promises:
    `icl.rundir`. A float64 run switches float64 on for its duration and restores the caller's
    setting after it (`load_params` switches it on to read a float64 run).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    main_process = jax.process_index() == 0  # multi-host: one process writes the files
    x64_before = jax.config.jax_enable_x64
    if config.train.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    try:
        with rundir.lock(run_dir) if main_process else contextlib.nullcontext():
            return _train_locked(config, run_dir, until_step, progress, echo, main_process)
    finally:
        jax.config.update("jax_enable_x64", x64_before)  # the caller's precision, as it was


def check_solvers(config: ExperimentConfig) -> None:
    """Build every `compare_against` solver and the reference for the task and trace them on two
    tasks (no compute), so that a bad spec fails before training instead of after it."""
    batch = jax.eval_shape(lambda: config.task.sample(jax.random.key(0), 2))
    for field, spec in [*(("compare_against", s) for s in config.compare_against), ("train.reference", config.train.reference)]:
        try:
            predict, _ = reference_solver(config, spec)
            jax.eval_shape(predict, batch.x_ctx, batch.y_ctx, batch.x_query)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{field}: {spec!r} does not work on the {config.task.family} task: {first_line(error)}") from None


def reference_solver(config: ExperimentConfig, spec: str | None = None):
    """(predictor, hyper-parameters) of solver `spec` (default: `train.reference`) for the
    config's task, its open hyper-parameters estimated on the held-out GD_LR tasks."""
    return compare.solver_predictor(spec or config.train.reference, config.task, heldout_key(config, HeldOut.GD_LR))


def _train_locked(config, run_dir: Path, until_step, progress: bool, echo, main_process: bool) -> dict:
    cfg = config.train
    check_solvers(config)
    trainer = Trainer(config)  # a config the devices cannot run fails here, before anything is written
    params, opt_state = trainer.init()
    manager = rundir.manager(run_dir)  # lists the checkpoints once
    try:
        rundir.check_config(run_dir, config, has_checkpoint=manager.latest_step() is not None)
    except CheckpointMismatch:
        manager.close()
        raise
    manager, start, restored = rundir.restore_latest(run_dir, {"params": params, "opt_state": opt_state}, echo, manager)
    if restored is not None:
        params, opt_state = restored["params"], restored["opt_state"]
        echo(f"resuming {run_dir} from step {start}")
    if start > cfg.steps:
        manager.close()
        raise CheckpointMismatch(
            f"{run_dir} is at step {start}, beyond train.steps = {cfg.steps}; set train.steps >= {start}, or use a new --out"
        )
    if main_process:
        rundir.write_atomic(run_dir / rundir.CONFIG, config.to_json())
    if jax.process_count() > 1:  # no process reads the run directory before process 0 has written it
        multihost_utils.sync_global_devices(f"icl: config of {run_dir}")
    if start == cfg.steps and (summary := _finished_summary(run_dir, config, start)) is not None:
        manager.close()  # finished: keep its summary
        return summary
    end = cfg.steps if until_step is None else min(until_step, cfg.steps)

    echo(f"devices: {', '.join(_devices())} (backend {jax.default_backend()}, {jax.process_count()} process(es)); "
         f"mesh {dict(trainer.mesh.shape)}; "
         f"{cfg.n_seeds} seed(s) x batch {cfg.batch_size}, steps {start} -> {end}")
    eval_batch = config.task.sample(heldout_key(config, HeldOut.EVAL), cfg.eval_tasks)
    reference, reference_hparams = reference_solver(config)
    evaluate = trainer.evaluator(reference)
    keys = trainer.keys()
    bar = _progress(progress and main_process, start, end)
    log, wall_before = _open_log(run_dir, start, main_process, echo)
    t0, steady_t0, steady_steps = time.perf_counter(), None, 0
    step = start

    def save(stop):
        if manager.latest_step() == step:
            return
        stop.saving = True
        try:
            manager.save(step, args=ocp.args.StandardSave({"params": params, "opt_state": opt_state}), force=True)
            manager.wait_until_finished()
        except Exception as error:  # orbax reports a full disk as ValueError("RESOURCE_EXHAUSTED ...")
            if "No space left on device" in str(error) or "os_error_code='28'" in str(error):
                raise OSError(errno.ENOSPC, f"No space left on device while writing checkpoint {step} "
                              f"(latest complete: {manager.latest_step()})", str(run_dir)) from None
            raise
        stop.saving = False
        if stop.abort:
            raise KeyboardInterrupt

    try:
        with _Interrupts(echo) as stop, log:
            if start == 0:  # the untrained model, for the curves
                metrics = jax.device_get(evaluate(params, eval_batch))
                log.write(json.dumps({"step": 0, **{k: np.asarray(v).tolist() for k, v in metrics.items()}}) + "\n")
            while step < end:
                n = min(cfg.eval_every - step % cfg.eval_every, end - step)
                new_params, new_opt, losses = trainer.train_chunk(params, opt_state, keys, step, n)
                losses = np.asarray(losses)  # [n, S]; the one host sync per chunk
                metrics = jax.device_get(evaluate(new_params, eval_batch))
                if (bad := _first_nonfinite(losses, metrics)) is not None:
                    log.write(json.dumps({"event": "diverged", "after_step": step, "steps": n, "what": bad[0]}) + "\n")
                    good = manager.latest_step()
                    raise TrainingDiverged(
                        f"training diverged: non-finite {bad[0]} within steps {step}-{step + n} "
                        f"(seed {seeds_of(config)[bad[1]]}); "
                        + (f"last good checkpoint is step {good} in {run_dir / 'checkpoints'}. " if good is not None else "no checkpoint was written. ")
                        + "Try a lower optim.lr, optim.grad_clip or model.clip_activations."
                    )
                params, opt_state, step = new_params, new_opt, step + n
                if steady_t0 is None:
                    steady_t0 = time.perf_counter()  # after the first chunk: compilation excluded
                else:
                    steady_steps += n
                record = {
                    "step": step,
                    "train_loss": losses.mean(0).tolist(),
                    **{k: np.asarray(v).tolist() for k, v in metrics.items()},
                    "wall_s": round(wall_before + time.perf_counter() - t0, 3),
                }
                log.write(json.dumps(record) + "\n")
                log.flush()
                if step % cfg.ckpt_every == 0 or step == end or stop.requested:
                    save(stop)
                bar.update(n)
                rate = steady_steps / (time.perf_counter() - steady_t0) if steady_steps else float("nan")
                bar.set_postfix(loss=f"{float(np.mean(metrics['loss'])):.4f}", ref=f"{float(np.mean(metrics['ref_loss'])):.4f}",
                                cos=f"{float(np.mean(metrics['model_cos'])):.4f}", steps_s=f"{rate:.0f}")
                if stop.requested:
                    raise _Stopped(stop.requested)
    except _Stopped as stopped:
        sys.stdout.flush()
        if stopped.args[0] == signal.SIGTERM:
            echo(f"stopped by SIGTERM at step {step}; checkpoint saved")
            raise SystemExit(128 + signal.SIGTERM) from None
        echo(f"interrupted at step {step}; checkpoint saved in {run_dir / 'checkpoints'}")
        raise KeyboardInterrupt from None
    finally:
        bar.close()
        try:
            manager.wait_until_finished()
        finally:
            manager.close()  # also after a failed save: no orbax thread outlives the run
    wall = wall_before + time.perf_counter() - t0
    if step < cfg.steps:
        return {"stopped_at": step}

    table = final_table(config, params, config.compare_against, cfg.final_eval_tasks)
    summary = {
        "experiment": config.name,
        "steps": step,
        "seeds": seeds_of(config),
        "reference": {"solver": config.train.reference, "hparams": reference_hparams},
        "wall_s": round(wall, 2),
        "train_steps_per_s": round(steady_steps / (time.perf_counter() - steady_t0), 2) if steady_steps else None,
        "resumed_from": start or None,
        "log_complete": main_process and not any(r.get("event") == "log_gap" for r in rundir.read_log(run_dir)),
        **table,
        "devices": _devices(),
        "versions": _versions(),
        "command": " ".join(sys.argv),
    }
    if main_process:
        rundir.write_atomic(run_dir / rundir.SUMMARY, json.dumps(summary, indent=2))
    return summary


def seed_models(config: ExperimentConfig, params: dict) -> list[models.LSATransformer]:
    """The trained model of every seed, from parameters stacked over seeds."""
    spec = model_spec(config)
    return [spec.model(p) for p in unstack_seeds(params, config.train.n_seeds)]


def load_params(run_dir: str | Path, config: ExperimentConfig | None = None, step: int | None = None) -> tuple[ExperimentConfig, dict, int]:
    """The config and the parameters (stacked over seeds) of a run directory's checkpoint.

    The parameters are loaded onto this process's first device, whatever mesh the run trained on
    (a run of 8 devices or several processes loads on a laptop), in the run's dtype (a float64
    run switches float64 on)."""
    run_dir = Path(run_dir)
    if not (run_dir / rundir.CONFIG).exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no {rundir.CONFIG})")
    config = config or ExperimentConfig.from_dict(json.loads((run_dir / rundir.CONFIG).read_text()))
    if config.train.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    manager = rundir.manager(run_dir)
    step = manager.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint yet")
    one_device = dataclasses.replace(config.train, seed_parallel=1, data_parallel=1)
    params, opt_state = Trainer(dataclasses.replace(config, train=one_device), jax.local_devices()[:1]).init()
    target = {"params": params, "opt_state": opt_state}
    rundir.check_compatible(manager, step, params)
    restored = rundir.restore(manager, step, target)
    manager.close()
    return config, restored["params"], step


def _progress(enabled: bool, start: int, end: int):
    from tqdm.auto import tqdm  # noqa: PLC0415

    return tqdm(total=end, initial=start, disable=not enabled, unit="step", dynamic_ncols=True, mininterval=0.5)

