"""Compare any two in-context learners through the solver interface
`predict(x_ctx [B, N, d], y_ctx [B, N], x_query [B, M, d]) -> [B, M]` (von Oswald et al. 2023, Sec. 3):

  loss        0.5 * mean (y_hat - y_q)^2                       (the paper's; `mse / d` also reported)
  preds_diff  mean |y_hat_a - y_hat_b|
  sensitivity g = d y_hat / d x_q, the linear model a learner implies at the query  [B, M, d]
  model_cos   mean cos(g_a, g_b)
  model_diff  mean ||g_a - g_b||

Queries are independent in every learner here (no query sees another), so the gradient of the sum
of predictions with respect to x_query is the per-query sensitivity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from icl import solvers
from icl.precision import highest
from icl.tasks.base import Batch

Predictor = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


def loss(y_hat: jax.Array, y: jax.Array) -> jax.Array:
    """0.5 * mean squared error, the paper's loss; y_hat and y must have the same shape (no
    broadcasting: [B, 1] against [B] would average over B x B pairs)."""
    if jnp.shape(y_hat) != jnp.shape(y):
        raise ValueError(f"loss: y_hat {jnp.shape(y_hat)} and y {jnp.shape(y)} must have the same shape")
    return 0.5 * jnp.mean((y_hat - y) ** 2)


def sensitivities(predict: Predictor, batch: Batch) -> jax.Array:
    """d y_hat / d x_q for every task and query: [B, M, d]."""
    return jax.grad(lambda xq: jnp.sum(predict(batch.x_ctx, batch.y_ctx, xq)))(batch.x_query)


def cosine(a: jax.Array, b: jax.Array) -> jax.Array:
    """Cosine similarity along the last axis; 0 where either vector is 0."""
    norms = jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(b, axis=-1)
    return jnp.where(norms > 0, jnp.sum(a * b, axis=-1) / jnp.where(norms > 0, norms, 1.0), 0.0)


@highest
def compare(predict_a: Predictor, predict_b: Predictor, batch: Batch) -> dict[str, jax.Array]:
    """Losses of a and b and how alike they are on `batch` (definitions in the module docstring)."""
    y_a = predict_a(batch.x_ctx, batch.y_ctx, batch.x_query)  # [B, M]
    y_b = predict_b(batch.x_ctx, batch.y_ctx, batch.x_query)
    g_a, g_b = sensitivities(predict_a, batch), sensitivities(predict_b, batch)  # [B, M, d]
    return dict(
        loss=loss(y_a, batch.y_query),
        loss_other=loss(y_b, batch.y_query),
        preds_diff=jnp.mean(jnp.abs(y_a - y_b)),
        model_cos=jnp.mean(cosine(g_a, g_b)),
        model_diff=jnp.mean(jnp.linalg.norm(g_a - g_b, axis=-1)),
    )


def solver_predictor(name: str, task, key: jax.Array, **hparams) -> tuple[Predictor, dict]:
    """The solver `name` (a name or a spec such as `"ridge(lam=0.1)"`, see `solvers.parse_spec`)
    with the hyper-parameters that suit `task`. Precedence: `hparams` given here, then the spec's,
    then the family's `task.solver_hparams(name)` (if it defines it), then the solver's defaults for
    the task (`solvers.task_defaults`, declared with the solver registry: e.g. GD's closed-form
    optimal lr, ridge's Bayes-optimal lam). Returns the predictor and the hyper-parameters it uses
    (JSON-friendly; arrays of more than 100 numbers are summarised by their shape).
    """
    name, spec_hparams = solvers.parse_spec(name)
    family_hparams = task.solver_hparams(name) if hasattr(task, "solver_hparams") else {}
    hparams = {**family_hparams, **spec_hparams, **hparams}
    hparams.update(solvers.task_defaults(name, task, key, hparams))
    return solvers.bind(name, hparams), {k: _public(v) for k, v in hparams.items()}  # bind: a `features` spec maps x


def _public(value):
    """A JSON-friendly form of a hyper-parameter: numbers and strings as they are, small arrays as
    lists, large ones as "array[shape]"."""
    if isinstance(value, (bool, int, float, str)):
        return value
    array = np.asarray(value)
    if array.size > 100:
        return f"array{list(array.shape)}"
    return array.tolist()


@highest
def sweep(predictors: dict[str, Predictor], tasks_by_value: dict, key: jax.Array, n_tasks: int) -> dict:
    """loss of every predictor on `n_tasks` tasks of each task variant: {name: [loss per value]}.

    Build the variants with e.g. `input_scale_variants` or `context_length_variants`.
    """
    out = {name: [] for name in predictors}
    for task in tasks_by_value.values():
        batch = task.sample(key, n_tasks)
        for name, predict in predictors.items():
            out[name].append(float(loss(predict(batch.x_ctx, batch.y_ctx, batch.x_query), batch.y_query)))
    return out


def input_scale_variants(task, alphas) -> dict:
    """The task with inputs scaled by each alpha (out-of-distribution when alpha != 1)."""
    if not hasattr(task, "input_scale"):
        raise ValueError(f"task family {task.family!r} has no input_scale to sweep")
    return {float(a): dataclasses.replace(task, input_scale=task.input_scale * float(a)) for a in alphas}


def context_length_variants(task, n_values) -> dict:
    """The task with each number of context examples."""
    return {int(n): dataclasses.replace(task, n_ctx=int(n)) for n in n_values}


def layer_predictors(model, n_layers: int | None = None) -> list[Predictor]:
    """One predictor per layer of `model`: the read-out after layer l (for layer-vs-GD-step plots)."""
    n = model.config.n_layers if n_layers is None else n_layers
    return [
        (lambda i: lambda xc, yc, xq: model.layer_predictions(xc, yc, xq, n_layers=n)[i])(layer)
        for layer in range(n)
    ]
