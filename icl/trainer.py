"""The device side of training: optimiser, model spec, seeds and keys, the mesh, the compiled
train chunk and evaluation (`Trainer`), and the final comparison table.

Keys (a run is a pure function of its `ExperimentConfig` and its device layout; layouts differ by float rounding only):
  * seed i of `n_seeds` has root key `key(seed + i)` (in a sweep, every value's column i); its initial weights come from
    `fold_in(root, 0)` and the tasks of step t from `fold_in(fold_in(root, 1), t)`, drawn inside
    the jitted step, so a resumed run sees exactly the data of an uninterrupted one;
  * held-out tasks come from `fold_in(key(eval_seed), purpose)` (`HeldOut`), never trained on;
  * `eval_every` steps are one dispatch (`lax.scan`), vmapped over seeds.
`icl.train` runs the loop around it (checkpoints, log, summary, signals).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from icl import compare, curriculum, models
from icl.config import ExperimentConfig, OptimConfig
from icl.devices import auto_data_parallel
from icl.distributed import to_host
from icl.precision import highest, traced_at
from icl.tasks import rng


def stack_seeds(trees: list[Any]) -> Any:
    """[tree per seed] -> one tree with leaves [S, ...] (the layout runs train and checkpoint)."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def unstack_seeds(params: Any, n_seeds: int) -> list[Any]:
    """One tree with leaves [S, ...] -> [tree per seed]."""
    return [jax.tree.map(lambda x, i=i: x[i], params) for i in range(n_seeds)]


def build_optimizer(config: OptimConfig, total_steps: int, **values) -> optax.GradientTransformation:
    """Clip by global norm, then adam / adamw / sgd with a warm-up and constant or cosine schedule.
    `values` replace the config's lr, b1, b2 or weight_decay, possibly by traced scalars (a sweep's
    column, `Trainer`); the state's layout does not depend on them."""
    lr, b1, b2, weight_decay = (values.get(k, getattr(config, k)) for k in ("lr", "b1", "b2", "weight_decay"))
    decay_steps = max(total_steps - config.warmup_steps, 1)
    if config.schedule == "cosine":
        main = optax.cosine_decay_schedule(lr, decay_steps)
    else:
        main = optax.constant_schedule(lr)
    if config.warmup_steps:
        warmup = optax.linear_schedule(0.0, lr, config.warmup_steps)
        schedule = optax.join_schedules([warmup, main], [config.warmup_steps])
    else:
        schedule = main
    if config.name == "sgd":
        opt = optax.sgd(schedule)
    elif config.name == "adam":
        opt = optax.adam(schedule, b1=b1, b2=b2)
    else:
        opt = optax.adamw(schedule, b1=b1, b2=b2, weight_decay=weight_decay)
    return optax.chain(optax.clip_by_global_norm(config.grad_clip), opt) if config.grad_clip else opt


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How to turn a pure-dict parameter tree back into the NNX model (static across a run)."""

    graphdef: Any
    template: Any  # nnx.State of Params, for the tree structure
    rest: Any  # non-trainable variables (e.g. the query's w0)

    def model(self, params: dict):
        """The model of the run's family (`icl.models.registry`) with these parameters."""
        state = jax.tree.map(lambda x: x, self.template)
        nnx.replace_by_pure_dict(state, params)
        return nnx.merge(self.graphdef, state, self.rest)

    def predictor(self, params: dict) -> compare.Predictor:
        return self.model(params).predict


def model_spec(config: ExperimentConfig) -> ModelSpec:
    """The static structure of the run's model (any registered family)."""
    graphdef, template, rest = nnx.split(models.build(config.model, config.task.d, 0), nnx.Param, ...)
    return ModelSpec(graphdef, template, rest)


def init_params(config: ExperimentConfig, seed: int) -> dict:
    """Initial parameters (a pure dict) of the run with this seed."""
    key = jax.random.fold_in(jax.random.key(seed), 0)
    model = models.build(config.model, config.task.d, key)
    return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def seeds_of(config: ExperimentConfig) -> list[int]:
    """The seed of every column: seed, seed + 1, ... (repeated for each value of a sweep)."""
    cfg = config.train
    return [cfg.seed + i for _ in range(max(len(cfg.sweep_values), 1)) for i in range(cfg.n_seeds)]


