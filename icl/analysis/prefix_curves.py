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

Per-position sensitivity (`sensitivity_cosine`): g_t = d y_hat_t / d x_t [B, T, d], the linear
model a predictor implies at position t, taken with respect to x_t only (y_hat_t also depends on
the earlier x's, which are held fixed), and the mean over tasks of cos(g_t^f, g_t^g) at each t:
the per-position analogue of `icl.compare`'s model_cos. Learners whose prediction is piecewise
constant in x_q (`PIECEWISE_CONSTANT`: k-NN, trees, the mean label) have g = 0 almost everywhere:
skip them (`has_sensitivity`).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from icl import compare, solvers
from icl.precision import highest
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


# Learners whose prediction is piecewise constant in the query x_q: d y_hat / d x_q = 0 almost
# everywhere (and undefined on the cell boundaries), so they have no sensitivity to compare.
# The averaging estimator is linear in x_q (gradient (1/n) sum_i y_i x_i) and keeps one.
PIECEWISE_CONSTANT = frozenset({"knn", "mean_label", "greedy_tree", "greedy_tree_unbounded", "boosted_trees"})


def has_sensitivity(spec: str) -> bool:
    """Whether learner `spec` (a name or spec, `solvers.parse_spec`) has a meaningful sensitivity
    d y_hat / d x_q: False for the piecewise-constant learners (`PIECEWISE_CONSTANT`)."""
    return solvers.parse_spec(spec)[0] not in PIECEWISE_CONSTANT


def learner_function(predict: Callable) -> Callable:
    """(x [B, T, d], y [B, T]) -> [B, T], `learner_predictions(predict, x, y)`, carrying the cheap
    way to its sensitivities (`learner_sensitivities`) as `.position_sensitivities`, which
    `position_sensitivities` uses."""

    def fn(x, y):
        return learner_predictions(predict, x, y)

    fn.position_sensitivities = lambda x, y: learner_sensitivities(predict, x, y)
    return fn


@highest
def learner_sensitivities(predict: Callable, x: jax.Array, y: jax.Array) -> jax.Array:
    """[B, T, d]: d y_hat_t / d x_t of `learner_predictions(predict, x, y)`; 0 at t = 0.

    Position t >= 1 is the learner fitted on pairs 0..t-1 evaluated at the query x_t, so x_t
    enters y_hat_t only as the query: g_t = d predict(x_<t, y_<t, q) / d q at q = x_t. One
    reverse pass with respect to the queries of `solvers.prefix_predictions`: query m of prefix
    n affects only column m, so the gradient of the sum of the diagonal (n - 1 = m) is the
    per-position sensitivity; the fits, which do not depend on the queries, are not
    differentiated."""
    ctx_x, ctx_y = x[:, :-1], y[:, :-1]

    def diagonal_sum(queries):  # [B, T-1, d] -> ()
        per_prefix = solvers.prefix_predictions(predict, ctx_x, ctx_y, queries)  # [B, T-1, T-1]
        return jnp.sum(jnp.diagonal(per_prefix, axis1=1, axis2=2))

    grads = jax.jit(jax.grad(diagonal_sum))(x[:, 1:])  # [B, T-1, d]
    return jnp.concatenate([jnp.zeros_like(x[:, :1]), grads], axis=1)


def position_sensitivities(f: Callable, x: jax.Array, y: jax.Array) -> jax.Array:
    """[B, T, d]: g_t = d f(x, y)[:, t] / d x_t for f (x [B, T, d], y [B, T]) -> [B, T] (a model's
    `predict_prefixes`, a `learner_function`), the derivative with respect to x_t only.

    f's own `position_sensitivities` when it carries one (`learner_function`: one reverse pass);
    else one forward pass and T reverse passes, a `lax.map` over t of the VJP with the one-hot
    cotangent e_t (tasks are independent, so one pass serves the whole batch), keeping block t of
    each: memory of one reverse pass, time of T."""
    own = getattr(f, "position_sensitivities", None)
    if own is not None:
        return own(x, y)
    return _vjp_blocks(f, x, y)


def _vjp_blocks(f: Callable, x: jax.Array, y: jax.Array) -> jax.Array:
    @jax.jit
    def run(x_, y_):
        out, pullback = jax.vjp(lambda xx: f(xx, y_), x_)  # out [B, T]
        n_pos = out.shape[1]

        def block(t):  # () -> [B, d]: d out[:, t] / d x[:, t]
            (grad,) = pullback(jnp.broadcast_to(jax.nn.one_hot(t, n_pos, dtype=out.dtype), out.shape))
            return jnp.take(grad, t, axis=1)

        return jnp.moveaxis(jax.lax.map(block, jnp.arange(n_pos)), 0, 1)  # [B, T, d]

    return run(x, y)


def sensitivity_cosine(f: Callable, g: Callable, x: jax.Array, y: jax.Array) -> np.ndarray:
    """[T]: at each position t, the mean over the B tasks of cos(g_t^f, g_t^g), the per-task
    cosine of the two sensitivities g_t = d y_hat_t / d x_t (`position_sensitivities`): the same
    convention as `icl.compare`'s model_cos, a mean of per-task cosines (not the cosine of the
    stacked [B d] gradients), with its 0 for a task where either gradient is 0.

    NaN at a position where either predictor's sensitivity is 0 for every task: there is nothing
    to compare. Every learner predicts the constant 0 at t = 0 (`learner_predictions`), so a
    learner's curve is NaN there; a piecewise-constant learner's is NaN everywhere
    (`has_sensitivity`)."""
    return sensitivity_cosine_of(position_sensitivities(f, x, y), position_sensitivities(g, x, y))


def sensitivity_cosine_of(sens_f: jax.Array, sens_g: jax.Array) -> np.ndarray:
    """`sensitivity_cosine` from the sensitivities [B, T, d] of the two predictors: [T]."""
    cos = jnp.mean(compare.cosine(sens_f, sens_g), axis=0)  # [T]
    defined = jnp.any(jnp.any(sens_f != 0, axis=-1), axis=0) & jnp.any(jnp.any(sens_g != 0, axis=-1), axis=0)  # [T]
    return np.asarray(jnp.where(defined, cos, jnp.nan))
