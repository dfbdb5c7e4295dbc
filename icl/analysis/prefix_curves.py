"""Every learner at every position of a sequence (Garg et al. 2022, Figure 2): the error of a
causal model and of each explicit learner against the number of in-context examples.

Shapes: B tasks, T positions (pairs), d input dimension.

A sequence is the pairs (x_1, y_1), ..., (x_T, y_T) of a task (its context, then its queries).
Position t (0-based) is predicted from the t pairs before it:
  * a causal model: `model.predict_prefixes(x, y)[:, t]` (one pass for every t);
  * a learner (`icl.solvers`): fitted on pairs 0..t-1 and evaluated at x_t, for t >= 1 through
    `solvers.prefix_predictions` (each learner sees a prefix exactly: by mask, zeroed rows or
    truncation); at t = 0 every learner predicts 0, as in Garg et al.
The error at t is (y_hat_t - y_t)^2 / s, where s is the task's error scale (`error_scale`):
Garg et al.'s normalisation, under which the zero predictor scores ~1 ("trivial"). `icl.compare`'s
loss is half the unnormalised squared error: loss = s / 2 x error.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from icl import compare, solvers
from icl.solvers.prefix import bootstrap_band


def error_scale(task) -> float:
    """s, E[y^2] of the task's prior up to noise, as Garg et al. normalise: the number of non-zero
    weights for sparse regression (`k`), 1 for decision trees (leaves N(0, 1)), d otherwise."""
    family = type(task).family
    if family == "sparse_linear":
        return float(task.k)
    if family == "decision_tree":
        return 1.0
    return float(task.d)


def sequence(batch) -> tuple[jax.Array, jax.Array]:
    """A batch's pairs as one sequence: x [B, T, d], y [B, T] with T = n_ctx + n_query."""
    x = jnp.concatenate([batch.x_ctx, batch.x_query], axis=1)
    y = jnp.concatenate([batch.y_ctx, batch.y_query], axis=1)
    return x, y


def learner_predictions(predict: Callable, x: jax.Array, y: jax.Array) -> jax.Array:
    """[B, T]: position t predicted by `predict` (a solver's predict with its hyper-parameters
    bound, e.g. `compare.solver_predictor(...)[0]`) from pairs 0..t-1; 0 at t = 0."""
    per_prefix = solvers.prefix_predictions(predict, x[:, :-1], y[:, :-1], x[:, 1:])  # [B, T-1, T-1]: [n-1, m]
    diag = jnp.diagonal(per_prefix, axis1=1, axis2=2)  # [B, T-1]: position n from its n predecessors
    return jnp.concatenate([jnp.zeros_like(y[:, :1]), diag], axis=1)


def curves(task, predictions: dict[str, jax.Array], y: jax.Array, key: jax.Array, n_boot: int = 1000) -> dict:
    """{learner: {"mean", "low", "high"}} of the normalised error at every position (lists of T
    numbers), from predictions {learner: [B, T]} against y [B, T]; bands are 95 % percentile
    bootstraps over tasks."""
    scale = error_scale(task)
    out = {}
    for i, (name, y_hat) in enumerate(predictions.items()):
        band = bootstrap_band((y_hat - y) ** 2 / scale, jax.random.fold_in(key, i), n_boot)
        out[name] = {k: np.asarray(v).tolist() for k, v in band.items()}
    return out


def all_learners(task, learners, x: jax.Array, y: jax.Array, hparam_key: jax.Array) -> tuple[dict, dict]:
    """Predictions [B, T] of each learner spec at every position, and the hyper-parameters each
    used (the task's defaults, `compare.solver_predictor`, estimated from `hparam_key`'s tasks)."""
    preds, hparams = {}, {}
    for spec in learners:
        predict, hparams[spec] = compare.solver_predictor(spec, task, hparam_key)
        preds[spec] = learner_predictions(predict, x, y)
    return preds, hparams


def position_cosine(a: jax.Array, b: jax.Array) -> np.ndarray:
    """[T]: at each position, the cosine over tasks between two learners' predictions centred on
    nothing (cos(a_t, b_t) = a_t . b_t / |a_t| |b_t| over the B tasks): 1 when they predict alike
    up to scale; the per-position analogue of `icl.compare`'s prediction agreement."""
    num = jnp.sum(a * b, axis=0)
    den = jnp.linalg.norm(a, axis=0) * jnp.linalg.norm(b, axis=0)
    return np.asarray(jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0))