def columns(config: ExperimentConfig) -> list[dict]:
    """What each column of a run is: {"seed": s} or, in a sweep, {"seed": s, "optim.<field>": v}."""
    cfg = config.train
    values = [v for v in cfg.sweep_values for _ in range(cfg.n_seeds)] or [None] * cfg.n_seeds
    return [{"seed": s} if v is None else {"seed": s, f"optim.{cfg.sweep}": float(v)}
            for s, v in zip(seeds_of(config), values, strict=True)]


def column_config(config: ExperimentConfig, column: int) -> ExperimentConfig:
    """The one-seed run that column `column` of `config` trains (a sweep's value in its optim)."""
    info = columns(config)[column]
    optim = config.optim
    if config.train.sweep:
        optim = dataclasses.replace(optim, **{config.train.sweep: info[f"optim.{config.train.sweep}"]})
    train = dataclasses.replace(config.train, seed=info["seed"], n_seeds=1, seed_parallel=1, seed_group=0,
                                sweep="", sweep_values=())
    return dataclasses.replace(config, optim=optim, train=train)


def data_keys(config: ExperimentConfig) -> jax.Array:
    """[S] keys of the run's sampler (`icl.tasks.rng`); step t of seed i trains on tasks from
    fold_in(data_keys[i], t)."""
    return jnp.stack([jax.random.fold_in(rng.key(s, config.train.sampler), 1) for s in seeds_of(config)])


class HeldOut(enum.IntEnum):
    """The purposes of held-out tasks: each draws from fold_in(key(train.eval_seed), purpose), a
    path training never uses (it draws from key(train.seed + i)). Studies take their sets here, so
    two never share one by accident; a new purpose gets a new number."""

    EVAL = 0  # the evaluation every `eval_every` steps during training
    FINAL = 1  # the final comparison table (summary.json) and the figures' test sets
    GD_LR = 2  # solvers' hyper-parameters estimated from tasks (the optimal one-step GD rate)
    OOD = 3  # out-of-distribution input scales (figure 1)
    TUNE = 4  # tuning solver hyper-parameters (validation tasks, disjoint from FINAL)
    EXTRA = 5  # a second test set of a study (claim 1's other context sizes, claim 5's orders, fig. 4's example)
    POOL = 7  # tasks from a finite training pool (claim 4)
    FRESH = 8  # tasks w ~ N(0, I) outside any pool (claim 4)


def heldout_key(config: ExperimentConfig, purpose: HeldOut | int) -> jax.Array:
    """The key of held-out tasks for `purpose` (a `HeldOut`)."""
    return jax.random.fold_in(jax.random.key(config.train.eval_seed), int(purpose))


