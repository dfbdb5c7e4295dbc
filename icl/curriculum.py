"""Garg et al.'s training curriculum (NeurIPS 2022, Sec. 3) as a pure function of the step.

Shapes: B tasks, T (x, y) pairs of a training sequence, d input dimension.

Two quantities grow in steps of `every` training steps, each capped at its end value:

    active_dims(step)   = min(dims_start   + dims_inc   * floor(step / every), dims_end)
    active_points(step) = min(points_start + points_inc * floor(step / every), points_end)

(step counted from 0: their curriculum object adds the increment after every `every`-th update,
so the step-s batch sees floor(s / every) increments). Inputs carry only the first active_dims
coordinates (the rest are set to 0 *before* the labels are computed, so a task's labels depend
on those coordinates only), and a sequence holds active_points pairs. Here a sequence always has
the full T = points_end pairs and the loss is averaged over the first active_points positions
(`position_mask`, `masked_mse`): for a causal model (`icl.models.gpt2`) the prediction at
position t reads nothing after t, so the tail cannot change the active positions' predictions
and the loss and its gradient equal those on the shortened sequence, with one compiled shape for
the whole run.

Garg et al.'s settings (`Curriculum.garg`): dims 5 -> d, +1; points 11 -> 41, +2 (linear and
sparse linear regression, d = 20) or 26 -> 101, +5 (decision trees, two-layer ReLU networks);
both every 2,000 steps, so with d = 20 both reach their end at step 30,000. In both of their
presets points = k * dims + 1 along the whole schedule (k = 2, or 5). Yang et al. (ICLR 2024)
use the same schedules with every = 5,000.

A run turns it on with `train.curriculum="garg"` (and `train.loop_curriculum="yang"` for a looped
GPT-2); `of_run(config)` checks the combination and gives the trainer its `Schedule`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from icl.checks import check_int

_OWNER = "curriculum"


def _value(step: jax.Array, start: int, end: int, inc: int, every: int) -> jax.Array:
    """min(start + inc * floor(step / every), end) as int32, without overflow for any int32 step."""
    n_increments = -(-(end - start) // inc) if inc else 0  # past this many, the value is `end`
    return jnp.minimum(start + inc * jnp.minimum(step // every, n_increments), end).astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class Curriculum:
    """A schedule of the active input dimensions and sequence length (see the module docstring).

    Attributes:
      dims_start, dims_end, dims_inc: active dimensions start, cap, increment (0 = fixed).
      points_start, points_end, points_inc: active (x, y) pairs start, cap, increment.
      every: the steps between increments.
    The defaults are Garg et al.'s linear regression at d = 20.
    """

    dims_start: int = 5
    dims_end: int = 20
    dims_inc: int = 1
    points_start: int = 11
    points_end: int = 41
    points_inc: int = 2
    every: int = 2000

    def __post_init__(self):
        check_int(_OWNER, 1, dims_start=self.dims_start, dims_end=self.dims_end, points_start=self.points_start,
                  points_end=self.points_end, every=self.every)
        check_int(_OWNER, 0, dims_inc=self.dims_inc, points_inc=self.points_inc)
        for name in ("dims", "points"):
            start, end = getattr(self, f"{name}_start"), getattr(self, f"{name}_end")
            if start > end:
                raise ValueError(f"{_OWNER}: {name}_start {start} must be <= {name}_end {end}")

    @classmethod
    def garg(cls, d: int, points_end: int, every: int = 2000) -> Curriculum:
        """Garg et al.'s curriculum for inputs of dimension d and sequences of points_end pairs:
        dims min(5, d) -> d, +1; points k * dims + 1 throughout, k = (points_end - 1) / d (so
        points_end = 41 at d = 20 gives 11 -> 41, +2; points_end = 101 gives 26 -> 101, +5)."""
        check_int(_OWNER, 1, d=d, points_end=points_end, every=every)
        k, rest = divmod(points_end - 1, d)
        if rest or k < 1:
            raise ValueError(
                f"{_OWNER}: Garg et al.'s preset needs points_end = k * d + 1 (k >= 1), got points_end {points_end} "
                f"at d = {d}; build a Curriculum with explicit fields instead"
            )
        dims_start = min(5, d)
        return cls(dims_start=dims_start, dims_end=d, dims_inc=1, points_start=k * dims_start + 1,
                   points_end=points_end, points_inc=k, every=every)

    @property
    def final_step(self) -> int:
        """The first step at which both quantities have reached their end values."""
        increments = [-(-(end - start) // inc) if inc else 0 for start, end, inc in (
            (self.dims_start, self.dims_end, self.dims_inc), (self.points_start, self.points_end, self.points_inc))]
        return max(increments) * self.every

    def at(self, step) -> tuple[jax.Array, jax.Array]:
        """(active_dims, active_points) at training step `step` (>= 0; a Python int or a traced
        integer array, so it runs under jit), both int32 arrays."""
        if not isinstance(step, jax.Array):
            check_int(_OWNER, 0, step=step)
        step = jnp.asarray(step, jnp.int32)
        return (_value(step, self.dims_start, self.dims_end, self.dims_inc, self.every),
                _value(step, self.points_start, self.points_end, self.points_inc, self.every))

    def truncate(self, x: jax.Array, step) -> jax.Array:
        """x [..., d] with the coordinates >= active_dims(step) set to 0 (apply before labelling)."""
        return truncate_dims(x, self.at(step)[0])

    def position_mask(self, n_points: int, step) -> jax.Array:
        """[n_points] ones at the positions < active_points(step), zeros after."""
        return position_mask(n_points, self.at(step)[1])

    def apply(self, x: jax.Array, y: jax.Array, step) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(x with its inactive coordinates zeroed [B, T, d], y [B, T], the position mask [T]) at
        `step`. y is returned as given: it must already be the labels of the truncated inputs
        (a task samples x, `truncate`s it, then labels it); zeroing x after labelling would leave
        labels that read coordinates the model no longer sees."""
        x, y = jnp.asarray(x), jnp.asarray(y)
        if x.ndim != 3 or y.shape != x.shape[:2]:
            raise ValueError(f"{_OWNER}: apply needs x [batch, T, d] and y [batch, T], got {x.shape} and {y.shape}")
        if x.shape[1] < self.points_end:
            raise ValueError(f"{_OWNER}: sequences of T = {x.shape[1]} pairs are shorter than points_end = {self.points_end}")
        dims, points = self.at(step)
        return truncate_dims(x, dims), y, position_mask(x.shape[1], points)


