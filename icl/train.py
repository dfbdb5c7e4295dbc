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

import dataclasses
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
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from icl import compare, models, solvers
from icl.config import ExperimentConfig, OptimConfig

LOG = "log.jsonl"
SUMMARY = "summary.json"
CONFIG = "config.json"


class TrainingDiverged(RuntimeError):
    """The loss became non-finite; the last good checkpoint is kept."""


class CheckpointMismatch(ValueError):
    """A run directory's checkpoint or config does not match the requested config."""


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


def make_mesh(config: ExperimentConfig) -> Mesh:
    """A (seeds, data) device mesh for the run, with a clear error if the devices are too few."""
    cfg = config.train
    devices = jax.devices()
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

    def __init__(self, config: ExperimentConfig):
        self.config = config
        self.spec = model_spec(config)
        self.optimizer = build_optimizer(config.optim, config.train.steps)
        self.mesh = make_mesh(config)
        self.state_sharding = NamedSharding(self.mesh, P("seeds"))
        self.batch_sharding = NamedSharding(self.mesh, P("data"))  # per seed, inside the vmap
        self.replicated = NamedSharding(self.mesh, P())
        self.trace_count = 0  # how often the train chunk was traced (compiled): guards retracing
        self.on_batch_sharding = None  # test hook: called with the batch's sharding at trace time
        self._chunk = jax.jit(
            self._train_chunk, static_argnums=3,
            out_shardings=(self.state_sharding, self.state_sharding, self.replicated),
        )
        self._eval = jax.jit(jax.vmap(self._eval_one, in_axes=(0, None, None)), out_shardings=self.replicated)

    # -- state ---------------------------------------------------------------------------------
    def shard(self, tree):
        """Place a tree with a leading seed axis on the mesh."""
        return jax.device_put(tree, self.state_sharding)

    def init(self) -> tuple[dict, Any]:
        params = jax.tree.map(lambda *xs: jnp.stack(xs), *[init_params(self.config, s) for s in seeds_of(self.config)])
        params = self.shard(params)
        return params, self.shard(jax.vmap(self.optimizer.init)(params))

    def keys(self) -> jax.Array:
        return self.shard(data_keys(self.config))

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
    model_loss = jax.jit(jax.vmap(lambda p, b: compare.loss(spec.model(p)(b), b.y_query), in_axes=(0, None)))
    out: dict[str, Any] = {"n_tasks": n_tasks, "model": {"loss": np.asarray(model_loss(params, batch)).tolist()}}
    out["zero_loss"] = float(compare.loss(jnp.zeros_like(batch.y_query), batch.y_query))
    out["solvers"] = {}
    for name in against:
        predict, hparams = compare.solver_predictor(name, config.task, heldout_key(config, 2))
        metrics = jax.jit(jax.vmap(lambda p, b: compare.compare(spec.predictor(p), predict, b), in_axes=(0, None)))
        values = jax.device_get(metrics(params, batch))
        out["solvers"][name] = {
            "loss": float(values["loss_other"][0]),
            "hparams": hparams,
            **{k: values[k].tolist() for k in ("preds_diff", "model_cos", "model_diff")},
        }
    return out


# -- checkpoints --------------------------------------------------------------------------------
def _manager(run_dir: Path) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        (run_dir / "checkpoints").absolute(),
        options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True),
        item_handlers=ocp.StandardCheckpointHandler(),
    )


