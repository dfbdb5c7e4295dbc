"""Train LSA transformers on in-context regression, many seeds in one program, and compare them.

A run is a pure function of its `ExperimentConfig`:
  * run i of `n_seeds` has root key `key(seed + i)`; its initial weights come from
    `fold_in(root, 0)` and the tasks of step t from `fold_in(fold_in(root, 1), t)`, drawn inside
    the jitted step, so a resumed run sees exactly the data of an uninterrupted one;
  * held-out tasks (evaluation, final table, the optimal GD lr) come from `key(eval_seed)` by
    another path, so they are never trained on;
  * `eval_every` steps are one dispatch (`lax.scan`), vmapped over seeds.

A run directory holds `config.json`, `log.jsonl` (one line per evaluation), `checkpoints/`
(orbax; the last two kept) and, at the end, `summary.json`.
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
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from icl import compare, models, rundir, solvers
from icl.rundir import CheckpointMismatch
from icl.distributed import to_host
from icl.config import ExperimentConfig, OptimConfig

LOG, SUMMARY, CONFIG = rundir.LOG, rundir.SUMMARY, rundir.CONFIG


class TrainingDiverged(RuntimeError):
    """The loss became non-finite; the last good checkpoint is kept."""


def build_optimizer(config: OptimConfig, total_steps: int) -> optax.GradientTransformation:
    """Clip by global norm, then adam / adamw / sgd with a warm-up and constant or cosine schedule."""
    decay_steps = max(total_steps - config.warmup_steps, 1)
    if config.schedule == "cosine":
        main = optax.cosine_decay_schedule(config.lr, decay_steps)
    else:
        main = optax.constant_schedule(config.lr)
    if config.warmup_steps:
        warmup = optax.linear_schedule(0.0, config.lr, config.warmup_steps)
        schedule = optax.join_schedules([warmup, main], [config.warmup_steps])
    else:
        schedule = main
    if config.name == "sgd":
        opt = optax.sgd(schedule)
    elif config.name == "adam":
        opt = optax.adam(schedule, b1=config.b1, b2=config.b2)
    else:
        opt = optax.adamw(schedule, b1=config.b1, b2=config.b2, weight_decay=config.weight_decay)
    return optax.chain(optax.clip_by_global_norm(config.grad_clip), opt) if config.grad_clip else opt


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How to turn a pure-dict parameter tree back into the NNX model (static across a run)."""

    graphdef: Any
    template: Any  # nnx.State of Params, for the tree structure
    rest: Any  # non-trainable variables (e.g. the query's w0)

    def model(self, params: dict) -> models.LSATransformer:
        state = jax.tree.map(lambda x: x, self.template)
        nnx.replace_by_pure_dict(state, params)
        return nnx.merge(self.graphdef, state, self.rest)

    def predictor(self, params: dict) -> compare.Predictor:
        return self.model(params).predict


def model_spec(config: ExperimentConfig) -> ModelSpec:
    graphdef, template, rest = nnx.split(models.build(config.model, config.task.d, 0), nnx.Param, ...)
    return ModelSpec(graphdef, template, rest)


def init_params(config: ExperimentConfig, seed: int) -> dict:
    """Initial parameters (a pure dict) of the run with this seed."""
    key = jax.random.fold_in(jax.random.key(seed), 0)
    model = models.build(config.model, config.task.d, key)
    return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def seeds_of(config: ExperimentConfig) -> list[int]:
    return [config.train.seed + i for i in range(config.train.n_seeds)]


def data_keys(config: ExperimentConfig) -> jax.Array:
    """[S] keys; step t of seed i trains on tasks from fold_in(data_keys[i], t)."""
    return jnp.stack([jax.random.fold_in(jax.random.key(s), 1) for s in seeds_of(config)])


def heldout_key(config: ExperimentConfig, purpose: int) -> jax.Array:
    """0: evaluation during training, 1: final table, 2: the optimal GD lr."""
    return jax.random.fold_in(jax.random.key(config.train.eval_seed), purpose)