def make_mesh(config: ExperimentConfig, devices=None) -> Mesh:
    """A (seeds, data) device mesh for the run, with a clear error if the devices are too few;
    `train.data_parallel="auto"` follows `icl.devices.auto_data_parallel`.

    `devices`: the devices to lay the mesh on (default `jax.devices()`, every process's); `icl aot`
    passes the devices of a hardware target description instead."""
    cfg = config.train
    devices = jax.devices() if devices is None else list(devices)
    left = max(len(devices) // cfg.seed_parallel, 1)  # devices left for the data axis
    if cfg.data_parallel == "auto":
        data = auto_data_parallel(config.model, cfg.batch_size, left, devices[0].platform)
    else:
        data = cfg.data_parallel or left
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
        self.schedule = curriculum.of_run(config)
        self.mesh = make_mesh(config, devices)
        self.state_sharding = NamedSharding(self.mesh, P("seeds"))
        self.batch_sharding = NamedSharding(self.mesh, P("data"))  # per seed, inside the vmap
        self.replicated = NamedSharding(self.mesh, P())

        self._chunk = jax.jit(
            traced_at(config.train.matmul_precision, self._train_chunk), static_argnums=3,
            out_shardings=(self.state_sharding, self.state_sharding, self.replicated),
        )

    # -- state ---------------------------------------------------------------------------------
    def shard(self, tree):
        """Place a tree with a leading seed axis on the mesh."""
        return jax.device_put(tree, self.state_sharding)

    def init(self) -> tuple[dict, Any]:
        params = stack_seeds([init_params(self.config, s) for s in seeds_of(self.config)])
        params = self.shard(params)
        return params, self.shard(jax.vmap(self.optimizer.init)(params))

    def keys(self) -> jax.Array:
        """[S] data keys, made on the mesh (a typed key array cannot be `device_put` onto devices
        of other processes; a jitted function can create it there)."""
        return jax.jit(lambda: data_keys(self.config), out_shardings=self.state_sharding)()

    # -- training ------------------------------------------------------------------------------
    def loss(self, params: dict, batch, step=None) -> jax.Array:
        """The training loss at `step` (the curriculum's positions and loops; None: the full task)."""
        n_points = batch.n_ctx + batch.y_query.shape[1]
        schedule = self.schedule if step is not None else curriculum.Schedule()
        return objective_loss(self.config.train.objective, self.spec.model(params), batch,
                              schedule.position_mask(n_points, step), schedule.n_loops(step))

    def sample(self, data_key, step):
        """The step's task batch (with the curriculum's active input dimensions, if any)."""
        key, size = jax.random.fold_in(data_key, step), self.config.train.batch_size
        dims = self.schedule.active_dims(step)
        batch = self.config.task.sample(key, size) if dims is None else self.config.task.sample(key, size, active_dims=dims)
        return jax.lax.with_sharding_constraint(batch, self.batch_sharding)

    def _step_one(self, params, opt_state, column, step):
        """One step of one column; `column` is its data key, or (data key, sweep value)."""
        data_key, value = column if self.config.train.sweep else (column, None)
        optimizer = self.optimizer if value is None else build_optimizer(
            self.config.optim, self.config.train.steps, **{self.config.train.sweep: value})
        loss, grads = jax.value_and_grad(self.loss)(params, self.sample(data_key, step), step)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    def _columns(self, keys):
        """The per-column inputs of a step: the data keys, with the sweep's values [C] if any."""
        cfg = self.config.train
        if not cfg.sweep:
            return keys
        return keys, jnp.repeat(jnp.asarray(cfg.sweep_values, jnp.result_type(float)), cfg.n_seeds)

    def _train_chunk(self, params, opt_state, keys, n_steps, start, count=None):
        """n_steps steps from `start` for every column: returns params, opt_state, losses [n_steps, S].
        With `count` (traced, <= n_steps): only the first `count` steps run (a while loop), the
        losses after them are 0; one compiled program then serves every chunk length up to
        n_steps (the loop's last, shorter chunk does not recompile)."""
        step_all = jax.vmap(self._step_one, in_axes=(0, 0, 0, None), spmd_axis_name="seeds")
        group = self.config.train.seed_group
        if group and group < self.config.train.n_columns:
            step_all = _grouped(jax.vmap(self._step_one, in_axes=(0, 0, 0, None)), group)
        cols = self._columns(keys)

        def body(carry, step):
            params, opt_state = carry
            params, opt_state, loss = step_all(params, opt_state, cols, step)
            return (params, opt_state), loss

        if count is None:
            (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), start + jnp.arange(n_steps))
            return params, opt_state, losses

        def counted(i, state):
            params, opt_state, losses = state
            (params, opt_state), loss = body((params, opt_state), start + i)
            return params, opt_state, losses.at[i].set(loss)

        loss_shape = jax.eval_shape(lambda: body((params, opt_state), start)[1])
        losses = jnp.zeros((n_steps, *loss_shape.shape), loss_shape.dtype)
        return jax.lax.fori_loop(0, count, counted, (params, opt_state, losses))

    def train_chunk(self, params, opt_state, keys, start: int, n_steps: int):
        """n_steps steps from `start`: (params, opt_state, losses [n_steps, S]). Compiled once for
        every n_steps <= eval_every (a while loop of n_steps in a program of eval_every; the
        arguments are never donated, so the caller may go on reading the inputs, e.g. to save them)."""
        length = max(n_steps, self.config.train.eval_every)
        count = jnp.asarray(n_steps, jnp.int32)
        params, opt_state, losses = self._chunk(params, opt_state, keys, length, jnp.asarray(start, jnp.int32), count)
        return params, opt_state, losses if n_steps == length else losses[:n_steps]

    # -- evaluation ----------------------------------------------------------------------------
    def evaluator(self, reference: Callable) -> Callable:
        """The jitted evaluation (params, batch) -> per seed [S] loss, ref_loss, preds_diff,
        model_cos, model_diff: the model against `reference`, a predictor such as
        `compare.solver_predictor(...)[0]` (definitions in `icl.compare`)."""

        def one(params, batch):
            out = compare.compare(self.spec.predictor(params), reference, batch)
            out["ref_loss"] = out.pop("loss_other")
            return out

        return jax.jit(highest(jax.vmap(one, in_axes=(0, None))), out_shardings=self.replicated)


