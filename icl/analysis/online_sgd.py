"""One-pass online SGD on the context: the order-sensitive counterpart of one full-batch GD step.

From w_0 = 0, one example at a time in the given order,
    w_i = w_{i-1} - alpha (w_{i-1} . x_i - y_i) x_i,   i = 1..N,      y_hat = w_N . x_q.
Expanding in alpha, w_N = alpha sum_i y_i x_i + O(alpha^2): at the matched step alpha = eta / N the
first-order term is one GD step with rate eta on L(w) = 1/(2N) sum_i (w . x_i - y_i)^2 (paper
convention), which is symmetric in the context pairs; the O(alpha^2) terms
-alpha^2 sum_{j<i} (x_j . x_i) y_j x_i depend on the order, and later examples are overwritten
less (recency).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from icl.compare import Predictor


def online_sgd(x_ctx: jax.Array, y_ctx: jax.Array, x_query: jax.Array, lr: float) -> jax.Array:
    """One pass of SGD on 1/2 (w . x_i - y_i)^2 over x_ctx [B, N, d], y_ctx [B, N] in the given
    order, from w_0 = 0; returns w_N . x_q for x_query [B, M, d]: [B, M]."""
    b, _, d = x_ctx.shape

    def step(w, xy):  # w [B, d]
        x, y = xy  # [B, d], [B]
        residual = jnp.einsum("bd,bd->b", w, x) - y  # [B]
        return w - lr * residual[:, None] * x, None

    w, _ = jax.lax.scan(step, jnp.zeros((b, d), x_ctx.dtype), (jnp.swapaxes(x_ctx, 0, 1), y_ctx.T))
    return jnp.einsum("bmd,bd->bm", x_query, w)


def at_step(lr: float) -> Predictor:
    """`online_sgd` with step `lr`, as a predictor (x_ctx, y_ctx, x_query) -> [B, M]."""
    return lambda xc, yc, xq: online_sgd(xc, yc, xq, lr)


def matched_online_sgd(eta: float, n_ctx: int) -> Predictor:
    """Online SGD at the step matched to one GD step with rate eta: alpha = eta / N."""
    return at_step(eta / n_ctx)
