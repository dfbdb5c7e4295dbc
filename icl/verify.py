"""Check, in float64, that the constructed LSA models compute GD and GD++ exactly."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from icl import constructions, solvers, tasks
from icl.precision import highest


@highest
def max_errors(batch, lr: float, layers: int, gamma: float = 0.05) -> tuple[jax.Array, jax.Array]:
    """max |model - solver| on `batch` for the GD and the GD++ construction of `layers` layers
    (jittable with lr, layers, gamma fixed; matrix products at "highest" precision)."""
    d, n_ctx = batch.x_ctx.shape[2], batch.x_ctx.shape[1]
    dtype = batch.x_ctx.dtype
    args = (batch.x_ctx, batch.y_ctx, batch.x_query)
    gd_model = constructions.gd_model(d, n_ctx, lr=lr, layers=layers, dtype=dtype)
    pp_model = constructions.gd_plus_plus_model(d, n_ctx, lr=lr, gamma=gamma, layers=layers, dtype=dtype)
    gd_err = jnp.max(jnp.abs(gd_model(batch) - solvers.gd(*args, lr=lr, steps=layers)))
    pp_err = jnp.max(jnp.abs(pp_model(batch) - solvers.gd_plus_plus(*args, lr=lr, gamma=gamma, steps=layers)))
    return gd_err, pp_err


def construction_errors(d: int = 10, n_ctx: int = 10, max_layers: int = 5, seed: int = 0) -> list[dict]:
    """max |model - solver| over 1,000 tasks for the GD and GD++ constructions, 1..max_layers layers.

    Runs in float64 (enabled for the duration of the call) on the paper's task.
    """
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        task = tasks.get("linear", d=d, n_ctx=n_ctx)
        batch = task.sample(jax.random.key(seed), 1000)
        lr = solvers.optimal_gd_lr(task, jax.random.key(seed + 1))
        rows = []
        for layers in range(1, max_layers + 1):
            gd_err, pp_err = max_errors(batch, lr, layers)
            rows.append(dict(layers=layers, lr=lr, gd_max_abs_err=float(gd_err), gd_plus_plus_max_abs_err=float(pp_err)))
        return rows
    finally:
        jax.config.update("jax_enable_x64", previous)