def truncate_dims(x: jax.Array, active_dims) -> jax.Array:
    """x [..., d] with coordinates i >= active_dims set to 0 (active_dims may be traced)."""
    x = jnp.asarray(x)
    keep = jnp.arange(x.shape[-1]) < active_dims  # [d]
    return jnp.where(keep.reshape((1,) * (x.ndim - 1) + keep.shape), x, jnp.zeros((), x.dtype))


def position_mask(n_points: int, active_points) -> jax.Array:
    """[n_points] of the default float dtype: 1 at positions t < active_points (0-based), else 0."""
    check_int(_OWNER, 1, n_points=n_points)
    return (jnp.arange(n_points) < active_points).astype(jnp.result_type(float))


def masked_mse(pred: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
    """The mean squared error over the active positions,
    sum_{b, t} mask_t (pred_bt - target_bt)^2 / (B sum_t mask_t); pred, target [B, T], mask [T]."""
    pred, target, mask = jnp.asarray(pred), jnp.asarray(target), jnp.asarray(mask)
    if pred.ndim != 2 or target.shape != pred.shape or mask.shape != pred.shape[1:]:
        raise ValueError(f"{_OWNER}: masked_mse needs pred, target [batch, T] and mask [T], got "
                         f"{pred.shape}, {target.shape}, {mask.shape}")
    return jnp.sum(jnp.square(pred - target) * mask[None]) / (pred.shape[0] * jnp.sum(mask))


@dataclasses.dataclass(frozen=True)
class Schedule:
    """What a run's training step reads off the step number (`of_run`): the data curriculum
    (`data`, None = the full task at every step) and the loop curriculum (`loops`, keyword
    arguments of `icl.models.gpt2.loop_curriculum`; None = the model's own loops)."""

    data: Curriculum | None = None
    loops: dict | None = None

    def active_dims(self, step):
        """The active input dimensions at `step` (traced int32), or None without a data curriculum."""
        return None if self.data is None else self.data.at(step)[0]

    def position_mask(self, n_points: int, step):
        """[n_points] loss weights of the positions at `step`, or None without a data curriculum."""
        return None if self.data is None else self.data.position_mask(n_points, step)

    def n_loops(self, step):
        """(b, window) of the loop curriculum at `step`: b loops (traced int32), the loss over the
        read-outs of the last `window` (a Python int; fewer while b < window); None without one."""
        if self.loops is None:
            return None
        from icl.models.gpt2 import loop_curriculum

        return loop_curriculum(step, **self.loops)[0], self.loops["window"]


def of_run(config) -> Schedule:
    """The `Schedule` of an `ExperimentConfig`, or a one-line ValueError when its `train.curriculum`
    / `train.loop_curriculum` does not fit its task, model or objective."""
    from icl.models.gpt2 import LOOP_SCHEDULES, GPT2Config
    from icl.tasks.base import takes_active_dims

    train, task = config.train, config.task
    data = loops = None
    if train.curriculum == "garg":
        if train.objective != "causal":
            raise ValueError("train: curriculum 'garg' needs train.objective='causal' (the loss over the first "
                             "active positions of every sequence)")
        if not takes_active_dims(task):
            raise ValueError(f"train: curriculum 'garg' needs a task family whose sample takes active_dims; "
                             f"{task.family!r} does not")
        n_points = task.n_ctx + task.n_query
        try:
            data = Curriculum.garg(task.d, n_points, every=train.curriculum_every)
        except ValueError as error:
            raise ValueError(f"train: {error} (T = n_ctx + n_query pairs)") from None
    if train.loop_curriculum == "yang":
        model = config.model
        if not isinstance(model, GPT2Config) or not model.loops:
            raise ValueError("train: loop_curriculum 'yang' needs a looped gpt2 model (model.loops > 0)")
        if train.objective != "causal":
            raise ValueError("train: loop_curriculum 'yang' needs train.objective='causal'")
        if task.family not in LOOP_SCHEDULES:
            raise ValueError(f"train: loop_curriculum 'yang' has schedules for {', '.join(sorted(LOOP_SCHEDULES))}, "
                             f"not for the task family {task.family!r}")
        loops = LOOP_SCHEDULES[task.family]
        if loops["max_loops"] != model.loops:
            raise ValueError(f"train: loop_curriculum 'yang' for {task.family} ends at {loops['max_loops']} loops; "
                             f"set model.loops={loops['max_loops']} (evaluation runs model.loops loops)")
    return Schedule(data, loops)
