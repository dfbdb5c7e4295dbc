"""Solvers on a feature map of the inputs: least squares on x^2 without writing a new solver.

A feature map phi acts on each input row, x [..., d] -> phi(x) [..., F]. `on_features(phi, solver)`
is the learner that runs `solver` on the mapped task:

    on_features(phi, solver)(X, y, x_q) = solver(phi(X), y, phi(x_q))

so e.g. least squares on phi fits y ~ w . phi(x), the Bayes-optimal learner of a family whose
labels are linear in phi(x) and noiseless. In specs it is the hyper-parameter `features`:
`"least_squares(features=square)"` (a task family's `baselines`, `compare_against`, `icl compare
--against`, `error_curve`); its other hyper-parameters go to the solver, and the solver's default
hyper-parameters are computed on the mapped task (`FeatureTask`: e.g. GD's optimal lr and kernel
ridge's bandwidth sqrt(F) are those of the features, not of x).

Named feature maps (`names()`; add one with `register(name, fn)`):
  identity   phi(x) = x                                          F = d
  square     phi(x) = (x_1^2, ..., x_d^2)                        F = d
  poly2      phi(x) = (x, x_1^2, ..., x_d^2)                     F = 2d
  affine     phi(x) = (1, x)                                     F = d + 1
  quadratic  phi(x) = (1, x, x_i x_j for i <= j)                 F = 1 + d + d(d+1)/2
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np


def identity(x: jax.Array) -> jax.Array:
    """phi(x) = x."""
    return x


def square(x: jax.Array) -> jax.Array:
    """phi(x) = x * x, elementwise: [..., d] -> [..., d]."""
    return x * x


def poly2(x: jax.Array) -> jax.Array:
    """phi(x) = (x, x * x): [..., d] -> [..., 2d]."""
    return jnp.concatenate([x, x * x], axis=-1)


def affine(x: jax.Array) -> jax.Array:
    """phi(x) = (1, x): [..., d] -> [..., d + 1] (a linear learner on it fits an intercept)."""
    return jnp.concatenate([jnp.ones_like(x[..., :1]), x], axis=-1)


def quadratic(x: jax.Array) -> jax.Array:
    """phi(x) = (1, x, x_i x_j for i <= j): every monomial of degree <= 2, [..., 1 + d + d(d+1)/2]."""
    i, j = np.triu_indices(x.shape[-1])
    return jnp.concatenate([jnp.ones_like(x[..., :1]), x, x[..., i] * x[..., j]], axis=-1)


_REGISTRY: dict[str, Callable[[jax.Array], jax.Array]] = {
    "identity": identity, "square": square, "poly2": poly2, "affine": affine, "quadratic": quadratic,
}


def names() -> list[str]:
    """The registered feature map names, sorted."""
    return sorted(_REGISTRY)


def get(name: str) -> Callable[[jax.Array], jax.Array]:
    """The feature map registered as `name`, with a clear error for an unknown name."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown feature map {name!r}; known feature maps: {', '.join(names())}")
    return _REGISTRY[name]


def register(name: str, fn: Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], jax.Array]:
    """Add the feature map `fn` (row-wise: [..., d] -> [..., F], jittable) under `name`, so specs
    can say `features=name`. Returns fn."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"feature map name must be an identifier, got {name!r}")
    if name in _REGISTRY:
        raise ValueError(f"feature map {name!r} is already registered ({_REGISTRY[name]})")
    if not callable(fn):
        raise TypeError(f"feature map {name!r} must be callable, got {fn!r}")
    _REGISTRY[name] = fn
    return fn


def _resolve(feature) -> tuple[str, Callable]:
    """(name, function) of a feature map given by name or as a function."""
    if callable(feature):
        return getattr(feature, "__name__", repr(feature)), feature
    return feature, get(feature)


def on_features(feature: str | Callable, solver: Callable) -> Callable:
    """The learner `solver` on phi = `feature` (a registered name or a row-wise function):
    predict(X, y, x_q, **hparams) = solver(phi(X), y, phi(x_q), **hparams), x_q [B, M, d] or [B, d].

    The result keeps `feature_map` and `solver` as attributes, so `prefix_predictions` maps the
    inputs first and evaluates `solver` on every prefix as it would on raw inputs (exact: phi acts
    on each example alone)."""
    name, phi = _resolve(feature)

    def predict(x_ctx, y_ctx, x_query, **hparams):
        return solver(phi(jnp.asarray(x_ctx)), y_ctx, phi(jnp.asarray(x_query)), **hparams)

    predict.__name__ = f"{getattr(solver, '__name__', 'solver')}_on_{name}"
    predict.__doc__ = f"{predict.__name__}: {getattr(solver, '__name__', 'solver')} on the features {name}(x)."
    predict.feature_map = phi
    predict.solver = solver
    predict.features_declared_for = predict  # a functools.wraps copy of these is another function
    return predict


@dataclasses.dataclass(frozen=True)
class FeatureTask:
    """`task` seen through the feature map `feature`: its batches with x replaced by phi(x)
    (x_ctx [B, N, F], x_query [B, M, F]; labels and w unchanged), d = F. What a solver's default
    hyper-parameters are computed on when it runs on features (`solvers.task_defaults`). Forwards
    the prior's `noise_std` and `weight_std` (label noise and weight scale are those of the task);
    has no `input_covariance` or `pool` (those describe x, not phi(x))."""

    task: object
    feature: str

    def __post_init__(self):
        get(self.feature)

    @property
    def family(self) -> str:
        return f"{self.task.family}(features={self.feature})"

    @property
    def n_ctx(self) -> int:
        return self.task.n_ctx

    @property
    def n_query(self) -> int:
        return self.task.n_query

    @property
    def d(self) -> int:
        return int(jax.eval_shape(get(self.feature), jax.ShapeDtypeStruct((1, self.task.d), jnp.float32)).shape[-1])

    @property
    def noise_std(self) -> float:
        return float(getattr(self.task, "noise_std", 0.0))

    @property
    def weight_std(self) -> float:
        return float(getattr(self.task, "weight_std", 1.0))

    def sample(self, key: jax.Array, batch_size: int):
        batch = self.task.sample(key, batch_size)
        phi = get(self.feature)
        return batch.replace(x_ctx=phi(batch.x_ctx), x_query=phi(batch.x_query))