def objective_loss(objective: str, model, batch, position_mask=None, n_loops=None) -> jax.Array:
    """The training loss of `model` on `batch` (`compare.loss`, half the mean squared error):

      "query":  at the M query tokens, each predicted from the N context pairs;
      "causal": at every position t of the sequence [context, queries] (T = N + M pairs),
                predicted from the pairs before it, averaged over the B T predictions.

    Curricula (causal only, `icl.curriculum.Schedule`): `position_mask` [T] averages over the
    positions where it is 1 instead, (1/2) sum_bt m_t (y_hat_bt - y_bt)^2 / (B sum_t m_t) (for a
    causal model, the loss on the sequence cut after the active positions); `n_loops` = (b,
    window) of a looped GPT-2: the mean of that loss over the read-outs of the last
    min(b, window) of b loops (`GPT2.loop_window_predictions`).
    """
    if objective != "causal":
        return compare.loss(model.predict(batch.x_ctx, batch.y_ctx, batch.x_query), batch.y_query)
    x, y = batch.sequence()  # [B, T, d], [B, T]
    if position_mask is None and n_loops is None:
        return compare.loss(model.predict_prefixes(x, y), y)
    mask = jnp.ones(y.shape[1], y.dtype) if position_mask is None else position_mask.astype(y.dtype)  # [T]
    if n_loops is None:
        return 0.5 * curriculum.masked_mse(model.predict_prefixes(x, y), y, mask)
    b, window = n_loops  # b traced, window a Python int
    preds, valid = model.loop_window_predictions(x, y, b, window)  # [window, B, T], [window]
    per_loop = jax.vmap(lambda p: 0.5 * curriculum.masked_mse(p, y, mask))(preds)  # [window]
    return jnp.sum(jnp.where(valid, per_loop, 0.0)) / jnp.sum(valid)


def _grouped(step_group, group: int):
    """step_group over [S] state as S/g groups of g seeds run one after another (lax.map)."""

    def step_all(params, opt_state, keys, step):
        split = lambda t: t.reshape((-1, group) + t.shape[1:])  # [S, ...] -> [S/g, g, ...]
        merge = lambda t: t.reshape((-1,) + t.shape[2:])
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
    batch = config.task.sample(heldout_key(config, HeldOut.FINAL), n_tasks)
    model_loss = jax.jit(highest(jax.vmap(lambda p, b: compare.loss(spec.model(p)(b), b.y_query), in_axes=(0, None))))
    out: dict[str, Any] = {"n_tasks": n_tasks, "model": {"loss": to_host(model_loss(params, batch)).tolist()}}
    out["zero_loss"] = float(compare.loss(jnp.zeros_like(batch.y_query), batch.y_query))
    out["solvers"] = {}
    for name in against:
        predict, hparams = compare.solver_predictor(name, config.task, heldout_key(config, HeldOut.GD_LR))
        per_seed = lambda p, b, predict=predict: compare.compare(spec.predictor(p), predict, b)  # this iteration's predict
        metrics = jax.jit(highest(jax.vmap(per_seed, in_axes=(0, None))))
        values = to_host(metrics(params, batch))
        out["solvers"][name] = {
            "loss": float(values["loss_other"][0]),
            "hparams": hparams,
            **{k: values[k].tolist() for k in ("preds_diff", "model_cos", "model_diff")},
        }
    return out