def make_mesh(config: ExperimentConfig, devices=None) -> Mesh:
    """A (seeds, data) device mesh for the run, with a clear error if the devices are too few.

    `devices`: the devices to lay the mesh on (default `jax.devices()`, every process's); `icl aot`
    passes the devices of a hardware target description instead."""
    cfg = config.train
    devices = jax.devices() if devices is None else list(devices)
    data = cfg.data_parallel or max(len(devices) // cfg.seed_parallel, 1)
    if cfg.seed_parallel * data > len(devices):
        raise ValueError(
            f"train: seed_parallel x data_parallel = {cfg.seed_parallel} x {data} devices requested, "
            f"but JAX sees {len(devices)} ({jax.default_backend()})"
        )
    if cfg.batch_size % data:
        raise ValueError(f"train: batch_size ({cfg.batch_size}) must be divisible by the {data} data-parallel devices")
    return jax.make_mesh(
        (cfg.seed_parallel, data), ("seeds", "data"), axis_types=(AxisType.Auto,) * 2,
        devices=devices[: cfg.seed_parallel * data],
    )


class Trainer:
    """The compiled pieces of one experiment: initialisation, the chunked train step, evaluation.

    State (parameters, optimiser state, keys) carries a leading seed axis, sharded over the mesh's
    `seeds` axis and replicated over `data`; each step's task batch is sampled on device and
    sharded over `data`, so data parallelism needs no host input pipeline and the gradient
    all-reduce is inserted by XLA. On one device all of this is a no-op.
    """

    def __init__(self, config: ExperimentConfig, devices=None):
        self.config = config
        self.spec = model_spec(config)
        self.optimizer = build_optimizer(config.optim, config.train.steps)
        self.mesh = make_mesh(config, devices)
        self.state_sharding = NamedSharding(self.mesh, P("seeds"))
        self.batch_sharding = NamedSharding(self.mesh, P("data"))  # per seed, inside the vmap
        self.replicated = NamedSharding(self.mesh, P())
        self.trace_count = 0  # how often the train chunk was traced (compiled): guards retracing
        self.on_batch_sharding = None  # test hook: called with the batch's sharding at trace time
        from icl.precision import highest, traced_at  # noqa: PLC0415  (icl.precision: the policy)

        self._chunk = jax.jit(
            traced_at(config.train.matmul_precision, self._train_chunk), static_argnums=3,
            out_shardings=(self.state_sharding, self.state_sharding, self.replicated),
        )
        self._eval = jax.jit(highest(jax.vmap(self._eval_one, in_axes=(0, None, None))), out_shardings=self.replicated)

    # -- state ---------------------------------------------------------------------------------
    def shard(self, tree):
        """Place a tree with a leading seed axis on the mesh."""
        return jax.device_put(tree, self.state_sharding)

    def init(self) -> tuple[dict, Any]:
        params = jax.tree.map(lambda *xs: jnp.stack(xs), *[init_params(self.config, s) for s in seeds_of(self.config)])
        params = self.shard(params)
        return params, self.shard(jax.vmap(self.optimizer.init)(params))

    def keys(self) -> jax.Array:
        """[S] data keys, made on the mesh (a typed key array cannot be `device_put` onto devices
        of other processes; a jitted function can create it there)."""
        return jax.jit(lambda: data_keys(self.config), out_shardings=self.state_sharding)()

    # -- training ------------------------------------------------------------------------------
    def loss(self, params: dict, batch) -> jax.Array:
        y_hat = self.spec.model(params).predict(batch.x_ctx, batch.y_ctx, batch.x_query)
        return compare.loss(y_hat, batch.y_query)

    def sample(self, data_key, step):
        cfg = self.config.train
        with jax.threefry_partitionable(not cfg.fast_sampling):
            batch = self.config.task.sample(jax.random.fold_in(data_key, step), cfg.batch_size)
        batch = jax.lax.with_sharding_constraint(batch, self.batch_sharding)
        if self.on_batch_sharding is not None:
            jax.debug.inspect_array_sharding(batch.x_ctx, callback=self.on_batch_sharding)
        return batch

    def _step_one(self, params, opt_state, data_key, step):
        loss, grads = jax.value_and_grad(self.loss)(params, self.sample(data_key, step))
        updates, opt_state = self.optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    def _train_chunk(self, params, opt_state, keys, n_steps, start):
        """n_steps steps from `start` for every seed: returns params, opt_state, losses [n_steps, S]."""
        self.trace_count += 1
        step_all = jax.vmap(self._step_one, in_axes=(0, 0, 0, None), spmd_axis_name="seeds")
        group = self.config.train.seed_group
        if group and group < self.config.train.n_seeds:
            step_all = _grouped(jax.vmap(self._step_one, in_axes=(0, 0, 0, None)), group)

        def body(carry, step):
            params, opt_state = carry
            params, opt_state, loss = step_all(params, opt_state, keys, step)
            return (params, opt_state), loss

        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), start + jnp.arange(n_steps))
        return params, opt_state, losses

    def train_chunk(self, params, opt_state, keys, start: int, n_steps: int):
        return self._chunk(params, opt_state, keys, n_steps, jnp.asarray(start, jnp.int32))

    # -- evaluation ----------------------------------------------------------------------------
    def _eval_one(self, params, batch, lr):
        gd = lambda xc, yc, xq: solvers.gd(xc, yc, xq, lr=lr)  # noqa: E731
        return compare.compare(self.spec.predictor(params), gd, batch)

    def evaluate(self, params, batch, lr) -> dict[str, np.ndarray]:
        """Model vs one-step GD (rate lr) per seed on `batch`: loss, gd_loss, preds_diff, model_cos, model_diff."""
        out = jax.device_get(self._eval(params, batch, lr))
        out["gd_loss"] = out.pop("loss_other")
        return out


