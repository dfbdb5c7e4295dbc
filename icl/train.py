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
import threading
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from icl import compare, models, precision, rundir
from icl.checks import first_line
from icl.config import ExperimentConfig
from icl.rundir import CheckpointMismatch
from icl.trainer import (  # noqa: F401  (re-exported: the public training API lives in icl.train)
    HeldOut,
    ModelSpec,
    Trainer,
    build_optimizer,
    column_config,
    columns,
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
    import flax

    return {"python": platform.python_version(), "jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__}


def _devices() -> list[str]:
    return [str(d) for d in jax.devices()]


class _Interrupts:
    """SIGTERM and the first Ctrl-C ask the loop to checkpoint and stop at the end of the current
    chunk. A second Ctrl-C aborts at once (the last checkpoint stays), except while a checkpoint is
    being written or waits to be (`saving()`, the writer thread's state): then it is deferred until
    the writes have finished (the loop raises it then), so a save is never cut."""

    def __init__(self, echo, saving=lambda: False):
        self.echo, self.requested, self.saving, self.abort = echo, None, saving, False

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
            if self.saving():
                self.abort = True
            else:
                raise KeyboardInterrupt

    def __exit__(self, *_):
        for sig, old in self._old.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def _deferred_sigint():
    """Ctrl-C held back for the block (raised as KeyboardInterrupt at its end), in the main thread;
    elsewhere a no-op (signals reach the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    old = signal.signal(signal.SIGINT, lambda *_: caught.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if caught:
        raise KeyboardInterrupt


class _Stopped(Exception):
    """The loop stopped on a signal after checkpointing."""


def _first_nonfinite(losses: np.ndarray, metrics: dict) -> tuple[str, int] | None:
    """(what, seed index) of the first non-finite training or held-out loss in a chunk."""
    for what, values in (("training loss", losses), ("held-out loss", np.asarray(metrics["loss"]))):
        bad = np.argwhere(~np.isfinite(np.atleast_1d(values)))
        if len(bad):
            return what, int(bad[0][-1])
    return None


def _open_log(run_dir: Path, start: int, main_process: bool, echo, mesh: dict) -> tuple[Any, float]:
    """The log opened for appending after `start`, and the wall time the run had spent up to it;
    a resumed run's `resumed` event says its device layout (`mesh`, which may differ from before).
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
    records.append({"event": "resumed", "step": start, "mesh": mesh})
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
    `icl.rundir`. The run computes at `train.dtype` whatever the caller's x64 setting (a float32
    run from a process with x64 on trains in float32, on the sampler's 32-bit stream, exactly as
    the `icl train` command does), in a scope of this thread that leaves the setting as it was
    (`precision.at_dtype`).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    main_process = jax.process_index() == 0  # multi-host: one process writes the files
    with precision.at_dtype(config.train.dtype), (rundir.lock(run_dir) if main_process else contextlib.nullcontext()):
        return _train_locked(config, run_dir, until_step, progress, echo, main_process)


def check_solvers(config: ExperimentConfig, against=None, field: str = "compare_against") -> None:
    """Build every `compare_against` solver and the reference for the task and trace them on two
    tasks (no compute), so that a bad spec fails before training instead of after it; with
    `against`, those specs instead, named `field` in the error (`icl compare --against`)."""
    batch = jax.eval_shape(lambda: config.task.sample(jax.random.key(0), 2))
    specs = [(field, s) for s in config.compare_against] + [("train.reference", config.train.reference)] \
        if against is None else [(field, s) for s in against]
    for label, spec in specs:
        try:
            predict, _ = reference_solver(config, spec)
            jax.eval_shape(predict, batch.x_ctx, batch.y_ctx, batch.x_query)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{label}: {spec!r} does not work on the {config.task.family} task: {first_line(error)}") from None


def reference_solver(config: ExperimentConfig, spec: str | None = None):
    """(predictor, hyper-parameters) of solver `spec` (default: `train.reference`) for the
    config's task, its open hyper-parameters estimated on the held-out GD_LR tasks."""
    return compare.solver_predictor(spec or config.train.reference, config.task, heldout_key(config, HeldOut.GD_LR))


MAX_PENDING_SAVES = 8  # states handed to the writer and not on disk: one being written, the rest waiting
# (every checkpoint step is written, in order; the loop waits only when this many are pending, so
# at a cheap step it does not wait for the disk; a kill -9 loses at most these intervals, a few
# seconds of training: the writer falls behind only when intervals are shorter than a write)
MAX_PENDING_BYTES = 256 << 20  # ... and at most this much state held for it (at least one state)
TIME_EVERY = 8  # one full chunk in this many is timed alone, for the summary's loop_overhead
# the writer thread's nice value above the process's: on a CPU its save work (orbax's Python and
# threads) then yields to the training instead of sharing the cores with it: the loop keeps more
# of the bare chunk's rate, and the writes take no longer in all
WRITER_NICE = 10
LOG_FLUSH_S = 1.0  # the log is flushed at most this often while training, and before every checkpoint


class _Saver:
    """Checkpoints written behind the loop, by one writer thread, in the order they were asked for.

    `submit` hands the writer a state and returns at once (it waits only while MAX_PENDING_SAVES
    states, or MAX_PENDING_BYTES, are already waiting), so the write of step k overlaps the
    training after it. A state is a chunk's outputs, arrays nothing writes to again: the train
    chunk donates no argument, so the loop trains on from them while the writer reads them. Orbax
    writes each checkpoint into a temporary directory and renames it into place once complete: a
    kill at any moment leaves the last complete checkpoint the latest. A failed write stops the
    writer (no later checkpoint is written after a missing one) and is raised in the loop's thread
    by the next `submit`, `check` or `wait` (a full disk as one OSError line naming the step)."""

    def __init__(self, manager, run_dir: Path, dtype: str, state_bytes: int):
        self.manager, self.run_dir, self.dtype = manager, run_dir, dtype
        self.max_pending = max(1, min(MAX_PENDING_SAVES, MAX_PENDING_BYTES // max(state_bytes, 1)))
        self.submitted = manager.latest_step()
        self.queue: list = []
        self.pending, self.error, self.closed = 0, None, False
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._write, name="icl-checkpoint-writer", daemon=True)
        self.thread.start()

    def busy(self) -> bool:
        """A checkpoint is being written or waits to be."""
        return self.pending > 0

    def submit(self, step: int, state: dict) -> None:
        self.check()
        if step == self.submitted:
            return
        with self.cond:
            while self.pending >= self.max_pending and self.error is None:
                self.cond.wait(0.1)  # with a timeout: signals reach the main thread meanwhile
            self.pending += 1
            self.queue.append((step, state))
            self.submitted = step
            self.cond.notify_all()
        self.check()

    def _write(self) -> None:
        if WRITER_NICE:
            with contextlib.suppress(OSError, AttributeError):  # Linux: a thread is a task with its own nice value
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + WRITER_NICE)
        with precision.at_dtype(self.dtype):  # the run's x64 setting is thread-local
            while True:
                with self.cond:
                    while not self.queue and not self.closed:
                        self.cond.wait()
                    if not self.queue:
                        return
                    step, state = self.queue[0]
                if self.error is None:
                    try:
                        self.manager.save(step, args=ocp.args.StandardSave(state), force=True)
                        self.manager.wait_until_finished()
                    except BaseException as error:  # noqa: BLE001  raised in the loop's thread instead
                        self.error = (step, error)
                        try:  # orbax's own thread of the same save may hold its error too: consume it
                            self.manager.wait_until_finished()
                        except BaseException:  # noqa: BLE001  the same failure, reported once
                            pass
                with self.cond:
                    self.queue.pop(0)
                    self.pending -= 1
                    self.cond.notify_all()

    def check(self) -> None:
        """Raise a failed write (a full disk as one clear OSError)."""
        if self.error is None:
            return
        step, error = self.error
        if "No space left on device" in str(error) or "os_error_code='28'" in str(error):
            raise OSError(errno.ENOSPC, f"No space left on device while writing checkpoint {step} "
                          f"(latest complete: {self.manager.latest_step()})", str(self.run_dir)) from None
        raise error

    def wait(self) -> int | None:
        """Wait until every submitted checkpoint is on disk; the latest complete step."""
        with self.cond:
            while self.pending:
                self.cond.wait(0.1)
        self.check()
        return self.manager.latest_step()

    def close(self) -> None:
        """Finish the writes in flight (none after a failed one) and stop the writer."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.thread.join()


@dataclasses.dataclass
class _Chunk:
    """A dispatched train chunk and its evaluation, not yet read to the host."""

    start: int
    n: int
    params: Any
    opt_state: Any
    losses: Any
    metrics: Any

    @property
    def end(self) -> int:
        return self.start + self.n


class _Log:
    """log.jsonl written without a flush per record: flushed at most every LOG_FLUSH_S seconds,
    before every checkpoint (a checkpointed step's record is in the file before its checkpoint
    can be), on a stop and at the end. A full disk met while flushing it is reported as the failed
    checkpoint write that filled it, if one did, else as the log's own one-line error."""

    def __init__(self, file, saver: _Saver, run_dir: Path):
        self.file, self.saver, self.run_dir, self.flushed = file, saver, run_dir, time.perf_counter()

    def __enter__(self):
        return self

    def __exit__(self, error_type, *_):
        if error_type is None:
            self.flush()
            self.file.close()
            return
        try:  # the error on its way out is the one to report, not a flush it makes fail (a full disk)
            self.file.close()
        except OSError:
            pass  # what did not fit is records after the last checkpoint (flushed before each)

    def write(self, record: dict) -> None:
        self.file.write(json.dumps(record) + "\n")

    def flush(self, due_only: bool = False) -> None:
        now = time.perf_counter()
        if due_only and now - self.flushed < LOG_FLUSH_S:
            return
        self.flushed = now
        try:
            self.file.flush()
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
            self.saver.wait()  # raises the checkpoint write that filled the disk, if one did
            raise OSError(errno.ENOSPC, f"No space left on device while writing {rundir.LOG} "
                          f"(latest complete checkpoint: {self.saver.manager.latest_step()})", str(self.run_dir)) from None


class _Clock:
    """The loop's steady-state timing: from the first chunk's results on the host (compilation
    excluded) to the last's; and how much of that the compiled programs needed (`compute_s`)."""

    def __init__(self):
        self.t0, self.t_end, self.steps, self.chunks = None, None, 0, 0
        self.timed: list[float] = []  # seconds of full chunks (with their evaluation) timed alone

    def chunk_done(self, n: int) -> None:
        now = time.perf_counter()
        if self.t0 is None:
            self.t0 = now
        else:
            self.steps, self.chunks = self.steps + n, self.chunks + 1
        self.t_end = now

    def rate(self) -> float:
        return self.steps / (self.t_end - self.t0) if self.steps else float("nan")


def _state_bytes(*trees) -> int:
    return sum(int(np.prod(x.shape)) * x.dtype.itemsize for x in jax.tree.leaves(trees))


def _compute_s(trainer, evaluate, params, opt_state, keys, eval_batch, step: int, clock: _Clock) -> float:
    """Seconds the loop's steady chunks and evaluations needed as compiled programs alone: the
    median of the full chunks the loop timed alone (dispatch to results, evaluation included: in
    the same conditions as the loop, load included), scaled to the loop's steps (a chunk's while
    loop costs in proportion to its steps; a shorter chunk's evaluation is counted in proportion
    too). A loop too short to have timed one times a chunk and an evaluation now, on its last state
    (best of 2, results discarded)."""
    length = trainer.config.train.eval_every
    if clock.timed:
        return float(np.median(clock.timed)) * clock.steps / length
    t_chunk = t_eval = float("inf")
    for _ in range(2):
        t = time.perf_counter()
        jax.block_until_ready(trainer.train_chunk(params, opt_state, keys, step, length))
        t_chunk = min(t_chunk, time.perf_counter() - t)
        t = time.perf_counter()
        jax.block_until_ready(evaluate(params, eval_batch))
        t_eval = min(t_eval, time.perf_counter() - t)
    return clock.steps / length * t_chunk + clock.chunks * t_eval


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
         f"{cfg.n_seeds} seed(s)" + (f" x {len(cfg.sweep_values)} values of optim.{cfg.sweep}" if cfg.sweep else "")
         + f" x batch {cfg.batch_size}, steps {start} -> {end}")
    eval_batch = config.task.sample(heldout_key(config, HeldOut.EVAL), cfg.eval_tasks)
    reference, reference_hparams = reference_solver(config)
    evaluate = trainer.evaluator(reference)
    keys = trainer.keys()
    bar = _progress(progress and main_process, start, end)
    log_file, wall_before = _open_log(run_dir, start, main_process, echo, dict(trainer.mesh.shape))
    saver = _Saver(manager, run_dir, cfg.dtype, _state_bytes(params, opt_state))
    log = _Log(log_file, saver, run_dir)
    t0, clock, postfix_t = time.perf_counter(), _Clock(), 0.0
    done = start  # the last step whose chunk is checked, logged and (where due) handed to the writer
    checkpoint_wait_s = 0.0

    def finish(chunk: _Chunk, stop: _Interrupts) -> None:
        """Read a chunk's results (one chunk late: the next one is already running), check them,
        log them, hand its state to the writer where a checkpoint is due, stop where asked."""
        nonlocal params, opt_state, done, postfix_t
        losses = np.asarray(chunk.losses)  # [n, S]; the host sync, while the next chunk trains
        metrics = jax.device_get(chunk.metrics)
        if (bad := _first_nonfinite(losses, metrics)) is not None:
            log.write({"event": "diverged", "after_step": chunk.start, "steps": chunk.n, "what": bad[0]})
            log.flush()
            good = saver.wait()  # the last good checkpoint, on disk (its chunk was checked before it was saved)
            raise TrainingDiverged(
                f"training diverged: non-finite {bad[0]} within steps {chunk.start}-{chunk.end} "
                f"({', '.join(f'{k} {v:g}' for k, v in columns(config)[bad[1]].items())}); "
                + (f"last good checkpoint is step {good} in {run_dir / 'checkpoints'}. " if good is not None
                   else "no checkpoint was written. ")
                + "Try a lower optim.lr, optim.grad_clip or model.clip_activations."
            )
        params, opt_state, done = chunk.params, chunk.opt_state, chunk.end
        clock.chunk_done(chunk.n)
        log.write({
            "step": done,
            "train_loss": losses.mean(0).tolist(),
            **{k: np.asarray(v).tolist() for k, v in metrics.items()},
            "wall_s": round(wall_before + time.perf_counter() - t0, 3),
        })
        if done % cfg.ckpt_every == 0 or done == end or stop.requested:
            log.flush()  # the record of a checkpointed step is in the file before the checkpoint
            saver.submit(done, {"params": params, "opt_state": opt_state})
        else:
            log.flush(due_only=True)
            saver.check()
        bar.update(chunk.n)
        if bar.disable is False and time.perf_counter() - postfix_t > 0.5:  # shown at the bar's next refresh
            postfix_t = time.perf_counter()
            bar.set_postfix(loss=f"{float(np.mean(metrics['loss'])):.4f}", ref=f"{float(np.mean(metrics['ref_loss'])):.4f}",
                            cos=f"{float(np.mean(metrics['model_cos'])):.4f}", steps_s=f"{clock.rate():.0f}", refresh=False)
        if stop.requested:
            saver.wait()
            raise KeyboardInterrupt if stop.abort else _Stopped(stop.requested)
        if stop.abort and not saver.busy():  # a second Ctrl-C deferred past a checkpoint write
            raise KeyboardInterrupt

    try:
        with _Interrupts(echo, saver.busy) as stop, log:
            if start == 0:  # the untrained model, for the curves
                metrics = jax.device_get(evaluate(params, eval_batch))
                log.write({"step": 0, **{k: np.asarray(v).tolist() for k, v in metrics.items()}})
            step, pending, dispatched = start, None, 0
            while step < end or pending is not None:
                nxt = None
                # dispatch chunk k+1 before reading chunk k (after a stop request, only a first chunk:
                # the stop then checkpoints at its end, as at the end of any chunk)
                if step < end and (not stop.requested or pending is None):
                    n = min(cfg.eval_every - step % cfg.eval_every, end - step)
                    # every TIME_EVERY-th full chunk of the steady state is timed alone (the loop's
                    # overhead is measured against these): chunk k is read first, then k+1 runs
                    # on an idle device and is waited for
                    timed = clock.t0 is not None and n == cfg.eval_every and dispatched % TIME_EVERY == 0
                    if timed and pending is not None:
                        finish(pending, stop)
                        pending = None
                    t = time.perf_counter()
                    new_params, new_opt, losses = trainer.train_chunk(params if pending is None else pending.params,
                                                                      opt_state if pending is None else pending.opt_state,
                                                                      keys, step, n)
                    nxt = _Chunk(step, n, new_params, new_opt, losses, evaluate(new_params, eval_batch))
                    if timed:
                        jax.block_until_ready((nxt.params, nxt.opt_state, nxt.losses, nxt.metrics))
                        clock.timed.append(time.perf_counter() - t)
                    step, dispatched = step + n, dispatched + 1
                if pending is not None:
                    finish(pending, stop)
                pending = nxt
            log.flush()
            t_wait = time.perf_counter()
            saver.wait()  # the last checkpoints on disk before anything reports the run finished
            checkpoint_wait_s = time.perf_counter() - t_wait
            if stop.requested:  # asked during that wait: stopped, checkpointed (the table on the next run)
                raise KeyboardInterrupt if stop.abort else _Stopped(stop.requested)
    except _Stopped as stopped:
        sys.stdout.flush()
        if stopped.args[0] == signal.SIGTERM:
            echo(f"stopped by SIGTERM at step {done}; checkpoint saved")
            raise SystemExit(128 + signal.SIGTERM) from None
        echo(f"interrupted at step {done}; checkpoint saved in {run_dir / 'checkpoints'}")
        raise KeyboardInterrupt from None
    finally:
        bar.close()
        try:
            with _deferred_sigint():  # a Ctrl-C now must not leave the writer running past the lock
                saver.close()  # the writes in flight finish (a kill -9 instead leaves the last complete one)
            if saver.error is None:
                manager.wait_until_finished()
        finally:
            try:
                manager.close()  # also after a failed save: no orbax thread outlives the run
            except Exception:
                if saver.error is None:
                    raise  # after a failed write, the write's own error (raised above) is the report
    if done < cfg.steps:
        return {"stopped_at": done}

    wall = wall_before + time.perf_counter() - t0  # before any timing below: the run's own time
    steady_s = clock.t_end - clock.t0 if clock.steps else None
    overhead = None
    if steady_s:  # clipped to [0, 1]: the chunks timed alone are noisy samples, and on a loaded
        # machine their median can exceed the loop's own time per chunk (a negative overhead)
        compute = _compute_s(trainer, evaluate, params, opt_state, keys, eval_batch, done, clock)
        overhead = round(min(max(1 - compute / steady_s, 0.0), 1.0), 3)
    table = final_table(config, params, config.compare_against, cfg.final_eval_tasks)
    summary = {
        "experiment": config.name,
        "steps": done,
        "seeds": seeds_of(config),
        **({"columns": columns(config)} if cfg.sweep else {}),
        "reference": {"solver": config.train.reference, "hparams": reference_hparams},
        "wall_s": round(wall, 3),  # as the log rounds it: never below its last record
        # the loop's training rate: steps after the first chunk (which compiles) per second, until
        # the last chunk's results were checked; loop_overhead: the share of that time the compiled
        # chunks and evaluations did not need; checkpoint_wait_s: then waited for the last writes
        "train_steps_per_s": round(clock.rate(), 2) if clock.steps else None,
        "loop_overhead": overhead,
        "checkpoint_wait_s": round(checkpoint_wait_s, 3),
        "resumed_from": start or None,
        "log_complete": main_process and not any(r.get("event") == "log_gap" for r in rundir.read_log(run_dir)),
        **table,
        "devices": _devices(),
        "mesh": dict(trainer.mesh.shape),  # seeds x data: the devices this run's seeds and batch were split over
        "versions": _versions(),
        "command": " ".join(sys.argv),
    }
    if main_process:
        rundir.write_atomic(run_dir / rundir.SUMMARY, json.dumps(summary, indent=2))
    return summary


