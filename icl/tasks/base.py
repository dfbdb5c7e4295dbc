"""Batches of in-context regression tasks and the registry of task families.

Shape letters used across the package: B tasks in a batch, N context examples (`n_ctx`),
M query points per task (`n_query`), d input dimension.

A task family is a frozen dataclass (its fields are its prior: input distribution, task
distribution, noise) with a method `sample(key, batch_size) -> Batch` (optionally
`sample(key, batch_size, active_dims=None)`: then a training curriculum over input dimensions can
draw from it, `icl.curriculum` and `takes_active_dims`). The dataclass is both the
config and the sampler, so it is hashable and can be closed over by `jax.jit`. Registering it
with `@register("name")` makes it available to `tasks.get`, the CLI, config validation and the
shared contract test at once.

A family also names the explicit learners it is compared against, as solver names or specs
(`"ridge(lam=0.1)"`, see `icl.solvers.parse_spec`):
  baselines: ClassVar[tuple[str, ...]]   the solvers that apply to the family (`icl list` shows them)
  default_baselines(self) -> tuple       optional: the ones a given task is compared against by
                                         default, when that depends on its parameters
  solver_hparams(self, name) -> dict     optional: hyper-parameters of solver `name` that suit the
                                         task (e.g. the pool of a finite-pool family); used by
                                         `icl.compare.solver_predictor`
`default_baselines(task)` below is what experiment configs default `compare_against` to.

Baselines are checked against the solver registry: tasks sit below solvers in the import order,
so `icl.solvers` installs its check (`install_baseline_check`) when it loads, which checks the
families registered so far; a family registered after that is checked at registration, and
`default_baselines(task)` checks what a `default_baselines()` method returns. A misspelled name
is a one-line error naming the family and the name, not an "unknown solver" at training time.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import ClassVar, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from icl.checks import check_int


@struct.dataclass
class Batch:
    """A batch of B regression tasks, each with N context pairs and M query pairs.

    Attributes:
      x_ctx:   [B, N, d] context inputs.
      y_ctx:   [B, N]    context labels.
      x_query: [B, M, d] query inputs.
      y_query: [B, M]    query labels (targets, never shown to a model).
      w:       [B, d]    the task's weight vector, for families that have one; else None.
    """

    x_ctx: jax.Array
    y_ctx: jax.Array
    x_query: jax.Array
    y_query: jax.Array
    w: jax.Array | None = None

    @property
    def batch_size(self) -> int:
        return self.x_ctx.shape[0]

    @property
    def n_ctx(self) -> int:
        return self.x_ctx.shape[1]

    @property
    def d(self) -> int:
        return self.x_ctx.shape[2]

    def sequence(self) -> tuple[jax.Array, jax.Array]:
        """The pairs as one sequence, context then queries (`split`'s inverse): x [B, T, d],
        y [B, T] with T = N + M; what a causal model reads and predicts at every position."""
        return (jnp.concatenate([self.x_ctx, self.x_query], axis=1),
                jnp.concatenate([self.y_ctx, self.y_query], axis=1))

    @classmethod
    def split(cls, x: jax.Array, y: jax.Array, n_ctx: int, w: jax.Array | None = None) -> Batch:
        """The batch whose first n_ctx pairs of x [B, N+M, d], y [B, N+M] are the context and the
        rest the queries."""
        return cls(x_ctx=x[:, :n_ctx], y_ctx=y[:, :n_ctx], x_query=x[:, n_ctx:], y_query=y[:, n_ctx:], w=w)


class Task(Protocol):
    """What every registered task family provides."""

    d: int
    n_ctx: int
    n_query: int
    baselines: ClassVar[tuple[str, ...]]

    def sample(self, key: jax.Array, batch_size: int) -> Batch: ...


def default_baselines(task) -> tuple[str, ...]:
    """The solver specs `task` is compared against by default: `task.default_baselines()` if its
    family defines that method, else the family's `baselines` (empty if it declares none);
    checked against the solver registry (`install_baseline_check`)."""
    if hasattr(task, "default_baselines"):
        specs = tuple(task.default_baselines())
        _check_baselines(getattr(task, "family", type(task).__name__), specs)
        return specs
    return tuple(getattr(task, "baselines", ()))


# The check of a family's baseline specs, (family name, specs) -> None or ValueError; installed
# by icl.solvers when it loads (it cannot be imported from here).
_BASELINE_CHECK: list[Callable[[str, tuple], None]] = []


def install_baseline_check(check: Callable[[str, tuple], None]) -> None:
    """Check every family's `baselines` with `check(family, specs)` from now on: the families
    registered so far at once, later ones at registration."""
    _BASELINE_CHECK[:] = [check]
    for name, cls in _REGISTRY.items():
        check(name, tuple(getattr(cls, "baselines", ())))


def _check_baselines(family_name: str, specs: tuple) -> None:
    for check in _BASELINE_CHECK:
        check(family_name, tuple(specs))


def default_reference(task) -> str:
    """The solver a model on `task` is measured against during training: one GD step ("gd", at
    the optimal rate) where the family lists GD among its baselines, the paper's reference; else
    the family's first baseline (its natural learner: kernel ridge for sine, logistic regression
    for classification, dMMSE for a task pool); "gd" for a family that lists none."""
    baselines = default_baselines(task)
    return "gd" if "gd" in baselines or not baselines else baselines[0]


_REGISTRY: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator: `@register("linear")` adds a task family under `name`."""

    def add(cls: type) -> type:
        if name in _REGISTRY:
            raise ValueError(f"task family {name!r} is already registered ({_REGISTRY[name]})")
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"task family {name!r} must be a dataclass, got {cls}")
        _check_baselines(name, tuple(getattr(cls, "baselines", ())))
        cls.family = name
        cls.sample = _checked_sample(cls.sample, name)
        if not getattr(cls.__init__, "checks_finite", False):  # a subclass may inherit the check
            cls.__init__ = _checked_init(cls.__init__)
        _REGISTRY[name] = cls
        return cls

    return add


