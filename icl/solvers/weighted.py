"""One GD step from w = 0 with exponentially decaying example weights: what a decaying (gated)
linear-attention layer computes (Li et al. 2025: gating acts as example weighting).

For the n present context examples i = 1..n in their order (mask 1; n = N without a mask),
    a_i = decay^(n - i)                         (the most recent example has weight 1),
    w   = (lr / n) sum_i a_i y_i x_i,           y_hat = w . x_q,
with decay in (0, 1] and lr > 0. An absent example (mask 0) gets no weight and is not counted:
the rank n - i is the number of present examples after i, and the 1/n is over present examples.
So the prediction from a masked context equals the one from the context of its present examples
alone, and decay = 1 is one step of `solvers.gd` from w0 = 0 with the same lr (its convention,
L(W) = 1/(2N) sum_i (W x_i - y_i)^2 with N the length of the context it is given:
`prefix_predictions` of gd, whose lr is rescaled by N / n, gives the same 1/n for a prefix).

The layer: a linear-attention state S_t = decay S_{t-1} + y_t x_t^T (keys x, values y) read at
x_q after the n-th example is sum_i decay^(n-i) y_i x_i . x_q, i.e. this with lr / n = 1.

Registry defaults: lr = optimal_gd_lr(task) (one-step GD's default; the optimal step at
decay = 1) and decay = 0.9 (an effective window of 1 / (1 - decay) = 10 examples).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from icl.checks import check_number
from icl.precision import highest
from icl.solvers.baselines import _count, _finish, _prepare

DEFAULT_DECAY = 0.9


def _check_decay(decay) -> None:
    """One-line ValueError unless a Python / NumPy number decay is in (0, 1]; traced values pass."""
    if isinstance(decay, (int, float, np.integer, np.floating)) and not 0 < decay <= 1:
        raise ValueError(f"weighted_gd: decay must be in (0, 1], got {decay!r}")


@highest
@jax.jit
def weighted_gd_weights(x_ctx, y_ctx, lr, decay, mask) -> jax.Array:
    """w = (lr / n) sum_i decay^(n - i) y_i x_i over the present examples of x_ctx [B, N, d],
    y_ctx [B, N] (mask [B, N]; ranks and n count present examples only): [B, d]."""
    after = jnp.cumsum(mask[:, ::-1], axis=1)[:, ::-1] - mask  # [B, N] present examples after i
    a = mask * jnp.power(decay, after)  # [B, N] example weights, 0 where absent
    return (lr / _count(mask)) * jnp.einsum("bnd,bn->bd", x_ctx, a * y_ctx)  # [B, d]


@highest
def weighted_gd(x_ctx, y_ctx, x_query, lr, decay=DEFAULT_DECAY, mask=None) -> jax.Array:
    """One GD step from 0 with example weights decay^(n - i) (the latest example weighs 1), then
    w . x_q (module docstring). decay = 1 is `gd` with steps = 1 and the same lr."""
    check_number("weighted_gd", positive=True, lr=lr)
    _check_decay(decay)
    x_ctx, y_ctx, x_query, mask, squeeze = _prepare(x_ctx, y_ctx, x_query, mask)
    dtype = x_ctx.dtype
    w = weighted_gd_weights(x_ctx, y_ctx, jnp.asarray(lr, dtype), jnp.asarray(decay, dtype), mask)  # [B, d]
    return _finish(jnp.einsum("bmd,bd->bm", x_query, w), squeeze)