def _grouped(step_group, group: int):
    """step_group over [S] state as S/g groups of g seeds run one after another (lax.map)."""

    def step_all(params, opt_state, keys, step):
        split = lambda t: t.reshape((-1, group) + t.shape[1:])  # noqa: E731  [S, ...] -> [S/g, g, ...]
        merge = lambda t: t.reshape((-1,) + t.shape[2:])  # noqa: E731
        state = jax.tree.map(split, (params, opt_state, keys))
        params, opt_state, loss = jax.lax.map(lambda s: step_group(*s, step), state)
        return jax.tree.map(merge, params), jax.tree.map(merge, opt_state), merge(loss)

    return step_all


def final_table(config: ExperimentConfig, params: dict, against, n_tasks: int) -> dict:
    """The model (every seed) against each solver on `n_tasks` held-out tasks.

    Returns {"model": {"loss": [S]}, "zero_loss": float, "solvers": {name: {"loss", "hparams",
    "preds_diff": [S], "model_cos": [S], "model_diff": [S]}}}.
    """
    spec = model_spec(config)
    batch = config.task.sample(heldout_key(config, 1), n_tasks)
    from icl.precision import highest  # noqa: PLC0415

    model_loss = jax.jit(highest(jax.vmap(lambda p, b: compare.loss(spec.model(p)(b), b.y_query), in_axes=(0, None))))
    out: dict[str, Any] = {"n_tasks": n_tasks, "model": {"loss": to_host(model_loss(params, batch)).tolist()}}
    out["zero_loss"] = float(compare.loss(jnp.zeros_like(batch.y_query), batch.y_query))
    out["solvers"] = {}
    for name in against:
        predict, hparams = compare.solver_predictor(name, config.task, heldout_key(config, 2))
        metrics = jax.jit(highest(jax.vmap(lambda p, b: compare.compare(spec.predictor(p), predict, b), in_axes=(0, None))))
        values = to_host(metrics(params, batch))
        out["solvers"][name] = {
            "loss": float(values["loss_other"][0]),
            "hparams": hparams,
            **{k: values[k].tolist() for k in ("preds_diff", "model_cos", "model_diff")},
        }
    return out


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
    `icl.rundir`.
    """
    if config.train.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    main_process = jax.process_index() == 0  # multi-host: one process writes the files
    with rundir.lock(run_dir) if main_process else contextlib.nullcontext():
        return _train_locked(config, run_dir, until_step, progress, echo, main_process)


def check_solvers(config: ExperimentConfig) -> None:
    """Build every `compare_against` solver for the task and trace it on two tasks (no compute),
    so that a bad spec fails before training instead of after it."""
    batch = jax.eval_shape(lambda: config.task.sample(jax.random.key(0), 2))
    for spec in config.compare_against:
        try:
            predict, _ = compare.solver_predictor(spec, config.task, heldout_key(config, 2))
            jax.eval_shape(predict, batch.x_ctx, batch.y_ctx, batch.x_query)
        except (TypeError, ValueError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(f"compare_against: {spec!r} does not work on the {config.task.family} task: {first}") from None


def _train_locked(config, run_dir: Path, until_step, progress: bool, echo, main_process: bool) -> dict:
    cfg = config.train
    check_solvers(config)
    trainer = Trainer(config)  # a config the devices cannot run fails here, before anything is written
    params, opt_state = trainer.init()
    has_checkpoint = any(p.name.isdigit() for p in (run_dir / "checkpoints").glob("*"))
    rundir.check_config(run_dir, config, has_checkpoint)
    manager, start, restored = rundir.restore_latest(run_dir, {"params": params, "opt_state": opt_state}, echo)
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
    eval_batch = config.task.sample(heldout_key(config, 0), cfg.eval_tasks)
    lr = solvers.optimal_gd_lr(config.task, heldout_key(config, 2))
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
                metrics = trainer.evaluate(params, eval_batch, lr)
                log.write(json.dumps({"step": 0, **{k: np.asarray(v).tolist() for k, v in metrics.items()}}) + "\n")
            while step < end:
                n = min(cfg.eval_every - step % cfg.eval_every, end - step)
                new_params, new_opt, losses = trainer.train_chunk(params, opt_state, keys, step, n)
                losses = np.asarray(losses)  # [n, S]; the one host sync per chunk
                metrics = trainer.evaluate(new_params, eval_batch, lr)
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
                bar.set_postfix(loss=f"{float(np.mean(metrics['loss'])):.4f}", gd=f"{float(np.mean(metrics['gd_loss'])):.4f}",
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
        manager.wait_until_finished()
        manager.close()
    wall = wall_before + time.perf_counter() - t0
    if step < cfg.steps:
        return {"stopped_at": step}

    table = final_table(config, params, config.compare_against, cfg.final_eval_tasks)
    summary = {
        "experiment": config.name,
        "steps": step,
        "seeds": seeds_of(config),
        "eta": lr,
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
    return [spec.model(jax.tree.map(lambda x, i=i: x[i], params)) for i in range(config.train.n_seeds)]


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