def _checked_sample(sample, family_name: str):
    """`sample` with its key and batch size validated first (a clear error instead of XLA's). A
    number is refused, not taken as a seed: tasks are drawn from two streams (`icl.tasks.rng`)."""

    takes_dims = "active_dims" in inspect.signature(sample).parameters

    @functools.wraps(sample)
    def checked(self, key, batch_size, active_dims=None):
        if isinstance(key, (int, float, np.integer, np.floating)):
            raise ValueError(f"{family_name}.sample: key must be a JAX random key, e.g. jax.random.key({key}) "
                             f"(or icl.tasks.rng.key({key}), the training stream), got the number {key!r}")
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"{family_name}.sample: batch_size must be an integer >= 1, got {batch_size!r}")
        if active_dims is None:
            return sample(self, key, int(batch_size))
        if not takes_dims:
            raise ValueError(f"{family_name}.sample: this family does not take active_dims (a curriculum over input "
                             f"dimensions); the families that do: {', '.join(n for n in names() if takes_active_dims(n))}")
        return sample(self, key, int(batch_size), active_dims=active_dims)

    checked.takes_active_dims = takes_dims

    return checked


def _floats(value):
    """The floats in a field's value, also inside (nested) tuples and lists (ints are finite)."""
    if isinstance(value, (tuple, list)):
        for item in value:
            yield from _floats(item)
    elif isinstance(value, (float, np.floating)):
        yield value


def _checked_init(init):
    """A family's `__init__` that first refuses a field given a non-finite number (inf or nan,
    also inside a tuple): a ValueError "<family> task: <field> must be finite", shared by every
    family, before its own checks (`tasks.get`, `--set task.<field>=...`, `dataclasses.replace`)."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def checked(self, *args, **kwargs):
        for field_name, value in signature.bind(self, *args, **kwargs).arguments.items():
            if any(not np.isfinite(number) for number in _floats(value)):
                raise ValueError(f"{getattr(type(self), 'family', type(self).__name__)} task: "
                                 f"{field_name} must be finite, got {value!r}")
        init(self, *args, **kwargs)

    checked.checks_finite = True
    return checked


def takes_active_dims(task_or_name) -> bool:
    """Whether a family's `sample` takes `active_dims` (`icl.curriculum`): inputs drawn with the
    coordinates >= active_dims set to 0 *before* the labels are computed (a traced int is fine)."""
    cls = family(task_or_name) if isinstance(task_or_name, str) else type(task_or_name)
    return getattr(cls.sample, "takes_active_dims", False)


def names() -> list[str]:
    """The registered task family names, sorted."""
    return sorted(_REGISTRY)


def family(name: str) -> type:
    """The dataclass registered as `name`, with a clear error for an unknown name."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown task family {name!r}; known families: {', '.join(names())}")
    return _REGISTRY[name]


def get(name: str, **params) -> Task:
    """Build the task family `name` with `params` (its dataclass fields), validated."""
    cls = family(name)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise ValueError(
            f"task family {name!r} has no parameter(s) {', '.join(unknown)}; "
            f"its parameters are: {', '.join(sorted(fields))}"
        )
    return cls(**params)


def check_positive_int(owner: str, **values: int) -> None:
    """Raise a readable ValueError unless every value is an int >= 1."""
    check_int(owner, 1, **values)


def check_non_negative(owner: str, **values: float) -> None:
    """Raise a readable ValueError unless every value is a real number >= 0."""
    for field_name, value in values.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
            raise ValueError(f"{owner}: {field_name} must be a number >= 0, got {value!r}")


def _floating(x) -> jax.Array:
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.inexact) else x.astype(jnp.result_type(float))


def check_context(x_ctx, y_ctx) -> tuple[jax.Array, jax.Array]:
    """Validate a context: x_ctx [B, N, d] and y_ctx [B, N] as floating arrays (integer or bool
    inputs are promoted to the default float type), with N >= 1."""
    x_ctx, y_ctx = _floating(x_ctx), _floating(y_ctx)
    if x_ctx.ndim != 3:
        raise ValueError(f"x_ctx must be [batch, n_ctx, d], got shape {x_ctx.shape}")
    b, n, _ = x_ctx.shape
    if n < 1:
        raise ValueError(f"the context must hold at least one example (n_ctx >= 1), got x_ctx {x_ctx.shape}")
    if y_ctx.shape != (b, n):
        raise ValueError(f"y_ctx must be [batch, n_ctx] = {(b, n)} to match x_ctx {x_ctx.shape}, got {y_ctx.shape}")
    return x_ctx, y_ctx


def check_inputs(x_ctx, y_ctx, x_query, d: int | None = None):
    """Validate solver/model inputs; returns (x_ctx, y_ctx, x_query [B, M, d], squeeze)."""
    x_ctx, y_ctx = check_context(x_ctx, y_ctx)
    x_query = _floating(x_query)
    b, _, dim = x_ctx.shape
    squeeze = x_query.ndim == 2
    if squeeze:
        x_query = x_query[:, None, :]
    if x_query.ndim != 3 or x_query.shape[0] != b or x_query.shape[2] != dim:
        raise ValueError(
            f"x_query must be [batch, d] or [batch, n_query, d] with batch={b}, d={dim} "
            f"(from x_ctx {x_ctx.shape}), got {x_query.shape}"
        )
    if d is not None and dim != d:
        raise ValueError(f"inputs have d={dim} but the model was built for d={d}")
    return x_ctx, y_ctx, x_query, squeeze