def _shapes(tree) -> dict[str, tuple]:
    """{"layers/0/key": shape, ...} for a tree of arrays or of orbax array metadata."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path): tuple(leaf.shape) for path, leaf in flat}


def _check_compatible(manager: ocp.CheckpointManager, step: int, params: dict) -> None:
    """Refuse a checkpoint whose parameter tree or shapes differ from what the config builds."""
    saved, wanted = _shapes(manager.item_metadata(step)["params"]), _shapes(params)
    problems = [f"{k}: checkpoint {saved.get(k)} vs config {v}" for k, v in wanted.items() if saved.get(k) != v]
    problems += [f"{k}: in the checkpoint, not in the config" for k in saved if k not in wanted]
    if problems:
        raise CheckpointMismatch(
            f"checkpoint at step {step} in {manager.directory} does not match the config "
            f"({len(problems)} differences; first: {'; '.join(problems[:3])}). "
            "Use a new --out directory, or the config the run was made with."
        )


def _field_defaults(section: str, config: ExperimentConfig) -> dict:
    """The JSON form of a section's field defaults (what an older run, saved before a field
    existed, implicitly used)."""
    obj = getattr(config, section)
    defaults = {f.name: f.default for f in dataclasses.fields(obj) if f.default is not dataclasses.MISSING}
    return json.loads(json.dumps(defaults, default=list))


def _check_config(run_dir: Path, config: ExperimentConfig) -> None:
    """A run directory belongs to one config (train.steps may grow to extend a run). A field the
    saved config lacks (added to the code later) counts as its default."""
    path = run_dir / CONFIG
    if not path.exists():
        return
    saved = json.loads(path.read_text())
    now = json.loads(config.to_json())  # the JSON form, so tuple fields compare equal to the saved lists
    saved["train"]["steps"] = now["train"]["steps"]
    diff = []
    for section, values in now.items():
        if not isinstance(values, dict):
            if values != saved.get(section):
                diff.append(section)
            continue
        old = {**_field_defaults(section, config), **saved.get(section, {})}
        diff += [f"{section}.{k}" for k in sorted(set(values) | set(old)) if values.get(k) != old.get(k)]
    if diff:
        raise CheckpointMismatch(
            f"{run_dir} holds a run with another config (differs in: {', '.join(diff)}). "
            "Use a new --out directory to start a new run."
        )


# -- the loop -----------------------------------------------------------------------------------
def _versions() -> dict:
    import flax  # noqa: PLC0415

    return {"python": platform.python_version(), "jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__}


def _devices() -> list[str]:
    return [str(d) for d in jax.devices()]


class _StopFlag:
    """Turns SIGTERM into a request to checkpoint and stop at the end of the current chunk."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self._old = signal.getsignal(signal.SIGTERM)
        try:
            signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread
            self._old = None
        return self

    def _handle(self, *_):
        self.requested = True

    def __exit__(self, *_):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


