"""Check, in float64, that the constructed models compute their learners exactly: the LSA
constructions GD and GD++ (query and causal), and every model family that exposes
`verify_errors(batch)` in its module (the recurrent families: linear attention = GD, a decaying
gate = weighted GD, the delta rule = online SGD, ...)."""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp

from icl import constructions, models, solvers, tasks
from icl.precision import at_dtype, highest


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


def causal_prefix_gd(x, y, lr: float, n_ref: int, layers: int) -> jax.Array:
    """What `layers` causal layers of the GD construction compute, written as an explicit learner:
    x [B, T, d], y [B, T] -> [B, T], position t predicted from the pairs before it.

    Each pair i keeps a residual r_i (start y_i) and each position t a query slot q_t (start 0);
    a layer updates them at once with the fixed output scale c = lr / n_ref:
        r_i <- r_i - c sum_{j <= i} (x_j . x_i) r_j        q_t <- q_t - c sum_{j < t} (x_j . x_t) r_j
    and predicts -q_t. One layer is one GD step on the t - 1 pairs before t at rate c (t - 1)
    (`solvers.gd`'s 1/n convention). With more layers each residual r_j is taken against the
    iterate of pair j's own prefix, not of t's: a causal stack shares its tokens between
    prefixes, so K > 1 layers are not K GD steps on each prefix (docs/math.md)."""
    c = lr / n_ref
    gram = jnp.einsum("bid,bjd->bij", x, x)  # [B, T, T]: x_i . x_j
    t = x.shape[1]
    upto = jnp.tril(jnp.ones((t, t), gram.dtype))  # j <= i
    before = jnp.tril(jnp.ones((t, t), gram.dtype), -1)  # j < t
    r, q = y, jnp.zeros_like(y)
    for _ in range(layers):
        r, q = (r - c * jnp.einsum("bij,bj->bi", gram * upto[None], r),
                q - c * jnp.einsum("bij,bj->bi", gram * before[None], r))
    return -q


@highest
def causal_errors(batch, lr: float, layers: int) -> tuple[jax.Array, jax.Array]:
    """max |causal model - learner| for the `layers`-layer GD construction on every prefix of
    the sequence [context, queries] of `batch`: against `solvers.gd` on each prefix (one step at
    rate lr (t - 1) / N; meaningful for layers = 1) and against `causal_prefix_gd` (any layers)."""
    x, y = batch.sequence()  # [B, T, d], [B, T]
    d, n_ctx = x.shape[2], batch.x_ctx.shape[1]
    model = constructions.gd_model(d, n_ctx, lr=lr, layers=layers, dtype=x.dtype)
    got = model.predict_prefixes(x, y)  # [B, T]
    gd_err = jnp.max(jnp.abs(got - solvers.fixed_scale_prefixes(solvers.gd, x, y, lr, n_ctx, steps=1)))
    learner_err = jnp.max(jnp.abs(got - causal_prefix_gd(x, y, lr, n_ctx, layers)))
    return gd_err, learner_err


def construction_errors(d: int = 10, n_ctx: int = 10, max_layers: int = 5, seed: int = 0) -> list[dict]:
    """max |model - solver| over 1,000 tasks for the GD and GD++ constructions, 1..max_layers layers.

    Runs in float64 (x64 on in this thread for the duration of the call) on the paper's task.
    """
    with at_dtype("float64"):  # this thread only; the caller's x64 setting as it was after
        task = tasks.get("linear", d=d, n_ctx=n_ctx)
        batch = task.sample(jax.random.key(seed), 1000)
        lr = solvers.optimal_gd_lr(task, jax.random.key(seed + 1))
        rows = []
        for layers in range(1, max_layers + 1):
            gd_err, pp_err = max_errors(batch, lr, layers)
            causal_gd_err, causal_err = causal_errors(batch, lr, layers)
            rows.append(dict(layers=layers, lr=lr, gd_max_abs_err=float(gd_err), gd_plus_plus_max_abs_err=float(pp_err),
                             causal_max_abs_err=float(causal_err),
                             **({"causal_gd_max_abs_err": float(causal_gd_err)} if layers == 1 else {})))
        return rows


def family_construction_errors(d: int = 10, n_ctx: int = 10, seed: int = 0) -> dict[str, float]:
    """{name: max |construction - learner|} over every prefix of 1,000 tasks' [context, query]
    sequences, from each registered model family whose module defines `verify_errors(batch)`;
    float64, in a scope of its own (`at_dtype`)."""
    with at_dtype("float64"):
        batch = tasks.get("linear", d=d, n_ctx=n_ctx).sample(jax.random.key(seed), 1000)
        errors = {}
        for name in models.names():
            check = getattr(sys.modules[models.family(name).__module__], "verify_errors", None)
            if check is not None:
                errors.update(check(batch))
        return errors