def seed_models(config: ExperimentConfig, params: dict) -> list[models.LSATransformer]:
    """The trained model of every seed, from parameters stacked over seeds."""
    spec = model_spec(config)
    return [spec.model(p) for p in unstack_seeds(params, config.train.n_columns)]


def load_params(run_dir: str | Path, config: ExperimentConfig | None = None, step: int | None = None) -> tuple[ExperimentConfig, dict, int]:
    """The config and the parameters (stacked over seeds) of a run directory's checkpoint.

    The parameters are loaded onto this process's first device, whatever mesh the run trained on
    (a run of 8 devices or several processes loads on a laptop), in the run's dtype, read in a
    scope at that dtype (`precision.at_dtype`) that leaves the caller's x64 setting as it was:
    compute with a float64 run's parameters inside `precision.at_dtype("float64")`."""
    run_dir = Path(run_dir)
    if not (run_dir / rundir.CONFIG).exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no {rundir.CONFIG})")
    config = config or ExperimentConfig.from_dict(json.loads((run_dir / rundir.CONFIG).read_text()))
    with precision.at_dtype(config.train.dtype):
        return _load_params(run_dir, config, step)


def _load_params(run_dir: Path, config: ExperimentConfig, step: int | None) -> tuple[ExperimentConfig, dict, int]:
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
    from tqdm.auto import tqdm

    return tqdm(total=end, initial=start, disable=not enabled, unit="step", dynamic_ncols=True, mininterval=0.5)