def train(
    config: ExperimentConfig,
    run_dir: str | Path,
    *,
    until_step: int | None = None,
    progress: bool = True,
    echo=print,
) -> dict:
    """Train (or resume) the run in `run_dir`; return its summary.

    Resumes from the latest checkpoint in `run_dir` if there is one (exactly: the result equals an
    uninterrupted run's). `until_step` stops early at that step with a checkpoint (to train in
    pieces). On a non-finite loss it raises `TrainingDiverged`, keeping the last good checkpoint;
    on SIGTERM or Ctrl-C it checkpoints the last completed chunk first.
    """
    if config.train.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    run_dir = Path(run_dir)
    main_process = jax.process_index() == 0  # multi-host: one process writes the files
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_config(run_dir, config)
    if main_process:
        (run_dir / CONFIG).write_text(config.to_json())

    cfg = config.train
    trainer = Trainer(config)
    params, opt_state = trainer.init()
    manager = _manager(run_dir)
    start = 0
    if manager.latest_step() is not None:
        start = manager.latest_step()
        target = {"params": params, "opt_state": opt_state}
        _check_compatible(manager, start, params)
        restored = manager.restore(start, args=ocp.args.StandardRestore(jax.tree.map(ocp.utils.to_shape_dtype_struct, target)))
        params, opt_state = restored["params"], restored["opt_state"]
        echo(f"resuming {run_dir} from step {start}")
    if start >= cfg.steps and (run_dir / SUMMARY).exists():  # finished: keep its summary
        manager.close()
        return json.loads((run_dir / SUMMARY).read_text())
    end = cfg.steps if until_step is None else min(until_step, cfg.steps)

    echo(f"devices: {', '.join(_devices())} (backend {jax.default_backend()}, {jax.process_count()} process(es)); "
         f"mesh {dict(trainer.mesh.shape)}; "
         f"{cfg.n_seeds} seed(s) x batch {cfg.batch_size}, steps {start} -> {end}")
    eval_batch = config.task.sample(heldout_key(config, 0), cfg.eval_tasks)
    lr = solvers.optimal_gd_lr(config.task, heldout_key(config, 2))
    keys = trainer.keys()

    def save(step, params, opt_state):
        if manager.latest_step() != step:
            manager.save(step, args=ocp.args.StandardSave({"params": params, "opt_state": opt_state}), force=True)
            manager.wait_until_finished()

    bar = _progress(progress, start, end)
    t0, steady_t0, steady_steps = time.perf_counter(), None, 0
    step = start
    try:
        with _StopFlag() as stop, open(run_dir / LOG if main_process else os.devnull, "a") as log:
            if start == 0:  # the untrained model, for the curves
                metrics = trainer.evaluate(params, eval_batch, lr)
                log.write(json.dumps({"step": 0, **{k: np.asarray(v).tolist() for k, v in metrics.items()}}) + "\n")
            while step < end:
                n = min(cfg.eval_every - step % cfg.eval_every, end - step)
                new_params, new_opt, losses = trainer.train_chunk(params, opt_state, keys, step, n)
                losses = np.asarray(losses)  # [n, S]; the one host sync per chunk
                if not np.all(np.isfinite(losses)):
                    bad_step, bad_seed = np.argwhere(~np.isfinite(losses))[0]
                    save(step, params, opt_state)
                    message = (
                        f"training diverged: non-finite loss at step {step + int(bad_step)} "
                        f"(seed {seeds_of(config)[bad_seed]}); last good checkpoint is step {step} in "
                        f"{run_dir / 'checkpoints'}. Try a lower optim.lr, optim.grad_clip or "
                        "model.clip_activations."
                    )
                    log.write(json.dumps({"event": "diverged", "step": step + int(bad_step)}) + "\n")
                    raise TrainingDiverged(message)
                params, opt_state, step = new_params, new_opt, step + n
                if steady_t0 is None:
                    steady_t0 = time.perf_counter()  # after the first chunk: compilation excluded
                else:
                    steady_steps += n
                metrics = trainer.evaluate(params, eval_batch, lr)
                record = {
                    "step": step,
                    "train_loss": losses.mean(0).tolist(),
                    **{k: np.asarray(v).tolist() for k, v in metrics.items()},
                    "wall_s": round(time.perf_counter() - t0, 3),
                }
                log.write(json.dumps(record) + "\n")
                log.flush()
                if step % cfg.ckpt_every == 0 or step == end:
                    save(step, params, opt_state)
                bar.update(n)
                rate = steady_steps / (time.perf_counter() - steady_t0) if steady_steps else float("nan")
                bar.set_postfix(loss=f"{float(np.mean(metrics['loss'])):.4f}", gd=f"{float(np.mean(metrics['gd_loss'])):.4f}",
                                cos=f"{float(np.mean(metrics['model_cos'])):.4f}", steps_s=f"{rate:.0f}")
                if stop.requested:  # end the program, as SIGTERM asks, but with a checkpoint
                    save(step, params, opt_state)
                    echo(f"stopped by SIGTERM at step {step}; checkpoint saved")
                    sys.stdout.flush()
                    raise SystemExit(128 + signal.SIGTERM)
    except KeyboardInterrupt:
        save(step, params, opt_state)
        echo(f"\ninterrupted at step {step}; checkpoint saved in {run_dir / 'checkpoints'}")
        raise
    finally:
        bar.close()
        manager.wait_until_finished()
        manager.close()
    wall = time.perf_counter() - t0
    if step < cfg.steps:
        return {"stopped_at": step}

    table = final_table(config, params, config.compare_against, cfg.final_eval_tasks)
    summary = {
        "experiment": config.name,
        "steps": cfg.steps,
        "seeds": seeds_of(config),
        "eta": lr,
        "wall_s": round(wall, 2),
        "train_steps_per_s": round(steady_steps / (time.perf_counter() - steady_t0), 2) if steady_steps else None,
        "resumed_from": start or None,
        **table,
        "devices": _devices(),
        "versions": _versions(),
        "command": " ".join(sys.argv),
    }
    if main_process:
        (run_dir / SUMMARY).write_text(json.dumps(summary, indent=2))
    return summary


def seed_models(config: ExperimentConfig, params: dict) -> list[models.LSATransformer]:
    """The trained model of every seed, from parameters stacked over seeds."""
    spec = model_spec(config)
    return [spec.model(jax.tree.map(lambda x, i=i: x[i], params)) for i in range(config.train.n_seeds)]


def load_params(run_dir: str | Path, config: ExperimentConfig | None = None, step: int | None = None) -> tuple[ExperimentConfig, dict, int]:
    """The config and the parameters (stacked over seeds) of a run directory's checkpoint."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no {CONFIG})")
    config = config or ExperimentConfig.from_dict(json.loads((run_dir / CONFIG).read_text()))
    manager = _manager(run_dir)
    step = manager.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint yet")
    params, opt_state = Trainer(config).init()
    target = {"params": params, "opt_state": opt_state}
    _check_compatible(manager, step, params)
    restored = manager.restore(step, args=ocp.args.StandardRestore(jax.tree.map(ocp.utils.to_shape_dtype_struct, target)))
    manager.close()
    return config, restored["params"], step


def _progress(enabled: bool, start: int, end: int):
    from tqdm.auto import tqdm  # noqa: PLC0415

    return tqdm(total=end, initial=start, disable=not enabled, unit="step", dynamic_ncols=True, mininterval=0.5)

