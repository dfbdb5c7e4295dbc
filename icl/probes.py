"""Implicit linear models of in-context learners (Akyürek et al. 2022, "What learning algorithm is
in-context learning?", Sec. 4): SPD and ILWD between any two learners of the solver interface
`predict(x_ctx [B, N, d], y_ctx [B, N], x_query [B, M, d]) -> [B, M]`.

Shapes: B contexts (tasks), N context examples, M probe queries per context, d input dimension.

For a fixed context D = (X, y) a learner f(. | D) maps a query x to a prediction. Its *implicit
weights* are the least-squares linear fit of its predictions on M probe queries x_1 .. x_M
(P = [x_1, ..., x_M]^T, [M, d], of rank d, so M >= d):

    w_hat(D) = argmin_w sum_m (f(x_m | D) - w . x_m)^2 = (P^T P)^{-1} P^T f(P | D)          [d]

(with `fit_intercept`, the fit is of w . x_m + b, i.e. P augmented by a column of ones). When f
is linear in the query with no offset (GD from 0, ridge, least squares, a pure linear-attention
stack) the fit is exact, whatever the probes: w_hat is the learner's own weight vector
(e.g. `solvers.ridge_weights`), its residual is 0, and w_hat = d f / d x_q (`compare.sensitivities`).
For a learner that is not linear in x_q (softmax attention, MLPs, LayerNorm) w_hat is the best
linear summary of it on the probe distribution, and the residual says how far from linear it is.

Between two learners f, g, on the same contexts and probe queries:

    SPD(f, g)  = E_D E_x (f(x | D) - g(x | D))^2          squared prediction difference
    ILWD(f, g) = E_D ||w_hat_f(D) - w_hat_g(D)||^2         implicit linear weight difference

(means over contexts and probes; no 1/2 factor). Queries must be independent given the context
(no query attends to another), true of every learner in this codebase, so the M probes can be
predicted in one call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from icl import solvers
from icl.precision import highest
from icl.tasks.base import check_context

Predictor = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


class ImplicitFit(NamedTuple):
    """A learner's predictions on the probes and the linear model fitted to them.

    predictions: f(x_m | D), [B, M];  weights: w_hat, [B, d];  intercept: b_hat, [B] (0 without
    `fit_intercept`);  residual_mse: mean_m (f(x_m | D) - w_hat . x_m - b_hat)^2, [B].
    """

    predictions: jax.Array
    weights: jax.Array
    intercept: jax.Array
    residual_mse: jax.Array


def _check_probes(x_ctx, y_ctx, probe_queries) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Validated (x_ctx [B, N, d], y_ctx [B, N], probes [B, M, d]); [M, d] probes are shared."""
    x_ctx, y_ctx = check_context(x_ctx, y_ctx)
    probes = jnp.asarray(probe_queries)
    b, _, d = x_ctx.shape
    if probes.ndim == 2:
        probes = jnp.broadcast_to(probes[None], (b, *probes.shape))  # the same probes for every context
    if probes.ndim != 3 or probes.shape[0] != b or probes.shape[2] != d:
        raise ValueError(
            f"probe_queries must be [n_probe, d] or [batch, n_probe, d] with batch={b}, d={d} "
            f"(from x_ctx {x_ctx.shape}), got {jnp.shape(probe_queries)}"
        )
    return x_ctx, y_ctx, probes


@highest
def implicit_fit(predict: Predictor, x_ctx, y_ctx, probe_queries, fit_intercept: bool = False) -> ImplicitFit:
    """Predict the probes with `predict` and fit w_hat (and b_hat) by least squares; see the module
    docstring. probe_queries: [M, d] (shared) or [B, M, d]; needs M >= d (M >= d + 1 with
    `fit_intercept`) so that the fit is determined. Probes of rank < d give the min-norm fit
    (`solvers.ridge_weights` with lam = 0, by SVD)."""
    x_ctx, y_ctx, probes = _check_probes(x_ctx, y_ctx, probe_queries)
    b, m, d = probes.shape
    n_coef = d + int(bool(fit_intercept))
    if m < n_coef:
        raise ValueError(
            f"implicit_fit: {m} probe queries cannot determine {n_coef} coefficients "
            f"(d={d}{' + intercept' if fit_intercept else ''}); use at least {n_coef}, ideally several times more"
        )
    y_hat = jnp.asarray(predict(x_ctx, y_ctx, probes))  # [B, M]
    if y_hat.shape != (b, m):
        raise ValueError(f"implicit_fit: predict must return [batch, n_probe] = {(b, m)}, got {y_hat.shape}")
    design = probes
    if fit_intercept:
        design = jnp.concatenate([probes, jnp.ones((b, m, 1), probes.dtype)], axis=-1)  # [B, M, d + 1]
    coef = solvers.ridge_weights(design, y_hat.astype(design.dtype), 0.0)  # [B, n_coef]
    fitted = jnp.einsum("bmc,bc->bm", design, coef)  # [B, M]
    weights = coef[:, :d]
    intercept = coef[:, d] if fit_intercept else jnp.zeros((b,), coef.dtype)
    return ImplicitFit(y_hat, weights, intercept, jnp.mean((y_hat - fitted) ** 2, axis=-1))


def implicit_weights(predict: Predictor, x_ctx, y_ctx, probe_queries) -> jax.Array:
    """w_hat(D) = argmin_w sum_m (f(x_m | D) - w . x_m)^2 for every context: [B, d]."""
    return implicit_fit(predict, x_ctx, y_ctx, probe_queries).weights


def spd(y_a, y_b) -> jax.Array:
    """Squared prediction difference, mean (y_a - y_b)^2 over all contexts and queries."""
    y_a, y_b = jnp.asarray(y_a), jnp.asarray(y_b)
    if y_a.shape != y_b.shape:
        raise ValueError(f"spd: predictions must have the same shape, got {y_a.shape} and {y_b.shape}")
    return jnp.mean((y_a - y_b) ** 2)


def ilwd(w_a, w_b) -> jax.Array:
    """Implicit linear weight difference, mean over contexts of ||w_a - w_b||^2 (w: [B, d])."""
    w_a, w_b = jnp.asarray(w_a), jnp.asarray(w_b)
    if w_a.shape != w_b.shape or w_a.ndim != 2:
        raise ValueError(f"ilwd: weights must both be [batch, d], got {w_a.shape} and {w_b.shape}")
    return jnp.mean(jnp.sum((w_a - w_b) ** 2, axis=-1))


def distances(fit_a: ImplicitFit, fit_b: ImplicitFit) -> dict[str, jax.Array]:
    """{"spd", "ilwd"} between two learners probed on the same contexts and queries."""
    return {"spd": spd(fit_a.predictions, fit_b.predictions), "ilwd": ilwd(fit_a.weights, fit_b.weights)}
