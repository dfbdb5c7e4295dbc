"""A noise-aware oracle for contexts with distractor labels (task family `linear_distractors`).

Some context labels are pure noise, independent of x (`task.corrupted(key, B)` is their mask, drawn
from the same key as `task.sample(key, B)`). The oracle knows the mask and fits least squares on the
clean examples only: with keep_i = 1 - mask_i,
    w = (X^T K X)^+ X^T K y,  K = diag(keep),
which is least squares on the rows scaled by keep_i (a zeroed row adds nothing to X^T X or X^T y).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from icl import compare, solvers


def oracle_least_squares(task, key: jax.Array, n_tasks: int) -> float:
    """The loss of least squares on the uncorrupted context examples only, on the `n_tasks` tasks
    of `task` drawn with `key`."""
    batch, mask = task.sample(key, n_tasks), task.corrupted(key, n_tasks)  # mask [B, N], True = noise label
    keep = (~mask).astype(batch.x_ctx.dtype)  # [B, N]
    w = solvers.ridge_weights(batch.x_ctx * keep[..., None], batch.y_ctx * keep, 0.0)  # [B, d]
    y_hat = jnp.einsum("bmd,bd->bm", batch.x_query, w)  # [B, M]
    return float(compare.loss(y_hat, batch.y_query))
