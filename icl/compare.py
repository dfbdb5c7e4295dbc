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
import functools
from typing import Callable

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
    return functools.partial(solvers.get(name), **hparams), {k: _public(v) for k, v in hparams.items()}


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
        (lambda l: lambda xc, yc, xq: model.layer_predictions(xc, yc, xq, n_layers=n)[l])(layer)
        for layer in range(n)
    ]


def layer_products(layer) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) of a 1-head linear attention layer, the only products its function depends on:
    update_j = sum_i (e_j A e_i^T) e_i B with A = W_q W_k^T, B = W_v W_o (row convention), so
    (cA, B/c) is the same layer for any c != 0."""
    q, k, v, o = (np.asarray(p[...], np.float64) for p in (layer.query, layer.key, layer.value, layer.out))
    if q.shape[0] != 1:
        raise ValueError(f"layer_products needs a 1-head layer, got {q.shape[0]} heads")
    return q[0] @ k[0].T, v[0] @ o[0]


def preconditioner(layer, d: int) -> dict[str, np.ndarray]:
    """The parts of a linear attention layer acting on a query [x_q, 0] (summed over heads).

    With A_h = W_q^h (W_k^h)^T, B_h = W_v^h W_o^h (row convention), C = sum_i [x_i, y_i]^T [x_i, y_i]
    and read-out minus the label slot, the layer predicts
        y_hat = x_q^T Gamma X^T y  -  x_q^T A_xx X^T X b_x  -  (x_q . a_xy) y^T y b_y,
        Gamma = -sum_h (b_y^h A_xx^h + a_xy^h (b_x^h)^T),
    where A_xx = A[:d, :d], a_xy = A[:d, d], b_x = B[:d, d], b_y = B[d, d]. Gamma is the
    preconditioner of one GD step (`solvers.preconditioned_gd`, no 1/N): every term linear in
    X^T y. The other two terms are 0 for the GD construction (and at the optimum of Gaussian
    tasks, Ahn et al. 2023).
    Returns {"gamma" [d, d], "a_xx" [H, d, d], "a_xy" [H, d], "b_x" [H, d], "b_y" [H]}.
    """
    q, k, v, o = (np.asarray(p[...], np.float64) for p in (layer.query, layer.key, layer.value, layer.out))
    if q.shape[1] != d + 1:
        raise ValueError(f"preconditioner: the layer's tokens have size {q.shape[1]}, expected d + 1 = {d + 1} (paired, no embedding)")
    a = np.einsum("hdk,hek->hde", q, k)  # [H, D, D]
    b = np.einsum("hdk,hke->hde", v, o)  # [H, D, D]
    parts = {"a_xx": a[:, :d, :d], "a_xy": a[:, :d, d], "b_x": b[:, :d, d], "b_y": b[:, d, d]}
    gamma = -np.einsum("h,hde->de", parts["b_y"], parts["a_xx"]) - np.einsum("hd,he->de", parts["a_xy"], parts["b_x"])
    return {"gamma": gamma, **parts}


def interpolate(model, target, t: float = 0.5):
    """An LSA model whose every layer is `(1 - t) * model + t * target` in product space (A, B),
    after rescaling model's (A, B) -> (cA, B/c) with c the least-squares fit of cA to target's A
    (the alignment of W_K^T W_Q and P W_V in von Oswald et al. 2023, Sec. 3).

    Both models must be 1-head linear LSA stacks of equal depth over the same d (e.g. a trained
    model and `constructions.gd_model`). The result uses key size D with W_k = W_o = I.
    """
    from flax import nnx  # noqa: PLC0415

    from icl.models import LSATransformer, ModelConfig  # noqa: PLC0415

    if model.config.attention != "linear" or target.config.attention != "linear":
        raise ValueError("interpolate: both models must use linear attention")
    if model.config.n_layers != target.config.n_layers or model.d != target.d:
        raise ValueError("interpolate: models must have the same depth and input dimension")
    n_layers = model.config.n_layers
    token_dim = model.config.token_dim(model.d)
    config = ModelConfig(n_layers=n_layers, key_size=token_dim, attention="linear")
    mid = LSATransformer(config, model.d, rngs=nnx.Rngs(0))
    dtype = model.layers[0].query[...].dtype
    eye = np.eye(token_dim)[None]
    for l in range(n_layers):
        a, b = layer_products(model.layers[0 if model.config.shared else l])
        a_t, b_t = layer_products(target.layers[0 if target.config.shared else l])
        c = float(np.sum(a * a_t) / np.sum(a * a)) if np.any(a) else 1.0
        layer = mid.layers[l]
        layer.query[...] = jnp.asarray(((1 - t) * c * a + t * a_t)[None], dtype)
        layer.key[...] = jnp.asarray(eye, dtype)
        layer.value[...] = jnp.asarray(((1 - t) * b / c + t * b_t)[None], dtype)
        layer.out[...] = jnp.asarray(eye, dtype)
    mid.w0[...] = jnp.asarray(np.asarray(target.w0[...]) * t + np.asarray(model.w0[...]) * (1 - t), dtype)
    return mid
